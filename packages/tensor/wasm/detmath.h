/*
 * A C port of src/cpu/detmath.ts: the same float64 operations in the same order, so each function
 * returns the same bits as the TypeScript reference (wasm float arithmetic is IEEE-exact and this
 * file is compiled with -ffp-contract=off). Constants are written as the same exact rational
 * expressions (each literal division is correctly rounded once by the compiler, as in JS).
 * exp_v2 is a two-lane (f64x2) exp for the hot loops; lanes outside its fast range are recomputed
 * with the scalar function, so it too matches the reference bit for bit. exp_v2xn, log1p_unit_vn and
 * softplus_v2xn run the same operations on several lane pairs in lockstep (LOCKSTEP_PIN says how).
 */
#ifndef MM_DETMATH_H
#define MM_DETMATH_H
#include "common.h"

#define LN2_HI 0.6931471803691238
#define LN2_LO 1.9082149292705877e-10
#define INV_LN2 1.4426950408889634
#define SQRT2_ 1.4142135623730951
#define PIO2_1 1.5707963267341256
#define PIO2_2 6.077100506303966e-11
#define PIO2_3 2.0222662487959506e-21
#define TWO_OVER_PI 0.6366197723675814
#define EXP_OVERFLOW 709.782712893384
#define EXP_UNDERFLOW (-745.1332191019412)
#define P2_54 18014398509481984.0
#define P2_M54 (1.0 / 18014398509481984.0)

INLINE f64 dm_fabs(f64 x) { return __builtin_fabs(x); }
INLINE f64 dm_floor(f64 x) { return __builtin_floor(x); }

/* 2^k for integer k in [-1022, 1023] (exact, from the bits). */
INLINE f64 pow2i(int k) {
  union { uint64_t u; f64 d; } v;
  v.u = (uint64_t)(k + 1023) << 52;
  return v.d;
}

INLINE f64 scale2(f64 x, int k) {
  if (k > 1023) return x * pow2i(k - 1) * 2;
  if (k < -1022) return x * pow2i(k + 54) * P2_M54;
  return x * pow2i(k);
}

INLINE f64 expm1_kernel(f64 r, f64 rerr) {
  f64 p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 1.0 / 2.0;
  return r + (rerr + r * r * p);
}

static __attribute__((unused)) f64 dm_exp(f64 x) {
  if (!(x <= EXP_OVERFLOW)) return x != x ? x : __builtin_inf();
  if (x < EXP_UNDERFLOW) return 0;
  f64 ax = dm_fabs(x);
  if (ax < 0.34657359027997264) {
    if (ax < 1.1102230246251565e-16) return 1 + x;
    return 1 + expm1_kernel(x, 0);
  }
  f64 k = dm_floor(x * INV_LN2 + 0.5);
  f64 hi = x - k * LN2_HI;
  f64 lo = k * LN2_LO;
  f64 r = hi - lo;
  f64 rerr = hi - r - lo;
  return scale2(1 + expm1_kernel(r, rerr), (int)k);
}

static __attribute__((unused)) f64 dm_expm1(f64 x) {
  f64 ax = dm_fabs(x);
  if (!(ax < 36)) return x != x ? x : dm_exp(x) - 1;
  if (ax < 0.34657359027997264) {
    if (ax < 2.220446049250313e-16) return x;
    return expm1_kernel(x, 0);
  }
  f64 k = dm_floor(x * INV_LN2 + 0.5);
  f64 hi = x - k * LN2_HI;
  f64 lo = k * LN2_LO;
  f64 r = hi - lo;
  f64 rerr = hi - r - lo;
  f64 t = pow2i((int)k);
  return t * expm1_kernel(r, rerr) + (t - 1);
}

INLINE f64 log1p_kernel(f64 f) {
  f64 s = f / (2 + f);
  f64 z = s * s;
  f64 p = 2.0 / 21.0;
  p = p * z + 2.0 / 19.0;
  p = p * z + 2.0 / 17.0;
  p = p * z + 2.0 / 15.0;
  p = p * z + 2.0 / 13.0;
  p = p * z + 2.0 / 11.0;
  p = p * z + 2.0 / 9.0;
  p = p * z + 2.0 / 7.0;
  p = p * z + 2.0 / 5.0;
  p = p * z + 2.0 / 3.0;
  f64 R = z * p;
  return f - s * (f - R);
}

