/**
 * Split-K matmul on WebGPU (kernels/matmul-plan.ts, splitKPlan): K cut into slices that run as
 * extra workgroups writing partial C's, then summed in order. Checked here:
 * - the rule (pure): slices are whole k-tiles, none empty, the training's weight-gradient shapes
 *   split and big ones do not, the knob turns it off;
 * - parity with the CPU reference on fast-check shapes that split (K not a multiple of the
 *   k-tile or of the slice, M, N not multiples of 4 or of the tile, every transA / transB,
 *   broadcast batch dims), for the generic tile, the specialised tile and the untiled kernel;
 *   tolerance as webgpu-parity.test.ts for sums of K terms: |gpu − cpu| ≤ 1e-5·√K·(1 + |cpu|);
 * - that the split path ran (the pipeline keys dispatched: ":splitk" and "matmul:splitk-sum"),
 *   and that a split result is the same bits on every run.
 * Thresholds are lowered so small shapes split (lavapipe is slow); the tile is the small test tile
 * of webgpu-parity.test.ts, the inner loop not unrolled (a 10x shorter compile on lavapipe).
 */
import fc from "fast-check";
import { expect, test } from "../../../test/support/harness.ts";
import * as T from "../src/index.ts";
import type { Backend, HostArray } from "../src/index.ts";
import { gpuPair, type In, keysOf, matmulOn, seededF32 } from "./webgpu-matmul-support.ts";
import { BIG_TILE, MID_TILE, MID_TILE_TALL, matmulPlan, matmulTuning, NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32, SHORT_K_TILE, SMALL_TILE, splitKPlan, splitSumLanes, type TileConfig } from "../src/webgpu/kernels/matmul.ts";

const f32 = seededF32(777);

const pair = gpuPair();

/** Runs one matmul on the CPU and the GPU; checks the tolerance and that the GPU split K. */
async function splitParity(what: string, x: In, y: In, transA: boolean, transB: boolean, K: number): Promise<HostArray> {
  const want = await matmulOn(pair.cpu, x, y, transA, transB);
  const { result: got, keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, transA, transB));
  T.setBackend(pair.gpu as unknown as Backend);
  if (!keys.includes("matmul:splitk-sum")) throw new Error(`${what}: no split-K (dispatched ${keys.join(", ")})`);
  const tol = 1e-5 * Math.sqrt(Math.max(1, K));
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) throw new Error(`${what}: element ${i}: webgpu ${got[i]} vs cpu ${want[i]}`);
  }
  return got;
}

/** Runs `fn` with some tuning knobs changed, restoring them after. */
async function withTuning<R>(change: Partial<typeof matmulTuning>, fn: () => Promise<R> | R): Promise<R> {
  const saved = { ...matmulTuning };
  Object.assign(matmulTuning, change);
  try {
    return await fn();
  } finally {
    Object.assign(matmulTuning, saved);
  }
}

/** Thresholds that make small problems split into several short slices. */
// rowDot off: matrix-vector products would take the row-dot kernel, which never splits
const SMALL_SPLIT = { splitK: true, splitKMaxWorkgroups: 1e9, splitKTargetWorkgroups: 64, splitKMinSlice: 16, splitKMinSliceUntiled: 16, splitKMinFlops: 0, unrollBig: false, rowDot: false };
const TEST_TILE: TileConfig = { BM: 32, BN: 32, BK: 8, TM: 4, TN: 4 };

type Case = [m: number, k: number, n: number, batch: number[][], ta: boolean, tb: boolean];
/** Operands of a case: A [..ba, m, k] (or [k, m]), B [..bb, k, n] (or [n, k]). */
function operands([m, k, n, [ba, bb], ta, tb]: Case): [In, In] {
  return [f32([...ba, ...(ta ? [k, m] : [m, k])]), f32([...bb, ...(tb ? [n, k] : [k, n])])];
}
const BATCHES: number[][][] = [[[], []], [[3], []], [[], [2]], [[2, 1], [3]], [[2], [2]]];
const label = (c: Case) => `matmul ${JSON.stringify(c)}`;

