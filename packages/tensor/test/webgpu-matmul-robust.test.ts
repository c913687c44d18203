/**
 * The robustness knobs of the tiled WebGPU matmul (kernels/matmul.ts, matmulTuning), opt-in for
 * the benchmark's A/B (packages/bench/src/webgpu-matmul.ts --variants):
 * - fixedArrays: A, B and C declared `array<T, n>` with n the bound tensor's element count (in
 *   vec4s where the binding is vec4), n in the pipeline key;
 * - nestedTiles: workgroup tiles indexed [k / 4][k % 4][group][position] (tiles without :cf's
 *   padding), one dynamic index per fragment read.
 * Checked without a GPU: the declarations and keys the kernel generates (counts for folded
 * batches, split-K partials, scalar bindings; padded tiles left flat; knobs off: unchanged). On
 * the GPU (lavapipe locally): CPU parity with each knob and both, forced tiles on full and ragged
 * sizes, every transpose, broadcast batches, split-K, double buffers, :xs, :rf, the unrolled
 * form and the generic (runtime-transpose) tile; the keys show the knob ran. Tolerance as
 * webgpu-parity.test.ts for sums of K terms: |gpu − cpu| ≤ 1e-5·√K·(1 + |cpu|).
 */
import { expect, test } from "../../../test/support/harness.ts";
import * as T from "../src/index.ts";
import type { Backend, KernelArg } from "../src/index.ts";
import type { GpuCtx, Launch } from "../src/webgpu/context.ts";
import { fitTile, matmulKernel, matmulTuning, nestedOk, parseTile, SMALL_TILE, tileName, WIDE_TILE, type TileConfig } from "../src/webgpu/kernels/matmul.ts";
import { gpuPair, keysOf, matmulOn, seededF32 } from "./webgpu-matmul-support.ts";

const f32 = seededF32(777);
const pair = gpuPair();

/** Runs `fn` with matmulTuning changed by `change`, restoring every knob afterwards. */
async function withTuning<R>(change: Partial<typeof matmulTuning>, fn: () => Promise<R> | R): Promise<R> {
  const saved = { ...matmulTuning };
  Object.assign(matmulTuning, change);
  try {
    return await fn();
  } finally {
    Object.assign(matmulTuning, saved);
  }
}

/** The launches matmulKernel makes for one problem, on a stand-in context (no GPU: only the plan and the WGSL). */
function launchesOf(aShape: number[], bShape: number[], outShape: number[], transA = false, transB = false): Launch[] {
  const launches: Launch[] = [];
  const ctx = {
    // a fresh limits object: the plan cache forgets plans made under other limits
    limits: { maxStorageBufferBindingSize: 2 ** 30, maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 49152, minStorageBufferOffsetAlignment: 256, maxStorageBuffersPerShaderStage: 8 },
    ref: () => ({ buf: null, offset: 0, size: 4 }),
    range: () => ({ buf: null, offset: 0, size: 4 }),
    temp: (bytes: number) => ({ buf: null, offset: 0, size: bytes }),
    releaseTemp: () => {},
    dispatch: (l: Launch) => launches.push(l),
  } as unknown as GpuCtx;
  const arg = (shape: number[]): KernelArg => ({ buf: null as unknown as KernelArg["buf"], shape, dtype: "f32" });
  matmulKernel(ctx, [arg(aShape), arg(bShape)], arg(outShape), { transA, transB });
  return launches;
}

/** The storage declaration of binding `name` in a shader. */
function declOf(wgsl: string, name: string): string {
  const m = new RegExp(`var<storage, \\w+> ${name}: ([^;]+);`).exec(wgsl);
  if (!m) throw new Error(`no declaration of ${name}`);
  return m[1];
}

