/**
 * Elementwise kernels: fill, unary, binary (NumPy broadcasting, f32 and i32), compare, where, cast.
 *
 * All run through one generated "map" shader: one thread per output element, inputs read at
 * offsets computed from the output index by an unrolled div/mod chain over the broadcast axes
 * (after coalescing, so most broadcasts are rank 1 or 2). The shape class (rank, dtypes, op, and
 * whether the whole thing is flat) is the cache key; sizes and strides are params.
 *
 * Flat maps (every operand the output's shape, or a scalar) are the only ones that may exceed one
 * storage binding: they run in chunks, each binding a 256-byte-aligned range.
 */
import type { BinaryOp, CompareOp, KernelArg, PrimParams, UnaryOp } from "../../backend.ts";
import type { DType } from "../../dtype.ts";
import {
  broadcastStrides, coalesce, ENTRY_ARGS, grid, header, indexChain, LINEAR_WG, ParamWords, pu, strides,
  prod, type BufRef, type GpuCtx,
} from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const WG = 256;

export interface MapSpec {
  label: string;
  /** Identifies the expression (part of the pipeline key). */
  op: string;
  out: KernelArg;
  ins: readonly KernelArg[];
  /** WGSL expression of the result from the input values v0, v1, … (typed by their dtypes). */
  expr: (v: string[], extra: (i: number) => string) => string;
  /** Extra param words (f32/i32 constants), readable in `expr` through `extra(i)`. */
  extras?: (w: ParamWords) => void;
  nExtras?: number;
  /** Whether the shader needs the f32 math functions. */
  math?: boolean;
}