static __attribute__((unused)) f64 log_positive(f64 x, f64 c) {
  f64 m = x;
  int e = 0;
  if (m < 2.2250738585072014e-308) { m *= P2_54; e = -54; }
  if (m >= 1) {
    if (m >= 1.3407807929942597e154) { m *= 7.458340731200207e-155; e += 512; }
    if (m >= 1.157920892373162e77) { m *= 8.636168555094445e-78; e += 256; }
    if (m >= 3.402823669209385e38) { m *= 2.938735877055719e-39; e += 128; }
    if (m >= 18446744073709552000.0) { m *= 5.421010862427522e-20; e += 64; }
    if (m >= 4294967296.0) { m *= 2.3283064365386963e-10; e += 32; }
    if (m >= 65536.0) { m *= 0.0000152587890625; e += 16; }
    if (m >= 256.0) { m *= 0.00390625; e += 8; }
    if (m >= 16.0) { m *= 0.0625; e += 4; }
    if (m >= 4.0) { m *= 0.25; e += 2; }
    if (m >= 2.0) { m *= 0.5; e += 1; }
  } else {
    if (m < 1.4916681462400413e-154) { m *= 1.3407807929942597e154; e -= 512; }
    if (m < 1.727233711018889e-77) { m *= 1.157920892373162e77; e -= 256; }
    if (m < 5.877471754111438e-39) { m *= 3.402823669209385e38; e -= 128; }
    if (m < 1.0842021724855044e-19) { m *= 18446744073709552000.0; e -= 64; }
    if (m < 4.656612873077393e-10) { m *= 4294967296.0; e -= 32; }
    if (m < 0.000030517578125) { m *= 65536.0; e -= 16; }
    if (m < 0.0078125) { m *= 256.0; e -= 8; }
    if (m < 0.125) { m *= 16.0; e -= 4; }
    if (m < 0.5) { m *= 4.0; e -= 2; }
    if (m < 1) { m *= 2.0; e -= 1; }
  }
  if (m > SQRT2_) { m *= 0.5; e += 1; }
  f64 ed = (f64)e;
  return ed * LN2_HI + (log1p_kernel(m - 1) + (ed * LN2_LO + c));
}

static __attribute__((unused)) f64 dm_log(f64 x) {
  if (!(x > 0)) return x == 0 ? -__builtin_inf() : __builtin_nan("");
  if (x == __builtin_inf()) return x;
  return log_positive(x, 0);
}

static __attribute__((unused)) f64 dm_log1p(f64 x) {
  if (!(x > -1)) return x == -1 ? -__builtin_inf() : __builtin_nan("");
  if (x == __builtin_inf()) return x;
  if (x > -0.2928932188134524 && x < 0.41421356237309503) return log1p_kernel(x);
  f64 u = 1 + x;
  return log_positive(u, (x - (u - 1)) / u);
}

INLINE f64 sin_kernel(f64 r, f64 rlo) {
  f64 z = r * r;
  f64 p = -1.0 / 121645100408832000.0;
  p = p * z + 1.0 / 355687428096000.0;
  p = p * z - 1.0 / 1307674368000.0;
  p = p * z + 1.0 / 6227020800.0;
  p = p * z - 1.0 / 39916800.0;
  p = p * z + 1.0 / 362880.0;
  p = p * z - 1.0 / 5040.0;
  p = p * z + 1.0 / 120.0;
  p = p * z - 1.0 / 6.0;
  return r + (r * z * p + rlo * (1 - 0.5 * z));
}

INLINE f64 cos_kernel(f64 r, f64 rlo) {
  f64 z = r * r;
  f64 hz = 0.5 * z;
  f64 w = 1 - hz;
  f64 p = 1.0 / 2432902008176640000.0;
  p = p * z - 1.0 / 6402373705728000.0;
  p = p * z + 1.0 / 20922789888000.0;
  p = p * z - 1.0 / 87178291200.0;
  p = p * z + 1.0 / 479001600.0;
  p = p * z - 1.0 / 3628800.0;
  p = p * z + 1.0 / 40320.0;
  p = p * z - 1.0 / 720.0;
  p = p * z + 1.0 / 24.0;
  return w + ((1 - w - hz) + (z * z * p - r * rlo));
}

