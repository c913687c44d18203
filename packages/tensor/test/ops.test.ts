/**
 * Forward results of the ops against hand-computed values and plain-loop references; shape errors
 * (op and shapes named in the message); memory (tidy, valueAndGrad, noGrad).
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import {
  add, addMatmul, broadcastTo, cast, causalEntered, causalSelect, concat, foldWeight, readCounters, resetCounters, conv1dCausal, conv1dCausalSilu, crossEntropy, linearSigmoid, linearSigmoidGate, linearSoftplus, sigmoid, silu, softplus, ssmGate, disposeTree, div, eq, exp, fromArray, gather, ge, getBackend, grad, gt, keep,
  le, liveBuffers, log, logSoftmax, logsumexp, lt, matmul, max, maximum, mean, minimum, mT, mul, ne, noGrad, oneHot, pad,
  reshape, scan, scatterAdd, ShapeError, slice, sliceAxis, softmax, stack, sub, sum, Tensor, tidy, transpose,
  valueAndGrad, where,
} from "../src/index.ts";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/** Registers one test per backend. */
function bt(name: string, fn: () => Promise<void> | void): void {
  for (const b of testBackends()) {
    test(`[${b}] ${name}`, async () => {
      if (!(await useBackend(b))) return;
      await fn();
    });
  }
}

const vals = async (t: Tensor): Promise<number[]> => Array.from(await t.data());
/**
 * A fused op's values against its composite's: bit for bit off the GPU, within 1e-5 relative on it
 * (where a shader compiler may contract a multiply-add or sum in another order).
 */
async function fusedClose(gpu: boolean, what: string, a: Tensor, b: Tensor): Promise<void> {
  const [va, vb] = [await vals(a), await vals(b)];
  if (!gpu) return void expect({ what, v: va }).toEqual({ what, v: vb });
  expect(va.length).toBe(vb.length);
  va.forEach((v, i) => {
    if (!(Math.abs(v - vb[i]) <= 1e-5 * (1 + Math.abs(vb[i])))) throw new Error(`${what}: element ${i}: fused ${v}, composite ${vb[i]}`);
  });
}
const iota = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => i + from);
const t = (data: number[], shape: number[]): Tensor => fromArray(data, shape);
const ti = (data: number[], shape: number[]): Tensor => fromArray(Int32Array.from(data), shape, "i32");

/** Element-wise closeness with a message naming the first bad index. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i], e = expected[i];
    const ok = Math.abs(a - e) <= tol * Math.max(1, Math.abs(e));
    if (!ok) throw new Error(`element ${i}: got ${a}, expected ${e} (tol ${tol}); got [${Array.from(actual)}]`);
  }
}

/** Runs f, expecting a ShapeError (or `kind`) whose message contains every fragment. */
function expectThrow(f: () => unknown, fragments: string[], kind: new (...a: never[]) => Error = ShapeError): Error {
  let caught: unknown = null;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof Error)) throw new Error(`expected ${kind.name} with [${fragments.join(" | ")}], nothing was thrown`);
  const err: Error = caught;
  const other = err as { name: string; message: string }; // (instanceof would narrow err to never below)
  if (!(err instanceof kind)) throw new Error(`expected ${kind.name}, got ${other.name}: ${other.message}`);
  for (const f of fragments) {
    if (!err.message.includes(f)) throw new Error(`message "${err.message}" lacks "${f}"`);
  }
  return err;
}

/** A deterministic pseudo-random f32 array in [lo, hi). */
function randArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + (hi - lo) * (s / 4294967296);
  });
}

// ---------------------------------------------------------------------------------------------
// elementwise, broadcasting
// ---------------------------------------------------------------------------------------------

describe("ops: broadcasting", () => {
  const A = [1, 2, 3, 4, 5, 6];
  bt("[2,3] with [3]", async () => {
    const a = t(A, [2, 3]), b = t([10, 20, 30], [3]);
    const s = add(a, b), p = mul(a, b);
    expect(s.shape).toEqual([2, 3]);
    expect(await vals(s)).toEqual([11, 22, 33, 14, 25, 36]);
    expect(await vals(p)).toEqual([10, 40, 90, 40, 100, 180]);
    expect(await vals(add(b, a))).toEqual([11, 22, 33, 14, 25, 36]);
    expect(await vals(sub(a, b))).toEqual([-9, -18, -27, -6, -15, -24]);
    expect(await vals(sub(b, a))).toEqual([9, 18, 27, 6, 15, 24]);
  });
  bt("[2,3] with [2,1], and [2,1] with [1,3] (outer)", async () => {
    const a = t(A, [2, 3]), c = t([10, 20], [2, 1]);
    expect(await vals(add(a, c))).toEqual([11, 12, 13, 24, 25, 26]);
    expect(await vals(mul(a, c))).toEqual([10, 20, 30, 80, 100, 120]);
    const outer = add(c, t([1, 2, 3], [1, 3]));
    expect(outer.shape).toEqual([2, 3]);
    expect(await vals(outer)).toEqual([11, 12, 13, 21, 22, 23]);
  });
  bt("with scalars (numbers and shape-[] tensors)", async () => {
    const a = t(A, [2, 3]);
    expect(await vals(add(a, 1))).toEqual([2, 3, 4, 5, 6, 7]);
    expect(await vals(mul(2, a))).toEqual([2, 4, 6, 8, 10, 12]);
    expect(await vals(sub(10, a))).toEqual([9, 8, 7, 6, 5, 4]);
    expect(await vals(div(a, 2))).toEqual([0.5, 1, 1.5, 2, 2.5, 3]);
    const s = add(a, t([100], []));
    expect(s.shape).toEqual([2, 3]);
    expect(await vals(s)).toEqual([101, 102, 103, 104, 105, 106]);
    const ss = mul(t([3], []), t([4], []));
    expect(ss.shape).toEqual([]);
    expect(await ss.item()).toBe(12);
  });
  bt("[2,1,3] with [4,1] gives [2,4,3]", async () => {
    const a = t(A, [2, 1, 3]), b = t([0, 10, 20, 30], [4, 1]);
    const s = add(a, b);
    expect(s.shape).toEqual([2, 4, 3]);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 3; k++) want.push(A[i * 3 + k] + 10 * j);
    expect(await vals(s)).toEqual(want);
  });
  bt("i32 arithmetic: stays i32, wraps like int32, division truncates", async () => {
    const a = ti([7, -7, 5, 2147483647], [4]);
    const s = add(a, 1);
    expect(s.dtype).toBe("i32");
    expect(Array.from(await s.data())).toEqual([8, -6, 6, -2147483648]);
    expect(Array.from(await div(a, 2).data())).toEqual([3, -3, 2, 1073741823]);
    expect(Array.from(await mul(a, ti([3, 3, -2, 2], [4])).data())).toEqual([21, -21, -10, -2]);
    expect(Array.from(await sub(ti([0], [1]), a).data())).toEqual([-7, 7, -5, -2147483647]);
    const d = await add(a, ti([1], [1])).data();
    expect(d).toBeInstanceOf(Int32Array);
  });
  bt("mixing f32 and i32 is a ShapeError naming the op and both shapes", () => {
    expectThrow(() => add(t([1, 2], [2]), ti([1, 2], [2])), ["add", "f32 [2]", "i32 [2]"]);
  });
  bt("unary functions on hand values", async () => {
    expectClose(await vals(exp(t([0, 1, -1], [3]))), [1, Math.E, 1 / Math.E], 1e-6);
    expectClose(await vals(log(t([1, Math.E, 0.5], [3]))), [0, 1, Math.log(0.5)], 1e-6);
    expect(await vals(maximum(t([1, 5, 3], [3]), t([4, 2, 3], [3])))).toEqual([4, 5, 3]);
    expect(await vals(minimum(t([1, 5, 3], [3]), 2))).toEqual([1, 2, 2]);
  });
});

