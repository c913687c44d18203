/**
 * WebGPU ↔ CPU parity: every primitive, on shapes drawn by fast-check (ranks 0–4, sizes that are
 * not multiples of any workgroup or tile, empty axes), runs on both backends from the same host
 * data; the results must agree within the tolerance stated per case:
 * - elementwise f32:  |gpu − cpu| ≤ 1e-6 + 1e-5·|cpu|   (i32 results: exactly)
 * - movement / index: exactly (they copy bits)
 * - sums over K terms (reduce, matmul, conv grads): |gpu − cpu| ≤ 1e-5·√K·(1 + |cpu|)
 * - softmax / logsumexp / crossEntropy: 1e-6 + 1e-5·|cpu|
 * - rmsNorm with and without its gain: 1e-6 + 1e-5·|cpu| (the row's Σx² is the only sum); its
 *   gradients: dx 1e-5·√n·(1 + |cpu|), dw summed over the rows 1e-5·√rows·(1 + |cpu|); the
 *   gain's one-pass VJP (rmsNormGradW): dx as above, its g ⊙ x̂ 1e-6 + 1e-5·|cpu|
 * - scans over L steps: 1e-5·√L·(1 + |cpu|); the fused selective scan: 1e-4·(1 + |cpu|)
 * NaN must match NaN. On a machine without a WebGPU adapter the tests print why and pass
 * (CI=true makes that a failure, see test/support/backends.ts).
 *
 * Shader compiles dominate the time on a software Vulkan (lavapipe), so runs are few and the
 * tiled matmul is tested with one small tile config (same generator as the production tiles).
 */
import fc from "fast-check";
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, DType, HostArray, PrimName, PrimParams, Tensor } from "../src/index.ts";
import { matmulTuning, parseTile, tileName, type TileConfig } from "../src/webgpu/kernels/matmul.ts";
import { scanTuning } from "../src/webgpu/kernels/scan.ts";
import { rowPairThreads, rowTuning } from "../src/webgpu/kernels/nn.ts";
import { bindMulti } from "../src/dispatch.ts";
import { ssmForwardPlan, ssmGradPlan, ssmTuning } from "../src/webgpu/kernels/ssm.ts";

// ---------- data and comparison ----------

interface Host {
  data: HostArray;
  shape: number[];
  dtype: DType;
}

let seed = 12345;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
function f32(shape: number[], lo = -2, hi = 2): Host {
  return { data: Float32Array.from({ length: size(shape) }, () => lo + (hi - lo) * rand()), shape, dtype: "f32" };
}
function i32(shape: number[], lo: number, hi: number): Host {
  return { data: Int32Array.from({ length: size(shape) }, () => lo + Math.floor((hi - lo + 1) * rand())), shape, dtype: "i32" };
}

type Tol = "exact" | { rtol: number; atol: number };
const ELEM: Tol = { rtol: 1e-5, atol: 1e-6 };
const sumTol = (k: number): Tol => ({ rtol: 1e-5 * Math.sqrt(Math.max(1, k)), atol: 1e-5 * Math.sqrt(Math.max(1, k)) });

let cpu: Backend | null = null;
let gpu: Backend | null = null;

/**
 * The WebGPU backend, or null (test skipped) where there is none. Every test calls it first, so it
 * also restarts the data generator: a test's data then never depends on how many numbers the tests
 * before it drew (their fast-check runs are unseeded, so that count changed from run to run).
 */
async function backends(): Promise<boolean> {
  seed = 12345;
  if (!(await useBackend("webgpu"))) return false;
  gpu = T.getBackend();
  cpu ??= T.setBackend("cpu");
  T.setBackend(gpu);
  return true;
}

async function runOn(b: Backend, ins: Host[], f: (...t: Tensor[]) => Tensor | Tensor[]): Promise<HostArray[]> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const ts = ins.map((h) => T.fromArray(h.data, h.shape, h.dtype));
  const r = f(...ts);
  const outs = Array.isArray(r) ? r : [r];
  const data = await Promise.all(outs.map((o) => o.data()));
  T.disposeTree([ts, outs]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return data;
}

function compare(what: string, got: HostArray, want: HostArray, tol: Tol): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    const ok = tol === "exact" ? g === w || (g === 0 && w === 0) : g === w || Math.abs(g - w) <= tol.atol + tol.rtol * Math.abs(w);
    if (!ok) throw new Error(`${what}: element ${i}: webgpu ${g} vs cpu ${w}`);
  }
}

/** Runs f on both backends and compares every output. */
async function parity(what: string, ins: Host[], f: (...t: Tensor[]) => Tensor | Tensor[], tol: Tol): Promise<void> {
  const want = await runOn(cpu!, ins, f);
  const got = await runOn(gpu!, ins, f);
  want.forEach((w, k) => compare(`${what} (output ${k})`, got[k], w, tol));
  T.setBackend(gpu!);
}

const prim = <K extends PrimName>(name: K, params: PrimParams[K]) => (...ts: Tensor[]) => T.bind(name, ts, params);

// ---------- arbitraries ----------

const dim = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.constant(1) }, { weight: 8, arbitrary: fc.integer({ min: 2, max: 9 }) });
const shapeArb = (minRank = 0, maxRank = 4) => fc.array(dim, { minLength: minRank, maxLength: maxRank });
/** An output shape and two shapes that broadcast to it (axes set to 1, leading axes dropped). */
const broadcastPair = shapeArb(0, 4).chain((out) =>
  fc.tuple(fc.constant(out), fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 2 * out.length + 2, maxLength: 2 * out.length + 2 }))
    .map(([o, r]) => {
      const derive = (k: number) => o.slice(r[k * (o.length + 1)] % (o.length + 1)).map((d, i) => (r[k * (o.length + 1) + 1 + i] === 0 ? 1 : d));
      return [o, derive(0), derive(1)] as const;
    })
);
const RUNS = { numRuns: 30 };

