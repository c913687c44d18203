/**
 * The wasm backend's kernel table: for each primitive, a launcher that writes the C kernel's
 * arguments and splits the work into tasks (src/wasm/*.c documents each layout), or null where the
 * TypeScript reference kernel runs on views of the shared memory instead (movement, oneHot,
 * where/cast/fill, and the odd cases a launcher declines by returning false).
 *
 * Task sizes may depend on the thread count: no result does (see wasm/common.h). The one split
 * that changes roundings — the channel blocks of the selective scan's dB/dC — depends on Di alone.
 */
import type { BinaryOp, CompareOp, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams, UnaryOp } from "../backend.ts";
import { stridesOf } from "../shape.ts";
import { broadcastStrides } from "../cpu/strided.ts";
import { biasSigmoidInPlace } from "../cpu/matmul.ts";
import type { Sgemm } from "../ffi/blas.ts";
import type { WasmHeap } from "./heap.ts";
import { K } from "./kernel-ids.ts";

/** What a launcher needs from the backend. */
export interface WasmCtx {
  readonly heap: WasmHeap;
  /** Threads a parallel job runs on (1 when there is no pool). */
  readonly threads: number;
  /** Byte offset of an argument's buffer in the memory. */
  ptr(a: KernelArg): number;
  /** Runs tasks [0, ntasks) of a kernel on `words` (i32 args); on all threads when `parallel`. */
  launch(kid: number, words: readonly number[], ntasks: number, parallel: boolean): void;
  /** A temporary block (freed by the backend after the kernel). */
  temp(bytes: number): number;
  /** The per-thread matmul packing scratch: base and stride (bytes). */
  readonly gemmScratch: { base: number; stride: number };
  /** The native sgemm, when the backend uses it for matmul. */
  readonly sgemm: Sgemm | null;
  /** Sets the BLAS's thread count (for one call: see matmul). */
  blasThreads(n: number): void;
  /** Rows of the matmul's register tile, 4 or 6 (wasm/gemm.c: per engine; never changes a result). */
  readonly gemmTile: 4 | 6;
  /** Whether the selective scan computes eight exps in lockstep (wasm/ssm.c, step; never changes a result). */
  readonly expLockstep: boolean;
  /** Whether the linear scan touches its inputs and output ahead (wasm/common.h, touch; never changes a result). */
  readonly touchAhead: boolean;
}

/** A launcher: true when it ran the kernel, false to let the TypeScript reference run it. */
export type Launcher<Kn extends PrimName> = (ctx: WasmCtx, ins: readonly KernelArg[], out: KernelArg, p: PrimParams[Kn]) => boolean;
/** A multi-output primitive's wasm kernel (Backend.runMulti); false: not handled, the TypeScript kernel runs. */
export type MultiLauncher<Kn extends MultiPrimName> = (ctx: WasmCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], p: MultiPrimParams[Kn]) => boolean;

/** Work (elements or flops) below which a kernel stays on the calling thread. */
export const PARALLEL_MIN_WORK = 1 << 15;

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const ceilDiv = (a: number, b: number) => Math.floor((a + b - 1) / b);
const roundUp = (a: number, m: number) => ceilDiv(a, m) * m;

// ---------------------------------------------------------------------------------------------
// matmul

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