describe("ops: comparisons and where", () => {
  bt("eq ne lt le gt ge against a scalar and with broadcasting", async () => {
    const x = t([1, 2, 3], [3]);
    expect(await vals(eq(x, 2))).toEqual([0, 1, 0]);
    expect(await vals(ne(x, 2))).toEqual([1, 0, 1]);
    expect(await vals(lt(x, 2))).toEqual([1, 0, 0]);
    expect(await vals(le(x, 2))).toEqual([1, 1, 0]);
    expect(await vals(gt(x, 2))).toEqual([0, 0, 1]);
    expect(await vals(ge(x, 2))).toEqual([0, 1, 1]);
    const m = gt(t([1, 2, 3], [3]), t([0, 2.5], [2, 1]));
    expect(m.shape).toEqual([2, 3]);
    expect(m.dtype).toBe("f32");
    expect(await vals(m)).toEqual([1, 1, 1, 0, 0, 1]);
    expect(await vals(lt(ti([1, 5], [2]), 3))).toEqual([1, 0]);
  });
  bt("where picks and broadcasts all three", async () => {
    const c = t([1, 0], [2, 1]);
    const r = where(c, t([1, 2, 3], [3]), t([-1, -2, -3, -4, -5, -6], [2, 3]));
    expect(r.shape).toEqual([2, 3]);
    expect(await vals(r)).toEqual([1, 2, 3, -4, -5, -6]);
    expect(await vals(where(gt(t([-1, 2, -3], [3]), 0), 7, 0))).toEqual([0, 7, 0]);
    expect(await vals(where(ti([0, 3], [2]), 1, 2))).toEqual([2, 1]);
  });
  bt("where: every mix of full-size and one-value operands (the flat forms), a leading-1 shape, NaN and −0 conditions", async () => {
    const c = t([1, 0, NaN, -0, 2, 0], [2, 3]), a = t([1, 2, 3, 4, 5, 6], [2, 3]), b = t([-1, -2, -3, -4, -5, -6], [1, 2, 3]);
    const pick = (cc: number[], aa: number[], bb: number[]) => cc.map((v, i) => (v !== 0 ? aa[i] : bb[i]));
    const C = [1, 0, NaN, -0, 2, 0], A = [1, 2, 3, 4, 5, 6], Bv = [-1, -2, -3, -4, -5, -6];
    const one = (v: number) => Array(6).fill(v);
    expect(await vals(where(c, a, b))).toEqual(pick(C, A, Bv));
    expect(await vals(where(c, a, 9))).toEqual(pick(C, A, one(9)));
    expect(await vals(where(c, 9, b))).toEqual(pick(C, one(9), Bv));
    expect(await vals(where(c, 8, 9))).toEqual(pick(C, one(8), one(9)));
    expect(await vals(where(t([0], [1]), a, b))).toEqual(Bv);
    expect(await vals(where(t([1], [1, 1]), a, 9))).toEqual(A);
    expect(where(c, a, b).shape).toEqual([1, 2, 3]);
  });
});

// ---------------------------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------------------------

describe("ops: reductions", () => {
  const X = [1, 2, 3, 4, 5, 6];
  bt("sum / mean / max over single axes", async () => {
    const x = t(X, [2, 3]);
    expect(await vals(sum(x, 0))).toEqual([5, 7, 9]);
    expect(await vals(sum(x, 1))).toEqual([6, 15]);
    expect(await vals(sum(x, -1))).toEqual([6, 15]);
    expect(sum(x, 0).shape).toEqual([3]);
    expect(await vals(mean(x, 0))).toEqual([2.5, 3.5, 4.5]);
    expect(await vals(mean(x, 1))).toEqual([2, 5]);
    expect(await vals(max(x, 0))).toEqual([4, 5, 6]);
    expect(await vals(max(x, 1))).toEqual([3, 6]);
    expect(await vals(max(t([-5, -2, -9], [3]), 0))).toEqual([-2]);
  });
  bt("over all axes give shape []", async () => {
    const x = t(X, [2, 3]);
    const s = sum(x);
    expect(s.shape).toEqual([]);
    expect(await s.item()).toBe(21);
    expect(await mean(x).item()).toBe(3.5);
    expect(await max(x).item()).toBe(6);
  });
  bt("keepDims keeps size-1 axes", async () => {
    const x = t(X, [2, 3]);
    const s = sum(x, 1, true);
    expect(s.shape).toEqual([2, 1]);
    expect(await vals(s)).toEqual([6, 15]);
    expect(max(x, 0, true).shape).toEqual([1, 3]);
    expect(sum(x, undefined, true).shape).toEqual([1, 1]);
  });
  bt("several axes of a [2,3,4] tensor", async () => {
    const x = t(iota(24), [2, 3, 4]); // x[i,j,k] = 12i + 4j + k
    expect(await vals(sum(x, [0, 2]))).toEqual([60, 92, 124]);
    expect(await vals(max(x, [0, 2]))).toEqual([15, 19, 23]);
    const s12 = sum(x, [1, 2], true);
    expect(s12.shape).toEqual([2, 1, 1]);
    expect(await vals(s12)).toEqual([66, 210]);
    expect(await vals(sum(x, [0, 1]))).toEqual([60, 66, 72, 78]);
    expect(await vals(sum(x, [-1, 0]))).toEqual([60, 92, 124]);
    expect(await mean(x).item()).toBe(11.5);
    expect(await vals(max(x, [1]))).toEqual([8, 9, 10, 11, 20, 21, 22, 23]);
  });
  bt("max splits its gradient evenly between ties", async () => {
    const g = grad((x: Tensor) => max(x))(t([1, 3, 3, 2], [4]));
    expect(await vals(g)).toEqual([0, 0.5, 0.5, 0]);
    const g2 = grad((x: Tensor) => sum(max(x, 1)))(t([5, 5, 5, 1, 2, 2], [2, 3]));
    expectClose(await vals(g2), [1 / 3, 1 / 3, 1 / 3, 0, 0.5, 0.5], 1e-6);
    const g3 = grad((x: Tensor) => sum(max(x, 0)))(t([4, 1, 4, 7], [2, 2])); // column 0 ties
    expect(await vals(g3)).toEqual([0.5, 0, 0.5, 1]);
    // elementwise maximum: a tie splits too
    const [ga, gb] = grad((xs: Tensor[]) => sum(maximum(xs[0], xs[1])))([t([1, 2, 3], [3]), t([3, 2, 1], [3])]);
    expect(await vals(ga)).toEqual([0, 0.5, 1]);
    expect(await vals(gb)).toEqual([1, 0.5, 0]);
  });
  bt("an axis out of range is a ShapeError naming the op and the axis", () => {
    const x = t(X, [2, 3]);
    expectThrow(() => sum(x, 2), ["sum", "axis 2"]);
    expectThrow(() => max(x, -3), ["max", "axis -3"]);
    expectThrow(() => mean(x, [0, 5]), ["mean", "axis 5"]);
  });
});

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

/** Plain-loop batched matmul with broadcast batch dims (the reference). */
function refMatmul(a: number[], as: number[], b: number[], bs: number[]): { data: number[]; shape: number[] } {
  const [m, k] = as.slice(-2), [k2, n] = bs.slice(-2);
  if (k !== k2) throw new Error("ref: inner dims");
  const ab = as.slice(0, -2), bb = bs.slice(0, -2);
  const r = Math.max(ab.length, bb.length);
  const pa = [...new Array(r - ab.length).fill(1), ...ab], pb = [...new Array(r - bb.length).fill(1), ...bb];
  const ob = pa.map((d, i) => Math.max(d, pb[i]));
  const nb = ob.reduce((x, y) => x * y, 1);
  const data: number[] = [];
  for (let q = 0; q < nb; q++) {
    let rem = q, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let i = r - 1; i >= 0; i--) {
      const idx = rem % ob[i];
      rem = Math.floor(rem / ob[i]);
      ia += (pa[i] === 1 ? 0 : idx) * sa;
      ib += (pb[i] === 1 ? 0 : idx) * sb;
      sa *= pa[i];
      sb *= pb[i];
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[ia * m * k + i * k + p] * b[ib * k * n + p * n + j];
        data.push(s);
      }
    }
  }
  return { data, shape: [...ob, m, n] };
}

