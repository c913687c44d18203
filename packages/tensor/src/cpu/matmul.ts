/**
 * Batched matmul on the CPU: cache-blocked i-k-j loops over contiguous row-major panels.
 * Transposed operands are first copied to row-major, so the inner loop is always a unit-stride
 * axpy that engines vectorise well. Accumulation order is fixed (deterministic).
 */
import type { MultiPrimParams, PrimParams } from "../backend.ts";
import { stridesOf } from "../shape.ts";
import type { CpuArg } from "./kernels.ts";
import { sigmoid as dmSigmoid, softplus as dmSoftplus } from "./detmath.ts";
import { maxRun, reduceKernel } from "./reduce.ts";
import { unaryGradKernel } from "./elementwise.ts";
import { rmsNormKernel } from "./nn.ts";

const KC = 128; // k-block: a panel of B rows that stays in L2
const NC = 512; // n-block: the slice of a C row that stays in L1

/** Row-major copy of the transpose of an [r, c] matrix at offset `off`. */
function transposeInto(src: Float32Array | Int32Array, off: number, r: number, c: number, dst: Float32Array): void {
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) dst[j * r + i] = src[off + i * c + j];
}

/** C[m, n] = A[m, k] · B[k, n], all row-major, C zeroed here. */
export function gemm(A: Float32Array, aOff: number, B: Float32Array, bOff: number, C: Float32Array, cOff: number, m: number, n: number, k: number): void {
  C.fill(0, cOff, cOff + m * n);
  for (let j0 = 0; j0 < n; j0 += NC) {
    const j1 = Math.min(n, j0 + NC);
    for (let p0 = 0; p0 < k; p0 += KC) {
      const p1 = Math.min(k, p0 + KC);
      for (let i = 0; i < m; i++) {
        const ci = cOff + i * n;
        const ai = aOff + i * k;
        for (let p = p0; p < p1; p++) {
          const a = A[ai + p];
          const bp = bOff + p * n;
          for (let j = j0; j < j1; j++) C[ci + j] += a * B[bp + j];
        }
      }
    }
  }
}

/**
 * The matrix of `a` and of `b` that each batch q of the output reads (their batch dims `aB`, `bB`
 * broadcast against `batchShape`, size-1 dims repeating): matrix indices, to multiply by a matrix's
 * size. Shared by the TypeScript and the wasm matmul.
 */
export function batchMatrices(aB: readonly number[], bB: readonly number[], batchShape: readonly number[]): { a: Int32Array; b: Int32Array } {
  const aStr = stridesOf(aB), bStr = stridesOf(bB), oStr = stridesOf(batchShape);
  let batches = 1;
  for (const d of batchShape) batches *= d;
  const ai = new Int32Array(batches), bi = new Int32Array(batches);
  for (let q = 0; q < batches; q++) {
    let ao = 0, bo = 0;
    for (let i = 0; i < batchShape.length; i++) {
      const idx = Math.floor(q / oStr[i]) % batchShape[i];
      const ia = i - (batchShape.length - aB.length), ib = i - (batchShape.length - bB.length);
      if (ia >= 0 && aB[ia] !== 1) ao += idx * aStr[ia];
      if (ib >= 0 && bB[ib] !== 1) bo += idx * bStr[ib];
    }
    ai[q] = ao;
    bi[q] = bo;
  }
  return { a: ai, b: bi };
}

export function matmulKernel([a, b]: CpuArg[], out: CpuArg, p: PrimParams["matmul"]): void {
  const ar = a.shape.length, br = b.shape.length, orank = out.shape.length;
  const [aRows, aCols] = [a.shape[ar - 2], a.shape[ar - 1]];
  const [bRows, bCols] = [b.shape[br - 2], b.shape[br - 1]];
  const m = p.transA ? aCols : aRows;
  const k = p.transA ? aRows : aCols;
  const n = p.transB ? bRows : bCols;
  const batchShape = out.shape.slice(0, orank - 2);
  let batches = 1;
  for (const d of batchShape) batches *= d;
  // per-batch offsets into a and b, broadcasting their batch dims
  const mats = batchMatrices(a.shape.slice(0, ar - 2), b.shape.slice(0, br - 2), batchShape);
  const A = a.data as Float32Array, B = b.data as Float32Array, C = out.data as Float32Array;
  const tA = p.transA ? new Float32Array(m * k) : null;
  const tB = p.transB ? new Float32Array(k * n) : null;
  for (let q = 0; q < batches; q++) {
    let Am = A, aOff = mats.a[q] * aRows * aCols;
    if (tA) {
      transposeInto(A, aOff, aRows, aCols, tA);
      Am = tA;
      aOff = 0;
    }
    let Bm = B, bOff = mats.b[q] * bRows * bCols;
    if (tB) {
      transposeInto(B, bOff, bRows, bCols, tB);
      Bm = tB;
      bOff = 0;
    }
    gemm(Am, aOff, Bm, bOff, C, q * m * n, m, n, k);
  }
}

