/**
 * One MemMamba layer: the Mamba block, then the Note Block writes to the layer's pool, the
 * layer reads its pool (cross-token) and, every p layers, the pools of the g layers before it
 * (cross-layer), and the reads are fused into the residual stream.
 *
 *   x_l = Mamba(x);  h = RMSNorm(x_l)                (Eq. 1)
 *   notes, pool  ← NoteBlock(h)                      (Eq. 5/8/9)
 *   c_tok = CrossToken(h, pool_l)                    (Eq. 6/10)
 *   c_lay = CrossLayer(h, pools_{l−g..l−1})          (Eq. 7/11)
 *   x̄_l = x_l + F_tok(c_tok) + F_lay(c_lay)          (Eq. 12)
 *
 * The same function runs a whole sequence (parallel: no state; chunked: a carried state) or one
 * token (`step: true`: the pool is read from the state, then the note is inserted).
 */
import { isRecording, matmul, max, mul, noGrad, random, reshape, rmsNormScores, sum, tidy, zeros, type Tensor } from "@memmamba/tensor";
import { checkConfig, crossLayerSources, hasCrossLayer, usesMemory, type ModelConfig } from "./config.ts";
import { crossLayerAttention, crossTokenRead, crossTokenValues, initCrossLayer, initCrossToken, type CrossLayerParams, type CrossTokenParams } from "./attention.ts";
import { fuseInto, initFusion, initFusionState, type FusionParams } from "./fusion.ts";
import { initMamba, initMambaState, mambaBlock, type MambaParams, type MambaState } from "./mamba.ts";
import { rmsNorm, rmsNormalize, scaleRows, type Key } from "./nn.ts";
import { initNote, scoreNotes, type NoteParams } from "./note.ts";
import { initPoolState, insertNoteTraced, readPool, selectNotes, validOf, type InsertTrace, type PoolRead, type PoolState } from "./pool.ts";

/** The parameters of one MemMamba layer; the memory parts are absent where the config turns them off. */
export interface LayerParams {
  /** The Mamba block. */
  mamba: MambaParams;
  /** The Note Block (memory on). */
  note?: NoteParams;
  /** Cross-token attention over this layer's pool (memory.crossToken on). */
  crossToken?: CrossTokenParams;
  /** The fusion of the cross-token read. */
  fuseTok?: FusionParams;
  /** Cross-layer attention over earlier layers' pools (layers where `hasCrossLayer`). */
  crossLayer?: CrossLayerParams;
  /** The fusion of the cross-layer read. */
  fuseLay?: FusionParams;
}

/** A layer's recurrent state: fixed size, whatever the length. */
export interface LayerState {
  /** The Mamba block's conv and SSM state. */
  mamba: MambaState;
  /** This layer's note pool (memory on). */
  pool?: PoolState;
  /** conv1d fusion: the last 2 projected reads of each path [B, 2, d]. */
  fuseTok?: Tensor;
  /** conv1d fusion: the last 2 projected cross-layer reads [B, 2, d]. */
  fuseLay?: Tensor;
}

/** Per-position signals of one layer, for inspection (`trace: true`). */
export interface LayerTrace {
  /** I_token [B, L]. */
  tokenScore: Tensor;
  /** 1 where the note was written [B, L]. */
  write: Tensor;
  /** I_state [B, L] (when cross-token attention is on). */
  stateScore?: Tensor;
  /** 1 where the token read its pool [B, L]. */
  readGate?: Tensor;
  /** c_tok, the cross-token read [B, L, S] (when cross-token attention is on). */
  crossToken?: Tensor;
  /** c_lay, the cross-layer read [B, L, S] (on the layers that read across layers). */
  crossLayer?: Tensor;
  /**
   * The cross-token attention weights [B, L, P] over the pool slots each position read (0 on empty
   * slots), before the read gate. In a recurrent step, slot i is slot i of the pool state given.
   */
  attention?: Tensor;
  /** Recurrent step only: 1 where this token's note went into the pool [B, 1]. */
  accepted?: Tensor;
  /** Recurrent step only: the slot of the given pool whose note left, or −1 [B, 1] (see insertNoteTraced). */
  evicted?: Tensor;
}

/** Counts for reporting (scalars, no gradient). */
export interface LayerCounts {
  /** Notes written. */
  written: Tensor;
  /** Tokens whose read gate was open and whose pool held at least one note. */
  reads: Tensor;
}

function checkLayerIndex(fn: string, cfg: ModelConfig, l: number): void {
  if (!Number.isInteger(l) || l < 0 || l >= cfg.nLayers) throw new RangeError(`${fn}: l must be a layer index in [0, ${cfg.nLayers}) (config.nLayers ${cfg.nLayers}), got ${l}`);
}

