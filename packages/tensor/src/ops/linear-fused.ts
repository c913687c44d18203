/**
 * Linear layers fused with their activation, each with its own VJP: linearSigmoid (a one-output
 * scorer), linearSoftplus (Mamba's Δ), and built on them the gated scorers linearSigmoidGate and
 * rmsNormScores (RMSNorm with two gated scorers of its output).
 */
import { bind, bindMulti, definePrimitive, primitive } from "../dispatch.ts";
import { isRecording } from "../autodiff.ts";
import { getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, gt, mul, softplus } from "./elementwise.ts";
import { matmul } from "./linalg.ts";
import { reshape } from "./movement.ts";
import { needF32 } from "./nn-checks.ts";
import { sumTo } from "./reduce.ts";
import { checkGain, rmsNormalize } from "./rms-norm.ts";

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
