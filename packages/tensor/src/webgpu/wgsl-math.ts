/**
 * f32 elementary functions in WGSL, written out rather than taken from the builtins.
 *
 * Why: WGSL only promises loose accuracy for its builtins (sin/cos: 2^-11 absolute on [-π, π];
 * log: 2^-21 absolute near 1, i.e. no relative accuracy for log(1+ε); tanh is allowed to be
 * sinh/cosh, which overflows to NaN for |x| > 89), and drivers use fast approximations. These
 * versions follow the CPU reference (cpu/detmath.ts) in f32: Cody–Waite reduction plus short
 * Taylor polynomials, built only from + − × ÷, round, ldexp and bit casts, so every GPU gives
 * results within a few ulp of the CPU. NaN tests use bit patterns, which fast-math drivers
 * cannot fold away.
 */

/** A WGSL f32 literal for a JS number (always with a decimal point or exponent, suffixed f). */
export function lit(x: number): string {
  let s = String(x);
  if (!/[.eE]/.test(s)) s += ".0";
  return s + "f";
}

/** x rounded to `bits` significant bits. */
function roundBits(x: number, bits: number): number {
  const e = Math.floor(Math.log2(Math.abs(x)));
  const scale = 2 ** (bits - 1 - e);
  return Math.round(x * scale) / scale;
}

// π/2 in four pieces; the first three have 12 significant bits, so n * P_i is exact for |n| < 2^12
// (|x| < ~6400), beyond which sin/cos lose accuracy gradually (no Payne–Hanek).
const PIO2 = Math.PI / 2;
const P1 = roundBits(PIO2, 12);
const P2 = roundBits(PIO2 - P1, 12);
const P3 = roundBits(PIO2 - P1 - P2, 12);
const P4 = Math.fround(PIO2 - P1 - P2 - P3);

// ln 2 = LN2_HI + LN2_LO; LN2_HI has 15 significant bits so k * LN2_HI is exact for |k| <= 255.
const LN2_HI = 0.693145751953125;
const LN2_LO = Math.fround(Math.LN2 - LN2_HI);

function horner(v: string, coeffs: number[]): string {
  // coeffs from the highest power down
  let s = lit(coeffs[0]);
  for (let i = 1; i < coeffs.length; i++) s = `(${s} * ${v} + ${lit(coeffs[i])})`;
  return s;
}

const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));

