/**
 * Fused primitives for neural networks, each with its own VJP: softmax and logsumexp over the
 * last axis, cross-entropy with integer targets, causal depthwise conv1d, and the selective scan
 * h_t = a_t ⊙ h_{t-1} + b_t.
 */
import { bind, bindMulti, definePrimitive, noSecondOrder, primitive } from "../dispatch.ts";
import { isRecording } from "../autodiff.ts";
import { getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, exp, gt, mul, rsqrt, silu, softplus, square, sub, zeros } from "./elementwise.ts";
import { matmul } from "./linalg.ts";
import { concat, reshape, sliceAxis } from "./movement.ts";
import { mean, sum, sumTo } from "./reduce.ts";

function needF32(op: string, ...xs: Tensor[]): void {
  for (const x of xs) if (x.dtype !== "f32") throw new ShapeError(`${op}: expects f32, got ${x.dtype} ${showShape(x.shape)}`);
}
function lastAxisNonEmpty(op: string, x: Tensor): void {
  if (x.rank < 1 || x.shape[x.rank - 1] === 0) throw new ShapeError(`${op}: needs a non-empty last axis, got ${showShape(x.shape)}`);
}

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

/** The shape rule of a row VJP primitive [g, a]: two f32 tensors of one shape (a named `aName`). */
function rowGradShape(op: string, aName: string) {
  return ([g, a]: readonly Tensor[]) => {
    needF32(op, g, a);
    if (!sameShape(g.shape, a.shape)) throw new ShapeError(`${op}: g ${showShape(g.shape)} and ${aName} ${showShape(a.shape)} must have one shape`);
    return { shape: [...a.shape], dtype: "f32" as const };
  };
}

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

/** RMSNorm's gain: f32 [n], n = x's last axis (not merely broadcastable: [1] or [L, n] is a mistake). */
function checkGain(op: string, x: Tensor, w: Tensor): void {
  needF32(op, w);
  if (w.rank !== 1 || x.rank < 1 || w.shape[0] !== x.shape[x.rank - 1]) {
    throw new ShapeError(`${op}: the gain ${showShape(w.shape)} must be [n] with n = x's last axis; x is ${showShape(x.shape)}`);
  }
}