describe("ops: matmul", () => {
  const A = [1, 2, 3, 4, 5, 6]; // [2,3]
  const B = [7, 8, 9, 10, 11, 12]; // [3,2]
  const C = [58, 64, 139, 154];
  bt("[2,3]·[3,2] by hand", async () => {
    const c = matmul(t(A, [2, 3]), t(B, [3, 2]));
    expect(c.shape).toEqual([2, 2]);
    expect(await vals(c)).toEqual(C);
  });
  bt("transA / transB / both give the same product", async () => {
    const At = t([1, 4, 2, 5, 3, 6], [3, 2]);
    const Bt = t([7, 9, 11, 8, 10, 12], [2, 3]);
    expect(await vals(matmul(At, t(B, [3, 2]), { transA: true }))).toEqual(C);
    expect(await vals(matmul(t(A, [2, 3]), Bt, { transB: true }))).toEqual(C);
    expect(await vals(matmul(At, Bt, { transA: true, transB: true }))).toEqual(C);
    expect(await vals(matmul(t(A, [2, 3]), mT(Bt)))).toEqual(C);
  });
  bt("[1,k]·[k,1] and [k,1]·[1,k] (outer product)", async () => {
    expect(await vals(matmul(t([1, 2, 3], [1, 3]), t([4, 5, 6], [3, 1])))).toEqual([32]);
    expect(await vals(matmul(t([1, 2], [2, 1]), t([3, 4], [1, 2])))).toEqual([3, 4, 6, 8]);
  });
  bt("batched with broadcast batch dims against a plain loop", async () => {
    const cases: [number[], number[]][] = [
      [[2, 2, 3], [3, 2]],
      [[3, 2], [2, 2, 4]],
      [[2, 1, 2, 3], [4, 3, 2]],
      [[1, 3, 2, 2], [2, 1, 2, 5]],
    ];
    for (const [as, bs] of cases) {
      const an = as.reduce((x, y) => x * y, 1), bn = bs.reduce((x, y) => x * y, 1);
      const a = iota(an).map((v) => (v % 7) - 3), b = iota(bn).map((v) => (v % 5) - 2);
      const want = refMatmul(a, as, b, bs);
      const got = matmul(t(a, as), t(b, bs));
      expect(got.shape).toEqual(want.shape);
      expect(await vals(got)).toEqual(want.data);
    }
  });
  bt("mismatches are ShapeErrors naming matmul and both shapes", () => {
    expectThrow(() => matmul(t(A, [2, 3]), t(iota(20), [4, 5])), ["matmul", "[2, 3]", "[4, 5]"]);
    expectThrow(() => matmul(t(iota(12), [2, 2, 3]), t(iota(18), [3, 3, 2])), ["matmul", "[2, 2, 3]", "[3, 3, 2]"]);
    expectThrow(() => matmul(t([1, 2, 3], [3]), t(A, [3, 2])), ["matmul", "[3]", "[3, 2]"]);
    expectThrow(() => matmul(t(A, [2, 3]), t(B, [3, 2]), { transA: true }), ["matmul", "[2, 3]ᵀ", "[3, 2]"]);
  });
});

// ---------------------------------------------------------------------------------------------
// movement
// ---------------------------------------------------------------------------------------------

