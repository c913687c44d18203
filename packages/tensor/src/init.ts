/**
 * Parameter initialisers, drawn from explicit keys (see ./random/random.ts): the same key gives
 * the same parameters on every backend and runtime.
 *
 * Weight layout. A dense layer's weight here is `[in, out]` and the layer computes
 * `y = x @ w + b` (x: [..., in], y: [..., out]). PyTorch's `nn.Linear.weight` is `[out, in]`
 * with `y = x @ Wᵀ + b`, so `w = Wᵀ`: a PyTorch port (or a checkpoint loader) transposes the
 * weight, and the bias is the same. The distributions below match PyTorch's (in law; not its
 * random stream): fan-in is `in`, the first axis of our weight.
 *
 * Every function returns a new f32 tensor in the current `tidy` scope (the caller owns it).
 */
import type { Shape } from "./shape.ts";
import { showShape, sizeOf } from "./shape.ts";
import type { Tensor } from "./tensor.ts";
import { full } from "./ops/elementwise.ts";
import { noGrad } from "./autodiff.ts";
import * as random from "./random/random.ts";
import type { Key } from "./random/philox.ts";

/** A tensor of zeros. */
export function zeros<S extends Shape>(shape: S): Tensor<S> {
  return noGrad(() => full(shape, 0));
}

/** A tensor of ones. */
export function ones<S extends Shape>(shape: S): Tensor<S> {
  return noGrad(() => full(shape, 1));
}

/** N(mean, std²) (defaults: std 1, mean 0). */
export function normal<S extends Shape>(key: Key, shape: S, std = 1, mean = 0): Tensor<S> {
  return random.normal(key, shape, { mean, std });
}

/** Options of `truncatedNormal`. */
export interface TruncatedNormalInit {
  /** The mean (default 0). */
  mean?: number;
  /** Lower bound in standard deviations (default -2). */
  lower?: number;
  /** Upper bound in standard deviations (default 2). */
  upper?: number;
}

/**
 * mean + std·z with z ~ N(0, 1) truncated to [lower, upper] standard deviations (default ±2, as
 * JAX's `truncated_normal` initializer). Note PyTorch's `trunc_normal_(std, a, b)` takes absolute
 * bounds: its `trunc_normal_(t, std=0.02)` (a=-2, b=2) is practically untruncated, whereas
 * `truncatedNormal(key, shape, 0.02)` here cuts at ±0.04.
 */
export function truncatedNormal<S extends Shape>(key: Key, shape: S, std = 1, opts: TruncatedNormalInit = {}): Tensor<S> {
  return random.truncatedNormal(key, shape, { std, mean: opts.mean ?? 0, lower: opts.lower ?? -2, upper: opts.upper ?? 2 });
}

/** U[lo, hi). */
export function uniform<S extends Shape>(key: Key, shape: S, lo: number, hi: number): Tensor<S> {
  return random.uniform(key, shape, { lo, hi });
}

/**
 * Glorot / Xavier uniform for a `[fanIn, fanOut]` weight: U(−a, a), a = gain·√(6 / (fanIn + fanOut))
 * (as `torch.nn.init.xavier_uniform_`, which is symmetric in the two fans).
 */
export function xavierUniform<I extends number, O extends number>(key: Key, shape: readonly [I, O], gain = 1): Tensor<[I, O]> {
  const [fanIn, fanOut] = shape;
  if (shape.length !== 2 || !(fanIn + fanOut > 0)) throw new RangeError(`init.xavierUniform: expected a [fanIn, fanOut] shape, got ${showShape(shape)}`);
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  return random.uniform(key, [fanIn, fanOut] as [I, O], { lo: -a, hi: a });
}

/** Options of `kaimingUniform`. */
export interface KaimingUniformOptions {
  /**
   * The fan-in. Default: the product of all axes but the last (for our `[in, out]` weights: `in`;
   * for `[k, in, out]` conv kernels: `k·in`). Required for rank < 2 (e.g. a bias: pass the
   * weight's fan-in).
   */
  fanIn?: number;
  /**
   * The negative slope of the leaky ReLU the gain is computed for, gain = √(2 / (1 + a²)).
   * Default √5, PyTorch's choice for nn.Linear / nn.Conv, which makes the bound exactly 1/√fanIn.
   */
  a?: number;
}

/**
 * He / Kaiming uniform: U(−bound, bound), bound = gain·√(3 / fanIn), gain = √(2 / (1 + a²)).
 * With the default a = √5 this is PyTorch's nn.Linear default, U(−1/√fanIn, 1/√fanIn).
 */
export function kaimingUniform<S extends Shape>(key: Key, shape: S, opts: KaimingUniformOptions = {}): Tensor<S> {
  let fanIn = opts.fanIn;
  if (fanIn === undefined) {
    if (shape.length < 2) throw new RangeError(`init.kaimingUniform: pass fanIn for a tensor of rank < 2 (shape ${showShape(shape)})`);
    fanIn = sizeOf(shape.slice(0, -1));
  }
  if (!(fanIn > 0) || !Number.isFinite(fanIn)) throw new RangeError(`init.kaimingUniform: fanIn must be positive, got ${fanIn}`);
  const a = opts.a ?? Math.sqrt(5);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = gain * Math.sqrt(3 / fanIn);
  return random.uniform(key, shape, { lo: -bound, hi: bound });
}

/** A dense layer's parameters: `y = x @ w + b`. */
export interface LinearParams<I extends number = number, O extends number = number> {
  /** The weight, `[in, out]`. */
  w: Tensor<[I, O]>;
  /** The bias, where the layer has one. */
  b?: Tensor<[O]>;
}

/**
 * A dense layer's parameters in PyTorch nn.Linear's default distribution: w and b both
 * U(−1/√in, 1/√in). `w` is `[in, out]` (the transpose of PyTorch's weight: see the module note).
 * The key is split in two: the first child draws w, the second b.
 */
export function linear<I extends number, O extends number>(key: Key, inDim: I, outDim: O, opts?: { bias?: true }): { w: Tensor<[I, O]>; b: Tensor<[O]> };
/** Without a bias: only `w`. */
export function linear<I extends number, O extends number>(key: Key, inDim: I, outDim: O, opts: { bias: false }): { w: Tensor<[I, O]> };
/** With a bias decided at run time: `b` may be absent. */
export function linear<I extends number, O extends number>(key: Key, inDim: I, outDim: O, opts?: { bias?: boolean }): LinearParams<I, O>;
export function linear<I extends number, O extends number>(key: Key, inDim: I, outDim: O, opts: { bias?: boolean } = {}): LinearParams<I, O> {
  if (!Number.isInteger(inDim) || inDim < 1 || !Number.isInteger(outDim) || outDim < 0) {
    throw new RangeError(`init.linear: invalid dimensions in=${inDim}, out=${outDim}`);
  }
  const [kw, kb] = random.split(key, 2);
  const bound = 1 / Math.sqrt(inDim);
  const w = random.uniform(kw, [inDim, outDim] as [I, O], { lo: -bound, hi: bound });
  if (opts.bias === false) return { w };
  const b = random.uniform(kb, [outDim] as [O], { lo: -bound, hi: bound });
  return { w, b };
}
