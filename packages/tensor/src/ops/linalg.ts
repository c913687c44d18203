/** Batched matrix multiplication with broadcast batch dimensions. */
import { bind, bindMulti, definePrimitive, primitive } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { broadcastShapes, sameShape, ShapeError, showShape, sizeOf, type CheckMatmul, type MatmulShape, type Shape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, mul, where } from "./elementwise.ts";
import { reshape } from "./movement.ts";
import { max, sum, sumTo } from "./reduce.ts";

function dims(x: Tensor, trans: boolean): [number, number] {
  const r = x.shape[x.rank - 2], c = x.shape[x.rank - 1];
  return trans ? [c, r] : [r, c];
}

definePrimitive("matmul", {
  shape: ([a, b], { transA, transB }) => {
    if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: needs rank >= 2, got ${showShape(a.shape)} and ${showShape(b.shape)}`);
    if (a.dtype !== "f32" || b.dtype !== "f32") throw new ShapeError(`matmul: expects f32, got ${a.dtype} ${showShape(a.shape)} and ${b.dtype} ${showShape(b.shape)}`);
    const [m, k] = dims(a, transA);
    const [k2, n] = dims(b, transB);
    if (k !== k2) {
      throw new ShapeError(`matmul: inner dimensions differ: a ${showShape(a.shape)}${transA ? "ᵀ" : ""} has ${k} columns, b ${showShape(b.shape)}${transB ? "ᵀ" : ""} has ${k2} rows`);
    }
    let batch: number[];
    try {
      batch = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
    } catch {
      throw new ShapeError(`matmul: batch dimensions of a ${showShape(a.shape)} and b ${showShape(b.shape)} do not broadcast`);
    }
    return { shape: [...batch, m, n], dtype: "f32" };
  },
  flops: ([a], out, { transA }) => 2 * sizeOf(out.shape) * dims(a, transA)[1],
  vjp: (g, [a, b], _y, { transA, transB }, needs) => {
    // C = op(A)·op(B); dop(A) = g·op(B)ᵀ, dop(B) = op(A)ᵀ·g, transposed back where op transposed
    // (each only where that input's gradient is wanted: not for a constant operand)
    const da = needs?.[0] === false ? null : sumTo(transA ? mm(b, g, transB, true) : mm(g, b, false, !transB), a.shape);
    if (needs?.[1] === false) return [da, null];
    const foldB = foldedWeightGrad(g, a, b, transA, transB);
    if (foldB) return [da, foldB];
    const db = transB ? mm(g, a, true, transA) : mm(a, g, !transA, false);
    return [da, sumTo(db, b.shape)];
  },
});

/**
 * dB of a B shared by every batch element (a weight: x [.., L, d] @ W [d, e]) as ONE product over
 * all rows, Xᵀ·G with K = batch·L, instead of a batched product per element and a sum over the
 * batch afterwards: no [batch, d, e] partials, and one long-K GEMM that a backend can split well.
 * Needs A untransposed and unbroadcast (its rows then stack contiguously); null otherwise.
 */
function foldedWeightGrad(g: Tensor, a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor | null {
  const batchG = sizeOf(g.shape.slice(0, -2));
  if (transA || batchG < 2 || sizeOf(b.shape.slice(0, -2)) !== 1 || sizeOf(a.shape.slice(0, -2)) !== batchG) return null;
  const rows = batchG * a.shape[a.rank - 2];
  const af = reshape(a, [rows, a.shape[a.rank - 1]]);
  const gf = reshape(g, [rows, g.shape[g.rank - 1]]);
  return reshape(transB ? mm(gf, af, true, false) : mm(af, gf, true, false), b.shape);
}

function mm(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  return bind("matmul", [a, b], { transA, transB });
}

/**
 * @internal The shape an operand has after its optional transpose: the last two dims swapped when T is
 * `true`, as is when `false`, unchecked (`Shape`) when only known at run time (`boolean`).
 */
type Op<S extends Shape, T extends boolean> = [T] extends [false] ? S
  : [T] extends [true] ? (S extends readonly [...infer R extends Shape, infer X, infer Y] ? [...R, Y, X] : Shape)
  : Shape;

/**
 * a @ b over the last two axes, broadcasting the leading (batch) axes. 1-D operands are not
 * promoted: reshape them. A literal inner-dimension mismatch fails to compile (after the
 * transposes that `opts` asks for, when they are literal `true`/`false`).
 */
export function matmul<A extends Shape, B extends Shape, TA extends boolean = false, TB extends boolean = false>(
  a: Tensor<A>,
  b: Tensor<B> & CheckMatmul<Op<A, TA>, Op<B, TB>, [TA] extends [true] ? "aᵀ" : "a", [TB] extends [true] ? "bᵀ" : "b">,
  opts: { transA?: TA; transB?: TB } = {},
): Tensor<MatmulShape<Op<A, TA>, Op<B, TB>>> {
  return mm(a, b as Tensor, opts.transA ?? false, opts.transB ?? false) as Tensor<MatmulShape<Op<A, TA>, Op<B, TB>>>;
}

definePrimitive("matmulRows", {
  shape: ([x, w, rows]) => {
    if (x.dtype !== "f32" || w.dtype !== "f32" || rows.dtype !== "f32") {
      throw new ShapeError(`matmulRows: expects f32 x, w and rows, got ${x.dtype}, ${w.dtype} and ${rows.dtype}`);
    }
    if (x.rank < 2 || w.rank !== 2 || x.shape[x.rank - 1] !== w.shape[0]) {
      throw new ShapeError(`matmulRows: x ${showShape(x.shape)} and w ${showShape(w.shape)} must be [..., R, K] and [K, N]`);
    }
    if (!sameShape(rows.shape, x.shape.slice(0, -1))) {
      throw new ShapeError(`matmulRows: rows ${showShape(rows.shape)} must be x's shape without its last axis, ${showShape(x.shape.slice(0, -1))}`);
    }
    return { shape: [...x.shape.slice(0, -1), w.shape[1]], dtype: "f32" };
  },
  // only the kept rows cost anything; the count is not known before the kernel runs
  flops: ([x, w]) => 2 * sizeOf(x.shape) * w.shape[1],
  vjp: (g, [x, w, rows], _y, _p, needs) => {
    // a dropped row's output is the constant 0: no gradient reaches its x row, nor w through it
    const keep = reshape(rows, [...rows.shape, 1]);
    const dx = needs?.[0] === false ? null : where(keep, mm(g, w, false, true), 0);
    if (needs?.[1] === false) return [dx, null, null];
    const R = sizeOf(rows.shape), K = w.shape[0], N = w.shape[1];
    return [dx, mm(reshape(where(keep, x, 0), [R, K]), reshape(where(keep, g, 0), [R, N]), true, false), null];
  },
});