// ---------- elementwise ----------

const UNARY = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "softplus", "abs", "relu", "sin", "cos", "square", "reciprocal", "sign"] as const;

test("webgpu parity: fill and every unary op (f32)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(shapeArb(), fc.constantFrom(...UNARY), async (shape, op) => {
    const positive = ["log", "sqrt", "rsqrt"].includes(op);
    const x = f32(shape, positive ? 0.01 : -12, positive ? 50 : 12);
    if (size(shape) > 0) x.data[0] = 0; // exact zero: sign, relu, tanh, sin
    await parity(`${op} ${JSON.stringify(shape)}`, [x], prim("unary", { op }), ELEM);
    await parity(`fill ${JSON.stringify(shape)}`, [], () => T.full(shape, -1.25), "exact");
  }), { numRuns: 48 });
});

test("webgpu parity: exp, sigmoid and softplus over their whole range: underflow, subnormal results, the edge of overflow, ±∞ and NaN", async () => {
  if (!(await backends())) return;
  // every 0.37 from −110 to 95, and the edges: m_exp's limits (−103.97, 88.72), the last normal
  // results (2^−126 near −87.34), exp's largest finite result and ∞, signed zeros, NaN
  const edges = [-103.98, -103.97, -103.9, -100, -95, -87.5, -87.34, -87.33, -87.3, 88.7, 88.72, 88.7228, 88.73, 89, -0, 0, Infinity, -Infinity, NaN];
  const data = Float32Array.from([...Array.from({ length: 555 }, (_, i) => -110 + 0.37 * i), ...edges]);
  const x: Host = { data, shape: [data.length], dtype: "f32" };
  // relative 1e-5 where the result is normal; a few subnormal steps where it underflows
  await parity("exp over its range", [x], prim("unary", { op: "exp" }), { rtol: 1e-5, atol: 1e-44 });
  for (const op of ["sigmoid", "softplus"] as const) await parity(`${op} over its range`, [x], prim("unary", { op }), { rtol: 1e-5, atol: 1e-44 });
  // silu = x·σ(x): below −103.97 the GPU's exp is 0 where the CPU's float64 one still leaves a
  // subnormal product (−1.5e-44 at x = −105.6)
  await parity("silu over its range", [x], prim("unary", { op: "silu" }), { rtol: 1e-5, atol: 1e-43 });
});

test("webgpu parity: binary and compare ops with broadcasting, f32 and i32 (int32 wrap, truncating division)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(broadcastPair, fc.constantFrom("add", "sub", "mul", "div", "pow", "max", "min"), fc.boolean(), async ([, sa, sb], op, int) => {
    if (int) {
      const big = op === "add" || op === "sub" || op === "mul";
      const a = i32(sa, big ? -2e9 : -50, big ? 2e9 : 50), b = i32(sb, big ? -2e9 : -7, big ? 2e9 : 7);
      if (op !== "pow") await parity(`i32 ${op} ${JSON.stringify([sa, sb])}`, [a, b], prim("binary", { op }), "exact");
      await parity(`i32 compare ${JSON.stringify([sa, sb])}`, [a, b], (x, y) => [T.eq(x, y), T.lt(x, y), T.ge(x, y)], "exact");
    } else {
      const a = f32(sa, op === "pow" ? 0.1 : -3, 3), b = f32(sb, -3, 3);
      await parity(`f32 ${op} ${JSON.stringify([sa, sb])}`, [a, b], prim("binary", { op }), ELEM);
      await parity(`f32 compare ${JSON.stringify([sa, sb])}`, [a, b], (x, y) => [T.ne(x, y), T.le(x, y), T.gt(x, y)], "exact");
    }
  }), { numRuns: 40 });
  // pow's special cases: negative bases with integer exponents, zero bases
  const a: Host = { data: Float32Array.of(-2, -2, -1.5, 0, 0, 0, 4, -3), shape: [8], dtype: "f32" };
  const b: Host = { data: Float32Array.of(3, 2, 0.5, 0, 2, -1, 0.5, -2), shape: [8], dtype: "f32" };
  await parity("pow special cases", [a, b], prim("binary", { op: "pow" }), ELEM);
  const q: Host = { data: Int32Array.of(7, -7, 7, -7, 5, -2147483648), shape: [6], dtype: "i32" };
  const d: Host = { data: Int32Array.of(2, 2, -2, -2, 0, -1), shape: [6], dtype: "i32" };
  await parity("i32 div: truncation, division by zero, INT_MIN / -1", [q, d], prim("binary", { op: "div" }), "exact");
});

