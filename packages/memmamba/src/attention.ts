/**
 * Reading the pools: cross-token attention (Eq. 6/10) over a layer's own pool, and cross-layer
 * attention (Eq. 7/11) over the pools of earlier layers. Both are one masked softmax over a few
 * slots per position (P, or g·P), so they cost O(L·P·S), linear in the length.
 */
import { add, concat, foldWeight, indexedAttention, indexedAttentionFused, indexedAttentionParts, joinAttentionParts, matmul, mul, random, reshape, sliceAxis, softmax, where, type Tensor } from "@memmamba/tensor";
import { checkConfig, type MemoryConfig, type ModelConfig } from "./config.ts";
import { derived } from "./derived.ts";
import { initLinear, initScorer, scaleRows, scoreGate, scoreSigmoid, type Key, type Linear } from "./nn.ts";
import type { PoolRead } from "./pool.ts";

/** The parameters of cross-token attention over a layer's own pool (Eq. 6/10). */
export interface CrossTokenParams {
  /** w_st, b_st: the state-importance scorer (input d, or d_inner when it scores the scan). */
  state: Linear;
  /** W_q [d, S], W_k and W_v [S, S] (no biases). */
  q: Linear;
  /** W_k [S, S]. */
  k: Linear;
  /** W_v [S, S]. */
  v: Linear;
}

/** The parameters of cross-layer attention over earlier layers' pools (Eq. 7/11). */
export interface CrossLayerParams {
  /** W_q [d, S], no bias. */
  q: Linear;
  /** W_k [S, S], no bias. */
  k: Linear;
  /** W_v [S, S], no bias. */
  v: Linear;
}

function initQKV(key: Key, d: number, S: number): { q: Linear; k: Linear; v: Linear } {
  const [kq, kk, kv] = random.split(key, 3);
  return { q: initLinear(kq, d, S, false), k: initLinear(kk, S, S, false), v: initLinear(kv, S, S, false) };
}

/** Cross-token attention of one layer: the state-importance scorer and W_q, W_k, W_v (like nn.Linear, no biases). */
export function initCrossToken(key: Key, config: ModelConfig): CrossTokenParams {
  const cfg = checkConfig("initCrossToken", config);
  const [ks, kqkv] = random.split(key, 2);
  const scored = cfg.memory.stateScore === "scan" ? cfg.expand * cfg.dModel : cfg.dModel;
  return { state: initScorer(ks, scored), ...initQKV(kqkv, cfg.dModel, cfg.memory.summaryDim) };
}

/** Cross-layer attention of one layer: W_q, W_k, W_v (like nn.Linear, no biases). */
export function initCrossLayer(key: Key, config: ModelConfig): CrossLayerParams {
  const cfg = checkConfig("initCrossLayer", config);
  return initQKV(key, cfg.dModel, cfg.memory.summaryDim);
}

/**
 * softmax(q·Kᵀ/√S) V over the notes the reads see (their slots together), q = h·W_q, K = notes·W_k
 * and V = notes·W_v: h [B, L, d] → out [B, L, S] (and weights [B, L, P]). The fused reads take
 * table rows through the index, so no [B, L, P, S] keys or values exist in the forward or the
 * backward pass: `indexedAttentionParts` where no read carries a valid mask (causalSelect's reads
 * outside a gradient: one launch over the reads where they lie, no mask), else
 * `indexedAttentionFused` over the joined reads. Same numbers as `poolAttentionWeighted` over
 * gathered slots (the composite they replaced, kept as the reference), within f32 rounding.
 *
 * Why W_k goes into the query: q·(n W_k)ᵀ = (h W_q W_kᵀ)·n, so the logits read the notes
 * themselves with the query h·(W_q W_kᵀ). The [d, S] product costs nothing, where projecting
 * the table costs a [M, S]·[S, S] matmul with M ≈ L rows (and its two backward matmuls).
 * Why W_v may stay out (`values: "notes"`): Σ w·(n W_v) = (Σ w·n) W_v, and a caller whose next
 * step is a linear map (the fusion's projection) folds W_v into that map's weight, so neither
 * the table nor the read is projected by W_v. Both are equal to the projected form up to f32
 * rounding.
 */
