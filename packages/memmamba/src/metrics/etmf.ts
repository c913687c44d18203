/**
 * ETMF, the Expected Token Memory Fidelity (Eq. 21): how well an earlier token can be
 * reconstructed, through the tied embeddings, from the state of a later position.
 *
 * For a sequence x_0 … x_{L−1} with tied embeddings E [V, d], take the vector the head reads at
 * position j,
 *
 *   h̃_j = RMSNorm_f(x^{(ℓ)}_j)      (x^{(ℓ)} the residual stream after layer ℓ; ℓ = n by default,
 *                                      so h̃_j E ᵀ are the model's logits at j)
 *
 * reconstruct an embedding from it through E,
 *
 *   soft   (default)  ê_j = softmax(h̃_j Eᵀ / T) E   the expected embedding under the head's
 *                                                  distribution at j (T = 1)
 *   direct            ê_j = h̃_j                    the state itself, read in embedding space
 *
 * and score token i from position j = i + Δ by the cosine with its embedding:
 *
 *   ETMF(Δ) = 1 / (B (L − Δ)) · Σ_b Σ_{i=0}^{L−1−Δ} cos(ê_{b, i+Δ}, E[x_{b, i}])          (Eq. 21)
 *   ETMF    = the mean of ETMF(Δ) over the distances Δ ∈ 𝒟 with Δ < L
 *
 * (cos(a, b) = a·b / (‖a‖ ‖b‖), taken as 0 when either vector is 0).
 *
 * Our choices, where the paper leaves them open: the paper defines ETMF as the expected cosine
 * similarity between a token and its reconstruction from a later state through the tied
 * embeddings, without fixing the reconstruction or the pairs. We reconstruct softly (the
 * reconstruction a byte model can make: a distribution over the vocabulary mapped back through
 * E), offer the direct reading as an option, average uniformly over all pairs at each distance,
 * and average the distances with equal weight (default 𝒟 = {1, 4, 16, 64, 256}). Distances not
 * below L are skipped and listed. `layer` reads an inner layer's stream through the final norm
 * (a logit lens), which measures the horizontal fidelity within that layer.
 */
import { disposeTree, gather, matmul, mul, noGrad, softmax, tidy, type Tensor } from "@memmamba/tensor";
import { forward, type LMParams } from "../model.ts";
import { rmsNorm } from "../nn.ts";

/** The default distances Δ. */
export const ETMF_DISTANCES: readonly number[] = [1, 4, 16, 64, 256];

/** How a state becomes a token embedding: a softmax over the vocabulary ("soft") or the state itself ("direct"). */
export type EtmfReconstruction = "soft" | "direct";

/** Options of `etmfFromStates`. */
export interface EtmfOptions {
  /** Distances Δ = j − i ≥ 0 (default 1, 4, 16, 64, 256). */
  distances?: readonly number[];
  /** How a state becomes an embedding (default "soft"). */
  reconstruct?: EtmfReconstruction;
  /** Softmax temperature T of the soft reconstruction (default 1). */
  temperature?: number;
}

/** Options of `etmf` on a model. */
export interface EtmfModelOptions extends EtmfOptions {
  /** Which residual stream to read (0 = the embedding, n = after the last layer; default n). */
  layer?: number;
}

/** What `etmf` returns: the value, and the per-distance values behind it. */
export interface EtmfResult {
  /** ETMF: the mean of the per-distance values. NaN when no distance had a pair. */
  value: number;
  /** The reconstruction used. */
  reconstruct: EtmfReconstruction;
  /** Per distance Δ: the mean similarity and how many pairs it averages. */
  distances: { distance: number; value: number; pairs: number }[];
  /** Distances with no pair (longer than the sequence), with why. */
  skipped: { distance: number; reason: string }[];
}

/**
 * Eq. 21's reconstruction: ê = softmax(h Eᵀ / T) E (soft) or h (direct), for h [B, L, d] and
 * E [V, d] → [B, L, d].
 */