/** matmulRowsMax's scale: f32 of rows' shape (the primitive and its composite path check it alike). */
function checkRowsScale(rows: Tensor, scale: Tensor): void {
  if (scale.dtype !== "f32" || !sameShape(scale.shape, rows.shape)) {
    throw new ShapeError(`matmulRowsMax: the scale must be f32 of rows' shape ${showShape(rows.shape)}, got ${scale.dtype} ${showShape(scale.shape)}`);
  }
}

definePrimitive("matmulRowsMax", {
  shape: ([x, w, rows, scale], { r }) => {
    const { shape } = primitive("matmulRows").shape([x, w, rows], {});
    const N = shape[shape.length - 1];
    if (!Number.isInteger(r) || r < 1 || N % r !== 0) {
      throw new ShapeError(`matmulRowsMax: the window r = ${r} must be a positive integer that divides w's ${N} columns`);
    }
    if (scale) checkRowsScale(rows, scale);
    return { shape: [...shape.slice(0, -1), N / r], dtype: "f32" };
  },
  flops: ([x, w]) => 2 * sizeOf(x.shape) * w.shape[1],
  vjp: () => {
    throw new Error("matmulRowsMax has no gradient: it serves forward-only paths (differentiate max(reshape(matmulRows(x, w, rows), [..., N / r, r]), -1) instead)");
  },
});

/**
 * x · w over the rows that `rows` keeps: out[i] = x[i]·w where rows[i] ≠ 0, else 0 (whatever x[i]
 * holds, NaN included). x [..., R, K], w [K, N], rows [..., R] f32 (x's shape without its last
 * axis) → [..., R, N]. A kept row has the bits of the same row of `matmul(x, w)` on the CPU.
 *
 * Why: a product whose rows are mostly never read (MemMamba's notes: only the tokens that ever
 * enter a pool) need not compute them. The GPU kernel skips a dropped row at the cost of writing
 * its zeros; a backend that prefers it (wasm: its SIMD matmul) runs where(rows, matmul(x, w), 0).
 */
export function matmulRows(x: Tensor, w: Tensor, rows: Tensor): Tensor {
  if (getBackend().prefersComposite?.("matmulRows") && x.rank >= 2 && w.rank === 2 && rows.rank === x.rank - 1) {
    return where(reshape(rows, [...rows.shape, 1]), mm(x, w, false, false), 0);
  }
  return bind("matmulRows", [x, w, rows], {});
}

/**
 * matmulRows with its columns max-pooled in groups of r: max(reshape(matmulRows(x, w, rows),
 * [..., R, N / r, r]), -1) → [..., R, N / r], the same numbers (a max is exact), without the
 * [..., R, N] product in memory (MemMamba's notes: a 60K-token chunk's [61440, 256] product, a few
 * hundred rows of it kept, then pooled by 4). With `scale` (f32, rows' shape) each output row is
 * then multiplied by its scale, as mul(pooled, scale[..., None]) does (a dropped row's 0 too):
 * the notes' I_token. No gradient: a caller that records one takes the composite. A backend that
 * prefers it (wasm) runs the composite.
 */
