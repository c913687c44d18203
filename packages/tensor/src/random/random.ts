/**
 * Tensor-level random sampling from explicit keys (JAX style: no hidden global state).
 *
 *   const k = random.key(0);
 *   const [kw, kb] = random.split(k);
 *   const w = random.normal(kw, [16, 32], { std: 0.02 });
 *
 * Every draw is generated on the host by the counter-based Philox generator of ./philox.ts and
 * then uploaded to the current backend, so one key gives the same numbers, bit for bit, on every
 * backend (CPU, WebGPU) and every runtime (Bun, Deno). Element i of a draw depends only on
 * (key, i), never on the total size. Sampling functions never record for autodiff: their
 * results are constants. The returned tensors belong to the current `tidy` scope, as any new
 * tensor does.
 *
 * Key discipline (as in JAX): use a key for one draw only; derive fresh keys with `split` or
 * `foldIn`. Functions that need several streams derive them from their key internally (see
 * `randint`, `permutation`), so do not also use those derived keys yourself.
 */
import type { Shape } from "../shape.ts";
import { sizeOf, showShape } from "../shape.ts";
import { fromArray, type Tensor } from "../tensor.ts";
import { exp } from "../cpu/detmath.ts";
import {
  foldIn as philoxFoldIn,
  keyFromSeed,
  normalF32,
  philox4x32,
  randomBits,
  splitKey,
  truncatedNormalF32,
  uniformF32,
  type Key,
} from "./philox.ts";

export type { Key };

const TWO_32 = 4294967296;
const TWO_M32 = 2.3283064365386963e-10; // 2^-32
const TWO_M53 = 1.1102230246251565e-16; // 2^-53

function checkShape(what: string, shape: Shape): number {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`random.${what}: invalid shape ${showShape(shape)}`);
  }
  return sizeOf(shape);
}

/** Checks a normal distribution's options: a finite mean and a finite std >= 0. */
function checkNormal(what: string, opts: NormalOptions): void {
  const mean = opts.mean ?? 0, std = opts.std ?? 1;
  if (!Number.isFinite(mean)) throw new RangeError(`random.${what}: mean must be a finite number, got ${mean}`);
  if (!Number.isFinite(std) || std < 0) throw new RangeError(`random.${what}: std must be a finite number >= 0, got ${std}`);
}

// ---------- keys ----------

/** The root key for an integer seed in [0, 2^53). */
export function key(seed: number): Key {
  return keyFromSeed(seed);
}

/** `n` independent keys derived from `key` (default 2). */
export function split(key: Key, n = 2): Key[] {
  return splitKey(key, n);
}

/** A key derived from `key` and an integer in [0, 2^53) (e.g. a step or layer index). */
export function foldIn(key: Key, data: number): Key {
  return philoxFoldIn(key, data);
}

// ---------- continuous distributions (f32) ----------

/** Options of `uniform`. */
export interface UniformOptions {
  /** Inclusive lower bound (default 0). */
  lo?: number;
  /** Exclusive upper bound (default 1). */
  hi?: number;
}

/** f32 samples from U[lo, hi) (lo and hi rounded to f32; hi is never returned). */
export function uniform<S extends Shape>(key: Key, shape: S, opts: UniformOptions = {}): Tensor<S> {
  const n = checkShape("uniform", shape);
  return fromArray(uniformF32(key, n, opts.lo ?? 0, opts.hi ?? 1), shape);
}

/** Options of `normal`. */
export interface NormalOptions {
  /** The mean (default 0). */
  mean?: number;
  /** The standard deviation (default 1): finite and >= 0. */
  std?: number;
}

/** f32 samples from N(mean, std²) (Box–Muller on Philox blocks; defaults mean 0, std 1). */
export function normal<S extends Shape>(key: Key, shape: S, opts: NormalOptions = {}): Tensor<S> {
  const n = checkShape("normal", shape);
  checkNormal("normal", opts);
  return fromArray(normalF32(key, n, opts.mean ?? 0, opts.std ?? 1), shape);
}