test("webgpu parity: where (f32 / i32 conditions and values, broadcasting) and cast", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(broadcastPair, fc.boolean(), fc.boolean(), async ([, sa, sb], intCond, intVal) => {
    const cond = intCond ? i32(sb, -1, 1) : f32(sb, -1, 1);
    if (!intCond) cond.data = cond.data.map((v) => (v > 0.3 ? 0 : v < -0.3 ? -0 : v)) as Float32Array; // ±0 are false
    const a = intVal ? i32(sa, -9, 9) : f32(sa), b = intVal ? i32([], -9, 9) : f32([]);
    await parity(`where ${JSON.stringify([sa, sb])}`, [cond, a, b], (x, y, z) => T.where(x, y, z), "exact");
  }), RUNS);
  const x: Host = { data: Float32Array.of(0, -0.5, 1.99, -2.5, 3e9, -3e9, 1e20, NaN, Infinity, 2147483520, -2147483648), shape: [11], dtype: "f32" };
  await parity("cast f32 → i32 (truncation, int32 wrap, NaN / Inf → 0)", [x], (t) => T.cast(t, "i32"), "exact");
  await parity("cast i32 → f32", [i32([3, 5], -2e9, 2e9)], (t) => T.cast(t, "f32"), "exact");
});

// ---------- reductions ----------

test("webgpu parity: reduce sum / max over any set of axes (and the split path for long reductions)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(shapeArb(1, 4), fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), fc.boolean(), async (shape, pick, isMax) => {
    let axes = shape.map((_, i) => i).filter((i) => pick[i]);
    if (axes.length === 0) axes = [shape.length - 1];
    if (isMax && axes.some((a) => shape[a] === 0)) return;
    const k = size(axes.map((a) => shape[a]));
    await parity(`${isMax ? "max" : "sum"} ${JSON.stringify(shape)} axes ${axes}`, [f32(shape)], prim("reduce", { op: isMax ? "max" : "sum", axes }), isMax ? "exact" : sumTol(k));
  }), RUNS);
  for (const [shape, axes] of [[[3, 20000], [1]], [[20000, 3], [0]], [[100003], [0]], [[5, 300, 7], [0, 2]]] as [number[], number[]][]) {
    const k = size(axes.map((a) => shape[a]));
    await parity(`sum ${JSON.stringify(shape)} over ${axes}`, [f32(shape)], prim("reduce", { op: "sum", axes }), sumTol(k));
    await parity(`max ${JSON.stringify(shape)} over ${axes}`, [f32(shape)], prim("reduce", { op: "max", axes }), "exact");
  }
});

// ---------- matmul ----------

/** The tile the tests force: small (cheap to compile on lavapipe), same generator as 64² / 128². */
const TEST_TILE: TileConfig = { BM: 32, BN: 32, BK: 8, TM: 4, TN: 4 };

test("webgpu parity: matmul (transposes, broadcast batch dims, ragged sizes; untiled and tiled kernels)", async () => {
  if (!(await backends())) return;
  type Case = [m: number, k: number, n: number, batch: number[][], ta: boolean, tb: boolean];
  const batches: number[][][] = [[[], []], [[3], []], [[], [2]], [[2, 1], [3]], [[1], [1]]];
  const cases: fc.Arbitrary<Case> = fc.tuple(
    fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 40 }),
    fc.constantFrom(...batches), fc.boolean(), fc.boolean(),
  );
  const run = async ([m, k, n, [ba, bb], ta, tb]: Case) => {
    const a = f32([...ba, ...(ta ? [k, m] : [m, k])]), b = f32([...bb, ...(tb ? [n, k] : [k, n])]);
    await parity(`matmul ${JSON.stringify([a.shape, b.shape, ta, tb])}`, [a, b], prim("matmul", { transA: ta, transB: tb }), sumTol(k));
  };
  await fc.assert(fc.asyncProperty(cases, run), { numRuns: 25 });
  // the tiled kernel: runtime transposes, guards at every edge, several k tiles
  matmulTuning.force = TEST_TILE;
  try {
    const tiled: Case[] = [
      [67, 33, 45, [[], []], false, false], [35, 19, 66, [[2], []], true, false],
      [33, 70, 31, [[], [2]], false, true], [40, 9, 37, [[2, 1], [3]], true, true],
    ];
    for (const c of tiled) await run(c);
  } finally {
    matmulTuning.force = null;
  }
});

test("webgpu parity: matmulRows (kept rows as matmul's, dropped rows 0 even over NaN; K and N ragged, batch dims, no row kept, every row kept)", async () => {
  if (!(await backends())) return;
  const mask = (n: number, kept: (i: number) => boolean): Host => ({ data: Float32Array.from({ length: n }, (_, i) => (kept(i) ? 1 : 0)), shape: [n], dtype: "f32" });
  const cases = fc.tuple(fc.constantFrom<number[]>([], [2], [2, 3]), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 21 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 3 }));
  await fc.assert(fc.asyncProperty(cases, async ([batch, r, k, n, pattern]) => {
    const R = batch.reduce((a, b) => a * b, 1) * r;
    const x = f32([...batch, r, k]), w = f32([k, n]);
    // a dropped row's x may hold anything: NaN there must still give 0
    for (let i = 0; i < R; i++) if (i % 3 === 1 && k > 0) x.data[i * k] = NaN;
    const m = mask(R, [(i: number) => i % 3 !== 1, () => false, () => true, (i: number) => i === R - 1][pattern]);
    if (pattern === 2) for (let i = 0; i < R; i++) if (k > 0) x.data[i * k] = 0.5; // every row kept: no NaN
    await parity(`matmulRows ${JSON.stringify([x.shape, w.shape, pattern])}`, [x, w, { ...m, shape: [...batch, r] }], prim("matmulRows", {}), sumTol(k));
  }), { numRuns: 25 });
});