function readPoolAttention(h: Tensor, wq: Tensor, reads: readonly PoolRead[], wk: Tensor, wv: Tensor | null): Tensor;
function readPoolAttention(h: Tensor, wq: Tensor, reads: readonly PoolRead[], wk: Tensor, wv: Tensor | null, weights: true): { out: Tensor; weights: Tensor };
function readPoolAttention(h: Tensor, wq: Tensor, reads: readonly PoolRead[], wk: Tensor, wv: Tensor | null, weights = false): Tensor | { out: Tensor; weights: Tensor } {
  const q = matmul(h, derived("qk", [wq, wk], () => foldWeight(wq, wk, undefined, { transB: true })));
  const project = (table: Tensor) => (wv ? matmul(table, wv) : table);
  if (!weights && reads.every((r) => r.valid === undefined)) return indexedAttentionParts(q, reads.map((r) => ({ keys: r.table, values: project(r.table), index: r.index })));
  // the reads joined (their tables side by side: small, one row per note), projected once
  const read = joinAttentionParts(reads.map((r) => ({ keys: r.table, values: r.table, index: r.index, valid: r.valid })));
  const values = project(read.keys);
  // the read alone is one fused launch each way (indexedAttentionFused); the weights, when asked
  // for, come from the op-by-op form, which returns them
  return weights ? indexedAttention(q, read.keys, values, read.index, read.valid) : indexedAttentionFused(q, read.keys, values, read.index, read.valid);
}

/**
 * What a read returns: "projected" (default), c as Eq. 6/7 write it (the values projected by
 * W_v); or "notes", the weighted sum of the notes before W_v, for a caller that folds W_v into
 * its next linear map (`fusionTerm`'s `pre`; the layer does this outside of traces).
 */
export type ReadValues = "projected" | "notes";

/**
 * softmax(q·Kᵀ/√S) V over slots already gathered per position: the composite form, for callers
 * that hold gathered slots (the model reads its pools with the fused `indexedAttention` instead,
 * see readPoolAttention; the tests hold the two equal). q [B, L, S]; keys and values
 * [B, L, P, S] in one or more groups (the softmax runs over all their slots together, without
 * copying them into one tensor); valid [B, L, P] per group. A position with no valid slot reads 0
 * (its weights are all masked to zero), never NaN. Batched matmuls over (B, L) with a single
 * query row.
 */
export function poolAttention(q: Tensor, keys: Tensor | readonly Tensor[], values: Tensor | readonly Tensor[], valid: Tensor | readonly Tensor[]): Tensor {
  return poolAttentionWeighted(q, keys, values, valid).out;
}

/**
 * `poolAttention` that also returns its attention weights [B, L, ΣP] (0 on empty slots; a row
 * sums to 1 where any slot holds a note), for inspection. Same numbers as `poolAttention`.
 */
export function poolAttentionWeighted(
  q: Tensor,
  keys: Tensor | readonly Tensor[],
  values: Tensor | readonly Tensor[],
  valid: Tensor | readonly Tensor[],
): { out: Tensor; weights: Tensor } {
  const ks = Array.isArray(keys) ? keys : [keys as Tensor];
  const vs = Array.isArray(values) ? values : [values as Tensor];
  const ms = Array.isArray(valid) ? valid : [valid as Tensor];
  const [B, L, S] = q.shape;
  const q4 = reshape(q, [B, L, 1, S]);
  const mask = concat(ms, 2); // [B, L, ΣP]
  const logits = concat(ks.map((k) => reshape(matmul(q4, k, { transB: true }), [B, L, k.shape[2]])), 2);
  const weights = mul(softmax(where(mask, mul(logits, 1 / Math.sqrt(S)), -1e9)), mask);
  let out: Tensor | undefined, off = 0;
  for (const v of vs) {
    const P = v.shape[2];
    const w = reshape(sliceAxis(weights, 2, off, off + P), [B, L, 1, P]);
    const part = matmul(w, v);
    out = out ? add(out, part) : part;
    off += P;
  }
  return { out: reshape(out!, [B, L, S]), weights };
}

/**
 * Eq. 10: I_state = σ(src · w_st + b_st) [B, L]. The paper scores the SSM state h_t; the parallel
 * scan does not materialise h_t, so we score a linear readout of it: the (normalised) block output
 * x_l, which is out_proj of the gated C·h + D·u plus the skip (the default), or the (normalised)
 * scan readout C·h + D·u itself (memory.stateScore = "scan").
 */