describe("ops: movement", () => {
  bt("reshape with -1 (shares storage: no new buffer)", async () => {
    const x = t(iota(6), [2, 3]);
    const before = liveBuffers();
    const a = reshape(x, [-1]);
    const b = reshape(x, [3, -1]);
    const c = reshape(x, [1, -1, 2, 1]);
    expect(liveBuffers()).toBe(before);
    expect(a.shape).toEqual([6]);
    expect(b.shape).toEqual([3, 2]);
    expect(c.shape).toEqual([1, 3, 2, 1]);
    expect(await vals(b)).toEqual(iota(6));
    expectThrow(() => reshape(x, [4, -1]), ["reshape", "[4, -1]", "[2, 3]"]);
    expectThrow(() => reshape(x, [4]), ["reshape", "[2, 3]", "[4]"]);
  });
  bt("transpose with permutations (against index arithmetic)", async () => {
    const x = t(iota(24), [2, 3, 4]);
    const perms = [[0, 1, 2], [2, 0, 1], [1, 0, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0]];
    for (const perm of perms) {
      const y = transpose(x, perm);
      const shape = perm.map((p) => [2, 3, 4][p]);
      expect(y.shape).toEqual(shape);
      const got = await vals(y);
      const want: number[] = [];
      const idx = [0, 0, 0];
      for (let a = 0; a < shape[0]; a++) for (let b = 0; b < shape[1]; b++) for (let c = 0; c < shape[2]; c++) {
        idx[perm[0]] = a;
        idx[perm[1]] = b;
        idx[perm[2]] = c;
        want.push(idx[0] * 12 + idx[1] * 4 + idx[2]);
      }
      expect(got).toEqual(want);
    }
    expect(transpose(x).shape).toEqual([4, 3, 2]);
    expect(await vals(transpose(t([1, 2, 3, 4, 5, 6], [2, 3])))).toEqual([1, 4, 2, 5, 3, 6]);
    expectThrow(() => transpose(x, [0, 0, 1]), ["transpose", "[2, 3, 4]"]);
  });
  bt("slice and sliceAxis", async () => {
    const x = t(iota(12), [3, 4]);
    expect(await vals(slice(x, [1, 1], [2, 2]))).toEqual([5, 6, 9, 10]);
    expect(await vals(slice(x, [2, 1], [-1, -1]))).toEqual([9, 10, 11]);
    expect(await vals(sliceAxis(x, 1, -2))).toEqual([2, 3, 6, 7, 10, 11]);
    expect(await vals(sliceAxis(x, 0, 1, 2))).toEqual([4, 5, 6, 7]);
    expect(await vals(sliceAxis(x, -1, 0, -3))).toEqual([0, 4, 8]);
    expect(slice(x, [0, 2], [3, 0]).shape).toEqual([3, 0]);
    expectThrow(() => slice(x, [0, 2], [3, 3]), ["slice", "[3, 4]"]);
  });
  bt("pad with a constant", async () => {
    const x = t([1, 2], [1, 2]);
    const p = pad(x, [1, 0], [0, 1], 9);
    expect(p.shape).toEqual([2, 3]);
    expect(await vals(p)).toEqual([9, 9, 9, 1, 2, 9]);
    expect(await vals(pad(t([5], [1]), [2], [1]))).toEqual([0, 0, 5, 0]);
    expectThrow(() => pad(x, [1], [1]), ["pad", "[1, 2]"]);
  });
  bt("concat and stack", async () => {
    const a = t([1, 2, 3, 4], [2, 2]), b = t([5, 6], [1, 2]), c = t([7, 8], [2, 1]);
    expect(await vals(concat([a, b], 0))).toEqual([1, 2, 3, 4, 5, 6]);
    const ac = concat([a, c], 1);
    expect(ac.shape).toEqual([2, 3]);
    expect(await vals(ac)).toEqual([1, 2, 7, 3, 4, 8]);
    expect(await vals(concat([c, a, c], -1))).toEqual([7, 1, 2, 7, 8, 3, 4, 8]);
    const s0 = stack([t([1, 2], [2]), t([3, 4], [2])], 0);
    expect(s0.shape).toEqual([2, 2]);
    expect(await vals(s0)).toEqual([1, 2, 3, 4]);
    const s1 = stack([t([1, 2], [2]), t([3, 4], [2])], 1);
    expect(s1.shape).toEqual([2, 2]);
    expect(await vals(s1)).toEqual([1, 3, 2, 4]);
    const sl = stack([a, a, a], -1);
    expect(sl.shape).toEqual([2, 2, 3]);
    expect(await vals(sl)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    expectThrow(() => concat([a, b], 1), ["concat", "[2, 2]", "[1, 2]"]);
  });
  bt("concat of many inputs (more than one dispatch binds), empty ones and i32 among them", async () => {
    // widths 0..4 along axis 1 of [3, w]: 17 inputs, so the WebGPU kernel's groups of up to 7
    // inputs per dispatch split at several places, some groups holding empty inputs
    const widths = [2, 0, 1, 3, 4, 1, 0, 2, 3, 1, 1, 4, 0, 2, 1, 3, 2];
    let next = 0;
    const parts = widths.map((w) => {
      const d = Array.from({ length: 3 * w }, () => next++);
      return { w, d, x: t(d, [3, w]) };
    });
    const want: number[] = [];
    for (let r = 0; r < 3; r++) for (const p of parts) want.push(...p.d.slice(r * p.w, (r + 1) * p.w));
    const y = concat(parts.map((p) => p.x), 1);
    expect(y.shape).toEqual([3, widths.reduce((u, v) => u + v, 0)]);
    expect(await vals(y)).toEqual(want);
    // i32 along axis 0 (the copy moves 32-bit words: the same kernel)
    const ints = Array.from({ length: 9 }, (_, k) => fromArray(Int32Array.from({ length: 2 * (k % 3) }, (_, j) => -100 * k - j), [k % 3, 2]));
    const yi = concat(ints, 0);
    expect(yi.dtype).toBe("i32");
    expect(Array.from(await yi.data())).toEqual(ints.flatMap((_, k) => Array.from({ length: 2 * (k % 3) }, (_, j) => -100 * k - j)));
  });
  bt("broadcastTo", async () => {
    const y = broadcastTo(t([1, 2], [2, 1]), [2, 3]);
    expect(await vals(y)).toEqual([1, 1, 1, 2, 2, 2]);
    expectThrow(() => broadcastTo(t([1, 2, 3], [3]), [2, 4]), ["broadcastTo", "[3]", "[2, 4]"]);
  });
});

// ---------------------------------------------------------------------------------------------
// indexing
// ---------------------------------------------------------------------------------------------

describe("ops: indexing", () => {
  bt("gather rows of a table, any index shape", async () => {
    const table = t([1, 2, 3, 4, 5, 6], [3, 2]);
    const g = gather(table, ti([2, 0, 2], [3]));
    expect(g.shape).toEqual([3, 2]);
    expect(await vals(g)).toEqual([5, 6, 1, 2, 5, 6]);
    const g2 = gather(table, ti([1, 0, 0, 2], [2, 2]));
    expect(g2.shape).toEqual([2, 2, 2]);
    expect(await vals(g2)).toEqual([3, 4, 1, 2, 1, 2, 5, 6]);
    expect(await vals(gather(t([10, 20, 30], [3]), ti([2, 2, 0], [3])))).toEqual([30, 30, 10]);
  });
  bt("oneHot (out-of-range gives a zero row)", async () => {
    const o = oneHot(ti([0, 2, 5, -1], [4]), 3);
    expect(o.shape).toEqual([4, 3]);
    expect(await vals(o)).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  });
  bt("scatterAdd accumulates repeated indices", async () => {
    const s = scatterAdd(ti([0, 2, 0], [3]), t([1, 1, 2, 2, 3, 3], [3, 2]), 3);
    expect(s.shape).toEqual([3, 2]);
    expect(await vals(s)).toEqual([4, 4, 0, 0, 2, 2]);
  });
  bt("bad indices: RangeErrors naming the op, the index and its position (CPU); documented fallbacks (GPU)", async () => {
    const table = t([1, 2, 3, 4, 5, 6], [3, 2]);
    if (getBackend().name === "webgpu") {
      // a shader cannot throw (webgpu/kernels/indexing.ts, nn.ts): gather gives a zero row,
      // scatterAdd drops the update, crossEntropy gives NaN
      expect(await vals(gather(table, ti([0, 3], [2])))).toEqual([1, 2, 0, 0]);
      expect(await vals(scatterAdd(ti([1, 4], [2]), t([1, 2], [2]), 3))).toEqual([0, 1, 0]);
      const ce = await vals(crossEntropy(t([0, 0, 0, 0], [2, 2]), ti([1, 2], [2])));
      expect(ce[0]).toBeCloseTo(Math.LN2, 5);
      expect(Number.isNaN(ce[1])).toBe(true);
      return;
    }
    expectThrow(() => gather(table, ti([0, 3], [2])), ["gather", "index 3", "position 1", "[3, 2]"], RangeError);
    expectThrow(() => gather(table, ti([-1], [1])), ["gather", "index -1", "position 0"], RangeError);
    expectThrow(() => scatterAdd(ti([1, 4], [2]), t([1, 2], [2]), 3), ["scatterAdd", "index 4", "position 1"], RangeError);
    expectThrow(() => crossEntropy(t([0, 0, 0, 0], [2, 2]), ti([1, 2], [2])), ["crossEntropy", "target 2", "position 1"], RangeError);
  });
  bt("causalEntered: where a memory's newest position grows, as the composite (cast, max, slices, gt)", async () => {
    // two rows of causalSelect's positions: a top-2 memory over 9 positions, then any i32 rows
    const mask = t([1, 0, 1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1], [2, 9]);
    const score = t([5, 1, 3, 7, 2, 1, 9, 4, 8, 6, 2, 2, 1, 9, 3, 3, 1, 7], [2, 9]);
    const pos = causalSelect(mask, score, 2, "top");
    const composite = (p: Tensor, start: number, count: number) => {
      const newest = max(cast(p, "f32"), -1);
      return gt(sliceAxis(newest, 1, start + 1, start + count + 1), sliceAxis(newest, 1, start, start + count));
    };
    for (const [start, count] of [[0, 8], [2, 5], [7, 1], [3, 0]]) {
      const got = causalEntered(pos, start, count);
      expect(got.shape).toEqual([2, count]);
      expect(got.dtype).toBe("f32");
      expect({ start, count, v: await vals(got) }).toEqual({ start, count, v: await vals(composite(pos, start, count)) });
    }
    // by hand (each row: the positions whose note enters the top-2 memory; a tie evicts the oldest)
    expect(await vals(causalEntered(pos, 0, 8))).toEqual([1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0]);
    // rows of any order, −1s anywhere, and k = 0 (no position: nothing enters)
    const any = ti([3, -1, 0, -1, -1, -1, 2, 9, 1, 4, 4, -1], [1, 4, 3]);
    expect(await vals(causalEntered(any, 0, 3))).toEqual([0, 1, 0]);
    expect(await vals(causalEntered(ti([], [2, 3, 0]), 1, 1))).toEqual([0, 0]);
    // up to the row past the end, which holds nothing: its comparison is 0
    expect(await vals(causalEntered(any, 1, 3))).toEqual([1, 0, 0]);
    expect(await vals(causalEntered(ti([5, 2, -1, 7], [2, 2, 1]), 0, 2))).toEqual([0, 0, 1, 0]);
    expectThrow(() => causalEntered(any, 2, 3), ["causalEntered", "start 2", "[1, 4, 3]"]);
    expectThrow(() => causalEntered(t([0, 1], [1, 2, 1]), 0, 1), ["causalEntered", "i32"]);
  });
  bt("index shape errors are ShapeErrors naming the op and both shapes", () => {
    expectThrow(() => scatterAdd(ti([0, 1], [2]), t([1, 2, 3], [3]), 3), ["scatterAdd", "[3]", "[2]"]);
    expectThrow(() => gather(t([1, 2], [2]), t([0], [1])), ["gather", "i32"]);
  });
});

// ---------------------------------------------------------------------------------------------
// fused nn ops
// ---------------------------------------------------------------------------------------------

describe("ops: nn", () => {
  bt("softmax rows sum to 1 and match a hand computation", async () => {
    const s = softmax(t([1, 2, 3, 0, 0, 0], [2, 3]));
    const v = await vals(s);
    const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
    const z = e[0] + e[1] + e[2];
    expectClose(v, [e[0] / z, e[1] / z, e[2] / z, 1 / 3, 1 / 3, 1 / 3], 1e-6);
    expectClose(v.slice(0, 3), [0.09003057, 0.24472847, 0.66524096], 1e-6);
    const x = randArray(60, 7, -5, 5);
    const rows = await vals(sum(softmax(t(Array.from(x), [3, 4, 5])), -1));
    expectClose(rows, new Array(12).fill(1), 1e-6);
  });
  bt("softmax / logsumexp are stable at ±1000", async () => {
    expectClose(await vals(softmax(t([1000, 1000, -1000], [3]))), [0.5, 0.5, 0], 1e-6);
    expectClose(await vals(logsumexp(t([1000, 1000], [2]))), [1000 + Math.LN2], 1e-6);
    expectClose(await vals(logsumexp(t([1000, 0, -1000, -1000], [2, 2]))), [1000, -1000 + Math.LN2], 1e-6);
    const v = await vals(logSoftmax(t([1000, 0], [2])));
    expect(v.every(Number.isFinite)).toBe(true);
    expectClose(v, [0, -1000], 1e-6);
  });
  bt("logsumexp removes the last axis and matches log Σ exp", async () => {
    const x = [0.5, -1, 2, 0, 0.1, 0.2];
    const l = logsumexp(t(x, [2, 3]));
    expect(l.shape).toEqual([2]);
    expectClose(await vals(l), [
      Math.log(Math.exp(0.5) + Math.exp(-1) + Math.exp(2)),
      Math.log(1 + Math.exp(0.1) + Math.exp(0.2)),
    ], 1e-6);
  });
  bt("crossEntropy equals −log softmax[target]", async () => {
    const x = Array.from(randArray(12, 3, -3, 3));
    const targets = [2, 0, 3];
    const ce = crossEntropy(t(x, [3, 4]), ti(targets, [3]));
    expect(ce.shape).toEqual([3]);
    const p = await vals(softmax(t(x, [3, 4])));
    const want = targets.map((k, r) => -Math.log(p[r * 4 + k]));
    expectClose(await vals(ce), want, 1e-5);
    // by hand too
    const byHand = targets.map((k, r) => {
      const row = x.slice(r * 4, r * 4 + 4);
      return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[k];
    });
    expectClose(await vals(ce), byHand, 1e-5);
    expectThrow(() => crossEntropy(t(x, [3, 4]), ti([0, 1], [2])), ["crossEntropy", "[2]", "[3, 4]"]);
  });
  bt("conv1dCausal against a plain loop", async () => {
    const [B, L, C, K] = [2, 5, 3, 3];
    const x = Array.from(randArray(B * L * C, 11)), w = Array.from(randArray(C * K, 12));
    const y = conv1dCausal(t(x, [B, L, C]), t(w, [C, K]));
    expect(y.shape).toEqual([B, L, C]);
    const want: number[] = [];
    for (let b = 0; b < B; b++) for (let tt = 0; tt < L; tt++) for (let c = 0; c < C; c++) {
      let s = 0;
      for (let k = 0; k < K; k++) {
        const src = tt - (K - 1) + k;
        if (src >= 0) s += w[c * K + k] * x[(b * L + src) * C + c];
      }
      want.push(s);
    }
    expectClose(await vals(y), want, 1e-5);
    // K = 1 is a per-channel scale; the first output only sees x[0]
    expectClose(await vals(conv1dCausal(t([1, 2, 3], [1, 3, 1]), t([2], [1, 1]))), [2, 4, 6]);
    expectClose(await vals(conv1dCausal(t([1, 2, 3], [1, 3, 1]), t([10, 1], [1, 2]))), [1, 12, 23]);
    expectThrow(() => conv1dCausal(t(x, [B, L, C]), t(iota(8), [4, 2])), ["conv1dCausal", "[2, 5, 3]", "[4, 2]"]);
    expectThrow(() => conv1dCausal(t(x, [B, L, C]), t([1, 2], [2, 1])), ["conv1dCausal", "[2, 5, 3]", "[2, 1]"]);
    // a carried prefix stands for the K − 1 inputs before the start: y equals the conv of
    // [prefix; x] without its first K − 1 outputs, and a prefix of zeros changes nothing
    const pre = Array.from(randArray(B * (K - 1) * C, 13));
    const withPre = conv1dCausal(t(x, [B, L, C]), t(w, [C, K]), t(pre, [B, K - 1, C]));
    const full = conv1dCausal(concat([t(pre, [B, K - 1, C]), t(x, [B, L, C])], 1), t(w, [C, K]));
    expect(await vals(withPre)).toEqual(await vals(sliceAxis(full, 1, K - 1)));
    expect(await vals(conv1dCausal(t(x, [B, L, C]), t(w, [C, K]), t(new Array(B * (K - 1) * C).fill(0), [B, K - 1, C])))).toEqual(await vals(y));
    expectThrow(() => conv1dCausal(t(x, [B, L, C]), t(w, [C, K]), t(pre.slice(0, B * C), [B, 1, C])), ["conv1dCausal", "prefix", "[2, 2, 3]", "[2, 1, 3]"]);
  });

  bt("linearSigmoidGate: [s, s > tau, (s > tau) · s] as linearSigmoid, gt and mul give them (one launch outside a gradient, the ops under one); thresholds at 0, 0.5 and a value equal to some s; gradients through s", async () => {
    const gpu = getBackend().name === "webgpu";
    for (const [lead, d] of [[[3, 7], 8], [[2, 5], 6], [[0, 3], 4], [[40], 256]] as [number[], number][]) {
      const x = fromArray(Float32Array.from({ length: lead.reduce((a, v) => a * v, 1) * d }, (_, i) => Math.sin(i * 1.7) * 2), [...lead, d]);
      const w = fromArray(Float32Array.from({ length: d }, (_, i) => Math.cos(i * 0.9)), [d, 1]);
      const b = t([0.1], [1]);
      const s0 = await vals(linearSigmoid(x, w, b));
      for (const tau of [0, 0.5, s0.length ? s0[Math.floor(s0.length / 2)] : 0.5]) {
        const what = `[${lead}] × ${d}, tau ${tau}`;
        resetCounters();
        const [s, m, g] = linearSigmoidGate(x, w, b, tau);
        // one launch where the backend fuses it (the wasm backend runs the ops: its SIMD matmul)
        if (getBackend().name !== "wasm" && lead.every((v) => v > 0)) expect({ what, launches: readCounters().launches }).toEqual({ what, launches: 1 });
        const ref = linearSigmoid(x, w, b);
        const [vs, vm, vg] = [await vals(s), await vals(m), await vals(g)];
        // the fused s is linearSigmoid's own (the same row sums on every backend)
        expect({ what, s: vs }).toEqual({ what, s: await vals(ref) });
        expect({ what, m: vm }).toEqual({ what, m: await vals(gt(ref, tau)) });
        expect({ what, g: vg }).toEqual({ what, g: await vals(mul(gt(ref, tau), ref)) });
        if (vs.length && tau === 0.5) expect(vm.some((v) => v === 1) && vm.some((v) => v === 0)).toBe(true);
        expect(s.shape).toEqual(lead);
        for (const u of [s, m, g, ref]) u.dispose();
      }
      // under a gradient: the ops, with s's gradient (the gated product's too)
      const { value, grads } = valueAndGrad((ws: Tensor) => {
        const [s, , g] = linearSigmoidGate(x, ws, b, 0.5);
        return add(sum(s), sum(g));
      })(w);
      const { value: v2, grads: g2 } = valueAndGrad((ws: Tensor) => {
        const s = linearSigmoid(x, ws, b);
        return add(sum(s), sum(mul(gt(s, 0.5), s)));
      })(w);
      expect(await value.item()).toBe(await v2.item());
      await fusedClose(gpu, "linearSigmoidGate dw", grads, g2);
      disposeTree([x, w, b, value, grads, v2, g2]);
    }
    expectThrow(() => linearSigmoidGate(t([1, 2, 3, 4], [2, 2]), t([1, 2, 3], [3, 1]), t([0], [1]), 0.5), ["linearSigmoid", "[2, 2]", "[3, 1]"]);
  });
  bt("linearSigmoid: the bits of sigmoid(matmul(x, w) + b) forward and backward (vec4 rows and not, one column, no rows; the VJP's row blocks and column chunks; on WebGPU dw and db within a reordered sum); bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    // [lead, d]: vec4 rows, scalar rows, one column, a batch of one, no rows, then more rows than
    // one block of the WebGPU VJP (32 a block) with more columns than its 64 lanes (vec4 and not)
    for (const [lead, d] of [[[2, 7], 256], [[5], 6], [[3, 1], 1], [[1, 9], 12], [[0, 4], 8], [[2, 40], 300], [[70], 301]] as [number[], number][]) {
      const n = lead.reduce((p, q) => p * q, 1);
      const p = { x: t(Array.from(randArray(n * d, 31 + d, -3, 3)), [...lead, d]), w: t(Array.from(randArray(d, 32 + d)), [d, 1]), b: t([0.3], [1]) };
      const c = t(Array.from(randArray(n, 33 + d)), lead); // each output's cotangent differs
      const fused = (q: typeof p) => linearSigmoid(q.x, q.w, q.b);
      const composite = (q: typeof p) => sigmoid(reshape(add(matmul(q.x, q.w), q.b), lead));
      const what = `[${lead}] × ${d}`;
      const yf = fused(p), yc = composite(p);
      expect(yf.shape).toEqual(lead);
      expect({ what, y: await vals(yf) }).toEqual({ what, y: await vals(yc) });
      const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), c)))(p), gc = valueAndGrad((q: typeof p) => sum(mul(composite(q), c)))(p);
      expect({ what, k: "x", g: await vals(gf.grads.x) }).toEqual({ what, k: "x", g: await vals(gc.grads.x) });
      for (const k of ["w", "b"] as const) await fusedClose(gpu, `${what} d${k}`, gf.grads[k], gc.grads[k]);
      disposeTree([p, c, yf, yc, gf, gc]);
    }
    const x = t(iota(6), [2, 3]);
    expectThrow(() => linearSigmoid(x, t(iota(3), [3]), t([0], [1])), ["linearSigmoid", "[2, 3]", "[3]"]);
    expectThrow(() => linearSigmoid(x, t(iota(3), [3, 1]), t([0, 0], [2])), ["linearSigmoid", "[3, 1]", "[2]"]);
    expectThrow(() => linearSigmoid(x, t(iota(4), [4, 1]), t([0], [1])), ["linearSigmoid", "[2, 3]", "[4, 1]"]);
    expectThrow(() => linearSigmoid(t(iota(3), [3]), t(iota(3), [3, 1]), t([0], [1])), ["linearSigmoid", "rank ≥ 2", "[3]"]);
  });

  bt("conv1dCausalSilu: silu(conv1dCausal(x, w, prefix) + b) as the three ops give it (bit for bit off the GPU, within a contracted multiply-add on it; the window and direct kernels), forward and backward; bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    const { convTuning } = await import("../src/webgpu/kernels/conv.ts");
    try {
      // [B, L, C, K]: Mamba's K 4 over 512 channels, a channel count that is no power of two, one
      // tap, more taps than the window kernel holds (the direct kernel), no steps
      for (const algo of gpu ? (["window", "direct"] as const) : (["window"] as const)) {
        convTuning.algo = algo;
        for (const [B, L, C, K] of [[2, 9, 512, 4], [1, 13, 6, 3], [2, 5, 3, 1], [1, 7, 4, 10], [2, 0, 4, 3]]) {
          for (const withPrefix of [false, true]) {
            const p = {
              x: t(Array.from(randArray(B * L * C, 61 + C, -3, 3)), [B, L, C]), w: t(Array.from(randArray(C * K, 62 + K, -1, 1)), [C, K]),
              b: t(Array.from(randArray(C, 63, -2, 2)), [C]), pre: t(Array.from(randArray(B * (K - 1) * C, 64, -3, 3)), [B, K - 1, C]),
            };
            const cot = t(Array.from(randArray(B * L * C, 65)), [B, L, C]);
            const fused = (q: typeof p) => conv1dCausalSilu(q.x, q.w, q.b, withPrefix ? q.pre : undefined);
            const composite = (q: typeof p) => silu(add(conv1dCausal(q.x, q.w, withPrefix ? q.pre : undefined), q.b));
            const close = (what: string, a: Tensor, b: Tensor) => fusedClose(gpu, what, a, b);
            const what = `${algo} [${B}, ${L}, ${C}] K ${K}${withPrefix ? " with a prefix" : ""}`;
            const yf = fused(p);
            expect(yf.shape).toEqual([B, L, C]);
            await close(`${what} y`, yf, composite(p));
            const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), cot)))(p), gc = valueAndGrad((q: typeof p) => sum(mul(composite(q), cot)))(p);
            for (const k of ["x", "w", "b", ...(withPrefix ? ["pre"] : [])] as const) await close(`${what} d${k}`, gf.grads[k as "x"], gc.grads[k as "x"]);
            disposeTree([p, cot, yf, gf, gc]);
          }
        }
      }
    } finally {
      convTuning.algo = "window";
    }
    const x = t(iota(12), [1, 4, 3]);
    expectThrow(() => conv1dCausalSilu(x, t(iota(6), [3, 2]), t([0, 0], [2])), ["conv1dCausalSilu", "bias", "[3]", "[2]"]);
    expectThrow(() => conv1dCausalSilu(x, t(iota(8), [4, 2]), t([0, 0, 0], [3])), ["conv1dCausal", "[1, 4, 3]", "[4, 2]"]);
  });

  bt("linearSoftplus: softplus(matmul(x, w) + b) as the three ops give it (bit for bit off the GPU, within the sums' rounding on it), forward and backward; bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    // [lead, r, c]: Mamba's Δ (r 16, c 512), vec4 columns and not, one input, no rows; on the GPU r a
    // multiple of 4 up to 64 takes the unrolled shader (16, 4, 64, 8), the others the loop
    for (const [lead, r, c] of [[[2, 7], 16, 512], [[5], 3, 6], [[3, 1], 1, 4], [[4], 9, 3], [[0, 4], 8, 8], [[3], 4, 6], [[2], 64, 8], [[2], 68, 8]] as [number[], number, number][]) {
      const n = lead.reduce((p, q) => p * q, 1);
      const p = { x: t(Array.from(randArray(n * r, 51 + r, -2, 2)), [...lead, r]), w: t(Array.from(randArray(r * c, 52 + c, -1, 1)), [r, c]), b: t(Array.from(randArray(c, 53 + c, -4, 4)), [c]) };
      const cot = t(Array.from(randArray(n * c, 54 + c)), [...lead, c]);
      const fused = (q: typeof p) => linearSoftplus(q.x, q.w, q.b);
      const composite = (q: typeof p) => softplus(add(matmul(q.x, q.w), q.b));
      const close = (what: string, a: Tensor, b: Tensor) => fusedClose(gpu, what, a, b);
      const what = `[${lead}] × ${r} → ${c}`;
      const yf = fused(p);
      expect(yf.shape).toEqual([...lead, c]);
      await close(`${what} y`, yf, composite(p));
      const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), cot)))(p), gc = valueAndGrad((q: typeof p) => sum(mul(composite(q), cot)))(p);
      for (const k of ["x", "w", "b"] as const) await close(`${what} d${k}`, gf.grads[k], gc.grads[k]);
      disposeTree([p, cot, yf, gf, gc]);
    }
    const x = t(iota(6), [2, 3]);
    expectThrow(() => linearSoftplus(x, t(iota(3), [3]), t([0], [1])), ["linearSoftplus", "[2, 3]", "[3]"]);
    expectThrow(() => linearSoftplus(x, t(iota(6), [3, 2]), t([0, 0, 0], [3])), ["linearSoftplus", "[3, 2]", "[3]"]);
    expectThrow(() => linearSoftplus(x, t(iota(8), [4, 2]), t([0, 0], [2])), ["linearSoftplus", "[2, 3]", "[4, 2]"]);
    expectThrow(() => linearSoftplus(t(iota(3), [3]), t(iota(6), [3, 2]), t([0, 0], [2])), ["linearSoftplus", "rank ≥ 2", "[3]"]);
  });

  bt("addMatmul: c + (a·w) ⊙ s as matmul, mul and add give it (bit for bit off the GPU, within a contracted multiply-add on it; fused store and scratch pass), forward and backward; bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    const { matmulTuning, SMALL_TILE, MID_TILE, MID_TILE_TALL, SHORT_K_TILE } = await import("../src/webgpu/kernels/matmul.ts");
    // on the GPU: the planner's choice, the generic small tile (guarded scalar stores), specialised
    // tiles (vec4 stores where N allows; k loop not unrolled: lavapipe compiles the unrolled one
    // for minutes; the short-K and tall tiles are MemMamba's long-context products') and the
    // untiled kernel (the scratch pass)
    const forces = gpu ? [null, SMALL_TILE, MID_TILE, MID_TILE_TALL, SHORT_K_TILE, "untiled" as const] : [null];
    const unroll = matmulTuning.unrollBig;
    matmulTuning.unrollBig = false;
    const near = async (what: string, a: Tensor, b: Tensor) => {
      const [va, vb] = [await vals(a), await vals(b)];
      expect(va.length).toBe(vb.length);
      va.forEach((v, i) => {
        if (!(Math.abs(v - vb[i]) <= 1e-5 * (1 + Math.abs(vb[i])))) throw new Error(`${what}: element ${i}: fused ${v}, composite ${vb[i]}`);
      });
    };
    try {
      for (const force of forces) {
        matmulTuning.force = force;
        // [lead, K, N]: the fusion's [L, 64]·[64, 256] shape, N not a multiple of 4, one column (the row dot), K 1, no rows
        for (const [lead, K, N] of [[[2, 37], 64, 256], [[3, 20], 17, 30], [[45], 12, 1], [[2, 5], 1, 8], [[0, 3], 4, 4]] as [number[], number, number][]) {
          const R = lead.reduce((p, q) => p * q, 1);
          for (const scaled of [false, true]) {
            const p = {
              c: t(Array.from(randArray(R * N, 71 + N, -3, 3)), [...lead, N]), a: t(Array.from(randArray(R * K, 72 + K, -2, 2)), [...lead, K]),
              w: t(Array.from(randArray(K * N, 73, -1, 1)), [K, N]), s: t(Array.from(randArray(R, 74, -2, 2)), lead),
            };
            const cot = t(Array.from(randArray(R * N, 75)), [...lead, N]);
            const fused = (q: typeof p) => addMatmul(q.c, q.a, q.w, scaled ? q.s : undefined);
            const composite = (q: typeof p) => add(q.c, scaled ? mul(matmul(q.a, q.w), reshape(q.s, [...lead, 1])) : matmul(q.a, q.w));
            const what = `${force === null ? "planned" : typeof force === "string" ? force : `${force.BM}x${force.BN}`} [${lead}] × ${K} → ${N}${scaled ? " scaled" : ""}`;
            const yf = fused(p);
            expect(yf.shape).toEqual([...lead, N]);
            await fusedClose(gpu, `${what} y`, yf, composite(p));
            // the gradients take another order of products (diag(s)·a first): close, not bit for bit
            const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), cot)))(p), gc = valueAndGrad((q: typeof p) => sum(mul(composite(q), cot)))(p);
            for (const k of ["c", "a", "w", ...(scaled ? ["s"] : [])] as const) await near(`${what} d${k}`, gf.grads[k as "c"], gc.grads[k as "c"]);
            disposeTree([p, cot, yf, gf, gc]);
          }
        }
      }
    } finally {
      matmulTuning.force = null;
      matmulTuning.unrollBig = unroll;
    }
    const c = t(iota(8), [2, 4]), a = t(iota(6), [2, 3]), w = t(iota(12), [3, 4]);
    expectThrow(() => addMatmul(c, a, t(iota(8), [4, 2])), ["addMatmul", "[2, 3]", "[4, 2]"]);
    expectThrow(() => addMatmul(t(iota(4), [1, 4]), a, w), ["addMatmul", "c [1, 4]", "[2, 4]", "no broadcast"]);
    expectThrow(() => addMatmul(c, a, w, t([1, 2, 3], [3])), ["addMatmul", "row scale [3]", "[2]"]);
    expectThrow(() => addMatmul(c, t(iota(3), [3]), w), ["addMatmul", "[3]", "[..., R, K]"]);
    expectThrow(() => addMatmul(c, a, w, fromArray(Int32Array.from([1, 2]), [2], "i32")), ["addMatmul", "f32", "i32"]);
  });

  bt("foldWeight: (a·op(b)) ⊙ s as matmul and mul give it (bit for bit off the GPU), forward and backward, in one launch each way where the backend takes it; bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    const composite = getBackend().prefersComposite?.("foldWeight") ?? false;
    // [M, K, N]: MemMamba's W_q·W_kᵀ ([256, 64]·[64, 64]ᵀ) and (W_v·W_F) ⊙ α ([64, 64]·[64, 256]),
    // odd sizes, a single row / column / inner dimension
    for (const [M, K, N] of [[256, 64, 64], [64, 64, 256], [7, 13, 5], [1, 9, 3], [5, 1, 1]]) {
      for (const transB of [false, true]) {
        for (const scaled of [false, true]) {
          const p = {
            a: t(Array.from(randArray(M * K, 81 + M, -1, 1)), [M, K]),
            b: t(Array.from(randArray(K * N, 82 + N, -1, 1)), transB ? [N, K] : [K, N]),
            s: t(Array.from(randArray(N, 83, -2, 2)), [N]),
          };
          const cot = t(Array.from(randArray(M * N, 84)), [M, N]);
          const fused = (q: typeof p) => foldWeight(q.a, q.b, scaled ? q.s : undefined, { transB });
          const plain = (q: typeof p) => (scaled ? mul(matmul(q.a, q.b, { transB }), q.s) : matmul(q.a, q.b, { transB }));
          const what = `[${M}, ${K}]·[${K}, ${N}]${transB ? "ᵀ" : ""}${scaled ? " ⊙ s" : ""}`;
          resetCounters();
          const yf = fused(p);
          expect(readCounters().launches).toBe(composite ? (scaled ? 2 : 1) : 1);
          expect(yf.shape).toEqual([M, N]);
          await fusedClose(gpu, `${what} y`, yf, plain(p));
          resetCounters();
          const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), cot)))(p);
          const fusedLaunches = readCounters().launches;
          resetCounters();
          const gc = valueAndGrad((q: typeof p) => sum(mul(plain(q), cot)))(p);
          const plainLaunches = readCounters().launches;
          // the composite: with s, the forward's mul, and backward mul's two products and a sum;
          // matmul's two products; foldWeightGrad's one launch instead of all of those
          if (!composite) expect(plainLaunches - fusedLaunches).toBe(scaled ? 5 : 1);
          for (const k of ["a", "b", ...(scaled ? ["s"] : [])] as const) await fusedClose(gpu, `${what} d${k}`, gf.grads[k as "a"], gc.grads[k as "a"]);
          disposeTree([p, cot, yf, gf, gc]);
        }
      }
    }
    const a = t(iota(6), [2, 3]);
    expectThrow(() => foldWeight(a, t(iota(8), [4, 2])), ["foldWeight", "inner dimensions", "[2, 3]", "[4, 2]"]);
    expectThrow(() => foldWeight(a, t(iota(8), [2, 4]), undefined, { transB: true }), ["foldWeight", "inner dimensions", "[2, 4]ᵀ"]);
    expectThrow(() => foldWeight(a, t(iota(12), [3, 4]), t([1, 2, 3], [3])), ["foldWeight", "column scale [3]", "[4]"]);
    expectThrow(() => foldWeight(t(iota(3), [3]), t(iota(12), [3, 4])), ["foldWeight", "[3]", "matrices"]);
    expectThrow(() => foldWeight(a, ti(iota(12), [3, 4])), ["foldWeight", "f32", "i32"]);
    disposeTree([a]);
  });

  bt("ssmGate: (y + u ⊙ D) ⊙ silu(z) as the four ops give it (bit for bit off the GPU, within a rounding of y + u·D on it), forward and backward; bad shapes named", async () => {
    const gpu = getBackend().name === "webgpu";
    // rows of whole vec4s ([2, 3, 8], [3, 4]: the GPU's vec4 shader) and not
    for (const shape of [[2, 3, 8], [5, 7], [1, 1, 1], [0, 4], [3, 4]]) {
      const n = shape.reduce((p, q) => p * q, 1), Di = shape[shape.length - 1];
      const r = (seed: number, lo = -6, hi = 6) => t(Array.from(randArray(n, seed, lo, hi)), shape);
      const p = { y: r(41), u: r(42), d: t(Array.from(randArray(Di, 43, -2, 2)), [Di]), z: r(44, -30, 30) };
      const c = r(45, -1, 1);
      const fused = (q: typeof p) => ssmGate(q.y, q.u, q.d, q.z);
      const composite = (q: typeof p) => mul(add(q.y, mul(q.u, q.d)), silu(q.z));
      const close = (what: string, a: Tensor, b: Tensor) => fusedClose(gpu, what, a, b);
      const what = `[${shape}]`;
      await close(`${what} y`, fused(p), composite(p));
      const gf = valueAndGrad((q: typeof p) => sum(mul(fused(q), c)))(p), gc = valueAndGrad((q: typeof p) => sum(mul(composite(q), c)))(p);
      for (const k of ["y", "u", "d", "z"] as const) await close(`${what} d${k}`, gf.grads[k], gc.grads[k]);
      disposeTree([p, c, gf, gc]);
    }
    const y = t(iota(6), [2, 3]);
    expectThrow(() => ssmGate(y, y, t(iota(2), [2]), y), ["ssmGate", "D [2]", "y [2, 3]"]);
    expectThrow(() => ssmGate(y, t(iota(3), [3]), t(iota(3), [3]), y), ["ssmGate", "u [3]"]);
  });

  const [B, L, S] = [2, 4, 3];
  const a = Array.from(randArray(B * L * S, 21, -1, 1));
  const bIn = Array.from(randArray(B * L * S, 22));
  const h0 = Array.from(randArray(B * S, 23));
  const w = Array.from(randArray(B * L * S, 24)); // the cotangent of h
  /** h_t = a_t h_{t-1} + b_t in float64. */
  function refScan(): number[] {
    const h = new Array<number>(B * L * S);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) {
      let prev = h0[b * S + s];
      for (let tt = 0; tt < L; tt++) {
        const i = (b * L + tt) * S + s;
        prev = a[i] * prev + bIn[i];
        h[i] = prev;
      }
    }
    return h;
  }
  bt("scan against a plain JS loop (forward)", async () => {
    const h = scan(t(a, [B, L, S]), t(bIn, [B, L, S]), t(h0, [B, S]));
    expect(h.shape).toEqual([B, L, S]);
    expectClose(await vals(h), refScan(), 1e-5);
    // a = 1, b = 1 counts up from h0
    expect(await vals(scan(t([1, 1, 1], [1, 3, 1]), t([1, 1, 1], [1, 3, 1]), t([10], [1, 1])))).toEqual([11, 12, 13]);
    expectThrow(() => scan(t(a, [B, L, S]), t(bIn, [B, L, S]), t(h0, [S, B])), ["scan", "[2, 4, 3]", "[3, 2]"]);
  });
  bt("scan's gradient against a plain reverse loop (backward)", async () => {
    const h = refScan();
    const da = new Array<number>(B * L * S), db = new Array<number>(B * L * S), dh0 = new Array<number>(B * S);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) {
      let lam = 0;
      for (let tt = L - 1; tt >= 0; tt--) {
        const i = (b * L + tt) * S + s;
        lam = w[i] + (tt + 1 < L ? a[i + S] * lam : 0);
        db[i] = lam;
        da[i] = lam * (tt > 0 ? h[i - S] : h0[b * S + s]);
        if (tt === 0) dh0[b * S + s] = a[i] * lam;
      }
    }
    const W = t(w, [B, L, S]);
    const [ga, gb, gh0] = grad((xs: Tensor[]) => sum(mul(scan(xs[0], xs[1], xs[2]), W)))([t(a, [B, L, S]), t(bIn, [B, L, S]), t(h0, [B, S])]);
    expectClose(await vals(ga), da, 1e-5);
    expectClose(await vals(gb), db, 1e-5);
    expectClose(await vals(gh0), dh0, 1e-5);
  });
});