export function matmulRowsMax(x: Tensor, w: Tensor, rows: Tensor, r: number, scale?: Tensor): Tensor {
  if (getBackend().prefersComposite?.("matmulRowsMax") && x.rank >= 2 && w.rank === 2 && Number.isInteger(r) && r >= 1 && w.shape[1] % r === 0) {
    const y = matmulRows(x, w, rows);
    const pooled = max(reshape(y, [...y.shape.slice(0, -1), y.shape[y.rank - 1] / r, r]), -1);
    if (!scale) return pooled;
    checkRowsScale(rows, scale);
    return mul(pooled, reshape(scale, [...scale.shape, 1]));
  }
  return bind("matmulRowsMax", scale ? [x, w, rows, scale] : [x, w, rows], { r });
}

/** addMatmul's operands: a [..., R, K], w [K, N], c [..., R, N] (a's batch), s [..., R] when given; all f32. */
function addMatmulShapes(c: Tensor, a: Tensor, w: Tensor, s: Tensor | undefined): number[] {
  const ss = s ? [s] : [];
  for (const t of [c, a, w, ...ss]) if (t.dtype !== "f32") throw new ShapeError(`addMatmul: expects f32 operands, got ${[c, a, w, ...ss].map((u) => u.dtype).join(", ")}`);
  if (a.rank < 2 || w.rank !== 2 || a.shape[a.rank - 1] !== w.shape[0]) {
    throw new ShapeError(`addMatmul: a ${showShape(a.shape)} and w ${showShape(w.shape)} must be [..., R, K] and [K, N]`);
  }
  const shape = [...a.shape.slice(0, -1), w.shape[1]];
  if (!sameShape(c.shape, shape)) throw new ShapeError(`addMatmul: c ${showShape(c.shape)} must be the product's shape ${showShape(shape)} (no broadcast)`);
  if (s && !sameShape(s.shape, a.shape.slice(0, -1))) {
    throw new ShapeError(`addMatmul: the row scale ${showShape(s.shape)} must be a's shape without its last axis, ${showShape(a.shape.slice(0, -1))}`);
  }
  return shape;
}

definePrimitive("addMatmul", {
  shape: ([c, a, w, s]) => ({ shape: addMatmulShapes(c, a, w, s), dtype: "f32" }),
  flops: ([c, a, w, s]) => 2 * sizeOf(a.shape) * w.shape[1] + sizeOf(c.shape) * (s ? 2 : 1),
  // c + diag(s)·(a·w) = c + (diag(s)·a)·w: the matmul's VJP at a ⊙ s, then through the scaling
  // (t = g·wᵀ is [.., R, K]: neither gradient makes an [.., R, N] product beside g)
  vjp: (g, [c, a, w, s], _y, _p, needs) => {
    const dc = needs?.[0] === false ? null : g;
    if (!s) {
      const [da, dw] = primitive("matmul").vjp(g, [a, w], g, { transA: false, transB: false }, [needs?.[1] ?? true, needs?.[2] ?? true]);
      return [dc, da, dw];
    }
    const sc = reshape(s, [...s.shape, 1]);
    const wantA = needs?.[1] !== false, wantS = needs?.[3] !== false;
    // dw = (a ⊙ s)ᵀ·g; t = g·wᵀ does not read a, so a alone stands in when dw is not wanted
    const as = needs?.[2] === false ? a : mul(a, sc);
    const [t, dw] = primitive("matmul").vjp(g, [as, w], g, { transA: false, transB: false }, [wantA || wantS, needs?.[2] ?? true]);
    return [dc, wantA ? mul(t!, sc) : null, dw, wantS ? sum(mul(a, t!), -1) : null];
  },
});

/**
 * c + (a·w) ⊙ s: a matmul added to c (torch's addmm, with c of the product's shape), its rows
 * first scaled by `s` where given. a [..., R, K], w [K, N], c [..., R, N], s [..., R] → [..., R, N].
 * The numbers of add(c, mul(matmul(a, w), s[..., None])) (or add(c, matmul(a, w))): bit for bit on
 * the CPU; on a GPU the scale and the add run in the matmul's store (up to a contracted
 * multiply-add). A backend that prefers it (wasm: its SIMD ops) runs those ops.
 *
 * Why: a residual stream that takes a projection (MemMamba's fusion, Eq. 12: x + F(c)) reads and
 * writes its [.., R, N] rows once, where matmul then add wrote the product and read it back; a
 * per-row gate (the read gate's I_state) rides along instead of scaling the read first.
 */