const matmul: Launcher<"matmul"> = (ctx, [a, b], out, p) => {
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
  const aB = a.shape.slice(0, ar - 2), bB = b.shape.slice(0, br - 2);
  const aStr = stridesOf(aB), bStr = stridesOf(bB), oStr = stridesOf(batchShape);
  const aOffs = new Int32Array(batches), bOffs = new Int32Array(batches);
  let bBatched = false;
  for (let q = 0; q < batches; q++) {
    let ao = 0, bo = 0;
    for (let i = 0; i < batchShape.length; i++) {
      const idx = Math.floor(q / oStr[i]) % batchShape[i];
      const ia = i - (batchShape.length - aB.length), ib = i - (batchShape.length - bB.length);
      if (ia >= 0 && aB[ia] !== 1) ao += idx * aStr[ia];
      if (ib >= 0 && bB[ib] !== 1) bo += idx * bStr[ib];
    }
    aOffs[q] = ao * aRows * aCols;
    bOffs[q] = bo * bRows * bCols;
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

// ---------------------------------------------------------------------------------------------
// elementwise

const UNARY_OPS: UnaryOp[] = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "softplus", "abs", "relu", "sin", "cos", "square", "reciprocal", "sign"];
const BINARY_OPS: (BinaryOp | CompareOp)[] = ["add", "sub", "mul", "div", "pow", "max", "min", "eq", "ne", "lt", "le", "gt", "ge"];
/** Elementwise cost relative to an add (transcendentals run ~10-40x longer): sets the task size. */
const EXPENSIVE = new Set<string>(["exp", "log", "tanh", "sigmoid", "silu", "softplus", "sin", "cos", "pow"]);

function chunkFor(n: number, T: number, minChunk: number): number {
  return roundUp(Math.max(minChunk, ceilDiv(n, T * 4)), 4);
}

const unary: Launcher<"unary"> = (ctx, [x], out, p) => {
  const n = size(out.shape);
  if (n === 0) return true;
  const exp = EXPENSIVE.has(p.op);
  const parallel = n * (exp ? 16 : 1) >= PARALLEL_MIN_WORK * 4;
  const chunk = parallel ? chunkFor(n, ctx.threads, exp ? 1024 : 8192) : roundUp(n, 4);
  ctx.launch(K.UNARY, [UNARY_OPS.indexOf(p.op), ctx.ptr(x), ctx.ptr(out), n, chunk], ceilDiv(n, chunk), parallel);
  return true;
};

/** Merges axes where every input is contiguous across them; null when more than 4 axes remain. */
export function collapse(shape: readonly number[], strides: number[][]): { dims: number[]; strides: number[][] } | null {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, j) => st[j][last] === s[i] * shape[i])) {
      dims[last] *= shape[i];
      strides.forEach((s, j) => (st[j][last] = s[i]));
    } else {
      dims.push(shape[i]);
      strides.forEach((s, j) => st[j].push(s[i]));
    }
  }
  if (dims.length > 4) return null;
  while (dims.length < 4) {
    dims.unshift(1);
    st.forEach((s) => s.unshift(0));
  }
  return { dims, strides: st };
}

function binaryLike(ctx: WasmCtx, a: KernelArg, b: KernelArg, out: KernelArg, opIndex: number, isInt: boolean): boolean {
  const n = size(out.shape);
  if (n === 0) return true;
  const c = collapse(out.shape, [broadcastStrides(a.shape, out.shape), broadcastStrides(b.shape, out.shape)]);
  if (!c) return false;
  const [sa, sb] = c.strides;
  if (sa[3] > 1 || sb[3] > 1) return false;
  const T = ctx.threads;
  const weight = EXPENSIVE.has(BINARY_OPS[opIndex]) ? 16 : 1;
  const parallel = n * weight >= PARALLEL_MIN_WORK * 4;
  const rows = c.dims[0] * c.dims[1] * c.dims[2], cols = c.dims[3];
  let rowsPer = rows, colsPer = cols;
  if (parallel) {
    if (rows >= T * 4) rowsPer = ceilDiv(rows, T * 4);
    else {
      rowsPer = 1;
      colsPer = chunkFor(cols, Math.max(1, Math.floor((T * 4) / rows)), 2048);
    }
  }
  const colTasks = ceilDiv(cols, colsPer);
  const words = [opIndex, isInt ? 1 : 0, ctx.ptr(a), ctx.ptr(b), ctx.ptr(out), ...c.dims, ...sa, ...sb, rowsPer, colsPer, colTasks];
  ctx.launch(K.BINARY, words, ceilDiv(rows, rowsPer) * colTasks, parallel);
  return true;
}