test("webgpu parity: matmul tiled kernel specialised (constant transposes, vec4 loads, no guards)", async () => {
  if (!(await backends())) return;
  matmulTuning.force = { ...TEST_TILE, specialize: true };
  const unroll = matmulTuning.unrollBig;
  matmulTuning.unrollBig = false;
  try {
    await parity("matmul 64x32x96 (full tiles, vec4)", [f32([64, 32]), f32([32, 96])], prim("matmul", { transA: false, transB: false }), sumTol(32));
    await parity("matmul 36x20x44 (ragged, vec4 + guards)", [f32([36, 20]), f32([20, 44])], prim("matmul", { transA: false, transB: false }), sumTol(20));
  } finally {
    matmulTuning.force = null;
    matmulTuning.unrollBig = unroll;
  }
});

test("webgpu parity: matmul tiled kernel double-buffered, conflict-free stores, warp-shaped lanes, swizzled blocks (odd and even k-tile counts, ragged)", async () => {
  if (!(await backends())) return;
  // 4x8 per thread too: TM ≠ TN exercises the separate m / n fragment counts of the generator
  matmulTuning.force = parseTile("32x64x8/4x8:db:cf:wl:sw");
  const unroll = matmulTuning.unrollBig;
  matmulTuning.unrollBig = false;
  try {
    // one pipeline (a cold compile of this loop costs seconds on lavapipe): A and Bᵀ both
    // contiguous along k (the :cf store path for both), ragged M and N, k-tile counts 1, 2 (even:
    // the loop ends after its second half) and 3 (odd: the break)
    for (const k of [8, 16, 20]) {
      await parity(`matmul db cf 33x${k}x38 Bᵀ`, [f32([33, k]), f32([38, k])], prim("matmul", { transA: false, transB: true }), sumTol(k));
    }
    // swizzled block order over 10 x 3 blocks (a band of 8 rows and a short one of 2), batched
    await parity("matmul db cf sw [2] 300x8x90 Bᵀ", [f32([2, 300, 8]), f32([2, 90, 8])], prim("matmul", { transA: false, transB: true }), sumTol(8));
  } finally {
    matmulTuning.force = null;
    matmulTuning.unrollBig = unroll;
  }
});

test("matmul tile specs: parsed, named back, and impossible ones refused with the reason", () => {
  const t = parseTile("128x128x16/8x8:db");
  expect(t).toEqual({ BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, specialize: true, dbuf: true });
  expect(tileName(t)).toBe("128x128x16/8x8:db");
  expect(tileName(parseTile(" 256x128x8/16x8 "))).toBe("256x128x8/16x8");
  expect(parseTile("128x128x32/8x8:cf").cf).toBe(true);
  expect(tileName(parseTile("128x128x16/8x8:cf:db"))).toBe("128x128x16/8x8:db:cf");
  expect(() => parseTile("16x16x4/4x4:cf")).toThrow(/BK a multiple of 8/);
  expect(tileName(parseTile("128x128x16/8x8:sw:wl:cf"))).toBe("128x128x16/8x8:cf:wl:sw");
  expect(() => parseTile("32x32x8/4x8:wl")).toThrow(/BN \/ TN a multiple of 8/);
  expect(() => parseTile("128x128")).toThrow(/expected BMxBNxBK/);
  expect(() => parseTile("128x128x16/6x8")).toThrow(/multiples of 4/);
  expect(() => parseTile("256x256x16/8x8")).toThrow(/1024 threads/);
  expect(() => parseTile("128x128x4/8x8")).toThrow(/vec4 loads per thread/);
});

// ---------- movement ----------

test("webgpu parity: transpose, slice, pad, concat (f32 and i32, bit exact)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(shapeArb(1, 4), fc.array(fc.nat(), { minLength: 12, maxLength: 12 }), fc.boolean(), async (shape, r, int) => {
    const x = int ? i32(shape, -1e9, 1e9) : f32(shape);
    const perm = shape.map((_, i) => i).sort((a, b) => (r[a] % 7) - (r[b] % 7) || a - b);
    await parity(`transpose ${JSON.stringify(shape)} ${perm}`, [x], (t) => T.transpose(t, perm), "exact");
    const starts = shape.map((d, i) => (d === 0 ? 0 : r[i] % d));
    const sizes = shape.map((d, i) => (d - starts[i] === 0 ? 0 : r[i + 4] % (d - starts[i] + 1)));
    await parity(`slice ${JSON.stringify([shape, starts, sizes])}`, [x], prim("slice", { starts, sizes }), "exact");
    const before = shape.map((_, i) => r[i + 8] % 3), after = shape.map((_, i) => r[i] % 2);
    await parity(`pad ${JSON.stringify([shape, before, after])}`, [x], prim("pad", { before, after, value: int ? -7 : 2.5 }), "exact");
    const axis = r[11] % shape.length;
    const other = [...shape];
    other[axis] = r[10] % 4;
    const y = int ? i32(other, -9, 9) : f32(other);
    await parity(`concat ${JSON.stringify([shape, other, axis])}`, [x, y, x], (a, b, c) => T.concat([a, b, c], axis), "exact");
  }), RUNS);
  // the tiled (shared-memory) transpose of the last two axes
  await parity("transpose [3, 40, 37] → [3, 37, 40]", [f32([3, 40, 37])], (t) => T.transpose(t, [0, 2, 1]), "exact");
  await parity("transpose [33, 65]", [f32([33, 65])], (t) => T.transpose(t), "exact");
});

// ---------- index ----------

