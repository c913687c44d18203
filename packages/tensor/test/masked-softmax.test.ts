/**
 * maskedSoftmax and maskedSoftmaxGrad, the fused masked softmax between indexedAttention's two
 * indexed reads (issue 11: the composite took four launches forward and four backward per pool
 * read, twelve pool reads a training step).
 *
 * - The fused pair must give the composite's bits, forward and gradient:
 *   w = mul(softmax(where(valid, mul(x, scale), -1e9)), valid), over rows of 1, 7, 50, 100, 300
 *   and 1000 elements (both GPU row kernels: a thread per row up to 128, a workgroup beyond),
 *   masks all valid, none valid, random, and random with the valid logits below −1e9 (there the
 *   masked slots win the softmax, so the softmax output y and the saved w differ on them: the
 *   case where w standing in for y in the VJP could go wrong), scales 1, 0.125 and 1/√24, inputs of
 *   ordinary and of huge magnitude, and NaN / ±Inf among the inputs and cotangents (±0 too).
 *   Equality is Object.is per element (−0 ≠ +0), any NaN equal to any NaN.
 *     cpu: fused = the composite; also over random shapes drawn by fast-check.
 *     wasm: the fused primitive (its TypeScript kernel) = the CPU composite.
 *     webgpu: fused = the composite on the GPU, bit for bit (the kernels are the softmax row
 *     kernels with the where/mul as prologue and epilogue); fused vs the CPU within
 *     5e-7 + 5e-6·|cpu| forward and 5e-7·(1 + max|row|) + 5e-6·|cpu| backward on finite inputs
 *     (the GPU's exp is an f32 polynomial and its sums f32 in another order, where the CPU
 *     works in float64; lavapipe used under 1/10 of these bounds; with ±Inf the two backends'
 *     softmax kernels already differ).
 * - a gradient check through indexedAttention (and of maskedSoftmax itself), no gradient to the
 *   mask, the error for a second-order request, bad inputs, launch counts (one instead of four,
 *   forward and backward), wasm keeping the composite, and live buffers back to where they were.
 */
import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import { maskedSoftmax } from "../src/ops/nn.ts";
import { checkGradients, mulberry32 } from "./gradcheck.ts";

type Mask = "all" | "none" | "random" | "below";
type Values = "plain" | "huge" | "specials";

interface Case {
  shape: number[];
  scale: number;
  mask: Mask;
  values: Values;
  x: Float32Array;
  valid: Float32Array;
  /** The cotangent of w. */
  g: Float32Array;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function makeCase(shape: number[], scale: number, mask: Mask, values: Values, seed: number): Case {
  const rand = mulberry32(seed);
  const n = size(shape);
  const valid = Float32Array.from({ length: n }, () => (mask === "all" ? 1 : mask === "none" ? 0 : rand() < 0.6 ? 1 : 0));
  const x = Float32Array.from({ length: n }, (_, i) => {
    // "below": every valid logit under −1e9, so the masked slots (−1e9) carry the softmax
    if (mask === "below") return valid[i] ? -(1.2e9 + 2e9 * rand()) / scale : 8 * rand() - 4;
    if (values === "huge") return (rand() - 0.5) * 4e10;
    const u = rand();
    if (values === "specials" && u < 0.1) return [NaN, Infinity, -Infinity][Math.floor(u * 30)];
    return 10 * rand() - 5;
  });
  const specials = [-0, 0, Infinity, -Infinity, NaN];
  const g = Float32Array.from({ length: n }, (_, i) => (values === "specials" && i % 7 === 3 ? specials[(i + seed) % 5] : 4 * rand() - 2));
  return { shape, scale, mask, values, x, valid, g };
}

/** The composite the fused primitive replaces (indexedAttention's former four ops). */
const composite = (x: Tensor, valid: Tensor, scale: number) => T.mul(T.softmax(T.where(valid, T.mul(x, scale), -1e9)), valid);
const fused = (x: Tensor, valid: Tensor, scale: number) => maskedSoftmax(x, valid, scale);
type Impl = typeof composite;

/** w and dx (the gradient of Σ w ⊙ g) on the current backend, with the launches of each. */
async function evaluate(c: Case, impl: Impl): Promise<{ w: Float32Array; dx: Float32Array; fwd: number; all: number }> {
  const x = T.fromArray(c.x, c.shape), valid = T.fromArray(c.valid, c.shape), g = T.fromArray(c.g, c.shape);
  try {
    T.resetCounters();
    const w = T.tidy(() => impl(x, valid, c.scale));
    const fwd = T.readCounters().launches;
    T.resetCounters();
    const r = T.valueAndGrad((a: Tensor) => T.sum(T.mul(impl(a, valid, c.scale), g)))(x);
    const all = T.readCounters().launches;
    // both reads at once: Deno's WebGPU pays ~11 ms a readback wait
    const [wd, dxd] = (await Promise.all([w.data(), r.grads.data()])) as Float32Array[];
    const out = { w: wd, dx: dxd, fwd, all };
    T.disposeTree([w, r]);
    return out;
  } finally {
    T.disposeTree([x, valid, g]);
  }
}

function sameBits(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} values, expected ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const a = got[i], b = want[i];
    if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) continue;
    throw new Error(`${what}: element ${i}: got ${Object.is(a, -0) ? "-0" : a}, expected ${Object.is(b, -0) ? "-0" : b}`);
  }
}

