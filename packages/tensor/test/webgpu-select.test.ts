/**
 * causalSelect on the GPU: the parallel kernels (webgpu/kernels/select.ts: an end-of-hold pass
 * and a fill pass) against the CPU reference (cpu/select.ts), bit for bit (i32 positions):
 * - fast-check cases: both modes, B 1–3, L 0–150 (rarely a multiple of the 64-thread
 *   workgroups), k 0–9 and past the number of set positions, masks with no / few / many / all
 *   positions set, scores quantised to 1–3 values (ties everywhere) or continuous, f32 and i32
 *   masks and scores;
 * - scores the comparisons treat specially in "top" mode: NaN (a newcomer to a full memory is
 *   dropped, a NaN taken in while it filled stays for good), −0 = +0, ±Infinity, subnormals;
 * - the choice of kernel (selectTuning): beyond parallelMaxL the walk runs, and agrees too;
 * - the tiling of the parallel kernels (rows read through workgroup memory, 256 entries a tile,
 *   64 positions a workgroup): L = 1, 2, 63, 65, 255, 256, 257, 300, 513 with k = 1 to k ≥ L;
 *   long rows (B = 1, L = 3000; B = 3, L = 2100) dense, sparse and empty, in both modes; NaN
 *   scores taken in while the memory fills over more than one tile; rising, falling and
 *   sawtooth scores; set positions in blocks between gaps of whole tiles;
 * - the first pass from tile summaries (select-summary.ts, "top" mode, f32 scores) and the scan
 *   from each row's start: the tests above run both, the fast-check cases draw either; a
 *   long-context chunk, sparse rows, k at SUMMARY_MAX_K and past it, i32 scores and "last" mode
 *   (the scan then);
 * - the second pass from segments (select-segments.ts, "top" mode) and the walk back from every
 *   position: the tests above run both, the fast-check cases draw either; segment lengths 64 and
 *   128, rows ending inside a segment, k at SEG_MAX_K and past it (the walk then), k at
 *   STAGE_MAX_K and past it (rows written through workgroup memory, then not);
 * - several threads per position (select-lanes.ts, chosen when B·L < selectTuning.lanesBelow):
 *   the tests above run with 1 and 8 lanes (lanesBelow forced up), the fast-check cases draw
 *   either; 2, 4 and 16 lanes on mixed cases; the choice itself; long rows at B = 1 and 2,
 *   L 3000–9000 (the chunked long-context forward's B 1, L 8243, k 50) under the automatic choice (8 lanes below 65536 positions).
 * On a machine without a WebGPU adapter the tests print why and pass (CI=true fails instead).
 * Each test restores the backend and tuning it found.
 */
import fc from "fast-check";
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, DType } from "../src/index.ts";
import { causalSelectLanes, causalSelectPlan, selectTuning, usesSummary } from "../src/webgpu/kernels/select.ts";
import { SEG_MAX_K, segmentLength, STAGE_MAX_K } from "../src/webgpu/kernels/select-segments.ts";
import { SUMMARY_MAX_K, SUPER_MAX_KEYS, superKeys } from "../src/webgpu/kernels/select-summary.ts";
import { keysOf } from "./webgpu-matmul-support.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import { mulberry32 } from "./gradcheck.ts";

interface Case {
  B: number;
  L: number;
  k: number;
  mode: "last" | "top";
  mask: Float32Array | Int32Array;
  score: Float32Array | Int32Array;
}

/** The CPU reference backend (setBackend("cpu") makes one; the backend found is put back). */
const cpu: Backend = (() => {
  const prev = T.getBackend();
  const b = T.setBackend("cpu");
  T.setBackend(prev);
  return b;
})();

/** causalSelect of `c` on backend `b` (the current backend is put back afterwards). */
async function select(b: Backend, c: Case): Promise<Int32Array> {
  const prev = T.getBackend();
  T.setBackend(b);
  try {
    const before = b.liveBuffers();
    const mask = T.fromArray(c.mask, [c.B, c.L], c.mask instanceof Int32Array ? "i32" : "f32");
    const score = T.fromArray(c.score, [c.B, c.L], c.score instanceof Int32Array ? "i32" : "f32");
    const out = T.causalSelect(mask, score, c.k, c.mode);
    const data = (await out.data()) as Int32Array;
    T.disposeTree([mask, score, out]);
    if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
    return data;
  } finally {
    T.setBackend(prev);
  }
}

