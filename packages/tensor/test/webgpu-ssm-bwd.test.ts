/**
 * The fused selective scan's parallel backward with the "segments" per-chunk kernel
 * (ssmTuning.bwdAlgo = "segments", kernels/ssm.ts chunkSegWgsl: no state scratch; segment-start
 * states in workgroup memory, a segment's states in registers): every output of
 * selectiveScanGrad (dx, dΔ, dA, dB, dC, dh0, packed) on WebGPU against the CPU backend, with the
 * backward forced into small chunks (several chunks, several groups of chunks), chunk lengths T
 * not a multiple of the segment length S (4 by default; also 1 and 8) and L not a multiple of T,
 * N = 3, 4, 13 (padded) and 16, Di = 64 and 128 (N = 16: the dB / dC terms summed over the
 * workgroup's 64 channels) and Di not a multiple of 64 (terms per channel, reduced after; N = 3,
 * 4, 13), B = 1 and 2, a nonzero h0 and nonzero
 * incoming gradients of the last state. Each case asserts from the dispatched pipeline keys that
 * the segments kernel ran (with B and C read as vec4 exactly when N % 4 == 0), once per group,
 * and the scratch kernel not; one case runs with
 * "scratch" for contrast (the keys the other way round).
 * The scratch kernel's B and C read as vec4 (ssmTuning.bwdVecBC) give the bits of the scalar
 * loads, in every kernel that reads them.
 * Tolerance as in webgpu-parity.test.ts for the fused selective scan: 1e-4·(1 + |cpu|).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend } from "../src/index.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import { keysOf } from "./webgpu-matmul-support.ts";
import { expectSameBits } from "./wasm-support.ts";
import { ssmGradPlan, ssmTuning } from "../src/webgpu/kernels/ssm.ts";

let seed = 60606;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const randArray = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());

/** x, Δ, A, B, C, h0, gy, ghL for [B, L, Di] and N states (Δ > 0, A < 0 as the model makes them). */
function inputs(B: number, L: number, Di: number, N: number): { shapes: number[][]; data: Float32Array[] } {
  const shapes = [[B, L, Di], [B, L, Di], [Di, N], [B, L, N], [B, L, N], [B, Di, N], [B, L, Di], [B, Di, N]];
  const ranges: [number, number][] = [[-1, 1], [0.01, 0.5], [-3, -0.2], [-2, 2], [-2, 2], [-1, 1], [-2, 2], [-1, 1]];
  return { shapes, data: shapes.map((s, k) => randArray(s.reduce((p, q) => p * q, 1), ...ranges[k])) };
}

/** The packed gradients of selectiveScanGrad on backend b (no buffer left alive). */
async function grad(b: Backend, shapes: number[][], data: Float32Array[]): Promise<Float32Array> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
  const g = T.bind("selectiveScanGrad", t, {});
  const res = (await g.data()) as Float32Array;
  T.disposeTree([t, g]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return res;
}

/** Each part of the packed gradient (dx | dΔ | dA | dB | dC | dh0) within 1e-4·(1 + |cpu|). */
function expectClose(what: string, got: Float32Array, want: Float32Array, [B, L, Di, N]: number[]): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  const parts: [string, number][] = [["dx", B * L * Di], ["dΔ", B * L * Di], ["dA", Di * N], ["dB", B * L * N], ["dC", B * L * N], ["dh0", B * Di * N]];
  let at = 0;
  for (const [name, size] of parts) {
    for (let e = at; e < at + size; e++) {
      if (!(Math.abs(got[e] - want[e]) <= 1e-4 * (1 + Math.abs(want[e])))) {
        throw new Error(`${what} ${name}: element ${e - at}: webgpu ${got[e]} vs cpu ${want[e]}`);
      }
    }
    at += size;
  }
  expect(at).toBe(want.length);
}

