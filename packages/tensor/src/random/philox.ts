/**
 * Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel Random
 * Numbers: As Easy as 1, 2, 3", SC'11; the Random123 library) with JAX-like functional keys.
 *
 * Everything here is a pure function of (key, counter): no hidden state, so results are
 * reproducible, order-independent and identical under Bun and Deno. Integer work uses exact
 * uint32 arithmetic; floating-point transforms use only correctly rounded operations
 * (+ - * /, Math.sqrt, Math.fround) and the deterministic transcendental functions of
 * ../cpu/detmath.ts, never Math.log/Math.cos (whose last ulp differs between engines).
 *
 * Counter layout. A Philox block maps a 128-bit counter (c0, c1, c2, c3) under a 64-bit key to 4
 * words. The last counter word is a domain tag, so the different uses of one key never share a
 * counter (Philox under a fixed key is a bijection of counters, so distinct counters give
 * independent-looking blocks):
 *   tag 0  raw bit stream (randomBits, uniformF32): block b = (b mod 2^32, floor(b / 2^32), 0, 0)
 *          gives words 4b .. 4b+3, i.e. word i = lane (i mod 4) of block floor(i / 4).
 *   tag 1  normalF32: element i uses block (i mod 2^32, floor(i / 2^32), 0, 1).
 *   tag 2  truncatedNormalF32: element i, attempt j uses block (i mod 2^32, floor(i / 2^32), j, 2).
 *   tag 3  splitKey: child c = words 0 and 1 of block (c mod 2^32, floor(c / 2^32), 0, 3).
 *   tag 4  foldIn: key for data d = words 0 and 1 of block (d mod 2^32, floor(d / 2^32), 0, 4).
 * Hence element i of every draw depends only on (key, i), never on n; derived keys never reuse a
 * counter of their parent's streams; sibling keys come from distinct counters.
 */
import { cos, erf, log } from "../cpu/detmath.ts";

/** A Philox key: two uint32 words, frozen. Derive keys with keyFromSeed / splitKey / foldIn. */
export type Key = readonly [number, number];

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const M0_HI = M0 >>> 16;
const M0_LO = M0 & 0xffff;
const M1_HI = M1 >>> 16;
const M1_LO = M1 & 0xffff;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;
const INV_2_16 = 1 / 65536;
const TWO_32 = 4294967296;

const TAG_BITS = 0;
const TAG_NORMAL = 1;
const TAG_TRUNC = 2;
const TAG_SPLIT = 3;
const TAG_FOLD = 4;

/**
 * One Philox4x32-10 block written to out[off .. off+3]. All inputs are uint32 numbers.
 * The 32x32→64-bit products are exact: lo = Math.imul (low 32 bits), and with M = Mh·2^16 + Ml,
 * hi = floor((Mh·c + floor(Ml·c / 2^16)) / 2^16), whose intermediate values stay below 2^49.
 */
function philoxInto(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
  off: number,
): void {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = Math.floor((M0_HI * c0 + Math.floor(M0_LO * c0 * INV_2_16)) * INV_2_16);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = Math.floor((M1_HI * c2 + Math.floor(M1_LO * c2 * INV_2_16)) * INV_2_16);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[off] = c0;
  out[off + 1] = c1;
  out[off + 2] = c2;
  out[off + 3] = c3;
}

const BLOCK = new Uint32Array(4); // scratch for partial blocks and derived draws

function isU32(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < TWO_32;
}

function checkKey(key: Key): void {
  if (key.length !== 2 || !isU32(key[0]) || !isU32(key[1])) {
    throw new TypeError(`philox: a key is two uint32 words, got [${String(key)}]`);
  }
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`philox: ${what} must be a non-negative integer, got ${n}`);
}

/** The raw Philox4x32-10 bijection: one 128-bit counter block under a 64-bit key → 4 uint32 words. */
export function philox4x32(
  counter: readonly [number, number, number, number] | Uint32Array,
  key: readonly [number, number] | Uint32Array,
): Uint32Array<ArrayBuffer> {
  if (counter.length !== 4 || key.length !== 2) throw new TypeError("philox4x32: counter has 4 words, key 2");
  for (let i = 0; i < 4; i++) if (!isU32(counter[i])) throw new TypeError(`philox4x32: counter[${i}] is not a uint32`);
  for (let i = 0; i < 2; i++) if (!isU32(key[i])) throw new TypeError(`philox4x32: key[${i}] is not a uint32`);
  const out = new Uint32Array(4);
  philoxInto(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out, 0);
  return out;
}

function makeKey(k0: number, k1: number): Key {
  return Object.freeze([k0, k1] as const);
}

/** The root key for an integer seed in [0, 2^53): [floor(seed / 2^32), seed mod 2^32] (as JAX's PRNGKey). */
export function keyFromSeed(seed: number): Key {
  checkCount(seed, "seed");
  return makeKey(Math.floor(seed / TWO_32), seed >>> 0);
}

/** Block (i mod 2^32, floor(i / 2^32), c2, tag) under key into BLOCK. */
function blockAt(key: Key, i: number, c2: number, tag: number): void {
  philoxInto(i >>> 0, Math.floor(i / TWO_32), c2, tag, key[0], key[1], BLOCK, 0);
}

/** n new keys; child c = first two words of the block at counter (c, 0, 0, 3) under the parent key. */
export function splitKey(key: Key, n = 2): Key[] {
  checkKey(key);
  checkCount(n, "n");
  const out: Key[] = [];
  for (let c = 0; c < n; c++) {
    blockAt(key, c, 0, TAG_SPLIT);
    out.push(makeKey(BLOCK[0], BLOCK[1]));
  }
  return out;
}

