/**
 * maxGrad, the fused VJP of a max reduction (issue 11: MemMamba's Note Block pools each note with
 * a max over windows of r = 4 features, whose composite VJP took six launches a layer).
 *
 * The fused kernels must give the composite's bits (broadcast g by adding zeros, eq, the tie
 * count's sum, div, mul; see ops/reduce.ts): on the CPU for random shapes and axes drawn by
 * fast-check, and on every backend for a grid of layouts (reduced axes last, first, middle,
 * several, all, size-1 axes, groups long enough to share a workgroup) with ties, NaN, ±Inf and
 * signed zeros in x and in g. Equality is Object.is per element (so −0 ≠ +0), with any NaN equal
 * to any NaN (payloads are not compared). Then: the semantics of NaN and infinite maxima, a
 * gradient check through the fused path, one launch instead of six, and the errors.
 */
import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import { reduceTuning } from "../src/webgpu/kernels/reduce.ts";
import { checkGradients } from "./gradcheck.ts";

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const reduced = (s: readonly number[], axes: readonly number[]) => s.map((d, i) => (axes.includes(i) ? 1 : d));

type Mode = "ties" | "specials" | "distinct";

/** Seeded values: "ties" from a set of six (−0 and 0 among them), "specials" adding NaN and ±Inf, "distinct" spread floats. */
function values(n: number, seed: number, mode: Mode): Float32Array {
  let s = seed >>> 0 || 1;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const set = [-2, -0, 0, 0.5, 1, 3];
  return Float32Array.from({ length: n }, () => {
    const u = next();
    if (mode === "distinct") return 8 * u - 4;
    if (mode === "specials") {
      if (u < 0.02) return NaN;
      if (u < 0.08) return Infinity;
      if (u < 0.14) return -Infinity;
    }
    return set[Math.floor(next() * set.length)];
  });
}

/** Cotangents with −0, 0, ±Inf and NaN among ordinary values. */
function cotangents(n: number, seed: number): Float32Array {
  const specials = [-0, 0, Infinity, -Infinity, NaN];
  const v = values(n, seed, "distinct");
  for (let i = 0; i < n; i++) if (i % 7 === 3) v[i] = specials[(i * 3 + seed) % specials.length];
  return v;
}

function sameBits(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Object.is(g, w) || (Number.isNaN(g) && Number.isNaN(w))) continue;
    throw new Error(`${what}: element ${i}: got ${Object.is(g, -0) ? "-0" : g}, expected ${Object.is(w, -0) ? "-0" : w}`);
  }
}

/** Runs `fn` with the current backend preferring the composite VJP of max (or not). */
async function withComposite<R>(composite: boolean, fn: () => Promise<R>): Promise<R> {
  const be = T.getBackend() as { prefersComposite?: (p: string) => boolean };
  const own = Object.hasOwn(be, "prefersComposite");
  const prev = be.prefersComposite;
  if (composite) be.prefersComposite = (p) => p === "maxGrad" || (prev?.call(be, p) ?? false);
  try {
    return await fn();
  } finally {
    if (own) be.prefersComposite = prev;
    else delete be.prefersComposite;
  }
}

/** max's VJP on the current backend for host x and g: the reduce primitive's own VJP, fused or composite. */
async function maxVjp(xs: Float32Array, shape: number[], axes: number[], gs: Float32Array, composite: boolean): Promise<{ d: Float32Array; launches: number }> {
  return await withComposite(composite, async () => {
    const x = T.fromArray(xs, shape), g = T.fromArray(gs, reduced(shape, axes));
    const y = T.max(x, axes, true);
    T.resetCounters();
    // the composite's intermediates are disposed by tidy (a backward pass's scope does it there)
    const d = T.tidy(() => T.primitive("reduce").vjp(g, [x], y, { op: "max", axes })[0]!);
    const launches = T.readCounters().launches;
    const out = (await d.data()) as Float32Array;
    T.disposeTree([x, g, y, d]);
    return { d: out, launches };
  });
}