/** The parameters of layer `l` (0-based) of a model with config `cfg`. */
export function initLayer(key: Key, config: ModelConfig, l: number): LayerParams {
  const cfg = checkConfig("initLayer", config);
  checkLayerIndex("initLayer", cfg, l);
  const [km, kn, kt, kft, kl, kfl] = random.split(key, 6);
  const p: LayerParams = { mamba: initMamba(km, cfg) };
  if (!usesMemory(cfg)) return p;
  p.note = initNote(kn, cfg);
  if (cfg.memory.crossToken) {
    p.crossToken = initCrossToken(kt, cfg);
    p.fuseTok = initFusion(kft, cfg);
  }
  if (hasCrossLayer(cfg, l)) {
    p.crossLayer = initCrossLayer(kl, cfg);
    p.fuseLay = initFusion(kfl, cfg);
  }
  return p;
}

/**
 * The empty recurrent state of layer `l` for `batch` sequences (zero conv and SSM state, empty
 * pool); `zerosOf` makes its zero tensors (initState shares their storage between layers).
 */
export function initLayerState(config: ModelConfig, l: number, batch: number, zerosOf: (shape: number[]) => Tensor = zeros): LayerState {
  const cfg = checkConfig("initLayerState", config);
  checkLayerIndex("initLayerState", cfg, l);
  const s: LayerState = { mamba: initMambaState(cfg, batch, zerosOf) };
  if (!usesMemory(cfg)) return s;
  s.pool = initPoolState(cfg.memory, batch, zerosOf);
  if (cfg.memory.crossToken) s.fuseTok = initFusionState(cfg, batch, zerosOf);
  if (hasCrossLayer(cfg, l)) s.fuseLay = initFusionState(cfg, batch, zerosOf);
  return s;
}

/** What a layer needs beyond its input: earlier layers' reads, the carried state, the mode. */
export interface LayerContext {
  /** The pool reads of the layers before this one, at the same positions. */
  reads: readonly (PoolRead | undefined)[];
  /** The carried state (chunked and recurrent modes). */
  state?: LayerState;
  /** With a carried state (not a step): also build the state after the last position (default true). */
  next?: boolean;
  /** One token: read the pool from the state, then insert (x is [B, 1, d]). */
  step?: boolean;
  /** Training randomness (S3Pool). */
  key?: Key;
  /** Also return per-position signals (`LayerTrace`) for inspection. */
  trace?: boolean;
  /** Also count notes written and pool reads (for reporting). */
  counts?: boolean;
}

/** What `memMambaLayer` returns. */
export interface LayerResult {
  /** The layer output [B, L, d]. */
  x: Tensor;
  /** What this layer's tokens read from its pool (for the cross-layer reads of later layers). */
  read?: PoolRead;
  /** The state after the last position, when a state was given. */
  state?: LayerState;
  /** Notes written and pool reads, when `counts` was asked for. */
  counts?: LayerCounts;
  /** Per-position signals, when `trace` was asked for. */
  trace?: LayerTrace;
}

/**
 * Whether the layer takes its pre-norm and both scorers from one rmsNormScores: outside a
 * gradient, with cross-token reads whose state scorer reads h (stateScore "output"), both scorers
 * with biases, and no trace or counts (which report the state scorer's own score and gate).
 */
function fusedScores(p: LayerParams, cfg: ModelConfig, ctx: LayerContext): boolean {
  const m = cfg.memory;
  return !isRecording() && !ctx.trace && !ctx.counts && m.crossToken && m.stateScore !== "scan" && p.crossToken !== undefined && p.note !== undefined &&
    p.note.token.b !== undefined && p.crossToken.state.b !== undefined && p.note.token.w.shape[1] === 1 && p.crossToken.state.w.shape[1] === 1;
}

/** One MemMamba layer (or a plain Mamba layer when memory is off) over x [B, L, d]. */
export function memMambaLayer(p: LayerParams, x: Tensor, cfg: ModelConfig, l: number, ctx: LayerContext): LayerResult {
  return tidy(() => memMambaLayerInner(p, x, cfg, l, ctx));
}

