/**
 * The selective scan h_t = a_t ⊙ h_{t-1} + b_t as a fused primitive (`scan`) whose VJP is the
 * reverse scan of the adjoints (`scanReverse`, whose own VJP is the forward scan).
 */
import { bind, definePrimitive } from "../dispatch.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { mul } from "./elementwise.ts";
import { concat, reshape, sliceAxis } from "./movement.ts";
import { needF32 } from "./nn-checks.ts";

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

/**
 * The selective scan, a fused primitive: h_t = a_t ⊙ h_{t−1} + b_t along axis 1 of a, b [B, L, S],
 * from h0 [B, S]; returns every h_t [B, L, S]. Its VJP is the reverse scan of the adjoints.
 */
export function scan(a: Tensor, b: Tensor, h0: Tensor): Tensor {
  return bind("scan", [a, b, h0], {});
}
