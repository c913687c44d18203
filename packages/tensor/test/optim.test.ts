/**
 * Optimisation helpers (src/optim/*): AdamW against a plain-JS reference, decoupled weight decay,
 * ownership (what update disposes, what it keeps), global-norm clipping, gradient accumulation,
 * learning-rate schedules, the finiteness check, and an end-to-end fit of a linear layer with no
 * leaked buffers.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import {
  adamw, add, clipByGlobalNorm, clipScale, disposeTree, flatGradients, flattenTree, fromArray, globalNorm, grad, GradAccumulator, init, isFiniteTree, mapTree,
  div, getBackend, keep, liveBuffers, readCounters, resetCounters, matmul, mean, mul, random, schedule, sliceAxis, sqrt, square, sub, tidy, valueAndGrad, type Tensor,
} from "../src/index.ts";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

async function arr(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 1e-5, atol = 1e-7): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      throw new Error(`element ${i}: ${actual[i]} vs expected ${expected[i]} (tolerance ${tol})\nactual:   [${Array.from(actual)}]\nexpected: [${Array.from(expected)}]`);
    }
  }
}

interface RefOpts {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
  decay: boolean[];
}

/**
 * AdamW written out as in Loshchilov & Hutter's Algorithm 2 (with the bias-corrected m̂, v̂ of Adam),
 * in float64: p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
 * p ← p − lr · m̂ / (√v̂ + eps), m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ).
 */
function adamwReference(p0: number[], gradsPerStep: number[][], o: RefOpts): { p: number[]; m: number[]; v: number[] } {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  gradsPerStep.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      if (o.decay[i]) p[i] = p[i] - o.lr * o.wd * p[i];
      m[i] = o.beta1 * m[i] + (1 - o.beta1) * g[i];
      v[i] = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
      const mHat = m[i] / (1 - o.beta1 ** t);
      const vHat = v[i] / (1 - o.beta2 ** t);
      p[i] = p[i] - o.lr * mHat / (Math.sqrt(vHat) + o.eps);
    }
  });
  return { p, m, v };
}

/** Mean squared error of the linear model y = x @ w + b. */
function mse(p: { w: Tensor; b: Tensor }, x: Tensor, y: Tensor): Tensor {
  return mean(square(sub(add(matmul(x, p.w), p.b), y)));
}

// ---------------------------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------------------------

