/**
 * The wasm launchers of matmul (wasm/gemm.c, or the native cblas_sgemm where the backend has it)
 * and of linearSigmoid, which runs the matmul launcher and then its bias and sigmoid in place.
 */
import { batchMatrices, biasSigmoidInPlace } from "../cpu/matmul.ts";
import { K } from "./kernel-ids.ts";
import { ceilDiv, type Launcher, PARALLEL_MIN_WORK, roundUp, size } from "./launcher.ts";

const NR = 8;
/** A K up to this long goes to cblas_sgemm in one call (see blasKChunks). */
export const BLAS_KC = 256;
/** A longer K goes in calls whose K is a multiple of this (see blasKChunks). */
export const BLAS_K_ALIGN = 64;

/**
 * The [start, length] chunks of K that matmul hands to cblas_sgemm, one call each, accumulated
 * with beta = 1. OpenBLAS blocks K by its GEMM_Q (320 on the SkylakeX / Cooperlake kernels) and
 * halves a remainder between Q and 2Q; its one-thread driver rounds that half up to its M unroll
 * (16) and its threaded driver does not, so for some K the bits depend on the thread count.
 * Measured (python3 + ctypes, 1-8 OpenBLAS threads, OpenBLAS 0.3.21, SkylakeX, Cooperlake and
 * Sandybridge kernels; K from 200 to 1400): every K up to 317 and every multiple of 32 agreed,
 * and K = 330, 343, 700, 720, … differed (which K differ fits that rounding: inferred, not read in
 * OpenBLAS's source).
 * So: K ≤ BLAS_KC in one call; a longer K as its largest multiple of BLAS_K_ALIGN, then the
 * rest (< 64) in a second call. Before, every K went in calls of 256: a 1024² product took four
 * calls and ran 23% slower than one (numpy's single call).
 */
export function blasKChunks(k: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p0 = 0; p0 < k;) {
    const r = k - p0;
    const kc = r <= BLAS_KC ? r : r - (r % BLAS_K_ALIGN);
    out.push([p0, kc]);
    p0 += kc;
  }
  return out;
}
/** Flops from which BLAS runs on every thread (below: on the calling thread alone). */
export const BLAS_PARALLEL_FLOPS = 2 ** 28;
/** Bytes of one thread's packing scratch: an MC x KC block of A, pre-broadcast (120·256·16) + one 6x8 edge tile. */
export const GEMM_SCRATCH_BYTES = 512 * 1024;