const binary: Launcher<"binary"> = (ctx, [a, b], out, p) => {
  const isInt = out.dtype === "i32";
  if (isInt && (p.op === "div" || p.op === "pow")) return false; // rare: the reference handles int division by zero and pow
  return binaryLike(ctx, a, b, out, BINARY_OPS.indexOf(p.op), isInt);
};

const compare: Launcher<"compare"> = (ctx, [a, b], out, p) => binaryLike(ctx, a, b, out, BINARY_OPS.indexOf(p.op), a.dtype === "i32");

/** where over flat operands (each the output's size or one value: its shape up to leading 1s); the broadcasting forms run the reference. */
const where: Launcher<"where"> = (ctx, [c, a, b], out) => {
  const n = size(out.shape);
  const forms = [c, a, b].map((x) => size(x.shape));
  if (n === 0 || !forms.every((m) => m === n || m === 1)) return false;
  // blocks of elements as the unary ops take them (chunkFor)
  const parallel = n >= PARALLEL_MIN_WORK * 4;
  const per = parallel ? chunkFor(n, ctx.threads, 8192) : n;
  ctx.launch(K.WHERE, [ctx.ptr(c), ctx.ptr(a), ctx.ptr(b), ctx.ptr(out), n, ...forms.map((m) => (m === n && n > 1 ? 1 : 0)), c.dtype === "i32" ? 1 : 0, per],
    ceilDiv(n, per), parallel && ceilDiv(n, per) > 1);
  return true;
};

// ---------------------------------------------------------------------------------------------
// reductions

const reduce: Launcher<"reduce"> = (ctx, [x], out, p) => {
  const axes = [...new Set(p.axes)].sort((u, v) => u - v);
  if (axes.length === 0 || size(x.shape) === 0) return false;
  for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return false;
  const outer = size(x.shape.slice(0, axes[0]));
  const R = size(x.shape.slice(axes[0], axes[axes.length - 1] + 1));
  const inner = size(x.shape.slice(axes[axes.length - 1] + 1));
  const T = ctx.threads;
  const parallel = outer * R * inner >= PARALLEL_MIN_WORK * 4;
  let outerPer = outer, innerPer = inner;
  if (parallel) {
    if (inner === 1 || outer >= T * 4) outerPer = ceilDiv(outer, T * 4);
    else {
      outerPer = 1;
      innerPer = chunkFor(inner, Math.max(1, Math.floor((T * 4) / outer)), 64);
    }
  }
  const innerTasks = inner === 1 ? 1 : ceilDiv(inner, innerPer);
  ctx.launch(K.REDUCE, [p.op === "sum" ? 0 : 1, ctx.ptr(x), ctx.ptr(out), outer, R, inner, outerPer, innerPer, innerTasks],
    ceilDiv(outer, outerPer) * innerTasks, parallel);
  return true;
};

// ---------------------------------------------------------------------------------------------
// rows: softmax, logsumexp, cross-entropy

function rowsOf(x: KernelArg): [number, number] {
  const n = x.shape[x.shape.length - 1] ?? 1;
  return [n === 0 ? 0 : size(x.shape) / n, n];
}
function rowTasks(ctx: WasmCtx, rows: number, n: number): [number, boolean] {
  const parallel = rows * n * 8 >= PARALLEL_MIN_WORK * 4 && rows > 1;
  return [parallel ? ceilDiv(rows, ctx.threads * 4) : rows, parallel];
}

const softmax: Launcher<"softmax"> = (ctx, [x], out) => {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return true;
  const [per, par] = rowTasks(ctx, rows, n);
  ctx.launch(K.SOFTMAX, [ctx.ptr(x), ctx.ptr(out), rows, n, per], ceilDiv(rows, per), par);
  return true;
};

const logsumexp: Launcher<"logsumexp"> = (ctx, [x], out) => {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return false; // the reference's conventions for empty rows
  const [per, par] = rowTasks(ctx, rows, n);
  ctx.launch(K.LOGSUMEXP, [ctx.ptr(x), ctx.ptr(out), rows, n, per], ceilDiv(rows, per), par);
  return true;
};

