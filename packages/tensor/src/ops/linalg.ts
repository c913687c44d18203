/** Batched matrix multiplication with broadcast batch dimensions. */
import { bind, definePrimitive } from "../dispatch.ts";
import { broadcastShapes, ShapeError, showShape, sizeOf, type CheckMatmul, type MatmulShape, type Shape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { reshape } from "./movement.ts";
import { sumTo } from "./reduce.ts";

function dims(x: Tensor, trans: boolean): [number, number] {
  const r = x.shape[x.rank - 2], c = x.shape[x.rank - 1];
  return trans ? [c, r] : [r, c];
}

definePrimitive("matmul", {
  shape: ([a, b], { transA, transB }) => {
    if (a.rank < 2 || b.rank < 2) throw new ShapeError(`matmul: needs rank >= 2, got ${showShape(a.shape)} and ${showShape(b.shape)}`);
    if (a.dtype !== "f32" || b.dtype !== "f32") throw new ShapeError(`matmul: expects f32, got ${a.dtype} and ${b.dtype}`);
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
