/**
 * The WebGPU reduction and causal-conv kernels against the CPU reference (issue 11's speed
 * work): shapes drawn by fast-check, sizes that are not multiples of any workgroup, long
 * reduction axes that take the two-pass split, the plan's knobs (reduceTuning, convTuning) moved
 * off their defaults so that every thread layout runs on small inputs, and determinism (two runs
 * give the same bits).
 *
 * Tolerances: sums over K terms |gpu − cpu| ≤ 1e-5·√K·(1 + |cpu|) (the CPU adds in float64 in
 * its own order, the GPU in float32 blocks: per thread, then the lanes of a workgroup, then the
 * chunks); max is exact. Conv outputs sum at most 8 taps, with the same bound for K = 8.
 *
 * On a machine without a WebGPU adapter the tests print why and pass (CI=true makes that a
 * failure, see test/support/backends.ts). Shader compiles dominate on lavapipe: few shapes, one
 * pipeline per layout.
 */
import fc from "fast-check";
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, HostArray, Tensor } from "../src/index.ts";
import { reduceTuning } from "../src/webgpu/kernels/reduce.ts";
import { convTuning, MAX_TAPS } from "../src/webgpu/kernels/conv.ts";

interface Host {
  data: Float32Array;
  shape: number[];
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
function f32(shape: number[], seed: number): Host {
  let s = seed >>> 0 || 1;
  const data = Float32Array.from({ length: size(shape) }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 4 * (s / 2 ** 32) - 2;
  });
  return { data, shape };
}

const sumTol = (k: number) => 1e-5 * Math.sqrt(Math.max(1, k));

let cpu: Backend | null = null;
let gpu: Backend | null = null;

/** Makes WebGPU current (and remembers the CPU backend); false where there is no adapter. */
async function backends(): Promise<boolean> {
  const before = T.getBackend();
  if (!(await useBackend("webgpu"))) {
    T.setBackend(before);
    return false;
  }
  gpu = T.getBackend();
  cpu ??= T.setBackend("cpu");
  T.setBackend(gpu);
  return true;
}

/** Runs f on backend b from host data, returns every output read back; checks for leaks. */
async function runOn(b: Backend, ins: Host[], f: (...t: Tensor[]) => Tensor[]): Promise<HostArray[]> {
  const prev = T.getBackend();
  T.setBackend(b);
  try {
    const before = b.liveBuffers();
    const ts = ins.map((h) => T.fromArray(h.data, h.shape, "f32"));
    const outs = f(...ts);
    const data = await Promise.all(outs.map((o) => o.data()));
    T.disposeTree([ts, outs]);
    expect(b.liveBuffers()).toBe(before);
    return data;
  } finally {
    T.setBackend(prev);
  }
}

function compare(what: string, got: HostArray, want: HostArray, tol: number | "exact"): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    const ok = g === w || (tol !== "exact" && Math.abs(g - w) <= tol * (1 + Math.abs(w)));
    if (!ok) throw new Error(`${what}: element ${i}: webgpu ${g} vs cpu ${w}`);
  }
}

async function parity(what: string, ins: Host[], f: (...t: Tensor[]) => Tensor[], tol: number | "exact"): Promise<void> {
  const want = await runOn(cpu!, ins, f);
  const got = await runOn(gpu!, ins, f);
  want.forEach((w, k) => compare(`${what} (output ${k})`, got[k], w, tol));
}

/** Runs fn with some knobs of a tuning object changed, restoring them after. */
async function withTuning<O extends object>(obj: O, change: Partial<O>, fn: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(change).map((k) => [k, obj[k as keyof O]])) as Partial<O>;
  Object.assign(obj, change);
  try {
    await fn();
  } finally {
    Object.assign(obj, saved);
  }
}

const sameBits = (a: HostArray, b: HostArray) =>
  a.length === b.length && new Uint32Array(a.buffer, a.byteOffset, a.length).every((v, i) => v === new Uint32Array(b.buffer, b.byteOffset, b.length)[i]);

// ---------- reductions ----------

const sum = (axes: number[]) => (x: Tensor) => [T.bind("reduce", [x], { op: "sum", axes })];
const max = (axes: number[]) => (x: Tensor) => [T.bind("reduce", [x], { op: "max", axes })];

