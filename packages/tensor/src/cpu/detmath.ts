/**
 * Deterministic float64 elementary functions.
 *
 * Why this module exists: ECMAScript leaves the accuracy of Math.exp/log/sin/cos/tanh/... to the
 * engine, and JavaScriptCore (Bun) and V8 (Deno) really do differ in the last ulp for some inputs.
 * The tensor library promises bit-identical results across runtimes, so every transcendental used
 * by a CPU kernel or by the random-number code comes from here instead. Everything below is built
 * only from IEEE-754 operations that are exactly specified (correctly rounded `+ - * /`,
 * Math.sqrt, Math.floor, Math.abs, Math.fround, comparisons, ToInt32), so the same input gives the
 * same bits on every conforming engine. (Engines do not contract `a * b + c` into an FMA, which
 * would change roundings; ECMAScript forbids it.)
 *
 * Accuracy (measured against 200-bit mpmath on random samples): <= 1 ulp for exp, expm1, log,
 * log1p, sin, cos (|x| < 1.6e6, see reducePio2), softplus; <= 2 ulp for tanh, sigmoid, erf.
 * That is far more than float32 kernels need. All functions handle NaN, ±Infinity and ±0.
 * The coefficients are Taylor/series coefficients written as exact rational expressions (each
 * literal division is correctly rounded once), plus Cody–Waite splits of ln 2 and π/2.
 *
 * Performance: no allocation, no closures, no per-call table building; the only tables are built
 * once at module load with exact arithmetic.
 */

// ln 2 split so that k * LN2_HI is exact for |k| < 2^21 (LN2_HI has 32 significant bits).
const LN2_HI = 0.6931471803691238; // 0x3FE62E42FEE00000
const LN2_LO = 1.9082149292705877e-10; // ln 2 - LN2_HI, rounded
const INV_LN2 = 1.4426950408889634;
const SQRT2 = 1.4142135623730951;

// π/2 = PIO2_1 + PIO2_2 + PIO2_3 (+ ~1e-37). PIO2_1 and PIO2_2 have 33 significant bits, so
// k * PIO2_1 and k * PIO2_2 are exact for |k| < 2^20.
const PIO2_1 = 1.5707963267341256;
const PIO2_2 = 6.077100506303966e-11;
const PIO2_3 = 2.0222662487959506e-21;
const TWO_OVER_PI = 0.6366197723675814;

const TWO_OVER_SQRTPI = 1.1283791670955126;

// Largest / smallest arguments for which exp is finite / nonzero.
const EXP_OVERFLOW = 709.782712893384;
const EXP_UNDERFLOW = -745.1332191019412;

const P2_54 = 18014398509481984; // 2^54
const P2_M54 = 1 / P2_54;

/** POW2[k + 1022] = 2^k for k in [-1022, 1023], built with exact doublings at load time. */
const POW2 = new Float64Array(2046);
{
  let p = 1;
  for (let k = 0; k <= 1023; k++) {
    POW2[k + 1022] = p;
    p *= 2;
  }
  p = 1;
  for (let k = 0; k >= -1022; k--) {
    POW2[k + 1022] = p;
    p *= 0.5;
  }
}

/** x * 2^k for finite x and integer k in [-1076, 1024], with a single rounding in the subnormal range. */
function scale2(x: number, k: number): number {
  if (k > 1023) return x * POW2[k - 1 + 1022] * 2; // only k = 1024 can occur
  if (k < -1022) return x * POW2[k + 54 + 1022] * P2_M54; // first product is exact (normal range)
  return x * POW2[k + 1022];
}

/**
 * expm1(r) for |r| <= ~0.35, where the true argument is r + rerr (rerr a tiny correction).
 * Taylor series to r^13/13! (truncation < 1e-19 relative).
 */
