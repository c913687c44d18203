/** Reductions over axes: sum and max (mean is sum scaled). */
import { bind, definePrimitive, noSecondOrder } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { normAxis, sameShape, ShapeError, showShape, type Shape } from "../shape.ts";
import { Tensor } from "../tensor.ts";
import { div, eq, mul } from "./elementwise.ts";
import { broadcastTo, reshape } from "./movement.ts";

function reducedShape(shape: readonly number[], axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

// The primitive keeps reduced axes as size 1 (keepDims); the user's functions reshape.
definePrimitive("reduce", {
  shape: ([x], p) => {
    if (x.dtype !== "f32") throw new ShapeError(`${p.op}: expects f32, got ${x.dtype} ${showShape(x.shape)}`);
    for (const a of p.axes) {
      if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw new ShapeError(`${p.op}: axis ${a} out of range for shape ${showShape(x.shape)}`);
    }
    if (p.op === "max") for (const a of p.axes) if (x.shape[a] === 0) throw new ShapeError(`max: axis ${a} of shape ${showShape(x.shape)} is empty`);
    return { shape: reducedShape(x.shape, p.axes), dtype: "f32" };
  },
  flops: ([x]) => x.size,
  vjp: (g, [x], y, { op, axes }) => {
    if (op === "sum") return [broadcastTo(g, x.shape)];
    // max: the gradient goes to the maxima, split evenly between ties. One maxGrad launch, or the
    // composite (about six launches) where the backend prefers it; the two give the same bits.
    if (!getBackend().prefersComposite?.("maxGrad")) return [bind("maxGrad", [x, y, g], { axes })];
    return [maxGradComposite(x, y, g)];
  },
});

/**
 * The max reduction's VJP from other ops: broadcast g, mask the maxima, count the ties of each
 * group, g · (mask / count). What maxGrad's kernels compute, step by step. A group whose max is
 * NaN has no element equal to it (NaN ≠ NaN): count 0, so 0 / 0 gives NaN for its whole group.
 * g is broadcast by adding zeros, which turns a −0 into +0 (the kernels do the same).
 */
function maxGradComposite(x: Tensor, y: Tensor, g: Tensor): Tensor {
  const gb = broadcastTo(g, x.shape);
  const mask = eq(x, y);
  const count = reduceKeep("sum", mask, allAxesWhere(x.shape, y.shape));
  return mul(gb, div(mask, count));
}

definePrimitive("maxGrad", {
  shape: ([x, y, g], p) => {
    for (const [name, t] of [["x", x], ["y", y], ["g", g]] as const) {
      if (t.dtype !== "f32") throw new ShapeError(`maxGrad: ${name} must be f32, got ${t.dtype} ${showShape(t.shape)}`);
    }
    for (const a of p.axes) {
      if (!Number.isInteger(a) || a < 0 || a >= x.rank) throw new ShapeError(`maxGrad: axis ${a} out of range for x ${showShape(x.shape)}`);
      if (x.shape[a] === 0) throw new ShapeError(`maxGrad: axis ${a} of x ${showShape(x.shape)} is empty`);
    }
    const want = reducedShape(x.shape, p.axes);
    if (!sameShape(y.shape, want) || !sameShape(g.shape, want)) {
      throw new ShapeError(
        `maxGrad: y ${showShape(y.shape)} and g ${showShape(g.shape)} must both be ${showShape(want)} (x ${showShape(x.shape)} with axes [${p.axes.join(", ")}] kept as 1)`,
      );
    }
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([x]) => 4 * x.size,
  vjp: noSecondOrder("maxGrad"),
});

function allAxesWhere(full: readonly number[], reduced: readonly number[]): number[] {
  const axes: number[] = [];
  full.forEach((d, i) => {
    if (reduced[i] !== d) axes.push(i);
  });
  return axes;
}

function reduceKeep(op: "sum" | "max", x: Tensor, axes: number[]): Tensor {
  if (axes.length === 0) return x;
  return bind("reduce", [x], { op, axes });
}

function normAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === "number" ? [axes] : axes;
  const norm = list.map((a) => normAxis(op, a, x.rank));
  const out = [...new Set(norm)];
  if (out.length !== norm.length) {
    const dup = norm.find((a, i) => norm.indexOf(a) !== i);
    throw new ShapeError(`${op}: axes [${list.join(", ")}] name axis ${dup} more than once (shape ${showShape(x.shape)}); expected distinct axes`);
  }
  return out.sort((a, b) => a - b);
}

function finish(r: Tensor, x: Tensor, axes: number[], keepDims: boolean): Tensor {
  if (keepDims) return r;
  return reshape(r, x.shape.filter((_, i) => !axes.includes(i)));
}

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes("sum", x, axes);
  return finish(reduceKeep("sum", x, ax), x, ax, keepDims);
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes("mean", x, axes);
  let n = 1;
  for (const a of ax) n *= x.shape[a];
  return mul(sum(x, ax, keepDims), 1 / n);
}

/** Maximum over `axes` (all when omitted); the gradient goes to the maxima. */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes("max", x, axes);
  return finish(reduceKeep("max", x, ax), x, ax, keepDims);
}

/**
 * Sums `g` down to `shape` (undoing a broadcast): the gradient rule of every broadcasting op.
 */
export function sumTo<S extends Shape>(g: Tensor, shape: S): Tensor<S> {
  if (sameShape(g.shape, shape)) return g as Tensor<S>;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new ShapeError(`sumTo: cannot sum ${showShape(g.shape)} down to ${showShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = reduceKeep("sum", g, axes);
  return reshape(r, shape);
}
