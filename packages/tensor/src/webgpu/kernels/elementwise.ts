/**
 * Elementwise kernels: fill, unary, binary (NumPy broadcasting, f32 and i32), compare, where, cast.
 *
 * All run through one generated "map" shader: one thread per output element, each input read at
 * an offset computed from the output index. Few pipelines, on purpose: every distinct pipeline
 * costs a shader compile (about 0.1–0.5 s each on a software Vulkan such as lavapipe with a cold
 * cache, where CI runs), so
 * - the op is a runtime code in a `switch` on a uniform (all unary ops share one shader, all
 *   binary and compare ops of one dtype another): a uniform branch costs nothing measurable;
 * - there are two layouts: "flat" (every input is the output's shape or a scalar: in[i * s] with
 *   s = 1 or 0) and "strided" (axes coalesced, then padded to rank 4 with size-1 axes, and an
 *   unrolled div/mod chain: no local arrays). Rank 2 after coalescing (a row or column
 *   broadcast) and ranks above 4 get their own keys.
 * Flat maps are the only ones that may exceed one storage binding: they run in chunks, each
 * binding a 256-byte-aligned range of the big operands.
 */
import type { BinaryOp, CompareOp, KernelArg, PrimParams, UnaryOp } from "../../backend.ts";
import type { DType } from "../../dtype.ts";
import { sameShape } from "../../shape.ts";
import {
  broadcastStrides, coalesce, ENTRY_ARGS, grid, header, indexChain, LINEAR_WG, ParamWords, pu, strides, prod,
  type BufRef, type GpuCtx,
} from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const WG = 256;
const PAD_RANK = 4;

export interface MapSpec {
  label: string;
  /** Identifies the shader family (with the dtypes and layout, the pipeline key). */
  family: string;
  out: KernelArg;
  ins: readonly KernelArg[];
  /** WGSL statements that set `r` (the output value) from v0, v1, … and the op code `op`. */
  body: (v: string[]) => string;
  /** The runtime op code (0 when the family has one op). */
  op?: number;
  /** An extra param word, readable as `ex` (u32 bits). */
  extra?: (w: ParamWords) => void;
  math?: boolean;
}

/**
 * The inner stride of each input in the flat layout (1: the output's shape, 0: a scalar), or null
 * when some input is neither (then runMap coalesces). The cheap check first: most maps (every
 * input the output's shape or a one-element tensor) give the same answer as coalesce without
 * building stride lists (this runs on every launch). Exported for its test.
 */
export function flatStrides(out: readonly number[], n: number, ins: readonly KernelArg[]): number[] | null {
  const inner = new Array<number>(ins.length);
  for (let k = 0; k < ins.length; k++) {
    const sh = ins[k].shape;
    if (sameShape(sh, out)) inner[k] = n === 1 ? 0 : 1; // n = 1: coalesce drops every axis
    else if (prod(sh) === 1) inner[k] = 0;
    else return null;
  }
  return inner;
}

/** Runs a map kernel (see the file comment). */
export function runMap(ctx: GpuCtx, s: MapSpec): void {
  const n = prod(s.out.shape);
  if (n === 0) return;
  let types: string = s.out.dtype;
  for (let k = 0; k < s.ins.length; k++) types += s.ins[k].dtype;
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  let inner = flatStrides(s.out.shape, n, s.ins);
  let c: { shape: number[]; strides: number[][] } | null = null;
  if (inner === null) {
    const inStr = s.ins.map((a) => broadcastStrides(a.shape, s.out.shape));
    c = coalesce(s.out.shape, [strides(s.out.shape), ...inStr]);
    if (c.shape.length <= 1) {
      const cs = c;
      inner = s.ins.map((_, k) => (cs.shape.length === 0 ? 0 : cs.strides[k + 1][0]));
    }
  }
  if (inner !== null) {
    const key = `map:${s.family}:${types}:flat`;
    const wgsl = () => mapWgsl(s, -1);
    // chunk so that every non-scalar binding fits (chunks start at multiples of 64 elements)
    const maxElems = Math.floor(ctx.limits.maxStorageBufferBindingSize / 4 / 64) * 64;
    for (let start = 0; start < n; start += maxElems) {
      const count = Math.min(maxElems, n - start);
      const whole = start === 0 && count === n;
      const w = mapHead(s, count);
      for (let k = 0; k < inner.length; k++) w.u(inner[k]);
      const bufs: BufRef[] = [whole ? ctx.ref(s.out, s.label) : ctx.range(s.out, start, count)];
      for (let k = 0; k < s.ins.length; k++) {
        const a = s.ins[k];
        bufs.push(inner[k] === 0 || whole ? ctx.ref(a, s.label) : ctx.range(a, start, count));
      }
      ctx.dispatch({ label: s.label, key, wgsl, buffers: bufs, params: w.words(), groups: grid(Math.ceil(count / WG), maxDim) });
    }
    return;
  }
  // two axes after coalescing (the common broadcast: a row or a column against a matrix) get
  // their own pipeline with one div/mod per element instead of the padded rank-4 chain's three
  const cs = c!;
  const rank = cs.shape.length <= 2 ? 2 : Math.max(PAD_RANK, cs.shape.length);
  const pad = rank - cs.shape.length;
  const w = mapHead(s, n);
  for (let d = 0; d < rank; d++) w.u(d < pad ? 1 : cs.shape[d - pad]);
  for (let k = 0; k < s.ins.length; k++) for (let d = 0; d < rank; d++) w.u(d < pad ? 0 : cs.strides[k + 1][d - pad]);
  const bufs: BufRef[] = [ctx.ref(s.out, s.label)];
  for (let k = 0; k < s.ins.length; k++) bufs.push(ctx.ref(s.ins[k], s.label));
  ctx.dispatch({
    label: s.label,
    key: `map:${s.family}:${types}:r${rank}`,
    wgsl: () => mapWgsl(s, rank),
    buffers: bufs,
    params: w.words(),
    groups: grid(Math.ceil(n / WG), maxDim),
  });
}