function expm1Kernel(r: number, rerr: number): number {
  let p = 1 / 6227020800;
  p = p * r + 1 / 479001600;
  p = p * r + 1 / 39916800;
  p = p * r + 1 / 3628800;
  p = p * r + 1 / 362880;
  p = p * r + 1 / 40320;
  p = p * r + 1 / 5040;
  p = p * r + 1 / 720;
  p = p * r + 1 / 120;
  p = p * r + 1 / 24;
  p = p * r + 1 / 6;
  p = p * r + 1 / 2;
  // e^(r+rerr) - 1 ≈ (e^r - 1) + rerr * e^r; rerr is below an ulp of r so rerr * 1 suffices.
  return r + (rerr + r * r * p);
}

/** e^x. Range reduction x = k ln2 + r, |r| <= ln2/2, then 2^k * (1 + expm1(r)). */
export function exp(x: number): number {
  if (!(x <= EXP_OVERFLOW)) return x !== x ? x : Infinity; // NaN or overflow
  if (x < EXP_UNDERFLOW) return 0;
  const ax = Math.abs(x);
  if (ax < 0.34657359027997264) {
    if (ax < 1.1102230246251565e-16) return 1 + x;
    return 1 + expm1Kernel(x, 0);
  }
  const k = Math.floor(x * INV_LN2 + 0.5);
  const hi = x - k * LN2_HI; // exact (Cody–Waite)
  const lo = k * LN2_LO;
  const r = hi - lo;
  const rerr = hi - r - lo; // rounding error of r (|hi| >= |lo|)
  return scale2(1 + expm1Kernel(r, rerr), k);
}

/** e^x - 1, accurate near 0. */
export function expm1(x: number): number {
  const ax = Math.abs(x);
  if (!(ax < 36)) return x !== x ? x : exp(x) - 1; // NaN, ±Inf, or 1 is (nearly) negligible/dominant
  if (ax < 0.34657359027997264) {
    if (ax < 2.220446049250313e-16) return x; // also keeps -0
    return expm1Kernel(x, 0);
  }
  const k = Math.floor(x * INV_LN2 + 0.5); // |k| <= 52, so 2^k - 1 is exact
  const hi = x - k * LN2_HI;
  const lo = k * LN2_LO;
  const r = hi - lo;
  const rerr = hi - r - lo;
  const t = POW2[k + 1022];
  return t * expm1Kernel(r, rerr) + (t - 1);
}

/**
 * log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1], f exact. With s = f / (2 + f),
 * log(1+f) = 2 atanh(s) = f - s (f - R), R = 2 (s^2/3 + s^4/5 + ... ), |s| <= 0.1716.
 * Writing it around the exact f keeps the error near half an ulp of the result.
 */
function log1pKernel(f: number): number {
  const s = f / (2 + f);
  const z = s * s;
  let p = 2 / 21;
  p = p * z + 2 / 19;
  p = p * z + 2 / 17;
  p = p * z + 2 / 15;
  p = p * z + 2 / 13;
  p = p * z + 2 / 11;
  p = p * z + 2 / 9;
  p = p * z + 2 / 7;
  p = p * z + 2 / 5;
  p = p * z + 2 / 3;
  const R = z * p;
  return f - s * (f - R);
}

/**
 * log(x) + c for finite x > 0 and a tiny correction c (|c| << ulp). Finds x = m 2^e with
 * m in [sqrt(1/2), sqrt(2)) by binary scaling (an arithmetic frexp: exact multiplications by
 * powers of two), then log x = e ln2 + log(1 + (m - 1)).
 */
