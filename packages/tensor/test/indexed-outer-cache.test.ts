/**
 * indexedOuter's inverse-index cache on the GPU (webgpu/kernels/indexed.ts): an attention's
 * backward calls indexedOuter twice over the same index tensor (dV, then dK), and the second call
 * reuses the index the first one built.
 * - two calls over one index with different weights (exact zeros, empty slots −1, rows read by
 *   more than the 32-entry chunk, x infinite where every weight of its position is 0) equal the
 *   CPU, and equal bit for bit the same calls with the cache off (inverseIndexCache.maxEntries
 *   0); the second call encodes 2 launches where an uncached one encodes as many as the first;
 * - a freed index's entry is dropped, and its GPUBuffer, reused by a new index tensor with other
 *   contents, does not hit it; a buffer written anew (backend.write) is not served its old index;
 * - the bound (maxEntries, maxBytes), the release of every entry when the backend is destroyed,
 *   and the accounting: live buffers and the pool's bytes in use back to where they were.
 * On a machine without a WebGPU adapter the tests print why and pass (CI=true fails instead).
 * The cache is on in these tests whatever $MEMMAMBA_INDEX_CACHE says; each test restores the
 * backend and the knobs it found.
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Tensor } from "../src/index.ts";
import type { Launch } from "../src/webgpu/context.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import { inverseIndexCache, inverseIndexCacheStats } from "../src/webgpu/kernels/indexed.ts";
import { mulberry32 } from "./gradcheck.ts";

interface OuterCase {
  shape: number[];
  rows: number;
  S: number;
  index: Int32Array;
  /** Two weightings and two x over the same index (as dV and dK are). */
  w: Float32Array[];
  x: Float32Array[];
}

/**
 * N = shape[:-1] positions, P slots: about a fifth of the slots empty (−1), half of the rest on
 * row 1 (a list longer than the GPU's chunk of 32), a fifth of the weights exactly 0, and x
 * infinite on the positions whose weights (in the first weighting) are all 0.
 */
function makeOuter(seed: number, shape: number[], rows: number, S: number): OuterCase {
  const rand = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1), P = shape[shape.length - 1], N = n / P;
  const index = Int32Array.from({ length: n }, () => (rand() < 0.2 ? -1 : rand() < 0.5 ? 1 % rows : Math.floor(rand() * rows)));
  const weights = () => Float32Array.from({ length: n }, () => (rand() < 0.2 ? 0 : rand() * 4 - 2));
  const w = [weights(), weights()];
  for (let p = 0; p < P; p++) w[0][p] = 0; // position 0: no weight at all in the first weighting
  const x = [0, 1].map(() => Float32Array.from({ length: N * S }, () => rand() * 4 - 2));
  for (let j = 0; j < S; j++) x[0][j] = Infinity; // skipped, never NaN: its weights are all 0
  return { shape, rows, S, index, w, x };
}

/** indexedOuter(w[k], x[k], index) for k = 0, 1 over ONE index tensor, and the launches each call encoded. */
async function outerTwice(c: OuterCase, gpu?: WebGpuBackend): Promise<{ out: Float32Array[]; launches: number[] }> {
  const N = c.shape.slice(0, -1);
  const idx = T.fromArray(c.index, c.shape, "i32");
  const launches: number[] = [];
  const out: Float32Array[] = [];
  const ctx = gpu?.ctx;
  const dispatch = ctx?.dispatch;
  let count = 0;
  if (ctx) ctx.dispatch = (l: Launch) => (count++, dispatch!(l));
  try {
    for (let k = 0; k < 2; k++) {
      count = 0;
      const o = T.tidy(() => T.indexedOuter(T.fromArray(c.w[k], c.shape), T.fromArray(c.x[k], [...N, c.S]), idx, c.rows));
      launches.push(count);
      out.push((await o.data()) as Float32Array);
      o.dispose();
    }
  } finally {
    if (ctx) ctx.dispatch = dispatch!;
    idx.dispose();
  }
  return { out, launches };
}

async function onCpu<R>(f: () => Promise<R>): Promise<R> {
  const prev = T.getBackend();
  T.setBackend("cpu");
  try {
    return await f();
  } finally {
    T.setBackend(prev);
  }
}

/** "ok", or the first element where |got − want| > tol · (1 + |want|) (NaN anywhere fails). */
function close(got: Float32Array, want: Float32Array, tol: number): string {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) return `[${i}]: ${got[i]} vs ${want[i]}`;
  }
  return "ok";
}

/** Runs `f` with the cache knobs set to `knobs`, then puts back the ones it found. */
async function withKnobs<R>(knobs: Partial<typeof inverseIndexCache>, f: () => Promise<R>): Promise<R> {
  const saved = { ...inverseIndexCache };
  Object.assign(inverseIndexCache, knobs);
  try {
    return await f();
  } finally {
    Object.assign(inverseIndexCache, saved);
  }
}

/** The knobs these tests run with (whatever $MEMMAMBA_INDEX_CACHE says): the cache on. */
const ON = { maxEntries: 64, maxBytes: 256 * 2 ** 20 };