function show(c: Case): string {
  return `B ${c.B}, L ${c.L}, k ${c.k}, ${c.mode}, mask ${Array.from(c.mask).join(",")}, score ${Array.from(c.score).join(",")}`;
}

/** Runs `c` on the GPU and the CPU reference; throws at the first differing element. */
async function agree(gpu: Backend, c: Case): Promise<void> {
  const want = await select(cpu, c);
  const got = await select(gpu, c);
  expect(got.length).toBe(c.B * c.L * c.k);
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) {
      const k = Math.max(c.k, 1), t = Math.floor(i / k) % Math.max(c.L, 1), b = Math.floor(i / k / Math.max(c.L, 1));
      const row = (a: Int32Array) => Array.from(a.subarray((b * c.L + t) * c.k, (b * c.L + t + 1) * c.k)).join(",");
      throw new Error(`causalSelect differs at b ${b}, t ${t}: webgpu [${row(got)}] vs cpu [${row(want)}] (${show(c)})`);
    }
  }
}

/** The WebGPU backend made current by useBackend, or null (test skipped) where there is none. */
async function webgpu(): Promise<WebGpuBackend | null> {
  const prev = T.getBackend();
  try {
    return (await useBackend("webgpu")) ? (T.getBackend() as WebGpuBackend) : null;
  } finally {
    T.setBackend(prev);
  }
}

/** Runs `fn` with selectTuning set to `t`, restoring the tuning found. */
async function withTuning(t: Partial<typeof selectTuning>, fn: () => Promise<void>): Promise<void> {
  const saved = { ...selectTuning };
  Object.assign(selectTuning, t);
  try {
    await fn();
  } finally {
    Object.assign(selectTuning, saved);
  }
}

/**
 * Runs `fn` once with the one-thread-per-position parallel kernels, the scan from each row's
 * start and the walk-back fill, and once with 8 lanes per position (select-lanes.ts; "last" mode
 * and i32 scores), the first pass from tile summaries (select-summary.ts; "top" with f32 scores)
 * and the fill from segments (select-segments.ts), whatever B·L (selectTuning restored after each).
 */
async function eachLanes(fn: () => Promise<void>): Promise<void> {
  for (const [lanes, fill, end] of [[1, "walk", "scan"], [8, "segments", "summary"]] as const) {
    await withTuning({ force: "parallel", lanes, lanesLast: lanes, lanesBelow: Infinity, fill, end, summaryMinL: 0 }, async () => {
      expect(causalSelectLanes(1, 100_000)).toBe(lanes);
      await fn();
    });
  }
}

/** A case from a seed: `density` of the positions set, scores from `levels` values (0: continuous). */
function makeCase(seed: number, B: number, L: number, k: number, mode: "last" | "top", density: number, levels: number, dt: { mask: DType; score: DType }): Case {
  const r = mulberry32(seed);
  const n = B * L;
  const maskVals = Array.from({ length: n }, () => (r() < density ? 1 + Math.floor(r() * 3) : 0));
  const scoreVals = Array.from({ length: n }, () => (levels === 0 ? r() * 4 - 2 : Math.floor(r() * levels) - 1));
  return {
    B, L, k, mode,
    mask: dt.mask === "i32" ? Int32Array.from(maskVals) : Float32Array.from(maskVals, (v) => v * 0.25),
    // i32 scores: continuous ones scaled to a wide integer range
    score: dt.score === "i32" ? Int32Array.from(scoreVals, (v) => Math.round(v * (levels === 0 ? 1e6 : 1))) : Float32Array.from(scoreVals),
  };
}

