/**
 * The fused indexed attention (ops/attention.ts): indexedAttention and its three primitives
 * indexedDot, indexedSum, indexedOuter, on every backend (cpu, wasm — which runs the TypeScript
 * kernels for these — and webgpu).
 *
 * - parity with the composite it replaces in the model (gather the slots, batched single-row
 *   matmuls, masked softmax): forward values and the gradients of q and both tables, on shapes
 *   that are not multiples of any workgroup size, with positions that have no valid slot and
 *   table rows read by more than the GPU's chunk of 32 terms;
 * - central-difference gradient checks (gradcheck.ts) of indexedAttention and of each primitive;
 * - the memory claim: no buffer of [B, L, P, S] elements is allocated in the forward or backward
 *   pass (a backend wrapper records every allocation; the composite does allocate one);
 * - empty slots as index −1 (a zero row, no term) in all three primitives, against a plain
 *   reference, in the gradient checks, and in indexedAttention: the same values and gradients
 *   as the older encoding of an empty slot (row 0 with valid 0);
 * - clear errors for bad shapes and out-of-range indices (−1 excepted); on the GPU, lowered
 *   dispatch limits (2-D grids) and out-of-range indices (a zero row / a dropped term, as gather
 *   and scatterAdd).
 * indexedOuter's inverse-index cache on the GPU has its own file (indexed-outer-cache.test.ts).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { BufferHandle, DType, Tensor } from "../src/index.ts";
import { DelegatingBackend } from "../../../test/support/delegating-backend.ts";
import { checkGradients, mulberry32 } from "./gradcheck.ts";
import { close, type SlotReadCase } from "./indexed-attention-support.ts";

// ---------- cases ----------

/** B sequences of L positions; M = B·L table rows (one per position, as a pool read's table). */
interface Case extends SlotReadCase {
  B: number;
  L: number;
  /** The cotangent of weights. */
  cW: Float32Array;
}

interface CaseSpec {
  B: number;
  L: number;
  P: number;
  S: number;
  /** The first `empty` positions of every sequence have no valid slot. */
  empty?: number;
  /** Where true, half of the valid slots read one row (a long inverse-index list: GPU chunks). */
  hot?: boolean;
  /** Probability that a slot is valid (default 0.7; 0: every slot empty). */
  density?: number;
  seed: number;
}

function makeCase(c: CaseSpec): Case {
  const rand = mulberry32(c.seed);
  const { B, L, P, S } = c;
  const M = B * L;
  const u = (n: number, lo = -2, hi = 2) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());
  const index = new Int32Array(B * L * P), valid = new Float32Array(B * L * P);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < P; p++) {
        const e = (b * L + l) * P + p;
        const ok = l >= (c.empty ?? 0) && rand() < (c.density ?? 0.7);
        valid[e] = ok ? 1 : 0;
        // empty slots point at row 0, as the model's pool reads do; valid ones into their sequence
        index[e] = !ok ? 0 : c.hot && rand() < 0.5 ? b * L + 1 : b * L + Math.floor(rand() * L);
      }
    }
  }
  return { B, L, P, S, M, q: u(B * L * S), k: u(M * S), v: u(M * S), index, valid, cOut: u(B * L * S), cW: u(B * L * P) };
}

type Impl = (q: Tensor, k: Tensor, v: Tensor, index: Tensor, valid: Tensor) => { out: Tensor; weights: Tensor };

/** The composite the model used before: gather [B, L, P, S] slots, single-row matmuls, masked softmax. */
const composite: Impl = (q, k, v, index, valid) => {
  const [B, L, S] = q.shape;
  const P = index.shape[2];
  const logits = T.reshape(T.matmul(T.reshape(q, [B, L, 1, S]), T.gather(k, index), { transB: true }), [B, L, P]);
  const weights = T.mul(T.softmax(T.where(valid, T.mul(logits, 1 / Math.sqrt(S)), -1e9)), valid);
  const out = T.reshape(T.matmul(T.reshape(weights, [B, L, 1, P]), T.gather(v, index)), [B, L, S]);
  return { out, weights };
};
const fused: Impl = (q, k, v, index, valid) => T.indexedAttention(q, k, v, index, valid);