/** The params every map starts with: element count, op code, extra word. */
function mapHead(s: MapSpec, count: number): ParamWords {
  const w = new ParamWords().u(count).u(s.op ?? 0);
  if (s.extra) s.extra(w);
  else w.u(0);
  return w;
}

/** rank -1: the flat layout. Params: n, op, extra, then (flat) one stride per input or (strided) shape, strides. */
function mapWgsl(s: MapSpec, rank: number): string {
  const nIn = s.ins.length;
  const nWords = rank < 0 ? 3 + nIn : 3 + rank + rank * nIn;
  const decls = [{ name: "out", type: s.out.dtype, write: true }, ...s.ins.map((a, k) => ({ name: `in${k}`, type: a.dtype }))];
  const body: string[] = [];
  if (rank < 0) {
    s.ins.forEach((_, k) => body.push(`let v${k} = in${k}[i * ${pu(3 + k)}];`));
  } else {
    body.push(indexChain("i", rank, (d) => pu(3 + d), nIn, (k, d) => pu(3 + rank + k * rank + d)));
    s.ins.forEach((_, k) => body.push(`let v${k} = in${k}[off${k}];`));
  }
  return `${header(nWords, decls)}${s.math ? WGSL_MATH : ""}${TO_INT32}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let op = ${pu(1)};
  let ex = ${pu(2)};
  ${body.join("\n  ")}
  var r: ${s.out.dtype};
  ${s.body(s.ins.map((_, k) => `v${k}`))}
  out[i] = r;
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

/** A WGSL switch over op codes, one case per table entry, each setting r. */
function switchOf(cases: string[]): string {
  return `switch op {\n${cases.map((c, k) => `    case ${k}u: { r = ${c}; }`).join("\n")}\n    default: { r = ${"r"}; }\n  }`;
}

// ---------- the primitives ----------

export function fillKernel(ctx: GpuCtx, _ins: readonly KernelArg[], out: KernelArg, p: PrimParams["fill"]): void {
  runMap(ctx, {
    label: "fill", family: "fill", out, ins: [],
    extra: (w) => w.typed(p.value, out.dtype),
    body: () => (out.dtype === "f32" ? "r = bitcast<f32>(ex);" : "r = bitcast<i32>(ex);"),
  });
}

const UNARY: [UnaryOp, (x: string) => string][] = [
  ["neg", (x) => `-${x}`],
  ["exp", (x) => `m_exp(${x})`],
  ["log", (x) => `m_log(${x})`],
  ["sqrt", (x) => `sqrt(${x})`],
  ["rsqrt", (x) => `1.0f / sqrt(${x})`],
  ["tanh", (x) => `m_tanh(${x})`],
  ["sigmoid", (x) => `m_sigmoid(${x})`],
  ["silu", (x) => `${x} * m_sigmoid(${x})`],
  ["softplus", (x) => `m_softplus(${x})`],
  ["abs", (x) => `abs(${x})`],
  ["relu", (x) => `select(0.0f, ${x}, ${x} > 0.0f)`],
  ["sin", (x) => `m_sin(${x})`],
  ["cos", (x) => `m_cos(${x})`],
  ["square", (x) => `${x} * ${x}`],
  ["reciprocal", (x) => `1.0f / ${x}`],
  ["sign", (x) => `select(select(select(m_nan(), 0.0f, ${x} == 0.0f), -1.0f, ${x} < 0.0f), 1.0f, ${x} > 0.0f)`],
];
const UNARY_CODE = new Map(UNARY.map(([name], k) => [name, k]));
const UNARY_FN = new Map(UNARY);

/**
 * The unary kernel's WGSL expression of `op` on `x`: fused kernels that apply an activation before
 * their store (ssmGate, the conv's silu, linearSoftplus) use it, so they round as that kernel does.
 */
export function unaryExpr(op: UnaryOp, x: string): string {
  return UNARY_FN.get(op)!(x);
}

/** unaryExpr of each component of the vec4<f32> expression `x` (a let or a variable: it is read four times). */
export function unaryExprVec4(op: UnaryOp, x: string): string {
  return `vec4<f32>(${["x", "y", "z", "w"].map((c) => unaryExpr(op, `${x}.${c}`)).join(", ")})`;
}

export function unaryKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["unary"]): void {
  runMap(ctx, {
    label: p.op, family: "unary", out, ins: [x], math: true, op: UNARY_CODE.get(p.op)!,
    body: ([v]) => switchOf(UNARY.map(([, f]) => f(v))),
  });
}

/** f′(x) for unaryGrad from x (v1) and y = f(x) (v2): the composite VJPs' formulas in f32. */
const UNARY_DERIV: [UnaryOp, (x: string, y: string) => string][] = [
  ["sqrt", (_x, y) => `0.5f / ${y}`],
  ["rsqrt", (x, y) => `-0.5f * (${y} / ${x})`],
  ["tanh", (_x, y) => `1.0f - ${y} * ${y}`],
  ["sigmoid", (_x, y) => `${y} * (1.0f - ${y})`],
  ["silu", (x) => `m_sigmoid(${x}) * (1.0f + ${x} * (1.0f - m_sigmoid(${x})))`],
  ["softplus", (x) => `m_sigmoid(${x})`],
  ["abs", (x) => `select(select(select(m_nan(), 0.0f, ${x} == 0.0f), -1.0f, ${x} < 0.0f), 1.0f, ${x} > 0.0f)`],
  ["relu", (x) => `select(0.0f, 1.0f, ${x} > 0.0f)`],
  ["sin", (x) => `m_cos(${x})`],
  ["cos", (x) => `-m_sin(${x})`],
  ["square", (x) => `2.0f * ${x}`],
  ["reciprocal", (_x, y) => `-(${y} * ${y})`],
];
const UNARY_DERIV_CODE = new Map(UNARY_DERIV.map(([name], k) => [name, k]));

/** g · f′(x) in one pass (one shader for every op: the op code is a uniform). */
export function unaryGradKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, p: PrimParams["unaryGrad"]): void {
  const code = UNARY_DERIV_CODE.get(p.op);
  if (code === undefined) throw new Error(`webgpu.unaryGrad: no fused derivative for ${p.op}`);
  runMap(ctx, {
    label: "unaryGrad", family: "ugrad", out, ins, math: true, op: code,
    body: ([g, x, y]) => switchOf(UNARY_DERIV.map(([, f]) => `${g} * (${f(x, y)})`)),
  });
}

const BINARY_OPS: BinaryOp[] = ["add", "sub", "mul", "div", "pow", "max", "min"];
const CMP_OPS: CompareOp[] = ["eq", "ne", "lt", "le", "gt", "ge"];
const CMP_SYM: Record<CompareOp, string> = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" };

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
  div: (a, b) => `select(${a} / select(${b}, 1i, ${b} == 0i), 0i, ${b} == 0i)`,
  pow: (a, b) => `m_ipow(${a}, ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  min: (a, b) => `min(${a}, ${b})`,
};

/**
 * Binary and compare ops of one input dtype share a shader: codes 0–6 are the binary ops, 7–12
 * the comparisons (whose output is f32; an i32 binary op writes i32, so i32 → i32 and i32 → f32
 * are two families).
 */
function binaryFamily(ctx: GpuCtx, label: string, code: number, a: KernelArg, b: KernelArg, out: KernelArg): void {
  runMap(ctx, { label, family: "binary", out, ins: [a, b], math: true, op: code, body: () => binarySwitch(a.dtype, out.dtype) });
}

/** The shader body of a binary family (built only when its pipeline is compiled). */
function binarySwitch(inType: DType, outType: DType): string {
  const intIn = inType === "i32";
  const cases: string[] = [];
  if (outType === inType) {
    const table = intIn ? BINARY_I32 : BINARY_F32;
    for (const op of BINARY_OPS) cases.push(table[op]("v0", "v1"));
  }
  const cmp = CMP_OPS.map((op) => `select(0.0f, 1.0f, v0 ${CMP_SYM[op]} v1)`);
  const all = outType === inType && !intIn ? [...cases, ...cmp] : intIn && outType === "f32" ? [...BINARY_OPS.map(() => "r"), ...cmp] : cases;
  return switchOf(all);
}

export function binaryKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["binary"]): void {
  binaryFamily(ctx, p.op, BINARY_OPS.indexOf(p.op), a, b, out);
}