test("splitKPlan: whole k-tiles, no empty slice, the scratch limit, the knob; training shapes split, big ones do not", async () => {
  // defaults: a training step's weight gradients (small preset, batch 8 × 2048 tokens)
  const dW = splitKPlan(256, 256, 2048, 8, SMALL_TILE); // [8] 256×256, 128 tiles of 64²
  expect(dW.slices).toBeGreaterThan(1);
  expect(dW.slices * 128).toBeGreaterThanOrEqual(matmulTuning.splitKTargetWorkgroups);
  expect(splitKPlan(256, 1, 2048, 8, "untiled").slices).toBeGreaterThan(1); // 8 workgroups of dW for a [256] → [1] projection
  expect(splitKPlan(16384, 256, 256, 1, MID_TILE).slices).toBe(1); // 512 blocks: full already
  expect(splitKPlan(4096, 4096, 4096, 1, BIG_TILE).slices).toBe(1);
  expect(splitKPlan(64, 64, 64, 1, SMALL_TILE).slices).toBe(1); // tiny: the extra launch would dominate
  await withTuning({ splitK: false }, () => expect(splitKPlan(256, 256, 2048, 8, SMALL_TILE).slices).toBe(1));
  // tiles by column use: a training step's narrow projections (N = 64, 48, 16) take the 128x64
  // tile, wide ones the 128x256 tile, and the knob at 0 gives the old choice by block count
  expect(matmulPlan(16384, 64, 256, 1)).toBe(MID_TILE);
  // 16, 32 or 48 columns, B untransposed, 4096+ rows: tiles of 16 or 32 columns (x_proj: 48)
  expect(matmulPlan(16384, 48, 512, 1)).toBe(NARROW_TILE_16_TALL);
  expect(matmulPlan(61440, 48, 512, 1)).toBe(NARROW_TILE_16_TALL);
  expect(matmulPlan(4096, 48, 512, 1)).toBe(NARROW_TILE_16);
  expect(matmulPlan(16384, 16, 512, 1)).toBe(NARROW_TILE_16);
  expect(matmulPlan(2048, 32, 512, 30)).toBe(NARROW_TILE_32);
  expect([NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32]).not.toContain(matmulPlan(2048, 48, 512, 1)); // too few rows: the rules below
  await withTuning({ narrowTileMinRows: Infinity }, () => {
    expect(matmulPlan(16384, 48, 512, 1)).toBe(MID_TILE);
    // narrower than 64 columns, B untransposed, 32K+ rows: the 64x64 tile; transposed B keeps 128x64
    expect(matmulPlan(61440, 48, 512, 1)).toBe(SMALL_TILE);
    expect(matmulPlan(2048, 48, 512, 30)).toBe(SMALL_TILE);
  });
  expect(matmulPlan(61440, 40, 512, 1)).toBe(SMALL_TILE);
  expect(matmulPlan(61440, 48, 512, 1, true)).toBe(MID_TILE_TALL);
  expect(matmulPlan(61440, 64, 256, 1)).toBe(MID_TILE_TALL); // very tall: BK 16
  expect(matmulPlan(16384, 64, 256, 1)).toBe(MID_TILE);
  // a short K over many blocks (MemMamba's fusions): the 128x128 tile at BK 16, not the wide one
  expect(matmulPlan(61440, 256, 64, 1)).toBe(SHORT_K_TILE);
  expect(matmulPlan(2048, 256, 64, 8)).toBe(SHORT_K_TILE);
  expect((matmulPlan(61440, 256, 65, 1) as TileConfig).BN).toBe(256);
  expect(matmulPlan(61440, 64, 64, 1)).toBe(MID_TILE_TALL); // 64 of 128 columns: too few used
  await withTuning({ narrowSmallMinRows: Infinity, narrowTileMinRows: Infinity }, () => expect(matmulPlan(61440, 48, 512, 1)).toBe(MID_TILE_TALL));
  expect((matmulPlan(16384, 1024, 256, 1) as TileConfig).BN).toBe(256);
  expect(matmulPlan(32768, 128, 256, 1)).toBe(BIG_TILE);
  await withTuning({ minColumnUse: 0 }, () => expect((matmulPlan(16384, 64, 256, 1) as TileConfig).BN).toBe(256));
  // weight gradients (few blocks, K = 16384: split-K's problems) take the 128-row tiles where they fit
  expect(matmulPlan(256, 1024, 16384, 1)).toBe(BIG_TILE);
  expect(matmulPlan(256, 64, 16384, 1)).toBe(MID_TILE);
  expect(matmulPlan(64, 256, 16384, 1)).toBe(SMALL_TILE); // 64 rows: half a 128-row tile
  expect(matmulPlan(256, 256, 2048, 8)).toBe(SMALL_TILE); // K below bigTileSplitMinK
  await withTuning({ splitK: false }, () => expect(matmulPlan(256, 1024, 16384, 1)).toBe(SMALL_TILE));
  // a scorer's weight gradient [16384, 256]ᵀ·[16384, 1] (one workgroup a slice): short slices
  const thin = splitKPlan(256, 1, 16384, 1, "untiled");
  expect(thin.sliceLen).toBe(matmulTuning.splitKMinSliceUntiled);
  // invariants over random problems and knobs
  const saved = { ...matmulTuning };
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 70000 }), fc.integer({ min: 1, max: 16 }),
    fc.constantFrom<"untiled" | TileConfig>("untiled", SMALL_TILE, MID_TILE, BIG_TILE, TEST_TILE),
    fc.integer({ min: 1, max: 512 }), fc.integer({ min: 2, max: 2048 }), fc.constantFrom(Infinity, 2 ** 20, 2 ** 27), fc.integer({ min: 1, max: 512 }),
    (m, N, K, batches, plan, tiledMin, target, maxBytes, untiledMin) => {
      Object.assign(matmulTuning, { splitKMinSlice: tiledMin, splitKMinSliceUntiled: untiledMin, splitKTargetWorkgroups: target, splitKMinFlops: 0 });
      const minSlice = plan === "untiled" ? untiledMin : tiledMin; // each kernel its own knob
      try {
        const { slices, sliceLen } = splitKPlan(m, N, K, batches, plan, maxBytes);
        if (slices === 1) return void expect(sliceLen).toBe(K);
        const bk = plan === "untiled" ? 1 : plan.BK;
        expect(sliceLen % bk).toBe(0);
        expect(sliceLen).toBeGreaterThanOrEqual(minSlice);
        expect((slices - 1) * sliceLen).toBeLessThan(K); // the last slice is not empty
        expect(slices * sliceLen).toBeGreaterThanOrEqual(K);
        expect(slices * batches * m * N * 4).toBeLessThanOrEqual(maxBytes);
      } finally {
        Object.assign(matmulTuning, saved);
      }
    },
  ), { numRuns: 300 });
});

