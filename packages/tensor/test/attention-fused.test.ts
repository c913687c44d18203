/**
 * The fused pool read (ops/attention-fused.ts): indexedAttentionFused against the composite it
 * replaces, indexedAttention(...).out, on every backend (cpu; wasm, which runs the composite; and
 * webgpu):
 *
 * - forward values and the gradients of q, keys and values over shapes that exercise the kernels'
 *   paths: S 4, 8, 64, 132 (vec4) and 7, 37 (scalar); P 1, 5, 9, 50, 100 (the 128-slot arrays) and 200 (256);
 *   position counts that are no multiple of the GPU's 4 positions per workgroup; positions with
 *   no valid slot; −1 indices (masked, and one valid, which reads a zero row); duplicate indices
 *   within a position; logits in the hundreds; tables of N and of 2N rows. Bit for bit on the
 *   CPU kernels (which round as the composite's do), within a stated tolerance on the GPU;
 * - central-difference gradient checks through the fused path (gradcheck.ts);
 * - fewer launches than the composite, no buffer left behind (expectNoLeak);
 * - the composite where the fused kernels do not apply (P > ATTN_READ_MAX_SLOTS, P = 0);
 * - the VJP's fallback for a backend without runMulti (the same bits as the fused kernel);
 * - clear errors: out-of-range indices, bad shapes, second order;
 * - on the GPU: an 8-storage-buffer device (the backward as two dispatches), 2-D grids, and the
 *   layouts of attnReadTuning (positions per workgroup; phase 1's dot products by lanes or slots).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, Tensor } from "../src/index.ts";
import { DelegatingBackend } from "../../../test/support/delegating-backend.ts";
import { attnReadGrad } from "../src/ops/attention-fused.ts";
import { attnReadTuning } from "../src/webgpu/kernels/attention.ts";
import { checkGradients, mulberry32 } from "./gradcheck.ts";
import { close, recordKeys, type SlotReadCase } from "./indexed-attention-support.ts";

// ---------- cases ----------

/** N positions; M = N · Spec.tables table rows (one table of a pool read, or two side by side). */
interface Case extends SlotReadCase {
  N: number;
  /** The largest |logit| over the valid slots (the GPU tolerance grows with it). */
  maxLogit: number;
}

interface Spec {
  N: number;
  P: number;
  S: number;
  /** Table rows as a multiple of N (1: a pool read's table; 2: two pools side by side). */
  tables?: number;
  /** The first `empty` positions have no valid slot. */
  empty?: number;
  /** Scale of q and keys (logits grow with its square). */
  big?: number;
  /** Where true, about half the slots of a position repeat one row. */
  dup?: boolean;
  /** Positions in runs of about this many that read the same slots (the model's pools), each run's rows drawn afresh. */
  runs?: number;
  /** Within a run, the chance that a position's pool drops a slot's row (its later slots shift down one) and appends a new row, as a full pool that takes a note does. */
  shift?: number;
  seed: number;
}

function makeCase(s: Spec): Case {
  const rand = mulberry32(s.seed);
  const { N, P, S } = s;
  const M = N * (s.tables ?? 1);
  const u = (n: number, a = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * a);
  const index = new Int32Array(N * P), valid = new Float32Array(N * P);
  for (let n = 0; n < N; n++) {
    if (s.runs && n > 0 && rand() >= 1 / s.runs) {
      // the run goes on: position n reads what position n − 1 read (one slot changed now and then)
      index.copyWithin(n * P, (n - 1) * P, n * P);
      valid.copyWithin(n * P, (n - 1) * P, n * P);
      if (s.shift && rand() < s.shift) {
        const at = n * P + Math.floor(rand() * P);
        index.copyWithin(at, at + 1, (n + 1) * P);
        index[(n + 1) * P - 1] = Math.floor(rand() * M);
        valid[(n + 1) * P - 1] = 1;
      } else if (rand() < 0.3) index[n * P + Math.floor(rand() * P)] = Math.floor(rand() * M);
      continue;
    }
    const hot = Math.floor(rand() * M);
    for (let p = 0; p < P; p++) {
      const e = n * P + p, x = rand();
      const ok = n >= (s.empty ?? 0) && x < 0.75;
      valid[e] = ok ? 1 : 0;
      const row = s.dup && rand() < 0.5 ? hot : Math.floor(rand() * M);
      // masked slots: mostly −1, some a real row (the older encoding); a few valid −1 slots (a zero row)
      index[e] = ok ? (x < 0.03 ? -1 : row) : x < 0.9 ? -1 : row;
    }
  }
  const big = s.big ?? 1;
  const q = u(N * S, big), k = u(M * S, big);
  const scale = 1 / Math.sqrt(S);
  let maxLogit = 0;
  for (let e = 0; e < N * P; e++) {
    const r = index[e];
    if (!valid[e] || r < 0) continue;
    const n = Math.floor(e / P);
    let d = 0;
    for (let j = 0; j < S; j++) d += q[n * S + j] * k[r * S + j];
    maxLogit = Math.max(maxLogit, Math.abs(d * scale));
  }
  return { N, P, S, M, q, k, v: u(M * S, 2), index, valid, cOut: u(N * S), maxLogit };
}

