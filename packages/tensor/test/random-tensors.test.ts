/**
 * Tensor-level sampling (src/random/random.ts) and parameter initialisers (src/init.ts):
 * determinism, identity with the host Philox streams (hence across backends and runtimes),
 * pinned values (the same constants are checked under Bun and Deno), moments of each
 * distribution, randint's range and unbiasedness, permutations, categorical frequencies.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { disposeTree, init, random, type Tensor } from "../src/index.ts";
import { normalF32, truncatedNormalF32, uniformF32 } from "../src/random/philox.ts";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/** FNV-1a over the 32-bit words of a typed array: a compact fingerprint of a draw's exact bits. */
function fnv(a: Float32Array | Int32Array): number {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 0x01000193) >>> 0;
  return h;
}

async function take<T extends Tensor>(t: T): Promise<Float32Array | Int32Array> {
  const d = await t.data();
  t.dispose();
  return d;
}

function moments(a: ArrayLike<number>): { mean: number; variance: number; min: number; max: number } {
  let s = 0, min = Infinity, max = -Infinity;
  for (let i = 0; i < a.length; i++) {
    s += a[i];
    if (a[i] < min) min = a[i];
    if (a[i] > max) max = a[i];
  }
  const mean = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i] - mean) ** 2;
  return { mean, variance: v / a.length, min, max };
}

/** Standard normal pdf / cdf, for the moments of a truncated normal (Abramowitz–Stegun 7.1.26 erf is too rough; use a series). */
function phi(x: number): number {
  return Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
}
function Phi(x: number): number {
  // erf by its Taylor series, accurate to ~1e-15 for |x| <= 3
  const z = x / Math.SQRT2;
  let term = z, sum = z;
  for (let n = 1; n < 100; n++) {
    term *= -z * z / n;
    sum += term / (2 * n + 1);
  }
  return 0.5 * (1 + (2 / Math.sqrt(Math.PI)) * sum);
}

/** One draw of every sampler, as host arrays (used to compare backends). */
async function drawAll(seed: number): Promise<(Float32Array | Int32Array)[]> {
  const [a, b, c, d, e, f] = random.split(random.key(seed), 6);
  return [
    await take(random.uniform(a, [7, 9], { lo: -2, hi: 3 })),
    await take(random.normal(b, [7, 9], { mean: 0.5, std: 3 })),
    await take(random.truncatedNormal(c, [63])),
    await take(random.bernoulli(d, [63], 0.4)),
    await take(random.randint(e, [63], -7, 1000)),
    await take(random.permutation(f, 63)),
  ];
}

/** Pinned fingerprint of a categorical draw (see the fingerprint test). */
const CATEGORICAL_FNV = 2548565137;

// ---------------------------------------------------------------------------------------------
// keys
// ---------------------------------------------------------------------------------------------