test("matmul fixedArrays: storage arrays sized by the bound tensors (vec4 or scalar, folded batches, split-K partials), sizes in the key", async () => {
  await withTuning({ fixedArrays: true, force: null }, () => {
    // 4096²: the wide tile, vec4 everywhere: 4096² / 4 vec4s each
    const [wide] = launchesOf([4096, 4096], [4096, 4096], [4096, 4096]);
    expect(wide.key).toContain(`matmul:${tileName(WIDE_TILE)}:`);
    expect(wide.key).toContain(":fa4194304.4194304.4194304");
    const w = wide.wgsl();
    for (const name of ["C", "A", "B"]) expect(declOf(w, name)).toBe("array<vec4<f32>, 4194304>");
  });
  await withTuning({ fixedArrays: true, force: parseTile("32x64x8/4x8:cf:xs:wl"), splitK: false }, () => {
    // A [3, 50, 20] folds into 150 rows; K = 20 (vec4 A), N = 70 (scalar B and C: N % 4 ≠ 0)
    const [l] = launchesOf([3, 50, 20], [20, 70], [3, 50, 70]);
    expect(l.key).toContain(`:fa${3 * 50 * 70}.${(3 * 50 * 20) / 4}.${20 * 70}`);
    const w = l.wgsl();
    expect(declOf(w, "C")).toBe(`array<f32, ${3 * 50 * 70}>`);
    expect(declOf(w, "A")).toBe(`array<vec4<f32>, ${(3 * 50 * 20) / 4}>`);
    expect(declOf(w, "B")).toBe(`array<f32, ${20 * 70}>`);
    // the same problem with other sizes is another pipeline
    expect(launchesOf([3, 50, 20], [20, 74], [3, 50, 74])[0].key).not.toBe(l.key);
  });
  await withTuning({ fixedArrays: true, force: parseTile("32x64x8/4x8:cf:xs:wl"), splitK: true }, () => {
    // few blocks, long K: split-K, C is the scratch of S partials [S, 40, 72] (vec4: 72 % 4 = 0)
    const ls = launchesOf([40, 1200], [1200, 72], [40, 72]);
    const main = ls.find((l) => l.key.includes(":splitk"));
    if (!main) throw new Error(`no split launch: ${ls.map((l) => l.key).join(", ")}`);
    const S = Number(/:fa(\d+)\./.exec(main.key)![1]) / ((40 * 72) / 4);
    expect(Number.isInteger(S) && S >= 2).toBe(true);
    expect(declOf(main.wgsl(), "C")).toBe(`array<vec4<f32>, ${(S * 40 * 72) / 4}>`);
    // the sum pass stays runtime-sized (one pipeline for every split)
    expect(ls.some((l) => l.key === "matmul:splitk-sum" && declOf(l.wgsl(), "P") === "array<f32>")).toBe(true);
  });
  // off (the default): runtime-sized, no sizes in the key
  const [off] = launchesOf([4096, 4096], [4096, 4096], [4096, 4096]);
  expect(off.key).not.toContain(":fa");
  expect(declOf(off.wgsl(), "A")).toBe("array<vec4<f32>>");
});

test("matmul nestedTiles: [k / 4][k % 4][group][position] tiles where the tile has no padding; reads with one dynamic index", async () => {
  expect(nestedOk(WIDE_TILE)).toBe(true);
  expect(nestedOk(SMALL_TILE)).toBe(true);
  expect(nestedOk(parseTile("128x128x32/8x8:cf:wl"))).toBe(false); // padded rows
  expect(nestedOk(parseTile("32x64x8/8x8:cf:xs"))).toBe(false); // 4 vec4s a group: the XOR key would leave it
  await withTuning({ nestedTiles: true, force: null }, () => {
    const [l] = launchesOf([4096, 4096], [4096, 4096], [4096, 4096]);
    expect(l.key).toContain(":nt");
    const w = l.wgsl();
    // 128x256, 8x16 a thread: 16 threads along m and n, groups of 16 vec4s; 2 and 4 groups; BK 16
    expect(w).toContain("var<workgroup> As: array<array<array<array<vec4<f32>, 16>, 2>, 4>, 4>;");
    expect(w).toContain("var<workgroup> Bs: array<array<array<array<vec4<f32>, 16>, 4>, 4>, 4>;");
    // step 5 (the :xs key 4): group constants, the position the only dynamic index
    expect(w).toContain("let a1_5 = As[1u][1u][1u][(ty) ^ 4u];");
    expect(w).toContain("let b3_5 = Bs[1u][1u][3u][(tx) ^ 4u];");
    expect(w).not.toMatch(/As\[\d+u\]\[\d+u \+ ty\]/);
  });
  await withTuning({ nestedTiles: true, force: parseTile("128x128x32/8x8:cf:wl") }, () => {
    // padded: left flat, and the key says so
    const [l] = launchesOf([256, 256], [256, 256], [256, 256]);
    expect(l.key).not.toContain(":nt");
    expect(l.wgsl()).toContain("var<workgroup> As: array<array<vec4<f32>, 33>, 32>;");
  });
  const [off] = launchesOf([4096, 4096], [4096, 4096], [4096, 4096]);
  expect(off.key).not.toContain(":nt");
  expect(off.wgsl()).toContain("let a1_5 = As[5u][(16u + ty) ^ 4u];");
});

/** A [..ba, m, k] (or [k, m]) times B [..bb, k, n] (or [n, k]). */
type Case = [m: number, k: number, n: number, batch: number[][], ta: boolean, tb: boolean];

/**
 * With `knobs` on and `tile` forced (null: chosen by size), runs each case on the GPU and the CPU
 * and compares; checks that the tiled dispatches carry the knobs' key parts.
 */