test("webgpu parity: gather, scatterAdd, oneHot (out-of-range: zero row / dropped / zero row)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 9 }), shapeArb(0, 2), shapeArb(0, 2), fc.boolean(), async (rows, idxShape, rowShape, int) => {
    const table = int ? i32([rows, ...rowShape], -99, 99) : f32([rows, ...rowShape]);
    const idx = i32(idxShape, 0, rows - 1);
    await parity(`gather ${JSON.stringify([table.shape, idxShape])}`, [table, idx], (t, i) => T.gather(t, i), "exact");
    const upd = f32([...idxShape, ...rowShape]);
    // exact while no row receives more than 32 updates (the GPU then adds in index order, as the
    // CPU does); longer lists are summed in chunks of 32 (a fixed order, within f32 rounding)
    const counts = new Map<number, number>();
    for (const r of idx.data) counts.set(r, (counts.get(r) ?? 0) + 1);
    const most = Math.max(0, ...counts.values());
    await parity(`scatterAdd ${JSON.stringify([idxShape, upd.shape])}`, [idx, upd], (i, u) => T.scatterAdd(i, u, rows), most <= 32 ? "exact" : sumTol(most));
    await parity(`oneHot ${JSON.stringify(idxShape)}`, [i32(idxShape, -1, rows)], (i) => T.oneHot(i, rows), "exact");
  }), RUNS);
  // rows that receive thousands of updates (a note held in the pool is read by every later
  // position): summed in chunks on the GPU; and rows that receive none
  for (const [n, rows, width] of [[5000, 3, 5], [3000, 70, 64]] as const) {
    const idx = i32([n], 0, rows - 2); // the last row receives nothing
    await parity(`scatterAdd long lists ${JSON.stringify([n, rows, width])}`, [idx, f32([n, width])], (i, u) => T.scatterAdd(i, u, rows), sumTol(n));
  }
  // out of range on the GPU: gather gives a zero row, scatterAdd drops the update (the CPU throws)
  T.setBackend(gpu!);
  const tab = T.fromArray([1, 2, 3, 4], [2, 2]);
  const bad = T.fromArray(Int32Array.of(1, 5, -1), [3], "i32");
  const g = T.gather(tab, bad);
  expect(Array.from(await g.data())).toEqual([3, 4, 0, 0, 0, 0]);
  const s = T.scatterAdd(bad, T.fromArray([1, 1, 2, 2, 3, 3], [3, 2]), 2);
  expect(Array.from(await s.data())).toEqual([0, 0, 1, 1]);
  T.disposeTree([tab, bad, g, s]);
});

// ---------- nn ----------

test("webgpu parity: softmax, logsumexp, crossEntropy over the last axis (short and long rows)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(shapeArb(0, 2), fc.constantFrom(1, 3, 17, 300), async (lead, n) => {
    const x = f32([...lead, n], -20, 20);
    const t = i32(lead, 0, n - 1);
    // crossEntropy = lse − x[t] cancels: with logits up to 20 the f32 GPU result is off by a few
    // ulps of 20 (~5e-6) where the CPU accumulates in float64; hence atol 2e-5 for this row.
    await parity(`softmax / logsumexp / crossEntropy ${JSON.stringify([...lead, n])}`, [x, t], (a, b) => [T.softmax(a), T.logsumexp(a), T.crossEntropy(a, b)], { rtol: 1e-5, atol: 2e-5 });
  }), { numRuns: 16 });
  const x: Host = { data: Float32Array.of(-Infinity, -Infinity, 1, -Infinity), shape: [2, 2], dtype: "f32" };
  await parity("softmax / logsumexp with -Infinity", [x], (a) => [T.softmax(a), T.logsumexp(a)], ELEM);
  // both kernels on every row length (auto takes a thread per row up to 128 elements)
  for (const algo of ["workgroup", "thread"] as const) {
    rowTuning.algo = algo;
    try {
      for (const n of [1, 50, 100, 300]) {
        const xr = f32([7, n], -20, 20), tr = i32([7], 0, n - 1);
        await parity(`rows (${algo}) [7, ${n}]`, [xr, tr], (a, b) => [T.softmax(a), T.logsumexp(a), T.crossEntropy(a, b)], { rtol: 1e-5, atol: 2e-5 });
      }
      await parity(`rows (${algo}) with -Infinity`, [x], (a) => [T.softmax(a), T.logsumexp(a)], ELEM);
    } finally {
      rowTuning.algo = "auto";
    }
  }
});

test("webgpu parity: rmsNorm with and without its gain, and the gradients of x and the gain (rows not a multiple of 64; n not of 4, and rows of whole vec4s: the vec4 shader, 1 to 4 vec4s a thread, and past it)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(shapeArb(0, 2), fc.constantFrom(1, 3, 17, 130, 4, 256, 260, 1024, 1028), async (lead, n) => {
    const shape = [...lead, n], rows = size(lead);
    const x = f32(shape), w = f32([n]), c = f32(shape);
    const what = `rmsNorm ${JSON.stringify(shape)}`;
    await parity(what, [x, w], (a, b) => [T.rmsNormalize(a, 1e-5), T.rmsNormalize(a, 1e-5, b)], ELEM);
    // gradient k (0: x, 1: the gain), the other and the value freed (parity checks for leaks)
    const grad = (k: 0 | 1) => (a: Tensor, b: Tensor, g: Tensor) => {
      const r = T.valueAndGrad((t: { a: Tensor; b: Tensor }) => T.sum(T.mul(T.rmsNormalize(t.a, 1e-5, t.b), g)))({ a, b });
      const both = [r.grads.a, r.grads.b];
      T.disposeTree([r.value, both[1 - k]]);
      return both[k];
    };
    await parity(`${what} dx`, [x, w, c], grad(0), sumTol(n));
    await parity(`${what} dw`, [x, w, c], grad(1), sumTol(rows));
  }), { numRuns: 12 });
});

