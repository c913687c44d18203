/**
 * matmulRows (ops/linalg.ts): x·w over the rows a mask keeps, 0 elsewhere, on every backend:
 * - the CPU's kept rows have the bits of matmul's rows (each row through gemm alone);
 * - wasm (its composite where(rows, matmul, 0)) and WebGPU (its own kernel) equal the CPU within
 *   f32 rounding of a K-term sum, with NaN in a dropped row still giving 0;
 * - bad shapes and dtypes are refused with a message naming the operand.
 * The gradient is checked in gradients.test.ts; WebGPU parity on drawn shapes in webgpu-parity.test.ts.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { fromArray, matmul, matmulRows, setBackend, tidy, where, reshape } from "../src/index.ts";

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