interface Result {
  out: Float32Array;
  weights: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

/** impl's outputs and the gradients of Σ out⊙cOut + Σ weights⊙cW with respect to q, k, v. */
async function run(c: Case, impl: Impl): Promise<Result> {
  const { B, L, P, S, M } = c;
  const index = T.fromArray(c.index, [B, L, P], "i32"), valid = T.fromArray(c.valid, [B, L, P]);
  const cOut = T.fromArray(c.cOut, [B, L, S]), cW = T.fromArray(c.cW, [B, L, P]);
  const params = [T.fromArray(c.q, [B, L, S]), T.fromArray(c.k, [M, S]), T.fromArray(c.v, [M, S])];
  try {
    const fwd = T.tidy(() => {
      const r = impl(params[0], params[1], params[2], index, valid);
      return [r.out, r.weights];
    });
    const [out, weights] = await Promise.all(fwd.map((t) => t.data() as Promise<Float32Array>));
    T.disposeTree(fwd);
    const { value, grads } = T.valueAndGrad((ps: Tensor[]) => {
      const r = impl(ps[0], ps[1], ps[2], index, valid);
      return T.add(T.sum(T.mul(r.out, cOut)), T.sum(T.mul(r.weights, cW)));
    })(params);
    const [dq, dk, dv] = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
    T.disposeTree([value, grads]);
    return { out, weights, dq, dk, dv };
  } finally {
    T.disposeTree([index, valid, cOut, cW, params]);
  }
}

const SPECS: CaseSpec[] = [
  // 74 positions · 5 slots, 12 wide: nothing a multiple of 4, 64 or 256; three empty positions each
  { B: 2, L: 37, P: 5, S: 12, empty: 3, seed: 1 },
  // one row read by ~300 slots (more than the GPU's chunk of 32 terms); 2100 output threads
  { B: 1, L: 300, P: 3, S: 7, empty: 1, hot: true, seed: 2 },
  // the smallest: one slot of width 1
  { B: 3, L: 5, P: 1, S: 1, seed: 3 },
  // no valid slot anywhere: weights and reads are 0, gradients too
  { B: 2, L: 9, P: 4, S: 6, density: 0, seed: 4 },
];

for (const backend of testBackends()) {
  test(`[${backend}] indexedAttention equals the composite (gather, matmul, masked softmax): values and gradients`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      for (const spec of SPECS) {
        const c = makeCase(spec);
        const want = await run(c, composite);
        const got = await run(c, fused);
        const label = `${JSON.stringify([c.B, c.L, c.P, c.S])}`;
        // the forward pass does the composite's arithmetic in its order: equal to within a few
        // f32 roundings (bit for bit on the TypeScript CPU kernels, checked below)
        expect(`${label} ${close("out", got.out, want.out, 1e-5)}`).toBe(`${label} ok`);
        expect(`${label} ${close("weights", got.weights, want.weights, 1e-5)}`).toBe(`${label} ok`);
        // table gradients sum up to L·P terms in another grouping on the GPU
        const tol = 2e-5 * Math.sqrt(c.L * c.P);
        for (const k of ["dq", "dk", "dv"] as const) {
          expect(`${label} ${close(k, got[k], want[k], tol)}`).toBe(`${label} ok`);
        }
        if (backend === "cpu") {
          expect(Array.from(got.out)).toEqual(Array.from(want.out));
          expect(Array.from(got.weights)).toEqual(Array.from(want.weights));
        }
        // empty slots as −1 instead of row 0: the same numbers (bit for bit on the CPU kernels;
        // on the GPU the sums of row 0 may group their terms otherwise)
        const minus = await run({ ...c, index: c.index.map((r, e) => (c.valid[e] === 1 ? r : -1)) }, fused);
        for (const k of ["out", "weights", "dq", "dk", "dv"] as const) {
          if (backend === "webgpu") expect(`${label} −1 ${close(k, minus[k], got[k], tol)}`).toBe(`${label} −1 ok`);
          else expect(Array.from(minus[k])).toEqual(Array.from(got[k]));
        }
        // positions without a valid slot: zero weights, a zero read, finite gradients
        for (let n = 0; n < c.B * c.L; n++) {
          let any = false;
          for (let p = 0; p < c.P; p++) any ||= c.valid[n * c.P + p] === 1;
          if (any) continue;
          for (let p = 0; p < c.P; p++) expect(got.weights[n * c.P + p]).toBe(0);
          for (let j = 0; j < c.S; j++) expect(got.out[n * c.S + j]).toBe(0);
        }
        for (const k of ["dq", "dk", "dv"] as const) expect(got[k].every(Number.isFinite)).toBe(true);
        if (spec.density === 0) {
          expect(got.dq.every((x) => x === 0) && got.dk.every((x) => x === 0) && got.dv.every((x) => x === 0)).toBe(true);
        }
      }
    });
  });

  test(`[${backend}] indexedAttention and its primitives pass central-difference gradient checks`, async () => {
    if (!(await useBackend(backend))) return;
    const rand = mulberry32(77);
    const u = (n: number) => Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (0.2 + rand()));
    // N = [2, 3] positions, P = 3 slots (a repeated row, empty slots: most −1, one on row 0 and
    // one on row 2 with valid 0), S = 4, M = 5 rows
    const index = Int32Array.of(0, 4, 4, 1, 2, -1, 3, 3, 1, -1, 0, 2, 4, 1, 2, 2, -1, 0);
    const validData = Float32Array.of(1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1);
    const idx = { data: index, shape: [2, 3, 3] };
    const att = (pick: "out" | "weights") => (xs: Tensor[]) => {
      const valid = T.fromArray(validData, [2, 3, 3]);
      return T.indexedAttention(xs[0], xs[1], xs[2], xs[3], valid)[pick];
    };
    const attIns = [{ data: u(24), shape: [2, 3, 4] }, { data: u(20), shape: [5, 4] }, { data: u(20), shape: [5, 4] }, idx];
    await checkGradients(att("out"), attIns, { label: `${backend} indexedAttention out` });
    await checkGradients(att("weights"), attIns, { label: `${backend} indexedAttention weights` });
    await checkGradients((xs) => T.indexedDot(xs[0], xs[1], xs[2]), [{ data: u(24), shape: [2, 3, 4] }, { data: u(20), shape: [5, 4] }, idx], { label: `${backend} indexedDot` });
    await checkGradients((xs) => T.indexedSum(xs[0], xs[1], xs[2]), [{ data: u(18), shape: [2, 3, 3] }, { data: u(20), shape: [5, 4] }, idx], { label: `${backend} indexedSum` });
    await checkGradients((xs) => T.indexedOuter(xs[0], xs[1], xs[2], 5), [{ data: u(18), shape: [2, 3, 3] }, { data: u(24), shape: [2, 3, 4] }, idx], { label: `${backend} indexedOuter` });
  });
}