async function knobParity(tile: TileConfig | null, knobs: { fixedArrays?: boolean; nestedTiles?: boolean }, cases: Case[], opts: { unroll?: boolean; runtimeTrans?: boolean; splitK?: boolean } = {}): Promise<void> {
  const change = { ...knobs, force: tile, unrollBig: !!opts.unroll, runtimeTrans: !!opts.runtimeTrans, splitK: !!opts.splitK };
  await withTuning(change, async () => {
    for (const [m, k, n, [ba, bb], ta, tb] of cases) {
      const what = `${tile ? tileName(tile) : "auto"} ${JSON.stringify(knobs)}: matmul ${JSON.stringify([m, k, n, ba, bb, ta, tb])}`;
      const x = f32([...ba, ...(ta ? [k, m] : [m, k])]), y = f32([...bb, ...(tb ? [n, k] : [k, n])]);
      const { result: got, keys } = await keysOf(pair.gpu, () => matmulOn(pair.gpu as unknown as Backend, x, y, ta, tb));
      const ref = await matmulOn(pair.cpu, x, y, ta, tb);
      T.setBackend(pair.gpu as unknown as Backend);
      const tiled = keys.filter((key) => /^matmul:\d+x\d+x\d+\//.test(key));
      if (!tiled.length) throw new Error(`${what}: no tiled dispatch (${keys.join(", ")})`);
      if (tile) {
        const want = tileName(fitTile(tile, pair.gpu.ctx.limits.maxComputeWorkgroupStorageSize));
        if (tiled.some((key) => !key.startsWith(`matmul:${want}:`))) throw new Error(`${what}: dispatched ${keys.join(", ")}, not tile ${want}`);
      }
      for (const key of tiled) {
        if (!!knobs.fixedArrays !== key.includes(":fa")) throw new Error(`${what}: key ${key} (fixedArrays ${!!knobs.fixedArrays})`);
        if (!!knobs.nestedTiles !== key.includes(":nt")) throw new Error(`${what}: key ${key} (nestedTiles ${!!knobs.nestedTiles})`);
      }
      if (opts.splitK && !tiled.some((key) => key.includes(":splitk"))) throw new Error(`${what}: not split (${keys.join(", ")})`);
      expect(got.length).toBe(ref.length);
      const tol = 1e-5 * Math.sqrt(Math.max(1, k));
      for (let i = 0; i < ref.length; i++) {
        if (!(Math.abs(got[i] - ref[i]) <= tol * (1 + Math.abs(ref[i])))) throw new Error(`${what}: element ${i}: webgpu ${got[i]} vs cpu ${ref[i]}`);
      }
    }
  });
}

test("webgpu matmul fixedArrays and nestedTiles: CPU parity over ragged sizes, transposes, batches, split-K (small tiles, loop form)", async () => {
  if (!(await pair.load())) return;
  // 32x64 blocks of 4x8 (64 threads; groups of 8 vec4s, so :xs nests); every store path
  const xs = parseTile("32x64x8/4x8:cf:xs:wl:sw3:rf");
  const both = { fixedArrays: true, nestedTiles: true };
  await knobParity(xs, both, [
    // full tiles (no guards), 10 x 2 blocks
    [320, 48, 128, [[], []], false, false],
    // A and Bᵀ contiguous along k (the scalar :xs store path), guards everywhere
    [70, 45, 100, [[], []], false, true],
    // Aᵀ, B: vec4 stores along m / n; K = 17: scalar loads and scalar A / B bindings; broadcast batches
    [40, 17, 66, [[2, 1], [3]], true, false],
  ]);
  // each knob alone, on a ragged problem with a batched B (no folding: grid z, batch strides)
  await knobParity(xs, { fixedArrays: true }, [[37, 24, 72, [[2], [2]], false, false]]);
  await knobParity(xs, { nestedTiles: true }, [[37, 24, 72, [[2], [2]], false, false]]);
  // split-K: C is the scratch of partials, bound at exactly the size the fixed C declares
  await knobParity(parseTile("32x64x8/4x8:cf:xs:wl"), both, [[40, 1200, 72, [[], []], false, false]], { splitK: true });
});

test("webgpu matmul fixedArrays and nestedTiles: double buffers, the unrolled form, the generic tile", async () => {
  if (!(await pair.load())) return;
  const both = { fixedArrays: true, nestedTiles: true };
  // double-buffered 32-deep k-tiles: the second buffer's rows (off = BK) in the nested index; 3 k-tiles
  await knobParity(parseTile("32x64x32/4x8:db:cf:xs"), both, [[33, 70, 38, [[], []], false, true]]);
  // unrolled, as the 4096² tile runs (:cf:xs:wl, A and B untransposed): constant k rows and :xs keys
  await knobParity(parseTile("32x64x8/4x8:cf:xs:wl"), both, [[70, 45, 100, [[], []], false, false]], { unroll: true });
  // the generic tile (runtime transposes, scalar bindings): one pipeline for two transposes
  await knobParity(SMALL_TILE, both, [[65, 19, 70, [[], []], true, true], [65, 19, 70, [[], []], false, false]], { runtimeTrans: true });
});