type Impl = (q: Tensor, k: Tensor, v: Tensor, index: Tensor, valid: Tensor) => Tensor;
const composite: Impl = (q, k, v, index, valid) => {
  const r = T.indexedAttention(q, k, v, index, valid);
  r.weights.dispose();
  return r.out;
};
const fused: Impl = (q, k, v, index, valid) => T.indexedAttentionFused(q, k, v, index, valid);

interface Result {
  out: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  /** Launches (primitive applications) of the forward, and of the forward plus backward. */
  fwdLaunches: number;
  stepLaunches: number;
}

/** impl's read and the gradients of Σ out ⊙ cOut with respect to q, keys, values. */
async function run(c: Case, impl: Impl): Promise<Result> {
  const { N, P, S, M } = c;
  // positions as [2, N/2] where N is even: the leading axes need not be one
  const lead = N % 2 === 0 ? [2, N / 2] : [N];
  const index = T.fromArray(c.index, [...lead, P], "i32"), valid = T.fromArray(c.valid, [...lead, P]);
  const cOut = T.fromArray(c.cOut, [...lead, S]);
  const params = [T.fromArray(c.q, [...lead, S]), T.fromArray(c.k, [M, S]), T.fromArray(c.v, [M, S])];
  try {
    T.resetCounters();
    const out = T.tidy(() => impl(params[0], params[1], params[2], index, valid));
    const fwdLaunches = T.readCounters().launches;
    const outData = (await out.data()) as Float32Array;
    out.dispose();
    T.resetCounters();
    const { value, grads } = T.valueAndGrad((ps: Tensor[]) => T.sum(T.mul(impl(ps[0], ps[1], ps[2], index, valid), cOut)))(params);
    const stepLaunches = T.readCounters().launches;
    const [dq, dk, dv] = (await Promise.all(grads.map((g) => g.data()))) as Float32Array[];
    T.disposeTree([value, grads]);
    return { out: outData, dq, dk, dv, fwdLaunches, stepLaunches };
  } finally {
    T.disposeTree([index, valid, cOut, params]);
  }
}

const SPECS: Spec[] = [
  // scalar path (S = 7), 5 slots, 14 positions (3 workgroups of 4, the last half empty)
  { N: 14, P: 5, S: 7, empty: 2, seed: 1 },
  // one slot, the narrowest vec4 row, 13 positions
  { N: 13, P: 1, S: 4, empty: 1, seed: 2 },
  // the model's sizes per position: S = 64, P = 50 (one pool) with repeated rows and logits in
  // the hundreds (q and keys of up to ±12: near one-hot softmax rows)
  { N: 9, P: 50, S: 64, dup: true, big: 12, empty: 1, seed: 3 },
  // P = 100 (two pools: a table of 2N rows), 10 positions
  { N: 10, P: 100, S: 64, tables: 2, empty: 3, seed: 4 },
  // more than 128 slots: the 256-slot workgroup arrays
  { N: 5, P: 200, S: 8, dup: true, seed: 5 },
  // rows wider than the 16 lanes: 33 vec4s (3 per lane, the last on lane 0 only), 37 scalars
  { N: 6, P: 9, S: 132, seed: 12 },
  { N: 7, P: 9, S: 37, empty: 1, seed: 13 },
];