/* x = k pi/2 + (*hi + *lo); returns k mod 4 as JS's ToInt32(k) & 3 does. */
static __attribute__((unused)) int reduce_pio2(f64 x, f64* hi, f64* lo) {
  f64 k = dm_floor(x * TWO_OVER_PI + 0.5);
  f64 t = x - k * PIO2_1;
  f64 w = k * PIO2_2;
  f64 a = t - w;
  f64 aErr = t - a - w;
  f64 b = k * PIO2_3;
  f64 tail = aErr - b;
  *hi = a + tail;
  *lo = a - *hi + tail;
  /* ToInt32(k) & 3 == k mod 4 (two's complement) for any integer-valued k: take k mod 4 exactly. */
  f64 q = k - 4.0 * dm_floor(k * 0.25);
  return (int)q & 3;
}

static __attribute__((unused)) f64 dm_sin(f64 x) {
  f64 ax = dm_fabs(x);
  if (ax <= 0.7853981633974483) {
    if (ax < 7.450580596923828e-9) return x;
    return sin_kernel(x, 0);
  }
  if (!(ax < __builtin_inf())) return __builtin_nan("");
  f64 hi, lo;
  int q = reduce_pio2(x, &hi, &lo);
  if (q == 0) return sin_kernel(hi, lo);
  if (q == 1) return cos_kernel(hi, lo);
  if (q == 2) return -sin_kernel(hi, lo);
  return -cos_kernel(hi, lo);
}

static __attribute__((unused)) f64 dm_cos(f64 x) {
  f64 ax = dm_fabs(x);
  if (ax <= 0.7853981633974483) {
    if (ax < 7.450580596923828e-9) return 1;
    return cos_kernel(x, 0);
  }
  if (!(ax < __builtin_inf())) return __builtin_nan("");
  f64 hi, lo;
  int q = reduce_pio2(x, &hi, &lo);
  if (q == 0) return cos_kernel(hi, lo);
  if (q == 1) return -sin_kernel(hi, lo);
  if (q == 2) return -cos_kernel(hi, lo);
  return sin_kernel(hi, lo);
}

static __attribute__((unused)) f64 dm_tanh(f64 x) {
  f64 ax = dm_fabs(x);
  if (!(ax < 22)) return x != x ? x : x > 0 ? 1 : -1;
  if (ax < 3.725290298461914e-9) return x;
  f64 z;
  if (ax >= 1) {
    z = 1 - 2 / (dm_expm1(2 * ax) + 2);
  } else {
    f64 t = dm_expm1(-2 * ax);
    z = -t / (t + 2);
  }
  return x < 0 ? -z : z;
}

static __attribute__((unused)) f64 dm_sigmoid(f64 x) {
  if (x >= 0) return 1 / (1 + dm_exp(-x));
  f64 e = dm_exp(x);
  return e / (1 + e);
}

static __attribute__((unused)) f64 dm_softplus(f64 x) {
  if (x > 0) return x >= 40 ? x : x + dm_log1p(dm_exp(-x));
  return dm_log1p(dm_exp(x));
}

/* ---- two lanes ---- */

INLINE v128_t expm1_kernel_v(v128_t r, v128_t rerr) {
#define C2(x) wasm_f64x2_splat(x)
#define HORNER(p, c) p = wasm_f64x2_add(wasm_f64x2_mul(p, r), C2(c))
  v128_t p = C2(1.0 / 6227020800.0);
  HORNER(p, 1.0 / 479001600.0);
  HORNER(p, 1.0 / 39916800.0);
  HORNER(p, 1.0 / 3628800.0);
  HORNER(p, 1.0 / 362880.0);
  HORNER(p, 1.0 / 40320.0);
  HORNER(p, 1.0 / 5040.0);
  HORNER(p, 1.0 / 720.0);
  HORNER(p, 1.0 / 120.0);
  HORNER(p, 1.0 / 24.0);
  HORNER(p, 1.0 / 6.0);
  HORNER(p, 1.0 / 2.0);
  return wasm_f64x2_add(r, wasm_f64x2_add(rerr, wasm_f64x2_mul(wasm_f64x2_mul(r, r), p)));
#undef HORNER
}

