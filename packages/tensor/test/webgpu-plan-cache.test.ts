/**
 * The per-problem launch plans that matmul, reduce, maxGrad and the row kernels cache (their
 * host cost per launch, issue 11): on a recording GpuCtx (no device needed), a problem replayed
 * from the cache dispatches exactly what a fresh plan dispatches (key, WGSL, buffers, params,
 * grid), two shapes in a row each get their own plan, a change of the tuning knobs or of the
 * device limits drops the plans, and the caches stay bounded (oldest dropped first).
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import type { KernelArg } from "../src/backend.ts";
import type { BufRef, GpuCtx, GpuLimits, Launch } from "../src/webgpu/context.ts";
import { matmulKernel, matmulPlans, matmulTuning, PlanCache } from "../src/webgpu/kernels/matmul.ts";
import { maxGradKernel, maxGradPlans, reduceKernel, reducePlans, reduceTuning } from "../src/webgpu/kernels/reduce.ts";
import { maskedSoftmaxKernel, rmsNormGradKernel, rmsNormGradWKernel, rmsNormKernel, softmaxKernel } from "../src/webgpu/kernels/nn.ts";

const LIMITS: GpuLimits = {
  maxStorageBufferBindingSize: 1 << 27, maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384,
  minStorageBufferOffsetAlignment: 256, maxStorageBuffersPerShaderStage: 8,
};

/** A GpuCtx that records each launch as a string (buffers by name, the WGSL in full). */
function recorder(limits: GpuLimits = LIMITS): { ctx: GpuCtx; log: string[] } {
  const log: string[] = [];
  const name = (r: BufRef) => (r.buf as unknown as { name: string }).name;
  const ctx: GpuCtx = {
    limits,
    ref: (a) => ({ buf: a.buf as unknown as GPUBuffer, offset: 0, size: 4 * a.shape.reduce((x, y) => x * y, 1) }),
    range: () => {
      throw new Error("range: not used by these kernels");
    },
    view: () => {
      throw new Error("view: not used by these kernels");
    },
    // named by size: a replay on another recorder must read the same
    temp: (bytes) => ({ buf: { name: `temp(${bytes})` } as unknown as GPUBuffer, offset: 0, size: bytes }),
    releaseTemp: (r) => log.push(`release ${name(r)}`),
    dispatch: (l: Launch) =>
      log.push(JSON.stringify([l.label, l.key, l.wgsl(), l.buffers.map((b) => [name(b), b.offset, b.size]), [...l.params], [...l.groups]])),
  };
  return { ctx, log };
}

const arg = (name: string, shape: number[]): KernelArg => ({ buf: { name } as never, shape, dtype: "f32" });

type Call = (ctx: GpuCtx) => void;
const mm = (a: number[], b: number[], o: number[], transA = false, transB = false): Call => (ctx) =>
  matmulKernel(ctx, [arg("a", a), arg("b", b)], arg("c", o), { transA, transB });
const red = (op: "sum" | "max", shape: number[], axes: number[]): Call => (ctx) =>
  reduceKernel(ctx, [arg("x", shape)], arg("o", shape.map((d, i) => (axes.includes(i) ? 1 : d))), { op, axes });

/** The launches of `call` with every cache emptied first (a fresh plan). */
function fresh(call: Call, limits?: GpuLimits): string[] {
  matmulPlans.clear();
  reducePlans.clear();
  maxGradPlans.clear();
  const r = recorder(limits);
  call(r.ctx);
  return r.log;
}

/** The launches of each call of `calls`, run in order on one ctx (later ones may hit the caches). */
function inOrder(calls: Call[], limits?: GpuLimits): string[][] {
  const r = recorder(limits);
  return calls.map((c) => {
    const n = r.log.length;
    c(r.ctx);
    return r.log.slice(n);
  });
}