test("webgpu selective scan backward, segments kernel: every gradient equals the CPU backend (chunks, groups, odd shapes)", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const ctx = (gpu as unknown as WebGpuBackend).ctx;
  const cpu = T.setBackend("cpu");
  const was = { ...ssmTuning };
  try {
    // [B, L, Di, N, backward chunk length T, at most this many chunks a group, segment length S]
    // (the cases share pipelines where they can: on llvmpipe each new kernel with the workgroup
    // reduction takes seconds to compile, 8 s for N4 = 1 as for N4 = 4)
    const cases: [number, number, number, number, number, number, number][] = [
      [1, 50, 3, 4, 7, 3, 4], // 8 chunks (the last of 1 step) in 3 groups; T = 7: segments of 4 and 3
      [2, 37, 5, 4, 14, 2, 4], // 3 chunks of 4 + 4 + 4 + 2 steps (the last 4 + 4 + 1), 2 groups
      [2, 36, 64, 16, 6, 4, 4], // the workgroup reduction (Di = 64), segments of 4 and 2, last group short
      [1, 29, 128, 16, 6, 0, 4], // two workgroups a (b, chunk); one group of all 5 chunks
      [2, 29, 5, 13, 6, 2, 4], // N padded (B, C read as scalars)
      [2, 19, 7, 3, 6, 2, 4], // N padded, one vec4
      [2, 23, 70, 4, 8, 2, 4], // Di past one workgroup, not a multiple of 64; T a multiple of S
      [1, 40, 3, 4, 5, 3, 1], // S = 1: every state but the chunk's first from workgroup memory
      [2, 33, 6, 4, 12, 0, 8], // S = 8: T = 12 is one full and one half segment
      [1, 6, 4, 4, 32, 0, 4], // one chunk, longer than L
    ];
    for (const [B, L, Di, N, Tb, maxG, S] of cases) {
      const what = JSON.stringify({ B, L, Di, N, Tb, maxG, S });
      const { shapes, data } = inputs(B, L, Di, N);
      const want = await grad(cpu, shapes, data);
      Object.assign(ssmTuning, { bwdAlgo: "segments", forceChunk: Tb, bwdMaxGroup: maxG, bwdSegSteps: S });
      let got: Float32Array, keys: string[], plan: ReturnType<typeof ssmGradPlan>;
      try {
        plan = ssmGradPlan(B, L, Di, N, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxComputeWorkgroupStorageSize);
        ({ result: got, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => grad(gpu, shapes, data)));
      } finally {
        Object.assign(ssmTuning, was);
      }
      // the plan took the forced chunk length (workgroup memory holds its segment starts), and
      // the segments kernel ran once per group of chunks, the scratch kernel never
      expect(plan?.algo).toBe("segments");
      expect(plan?.T).toBe(Tb);
      expect(plan?.wgr).toBe(Di % 64 === 0);
      const nC = Math.ceil(L / Tb);
      expect(plan?.nC).toBe(nC);
      const groups = Math.ceil(nC / (plan?.G ?? 1));
      if (maxG > 0 && nC > maxG) expect(groups).toBeGreaterThan(1);
      const seg = keys.filter((k) => k.startsWith("ssm:bwds:"));
      expect(seg.length).toBe(groups);
      // N4, the workgroup reduction, S, B and C as vec4 (N % 4 == 0)
      for (const k of seg) expect(k).toMatch(new RegExp(`^ssm:bwds:q${Math.ceil(N / 4)}:w${Di % 64 === 0 ? 1 : 0}:s${S}:k\\d+${N % 4 === 0 ? ":v" : ""}$`));
      expect(keys.filter((k) => k.startsWith("ssm:bwdp:")).length).toBe(0);
      expectClose(`selectiveScanGrad ${what}`, got, want, [B, L, Di, N]);
    }
    // the scratch kernel on one case, for contrast
    const [B, L, Di, N] = [1, 50, 3, 4];
    const { shapes, data } = inputs(B, L, Di, N);
    const want = await grad(cpu, shapes, data);
    Object.assign(ssmTuning, { bwdAlgo: "scratch", forceChunk: 7, bwdMaxGroup: 3 });
    let got: Float32Array, keys: string[];
    try {
      ({ result: got, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => grad(gpu, shapes, data)));
    } finally {
      Object.assign(ssmTuning, was);
    }
    expect(keys.filter((k) => k.startsWith("ssm:bwdp:")).length).toBe(3);
    expect(keys.filter((k) => k.startsWith("ssm:bwds:")).length).toBe(0);
    expectClose(`selectiveScanGrad scratch ${JSON.stringify([B, L, Di, N])}`, got, want, [B, L, Di, N]);
  } finally {
    Object.assign(ssmTuning, was);
    T.setBackend(gpu);
  }
});