// ---------- empty slots (−1) against a plain reference ----------

/** The three primitives in float64 loops, −1 an empty slot: dot, sum and outer of (x, table, w, index). */
function reference(x: Float32Array, tab: Float32Array, w: Float32Array, index: Int32Array, N: number, P: number, S: number, M: number) {
  const dot = new Float64Array(N * P), sum = new Float64Array(N * S), outer = new Float64Array(M * S);
  for (let n = 0; n < N; n++) {
    for (let p = 0; p < P; p++) {
      const e = n * P + p, r = index[e];
      if (r === -1) continue;
      for (let j = 0; j < S; j++) {
        dot[e] += x[n * S + j] * tab[r * S + j];
        sum[n * S + j] += w[e] * tab[r * S + j];
        outer[r * S + j] += w[e] * x[n * S + j];
      }
    }
  }
  return { dot, sum, outer };
}

for (const backend of testBackends()) {
  test(`[${backend}] index −1 is an empty slot: a zero row in indexedDot and indexedSum, no term in indexedOuter`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const rand = mulberry32(91);
      // 3·41 positions, 4 slots of which about half are −1 (position 0: all of them), S = 5, M = 7
      const N = 123, P = 4, S = 5, M = 7;
      const index = Int32Array.from({ length: N * P }, (_, e) => (e < P || rand() < 0.5 ? -1 : Math.floor(rand() * M)));
      const u = (n: number) => Float32Array.from({ length: n }, () => rand() * 4 - 2);
      const x = u(N * S), tab = u(M * S), w = u(N * P);
      const want = reference(x, tab, w, index, N, P, S, M);
      const got = T.tidy(() => {
        const xt = T.fromArray(x, [3, 41, S]), tt = T.fromArray(tab, [M, S]), wt = T.fromArray(w, [3, 41, P]);
        const it = T.fromArray(index, [3, 41, P], "i32");
        return [T.indexedDot(xt, tt, it), T.indexedSum(wt, tt, it), T.indexedOuter(wt, xt, it, M)];
      });
      const [dot, sum, outer] = (await Promise.all(got.map((t) => t.data()))) as Float32Array[];
      T.disposeTree(got);
      const f32 = (a: Float64Array) => Float32Array.from(a);
      expect(close("dot", dot, f32(want.dot), 1e-5)).toBe("ok");
      expect(close("sum", sum, f32(want.sum), 1e-5)).toBe("ok");
      expect(close("outer", outer, f32(want.outer), 1e-5)).toBe("ok");
      for (let e = 0; e < N * P; e++) if (index[e] === -1) expect(dot[e]).toBe(0);
      for (let j = 0; j < S; j++) expect(sum[j]).toBe(0); // position 0 has no slot but −1
    });
  });
}

