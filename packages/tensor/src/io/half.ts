/**
 * Exact float32 <-> float16 (IEEE 754 binary16) and float32 <-> bfloat16 conversions over arrays.
 *
 * All conversions work on bit patterns through a Uint32Array view (no tables):
 * - f32 -> f16: round-to-nearest-even, overflow to +-inf (65520 and above), gradual underflow to
 *   subnormals (smallest 2^-24 = 0x0001), values at or below 2^-25 round to +-0 (ties to even),
 *   -0 -> 0x8000, inf -> inf, NaN -> quiet NaN keeping sign and the top payload bits.
 * - f16 -> f32: exact (every binary16 value is a float32 value); NaN payload kept.
 * - f32 -> bf16: round-to-nearest-even on the top 16 bits; NaN stays NaN (quieted so the payload
 *   can never round down to an infinity pattern).
 * - bf16 -> f32: exact (shift left by 16).
 */

/** One float32 bit pattern (as an unsigned 32-bit number) to a binary16 bit pattern. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    // inf or NaN; for NaN keep the top 9 payload bits and set the quiet bit so it stays a NaN
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding
  if (e <= 0) {
    // result is subnormal (or zero): value = M * 2^(exp-150), f16 subnormal unit is 2^-24
    if (e < -10) return sign; // below half the smallest subnormal: rounds to zero
    const m = mant | 0x800000; // 24-bit significand with the implicit bit (exp > 0 here)
    const shift = 14 - e; // 14..24
    let s = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (s & 1) !== 0)) s++; // may carry into the smallest normal: correct
    return sign | s;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // may carry into exponent / inf: correct
  return h;
}

/** One binary16 bit pattern to a float32 bit pattern (unsigned 32-bit number). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // subnormal: normalise (value = mant * 2^-24)
    let e = 113; // float32 biased exponent of 2^-14
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e--;
    }
    return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** One float32 bit pattern to a bfloat16 bit pattern, round-to-nearest-even, NaN preserved. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x0040) & 0xffff; // NaN: keep sign, quiet
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function u32View(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** float32 values to IEEE binary16 bit patterns (round-to-nearest-even). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = u32View(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** IEEE binary16 bit patterns to float32 values (exact). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = u32View(out);
  for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]);
  return out;
}

/** float32 values to bfloat16 bit patterns (round-to-nearest-even, NaN stays NaN). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = u32View(src);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}

/** bfloat16 bit patterns to float32 values (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = u32View(out);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
