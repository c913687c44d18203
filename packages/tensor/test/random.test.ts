import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import {
  foldIn,
  keyFromSeed,
  normalF32,
  philox4x32,
  randomBits,
  splitKey,
  truncatedNormalF32,
  uniformF32,
} from "../src/random/philox.ts";
import type { Key } from "../src/random/philox.ts";

const hex = (a: Uint32Array): string[] => [...a].map((w) => w.toString(16).padStart(8, "0"));

/** Straightforward BigInt Philox4x32-10, an independent reference for the split 16-bit multiply. */
function philoxRef(ctr: number[], key: number[]): number[] {
  const MASK = 0xffffffffn;
  let [c0, c1, c2, c3] = ctr.map(BigInt);
  let [k0, k1] = key.map(BigInt);
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [(p1 >> 32n) ^ c1 ^ k0, p1 & MASK, (p0 >> 32n) ^ c3 ^ k1, p0 & MASK];
    k0 = (k0 + 0x9e3779b9n) & MASK;
    k1 = (k1 + 0xbb67ae85n) & MASK;
  }
  return [c0, c1, c2, c3].map(Number);
}

/** FNV-1a over the raw bits of a typed array: a compact fingerprint for cross-runtime golden values. */
function fingerprint(a: Float32Array | Uint32Array): string {
  const w = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < w.length; i++) {
    for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((w[i] >>> s) & 0xff), 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

function extent(a: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < a.length; i++) {
    if (a[i] < min) min = a[i];
    if (a[i] > max) max = a[i];
  }
  return { min, max };
}

function moments(a: Float32Array): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  const mean = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - mean) ** 2;
  return { mean, std: Math.sqrt(v / a.length) };
}

const K = keyFromSeed(42);

describe("philox4x32 (Random123 known answers)", () => {
  // Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> output[4].
  test("counter 0, key 0", () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(["6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"]);
  });
  test("counter and key all 0xffffffff", () => {
    const f = 0xffffffff;
    expect(hex(philox4x32([f, f, f, f], [f, f]))).toEqual(["408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"]);
  });
  test("pi digits counter and key (Uint32Array inputs)", () => {
    const ctr = new Uint32Array([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344]);
    const key = new Uint32Array([0xa4093822, 0x299f31d0]);
    expect(hex(philox4x32(ctr, key))).toEqual(["d16cfe09", "94fdcceb", "5001e420", "24126ea1"]);
  });
  test("matches a BigInt reference on random counters and keys", () => {
    const u32 = fc.nat({ max: 0xffffffff });
    fc.assert(
      fc.property(fc.tuple(u32, u32, u32, u32), fc.tuple(u32, u32), (ctr, key) => {
        expect([...philox4x32(ctr, key)]).toEqual(philoxRef(ctr, key));
      }),
      { numRuns: 300 },
    );
  });
  test("rejects words that are not uint32", () => {
    expect(() => philox4x32([0, 0, 0, -1], [0, 0])).toThrow();
    expect(() => philox4x32([0, 0, 0, 0], [2 ** 32, 0])).toThrow();
    expect(() => philox4x32([0, 0, 0, 0.5], [0, 0])).toThrow();
  });
});