describe("random keys", () => {
  test("key / split / foldIn are deterministic, distinct, and validated", () => {
    const k = random.key(42);
    expect([...k]).toEqual([0, 42]);
    expect(random.split(k, 3)).toEqual(random.split(k, 3));
    expect(random.split(k)).toHaveLength(2);
    const kids = random.split(k, 50).map((x) => x.join(","));
    expect(new Set(kids).size).toBe(50);
    expect(random.foldIn(k, 7)).toEqual(random.foldIn(k, 7));
    expect(random.foldIn(k, 7)).not.toEqual(random.foldIn(k, 8));
    // pinned values: identical under Bun and Deno
    expect(random.split(k, 2)).toEqual([[591471460, 3295394971], [4096177026, 421849614]]);
    expect(random.foldIn(k, 7)).toEqual([2388913471, 1522138935]);
    expect(() => random.key(-1)).toThrow();
    expect(() => random.key(1.5)).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// per backend: determinism, identity with the host streams, no leaks
// ---------------------------------------------------------------------------------------------

for (const b of testBackends()) {
  describe(`[${b}] random tensors`, () => {
    test(`[${b}] samplers give the host Philox streams exactly, with the right shape and dtype`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const k = random.key(7);
        const u = random.uniform(k, [3, 5] as const, { lo: -1, hi: 2 });
        expect(u.shape).toEqual([3, 5]);
        expect(u.dtype).toBe("f32");
        expect(await take(u)).toEqual(uniformF32(k, 15, -1, 2));
        expect(await take(random.uniform(k, [15]))).toEqual(uniformF32(k, 15));
        expect(await take(random.normal(k, [2, 2, 2], { mean: 1, std: 0.5 }))).toEqual(normalF32(k, 8, 1, 0.5));
        expect(await take(random.truncatedNormal(k, [9], { lower: -1, upper: 3, mean: 2, std: 4 }))).toEqual(
          truncatedNormalF32(k, 9, -1, 3, 2, 4),
        );
        const r = random.randint(k, [4, 4], 0, 10);
        expect(r.dtype).toBe("i32");
        expect(r.shape).toEqual([4, 4]);
        expect(await take(r)).toEqual(random.randintArray(k, 16, 0, 10));
        const p = random.permutation(k, 12);
        expect(p.dtype).toBe("i32");
        expect(p.shape).toEqual([12]);
        expect(await take(p)).toEqual(random.permutationArray(k, 12));
        const bern = random.bernoulli(k, [0]);
        expect(bern.shape).toEqual([0]);
        bern.dispose();
      });
    });

    test(`[${b}] same key, same numbers; another key, other numbers`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const first = await drawAll(1);
        const again = await drawAll(1);
        const other = await drawAll(2);
        for (let i = 0; i < first.length; i++) {
          expect(again[i]).toEqual(first[i]);
          expect(other[i]).not.toEqual(first[i]);
        }
        // element i depends on (key, i) only, not on the size of the draw
        const k = random.key(3);
        const small = await take(random.normal(k, [5]));
        const big = await take(random.normal(k, [500]));
        expect(big.subarray(0, 5)).toEqual(small);
      });
    });

    test(`[${b}] draws are identical to the CPU backend's`, async () => {
      if (!(await useBackend("cpu"))) return;
      const cpu = await drawAll(11);
      if (!(await useBackend(b))) return;
      const here = await drawAll(11);
      for (let i = 0; i < cpu.length; i++) expect(here[i]).toEqual(cpu[i]);
    });

    test(`[${b}] pinned fingerprints (the same bits under every runtime)`, async () => {
      if (!(await useBackend(b))) return;
      const k = random.key(42);
      expect(Array.from(await take(random.uniform(k, [4])))).toEqual([0.25068801641464233, 0.03698676824569702, 0.6391320824623108, 0.6323791742324829]);
      expect(Array.from(await take(random.normal(k, [4])))).toEqual([0.04858625307679176, -0.4873373806476593, -0.09666746854782104, 0.6662855744361877]);
      expect(Array.from(await take(random.randint(k, [6], -5, 5)))).toEqual([-2, -4, -4, -4, -3, 4]);
      expect(Array.from(await take(random.permutation(k, 8)))).toEqual([7, 4, 0, 2, 1, 5, 6, 3]);
      const [a, b2, c, d, e, f, g] = random.split(random.key(2024), 7);
      expect(fnv(await take(random.uniform(a, [100, 100], { lo: -3, hi: 5 })))).toBe(3422374017);
      expect(fnv(await take(random.normal(b2, [100, 100], { mean: 1, std: 2 })))).toBe(3502665144);
      expect(fnv(await take(random.truncatedNormal(c, [100, 100], { lower: -1, upper: 1.5 })))).toBe(3788276821);
      expect(fnv(await take(random.bernoulli(d, [100, 100], 0.25)))).toBe(3679913221);
      expect(fnv(await take(random.randint(e, [100, 100], -1000, 123457)))).toBe(1542973424);
      expect(fnv(await take(random.permutation(f, 10000)))).toBe(2813191429);
      const logits = Float32Array.from({ length: 3000 }, (_, i) => ((i * 7919) % 61) / 10 - 3);
      expect(fnv(random.categorical(g, logits, { classes: 10, temperature: 0.7 }))).toBe(CATEGORICAL_FNV);
    });
  });
}


// ---------------------------------------------------------------------------------------------
// distributions (host statistics of large draws, on the CPU backend)
// ---------------------------------------------------------------------------------------------