/** A key derived from (key, data), data an integer in [0, 2^53): first two words of block (data, 0, 0, 4). */
export function foldIn(key: Key, data: number): Key {
  checkKey(key);
  checkCount(data, "data");
  blockAt(key, data, 0, TAG_FOLD);
  return makeKey(BLOCK[0], BLOCK[1]);
}

/** n uint32 words: word i is lane (i mod 4) of the block at counter (floor(i / 4), 0, 0, 0). */
export function randomBits(key: Key, n: number): Uint32Array<ArrayBuffer> {
  checkKey(key);
  checkCount(n, "n");
  const out = new Uint32Array(n);
  const full = Math.floor(n / 4);
  const k0 = key[0];
  const k1 = key[1];
  for (let b = 0; b < full; b++) philoxInto(b >>> 0, Math.floor(b / TWO_32), 0, TAG_BITS, k0, k1, out, 4 * b);
  const rest = n - 4 * full;
  if (rest > 0) {
    philoxInto(full >>> 0, Math.floor(full / TWO_32), 0, TAG_BITS, k0, k1, BLOCK, 0);
    for (let l = 0; l < rest; l++) out[4 * full + l] = BLOCK[l];
  }
  return out;
}

const F32 = new Float32Array(1);
const F32_BITS = new Uint32Array(F32.buffer);

/** The largest float32 strictly below the float32 value h (h finite). */
function f32Below(h: number): number {
  F32[0] = h;
  if (h > 0) F32_BITS[0] -= 1;
  else if (h < 0) F32_BITS[0] += 1;
  else F32_BITS[0] = 0x80000001; // below ±0: the negative smallest subnormal
  return F32[0];
}

/**
 * n float32 uniforms in [lo, hi): u = (bits >>> 8) · 2^-24 from randomBits (24 random bits, the
 * float32 significand), then fround(lo + (hi - lo) u). lo and hi are first rounded to float32;
 * a value that rounds up to hi is replaced by the largest float32 below hi.
 */
export function uniformF32(key: Key, n: number, lo = 0, hi = 1): Float32Array<ArrayBuffer> {
  const lo32 = Math.fround(lo);
  const hi32 = Math.fround(hi);
  if (!(lo32 < hi32) || !Number.isFinite(hi32 - lo32)) {
    throw new RangeError(`uniformF32: need finite lo < hi (as float32), got [${lo}, ${hi})`);
  }
  const bits = randomBits(key, n);
  const out = new Float32Array(n);
  const width = hi32 - lo32;
  const below = f32Below(hi32);
  for (let i = 0; i < n; i++) {
    const v = Math.fround(lo32 + width * ((bits[i] >>> 8) * 5.9604644775390625e-8)); // 2^-24
    out[i] = v >= hi32 ? below : v;
  }
  return out;
}

const TWO_PI = 6.283185307179586;
const TWO_M53 = 1.1102230246251565e-16; // 2^-53

/**
 * Standard normal (float64) from the block in BLOCK by Box–Muller: two 53-bit uniforms,
 * u1 in (0, 1] (from words 0, 1) and u2 in [0, 1) (words 2, 3); z = sqrt(-2 log u1) cos(2π u2).
 * |z| <= sqrt(106 ln 2) ≈ 8.57.
 */
function boxMuller(): number {
  const u1 = ((BLOCK[0] >>> 5) * 67108864 + (BLOCK[1] >>> 6) + 1) * TWO_M53;
  const u2 = ((BLOCK[2] >>> 5) * 67108864 + (BLOCK[3] >>> 6)) * TWO_M53;
  return Math.sqrt(-2 * log(u1)) * cos(TWO_PI * u2);
}

/** n float32 normals N(mean, std²); element i comes from block (i, 0, 0, 1) alone (Box–Muller, cosine branch). */
export function normalF32(key: Key, n: number, mean = 0, std = 1): Float32Array<ArrayBuffer> {
  checkKey(key);
  checkCount(n, "n");
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    blockAt(key, i, 0, TAG_NORMAL);
    out[i] = Math.fround(mean + std * boxMuller());
  }
  return out;
}

const MAX_ATTEMPTS = 1 << 20;

/**
 * n float32 draws of mean + std·z with z standard normal conditioned on lower <= z <= upper (bounds in
 * standard-deviation units, as in JAX / TF initializers; ±Infinity allowed). Deterministic rejection:
 * element i tries attempts j = 0, 1, 2, ..., attempt j using the Box–Muller value of block
 * (i, 0, j, 2), and keeps the first z inside the bounds (checked in float64, before rounding to
 * float32). Intervals holding less than 0.1% of the normal mass are refused (too many rejections).
 */
export function truncatedNormalF32(
  key: Key,
  n: number,
  lower = -2,
  upper = 2,
  mean = 0,
  std = 1,
): Float32Array<ArrayBuffer> {
  checkKey(key);
  checkCount(n, "n");
  const mass = 0.5 * (erf(upper * Math.SQRT1_2) - erf(lower * Math.SQRT1_2));
  if (!(lower < upper) || !(mass >= 1e-3)) {
    throw new RangeError(`truncatedNormalF32: [${lower}, ${upper}] must be an interval holding >= 0.1% of N(0,1) mass`);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let z = NaN;
    for (let j = 0; j < MAX_ATTEMPTS; j++) {
      blockAt(key, i, j, TAG_TRUNC);
      const c = boxMuller();
      if (c >= lower && c <= upper) {
        z = c;
        break;
      }
    }
    if (z !== z) throw new Error(`truncatedNormalF32: no accepted sample for element ${i}`);
    out[i] = Math.fround(mean + std * z);
  }
  return out;
}
