/**
 * The tile look-back scan of kernels/scan.ts (`scanTuning.algo = "tile"`): scan and scanReverse
 * on WebGPU against the CPU backend, at tile shapes small enough that a short sequence spans many
 * workgroups, on shapes that are not multiples of the tile: B > 1, S = 1, S odd (the vec4 tile
 * falls back to one channel per thread), S a multiple of 4 (vec4), L = 1, an empty batch.
 * Tolerance as in webgpu-parity.test.ts for scans over L steps: 1e-5·√L·(1 + |cpu|).
 * Shader compiles dominate on lavapipe, so the tile configs are few (each is its own pipeline).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import { parseScanTile, scanPlan, scanTileName, scanTuning, type ScanTile } from "../src/webgpu/kernels/scan.ts";

let seed = 777;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const randArray = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());

/** scan and scanReverse on backend b: both outputs as host arrays (no buffer left alive). */
async function runScans(b: Backend, B: number, L: number, S: number, a: Float32Array, x: Float32Array, h0: Float32Array): Promise<Float32Array[]> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const ins = [T.fromArray(a, [B, L, S], "f32"), T.fromArray(x, [B, L, S], "f32"), T.fromArray(h0, [B, S], "f32")];
  const outs: Tensor[] = [T.bind("scan", ins, {}), T.bind("scanReverse", [ins[0], ins[1]], {})];
  const data = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
  T.disposeTree([ins, outs]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return data;
}

async function checkTile(cpu: Backend, gpu: Backend, tile: ScanTile, B: number, L: number, S: number): Promise<void> {
  const n = B * L * S;
  const a = randArray(n, -1.05, 1.05), x = randArray(n, -2, 2), h0 = randArray(B * S, -2, 2);
  const want = await runScans(cpu, B, L, S, a, x, h0);
  const was = { algo: scanTuning.algo, tile: scanTuning.tile, few: scanTuning.fewChannels };
  scanTuning.algo = "tile";
  scanTuning.tile = tile;
  scanTuning.fewChannels = 0; // this tile whatever B·S
  let got: Float32Array[];
  try {
    got = await runScans(gpu, B, L, S, a, x, h0);
  } finally {
    scanTuning.algo = was.algo;
    scanTuning.tile = was.tile;
    scanTuning.fewChannels = was.few;
  }
  const tol = 1e-5 * Math.sqrt(Math.max(1, L));
  ["scan", "scanReverse"].forEach((name, k) => {
    expect(got[k].length).toBe(want[k].length);
    for (let i = 0; i < n; i++) {
      const g = got[k][i], w = want[k][i];
      if (!(Math.abs(g - w) <= tol * (1 + Math.abs(w)))) {
        throw new Error(`${name} tile ${scanTileName(tile)} [B, L, S] = [${B}, ${L}, ${S}]: element ${i}: webgpu ${g} vs cpu ${w}`);
      }
    }
  });
}

test("scan tile specs: parsed, named, and bad ones rejected with the spec in the message", () => {
  expect(parseScanTile("v4t8r4c64")).toEqual({ v: 4, t: 8, r: 4, cw: 64 });
  expect(scanTileName(parseScanTile("v1t3r2c5"))).toBe("v1t3r2c5");
  expect(() => parseScanTile("v2t8r4c64")).toThrow(/v2t8r4c64/);
  expect(() => parseScanTile("v4t8r8c64")).toThrow(/workgroup size/); // 512 threads
  expect(() => parseScanTile("v4t32r1c64")).toThrow(/registers/);
});

test("scan tile plan: vec4 only when S % 4 == 0, tiles of r·t steps", () => {
  const was = { algo: scanTuning.algo, tile: scanTuning.tile, few: scanTuning.fewChannels, tileFew: scanTuning.tileFew };
  scanTuning.algo = "tile";
  scanTuning.tile = { v: 4, t: 8, r: 4, cw: 64 };
  scanTuning.tileFew = { v: 4, t: 16, r: 16, cw: 16 };
  scanTuning.fewChannels = 16;
  try {
    expect(scanPlan(2, 100, 12)).toEqual({ nC: 4, T: 32, algo: "tile", tile: { v: 4, t: 8, r: 4, cw: 64 } });
    // S odd: one channel per thread, 4× the steps per thread
    expect(scanPlan(3, 100, 7)).toEqual({ nC: 1, T: 128, algo: "tile", tile: { v: 1, t: 32, r: 4, cw: 64 } });
    expect(scanPlan(3, 1, 8).algo).toBe("direct");
    // few channels (B·S ≤ fewChannels): the long time tile
    expect(scanPlan(2, 1000, 8)).toEqual({ nC: 4, T: 256, algo: "tile", tile: { v: 4, t: 16, r: 16, cw: 16 } });
  } finally {
    Object.assign(scanTuning, { algo: was.algo, tile: was.tile, fewChannels: was.few, tileFew: was.tileFew });
  }
});

test("webgpu scan tile look-back: scan and scanReverse equal the CPU backend (many tiles, odd shapes)", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const cpu = T.setBackend("cpu");
  try {
    // small tiles (8 channels × 6 steps; its V = 1 fallback 2 channels × 24 steps): a 1000-step
    // sequence is 167 tiles in a chain of look-backs
    const small: ScanTile = { v: 4, t: 3, r: 2, cw: 2 };
    for (const [B, L, S] of [[1, 1000, 4], [3, 50, 1], [2, 37, 7], [2, 45, 12], [1, 300, 5], [0, 5, 3], [2, 1, 8]]) {
      await checkTile(cpu, gpu, small, B, L, S);
    }
    // the library's tiles: several channel tiles and time tiles
    const dflt: ScanTile = { ...scanTuning.tile };
    await checkTile(cpu, gpu, dflt, 2, 100, 300);
    await checkTile(cpu, gpu, dflt, 1, 700, 3);
    await checkTile(cpu, gpu, { ...scanTuning.tileFew }, 1, 600, 8); // 256-step tiles: 3 in a chain
    await checkTile(cpu, gpu, { ...scanTuning.tileFew }, 1, 2100, 3); // its V = 1 fallback: 1024-step tiles
    // one row per workgroup (no shared-memory combine)
    await checkTile(cpu, gpu, { v: 1, t: 5, r: 1, cw: 3 }, 2, 61, 4);
  } finally {
    T.setBackend(gpu);
  }
});
