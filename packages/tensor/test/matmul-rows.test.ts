/**
 * matmulRows (ops/linalg.ts): x·w over the rows a mask keeps, 0 elsewhere, on every backend:
 * - the CPU's kept rows have the bits of matmul's rows (each row through gemm alone);
 * - wasm (its composite where(rows, matmul, 0)) and WebGPU (its own kernel) equal the CPU within
 *   f32 rounding of a K-term sum, with NaN in a dropped row still giving 0;
 * - bad shapes and dtypes are refused with a message naming the operand;
 * - matmulRowsMax (the columns max-pooled in groups of r, MemMamba's held notes) equals the max of
 *   matmulRows' groups: bit for bit on the CPU, within the sums' rounding elsewhere; ties keep the
 *   first, a NaN in a kept row wins its group; it has no gradient (a clear error).
 * The gradient is checked in gradients.test.ts; WebGPU parity on drawn shapes in webgpu-parity.test.ts.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { fromArray, matmul, matmulRows, matmulRowsMax, max, mul, setBackend, tidy, valueAndGrad, where, reshape, sum } from "../src/index.ts";

function data(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

const [B, R, K, N] = [2, 7, 19, 70];
const X = data(B * R * K, 1), W = data(K * N, 2);
const KEEP = Float32Array.from({ length: B * R }, (_, i) => (i % 3 === 0 || i === 5 ? 1 : 0));
// a dropped row holding NaN must still give zeros
X[1 * K + 4] = NaN;

async function reference(): Promise<Float32Array> {
  setBackend("cpu");
  const y = tidy(() => matmul(fromArray(X, [B, R, K]), fromArray(W, [K, N])));
  const full = (await y.data()) as Float32Array;
  y.dispose();
  return full;
}

describe("matmulRows", () => {
  for (const b of testBackends()) {
    test(`[${b}] kept rows are matmul's rows, dropped rows 0 (NaN in a dropped row included)`, async () => {
      const full = await reference();
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const y = tidy(() => matmulRows(fromArray(X, [B, R, K]), fromArray(W, [K, N]), fromArray(KEEP, [B, R])));
        expect(y.shape).toEqual([B, R, N]);
        const got = (await y.data()) as Float32Array;
        y.dispose();
        for (let i = 0; i < B * R; i++) {
          for (let j = 0; j < N; j++) {
            const g = got[i * N + j], w = KEEP[i] ? full[i * N + j] : 0;
            if (b === "cpu") {
              if (!Object.is(g, w)) throw new Error(`row ${i} col ${j}: ${g}, want exactly ${w}`);
            } else if (!(Math.abs(g - w) <= 1e-5 * Math.sqrt(K) * (1 + Math.abs(w)))) {
              throw new Error(`${b}: row ${i} col ${j}: ${g}, want ${w}`);
            }
          }
        }
      });
    });
  }

  test("the composite form gives the CPU kernel's bits", async () => {
    setBackend("cpu");
    const a = tidy(() => matmulRows(fromArray(X, [B, R, K]), fromArray(W, [K, N]), fromArray(KEEP, [B, R])));
    const c = tidy(() => where(reshape(fromArray(KEEP, [B, R]), [B, R, 1]), matmul(fromArray(X, [B, R, K]), fromArray(W, [K, N])), 0));
    expect(Array.from(await a.data())).toEqual(Array.from(await c.data()));
    a.dispose();
    c.dispose();
  });

  test("bad operands are refused, naming what is wrong", () => {
    setBackend("cpu");
    const x = fromArray(X, [B, R, K]), w = fromArray(W, [K, N]), keep = fromArray(KEEP, [B, R]);
    try {
      expect(() => matmulRows(x, fromArray(W, [N, K]), keep)).toThrow(/matmulRows: x \[2, 7, 19\] and w \[70, 19\] must be/);
      expect(() => matmulRows(x, w, fromArray(KEEP, [B * R]))).toThrow(/matmulRows: rows \[14\] must be x's shape without its last axis, \[2, 7\]/);
      expect(() => matmulRows(reshape(x, [B * R * K]), w, keep)).toThrow(/matmulRows: x \[266\] and w \[19, 70\] must be \[..., R, K\]/);
      expect(() => matmulRows(x, w, fromArray(Int32Array.from(KEEP), [B, R], "i32"))).toThrow(/matmulRows: expects f32 x, w and rows, got f32, f32 and i32/);
    } finally {
      x.dispose();
      w.dispose();
      keep.dispose();
    }
  });
});

describe("matmulRowsMax", () => {
  // [columns, r]: r 2 and 5 (70 columns: 35 and 14 groups), 1 (no pooling), 70 (one group), and
  // r 4 over 64 and 8 columns (the GPU's vec4 shader; K = 19: one round of its 16 unrolled
  // steps); a kept row with a NaN (row 3: every group NaN) and equal columns (w's columns 0 and 1
  // the same: ties)
  const Xn = X.slice();
  Xn[3 * K + 2] = NaN;
  const Wt = W.slice();
  for (let k = 0; k < K; k++) Wt[k * N + 1] = Wt[k * N];
  for (const b of testBackends()) {
    test(`[${b}] the max of matmulRows' groups of r columns, dropped rows 0; NaN and ties as max does`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        for (const [n, r] of [[70, 2], [70, 5], [70, 1], [70, 70], [64, 4], [8, 4]]) {
          const Wn = Float32Array.from({ length: K * n }, (_, i) => Wt[Math.floor(i / n) * N + (i % n)]);
          const x = fromArray(Xn, [B, R, K]), w = fromArray(Wn, [K, n]), keep = fromArray(KEEP, [B, R]);
          const got = tidy(() => matmulRowsMax(x, w, keep, r));
          expect(got.shape).toEqual([B, R, n / r]);
          setBackend("cpu");
          const xc = fromArray(Xn, [B, R, K]), wc = fromArray(Wn, [K, n]), kc = fromArray(KEEP, [B, R]);
          const want = tidy(() => max(reshape(matmulRows(xc, wc, kc), [B, R, n / r, r]), -1));
          const [g, wnt] = [(await got.data()) as Float32Array, (await want.data()) as Float32Array];
          for (let i = 0; i < g.length; i++) {
            const ok = b === "cpu" ? Object.is(g[i], wnt[i]) : (Number.isNaN(wnt[i]) ? Number.isNaN(g[i]) : Math.abs(g[i] - wnt[i]) <= 1e-5 * Math.sqrt(K) * (1 + Math.abs(wnt[i])));
            if (!ok) throw new Error(`${b} ${n} columns, r ${r}: output ${i}: ${g[i]}, want ${wnt[i]}`);
          }
          // row 3 is kept and holds a NaN: every group NaN; row 1 is dropped (a NaN too): zeros
          expect(Number.isNaN(g[3 * (n / r)])).toBe(true);
          expect(g[1 * (n / r)]).toBe(0);
          for (const t of [xc, wc, kc, want]) t.dispose();
          await useBackend(b);
          for (const t of [x, w, keep, got]) t.dispose();
        }
      });
    });
  }

  for (const b of testBackends()) {
    test(`[${b}] with a scale: the pooled rows times their scale, as mul does (dropped rows 0 · s, negative scales included)`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const S = data(B * R, 9); // in [−2, 2)
        for (const [n, r] of [[64, 4], [70, 5]]) {
          const Wn = Float32Array.from({ length: K * n }, (_, i) => W[Math.floor(i / n) * N + (i % n)]);
          const got = tidy(() => matmulRowsMax(fromArray(X, [B, R, K]), fromArray(Wn, [K, n]), fromArray(KEEP, [B, R]), r, fromArray(S, [B, R])));
          expect(got.shape).toEqual([B, R, n / r]);
          const g = (await got.data()) as Float32Array;
          got.dispose();
          setBackend("cpu");
          const want = tidy(() => mul(max(reshape(matmulRows(fromArray(X, [B, R, K]), fromArray(Wn, [K, n]), fromArray(KEEP, [B, R])), [B, R, n / r, r]), -1), fromArray(S, [B, R, 1])));
          const wnt = (await want.data()) as Float32Array;
          want.dispose();
          await useBackend(b);
          for (let i = 0; i < g.length; i++) {
            const ok = b === "cpu" ? Object.is(g[i], wnt[i]) : Math.abs(g[i] - wnt[i]) <= 1e-5 * Math.sqrt(K) * (1 + Math.abs(wnt[i]));
            if (!ok) throw new Error(`${b} ${n} columns, r ${r}: output ${i}: ${g[i]}, want ${wnt[i]}`);
          }
          // a kept row is scaled: not the unscaled max
          const i0 = KEEP.indexOf(1);
          expect(Math.abs(wnt[i0 * (n / r)])).toBeGreaterThan(0);
        }
        setBackend("cpu");
        const x = fromArray(X, [B, R, K]), w = fromArray(W, [K, N]), keep = fromArray(KEEP, [B, R]), bad = fromArray(S, [B * R]);
        try {
          expect(() => matmulRowsMax(x, w, keep, 2, bad)).toThrow(/matmulRowsMax: the scale must be f32 of rows' shape \[2, 7\], got f32 \[14\]/);
        } finally {
          for (const t of [x, w, keep, bad]) t.dispose();
          await useBackend(b);
        }
      });
    });
  }

  for (const b of testBackends()) {
    test(`[${b}] 37 rows, a few kept (r 4: the GPU's vec4 shader)`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const [Rn, Kn, Nn] = [37, 5, 8];
        const xs = data(Rn * Kn, 7), ws = data(Kn * Nn, 8), ks = Float32Array.from({ length: Rn }, (_, i) => (i % 4 === 1 || i > 33 ? 1 : 0));
        const got = tidy(() => matmulRowsMax(fromArray(xs, [Rn, Kn]), fromArray(ws, [Kn, Nn]), fromArray(ks, [Rn]), 4));
        const g = (await got.data()) as Float32Array;
        got.dispose();
        setBackend("cpu");
        const want = tidy(() => max(reshape(matmulRows(fromArray(xs, [Rn, Kn]), fromArray(ws, [Kn, Nn]), fromArray(ks, [Rn])), [Rn, 2, 4]), -1));
        const wnt = (await want.data()) as Float32Array;
        want.dispose();
        await useBackend(b);
        for (let i = 0; i < g.length; i++) {
          if (!(Math.abs(g[i] - wnt[i]) <= 1e-5 * (1 + Math.abs(wnt[i])))) throw new Error(`${b}: output ${i}: ${g[i]}, want ${wnt[i]}`);
        }
        expect(g.filter((v) => v !== 0).length).toBeGreaterThan(0);
      });
    });
  }

  test("[webgpu] the strided vec4 kernel: workgroups taking many rows each (grid 1 and 3: 300 rows restaged past 256), N past 64 groups, K in uneven slices, with and without a scale", async () => {
    if (!(await useBackend("webgpu"))) return;
    const { rowsTuning } = await import("../src/webgpu/kernels/matmul-rows.ts");
    const saved = { ...rowsTuning };
    await expectNoLeak(async () => {
      try {
        for (const [grid, Rn, Kn, Nn, unroll] of [[1, 300, 37, 264, 16], [3, 41, 70, 8, 4], [2048, 19, 3, 16, 16]]) {
          Object.assign(rowsTuning, { grid, unroll, strided: true });
          const xs = data(Rn * Kn, 11), ws = data(Kn * Nn, 12), ss = data(Rn, 13);
          const ks = Float32Array.from({ length: Rn }, (_, i) => (i < 5 || i % 7 === 3 ? 1 : 0));
          xs[4 * Kn + 1] = NaN; // a kept row with a NaN: every group NaN
          for (const scaled of [false, true]) {
            const what = `grid ${grid}, [${Rn}, ${Kn}]·[${Kn}, ${Nn}]${scaled ? " scaled" : ""}`;
            const got = tidy(() => matmulRowsMax(fromArray(xs, [Rn, Kn]), fromArray(ws, [Kn, Nn]), fromArray(ks, [Rn]), 4, scaled ? fromArray(ss, [Rn]) : undefined));
            const g = (await got.data()) as Float32Array;
            got.dispose();
            setBackend("cpu");
            const want = tidy(() => matmulRowsMax(fromArray(xs, [Rn, Kn]), fromArray(ws, [Kn, Nn]), fromArray(ks, [Rn]), 4, scaled ? fromArray(ss, [Rn]) : undefined));
            const wnt = (await want.data()) as Float32Array;
            want.dispose();
            await useBackend("webgpu");
            for (let i = 0; i < g.length; i++) {
              const ok = Number.isNaN(wnt[i]) ? Number.isNaN(g[i]) : Math.abs(g[i] - wnt[i]) <= 1e-5 * Math.sqrt(Kn) * (1 + Math.abs(wnt[i]));
              if (!ok) throw new Error(`${what}: output ${i}: ${g[i]}, want ${wnt[i]}`);
            }
            expect(g.filter((v) => v !== 0 && !Number.isNaN(v)).length).toBeGreaterThan(0);
          }
        }
      } finally {
        Object.assign(rowsTuning, saved);
      }
    });
  });

  test("bad windows are refused; it has no gradient", () => {
    setBackend("cpu");
    const x = fromArray(X, [B, R, K]), w = fromArray(W, [K, N]), keep = fromArray(KEEP, [B, R]);
    try {
      expect(() => matmulRowsMax(x, w, keep, 3)).toThrow(/matmulRowsMax: the window r = 3 must be a positive integer that divides w's 70 columns/);
      expect(() => matmulRowsMax(x, w, keep, 0)).toThrow(/matmulRowsMax: the window r = 0/);
      expect(() => matmulRowsMax(x, fromArray(W, [N, K]), keep, 2)).toThrow(/matmulRows: x \[2, 7, 19\] and w \[70, 19\] must be/);
      expect(() => valueAndGrad((v: typeof x) => sum(matmulRowsMax(v, w, keep, 2)))(x)).toThrow(/matmulRowsMax has no gradient/);
    } finally {
      x.dispose();
      w.dispose();
      keep.dispose();
    }
  });
});
