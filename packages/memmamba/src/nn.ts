/**
 * Small building blocks shared by the layers: a dense layer and RMSNorm. Parameters are plain
 * objects of tensors; a dense weight is [in, out] (y = x @ w + b), as in @memmamba/tensor's init.
 */
import {
  add, concat, gt, init, isRecording, linearSigmoid, linearSigmoidGate, matmul, mul, noGrad, ones, type random, reshape, rmsNormalize as tensorRmsNormalize, sigmoid, sliceAxis, zeros,
  type Tensor,
} from "@memmamba/tensor";

/** A PRNG key of @memmamba/tensor's `random` (Philox), as the init functions take it. */
export type Key = random.Key;

/** A dense layer: w [in, out], optional b [out]. */
export interface Linear {
  /** The weight [in, out]. */
  w: Tensor;
  /** The bias [out], where the layer has one. */
  b?: Tensor;
}

/** y = x @ w + b over the last axis of x (any leading axes). */
export function linear(p: Linear, x: Tensor): Tensor {
  const y = matmul(x, p.w);
  return p.b ? add(y, p.b) : y;
}

/** A width argument of an initialiser: a positive integer, else an error naming the function and the argument. */
function checkDim(fn: string, name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new RangeError(`${fn}: ${name} must be a positive integer, got ${typeof v === "number" ? v : JSON.stringify(v)}`);
}

/** nn.Linear's default init (U(±1/√in) for w and b). */
export function initLinear(key: Key, inDim: number, outDim: number, bias = true): Linear {
  checkDim("initLinear", "inDim", inDim);
  checkDim("initLinear", "outDim", outDim);
  return bias ? init.linear(key, inDim, outDim) : init.linear(key, inDim, outDim, { bias: false });
}

/** RMSNorm's parameters. */
export interface RMSNorm {
  /** The per-feature gain [d], initialised to 1. */
  weight: Tensor;
}

/** RMSNorm over `d` features, its gain initialised to ones. */
export function initRMSNorm(d: number): RMSNorm {
  checkDim("initRMSNorm", "d", d);
  return { weight: ones([d]) };
}

/**
 * RMSNorm: x / √(mean(x²) + eps) ⊙ weight, over the last axis: the gain in the tensor library's
 * one fused row pass (the same numbers as a separate mul, without its extra launch over [B, L, d]).
 */
export function rmsNorm(p: RMSNorm, x: Tensor, eps: number): Tensor {
  return tensorRmsNormalize(x, eps, p.weight);
}

/** x / √(mean(x²) + eps) over the last axis, without a weight (where a projection follows anyway): the tensor library's fused op. */
export function rmsNormalize(x: Tensor, eps: number): Tensor {
  return tensorRmsNormalize(x, eps);
}

/**
 * An importance scorer d → 1: w like nn.Linear, b = 0, so that at initialisation the scores of
 * unit-RMS inputs spread around σ(0) = 0.5 whatever the seed (a random bias would put nearly every
 * token on the same side of a threshold of 0.5).
 */
export function initScorer(key: Key, d: number): Linear {
  return { w: init.linear(key, d, 1, { bias: false }).w, b: zeros([1]) };
}

/** x [..., d] · w [d] + b → [...]: a scalar score per position (the importance scorers). */
export function scoreLinear(p: Linear, x: Tensor): Tensor {
  const y = linear(p, x);
  return reshape(y, y.shape.slice(0, -1));
}

/**
 * σ(x · w + b) [..., d] → [...] of a scorer: one launch (linearSigmoid) where it has its bias, the
 * same numbers as sigmoid(scoreLinear(p, x)).
 */
export function scoreSigmoid(p: Linear, x: Tensor): Tensor {
  return fusedScorer(p, x) ? linearSigmoid(x, p.w, reshape(p.b!, [1])) : sigmoid(scoreLinear(p, x));
}

function fusedScorer(p: Linear, x: Tensor): boolean {
  return !!p.b && x.rank >= 2 && p.w.rank === 2 && p.w.shape[1] === 1 && p.b.size === 1;
}

/** A scorer's score, its gate 1[score > tau] (no gradient) and, when asked, gate ⊙ score. */
export interface GatedScore {
  score: Tensor;
  gate: Tensor;
  gated?: Tensor;
}

/**
 * scoreSigmoid with its threshold test: outside a recorded gradient one launch for all three
 * (linearSigmoidGate), under one the ops (score, a compare under noGrad, and the product only
 * where `gated` asks for it). The same numbers either way.
 */
export function scoreGate(p: Linear, x: Tensor, tau: number, gated: boolean): GatedScore {
  if (!isRecording() && fusedScorer(p, x)) {
    const [score, gate, g] = linearSigmoidGate(x, p.w, reshape(p.b!, [1]), tau);
    return { score, gate, gated: g };
  }
  const score = scoreSigmoid(p, x);
  const gate = noGrad(() => gt(score, tau));
  return { score, gate, gated: gated ? mul(gate, score) : undefined };
}

/**
 * The next carried conv inputs: the last prefix.shape[1] steps of [prefix; x] along axis 1
 * (prefix [B, K − 1, C], x [B, L, C]): x's own tail when L ≥ K − 1, without the concat.
 */
export function carriedTail(prefix: Tensor, x: Tensor): Tensor {
  const keep = prefix.shape[1], L = x.shape[1];
  return L >= keep ? sliceAxis(x, 1, L - keep) : sliceAxis(concat([prefix, x], 1), 1, L);
}

/** x [..., R, C] with each row multiplied by its factor s [..., R] (a read gate, a note's I_token). */
export function scaleRows(x: Tensor, s: Tensor): Tensor {
  return mul(x, reshape(s, [...s.shape, 1]));
}