for (const backend of testBackends()) {
  test(`[${backend}] indexedAttentionFused equals indexedAttention(...).out: values and the gradients of q, keys, values`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      for (const spec of SPECS) {
        const c = makeCase(spec);
        const want = await run(c, composite);
        const got = await run(c, fused);
        const label = JSON.stringify([c.N, c.P, c.S, c.M]);
        if (backend === "webgpu") {
          // The GPU kernels add the softmax's sums in another order than the composite's kernels
          // (16 lane partials, then the lanes) and the compiler may contract a·b + c into an fma
          // in one program and not in the other: a logit z then differs by a few ulp of the
          // terms of its dot product, and exp(z − max) by as much relatively. So the bound grows
          // with the largest logit; the gradients of the tables add up to P terms per position
          // (and a row's terms over all positions, grouped otherwise by indexedOuter's chunks).
          const tol = 1e-6 * (4 + c.maxLogit);
          expect(`${label} ${close("out", got.out, want.out, tol)}`).toBe(`${label} ok`);
          const gtol = tol * Math.sqrt(c.P);
          for (const k of ["dq", "dk", "dv"] as const) expect(`${label} ${close(k, got[k], want[k], gtol)}`).toBe(`${label} ok`);
        } else {
          // the CPU kernels round where the composite's kernels round: the same bits (wasm runs
          // the composite itself)
          for (const k of ["out", "dq", "dk", "dv"] as const) expect(`${label} ${k} ${close(k, got[k], want[k], 0)}`).toBe(`${label} ${k} ok`);
        }
        // positions with no valid slot read exactly 0; nothing is NaN
        for (let n = 0; n < (spec.empty ?? 0); n++) for (let j = 0; j < c.S; j++) expect(got.out[n * c.S + j]).toBe(0);
        for (const k of ["out", "dq", "dk", "dv"] as const) expect(got[k].every(Number.isFinite)).toBe(true);
        if (backend === "wasm") {
          // the wasm backend prefers the composite: the fused call is it, launch for launch
          expect([got.fwdLaunches, got.stepLaunches]).toEqual([want.fwdLaunches, want.stepLaunches]);
        } else {
          // one launch forward; backward, attnReadGrad and the two scatters instead of the
          // composite's dot, masked-softmax VJP and sum before the same scatters
          expect(got.fwdLaunches).toBe(1);
          expect(got.fwdLaunches).toBeLessThan(want.fwdLaunches);
          expect(got.stepLaunches - got.fwdLaunches).toBeLessThan(want.stepLaunches - want.fwdLaunches);
        }
      }
    });
  });

  test(`[${backend}] one table as both keys and values: its gradient is dK + dV of two copies, from one scatter`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      for (const spec of [SPECS[0], SPECS[2], SPECS[3]]) {
        const c = makeCase(spec);
        const lead = [c.N];
        const index = T.fromArray(c.index, [...lead, c.P], "i32"), valid = T.fromArray(c.valid, [...lead, c.P]);
        const cOut = T.fromArray(c.cOut, [...lead, c.S]);
        const q = T.fromArray(c.q, [...lead, c.S]), k = T.fromArray(c.k, [c.M, c.S]);
        try {
          const loss = (qq: Tensor, kk: Tensor, vv: Tensor) => T.sum(T.mul(T.indexedAttentionFused(qq, kk, vv, index, valid), cOut));
          T.resetCounters();
          const one = T.valueAndGrad((ps: Tensor[]) => loss(ps[0], ps[1], ps[1]))([q, k]);
          const oneLaunches = T.readCounters().launches;
          // two tensors of the same values (a copy has its own storage): dK and dV apart, then added
          T.resetCounters();
          const two = T.valueAndGrad((ps: Tensor[]) => loss(ps[0], ps[1], T.add(ps[1], 0)))([q, k]);
          const twoLaunches = T.readCounters().launches;
          const [dqOne, dtOne, dqTwo, dtTwo] = (await Promise.all([...one.grads, ...two.grads].map((g) => g.data()))) as Float32Array[];
          T.disposeTree([one, two]);
          const label = JSON.stringify([c.N, c.P, c.S, c.M]);
          const tol = backend === "webgpu" ? 1e-6 * (4 + c.maxLogit) * Math.sqrt(c.P) : 0;
          expect(`${label} ${close("dq", dqOne, dqTwo, tol)}`).toBe(`${label} ok`);
          expect(`${label} ${close("dtable", dtOne, dtTwo, tol)}`).toBe(`${label} ok`);
          // wasm runs the composite (two scatters and their add either way: the copy is the one more
          // launch); elsewhere the two-copy run has the copy's add, the second scatter and the add
          // of dK and dV more
          expect(twoLaunches - oneLaunches).toBe(backend === "wasm" ? 1 : 3);
        } finally {
          T.disposeTree([index, valid, cOut, q, k]);
        }
      }
    });
  });

  test(`[${backend}] indexedAttentionFused passes central-difference gradient checks`, async () => {
    if (!(await useBackend(backend))) return;
    const rand = mulberry32(78);
    const u = (n: number) => Float32Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (0.2 + rand()));
    // [2, 3] positions, P = 3 slots (a repeated row, −1 slots, a masked slot on a real row, a
    // position with no valid slot), S = 5 (the scalar path) and S = 4 (vec4), M = 5 rows
    const index = Int32Array.of(0, 4, 4, 1, 2, -1, 3, 3, 1, -1, 0, 2, 4, 1, 2, 2, -1, 0);
    const validData = Float32Array.of(1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 1);
    const f = (xs: Tensor[]) => {
      const valid = T.fromArray(validData, [2, 3, 3]);
      return T.indexedAttentionFused(xs[0], xs[1], xs[2], xs[3], valid);
    };
    for (const S of [5, 4]) {
      await checkGradients(f, [
        { data: u(6 * S), shape: [2, 3, S] }, { data: u(5 * S), shape: [5, S] }, { data: u(5 * S), shape: [5, S] }, { data: index, shape: [2, 3, 3] },
      ], { label: `${backend} indexedAttentionFused S=${S}` });
    }
  });

  test(`[${backend}] indexedAttentionFused runs the composite where its kernels do not apply (P = 0, P > ${T.ATTN_READ_MAX_SLOTS})`, async () => {
    if (!(await useBackend(backend))) return;
    await expectNoLeak(async () => {
      const c = makeCase({ N: 3, P: T.ATTN_READ_MAX_SLOTS + 1, S: 4, seed: 6 });
      const want = await run(c, composite), got = await run(c, fused);
      for (const k of ["out", "dq", "dk", "dv"] as const) expect(close(k, got[k], want[k], 0)).toBe("ok");
      expect(got.fwdLaunches).toBe(want.fwdLaunches);
      const q = T.ones([2, 3]), tab = T.ones([4, 3]), idx = T.fromArray(new Int32Array(0), [2, 0], "i32"), valid = T.zeros([2, 0]);
      const out = T.indexedAttentionFused(q, tab, tab, idx, valid);
      expect(out.shape).toEqual([2, 3]);
      expect(Array.from(await out.data())).toEqual([0, 0, 0, 0, 0, 0]);
      T.disposeTree([q, tab, idx, valid, out]);
    });
  });
}