function logPositive(x: number, c: number): number {
  let m = x;
  let e = 0;
  if (m < 2.2250738585072014e-308) {
    m *= P2_54; // subnormal: make it normal first (exact)
    e = -54;
  }
  if (m >= 1) {
    if (m >= 1.3407807929942597e154) { m *= 7.458340731200207e-155; e += 512; } // 2^512
    if (m >= 1.157920892373162e77) { m *= 8.636168555094445e-78; e += 256; }
    if (m >= 3.402823669209385e38) { m *= 2.938735877055719e-39; e += 128; }
    if (m >= 18446744073709552000) { m *= 5.421010862427522e-20; e += 64; }
    if (m >= 4294967296) { m *= 2.3283064365386963e-10; e += 32; }
    if (m >= 65536) { m *= 0.0000152587890625; e += 16; }
    if (m >= 256) { m *= 0.00390625; e += 8; }
    if (m >= 16) { m *= 0.0625; e += 4; }
    if (m >= 4) { m *= 0.25; e += 2; }
    if (m >= 2) { m *= 0.5; e += 1; }
  } else {
    // Step s multiplies by 2^s when m < 2^(1-s); afterwards m is in [2^(1-s), 2).
    if (m < 1.4916681462400413e-154) { m *= 1.3407807929942597e154; e -= 512; } // 2^-511
    if (m < 1.727233711018889e-77) { m *= 1.157920892373162e77; e -= 256; }
    if (m < 5.877471754111438e-39) { m *= 3.402823669209385e38; e -= 128; }
    if (m < 1.0842021724855044e-19) { m *= 18446744073709552000; e -= 64; }
    if (m < 4.656612873077393e-10) { m *= 4294967296; e -= 32; }
    if (m < 0.000030517578125) { m *= 65536; e -= 16; }
    if (m < 0.0078125) { m *= 256; e -= 8; }
    if (m < 0.125) { m *= 16; e -= 4; }
    if (m < 0.5) { m *= 4; e -= 2; }
    if (m < 1) { m *= 2; e -= 1; }
  }
  if (m > SQRT2) {
    m *= 0.5;
    e += 1;
  }
  // m - 1 is exact (Sterbenz); e * LN2_HI is exact (|e| <= 1076).
  return e * LN2_HI + (log1pKernel(m - 1) + (e * LN2_LO + c));
}

/** Natural logarithm. log(0) = -Infinity, log(x < 0) = NaN. */
export function log(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN; // also NaN in, NaN out
  if (x === Infinity) return x;
  return logPositive(x, 0);
}

/** log(1 + x), accurate near 0. log1p(-1) = -Infinity, log1p(x < -1) = NaN. */
export function log1p(x: number): number {
  if (!(x > -1)) return x === -1 ? -Infinity : NaN;
  if (x === Infinity) return x;
  if (x > -0.2928932188134524 && x < 0.41421356237309503) return log1pKernel(x); // keeps -0
  const u = 1 + x;
  // u - 1 is exact here, so c is the rounding error of u relative to u: log(1+x) = log(u) + c.
  return logPositive(u, (x - (u - 1)) / u);
}

/** sin(r + rlo) for |r| <= π/4 (+ tiny), Taylor series to r^19 / 19!. */
function sinKernel(r: number, rlo: number): number {
  const z = r * r;
  let p = -1 / 121645100408832000;
  p = p * z + 1 / 355687428096000;
  p = p * z - 1 / 1307674368000;
  p = p * z + 1 / 6227020800;
  p = p * z - 1 / 39916800;
  p = p * z + 1 / 362880;
  p = p * z - 1 / 5040;
  p = p * z + 1 / 120;
  p = p * z - 1 / 6;
  return r + (r * z * p + rlo * (1 - 0.5 * z));
}

/** cos(r + rlo) for |r| <= π/4 (+ tiny), Taylor series to r^20 / 20!. */
function cosKernel(r: number, rlo: number): number {
  const z = r * r;
  const hz = 0.5 * z;
  const w = 1 - hz;
  let p = 1 / 2432902008176640000;
  p = p * z - 1 / 6402373705728000;
  p = p * z + 1 / 20922789888000;
  p = p * z - 1 / 87178291200;
  p = p * z + 1 / 479001600;
  p = p * z - 1 / 3628800;
  p = p * z + 1 / 40320;
  p = p * z - 1 / 720;
  p = p * z + 1 / 24;
  // (1 - w) - hz recovers the rounding error of w exactly (hz <= 0.31).
  return w + ((1 - w - hz) + (z * z * p - r * rlo));
}

// Range reduction state shared by sin and cos (module scope so no allocation per call).
let redHi = 0;
let redLo = 0;