/** Options of `truncatedNormal`: a normal distribution cut at `lower` and `upper` standard deviations. */
export interface TruncatedNormalOptions extends NormalOptions {
  /** Lower bound in standard deviations (default -2). */
  lower?: number;
  /** Upper bound in standard deviations (default 2). */
  upper?: number;
}

/**
 * f32 samples of mean + std·z, z ~ N(0, 1) conditioned on lower <= z <= upper. The bounds are in
 * standard-deviation units (JAX / TF convention), not absolute values as in PyTorch's
 * `trunc_normal_(a, b)`.
 */
export function truncatedNormal<S extends Shape>(key: Key, shape: S, opts: TruncatedNormalOptions = {}): Tensor<S> {
  const n = checkShape("truncatedNormal", shape);
  checkNormal("truncatedNormal", opts);
  return fromArray(truncatedNormalF32(key, n, opts.lower ?? -2, opts.upper ?? 2, opts.mean ?? 0, opts.std ?? 1), shape);
}

// ---------- discrete distributions ----------

/**
 * f32 samples that are 1 with probability p, else 0. Exact: element i is 1 iff
 * bits_i · 2^-32 < p for the 32-bit word bits_i (so p = 0 never and p = 1 always gives 1).
 */
export function bernoulli<S extends Shape>(key: Key, shape: S, p = 0.5): Tensor<S> {
  const n = checkShape("bernoulli", shape);
  if (!(p >= 0 && p <= 1)) throw new RangeError(`random.bernoulli: p must be in [0, 1], got ${p}`);
  const bits = randomBits(key, n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = bits[i] * TWO_M32 < p ? 1 : 0;
  return fromArray(out, shape);
}

/**
 * Word i of the stream `randomBits(k, ∞)`, without generating the words before it:
 * lane (i mod 4) of the Philox block at counter (floor(i / 4), 0, 0, 0).
 */
function wordAt(k: Key, i: number): number {
  const b = Math.floor(i / 4);
  return philox4x32([b >>> 0, Math.floor(b / TWO_32), 0, 0], k)[i % 4];
}

/** The key of rejection round r >= 1 of `randint` (round 0 uses the key itself). */
const RANDINT_RETRY = 0x72696e74; // "rint"

/** Integers in [lo, hi) as a host Int32Array (see `randint`). */
export function randintArray(key: Key, n: number, lo: number, hi: number): Int32Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`random.randint: n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < -2147483648 || hi > 2147483648 || !(lo < hi)) {
    throw new RangeError(`random.randint: need integers -2^31 <= lo < hi <= 2^31, got [${lo}, ${hi})`);
  }
  const range = hi - lo; // 1 .. 2^32
  // Accept a 32-bit word w iff w < limit, the largest multiple of range <= 2^32: then w mod range is
  // exactly uniform. Rejected elements redraw word i of the stream of foldIn(foldIn(key, RETRY), r).
  const limit = TWO_32 - (TWO_32 % range);
  const bits = randomBits(key, n);
  const out = new Int32Array(n);
  let retryBase: Key | null = null;
  for (let i = 0; i < n; i++) {
    let w = bits[i];
    for (let r = 1; w >= limit; r++) {
      if (r > 1000) throw new Error("random.randint: too many rejections (generator broken?)");
      retryBase ??= philoxFoldIn(key, RANDINT_RETRY);
      w = wordAt(philoxFoldIn(retryBase, r), i);
    }
    out[i] = lo + (w % range);
  }
  return out;
}

/**
 * i32 integers uniform on [lo, hi), exactly unbiased (rejection sampling on 32-bit words).
 * Requires integers -2^31 <= lo < hi <= 2^31.
 */
export function randint<S extends Shape>(key: Key, shape: S, lo: number, hi: number): Tensor<S, "i32"> {
  const n = checkShape("randint", shape);
  return fromArray(randintArray(key, n, lo, hi), shape, "i32");
}

/** A sequential stream of uint32 words 0, 1, 2, ... of `randomBits(key, ∞)`, generated by blocks. */
class WordStream {
  #block = new Uint32Array(4);
  #next = 0;
  constructor(readonly key: Key) {}
  word(): number {
    const lane = this.#next % 4;
    if (lane === 0) {
      const b = this.#next / 4;
      this.#block = philox4x32([b >>> 0, Math.floor(b / TWO_32), 0, 0], this.key);
    }
    this.#next++;
    return this.#block[lane];
  }
  /** A uniform integer in [0, m), m in [1, 2^32], by rejection (exactly unbiased). */
  below(m: number): number {
    const limit = TWO_32 - (TWO_32 % m);
    for (;;) {
      const w = this.word();
      if (w < limit) return w % m;
    }
  }
}

/**
 * A uniformly random permutation of 0 .. n-1 as a host Int32Array (for shuffling data on the host).
 * Fisher–Yates (Durstenfeld): for i = n-1 down to 1, swap a[i] with a[j], j uniform on [0, i],
 * drawn by rejection from the word stream of `key`.
 */
export function permutationArray(key: Key, n: number): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n > 2147483647) throw new RangeError(`random.permutation: n must be an integer in [0, 2^31), got ${n}`);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  const s = new WordStream(key);
  for (let i = n - 1; i > 0; i--) {
    const j = s.below(i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A uniformly random permutation of 0 .. n-1 as an i32 tensor of shape [n] (see `permutationArray`). */
export function permutation<N extends number>(key: Key, n: N): Tensor<[N], "i32"> {
  return fromArray(permutationArray(key, n), [n] as [N], "i32");
}

/** Options of `categorical`. */
export interface CategoricalOptions {
  /** Number of classes K: `logits` holds rows of K values (default: logits.length, one row). */
  classes?: number;
  /** Logits are divided by this first (default 1). Must be > 0. */
  temperature?: number;
}

/**
 * One sample per row from softmax(logits / temperature), as a host Int32Array of row count
 * logits.length / K. Logits are host values (e.g. read back from a model's last position) since
 * sampling is a host-side decision in generation loops. Inverse-CDF sampling in float64 with a
 * 53-bit uniform per row (row r uses words 2r, 2r+1 of the key's bit stream) and the deterministic
 * exp of ../cpu/detmath.ts, so the result is identical on every runtime. -Infinity logits are
 * never chosen; NaN or a row of only -Infinity is an error.
 */
export function categorical(key: Key, logits: ArrayLike<number>, opts: CategoricalOptions = {}): Int32Array {
  const k = opts.classes ?? logits.length;
  const temp = opts.temperature ?? 1;
  if (!Number.isInteger(k) || k < 1 || logits.length % k !== 0) {
    throw new RangeError(`random.categorical: ${logits.length} logits do not split into rows of ${k} classes`);
  }
  if (!(temp > 0) || !Number.isFinite(temp)) throw new RangeError(`random.categorical: temperature must be > 0, got ${temp}`);
  const rows = logits.length / k;
  const bits = randomBits(key, 2 * rows);
  const out = new Int32Array(rows);
  const w = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let c = 0; c < k; c++) {
      const l = logits[r * k + c];
      if (l !== l || l === Infinity) throw new RangeError(`random.categorical: logit ${l} at row ${r}, class ${c}`);
      if (l > mx) mx = l;
    }
    if (mx === -Infinity) throw new RangeError(`random.categorical: row ${r} has only -Infinity logits`);
    let total = 0;
    for (let c = 0; c < k; c++) {
      const l = logits[r * k + c];
      w[c] = l === -Infinity ? 0 : exp((l - mx) / temp);
      total += w[c];
    }
    const u = ((bits[2 * r] >>> 5) * 67108864 + (bits[2 * r + 1] >>> 6)) * TWO_M53; // [0, 1)
    const target = u * total;
    let pick = -1;
    let cum = 0;
    for (let c = 0; c < k; c++) {
      cum += w[c];
      if (w[c] > 0) pick = c; // the last class with mass, in case rounding leaves cum <= target
      if (cum > target && w[c] > 0) break;
    }
    out[r] = pick;
  }
  return out;
}