test("webgpu reduce: kept-inner and reduced-inner layouts, long leading axes, split and single pass, under several plans", async () => {
  if (!(await backends())) return;
  // [n, c] over axis 0 (bias gradients), [m, r] over axis 1 (RMSNorm), [b, l, g, q] over axis 2
  // (the selective scan's dB / dC sums), and full reductions
  const caseArb = fc.oneof(
    fc.tuple(fc.integer({ min: 1, max: 6000 }), fc.integer({ min: 1, max: 70 })).map(([n, c]) => ({ shape: [n, c], axes: [0] })),
    fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 3000 })).map(([m, r]) => ({ shape: [m, r], axes: [1] })),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 17 }))
      .map((s) => ({ shape: s, axes: [2] })),
    fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 700 }), fc.integer({ min: 1, max: 5 })).map((s) => ({ shape: s, axes: [0, 1, 2] })),
    fc.tuple(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 7 })).map((s) => ({ shape: s, axes: [0, 2] })),
  );
  const planArb = fc.record({
    termsPerThread: fc.constantFrom(1, 3, 8, 40),
    maxKeptLanes: fc.constantFrom(1, 8, 64),
    targetWorkgroups: fc.constantFrom(2, 64, 1024),
    minChunk: fc.constantFrom(1, 7, 256),
  });
  await fc.assert(fc.asyncProperty(caseArb, planArb, fc.integer(), async ({ shape, axes }, plan, seed) => {
    const x = f32(shape, seed);
    const k = size(axes.map((a) => shape[a]));
    await withTuning(reduceTuning, plan, async () => {
      await parity(`sum ${JSON.stringify(shape)} over ${axes} ${JSON.stringify(plan)}`, [x], sum(axes), sumTol(k));
      await parity(`max ${JSON.stringify(shape)} over ${axes} ${JSON.stringify(plan)}`, [x], max(axes), "exact");
    });
  }), { numRuns: 16 });
  // the training's shapes, scaled down along the long axis: bias gradients and the split path
  for (const [shape, axes] of [[[2, 4100, 33], [0, 1]], [[20001, 3], [0]], [[3, 30001], [1]], [[40000], [0]]] as [number[], number[]][]) {
    const k = size(axes.map((a) => shape[a]));
    await parity(`sum ${JSON.stringify(shape)} over ${axes}`, [f32(shape, 7)], sum(axes), sumTol(k));
  }
  // NaN anywhere in a max's range wins; an empty reduced axis gives 0 for a sum
  const nan = f32([3000, 5], 3);
  nan.data[2222 * 5 + 1] = NaN;
  await parity("max with a NaN in a split range", [nan], max([0]), "exact");
  await parity("sum over an empty axis", [{ data: new Float32Array(0), shape: [0, 4] }], sum([0]), "exact");
});

test("webgpu reduce and conv1dCausalGradW: two runs give the same bits", async () => {
  if (!(await backends())) return;
  const x = f32([5000, 37], 11), y = f32([3, 9000], 12);
  const g = f32([3, 700, 37], 13), xc = f32([3, 700, 37], 14);
  const f = (a: Tensor, b: Tensor, gg: Tensor, xx: Tensor) => [
    T.bind("reduce", [a], { op: "sum", axes: [0] }), T.bind("reduce", [b], { op: "sum", axes: [0, 1] }),
    T.bind("conv1dCausalGradW", [gg, xx], { k: 4 }),
  ];
  const first = await runOn(gpu!, [x, y, g, xc], f);
  const second = await runOn(gpu!, [x, y, g, xc], f);
  first.forEach((a, i) => expect(sameBits(a, second[i])).toBe(true));
  // and they are right (so equal bits are not two equal wrong answers)
  const want = await runOn(cpu!, [x, y, g, xc], f);
  compare("determinism case", first[2], want[2], sumTol(3 * 700));
});

// ---------- causal depthwise conv1d ----------

const convAll = (K: number) => (x: Tensor, w: Tensor, g: Tensor) => [
  T.bind("conv1dCausal", [x, w], {}), T.bind("conv1dCausalGradX", [g, w], {}), T.bind("conv1dCausalGradW", [g, x], { k: K }),
];