// ---------- a backend without runMulti ----------

/** The CPU backend without runMulti (a third-party backend's view of the interface). */
class NoMulti extends DelegatingBackend {
  override readonly name = "no-multi";
}

test("[cpu] without runMulti, attnRead's VJP runs the composite's backward ops: the same bits as attnReadGrad", async () => {
  await useBackend("cpu");
  const c = makeCase({ N: 11, P: 6, S: 5, dup: true, empty: 2, seed: 7 });
  const want = await run(c, fused);
  const probe = new NoMulti(T.setBackend("cpu"));
  T.setBackend(probe);
  try {
    const got = await run(c, fused);
    for (const k of ["out", "dq", "dk", "dv"] as const) expect(close(k, got[k], want[k], 0)).toBe("ok");
    expect(got.stepLaunches).toBeGreaterThan(want.stepLaunches); // the ops, not one attnReadGrad
    expect(probe.liveBuffers()).toBe(0);
  } finally {
    T.setBackend("cpu");
  }
});

// ---------- errors ----------

test("[cpu] attnRead: clear errors for out-of-range indices, bad shapes and second-order gradients", async () => {
  await useBackend("cpu");
  const q = T.zeros([2, 3, 4]), tab = T.zeros([5, 4]), valid = T.ones([2, 3, 1]);
  const bad = T.fromArray(Int32Array.of(0, 1, 2, 5, 0, 0), [2, 3, 1], "i32");
  const neg = T.fromArray(Int32Array.of(0, -1, -2, 1, -1, 0), [2, 3, 1], "i32");
  const idx = T.fromArray(new Int32Array(6), [2, 3, 1], "i32");
  try {
    expect(() => T.indexedAttentionFused(q, tab, tab, bad, valid)).toThrow(/attnRead: index 5 at position 3 is outside \[0, 5\) of table \[5, 4\]/);
    expect(() => T.indexedAttentionFused(q, tab, tab, neg, valid)).toThrow(/attnRead: index -2 at position 2 is outside \[0, 5\)/);
    expect(() => T.indexedAttentionFused(q, tab, tab, idx, T.ones([2, 3, 2]))).toThrow(/indexedAttentionFused: valid f32 \[2, 3, 2\] must be f32 with the index's shape \[2, 3, 1\]/);
    expect(() => T.indexedAttentionFused(q, tab, T.zeros([4, 4]), idx, valid)).toThrow(/keys \[5, 4\] and values \[4, 4\] must be the same \[M, S\] tables/);
    expect(() => T.indexedAttentionFused(T.zeros([3, 2, 4]), tab, tab, idx, valid)).toThrow(/q \[3, 2, 4\], tables \[5, 4\] and index \[2, 3, 1\] must be/);
    expect(() => T.indexedAttentionFused(q, tab, tab, T.zeros([2, 3, 1]), valid)).toThrow(/attnRead: index must be i32/);
    const many = T.fromArray(new Int32Array(6 * 300), [2, 3, 300], "i32"), manyValid = T.ones([2, 3, 300]);
    expect(() => T.bind("attnRead", [q, tab, tab, many, manyValid], { scale: 1 })).toThrow(/attnRead: needs 1\.\.256 slots/);
    T.disposeTree([many, manyValid]);
    // attnReadGrad is the VJP's kernel: differentiating it is an error, not a silent zero
    const g = T.ones([2, 3, 4]);
    expect(() => T.valueAndGrad((x: Tensor) => T.sum(attnReadGrad(x, tab, tab, idx, valid, g, 0.5)[0]))(q)).toThrow(
      "attnReadGrad: second-order gradients are not supported",
    );
    // the error index of the backward kernel names it too (the forward checked the same index first)
    expect(() => attnReadGrad(q, tab, tab, bad, valid, g, 0.5)).toThrow(/attnReadGrad: index 5 at position 3/);
    g.dispose();
  } finally {
    T.disposeTree([q, tab, valid, bad, neg, idx]);
  }
});

// ---------- WebGPU specifics ----------

const ourKeys = (seen: Set<string>) => [...seen].filter((k) => k.startsWith("attnRead")).sort();

test("webgpu: other positions per workgroup (attnReadTuning) give the same numbers; too many for the workgroup memory shrink", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  // 9 positions: 5 workgroups of 2 positions, 1 of 16, 2 of 8 (the last one of each part empty)
  const cases = [makeCase({ N: 9, P: 50, S: 64, empty: 1, dup: true, seed: 10 }), makeCase({ N: 9, P: 200, S: 7, empty: 1, seed: 11 })];
  T.setBackend("cpu");
  const want = [];
  for (const c of cases) want.push(await run(c, fused));
  T.setBackend(gpu);
  // deno-lint-ignore no-explicit-any
  const limit: number = (gpu as any).ctx.limits.maxComputeWorkgroupStorageSize;
  const before = T.liveBuffers();
  try {
    // 2; 16 (it fits lavapipe's 32 KB with 128 slots, and shrinks to 8 with 256)
    for (const positions of [2, 16]) {
      attnReadTuning.positions = positions;
      for (const [i, c] of cases.entries()) {
        const rec = recordKeys(gpu);
        const got = await run(c, fused);
        rec.restore();
        const tol = 1e-6 * (4 + c.maxLogit);
        for (const k of ["out", "dq", "dk", "dv"] as const) expect(`${positions} ${close(k, got[k], want[i][k], k === "out" ? tol : tol * Math.sqrt(c.P))}`).toBe(`${positions} ok`);
        // the backward's arrays: 12 bytes per slot and position, 12 per thread for the reductions
        const CH = c.P <= 128 ? 128 : 256;
        let fits = positions;
        while (fits > 1 && 12 * fits * CH + 12 * 16 * fits > limit) fits /= 2;
        expect(ourKeys(rec.seen).find((k) => k.startsWith("attnRead:grad:"))).toBe(`attnRead:grad:${c.S % 4 ? "f32" : "vec4"}:${CH}:${fits}`);
      }
    }
    attnReadTuning.positions = 3;
    const c = cases[0];
    await expect(run(c, fused)).rejects.toThrow("attnReadTuning.positions must be 1, 2, 4, 8 or 16, got 3");
    expect(T.liveBuffers()).toBe(before);
  } finally {
    attnReadTuning.positions = 4;
  }
});

