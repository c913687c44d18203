/**
 * ECLMF, the Expected Cross-Layer Memory Fidelity (Eq. 24/25): how much of layer l's
 * representation survives, linearly, G layers up.
 *
 * For one pair of layers, with X = R_l and Y = R_{l+G} the representations of the same B·L
 * positions (rows) at the two depths, [B·L, d] each:
 *
 *   W* = argmin_W ‖Y − XW‖²_F + λ‖W‖²_F = (XᵀX + λI)⁻¹ XᵀY               (Eq. 24, ridge, λ = 1e-4)
 *   F(l → l + G) = 1 − ‖Y − XW*‖_F / (‖X‖_F + 1e-6)                       (Eq. 25)
 *
 * and ECLMF(G) is the mean of F(l → l + G) over every start layer l = 0 … n − G.
 *
 * Our choices, where the paper leaves them open:
 * - R_0 is the embedded input and R_l (l = 1 … n) the residual stream after layer l, before the
 *   final norm: n + 1 representations, so a model of n layers has n + 1 − G pairs at gap G.
 *   A gap with no pair (G > n) is skipped and listed in `skipped`, not averaged as 0.
 * - No intercept and no centring: the formula as written. The normaliser is ‖X‖_F, as in the
 *   paper (not ‖Y‖_F), so F is 1 for a perfect linear fit and 1 − ‖Y‖/‖X‖ when nothing of Y is
 *   predictable from X (W* → 0), which can be negative when the stream grows with depth.
 * - The solve runs on the host in float64 (Cholesky of the d × d system): a float32 Gram matrix
 *   of B·L rows would swamp λ = 1e-4.
 */
import { disposeTree, noGrad, type Tensor } from "@memmamba/tensor";
import { forward, type LMParams } from "../model.ts";
import { frobenius, ridge } from "./linalg.ts";

/** The paper's ridge λ. */
export const ECLMF_LAMBDA = 1e-4;
/** The paper's gaps G. */
export const ECLMF_GAPS: readonly number[] = [2, 5, 10];

/**
 * Eq. 24/25 for one pair: X, Y [n, d] (row-major host arrays, n rows) →
 * 1 − ‖Y − XW*‖_F / (‖X‖_F + 1e-6) with W* = (XᵀX + λI)⁻¹XᵀY. Also returns W* and the residual.
 */
export function crossLayerFidelity(
  X: ArrayLike<number>, Y: ArrayLike<number>, rows: number, d: number, lambda: number = ECLMF_LAMBDA,
): { score: number; residual: number; normX: number; W: Float64Array } {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(d) || d < 1) throw new RangeError(`crossLayerFidelity: bad sizes ${rows} × ${d}`);
  const q = Y.length / rows;
  if (!Number.isInteger(q) || q < 1) throw new RangeError(`crossLayerFidelity: Y has ${Y.length} values, not a multiple of ${rows} rows`);
  const { W, residual } = ridge(X, Y, rows, d, q, lambda);
  const normX = frobenius(X);
  return { score: 1 - residual / (normX + 1e-6), residual, normX, W };
}

/** Options of `eclmf`. */
export interface EclmfOptions {
  /** Gaps G (default 2, 5, 10). */
  gaps?: readonly number[];
  /** Ridge λ (default 1e-4). */
  lambda?: number;
}

/** What `eclmf` returns: the ECLMF value of each gap and the layer pairs behind it. */
export interface EclmfResult {
  /** The ridge λ used. */
  lambda: number;
  /** One entry per gap that has at least one pair of layers. */
  gaps: { gap: number; value: number; pairs: { from: number; to: number; score: number }[] }[];
  /** Gaps larger than the depth, with why. */
  skipped: { gap: number; reason: string }[];
}

/**
 * ECLMF over given representations R_0 … R_n, each [rows, d] (row-major host arrays): for each
 * gap G, the mean of Eq. 25 over the pairs (l, l + G).
 */
export function eclmfFromStates(reps: readonly ArrayLike<number>[], rows: number, d: number, opts: EclmfOptions = {}): EclmfResult {
  const gaps = opts.gaps ?? ECLMF_GAPS;
  const lambda = opts.lambda ?? ECLMF_LAMBDA;
  for (const r of reps) if (r.length !== rows * d) throw new RangeError(`eclmf: a representation has ${r.length} values, expected ${rows} × ${d}`);
  const out: EclmfResult = { lambda, gaps: [], skipped: [] };
  const depth = reps.length - 1;
  for (const gap of gaps) {
    if (!Number.isInteger(gap) || gap < 1) throw new RangeError(`eclmf: a gap must be a positive integer, got ${gap}`);
    if (gap > depth) {
      out.skipped.push({ gap, reason: `gap ${gap} exceeds the depth: ${reps.length} representations (embedding + ${depth} layers) hold no pair ${gap} apart` });
      continue;
    }
    const pairs: { from: number; to: number; score: number }[] = [];
    for (let l = 0; l + gap <= depth; l++) pairs.push({ from: l, to: l + gap, score: crossLayerFidelity(reps[l], reps[l + gap], rows, d, lambda).score });
    out.gaps.push({ gap, value: pairs.reduce((s, p) => s + p.score, 0) / pairs.length, pairs });
  }
  return out;
}

/**
 * The representations the metrics read: the embedded tokens and the residual stream after each
 * layer, R_0 … R_n, as host float32 arrays [B·L, d] (rows = positions of every sequence).
 */
export async function layerRepresentations(params: LMParams, tokens: Tensor): Promise<Float32Array[]> {
  const r = noGrad(() => forward(params, tokens, { hidden: true }));
  try {
    return await Promise.all(r.hidden!.map((h) => h.data() as Promise<Float32Array>));
  } finally {
    disposeTree(r);
  }
}

/** ECLMF (Eq. 24/25) of a model (memmamba, mamba or transformer) on tokens i32 [B, L]. */
export async function eclmf(params: LMParams, tokens: Tensor, opts: EclmfOptions = {}): Promise<EclmfResult> {
  const reps = await layerRepresentations(params, tokens);
  return eclmfFromStates(reps, tokens.shape[0] * tokens.shape[1], params.config.dModel, opts);
}
