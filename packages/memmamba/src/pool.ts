/**
 * The state pool of a layer (Eq. 5/8): a bounded memory of P notes. A note is written when its
 * token's importance passes τ1; a full pool drops its oldest note ("fifo") or its lowest-scoring
 * one, the newcomer included ("priority"; among equal scores the oldest goes).
 *
 * Two forms of the same memory, held equal by the tests:
 * - over a sequence (parallel and chunked modes): `selectNotes` asks `causalSelect` which notes
 *   the pool holds before each position, with the notes of a previous chunk prepended as virtual
 *   positions (mask = valid, score = carried score);
 * - one token at a time (recurrent mode): `insertNote` updates the fixed-size pool state with
 *   `poolInsert` (no readback: one fused pass outside a gradient, its composite of compare, where
 *   and concat under one), so it runs on any backend.
 *
 * Layout of a pool state: slots in insertion order, oldest first, empty slots at the end with
 * zeros, exactly the order in which causalSelect lists the positions it holds.
 */
import {
  add, causalEntered, causalSelect, concat, fromArray, gather, ge, isRecording, mul, pad, poolInsert, reshape, sliceAxis, where, zeros,
  type Tensor,
} from "@memmamba/tensor";
import { checkConfig, type MemoryConfig } from "./config.ts";
import type { Notes, ScoredNotes } from "./note.ts";

/** A pool: notes [B, P, S], their scores [B, P], and which slots hold a note (1/0) [B, P]. */
export interface PoolState {
  /** The notes [B, P, S]. */
  notes: Tensor;
  /** Each note's importance score [B, P] (priority eviction drops the lowest). */
  scores: Tensor;
  /** 1 where a slot holds a note, else 0 [B, P]. */
  valid: Tensor;
}

/**
 * What each position may read: rows of a flat note table [M, S], picked by `index` i32
 * [B, L, P] (−1 where the slot is empty, the indexed primitives' empty slot), and which slots
 * hold a note, `valid` (1/0) [B, L, P]. Attention projects the table first and gathers after
 * (cheaper: M rows, not B·L·P). A read of the recurrent pool (`readPool`) points an empty slot at
 * a zero row instead of −1: its `valid` is what says which slots hold a note. A read without
 * `valid` (causalSelect's, outside a gradient) holds a note exactly where its index is not −1:
 * the reads then need no mask (indexedAttentionParts), and `validOf` makes one where one is needed.
 */
export interface PoolRead {
  /** The flat note table [M, S]. */
  table: Tensor;
  /** Rows of the table each position reads, i32 [B, L, P] (−1 where the slot is empty). */
  index: Tensor;
  /** 1 where a slot holds a note, else 0 [B, L, P]; absent: where the index is not −1. */
  valid?: Tensor;
}

/** A read's valid mask [B, L, P] (1 where a slot holds a note), made from its index where the read has none. */
export function validOf(read: PoolRead): Tensor {
  return read.valid ?? ge(read.index, 0);
}

/**
 * The pools initPoolState made, with the tensors it put in them (empty: tensors are never written
 * in place, and a chunk returns a new pool). selectNotes skips replaying such a pool while it still
 * holds those tensors; any other pool, empty or not, takes the general path, with the same result.
 */
const emptyPools = new WeakMap<PoolState, readonly [Tensor, Tensor, Tensor]>();

function isInitialPool(p: PoolState): boolean {
  const t = emptyPools.get(p);
  return t !== undefined && t[0] === p.notes && t[1] === p.scores && t[2] === p.valid;
}

/** An empty pool for `batch` sequences: P slots of S zeros, none valid (`zerosOf` makes the zero tensors). */
export function initPoolState(memory: MemoryConfig, batch: number, zerosOf: (shape: number[]) => Tensor = zeros): PoolState {
  const m = checkConfig("initPoolState", { memory }).memory;
  const P = m.poolSize;
  const pool = { notes: zerosOf([batch, P, m.summaryDim]), scores: zerosOf([batch, P]), valid: zerosOf([batch, P]) };
  emptyPools.set(pool, [pool.notes, pool.scores, pool.valid]);
  return pool;
}