export function tokenReconstruction(E: Tensor, hidden: Tensor, reconstruct: EtmfReconstruction = "soft", temperature = 1): Tensor {
  if (reconstruct === "direct") return hidden;
  if (!(temperature > 0)) throw new RangeError(`etmf: the temperature must be positive, got ${temperature}`);
  return tidy(() => matmul(softmax(mul(matmul(hidden, E, { transB: true }), 1 / temperature)), E));
}

/**
 * Eq. 21 from given states: E [V, d] the tied embeddings, hidden [B, L, d] the states the head
 * reads (h̃), tokens i32 [B, L]. The cosines are taken on the host in float64.
 */
export async function etmfFromStates(E: Tensor, hidden: Tensor, tokens: Tensor, opts: EtmfOptions = {}): Promise<EtmfResult> {
  const reconstruct = opts.reconstruct ?? "soft";
  const distances = opts.distances ?? ETMF_DISTANCES;
  if (hidden.rank !== 3 || E.rank !== 2 || hidden.shape[2] !== E.shape[1]) {
    throw new Error(`etmf: expects E [V, d] and hidden [B, L, d], got E [${E.shape}] and hidden [${hidden.shape}]`);
  }
  if (tokens.dtype !== "i32" || tokens.rank !== 2 || tokens.shape[0] !== hidden.shape[0] || tokens.shape[1] !== hidden.shape[1]) {
    throw new Error(`etmf: tokens must be i32 [${hidden.shape[0]}, ${hidden.shape[1]}], got ${tokens.dtype} [${tokens.shape}]`);
  }
  const [B, L, d] = hidden.shape;
  // (the direct reading passes `hidden` through untouched: it stays the caller's)
  const recT = reconstruct === "direct" ? hidden : noGrad(() => tokenReconstruction(E, hidden, reconstruct, opts.temperature ?? 1));
  const targetT = noGrad(() => gather(E, tokens));
  let rec: Float32Array, target: Float32Array;
  try {
    [rec, target] = (await Promise.all([recT.data(), targetT.data()])) as [Float32Array, Float32Array];
  } finally {
    if (recT !== hidden) recT.dispose();
    targetT.dispose();
  }
  const norm = (a: Float32Array): Float64Array => {
    const n = new Float64Array(B * L);
    for (let p = 0; p < B * L; p++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[p * d + k] * a[p * d + k];
      n[p] = Math.sqrt(s);
    }
    return n;
  };
  const nRec = norm(rec), nTarget = norm(target);
  const out: EtmfResult = { value: NaN, reconstruct, distances: [], skipped: [] };
  for (const delta of distances) {
    if (!Number.isInteger(delta) || delta < 0) throw new RangeError(`etmf: a distance must be a non-negative integer, got ${delta}`);
    if (delta >= L) {
      out.skipped.push({ distance: delta, reason: `distance ${delta} needs a sequence longer than ${L}` });
      continue;
    }
    let sum = 0, pairs = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i + delta < L; i++) {
        const pi = b * L + i, pj = pi + delta;
        const den = nRec[pj] * nTarget[pi];
        let dot = 0;
        if (den > 0) for (let k = 0; k < d; k++) dot += rec[pj * d + k] * target[pi * d + k];
        sum += den > 0 ? dot / den : 0;
        pairs++;
      }
    }
    out.distances.push({ distance: delta, value: sum / pairs, pairs });
  }
  if (out.distances.length) out.value = out.distances.reduce((s, x) => s + x.value, 0) / out.distances.length;
  return out;
}

/** ETMF (Eq. 21) of a model (memmamba, mamba or transformer) on tokens i32 [B, L]. */
export async function etmf(params: LMParams, tokens: Tensor, opts: EtmfModelOptions = {}): Promise<EtmfResult> {
  const n = params.config.nLayers;
  const layer = opts.layer ?? n;
  if (!Number.isInteger(layer) || layer < 0 || layer > n) throw new RangeError(`etmf: layer must be an integer in [0, ${n}], got ${layer}`);
  const h = noGrad(() =>
    tidy(() => {
      const r = forward(params, tokens, { hidden: true });
      return rmsNorm(params.norm, r.hidden![layer], params.config.normEps);
    })
  );
  try {
    return await etmfFromStates(params.embed, h, tokens, opts);
  } finally {
    disposeTree(h);
  }
}