// ---------- indexedOuter with a second pair (one table as keys and values) ----------

for (const backend of testBackends()) {
  test(`[${backend}] indexedOuter with a second pair equals the sum of the two scatters (the CPU's bits), and its gradient checks`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const rand = mulberry32(17);
      // 2·90 positions, 5 slots, S = 8 (vec4 rows on the GPU) and S = 3 (scalar rows); rows 0 and 1
      // are read by half of the slots, so their lists run past the GPU's 32-term chunks
      for (const S of [8, 3]) {
        const N = 180, P = 5, M = 9;
        const index = Int32Array.from({ length: N * P }, () => (rand() < 0.2 ? -1 : rand() < 0.5 ? Math.floor(rand() * 2) : Math.floor(rand() * M)));
        const u = (n: number) => Float32Array.from({ length: n }, () => (rand() < 0.1 ? 0 : rand() * 4 - 2));
        const [w1, w2] = [u(N * P), u(N * P)], [x1, x2] = [u(N * S), u(N * S)];
        const outs = T.tidy(() => {
          const it = T.fromArray(index, [2, 90, P], "i32");
          const [a, b] = [T.fromArray(w1, [2, 90, P]), T.fromArray(w2, [2, 90, P])];
          const [c, d] = [T.fromArray(x1, [2, 90, S]), T.fromArray(x2, [2, 90, S])];
          return [T.indexedOuter(a, c, it, M, [b, d]), T.add(T.indexedOuter(a, c, it, M), T.indexedOuter(b, d, it, M))];
        });
        const [both, sum] = (await Promise.all(outs.map((t) => t.data()))) as Float32Array[];
        T.disposeTree(outs);
        if (backend === "webgpu") expect(close(`S ${S}`, both, sum, 1e-5)).toBe("ok");
        else expect(Array.from(both)).toEqual(Array.from(sum));
      }
      const u = (n: number) => Float32Array.from({ length: n }, () => rand() * 4 - 2);
      const idx = { data: Int32Array.of(0, 4, 4, 1, 2, -1, 3, 3, 1, -1, 0, 2, 4, 1, 2, 2, -1, 0), shape: [2, 3, 3] };
      await checkGradients(
        (xs) => T.indexedOuter(xs[0], xs[1], xs[2], 5, [xs[3], xs[4]]),
        [{ data: u(18), shape: [2, 3, 3] }, { data: u(24), shape: [2, 3, 4] }, idx, { data: u(18), shape: [2, 3, 3] }, { data: u(24), shape: [2, 3, 4] }],
        { label: `${backend} indexedOuter, two pairs` },
      );
    });
  });
}