test("webgpu parity: the softmax's and the masked softmax's gradients (row-pair kernels), rows of whole vec4s and not", async () => {
  if (!(await backends())) return;
  for (const n of [3, 4, 52, 256, 260]) {
    const x = f32([6, n], -3, 3), g = f32([6, n]), v = f32([6, n]);
    const grad = (masked: boolean) => (a: Tensor, c: Tensor, u: Tensor) => {
      const valid = T.tidy(() => T.noGrad(() => T.gt(u, -0.5)));
      const r = T.valueAndGrad((t: Tensor) => T.sum(T.mul(masked ? T.maskedSoftmax(t, valid, 0.125) : T.softmax(t), c)))(a);
      T.disposeTree([r.value, valid]);
      return r.grads;
    };
    await parity(`softmax dx [6, ${n}]`, [x, g, v], grad(false), sumTol(n));
    await parity(`maskedSoftmax dx [6, ${n}]`, [x, g, v], grad(true), sumTol(n));
  }
});

test("webgpu parity: the row-pair kernels with 64 threads a row on rows of up to 64 vec4s too (rowPairThreads.narrow off: the earlier layout)", async () => {
  if (!(await backends())) return;
  rowPairThreads.narrow = false;
  try {
    for (const n of [4, 52, 256]) {
      const x = f32([7, n], -3, 3), w = f32([n]), g = f32([7, n]);
      await parity(`rmsNorm [7, ${n}] (64 threads a row)`, [x, w], (a, b) => [T.rmsNormalize(a, 1e-5), T.rmsNormalize(a, 1e-5, b)], ELEM);
      const grads = (a: Tensor, b: Tensor, c: Tensor) => {
        const r = T.valueAndGrad((t: { a: Tensor; b: Tensor }) => T.add(T.sum(T.mul(T.rmsNormalize(t.a, 1e-5, t.b), c)), T.sum(T.mul(T.softmax(t.a), c))))({ a, b });
        r.value.dispose();
        return [r.grads.a, r.grads.b];
      };
      await parity(`rmsNorm and softmax gradients [7, ${n}] (64 threads a row)`, [x, w, g], grads, sumTol(n));
    }
  } finally {
    rowPairThreads.narrow = true;
  }
});

test("webgpu parity: rmsNormGradW, the gain's VJP in one pass (dx and g ⊙ x̂), and the gain's gradient alone", async () => {
  if (!(await backends())) return;
  // rows not a multiple of 64 and a leading batch ([2, 67, 13]), n above 64 not a multiple of 4
  // ([3, 130], [1, 70]), one row without leading axes, then shapes drawn as above
  // rows of whole vec4s: [5, 256], [3, 260], [2, 1024] take the vec4 shader, [1028] the scalar one
  const fixed = [[[2, 67], 13], [[3], 130], [[1], 70], [[], 5], [[5], 256], [[3], 260], [[2], 1024], [[], 1028]] as [number[], number][];
  const drawn = fc.sample(fc.tuple(shapeArb(0, 2), fc.constantFrom(1, 3, 17, 130, 8)), { numRuns: 6, seed: 7 });
  // its own data (backends() restarts the generator for every test; this test's fixed shapes then
  // draw the same numbers in every run): a row of n = 1 is ill-conditioned (dx ∝ 1 − x̂², which
  // cancels where |x| is small next to √eps), and one rare draw, when the data still depended on
  // the tests before, put an element of such a row past the tolerance (1.4e-5 off at −0.227)
  seed = 20261127;
  for (const [lead, n] of [...fixed, ...drawn]) {
    const shape = [...lead, n], rows = size(lead);
    const x = f32(shape), w = f32([n]), g = f32(shape);
    const what = `rmsNormGradW ${JSON.stringify(shape)}`;
    const fused = (k: 0 | 1) => (gt: Tensor, xt: Tensor, wt: Tensor) => {
      const outs = bindMulti("rmsNormGradW", [gt, xt, wt], [{ shape, dtype: "f32" }, { shape, dtype: "f32" }], { eps: 1e-5 });
      if (!outs) throw new Error(`${T.getBackend().name}: no runMulti`);
      outs[1 - k].dispose();
      return outs[k];
    };
    await parity(`${what} dx`, [g, x, w], fused(0), sumTol(n));
    await parity(`${what} g ⊙ x̂`, [g, x, w], fused(1), ELEM);
    // x a constant: dw alone (rmsNormGradW, its dx dropped, and the sum over the rows)
    const dw = (xt: Tensor, wt: Tensor, ct: Tensor) => {
      const r = T.valueAndGrad((v: Tensor) => T.sum(T.mul(T.rmsNormalize(xt, 1e-5, v), ct)))(wt);
      r.value.dispose();
      return r.grads;
    };
    await parity(`${what} dw alone`, [x, w, g], dw, sumTol(rows));
  }
});

test("webgpu parity: conv1dCausal and its two gradient kernels", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 5 }), async (B, L, C, K) => {
    const x = f32([B, L, C]), w = f32([C, K]), g = f32([B, L, C]);
    await parity(`conv1dCausal ${JSON.stringify([B, L, C, K])}`, [x, w, g], (a, b, c) => [
      T.bind("conv1dCausal", [a, b], {}), T.bind("conv1dCausalGradX", [c, b], {}), T.bind("conv1dCausalGradW", [c, a], { k: K }),
    ], sumTol(B * L));
  }), RUNS);
});