function memMambaLayerInner(p: LayerParams, x: Tensor, cfg: ModelConfig, l: number, ctx: LayerContext): LayerResult {
  const { state } = ctx;
  if (ctx.step && !state) throw new Error(`memMambaLayer: layer ${l}: a recurrent step needs a state`);
  const wantNext = ctx.step === true || ctx.next !== false;
  const mo = mambaBlock(p.mamba, x, cfg, state?.mamba, { scan: usesMemory(cfg) && cfg.memory.crossToken && cfg.memory.stateScore === "scan", next: wantNext });
  if (!usesMemory(cfg)) return { x: mo.out, state: mo.state && { mamba: mo.state } };

  const m = cfg.memory;
  const y = mo.out;
  const [B, L] = y.shape;
  // the memory path's pre-norm (note.ts says why) and, outside a gradient where nothing asks for
  // the state scorer's score and gate themselves (a trace, counts), the two scorers of its output
  // in the same launch (rmsNormScores): the token scorer's I_token and write mark, the state
  // scorer's gated I_state that scales the cross-token read
  const pre = fusedScores(p, cfg, ctx) ? rmsNormScores(y, p.note!.norm.weight, { w: p.note!.token.w, b: p.note!.token.b!, tau: m.tau1 }, { w: p.crossToken!.state.w, b: p.crossToken!.state.b!, tau: m.tau2 }, cfg.normEps) : undefined;
  const h = pre ? pre.h : rmsNorm(p.note!.norm, y, cfg.normEps);
  // outside a gradient, a chunked forward projects only the notes some pool will hold (pool.ts,
  // selectNotes): the note table's other rows are never read
  const scored = scoreNotes(p.note!, h, m, ctx.key, pre && { score: pre.score, write: pre.gate });
  const sparse = !ctx.step && state?.pool !== undefined && !isRecording();
  const notes = sparse ? undefined : { score: scored.score, write: scored.write, note: scored.noteOf() };
  let read: PoolRead, pool: PoolState | undefined, inserted: InsertTrace | undefined;
  if (ctx.step) {
    if (L !== 1) throw new Error(`memMambaLayer: a recurrent step takes one token, got length ${L}`);
    read = readPool(state!.pool!);
    const S = m.summaryDim;
    inserted = insertNoteTraced(state!.pool!, reshape(notes!.note, [B, S]), reshape(notes!.score, [B]), reshape(notes!.write, [B]), m);
    pool = inserted.pool;
  } else {
    ({ read, next: pool } = selectNotes(notes ?? scored, m, state?.pool, { next: wantNext }));
  }

  // x̄ = x_l + F_tok(c_tok) + F_lay(c_lay) (Eq. 12), each term added in turn (fuseInto)
  let out = y;
  const next: LayerState | undefined = state && wantNext ? { mamba: mo.state!, pool } : undefined;
  let tok: ReturnType<typeof crossTokenRead> | undefined;
  let cLay: Tensor | undefined;
  // the reads return the notes' weighted sums and W_v goes into the fusion's projection
  // (attention.ts, ReadValues); the read gate scales the projection's rows (fuseInto); a trace
  // reports c as Eq. 6/7 write it, gated and times W_v, computed aside so that tracing changes no
  // number
  if (m.crossToken) {
    let attn: Tensor, scale: Tensor;
    if (pre) {
      ({ gated: scale } = pre);
      attn = crossTokenValues(p.crossToken!, h, read, "notes");
    } else {
      tok = crossTokenRead(p.crossToken!, h, m.stateScore === "scan" ? rmsNormalize(mo.scan!, cfg.normEps) : h, read, m, { weights: ctx.trace, values: "notes" });
      ({ attn, scale } = tok);
    }
    const f = fuseInto(out, p.fuseTok!, m.fusion, y, attn, { scale, convState: state?.fuseTok, pre: p.crossToken!.v.w });
    out = f.out;
    if (next && f.state) next.fuseTok = f.state;
  }
  if (hasCrossLayer(cfg, l)) {
    const sources = crossLayerSources(cfg, l).map((j) => {
      const r = ctx.reads[j];
      if (!r) throw new Error(`memMambaLayer: layer ${l} reads the pool of layer ${j}, which was not given`);
      return r;
    });
    const c = crossLayerAttention(p.crossLayer!, h, sources, { values: "notes" });
    cLay = c;
    const f = fuseInto(out, p.fuseLay!, m.fusion, y, c, { convState: state?.fuseLay, pre: p.crossLayer!.v.w });
    out = f.out;
    if (next && f.state) next.fuseLay = f.state;
  }

  const counts = ctx.counts
    ? noGrad((): LayerCounts => ({
      written: sum(scored.write),
      reads: tok ? sum(mul(tok.gate, max(validOf(read), -1))) : sum(mul(scored.write, 0)),
    }))
    : undefined;
  const trace = ctx.trace
    ? {
      tokenScore: scored.score,
      write: scored.write,
      ...(tok ? { stateScore: tok.score, readGate: tok.gate, crossToken: matmul(scaleRows(tok.attn, tok.scale), p.crossToken!.v.w), attention: tok.weights } : {}),
      ...(cLay ? { crossLayer: matmul(cLay, p.crossLayer!.v.w) } : {}),
      ...(inserted ? { accepted: reshape(inserted.accepted, [B, 1]), evicted: reshape(inserted.evicted, [B, 1]) } : {}),
    }
    : undefined;
  return { x: out, read, state: next, counts, trace };
}