test("webgpu split-K: generic tile (runtime transposes), ragged M, N, K, broadcast batches, CPU parity", async () => {
  if (!(await pair.load())) return;
  const cases: fc.Arbitrary<Case> = fc.tuple(
    fc.integer({ min: 1, max: 45 }), fc.integer({ min: 33, max: 260 }), fc.integer({ min: 1, max: 45 }),
    fc.constantFrom(...BATCHES), fc.boolean(), fc.boolean(),
  );
  await withTuning({ ...SMALL_SPLIT, force: TEST_TILE }, () =>
    fc.assert(fc.asyncProperty(cases, async (c) => {
      const [x, y] = operands(c);
      await splitParity(label(c), x, y, c[4], c[5], c[1]);
    }), { numRuns: 20 }));
});

test("webgpu split-K: specialised tile (constant transposes, vec4 loads, full tiles without guards) and weight-gradient form", async () => {
  if (!(await pair.load())) return;
  await withTuning({ ...SMALL_SPLIT, force: { ...TEST_TILE, specialize: true } }, async () => {
    // dW = Xᵀ·dY per batch element: transA, full tiles (M, N multiples of 32, K of 8), batched
    const full: Case = [64, 200, 32, [[2], [2]], true, false];
    expect(splitKPlan(64, 32, 200, 2, { ...TEST_TILE, specialize: true }).slices).toBeGreaterThan(2);
    await splitParity(label(full), ...operands(full), true, false, 200);
    // ragged: K = 203 (last slice and last k-tile short), M, N not multiples of 4, Bᵀ
    const ragged: Case = [37, 203, 45, [[], []], false, true];
    await splitParity(label(ragged), ...operands(ragged), false, true, 203);
  });
});