describe("maxGrad on the CPU: the composite's bits", () => {
  test("[cpu] random shapes and axes (fast-check), ties, NaN, ±Inf and signed zeros", async () => {
    await useBackend("cpu");
    const caseArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
        mode: fc.constantFrom<Mode>("ties", "specials", "distinct"),
        seed: fc.integer({ min: 1, max: 1 << 30 }),
      })
    );
    await expectNoLeak(() =>
      fc.assert(
        fc.asyncProperty(caseArb, async ({ shape, axes, mode, seed }) => {
          const xs = values(size(shape), seed, mode), gs = cotangents(size(reduced(shape, axes)), seed + 1);
          const fused = await maxVjp(xs, shape, axes, gs, false), comp = await maxVjp(xs, shape, axes, gs, true);
          sameBits(`[${shape}] over [${axes}] (${mode})`, fused.d, comp.d);
          expect(fused.launches).toBe(1);
        }),
        { numRuns: 150, seed: 11 },
      )
    );
  });
});

/** Layouts of the WebGPU kernel (key in the comment) and of the CPU kernel's two paths. */
const GRID: { shape: number[]; axes: number[] }[] = [
  { shape: [3, 5, 4], axes: [2] }, // last axis, MemMamba's windows of 4 (k1 r1 red-inner; CPU trailing path)
  { shape: [6, 7], axes: [0] }, // first axis (k1 r1 kept-inner)
  { shape: [3, 4, 5], axes: [1] }, // middle (k3 r1 kept-inner)
  { shape: [3, 4, 5, 2], axes: [0, 2] }, // several, apart (k3 r2)
  { shape: [4, 3, 5], axes: [1, 2] }, // a trailing block (coalesced to one group)
  { shape: [3, 4], axes: [0, 1] }, // all
  { shape: [3, 1, 4], axes: [1] }, // a size-1 reduced axis: groups of one
  { shape: [3, 1, 5, 2], axes: [1, 3] }, // size-1 and last
  { shape: [2, 300], axes: [1] }, // long groups: 64 threads share one, counts added in workgroup memory
  { shape: [300, 3], axes: [0] }, // long groups, kept axis innermost: 8 threads each
];

describe("maxGrad on every backend: fused = composite = the CPU, bit for bit", () => {
  for (const b of testBackends()) {
    test(`[${b}] a grid of layouts with ties, NaN, ±Inf and signed zeros`, async () => {
      if (!(await useBackend(b))) return;
      const be = T.getBackend();
      const cpu = T.setBackend("cpu");
      T.setBackend(be);
      const on = async <R>(x: Backend, fn: () => Promise<R>) => {
        const prev = T.getBackend();
        T.setBackend(x);
        try {
          return await fn();
        } finally {
          T.setBackend(prev);
        }
      };
      await expectNoLeak(async () => {
        let seed = 5;
        for (const { shape, axes } of GRID) {
          for (const mode of ["ties", "specials", "distinct"] as Mode[]) {
            const xs = values(size(shape), ++seed, mode), gs = cotangents(size(reduced(shape, axes)), ++seed);
            const what = `[${b}] [${shape}] over [${axes}] (${mode})`;
            const fused = await maxVjp(xs, shape, axes, gs, false);
            const comp = await maxVjp(xs, shape, axes, gs, true);
            const ref = await on(cpu, () => maxVjp(xs, shape, axes, gs, true));
            sameBits(`${what}: fused vs composite`, fused.d, comp.d);
            sameBits(`${what}: vs the CPU`, fused.d, ref.d);
          }
        }
      });
    });
  }
  test("[webgpu] every thread plan (reduceTuning.termsPerThread 1: many lanes on small groups)", async () => {
    if (!(await useBackend("webgpu"))) return;
    const cases = [{ shape: [5, 24], axes: [1] }, { shape: [24, 5], axes: [0] }, { shape: [4, 6, 3], axes: [0, 2] }];
    const data = cases.map(({ shape, axes }, k) => ({ xs: values(size(shape), 40 + k, "specials"), gs: cotangents(size(reduced(shape, axes)), 50 + k) }));
    const gpu = T.getBackend();
    T.setBackend("cpu");
    const want: Float32Array[] = [];
    for (const [k, { shape, axes }] of cases.entries()) want.push((await maxVjp(data[k].xs, shape, axes, data[k].gs, true)).d);
    T.setBackend(gpu);
    const saved = reduceTuning.termsPerThread;
    reduceTuning.termsPerThread = 1;
    try {
      for (const [k, { shape, axes }] of cases.entries()) {
        const got = await maxVjp(data[k].xs, shape, axes, data[k].gs, false);
        sameBits(`[webgpu] [${shape}] over [${axes}], one term per thread`, got.d, want[k]);
      }
    } finally {
      reduceTuning.termsPerThread = saved;
    }
  });
});

