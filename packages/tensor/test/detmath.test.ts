import fc from "fast-check";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "../../../test/support/harness.ts";
import * as D from "../src/cpu/detmath.ts";

const EPS = 2 ** -52;

/** a ≈ b within `ulps` units of b's magnitude plus an absolute slack; NaN matches NaN, ±0 match exactly. */
function close(a: number, b: number, ulps: number, abs = 0): boolean {
  if (Object.is(a, b) || (a !== a && b !== b)) return true;
  return Math.abs(a - b) <= ulps * EPS * Math.abs(b) + abs;
}

function expectClose(name: string, x: number, got: number, want: number, ulps: number, abs = 0): void {
  if (!close(got, want, ulps, abs)) {
    throw new Error(`${name}(${x}) = ${got}, reference ${want} (${Math.abs(got - want) / (EPS * Math.abs(want))} ulp)`);
  }
}

type F = (x: number) => number;

/** fast-check: f agrees with a reference over doubles in [min, max] (fc.double also hits edges, ±0, subnormals). */
function agrees(name: string, f: F, ref: F, min: number, max: number, ulps: number, abs = 0, numRuns = 3000): void {
  fc.assert(
    fc.property(fc.double({ min, max, noNaN: true }), (x) => expectClose(name, x, f(x), ref(x), ulps, abs)),
    { numRuns },
  );
}

// Math.* is itself only ~1 ulp accurate (and engine-dependent), so allow 4 ulp (≈ 9e-16 relative).
const U = 4;
const SUB = 1e-323; // a couple of subnormal ulps, for results that underflow

describe("detmath vs Math.* (fast-check)", () => {
  test("exp", () => {
    agrees("exp", D.exp, Math.exp, -760, 720, U, SUB);
    agrees("exp", D.exp, Math.exp, -2, 2, U);
  });
  test("expm1", () => {
    agrees("expm1", D.expm1, Math.expm1, -800, 720, U);
    agrees("expm1", D.expm1, Math.expm1, -1e-3, 1e-3, U);
  });
  test("log", () => {
    agrees("log", D.log, Math.log, 0, Number.MAX_VALUE, U);
    agrees("log", D.log, Math.log, 0.5, 2, U, 1e-300);
  });
  test("log1p", () => {
    agrees("log1p", D.log1p, Math.log1p, -1, 1e300, U);
    agrees("log1p", D.log1p, Math.log1p, -1e-3, 1e-3, U);
  });
  test("sin and cos on |x| <= 1e5", () => {
    // Absolute slack 2^-60 only matters next to the zeros of sin/cos.
    agrees("sin", D.sin, Math.sin, -1e5, 1e5, U, 2 ** -60);
    agrees("cos", D.cos, Math.cos, -1e5, 1e5, U, 2 ** -60);
    agrees("sin", D.sin, Math.sin, -4, 4, U);
    agrees("cos", D.cos, Math.cos, -4, 4, U, 2 ** -60);
  });
  test("tanh", () => {
    agrees("tanh", D.tanh, Math.tanh, -40, 40, U);
    agrees("tanh", D.tanh, Math.tanh, -Number.MAX_VALUE, Number.MAX_VALUE, U);
  });
  test("sigmoid (stable formula with Math.exp as reference)", () => {
    const ref = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
    agrees("sigmoid", D.sigmoid, ref, -800, 800, U, SUB);
  });
  test("softplus (stable formula with Math.log1p/Math.exp as reference)", () => {
    const ref = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
    agrees("softplus", D.softplus, ref, -800, 1e300, U, SUB);
  });
});

