/**
 * Fused primitives over the last axis, each with its own VJP: softmax, the masked softmax of
 * attention, logsumexp (and log-softmax from it), and cross-entropy with integer targets.
 */
import { bind, definePrimitive, noSecondOrder } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { exp, mul, sub } from "./elementwise.ts";
import { reshape } from "./movement.ts";
import { lastAxisNonEmpty, needF32, rowGradShape } from "./nn-checks.ts";
import { sum } from "./reduce.ts";

definePrimitive("softmax", {
  shape: ([x]) => {
    needF32("softmax", x);
    lastAxisNonEmpty("softmax", x);
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([x]) => 6 * x.size,
  // dx = y ⊙ (g − Σ g⊙y): one row pass (softmaxGrad), or four launches where the backend prefers
  vjp: (g, _x, y) => [getBackend().prefersComposite?.("softmaxGrad") ? mul(y, sub(g, sum(mul(g, y), -1, true))) : bind("softmaxGrad", [g, y], {})],
});

definePrimitive("softmaxGrad", {
  shape: rowGradShape("softmaxGrad", "y"),
  flops: ([g]) => 4 * g.size,
  vjp: noSecondOrder("softmaxGrad"),
});

/** The shape rule of maskedSoftmax's inputs: f32 x and valid of one shape, a finite scale. */
function maskedShape(op: string, x: Tensor, valid: Tensor, scale: number): void {
  needF32(op, x, valid);
  lastAxisNonEmpty(op, x);
  if (!sameShape(x.shape, valid.shape)) throw new ShapeError(`${op}: x ${showShape(x.shape)} and valid ${showShape(valid.shape)} must have one shape`);
  if (!Number.isFinite(scale)) throw new ShapeError(`${op}: scale must be a finite number, got ${scale}`);
}

definePrimitive("maskedSoftmax", {
  shape: ([x, valid], p) => {
    maskedShape("maskedSoftmax", x, valid, p.scale);
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([x]) => 8 * x.size,
  // The saved output w stands in for the softmax output y of the composite's chain: with valid
  // 1/0, w = y·1 = y bit for bit on valid slots, and an invalid slot's terms are (g·0)·y = ±0 in
  // both (y is finite, or NaN in both) and its dx is 0 either way. No gradient to the mask
  // (null, as where's condition).
  vjp: (g, [, valid], w, p, needs) => [needs?.[0] === false ? null : bind("maskedSoftmaxGrad", [g, w, valid], { scale: p.scale }), null],
});

definePrimitive("maskedSoftmaxGrad", {
  shape: ([g, w, valid], p) => {
    maskedShape("maskedSoftmaxGrad", w, valid, p.scale);
    needF32("maskedSoftmaxGrad", g);
    if (!sameShape(g.shape, w.shape)) throw new ShapeError(`maskedSoftmaxGrad: g ${showShape(g.shape)} and w ${showShape(w.shape)} must have one shape`);
    return { shape: [...w.shape], dtype: "f32" };
  },
  flops: ([g]) => 6 * g.size,
  vjp: noSecondOrder("maskedSoftmaxGrad"),
});

definePrimitive("logsumexp", {
  shape: ([x]) => {
    needF32("logsumexp", x);
    lastAxisNonEmpty("logsumexp", x);
    return { shape: x.shape.slice(0, -1), dtype: "f32" };
  },
  flops: ([x]) => 6 * x.size,
  // dx = g ⊙ softmax(x) = g ⊙ exp(x − lse)
  vjp: (g, [x], y) => [mul(reshape(g, [...g.shape, 1]), exp(sub(x, reshape(y, [...y.shape, 1]))))],
});

definePrimitive("crossEntropy", {
  shape: ([logits, targets]) => {
    needF32("crossEntropy", logits);
    lastAxisNonEmpty("crossEntropy", logits);
    if (targets.dtype !== "i32") throw new ShapeError(`crossEntropy: targets must be i32, got ${targets.dtype} ${showShape(targets.shape)} (logits ${showShape(logits.shape)})`);
    if (!sameShape(targets.shape, logits.shape.slice(0, -1))) {
      throw new ShapeError(`crossEntropy: targets ${showShape(targets.shape)} must match logits ${showShape(logits.shape)} without its last axis`);
    }
    return { shape: [...targets.shape], dtype: "f32" };
  },
  flops: ([x]) => 6 * x.size,
  // d logits = g ⊙ (softmax(logits) − onehot(target))
  vjp: (g, [logits, targets]) => {
    const p = softmax(logits);
    const oh = bind("oneHot", [targets], { depth: logits.shape[logits.rank - 1] });
    return [mul(reshape(g, [...g.shape, 1]), sub(p, oh)), null];
  },
});

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  return bind("softmax", [x], {});
}

/**
 * Masked softmax over the last axis, one row pass (and one for its VJP) instead of four launches
 * each way:
 *
 *   w = softmax(where(valid ≠ 0, scale · x, −1e9)) ⊙ valid
 *
 * with the composite's arithmetic in the composite's order (scale · x rounded to f32, the softmax
 * as the `softmax` kernels compute it, then the product with valid), so on each backend the bits
 * are those of `mul(softmax(where(valid, mul(x, scale), -1e9)), valid)`. x and valid f32 of one
 * shape with a non-empty last axis; `valid` is a mask of 1 (attend) and 0 (masked out). A row with
 * no valid slot gives zeros (its softmax is uniform over −1e9 logits, times 0) and a zero
 * gradient, never NaN.
 *
 * Gradient: dx = scale · [valid ≠ 0] · w ⊙ (g⊙valid − Σ (g⊙valid)⊙w) per row, which is the
 * composite's chain (mul, softmaxGrad, where, mul) bit for bit while valid holds only 0 and 1:
 * the VJP uses the saved w for the softmax output, equal to it where valid is 1 (another nonzero
 * value would scale w and so the gradient). No gradient flows to `valid` (a mask, as where's
 * condition; the composite would give it g ⊙ softmax). No second order (the VJP is a primitive
 * without its own VJP).
 */
export function maskedSoftmax(x: Tensor, valid: Tensor, scale: number): Tensor {
  return bind("maskedSoftmax", [x, valid], { scale });
}

/** log Σ exp over the last axis (removed), computed stably. */
export function logsumexp(x: Tensor): Tensor {
  return bind("logsumexp", [x], {});
}

/** log-softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  const lse = logsumexp(x);
  return sub(x, reshape(lse, [...lse.shape, 1]));
}

/**
 * Per-position cross-entropy −log softmax(logits)[target] (no reduction). A target outside
 * [0, vocab) is an error naming it and its position.
 */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return bind("crossEntropy", [logits, targets], {});
}
