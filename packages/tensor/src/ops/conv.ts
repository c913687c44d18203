/**
 * The causal depthwise conv1d as fused primitives with their VJPs (`conv1dCausal` and its two
 * backward kernels, adjoints of each other), with an optional carried prefix, and
 * conv1dCausalSilu: the conv with its bias and SiLU in one launch.
 */
import { bind, definePrimitive, primitive } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, silu, zeros } from "./elementwise.ts";
import { concat, sliceAxis } from "./movement.ts";
import { needF32 } from "./nn-checks.ts";
import { sumTo } from "./reduce.ts";

function convShapes(op: string, x: Tensor, w: Tensor): void {
  needF32(op, x, w);
  if (x.rank !== 3 || w.rank !== 2 || w.shape[0] !== x.shape[2] || w.shape[1] < 1) {
    throw new ShapeError(`${op}: expects x [B, L, C] and w [C, K], got ${showShape(x.shape)} and ${showShape(w.shape)}`);
  }
}

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
 * Causal depthwise 1-D convolution over the sequence axis: x [B, L, C], w [C, K],
 * y[b, t, c] = Σ_k w[c, k] · x[b, t − K + 1 + k, c], with zeros before the start, or with the
 * K − 1 inputs before it from `prefix` [B, K − 1, C] (a carried state: the same numbers as the
 * conv of concat([prefix, x], 1) without its first K − 1 outputs, computed without that copy).
 */
export function conv1dCausal(x: Tensor, w: Tensor, prefix?: Tensor): Tensor {
  return bind("conv1dCausal", prefix ? [x, w, prefix] : [x, w], {});
}