/**
 * Runs `f` on the WebGPU test backend and puts back the backend it found (later test files in
 * the same process run on the default one); returns at once (after useBackend printed why)
 * where there is no WebGPU.
 */
async function onWebGpu(f: (gpu: WebGpuBackend) => Promise<void>): Promise<void> {
  const before = T.getBackend();
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  try {
    await f(T.getBackend() as unknown as WebGpuBackend);
  } finally {
    T.setBackend(before);
  }
}

const CASES: [string, OuterCase][] = [
  // 2·70 positions: three blocks of 64 positions, so each row's entries go into three lists
  ["[2, 70, 3] → 5 rows", makeOuter(1, [2, 70, 3], 5, 6)],
  // one list per row; S = 1
  ["[9, 4] → 3 rows", makeOuter(2, [9, 4], 3, 1)],
];

test("webgpu: indexedOuter twice over one index (the cache) equals the CPU and the uncached calls, in 2 launches", () => onWebGpu(async (gpu) => {
  await withKnobs(ON, () => expectNoLeak(async () => {
    const inUse = gpu.poolStats().tensor.inUseBytes;
    for (const [label, c] of CASES) {
      const want = await onCpu(() => outerTwice(c));
      const before = inverseIndexCacheStats(gpu.ctx);
      const cached = await outerTwice(c, gpu);
      const after = inverseIndexCacheStats(gpu.ctx);
      const uncached = await withKnobs({ maxEntries: 0 }, () => outerTwice(c, gpu));
      for (let k = 0; k < 2; k++) {
        const terms = c.index.length;
        expect(`${label} #${k} ${close(cached.out[k], want.out[k], 2e-6 * Math.sqrt(terms))}`).toBe(`${label} #${k} ok`);
        expect(cached.out[k].every(Number.isFinite)).toBe(true);
        expect(Array.from(cached.out[k])).toEqual(Array.from(uncached.out[k]));
      }
      // one miss (the first call builds), one hit (the second reuses), nothing left (freed)
      expect([after.misses - before.misses, after.hits - before.hits, after.entries]).toEqual([1, 1, 0]);
      expect(cached.launches[1]).toBe(2); // the sum over chunks and the sum of the chunks
      expect(cached.launches[0]).toBeGreaterThan(10);
      expect(uncached.launches).toEqual([cached.launches[0], cached.launches[0]]);
    }
    expect(gpu.poolStats().tensor.inUseBytes).toBe(inUse);
  }));
}));

test("webgpu: a freed index's buffer, reused by another index, does not hit its old cache entry", () => onWebGpu(async (gpu) => {
  await withKnobs(ON, () => expectNoLeak(async () => {
    const inUse = gpu.poolStats().tensor.inUseBytes;
    const a = makeOuter(3, [4, 67], 6, 5);
    // same shape and rows, other contents: the rows each entry lands in are shifted by one
    const b: OuterCase = { ...a, index: a.index.map((r) => (r < 0 ? r : (r + 1) % a.rows)) };
    const w = T.fromArray(a.w[1], a.shape), x = T.fromArray(a.x[1], [4, a.S]);
    const outer = async (idx: Tensor) => {
      const o = T.indexedOuter(w, x, idx, a.rows);
      const d = (await o.data()) as Float32Array;
      o.dispose();
      return d;
    };
    const ia = T.fromArray(a.index, a.shape, "i32");
    const gotA = await outer(ia);
    expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(1);
    // deno-lint-ignore no-explicit-any
    const bufA = (ia.buf as any).gpu as GPUBuffer;
    ia.dispose();
    expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(0); // dropped with its buffer
    // new index tensors until the pool hands bufA back (it gives the earliest-made free buffer of
    // a size class: older ones of this class, if any, go first)
    const held: Tensor[] = [];
    let ib: Tensor | undefined;
    while (!ib && held.length < 512) {
      const t = T.fromArray(b.index, b.shape, "i32");
      // deno-lint-ignore no-explicit-any
      if ((t.buf as any).gpu === bufA) ib = t;
      else held.push(t);
    }
    T.disposeTree(held);
    expect(ib).toBeDefined();
    const gotB = await outer(ib!);
    ib!.dispose();
    const want = await onCpu(async () => {
      const ws = T.fromArray(a.w[1], a.shape), xs = T.fromArray(a.x[1], [4, a.S]);
      const res: Float32Array[] = [];
      for (const data of [a.index, b.index]) {
        const i = T.fromArray(data, a.shape, "i32");
        const o = T.indexedOuter(ws, xs, i, a.rows);
        res.push((await o.data()) as Float32Array);
        T.disposeTree([i, o]);
      }
      T.disposeTree([ws, xs]);
      return res;
    });
    expect(close(gotA, want[0], 1e-5)).toBe("ok");
    expect(close(gotB, want[1], 1e-5)).toBe("ok");
    expect(close(gotB, gotA, 1e-5)).not.toBe("ok"); // the two indices do give different sums
    T.disposeTree([w, x]);
    expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(0);
    expect(gpu.poolStats().tensor.inUseBytes).toBe(inUse);
  }));
}));