describe("maxGrad: NaN and infinite maxima, as the composite", () => {
  for (const b of testBackends()) {
    test(`[${b}] a NaN max gives NaN to its whole group (no element equals NaN: 0 / 0); ±Inf ties split`, async () => {
      if (!(await useBackend(b))) return;
      // rows: a NaN among finite values, two +Inf maxima, all −Inf, three finite ties
      const xs = Float32Array.from([1, NaN, 3, 2, Infinity, Infinity, 1, 0, -Infinity, -Infinity, -Infinity, -Infinity, 5, 5, 5, 1]);
      const gs = Float32Array.from([1, 2, -3, 6]);
      const { d } = await maxVjp(xs, [4, 4], [1], gs, false);
      for (let j = 0; j < 4; j++) expect(Number.isNaN(d[j])).toBe(true);
      expect(Array.from(d.slice(4))).toEqual([1, 1, 0, 0, -0.75, -0.75, -0.75, -0.75, 2, 2, 2, 0]);
      // g = −0 becomes +0 (the composite broadcasts g by adding zeros); g = Inf gives NaN off the maxima (Inf · 0)
      const e = await maxVjp(Float32Array.from([1, 2, 2, 0]), [2, 2], [1], Float32Array.from([-0, Infinity]), false);
      expect(Object.is(e.d[0], 0) && Object.is(e.d[1], 0)).toBe(true);
      expect(Number.isNaN(e.d[2])).toBe(false);
      expect(e.d[2]).toBe(Infinity);
      expect(Number.isNaN(e.d[3])).toBe(true);
    });
  }
});

describe("maxGrad: gradients and launches", () => {
  for (const b of testBackends()) {
    test(`[${b}] max's gradient through the fused path passes a gradient check; one launch instead of six`, async () => {
      if (!(await useBackend(b))) return;
      expect(T.getBackend().prefersComposite?.("maxGrad") ?? false).toBe(false);
      // distinct values on a 0.1 grid: no ±h step crosses a tie
      const n = 24, perm = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = (i * 7 + 3) % (i + 1);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      const data = Float32Array.from(perm, (k) => 0.1 * k - 1.2);
      await checkGradients((xs) => T.max(xs[0], -1), [{ data, shape: [2, 3, 4] }], { label: "max last axis" });
      await checkGradients((xs) => T.max(xs[0], [0, 2]), [{ data, shape: [2, 3, 4] }], { label: "max axes 0, 2" });
      // a whole backward: the same gradient, five launches fewer
      const x = T.fromArray(values(2 * 6 * 4, 3, "ties"), [2, 6, 4]), w = T.fromArray(values(12, 4, "distinct"), [2, 6]);
      const f = (a: Tensor) => T.sum(T.mul(T.max(a, -1), w));
      const run = (composite: boolean) =>
        withComposite(composite, async () => {
          T.resetCounters();
          const r = T.valueAndGrad(f)(x);
          const launches = T.readCounters().launches;
          const d = (await r.grads.data()) as Float32Array;
          T.disposeTree(r);
          return { d, launches };
        });
      const fused = await run(false), comp = await run(true);
      sameBits(`[${b}] valueAndGrad`, fused.d, comp.d);
      expect(comp.launches - fused.launches).toBe(5);
      T.disposeTree([x, w]);
    });
  }
  test("[cpu] maxGrad has no gradient of its own: a clear error", async () => {
    await useBackend("cpu");
    const x = T.fromArray([1, 4, 2, 4, 0, 3], [2, 3]);
    const y = T.max(x, 1, true), g = T.fromArray([1, 2], [2, 1]);
    expect(() => T.valueAndGrad((a: Tensor) => T.sum(T.bind("maxGrad", [a, y, g], { axes: [1] })))(x)).toThrow(
      "maxGrad: second-order gradients are not supported",
    );
    T.disposeTree([x, y, g]);
  });
  test("[cpu] bad inputs name maxGrad and the shapes", async () => {
    await useBackend("cpu");
    const x = T.fromArray([1, 4, 2, 4, 0, 3], [2, 3]), y = T.fromArray([4, 4], [2, 1]), bad = T.fromArray([4, 4], [1, 2]);
    expect(() => T.bind("maxGrad", [x, bad, y], { axes: [1] })).toThrow("maxGrad: y [1, 2] and g [2, 1] must both be [2, 1]");
    expect(() => T.bind("maxGrad", [x, y, y], { axes: [2] })).toThrow("maxGrad: axis 2 out of range for x [2, 3]");
    T.disposeTree([x, y, bad]);
  });
});