// ---------------------------------------------------------------------------------------------
// shape errors
// ---------------------------------------------------------------------------------------------

describe("ops: shape errors name the op and both shapes", () => {
  bt("binary ops, compare and where", () => {
    const a = t(iota(6), [2, 3]), b = t(iota(4), [4]);
    expectThrow(() => add(a, b), ["add", "[2, 3]", "[4]"]);
    expectThrow(() => mul(b, a), ["mul", "[4]", "[2, 3]"]);
    expectThrow(() => maximum(t(iota(6), [3, 2]), a), ["max", "[3, 2]", "[2, 3]"]);
    expectThrow(() => gt(a, b), ["gt", "[2, 3]", "[4]"]);
    expectThrow(() => where(t([1, 0], [2, 1]), t([1, 2, 3], [3]), b), ["where", "[2, 1]", "[3]", "[4]"]);
  });
  bt("a disposed tensor is a clear error, not garbage", async () => {
    const x = t([1, 2], [2]);
    x.dispose();
    expect(x.disposed).toBe(true);
    expectThrow(() => add(x, 1), ["disposed", `#${x.id}`], Error);
    expectThrow(() => sum(x), ["disposed"], Error);
    let msg = "";
    try {
      await x.data();
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain("disposed");
    expect(msg).toContain("[2]");
    x.dispose(); // idempotent
  });
});

// ---------------------------------------------------------------------------------------------
// memory and autodiff bookkeeping
// ---------------------------------------------------------------------------------------------

describe("ops: memory", () => {
  bt("tidy disposes intermediates and keeps the result", async () => {
    const base = liveBuffers();
    const r = tidy(() => {
      const a = t([1, 2, 3], [3]);
      const b = add(a, 1);
      const c = mul(b, b);
      return sub(c, 1);
    });
    expect(liveBuffers()).toBe(base + 1);
    expect(await vals(r)).toEqual([3, 8, 15]);
    r.dispose();
    expect(liveBuffers()).toBe(base);
  });
  bt("tidy keeps every tensor of a returned tree; nested tidy; keep()", async () => {
    const base = liveBuffers();
    const out = tidy(() => {
      const a = t([1, 2], [2]);
      const inner = tidy(() => ({ sq: mul(a, a), junk: [add(a, 1)] as const }).sq);
      const kept = keep(add(a, 100));
      return { inner, list: [exp(a), 3] as const, kept };
    });
    expect(liveBuffers()).toBe(base + 3);
    expect(await vals(out.inner)).toEqual([1, 4]);
    expect(await vals(out.kept)).toEqual([101, 102]);
    disposeTree(out);
    expect(liveBuffers()).toBe(base);
  });
  bt("a number lifted to a constant (mul(x, 2), where(c, x, 0), …) is freed after the op, outside any tidy", async () => {
    const base = liveBuffers();
    const x = t([1, -2, 3], [3]);
    const c = gt(x, 0);
    const outs = [mul(x, 2), add(1, x), sub(x, 0.5), where(c, x, 0), where(c, -1, x), maximum(x, 0), add(2, 3)];
    // the outputs, x and c: no constant left behind
    expect(liveBuffers()).toBe(base + outs.length + 2);
    expect(await vals(outs[0])).toEqual([2, -4, 6]);
    expect(await vals(outs[3])).toEqual([1, 0, 3]);
    expect(await vals(outs[4])).toEqual([-1, -2, -1]);
    expect(await vals(outs[6])).toEqual([5]);
    disposeTree([outs, x, c]);
    expect(liveBuffers()).toBe(base);
    // under a gradient the constant stays for the tape until the gradient is done
    await expectNoLeak(async () => {
      const p = t([1, 2], [2]);
      const g = grad((q: Tensor) => sum(mul(q, 3)))(p);
      expect(await vals(g)).toEqual([3, 3]);
      disposeTree([g, p]);
    });
  });
  bt("tidy disposes everything when its function throws", () => {
    const base = liveBuffers();
    expect(() =>
      tidy(() => {
        const a = t([1, 2], [2]);
        add(a, 1);
        throw new Error("boom");
      })
    ).toThrow("boom");
    expect(liveBuffers()).toBe(base);
  });
  bt("valueAndGrad leaves nothing behind once value and grads are disposed", async () => {
    await expectNoLeak(async () => {
      const params = { w: t([0.5, -1, 2, 0.1, 0.3, -0.7], [3, 2]), b: t([0.1, 0.2], [2]) };
      const x = t([1, 2, 3, 4, 5, 6], [2, 3]);
      const y = ti([1, 0], [2]);
      const { value, grads } = valueAndGrad((p: typeof params, xx: Tensor, yy: Tensor) =>
        mean(crossEntropy(add(matmul(xx, p.w), p.b), yy))
      )(params, x, y);
      expect(Number.isFinite(await value.item())).toBe(true);
      expect(grads.w.shape).toEqual([3, 2]);
      expect(grads.b.shape).toEqual([2]);
      value.dispose();
      disposeTree(grads);
      disposeTree(params);
      x.dispose();
      y.dispose();
    });
  });
  bt("valueAndGrad frees its tape when f throws", async () => {
    await expectNoLeak(() => {
      const p = t([1, 2], [2]);
      expect(() => valueAndGrad((q: Tensor) => mul(q, 2))(p)).toThrow("scalar");
      p.dispose();
    });
  });
  bt("valueAndGrad: a parameter f never uses gets a zero gradient", async () => {
    const [g0, g1] = grad((xs: Tensor[]) => sum(mul(xs[0], 3)))([t([1, 2], [2]), t([5, 6, 7], [3])]);
    expect(await vals(g0)).toEqual([3, 3]);
    expect(await vals(g1)).toEqual([0, 0, 0]);
  });
  bt("noGrad records nothing: its results carry no gradient", async () => {
    const x = t([1, 2, 3], [3]);
    const { value, grads } = valueAndGrad((p: Tensor) => {
      const frozen = noGrad(() => mul(p, 3));
      expect(frozen.requiresGrad).toBe(false);
      return add(sum(mul(p, 2)), sum(mul(frozen, p)));
    })(x);
    // d/dp [2Σp + Σ (3p)·p] with 3p held constant = 2 + 3p
    expect(await value.item()).toBe(12 + 42);
    expect(await vals(grads)).toEqual([5, 8, 11]);
    const outside = noGrad(() => add(x, 1));
    expect(outside.requiresGrad).toBe(false);
  });
  bt("valueAndGrad over an ordinary op inside tidy keeps value and grads in the caller's scope", async () => {
    const base = liveBuffers();
    const g = tidy(() => {
      const x = t([1, 2], [2]);
      const { value, grads } = valueAndGrad((p: Tensor) => sum(mul(p, p)))(x);
      value.dispose();
      return grads;
    });
    expect(liveBuffers()).toBe(base + 1);
    expect(await vals(g)).toEqual([2, 4]);
    g.dispose();
    expect(liveBuffers()).toBe(base);
  });
});