/** |got − want| ≤ atol(i) + rtol·|want| for every element (NaN fails). */
function within(what: string, got: Float32Array, want: Float32Array, atol: (i: number) => number, rtol: number): void {
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= atol(i) + rtol * Math.abs(want[i]))) throw new Error(`${what}: element ${i}: ${got[i]} vs ${want[i]}`);
  }
}

/** The largest |v| of each row of n, per element. */
function rowMax(v: Float32Array, n: number): (i: number) => number {
  const m = new Float64Array(v.length / n);
  for (let i = 0; i < v.length; i++) m[Math.floor(i / n)] = Math.max(m[Math.floor(i / n)], Math.abs(v[i]));
  return (i) => m[Math.floor(i / n)];
}

const ROWS = [1, 7, 50, 100, 300, 1000];
const MASKS: Mask[] = ["all", "none", "random", "below"];
const VALUES: Values[] = ["plain", "huge", "specials"];
// 1 and 0.125 multiply exactly; 1/√24 (a model's 1/√S) rounds, so a missed f32 rounding shows
const SCALES = [1, 0.125, 1 / Math.sqrt(24)];

/** The grid of cases: every row length, mask, value kind and scale; leading axes vary with the seed. */
function grid(): Case[] {
  const cases: Case[] = [];
  let seed = 1;
  for (const n of ROWS) {
    for (const mask of MASKS) {
      for (const values of VALUES) {
        for (const scale of SCALES) {
          seed++;
          const lead = n >= 300 ? [1 + (seed % 3)] : [1 + (seed % 2), 1 + (seed % 3)];
          cases.push(makeCase([...lead, n], scale, mask, values, seed));
        }
      }
    }
  }
  return cases;
}

const describeCase = (c: Case) => `[${c.shape}] mask ${c.mask}, ${c.values}, scale ${c.scale}`;

async function on<R>(b: Backend, fn: () => Promise<R>): Promise<R> {
  const prev = T.getBackend();
  T.setBackend(b);
  try {
    return await fn();
  } finally {
    T.setBackend(prev);
  }
}