/** addN: one map over up to 7 inputs (ops/elementwise.ts splits longer lists), added in order. */
export function addNKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  runMap(ctx, { label: "addN", family: `addN${ins.length}`, out, ins, body: (v) => `r = ${v.slice(1).reduce((acc, x) => `(${acc} + ${x})`, v[0])};` });
}

export function compareKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["compare"]): void {
  binaryFamily(ctx, p.op, BINARY_OPS.length + CMP_OPS.indexOf(p.op), a, b, out);
}

/** Nonzero test of a condition value (bit test for f32: ±0 is false, NaN true, as on the CPU). */
function truthy(v: string, dtype: DType): string {
  return dtype === "f32" ? `(bitcast<u32>(${v}) & 0x7fffffffu) != 0u` : `${v} != 0i`;
}

export function whereKernel(ctx: GpuCtx, [c, a, b]: readonly KernelArg[], out: KernelArg): void {
  runMap(ctx, { label: "where", family: "where", out, ins: [c, a, b], body: ([vc, va, vb]) => `r = select(${vb}, ${va}, ${truthy(vc, c.dtype)});` });
}

export function castKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, _p: PrimParams["cast"]): void {
  const conv = (v: string) => (x.dtype === out.dtype ? v : out.dtype === "i32" ? `to_int32(${v})` : `f32(${v})`);
  runMap(ctx, { label: "cast", family: "cast", out, ins: [x], body: ([v]) => `r = ${conv(v)};` });
}