// erf has no Math counterpart: reference values computed with mpmath (200-bit precision), rounded to double.
const ERF_REF: [number, number][] = [
  [1e-300, 1.1283791670955126e-300],
  [1e-20, 1.1283791670955125e-20],
  [1e-8, 1.1283791670955126e-8],
  [0.001, 0.0011283787909692365],
  [0.1, 0.1124629160182849],
  [0.25, 0.27632639016823696],
  [0.5, 0.5204998778130465],
  [0.75, 0.7111556336535151],
  [0.9, 0.7969082124228322],
  [0.99, 0.8385080695553698],
  [1, 0.8427007929497149],
  [1.0000000000000002, 0.842700792949715],
  [1.1, 0.8802050695740817],
  [1.125, 0.8883882317017078],
  [1.25, 0.9229001282564583],
  [1.5, 0.9661051464753108],
  [1.75, 0.9866716712191824],
  [2, 0.9953222650189527],
  [2.5, 0.999593047982555],
  [3, 0.9999779095030014],
  [3.5, 0.9999992569016276],
  [4, 0.9999999845827421],
  [4.5, 0.9999999998033839],
  [5, 0.9999999999984626],
  [5.5, 0.9999999999999927],
  [5.9, 0.9999999999999999],
  [5.99, 1],
];