describe("launch-plan caches", () => {
  test("matmul: shapes in a row (plain, batched, split-K, rowdot, transposed) each get their own plan, equal to a fresh one", () => {
    const calls = [
      mm([16, 64], [64, 64], [16, 64]), mm([4, 16, 64], [4, 64, 64], [4, 16, 64]), mm([2048, 16], [2048, 16], [16, 16], true),
      mm([8, 2048, 256], [8, 2048, 256], [8, 256, 256], true), mm([512, 256], [256, 1], [512, 1]), mm([16, 64], [64, 64], [16, 64], false, true),
    ];
    const want = calls.map((c) => fresh(c));
    // two passes: the first fills the caches (each shape after another), the second replays them
    const got = inOrder([...calls, ...calls]);
    for (let i = 0; i < got.length; i++) expect(got[i]).toEqual(want[i % calls.length]);
    // own plans: different problems, different launches (the split-K ones launch twice and use scratch)
    expect(want[0]).not.toEqual(want[1]);
    expect(want[0]).not.toEqual(want[5]);
    expect(want[3].filter((l) => l.includes("splitk-sum")).length).toBe(1);
  });

  test("matmul: a tuning knob or other limits drop the cached plans", () => {
    const split = mm([8, 2048, 256], [8, 2048, 256], [8, 256, 256], true);
    const r = recorder();
    split(r.ctx);
    expect(r.log.length).toBe(3); // partial products, the sum, the scratch's release
    const saved = matmulTuning.splitK;
    matmulTuning.splitK = false;
    try {
      const n = r.log.length;
      split(r.ctx);
      expect(r.log.length - n).toBe(1); // unsplit: one launch, no scratch
    } finally {
      matmulTuning.splitK = saved;
    }
    // the same problem on a device with a smaller grid limit: its own z chunks
    const small = { ...LIMITS, maxComputeWorkgroupsPerDimension: 16 };
    const big = mm([100, 64, 64], [100, 64, 64], [100, 64, 64]);
    const [onBig, onSmall, onBigAgain] = [inOrder([big])[0], inOrder([big], small)[0], inOrder([big])[0]];
    expect(onSmall.length).toBeGreaterThan(onBig.length);
    expect(onSmall).toEqual(fresh(big, small));
    expect(onBigAgain).toEqual(onBig);
  });

  test("reduce and maxGrad: shapes and ops in a row get their own plans (split reductions too); a knob drops them", () => {
    const mg = (shape: number[], axes: number[]): Call => (ctx) => {
      const o = shape.map((d, i) => (axes.includes(i) ? 1 : d));
      maxGradKernel(ctx, [arg("x", shape), arg("y", o), arg("g", o)], arg("dx", shape), { axes });
    };
    const calls = [
      red("sum", [64, 256], [1]), red("sum", [8, 64, 32], [1]), red("max", [8, 64, 32], [1]), red("sum", [4096, 50], [0]),
      red("sum", [2, 3, 4, 5, 6], [1, 3]), mg([64, 4], [1]), mg([8, 64, 32], [1]),
    ];
    const want = calls.map((c) => fresh(c));
    const got = inOrder([...calls, ...calls]);
    for (let i = 0; i < got.length; i++) expect(got[i]).toEqual(want[i % calls.length]);
    expect(want[1]).not.toEqual(want[2]);
    expect(want[3].length).toBe(3); // [4096, 50] over axis 0 (50 outputs): two passes and the scratch's release
    const saved = reduceTuning.minChunk;
    reduceTuning.minChunk = 1 << 20; // no chunk that short: one pass
    try {
      expect(inOrder([calls[3]])[0].length).toBe(1);
    } finally {
      reduceTuning.minChunk = saved;
    }
    expect(inOrder([calls[3]])[0]).toEqual(want[3]);
  });

  test("row kernels: shapes in a row get their own plans; another eps or scale, rmsNorm with its gain or its two-output VJP, is another plan", () => {
    const sm = (shape: number[]): Call => (ctx) => softmaxKernel(ctx, [arg("x", shape)], arg("y", shape));
    const rms = (shape: number[], eps: number): Call => (ctx) => rmsNormKernel(ctx, [arg("x", shape)], arg("y", shape), { eps });
    // rmsNorm with its gain: the same pipeline, another mode word, so a plan of its own
    const rmsw = (shape: number[], eps: number): Call => (ctx) => rmsNormKernel(ctx, [arg("x", shape), arg("w", shape.slice(-1))], arg("y", shape), { eps });
    // rmsNormGradW: the VJP with a gain, two outputs (dx, g ⊙ x̂) from [g, x, w]; rmsNormGrad beside it
    const rmsgw = (shape: number[], eps: number): Call => (ctx) =>
      rmsNormGradWKernel(ctx, [arg("g", shape), arg("x", shape), arg("w", shape.slice(-1))], [arg("dx", shape), arg("gx", shape)], { eps });
    const rmsg = (shape: number[], eps: number): Call => (ctx) => rmsNormGradKernel(ctx, [arg("g", shape), arg("x", shape)], arg("dx", shape), { eps });
    const msm = (shape: number[], scale: number): Call => (ctx) =>
      maskedSoftmaxKernel(ctx, [arg("x", shape), arg("v", shape)], arg("y", shape), { scale });
    const calls = [
      sm([16, 64]), sm([16, 256]), sm([3, 16, 64]), rms([16, 256], 1e-5), rms([16, 256], 1e-6), rms([8, 256], 1e-5), msm([4, 50], 0.125), msm([4, 50], -0),
      rmsw([16, 256], 1e-5), rms([16, 256], 1e-5), rmsgw([16, 256], 1e-5), rmsg([16, 256], 1e-5), rmsgw([16, 256], 1e-6),
    ];
    const want = calls.map((c) => fresh(c));
    const got = inOrder([...calls, ...calls]);
    for (let i = 0; i < got.length; i++) expect(got[i]).toEqual(want[i % calls.length]);
    expect(want[0]).not.toEqual(want[2]); // 16 rows, then 48
    expect(want[3]).not.toEqual(want[4]); // eps is a param word
    expect(want[6]).not.toEqual(want[7]);
    // [label, key, wgsl, buffers, params, groups]: params word 2 is the row pass's mode
    const launch = (k: number) => JSON.parse(want[k][0]) as [string, string, string, unknown, number[], number[]];
    expect([launch(3)[1], launch(3)[4][2]]).toEqual(["rowpair:v4x4:t16", 0]); // rows of whole vec4s: the vec4 shader (up to 64 of them: 16 threads a row)
    expect([launch(8)[1], launch(8)[4][2]]).toEqual(["rowpair:v4x4:t16", 4]);
    expect(want[9]).toEqual(want[3]); // the unweighted plan of that shape, not the weighted one
    // the two-output VJP: a shader of its own (rmsNormGrad's code, mode 1, with the gain and a
    // second output bound), so the existing row-pair pipelines keep their keys and WGSL
    expect([launch(10)[1], launch(10)[4][2]]).toEqual(["rowpair:gain:v4x4:t16", 1]);
    expect((launch(10)[3] as [string][]).map((b) => b[0])).toEqual(["dx", "x", "g", "w", "gx"]);
    expect([launch(11)[1], launch(11)[4][2]]).toEqual(["rowpair:v4x4:t16", 1]);
    expect(launch(11)[2]).toBe(launch(3)[2]); // rmsNormGrad and rmsNorm: one pipeline
    expect(launch(10)[2]).not.toBe(launch(11)[2]);
    expect(want[12]).not.toEqual(want[10]); // eps is a param word here too
  });

  test("the caches stay bounded: many shapes keep at most max plans, and an evicted shape replans to the same launches", () => {
    const first = mm([16, 64], [64, 64], [16, 64]);
    const want = fresh(first);
    const r = recorder();
    first(r.ctx);
    for (let m = 1; m <= matmulPlans.max + 40; m++) mm([m, 8], [8, 8], [m, 8])(r.ctx);
    expect(matmulPlans.size).toBe(matmulPlans.max);
    for (let n = 1; n <= reducePlans.max + 10; n++) red("sum", [n, 3], [1])(r.ctx);
    expect(reducePlans.size).toBe(reducePlans.max);
    expect(inOrder([first])[0]).toEqual(want); // long evicted: planned again
  });

  test("PlanCache: oldest dropped at max, cleared by a changed knob or other limits", () => {
    const knobs = { a: 1, b: "x" };
    const c = new PlanCache<number>(knobs, 3);
    const L1 = {}, L2 = {};
    expect(c.get("k0", L1)).toBe(undefined);
    for (let i = 0; i < 4; i++) c.set(`k${i}`, i);
    expect(c.size).toBe(3);
    expect(c.get("k0", L1)).toBe(undefined); // the oldest went
    expect(c.get("k3", L1)).toBe(3);
    knobs.b = "y";
    expect(c.get("k3", L1)).toBe(undefined);
    expect(c.size).toBe(0);
    c.set("k3", 3);
    expect(c.get("k3", L1)).toBe(3);
    expect(c.get("k3", L2)).toBe(undefined);
    expect(c.size).toBe(0);
  });
});