test("webgpu: phase 1's other layouts (attnReadTuning.dots \"slots\", dotLanes 8 and 16) give the same numbers; bad values are refused", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  // vec4 rows of the model's width with logits in the hundreds; scalar rows of 37 (3 elements a
  // lane at 16 lanes a slot, 10 at 4) over 200 slots (the 256-slot arrays, a part-empty last round)
  const cases = [makeCase({ N: 9, P: 50, S: 64, empty: 1, dup: true, big: 12, seed: 14 }), makeCase({ N: 7, P: 200, S: 37, empty: 1, seed: 15 })];
  T.setBackend("cpu");
  const want = [];
  for (const c of cases) want.push(await run(c, fused));
  T.setBackend(gpu);
  const before = T.liveBuffers();
  try {
    for (const [dots, dotLanes, tag] of [["slots", 4, ":slots"], ["lanes", 8, ":lanes8"], ["lanes", 16, ":lanes16"]] as const) {
      Object.assign(attnReadTuning, { dots, dotLanes, forward: "lanes" });
      for (const [i, c] of cases.entries()) {
        const rec = recordKeys(gpu);
        const got = await run(c, fused);
        rec.restore();
        const tol = 1e-6 * (4 + c.maxLogit), label = `${dots} ${dotLanes} ${c.S}`;
        for (const k of ["out", "dq", "dk", "dv"] as const) expect(`${label} ${close(k, got[k], want[i][k], k === "out" ? tol : tol * Math.sqrt(c.P))}`).toBe(`${label} ok`);
        // position 0 has no valid slot: it reads exactly 0
        for (let j = 0; j < c.S; j++) expect(got.out[j]).toBe(0);
        // each layout is a pipeline of its own
        const CH = c.P <= 128 ? 128 : 256, t = c.S % 4 ? "f32" : "vec4";
        expect(ourKeys(rec.seen)).toEqual([`attnRead:grad:${t}:${CH}:4${tag}`, `attnRead:out:${t}:${CH}:4${tag}`]);
      }
    }
    Object.assign(attnReadTuning, { dots: "rows", dotLanes: 4 });
    await expect(run(cases[0], fused)).rejects.toThrow('attnReadTuning.dots must be "lanes" or "slots", got "rows"');
    Object.assign(attnReadTuning, { dots: "lanes", dotLanes: 2 });
    await expect(run(cases[0], fused)).rejects.toThrow("attnReadTuning.dotLanes must be 4, 8 or 16, got 2");
    expect(T.liveBuffers()).toBe(before);
  } finally {
    Object.assign(attnReadTuning, { dots: "lanes", dotLanes: 4, forward: "auto" });
  }
});