/**
 * Cody–Waite reduction: x = k π/2 + (redHi + redLo), returns k. Uses three pieces of π/2 (about
 * 119 bits). Accurate while k * PIO2_1 and k * PIO2_2 are exact, i.e. |x| < 2^20 π/2 ≈ 1.6e6.
 * Beyond that results stay deterministic but degrade (no Payne–Hanek): measured absolute error
 * ~7e-10 at |x| ~ 1e7, ~6e-8 at 1e9, ~6e-5 at 1e12.
 */
function reducePio2(x: number): number {
  const k = Math.floor(x * TWO_OVER_PI + 0.5);
  const t = x - k * PIO2_1; // exact
  const w = k * PIO2_2; // exact
  const a = t - w;
  const aErr = t - a - w; // exact while |t| >= |w| (holds unless both are tiny)
  const b = k * PIO2_3;
  const tail = aErr - b;
  redHi = a + tail;
  redLo = a - redHi + tail;
  return k;
}

/** Sine. See reducePio2 for the argument range where accuracy holds (|x| < ~1.6e6). */
export function sin(x: number): number {
  const ax = Math.abs(x);
  if (ax <= 0.7853981633974483) {
    if (ax < 7.450580596923828e-9) return x; // sin x = x to within half an ulp; keeps -0
    return sinKernel(x, 0);
  }
  if (!(ax < Infinity)) return NaN; // NaN or ±Inf
  const q = reducePio2(x) & 3; // ToInt32 keeps k mod 4 for any integer k
  if (q === 0) return sinKernel(redHi, redLo);
  if (q === 1) return cosKernel(redHi, redLo);
  if (q === 2) return -sinKernel(redHi, redLo);
  return -cosKernel(redHi, redLo);
}

/** Cosine. See reducePio2 for the argument range where accuracy holds (|x| < ~1.6e6). */
export function cos(x: number): number {
  const ax = Math.abs(x);
  if (ax <= 0.7853981633974483) {
    if (ax < 7.450580596923828e-9) return 1;
    return cosKernel(x, 0);
  }
  if (!(ax < Infinity)) return NaN;
  const q = reducePio2(x) & 3;
  if (q === 0) return cosKernel(redHi, redLo);
  if (q === 1) return -sinKernel(redHi, redLo);
  if (q === 2) return -cosKernel(redHi, redLo);
  return sinKernel(redHi, redLo);
}

/** Hyperbolic tangent via expm1 (no cancellation near 0, saturates to ±1 for |x| >= 22). */
export function tanh(x: number): number {
  const ax = Math.abs(x);
  if (!(ax < 22)) return x !== x ? x : x > 0 ? 1 : -1;
  if (ax < 3.725290298461914e-9) return x; // tanh x = x to within half an ulp; keeps -0
  let z: number;
  if (ax >= 1) {
    z = 1 - 2 / (expm1(2 * ax) + 2);
  } else {
    const t = expm1(-2 * ax);
    z = -t / (t + 2);
  }
  return x < 0 ? -z : z;
}

/** Logistic sigmoid 1 / (1 + e^-x), evaluated so that e^(±x) never overflows. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + exp(-x));
  const e = exp(x); // NaN propagates through here
  return e / (1 + e);
}

/**
 * softplus(x) = log(1 + e^x), stable for all x: x + log1p(e^-x) for x > 0 (returns x once e^-x is
 * below half an ulp of x, i.e. x >= 40), log1p(e^x) otherwise (→ e^x, then 0, for very negative x).
 */
export function softplus(x: number): number {
  if (x > 0) return x >= 40 ? x : x + log1p(exp(-x));
  return log1p(exp(x)); // NaN propagates
}

// erf Taylor coefficients (-1)^n / (n! (2n+1)), n = 0..18, for |x| < 1 (truncation < 3e-19).
const ERF_TAYLOR = new Float64Array(19);
{
  let fact = 1; // n!, exact up to 18!
  for (let n = 0; n < 19; n++) {
    if (n > 0) fact *= n;
    ERF_TAYLOR[n] = (n % 2 === 0 ? 1 : -1) / (fact * (2 * n + 1));
  }
}

