/**
 * Shapes, at the type level and at run time.
 *
 * A dimension is a number. Where it is known when the code is written it is a literal type
 * (`Tensor<[2, 3]>`); where it is only known at run time it can be a branded size
 * (`Var<"Sequence Length">`, as in potatogpt), which only equals itself. Plain `number` is
 * "unknown" and is compatible with everything: the run-time checks, which always stay, catch it.
 */

/** A dimension of a shape: a literal, a branded run-time size, or `number`. */
export type Dim = number;
/** A shape: a tuple of dimensions, outermost first. */
export type Shape = readonly Dim[];

/** @internal The brand that makes `Var<"A">` differ from `Var<"B">`. */
export declare const dimBrand: unique symbol;
/** A run-time size with a name: equal only to itself at the type level. */
export type Var<Name extends string> = number & { readonly [dimBrand]: Name };
/** Brands a run-time size, e.g. `const L = dim<"Seq">(input.length)`. Checks it is a natural number. */
export function dim<Name extends string>(n: number, name?: Name): Var<Name> {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`dim${name ? ` "${name}"` : ""}: expected a natural number, got ${n}`);
  return n as Var<Name>;
}

// ---------- type-level rules (compile-time shape checks) ----------

/** @internal A dimension as text in a compile-time error message. */
type DimName<D> = D extends { readonly [dimBrand]: infer N extends string } ? N : D extends number ? `${D}` : "?";
/** Renders a shape for an error message: `[2, 3]`, `[Seq, 64]`. */
export type ShowShape<S extends Shape> = S extends readonly [] ? "[]" : `[${Join<S>}]`;
/** @internal The dimensions of a shape joined with ", ". */
type Join<S extends Shape> = S extends readonly [infer H, ...infer T extends Shape]
  ? T extends readonly [] ? DimName<H> : `${DimName<H>}, ${Join<T>}`
  : "...";

/** @internal True when a dimension is plain `number` (known only at run time). */
type IsUnknownDim<D> = number extends D ? true : false;
/** True when two dimensions are provably equal, or one of them is unknown. */
export type SameDim<A, B> = IsUnknownDim<A> extends true ? true : IsUnknownDim<B> extends true ? true
  : [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** @internal True when two dimensions broadcast. */
type BroadcastDimOk<A, B> = A extends 1 ? true : B extends 1 ? true : SameDim<A, B>;
/** @internal The broadcast of two dimensions. */
type PickDim<A, B> = A extends 1 ? B : B extends 1 ? A : IsUnknownDim<A> extends true ? B : A;

/** The broadcast of two shapes (NumPy rules, aligned on the right); always a mutable tuple. */
export type Broadcast<A extends Shape, B extends Shape> = number[] extends A ? Shape : number[] extends B ? Shape
  : A extends readonly [...infer AR extends Shape, infer a]
    ? B extends readonly [...infer BR extends Shape, infer b] ? [...Broadcast<AR, BR>, PickDim<a, b>] : [...A]
  : [...B];
/** @internal True when two shapes broadcast. */
type BroadcastOk<A extends Shape, B extends Shape> = number[] extends A ? true : number[] extends B ? true
  : A extends readonly [...infer AR extends Shape, infer a]
    ? B extends readonly [...infer BR extends Shape, infer b]
      ? BroadcastDimOk<a, b> extends true ? BroadcastOk<AR, BR> : false
    : true
  : true;
/** `unknown` when A and B broadcast; otherwise a message that the compiler prints. */
export type CheckBroadcast<Op extends string, A extends Shape, B extends Shape> = BroadcastOk<A, B> extends true ? unknown
  : `${Op}: shapes ${ShowShape<A>} and ${ShowShape<B>} do not broadcast`;

/** @internal The last dimension of a shape. */
type Last<S extends Shape> = S extends readonly [...Shape, infer L] ? L : number;
/** @internal The second-to-last dimension of a shape. */
type SecondLast<S extends Shape> = S extends readonly [...Shape, infer K, Dim] ? K : number;
/** @internal All dimensions but the last two. */
type Batch<S extends Shape> = S extends readonly [...infer B extends Shape, Dim, Dim] ? B : Shape;
/**
 * `unknown` when `a @ b` is well formed (inner dimensions equal); otherwise a readable message.
 * NameA / NameB label the operands in it (matmul passes "aᵀ" for a transposed operand).
 */
export type CheckMatmul<A extends Shape, B extends Shape, NameA extends string = "a", NameB extends string = "b"> =
  number[] extends A ? unknown : number[] extends B ? unknown
  : SameDim<Last<A>, SecondLast<B>> extends true ? unknown
  : `matmul: inner dimensions differ: ${NameA} is ${ShowShape<A>}, ${NameB} is ${ShowShape<B>} (${DimName<Last<A>>} vs ${DimName<SecondLast<B>>})`;
/** The shape of `a @ b`: broadcast batch dims, then [M, N]. */
export type MatmulShape<A extends Shape, B extends Shape> = number[] extends A ? Shape : number[] extends B ? Shape
  : [...Broadcast<Batch<A>, Batch<B>>, SecondLast<A>, Last<B>];

// ---------- run-time rules ----------

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** Formats a shape for error messages. */
export function showShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** An error in the shapes given to an op: the message names the op and the shapes. */
export class ShapeError extends Error {
  /** The error's name, for stack traces and `instanceof`-free checks. */
  override name = "ShapeError";
}

/** NumPy broadcasting of two shapes, or a ShapeError naming the op and both shapes. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${showShape(a)} and ${showShape(b)} do not broadcast (axis ${i - n}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalises an axis (negative counts from the end) and checks its range. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
