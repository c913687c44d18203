/**
 * The shape and dtype checks the neural-network primitives share (softmax.ts, rms-norm.ts,
 * linear-fused.ts, conv.ts, scan.ts): f32 inputs, a non-empty last axis, and the shape rule of a
 * row VJP primitive.
 */
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";

export function needF32(op: string, ...xs: Tensor[]): void {
  for (const x of xs) if (x.dtype !== "f32") throw new ShapeError(`${op}: expects f32, got ${x.dtype} ${showShape(x.shape)}`);
}
export function lastAxisNonEmpty(op: string, x: Tensor): void {
  if (x.rank < 1 || x.shape[x.rank - 1] === 0) throw new ShapeError(`${op}: needs a non-empty last axis, got ${showShape(x.shape)}`);
}

/** The shape rule of a row VJP primitive [g, a]: two f32 tensors of one shape (a named `aName`). */
export function rowGradShape(op: string, aName: string) {
  return ([g, a]: readonly Tensor[]) => {
    needF32(op, g, a);
    if (!sameShape(g.shape, a.shape)) throw new ShapeError(`${op}: g ${showShape(g.shape)} and ${aName} ${showShape(a.shape)} must have one shape`);
    return { shape: [...a.shape], dtype: "f32" as const };
  };
}