test("webgpu parity: linearSigmoid (rows of vec4 and of scalars, no rows, batch axes)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 70 }), async (lead, d) => {
    await parity(`linearSigmoid ${JSON.stringify([lead, d])}`, [f32([...lead, d]), f32([d, 1]), f32([1])], (x, w, b) => T.linearSigmoid(x, w, b), sumTol(d));
  }), RUNS);
});

test("webgpu parity: linearSigmoidGrad (dx, dw, db; vec4 rows and not, column chunks past 64 lanes, row blocks up to their cap)", async () => {
  if (!(await backends())) return;
  const lsg = (lead: number[], d: number) => {
    const n = size(lead);
    return parity(`linearSigmoidGrad ${JSON.stringify([lead, d])}`, [f32(lead), f32(lead, 0, 1), f32([...lead, d]), f32([d, 1])], (g, s, x, w) =>
      bindMulti("linearSigmoidGrad", [g, s, x, w], [{ shape: [...lead, d], dtype: "f32" }, { shape: [d, 1], dtype: "f32" }, { shape: [1], dtype: "f32" }], {})!, sumTol(n));
  };
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 2 }), fc.integer({ min: 1, max: 300 }), (lead, d) => lsg(lead, d)), RUNS);
  await lsg([40000], 3); // 1,250 blocks of 32 rows: capped at 1,024 blocks of 40
  await lsg([3, 700], 256); // MemMamba's scorer width
});

test("webgpu parity: foldWeight and foldWeightGrad (b transposed or not, with and without the column scale)", async () => {
  if (!(await backends())) return;
  const fold = async (M: number, K: number, N: number, transB: boolean, scaled: boolean) => {
    const bShape = transB ? [N, K] : [K, N];
    const ins = [f32([M, K]), f32(bShape), ...(scaled ? [f32([N])] : [])];
    const what = JSON.stringify([M, K, N, transB, scaled]);
    await parity(`foldWeight ${what}`, ins, (...ts) => T.bind("foldWeight", ts, { transB }), sumTol(K));
    const outs = [{ shape: [M, K], dtype: "f32" as const }, { shape: bShape, dtype: "f32" as const }, ...(scaled ? [{ shape: [N], dtype: "f32" as const }] : [])];
    await parity(`foldWeightGrad ${what}`, [f32([M, N]), ...ins], (...ts) => bindMulti("foldWeightGrad", ts, outs, { transB })!, sumTol(M * K + N));
  };
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 40 }), fc.boolean(), fc.boolean(), fold), RUNS);
  await fold(256, 64, 64, true, false); // MemMamba's W_q·W_kᵀ
  await fold(64, 64, 256, false, true); // and (W_v·W_F) ⊙ α
});

test("webgpu parity: ssmGate (D broadcast along the rows, channel counts not a multiple of 4)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 2 }), fc.integer({ min: 1, max: 70 }), async (lead, Di) => {
    const sh = [...lead, Di];
    await parity(`ssmGate ${JSON.stringify(sh)}`, [f32(sh), f32(sh), f32([Di]), f32(sh, -20, 20)], (y, u, d, z) => T.ssmGate(y, u, d, z), sumTol(2));
  }), RUNS);
});

test("webgpu parity: causalSelect (last / top, ties, f32 and i32 masks)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 5 }), fc.constantFrom("last", "top"), fc.boolean(), async (B, L, k, mode, intMask) => {
    const mask = intMask ? i32([B, L], 0, 1) : f32([B, L], 0, 1);
    if (!intMask) mask.data = mask.data.map((v) => (v < 0.3 ? 0 : v)) as Float32Array;
    const score = i32([B, L], 0, 3); // ties on purpose
    const sf: Host = { data: Float32Array.from(score.data), shape: [B, L], dtype: "f32" };
    await parity(`causalSelect ${mode} ${JSON.stringify([B, L, k])}`, [mask, sf], prim("causalSelect", { k, mode }), "exact");
  }), RUNS);
});

test("webgpu parity: causalEntered (any i32 rows, −1s included; k 0 and rows past one workgroup)", async () => {
  if (!(await backends())) return;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 7 }), fc.nat(), fc.nat(), async (B, N, k, a, c) => {
    const start = a % N, count = c % (N - start + 1); // start + count ≤ N (the row past the end reads as −1)
    await parity(`causalEntered ${JSON.stringify([B, N, k, start, count])}`, [i32([B, N, k], -1, 40)], prim("causalEntered", { start, count }), "exact");
  }), RUNS);
});

test("webgpu parity: causalSelect with large pools (k 70, 140, 600: the parallel kernels at these L; webgpu-select.test.ts forces the walks)", async () => {
  if (!(await backends())) return;
  for (const [B, L, k] of [[2, 300, 70], [1, 400, 140], [1, 700, 600]] as const) {
    for (const mode of ["last", "top"] as const) {
      const mask = f32([B, L], 0, 1);
      mask.data = mask.data.map((v) => (v < 0.3 ? 0 : v)) as Float32Array;
      const score = i32([B, L], 0, 7); // ties on purpose
      const sf: Host = { data: Float32Array.from(score.data), shape: [B, L], dtype: "f32" };
      await parity(`causalSelect ${mode} ${JSON.stringify([B, L, k])}`, [mask, sf], prim("causalSelect", { k, mode }), "exact");
    }
  }
});

// ---------- scans ----------

