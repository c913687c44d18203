/** Elementwise primitives: fill, unary, binary (broadcasting), compare, where, cast. */
import type { BinaryOp, CompareOp, UnaryOp } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { bind, definePrimitive, noSecondOrder } from "../dispatch.ts";
import { engine, getBackend } from "../engine.ts";
import { broadcastShapes, sameShape, ShapeError, showShape, type Broadcast, type CheckBroadcast, type Shape } from "../shape.ts";
import { fromArray, Tensor } from "../tensor.ts";
import { sumTo } from "./reduce.ts";

// ---------- primitives ----------

definePrimitive("fill", {
  shape: (_ins, p) => ({ shape: [...p.shape], dtype: "f32" }),
  vjp: () => [],
});

const unaryFlops: Partial<Record<UnaryOp, number>> = { exp: 4, log: 4, tanh: 6, sigmoid: 5, silu: 6, softplus: 8, sin: 6, cos: 6 };

definePrimitive("unary", {
  shape: ([x], p) => {
    if (x.dtype !== "f32") throw new ShapeError(`${p.op}: expects f32, got ${x.dtype} ${showShape(x.shape)}`);
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([x], _o, p) => x.size * (unaryFlops[p.op] ?? 1),
  vjp: (g, [x], y, { op }) => {
    // one launch where the backend runs unaryGrad natively (the composites below take 2–6)
    if (GRAD_UNARY_OPS.has(op) && !getBackend().prefersComposite?.("unaryGrad")) return [bind("unaryGrad", [g, x, y], { op })];
    switch (op) {
      case "neg": return [neg(g)];
      case "exp": return [mul(g, y)];
      case "log": return [div(g, x)];
      case "sqrt": return [div(mul(g, 0.5), y)];
      case "rsqrt": return [mul(mul(g, -0.5), div(y, x))];
      case "tanh": return [mul(g, sub(1, square(y)))];
      case "sigmoid": return [mul(g, mul(y, sub(1, y)))];
      case "silu": {
        const s = sigmoid(x);
        return [mul(g, mul(s, add(1, mul(x, sub(1, s)))))];
      }
      case "softplus": return [mul(g, sigmoid(x))];
      case "abs": return [mul(g, sign(x))];
      case "relu": return [mul(g, gt(x, 0))];
      case "sin": return [mul(g, cos(x))];
      case "cos": return [neg(mul(g, sin(x)))];
      case "square": return [mul(g, mul(x, 2))];
      case "reciprocal": return [neg(mul(g, square(y)))];
      case "sign": return [mul(g, 0)];
    }
  },
});

/** The unary ops whose VJP is one fused `unaryGrad` launch (the others' VJPs are one op already). */
export const GRAD_UNARY_OPS: ReadonlySet<UnaryOp> = new Set<UnaryOp>([
  "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "softplus", "abs", "relu", "sin", "cos", "square", "reciprocal",
]);

definePrimitive("unaryGrad", {
  shape: ([g, x, y], p) => {
    if (!GRAD_UNARY_OPS.has(p.op)) throw new ShapeError(`unaryGrad: no fused derivative for ${p.op}`);
    for (const t of [g, x, y]) {
      if (t.dtype !== "f32" || !sameShape(t.shape, x.shape)) {
        throw new ShapeError(`unaryGrad (${p.op}): expects three f32 tensors of one shape, got ${[g, x, y].map((u) => `${u.dtype}${showShape(u.shape)}`).join(", ")}`);
      }
    }
    return { shape: [...x.shape], dtype: "f32" };
  },
  flops: ([, x]) => x.size * 4,
  vjp: noSecondOrder("unaryGrad"),
});

definePrimitive("binary", {
  shape: ([a, b], p) => {
    if (a.dtype !== b.dtype) throw new ShapeError(`${p.op}: dtypes differ: ${a.dtype} ${showShape(a.shape)} and ${b.dtype} ${showShape(b.shape)}`);
    return { shape: broadcastShapes(p.op, a.shape, b.shape), dtype: a.dtype };
  },
  vjp: (g, [a, b], y, { op }, needs) => {
    // an input whose gradient is not wanted (a constant, a scalar, a mask) costs no launches
    const na = needs?.[0] ?? true, nb = needs?.[1] ?? true;
    const to = (t: () => Tensor, like: Tensor, need: boolean) => (need ? sumTo(t(), like.shape) : null);
    switch (op) {
      case "add": return [to(() => g, a, na), to(() => g, b, nb)];
      case "sub": return [to(() => g, a, na), to(() => neg(g), b, nb)];
      case "mul": return [to(() => mul(g, b), a, na), to(() => mul(g, a), b, nb)];
      case "div": return [to(() => div(g, b), a, na), to(() => neg(div(mul(g, y), b)), b, nb)];
      case "pow": {
        // d/da a^b = b a^(b-1); d/db a^b = a^b log a (taken as 0 where a <= 0, whose log is undefined)
        return [
          to(() => mul(g, mul(b, pow(a, sub(b, 1)))), a, na),
          to(() => mul(g, mul(y, where(gt(a, 0), log(maximum(a, 1e-30)), 0))), b, nb),
        ];
      }
      case "max":
      case "min": {
        // the larger (smaller) input takes the gradient; a tie splits it evenly
        const win = op === "max" ? gt(a, b) : lt(a, b);
        const tie = mul(eq(a, b), 0.5);
        const wa = add(win, tie);
        return [to(() => mul(g, wa), a, na), to(() => mul(g, sub(1, wa)), b, nb)];
      }
    }
  },
});

definePrimitive("compare", {
  shape: ([a, b], p) => {
    if (a.dtype !== b.dtype) throw new ShapeError(`${p.op}: dtypes differ: ${a.dtype} and ${b.dtype}`);
    return { shape: broadcastShapes(p.op, a.shape, b.shape), dtype: "f32" };
  },
  vjp: () => [null, null],
});

definePrimitive("where", {
  shape: ([c, a, b]) => {
    if (a.dtype !== b.dtype) throw new ShapeError(`where: dtypes of the branches differ: ${a.dtype} and ${b.dtype}`);
    let s: number[];
    try {
      s = broadcastShapes("where", broadcastShapes("where", c.shape, a.shape), b.shape);
    } catch {
      throw new ShapeError(`where: shapes ${showShape(c.shape)} (condition), ${showShape(a.shape)} and ${showShape(b.shape)} do not broadcast`);
    }
    return { shape: s, dtype: a.dtype };
  },
  vjp: (g, [c, a, b], _y, _p, needs) => [
    null,
    needs?.[1] === false ? null : sumTo(where(c, g, 0), a.shape),
    needs?.[2] === false ? null : sumTo(where(c, 0, g), b.shape),
  ],
});

definePrimitive("cast", {
  shape: ([x], p) => ({ shape: [...x.shape], dtype: p.dtype }),
  vjp: (g, [x], _y, p) => [x.dtype === "f32" && p.dtype === "f32" ? g : null],
});

// ---------- the user's functions ----------

/** A tensor or a plain number (a scalar constant). */
export type TensorLike<S extends Shape = Shape> = Tensor<S> | number;
/** @internal The shape type of a tensor, or `[]` for a number. */
type ShapeOf<T> = T extends Tensor<infer S> ? S : readonly [];

/** A scalar constant as a tensor of shape []. */
export function scalar(v: number): Tensor<[]> {
  return fromArray([v], [] as []);
}

function lift(x: TensorLike, like?: Tensor): Tensor {
  if (x instanceof Tensor) return x;
  return like && like.dtype === "i32" ? fromArray(Int32Array.of(x), [], "i32") : scalar(x);
}

/**
 * `f` of a and b as tensors (numbers lifted to constants of b's or a's dtype). A constant made
 * here is freed once `f` has used it, so `mul(x, 2)` outside any `tidy` leaves nothing behind;
 * while a gradient tape is open it stays for the tape (whose scope frees it).
 */
function withLifted(a: TensorLike, b: TensorLike, f: (ta: Tensor, tb: Tensor) => Tensor): Tensor {
  const ta = lift(a, b instanceof Tensor ? b : undefined);
  let tb: Tensor | undefined;
  let out: Tensor;
  try {
    tb = lift(b, ta);
    out = f(ta, tb);
  } catch (e) {
    // an op that throws (a shape mismatch, a disposed input) keeps no lifted constant alive
    if (engine.tape === null) {
      if (ta !== a) ta.dispose();
      if (tb !== undefined && tb !== b) tb.dispose();
    }
    throw e;
  }
  if (engine.tape === null) {
    if (ta !== a && ta !== out) ta.dispose();
    if (tb !== b && tb !== out) tb.dispose();
  }
  return out;
}

/** A tensor of the given shape filled with one value (f32). */
export function full<S extends Shape>(shape: S, value: number): Tensor<S> {
  return bind("fill", [], { value, shape: [...shape] }) as Tensor<S>;
}
/** A tensor of the given shape filled with 0 (f32). */
export function zeros<S extends Shape>(shape: S): Tensor<S> {
  return full(shape, 0);
}
/** A tensor of the given shape filled with 1 (f32). */
export function ones<S extends Shape>(shape: S): Tensor<S> {
  return full(shape, 1);
}

function unary<S extends Shape>(op: UnaryOp, x: Tensor<S>): Tensor<S> {
  return bind("unary", [x], { op }) as Tensor<S>;
}
/** -x, elementwise. */
export const neg = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("neg", x);
/** e^x, elementwise. */
export const exp = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("exp", x);
/** The natural logarithm, elementwise. */
export const log = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("log", x);
/** √x, elementwise. */
export const sqrt = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("sqrt", x);
/** 1 / √x, elementwise. */
export const rsqrt = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("rsqrt", x);
/** The hyperbolic tangent, elementwise. */
export const tanh = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("tanh", x);
/** 1 / (1 + e^-x), elementwise. */
export const sigmoid = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("sigmoid", x);
/** x · sigmoid(x) (a.k.a. swish), Mamba's gate nonlinearity. */
export const silu = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("silu", x);
/** log(1 + e^x), computed stably. */
export const softplus = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("softplus", x);
/** |x|, elementwise. */
export const abs = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("abs", x);
/** max(x, 0), elementwise. */
export const relu = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("relu", x);
/** The sine (radians), elementwise. */
export const sin = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("sin", x);
/** The cosine (radians), elementwise. */
export const cos = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("cos", x);
/** x², elementwise. */
export const square = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("square", x);
/** 1 / x, elementwise. */
export const reciprocal = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("reciprocal", x);
/** -1, 0 or 1 by the sign of x, elementwise. */
export const sign = <S extends Shape>(x: Tensor<S>): Tensor<S> => unary("sign", x);

/** A broadcasting binary function; `Name` is the op the compile-time shape error names. */
export type BinaryFn<Name extends string = "binary op"> = <A extends TensorLike, B extends TensorLike>(
  a: A,
  b: B & CheckBroadcast<Name, ShapeOf<A>, ShapeOf<B>>,
) => Tensor<Broadcast<ShapeOf<A>, ShapeOf<B>>>;

function binaryFn<Name extends string>(op: BinaryOp): BinaryFn<Name> {
  return ((a: TensorLike, b: TensorLike) => withLifted(a, b, (ta, tb) => bind("binary", [ta, tb], { op }))) as BinaryFn<Name>;
}
/** a + b, with NumPy broadcasting. Mismatched literal shapes fail to compile. */
export const add: BinaryFn<"add"> = binaryFn("add");

/** Inputs per addN launch: one output and 7 inputs fill the 8 storage buffers WebGPU guarantees per stage. */
export const ADD_N_MAX = 7;

definePrimitive("addN", {
  shape: (xs) => {
    if (xs.length < 2 || xs.length > ADD_N_MAX) throw new ShapeError(`addN: takes 2 to ${ADD_N_MAX} inputs, got ${xs.length}`);
    for (const x of xs) {
      if (x.dtype !== "f32" || !sameShape(x.shape, xs[0].shape)) {
        throw new ShapeError(`addN: inputs must be f32 of one shape, got ${xs.map((t) => `${t.dtype} ${showShape(t.shape)}`).join(", ")}`);
      }
    }
    return { shape: [...xs[0].shape], dtype: "f32" };
  },
  flops: (xs) => xs[0].size * (xs.length - 1),
  vjp: (g, xs, _y, _p, needs) => xs.map((_, i) => (needs?.[i] === false ? null : g)),
});

/**
 * x0 + x1 + … + xn−1 for f32 tensors of one shape, added in that order with f32 rounding at each
 * step: the same bits as a chain of `add`s, in one launch per 7 inputs instead of n − 1 (the
 * backward pass sums a tensor's gradient contributions with it). Other dtypes or shapes: the chain.
 */
export function addN(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new ShapeError("addN: needs at least one input");
  const chain = () => xs.slice(1).reduce((acc, x) => add(acc, x), xs[0]);
  if (xs.length === 1) return xs[0];
  if (xs.length === 2 || getBackend().prefersComposite?.("addN") || xs.some((x) => x.dtype !== "f32" || !sameShape(x.shape, xs[0].shape))) return chain();
  let acc = bind("addN", xs.slice(0, ADD_N_MAX), {});
  for (let i = ADD_N_MAX; i < xs.length; i += ADD_N_MAX - 1) {
    const part = xs.slice(i, i + ADD_N_MAX - 1);
    acc = part.length === 0 ? acc : bind("addN", [acc, ...part], {}); // the running sum first: the same order
  }
  return acc;
}

/** a − b, with NumPy broadcasting. */
export const sub: BinaryFn<"sub"> = binaryFn("sub");
/** a · b, with NumPy broadcasting. */
export const mul: BinaryFn<"mul"> = binaryFn("mul");
/** a / b, with NumPy broadcasting. */
export const div: BinaryFn<"div"> = binaryFn("div");
/** a^b, with NumPy broadcasting. */
export const pow: BinaryFn<"pow"> = binaryFn("pow");
/** Elementwise maximum. */
export const maximum: BinaryFn<"maximum"> = binaryFn("max");
/** Elementwise minimum, with NumPy broadcasting. */
export const minimum: BinaryFn<"minimum"> = binaryFn("min");

function compareFn(op: CompareOp) {
  return (a: TensorLike, b: TensorLike): Tensor => withLifted(a, b, (ta, tb) => bind("compare", [ta, tb], { op }));
}
/** Elementwise comparisons: 1 where true, 0 where false (f32). */
export const eq: (a: TensorLike, b: TensorLike) => Tensor = compareFn("eq");
/** a != b: 1 where true, 0 where false (f32, broadcasting). */
export const ne: (a: TensorLike, b: TensorLike) => Tensor = compareFn("ne");
/** a < b: 1 where true, 0 where false (f32, broadcasting). */
export const lt: (a: TensorLike, b: TensorLike) => Tensor = compareFn("lt");
/** a <= b: 1 where true, 0 where false (f32, broadcasting). */
export const le: (a: TensorLike, b: TensorLike) => Tensor = compareFn("le");
/** a > b: 1 where true, 0 where false (f32, broadcasting). */
export const gt: (a: TensorLike, b: TensorLike) => Tensor = compareFn("gt");
/** a >= b: 1 where true, 0 where false (f32, broadcasting). */
export const ge: (a: TensorLike, b: TensorLike) => Tensor = compareFn("ge");

/** Picks `a` where `cond` is nonzero, else `b` (broadcasting all three). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  return withLifted(a, b, (ta, tb) => bind("where", [cond, ta, tb], {}));
}

/** Converts between f32 and i32 (f32 → i32 truncates toward zero). */
export function cast<S extends Shape, D extends DType>(x: Tensor<S>, dtype: D): Tensor<S, D> {
  if (x.dtype === dtype) return x as unknown as Tensor<S, D>;
  return bind("cast", [x], { dtype }) as Tensor<S, D>;
}