/*
 * exp of two lanes, equal bit for bit to dm_exp on each lane. For x in [-708, 709] the reference
 * takes the general path with k in [-1022, 1023] (the |x| < 0.347 shortcuts give the same bits as
 * that path with k = 0, see the notes in wasm/README), so scale2 is one multiply by 2^k built from
 * the exponent bits. Other lanes (NaN, overflow, underflow, subnormal results) use dm_exp.
 */
INLINE v128_t exp_v2(v128_t x) {
  v128_t inr = wasm_v128_and(wasm_f64x2_ge(x, C2(-708.0)), wasm_f64x2_le(x, C2(709.0)));
  v128_t k = wasm_f64x2_floor(wasm_f64x2_add(wasm_f64x2_mul(x, C2(INV_LN2)), C2(0.5)));
  v128_t hi = wasm_f64x2_sub(x, wasm_f64x2_mul(k, C2(LN2_HI)));
  v128_t lo = wasm_f64x2_mul(k, C2(LN2_LO));
  v128_t r = wasm_f64x2_sub(hi, lo);
  v128_t rerr = wasm_f64x2_sub(wasm_f64x2_sub(hi, r), lo);
  v128_t y = wasm_f64x2_add(C2(1.0), expm1_kernel_v(r, rerr));
  /* 2^k from the bits: k + 1.5·2^52 holds k in its low mantissa bits (exact for |k| < 2^51), so
   * ((bits + 1023) << 52) is the double 2^k for k in [-1022, 1023]. Out-of-range lanes are
   * recomputed below, whatever they hold here. */
  v128_t kb = wasm_f64x2_add(k, C2(6755399441055744.0));
  v128_t two_k = wasm_i64x2_shl(wasm_i64x2_add(kb, wasm_i64x2_splat(1023)), 52);
  y = wasm_f64x2_mul(y, two_k);
  if (wasm_i64x2_bitmask(inr) != 3) {
    f64 y0 = wasm_i64x2_extract_lane(inr, 0) ? wasm_f64x2_extract_lane(y, 0) : dm_exp(wasm_f64x2_extract_lane(x, 0));
    f64 y1 = wasm_i64x2_extract_lane(inr, 1) ? wasm_f64x2_extract_lane(y, 1) : dm_exp(wasm_f64x2_extract_lane(x, 1));
    y = wasm_f64x2_make(y0, y1);
  }
  return y;
}

/*
 * Lockstep for the engines. clang's wasm backend emits each expression tree whole (its register
 * stackifier moves every single-use value next to its use), so chains written side by side in C
 * reach the engine one after another, and the CPU's out-of-order window overlaps only two or three
 * of them. LOCKSTEP_PIN makes the values of every chain live at a branch after each
 * step: the branch tests a word of memory that is always zero (read as volatile, so neither clang
 * nor an engine can fold it) and, never taken, would store the values; so clang must compute every
 * chain's step before it, and the engines keep that order (V8's TurboFan, Node 20's, reorders
 * within a block but not across the branch). A load, a compare and a predicted branch per step.
 * No value changes: the operations are the same, only their order in the module.
 */
extern volatile i32 lockstep_flag;
extern volatile v128_t lockstep_sink;
#define LOCKSTEP_PIN(a, n)                                              \
  if (lockstep_flag) {                                                  \
    for (int pin_ = 0; pin_ < (n); pin_++) lockstep_sink = (a)[pin_];   \
  }

/*
 * nq exp_v2 in lockstep, each step pinned (LOCKSTEP_PIN): the same operations on every lane as
 * exp_v2, so the same bits. One range test for all lanes: a block with a lane outside [-708, 709]
 * (rare) recomputes those lanes with dm_exp. nq is a compile-time constant at every call.
 */
