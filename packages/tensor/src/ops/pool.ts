/**
 * poolInsert: one recurrent write into bounded note pools (MemMamba's state pool, Eq. 5/8), the
 * form a token-by-token decoder runs once per layer and token.
 *
 * A pool holds P notes [B, P, S] in insertion order, oldest first, empty slots at the end (zeros,
 * valid 0), with each note's score. Writing `note` where `write` is nonzero: a pool that is not
 * full puts it in its first empty slot; a full one drops its oldest note ("fifo") or its lowest
 * score, the newcomer's included ("priority": among equal scores the oldest goes, and a newcomer
 * below every held note is not accepted), shifts the later notes down one slot and puts the
 * newcomer last. The same order as causalSelect lists the positions a memory holds.
 *
 * The composite (`poolInsertOps`: sum, compare, where, concat, … about 40 launches a call) is the
 * reference; outside a recorded gradient, where the backend has the `poolInsert` multi-output
 * primitive (the CPU reference, wasm through it, WebGPU), one pass does it with the same numbers
 * (every output is a copy or selection of an input, or the composite's exact small integers).
 */
import { isRecording } from "../autodiff.ts";
import { bindMulti } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { ShapeError, showShape } from "../shape.ts";
import { fromArray, type Tensor } from "../tensor.ts";
import { add, eq, ge, le, lt, minimum, mul, neg, ones, sub, where } from "./elementwise.ts";
import { concat, reshape, sliceAxis } from "./movement.ts";
import { max, sum } from "./reduce.ts";

/** How a full pool makes room: drop its oldest note, or its lowest score (the newcomer's included). */
export type PoolReplacement = "fifo" | "priority";

/** What `poolInsert` returns: the new pools and what each write did. */
export interface PoolInsertResult {
  /** The notes after the write [B, P, S]. */
  notes: Tensor;
  /** Their scores [B, P]. */
  scores: Tensor;
  /** 1 where a slot holds a note, else 0 [B, P]. */
  valid: Tensor;
  /** Where the note went in [B]: write where it was accepted (1 for a 0/1 write), else 0. */
  accepted: Tensor;
  /** The slot (of the old pool) whose note left to make room, or −1 where none did [B]. */
  evicted: Tensor;
}

function checkShapes(notes: Tensor, scores: Tensor, valid: Tensor, note: Tensor, score: Tensor, write: Tensor): void {
  const all = { notes, scores, valid, note, score, write };
  for (const [name, t] of Object.entries(all)) {
    if (t.dtype !== "f32") throw new ShapeError(`poolInsert: ${name} must be f32, got ${t.dtype} ${showShape(t.shape)}`);
  }
  if (notes.rank !== 3) throw new ShapeError(`poolInsert: notes must be [B, P, S], got ${showShape(notes.shape)}`);
  const [B, P, S] = notes.shape;
  const want: [string, Tensor, number[]][] = [["scores", scores, [B, P]], ["valid", valid, [B, P]], ["note", note, [B, S]], ["score", score, [B]], ["write", write, [B]]];
  for (const [name, t, shape] of want) {
    if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new ShapeError(`poolInsert: ${name} must be ${showShape(shape)} for notes ${showShape(notes.shape)}, got ${showShape(t.shape)}`);
    }
  }
  if (P < 1) throw new ShapeError(`poolInsert: a pool needs at least one slot, got notes ${showShape(notes.shape)}`);
}

/**
 * The composite form of `poolInsert` (the reference its primitive is held to): slot i of the new
 * pool is old[i] (i < e), old[i + 1] (e ≤ i < c − 1), the newcomer (i = c − 1), old[i] (after),
 * where e is the slot that leaves (the first empty one while the pool is not full) and c the
 * count after the write; nothing changes where the note is not written or not accepted.
 */
