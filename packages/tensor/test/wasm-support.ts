/**
 * Helpers of the wasm backend tests (wasm*.test.ts): deterministic inputs, running one primitive
 * straight through Backend.run, bit and tolerance comparisons, and the matmul check that the wasm
 * and BLAS paths share.
 */
import { expect } from "../../../test/support/harness.ts";
import type { Backend, DType, HostArray, PrimName, PrimParams } from "../src/index.ts";
import { CpuBackend } from "../src/cpu/backend.ts";

export interface In {
  data: HostArray;
  shape: number[];
}
export const f = (data: ArrayLike<number>, shape: number[]): In => ({ data: Float32Array.from(data), shape });
export const iN = (data: ArrayLike<number>, shape: number[]): In => ({ data: Int32Array.from(data), shape });
export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Deterministic values in [lo, hi) (an LCG: no dependency on the PRNG under test elsewhere). */
export function rand(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + (hi - lo) * (s / 2 ** 32);
  }
  return out;
}
export function randInt(n: number, seed: number, lo: number, hi: number): Int32Array {
  return Int32Array.from(rand(n, seed, 0, 1), (v) => lo + Math.floor(v * (hi - lo)));
}
/** Special values mixed into a random array: NaN, ±Inf, ±0, tiny, huge, exp's edges. */
const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1e-40, -1e-40, 3e38, -3e38, 88.7, -87.3, -104, 710, -746, 20, -20, 40, 1e-8, 2e6, -2e6];
export function withSpecials(x: Float32Array, every = 7): Float32Array {
  for (let i = 0, j = 0; i < x.length; i += every, j++) x[i] = SPECIAL[j % SPECIAL.length];
  return x;
}

/** Runs one primitive on a backend, straight through Backend.run. */
export function runPrim<K extends PrimName>(b: Backend, prim: K, ins: In[], outShape: number[], outDtype: DType, p: PrimParams[K]): HostArray {
  const args = ins.map((x) => {
    const dtype: DType = x.data instanceof Int32Array ? "i32" : "f32";
    const buf = b.alloc(x.data.length, dtype);
    b.write(buf, x.data);
    return { buf, shape: x.shape, dtype };
  });
  const out = { buf: b.alloc(size(outShape), outDtype), shape: outShape, dtype: outDtype };
  try {
    b.run(prim, args, out, p);
    return (b as unknown as { readSync(x: unknown): HostArray }).readSync(out.buf);
  } finally {
    for (const a of args) b.free(a.buf);
    b.free(out.buf);
  }
}

/** Same bits (NaN counts as equal to any NaN). */
export function expectSameBits(got: HostArray, want: HostArray, what: string): void {
  expect(got.length).toBe(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length), w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < got.length; i++) {
    if (g[i] !== w[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      throw new Error(`${what}: element ${i} of ${got.length}: got ${got[i]} (0x${g[i].toString(16)}), want ${want[i]} (0x${w[i].toString(16)})`);
    }
  }
}

/** |got − want| ≤ tol(i) elementwise. */
export function expectWithin(got: HostArray, want: HostArray, tol: (i: number) => number, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= tol(i)) && !(Number.isNaN(got[i]) && Number.isNaN(want[i])) && got[i] !== want[i]) {
      throw new Error(`${what}: element ${i}: got ${got[i]}, want ${want[i]} (|Δ| ${d} > ${tol(i)})`);
    }
  }
}

/** C = op(A)·op(B) in f64, and Σ|a·b| per element (the bound's scale). */
export function refMatmul(A: Float32Array, B: Float32Array, m: number, k: number, n: number, ta: boolean, tb: boolean): [Float64Array, Float64Array] {
  const C = new Float64Array(m * n), S = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let c = 0, s = 0;
      for (let p = 0; p < k; p++) {
        const a = ta ? A[p * m + i] : A[i * k + p], b = tb ? B[j * k + p] : B[p * n + j];
        c += a * b;
        s += Math.abs(a * b);
      }
      C[i * n + j] = c;
      S[i * n + j] = s;
    }
  }
  return [C, S];
}