test("webgpu parity: scan and scanReverse, direct, single-pass look-back and chunked", async () => {
  if (!(await backends())) return;
  const was = scanTuning.algo; // the library's default (restored after each forced algorithm)
  const run = async (B: number, L: number, S: number) => {
    const a = f32([B, L, S], -1.05, 1.05), x = f32([B, L, S]), h0 = f32([B, S]);
    const what = `scan ${JSON.stringify([B, L, S, scanTuning.forceChunk, scanTuning.algo])}`;
    await parity(what, [a, x, h0], (p, q, r) => [T.bind("scan", [p, q, r], {}), T.bind("scanReverse", [p, q], {})], sumTol(L));
  };
  const algos = ["lookback", "chunked"] as const;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 9 }), fc.constantFrom(0, 1, 3, 7), fc.constantFrom(...algos), async (B, L, S, chunk, algo) => {
    scanTuning.forceChunk = chunk;
    scanTuning.algo = algo;
    try {
      await run(B, L, S);
    } finally {
      scanTuning.forceChunk = 0;
      scanTuning.algo = was;
    }
  }), RUNS);
  // long L, small B·S: the default algorithm at the production chunk length (several
  // workgroups), then the chunked path chosen by itself
  await run(1, 300, 5);
  await run(2, 100, 300);
  scanTuning.algo = "chunked";
  try {
    await run(1, 300, 5);
  } finally {
    scanTuning.algo = was;
  }
});

test("webgpu parity: fused selective scan: y, last state and the packed gradients (one and several chunks)", async () => {
  if (!(await backends())) return;
  // chunk: the backward's chunks; fwdT: the forward's chunks along L (0: one thread walks L);
  // bwd: the backward parallel along L in groups of at most 2 chunks ("par2") or of all of them
  // ("par"), or the chunks in turn ("seq")
  const bwds = ["par", "par2", "seq"] as const;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.constantFrom(0, 1, 4), fc.constantFrom(0, 2, 3), fc.constantFrom(...bwds), async (B, L, Di, N, chunk, fwdT, bwd) => {
    const ins = [f32([B, L, Di], -1, 1), f32([B, L, Di], 0.01, 0.5), f32([Di, N], -3, -0.2), f32([B, L, N]), f32([B, L, N]), f32([B, Di, N], -0.5, 0.5), f32([B, L, Di]), f32([B, Di, N])];
    ssmTuning.forceChunk = chunk;
    ssmTuning.fwdForceT = fwdT;
    ssmTuning.bwdParallel = bwd !== "seq";
    ssmTuning.bwdMaxGroup = bwd === "par2" ? 2 : 0;
    try {
      await parity(`selectiveScan ${JSON.stringify([B, L, Di, N, chunk, fwdT, bwd])}`, ins, (...t) => [
        T.bind("selectiveScan", t.slice(0, 6), {}), T.bind("selectiveScanState", t.slice(0, 6), {}), T.bind("selectiveScanGrad", t, {}),
      ], { rtol: 1e-4, atol: 1e-4 });
    } finally {
      ssmTuning.forceChunk = 0;
      ssmTuning.fwdForceT = 0;
      ssmTuning.bwdParallel = true;
      ssmTuning.bwdMaxGroup = 0;
    }
  }), { numRuns: 15 });
  // long L, few channels: the forward chunked along L by its own plan, the backward parallel
  // along L in chunks of its default length (several groups: at most 3 chunks each)
  const [B, L, Di, N] = [1, 200, 3, 5];
  expect(ssmForwardPlan(B, L, Di).nC).toBeGreaterThan(1);
  const ins = [f32([B, L, Di], -1, 1), f32([B, L, Di], 0.01, 0.5), f32([Di, N], -3, -0.2), f32([B, L, N]), f32([B, L, N]), f32([B, Di, N], -0.5, 0.5), f32([B, L, Di]), f32([B, Di, N])];
  ssmTuning.bwdMaxGroup = 3;
  try {
    await parity(`selectiveScan ${JSON.stringify([B, L, Di, N])}`, ins, (...t) => [
      T.bind("selectiveScan", t.slice(0, 6), {}), T.bind("selectiveScanState", t.slice(0, 6), {}), T.bind("selectiveScanGrad", t, {}),
    ], { rtol: 1e-4, atol: 1e-4 });
  } finally {
    ssmTuning.bwdMaxGroup = 0;
  }
  // Di a multiple of 64: the backward sums the dB / dC terms over each workgroup first; two
  // batches, chunks of 8 steps, groups of 2 chunks (the last one short), N padded (13 of 16)
  const [B2, L2, Di2, N2] = [2, 36, 64, 13];
  const ins2 = [f32([B2, L2, Di2], -1, 1), f32([B2, L2, Di2], 0.01, 0.5), f32([Di2, N2], -3, -0.2), f32([B2, L2, N2]), f32([B2, L2, N2]), f32([B2, Di2, N2], -0.5, 0.5), f32([B2, L2, Di2]), f32([B2, Di2, N2])];
  ssmTuning.forceChunk = 8;
  ssmTuning.bwdMaxGroup = 2;
  try {
    expect(ssmGradPlan(B2, L2, Di2, N2, 2 ** 30)?.wgr).toBe(true);
    await parity(`selectiveScanGrad ${JSON.stringify([B2, L2, Di2, N2])}`, ins2, (...t) => T.bind("selectiveScanGrad", t, {}), { rtol: 1e-4, atol: 1e-4 });
  } finally {
    ssmTuning.forceChunk = 0;
    ssmTuning.bwdMaxGroup = 0;
  }
});