// erf on [1, 6): Taylor polynomials of degree ERF_DEG about the centres c_j = 1.125 + j/4 (|h| <= 1/8).
// erf(c_j) = ERF_CENTRES[j] + ERF_CENTRES_LO[j] (double-double) are constants computed offline with
// mpmath at 200-bit precision.
// The other coefficients follow exactly from erf' = (2/√π) e^(-x²) at load time: with
// g(h) = erf'(c + h) = Σ b_n h^n, g' = -2 (c + h) g gives b_{n+1} = -2 (c b_n + b_{n-1}) / (n + 1),
// and erf(c + h) = erf(c) + Σ b_n h^(n+1) / (n + 1). Truncation is below 1e-19.
const ERF_CENTRES = [
  0.8883882317017078, 0.9481700727820903, 0.9784437332399837, 0.9919900576701199, 0.9973459706405177,
  0.9992170617821089, 0.9997946242638588, 0.9999521451602562, 0.9999901032653747, 0.9999981847185726,
  0.9999997048598075, 0.999999957486056, 0.9999999945765992, 0.9999999993875167, 0.9999999999387839,
  0.9999999999945866, 0.9999999999995766, 0.9999999999999707, 0.9999999999999982, 0.9999999999999999,
];
const ERF_CENTRES_LO = [
  -1.158643993739769e-17, 1.071691533519912e-17, -1.7028513178925588e-17, 3.0126779045582727e-17,
  -6.548583264315741e-18, -1.4349117332555682e-17, -6.2556665556923804e-18, 1.4933598125858e-17,
  1.3132336543493276e-17, -4.284756581330801e-17, -3.8108336724873686e-18, -5.0616648789558536e-17,
  3.99675667392096e-17, -9.046130618729546e-18, 3.813525439388226e-17, 4.1001774321813545e-17,
  -1.727604158766289e-17, 1.5002305232589177e-17, -1.5663166250755952e-17, 1.4106746009743903e-17,
];
const ERF_DEG = 18;
const ERF_GRID = new Float64Array(ERF_CENTRES.length * (ERF_DEG + 1));
for (let j = 0; j < ERF_CENTRES.length; j++) {
  const c = 1.125 + 0.25 * j; // c and c² are exact
  const base = j * (ERF_DEG + 1);
  ERF_GRID[base] = ERF_CENTRES[j];
  let bPrev = 0;
  let b = TWO_OVER_SQRTPI * exp(-c * c);
  for (let n = 0; n < ERF_DEG; n++) {
    ERF_GRID[base + n + 1] = b / (n + 1);
    const bNext = (-2 * (c * b + bPrev)) / (n + 1);
    bPrev = b;
    b = bNext;
  }
}

/**
 * Error function. |x| < 1: alternating Taylor series about 0 (no significant cancellation there).
 * 1 <= |x| < 6: Taylor polynomial about the nearest grid centre (table above). |x| >= 6: ±1
 * (erfc(6) ≈ 2e-17 is below half an ulp of 1).
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 1) {
    const z = x * x;
    let p = ERF_TAYLOR[18];
    for (let n = 17; n >= 0; n--) p = p * z + ERF_TAYLOR[n];
    return TWO_OVER_SQRTPI * (x * p); // keeps -0
  }
  if (!(ax < 6)) return x !== x ? x : x > 0 ? 1 : -1;
  const j = Math.floor((ax - 1) * 4);
  const h = ax - (1.125 + 0.25 * j); // exact
  const base = j * (ERF_DEG + 1);
  let p = ERF_GRID[base + ERF_DEG];
  for (let n = ERF_DEG - 1; n >= 1; n--) p = p * h + ERF_GRID[base + n];
  const y = ERF_GRID[base] + (p * h + ERF_CENTRES_LO[j]);
  return x < 0 ? -y : y;
}
