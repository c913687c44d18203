/**
 * The wasm launchers of the elementwise ops (unary, binary, compare and where: wasm/elementwise.c,
 * wasm/where.c) and of the reductions (wasm/reduce.c).
 */
import type { BinaryOp, CompareOp, KernelArg, UnaryOp } from "../backend.ts";
import { broadcastStrides } from "../cpu/strided.ts";
import { K } from "./kernel-ids.ts";
import { ceilDiv, type Launcher, PARALLEL_MIN_WORK, roundUp, size, type WasmCtx } from "./launcher.ts";

const UNARY_OPS: UnaryOp[] = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "softplus", "abs", "relu", "sin", "cos", "square", "reciprocal", "sign"];
const BINARY_OPS: (BinaryOp | CompareOp)[] = ["add", "sub", "mul", "div", "pow", "max", "min", "eq", "ne", "lt", "le", "gt", "ge"];
/** Elementwise cost relative to an add (transcendentals run ~10-40x longer): sets the task size. */
const EXPENSIVE = new Set<string>(["exp", "log", "tanh", "sigmoid", "silu", "softplus", "sin", "cos", "pow"]);

function chunkFor(n: number, T: number, minChunk: number): number {
  return roundUp(Math.max(minChunk, ceilDiv(n, T * 4)), 4);
}

export const unary: Launcher<"unary"> = (ctx, [x], out, p) => {
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

export const binary: Launcher<"binary"> = (ctx, [a, b], out, p) => {
  const isInt = out.dtype === "i32";
  if (isInt && (p.op === "div" || p.op === "pow")) return false; // rare: the reference handles int division by zero and pow
  return binaryLike(ctx, a, b, out, BINARY_OPS.indexOf(p.op), isInt);
};

export const compare: Launcher<"compare"> = (ctx, [a, b], out, p) => binaryLike(ctx, a, b, out, BINARY_OPS.indexOf(p.op), a.dtype === "i32");

/** where over flat operands (each the output's size or one value: its shape up to leading 1s); the broadcasting forms run the reference. */
export const where: Launcher<"where"> = (ctx, [c, a, b], out) => {
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

export const reduce: Launcher<"reduce"> = (ctx, [x], out, p) => {
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