test("webgpu causalSelect (parallel kernels) equals the CPU reference: fast-check cases with ties", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await withTuning({ force: "parallel", lanesBelow: Infinity, summaryMinL: 0 }, async () => {
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(1, 8),
      fc.constantFrom("segments" as const, "walk" as const),
      fc.constantFrom("summary" as const, "scan" as const),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      fc.integer({ min: 1, max: 3 }),
      fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 21, max: 150 })),
      fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 2, max: 9 })),
      fc.constantFrom("last" as const, "top" as const),
      fc.constantFrom(0, 0.05, 0.3, 0.7, 1),
      fc.constantFrom(1, 2, 3, 0),
      fc.constantFrom("f32" as const, "i32" as const),
      fc.constantFrom("f32" as const, "i32" as const),
      async (lanes, fill, end, seed, B, L, k, mode, density, levels, maskDt, scoreDt) => {
        selectTuning.lanes = selectTuning.lanesLast = lanes;
        selectTuning.fill = fill;
        selectTuning.end = end;
        expect(causalSelectPlan(B, L, k, gpu.limits)).toBe("parallel");
        expect(causalSelectLanes(B, L, mode)).toBe(lanes);
        await agree(gpu, makeCase(seed, B, L, k, mode, density, levels, { mask: maskDt, score: scoreDt }));
      },
    ), { numRuns: 60 });
  });
});

test("webgpu causalSelect (parallel kernels): k = 0, k = 1, k past the set positions, empty and full masks, several workgroups per row", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    const f32 = { mask: "f32", score: "f32" } as const;
    let seed = 1;
    for (const mode of ["last", "top"] as const) {
      for (const [B, L, k, density, levels] of [
        [2, 10, 0, 0.5, 2], [3, 17, 1, 0.5, 2], [2, 40, 1, 1, 3], [1, 30, 12, 0.2, 2], [2, 9, 20, 1, 1],
        [2, 65, 4, 0, 2], [1, 64, 3, 1, 1], [2, 200, 7, 0.6, 3], [1, 129, 64, 0.9, 0], [1, 1, 3, 1, 2],
      ] as const) {
        await agree(gpu, makeCase(seed++, B, L, k, mode, density, levels, f32));
      }
    }
  });
});

test("webgpu causalSelect (parallel kernels), top mode: NaN, −0 / +0, ±Infinity and subnormal scores as the reference compares them", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    const specials = [NaN, -0, 0, Infinity, -Infinity, 1e-45, -1e-45, 1.5e-40, 1, -1];
    // a NaN among the first k set positions (held for good), a NaN that arrives to a full
    // memory (dropped), a row of NaNs only, and random mixes
    const hand: Array<[number[], number[], number]> = [
      [[1, 1, 1, 1, 1, 1, 1], [2, NaN, 1, 3, 0, 5, 4], 3],
      [[1, 1, 1, 1, 1, 1, 1], [2, 1, 3, NaN, 0, 5, NaN], 3],
      [[1, 1, 1, 1, 1], [NaN, NaN, NaN, NaN, NaN], 2],
      [[1, 0, 1, 1, 1, 1], [NaN, 7, NaN, 1, 2, 3], 2],
      [[1, 1, 1, 1, 1, 1], [-0, 0, -0, 0, 0, -0], 2],
    ];
    for (const [m, s, k] of hand) {
      await agree(gpu, { B: 1, L: m.length, k, mode: "top", mask: Float32Array.from(m), score: Float32Array.from(s) });
    }
    const r = mulberry32(99);
    for (let rep = 0; rep < 6; rep++) {
      const B = 2, L = 37 + rep * 11, k = 1 + rep;
      const score = Float32Array.from({ length: B * L }, () => specials[Math.floor(r() * specials.length)]);
      // f32 masks with −0 (unset, as the reference's M[j] === 0) and NaN (set)
      const mask = Float32Array.from({ length: B * L }, () => [0, -0, 1, NaN, 0.5][Math.floor(r() * 5)]);
      await agree(gpu, { B, L, k, mode: "top", mask, score });
      await agree(gpu, { B, L, k, mode: "last", mask, score });
    }
  });
});