export const matmul: Launcher<"matmul"> = (ctx, [a, b], out, p) => {
  const ar = a.shape.length, br = b.shape.length, orank = out.shape.length;
  const aRows = a.shape[ar - 2], aCols = a.shape[ar - 1];
  const bRows = b.shape[br - 2], bCols = b.shape[br - 1];
  const m = p.transA ? aCols : aRows;
  const k = p.transA ? aRows : aCols;
  const n = p.transB ? bRows : bCols;
  const batchShape = out.shape.slice(0, orank - 2);
  const batches = size(batchShape);
  if (m === 0 || n === 0 || batches === 0) return true;
  const C = ctx.ptr(out);
  if (k === 0) {
    ctx.heap.f32.fill(0, C >>> 2, (C >>> 2) + batches * m * n);
    return true;
  }
  const mats = batchMatrices(a.shape.slice(0, ar - 2), b.shape.slice(0, br - 2), batchShape);
  const aOffs = new Int32Array(batches), bOffs = new Int32Array(batches);
  let bBatched = false;
  for (let q = 0; q < batches; q++) {
    aOffs[q] = mats.a[q] * aRows * aCols;
    bOffs[q] = mats.b[q] * bRows * bCols;
    if (bOffs[q] !== bOffs[0]) bBatched = true;
  }
  const A = ctx.ptr(a), B = ctx.ptr(b);
  if (ctx.sgemm) {
    // K in the chunks of blasKChunks, accumulated with beta = 1: OpenBLAS splits some K
    // differently with one thread and with several (so the bits would depend on the thread
    // count); for these chunks both of its drivers sum in the same order.
    const lda = p.transA ? m : k, ldb = p.transB ? k : n;
    // OpenBLAS's threads busy-wait after a call, next to ours: give it all of them only for a
    // product long enough to pay for that (the bits do not depend on its thread count on the
    // kernel sets of ffi/blas.ts's BLAS_THREAD_STABLE_CORES; on others they may)
    ctx.blasThreads(2 * m * n * k * batches >= BLAS_PARALLEL_FLOPS ? ctx.threads : 1);
    const kChunks = blasKChunks(k);
    for (let q = 0; q < batches; q++) {
      for (const [p0, kc] of kChunks) {
        const a0 = A + 4 * (aOffs[q] + (p.transA ? p0 * m : p0)), b0 = B + 4 * (bOffs[q] + (p.transB ? p0 : p0 * n));
        ctx.sgemm(p.transA, p.transB, m, n, kc, a0, lda, b0, ldb, p0 === 0 ? 0 : 1, C + q * m * n * 4, n);
      }
    }
    return true;
  }
  const T = ctx.threads;
  const parallel = 2 * m * n * k * batches >= 8 * PARALLEL_MIN_WORK;
  if (m <= 3 && (batches >= 4 * T || !parallel || !p.transB)) {
    // 1-3 rows: no packing (wasm/gemm.c, k_gemm_direct: the same bits as the packed kernel), tasks
    // over batches, and over blocks of columns where the batches are fewer than the tasks (a
    // recurrent step's [1, 256]·[256, 1024] packed all of B for one row: 25% of a decode step)
    const offs = ctx.temp(8 * batches);
    ctx.heap.i32.set(aOffs, offs >>> 2);
    ctx.heap.i32.set(bOffs, (offs >>> 2) + batches);
    const per = parallel ? ceilDiv(batches, T * 4) : batches;
    const colBlocks = parallel && batches < T * 4 ? Math.min(ceilDiv(n, 64), ceilDiv(T * 4, batches)) : 1;
    const nPer = roundUp(ceilDiv(n, colBlocks), 16);
    ctx.launch(K.GEMM_DIRECT, [m, n, k, p.transA ? 1 : 0, p.transB ? 1 : 0, A, B, C, offs, offs + 4 * batches, per, batches, nPer], ceilDiv(batches, per) * ceilDiv(n, nPer), parallel);
    return true;
  }
  const packs = bBatched ? batches : 1;
  const npad = roundUp(n, NR);
  const offs = ctx.temp(8 * batches);
  ctx.heap.i32.set(aOffs, offs >>> 2);
  ctx.heap.i32.set(bOffs, (offs >>> 2) + batches);
  const bpack = ctx.temp(4 * packs * k * npad);
  const panels = npad / NR;
  const panelsPerTask = parallel ? Math.max(1, ceilDiv(panels * packs, T * 4)) : panels;
  const panelTasks = ceilDiv(panels, panelsPerTask);
  const MR = ctx.gemmTile;
  let rpt = parallel ? roundUp(Math.max(1, ceilDiv(m * batches, T * 4)), MR) : m;
  rpt = Math.min(rpt, roundUp(m, MR));
  const rowTasks = ceilDiv(m, rpt);
  const words = [
    m, n, k, p.transA ? 1 : 0, p.transB ? 1 : 0, A, B, C, offs, offs + 4 * batches, bpack, packs, rpt, rowTasks,
    panelsPerTask, panelTasks, ctx.gemmScratch.base, ctx.gemmScratch.stride, MR,
  ];
  ctx.launch(K.GEMM_PACK_B, words, packs * panelTasks, parallel);
  ctx.launch(K.GEMM, words, batches * rowTasks, parallel);
  return true;
};

/**
 * σ(x·w + b) (linearSigmoid): the matmul launcher into the output (its [..., 1] layout), then the
 * add and the sigmoid in place, each rounded to f32 as the add and sigmoid kernels round them (the
 * sigmoid the TypeScript reference's, which the wasm unary kernel matches bit for bit).
 */
export const linearSigmoid: Launcher<"linearSigmoid"> = (ctx, [x, w, b], out) => {
  if (!matmul(ctx, [x, w], { ...out, shape: [...x.shape.slice(0, -1), 1] }, { transA: false, transB: false })) return false;
  const v = ctx.heap.f32;
  biasSigmoidInPlace(v, ctx.ptr(out) >>> 2, size(out.shape), v[ctx.ptr(b) >>> 2]);
  return true;
};