const crossEntropy: Launcher<"crossEntropy"> = (ctx, [logits, targets], out) => {
  const [rows, n] = rowsOf(logits);
  if (rows === 0 || n === 0) return false;
  const t = ctx.heap.i32.subarray(ctx.ptr(targets) >>> 2, (ctx.ptr(targets) >>> 2) + rows);
  for (let r = 0; r < rows; r++) {
    if (!(t[r] >= 0 && t[r] < n)) return false; // the reference throws the error that names it
  }
  const [per, par] = rowTasks(ctx, rows, n);
  ctx.launch(K.CROSS_ENTROPY, [ctx.ptr(logits), ctx.ptr(targets), ctx.ptr(out), rows, n, per], ceilDiv(rows, per), par);
  return true;
};

// ---------------------------------------------------------------------------------------------
// scans and conv1d

/** Values of each array in one chunk of a parallel scan (512 KiB of f32: see scanSplit). */
export const SCAN_CHUNK_FLOATS = 1 << 17;

/**
 * How a linear scan over [B, L, S] is split (wasm/nn.c, claim_chunk): lanes of whole sequences, or
 * of column blocks [s0, s0 + per) where there are fewer sequences than threads; chunks of R rows
 * that any thread may claim, one at a time per lane, in order. A chunk is SCAN_CHUNK_FLOATS values
 * of each array (whole rows: each thread streams contiguous memory, as saxpy does), so a thread
 * that starts late (a futex wake on a busy machine took 1-4 ms) still gets its share, where one
 * task per sequence left it one task of four or none. Small scans run on the calling thread, lane
 * after lane (one chunk each). The split never changes a result: every row is computed from the
 * row before it in the same way.
 */
function scanSplit(ctx: WasmCtx, B: number, L: number, S: number): { per: number; lanes: number; sLanes: number; rows: number; tasks: number; parallel: boolean } {
  const parallel = B * L * S >= PARALLEL_MIN_WORK * 4 && ctx.threads > 1;
  if (!parallel) return { per: S, lanes: B, sLanes: 1, rows: L, tasks: 1, parallel };
  // column blocks only for fewer sequences than threads: each block is a strided walk (one
  // piece of every row), slower to stream than whole rows
  const blocks = Math.max(1, Math.min(ceilDiv(ctx.threads, B), Math.floor(S / 64)));
  const per = blocks === 1 ? S : roundUp(ceilDiv(S, blocks), 16);
  const sLanes = ceilDiv(S, per), lanes = B * sLanes;
  if (lanes === 1) return { per: S, lanes: 1, sLanes: 1, rows: L, tasks: 1, parallel: false }; // one chain of rows: nothing to share
  const rows = Math.min(L, Math.max(1, Math.ceil(SCAN_CHUNK_FLOATS / per)));
  return { per, lanes, sLanes, rows, tasks: Math.min(ctx.threads, lanes * ceilDiv(L, rows)), parallel };
}

/** The lane states of a scan (wasm/nn.c, claim_chunk), zeroed. */
function laneBoard(ctx: WasmCtx, lanes: number): number {
  const p = ctx.temp(4 * lanes);
  ctx.heap.i32.fill(0, p >>> 2, (p >>> 2) + lanes);
  return p;
}

const scan: Launcher<"scan"> = (ctx, [a, x, h0], out) => {
  const [B, L, S] = a.shape;
  if (B * L * S === 0) return true;
  const sp = scanSplit(ctx, B, L, S);
  const lanes = laneBoard(ctx, sp.lanes);
  ctx.launch(K.SCAN, [ctx.ptr(a), ctx.ptr(x), ctx.ptr(h0), ctx.ptr(out), B, L, S, sp.per, sp.sLanes, ctx.touchAhead ? 1 : 0, lanes, sp.rows], sp.tasks, sp.parallel);
  return true;
};

const scanReverse: Launcher<"scanReverse"> = (ctx, [a, g], out) => {
  const [B, L, S] = a.shape;
  if (B * L * S === 0) return true;
  const sp = scanSplit(ctx, B, L, S);
  const lanes = laneBoard(ctx, sp.lanes);
  ctx.launch(K.SCAN_REVERSE, [ctx.ptr(a), ctx.ptr(g), ctx.ptr(out), B, L, S, sp.per, sp.sLanes, lanes, sp.rows], sp.tasks, sp.parallel);
  return true;
};