test("webgpu causalSelect: the walk runs beyond selectTuning.parallelMaxL and agrees with the parallel kernels' reference", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const found = { ...selectTuning };
  await withTuning({ parallelMaxL: 40, force: "auto" }, async () => {
    expect(causalSelectPlan(2, 40, 5, gpu.limits)).toBe("parallel");
    expect(causalSelectPlan(2, 41, 5, gpu.limits)).toBe("walkWg");
    expect(causalSelectPlan(2, 41, 600, gpu.limits)).toBe("walk");
    let seed = 500;
    for (const mode of ["last", "top"] as const) {
      for (const L of [40, 41, 90]) await agree(gpu, makeCase(seed++, 2, L, 5, mode, 0.6, 3, { mask: "f32", score: "f32" }));
    }
  });
  // the walks that webgpu-parity.test.ts covered before the parallel kernels took their sizes:
  // the workgroup walk with pools over one thread's share, the one-thread walk past its limit
  await withTuning({ force: "walk" }, async () => {
    let seed = 600;
    for (const [B, L, k] of [[2, 300, 70], [1, 700, 600]] as const) {
      expect(causalSelectPlan(B, L, k, gpu.limits)).toBe(k > 512 ? "walk" : "walkWg");
      for (const mode of ["last", "top"] as const) await agree(gpu, makeCase(seed++, B, L, k, mode, 0.7, 7, { mask: "f32", score: "f32" }));
    }
  });
  expect({ ...selectTuning }).toEqual(found);
});

/**
 * A case from per-position rules: `mask(b, i)` and `score(b, i)` (f32 unless `dt` says i32;
 * i32 values are rounded).
 */
function ruleCase(
  B: number, L: number, k: number, mode: "last" | "top",
  mask: (b: number, i: number) => number, score: (b: number, i: number) => number,
  dt: { mask: DType; score: DType } = { mask: "f32", score: "f32" },
): Case {
  const at = (f: (b: number, i: number) => number) => Array.from({ length: B * L }, (_, n) => f(Math.floor(n / L), n % L));
  const arr = (d: DType, v: number[]) => (d === "i32" ? Int32Array.from(v, Math.round) : Float32Array.from(v));
  return { B, L, k, mode, mask: arr(dt.mask, at(mask)), score: arr(dt.score, at(score)) };
}

// The parallel kernels read each row through workgroup memory in tiles of 256 entries, a
// workgroup per 64 positions, and walk the tiles until every thread of the workgroup is done
// (skipping tiles no thread needs). The cases below cross those boundaries: rows shorter than,
// equal to and just past a tile or a workgroup, long rows of many tiles, and rows where the
// workgroups skip ahead (sparse masks, "last" mode) or must walk everything (high scores late).

test("webgpu causalSelect (parallel kernels): row lengths around the tile and the workgroup, k = 1 to k ≥ L, all-set / sparse / empty masks", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    let seed = 700;
    for (const L of [1, 2, 63, 65, 255, 256, 257, 300, 513]) {
      let n = 0;
      for (const k of [1, Math.max(2, Math.floor(L / 9)), L, L + 5]) {
        for (const mode of ["last", "top"] as const) {
          // each L sees every density and every kind of score over its eight cases
          const density = [1, 0.05, 0, 0.6][n % 4];
          const levels = [0, 1, 2][n % 3];
          const dt = n % 5 === 4 ? { mask: "i32", score: "i32" } as const : { mask: "f32", score: "f32" } as const;
          await agree(gpu, makeCase(seed++, 1 + (n % 2), L, k, mode, density, levels, dt));
          n++;
        }
      }
    }
  });
});

test("webgpu causalSelect (parallel kernels): long rows (B = 1, L = 3000; B = 3, L = 2100) in both modes, dense, sparse and empty, ties", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    const f32 = { mask: "f32", score: "f32" } as const;
    const i32 = { mask: "i32", score: "i32" } as const;
    let seed = 800;
    for (const [B, L, k, mode, density, levels, dt] of [
      [1, 3000, 50, "top", 1, 0, f32], // the MemMamba training pattern, one long row
      [1, 3000, 1, "top", 1, 0, f32],
      [1, 3000, 300, "top", 0.3, 2, f32],
      [1, 3000, 50, "last", 1, 0, f32],
      [1, 3000, 50, "last", 0.02, 0, f32],
      [1, 3000, 20, "top", 0.02, 1, f32],
      [1, 600, 600, "top", 1, 0, f32],
      [1, 600, 700, "last", 0.7, 0, f32],
      [3, 2100, 64, "top", 1, 0, i32],
      [3, 2100, 64, "top", 0.25, 1, f32], // every score equal: the oldest go first
      [3, 2100, 5, "last", 0.5, 0, i32],
      [3, 2100, 200, "top", 0.02, 0, f32],
      [3, 2100, 50, "top", 0, 0, f32],
      [3, 2100, 50, "last", 0, 0, f32],
    ] as const) {
      await agree(gpu, makeCase(seed++, B, L, k, mode, density, levels, dt));
    }
  });
});

