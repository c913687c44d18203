/** Movement primitives: reshape (a view), transpose, slice, pad, concat; broadcastTo. */
import { bind, definePrimitive } from "../dispatch.ts";
import { broadcastShapes, normAxis, sameShape, ShapeError, showShape, sizeOf, type Shape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { add, zeros } from "./elementwise.ts";

definePrimitive("reshape", {
  view: true,
  shape: ([x], p) => {
    if (sizeOf(p.shape) !== x.size || p.shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new ShapeError(`reshape: cannot reshape ${showShape(x.shape)} (${x.size} elements) to ${showShape(p.shape)}`);
    }
    return { shape: [...p.shape], dtype: x.dtype };
  },
  flops: () => 0,
  vjp: (g, [x]) => [reshape(g, [...x.shape])],
});

definePrimitive("transpose", {
  shape: ([x], p) => {
    const ok = p.perm.length === x.rank && [...p.perm].sort((a, b) => a - b).every((v, i) => v === i);
    if (!ok) throw new ShapeError(`transpose: permutation [${p.perm}] does not fit shape ${showShape(x.shape)}`);
    return { shape: p.perm.map((a) => x.shape[a]), dtype: x.dtype };
  },
  flops: () => 0,
  vjp: (g, _x, _y, { perm }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((a, i) => (inv[a] = i));
    return [transpose(g, inv)];
  },
});

definePrimitive("slice", {
  shape: ([x], p) => {
    const sizes = p.sizes;
    if (p.starts.length !== x.rank || sizes.length !== x.rank) {
      throw new ShapeError(`slice: starts [${p.starts}] / sizes [${sizes}] do not match the rank of ${showShape(x.shape)}`);
    }
    for (let i = 0; i < x.rank; i++) {
      if (p.starts[i] < 0 || sizes[i] < 0 || p.starts[i] + sizes[i] > x.shape[i]) {
        throw new ShapeError(`slice: [${p.starts[i]}, ${p.starts[i] + sizes[i]}) is outside axis ${i} of ${showShape(x.shape)}`);
      }
    }
    return { shape: [...sizes], dtype: x.dtype };
  },
  flops: () => 0,
  vjp: (g, [x], _y, { starts }) => [
    bind("pad", [g], { before: starts, value: 0, after: x.shape.map((d, i) => d - starts[i] - g.shape[i]) }),
  ],
});

definePrimitive("pad", {
  shape: ([x], p) => {
    const after = p.after;
    if (p.before.length !== x.rank || after.length !== x.rank || [...p.before, ...after].some((v) => !Number.isInteger(v) || v < 0)) {
      throw new ShapeError(`pad: before [${p.before}] / after [${after}] do not fit shape ${showShape(x.shape)}`);
    }
    return { shape: x.shape.map((d, i) => d + p.before[i] + after[i]), dtype: x.dtype };
  },
  flops: () => 0,
  vjp: (g, [x], _y, { before }) => [slice(g, before, [...x.shape])],
});

definePrimitive("concat", {
  shape: (xs, { axis }) => {
    if (xs.length === 0) throw new ShapeError("concat: no tensors given");
    const first = xs[0];
    let total = 0;
    for (const t of xs) {
      if (t.dtype !== first.dtype) {
        throw new ShapeError(`concat: dtypes differ: ${first.dtype} ${showShape(first.shape)} and ${t.dtype} ${showShape(t.shape)}`);
      }
      const ok = t.rank === first.rank && t.shape.every((d, i) => i === axis || d === first.shape[i]);
      if (!ok) throw new ShapeError(`concat: shapes ${showShape(first.shape)} and ${showShape(t.shape)} differ outside axis ${axis}`);
      total += t.shape[axis];
    }
    const shape = [...first.shape];
    shape[axis] = total;
    return { shape, dtype: first.dtype };
  },
  flops: () => 0,
  vjp: (g, xs, _y, { axis }, needs) => {
    let off = 0;
    return xs.map((t, k) => {
      const starts = g.shape.map((_, i) => (i === axis ? off : 0));
      off += t.shape[axis];
      return needs?.[k] === false ? null : slice(g, starts, [...t.shape]);
    });
  },
});

/** Same data, another shape; one dimension may be -1 (inferred). Shares storage. */
export function reshape<S extends Shape>(x: Tensor, shape: S): Tensor<S> {
  const s = [...shape] as number[];
  const infer = s.indexOf(-1);
  if (infer >= 0) {
    const rest = sizeOf(s.filter((_, i) => i !== infer));
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError(`reshape: cannot infer -1 in ${showShape(s)} from ${showShape(x.shape)}`);
    s[infer] = x.size / rest;
  }
  if (sameShape(s, x.shape)) return x as Tensor<S>;
  return bind("reshape", [x], { shape: s }) as Tensor<S>;
}

/** Permutes axes (default: reverses them). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  const p = perm ? perm.map((a) => normAxis("transpose", a, x.rank)) : x.shape.map((_, i) => x.rank - 1 - i);
  if (p.every((a, i) => a === i)) return x;
  return bind("transpose", [x], { perm: p });
}

/** Swaps the last two axes. */
export function mT(x: Tensor): Tensor {
  if (x.rank < 2) throw new ShapeError(`mT: needs rank >= 2, got ${showShape(x.shape)}`);
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

/** A box of `x`: `sizes[i]` elements from `starts[i]` on each axis (-1 in sizes: to the end). */
export function slice(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  const st = [...starts];
  const sz = sizes.map((s, i) => (s === -1 ? x.shape[i] - st[i] : s));
  if (sz.every((s, i) => s === x.shape[i]) && st.every((v) => v === 0)) return x;
  return bind("slice", [x], { starts: st, sizes: sz });
}

/** Slice along one axis: elements [start, end) (negative indices count from the end). */
export function sliceAxis(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis("sliceAxis", axis, x.rank);
  const n = x.shape[a];
  const s = start < 0 ? n + start : start;
  const e = end === undefined ? n : end < 0 ? n + end : end;
  const starts = x.shape.map((_, i) => (i === a ? s : 0));
  const sizes = x.shape.map((d, i) => (i === a ? e - s : d));
  return slice(x, starts, sizes);
}

/** Pads with a constant: `before[i]` / `after[i]` elements on each axis. */
export function pad(x: Tensor, before: readonly number[], after: readonly number[], value = 0): Tensor {
  if (before.every((v) => v === 0) && after.every((v) => v === 0)) return x;
  return bind("pad", [x], { before: [...before], after: [...after], value });
}

/** Joins tensors along an axis. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError("concat: no tensors given");
  const a = normAxis("concat", axis, xs[0].rank);
  if (xs.length === 1) return xs[0];
  return bind("concat", xs, { axis: a });
}

/** Stacks same-shaped tensors along a new axis. */
export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new ShapeError("stack: no tensors given");
  const first = xs[0];
  for (const t of xs) {
    if (t.dtype !== first.dtype || !sameShape(t.shape, first.shape)) {
      throw new ShapeError(`stack: tensors must have one shape and dtype, got ${first.dtype} ${showShape(first.shape)} and ${t.dtype} ${showShape(t.shape)}`);
    }
  }
  const r = first.rank + 1;
  if (!Number.isInteger(axis) || axis < -r || axis >= r) {
    throw new ShapeError(`stack: axis ${axis} is out of range for tensors of shape ${showShape(first.shape)} (expected an integer in ${-r} .. ${r - 1})`);
  }
  const a = axis < 0 ? axis + r : axis;
  return concat(xs.map((t) => reshape(t, [...t.shape.slice(0, a), 1, ...t.shape.slice(a)])), a);
}

/** Broadcasts to a shape (materialised). */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const s = broadcastShapes("broadcastTo", x.shape, shape);
  if (!sameShape(s, shape)) throw new ShapeError(`broadcastTo: ${showShape(x.shape)} does not broadcast to ${showShape(shape)}`);
  return add(x, zeros(shape));
}