test("webgpu: attnReadGrad on an 8-storage-buffer device (two dispatches) and the kernels on 2-D grids", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const main = T.getBackend();
  const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
  // same device; WebGPU's default of 8 storage buffers (the one-dispatch backward binds 9), and
  // at most 4 workgroups per grid dimension (the backward kernels need 5 workgroups of 4
  // positions here: a 2-D grid; every other op of the case fits 16, the shared-rows forward 2)
  // deno-lint-ignore no-explicit-any
  const gpu = await createWebGpuBackend({ gpu: (main as any).acquired, limits: { maxStorageBuffersPerShaderStage: 8, maxComputeWorkgroupsPerDimension: 4 } });
  try {
    const c = makeCase({ N: 18, P: 50, S: 64, empty: 2, dup: true, seed: 8 });
    T.setBackend("cpu");
    const want = await run(c, fused);
    // the pipelines each backend dispatches: one backward dispatch where 9 buffers may be bound
    // (lavapipe and real GPUs allow more than 8), two on the 8-buffer device
    T.setBackend(main);
    // the forward: the lanes kernel ("auto" takes the shared-rows kernel only for reads of 4096+ positions on a software adapter)
    const fwd = "attnRead:out:vec4:128:4";
    const onMain = recordKeys(main);
    await run(c, fused);
    onMain.restore();
    T.setBackend(gpu);
    const onGpu = recordKeys(gpu);
    const got = await run(c, fused);
    onGpu.restore();
    // deno-lint-ignore no-explicit-any
    if ((main as any).ctx.limits.maxStorageBuffersPerShaderStage >= 9) expect(ourKeys(onMain.seen)).toEqual(["attnRead:grad:vec4:128:4", fwd]);
    expect(ourKeys(onGpu.seen)).toEqual(["attnRead:gradNoW:vec4:128:4", fwd, "attnRead:w:vec4:128:4"].sort());
    const tol = 1e-6 * (4 + c.maxLogit);
    expect(close("out", got.out, want.out, tol)).toBe("ok");
    for (const k of ["dq", "dk", "dv"] as const) expect(close(k, got[k], want[k], tol * Math.sqrt(c.P))).toBe("ok");
    expect(gpu.liveBuffers()).toBe(0);
  } finally {
    gpu.destroy();
    T.setBackend(main);
  }
});

/**
 * A forward kernel of attnReadTuning.forward against the CPU and the lanes kernel on one case: the
 * forward's pipeline key, its output (and the gradients, whose kernels are the lanes kernel's either
 * way) within the case's tolerance, and exact zeros where a position has no valid slot.
 */
async function checkForward(gpu: Backend, forward: "shared" | "online", spec: Spec, key: string, impl: Impl = fused): Promise<void> {
  const c = makeCase(spec);
  T.setBackend("cpu");
  const want = await run(c, impl);
  T.setBackend(gpu);
  attnReadTuning.forward = "lanes";
  const lanes = await run(c, impl);
  attnReadTuning.forward = forward;
  const rec = recordKeys(gpu);
  const got = await run(c, impl);
  rec.restore();
  const label = JSON.stringify(spec);
  expect(`${label} ${ourKeys(rec.seen).filter((k) => !k.startsWith("attnRead:grad")).join(",")}`).toBe(`${label} ${key}`);
  const tol = 1e-6 * (4 + c.maxLogit);
  expect(`${label} ${close("out", got.out, want.out, tol)}`).toBe(`${label} ok`);
  expect(`${label} ${close("out vs lanes", got.out, lanes.out, tol)}`).toBe(`${label} ok`);
  for (const k of ["dq", "dk", "dv"] as const) expect(`${label} ${close(k, got[k], want[k], tol * Math.sqrt(c.P))}`).toBe(`${label} ok`);
  // positions with no valid slot read exactly 0
  for (let j = 0; j < (spec.empty ?? 0) * c.S; j++) expect(got.out[j]).toBe(0);
}

