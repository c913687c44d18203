/**
 * The fused selective scan's single-pass look-back forward (ssmTuning.fwdAlgo = "lookback",
 * kernels/ssm.ts fwdLookbackWgsl): selectiveScan (y) and selectiveScanState (the last state) on
 * WebGPU against the CPU backend, with the forward forced into chunks of 1, 3, 5 and 8 steps
 * (L a multiple of T and not; up to 300 chunks in one chain of look-backs), Di past one
 * workgroup of 64 channels (a partial channel block), N = 4, 13 (padded to 16) and 16 with B, C
 * bound as vec4 and as scalars, B = 1 and 2, a nonzero h0, and one chunk (the plain walk, which
 * the knob leaves alone), each with the look-back free to stop at the first inclusive state and
 * forced to compose every aggregate back to chunk 0 (ssmTuning.fwdLookbackAggOnly). Each case
 * also asserts that the look-back kernel is what ran, and that selectiveScan asked for its state
 * with nothing to differentiate gives the same values from one look-back forward.
 * The gradient (its own passes) is checked once through the autodiff, with the incoming
 * gradients computed from the look-back's y and last state.
 * Tolerance as in webgpu-parity.test.ts for the fused selective scan: 1e-4·(1 + |cpu|). Last,
 * the step loops in blocks of U steps (ssmTuning.stepBlock, bwdStepBlock), loaded one block ahead
 * or not (stepPrefetch), give the bits of one step at a time, forward and backward, and the
 * forward's default loop is the one the device should run.
 */
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import { keysOf } from "./webgpu-matmul-support.ts";
import { ssmForwardPlan, ssmTuning } from "../src/webgpu/kernels/ssm.ts";

let seed = 5150;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const randArray = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());

/** x, Δ, A, B, C, h0 for [B, L, Di] and N states (Δ > 0, A < 0 as the model makes them). */
function inputs(B: number, L: number, Di: number, N: number): { shapes: number[][]; data: Float32Array[] } {
  const shapes = [[B, L, Di], [B, L, Di], [Di, N], [B, L, N], [B, L, N], [B, Di, N]];
  const ranges: [number, number][] = [[-1, 1], [0.01, 0.5], [-3, -0.2], [-2, 2], [-2, 2], [-1, 1]];
  return { shapes, data: shapes.map((s, k) => randArray(s.reduce((p, q) => p * q, 1), ...ranges[k])) };
}

/** y and the last state on backend b (no buffer left alive): two primitives, or `oneCall` selectiveScan with its state. */
async function forward(b: Backend, shapes: number[][], data: Float32Array[], oneCall = false): Promise<Float32Array[]> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
  let outs: Tensor[];
  if (oneCall) {
    const r = T.noGrad(() => T.selectiveScan(t[0], t[1], t[2], t[3], t[4], t[5], true));
    outs = [r.y, r.state!];
  } else outs = [T.bind("selectiveScan", t, {}), T.bind("selectiveScanState", t, {})];
  const res = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
  T.disposeTree([t, outs]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return res;
}

function expectClose(what: string, got: Float32Array, want: Float32Array): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])))) {
      throw new Error(`${what}: element ${i}: webgpu ${got[i]} vs cpu ${want[i]}`);
    }
  }
}