for (const b of testBackends()) {
  describe(`[${b}] adamw`, () => {
    test(`[${b}] two steps on a scalar match the reference`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const o = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
        const g1 = 0.5, g2 = -2;
        let params: Tensor = fromArray([1.5], [] as []);
        let state = adamw.init(params);
        for (const g of [g1, g2]) {
          const gt = fromArray([g], [] as []);
          ({ params, state } = adamw.update(params, gt, state, o));
          gt.dispose();
        }
        expect(state.step).toBe(2);
        const ref = adamwReference([1.5], [[g1], [g2]], { ...o, wd: o.weightDecay, decay: [true] });
        expectClose(await arr(params), ref.p);
        expectClose(await arr(state.m), ref.m);
        expectClose(await arr(state.v), ref.v);
        // by hand, step 1: p = 1.5·(1 − 0.01) − 0.1·sign(g1) (m̂/√v̂ = ±1 at t = 1)
        expect(adamwReference([1.5], [[g1]], { ...o, wd: 0.1, decay: [true] }).p[0]).toBeCloseTo(1.485 - 0.1, 6);
        disposeTree([params, state]);
      });
    });

    test(`[${b}] two steps on a vector tree with defaults and a decay mask match the reference`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const w0 = [0.3, -1.2, 2.0, 0.05];
        const b0 = [0.7, -0.4];
        let params = { w: fromArray(w0, [2, 2] as [2, 2]), b: fromArray(b0, [2] as [2]) };
        let state = adamw.init(params);
        const gw = [[0.1, -0.3, 0.02, 1.5], [-0.2, 0.25, 0.0, -1.0]];
        const gb = [[1e-3, -4], [2e-3, 3]];
        const lr = 0.01;
        for (let s = 0; s < 2; s++) {
          const grads = { w: fromArray(gw[s], [2, 2] as [2, 2]), b: fromArray(gb[s], [2] as [2]) };
          ({ params, state } = adamw.update(params, grads, state, { lr, decayMask: adamw.decayMatricesOnly }));
          disposeTree(grads);
        }
        const defaults = { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.01 };
        const refW = adamwReference(w0, gw, { ...defaults, decay: [true, true, true, true] });
        const refB = adamwReference(b0, gb, { ...defaults, decay: [false, false] });
        expectClose(await arr(params.w), refW.p);
        expectClose(await arr(params.b), refB.p);
        expectClose(await arr(state.m.w), refW.m);
        expectClose(await arr(state.v.b), refB.v);
        disposeTree([params, state]);
      });
    });

    test(`[${b}] weight decay is decoupled: a zero gradient shrinks p by lr·wd·p exactly`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const p0 = [1, -2.5, 1000, 3e-3, 0];
        const lr = 0.05, wd = 0.2;
        let params = { w: fromArray(p0, [5]) };
        let state = adamw.init(params);
        const zero = { w: fromArray([0, 0, 0, 0, 0], [5]) };
        ({ params, state } = adamw.update(params, zero, state, { lr, weightDecay: wd }));
        const got = await arr(params.w);
        // p·(1 − lr·wd), in f32: the factor is rounded to f32 once, then the product
        expect(got).toEqual(p0.map((p) => Math.fround(Math.fround(p) * Math.fround(1 - lr * wd))));
        expectClose(got, p0.map((p) => p - lr * wd * p), 1e-6);
        expect(await arr(state.m.w)).toEqual([0, 0, 0, 0, 0]);
        expect(await arr(state.v.w)).toEqual([0, 0, 0, 0, 0]);
        // masked out: untouched
        ({ params, state } = adamw.update(params, zero, state, { lr, weightDecay: wd, decayMask: () => false }));
        expect(await arr(params.w)).toEqual(got);
        disposeTree([params, state, zero]);
      });
    });

    test(`[${b}] ownership: update disposes the replaced params and state, not the grads; results outlive a tidy`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const p = { w: fromArray([1, 2], [2]), i: fromArray(Int32Array.of(4, 5), [2]) };
        const s = adamw.init(p);
        const g = { w: fromArray([0.5, 0.5], [2]), i: fromArray([0, 0], [2]) };
        const before = liveBuffers();
        let r: { params: typeof p; state: typeof s } | null = null;
        tidy(() => {
          r = adamw.update(p, g, s, { lr: 0.1 }); // the result is not returned from the tidy
        });
        const { params, state } = r!;
        expect(p.w.disposed).toBe(true);
        expect(s.m.w.disposed && s.v.w.disposed).toBe(true);
        expect(g.w.disposed).toBe(false);
        expect(params.i).toBe(p.i); // i32 leaves are not trained: passed through
        expect(p.i.disposed).toBe(false);
        // the new w, m.w, v.w survived the tidy; the old three were freed: net zero
        expect(params.w.disposed || state.m.w.disposed || state.v.w.disposed).toBe(false);
        expect(liveBuffers()).toBe(before);
        disposeTree([params, state, g]);
      });
    });

    test(`[${b}] ownership: returned trees replace the old ones one for one; a failing update disposes nothing`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        let params = { w: fromArray([1, 2], [2]), i: fromArray(Int32Array.of(4, 5), [2]) };
        let state = adamw.init(params);
        const i0 = params.i;
        const g = { w: fromArray([0.5, 0.5], [2]), i: fromArray([0, 0], [2]) };
        const base = liveBuffers();
        for (let k = 0; k < 5; k++) {
          ({ params, state } = tidy(() => adamw.update(params, g, state, { lr: schedule.constant(0.1) })));
          expect(liveBuffers()).toBe(base);
        }
        expect(params.i).toBe(i0);
        expect(state.step).toBe(5);
        // mismatched trees and bad options throw before anything is disposed
        const bad = { w: fromArray([1, 2, 3], [3]), i: g.i };
        expect(() => adamw.update(params, bad, state, { lr: 0.1 })).toThrow(/shape/);
        expect(() => adamw.update(params, { w: g.w } as unknown as typeof g, state, { lr: 0.1 })).toThrow(/leaves/);
        expect(() => adamw.update(params, g, state, { lr: -1 })).toThrow(/lr/);
        expect(() => adamw.update(params, g, state, { lr: 0.1, beta2: 1 })).toThrow(/beta2/);
        expect(params.w.disposed).toBe(false);
        expect(state.m.w.disposed).toBe(false);
        bad.w.dispose();
        disposeTree([params, state, g]);
      });
    });

    test(`[${b}] a schedule as lr is called with state.step`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const seen: number[] = [];
        let params = fromArray([0], [1]) as Tensor;
        let state = adamw.init(params);
        const g = fromArray([1], [1]);
        for (let k = 0; k < 3; k++) {
          ({ params, state } = adamw.update(params, g, state, { lr: (s) => (seen.push(s), 0.5), weightDecay: 0 }));
        }
        expect(seen).toEqual([0, 1, 2]);
        // constant gradient: m̂/√v̂ = 1 every step, so p = −3·lr
        expectClose(await arr(params), [-1.5], 1e-6);
        disposeTree([params, state, g]);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // clipping, finiteness
  // -------------------------------------------------------------------------------------------

  describe(`[${b}] clipping`, () => {
    test(`[${b}] globalNorm and clipByGlobalNorm match a hand computation`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const g = { a: fromArray([3, 0, -4], [3]), b: [fromArray([1, 2, 2, 0], [2, 2])], idx: fromArray(Int32Array.of(7), [1]) };
        const n = globalNorm(g);
        expect(n.shape).toEqual([]);
        // sqrt(9 + 16 + 1 + 4 + 4) = sqrt(34)
        expectClose(await arr(n), [Math.sqrt(34)], 1e-6);
        n.dispose();
        // clipped: scale 2 / (sqrt 34 + 1e-6)
        const c = clipByGlobalNorm(g, 2);
        const s = 2 / (Math.sqrt(34) + 1e-6);
        expectClose(await arr(c.norm), [Math.sqrt(34)], 1e-6);
        expectClose(await arr(c.grads.a), [3 * s, 0, -4 * s], 1e-6);
        expectClose(await arr(c.grads.b[0]), [s, 2 * s, 2 * s, 0], 1e-6);
        expect(c.grads.idx).toBe(g.idx); // non-f32 leaves pass through
        const cn = globalNorm(c.grads);
        expectClose(await arr(cn), [2], 1e-5);
        disposeTree([cn, c.norm, c.grads.a, c.grads.b]);
        // below the threshold: unchanged values (new tensors), input not disposed
        const u = clipByGlobalNorm(g, 10);
        expect(await arr(u.grads.a)).toEqual([3, 0, -4]);
        expect(u.grads.a).not.toBe(g.a);
        expect(g.a.disposed).toBe(false);
        disposeTree([u.norm, u.grads.a, u.grads.b]);
        // consume: the input's f32 leaves are freed, the passed-through leaf is not
        const k = clipByGlobalNorm(g, 1, { consume: true });
        expect(g.a.disposed && g.b[0].disposed).toBe(true);
        expect(g.idx.disposed).toBe(false);
        disposeTree(k);
        expect(() => clipByGlobalNorm(g, 0)).toThrow();
      });
    });

    test(`[${b}] globalNorm of many leaves: four launches whatever the count, the value of a hand computation`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        // 23 leaves of varied shapes (one empty, one i32 skipped): more than one concat dispatch on WebGPU
        const leaves: Tensor[] = [];
        let want = 0;
        for (let k = 0; k < 23; k++) {
          const n = k === 5 ? 0 : 1 + ((k * 7) % 11);
          const d = Array.from({ length: n }, (_, j) => ((j + k) % 5) - 2 + 0.25 * k);
          for (const v of d) want += Math.fround(v) * Math.fround(v);
          leaves.push(fromArray(d, k % 2 ? [n] : [1, n]));
        }
        const tree = { leaves, idx: fromArray(Int32Array.of(3, 4), [2]) };
        resetCounters();
        const n = globalNorm(tree);
        expect(readCounters().launches).toBe(4); // concat, square, sum, sqrt
        expectClose(await arr(n), [Math.sqrt(want)], 1e-5);
        disposeTree([n, tree]);
      });
    });

    test(`[${b}] the fused AdamW step (one launch a parameter) matches the three-part update`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const [kp, kg, ks] = random.split(random.key(5), 3);
        const lin = init.linear(kp, 7, 9);
        lin.b.dispose();
        const params = { w: lin.w, b: fromArray([0.5, -2, 3], [3]), idx: fromArray(Int32Array.of(1), [1]) };
        const grads = { w: random.normal(kg, [7, 9]), b: fromArray([1e-3, -40, 0], [3]), idx: fromArray(Int32Array.of(0), [1]) };
        const scale = tidy(() => keep(mul(random.uniform(ks, [1]), 0.9)));
        for (const gradScale of [undefined, scale]) {
          const o = { lr: 0.05, weightDecay: 0.1, decayMask: adamw.decayMatricesOnly, gradScale };
          const launches: number[] = [];
          const run = (fused: boolean) => {
            adamw.adamwTuning.fused = fused;
            adamw.adamwTuning.group = false; // one launch a parameter (the grouped step: next test)
            try {
              const s0 = adamw.init(params);
              resetCounters();
              let { params: p, state } = adamw.update(params, grads, s0, { ...o, keepOld: true });
              launches.push(readCounters().launches);
              disposeTree([s0.m, s0.v]);
              for (let step = 1; step < 3; step++) ({ params: p, state } = adamw.update(p, grads, state, o)); // moments no longer zero
              return { p, state };
            } finally {
              adamw.adamwTuning.fused = true;
              adamw.adamwTuning.group = "auto";
            }
          };
          const one = run(true);
          const three = run(false);
          expect(launches).toEqual([2, 6]); // one launch per f32 parameter, or m, v and p
          for (const k of ["w", "b"] as const) {
            for (const [x, y] of [[one.p[k], three.p[k]], [one.state.m[k], three.state.m[k]], [one.state.v[k], three.state.v[k]]]) {
              // the CPU backends round the same operations: same bits; a GPU compiler may fuse a multiply-add in one shader and not the other
              if (b === "webgpu") expectClose(await arr(x), await arr(y), 1e-6, 1e-9);
              else expect(await arr(x)).toEqual(await arr(y));
            }
          }
          expect(one.p.idx).toBe(params.idx);
          for (const r of [one, three]) disposeTree([r.p.w, r.p.b, r.state.m, r.state.v]);
        }
        disposeTree([params, grads, scale]);
      });
    });

    test(`[${b}] the grouped AdamW step (every parameter in one call) gives the per-parameter step's values, in fewer dispatches`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        // 70 parameters (more than one WebGPU launch holds), sizes around the 256-thread
        // workgroup, one empty, and an i32 leaf that passes through
        const sizes = Array.from({ length: 70 }, (_, k) => (k === 3 ? 0 : [1, 255, 256, 257, 300, 7][k % 6] + (k >> 3)));
        const [kp, kg, ks] = random.split(random.key(11), 3);
        const pk = random.split(kp, sizes.length), gk = random.split(kg, sizes.length);
        const params = { w: sizes.map((n, k) => random.normal(pk[k], k % 2 ? [n] : [1, n])), idx: fromArray(Int32Array.of(2), [1]) };
        const grads = { w: sizes.map((n, k) => random.normal(gk[k], k % 2 ? [n] : [1, n])), idx: fromArray(Int32Array.of(0), [1]) };
        const scale = tidy(() => keep(mul(random.uniform(ks, [1]), 0.9)));
        const gpu = b === "webgpu" ? (getBackend() as unknown as { poolStats(): { bindGroups: { hits: number; misses: number } } }) : null;
        const dispatches = () => (gpu ? gpu.poolStats().bindGroups.hits + gpu.poolStats().bindGroups.misses : 0);
        const o = { lr: 0.05, weightDecay: 0.1, decayMask: adamw.decayMatricesOnly, gradScale: scale };
        const run = (group: boolean) => {
          adamw.adamwTuning.group = group;
          try {
            const counts: number[] = [], launches: number[] = [];
            let { params: p, state } = { params, state: adamw.init(params) };
            for (let step = 0; step < 3; step++) {
              const d0 = dispatches();
              resetCounters();
              const next = adamw.update(p, grads, state, { ...o, keepOld: true });
              launches.push(readCounters().launches);
              counts.push(dispatches() - d0);
              // the replaced f32 leaves (idx's m and v pass through; the initial params are the test's)
              disposeTree(step > 0 ? [p.w, state.m.w, state.v.w] : [state.m.w, state.v.w]);
              ({ params: p, state } = next);
            }
            return { p, state, counts, launches };
          } finally {
            adamw.adamwTuning.group = "auto";
          }
        };
        const grouped = run(true);
        const single = run(false);
        expect(grouped.launches).toEqual([2, 2, 2]); // concat, adamwGroup
        expect(single.launches).toEqual([70, 70, 70]); // one an f32 parameter
        if (gpu) {
          // step 1 reads the initial tensors, one launch each; from step 2 on p, m and v are views
          // of the previous step's slabs: 2 launches (59 parameters a launch) where there were 69
          expect(grouped.counts[0] - grouped.counts[1]).toBe(69 - 2);
          expect(grouped.counts[2]).toBe(grouped.counts[1]);
        }
        expect(grouped.p.idx).toBe(params.idx);
        for (let k = 0; k < sizes.length; k++) {
          for (const [x, y] of [[grouped.p.w[k], single.p.w[k]], [grouped.state.m.w[k], single.state.m.w[k]], [grouped.state.v.w[k], single.state.v.w[k]]]) {
            expect(x.shape).toEqual(y.shape);
            // the CPU backends run the same kernel on each: same bits; on WebGPU the same
            // expressions in another shader, which a compiler may contract differently
            if (b === "webgpu") expectClose(await arr(x), await arr(y), 1e-6, 1e-9);
            else expect(await arr(x)).toEqual(await arr(y));
          }
        }
        for (const r of [grouped, single]) disposeTree([r.p.w, r.state.m, r.state.v]);
        disposeTree([params, grads, scale]);
      });
    });

    test(`[${b}] flatGradients once for clipScale and the grouped update: the bits of each concatenating its own, one concat fewer; a wrong flat is refused`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const [kp, kg] = random.split(random.key(12), 2);
        const params = { w: random.normal(kp, [4, 33]), b: fromArray([0.5, -2, 3], [3]), idx: fromArray(Int32Array.of(1), [1]) };
        const grads = { w: random.normal(kg, [4, 33]), b: fromArray([1e-3, -40, 0], [3]), idx: fromArray(Int32Array.of(0), [1]) };
        const o = { lr: 0.05, weightDecay: 0.1 };
        const steps = (flatOnce: boolean) => {
          adamw.adamwTuning.group = true;
          try {
            const s0 = adamw.init(params);
            resetCounters();
            const flat = flatOnce ? flatGradients(grads) : undefined;
            const c = clipScale(grads, 0.5, { flat });
            const r = adamw.update(params, grads, s0, { ...o, keepOld: true, gradScale: c.scale, flatGrads: flat });
            const launches = readCounters().launches;
            disposeTree([s0.m.w, s0.v.w, s0.m.b, s0.v.b, c.scale, flat]);
            return { r, norm: c.norm, launches };
          } finally {
            adamw.adamwTuning.group = "auto";
          }
        };
        const once = steps(true), twice = steps(false);
        expect(twice.launches - once.launches).toBe(1); // the second concat
        expect(await arr(once.norm)).toEqual(await arr(twice.norm));
        for (const k of ["w", "b"] as const) {
          expect(await arr(once.r.params[k])).toEqual(await arr(twice.r.params[k]));
          expect(await arr(once.r.state.v[k])).toEqual(await arr(twice.r.state.v[k]));
        }
        // a flat of another tree (or shape) is refused before anything runs
        const wrong = fromArray([1, 2, 3], [3]);
        const st = adamw.init(params);
        expect(() => adamw.update(params, grads, st, { ...o, flatGrads: wrong })).toThrow(/flat gradients must be 1-D f32 of 135 elements/);
        expect(() => clipScale(grads, 1, { flat: wrong })).toThrow(/135 elements/);
        for (const x of [once, twice]) disposeTree([x.r.params.w, x.r.params.b, x.r.state, x.norm]);
        disposeTree([params, grads, wrong, st]);
      });
    });

    test(`[${b}] clipScale + adamw's gradScale give the bits of clipByGlobalNorm then update, in fewer launches`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const [kp, kg] = random.split(random.key(11), 2);
        const params = init.linear(kp, 5, 3);
        const grads = { w: random.normal(kg, [5, 3]), b: fromArray([4, -3, 12], [3]) };
        for (const maxNorm of [0.5, 1e6]) { // clipping and not clipping (scale exactly 1)
          const opts = { lr: 0.01, weightDecay: 0.1 };
          const c = clipByGlobalNorm(grads, maxNorm);
          const s0 = adamw.init(params);
          const a = adamw.update(params, c.grads, s0, { ...opts, keepOld: true });
          const cs = clipScale(grads, maxNorm);
          expect(await arr(cs.norm)).toEqual(await arr(c.norm));
          const state = adamw.init(params);
          resetCounters();
          const fused = adamw.update(params, grads, state, { ...opts, keepOld: true, gradScale: cs.scale });
          expect(readCounters().launches).toBe(2); // one fused step per parameter: no clipped copies
          for (const k of ["w", "b"] as const) {
            expect(await arr(fused.params[k])).toEqual(await arr(a.params[k]));
            expect(await arr(fused.state.m[k])).toEqual(await arr(a.state.m[k]));
            expect(await arr(fused.state.v[k])).toEqual(await arr(a.state.v[k]));
          }
          disposeTree([c, a.params, a.state.m, a.state.v, cs, fused.params, fused.state.m, fused.state.v, state.m, state.v, s0.m, s0.v]);
        }
        const st = adamw.init(params);
        expect(() => adamw.update(params, grads, st, { lr: 0.01, keepOld: true, gradScale: grads.b })).toThrow(/gradScale must be a one-element f32/);
        expect(() => clipScale(grads, -1)).toThrow(/maxNorm/);
        disposeTree([params, grads, st.m, st.v]);
      });
    });

    test(`[${b}] isFiniteTree`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const ok = { a: fromArray([1, -2, 3e38], [3]), b: [fromArray(Int32Array.of(1), [1])] };
        expect(await isFiniteTree(ok)).toBe(true);
        expect(await isFiniteTree({})).toBe(true);
        for (const bad of [NaN, Infinity, -Infinity]) {
          const t = { a: ok.a, c: fromArray([0, bad], [2]) };
          expect(await isFiniteTree(t)).toBe(false);
          t.c.dispose();
        }
        disposeTree(ok);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // accumulation
  // -------------------------------------------------------------------------------------------

  describe(`[${b}] accumulation`, () => {
    test(`[${b}] the average of one tree is that tree, with no launch`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const g = { w: fromArray([1, -2, 3.5], [3]), i: fromArray(Int32Array.of(4), [1]) };
        const acc = new GradAccumulator<typeof g>();
        acc.add(g);
        resetCounters();
        const avg = acc.average();
        expect(readCounters().launches).toBe(0);
        expect(await arr(avg.w)).toEqual([1, -2, 3.5]);
        expect(await arr(avg.i)).toEqual([4]);
        disposeTree([g, avg]); // the views keep the storage alive until the accumulator lets go too
        acc.reset();
      });
    });

    test(`[${b}] the average of equal micro-batch gradients equals the full-batch gradient`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const [kx, ky, kp] = random.split(random.key(5), 3);
        const x = random.normal(kx, [8, 3]);
        const y = random.normal(ky, [8, 2]);
        const params = init.linear(kp, 3, 2);
        const lossGrad = grad(mse);
        const full = lossGrad(params, x, y);
        const acc = new GradAccumulator<typeof params>();
        for (let i = 0; i < 8; i += 2) {
          const g = tidy(() => lossGrad(params, sliceAxis(x, 0, i, i + 2), sliceAxis(y, 0, i, i + 2)));
          acc.add(g);
          disposeTree(g); // add() never takes the caller's tree
        }
        expect(acc.count).toBe(4);
        const avg = acc.average();
        expectClose(await arr(avg.w), await arr(full.w), 1e-5, 1e-6);
        expectClose(await arr(avg.b), await arr(full.b), 1e-5, 1e-6);
        const sum = acc.sum();
        expectClose(await arr(sum.b), (await arr(full.b)).map((v) => 4 * v), 1e-5, 1e-6);
        disposeTree([avg, sum, full]);
        acc.reset();
        expect(acc.count).toBe(0);
        expect(() => acc.average()).toThrow(/nothing/);
        disposeTree([x, y, params]);
      });
    });

    test(`[${b}] add shares then replaces its sum; mismatched trees are refused; dispose frees it`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const acc = new GradAccumulator<{ w: Tensor }>();
        const base = liveBuffers();
        const g1 = { w: fromArray([1, 2], [2]) };
        acc.add(g1);
        expect(liveBuffers()).toBe(base + 1); // the sum shares g1's storage
        g1.w.dispose();
        expect(liveBuffers()).toBe(base + 1); // ... and keeps it alive
        tidy(() => acc.add({ w: fromArray([10, 20], [2]) })); // the sum outlives the tidy
        expect(liveBuffers()).toBe(base + 1); // one sum: the previous one was freed
        tidy(() => acc.add({ w: fromArray([100, 200], [2]) }));
        const avg = acc.average();
        expectClose(await arr(avg.w), [37, 74], 1e-6);
        avg.w.dispose();
        tidy(() => {
          expect(() => acc.add({ w: fromArray([1, 2, 3], [3]) })).toThrow(/leaf/);
          expect(() => acc.add({ v: fromArray([1, 2], [2]) } as unknown as { w: Tensor })).toThrow(/differ/);
        });
        expect(acc.count).toBe(3);
        acc.dispose();
        expect(liveBuffers()).toBe(base);
      });
    });
  });

  // -------------------------------------------------------------------------------------------
  // end to end
  // -------------------------------------------------------------------------------------------

  describe(`[${b}] training`, () => {
    test(`[${b}] fits y = 3x − 1 with a linear layer and AdamW, with no leaked buffers`, async () => {
      if (!(await useBackend(b))) return;
      const base = liveBuffers();
      const n = 64;
      const xs = Array.from({ length: n }, (_, i) => -1 + (2 * i) / (n - 1));
      const x = fromArray(xs, [n, 1]);
      const y = fromArray(xs.map((v) => 3 * v - 1), [n, 1]);
      let params = init.linear(random.key(0), 1, 1);
      let state = adamw.init(params);
      const lr = schedule.cosine({ peak: 0.1, warmup: 10, total: 300, floor: 1e-3 });
      const step = valueAndGrad(mse);
      let loss = Infinity;
      let skipped = 0;
      const afterSetup = liveBuffers();
      for (let s = 0; s < 300; s++) {
        const { value, grads } = step(params, x, y);
        if (s % 50 === 0 || s === 299) loss = await value.item();
        if (!(await isFiniteTree(grads))) skipped++;
        else {
          ({ params, state } = tidy(() => {
            const { grads: clipped } = clipByGlobalNorm(grads, 5);
            return adamw.update(params, clipped, state, { lr, decayMask: adamw.decayMatricesOnly });
          }));
        }
        disposeTree([value, grads]);
        expect(liveBuffers()).toBe(afterSetup);
      }
      expect(skipped).toBe(0);
      expect(loss).toBeLessThan(1e-3);
      const [w] = await arr(params.w);
      const [b0] = await arr(params.b);
      expect(Math.abs(w - 3)).toBeLessThan(0.05);
      expect(Math.abs(b0 + 1)).toBeLessThan(0.05);
      disposeTree([params, state, x, y]);
      expect(liveBuffers()).toBe(base);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// schedules (pure functions of the step)
// ---------------------------------------------------------------------------------------------

describe("schedules", () => {
  test("constant", () => {
    const s = schedule.constant(3e-4);
    expect([0, 1, 1e6].map(s)).toEqual([3e-4, 3e-4, 3e-4]);
    expect(() => schedule.constant(-1)).toThrow();
    expect(() => schedule.constant(Infinity)).toThrow();
    expect(() => s(-1)).toThrow();
    expect(() => s(NaN)).toThrow();
  });

  test("linearWarmup", () => {
    const s = schedule.linearWarmup({ peak: 1e-3, warmup: 100 });
    expect(s(0)).toBe(0);
    expect(s(25)).toBeCloseTo(2.5e-4, 15);
    expect(s(50)).toBeCloseTo(5e-4, 15);
    expect(s(99)).toBeCloseTo(9.9e-4, 15);
    expect(s(100)).toBe(1e-3);
    expect(s(5000)).toBe(1e-3);
    const t = schedule.linearWarmup({ peak: 1, warmup: 4, init: 0.2 });
    expect([0, 1, 2, 3, 4].map(t)).toEqual([0.2, 0.4, 0.6000000000000001, 0.8, 1]);
    expect(schedule.linearWarmup({ peak: 2, warmup: 0 })(0)).toBe(2);
    expect(() => schedule.linearWarmup({ peak: 1, warmup: 1.5 })).toThrow(/warmup/);
    expect(() => schedule.linearWarmup({ peak: 1, warmup: 10, extra: 1 } as never)).toThrow();
  });

  test("cosine: warmup, half-way, end, after the end", () => {
    const c = schedule.cosine({ peak: 1e-3, warmup: 100, total: 1100, floor: 1e-5 });
    expect(c(0)).toBe(0);
    expect(c(50)).toBeCloseTo(5e-4, 15);
    expect(c(100)).toBeCloseTo(1e-3, 15);
    expect(c(600)).toBeCloseTo((1e-3 + 1e-5) / 2, 15); // half-way: the mean of peak and floor
    expect(c(350)).toBeCloseTo(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + Math.SQRT1_2), 15); // a quarter: cos(π/4)
    expect(c(1100)).toBe(1e-5);
    expect(c(1e9)).toBe(1e-5);
    // monotone non-increasing after warmup
    let prev = Infinity;
    for (let s = 100; s <= 1200; s += 7) {
      expect(c(s)).toBeLessThanOrEqual(prev);
      prev = c(s);
    }
    const plain = schedule.cosine({ peak: 2, total: 10 });
    expect(plain(0)).toBe(2);
    expect(plain(5)).toBeCloseTo(1, 14);
    expect(plain(10)).toBe(0);
    expect(() => schedule.cosine({ peak: 1, warmup: 10, total: 10 })).toThrow(/total/);
    expect(() => schedule.cosine({ peak: 1, total: 10, floor: 2 })).toThrow(/floor/);
    expect(() => schedule.cosine({ peak: -1, total: 10 })).toThrow(/peak/);
  });
});

test("[cpu] the fused AdamW update gives the same bits as the composite formula of twelve ops", async () => {
  await useBackend("cpu");
  const k = random.split(random.key(5), 4);
  const p = random.normal(k[0], [257]), g = random.normal(k[1], [257]);
  const m = mul(random.normal(k[2], [257]), 0.1), v = mul(square(random.normal(k[3], [257])), 0.01);
  const lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, t = 4;
  const state: adamw.AdamWState<{ p: Tensor }> = { step: t - 1, m: { p: keep(m) }, v: { p: keep(v) } };
  // the composite, op by op, as adamw.update computed it before it was fused
  const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
  const p0 = mul(p, 1 - lr * wd);
  const m1 = add(mul(m, b1), mul(g, 1 - b1));
  const v1 = add(mul(v, b2), mul(square(g), 1 - b2));
  const p1 = sub(p0, mul(div(m1, add(div(sqrt(v1), Math.sqrt(bc2)), eps)), lr / bc1));
  const want = [await p1.data(), await m1.data(), await v1.data()];
  const r = adamw.update<{ p: Tensor }>({ p }, { p: g }, state, { lr, beta1: b1, beta2: b2, eps, weightDecay: wd });
  const got = [await r.params.p.data(), await r.state.m.p.data(), await r.state.v.p.data()];
  for (let i = 0; i < 3; i++) expect(Array.from(got[i])).toEqual(Array.from(want[i]));
  disposeTree([r, g, p0, m1, v1, p1]);
});

test("mapTree: a callback that declares the path gets each leaf's dotted path; one that does not is called on the same leaves in the same order", () => {
  const a = fromArray([1], [1]), b = fromArray([2, 3], [2]), c = fromArray([4], [1]);
  const tree = { w: a, layers: [{ b }, { c }] };
  const paths: string[] = [];
  const withPaths = mapTree(tree, (t, p) => (paths.push(p), t));
  expect(paths).toEqual(["w", "layers.0.b", "layers.1.c"]);
  const seen: Tensor[] = [];
  const plain = mapTree(tree, (t) => (seen.push(t), t));
  expect(seen).toEqual([a, b, c]);
  // the same structure, leaf for leaf
  expect(flattenTree(plain).map(([p, t]) => [p, t])).toEqual(flattenTree(withPaths).map(([p, t]) => [p, t]));
  disposeTree(tree);
});