/**
 * Positions (−1: empty) of a [B, M]-long sequence → a PoolRead into that sequence's flat table.
 * Empty slots keep index −1 (not a real row with weight 0): the GPU's indexedOuter lists every
 * in-range entry of an index once and shares that list between the two gradient sums of an
 * attention, so thousands of empty slots piled on row 0 would cost it (ops/attention.ts). A slot
 * holds a note iff its index is not −1, so the read carries its `valid` only where a gradient is
 * recorded (the fused read's backward takes the mask; outside one the reads need none: one
 * launch fewer a pool).
 */
function readAt(positions: Tensor, rowsPerBatch: number, table: Tensor): PoolRead {
  const B = positions.shape[0];
  const keep = isRecording();
  // one sequence (a long-context forward): the positions are the table's rows already, and an
  // empty slot's −1 stays −1 (two launches and an upload fewer a read)
  if (B === 1) return keep ? { table, index: positions, valid: ge(positions, 0) } : { table, index: positions };
  const offsets = fromArray(Int32Array.from({ length: B }, (_, b) => b * rowsPerBatch), [B, 1, 1], "i32");
  const valid = ge(positions, 0);
  const index = where(valid, add(positions, offsets), -1);
  return keep ? { table, index, valid } : { table, index };
}

/**
 * Eq. 5/8 over a sequence: for each position, the notes the pool holds before it (causal). With
 * a carried pool (chunked mode) also returns the pool after the last position, unless
 * `opts.next` is false (a last chunk whose state nobody keeps: seven launches fewer).
 */
export function selectNotes(n: Notes | ScoredNotes, m: MemoryConfig, carried?: PoolState, opts: { next?: boolean } = {}): { read: PoolRead; next?: PoolState } {
  const [B, L] = n.score.shape;
  const P = m.poolSize;
  const mode = m.replacement === "fifo" ? "last" : "top";
  if (!carried) {
    const positions = causalSelect(n.write, n.score, P, mode);
    const note = "note" in n ? n.note : n.noteOf();
    return { read: readAt(positions, L, reshape(note, [B * L, note.shape[2]])) };
  }
  // the carried notes replay as P virtual positions (at most P valid: nothing is evicted), and one
  // trailing empty position asks what the pool holds after the chunk. A pool known to be empty
  // (initPoolState's, not yet written) has nothing to replay: no virtual positions, and the
  // table is the chunk's notes alone (no [B, P + L, S] copy). Without a next pool (opts.next
  // false) there is no trailing position either: the chunk's last note is then read by no one (a
  // read sees the notes before it), so it needs no row, and an empty pool's positions are the
  // read's index as they come (no copy of the rows after the virtual ones)
  const V = isInitialPool(carried) ? 0 : P;
  const M = V + L;
  const tail = opts.next !== false;
  // (the trailing position's 0s: one shared zeros tensor, or a pad of the chunk's own row)
  const end = V && tail ? zeros([B, 1]) : undefined;
  const withEnd = (c: Tensor, x: Tensor): Tensor => {
    const parts = V ? [c, x] : [x];
    if (!tail) return parts.length > 1 ? concat(parts, 1) : x;
    return end ? concat([...parts, end], 1) : pad(x, [0, 0], [0, 1]);
  };
  const positions = causalSelect(withEnd(carried.valid, n.write), withEnd(carried.scores, n.score), P, mode);
  // (without the trailing position, the last note's comparison runs past the end: 0, not held)
  const note = "note" in n ? n.note : n.noteOf(heldRows(positions, V, L));
  const S = note.shape[2];
  const table = reshape(V ? concat([carried.notes, note], 1) : note, [B * M, S]);
  const read = readAt(V || tail ? sliceAxis(positions, 1, V, M) : positions, M, table);
  if (!tail) return { read };
  const last = readAt(sliceAxis(positions, 1, M, M + 1), M, table);
  const lastValid = validOf(last);
  const valid = reshape(lastValid, [B, P]);
  const scoreTable = reshape(V ? concat([carried.scores, n.score], 1) : n.score, [B * M, 1]);
  // gather has no empty slot (−1 is an error on the CPU): read row 0 there, which `valid` zeroes
  const rows = where(lastValid, last.index, 0);
  const next: PoolState = {
    notes: mul(reshape(gather(table, rows), [B, P, S]), reshape(valid, [B, P, 1])),
    scores: mul(reshape(gather(scoreTable, rows), [B, P]), valid),
    valid,
  };
  return { read, next };
}