test("webgpu causalSelect, fill from segments: segment lengths 64 and 128, rows ending inside a segment, k up to its limit and past it, both passes' dispatches", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  expect([segmentLength(1), segmentLength(16384), segmentLength(16385), segmentLength(65536), segmentLength(1 << 20)]).toEqual([64, 64, 128, 128, 256]);
  await withTuning({ force: "parallel", fill: "segments" }, async () => {
    let seed = 4100;
    const f32 = { mask: "f32", score: "f32" } as const;
    for (const [B, L, k, density, levels] of [
      [2, 16500, 50, 1, 0], // segments of 128 (the last one partial), the chunked forward's k
      [1, 1000, SEG_MAX_K, 0.9, 0], // k at the limit
      [1, 900, STAGE_MAX_K, 1, 1], // the largest k whose rows are staged, with ties
      [1, 900, STAGE_MAX_K + 1, 1, 0], // the smallest whose rows are not
      [1, 700, SEG_MAX_K + 1, 1, 0], // past it: the walk-back fill
      [2, 130, 40, 1, 3], // ties: one segment and a few rows past it
      [1, 5000, 50, 0.1, 0], // sparse
    ] as const) {
      const c = makeCase(seed++, B, L, k, "top", density, levels, f32);
      const { keys } = await keysOf(gpu, () => agree(gpu, c));
      const segs = k <= SEG_MAX_K;
      // rows of k ≤ STAGE_MAX_K go out through workgroup memory (the ":staged" pipeline)
      expect([keys.includes("causalSelectSegStarts"), keys.includes("causalSelectSegRows"), keys.includes("causalSelectSegRows:staged")])
        .toEqual([segs, segs && k > STAGE_MAX_K, segs && k <= STAGE_MAX_K]);
      expect(keys.some((x) => x.startsWith("causalSelectFill"))).toBe(!segs);
    }
  });
});

test("webgpu causalSelect, first pass from tile summaries: tiles of 256 around the row's end, k up to its limit and past it, i32 scores and last mode take the scan; a row of 270K on the default plan", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  // rows of any length take the summaries here (by default only from selectTuning.summaryMinL, or
  // from B·L² of selectTuning.summaryMinWork: many rows of 4K, not the training step's 8 of 2K)
  expect(usesSummary(1, 16384, 50, "top", "f32")).toBe(false);
  expect(usesSummary(1, selectTuning.summaryMinL, 50, "top", "f32")).toBe(true);
  expect(usesSummary(1, Math.ceil(Math.sqrt(selectTuning.summaryMinWork)), 50, "top", "f32")).toBe(true);
  expect(usesSummary(8, 2048, 50, "top", "f32")).toBe(false);
  expect(usesSummary(256, 1024, 50, "top", "f32")).toBe(false);
  expect(usesSummary(64, 4096, 50, "top", "f32")).toBe(true);
  expect(usesSummary(64, 4096, 50, "last", "f32")).toBe(false);
  expect(causalSelectPlan(1, selectTuning.parallelMaxL + 1, 50, gpu.limits, "top", "f32")).toBe("parallel");
  expect(causalSelectPlan(1, selectTuning.parallelMaxL + 1, 50, gpu.limits, "top", "i32")).toBe("walkWg");
  // a 256K chunk's rows (262,194 with the pool's notes) take the summaries, as the default tuning plans it
  expect(causalSelectPlan(1, 262194, 50, gpu.limits, "top", "f32")).toBe("parallel");
  expect(causalSelectPlan(1, selectTuning.parallelMaxLSummary + 1, 50, gpu.limits, "top", "f32")).toBe("walkWg");
  {
    const c = makeCase(5199, 1, 270_000, 50, "top", 0.25, 0, { mask: "f32", score: "f32" });
    const { keys } = await keysOf(gpu, () => agree(gpu, c));
    expect(keys.some((x) => x.startsWith("causalSelectSumm"))).toBe(true);
  }
  await withTuning({ force: "parallel", end: "summary", summaryMinL: 0 }, async () => {
    let seed = 5200;
    const f32 = { mask: "f32", score: "f32" } as const;
    for (const [B, L, k, mode, density, levels, dt, summary] of [
      [1, 16435, 50, "top", 1, 0, f32, true], // a long-context chunk
      [2, 5000, 50, "top", 0.05, 0, f32, true], // sparse: tiles with few or no set positions
      [1, 1200, SUMMARY_MAX_K, "top", 1, 3, f32, true], // k at the limit, ties
      [1, 700, SUMMARY_MAX_K + 1, "top", 1, 0, f32, false], // past it: the scan
      [2, 600, 40, "top", 1, 0, { mask: "f32", score: "i32" }, false],
      [2, 600, 40, "last", 1, 0, f32, false],
      [3, 257, 7, "top", 0.6, 2, f32, true], // one entry past a tile
    ] as const) {
      const c = makeCase(seed++, B, L, k, mode, density, levels, dt);
      const { keys } = await keysOf(gpu, () => agree(gpu, c));
      expect([keys.some((x) => x.startsWith("causalSelectSumm")), keys.some((x) => x.startsWith("causalSelectEndS"))]).toEqual([summary, summary]);
      expect(keys.some((x) => x.startsWith("causalSelectEnd:"))).toBe(!summary);
    }
  });
});