test("webgpu conv1dCausal, GradX and GradW (window kernels): parity over shapes, taps 1–8, steps per thread and split sizes", async () => {
  if (!(await backends())) return;
  const arb = fc.record({
    B: fc.integer({ min: 0, max: 3 }), L: fc.integer({ min: 0, max: 90 }), C: fc.integer({ min: 1, max: 70 }), K: fc.integer({ min: 1, max: MAX_TAPS }),
    rows: fc.constantFrom(1, 3, 8), target: fc.constantFrom(1, 1024), seed: fc.integer(),
  });
  await fc.assert(fc.asyncProperty(arb, async ({ B, L, C, K, rows, target, seed }) => {
    const x = f32([B, L, C], seed), w = f32([C, K], seed + 1), g = f32([B, L, C], seed + 2);
    await withTuning(convTuning, { algo: "window", rowsPerThread: rows, gradWTargetWorkgroups: target }, () =>
      parity(`conv ${JSON.stringify({ B, L, C, K, rows, target })}`, [x, w, g], convAll(K), sumTol(Math.max(B * L, K))));
  }), { numRuns: 20 });
  // a long sequence: many step blocks (pass 2 sums hundreds of partials), few channels (256-lane
  // combine) and many (coalesced 64-channel blocks)
  for (const [B, L, C, K] of [[2, 3000, 3, 4], [1, 1100, 130, 4], [3, 257, 64, 8]]) {
    const x = f32([B, L, C], B + L), w = f32([C, K], C), g = f32([B, L, C], K);
    await parity(`conv ${JSON.stringify([B, L, C, K])}`, [x, w, g], convAll(K), sumTol(B * L));
  }
  // Inf at a sequence's first steps: taps before the start are skipped as on the CPU (not 0·Inf)
  const x = f32([2, 6, 5], 1), w = f32([5, 3], 2), g = f32([2, 6, 5], 3);
  x.data[0] = Infinity;
  g.data[6 * 5 + 2] = -Infinity;
  await parity("conv with Inf at t = 0", [x, w, g], convAll(3), sumTol(12));
  // wider than MAX_TAPS: the direct kernels
  const xw = f32([2, 20, 9], 4), ww = f32([9, MAX_TAPS + 3], 5), gw = f32([2, 20, 9], 6);
  await parity("conv with 11 taps (direct kernels)", [xw, ww, gw], convAll(MAX_TAPS + 3), sumTol(40));
});

// ---------- the causal conv with a carried prefix ----------

/** The conv with a prefix, and the concat-conv-slice form it replaces (same sums, same order). */
const convPre = (K: number) => (x: Tensor, w: Tensor, p: Tensor) =>
  T.tidy(() => [T.conv1dCausal(x, w, p), T.sliceAxis(T.conv1dCausal(T.concat([p, x], 1), w), 1, K - 1)]);

test("webgpu conv1dCausal with a prefix: the same bits as the conv of [prefix; x] without its first K − 1 outputs, on each backend; parity with the CPU", async () => {
  if (!(await backends())) return;
  const check = async (what: string, B: number, L: number, C: number, K: number, seed: number) => {
    const ins = [f32([B, L, C], seed), f32([C, K], seed + 1), f32([B, K - 1, C], seed + 2)];
    const want = await runOn(cpu!, ins, convPre(K));
    const got = await runOn(gpu!, ins, convPre(K));
    compare(`${what}: cpu, prefix vs concat`, want[0], want[1], "exact");
    compare(`${what}: webgpu, prefix vs concat`, got[0], got[1], "exact");
    compare(`${what}: webgpu vs cpu`, got[0], want[0], sumTol(K));
  };
  const arb = fc.record({
    B: fc.integer({ min: 1, max: 3 }), L: fc.integer({ min: 1, max: 40 }), C: fc.integer({ min: 1, max: 70 }), K: fc.integer({ min: 1, max: MAX_TAPS }),
    rows: fc.constantFrom(1, 3, 8), seed: fc.integer(),
  });
  // L shorter than the window too (a recurrent step is L = 1): the whole window from the prefix
  await fc.assert(fc.asyncProperty(arb, async ({ B, L, C, K, rows, seed }) => {
    await withTuning(convTuning, { algo: "window", rowsPerThread: rows }, () => check(`prefix conv ${JSON.stringify({ B, L, C, K, rows })}`, B, L, C, K, seed));
  }), { numRuns: 15 });
  await check("prefix conv, a long sequence", 2, 2100, 67, 4, 7);
  await check("prefix conv, 11 taps (direct kernel)", 2, 20, 9, MAX_TAPS + 3, 8);
  await withTuning(convTuning, { algo: "direct" }, () => check("prefix conv, the direct kernel at 4 taps", 3, 30, 5, 4, 9));
});