/**
 * (y + u ⊙ D) ⊙ silu(z) (ssmGate) as one map: silu as the unary kernel writes it (z · m_sigmoid(z)),
 * then the add of the skip and the gate's product (D broadcast along the rows).
 */
export function ssmGateKernel(ctx: GpuCtx, [y, u, d, z]: readonly KernelArg[], out: KernelArg): void {
  const C = d.shape[d.shape.length - 1] ?? 1;
  const n = prod(out.shape);
  // rows of whole vec4s, y, u, z of the output's shape and D one row: four elements a thread
  // (its own shader: no broadcast index chain, vec4 loads), the same expressions per element
  const same = (a: KernelArg) => sameShape(a.shape, out.shape) && a.dtype === "f32";
  if (n > 0 && C % 4 === 0 && d.shape.length === 1 && d.dtype === "f32" && out.shape[out.shape.length - 1] === C && same(y) && same(u) && same(z)) {
    const label = "ssmGate";
    ctx.dispatch({
      label, key: "ssmGate:v4", wgsl: ssmGateVec4Wgsl,
      buffers: [out, y, u, d, z].map((a) => ctx.ref(a, label)), params: new ParamWords().u(n / 4).u(C / 4).words(),
      groups: grid(Math.ceil(n / 4 / WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    return;
  }
  runMap(ctx, {
    label: "ssmGate", family: "ssmGate", out, ins: [y, u, d, z], math: true,
    body: ([vy, vu, vd, vz]) => `let sg_a = ${unaryExpr("silu", vz)}; let sg_p = ${vu} * ${vd}; let sg_s = ${vy} + sg_p; r = sg_s * sg_a;`,
  });
}

/** ssmGate over vec4s: params n / 4, C / 4; the map's expressions for each of the four elements. */
function ssmGateVec4Wgsl(): string {
  const V = "vec4<f32>";
  return `${header(2, [{ name: "out", type: V, write: true }, { name: "y", type: V }, { name: "u", type: V }, { name: "d", type: V }, { name: "z", type: V }])}
${WGSL_MATH}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let vz = z[i];
  let sg_a = ${unaryExprVec4("silu", "vz")};
  let sg_p = u[i] * d[i % ${pu(1)}];
  let sg_s = y[i] + sg_p;
  out[i] = sg_s * sg_a;
}`;
}
