/**
 * The selective scan of a diagonal state space model (Mamba's S6 core), as one function:
 *
 *   h_t = exp(Δ_t ⊙ A) ⊙ h_{t−1} + (Δ_t ⊙ x_t) ⊗ B_t        h_t ∈ R^{Di×N}
 *   y_t = h_t · C_t                                          y_t ∈ R^{Di}
 *
 * x, delta [B, L, Di]; A [Di, N]; Bm, C [B, L, N]; h0 [B, Di, N]. Returns y [B, L, Di] and, on
 * request, the last state h_L [B, Di, N] (to carry into the next chunk or a recurrent step).
 */
import type { Tensor } from "../tensor.ts";
import { bind, bindMulti, definePrimitive, primitive } from "../dispatch.ts";
import { engine, getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import { add, exp, mul, silu, zeros } from "./elementwise.ts";
import { reshape, sliceAxis } from "./movement.ts";
import { sum, sumTo } from "./reduce.ts";
import { scan } from "./nn.ts";

/** What `selectiveScan` returns. */
export interface SelectiveScanResult {
  /** The outputs y_t = C_t · h_t + D · x_t, shaped like x. */
  y: Tensor;
  /** h_L, present when `withState` was asked for. */
  state?: Tensor;
}

function checkShapes(x: Tensor, delta: Tensor, A: Tensor, Bm: Tensor, C: Tensor, h0: Tensor): [number, number, number, number] {
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  const ok = x.rank === 3 && delta.rank === 3 && delta.shape.every((d, i) => d === x.shape[i]) &&
    A.rank === 2 && A.shape[0] === Di && Bm.rank === 3 && Bm.shape[0] === B && Bm.shape[1] === L && Bm.shape[2] === N &&
    C.rank === 3 && C.shape.every((d, i) => d === Bm.shape[i]) && h0.rank === 3 && h0.shape[0] === B && h0.shape[1] === Di && h0.shape[2] === N;
  if (!ok) {
    throw new ShapeError(
      `selectiveScan: expects x, delta [B, L, Di], A [Di, N], B, C [B, L, N], h0 [B, Di, N]; got x ${showShape(x.shape)}, delta ${showShape(delta.shape)}, A ${showShape(A.shape)}, B ${showShape(Bm.shape)}, C ${showShape(C.shape)}, h0 ${showShape(h0.shape)}`,
    );
  }
  return [B, L, Di, N];
}

const SCAN_FLOPS_PER_STATE = 9; // exp (counted 4) + 2 mul + add for h, mul + add for y

function scanSpec(op: string, ins: readonly Tensor[]): [number, number, number, number] {
  for (const t of ins) if (t.dtype !== "f32") throw new ShapeError(`${op}: expects f32 inputs, got ${t.dtype} ${showShape(t.shape)}`);
  return checkShapes(ins[0], ins[1], ins[2], ins[3], ins[4], ins[5]);
}

/**
 * Unpacks the flat output of selectiveScanGrad into the six input gradients (a copy each: only
 * those `needs` asks for, e.g. not dh0 of a constant zero initial state).
 */
function unpackGrads(packed: Tensor, ins: readonly Tensor[], needs?: readonly boolean[]): (Tensor | null)[] {
  let off = 0;
  return ins.slice(0, 6).map((t, k) => {
    const g = needs?.[k] === false ? null : reshape(sliceAxis(packed, 0, off, off + t.size), [...t.shape]);
    off += t.size;
    return g;
  });
}

definePrimitive("selectiveScan", {
  shape: (ins) => {
    const [B, L, Di] = scanSpec("selectiveScan", ins);
    return { shape: [B, L, Di], dtype: "f32" };
  },
  flops: ([x, , A]) => x.size * A.shape[1] * SCAN_FLOPS_PER_STATE,
  vjp: (gy, ins, _y, _p, needs) => {
    const [B, , Di, N] = checkShapes(ins[0], ins[1], ins[2], ins[3], ins[4], ins[5]);
    return unpackGrads(bind("selectiveScanGrad", [...ins, gy, zeros([B, Di, N])], {}), ins, needs);
  },
});

definePrimitive("selectiveScanState", {
  shape: (ins) => {
    const [B, , Di, N] = scanSpec("selectiveScanState", ins);
    return { shape: [B, Di, N], dtype: "f32" };
  },
  flops: ([x, , A]) => x.size * A.shape[1] * (SCAN_FLOPS_PER_STATE - 2),
  vjp: (ghL, ins, _y, _p, needs) => unpackGrads(bind("selectiveScanGrad", [...ins, zeros([...ins[0].shape]), ghL], {}), ins, needs),
});

// The backward kernel: recomputes the states and runs the adjoint recurrence. It has no VJP of
// its own (second-order gradients through the fused scan are not supported; the composite
// selectiveScanReference below has them).
definePrimitive("selectiveScanGrad", {
  shape: (ins) => {
    scanSpec("selectiveScanGrad", ins);
    let total = 0;
    for (const t of ins.slice(0, 6)) total += t.size;
    return { shape: [total], dtype: "f32" };
  },
  flops: ([x, , A]) => 3 * x.size * A.shape[1] * SCAN_FLOPS_PER_STATE,
  vjp: () => {
    throw new Error("selectiveScanGrad: second-order gradients through the fused selective scan are not supported");
  },
});

/**
 * The selective scan (see the module comment): one fused primitive, states kept off the tape.
 * With `withState` and nothing to differentiate (no tape, noGrad, or constant inputs), y and the
 * state come from one forward (the multi-output selectiveScanWithState, where the backend has
 * it): as two primitives, the state's would recompute the whole scan.
 */
export function selectiveScan(
  x: Tensor, delta: Tensor, A: Tensor, Bm: Tensor, C: Tensor, h0: Tensor, withState = false,
): SelectiveScanResult {
  const ins = [x, delta, A, Bm, C, h0];
  if (withState && !(engine.tape && engine.noGradDepth === 0 && ins.some((t) => t.requiresGrad))) {
    const [B, L, Di, N] = scanSpec("selectiveScan", ins);
    const outs = bindMulti("selectiveScanWithState", ins, [{ shape: [B, L, Di], dtype: "f32" }, { shape: [B, Di, N], dtype: "f32" }], {});
    if (outs) return { y: outs[0], state: outs[1] };
  }
  const y = bind("selectiveScan", ins, {});
  return withState ? { y, state: bind("selectiveScanState", ins, {}) } : { y };
}

/**
 * The same function composed from the generic scan primitive: materialises the [B, L, Di, N]
 * decays and inputs. The reference that the fused primitive is tested against.
 */
export function selectiveScanReference(
  x: Tensor, delta: Tensor, A: Tensor, Bm: Tensor, C: Tensor, h0: Tensor, withState = false,
): SelectiveScanResult {
  const [B, L, Di, N] = checkShapes(x, delta, A, Bm, C, h0);
  const dA = exp(mul(reshape(delta, [B, L, Di, 1]), reshape(A, [1, 1, Di, N])));
  const dBx = mul(reshape(mul(delta, x), [B, L, Di, 1]), reshape(Bm, [B, L, 1, N]));
  const h = scan(reshape(dA, [B, L, Di * N]), reshape(dBx, [B, L, Di * N]), reshape(h0, [B, Di * N]));
  const y = sum(mul(reshape(h, [B, L, Di, N]), reshape(C, [B, L, 1, N])), 3);
  if (!withState) return { y };
  const state = reshape(sliceAxis(h, 1, L - 1, L), [B, Di, N]);
  return { y, state };
}

/** ssmGate's inputs: y, u, z [..., Di] of one shape, D [Di], all f32 (the composite path checks them too). */
function gateShapes(y: Tensor, u: Tensor, d: Tensor, z: Tensor): void {
  for (const [what, t] of [["y", y], ["u", u], ["D", d], ["z", z]] as const) {
    if (t.dtype !== "f32") throw new ShapeError(`ssmGate: ${what} must be f32, got ${t.dtype} ${showShape(t.shape)}`);
  }
  if (y.rank < 1 || !sameShape(u.shape, y.shape) || !sameShape(z.shape, y.shape) || !sameShape(d.shape, [y.shape[y.rank - 1]])) {
    throw new ShapeError(`ssmGate: expects y, u, z [..., Di] of one shape and D [Di], got y ${showShape(y.shape)}, u ${showShape(u.shape)}, D ${showShape(d.shape)}, z ${showShape(z.shape)}`);
  }
}

definePrimitive("ssmGate", {
  shape: ([y, u, d, z]) => {
    gateShapes(y, u, d, z);
    return { shape: [...y.shape], dtype: "f32" };
  },
  flops: ([y]) => 10 * y.size,
  // the composite's VJPs (mul, silu, add, mul) op for op, its two intermediates recomputed
  vjp: (g, [y, u, d, z], _out, _p, needs) => {
    const a = silu(z), s = add(y, mul(u, d));
    const ds = mul(g, a);
    const [dz] = needs?.[3] === false ? [null] : primitive("unary").vjp(mul(g, s), [z], a, { op: "silu" });
    return [ds, needs?.[1] === false ? null : mul(ds, d), needs?.[2] === false ? null : sumTo(mul(ds, u), d.shape), dz];
  },
});

/**
 * Mamba's output gate (y + u ⊙ D) ⊙ silu(z) of y, u, z [..., Di] and D [Di]: the scan readout plus
 * its skip, gated. One pass where the backend runs it (WebGPU, the CPU reference), else the four
 * ops (`prefersComposite`, e.g. the wasm backend's SIMD kernels). The same numbers as the ops: bit
 * for bit on the CPU; on a GPU within a rounding of y + u·D (a shader compiler may fuse it into one
 * multiply-add).
 */
export function ssmGate(y: Tensor, u: Tensor, d: Tensor, z: Tensor): Tensor {
  if (getBackend().prefersComposite?.("ssmGate")) {
    gateShapes(y, u, d, z);
    return mul(add(y, mul(u, d)), silu(z));
  }
  return bind("ssmGate", [y, u, d, z], {});
}