describe("random distributions", () => {
  const N = 200_000;

  test("uniform: range and moments", async () => {
    await useBackend("cpu");
    const lo = -3, hi = 5;
    const a = await take(random.uniform(random.key(100), [N], { lo, hi }));
    const m = moments(a);
    expect(m.min).toBeGreaterThanOrEqual(lo);
    expect(m.max).toBeLessThan(hi);
    // standard error of the mean: (hi-lo)/sqrt(12 N) ≈ 0.005; allow 5 SE
    expect(Math.abs(m.mean - (lo + hi) / 2)).toBeLessThan(0.03);
    expect(Math.abs(m.variance - (hi - lo) ** 2 / 12)).toBeLessThan(0.05);
    const d = await take(random.uniform(random.key(101), [N]));
    expect(moments(d).min).toBeGreaterThanOrEqual(0);
    expect(moments(d).max).toBeLessThan(1);
  });

  test("normal: mean, variance, third and fourth moments", async () => {
    await useBackend("cpu");
    const a = await take(random.normal(random.key(200), [N], { mean: 1.5, std: 2 }));
    const m = moments(a);
    expect(Math.abs(m.mean - 1.5)).toBeLessThan(5 * 2 / Math.sqrt(N));
    expect(Math.abs(m.variance - 4)).toBeLessThan(0.06);
    let s3 = 0, s4 = 0;
    for (const v of a) {
      const z = (v - 1.5) / 2;
      s3 += z ** 3;
      s4 += z ** 4;
    }
    expect(Math.abs(s3 / N)).toBeLessThan(0.04); // skewness 0
    expect(Math.abs(s4 / N - 3)).toBeLessThan(0.1); // kurtosis 3
  });

  test("truncatedNormal: bounds and the truncated moments", async () => {
    await useBackend("cpu");
    const lower = -1, upper = 2, mean = 0.5, std = 3;
    const a = await take(random.truncatedNormal(random.key(300), [N], { lower, upper, mean, std }));
    const m = moments(a);
    expect(m.min).toBeGreaterThanOrEqual(Math.fround(mean + lower * std));
    expect(m.max).toBeLessThanOrEqual(Math.fround(mean + upper * std));
    // moments of N(0,1) truncated to [α, β]
    const Z = Phi(upper) - Phi(lower);
    const mu = (phi(lower) - phi(upper)) / Z;
    const v = 1 + (lower * phi(lower) - upper * phi(upper)) / Z - mu * mu;
    expect(Math.abs(m.mean - (mean + std * mu))).toBeLessThan(0.03);
    expect(Math.abs(m.variance / (std * std) - v)).toBeLessThan(0.01);
    // default ±2: variance 1 - 4φ(2)/(Φ(2)-Φ(-2)) ≈ 0.774
    const d = moments(await take(random.truncatedNormal(random.key(301), [N])));
    expect(d.min).toBeGreaterThanOrEqual(-2);
    expect(d.max).toBeLessThanOrEqual(2);
    expect(Math.abs(d.variance - (1 - 4 * phi(2) / (Phi(2) - Phi(-2))))).toBeLessThan(0.01);
  });

  test("bernoulli: frequency p, and p = 0 / p = 1 exactly", async () => {
    await useBackend("cpu");
    for (const p of [0.1, 0.5, 0.73]) {
      const a = await take(random.bernoulli(random.key(400), [N], p));
      expect(a.every((v) => v === 0 || v === 1)).toBe(true);
      expect(Math.abs(moments(a).mean - p)).toBeLessThan(5 * Math.sqrt(p * (1 - p) / N));
    }
    expect((await take(random.bernoulli(random.key(401), [1000], 0))).every((v) => v === 0)).toBe(true);
    expect((await take(random.bernoulli(random.key(401), [1000], 1))).every((v) => v === 1)).toBe(true);
    expect(() => random.bernoulli(random.key(0), [3], 1.5)).toThrow();
  });

  test("randint: the range [lo, hi), every value about equally often", async () => {
    await useBackend("cpu");
    const a = await take(random.randint(random.key(500), [N], -3, 4));
    const counts = new Map<number, number>();
    for (const v of a) counts.set(v, (counts.get(v) ?? 0) + 1);
    expect([...counts.keys()].sort((x, y) => x - y)).toEqual([-3, -2, -1, 0, 1, 2, 3]);
    // chi-square with 6 degrees of freedom: 99.99% quantile ≈ 27.9
    let chi2 = 0;
    for (const c of counts.values()) chi2 += (c - N / 7) ** 2 / (N / 7);
    expect(chi2).toBeLessThan(27.9);
    expect(Array.from(random.randintArray(random.key(1), 20, 5, 6))).toEqual(new Array(20).fill(5));
  });

  test("randint: unbiased where plain modulo is not, and the full int32 range", async () => {
    await useBackend("cpu");
    // range 3·2^30: w mod range would hit the first 2^30 values twice as often (1/2 instead of 1/3),
    // and about a quarter of the words are rejected (the retry streams are exercised).
    const lo = -(2 ** 31), hi = lo + 3 * 2 ** 30;
    const a = random.randintArray(random.key(600), N, lo, hi);
    let low = 0, outside = 0;
    for (const v of a) {
      if (v < lo || v >= hi) outside++;
      if (v < lo + 2 ** 30) low++;
    }
    expect(outside).toBe(0);
    expect(Math.abs(low / N - 1 / 3)).toBeLessThan(0.005);
    // the whole int32 range: no rejection; both signs appear
    const full = random.randintArray(random.key(601), 1000, -(2 ** 31), 2 ** 31);
    expect(full.some((v) => v < 0) && full.some((v) => v > 0)).toBe(true);
    expect(() => random.randint(random.key(0), [2], 3, 3)).toThrow();
    expect(() => random.randint(random.key(0), [2], 0.5, 3)).toThrow();
    expect(() => random.randint(random.key(0), [2], 0, 2 ** 31 + 1)).toThrow();
  });

  test("permutation: a permutation; every ordering of 3 about equally likely; positions uniform", async () => {
    await useBackend("cpu");
    for (const n of [0, 1, 2, 17, 1000]) {
      const p = await take(random.permutation(random.key(n), n));
      expect(Array.from(p).sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
    }
    const k = random.key(700);
    const counts = new Map<string, number>();
    const T = 12_000;
    for (let i = 0; i < T; i++) {
      const s = random.permutationArray(random.foldIn(k, i), 3).join("");
      counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    expect(counts.size).toBe(6);
    let chi2 = 0;
    for (const c of counts.values()) chi2 += (c - T / 6) ** 2 / (T / 6);
    expect(chi2).toBeLessThan(25.7); // 5 dof, 99.99%
    // where element 0 lands in a permutation of 10: uniform over the 10 positions
    const pos = new Array(10).fill(0);
    for (let i = 0; i < T; i++) pos[random.permutationArray(random.foldIn(k, T + i), 10).indexOf(0)]++;
    chi2 = 0;
    for (const c of pos) chi2 += (c - T / 10) ** 2 / (T / 10);
    expect(chi2).toBeLessThan(33.7); // 9 dof, 99.99%
  });

  test("categorical: frequencies follow softmax(logits / T); -Infinity is never drawn", () => {
    const rows = 60_000;
    const row = [0, Math.log(2), Math.log(3), -Infinity];
    const logits = Float32Array.from({ length: rows * 4 }, (_, i) => row[i % 4]);
    const s = random.categorical(random.key(800), logits, { classes: 4 });
    expect(s).toHaveLength(rows);
    const counts = [0, 0, 0, 0];
    for (const v of s) counts[v]++;
    expect(counts[3]).toBe(0);
    for (const [c, p] of [[0, 1 / 6], [1, 2 / 6], [2, 3 / 6]]) expect(Math.abs(counts[c] / rows - p)).toBeLessThan(0.01);
    // temperature 2: probabilities ∝ sqrt(1, 2, 3)
    const hot = random.categorical(random.key(801), logits, { classes: 4, temperature: 2 });
    const z = 1 + Math.SQRT2 + Math.sqrt(3);
    const c0 = hot.filter((v) => v === 0).length / rows;
    expect(Math.abs(c0 - 1 / z)).toBeLessThan(0.01);
    // one row by default; a single class with mass is always chosen
    expect(Array.from(random.categorical(random.key(1), [-Infinity, 5, -Infinity]))).toEqual([1]);
    expect(() => random.categorical(random.key(1), [0, NaN])).toThrow();
    expect(() => random.categorical(random.key(1), [0, 1, 2], { classes: 2 })).toThrow();
    expect(() => random.categorical(random.key(1), [-Infinity, -Infinity])).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// initialisers
// ---------------------------------------------------------------------------------------------

for (const b of testBackends()) {
  describe(`[${b}] init`, () => {
    test(`[${b}] zeros / ones / normal / truncatedNormal / uniform`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        expect(Array.from(await take(init.zeros([2, 3])))).toEqual([0, 0, 0, 0, 0, 0]);
        expect(Array.from(await take(init.ones([4])))).toEqual([1, 1, 1, 1]);
        const k = random.key(9);
        expect(await take(init.normal(k, [10], 0.02))).toEqual(normalF32(k, 10, 0, 0.02));
        expect(await take(init.truncatedNormal(k, [10], 0.02))).toEqual(truncatedNormalF32(k, 10, -2, 2, 0, 0.02));
        const t = await take(init.truncatedNormal(k, [5000], 0.02));
        expect(moments(t).max).toBeLessThanOrEqual(Math.fround(0.04));
        expect(await take(init.uniform(k, [10], -0.5, 0.5))).toEqual(uniformF32(k, 10, -0.5, 0.5));
      });
    });

    test(`[${b}] xavierUniform and kaimingUniform bounds`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const k = random.key(10);
        const x = init.xavierUniform(k, [300, 100]);
        expect(x.shape).toEqual([300, 100]);
        const xa = await take(x);
        const bx = Math.sqrt(6 / 400);
        const mx = moments(xa);
        expect(mx.min).toBeGreaterThanOrEqual(-bx);
        expect(mx.max).toBeLessThan(bx);
        expect(mx.max).toBeGreaterThan(0.99 * bx);
        expect(Math.abs(mx.variance - bx * bx / 3)).toBeLessThan(0.02 * bx * bx);
        // PyTorch nn.Linear default: U(-1/sqrt(fanIn), 1/sqrt(fanIn)); fanIn = first axis of [in, out]
        const ka = await take(init.kaimingUniform(k, [64, 500]));
        expect(ka).toEqual(uniformF32(k, 64 * 500, -1 / 8, 1 / 8));
        const kb = await take(init.kaimingUniform(k, [20], { fanIn: 25 }));
        expect(kb).toEqual(uniformF32(k, 20, -0.2, 0.2));
        // a = 0 (ReLU gain sqrt 2): bound sqrt(6 / fanIn); [k, in, out] has fanIn k·in
        const kc = await take(init.kaimingUniform(k, [4, 6, 10], { a: 0 }));
        expect(kc).toEqual(uniformF32(k, 240, -Math.sqrt(6 / 24), Math.sqrt(6 / 24)));
        expect(() => init.kaimingUniform(k, [20])).toThrow();
      });
    });

    test(`[${b}] linear: [in, out] weight and bias, both U(±1/sqrt(in)), from split keys`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const k = random.key(11);
        const p = init.linear(k, 16, 3);
        expect(p.w.shape).toEqual([16, 3]);
        expect(p.b.shape).toEqual([3]);
        const [kw, kb] = random.split(k, 2);
        expect(await p.w.data()).toEqual(uniformF32(kw, 48, -0.25, 0.25));
        expect(await p.b.data()).toEqual(uniformF32(kb, 3, -0.25, 0.25));
        disposeTree(p);
        const nb = init.linear(k, 4, 2, { bias: false });
        expect(Object.keys(nb)).toEqual(["w"]);
        disposeTree(nb);
        const big = init.linear(random.key(12), 100, 400);
        const m = moments(await big.w.data());
        expect(m.min).toBeGreaterThanOrEqual(-0.1);
        expect(m.max).toBeLessThan(0.1);
        expect(Math.abs(m.variance - 0.01 / 3)).toBeLessThan(0.0002);
        disposeTree(big);
      });
    });
  });
}