export function poolInsertOps(notes: Tensor, scores: Tensor, valid: Tensor, note: Tensor, score: Tensor, write: Tensor, mode: PoolReplacement): PoolInsertResult {
  checkShapes(notes, scores, valid, note, score, write);
  return composite(notes, scores, valid, note, score, write, mode);
}

/** poolInsertOps after its shape checks. */
function composite(notes: Tensor, scores: Tensor, valid: Tensor, note: Tensor, score: Tensor, write: Tensor, mode: PoolReplacement): PoolInsertResult {
  const [B, P, S] = notes.shape;
  const slot = fromArray(Float32Array.from({ length: P }, (_, i) => i), [1, P]);
  const newScore = reshape(score, [B, 1]);
  const count = sum(valid, 1, true); // [B, 1]
  const full = ge(count, P);
  let leaving: Tensor, accept: Tensor;
  if (mode === "priority") {
    const lowest = neg(max(neg(scores), 1, true));
    // the first slot holding the lowest score: the largest of (P − i) over those slots
    const firstLowest = sub(P, max(mul(eq(scores, lowest), sub(P, slot)), 1, true));
    leaving = where(full, firstLowest, count);
    accept = mul(reshape(write, [B, 1]), where(full, le(lowest, newScore), 1));
  } else {
    leaving = where(full, 0, count);
    accept = reshape(write, [B, 1]);
  }
  const last = sub(minimum(add(count, 1), P), 1); // the newcomer's slot
  const keep = lt(slot, leaving), shift = lt(slot, last), put = eq(slot, last);
  const update = (old: Tensor, fresh: Tensor, col: (t: Tensor) => Tensor): Tensor => {
    const shifted = P > 1 ? concat([sliceAxis(old, 1, 1), sliceAxis(old, 1, P - 1)], 1) : old;
    const cand = where(col(keep), old, where(col(shift), shifted, where(col(put), fresh, old)));
    return where(col(accept), cand, old);
  };
  const asCol = (t: Tensor) => reshape(t, [...t.shape, 1]);
  const id = (t: Tensor) => t;
  return {
    notes: update(notes, reshape(note, [B, 1, S]), asCol),
    scores: update(scores, newScore, id),
    valid: update(valid, ones([B, 1]), id),
    accepted: reshape(accept, [B]),
    evicted: reshape(where(mul(accept, full), leaving, -1), [B]),
  };
}

/**
 * Writes `note` [B, S] with `score` [B] into the pools (notes [B, P, S], scores and valid [B, P])
 * where `write` [B] is nonzero (see the module note), all f32; returns the new pools (fresh
 * tensors: the old ones are not changed) and what each write did. One launch where the backend
 * fuses it, outside a recorded gradient; the composite (`poolInsertOps`, the same numbers) under
 * one, with its gradients (through the notes and scores that move).
 */
export function poolInsert(notes: Tensor, scores: Tensor, valid: Tensor, note: Tensor, score: Tensor, write: Tensor, mode: PoolReplacement): PoolInsertResult {
  if (mode !== "fifo" && mode !== "priority") throw new ShapeError(`poolInsert: mode must be "fifo" or "priority", got ${JSON.stringify(mode)}`);
  checkShapes(notes, scores, valid, note, score, write);
  const ops = () => composite(notes, scores, valid, note, score, write, mode);
  if (isRecording() || getBackend().prefersComposite?.("poolInsert") || notes.size === 0) return ops();
  const [B, P, S] = notes.shape;
  const row = { shape: [B], dtype: "f32" as const };
  const outs = bindMulti("poolInsert", [notes, scores, valid, note, score, write], [
    { shape: [B, P, S], dtype: "f32" }, { shape: [B, P], dtype: "f32" }, { shape: [B, P], dtype: "f32" }, row, row,
  ], { priority: mode === "priority" });
  if (!outs) return ops();
  return { notes: outs[0], scores: outs[1], valid: outs[2], accepted: outs[3], evicted: outs[4] };
}
