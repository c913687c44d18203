/**
 * RMSNorm over the last axis, with or without a gain (rmsNormalize), on fused primitives with their
 * own VJPs (`rmsNorm`, `rmsNormGrad`, and the multi-output `rmsNormGradW` where the gain wants a
 * gradient), and the check of the gain that rmsNormScores (linear-fused.ts) shares.
 */
import { bind, bindMulti, definePrimitive, noSecondOrder } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, mul, rsqrt, square } from "./elementwise.ts";
import { lastAxisNonEmpty, needF32, rowGradShape } from "./nn-checks.ts";
import { mean, sumTo } from "./reduce.ts";

/** RMSNorm's gain: f32 [n], n = x's last axis (not merely broadcastable: [1] or [L, n] is a mistake). */
export function checkGain(op: string, x: Tensor, w: Tensor): void {
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