/**
 * Which of a chunk's L positions some pool ever holds (1/0 [B, L]), from causalSelect's positions
 * [B, V + L + 1, P] over the V carried notes (P, or 0 for an empty pool), the chunk and the
 * trailing position: position t (row V + t) is held by some pool iff the pool right after it holds it (in "top" mode the positions
 * that outrank t when it arrives stay; in "last" mode every written position enters), and then it
 * is the newest position there: the pool's largest position grows from row V + t to row V + t + 1.
 * A position that does not enter leaves the pool as it was. So: max over the slots of row V + t + 1
 * > max over row V + t (an empty slot's −1 is below every position): `causalEntered`, one
 * launch on the device (no index upload).
 */
function heldRows(positions: Tensor, V: number, L: number): Tensor {
  return causalEntered(positions, V, L);
}

/** A pool state as a PoolRead for one position (the recurrent step reads before it writes). */
export function readPool(pool: PoolState): PoolRead {
  const [B, P, S] = pool.notes.shape;
  const index = fromArray(Int32Array.from({ length: B * P }, (_, i) => i), [B, 1, P], "i32");
  return { table: reshape(pool.notes, [B * P, S]), index, valid: reshape(pool.valid, [B, 1, P]) };
}

/**
 * Eq. 5/8, one token at a time: writes `note` [B, S] with `score` [B] where `write` [B] is 1,
 * evicting as causalSelect does. Slot i of the new pool is
 *   old[i] (i < e),  old[i + 1] (e ≤ i < c − 1),  the newcomer (i = c − 1),  old[i] (after),
 * where e is the slot that leaves (the first empty one while the pool is not full) and c the
 * count after the write; nothing changes where the note is not written or not accepted.
 */
export function insertNote(pool: PoolState, note: Tensor, score: Tensor, write: Tensor, m: MemoryConfig): PoolState {
  return insertNoteTraced(pool, note, score, write, m).pool;
}

/** What one recurrent insert did, for inspection (the demo page's pool view). */
export interface InsertTrace {
  /** The new pool (the same tensors `insertNote` returns). */
  pool: PoolState;
  /** 1 where the note went into the pool [B] (written, and in priority mode not the lowest of a full pool). */
  accepted: Tensor;
  /** The slot (of the old pool) whose note left to make room, or −1 where none did [B] (f32). */
  evicted: Tensor;
}

/**
 * `insertNote` that also says which note went in and which left: slot i of the new pool holds
 * old slot i, or old slot i + 1 from the evicted slot on, and the newcomer comes last. A caller
 * that mirrors the pool's token positions on the host (drop `evicted`, append where `accepted`)
 * stays in step with the pool without reading the notes back. Same numbers as `insertNote`.
 */
export function insertNoteTraced(pool: PoolState, note: Tensor, score: Tensor, write: Tensor, m: MemoryConfig): InsertTrace {
  const r = poolInsert(pool.notes, pool.scores, pool.valid, note, score, write, m.replacement);
  return { pool: { notes: r.notes, scores: r.scores, valid: r.valid }, accepted: r.accepted, evicted: r.evicted };
}