describe("maskedSoftmax: the composite's bits, forward and backward", () => {
  for (const b of testBackends()) {
    test(`[${b}] rows of 1 to 1000, all / no / random masks, valid logits below −1e9, three scales, huge and special values`, async () => {
      if (!(await useBackend(b))) return;
      const be = T.getBackend();
      const cpu = T.setBackend("cpu");
      T.setBackend(be);
      await expectNoLeak(async () => {
        for (const c of grid()) {
          const what = `[${b}] ${describeCase(c)}`;
          const got = await evaluate(c, fused);
          const ref = await on(cpu, () => evaluate(c, composite));
          expect(got.fwd).toBe(1);
          if (b !== "webgpu") {
            // cpu, and wasm's fallback to the TypeScript kernels: the CPU composite's bits
            sameBits(`${what}: w`, got.w, ref.w);
            sameBits(`${what}: dx`, got.dx, ref.dx);
            continue;
          }
          const same = await evaluate(c, composite);
          sameBits(`${what}: w vs the GPU composite`, got.w, same.w);
          sameBits(`${what}: dx vs the GPU composite`, got.dx, same.dx);
          if (c.values === "specials") continue;
          const n = c.shape[c.shape.length - 1];
          within(`${what}: w vs the CPU`, got.w, ref.w, () => 5e-7, 5e-6);
          const scaleOf = rowMax(ref.dx, n);
          within(`${what}: dx vs the CPU`, got.dx, ref.dx, (i) => 5e-7 * (1 + scaleOf(i)), 5e-6);
        }
      });
    });
  }

  test("[cpu] random shapes, masks, scales and magnitudes (fast-check): fused = composite bit for bit", async () => {
    await useBackend("cpu");
    const arb = fc.record({
      lead: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 2 }),
      n: fc.integer({ min: 1, max: 130 }),
      mask: fc.constantFrom<Mask>("all", "none", "random", "below"),
      values: fc.constantFrom<Values>("plain", "huge", "specials"),
      scale: fc.oneof(fc.constantFrom(1, 0.125), fc.double({ min: 1e-3, max: 10, noNaN: true })),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    });
    await expectNoLeak(() =>
      fc.assert(
        fc.asyncProperty(arb, async ({ lead, n, mask, values, scale, seed }) => {
          const c = makeCase([...lead, n], scale, mask, values, seed);
          const got = await evaluate(c, fused), want = await evaluate(c, composite);
          sameBits(`${describeCase(c)}: w`, got.w, want.w);
          sameBits(`${describeCase(c)}: dx`, got.dx, want.dx);
        }),
        { numRuns: 120, seed: 23 },
      )
    );
  });

  test("[cpu] a row with no valid slot gives zero weights and a zero gradient, never NaN", async () => {
    await useBackend("cpu");
    await expectNoLeak(async () => {
      const c = makeCase([2, 5], 0.5, "none", "plain", 9);
      const r = await evaluate(c, fused);
      expect(Array.from(r.w).every((v) => Object.is(v, 0))).toBe(true);
      expect(Array.from(r.dx).every((v) => Object.is(v, 0))).toBe(true);
    });
  });
});

/** Runs fn with the current backend preferring the composite masked softmax (or not). */
async function withComposite<R>(composite: boolean, fn: () => Promise<R>): Promise<R> {
  const be = T.getBackend() as { prefersComposite?: (p: string) => boolean };
  const own = Object.hasOwn(be, "prefersComposite");
  const prev = be.prefersComposite;
  if (composite) be.prefersComposite = (p) => p === "maskedSoftmax" || (prev?.call(be, p) ?? false);
  try {
    return await fn();
  } finally {
    if (own) be.prefersComposite = prev;
    else delete be.prefersComposite;
  }
}

describe("maskedSoftmax in indexedAttention", () => {
  for (const b of testBackends()) {
    test(`[${b}] gradient checks; the same bits as the composite and six launches fewer forward + backward (wasm keeps the composite)`, async () => {
      if (!(await useBackend(b))) return;
      const prefers = T.getBackend().prefersComposite?.("maskedSoftmax") ?? false;
      // wasm keeps the composite (its SIMD softmax); the others run the fused pair
      expect(prefers).toBe(b === "wasm");
      const rand = mulberry32(31);
      const u = (n: number) => Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (0.2 + rand()));
      // N = [2, 3] positions, P = 7 slots over M = 6 rows; position 4 has no valid slot
      const B = 2, L = 3, P = 7, S = 4, M = 6;
      const index = Int32Array.from({ length: B * L * P }, (_, i) => (i % 5 === 4 ? -1 : (i * 7) % M));
      const validData = Float32Array.from(index, (r, i) => (r === -1 || Math.floor(i / P) === 4 ? 0 : 1));
      const idx = { data: index, shape: [B, L, P] };
      const weightsOf = (xs: Tensor[]) => T.indexedAttention(xs[0], xs[1], xs[2], xs[3], T.fromArray(validData, [B, L, P])).weights;
      const ins = [{ data: u(B * L * S), shape: [B, L, S] }, { data: u(M * S), shape: [M, S] }, { data: u(M * S), shape: [M, S] }, idx];
      // (indexed-attention.test.ts checks `out` too, through the same path)
      await checkGradients(weightsOf, ins, { label: `${b} indexedAttention weights` });
      // the primitive alone, valid a constant (a mask has no gradient)
      const vm = Float32Array.from({ length: 2 * 9 }, (_, i) => (i % 4 === 1 ? 0 : 1));
      await checkGradients((xs) => maskedSoftmax(xs[0], T.fromArray(vm, [2, 9]), 0.7), [{ data: u(18), shape: [2, 9] }], { label: `${b} maskedSoftmax` });

      await expectNoLeak(async () => {
        const q = T.fromArray(u(B * L * S), [B, L, S]), k = T.fromArray(u(M * S), [M, S]), v = T.fromArray(u(M * S), [M, S]);
        const ix = T.fromArray(index, [B, L, P], "i32"), valid = T.fromArray(validData, [B, L, P]);
        const run = (composite: boolean) =>
          withComposite(composite, async () => {
            T.resetCounters();
            const r = T.valueAndGrad((ps: Tensor[]) => {
              const a = T.indexedAttention(ps[0], ps[1], ps[2], ix, valid);
              return T.add(T.sum(a.out), T.sum(T.mul(a.weights, a.weights)));
            })([q, k, v]);
            const launches = T.readCounters().launches;
            const grads = await Promise.all(r.grads.map((g) => g.data() as Promise<Float32Array>));
            const value = await r.value.item();
            T.disposeTree(r);
            return { value, grads, launches };
          });
        const f = await run(false), c = await run(true);
        expect(Object.is(f.value, c.value)).toBe(true);
        for (let i = 0; i < 3; i++) sameBits(`[${b}] indexedAttention gradient ${i}`, f.grads[i], c.grads[i]);
        // three of the four forward ops and three of the four backward ones (wasm: the composite both times)
        expect(c.launches - f.launches).toBe(prefers ? 0 : 6);
        T.disposeTree([q, k, v, ix, valid]);
      });
    });
  }
});