/**
 * matmulRows: each kept row through gemm alone (one row of C depends on one row of A only, so it
 * has the bits of the same row of matmulKernel's product); dropped rows are 0.
 */
export function matmulRowsKernel([x, w, rows]: CpuArg[], out: CpuArg): void {
  const K = w.shape[0], N = w.shape[1];
  const X = x.data as Float32Array, W = w.data as Float32Array, keep = rows.data as Float32Array, C = out.data as Float32Array;
  for (let i = 0; i < keep.length; i++) {
    if (keep[i] !== 0) gemm(X, i * K, W, 0, C, i * N, 1, N, K);
    else C.fill(0, i * N, (i + 1) * N);
  }
}

/** matmulRowsMax: each kept row through gemm into a scratch row (matmulRows' bits), then the max of each group of r columns (times the row's scale, if given). */
export function matmulRowsMaxKernel([x, w, rows, scale]: CpuArg[], out: CpuArg, p: PrimParams["matmulRowsMax"]): void {
  const K = w.shape[0], N = w.shape[1], r = p.r, G = N / r;
  const X = x.data as Float32Array, W = w.data as Float32Array, keep = rows.data as Float32Array, C = out.data as Float32Array;
  const S = scale?.data as Float32Array | undefined;
  const row = new Float32Array(N);
  for (let i = 0; i < keep.length; i++) {
    if (keep[i] === 0) {
      // the composite's mul of the dropped row's zeros (0 · s: −0 or NaN where s is negative or NaN)
      C.fill(S ? 0 * S[i] : 0, i * G, (i + 1) * G);
      continue;
    }
    gemm(X, i * K, W, 0, row, 0, 1, N, K);
    // the scale after the max, each rounded to f32 (the mul kernel's bits)
    for (let j = 0; j < G; j++) C[i * G + j] = S ? maxRun(row, j * r, r) * S[i] : maxRun(row, j * r, r);
  }
}

/**
 * σ(x·w + b) (linearSigmoid): x [..., d], w [d, 1], b [1] → [...]. The matmul kernel above into
 * the output (its [..., 1] layout is the output's), then the add and the sigmoid of the
 * elementwise kernels (each rounded to f32): the bits of the three ops in turn.
 */
export function linearSigmoidKernel([x, w, b]: CpuArg[], out: CpuArg): void {
  matmulKernel([x, w], { data: out.data, shape: [...x.shape.slice(0, -1), 1] }, { transA: false, transB: false });
  biasSigmoidInPlace(out.data as Float32Array, 0, out.data.length, b.data[0]);
}

/**
 * linearSigmoidGate (MultiPrimParams["linearSigmoidGate"]): s as linearSigmoidKernel, m = s > tau
 * (gt's test against the f32 threshold), m · s rounded to f32 as mul rounds it.
 */
export function linearSigmoidGateKernel([x, w, b]: CpuArg[], [s, m, g]: CpuArg[], p: MultiPrimParams["linearSigmoidGate"]): void {
  linearSigmoidKernel([x, w, b], s);
  const S = s.data as Float32Array, Mk = m.data as Float32Array, G = g.data as Float32Array, tau = Math.fround(p.tau);
  for (let i = 0; i < S.length; i++) {
    Mk[i] = S[i] > tau ? 1 : 0;
    G[i] = Math.fround(Mk[i] * S[i]);
  }
}

/**
 * rmsNormScores (MultiPrimParams["rmsNormScores"]): rmsNorm's kernel into h, then
 * linearSigmoidGate's on h for each scorer (the outputs the op keeps): the bits of the ops in turn.
 */
export function rmsNormScoresKernel([x, gain, w1, b1, w2, b2]: CpuArg[], [h, s1, m1, g2]: CpuArg[], p: MultiPrimParams["rmsNormScores"]): void {
  rmsNormKernel([x, gain], h, { eps: p.eps });
  const spare = () => ({ data: new Float32Array(s1.data.length), shape: s1.shape });
  linearSigmoidGateKernel([h, w1, b1], [s1, m1, spare()], { tau: p.tau1 });
  linearSigmoidGateKernel([h, w2, b2], [spare(), spare(), g2], { tau: p.tau2 });
}

/**
 * softplus(x·w + b) (linearSoftplus): x [..., r], w [r, c], b [c] → [..., c]. The matmul kernel
 * into the output, then the add (rounded to f32 as the add kernel rounds it) and the softplus of
 * the elementwise kernel: the bits of the three ops in turn.
 */
export function linearSoftplusKernel([x, w, b]: CpuArg[], out: CpuArg): void {
  matmulKernel([x, w], out, { transA: false, transB: false });
  const v = out.data as Float32Array, bias = b.data as Float32Array, c = bias.length;
  for (let i = 0; i < v.length; i++) v[i] = dmSoftplus(Math.fround(v[i] + bias[i % c]));
}