test("webgpu causalSelect, first pass through super-tiles (selectTuning.superTiles: lists of G tiles' k best keys): G 2, 3, 16 and 32, NaN scores across super-tiles, rising and falling scores, sparse rows, the pass's pipelines", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const r = mulberry32(1300);
  const rand = Array.from({ length: 4096 }, () => r());
  const u = (b: number, i: number, salt: number) => rand[(b * 1543 + i + salt * 977) % rand.length];
  for (const G of [2, 3, 16, 32]) {
    await withTuning({ force: "parallel", end: "summary", summaryMinL: 0, superTiles: G }, async () => {
      const cases: Case[] = [
        // fill-time NaNs spread over the first tiles, later NaNs, ties among three values
        ruleCase(2, 1900, 60, "top", (b, i) => (u(b, i, 3) < 0.6 ? 1 : 0), (b, i) => (u(b, i, 1) < 0.05 ? NaN : Math.floor(u(b, i, 2) * 3))),
        // rising scores (each new position enters, the oldest leaves), falling (only the first k stay)
        ruleCase(1, 2100, 50, "top", () => 1, (_, i) => i),
        ruleCase(1, 2100, 50, "top", () => 1, (_, i) => -i),
        // sparse: whole tiles with no set position
        ruleCase(1, 3000, 20, "top", (_, i) => (u(0, i, 4) < 0.01 ? 1 : 0), (_, i) => u(0, i, 5)),
        // uniform scores, k at the summaries' limit
        ruleCase(1, 2600, SUMMARY_MAX_K, "top", () => 1, (_, i) => u(0, i, 6)),
        ...(G === 16 ? [makeCase(1310, 1, 9000, 50, "top", 1, 0, { mask: "f32", score: "f32" })] : []),
        // 36 tiles of k 128: 32 · 128 keys exceed the merge, so no super-tiles
        ...(G === 32 ? [ruleCase(1, 9000, SUMMARY_MAX_K, "top", () => 1, (_, i) => u(0, i, 7))] : []),
      ];
      for (const c of cases) {
        const { keys } = await keysOf(gpu, () => agree(gpu, c));
        const nT = Math.ceil(c.L / 256);
        const supers = nT > G && superKeys(G, c.k) <= SUPER_MAX_KEYS;
        expect(`${G} ${c.L} ${c.k} ${keys.some((x) => x.startsWith("causalSelectSumm2:"))} ${keys.some((x) => x.endsWith(`:g${G}`))}`).toBe(`${G} ${c.L} ${c.k} ${supers} ${supers}`);
      }
    });
  }
  // G · k past the merge's workgroup memory: no super-tiles (the loop's rule above)
  expect([superKeys(16, 50), superKeys(16, SUMMARY_MAX_K), superKeys(32, SUMMARY_MAX_K)]).toEqual([800, SUPER_MAX_KEYS, 2 * SUPER_MAX_KEYS]);
});