describe("keys", () => {
  test("keyFromSeed splits the seed into hi/lo words and freezes the key", () => {
    expect([...keyFromSeed(0)]).toEqual([0, 0]);
    expect([...keyFromSeed(7)]).toEqual([0, 7]);
    expect([...keyFromSeed(2 ** 32 + 5)]).toEqual([1, 5]);
    expect([...keyFromSeed(Number.MAX_SAFE_INTEGER)]).toEqual([0x1fffff, 0xffffffff]);
    expect(Object.isFrozen(keyFromSeed(1))).toBe(true);
    expect(() => keyFromSeed(-1)).toThrow();
    expect(() => keyFromSeed(1.5)).toThrow();
    expect(() => keyFromSeed(2 ** 53)).toThrow();
  });
  test("splitKey: deterministic, distinct children, child c independent of n", () => {
    const a = splitKey(K, 5);
    expect(a.length).toBe(5);
    expect(splitKey(K, 5)).toEqual(a);
    expect(splitKey(K)).toEqual(a.slice(0, 2));
    const all = [K, ...a].map((k) => k.join(","));
    expect(new Set(all).size).toBe(6);
    for (const k of a) expect(Object.isFrozen(k)).toBe(true);
    expect(splitKey(K, 0)).toEqual([]);
  });
  test("split keys give different streams (also from the parent's)", () => {
    const [a, b] = splitKey(K);
    const streams = [K, a, b].map((k) => randomBits(k, 64));
    for (let i = 0; i < 3; i++) {
      for (let j = i + 1; j < 3; j++) {
        let same = 0;
        for (let t = 0; t < 64; t++) if (streams[i][t] === streams[j][t]) same++;
        expect(same).toBeLessThan(2);
      }
    }
  });
  test("foldIn: deterministic, distinct per data, distinct from split children", () => {
    const f = [0, 1, 2, 3, 2 ** 40].map((d) => foldIn(K, d));
    expect(foldIn(K, 1)).toEqual(f[1]);
    const split = splitKey(K, 5);
    expect(new Set([...f, ...split, K].map((k) => k.join(","))).size).toBe(11);
    expect(() => foldIn(K, -1)).toThrow();
    expect(() => foldIn([0, 2 ** 32] as unknown as Key, 0)).toThrow();
  });
  test("golden derived keys (same bits on every runtime)", () => {
    expect(splitKey(keyFromSeed(0), 2).map((k) => [...k])).toEqual(GOLDEN.split0);
    expect([...foldIn(keyFromSeed(0), 7)]).toEqual(GOLDEN.fold07);
  });
});

describe("randomBits", () => {
  test("word i is lane i mod 4 of counter block floor(i / 4)", () => {
    const bits = randomBits(K, 12);
    for (let b = 0; b < 3; b++) expect([...bits.subarray(4 * b, 4 * b + 4)]).toEqual([...philox4x32([b, 0, 0, 0], K)]);
  });
  test("prefix property: element i depends only on (key, i)", () => {
    const big = randomBits(K, 1001);
    fc.assert(
      fc.property(fc.nat({ max: 1001 }), (n) => {
        expect([...randomBits(K, n)]).toEqual([...big.subarray(0, n)]);
      }),
      { numRuns: 60 },
    );
  });
  test("bits are balanced", () => {
    const bits = randomBits(K, 100_000);
    const ones = new Array<number>(32).fill(0);
    for (let i = 0; i < bits.length; i++) for (let b = 0; b < 32; b++) ones[b] += (bits[i] >>> b) & 1;
    for (const c of ones) expect(Math.abs(c / bits.length - 0.5)).toBeLessThan(0.01);
  });
  test("rejects bad n", () => {
    expect(() => randomBits(K, -1)).toThrow();
    expect(() => randomBits(K, 2.5)).toThrow();
  });
});

describe("uniformF32", () => {
  test("in [lo, hi) with the right moments on 100k samples", () => {
    const u = uniformF32(K, 100_000);
    const { min, max } = extent(u);
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    const m = moments(u);
    expect(Math.abs(m.mean - 0.5)).toBeLessThan(0.005);
    expect(Math.abs(m.std - Math.sqrt(1 / 12))).toBeLessThan(0.005);
  });
  test("u = (bits >>> 8) * 2^-24 mapped to lo + (hi - lo) u", () => {
    const bits = randomBits(K, 16);
    const u = uniformF32(K, 16, -3, 5);
    for (let i = 0; i < 16; i++) expect(u[i]).toBe(Math.fround(-3 + 8 * (bits[i] >>> 8) * 2 ** -24));
  });
  test("arbitrary ranges stay in [lo, hi)", () => {
    fc.assert(
      fc.property(
        fc.float({ min: -1e6, max: 1e6, noNaN: true }),
        fc.float({ min: Math.fround(1e-6), max: 1e6, noNaN: true }),
        fc.nat({ max: 1000 }),
        (lo, width, seed) => {
          const hi = Math.fround(lo + width);
          if (!(hi > lo)) return;
          const { min, max } = extent(uniformF32(keyFromSeed(seed), 256, lo, hi));
          expect(min).toBeGreaterThanOrEqual(lo);
          expect(max).toBeLessThan(hi);
        },
      ),
      { numRuns: 100 },
    );
  });
  test("a value that would round up to hi is moved below it", () => {
    const hi = 1 + 2 ** -23; // next float32 after 1
    expect(extent(uniformF32(K, 1000, 1, hi))).toEqual({ min: 1, max: 1 });
  });
  test("prefix property and rejection of empty ranges", () => {
    expect([...uniformF32(K, 37, 2, 3)]).toEqual([...uniformF32(K, 500, 2, 3).subarray(0, 37)]);
    expect(() => uniformF32(K, 4, 1, 1)).toThrow();
    expect(() => uniformF32(K, 4, 2, 1)).toThrow();
  });
});