test("webgpu selective scan, look-back forward: y and the last state equal the CPU backend (many chunks, odd shapes)", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const cpu = T.setBackend("cpu");
  const was = { ...ssmTuning };
  try {
    // [B, L, Di, N, forward chunk length, vec4 B/C on (used when N % 4 == 0)]
    const cases: [number, number, number, number, number, boolean][] = [
      [1, 50, 3, 4, 3, true], // 17 chunks, the last one short
      [2, 20, 3, 4, 3, false],
      [2, 37, 70, 13, 5, false], // two channel blocks a (b, chunk), the second partial; N padded
      [2, 64, 5, 16, 8, true], // L a multiple of T
      [1, 41, 6, 16, 8, false],
      [1, 300, 2, 4, 1, true], // 300 chunks of one step: a long chain of look-backs
      [2, 10, 3, 13, 16, false], // one chunk: the plain walk
    ];
    // aggOnly: every carry composed from the aggregates back to chunk 0 (whichever order the
    // workgroups ran in; else the walk stops at the first inclusive state, often the previous
    // chunk's, and which path runs depends on timing)
    // and the three chunked passes on the same cases (the other algorithm, kept selectable)
    const algos = [["lookback", false], ["lookback", true], ["chunked", false]] as const;
    for (const [B, L, Di, N, fwdT, vec] of cases) for (const [algo, aggOnly] of algos) {
      const what = JSON.stringify({ B, L, Di, N, fwdT, vec, algo, aggOnly });
      const { shapes, data } = inputs(B, L, Di, N);
      const want = await forward(cpu, shapes, data);
      Object.assign(ssmTuning, { fwdAlgo: algo, fwdForceT: fwdT, fwdVecBC: vec, fwdLookbackAggOnly: aggOnly });
      let got: Float32Array[], keys: string[], nC: number;
      try {
        nC = ssmForwardPlan(B, L, Di).nC;
        ({ result: got, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => forward(gpu, shapes, data)));
      } finally {
        Object.assign(ssmTuning, was);
      }
      // both calls (y and the last state) ran the look-back kernel exactly when chunked
      const lb = algo === "lookback";
      expect(keys.filter((k) => k.startsWith("ssm:flb:")).length).toBe(nC > 1 && lb ? 2 : 0);
      expect(keys.filter((k) => k.startsWith("ssm:fc")).length).toBe(nC > 1 && !lb ? 5 : 0); // passes 1-3 for y, 1-2 for the state
      expect(nC).toBe(Math.ceil(L / Math.min(fwdT, L)));
      expectClose(`selectiveScan ${what}`, got[0], want[0]);
      expectClose(`selectiveScanState ${what}`, got[1], want[1]);
      // both from one forward (selectiveScan with its state, nothing to differentiate): the
      // look-back's status words give the state (one copy kernel), the other forwards run twice
      Object.assign(ssmTuning, { fwdAlgo: algo, fwdForceT: fwdT, fwdVecBC: vec, fwdLookbackAggOnly: aggOnly });
      try {
        ({ result: got, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => forward(gpu, shapes, data, true)));
      } finally {
        Object.assign(ssmTuning, was);
      }
      expect(keys.filter((k) => k.startsWith("ssm:flb:")).length).toBe(nC > 1 && lb ? 1 : 0);
      expect(keys.filter((k) => k === "ssm:lbstate").length).toBe(nC > 1 && lb ? 1 : 0);
      expectClose(`selectiveScan with its state, y ${what}`, got[0], want[0]);
      expectClose(`selectiveScan with its state, state ${what}`, got[1], want[1]);
    }
  } finally {
    Object.assign(ssmTuning, was);
    T.setBackend(gpu);
  }
});

test("webgpu selective scan, look-back forward: the gradient through it equals the CPU backend's", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const cpu = T.setBackend("cpu");
  const was = { ...ssmTuning };
  const [B, L, Di, N] = [2, 23, 4, 4];
  const { shapes, data } = inputs(B, L, Di, N);
  const wy = randArray(B * L * Di, -1, 1);
  // Σ wy ⊙ y² + Σ hL²: the selective scan's VJP does not read y, so the loss squares y and hL to
  // make the backward's incoming gradients (2 wy ⊙ y, 2 hL) come from the look-back forward
  const grads = async (b: Backend): Promise<Float32Array[]> => {
    T.setBackend(b);
    const before = b.liveBuffers();
    const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
    const w = T.fromArray(wy, [B, L, Di], "f32");
    const loss = (p: Tensor[]) => {
      const y = T.bind("selectiveScan", p, {});
      const hL = T.bind("selectiveScanState", p, {});
      return T.add(T.sum(T.mul(T.mul(y, y), w)), T.sum(T.mul(hL, hL)));
    };
    const g = T.grad(loss)(t);
    const res = (await Promise.all(g.map((o) => o.data()))) as Float32Array[];
    T.disposeTree([t, w, g]);
    if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
    return res;
  };
  try {
    const want = await grads(cpu);
    Object.assign(ssmTuning, { fwdAlgo: "lookback", fwdForceT: 4, fwdLookbackAggOnly: true });
    let got: Float32Array[];
    try {
      got = await grads(gpu);
    } finally {
      Object.assign(ssmTuning, was);
    }
    ["x", "Δ", "A", "B", "C", "h0"].forEach((name, k) => expectClose(`d${name}`, got[k], want[k]));
  } finally {
    Object.assign(ssmTuning, was);
    T.setBackend(gpu);
  }
});

/**
 * The step-loop variants of `blocks` ([steps a block, B and C ahead, prefetched one block ahead])
 * against the first, one step at a time: y and the last state (and with `grads` the six gradients
 * of Σ wy ⊙ y² + Σ hL², the backward's loops blocked alike) bit for bit, on both forward
 * algorithms, over cases of blocks past a chunk's end, N padded and a partial channel block.
 */