function splitBL(ctx: WasmCtx, B: number, L: number, work: number): [number, number, boolean] {
  const parallel = work >= PARALLEL_MIN_WORK * 4;
  const per = parallel ? Math.min(L, Math.max(1, ceilDiv(B * L, ctx.threads * 4))) : L;
  return [per, ceilDiv(L, per), parallel];
}

const conv1dCausal: Launcher<"conv1dCausal"> = (ctx, [x, w, prefix], out) => {
  const [B, L, C] = x.shape, Kw = w.shape[1];
  if (B * L * C === 0) return true;
  if (prefix && Kw > 1) {
    // with a prefix: the conv of [prefix; x] (L + K − 1 rows a sequence, copied into scratch) and
    // its last L outputs of each sequence copied back: the same sums in the same order
    const Lf = L + Kw - 1, rowF = Lf * C, P = (Kw - 1) * C, f32 = () => ctx.heap.f32;
    const full = ctx.temp(B * rowF * 4), yFull = ctx.temp(B * rowF * 4);
    const fx = full >>> 2, fy = yFull >>> 2, px = ctx.ptr(prefix) >>> 2, xx = ctx.ptr(x) >>> 2, ox = ctx.ptr(out) >>> 2;
    for (let b = 0; b < B; b++) {
      f32().copyWithin(fx + b * rowF, px + b * P, px + (b + 1) * P);
      f32().copyWithin(fx + b * rowF + P, xx + b * L * C, xx + (b + 1) * L * C);
    }
    const [per, tt, par] = splitBL(ctx, B, Lf, B * rowF * Kw);
    ctx.launch(K.CONV1D, [full, ctx.ptr(w), yFull, B, Lf, C, Kw, per, tt], B * tt, par);
    for (let b = 0; b < B; b++) f32().copyWithin(ox + b * L * C, fy + b * rowF + P, fy + (b + 1) * rowF);
    return true;
  }
  const [per, tt, par] = splitBL(ctx, B, L, B * L * C * Kw);
  ctx.launch(K.CONV1D, [ctx.ptr(x), ctx.ptr(w), ctx.ptr(out), B, L, C, Kw, per, tt], B * tt, par);
  return true;
};

const conv1dCausalGradX: Launcher<"conv1dCausalGradX"> = (ctx, [g, w], out) => {
  const [B, L, C] = g.shape, Kw = w.shape[1];
  if (B * L * C === 0) return true;
  const [per, tt, par] = splitBL(ctx, B, L, B * L * C * Kw);
  ctx.launch(K.CONV1D_GRAD_X, [ctx.ptr(g), ctx.ptr(w), ctx.ptr(out), B, L, C, Kw, per, tt], B * tt, par);
  return true;
};

const conv1dCausalGradW: Launcher<"conv1dCausalGradW"> = (ctx, [g, x], out) => {
  const [B, L, C] = g.shape, Kw = out.shape[1];
  if (C * Kw === 0) return true;
  const parallel = B * L * C * Kw >= PARALLEL_MIN_WORK * 4 && C >= 4;
  const per = parallel ? roundUp(Math.max(2, ceilDiv(C, ctx.threads * 4)), 2) : C;
  const stride = roundUp(Kw * per * 8, 64);
  const scratch = ctx.temp(stride * ctx.threads);
  ctx.launch(K.CONV1D_GRAD_W, [ctx.ptr(g), ctx.ptr(x), ctx.ptr(out), B, L, C, Kw, per, scratch, stride], ceilDiv(C, per), parallel);
  return true;
};

// ---------------------------------------------------------------------------------------------
// gather and scatterAdd