definePrimitive("rmsNorm", {
  shape: (ins, p) => {
    const [x, w] = ins;
    if (ins.length < 1 || ins.length > 2) throw new ShapeError(`rmsNorm: expected inputs [x] or [x, gain], got ${ins.length}`);
    needF32("rmsNorm", x);
    lastAxisNonEmpty("rmsNorm", x);
    if (!(p.eps >= 0)) throw new ShapeError(`rmsNorm: eps must be a number ≥ 0, got ${p.eps}`);
    if (w !== undefined) checkGain("rmsNorm", x, w);
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: (ins) => (ins.length === 2 ? 5 : 4) * ins[0].size,
  vjp: (g, [x, w], _y, p, needs) => {
    if (w === undefined) return [bind("rmsNormGrad", [g, x], { eps: p.eps })];
    // The VJP of the composite mul(rmsNormalize(x), w): mul's VJP then rmsNorm's, so the
    // gradients are those of the two launches bit for bit (on the CPU kernels). x̂ =
    // rmsNormalize(x) is recomputed instead of kept alive on the tape from the forward.
    const nx = needs?.[0] ?? true, nw = needs?.[1] ?? true;
    let dx: Tensor | null = null, dw: Tensor | null = null;
    // dw needed: one row pass gives dx and g ⊙ x̂ together (rmsNormGradW), and dw is its sum
    // over the leading axes, 2 launches where the ops below take 5 (3 for dw alone; dx alone
    // keeps its 2 below, which write no [.., n] tensor it would throw away). Where the backend
    // prefers rmsNorm's composite (wasm: its kernels for it are scalar TS passes) or has no
    // multi-output launch, the ops below.
    if (nw && !getBackend().prefersComposite?.("rmsNorm")) {
      const like = { shape: [...x.shape], dtype: "f32" as const };
      const outs = bindMulti("rmsNormGradW", [g, x, w], [like, like], { eps: p.eps });
      if (outs) {
        const [d, gx] = outs;
        dw = sumTo(gx, w.shape); // the same reduction as below: the same bits
        if (dw !== gx) gx.dispose();
        if (nx) return [d, dw];
        d.dispose();
        return [null, dw];
      }
    }
    if (nx) {
      const gw = mul(g, w);
      dx = bind("rmsNormGrad", [gw, x], { eps: p.eps });
      gw.dispose(); // dead now: freed at once, not at the end of the backward
    }
    if (nw) {
      const xn = bind("rmsNorm", [x], { eps: p.eps });
      const gx = mul(g, xn);
      xn.dispose();
      dw = sumTo(gx, w.shape); // sums the leading axes; gx itself where x is one row [n]
      if (dw !== gx) gx.dispose();
    }
    return [dx, dw];
  },
});

definePrimitive("rmsNormGrad", {
  shape: rowGradShape("rmsNormGrad", "x"),
  flops: ([x]) => 8 * x.size,
  vjp: noSecondOrder("rmsNormGrad"),
});

/**
 * x / √(mean(x²) + eps) over the last axis, times the gain `weight` [n] where one is given
 * (RMSNorm; n = x's last axis): one row pass forward and one backward (`rmsNorm`, `rmsNormGrad`),
 * instead of about six launches each way, and the gain in the same pass (not a second launch
 * that reads and writes the whole tensor again). With the gain, the backward is one row pass
 * for dx and g ⊙ x̂ together (`rmsNormGradW`) and the gain's sum over the leading axes. The
 * result ((x · r) · w) and the gradients are rounded as the composite
 * mul(rmsNormalize(x, eps), weight) rounds them. Where the backend prefers the composite (wasm:
 * its SIMD kernels) it runs square · mean · add · rsqrt · mul, then mul by the gain.
 */
export function rmsNormalize(x: Tensor, eps: number, weight?: Tensor): Tensor {
  if (getBackend().prefersComposite?.("rmsNorm")) {
    if (weight !== undefined) checkGain("rmsNormalize", x, weight); // mul alone would broadcast [1] or [L, n]
    const y = mul(x, rsqrt(add(mean(square(x), -1, true), eps)));
    return weight === undefined ? y : mul(y, weight);
  }
  return bind("rmsNorm", weight === undefined ? [x] : [x, weight], { eps });
}

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

function convShapes(op: string, x: Tensor, w: Tensor): void {
  needF32(op, x, w);
  if (x.rank !== 3 || w.rank !== 2 || w.shape[0] !== x.shape[2] || w.shape[1] < 1) {
    throw new ShapeError(`${op}: expects x [B, L, C] and w [C, K], got ${showShape(x.shape)} and ${showShape(w.shape)}`);
  }
}

/**
 * The gradients of x, w and b of x·w + b given the cotangent gz of that sum ([..., n, c]): matmul's
 * VJP and the bias's sum (the tail the fused linear layers' VJPs share).
 */
function linearVjp(gz: Tensor, x: Tensor, w: Tensor, b: Tensor, needs?: readonly boolean[]): (Tensor | null)[] {
  const [dx, dw] = needs?.[0] === false && needs?.[1] === false
    ? [null, null]
    : primitive("matmul").vjp(gz, [x, w], gz, { transA: false, transB: false }, [needs?.[0] ?? true, needs?.[1] ?? true]);
  return [dx, dw, needs?.[2] === false ? null : sumTo(gz, b.shape)];
}

definePrimitive("linearSigmoid", {
  shape: ([x, w, b]) => {
    needF32("linearSigmoid", x, w, b);
    const d = x.rank >= 2 ? x.shape[x.rank - 1] : -1;
    if (x.rank < 2 || !sameShape(w.shape, [d, 1]) || !sameShape(b.shape, [1])) {
      throw new ShapeError(`linearSigmoid: expects x [..., n, d] (rank ≥ 2, as matmul), w [d, 1] and b [1], got ${showShape(x.shape)}, ${showShape(w.shape)} and ${showShape(b.shape)}`);
    }
    return { shape: x.shape.slice(0, -1), dtype: "f32" };
  },
  flops: ([x]) => 2 * x.size + 6 * (x.size / Math.max(1, x.shape[x.rank - 1])),
  // the VJPs of sigmoid, add and matmul in turn, op for op: the composite's gradients, bit for bit
  // (sigmoid's derivative reads only its output, which stands in for the pre-activation here).
  // Where x and w both want a gradient (a scorer in training), one multi-output launch
  // (linearSigmoidGrad: the CPU kernel with these bits, WebGPU's with dx's bits and dw, db summed
  // in another order) instead of five; the wasm backend runs the ops below (its SIMD matmuls).
  vjp: (g, [x, w, b], s, _p, needs) => {
    if ((needs?.[0] ?? true) && (needs?.[1] ?? true) && x.size > 0 && !getBackend().prefersComposite?.("linearSigmoidGrad")) {
      const d = w.shape[0];
      const outs = bindMulti("linearSigmoidGrad", [g, s, x, w], [{ shape: [...x.shape], dtype: "f32" }, { shape: [d, 1], dtype: "f32" }, { shape: [1], dtype: "f32" }], {});
      if (outs) {
        if (needs?.[2] !== false) return outs;
        outs[2].dispose();
        return [outs[0], outs[1], null];
      }
    }
    const [gz] = primitive("unary").vjp(g, [s], s, { op: "sigmoid" });
    return linearVjp(reshape(gz!, [...g.shape, 1]), x, w, b, needs);
  },
});

/** conv1dCausalSilu's bias: f32 [C] for x [B, L, C] (the composite path checks it too). */
function convSiluBias(x: Tensor, b: Tensor): void {
  needF32("conv1dCausalSilu", b);
  if (!sameShape(b.shape, [x.shape[2]])) throw new ShapeError(`conv1dCausalSilu: the bias must be [C] = [${x.shape[2]}] for x ${showShape(x.shape)}, got ${showShape(b.shape)}`);
}

definePrimitive("conv1dCausalSilu", {
  shape: ([x, w, b, prefix]) => {
    const { shape } = primitive("conv1dCausal").shape(prefix ? [x, w, prefix] : [x, w], {});
    convSiluBias(x, b);
    return { shape, dtype: "f32" };
  },
  flops: ([x, w]) => 2 * x.size * w.shape[1] + 7 * x.size,
  // the VJPs of silu, add and the conv in turn, op for op, with the pre-activation recomputed
  vjp: (g, [x, w, b, prefix], y, _p, needs) => {
    const convIns = prefix ? [x, w, prefix] : [x, w];
    const conv = bind("conv1dCausal", convIns, {});
    const pre = add(conv, b);
    const [gz] = primitive("unary").vjp(g, [pre], y, { op: "silu" });
    const convNeeds = prefix ? [needs?.[0] ?? true, needs?.[1] ?? true, needs?.[3] ?? true] : [needs?.[0] ?? true, needs?.[1] ?? true];
    const [dx, dw, dpre] = primitive("conv1dCausal").vjp(gz!, convIns, conv, {}, convNeeds);
    return [dx, dw, needs?.[2] === false ? null : sumTo(gz!, b.shape), prefix ? dpre : null];
  },
});

function linearSoftplusShapes(x: Tensor, w: Tensor, b: Tensor): void {
  needF32("linearSoftplus", x, w, b);
  const r = x.rank >= 2 ? x.shape[x.rank - 1] : -1;
  if (x.rank < 2 || w.rank !== 2 || w.shape[0] !== r || !sameShape(b.shape, [w.shape[1]])) {
    throw new ShapeError(`linearSoftplus: expects x [..., n, r] (rank ≥ 2, as matmul), w [r, c] and b [c], got ${showShape(x.shape)}, ${showShape(w.shape)} and ${showShape(b.shape)}`);
  }
}

definePrimitive("linearSoftplus", {
  shape: ([x, w, b]) => {
    linearSoftplusShapes(x, w, b);
    return { shape: [...x.shape.slice(0, -1), w.shape[1]], dtype: "f32" };
  },
  flops: ([x, w]) => (x.size / Math.max(1, x.shape[x.rank - 1])) * w.shape[1] * (2 * w.shape[0] + 9),
  // the VJPs of softplus, add and matmul in turn, op for op, with the pre-activation recomputed:
  // the composite's gradients (softplus's derivative reads its input, which the launch did not keep)
  vjp: (g, [x, w, b], y, _p, needs) => {
    const pre = add(matmul(x, w), b);
    const [gz] = primitive("unary").vjp(g, [pre], y, { op: "softplus" });
    return linearVjp(gz!, x, w, b, needs);
  },
});

definePrimitive("conv1dCausal", {
  shape: ([x, w, prefix]) => {
    convShapes("conv1dCausal", x, w);
    if (prefix) {
      const [B, , C] = x.shape;
      needF32("conv1dCausal", prefix);
      if (!sameShape(prefix.shape, [B, w.shape[1] - 1, C])) {
        throw new ShapeError(`conv1dCausal: the prefix must be [B, K − 1, C] = ${showShape([B, w.shape[1] - 1, C])} for x ${showShape(x.shape)} and w ${showShape(w.shape)}, got ${showShape(prefix.shape)}`);
      }
    }
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([x, w]) => 2 * x.size * w.shape[1],
  vjp: (g, [x, w, prefix], _y, _p, needs) => {
    if (!prefix) {
      return [
        needs?.[0] === false ? null : bind("conv1dCausalGradX", [g, w], {}),
        needs?.[1] === false ? null : bind("conv1dCausalGradW", [g, x], { k: w.shape[1] }),
      ];
    }
    // with a prefix the op is the conv of [prefix; x] without its first K − 1 outputs: the
    // gradients are those of that conv with g behind K − 1 zeros
    const K = w.shape[1], [B, , C] = x.shape;
    const gp = concat([zeros([B, K - 1, C]), g], 1);
    const dFull = needs?.[0] === false && needs?.[2] === false ? null : bind("conv1dCausalGradX", [gp, w], {});
    return [
      dFull && needs?.[0] !== false ? sliceAxis(dFull, 1, K - 1) : null,
      needs?.[1] === false ? null : bind("conv1dCausalGradW", [gp, concat([prefix, x], 1)], { k: K }),
      dFull && needs?.[2] !== false ? sliceAxis(dFull, 1, 0, K - 1) : null,
    ];
  },
});

// The two backward kernels of conv1dCausal. They are linear maps whose adjoints are each other
// and the forward conv; their VJPs complete the set so gradients of gradients work.
definePrimitive("conv1dCausalGradX", {
  shape: ([g, w]) => {
    convShapes("conv1dCausalGradX", g, w);
    return { shape: [...g.shape], dtype: "f32" };
  },
  flops: ([g, w]) => 2 * g.size * w.shape[1],
  vjp: (h, [g, w]) => [bind("conv1dCausal", [h, w], {}), bind("conv1dCausalGradW", [g, h], { k: w.shape[1] })],
});

definePrimitive("conv1dCausalGradW", {
  shape: ([g, x], p) => {
    const k = p.k;
    if (x.rank !== 3 || !sameShape(g.shape, x.shape)) throw new ShapeError(`conv1dCausalGradW: g ${showShape(g.shape)} and x ${showShape(x.shape)} must be equal [B, L, C]`);
    return { shape: [x.shape[2], k], dtype: "f32" };
  },
  flops: ([g], out) => 2 * g.size * out.shape[1],
  vjp: (h, [g, x]) => [bind("conv1dCausal", [x, h], {}), bind("conv1dCausalGradX", [g, h], {})],
});

function scanShapes(op: string, a: Tensor, b: Tensor, h0: Tensor): void {
  needF32(op, a, b, h0);
  if (a.rank !== 3 || !sameShape(a.shape, b.shape) || !sameShape(h0.shape, [a.shape[0], a.shape[2]])) {
    throw new ShapeError(`${op}: expects a, b [B, L, S] and h0 [B, S], got ${showShape(a.shape)}, ${showShape(b.shape)}, ${showShape(h0.shape)}`);
  }
}

definePrimitive("scan", {
  shape: ([a, b, h0]) => {
    scanShapes("scan", a, b, h0);
    return { shape: [...a.shape], dtype: "f32" };
  },
  flops: ([a]) => 2 * a.size,
  vjp: (g, [a, _b, h0], h) => {
    // adjoint λ_t = g_t + a_{t+1} λ_{t+1}: the reverse scan. Then ∂b_t = λ_t, ∂a_t = λ_t h_{t-1},
    // ∂h0 = a_0 λ_0.
    const lam = bind("scanReverse", [a, g], {});
    const L = a.shape[1];
    const h0r = reshape(h0, [h0.shape[0], 1, h0.shape[1]]);
    const hPrev = L > 1 ? concat([h0r, sliceAxis(h, 1, 0, L - 1)], 1) : h0r;
    const dh0 = reshape(mul(sliceAxis(a, 1, 0, 1), sliceAxis(lam, 1, 0, 1)), [...h0.shape]);
    return [mul(lam, hPrev), lam, dh0];
  },
});

definePrimitive("scanReverse", {
  shape: ([a, g]) => {
    needF32("scanReverse", a, g);
    if (a.rank !== 3 || !sameShape(a.shape, g.shape)) throw new ShapeError(`scanReverse: a ${showShape(a.shape)} and g ${showShape(g.shape)} must be equal [B, L, S]`);
    return { shape: [...a.shape], dtype: "f32" };
  },
  flops: ([a]) => 2 * a.size,
  vjp: (m, [a, g], lam) => {
    // λ = R(a) g is linear in g: its adjoint is the forward scan μ_t = a_t μ_{t-1} + m_t
    // (μ_{-1} = 0). a_t enters λ_{t-1} = g_{t-1} + a_t λ_t, so ∂a_t = μ_{t-1} λ_t (and ∂a_0 = 0).
    const B = a.shape[0], L = a.shape[1], S = a.shape[2];
    const zero = mul(sliceAxis(a, 1, 0, 1), 0);
    const mu = bind("scan", [a, m, reshape(zero, [B, S])], {});
    const muPrev = L > 1 ? concat([zero, sliceAxis(mu, 1, 0, L - 1)], 1) : zero;
    return [mul(muPrev, lam), mu];
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

/**
 * σ(x·w + b) for x [..., n, d] (rank ≥ 2), w [d, 1], b [1] → [..., n]: a one-output linear layer with its sigmoid,
 * one launch (the same numbers as sigmoid(matmul(x, w) + b) reshaped, on every backend).
 */
export function linearSigmoid(x: Tensor, w: Tensor, b: Tensor): Tensor {
  return bind("linearSigmoid", [x, w, b], {});
}

/**
 * A scorer and its gate: [s, m, m ⊙ s] with s = linearSigmoid(x, w, b) and m = 1 where s > tau,
 * else 0 (gt's f32 test) — the three ops' numbers. Outside a recorded gradient one launch where
 * the backend fuses it (WebGPU, the CPU reference); under one, or where the backend prefers the
 * ops (wasm: its SIMD matmul), the ops themselves, with s's gradient (m has none).
 */
export function linearSigmoidGate(x: Tensor, w: Tensor, b: Tensor, tau: number): [Tensor, Tensor, Tensor] {
  const ops = (): [Tensor, Tensor, Tensor] => {
    const s = linearSigmoid(x, w, b);
    const m = gt(s, tau); // (a compare: no gradient)
    return [s, m, mul(m, s)];
  };
  if (isRecording() || getBackend().prefersComposite?.("linearSigmoidGate") || x.size === 0) return ops();
  const spec = primitive("linearSigmoid").shape([x, w, b], {}); // linearSigmoid's checks and shape
  const outs = bindMulti("linearSigmoidGate", [x, w, b], [spec, spec, spec], { tau });
  return outs ? [outs[0], outs[1], outs[2]] : ops();
}

/** One scorer of rmsNormScores: σ(h·w + b) with w [d, 1], b [1], and its threshold. */
export interface GateScorer {
  /** The weight [d, 1]. */
  w: Tensor;
  /** The bias [1]. */
  b: Tensor;
  /** The gate opens where σ(h·w + b) > tau. */
  tau: number;
}

/**
 * RMSNorm with its gain and two gated scorers of its output: h = rmsNormalize(x, eps, gain), the
 * first scorer's score s1 and gate m1 and the second's gated score m2 ⊙ s2 (linearSigmoidGate's
 * outputs; MemMamba's Note Block pre-norm, its token scorer and write mark, and the state scorer
 * that scales the read). Outside a recorded gradient one launch where the backend fuses it (the
 * scorers take h from registers, not from another pass over it: WebGPU; the CPU reference, with
 * the ops' bits); under one, or where the backend prefers the ops (wasm), the ops themselves.
 */
export function rmsNormScores(x: Tensor, gain: Tensor, first: GateScorer, second: GateScorer, eps: number): { h: Tensor; score: Tensor; gate: Tensor; gated: Tensor } {
  const ops = () => {
    const h = rmsNormalize(x, eps, gain);
    const [score, gate, g1] = linearSigmoidGate(h, first.w, first.b, first.tau);
    const [s2, m2, gated] = linearSigmoidGate(h, second.w, second.b, second.tau);
    if (!isRecording()) for (const t of [g1, s2, m2]) t.dispose();
    return { h, score, gate, gated };
  };
  if (isRecording() || getBackend().prefersComposite?.("rmsNormScores") || x.size === 0) return ops();
  if (!(eps >= 0)) throw new ShapeError(`rmsNormScores: eps must be a number ≥ 0, got ${eps}`);
  checkGain("rmsNormScores", x, gain);
  // linearSigmoid's checks and shape, for each scorer of h (x's shape)
  const spec = primitive("linearSigmoid").shape([x, first.w, first.b], {});
  primitive("linearSigmoid").shape([x, second.w, second.b], {});
  const outs = bindMulti("rmsNormScores", [x, gain, first.w, first.b, second.w, second.b], [{ shape: [...x.shape], dtype: "f32" }, spec, spec, spec], { eps, tau1: first.tau, tau2: second.tau });
  return outs ? { h: outs[0], score: outs[1], gate: outs[2], gated: outs[3] } : ops();
}

/**
 * silu(conv1dCausal(x, w, prefix) + b) for x [B, L, C], w [C, K], b [C] (and the prefix as
 * conv1dCausal takes it): Mamba's causal conv with its bias and activation, one launch where the
 * backend has the kernel (WebGPU, the CPU reference), else the three ops (`prefersComposite`,
 * e.g. the wasm backend's SIMD kernels). The same numbers as the ops: bit for bit on the CPU, on a
 * GPU within the rounding of a contracted multiply-add. Its gradient recomputes the conv and the
 * add, so a caller that records a gradient anyway may prefer the ops (the Mamba block does).
 */
export function conv1dCausalSilu(x: Tensor, w: Tensor, b: Tensor, prefix?: Tensor): Tensor {
  if (getBackend().prefersComposite?.("conv1dCausalSilu")) {
    const y = conv1dCausal(x, w, prefix);
    convSiluBias(x, b);
    return silu(add(y, b));
  }
  return bind("conv1dCausalSilu", prefix ? [x, w, b, prefix] : [x, w, b], {});
}

/**
 * softplus(x·w + b) for x [..., n, r] (rank ≥ 2), w [r, c], b [c] → [..., n, c]: a linear layer
 * from a few inputs and its softplus (Mamba's Δ = softplus(dt·W_dt + b_dt)), one launch where the
 * backend has the kernel (WebGPU, the CPU reference), else the three ops (`prefersComposite`, e.g.
 * the wasm backend's SIMD kernels). The same numbers as softplus(add(matmul(x, w), b)): bit for bit
 * on the CPU; on a GPU up to the rounding of the sums' order. Its gradient recomputes x·w + b, so a
 * caller that records a gradient anyway may prefer the three ops (the Mamba block does).
 */
export function linearSoftplus(x: Tensor, w: Tensor, b: Tensor): Tensor {
  if (getBackend().prefersComposite?.("linearSoftplus")) {
    linearSoftplusShapes(x, w, b);
    return softplus(add(matmul(x, w), b));
  }
  return bind("linearSoftplus", [x, w, b], {});
}

/**
 * Causal depthwise 1-D convolution over the sequence axis: x [B, L, C], w [C, K],
 * y[b, t, c] = Σ_k w[c, k] · x[b, t − K + 1 + k, c], with zeros before the start, or with the
 * K − 1 inputs before it from `prefix` [B, K − 1, C] (a carried state: the same numbers as the
 * conv of concat([prefix, x], 1) without its first K − 1 outputs, computed without that copy).
 */
export function conv1dCausal(x: Tensor, w: Tensor, prefix?: Tensor): Tensor {
  return bind("conv1dCausal", prefix ? [x, w, prefix] : [x, w], {});
}

/**
 * The selective scan, a fused primitive: h_t = a_t ⊙ h_{t−1} + b_t along axis 1 of a, b [B, L, S],
 * from h0 [B, S]; returns every h_t [B, L, S]. Its VJP is the reverse scan of the adjoints.
 */
export function scan(a: Tensor, b: Tensor, h0: Tensor): Tensor {
  return bind("scan", [a, b, h0], {});
}
