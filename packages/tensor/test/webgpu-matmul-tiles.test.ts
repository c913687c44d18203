/**
 * The opt-in tile flags of the tiled WebGPU matmul (kernels/matmul-tile-config.ts, TileConfig)
 * that the benchmark sweep (packages/bench/src/webgpu-matmul.ts --sweep) times against the
 * default tiles:
 * - ":swN": swizzled block order in bands of N block rows (":sw" is 8);
 * - ":xs": :cf's conflict-free stores by an XOR swizzle of the vec4 column instead of padding
 *   (a 128x256 block with k-tiles of 32 then fits 48 KB of workgroup memory);
 * - ":rf": the next k step's fragments read before this step's FMAs (unrolled and looped forms).
 * Checked: specs parse, name back and are refused with the reason; workgroup memory of :xs; and
 * CPU parity when forced, on full tiles (no guards) and ragged sizes (guards, every transpose,
 * batches, a short last band), for small tiles with each flag (cheap to compile on lavapipe)
 * and for the large specs of the sweep on one full and one ragged problem each. The pipeline
 * keys show the forced tile ran (as fitTile fits it to the device). Tolerance as
 * webgpu-parity.test.ts for sums of K terms: |gpu − cpu| ≤ 1e-5·√K·(1 + |cpu|).
 * The inner loop is not unrolled (a 10x shorter compile on lavapipe) except in one small case.
 */
import { expect, test } from "../../../test/support/harness.ts";
import * as T from "../src/index.ts";
import type { Backend } from "../src/index.ts";
import { fitTile, matmulTuning, NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32, parseTile, tileName, tileProblem, tileSmemBytes } from "../src/webgpu/kernels/matmul.ts";
import { gpuPair, keysOf, matmulOn, seededF32 } from "./webgpu-matmul-support.ts";

const f32 = seededF32(4242);

const pair = gpuPair();

/** A [..ba, m, k] (or [k, m]) times B [..bb, k, n] (or [n, k]). */
type Case = [m: number, k: number, n: number, batch: number[][], ta: boolean, tb: boolean];

/**
 * Forces `spec` (loop unrolled or not; runtime transposes or not), runs each case on the GPU and
 * the CPU and compares; checks that every matmul dispatch used the forced tile as fitted.
 */
async function tileParity(spec: string, cases: Case[], opts: { unroll?: boolean; runtimeTrans?: boolean } = {}): Promise<void> {
  const t = parseTile(spec);
  const want = tileName(fitTile(t, pair.gpu.ctx.limits.maxComputeWorkgroupStorageSize));
  const saved = { ...matmulTuning };
  Object.assign(matmulTuning, { force: t, unrollBig: !!opts.unroll, runtimeTrans: !!opts.runtimeTrans, splitK: false });
  try {
    for (const [m, k, n, [ba, bb], ta, tb] of cases) {
      const what = `${spec}: matmul ${JSON.stringify([m, k, n, ba, bb, ta, tb])}`;
      const x = f32([...ba, ...(ta ? [k, m] : [m, k])]), y = f32([...bb, ...(tb ? [n, k] : [k, n])]);
      const { result: got, keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, ta, tb));
      const ref = await matmulOn(pair.cpu, x, y, ta, tb);
      T.setBackend(pair.gpu as unknown as Backend);
      const mm = keys.filter((key) => key.startsWith("matmul:"));
      if (!mm.length || mm.some((key) => !key.startsWith(`matmul:${want}:`))) throw new Error(`${what}: dispatched ${keys.join(", ")}, not tile ${want}`);
      expect(got.length).toBe(ref.length);
      const tol = 1e-5 * Math.sqrt(Math.max(1, k));
      for (let i = 0; i < ref.length; i++) {
        if (!(Math.abs(got[i] - ref[i]) <= tol * (1 + Math.abs(ref[i])))) throw new Error(`${what}: element ${i}: webgpu ${got[i]} vs cpu ${ref[i]}`);
      }
    }
  } finally {
    Object.assign(matmulTuning, saved);
  }
}