/** Whether every i32 index of `idx` lies in [0, rows) (else the reference runs and throws its error). */
function indicesInRange(ctx: WasmCtx, idx: KernelArg, n: number, rows: number): boolean {
  const p = ctx.ptr(idx) >>> 2;
  const I = ctx.heap.i32.subarray(p, p + n);
  for (let i = 0; i < n; i++) if (!(I[i] >= 0 && I[i] < rows)) return false;
  return true;
}

/**
 * Tasks of a (rows x cols) grid for a copy-like kernel, about 4 per thread: blocks of whole rows
 * where there are enough rows (contiguous blocks), else also column blocks of >= 256 values.
 */
function gridSplit(ctx: WasmCtx, rows: number, cols: number, parallel: boolean): [number, number, number, number] {
  if (!parallel) return [rows, 1, cols, 1];
  const want = ctx.threads * 4;
  const colTasks = rows >= want ? 1 : Math.max(1, Math.min(Math.ceil(want / rows), Math.floor(cols / 256)));
  const colsPer = colTasks === 1 ? cols : roundUp(ceilDiv(cols, colTasks), 4);
  const rowsPer = Math.max(1, ceilDiv(rows, ceilDiv(want, colTasks)));
  return [rowsPer, ceilDiv(rows, rowsPer), colsPer, ceilDiv(cols, colsPer)];
}

const gather: Launcher<"gather"> = (ctx, [table, idx], out) => {
  const rows = table.shape[0], n = size(idx.shape);
  if (idx.dtype !== "i32" || !indicesInRange(ctx, idx, n, rows)) return false;
  const row = rows === 0 ? 0 : size(table.shape) / rows;
  if (n * row === 0) return true;
  const [per, it, colsPer, colTasks] = gridSplit(ctx, n, row, n * row >= PARALLEL_MIN_WORK * 4);
  ctx.launch(K.GATHER, [ctx.ptr(table), ctx.ptr(idx), ctx.ptr(out), n, row, per, colsPer, colTasks], it * colTasks, it * colTasks > 1);
  return true;
};

const scatterAdd: Launcher<"scatterAdd"> = (ctx, [idx, upd], out, p) => {
  const rows = p.rows, n = size(idx.shape);
  if (idx.dtype !== "i32" || upd.dtype !== "f32" || out.dtype !== "f32" || !indicesInRange(ctx, idx, n, rows)) return false;
  const row = rows === 0 ? 0 : size(out.shape) / rows;
  if (rows * row === 0) return true;
  // a task owns a block of output rows (and columns, where rows are few) and scans every index
  const [rowsPer, rt, colsPer, colTasks] = gridSplit(ctx, rows, row, (rows + n) * row >= PARALLEL_MIN_WORK * 4);
  ctx.launch(K.SCATTER_ADD, [ctx.ptr(idx), ctx.ptr(upd), ctx.ptr(out), n, rows, row, rowsPer, colsPer, colTasks], rt * colTasks, rt * colTasks > 1);
  return true;
};

/**
 * A zeroed word the indexed kernels raise where an index is neither −1 (an empty slot) nor in
 * [0, rows): `raised()` after the launch says so, and the launcher then lets the reference run
 * and throw its error (the kernels take such an index as empty). No pass over the indices here.
 */
function badIndexFlag(ctx: WasmCtx): { ptr: number; raised(): boolean } {
  const ptr = ctx.temp(4);
  ctx.heap.i32[ptr >>> 2] = 0;
  return { ptr, raised: () => Atomics.load(ctx.heap.i32, ptr >>> 2) !== 0 };
}

// the pool reads' indexed primitives (wasm/indexed.c): the reference's bits
const indexedDot: Launcher<"indexedDot"> = (ctx, [x, table, idx], out) => {
  const nIdx = size(idx.shape), rows = table.shape[0], S = table.shape[1];
  if (idx.dtype !== "i32" || table.dtype !== "f32" || x.dtype !== "f32") return false;
  const P = idx.shape[idx.shape.length - 1];
  if (nIdx === 0) return true;
  const N = nIdx / P;
  // tasks: blocks of positions (gridSplit's rows; one column block)
  const [per, tasks] = gridSplit(ctx, N, 1, nIdx * S >= PARALLEL_MIN_WORK);
  const bad = badIndexFlag(ctx);
  ctx.launch(K.INDEXED_DOT, [ctx.ptr(x), ctx.ptr(table), ctx.ptr(idx), ctx.ptr(out), N, P, S, per, rows, bad.ptr], tasks, tasks > 1);
  return !bad.raised();
};