INLINE void exp_v2xn(v128_t* x, const int nq) {
#define QN(stmt) { for (int q = 0; q < nq; q++) { stmt; } }
  v128_t k[nq], r[nq], rerr[nq], p[nq];
  v128_t inr = wasm_v128_and(wasm_f64x2_ge(x[0], C2(-708.0)), wasm_f64x2_le(x[0], C2(709.0)));
  for (int q = 1; q < nq; q++) inr = wasm_v128_and(inr, wasm_v128_and(wasm_f64x2_ge(x[q], C2(-708.0)), wasm_f64x2_le(x[q], C2(709.0))));
  QN(k[q] = wasm_f64x2_floor(wasm_f64x2_add(wasm_f64x2_mul(x[q], C2(INV_LN2)), C2(0.5))))
  QN({
    v128_t hi = wasm_f64x2_sub(x[q], wasm_f64x2_mul(k[q], C2(LN2_HI)));
    v128_t lo = wasm_f64x2_mul(k[q], C2(LN2_LO));
    r[q] = wasm_f64x2_sub(hi, lo);
    rerr[q] = wasm_f64x2_sub(wasm_f64x2_sub(hi, r[q]), lo);
  })
  LOCKSTEP_PIN(r, nq)
#define HORNERN(c) QN(p[q] = wasm_f64x2_add(wasm_f64x2_mul(p[q], r[q]), C2(c))) LOCKSTEP_PIN(p, nq)
  QN(p[q] = C2(1.0 / 6227020800.0))
  HORNERN(1.0 / 479001600.0)
  HORNERN(1.0 / 39916800.0)
  HORNERN(1.0 / 3628800.0)
  HORNERN(1.0 / 362880.0)
  HORNERN(1.0 / 40320.0)
  HORNERN(1.0 / 5040.0)
  HORNERN(1.0 / 720.0)
  HORNERN(1.0 / 120.0)
  HORNERN(1.0 / 24.0)
  HORNERN(1.0 / 6.0)
  HORNERN(1.0 / 2.0)
#undef HORNERN
  QN({
    v128_t y = wasm_f64x2_add(C2(1.0), wasm_f64x2_add(r[q], wasm_f64x2_add(rerr[q], wasm_f64x2_mul(wasm_f64x2_mul(r[q], r[q]), p[q]))));
    v128_t kb = wasm_f64x2_add(k[q], C2(6755399441055744.0));
    p[q] = wasm_f64x2_mul(y, wasm_i64x2_shl(wasm_i64x2_add(kb, wasm_i64x2_splat(1023)), 52));
  })
  if (wasm_i64x2_bitmask(inr) != 3) {
    QN({
      const v128_t in = wasm_v128_and(wasm_f64x2_ge(x[q], C2(-708.0)), wasm_f64x2_le(x[q], C2(709.0)));
      if (wasm_i64x2_bitmask(in) != 3) {
        f64 y0 = wasm_i64x2_extract_lane(in, 0) ? wasm_f64x2_extract_lane(p[q], 0) : dm_exp(wasm_f64x2_extract_lane(x[q], 0));
        f64 y1 = wasm_i64x2_extract_lane(in, 1) ? wasm_f64x2_extract_lane(p[q], 1) : dm_exp(wasm_f64x2_extract_lane(x[q], 1));
        p[q] = wasm_f64x2_make(y0, y1);
      }
    })
  }
  QN(x[q] = p[q])
#undef QN
}

/*
 * dm_log1p of nq lane pairs holding e in [0, 1] (here e = exp(-|x|), so e is never NaN, negative
 * or infinite), in lockstep (the Horner steps pinned, see LOCKSTEP_PIN): the reference's two paths
 * computed side by side and selected per lane.
 *   e < 0.41421356237309503: log1p_kernel(e);
 *   else u = 1 + e in [1.414, 2], c = (e - (u - 1)) / u and log_positive(u, c), where of all its
 *   range reductions only "m >= 2: m *= 0.5, ed = 1" (u = 2) and "m > √2: m *= 0.5, ed += 1" can
 *   fire; then ed·LN2_HI + (log1p_kernel(m - 1) + (ed·LN2_LO + c)).
 * One log1p_kernel (a division, then the Horner polynomial in s²) serves both paths (its argument
 * is selected first). The same operations on every lane as the reference, so the same bits.
 */