export function stateImportance(p: Linear, src: Tensor): Tensor {
  return scoreSigmoid(p, src);
}

/** What cross-token attention read for each position, and how much the state wanted it. */
export interface CrossTokenRead {
  /** c_tok [B, L, S] (with values "notes": before W_v, see ReadValues). */
  c: Tensor;
  /** I_state [B, L]. */
  score: Tensor;
  /** 1 where I_state > τ2 [B, L] (no gradient). */
  gate: Tensor;
  /** The attention weights over the pool slots the read saw [B, L, P], before the gate (for inspection; only when asked for). */
  weights?: Tensor;
}

/**
 * Eq. 6/10: c_tok = 1[I_state > τ2] ⊙ I_state ⊙ Attn(h W_q, notes W_k, notes W_v) over the notes the
 * layer's own pool holds before t; h = RMSNorm(x_l) [B, L, d], stateSrc what I_state scores. As with
 * the notes, the score scales what it gates, so the state scorer learns through the read.
 * `opts.weights` also returns the attention weights; `opts.values: "notes"` returns c before W_v
 * (see ReadValues).
 */
export function crossTokenAttention(
  p: CrossTokenParams,
  h: Tensor,
  stateSrc: Tensor,
  read: PoolRead,
  m: MemoryConfig,
  opts: { weights?: boolean; values?: ReadValues } = {},
): CrossTokenRead {
  const { attn, scale, ...rest } = crossTokenRead(p, h, stateSrc, read, m, opts);
  return { c: scaleRows(attn, scale), ...rest };
}

/** crossTokenAttention before its gate: the read and the per-position factor that scales it. */
export interface CrossTokenParts extends Omit<CrossTokenRead, "c"> {
  /** Attn(h W_q, notes W_k, notes W_v) [B, L, S] (with values "notes": before W_v). */
  attn: Tensor;
  /** 1[I_state > τ2] ⊙ I_state [B, L]: c_tok = attn ⊙ scale. */
  scale: Tensor;
}

/**
 * crossTokenAttention with c_tok left in its two factors, c_tok = attn ⊙ scale[..., None]: a caller
 * whose next step is linear in c_tok (the fusion, Eq. 12) scales its product's rows instead
 * (`fuseInto`: one addMatmul), with no [B, L, S] multiply.
 */
export function crossTokenRead(
  p: CrossTokenParams,
  h: Tensor,
  stateSrc: Tensor,
  read: PoolRead,
  m: MemoryConfig,
  opts: { weights?: boolean; values?: ReadValues } = {},
): CrossTokenParts {
  // I_state (stateImportance), the read gate 1[I_state > τ2] and the factor gate ⊙ I_state, one
  // launch outside a gradient
  const { score, gate, gated } = scoreGate(p.state, stateSrc, m.tau2, true);
  const wv = opts.values === "notes" ? null : p.v.w;
  const { out: attn, weights } = opts.weights ? readPoolAttention(h, p.q.w, [read], p.k.w, wv, true) : { out: crossTokenValues(p, h, read, opts.values), weights: undefined };
  return { attn, scale: gated!, score, gate, weights };
}

/**
 * crossTokenRead's read alone: Attn(h W_q, notes W_k, notes W_v) [B, L, S] (with values "notes":
 * before W_v), for a caller that has the gate's factor already (the layer's rmsNormScores).
 */
export function crossTokenValues(p: CrossTokenParams, h: Tensor, read: PoolRead, values: ReadValues = "projected"): Tensor {
  return readPoolAttention(h, p.q.w, [read], p.k.w, values === "notes" ? null : p.v.w);
}

/**
 * Eq. 7/11: c_lay = Attn(h W_q, notes W_k, notes W_v) over the notes held at t in the pools of the
 * g layers before this one (their slots side by side: g·P keys). We exclude the layer's own pool,
 * which cross-token attention already reads, so the two reads carry different information.
 * `values: "notes"` returns the read before W_v (see ReadValues).
 */
export function crossLayerAttention(p: CrossLayerParams, h: Tensor, reads: readonly PoolRead[], opts: { values?: ReadValues } = {}): Tensor {
  return readPoolAttention(h, p.q.w, reads, p.k.w, opts.values === "notes" ? null : p.v.w);
}