test("webgpu split-K: untiled kernel (N or M < 16: matrix-vector gradients), and a split result is the same bits every run", async () => {
  if (!(await pair.load())) return;
  const cases: fc.Arbitrary<Case> = fc.tuple(
    fc.integer({ min: 1, max: 70 }), fc.integer({ min: 40, max: 600 }), fc.integer({ min: 1, max: 6 }),
    fc.constantFrom(...BATCHES), fc.boolean(), fc.boolean(),
  );
  await withTuning(SMALL_SPLIT, async () => {
    await fc.assert(fc.asyncProperty(cases, async (c) => {
      const [m, k, n, [, bb], ta] = c;
      const flip = (ta || bb.length > 0) && m % 2 === 0; // also M < 16 with a wide N
      const cc: Case = flip ? [n, k, m + 16, c[3], c[4], c[5]] : c;
      expect(matmulPlan(cc[0], cc[2], cc[1], 1)).toBe("untiled");
      const [x, y] = operands(cc);
      await splitParity(label(cc), x, y, cc[4], cc[5], cc[1]);
    }), { numRuns: 20 });
    // the shape of a training step's gradient of a [256] → [1] projection (K = 2 × 1000 rows), twice
    const g: Case = [256, 1000, 1, [[2], [2]], true, false];
    const [x, y] = operands(g);
    const first = await splitParity(label(g), x, y, true, false, 1000);
    const again = await splitParity(label(g), x, y, true, false, 1000);
    expect(Array.from(again)).toEqual(Array.from(first));
    // few outputs, many slices: the sum pass gives each output several lanes (splitSumLanes)
    const many: Case = [3, 4000, 2, [[], []], false, false];
    const sp = splitKPlan(3, 2, 4000, 1, "untiled");
    expect(splitSumLanes(6, sp.slices)).toBeGreaterThan(2);
    const [mx, my] = operands(many);
    const m1 = await splitParity(label(many), mx, my, false, false, 4000);
    expect(Array.from(await splitParity(label(many), mx, my, false, false, 4000))).toEqual(Array.from(m1));
  });
});

test("split-K sum lanes: a power of two up to 64, at least 16 slices a lane, none past 64K threads", () => {
  expect(splitSumLanes(4096, 4)).toBe(1);
  expect(splitSumLanes(4096, 512)).toBe(16); // 64K threads
  expect(splitSumLanes(16, 4096)).toBe(64);
  expect(splitSumLanes(100, 40)).toBe(4);
  for (const [n, S] of [[1, 1], [7, 33], [70000, 500], [256, 1024]]) {
    const R = splitSumLanes(n, S);
    expect(R >= 1 && R <= 64 && (R & (R - 1)) === 0).toBe(true);
    expect(R === 1 || (S >= 8 * R && n * R <= 65536)).toBe(true);
  }
});