test("webgpu causalSelect (parallel kernels), top mode on long rows: NaN scores taken in while the memory fills (across tiles) and later, with ties", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    const r = mulberry32(900);
    const rand = Array.from({ length: 3 * 1300 }, () => r());
    const u = (b: number, i: number, salt: number) => rand[(b * 1300 + i + salt * 977) % rand.length];
    const cases: Case[] = [
      // k = 400: the fill-time NaNs spread over the first two tiles (all set) or more (half set)
      ruleCase(2, 1200, 400, "top", () => 1, (b, i) => (u(b, i, 1) < 0.05 ? NaN : u(b, i, 2))),
      ruleCase(2, 1200, 400, "top", (b, i) => (u(b, i, 3) < 0.5 ? 1 : 0), (b, i) => (u(b, i, 1) < 0.05 ? NaN : Math.floor(u(b, i, 2) * 3))),
      // many NaNs among two score values
      ruleCase(3, 700, 10, "top", (b, i) => (u(b, i, 4) < 0.8 ? 1 : 0), (b, i) => (u(b, i, 5) < 0.3 ? NaN : Math.floor(u(b, i, 6) * 2))),
      // the first k set positions all NaN: the memory holds them for good, nothing else enters
      ruleCase(1, 900, 20, "top", (_, i) => (i % 3 === 0 ? 1 : 0), (_, i) => (i < 60 ? NaN : i % 7)),
      // NaN everywhere, k below and above the row
      ruleCase(1, 600, 5, "top", () => 1, () => NaN),
      ruleCase(1, 600, 700, "top", () => 1, () => NaN),
      // NaN masks (set), −0 masks (unset), NaN scores only after the memory is full
      ruleCase(2, 800, 30, "top", (b, i) => [0, -0, 1, NaN][Math.floor(u(b, i, 7) * 4)], (b, i) => (i > 400 && u(b, i, 8) < 0.2 ? NaN : u(b, i, 9) - 0.5)),
    ];
    for (const c of cases) {
      await agree(gpu, c);
      await agree(gpu, { ...c, mode: "last" });
    }
  });
});

test("webgpu causalSelect (parallel kernels): rising and falling scores, sawtooth ties, set positions in blocks between long unset gaps", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await eachLanes(async () => {
    const inBlocks = (_: number, i: number) => ((i < 40 || (i >= 700 && i < 760) || (i >= 1500 && i < 1510)) ? 1 : 0);
    const r = mulberry32(1000);
    const rand = Array.from({ length: 2 * 1600 }, () => r());
    const cases: Case[] = [
      // every newcomer the best: each position needs every key before it, and is evicted k later
      ruleCase(2, 1100, 50, "top", () => 1, (b, i) => i + b),
      // every newcomer the worst: the first k are held to the end, the others never
      ruleCase(2, 1100, 50, "top", () => 1, (b, i) => -i - b),
      ruleCase(2, 1100, 7, "top", () => 1, (_, i) => i % 97, { mask: "i32", score: "i32" }),
      ruleCase(2, 1600, 30, "top", inBlocks, (b, i) => rand[b * 1600 + i]),
      ruleCase(2, 1600, 100, "top", inBlocks, (b, i) => Math.floor(rand[b * 1600 + i] * 3)),
      // one set position, far from the start
      ruleCase(1, 1500, 3, "top", (_, i) => (i === 1234 ? 1 : 0), () => 1),
    ];
    for (const c of cases) {
      await agree(gpu, c);
      await agree(gpu, { ...c, mode: "last" });
    }
  });
});

