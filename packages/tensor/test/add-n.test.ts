/**
 * addN (ops/elementwise.ts): several f32 tensors of one shape added in order in one launch per 7
 * inputs, the same bits as a chain of `add`s; and the backward pass, which now sums each tensor's
 * gradient contributions with it (autodiff.ts), gives the same bits as the chain it replaced.
 */
import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { ADD_N_MAX, add, addN, bind, fromArray, mul, readCounters, resetCounters, sum, tidy, valueAndGrad, type Tensor } from "../src/index.ts";

/** Values of mixed magnitude, so that the order of the adds shows in the rounding. */
function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 2 ** 32) - 0.5) * 10 ** ((s >>> 7) % 7 - 3);
  }
  return a;
}

const chain = (xs: Tensor[]) => xs.slice(1).reduce((acc, x) => add(acc, x), xs[0]);

for (const b of testBackends()) {
  describe(`[${b}] addN`, () => {
    test("equals a chain of adds bit for bit, for 1 to 16 inputs and odd shapes", async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        await fc.assert(fc.asyncProperty(
          fc.integer({ min: 1, max: 16 }), fc.constantFrom<number[]>([1], [7], [3, 5], [2, 3, 65], [1029]), fc.integer({ min: 1, max: 1e6 }),
          async (n, shape, seed) => {
            const size = shape.reduce((p, d) => p * d, 1);
            const xs = Array.from({ length: n }, (_, k) => fromArray(values(size, seed + k), shape));
            const [got, want] = tidy(() => [addN(xs), chain(xs)]);
            expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
            for (const t of [...xs, got, want]) if (!t.disposed) t.dispose();
          },
        ), { numRuns: 12 });
      });
    });

    test("one launch per 7 inputs (where the backend runs it natively)", async () => {
      if (!(await useBackend(b))) return;
      const xs = Array.from({ length: 13 }, (_, k) => fromArray(values(64, k), [64]));
      resetCounters();
      const y = addN(xs);
      const launches = readCounters().launches;
      // wasm keeps the chain (prefersComposite): 12 adds; elsewhere 13 inputs = 7 + (1 + 6): 2 launches
      expect(launches).toBe(b === "wasm" ? 12 : 2);
      for (const t of [...xs, y]) t.dispose();
    });

    test("a tensor used 9 times: its gradient is the chain of its contributions in arrival order, bit for bit", async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const cs = Array.from({ length: 9 }, (_, k) => fromArray(values(300, 40 + k), [3, 100]));
        const x = fromArray(values(300, 7), [3, 100]);
        const f = (p: { x: Tensor }) => cs.reduce<Tensor | null>((acc, c) => (acc ? add(acc, sum(mul(p.x, c))) : sum(mul(p.x, c))), null)!;
        const { value, grads } = valueAndGrad(f)({ x });
        // the backward pass visits the last use first
        const want = tidy(() => chain([...cs].reverse()));
        expect(Array.from(await grads.x.data())).toEqual(Array.from(await want.data()));
        for (const t of [...cs, x, value, grads.x, want]) t.dispose();
      });
    });

    test("clear errors: no inputs, mixed shapes or dtypes at the primitive, too many inputs", async () => {
      if (!(await useBackend(b))) return;
      expect(() => addN([])).toThrow(/at least one input/);
      const a = fromArray(new Float32Array(4), [4]), c = fromArray(new Float32Array(3), [3]);
      const i = fromArray(new Int32Array(4), [4], "i32");
      expect(() => bind("addN", [a, c, a], {})).toThrow(/f32 of one shape/);
      expect(() => bind("addN", [a, i, a], {})).toThrow(/f32 of one shape/);
      expect(() => bind("addN", Array.from({ length: ADD_N_MAX + 1 }, () => a), {})).toThrow(/2 to 7 inputs/);
      // the op itself falls back to the chain where the primitive does not apply (broadcasting)
      const s = addN([a, fromArray(new Float32Array([1]), [1]), a]);
      expect(Array.from(await s.data())).toEqual([1, 1, 1, 1]);
      for (const t of [a, c, i, s]) t.dispose();
    });
  });
}