export async function checkMatmul(b: Backend, what: string): Promise<void> {
  const shapes: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [6, 8, 8], [37, 300, 29], [128, 257, 130], [5, 600, 3]];
  for (const [m, k, n] of shapes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const A = rand(m * k, m + k, -2, 2), B = rand(k * n, k + n + 1, -2, 2);
        const got = runPrim(b, "matmul", [f(A, ta ? [k, m] : [m, k]), f(B, tb ? [n, k] : [k, n])], [m, n], "f32", { transA: ta, transB: tb });
        const [C, S] = refMatmul(A, B, m, k, n, ta, tb);
        expectWithin(got, Float32Array.from(C), (i) => 2 ** -20 * S[i] + 1e-30, `${what} ${m}x${k}x${n} ta=${ta} tb=${tb}`);
      }
    }
  }
  // batches with broadcasting: [2,3,m,k] · [k,n], [2,1,m,k] · [1,3,k,n]; and k = 0
  const [m, k, n] = [9, 17, 11];
  for (const [sa, sb, so] of [[[2, 3, m, k], [k, n], [2, 3, m, n]], [[2, 1, m, k], [1, 3, k, n], [2, 3, m, n]], [[m, k], [4, k, n], [4, m, n]]] as const) {
    const A = rand(size(sa), 31), B = rand(size(sb), 32);
    const got = runPrim(b, "matmul", [f(A, [...sa]), f(B, [...sb])], [...so], "f32", { transA: false, transB: false });
    const want = runPrim(new CpuBackend(), "matmul", [f(A, [...sa]), f(B, [...sb])], [...so], "f32", { transA: false, transB: false });
    expectWithin(got, want, () => 2 ** -18 * k * 4, `${what} batched ${sa} · ${sb}`);
  }
  const z = runPrim(b, "matmul", [f([], [3, 0]), f([], [0, 4])], [3, 4], "f32", { transA: false, transB: false });
  expect(Array.from(z)).toEqual(new Array(12).fill(0));
}


// ---------------------------------------------------------------------------------------------

/** Results of large kernels on one backend (as bits). */
export function fingerprintKernels(b: Backend): HostArray[] {
  const out: HostArray[] = [];
  const [m, k, n] = [301, 517, 290];
  out.push(runPrim(b, "matmul", [f(rand(m * k, 40), [m, k]), f(rand(k * n, 41), [k, n])], [m, n], "f32", { transA: false, transB: false }));
  out.push(runPrim(b, "matmul", [f(rand(3 * 64 * 96, 42), [3, 96, 64]), f(rand(3 * 96 * 80, 43), [3, 80, 96])], [3, 64, 80], "f32", { transA: true, transB: true }));
  const x = rand(300_000, 44, -8, 8);
  out.push(runPrim(b, "unary", [f(x, [300_000])], [300_000], "f32", { op: "silu" }));
  out.push(runPrim(b, "unary", [f(x, [300_000])], [300_000], "f32", { op: "softplus" }));
  const rows = randInt(3000, 58, 0, 500);
  out.push(runPrim(b, "gather", [f(x.subarray(0, 500 * 64), [500, 64]), iN(rows, [3000])], [3000, 64], "f32", {}));
  out.push(runPrim(b, "scatterAdd", [iN(rows, [3000]), f(x.subarray(0, 3000 * 64), [3000, 64])], [500, 64], "f32", { rows: 500 }));
  out.push(runPrim(b, "binary", [f(x, [600, 500]), f(rand(500, 45), [500])], [600, 500], "f32", { op: "mul" }));
  out.push(runPrim(b, "reduce", [f(x, [600, 500])], [600, 1], "f32", { op: "sum", axes: [1] }));
  out.push(runPrim(b, "reduce", [f(x, [600, 500])], [1, 500], "f32", { op: "sum", axes: [0] }));
  out.push(runPrim(b, "softmax", [f(x, [300, 1000])], [300, 1000], "f32", {}));
  out.push(runPrim(b, "scan", [f(rand(300_000, 46, 0.9, 1), [3, 200, 500]), f(x, [3, 200, 500]), f(rand(1500, 47), [3, 500])], [3, 200, 500], "f32", {}));
  out.push(runPrim(b, "conv1dCausalGradW", [f(x, [3, 200, 500]), f(rand(300_000, 48), [3, 200, 500])], [500, 4], "f32", { k: 4 }));
  const [B, L, Di, N] = [2, 64, 130, 16];
  const ssm = [
    f(rand(B * L * Di, 50), [B, L, Di]), f(rand(B * L * Di, 51, 0.01, 0.5), [B, L, Di]), f(rand(Di * N, 52, -3, -0.2), [Di, N]),
    f(rand(B * L * N, 53), [B, L, N]), f(rand(B * L * N, 54), [B, L, N]), f(rand(B * Di * N, 55), [B, Di, N]),
    f(rand(B * L * Di, 56), [B, L, Di]), f(rand(B * Di * N, 57), [B, Di, N]),
  ];
  out.push(runPrim(b, "selectiveScan", ssm.slice(0, 6), [B, L, Di], "f32", {}));
  out.push(runPrim(b, "selectiveScanGrad", ssm, [2 * B * L * Di + Di * N + 2 * B * L * N + B * Di * N], "f32", {}));
  return out;
}

/** FNV-1a over the 32-bit words of arrays: a compact fingerprint of exact bits. */
export function hashArrays(xs: HostArray[]): string {
  let h = 0x811c9dc5;
  for (const x of xs) {
    const w = new Uint32Array(x.buffer, x.byteOffset, x.length);
    for (let i = 0; i < w.length; i++) {
      h ^= w[i];
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h.toString(16).padStart(8, "0");
}