test("webgpu: an index buffer written anew (backend.write) gets a new inverse index", () => onWebGpu(async (gpu) => {
  const c = makeOuter(4, [3, 8], 4, 3);
  const other = c.index.map((r) => (r < 0 ? r : (r + 2) % c.rows));
  const n = c.index.length, N = 3;
  const live = gpu.liveBuffers();
  const saved = { ...inverseIndexCache };
  Object.assign(inverseIndexCache, ON);
  const idx = gpu.alloc(n, "i32"), w = gpu.alloc(n, "f32"), x = gpu.alloc(N * c.S, "f32"), out = gpu.alloc(c.rows * c.S, "f32");
  try {
    gpu.write(w, c.w[1]);
    gpu.write(x, c.x[1]);
    const outer = async (data: Int32Array) => {
      gpu.write(idx, data);
      gpu.run("indexedOuter", [{ buf: w, shape: c.shape, dtype: "f32" }, { buf: x, shape: [N, c.S], dtype: "f32" }, { buf: idx, shape: c.shape, dtype: "i32" }], { buf: out, shape: [c.rows, c.S], dtype: "f32" }, { rows: c.rows });
      return (await gpu.read(out)) as Float32Array;
    };
    const got = [await outer(c.index), await outer(other)];
    const want = await onCpu(async () => {
      const res: Float32Array[] = [];
      for (const data of [c.index, other]) {
        const o = T.tidy(() => T.indexedOuter(T.fromArray(c.w[1], c.shape), T.fromArray(c.x[1], [N, c.S]), T.fromArray(data, c.shape, "i32"), c.rows));
        res.push((await o.data()) as Float32Array);
        o.dispose();
      }
      return res;
    });
    expect(close(got[0], want[0], 1e-5)).toBe("ok");
    expect(close(got[1], want[1], 1e-5)).toBe("ok");
    expect(close(got[1], got[0], 1e-5)).not.toBe("ok");
  } finally {
    for (const h of [idx, w, x, out]) gpu.free(h);
    Object.assign(inverseIndexCache, saved);
  }
  expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(0);
  expect(gpu.liveBuffers()).toBe(live);
}));

test("webgpu: the cache keeps at most maxEntries indices and maxBytes, and a destroyed backend releases its entries", () => onWebGpu(async (main) => {
  const c = makeOuter(5, [5, 8], 7, 4);
  const want = await onCpu(() => outerTwice(c));
  // a backend of its own on the same device, so that its cache (and its destroy) is this test's
  const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
  const gpu = await createWebGpuBackend({ gpu: main.acquired });
  T.setBackend(gpu);
  try {
    await withKnobs({ ...ON, maxEntries: 2 }, async () => {
      const w = T.fromArray(c.w[0], c.shape), x = T.fromArray(c.x[0], [5, c.S]);
      // four index tensors of the same contents: the cache never holds more than two
      const idxs = [0, 1, 2, 3].map(() => T.fromArray(c.index, c.shape, "i32"));
      for (const idx of idxs) {
        const o = T.indexedOuter(w, x, idx, c.rows);
        expect(close((await o.data()) as Float32Array, want.out[0], 1e-5)).toBe("ok");
        o.dispose();
        expect(inverseIndexCacheStats(gpu.ctx).entries).toBeLessThanOrEqual(2);
      }
      const s = inverseIndexCacheStats(gpu.ctx);
      expect([s.entries, s.misses, s.hits]).toEqual([2, 4, 0]);
      // the oldest went first: the first index misses again, the last one hits
      for (const [idx, hits] of [[idxs[3], 1], [idxs[0], 1]] as const) {
        const o = T.indexedOuter(w, x, idx, c.rows);
        o.dispose();
        expect(inverseIndexCacheStats(gpu.ctx).hits - s.hits).toBe(hits);
      }
      // an index over maxBytes is built, used and given back, never kept
      await withKnobs({ maxBytes: 0 }, async () => {
        const o = T.indexedOuter(w, x, idxs[1], c.rows);
        expect(close((await o.data()) as Float32Array, want.out[0], 1e-5)).toBe("ok");
        o.dispose();
        const t = inverseIndexCacheStats(gpu.ctx);
        expect([t.entries, t.misses - s.misses]).toEqual([2, 2]);
      });
      T.disposeTree([w, x, idxs.slice(1)]);
      // idxs[0] still alive, its index cached: destroy gives the entry back
      const o = T.tidy(() => T.indexedOuter(T.ones(c.shape), T.ones([5, c.S]), idxs[0], c.rows));
      await o.data();
      o.dispose();
      expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(1);
      gpu.destroy();
      expect(inverseIndexCacheStats(gpu.ctx).entries).toBe(0);
      idxs[0].dispose(); // a free after destroy only counts it
      expect(gpu.liveBuffers()).toBe(0);
    });
  } finally {
    gpu.destroy();
    T.setBackend(main);
  }
}));
