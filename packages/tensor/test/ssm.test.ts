import fc from "fast-check";
import * as T from "../src/index.ts";
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";

type Inputs = { x: T.Tensor; d: T.Tensor; A: T.Tensor; Bm: T.Tensor; C: T.Tensor; h0: T.Tensor };

function inputs(B: number, L: number, Di: number, N: number, seed: number): Inputs {
  let s = seed;
  const rnd = (shape: number[], lo: number, hi: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      data[i] = lo + (hi - lo) * (s / 2 ** 32);
    }
    return T.fromArray(data, shape);
  };
  return {
    x: rnd([B, L, Di], -1, 1), d: rnd([B, L, Di], 0.01, 0.5), A: rnd([Di, N], -3, -0.2),
    Bm: rnd([B, L, N], -1, 1), C: rnd([B, L, N], -1, 1), h0: rnd([B, Di, N], -0.5, 0.5),
  };
}

async function valueAndGrads(f: typeof T.selectiveScan, p: Inputs): Promise<Float32Array[]> {
  const loss = (q: Inputs) => {
    const { y, state } = f(q.x, q.d, q.A, q.Bm, q.C, q.h0, true);
    return T.add(T.sum(T.mul(y, T.sin(y))), T.sum(T.mul(state!, state!)));
  };
  const { value, grads } = T.valueAndGrad(loss)(p);
  const out = [await value.data(), ...(await Promise.all(Object.values(grads).map((g) => g.data())))] as Float32Array[];
  value.dispose();
  T.disposeTree(grads);
  return out;
}

for (const b of testBackends()) {
  test(`[${b}] fused selectiveScan equals the composite reference: value, state and all six gradients`, async () => {
    if (!(await useBackend(b))) return;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.nat(), async (B, L, Di, N, seed) => {
        const p = inputs(B, L, Di, N, seed);
        await expectNoLeak(async () => {
          const fused = await valueAndGrads(T.selectiveScan, p);
          const ref = await valueAndGrads(T.selectiveScanReference, p);
          fused.forEach((arr, k) => {
            arr.forEach((v, i) => {
              const r = ref[k][i];
              if (Math.abs(v - r) > 1e-4 * (1 + Math.abs(r))) throw new Error(`output ${k} element ${i}: fused ${v} vs reference ${r}`);
            });
          });
        });
        T.disposeTree(p);
      }),
      { numRuns: 25 },
    );
  });

  test(`[${b}] selectiveScan with its state and nothing to differentiate: one multi-output launch, the two primitives' values`, async () => {
    if (!(await useBackend(b))) return;
    // L = 0 (the state is h0), one step, and lengths long enough for the chunked/look-back forwards
    for (const [B, L, Di, N] of [[1, 0, 3, 4], [2, 1, 5, 3], [2, 37, 70, 16], [1, 600, 8, 16], [3, 9, 1, 1]]) {
      const p = inputs(B, L, Di, N, 7 * L + Di);
      const args = [p.x, p.d, p.A, p.Bm, p.C, p.h0] as const;
      await expectNoLeak(async () => {
        T.resetCounters();
        const both = T.noGrad(() => T.selectiveScan(...args, true));
        const launches = T.readCounters().launches;
        const y = T.bind("selectiveScan", [...args], {}), st = T.bind("selectiveScanState", [...args], {});
        expect(launches).toBe(1);
        expect(both.state!.shape).toEqual([B, Di, N]);
        const [gy, gs, wy, ws] = (await Promise.all([both.y, both.state!, y, st].map((t) => t.data()))) as Float32Array[];
        // the CPU and wasm kernels compute both in one walk (the same bits); WebGPU's look-back
        // composes carries in whichever order its workgroups ran
        const tol = b === "webgpu" ? 1e-4 : 0;
        for (const [what, got, want] of [["y", gy, wy], ["state", gs, ws]] as const) {
          expect(got.length).toBe(want.length);
          for (let i = 0; i < want.length; i++) {
            if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) throw new Error(`[${B},${L},${Di},${N}] ${what}[${i}]: ${got[i]} vs ${want[i]}`);
          }
        }
        T.disposeTree([both, y, st]);
      });
      // recording a gradient: the two primitives (the multi-output one has no VJP)
      const { value, grads } = T.valueAndGrad((q: { x: T.Tensor }) => T.sum(T.selectiveScan(q.x, p.d, p.A, p.Bm, p.C, p.h0, true).state!))({ x: p.x });
      expect(grads.x.shape).toEqual(p.x.shape);
      T.disposeTree([value, grads, p]);
    }
  });

  test(`[${b}] selectiveScan names every shape when they do not fit`, async () => {
    if (!(await useBackend(b))) return;
    const p = inputs(1, 4, 3, 2, 1);
    const badA = T.zeros([4, 2]);
    expect(() => T.selectiveScan(p.x, p.d, badA, p.Bm, p.C, p.h0)).toThrow(/selectiveScan: .*A \[4, 2\].*x \[1, 4, 3\]|x \[1, 4, 3\].*A \[4, 2\]/);
    T.disposeTree([p, badA]);
  });
}