test("webgpu: the shared-rows forward (attnReadTuning.forward \"shared\") equals the lanes kernel and the CPU on pools shared in runs, mixed and unshared; it leaves wide rows, scalar rows and 256-slot pools to the lanes kernel", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  // deno-lint-ignore no-explicit-any
  const limit: number = (gpu as any).ctx.limits.maxComputeWorkgroupStorageSize;
  // positions a workgroup: 16, halved while q rows (16 bytes a vec4), logits and rows (8 bytes a
  // slot) and 256 bytes of partials exceed the device's workgroup memory
  const fit = (CH: number, SQ: number) => {
    let pos = 16;
    while (pos > 4 && 16 * pos * SQ + 8 * pos * CH + 256 > limit) pos /= 2;
    return pos;
  };
  // [spec, the forward's pipeline key]: runs of ~40 and ~3 positions, none (every position its
  // own rows), 100 slots (the 128-slot arrays: 8 positions a workgroup under 16 KiB), rows of 128 and of 4
  // floats, position counts that are no multiple of 16, positions with no valid slot
  const cases: [Spec, string][] = [
    [{ N: 70, P: 50, S: 64, runs: 40, empty: 3, seed: 40 }, "attnRead:shared:64:16:16"],
    [{ N: 37, P: 50, S: 64, runs: 3, dup: true, big: 12, seed: 41 }, "attnRead:shared:64:16:16"],
    [{ N: 21, P: 9, S: 64, seed: 42 }, "attnRead:shared:64:16:16"],
    [{ N: 45, P: 100, S: 64, runs: 20, tables: 2, empty: 1, seed: 43 }, `attnRead:shared:128:${fit(128, 16)}:16`],
    [{ N: 19, P: 50, S: 128, runs: 10, seed: 44 }, `attnRead:shared:64:${fit(64, 32)}:32`],
    [{ N: 17, P: 5, S: 4, runs: 5, seed: 45 }, "attnRead:shared:64:16:16"],
    [{ N: 9, P: 50, S: 132, runs: 4, seed: 46 }, "attnRead:out:vec4:128:4"],
    [{ N: 9, P: 50, S: 37, runs: 4, seed: 47 }, "attnRead:out:f32:128:4"],
    [{ N: 9, P: 200, S: 64, runs: 4, seed: 48 }, "attnRead:out:vec4:256:4"],
  ];
  const before = T.liveBuffers();
  try {
    // "auto" (the default) takes the shared kernel on a software adapter only, for reads of 4096
    // positions or more (a recurrent step reads one); on a GPU the online kernel from 64 positions
    // on, for rows of up to 64 floats
    // deno-lint-ignore no-explicit-any
    const software: boolean = (gpu as any).ctx.software === true;
    const lanesKey = "attnRead:out:vec4:128:4";
    for (
      const [N, S, key] of [
        [17, 64, lanesKey],
        [4095, 64, software ? lanesKey : "attnRead:online:16"],
        [4096, 64, software ? "attnRead:shared:64:16:16" : "attnRead:online:16"],
        [4096, 128, software ? `attnRead:shared:64:${fit(64, 32)}:32` : lanesKey],
      ] as const
    ) {
      const rec = recordKeys(gpu);
      await run(makeCase({ N, P: 50, S, runs: 40, seed: 53 }), fused);
      rec.restore();
      expect(`${N} ${S} ${ourKeys(rec.seen).filter((k) => !k.startsWith("attnRead:grad"))}`).toBe(`${N} ${S} ${key}`);
    }
    for (const [spec, key] of cases) await checkForward(gpu, "shared", spec, key);
    attnReadTuning.forward = "shared";
    // fewer positions a workgroup (attnReadTuning.sharedPositions): the same numbers
    for (const sharedPositions of [4, 8]) {
      attnReadTuning.sharedPositions = sharedPositions;
      const c = makeCase({ N: 37, P: 50, S: 64, runs: 3, dup: true, empty: 2, seed: 51 });
      T.setBackend("cpu");
      const want = await run(c, fused);
      T.setBackend(gpu);
      const rec = recordKeys(gpu);
      const got = await run(c, fused);
      rec.restore();
      expect(ourKeys(rec.seen).filter((k) => !k.startsWith("attnRead:grad"))).toEqual([`attnRead:shared:64:${sharedPositions}:16`]);
      expect(`${sharedPositions} ${close("out", got.out, want.out, 1e-6 * (4 + c.maxLogit))}`).toBe(`${sharedPositions} ok`);
    }
    attnReadTuning.sharedPositions = 2;
    await expect(run(makeCase({ N: 9, P: 50, S: 64, seed: 52 }), fused)).rejects.toThrow("attnReadTuning.sharedPositions must be 4, 8 or 16, got 2");
    attnReadTuning.sharedPositions = 16;
    // WebGPU's minimum of 16 KiB workgroup memory: 100 slots take 8 positions a workgroup
    const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
    // deno-lint-ignore no-explicit-any
    const small = await createWebGpuBackend({ gpu: (gpu as any).acquired, limits: { maxComputeWorkgroupStorageSize: 16384 } });
    try {
      const c = makeCase({ N: 45, P: 100, S: 64, runs: 20, tables: 2, empty: 1, seed: 50 });
      T.setBackend("cpu");
      const want = await run(c, fused);
      T.setBackend(small);
      const rec = recordKeys(small);
      const got = await run(c, fused);
      rec.restore();
      expect(ourKeys(rec.seen).filter((k) => !k.startsWith("attnRead:grad"))).toEqual(["attnRead:shared:128:8:16"]);
      expect(close("out", got.out, want.out, 1e-6 * (4 + c.maxLogit))).toBe("ok");
      expect(small.liveBuffers()).toBe(0);
    } finally {
      small.destroy();
      T.setBackend(gpu);
    }
    attnReadTuning.forward = "rows" as "shared";
    await expect(run(makeCase({ N: 9, P: 50, S: 64, seed: 49 }), fused)).rejects.toThrow('attnReadTuning.forward must be "auto", "online", "shared" or "lanes", got "rows"');
    expect(T.liveBuffers()).toBe(before);
  } finally {
    Object.assign(attnReadTuning, { forward: "auto", sharedPositions: 16 });
  }
  // compiling its shared-rows shaders on lavapipe with a cold shader cache (a fresh CI machine)
  // took over two minutes here: more than the harness's default 120 s
}, 600_000);