INLINE void log1p_unit_vn(v128_t* e, const int nq) {
#define QN(stmt) { for (int q = 0; q < nq; q++) { stmt; } }
  v128_t small[nq], c[nq], ed[nq], f[nq], s[nq], z[nq], p[nq];
  QN({
    small[q] = wasm_f64x2_lt(e[q], C2(0.41421356237309503));
    const v128_t u = wasm_f64x2_add(C2(1.0), e[q]);
    c[q] = wasm_f64x2_div(wasm_f64x2_sub(e[q], wasm_f64x2_sub(u, C2(1.0))), u);
    const v128_t two = wasm_f64x2_ge(u, C2(2.0));
    v128_t m = wasm_v128_bitselect(wasm_f64x2_mul(u, C2(0.5)), u, two);
    v128_t d = wasm_v128_and(two, C2(1.0));
    const v128_t gt = wasm_f64x2_gt(m, C2(SQRT2_));
    m = wasm_v128_bitselect(wasm_f64x2_mul(m, C2(0.5)), m, gt);
    ed[q] = wasm_v128_bitselect(wasm_f64x2_add(d, C2(1.0)), d, gt);
    f[q] = wasm_v128_bitselect(e[q], wasm_f64x2_sub(m, C2(1.0)), small[q]);
    s[q] = wasm_f64x2_div(f[q], wasm_f64x2_add(C2(2.0), f[q]));
    z[q] = wasm_f64x2_mul(s[q], s[q]);
  })
  LOCKSTEP_PIN(z, nq)
#define HZN(c) QN(p[q] = wasm_f64x2_add(wasm_f64x2_mul(p[q], z[q]), C2(c))) LOCKSTEP_PIN(p, nq)
  QN(p[q] = C2(2.0 / 21.0))
  HZN(2.0 / 19.0)
  HZN(2.0 / 17.0)
  HZN(2.0 / 15.0)
  HZN(2.0 / 13.0)
  HZN(2.0 / 11.0)
  HZN(2.0 / 9.0)
  HZN(2.0 / 7.0)
  HZN(2.0 / 5.0)
  HZN(2.0 / 3.0)
#undef HZN
  QN({
    const v128_t R = wasm_f64x2_mul(z[q], p[q]);
    const v128_t k = wasm_f64x2_sub(f[q], wasm_f64x2_mul(s[q], wasm_f64x2_sub(f[q], R)));
    const v128_t big = wasm_f64x2_add(wasm_f64x2_mul(ed[q], C2(LN2_HI)), wasm_f64x2_add(k, wasm_f64x2_add(wasm_f64x2_mul(ed[q], C2(LN2_LO)), c[q])));
    e[q] = wasm_v128_bitselect(k, big, small[q]);
  })
#undef QN
}

/*
 * softplus of nq lane pairs, equal to dm_softplus on each lane: e = exp(-|x|) (which is exp(-x)
 * for x > 0 and exp(x) otherwise, -0 included), then log1p(e), both in lockstep (exp_v2xn,
 * log1p_unit_vn), then x >= 40 ? x : x + log1p(e) for x > 0 and log1p(e) otherwise. A block
 * holding a NaN recomputes the pairs that hold one with dm_softplus (the reference's NaN).
 */
INLINE void softplus_v2xn(v128_t* x, const int nq) {
  v128_t e[nq];
  for (int q = 0; q < nq; q++) e[q] = wasm_f64x2_neg(wasm_f64x2_abs(x[q]));
  exp_v2xn(e, nq);
  log1p_unit_vn(e, nq);
  v128_t nan = wasm_f64x2_ne(x[0], x[0]);
  for (int q = 1; q < nq; q++) nan = wasm_v128_or(nan, wasm_f64x2_ne(x[q], x[q]));
  for (int q = 0; q < nq; q++) {
    const v128_t pos = wasm_v128_bitselect(x[q], wasm_f64x2_add(x[q], e[q]), wasm_f64x2_ge(x[q], C2(40.0)));
    e[q] = wasm_v128_bitselect(pos, e[q], wasm_f64x2_gt(x[q], C2(0.0)));
  }
  if (wasm_v128_any_true(nan)) {
    for (int q = 0; q < nq; q++)
      if (wasm_i64x2_bitmask(wasm_f64x2_ne(x[q], x[q])) != 0)
        e[q] = wasm_f64x2_make(dm_softplus(wasm_f64x2_extract_lane(x[q], 0)), dm_softplus(wasm_f64x2_extract_lane(x[q], 1)));
  }
  for (int q = 0; q < nq; q++) x[q] = e[q];
}

#undef C2

#endif