test("causalSelect's lane count: selectTuning.lanes threads per position below lanesBelow positions (B·L), one from there on; a bad lane count is refused", async () => {
  await withTuning({ lanes: 8, lanesBelow: 65536 }, async () => {
    expect(causalSelectLanes(1, 8243)).toBe(8); // the chunked long-context forward
    expect(causalSelectLanes(1, 65535)).toBe(8);
    expect(causalSelectLanes(1, 65536)).toBe(1);
    expect(causalSelectLanes(8, 8192)).toBe(1);
    // "last" mode has its own count (1 by default: its scans stop after k set positions)
    selectTuning.lanesLast = 1;
    expect(causalSelectLanes(1, 8243, "last")).toBe(1);
    selectTuning.lanesLast = 4;
    expect(causalSelectLanes(1, 8243, "last")).toBe(4);
    expect(causalSelectLanes(1, 8243, "top")).toBe(8);
    selectTuning.lanes = 1;
    expect(causalSelectLanes(1, 100)).toBe(1);
    selectTuning.lanesBelow = 0;
    selectTuning.lanes = 4;
    expect(causalSelectLanes(1, 100)).toBe(1);
    selectTuning.lanesBelow = 65536;
    for (const bad of [3, 0, 32, 2.5]) {
      selectTuning.lanes = bad;
      expect(() => causalSelectLanes(1, 100)).toThrow(/selectTuning\.lanes/);
    }
  });
});

test("webgpu causalSelect, several lanes per position (the choice at B·L < lanesBelow): long rows at B = 1 and 2, L 3000–9000, both modes, ties, fill-time NaNs over several tiles", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  await withTuning({ force: "auto", lanes: 8, lanesLast: 8, lanesBelow: 65536 }, async () => {
    const f32 = { mask: "f32", score: "f32" } as const;
    const r = mulberry32(1100);
    const rand = Array.from({ length: 2 * 4100 }, () => r());
    const cases: Case[] = [
      // the chunked long-context forward: B 1, L 8192 + 50 carried + 1, k 50, every position set
      makeCase(1101, 1, 8243, 50, "top", 1, 0, f32),
      makeCase(1102, 1, 8243, 50, "last", 1, 0, f32),
      makeCase(1103, 2, 5000, 64, "top", 1, 3, { mask: "i32", score: "i32" }),
      makeCase(1104, 1, 9000, 20, "last", 0.02, 0, f32),
      makeCase(1105, 2, 3000, 30, "top", 0.02, 2, f32),
      // every newcomer the best: each position's scan needs the whole row before it
      ruleCase(1, 6000, 50, "top", () => 1, (_, i) => i),
      // k = 400 of a third of the positions set: the fill-time NaNs spread over about six tiles
      ruleCase(2, 4100, 400, "top", (b, i) => (rand[b * 4100 + i] < 0.3 ? 1 : 0), (b, i) => (rand[(b * 4100 + i + 977) % rand.length] < 0.05 ? NaN : Math.floor(rand[(b * 4100 + i + 1999) % rand.length] * 5))),
    ];
    for (const c of cases) {
      expect(causalSelectPlan(c.B, c.L, c.k, gpu.limits)).toBe("parallel");
      expect(causalSelectLanes(c.B, c.L)).toBe(8);
      await agree(gpu, c);
    }
  });
});

test("webgpu causalSelect with 2, 4 and 16 lanes per position (selectTuning.lanes; a tile share of 128 down to 16 entries, 32 positions a workgroup down to 4)", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const f32 = { mask: "f32", score: "f32" } as const;
  let seed = 1200;
  for (const lanes of [2, 4, 16]) {
    await withTuning({ force: "parallel", lanes, lanesLast: lanes, lanesBelow: Infinity }, async () => {
      expect(causalSelectLanes(2, 700)).toBe(lanes);
      for (const [B, L, k, mode, density, levels] of [
        [2, 700, 20, "top", 1, 0], [2, 700, 9, "top", 0.5, 2], [1, 1100, 300, "top", 0.6, 3],
        [2, 700, 20, "last", 1, 0], [1, 300, 5, "last", 0.1, 0], [3, 37, 4, "top", 0.7, 1],
      ] as const) {
        await agree(gpu, makeCase(seed++, B, L, k, mode, density, levels, f32));
      }
      // fill-time NaNs spread over tiles, NaNs later, ties
      const r = mulberry32(seed++);
      const mask = Float32Array.from({ length: 2 * 900 }, () => (r() < 0.5 ? 1 : 0));
      const score = Float32Array.from({ length: 2 * 900 }, () => (r() < 0.1 ? NaN : Math.floor(r() * 3)));
      await agree(gpu, { B: 2, L: 900, k: 200, mode: "top", mask, score });
    });
  }
});