/**
 * c + (a·w) ⊙ s (addMatmul): the matmul kernel above into the output, then the row scale and the
 * add, each rounded to f32 as the elementwise kernels round them: the bits of the ops in turn.
 */
export function addMatmulKernel([c, a, w, s]: CpuArg[], out: CpuArg): void {
  matmulKernel([a, w], out, { transA: false, transB: false });
  const v = out.data as Float32Array, add = c.data as Float32Array, N = w.shape[1];
  if (!s) {
    for (let i = 0; i < v.length; i++) v[i] = add[i] + v[i];
    return;
  }
  const scale = s.data as Float32Array;
  for (let r = 0, i = 0; r < scale.length; r++) for (let j = 0; j < N; j++, i++) v[i] = add[i] + Math.fround(v[i] * scale[r]);
}

/**
 * linearSigmoid's VJP (MultiPrimParams["linearSigmoidGrad"]), inputs [g, s, x, w], outputs
 * [dx, dw, db]: the composite's launches in turn on their kernels (e = unaryGrad's sigmoid of g at
 * s; dx = e·wᵀ as a K = 1 product; dw = xᵀ·e over the rows; db = e summed over its leading axes
 * as sumTo reduces it), so the gradients are the composite's bit for bit.
 */
export function linearSigmoidGradKernel([g, s, x, w]: CpuArg[], [dx, dw, db]: CpuArg[]): void {
  const n = g.data.length, d = w.shape[0];
  const e: CpuArg = { data: new Float32Array(n), shape: [...g.shape, 1] };
  unaryGradKernel([g, s, s], e, { op: "sigmoid" });
  const rows: CpuArg = { data: e.data, shape: [n, 1] };
  matmulKernel([rows, w], { data: dx.data, shape: [n, d] }, { transA: false, transB: true });
  matmulKernel([{ data: x.data, shape: [n, d] }, rows], dw, { transA: true, transB: false });
  reduceKernel([e], { data: db.data, shape: e.shape.map(() => 1) }, { op: "sum", axes: g.shape.map((_, i) => i) });
}

/** v[at … at + n) ← sigmoid(v + bias), the add rounded to f32 as the add kernel rounds it (linearSigmoid's epilogue, CPU and wasm). */
export function biasSigmoidInPlace(v: Float32Array, at: number, n: number, bias: number): void {
  for (let i = at; i < at + n; i++) v[i] = dmSigmoid(Math.fround(v[i] + bias));
}

/** x[i, n] ← x[i, n] · s[n] (rounded as the mul kernel rounds: one f32 multiply) over an [M, N] matrix. */
function scaleColumns(x: Float32Array, s: Float32Array, M: number, N: number): void {
  for (let i = 0, e = 0; i < M; i++) for (let n = 0; n < N; n++, e++) x[e] = Math.fround(x[e] * s[n]);
}

/** foldWeight (PrimParams["foldWeight"]): inputs [a, b, s?] → (a·op(b)) ⊙ s, matmul then mul's bits. */
export function foldWeightKernel([a, b, s]: CpuArg[], out: CpuArg, p: PrimParams["foldWeight"]): void {
  matmulKernel([a, b], out, { transA: false, transB: p.transB });
  if (s) scaleColumns(out.data as Float32Array, s.data as Float32Array, out.shape[0], out.shape[1]);
}

/**
 * foldWeight's VJP (MultiPrimParams["foldWeightGrad"]), inputs [g, a, b, s?], outputs [da, db,
 * ds?]: the composite's launches in turn on their kernels (gs = g ⊙ s as mul's VJP makes it; da
 * and db as matmul's VJP; ds as the sum over rows of g ⊙ (a·op(b)), the product recomputed by the
 * same kernel as the forward's), so the gradients are the composite's bit for bit.
 */
export function foldWeightGradKernel([g, a, b, s]: CpuArg[], [da, db, ds]: CpuArg[], p: PrimParams["foldWeight"]): void {
  const [M, N] = g.shape;
  let gs = g;
  if (s) {
    gs = { data: Float32Array.from(g.data as Float32Array), shape: g.shape };
    scaleColumns(gs.data as Float32Array, s.data as Float32Array, M, N);
    const prod: CpuArg = { data: new Float32Array(M * N), shape: [M, N] };
    matmulKernel([a, b], prod, { transA: false, transB: p.transB });
    const P = prod.data as Float32Array, G = g.data as Float32Array;
    for (let e = 0; e < P.length; e++) P[e] = Math.fround(G[e] * P[e]);
    reduceKernel([prod], { data: ds.data, shape: [1, N] }, { op: "sum", axes: [0] });
  }
  matmulKernel([gs, b], da, { transA: false, transB: !p.transB });
  if (p.transB) matmulKernel([gs, a], db, { transA: true, transB: false });
  else matmulKernel([a, gs], db, { transA: true, transB: false });
}