export const WGSL_MATH = /* wgsl */ `
// through a let: a constant bitcast to inf/NaN is a shader-creation error (const evaluation)
fn m_inf() -> f32 { let u = 0x7f800000u; return bitcast<f32>(u); }
fn m_nan() -> f32 { let u = 0x7fc00000u; return bitcast<f32>(u); }
fn m_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn m_isfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }

// expm1(r) for |r| <= ln2/2: Taylor series to r^8 / 8!.
fn m_em1k(r: f32) -> f32 {
  let p = ${horner("r", [1 / fact(8), 1 / fact(7), 1 / fact(6), 1 / fact(5), 1 / fact(4), 1 / fact(3), 1 / 2])};
  return r + r * r * p;
}

fn m_exp(x: f32) -> f32 {
  if (m_isnan(x)) { return x; }
  if (x > 88.72284f) { return m_inf(); }
  if (x < -103.97208f) { return 0.0f; }
  let k = round(x * ${lit(Math.LOG2E)});
  let r = (x - k * ${lit(LN2_HI)}) - k * ${lit(LN2_LO)};
  let ki = i32(k);
  let p = 1.0f + m_em1k(r);
  // p · 2^ki with 2^ki built from its bits where the result is a normal number (p in [0.7, 1.42):
  // ki in [−125, 127]), so the product is exact, as the two ldexps are; they remain for the
  // subnormal results and ki = 128, where 2^ki itself is no f32
  if (ki >= -125 && ki <= 127) { return p * bitcast<f32>(u32(ki + 127) << 23u); }
  let h = ki / 2;
  return ldexp(ldexp(p, h), ki - h);
}

fn m_expm1(x: f32) -> f32 {
  if (abs(x) < 0.34657359f) { return m_em1k(x); }
  if (!(abs(x) < 20.0f)) { return m_exp(x) - 1.0f; }
  let k = round(x * ${lit(Math.LOG2E)});
  let r = (x - k * ${lit(LN2_HI)}) - k * ${lit(LN2_LO)};
  let t = ldexp(1.0f, i32(k));
  return t * m_em1k(r) + (t - 1.0f);
}

// log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]: f - s (f - R), s = f / (2 + f).
fn m_log1pk(f: f32) -> f32 {
  let s = f / (2.0f + f);
  let z = s * s;
  let R = z * ${horner("z", [2 / 11, 2 / 9, 2 / 7, 2 / 5, 2 / 3])};
  return f - s * (f - R);
}

// log(x) + c for finite x > 0 (c a tiny correction): x = m 2^e, m in [sqrt(1/2), sqrt(2)).
fn m_logc(x: f32, c: f32) -> f32 {
  var xx = x;
  var e = 0i;
  if (xx < 1.17549435e-38f) { xx = xx * 8388608.0f; e = -23i; }
  let b = bitcast<u32>(xx);
  e += i32(b >> 23u) - 127i;
  var m = bitcast<f32>((b & 0x7fffffu) | 0x3f800000u);
  if (m > 1.41421356f) { m = m * 0.5f; e += 1i; }
  let fe = f32(e);
  return fe * ${lit(LN2_HI)} + (m_log1pk(m - 1.0f) + (fe * ${lit(LN2_LO)} + c));
}

fn m_log(x: f32) -> f32 {
  if (!(x > 0.0f)) { return select(m_nan(), -m_inf(), x == 0.0f); }
  if (!m_isfinite(x)) { return x; }
  return m_logc(x, 0.0f);
}

fn m_log1p(x: f32) -> f32 {
  if (!(x > -1.0f)) { return select(m_nan(), -m_inf(), x == -1.0f); }
  if (!m_isfinite(x)) { return x; }
  if (x > -0.29289322f && x < 0.41421356f) { return m_log1pk(x); }
  let u = 1.0f + x;
  return m_logc(u, (x - (u - 1.0f)) / u);
}

fn m_tanh(x: f32) -> f32 {
  let ax = abs(x);
  var z: f32;
  if (!(ax < 9.0f)) {
    if (m_isnan(x)) { return x; }
    z = 1.0f;
  } else if (ax >= 1.0f) {
    z = 1.0f - 2.0f / (m_expm1(2.0f * ax) + 2.0f);
  } else {
    let t = m_expm1(-2.0f * ax);
    z = -t / (t + 2.0f);
  }
  return select(z, -z, x < 0.0f);
}

// sigmoid and softplus from one exp of −|x| and a select, no branch: 1 / (1 + e^−x) for x ≥ 0 and
// e^x / (1 + e^x) below (softplus: x + log1p(e^−x) for x > 0, log1p(e^x) below), the same
// expressions as the CPU's (detmath.ts) on each side. Written as two branches, a warp whose lanes
// held both signs (silu's inputs, about half and half) ran both exps.
fn m_sigmoid(x: f32) -> f32 {
  let e = m_exp(-abs(x));
  return select(e / (1.0f + e), 1.0f / (1.0f + e), x >= 0.0f);
}

// softplus's log1p(t) for t = e^−|x| in [0, 1] (0 where it underflows, NaN for NaN) without m_log1p's
// range reduction and branches: log1p(t) = 2·atanh(s) = t − s·(t − R), s = t / (2 + t) ≤ 1/3, R =
// Σ 2z^k/(2k + 1) for z = s² ≤ 1/9 to k = 7 (the rest < 1e-9 relative): one division where
// m_log1p's path took two and branched on t. Within 2 ulp of the CPU's softplus on lavapipe (3
// before) over [−30, 30]; on an H200, linearSoftplus of [61440, 512] 197 → 169 µs a call.
fn m_softplus(x: f32) -> f32 {
  let t = m_exp(-abs(x));
  let s = t / (2.0f + t);
  let z = s * s;
  let R = z * ${horner("z", [2 / 15, 2 / 13, 2 / 11, 2 / 9, 2 / 7, 2 / 5, 2 / 3])};
  let v = t - s * (t - R);
  return select(v, x + v, x > 0.0f);
}

// sin(r), cos(r) for |r| <= π/4 (+ a little): Taylor to r^9 / r^10.
fn m_sink(r: f32) -> f32 {
  let z = r * r;
  return r + r * z * ${horner("z", [1 / fact(9), -1 / fact(7), 1 / fact(5), -1 / fact(3)])};
}
fn m_cosk(r: f32) -> f32 {
  let z = r * r;
  return 1.0f - 0.5f * z + z * z * ${horner("z", [-1 / fact(10), 1 / fact(8), -1 / fact(6), 1 / fact(4)])};
}

// sin (phase 0) or cos (phase 1) by Cody–Waite reduction modulo π/2.
fn m_sincos(x: f32, phase: i32) -> f32 {
  if (!m_isfinite(x)) { return m_nan(); }
  let n = round(x * ${lit(2 / Math.PI)});
  let r = (((x - n * ${lit(P1)}) - n * ${lit(P2)}) - n * ${lit(P3)}) - n * ${lit(P4)};
  let q = (i32(n) + phase) & 3i;
  if (q == 0i) { return m_sink(r); }
  if (q == 1i) { return m_cosk(r); }
  if (q == 2i) { return -m_sink(r); }
  return -m_cosk(r);
}
fn m_sin(x: f32) -> f32 { return m_sincos(x, 0i); }
fn m_cos(x: f32) -> f32 { return m_sincos(x, 1i); }

// a^b with the CPU's special cases (cpu/elementwise.ts dmPow).
fn m_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0f) { return 1.0f; }
  if (b == 1.0f) { return a; }
  if (b == 2.0f) { return a * a; }
  if (b == 0.5f) { return sqrt(a); }
  if (a > 0.0f) { return m_exp(b * m_log(a)); }
  if (a == 0.0f) { return select(m_inf(), 0.0f, b > 0.0f); }
  if (m_isfinite(b) && floor(b) == b) {
    let m = m_exp(b * m_log(-a));
    let odd = abs(b - 2.0f * floor(b * 0.5f)) == 1.0f;
    return select(m, -m, odd);
  }
  return m_nan();
}

// Integer a^b wrapping like int32 (b < 0: 0 unless |a| = 1).
fn m_ipow(a: i32, b: i32) -> i32 {
  if (b < 0i) {
    if (a == 1i) { return 1i; }
    if (a == -1i) { return select(1i, -1i, (b & 1i) != 0i); }
    return 0i;
  }
  var r = 1i;
  var base = a;
  var e = b;
  loop {
    if (e == 0i) { break; }
    if ((e & 1i) != 0i) { r = r * base; }
    base = base * base;
    e = e >> 1u;
  }
  return r;
}
`;