async function stepLoopBits(blocks: readonly [number, boolean, boolean][], grads: boolean): Promise<void> {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const was = { ...ssmTuning };
  const run = async (shapes: number[][], data: Float32Array[], wy: Float32Array): Promise<Float32Array[]> => {
    const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
    const w = T.fromArray(wy, shapes[0], "f32");
    const fwd = (p: Tensor[]) => [T.bind("selectiveScan", p, {}), T.bind("selectiveScanState", p, {})];
    const loss = (p: Tensor[]) => {
      const [y, hL] = fwd(p);
      return T.add(T.sum(T.mul(T.mul(y, y), w)), T.sum(T.mul(hL, hL)));
    };
    const outs = [...fwd(t), ...(grads ? T.grad(loss)(t) : [])];
    const res = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
    T.disposeTree([t, w, outs]);
    return res;
  };
  try {
    // [B, L, Di, N, forward chunk, backward chunk, vec4 B/C]: blocks against chunks of 5, 7, 8
    // and 16 (blocks past a chunk's end), N padded, a partial channel block
    const cases: [number, number, number, number, number, number, boolean][] = [
      [2, 37, 70, 16, 5, 7, true],
      [1, 50, 3, 13, 7, 16, false],
      [2, 64, 5, 16, 8, 8, true],
    ];
    for (const [B, L, Di, N, fwdT, bwdT, vec] of cases) {
      const { shapes, data } = inputs(B, L, Di, N);
      const wy = randArray(B * L * Di, -1, 1);
      for (const algo of ["lookback", "chunked"] as const) {
        let ref: Float32Array[] | null = null;
        for (const [U, bc, pf] of blocks) {
          const what = JSON.stringify({ B, L, Di, N, fwdT, bwdT, vec, algo, U, bc, pf });
          // aggOnly: the look-back composes the same carries whatever order workgroups ran in
          Object.assign(ssmTuning, {
            fwdAlgo: algo, fwdForceT: fwdT, forceChunk: bwdT, fwdVecBC: vec, bwdVecBC: vec, fwdLookbackAggOnly: true,
            stepBlock: U, stepBlockBC: bc, stepPrefetch: pf, stepSoftwareOne: false,
            ...(grads ? { bwdStepBlock: U, bwdStepBlockBC: bc, bwdStepPrefetch: pf } : {}),
          });
          let got: Float32Array[], keys: string[];
          try {
            ({ result: got, keys } = await keysOf(gpu as unknown as WebGpuBackend, () => run(shapes, data, wy)));
          } finally {
            Object.assign(ssmTuning, was);
          }
          // the blocked kernels ran: the forward's (look-back or passes 1 and 3) and the backward's
          const blocked = keys.filter((k) => k.includes(`:u${U}${bc ? "bc" : ""}${pf ? "pf" : ""}`));
          expect(blocked.some((k) => k.startsWith(algo === "lookback" ? "ssm:flb:" : "ssm:fc3:"))).toBe(U > 1 || pf);
          if (grads) expect(blocked.some((k) => k.startsWith("ssm:bwdp:"))).toBe(U > 1 || pf);
          if (!ref) {
            ref = got;
            continue;
          }
          got.forEach((v, k) => {
            const bad = v.findIndex((e, i) => !Object.is(e, ref![k][i]));
            if (bad >= 0) throw new Error(`${what}: output ${k}, element ${bad}: ${v[bad]} blocked vs ${ref![k][bad]} one step at a time`);
          });
        }
      }
    }
  } finally {
    Object.assign(ssmTuning, was);
  }
}

test("webgpu selective scan: the forward's step loops in blocks (ssmTuning.stepBlock, stepBlockBC, stepPrefetch) give the bits of one step at a time", async () => {
  // one at a time; 4 with B, C ahead; 8 prefetched (a GPU's default); 3 prefetched (blocks past a chunk's end)
  await stepLoopBits([[1, false, false], [4, true, false], [8, false, true], [3, false, true]], false);
});

test("webgpu selective scan: blocked step loops in the backward too (bwdStepBlock, …) give the gradients of one step at a time", async () => {
  await stepLoopBits([[1, false, false], [4, true, false], [3, false, true]], true);
});

test("webgpu selective scan: the forward's step loops by default: one step at a time on a software adapter, 8 prefetched on a GPU", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend() as unknown as WebGpuBackend;
  const was = { ...ssmTuning };
  try {
    Object.assign(ssmTuning, { fwdForceT: 16 }); // the look-back forward (several chunks)
    const [B, L, Di, N] = [1, 40, 8, 16];
    const { shapes, data } = inputs(B, L, Di, N);
    const { keys } = await keysOf(gpu, async () => {
      const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
      const y = T.bind("selectiveScan", t, {});
      const v = await y.data();
      T.disposeTree([t, y]);
      return v;
    });
    const flb = keys.filter((k) => k.startsWith("ssm:flb:"));
    expect(flb.length).toBe(1);
    const software = gpu.ctx.software === true && ssmTuning.stepSoftwareOne;
    const { U, bc, pf } = { U: ssmTuning.stepBlock, bc: ssmTuning.stepBlockBC, pf: ssmTuning.stepPrefetch };
    const want = software || (U === 1 && !pf) ? "" : `:u${U}${bc ? "bc" : ""}${pf ? "pf" : ""}`;
    expect(flb[0]).toBe(`ssm:flb:q4:v${want}`);
  } finally {
    Object.assign(ssmTuning, was);
  }
});