const indexedSum: Launcher<"indexedSum"> = (ctx, [w, table, idx], out) => {
  const nIdx = size(idx.shape), rows = table.shape[0], S = table.shape[1];
  if (idx.dtype !== "i32" || table.dtype !== "f32" || w.dtype !== "f32") return false;
  const P = idx.shape[idx.shape.length - 1];
  const N = P === 0 ? size(out.shape) / Math.max(1, S) : nIdx / P;
  if (N * S === 0) return false; // nothing to compute: the reference (and its index checks)
  if (P === 0) {
    ctx.heap.f32.fill(0, ctx.ptr(out) >>> 2, (ctx.ptr(out) >>> 2) + N * S);
    return true;
  }
  // tasks: blocks of positions (gridSplit's rows; one column block)
  const [per, tasks] = gridSplit(ctx, N, 1, nIdx * S >= PARALLEL_MIN_WORK);
  const bad = badIndexFlag(ctx);
  ctx.launch(K.INDEXED_SUM, [ctx.ptr(w), ctx.ptr(table), ctx.ptr(idx), ctx.ptr(out), N, P, S, per, rows, bad.ptr], tasks, tasks > 1);
  return !bad.raised();
};

const indexedOuter: Launcher<"indexedOuter"> = (ctx, [w, x, idx, w2, x2], out, p) => {
  const nIdx = size(idx.shape), rows = p.rows, S = out.shape[1];
  if (idx.dtype !== "i32" || rows * S === 0) return false; // an empty output: the reference (and its index checks)
  const P = nIdx === 0 ? 1 : idx.shape[idx.shape.length - 1];
  const two = w2 !== undefined && x2 !== undefined;
  // a task owns a block of output rows and scans every entry (each sum in index order)
  const [per, tasks] = gridSplit(ctx, rows, 1, (rows + nIdx) * S * (two ? 2 : 1) >= PARALLEL_MIN_WORK);
  const scratch = two ? ctx.temp(rows * S * 4) : 0;
  const bad = badIndexFlag(ctx);
  ctx.launch(K.INDEXED_OUTER, [
    ctx.ptr(w), ctx.ptr(x), ctx.ptr(idx), ctx.ptr(out), two ? ctx.ptr(w2) : 0, two ? ctx.ptr(x2) : 0, scratch, nIdx, rows, P, S, per, bad.ptr,
  ], tasks, tasks > 1);
  return !bad.raised();
};

// ---------------------------------------------------------------------------------------------
// the selective scan

function ssmForward(ctx: WasmCtx, ins: readonly KernelArg[], y: number, hL: number): void {
  const [B, L, Di] = ins[0].shape, N = ins[2].shape[1];
  const parallel = B * L * Di * N >= PARALLEL_MIN_WORK;
  const chunk = parallel ? roundUp(Math.max(2, Math.min(16, ceilDiv(B * Di, ctx.threads * 4))), 2) : roundUp(Di, 2);
  const w2 = roundUp(Math.min(chunk, Di), 2);
  const stride = roundUp((2 * N * w2 + 3 * w2) * 8, 64);
  const scratch = ctx.temp(stride * (parallel ? ctx.threads : 1));
  ctx.launch(K.SSM_FWD, [...ins.slice(0, 6).map((a) => ctx.ptr(a)), y, hL, B, L, Di, N, chunk, scratch, stride, ctx.expLockstep ? 1 : 0], B * ceilDiv(Di, chunk), parallel);
}

const selectiveScan: Launcher<"selectiveScan"> = (ctx, ins, out) => {
  if (size(out.shape) === 0) return false;
  ssmForward(ctx, ins, ctx.ptr(out), 0);
  return true;
};