export function addMatmul(c: Tensor, a: Tensor, w: Tensor, s?: Tensor): Tensor {
  if (getBackend().prefersComposite?.("addMatmul")) {
    addMatmulShapes(c, a, w, s);
    const p = mm(a, w, false, false);
    return add(c, s ? mul(p, reshape(s, [...s.shape, 1])) : p);
  }
  return bind("addMatmul", s ? [c, a, w, s] : [c, a, w], {});
}

/** foldWeight's operands: a [M, K], b [K, N] (transB: [N, K]), s [N] when given; all f32. Returns [M, K, N]. */
function foldShapes(a: Tensor, b: Tensor, s: Tensor | undefined, transB: boolean): [number, number, number] {
  const ss = s ? [s] : [];
  for (const t of [a, b, ...ss]) if (t.dtype !== "f32") throw new ShapeError(`foldWeight: expects f32 operands, got ${[a, b, ...ss].map((u) => u.dtype).join(", ")}`);
  if (a.rank !== 2 || b.rank !== 2) throw new ShapeError(`foldWeight: a ${showShape(a.shape)} and b ${showShape(b.shape)} must be matrices`);
  const [M, K] = a.shape;
  const [K2, N] = transB ? [b.shape[1], b.shape[0]] : [b.shape[0], b.shape[1]];
  if (K !== K2) throw new ShapeError(`foldWeight: inner dimensions differ: a ${showShape(a.shape)} has ${K} columns, b ${showShape(b.shape)}${transB ? "ᵀ" : ""} has ${K2} rows`);
  if (s && !sameShape(s.shape, [N])) throw new ShapeError(`foldWeight: the column scale ${showShape(s.shape)} must be [${N}] (the product's columns)`);
  return [M, K, N];
}

definePrimitive("foldWeight", {
  shape: ([a, b, s], { transB }) => {
    const [M, , N] = foldShapes(a, b, s, transB);
    return { shape: [M, N], dtype: "f32" };
  },
  flops: ([a, b, s], _out, { transB }) => {
    const [M, K, N] = foldShapes(a, b, s, transB);
    return 2 * M * K * N + (s ? M * N : 0);
  },
  // one multi-output launch for the three gradients (foldWeightGrad), the composite's VJPs
  // (mul's, then matmul's) where the backend has no runMulti
  vjp: (g, [a, b, s], _y, { transB }, needs) => {
    // the gradients have the inputs' shapes (checked when the op was bound)
    const shapes = [a, b, ...(s ? [s] : [])].map((t) => ({ shape: [...t.shape], dtype: "f32" as const }));
    const outs = bindMulti("foldWeightGrad", s ? [g, a, b, s] : [g, a, b], shapes, { transB });
    if (outs) {
      const res = outs.map((t, i) => (needs?.[i] === false ? (t.dispose(), null) : t));
      return s ? res : [res[0], res[1]];
    }
    const p = s ? mm(a, b, false, transB) : null;
    const gp = s ? mul(g, s) : g;
    const [da, db] = primitive("matmul").vjp(gp, [a, b], gp, { transA: false, transB }, [needs?.[0] ?? true, needs?.[1] ?? true]);
    return s ? [da, db, needs?.[2] === false ? null : sumTo(mul(g, p!), s.shape)] : [da, db];
  },
});

/**
 * (a·op(b)) ⊙ s[None, :]: a [M, K], b [K, N] (`transB`: [N, K]), s [N] (a scale of each column,
 * optional) → [M, N]. The numbers of mul(matmul(a, b, { transB }), s) (bit for bit on the CPU); on
 * a GPU one launch each way where the composite takes two forward and five backward.
 *
 * Why: a model that folds one weight into another (MemMamba's W_q·W_kᵀ for its pool reads and
 * (W_v·W_F) ⊙ α for its fusion, attention.ts and fusion.ts) does it for every layer at every
 * step, and those small products' launches and their gradients' (matmul's two, mul's two and a
 * sum) cost more than their arithmetic. For empty and larger products (over 2²² multiply-adds)
 * and where the backend prefers it (wasm: its SIMD matmul), the composite runs.
 */
export function foldWeight(a: Tensor, b: Tensor, s?: Tensor, opts: { transB?: boolean } = {}): Tensor {
  const transB = opts.transB ?? false;
  const [M, K, N] = foldShapes(a, b, s, transB);
  if (M * K * N === 0 || M * K * N > FOLD_MAX_WORK || getBackend().prefersComposite?.("foldWeight")) {
    const p = mm(a, b, false, transB);
    return s ? mul(p, s) : p;
  }
  return bind("foldWeight", s ? [a, b, s] : [a, b], { transB });
}

/** The most multiply-adds foldWeight takes as one primitive (its GPU kernels give each output element 16 threads, each walking a sixteenth of its sum). */
export const FOLD_MAX_WORK: number = 2 ** 22;
