/**
 * rmsNormScores (ops/linear-fused.ts): RMSNorm with its gain and two gated scorers of its output,
 * against the ops it replaces (rmsNormalize, then linearSigmoidGate for each scorer), on every
 * backend:
 *
 * - rows of 256 (the small model's d: 4 vec4s a thread on the GPU), 12, 64 and 512 (1 to 8 vec4s
 *   a thread), 10 (no whole vec4s) and 516 (wider than the fused shader: the GPU runs the three
 *   kernels); row counts that are no multiple of the GPU's 4 rows a workgroup; scores on both
 *   sides of the thresholds. Bit for bit on the CPU kernels, within f32 rounding on the GPU (the
 *   gates there: exactly score > tau of its own scores, and the ops' gate wherever the score is
 *   not within rounding of tau);
 * - one launch where it fuses (cpu, webgpu), the ops on wasm and where a gradient is recorded
 *   (whose gradients are the ops');
 * - on the GPU, a device with 8 storage buffers a stage (the fused shader binds 10): the three kernels;
 * - clear errors for a wrong gain or scorer shape.
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Tensor } from "../src/index.ts";
import { mulberry32 } from "./gradcheck.ts";
import { close, recordKeys } from "./indexed-attention-support.ts";

interface Case {
  shape: number[];
  x: Float32Array;
  gain: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  b1: number;
  b2: number;
  tau1: number;
  tau2: number;
}

function makeCase(shape: number[], seed: number): Case {
  const rand = mulberry32(seed);
  const d = shape[shape.length - 1], n = shape.reduce((a, b) => a * b, 1);
  const u = (k: number, a = 1) => Float32Array.from({ length: k }, () => (rand() * 2 - 1) * a);
  // scorer weights of ~1/√d: the dots spread over a few units, so both gates open and close
  return { shape, x: u(n, 3), gain: Float32Array.from(u(d, 0.5), (v) => 1 + v), w1: u(d, 2 / Math.sqrt(d)), w2: u(d, 2 / Math.sqrt(d)), b1: 0.1, b2: -0.2, tau1: 0.5, tau2: 0.45 };
}

const CASES = [makeCase([2, 5, 256], 1), makeCase([3, 7, 12], 2), makeCase([1, 70, 64], 3), makeCase([2, 3, 512], 4), makeCase([4, 6, 10], 5), makeCase([1, 9, 516], 6)];

interface Out {
  h: Float32Array;
  score: Float32Array;
  gate: Float32Array;
  gated: Float32Array;
  launches: number;
}

type Impl = (x: Tensor, gain: Tensor, s1: T.GateScorer, s2: T.GateScorer) => { h: Tensor; score: Tensor; gate: Tensor; gated: Tensor };
const fused: Impl = (x, gain, s1, s2) => T.rmsNormScores(x, gain, s1, s2, 1e-5);
const ops: Impl = (x, gain, s1, s2) => {
  const h = T.rmsNormalize(x, 1e-5, gain);
  const [score, gate] = T.linearSigmoidGate(h, s1.w, s1.b, s1.tau);
  const [, , gated] = T.linearSigmoidGate(h, s2.w, s2.b, s2.tau);
  return { h, score, gate, gated };
};

function inputs(c: Case) {
  const d = c.shape[c.shape.length - 1];
  const x = T.fromArray(c.x, c.shape), gain = T.fromArray(c.gain, [d]);
  const s1 = { w: T.fromArray(c.w1, [d, 1]), b: T.fromArray([c.b1], [1]), tau: c.tau1 };
  const s2 = { w: T.fromArray(c.w2, [d, 1]), b: T.fromArray([c.b2], [1]), tau: c.tau2 };
  return { x, gain, s1, s2, dispose: () => T.disposeTree([x, gain, s1.w, s1.b, s2.w, s2.b]) };
}

async function run(c: Case, impl: Impl): Promise<Out> {
  const i = inputs(c);
  try {
    T.resetCounters();
    const r = T.tidy(() => impl(i.x, i.gain, i.s1, i.s2));
    const launches = T.readCounters().launches;
    const [h, score, gate, gated] = (await Promise.all([r.h, r.score, r.gate, r.gated].map((t) => t.data()))) as Float32Array[];
    T.disposeTree(r);
    return { h, score, gate, gated, launches };
  } finally {
    i.dispose();
  }
}

/** The gates of `got` are its own scores' tests; they equal `want`'s where the score is clear of tau. Counts the open and closed gates into `seen`. */
function checkGates(label: string, got: Out, want: Out, c: Case, tol: number, seen: number[]): void {
  for (let i = 0; i < got.score.length; i++) {
    expect(`${label} gate ${i}: ${got.gate[i]}`).toBe(`${label} gate ${i}: ${got.score[i] > Math.fround(c.tau1) ? 1 : 0}`);
    if (Math.abs(want.score[i] - c.tau1) > tol) expect(`${label} gate ${i}: ${got.gate[i]}`).toBe(`${label} gate ${i}: ${want.gate[i]}`);
    const clear = Math.abs(want.gated[i] === 0 ? 0 : want.gated[i] - c.tau2) > tol;
    if (clear) expect(Math.abs(got.gated[i] - want.gated[i]) <= tol).toBe(true);
    seen[got.gate[i]]++;
    seen[2 + (got.gated[i] > 0 ? 1 : 0)]++;
  }
}