const selectiveScanState: Launcher<"selectiveScanState"> = (ctx, ins, out) => {
  if (size(out.shape) === 0 || ins[0].shape[1] === 0) return false;
  ssmForward(ctx, ins, 0, ctx.ptr(out));
  return true;
};

/** selectiveScanWithState: y and the last state from one forward, [y, state] = outs. */
const selectiveScanWithState: MultiLauncher<"selectiveScanWithState"> = (ctx, ins, [y, state]) => {
  if (size(y.shape) === 0 || size(state.shape) === 0) return false;
  ssmForward(ctx, ins, ctx.ptr(y), ctx.ptr(state));
  return true;
};

/** Channels per block of the backward pass: depends on Di alone (it sets dB/dC's roundings). */
export function ssmBackwardChunk(Di: number): number {
  return 2 * ceilDiv(Di, 32);
}

const selectiveScanGrad: Launcher<"selectiveScanGrad"> = (ctx, ins, out) => {
  const [B, L, Di] = ins[0].shape, N = ins[2].shape[1];
  if (B * L * Di * N === 0) return false;
  const chunk = ssmBackwardChunk(Di);
  const nblocks = ceilDiv(Di, chunk);
  const S = N * chunk;
  const stride = roundUp(((2 * L + 1) * S + 3 * S + 4 * chunk) * 8, 64); // hs, as, At, lam, dA, 4 rows
  const parallel = B * L * Di * N >= PARALLEL_MIN_WORK && nblocks > 1;
  const T = parallel ? Math.min(ctx.threads, nblocks) : 1;
  const scratch = ctx.temp(stride * (parallel ? ctx.threads : 1));
  const BLN = B * L * N;
  const dBp = ctx.temp(nblocks * BLN * 8), dCp = ctx.temp(nblocks * BLN * 8);
  void T;
  ctx.launch(K.SSM_BWD, [...ins.slice(0, 8).map((a) => ctx.ptr(a)), ctx.ptr(out), B, L, Di, N, chunk, scratch, stride, dBp, dCp, ctx.expLockstep ? 1 : 0], nblocks, parallel);
  const per = parallel ? Math.max(256, ceilDiv(BLN, ctx.threads * 4)) : BLN;
  ctx.launch(K.SSM_BWD_REDUCE, [dBp, dCp, ctx.ptr(out), B, L, Di, N, nblocks, per], ceilDiv(BLN, per), parallel && BLN * nblocks >= PARALLEL_MIN_WORK);
  return true;
};

/**
 * σ(x·w + b) (linearSigmoid): the matmul launcher into the output (its [..., 1] layout), then the
 * add and the sigmoid in place, each rounded to f32 as the add and sigmoid kernels round them (the
 * sigmoid the TypeScript reference's, which the wasm unary kernel matches bit for bit).
 */
const linearSigmoid: Launcher<"linearSigmoid"> = (ctx, [x, w, b], out) => {
  if (!matmul(ctx, [x, w], { ...out, shape: [...x.shape.slice(0, -1), 1] }, { transA: false, transB: false })) return false;
  const v = ctx.heap.f32;
  biasSigmoidInPlace(v, ctx.ptr(out) >>> 2, size(out.shape), v[ctx.ptr(b) >>> 2]);
  return true;
};

/** The multi-output primitives with a wasm kernel (the others run the TypeScript one on shared views). */
export const wasmMultiLaunchers: { [Kn in MultiPrimName]?: MultiLauncher<Kn> } = { selectiveScanWithState };

/** The primitives with a wasm kernel (the others run the TypeScript reference on shared views). */
export const wasmLaunchers: { [Kn in PrimName]?: Launcher<Kn> } = {
  matmul, linearSigmoid, unary, binary, compare, reduce, softmax, logsumexp, crossEntropy, scan, scanReverse,
  conv1dCausal, conv1dCausalGradX, conv1dCausalGradW, selectiveScan, selectiveScanState, selectiveScanGrad,
  gather, scatterAdd, indexedDot, indexedSum, indexedOuter, where,
};
