/**
 * The wasm launchers of wasm/nn.c: the rows (softmax, logsumexp, cross-entropy), the linear scans
 * and the causal conv1d (forward, dx, dw).
 */
import type { KernelArg } from "../backend.ts";
import { K } from "./kernel-ids.ts";
import { ceilDiv, type Launcher, PARALLEL_MIN_WORK, roundUp, size, type WasmCtx } from "./launcher.ts";

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

export const softmax: Launcher<"softmax"> = (ctx, [x], out) => {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return true;
  const [per, par] = rowTasks(ctx, rows, n);
  ctx.launch(K.SOFTMAX, [ctx.ptr(x), ctx.ptr(out), rows, n, per], ceilDiv(rows, per), par);
  return true;
};

export const logsumexp: Launcher<"logsumexp"> = (ctx, [x], out) => {
  const [rows, n] = rowsOf(x);
  if (rows === 0 || n === 0) return false; // the reference's conventions for empty rows
  const [per, par] = rowTasks(ctx, rows, n);
  ctx.launch(K.LOGSUMEXP, [ctx.ptr(x), ctx.ptr(out), rows, n, per], ceilDiv(rows, per), par);
  return true;
};

export const crossEntropy: Launcher<"crossEntropy"> = (ctx, [logits, targets], out) => {
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

export const scan: Launcher<"scan"> = (ctx, [a, x, h0], out) => {
  const [B, L, S] = a.shape;
  if (B * L * S === 0) return true;
  const sp = scanSplit(ctx, B, L, S);
  const lanes = laneBoard(ctx, sp.lanes);
  ctx.launch(K.SCAN, [ctx.ptr(a), ctx.ptr(x), ctx.ptr(h0), ctx.ptr(out), B, L, S, sp.per, sp.sLanes, ctx.touchAhead ? 1 : 0, lanes, sp.rows], sp.tasks, sp.parallel);
  return true;
};

export const scanReverse: Launcher<"scanReverse"> = (ctx, [a, g], out) => {
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

export const conv1dCausal: Launcher<"conv1dCausal"> = (ctx, [x, w, prefix], out) => {
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

export const conv1dCausalGradX: Launcher<"conv1dCausalGradX"> = (ctx, [g, w], out) => {
  const [B, L, C] = g.shape, Kw = w.shape[1];
  if (B * L * C === 0) return true;
  const [per, tt, par] = splitBL(ctx, B, L, B * L * C * Kw);
  ctx.launch(K.CONV1D_GRAD_X, [ctx.ptr(g), ctx.ptr(w), ctx.ptr(out), B, L, C, Kw, per, tt], B * tt, par);
  return true;
};

export const conv1dCausalGradW: Launcher<"conv1dCausalGradW"> = (ctx, [g, x], out) => {
  const [B, L, C] = g.shape, Kw = out.shape[1];
  if (C * Kw === 0) return true;
  const parallel = B * L * C * Kw >= PARALLEL_MIN_WORK * 4 && C >= 4;
  const per = parallel ? roundUp(Math.max(2, ceilDiv(C, ctx.threads * 4)), 2) : C;
  const stride = roundUp(Kw * per * 8, 64);
  const scratch = ctx.temp(stride * ctx.threads);
  ctx.launch(K.CONV1D_GRAD_W, [ctx.ptr(g), ctx.ptr(x), ctx.ptr(out), B, L, C, Kw, per, scratch, stride], ceilDiv(C, per), parallel);
  return true;
};