test("webgpu split-K off: the same problem runs unsplit (the knob reaches the kernel)", async () => {
  if (!(await pair.load())) return;
  const c: Case = [40, 300, 3, [[], []], false, false];
  const [x, y] = operands(c);
  await withTuning({ ...SMALL_SPLIT, splitK: false }, async () => {
    const { keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, false, false));
    T.setBackend(pair.gpu as unknown as Backend);
    expect(keys).toEqual(["matmul:lanes:b3"]); // 1 workgroup of 4x4 blocks: 16 lanes an element
  });
});

test("webgpu untiled kernel: 16 lanes an element (or, with lanes off, a thread an element) where 4x4 blocks would fill few workgroups, a 4x4 block per thread elsewhere; all equal the CPU", async () => {
  if (!(await pair.load())) return;
  // [m, k, n, transA, transB, the kernel]: 64·256 elements are 16 workgroups of 4x4 blocks (the
  // pool reads' folded weights); 12 × 12000 is 141 of them (thin: M < 16); K 300 and 70 leave
  // the lanes' unrolled loop a remainder, K 5 some lanes nothing
  const small: [number, number, number, boolean, boolean][] = [
    [64, 64, 256, false, false], [256, 64, 64, false, true], [7, 5, 3, true, false], [33, 300, 17, true, true], [20, 70, 9, false, true],
  ];
  const cases: [number, number, number, boolean, boolean, string, boolean][] = [
    ...small.map(([m, k, n, ta, tb]) => [m, k, n, ta, tb, "matmul:lanes:b3", true] as [number, number, number, boolean, boolean, string, boolean]),
    ...small.map(([m, k, n, ta, tb]) => [m, k, n, ta, tb, "matmul:naive1:b3", false] as [number, number, number, boolean, boolean, string, boolean]),
    [12, 9, 12000, false, false, "matmul:naive:b3", true], [13, 6, 11001, true, true, "matmul:naive:b3", true],
  ];
  for (const [m, k, n, ta, tb, key, lanes] of cases) {
    await withTuning({ splitK: false, rowDot: false, lanes }, async () => {
      const x = f32(ta ? [k, m] : [m, k]), y = f32(tb ? [n, k] : [k, n]);
      const want = await matmulOn(pair.cpu, x, y, ta, tb);
      const { result: got, keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, ta, tb));
      T.setBackend(pair.gpu as unknown as Backend);
      expect(keys).toEqual([key]);
      expect(got.length).toBe(m * n);
      const tol = 1e-5 * Math.sqrt(k);
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) throw new Error(`${key} [${m}, ${k}]·[${k}, ${n}]: element ${i}: webgpu ${got[i]} vs cpu ${want[i]}`);
      }
    });
  }
});

test("webgpu row-dot kernel: A·b with N = 1 (the importance scorers), b as [K, 1] or [1, K]ᵀ, A's batch folded, K = 0; vec4 rows where K is a multiple of 4", async () => {
  if (!(await pair.load())) return;
  // [batch dims of A, m, k, transB]
  const cases: [number[], number, number, boolean][] = [
    [[], 1, 1, false], [[], 7, 33, true], [[], 300, 257, false], [[2], 37, 600, true], [[2, 3], 5, 64, false], [[], 9, 0, false],
  ];
  for (const [ba, m, k, tb] of cases) {
    const x = f32([...ba, m, k]), y = f32(tb ? [1, k] : [k, 1]);
    const want = await matmulOn(pair.cpu, x, y, false, tb);
    const { result: got, keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, false, tb));
    T.setBackend(pair.gpu as unknown as Backend);
    expect(keys).toEqual(k === 0 ? keys : [k % 4 === 0 ? "matmul:rowdot4" : "matmul:rowdot"]);
    expect(got.length).toBe(want.length);
    const tol = 1e-5 * Math.sqrt(Math.max(1, k));
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) throw new Error(`rowdot ${JSON.stringify([ba, m, k, tb])}: element ${i}: webgpu ${got[i]} vs cpu ${want[i]}`);
    }
  }
});
