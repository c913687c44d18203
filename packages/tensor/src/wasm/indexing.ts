/**
 * The wasm launchers of gather and scatterAdd (wasm/indexing.c) and of the pool reads' indexed
 * primitives, indexedDot, indexedSum and indexedOuter (wasm/indexed.c).
 */
import type { KernelArg } from "../backend.ts";
import { K } from "./kernel-ids.ts";
import { ceilDiv, type Launcher, PARALLEL_MIN_WORK, roundUp, size, type WasmCtx } from "./launcher.ts";

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

export const gather: Launcher<"gather"> = (ctx, [table, idx], out) => {
  const rows = table.shape[0], n = size(idx.shape);
  if (idx.dtype !== "i32" || !indicesInRange(ctx, idx, n, rows)) return false;
  const row = rows === 0 ? 0 : size(table.shape) / rows;
  if (n * row === 0) return true;
  const [per, it, colsPer, colTasks] = gridSplit(ctx, n, row, n * row >= PARALLEL_MIN_WORK * 4);
  ctx.launch(K.GATHER, [ctx.ptr(table), ctx.ptr(idx), ctx.ptr(out), n, row, per, colsPer, colTasks], it * colTasks, it * colTasks > 1);
  return true;
};

export const scatterAdd: Launcher<"scatterAdd"> = (ctx, [idx, upd], out, p) => {
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
export const indexedDot: Launcher<"indexedDot"> = (ctx, [x, table, idx], out) => {
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

export const indexedSum: Launcher<"indexedSum"> = (ctx, [w, table, idx], out) => {
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

export const indexedOuter: Launcher<"indexedOuter"> = (ctx, [w, x, idx, w2, x2], out, p) => {
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
