/**
 * The fused selective scan's forward with B_t, C_t read as vec4 (ssmTuning.fwdVecBC, used when
 * N % 4 == 0): selectiveScan, selectiveScanState and (through the sequential backward's
 * checkpointing forward) selectiveScanGrad on WebGPU against the CPU backend, chunked along L and
 * not, B > 1, N = 4 and 8, L = 0; and the same with the knob off (the scalar loads) for comparison.
 * Tolerance as in webgpu-parity.test.ts for the fused selective scan: 1e-4·(1 + |cpu|).
 */
import { test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import { ssmTuning } from "../src/webgpu/kernels/ssm.ts";

let seed = 4242;
function rand(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32;
}
const randArray = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());

async function run(b: Backend, shapes: number[][], data: Float32Array[]): Promise<Float32Array[]> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const t = data.map((d, k) => T.fromArray(d, shapes[k], "f32"));
  const outs: Tensor[] = [T.bind("selectiveScan", t.slice(0, 6), {}), T.bind("selectiveScanState", t.slice(0, 6), {}), T.bind("selectiveScanGrad", t, {})];
  const res = (await Promise.all(outs.map((o) => o.data()))) as Float32Array[];
  T.disposeTree([t, outs]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return res;
}

test("webgpu selective scan, vec4 B and C (N % 4 == 0): forward, last state and gradients equal the CPU backend", async () => {
  if (!(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  const cpu = T.setBackend("cpu");
  const was = { ...ssmTuning };
  try {
    // [B, L, Di, N, forward chunk length (0: one thread walks L), vec4 B/C on]
    const cases: [number, number, number, number, number, boolean][] = [
      [2, 37, 5, 8, 0, true], [2, 37, 5, 8, 6, true], [1, 50, 3, 4, 7, true], [1, 50, 3, 4, 7, false],
      [1, 0, 1, 4, 0, true], // L = 0: empty B and C (too small a binding for a vec4)
    ];
    for (const [B, L, Di, N, fwdT, vec] of cases) {
      const shapes = [[B, L, Di], [B, L, Di], [Di, N], [B, L, N], [B, L, N], [B, Di, N], [B, L, Di], [B, Di, N]];
      const ranges: [number, number][] = [[-1, 1], [0.01, 0.5], [-3, -0.2], [-2, 2], [-2, 2], [-0.5, 0.5], [-2, 2], [-2, 2]];
      const data = shapes.map((s, k) => randArray(s.reduce((p, q) => p * q, 1), ...ranges[k]));
      const want = await run(cpu, shapes, data);
      ssmTuning.fwdVecBC = vec;
      ssmTuning.fwdForceT = fwdT;
      ssmTuning.bwdParallel = false; // the sequential backward: its checkpoints come from the forward kernel
      let got: Float32Array[];
      try {
        got = await run(gpu, shapes, data);
      } finally {
        Object.assign(ssmTuning, was);
      }
      ["selectiveScan", "selectiveScanState", "selectiveScanGrad"].forEach((name, k) => {
        if (got[k].length !== want[k].length) throw new Error(`${name}: ${got[k].length} values, expected ${want[k].length}`);
        for (let i = 0; i < want[k].length; i++) {
          if (!(Math.abs(got[k][i] - want[k][i]) <= 1e-4 * (1 + Math.abs(want[k][i])))) {
            throw new Error(`${name} ${JSON.stringify({ B, L, Di, N, fwdT, vec })}: element ${i}: webgpu ${got[k][i]} vs cpu ${want[k][i]}`);
          }
        }
      });
    }
  } finally {
    Object.assign(ssmTuning, was);
    T.setBackend(gpu);
  }
});