/** Runs a map kernel (see the file comment). */
export function runMap(ctx: GpuCtx, s: MapSpec): void {
  const n = prod(s.out.shape);
  if (n === 0) return;
  const outStr = strides(s.out.shape);
  const inStr = s.ins.map((a) => broadcastStrides(a.shape, s.out.shape));
  const c = coalesce(s.out.shape, [outStr, ...inStr]);
  const rank = c.shape.length;
  const flat = rank <= 1 && c.strides.slice(1).every((st) => rank === 0 || st[0] === 0 || st[0] === 1);
  const nEx = s.nExtras ?? 0;
  const types = [s.out.dtype, ...s.ins.map((a) => a.dtype)].join("");
  if (flat) {
    const kinds = s.ins.map((a) => (prod(a.shape) === 1 && n !== 1 ? "s" : "v"));
    const key = `map:${s.op}:${types}:flat:${kinds.join("")}`;
    const wgsl = () => mapWgsl(s, 0, nEx, kinds);
    // chunk so that every non-scalar binding fits (starts at multiples of 64 elements: 256 bytes)
    const maxElems = Math.floor(ctx.limits.maxStorageBufferBindingSize / 4 / 64) * 64;
    for (let start = 0; start < n; start += maxElems) {
      const count = Math.min(maxElems, n - start);
      const w = new ParamWords().u(count);
      s.extras?.(w);
      const whole = start === 0 && count === n;
      const bufs: BufRef[] = [whole ? ctx.ref(s.out, s.label) : ctx.range(s.out, start, count)];
      s.ins.forEach((a, k) => bufs.push(kinds[k] === "s" || whole ? ctx.ref(a, s.label) : ctx.range(a, start, count)));
      ctx.dispatch({ label: s.label, key, wgsl, buffers: bufs, params: w.words(), groups: grid(Math.ceil(count / WG), ctx.limits.maxComputeWorkgroupsPerDimension) });
    }
    return;
  }
  const key = `map:${s.op}:${types}:r${rank}`;
  const w = new ParamWords().u(n);
  s.extras?.(w);
  for (const d of c.shape) w.u(d);
  for (let k = 0; k < s.ins.length; k++) for (const st of c.strides[k + 1]) w.u(st);
  ctx.dispatch({
    label: s.label,
    key,
    wgsl: () => mapWgsl(s, rank, nEx, null),
    buffers: [ctx.ref(s.out, s.label), ...s.ins.map((a) => ctx.ref(a, s.label))],
    params: w.words(),
    groups: grid(Math.ceil(n / WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

function mapWgsl(s: MapSpec, rank: number, nEx: number, flatKinds: string[] | null): string {
  const nIn = s.ins.length;
  const shapeBase = 1 + nEx;
  const strideBase = shapeBase + rank;
  const nWords = strideBase + rank * nIn;
  const decls = [{ name: "out", type: s.out.dtype, write: true }, ...s.ins.map((a, k) => ({ name: `in${k}`, type: a.dtype }))];
  const body: string[] = [];
  const vals: string[] = [];
  if (flatKinds) {
    s.ins.forEach((_, k) => vals.push(`in${k}[${flatKinds[k] === "s" ? "0u" : "i"}]`));
  } else {
    body.push(indexChain("i", rank, (d) => pu(shapeBase + d), nIn, (k, d) => pu(strideBase + k * rank + d)));
    s.ins.forEach((_, k) => vals.push(`in${k}[off${k}]`));
  }
  s.ins.forEach((_, k) => body.push(`let v${k} = ${vals[k]};`));
  const expr = s.expr(s.ins.map((_, k) => `v${k}`), (i) => pu(1 + i));
  return `${header(nWords, decls)}${s.math ? WGSL_MATH : ""}${TO_INT32}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  ${body.join("\n  ")}
  out[i] = ${expr};
}`;
}

/** f32 → i32 like JavaScript's ToInt32(Math.trunc(x)): truncation, wrapping modulo 2^32, NaN/±Inf → 0. */
const TO_INT32 = /* wgsl */ `
fn to_int32(x: f32) -> i32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7f800000u) == 0x7f800000u) { return 0i; }
  if (abs(x) < 2147483648.0f) { return i32(trunc(x)); }
  let e = i32((b >> 23u) & 0xffu) - 150i;
  if (e >= 32i) { return 0i; }
  let u = ((b & 0x7fffffu) | 0x800000u) << u32(e);
  return select(bitcast<i32>(u), -bitcast<i32>(u), x < 0.0f);
}
`;

// ---------- the primitives ----------

export function fillKernel(ctx: GpuCtx, _ins: readonly KernelArg[], out: KernelArg, p: PrimParams["fill"]): void {
  runMap(ctx, {
    label: "fill", op: "fill", out, ins: [], nExtras: 1,
    extras: (w) => w.typed(p.value, out.dtype),
    expr: (_v, ex) => (out.dtype === "f32" ? `bitcast<f32>(${ex(0)})` : `bitcast<i32>(${ex(0)})`),
  });
}

const UNARY: Record<UnaryOp, (x: string) => string> = {
  neg: (x) => `-${x}`,
  exp: (x) => `m_exp(${x})`,
  log: (x) => `m_log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  rsqrt: (x) => `1.0f / sqrt(${x})`,
  tanh: (x) => `m_tanh(${x})`,
  sigmoid: (x) => `m_sigmoid(${x})`,
  silu: (x) => `${x} * m_sigmoid(${x})`,
  softplus: (x) => `m_softplus(${x})`,
  abs: (x) => `abs(${x})`,
  relu: (x) => `select(0.0f, ${x}, ${x} > 0.0f)`,
  sin: (x) => `m_sin(${x})`,
  cos: (x) => `m_cos(${x})`,
  square: (x) => `${x} * ${x}`,
  reciprocal: (x) => `1.0f / ${x}`,
  sign: (x) => `select(select(select(m_nan(), 0.0f, ${x} == 0.0f), -1.0f, ${x} < 0.0f), 1.0f, ${x} > 0.0f)`,
};

export function unaryKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["unary"]): void {
  runMap(ctx, { label: p.op, op: `u.${p.op}`, out, ins: [x], math: true, expr: ([v]) => UNARY[p.op](v) });
}

const BINARY_F32: Record<BinaryOp, (a: string, b: string) => string> = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `${a} / ${b}`,
  pow: (a, b) => `m_pow(${a}, ${b})`,
  max: (a, b) => `select(${b}, ${a}, ${a} > ${b} || m_isnan(${a}))`,
  min: (a, b) => `select(${b}, ${a}, ${a} < ${b} || m_isnan(${a}))`,
};
// int32 semantics of the CPU: add/sub/mul wrap, div truncates (x / 0 = 0), pow by squaring.
const BINARY_I32: Record<BinaryOp, (a: string, b: string) => string> = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `select(${a} / ${b}, 0i, ${b} == 0i)`,
  pow: (a, b) => `m_ipow(${a}, ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
};

export function binaryKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["binary"]): void {
  const f = out.dtype === "i32" ? BINARY_I32[p.op] : BINARY_F32[p.op];
  runMap(ctx, { label: p.op, op: `b.${p.op}`, out, ins: [a, b], math: true, expr: ([x, y]) => f(x, y) });
}

const CMP: Record<CompareOp, string> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" };

export function compareKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["compare"]): void {
  runMap(ctx, { label: p.op, op: `c.${p.op}`, out, ins: [a, b], expr: ([x, y]) => `select(0.0f, 1.0f, ${x} ${CMP[p.op]} ${y})` });
}

/** Nonzero test of a condition value (bit test for f32: ±0 is false, NaN true, as on the CPU). */
function truthy(v: string, dtype: DType): string {
  return dtype === "f32" ? `(bitcast<u32>(${v}) & 0x7fffffffu) != 0u` : `${v} != 0i`;
}

export function whereKernel(ctx: GpuCtx, [c, a, b]: readonly KernelArg[], out: KernelArg): void {
  runMap(ctx, { label: "where", op: "where", out, ins: [c, a, b], expr: ([vc, va, vb]) => `select(${vb}, ${va}, ${truthy(vc, c.dtype)})` });
}

export function castKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, _p: PrimParams["cast"]): void {
  const conv = (v: string) => (x.dtype === out.dtype ? v : out.dtype === "i32" ? `to_int32(${v})` : `f32(${v})`);
  runMap(ctx, { label: "cast", op: "cast", out, ins: [x], expr: ([v]) => conv(v) });
}