test("webgpu: the online forward (attnReadTuning.forward \"online\") equals the lanes kernel and the CPU on pools shared in runs, shifting, mixed and unshared, with keys and values one tensor or two; it leaves rows of more than 64 floats and scalar rows to the lanes kernel", async () => {
  if (!testBackends().includes("webgpu") || !(await useBackend("webgpu"))) return;
  const gpu = T.getBackend();
  // keys and values one tensor (the model's reads)
  const sameTable: Impl = (q, k, _v, index, valid) => T.indexedAttentionFused(q, k, k, index, valid);
  // [spec, the forward's pipeline key]: runs of ~40 and ~3 positions whose pools drop and append
  // rows (shift), none (every position its own rows), 100 and 200 slots, rows of 4 and 24
  // floats, position counts that are no multiple of 64, positions with no valid slot, logits in
  // the hundreds; then the rows it leaves to the lanes kernel
  const cases: [Spec, string][] = [
    [{ N: 70, P: 50, S: 64, runs: 40, shift: 0.1, empty: 3, seed: 60 }, "attnRead:online:16"],
    [{ N: 37, P: 50, S: 64, runs: 3, dup: true, big: 12, seed: 61 }, "attnRead:online:16"],
    [{ N: 21, P: 9, S: 64, seed: 62 }, "attnRead:online:16"],
    [{ N: 45, P: 100, S: 64, runs: 20, shift: 0.2, tables: 2, empty: 1, seed: 63 }, "attnRead:online:16"],
    [{ N: 12, P: 200, S: 64, runs: 4, shift: 0.5, big: 8, seed: 64 }, "attnRead:online:16"],
    [{ N: 17, P: 5, S: 4, runs: 5, shift: 0.3, seed: 65 }, "attnRead:online:1"],
    [{ N: 19, P: 50, S: 24, runs: 6, shift: 0.2, seed: 66 }, "attnRead:online:6"],
    [{ N: 9, P: 50, S: 72, runs: 4, seed: 67 }, "attnRead:out:vec4:128:4"],
    [{ N: 9, P: 50, S: 37, runs: 4, seed: 68 }, "attnRead:out:f32:128:4"],
  ];
  const before = T.liveBuffers();
  try {
    for (const [spec, key] of cases) await checkForward(gpu, "online", spec, key);
    for (const [spec, key] of cases.slice(0, 5)) await checkForward(gpu, "online", { ...spec, seed: spec.seed + 100 }, key, sameTable);
    // valid logits below the masked slots' −1e9: the masked slots carry the softmax as in the
    // composite (position 0: its read is ~0), none masked (1: a plain softmax of huge logits), small
    // logits (2), no valid slot (3)
    {
      const f = (...xs: number[]) => Float32Array.from(xs);
      const c: Case = {
        N: 4, P: 3, S: 4, M: 4, maxLogit: 0,
        q: f(1e5, 0, 0, 0, 1e5, 0, 0, 0, 1, 0.5, 0, 0, 1e5, 0, 0, 0),
        k: f(-4e4, 0, 0, 0, -4.001e4, 0, 0, 0, 0.3, 0.1, 0.2, 0.4, -4e4, 1, 0, 0),
        v: f(1, 2, 3, 4, -1, 0.5, 2, 1, 0.25, -3, 1, 2, 2, 2, -1, 0.5),
        index: Int32Array.from([0, 1, 2, 0, 1, 3, 2, 0, 1, 0, 1, 2]),
        valid: f(1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 0),
        cOut: f(...Array(16).fill(1)),
      };
      T.setBackend("cpu");
      const want = await run(c, fused);
      T.setBackend(gpu);
      attnReadTuning.forward = "online";
      const got = await run(c, fused);
      expect(close("out", got.out, want.out, 1e-6)).toBe("ok");
      expect(Math.max(...want.out.subarray(0, 4).map(Math.abs))).toBeLessThan(1e-30);
      expect(Math.abs(want.out[4] - 1.5)).toBeLessThan(1e-6);
    }
    // at most 3 workgroups a grid dimension: 300 positions take 5 workgroups of 64 on a 3x2 grid,
    // one spare (the forward alone)
    const { createWebGpuBackend } = await import("../src/webgpu/backend.ts");
    // deno-lint-ignore no-explicit-any
    const small = await createWebGpuBackend({ gpu: (gpu as any).acquired, limits: { maxComputeWorkgroupsPerDimension: 3 } });
    try {
      const c = makeCase({ N: 300, P: 50, S: 64, runs: 40, shift: 0.1, empty: 2, seed: 70 });
      const forward = async () => {
        const index = T.fromArray(c.index, [c.N, c.P], "i32"), valid = T.fromArray(c.valid, [c.N, c.P]);
        const q = T.fromArray(c.q, [c.N, c.S]), k = T.fromArray(c.k, [c.M, c.S]), v = T.fromArray(c.v, [c.M, c.S]);
        const out = T.indexedAttentionFused(q, k, v, index, valid);
        const data = (await out.data()) as Float32Array;
        T.disposeTree([index, valid, q, k, v, out]);
        return data;
      };
      T.setBackend("cpu");
      const want = await forward();
      T.setBackend(small);
      const rec = recordKeys(small);
      const got = await forward();
      rec.restore();
      expect(ourKeys(rec.seen)).toEqual(["attnRead:online:16"]);
      expect(close("out", got, want, 1e-6 * (4 + c.maxLogit))).toBe("ok");
      expect(small.liveBuffers()).toBe(0);
    } finally {
      small.destroy();
      T.setBackend(gpu);
    }
    expect(T.liveBuffers()).toBe(before);
  } finally {
    attnReadTuning.forward = "auto";
  }
}, 600_000);