test("indexedOuter: the second pair must have the first pair's shapes", async () => {
  await useBackend("cpu");
  const idx = T.fromArray(Int32Array.of(0, 1, 1, 0), [2, 2], "i32");
  const w = T.ones([2, 2]), x = T.ones([2, 3]);
  expect(() => T.indexedOuter(w, x, idx, 2, [T.ones([2, 1]), x])).toThrow(/indexedOuter: the second pair \[2, 1\], \[2, 3\] must have the first's shapes \[2, 2\], \[2, 3\]/);
  expect(() => T.indexedOuter(w, x, idx, 2, [w, T.ones([2, 4])])).toThrow(/must have the first's shapes/);
  T.disposeTree([idx, w, x]);
});

// ---------- memory: no [B, L, P, S] buffer ----------

/** A backend that delegates to another and records the largest allocation. */
class AllocProbe extends DelegatingBackend {
  override readonly name = "alloc-probe";
  largest = 0;
  override alloc(size: number, dtype: DType): BufferHandle {
    this.largest = Math.max(this.largest, size);
    return this.inner.alloc(size, dtype);
  }
}

test("indexedAttention allocates nothing of [B, L, P, S] elements in the forward or the backward pass (the composite does)", async () => {
  const spec = { B: 2, L: 64, P: 16, S: 16, empty: 2, seed: 5 };
  const c = makeCase(spec);
  const full = spec.B * spec.L * spec.P * spec.S; // 32768; the largest other tensor has 2048
  const largest = async (impl: Impl) => {
    const probe = new AllocProbe(T.setBackend("cpu"));
    T.setBackend(probe);
    try {
      await run(c, impl);
      expect(probe.liveBuffers()).toBe(0);
      return probe.largest;
    } finally {
      T.setBackend("cpu");
    }
  };
  const mine = await largest(fused);
  const theirs = await largest(composite);
  expect(theirs).toBeGreaterThanOrEqual(full); // the probe sees the composite's gathered slots
  expect(mine).toBeLessThanOrEqual(Math.max(spec.B * spec.L * spec.P, spec.B * spec.L * spec.S, c.M * spec.S));
});

// ---------- errors ----------

test("indexed primitives: clear errors for bad shapes, dtypes and out-of-range indices (CPU)", async () => {
  await useBackend("cpu");
  const q = T.zeros([2, 3, 4]), tab = T.zeros([5, 4]), idx = T.fromArray(new Int32Array(6), [2, 3, 1], "i32");
  const valid = T.ones([2, 3, 1]);
  try {
    expect(() => T.indexedDot(q, tab, T.zeros([2, 3, 1]))).toThrow(/indexedDot: index must be i32/);
    expect(() => T.indexedDot(q, T.zeros([5, 3]), idx)).toThrow(/indexedDot: table \[5, 3\] must be \[M, S\] with S the last axis of x \[2, 3, 4\]/);
    expect(() => T.indexedDot(T.zeros([3, 2, 4]), tab, idx)).toThrow(/indexedDot: x \[3, 2, 4\] and index \[2, 3, 1\] must share their leading axes/);
    expect(() => T.indexedSum(T.zeros([2, 3, 2]), tab, idx)).toThrow(/indexedSum: weights \[2, 3, 2\] and index \[2, 3, 1\]/);
    expect(() => T.indexedOuter(T.zeros([2, 3, 1]), q, idx, -1)).toThrow(/indexedOuter: rows must be a natural number/);
    expect(() => T.indexedAttention(q, tab, T.zeros([4, 4]), idx, valid)).toThrow(/indexedAttention: keys \[5, 4\] and values \[4, 4\]/);
    expect(() => T.indexedAttention(q, tab, tab, idx, T.ones([2, 3, 2]))).toThrow(/indexedAttention: valid f32 \[2, 3, 2\]/);
    const bad = T.fromArray(Int32Array.of(0, 1, 2, 5, 0, 0), [2, 3, 1], "i32");
    expect(() => T.indexedDot(q, tab, bad)).toThrow(/indexedDot: index 5 at position 3 is outside \[0, 5\) of table \[5, 4\]/);
    expect(() => T.indexedSum(T.ones([2, 3, 1]), tab, bad)).toThrow(/indexedSum: index 5 at position 3/);
    expect(() => T.indexedOuter(T.ones([2, 3, 1]), q, bad, 5)).toThrow(/indexedOuter: index 5 at position 3/);
    bad.dispose();
    // −1 is an empty slot, any other negative index an error
    const neg = T.fromArray(Int32Array.of(0, -1, -2, 1, -1, 0), [2, 3, 1], "i32");
    expect(() => T.indexedDot(q, tab, neg)).toThrow(/indexedDot: index -2 at position 2 is outside \[0, 5\) of table \[5, 4\] \(and is not −1, an empty slot\)/);
    expect(() => T.indexedSum(T.ones([2, 3, 1]), tab, neg)).toThrow(/indexedSum: index -2 at position 2/);
    expect(() => T.indexedOuter(T.ones([2, 3, 1]), q, neg, 5)).toThrow(/indexedOuter: index -2 at position 2/);
    neg.dispose();
    // no slot at all (P = 0): a zero read, no error
    const noIdx = T.fromArray(new Int32Array(0), [2, 3, 0], "i32"), noValid = T.zeros([2, 3, 0]), ones = T.ones([5, 4]), q1 = T.ones([2, 3, 4]);
    const none = T.indexedAttention(q1, ones, ones, noIdx, noValid);
    expect(none.out.shape).toEqual([2, 3, 4]);
    expect(Array.from(await none.out.data()).every((x) => x === 0)).toBe(true);
    T.disposeTree([none, noIdx, noValid, ones, q1]);
  } finally {
    T.disposeTree([q, tab, idx, valid]);
  }
});

// ---------- WebGPU specifics ----------

test("webgpu: indexed primitives on 2-D grids (lowered limits) and with out-of-range indices", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const main = T.getBackend();
  const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
  // same device, at most 6 workgroups per grid dimension: the indexed kernels of this case need 7
  // to 27 workgroups of 256 threads (2-D grids), and every other op of it fits 36
  // deno-lint-ignore no-explicit-any
  const gpu = await createWebGpuBackend({ gpu: (main as any).acquired, limits: { maxComputeWorkgroupsPerDimension: 6 } });
  try {
    const c = makeCase({ B: 2, L: 12, P: 70, S: 100, empty: 2, hot: true, seed: 6 });
    T.setBackend("cpu");
    const want = await run(c, fused);
    T.setBackend(gpu);
    const got = await run(c, fused);
    const tol = 2e-5 * Math.sqrt(c.L * c.P);
    for (const k of ["out", "weights", "dq", "dk", "dv"] as const) expect(close(k, got[k], want[k], tol)).toBe("ok");
    // out of range: indexedDot / indexedSum read a zero row, indexedOuter drops the term
    const x = T.fromArray([1, 2, 3, 4], [2, 2]), tab = T.fromArray([1, 1, 10, 10], [2, 2]);
    const idx = T.fromArray(Int32Array.of(1, 7, -1, 0), [2, 2], "i32"), w = T.fromArray([1, 1, 1, 1], [2, 2]);
    const outs = T.tidy(() => [T.indexedDot(x, tab, idx), T.indexedSum(w, tab, idx), T.indexedOuter(w, x, idx, 2)]);
    expect(Array.from(await outs[0].data())).toEqual([30, 0, 0, 7]);
    expect(Array.from(await outs[1].data())).toEqual([10, 10, 1, 1]);
    expect(Array.from(await outs[2].data())).toEqual([3, 4, 1, 2]);
    T.disposeTree([x, tab, idx, w, outs]);
    expect(gpu.liveBuffers()).toBe(0);
  } finally {
    gpu.destroy();
    T.setBackend(main);
  }
});