test("webgpu selective scan backward, scratch kernel: B and C as vec4 (N % 4 == 0) give the bits of the scalar loads, and equal the CPU", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const cpu = T.setBackend("cpu");
  const was = { ...ssmTuning };
  try {
    // [B, L, Di, N, backward chunk length T, at most this many chunks a group]
    const cases: [number, number, number, number, number, number][] = [
      [2, 36, 64, 16, 6, 4], // the workgroup reduction, several groups
      [2, 37, 5, 8, 14, 2], // terms per channel, the last chunk short
      [2, 29, 5, 13, 6, 2], // N padded: scalar loads whatever the knob
    ];
    for (const [B, L, Di, N, Tb, maxG] of cases) {
      const what = JSON.stringify({ B, L, Di, N, Tb, maxG });
      const { shapes, data } = inputs(B, L, Di, N);
      const want = await grad(cpu, shapes, data);
      const runs: { got: Float32Array; keys: string[] }[] = [];
      for (const vec of [true, false]) {
        Object.assign(ssmTuning, { bwdAlgo: "scratch", forceChunk: Tb, bwdMaxGroup: maxG, bwdVecBC: vec });
        try {
          const { result, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => grad(gpu, shapes, data));
          runs.push({ got: result, keys });
        } finally {
          Object.assign(ssmTuning, was);
        }
      }
      // the knob reaches every kernel that reads B or C: forward chunk pass, adjoint chunk pass,
      // per-chunk kernel (":v" on theirs exactly when on and N % 4 == 0), and changes no bit
      const vecRan = N % 4 === 0;
      for (const [r, on] of [[runs[0], true], [runs[1], false]] as const) {
        const v = on && vecRan;
        for (const prefix of ["ssm:fc1:", "ssm:bl1:", "ssm:bwdp:"]) {
          const ks = r.keys.filter((k) => k.startsWith(prefix));
          expect(ks.length).toBeGreaterThan(0);
          for (const k of ks) expect(k.endsWith(":v")).toBe(v);
        }
        expectClose(`selectiveScanGrad scratch vec ${on} ${what}`, r.got, want, [B, L, Di, N]);
      }
      expectSameBits(runs[0].got, runs[1].got, `${what}: vec4 vs scalar loads`);
    }
  } finally {
    Object.assign(ssmTuning, was);
    T.setBackend(gpu);
  }
});

test("webgpu selective scan backward, segments plan: the chunk fits workgroup memory, else the scratch kernel", () => {
  const was = { ...ssmTuning };
  try {
    ssmTuning.bwdAlgo = "segments";
    ssmTuning.bwdSegSteps = 4;
    // WebGPU's default 16 KiB, N = 16, Di % 64 = 0: the reduction takes 9 KiB, one segment
    // start of 64 threads 4 KiB: one fits, so chunks of at most 2 segments (8 steps)
    const p = ssmGradPlan(8, 2048, 512, 16, 2 ** 30, 16384);
    expect(p?.algo).toBe("segments");
    expect(p?.T).toBe(8);
    expect(p?.nCk).toBe(1);
    // 48 KiB: 9 segment starts would fit; the default chunk of 32 steps needs 7
    const q = ssmGradPlan(8, 2048, 512, 16, 2 ** 30, 49152);
    expect(q?.T).toBe(32);
    expect(q?.nCk).toBe(7);
    // chunks too short for the carries to fit the scratch: the scratch kernel's plan
    ssmTuning.bwdScratchElems = 2 ** 22;
    const r = ssmGradPlan(1, 65536, 64, 16, 2 ** 30, 16384);
    expect(r?.algo).toBe("scratch");
    expect(r!.T).toBeGreaterThan(8);
  } finally {
    Object.assign(ssmTuning, was);
  }
});

test("webgpu selective scan backward, scratch plan: chunks that take several groups grow to bwdLongT; one group keeps bwdMinT", () => {
  const was = { ...ssmTuning };
  try {
    ssmTuning.bwdAlgo = "scratch";
    const binding = 2 ** 31 - 4; // an H200's maxStorageBufferBindingSize
    // a training step's shape: every chunk in one group, the 32-step chunks stay
    const train = ssmGradPlan(8, 2048, 512, 16, binding);
    expect(train?.T).toBe(ssmTuning.bwdMinT);
    expect(train!.G).toBe(train!.nC);
    // batch 1, L 64K: at 32 steps the chunks need several groups, so 128-step chunks
    const long = ssmGradPlan(1, 65536, 1024, 16, binding);
    expect(long?.T).toBe(ssmTuning.bwdLongT);
    const at32 = (() => {
      ssmTuning.bwdLongT = ssmTuning.bwdMinT;
      try {
        return ssmGradPlan(1, 65536, 1024, 16, binding);
      } finally {
        ssmTuning.bwdLongT = was.bwdLongT;
      }
    })();
    expect(at32?.T).toBe(32);
    expect(at32!.G).toBeLessThan(at32!.nC);
    // a forced chunk or a forced group size (tests) is left alone
    ssmTuning.bwdMaxGroup = 4;
    expect(ssmGradPlan(1, 65536, 1024, 16, binding)?.T).toBe(32);
    ssmTuning.bwdMaxGroup = 0;
    ssmTuning.forceChunk = 64;
    expect(ssmGradPlan(1, 65536, 1024, 16, binding)?.T).toBe(64);
  } finally {
    Object.assign(ssmTuning, was);
  }
});