describe("normalF32", () => {
  test("mean and std on 100k samples", () => {
    const z = normalF32(K, 100_000);
    const m = moments(z);
    expect(Math.abs(m.mean)).toBeLessThan(0.015);
    expect(Math.abs(m.std - 1)).toBeLessThan(0.01);
    let in1 = 0;
    for (const v of z) if (Math.abs(v) <= 1) in1++;
    expect(Math.abs(in1 / z.length - 0.682689)).toBeLessThan(0.006);
  });
  test("mean and std parameters", () => {
    const m = moments(normalF32(splitKey(K)[1], 100_000, 3, 2));
    expect(Math.abs(m.mean - 3)).toBeLessThan(0.03);
    expect(Math.abs(m.std - 2)).toBeLessThan(0.02);
  });
  test("prefix property", () => {
    expect([...normalF32(K, 33)]).toEqual([...normalF32(K, 1000).subarray(0, 33)]);
  });
});

describe("truncatedNormalF32", () => {
  test("standard [-2, 2]: within bounds, std ≈ 0.8796 on 100k samples", () => {
    const z = truncatedNormalF32(K, 100_000);
    const { min, max } = extent(z);
    expect(min).toBeGreaterThanOrEqual(-2);
    expect(max).toBeLessThanOrEqual(2);
    expect(min).toBeLessThan(-1.99); // the whole interval is used
    expect(max).toBeGreaterThan(1.99);
    const m = moments(z);
    expect(Math.abs(m.mean)).toBeLessThan(0.015);
    expect(Math.abs(m.std - 0.87962566)).toBeLessThan(0.01);
  });
  test("bounds are in standard units, then scaled by std and shifted by mean", () => {
    const { min, max } = extent(truncatedNormalF32(K, 20_000, -1, 0.5, 10, 3));
    expect(min).toBeGreaterThanOrEqual(7);
    expect(max).toBeLessThanOrEqual(11.5);
  });
  test("half-infinite interval: half-normal mean sqrt(2/pi)", () => {
    const m = moments(truncatedNormalF32(K, 100_000, 0, Infinity));
    expect(Math.abs(m.mean - Math.sqrt(2 / Math.PI))).toBeLessThan(0.01);
  });
  test("prefix property, and intervals with too little mass are refused", () => {
    expect([...truncatedNormalF32(K, 41)]).toEqual([...truncatedNormalF32(K, 700).subarray(0, 41)]);
    expect(() => truncatedNormalF32(K, 4, 1, 1)).toThrow();
    expect(() => truncatedNormalF32(K, 4, 9, 10)).toThrow();
  });
});

// Fingerprints of fixed draws. Both runtimes must produce exactly these bits (cross-runtime identity).
const GOLDEN = {
  split0: [
    [1299916284, 3613319921],
    [2256952370, 969095434],
  ],
  fold07: [558919653, 524825020],
  bits: "8faf45ff",
  uniform: "819d91ca",
  normal: "9110cf4e",
  truncated: "33adbc08",
};

describe("cross-runtime golden fingerprints", () => {
  const k = keyFromSeed(20240601);
  test("randomBits / uniformF32", () => {
    expect(fingerprint(randomBits(k, 10_000))).toBe(GOLDEN.bits);
    expect(fingerprint(uniformF32(k, 10_000, -1.5, 2.5))).toBe(GOLDEN.uniform);
  });
  test("normalF32 / truncatedNormalF32", () => {
    expect(fingerprint(normalF32(k, 10_000, 0.25, 1.75))).toBe(GOLDEN.normal);
    expect(fingerprint(truncatedNormalF32(k, 10_000))).toBe(GOLDEN.truncated);
  });
});