describe("erf", () => {
  test("matches high-precision reference values within 2 ulp (both signs)", () => {
    for (const [x, y] of ERF_REF) {
      expectClose("erf", x, D.erf(x), y, 2);
      expectClose("erf", -x, D.erf(-x), -y, 2);
    }
  });
  test("odd, bounded, monotone (also across the piece boundaries)", () => {
    fc.assert(
      fc.property(fc.double({ min: -10, max: 10, noNaN: true }), fc.double({ min: -10, max: 10, noNaN: true }), (a, b) => {
        expect(D.erf(-a)).toBe(-D.erf(a));
        expect(Math.abs(D.erf(a))).toBeLessThanOrEqual(1);
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(D.erf(lo)).toBeLessThanOrEqual(D.erf(hi) + EPS); // 1 ulp: erf is faithful, not correctly rounded
      }),
      { numRuns: 3000 },
    );
    for (let j = 0; j <= 20; j++) {
      const edge = 1 + j / 4;
      const below = edge - 2 ** -50;
      expect(D.erf(below)).toBeLessThanOrEqual(D.erf(edge));
      expect(D.erf(edge) - D.erf(below)).toBeLessThan(4 * EPS);
    }
  });
  test("derivative matches 2/sqrt(pi) exp(-x^2) (central differences)", () => {
    fc.assert(
      fc.property(fc.double({ min: -5, max: 5, noNaN: true }), (x) => {
        const h = 1e-5;
        const num = (D.erf(x + h) - D.erf(x - h)) / (2 * h);
        const ana = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x);
        expect(Math.abs(num - ana)).toBeLessThan(1e-9);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("special values", () => {
  const cases: [string, F, [number, number][]][] = [
    ["exp", D.exp, [[NaN, NaN], [Infinity, Infinity], [-Infinity, 0], [0, 1], [-0, 1], [710, Infinity], [709.782712893384, 1.7976931348622732e308], [-746, 0], [-745.1332191019411, 5e-324]]],
    ["expm1", D.expm1, [[NaN, NaN], [Infinity, Infinity], [-Infinity, -1], [0, 0], [-0, -0], [1e-300, 1e-300], [-40, -1], [710, Infinity]]],
    ["log", D.log, [[NaN, NaN], [Infinity, Infinity], [-Infinity, NaN], [0, -Infinity], [-0, -Infinity], [-1, NaN], [1, 0], [5e-324, -744.4400719213812], [Number.MAX_VALUE, 709.782712893384]]],
    ["log1p", D.log1p, [[NaN, NaN], [Infinity, Infinity], [-1, -Infinity], [-2, NaN], [-Infinity, NaN], [0, 0], [-0, -0], [1e-300, 1e-300]]],
    ["sin", D.sin, [[NaN, NaN], [Infinity, NaN], [-Infinity, NaN], [0, 0], [-0, -0], [1e-300, 1e-300]]],
    ["cos", D.cos, [[NaN, NaN], [Infinity, NaN], [-Infinity, NaN], [0, 1], [-0, 1]]],
    ["tanh", D.tanh, [[NaN, NaN], [Infinity, 1], [-Infinity, -1], [0, 0], [-0, -0], [1e-300, 1e-300], [25, 1], [-25, -1]]],
    ["sigmoid", D.sigmoid, [[NaN, NaN], [Infinity, 1], [-Infinity, 0], [0, 0.5], [-0, 0.5], [800, 1], [-800, 0], [-745, 5e-324]]],
    ["softplus", D.softplus, [[NaN, NaN], [Infinity, Infinity], [-Infinity, 0], [0, Math.LN2], [1e300, 1e300], [-800, 0], [-700, 9.85967654375977e-305]]],
    ["erf", D.erf, [[NaN, NaN], [Infinity, 1], [-Infinity, -1], [0, 0], [-0, -0], [6, 1], [-6, -1], [1e300, 1]]],
  ];
  for (const [name, f, rows] of cases) {
    test(name, () => {
      for (const [x, want] of rows) {
        const got = f(x);
        if (!Object.is(got, want) && !(got !== got && want !== want)) {
          throw new Error(`${name}(${x}) = ${got}, want ${want}`);
        }
      }
    });
  }
});

describe("determinism", () => {
  test("sources use no engine-dependent Math functions", () => {
    for (const file of ["../src/cpu/detmath.ts", "../src/random/philox.ts"]) {
      const code = readFileSync(new URL(file, import.meta.url), "utf8")
        .replace(/\/\*[\s\S]*?\*\//g, "")
        .replace(/\/\/.*$/gm, "");
      const bad = code.match(/Math\.(?!sqrt\b|floor\b|abs\b|fround\b|imul\b|SQRT1_2\b)\w+|\*\*/g);
      expect(bad).toBeNull();
    }
  });

  /** FNV-1a over the bits of a Float64Array. */
  function fingerprint(a: Float64Array): string {
    const w = new Uint32Array(a.buffer);
    let h = 0x811c9dc5;
    for (let i = 0; i < w.length; i++) {
      for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((w[i] >>> s) & 0xff), 0x01000193);
    }
    return (h >>> 0).toString(16).padStart(8, "0");
  }

  // Inputs built with exact arithmetic only, so they are the same bits everywhere.
  const N = 8192;
  const xs = new Float64Array(N);
  let scale = 2 ** -40;
  for (let i = 0; i < N; i++) {
    if (i % 64 === 0) scale *= 1.5;
    xs[i] = (i % 2 === 0 ? 1 : -1) * (1 + (i % 97) * 0.0103) * scale;
  }
  let maxAbs = 0;
  for (const x of xs) maxAbs = Math.max(maxAbs, Math.abs(x));
  /** f over the sweep rescaled to |x| <= top (geometric spacing covers every scale down to ~1e-22 top). */
  const sweep = (f: F, top: number, g: F = (x) => x) => {
    const k = top / maxAbs;
    return fingerprint(xs.map((x) => f(g(x * k))));
  };
  const GOLDEN: Record<string, string> = {
    exp: "007ad706",
    expm1: "b5faf6f3",
    log: "ccfba08e",
    log1p: "938b49af",
    sin: "96a27569",
    cos: "78340435",
    tanh: "2d9efba7",
    sigmoid: "91057d0e",
    softplus: "b94d43cb",
    erf: "6346326f",
  };
  test("golden fingerprints over a fixed sweep (bit-identical on every runtime)", () => {
    const got = {
      exp: sweep(D.exp, 760),
      expm1: sweep(D.expm1, 60),
      log: sweep(D.log, 1e300, Math.abs),
      log1p: sweep(D.log1p, 1e10, (x) => (x < -1 ? -x : x)),
      sin: sweep(D.sin, 1e5),
      cos: sweep(D.cos, 1e5),
      tanh: sweep(D.tanh, 30),
      sigmoid: sweep(D.sigmoid, 800),
      softplus: sweep(D.softplus, 800),
      erf: sweep(D.erf, 7),
    };
    expect(got).toEqual(GOLDEN);
  });
});