test("matmul tile flags :xs, :swN, :rf: parsed in any order, named back canonically, impossible ones refused with the reason", () => {
  const t = parseTile("128x256x32/8x16:rf:sw16:wl:xs:cf");
  expect(t).toEqual({ BM: 128, BN: 256, BK: 32, TM: 8, TN: 16, specialize: true, dbuf: false, cf: true, xs: true, wl: true, sw: true, swBand: 16, rf: true });
  expect(tileName(t)).toBe("128x256x32/8x16:cf:xs:wl:sw16:rf");
  // ":sw8" is ":sw" (same config, name and pipeline)
  expect(parseTile("128x256x16/8x16:cf:wl:sw8")).toEqual(parseTile("128x256x16/8x16:cf:wl:sw"));
  expect(tileName(parseTile("128x256x16/8x16:cf:wl:sw8"))).toBe("128x256x16/8x16:cf:wl:sw");
  expect(tileName(parseTile("64x64x16/4x4:sw4:rf"))).toBe("64x64x16/4x4:sw4:rf");
  expect(() => parseTile("128x128x16/8x8:xs")).toThrow(/:xs needs :cf/);
  expect(() => parseTile("16x32x8/4x4:cf:xs")).toThrow(/:xs needs :cf and BM, BN multiples of 32/);
  expect(() => parseTile("128x128x16/8x8:sw0")).toThrow(/swizzle band of 0 block rows/);
  expect(() => parseTile("128x128x16/8x8:sw65")).toThrow(/from 1 to 64/);
  expect(tileProblem({ BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, swBand: 4 })).toMatch(/needs :sw/);
  expect(() => parseTile("128x128x16/8x8:rx")).toThrow(/expected BMxBNxBK/);
  // workgroup memory: :xs drops :cf's padding vec4 a row, so the 32-deep wide tile fits 48 KB
  expect(tileSmemBytes(parseTile("128x256x32/8x16:cf:wl:sw"))).toBe(50176);
  expect(tileSmemBytes(parseTile("128x256x32/8x16:cf:xs:wl:sw"))).toBe(49152);
  expect(fitTile(parseTile("128x256x32/8x16:cf:xs:wl:sw"), 49152).BK).toBe(32);
  expect(fitTile(parseTile("128x256x32/8x16:cf:wl:sw"), 49152).BK).toBe(16);
  // a 256-thread tile too big at BK 32 for 32 KB, whose BK 16 is no whole number of vec4 loads a
  // thread: refused, not built (its kernel computed garbage: max rel err 36 on lavapipe)
  expect(tileProblem(parseTile("256x32x32/8x4"))).toBeNull();
  expect(() => fitTile(parseTile("256x32x32/8x4"), 32768)).toThrow(/tile 256x32x32\/8x4 needs 36864 bytes of workgroup memory, over the limit 32768, and as 256x32x16\/8x4: a 16-deep k-tile is not a whole number of vec4 loads per thread/);
  expect(fitTile(parseTile("256x32x32/8x4"), 49152).BK).toBe(32);
});

test("webgpu matmul tiles :xs, :swN, :rf (small tiles): full and ragged, both store paths, batches, looped and unrolled", async () => {
  if (!(await pair.load())) return;
  // 32x64 blocks, 4x8 a thread (64 threads; BM, BN multiples of 32 for :xs); one pipeline a case
  // (a cold compile costs seconds on lavapipe). All three flags at once, the loop form:
  await tileParity("32x64x8/4x8:cf:xs:wl:sw3:rf", [
    // full tiles, 10 x 2 blocks: bands of 3 block rows (3, 3, 3 and a short one of 1)
    [320, 48, 128, [[], []], false, false],
    // A and Bᵀ contiguous along k: both tiles take the :cf / :xs scalar store path; guards
    [70, 45, 100, [[], []], false, true],
    // Aᵀ, B: vec4 stores along m / n (XOR-swizzled too); K = 17: scalar loads; broadcast batches
    [40, 17, 66, [[2, 1], [3]], true, false],
  ]);
  // the unrolled form (:rf reads step kk + 1 first; the :xs key a constant per step)
  await tileParity("32x64x8/4x8:cf:xs:wl:rf", [[70, 45, 100, [[], []], false, false]], { unroll: true });
  // double-buffered 32-deep k-tiles (the depth of the wide :xs tile): the second buffer's rows
  // (off = BK) keep the key; 3 k-tiles (odd: the loop's break)
  await tileParity("32x64x32/4x8:db:cf:xs", [[33, 70, 38, [[], []], false, true]]);
  // runtime transposes: both store paths in one pipeline, a uniform picks one
  await tileParity("32x64x8/4x8:cf:xs", [[33, 20, 38, [[2], []], true, true], [35, 19, 66, [[], []], false, false]], { runtimeTrans: true });
});

test("webgpu matmul tiles: a large sweep spec (128x256 block, 32-deep k-tiles in 48 KB, all new flags), ragged", async () => {
  if (!(await pair.load())) return;
  // 2 x 2 blocks, guards everywhere; the sweep's other large specs differ from this one and from
  // the small tiles above only in sizes (and the bench checks each against a reference). On a
  // device with less than 48 KB of workgroup memory (lavapipe: 32 KB) fitTile runs it with BK 16.
  await tileParity("128x256x32/8x16:cf:xs:wl:sw16:rf", [[150, 45, 270, [[], []], false, true]]);
});

test("webgpu matmul tiles: the narrow tiles (16 and 32 columns; Mamba's x_proj), full and ragged, batches", async () => {
  if (!(await pair.load())) return;
  // NARROW_TILE_16 (64x16), NARROW_TILE_16_TALL (128x16), NARROW_TILE_32 (128x32), as matmulPlan
  // returns them: 48 columns (3 or 2 blocks with a ragged one), ragged rows, K not a multiple of 4
  await tileParity("64x16x16/4x4", [[200, 64, 48, [[], []], false, false], [70, 17, 16, [[2], []], false, false]]);
  await tileParity("128x16x16/8x4", [[300, 40, 48, [[], []], false, false], [129, 33, 20, [[], []], false, false]]);
  await tileParity("128x32x16/8x4", [[260, 48, 32, [[3], [3]], false, false], [100, 19, 40, [[], []], false, false]]);
  for (const t of [NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32]) expect(parseTile(tileName(t))).toEqual({ ...t, dbuf: false });
});