/** The cases exercise both sides of both thresholds. */
const bothSides = (seen: number[]) => expect(seen.every((n) => n > 10)).toBe(true);

for (const backend of testBackends()) {
  test(`[${backend}] rmsNormScores equals rmsNormalize and two linearSigmoidGates (one launch where it fuses)`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const seen = [0, 0, 0, 0];
      for (const c of CASES) {
        const label = JSON.stringify(c.shape);
        const want = await run(c, ops);
        const got = await run(c, fused);
        if (backend === "webgpu") {
          const tol = 1e-5;
          expect(`${label} ${close("h", got.h, want.h, tol)}`).toBe(`${label} ok`);
          expect(`${label} ${close("score", got.score, want.score, tol)}`).toBe(`${label} ok`);
          checkGates(label, got, want, c, tol, seen);
        } else {
          for (const k of ["h", "score", "gate", "gated"] as const) expect(`${label} ${close(k, got[k], want[k], 0)}`).toBe(`${label} ok`);
          checkGates(label, got, want, c, 0, seen);
        }
        if (backend === "wasm") expect(got.launches).toBe(want.launches);
        else expect(got.launches).toBe(1);
      }
      bothSides(seen);
    });
  });

  test(`[${backend}] rmsNormScores where a gradient is recorded: the ops, with their gradients`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const c = CASES[0];
      const i = inputs(c);
      try {
        const loss = (impl: Impl) => (ps: Tensor[]) => {
          const r = impl(ps[0], ps[1], { ...i.s1, w: ps[2] }, { ...i.s2, w: ps[3] });
          return T.add(T.add(T.sum(T.mul(r.h, r.h)), T.sum(r.score)), T.sum(r.gated));
        };
        const a = T.valueAndGrad(loss(fused))([i.x, i.gain, i.s1.w, i.s2.w]);
        const b = T.valueAndGrad(loss(ops))([i.x, i.gain, i.s1.w, i.s2.w]);
        const ga = (await Promise.all(a.grads.map((g) => g.data()))) as Float32Array[];
        const gb = (await Promise.all(b.grads.map((g) => g.data()))) as Float32Array[];
        ga.forEach((g, k) => expect(close(`grad ${k}`, g, gb[k], 0)).toBe("ok"));
        expect(ga[2].some((v) => v !== 0) && ga[3].some((v) => v !== 0)).toBe(true);
        T.disposeTree([a, b]);
      } finally {
        i.dispose();
      }
    });
  });
}

test("webgpu: rmsNormScores' fused shader where it applies, the three kernels on an 8-storage-buffer device and for rows it does not hold", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const main = T.getBackend();
  const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
  // deno-lint-ignore no-explicit-any
  const small = await createWebGpuBackend({ gpu: (main as any).acquired, limits: { maxStorageBuffersPerShaderStage: 8 } });
  try {
    const seen = [0, 0, 0, 0];
    for (const [c, fusedKey] of [[CASES[0], "rmsNormScores:v4x4"], [CASES[3], "rmsNormScores:v4x8"], [CASES[4], null], [CASES[5], null]] as const) {
      T.setBackend("cpu");
      const want = await run(c, ops);
      for (const gpu of [main, small]) {
        T.setBackend(gpu);
        const rec = recordKeys(gpu);
        const got = await run(c, fused);
        rec.restore();
        const label = `${JSON.stringify(c.shape)} ${gpu === small ? "8 buffers" : "main"}`;
        expect(`${label} ${close("h", got.h, want.h, 1e-5)}`).toBe(`${label} ok`);
        checkGates(label, got, want, c, 1e-5, seen);
        const keys = [...rec.seen].filter((k) => k.startsWith("rmsNorm") || k.startsWith("rowpair") || k.startsWith("linearSigmoidGate"));
        if (fusedKey && gpu === main) expect(keys).toEqual([fusedKey]);
        else expect(keys.some((k) => k.startsWith("rowpair")) && keys.some((k) => k.startsWith("linearSigmoidGate"))).toBe(true);
      }
    }
    bothSides(seen);
    expect(small.liveBuffers()).toBe(0);
  } finally {
    small.destroy();
    T.setBackend(main);
  }
});

test("[cpu] rmsNormScores: clear errors for a wrong gain or scorer", async () => {
  if (!(await useBackend("cpu"))) return;
  T.tidy(() => {
    const x = T.zeros([2, 3, 8]), w = T.zeros([8, 1]), b = T.zeros([1]);
    const s = { w, b, tau: 0.5 };
    expect(() => T.rmsNormScores(x, T.ones([7]), s, s, 1e-5)).toThrow(/rmsNormScores/);
    expect(() => T.rmsNormScores(x, T.ones([8]), { ...s, w: T.zeros([7, 1]) }, s, 1e-5)).toThrow(/linearSigmoid/);
    expect(() => T.rmsNormScores(x, T.ones([8]), s, s, -1)).toThrow("rmsNormScores: eps must be a number ≥ 0, got -1");
  });
});