describe("maskedSoftmax: the mask, second order, bad inputs", () => {
  test("[cpu] no gradient flows to valid (a mask, as where's condition)", async () => {
    await useBackend("cpu");
    await expectNoLeak(async () => {
      const x = T.fromArray([0.5, -1, 2, 0.25, 3, -2], [2, 3]), valid = T.fromArray([1, 0, 1, 1, 1, 0], [2, 3]);
      const g = T.fromArray([1, -2, 0.5, 3, -1, 2], [2, 3]);
      const r = T.valueAndGrad((xs: Tensor[]) => T.sum(T.mul(maskedSoftmax(xs[0], xs[1], 0.5), g)))([x, valid]);
      const [dx, dv] = await Promise.all(r.grads.map((t) => t.data()));
      expect(Array.from(dx).some((v) => v !== 0)).toBe(true);
      expect(Array.from(dv).every((v) => v === 0)).toBe(true);
      T.disposeTree([x, valid, g, r]);
    });
  });

  test("[cpu] maskedSoftmaxGrad has no gradient of its own: a clear error", async () => {
    await useBackend("cpu");
    // (no leak check: a backward pass that throws leaves its intermediates to the collector)
    const x = T.fromArray([1, 4, 2, 4, 0, 3], [2, 3]), valid = T.fromArray([1, 1, 0, 1, 0, 1], [2, 3]);
    const w = maskedSoftmax(x, valid, 1);
    expect(() => T.valueAndGrad((g: Tensor) => T.sum(T.bind("maskedSoftmaxGrad", [g, w, valid], { scale: 1 })))(x)).toThrow(
      "maskedSoftmaxGrad: second-order gradients are not supported",
    );
    T.disposeTree([x, valid, w]);
  });

  test("[cpu] bad inputs name the op and the shapes", async () => {
    await useBackend("cpu");
    const x = T.fromArray([1, 2, 3, 4, 5, 6], [2, 3]), v23 = T.fromArray([1, 1, 0, 1, 0, 1], [2, 3]), v32 = T.fromArray([1, 1, 0, 1, 0, 1], [3, 2]);
    const empty = T.zeros([2, 0]), xi = T.fromArray([1, 2, 3, 4, 5, 6], [2, 3], "i32");
    expect(() => maskedSoftmax(x, v32, 1)).toThrow("maskedSoftmax: x [2, 3] and valid [3, 2] must have one shape");
    expect(() => maskedSoftmax(x, v23, NaN)).toThrow("maskedSoftmax: scale must be a finite number, got NaN");
    expect(() => maskedSoftmax(empty, empty, 1)).toThrow("maskedSoftmax: needs a non-empty last axis, got [2, 0]");
    expect(() => maskedSoftmax(xi, v23, 1)).toThrow("maskedSoftmax: expects f32, got i32 [2, 3]");
    expect(() => T.bind("maskedSoftmaxGrad", [v32, x, v23], { scale: 1 })).toThrow("maskedSoftmaxGrad: g [3, 2] and w [2, 3] must have one shape");
    T.disposeTree([x, v23, v32, empty, xi]);
  });
});
