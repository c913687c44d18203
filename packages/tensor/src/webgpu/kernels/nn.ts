/**
 * Fused NN kernels: softmax / logsumexp / crossEntropy over the last axis (one workgroup per row,
 * workgroup trees for the max and the sum), and the causal depthwise conv1d with its two
 * gradient kernels.
 *
 * crossEntropy: a target outside [0, vocab) cannot throw on a GPU; its loss is NaN (the CPU
 * throws). The shape rules, which run on the host, are the same for both backends.
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

type RowMode = "softmax" | "lse" | "ce";

function rowWgsl(mode: RowMode, wg: number): string {
  const bufs = [{ name: "out", type: "f32", write: true }, { name: "x", type: "f32" }];
  if (mode === "ce") bufs.push({ name: "tgt", type: "i32" });
  const tree = (combine: (a: string, b: string) => string) => {
    const s: string[] = [];
    for (let k = wg / 2; k >= 1; k /= 2) s.push(`if (lid < ${k}u) { sh[lid] = ${combine("sh[lid]", `sh[lid + ${k}u]`)}; }\n  workgroupBarrier();`);
    return s.join("\n  ");
  };
  // softmax ignores NaN in the max (as the CPU's `x > m`); logsumexp propagates it
  const maxStep = mode === "softmax"
    ? (a: string, b: string) => `select(${a}, ${b}, ${b} > ${a})`
    : (a: string, b: string) => `select(${a}, ${b}, ${b} > ${a} || m_isnan(${b}))`;
  const tail = mode === "softmax"
    ? `let inv = 1.0f / ssum;
  for (var j = lid; j < n; j += ${wg}u) { out[base + j] = m_exp(x[base + j] - mz) * inv; }`
    : `if (lid == 0u) {
    var r = m;
    if (m_isfinite(m)) { r = m + m_log(ssum); }
    ${mode === "ce" ? `let t = tgt[row];
    if (t < 0i || u32(t) >= n) { r = m_nan(); } else { r = r - x[base + u32(t)]; }` : ""}
    out[row] = r;
  }`;
  return `${header(2, bufs)}${WGSL_MATH}
var<workgroup> sh: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let row = wg;
  let n = ${pu(1)};
  if (row >= ${pu(0)}) { return; }
  let base = row * n;
  var mx = -m_inf();
  for (var j = lid; j < n; j += ${wg}u) { mx = ${maxStep("mx", "x[base + j]")}; }
  sh[lid] = mx;
  workgroupBarrier();
  ${tree(maxStep)}
  let m = sh[0];
  workgroupBarrier();
  var mz = m;
  if (${mode === "softmax" ? "m == -m_inf()" : "!m_isfinite(m)"}) { mz = 0.0f; }
  var s = 0.0f;
  for (var j = lid; j < n; j += ${wg}u) { s += m_exp(x[base + j] - mz); }
  sh[lid] = s;
  workgroupBarrier();
  ${tree((a, b) => `${a} + ${b}`)}
  let ssum = sh[0];
  ${tail}
}`;
}

function rowKernel(ctx: GpuCtx, mode: RowMode, ins: readonly KernelArg[], out: KernelArg): void {
  const x = ins[0];
  const n = x.shape[x.shape.length - 1];
  const rows = n === 0 ? 0 : prod(x.shape) / n;
  if (rows === 0) return;
  const wg = n <= 128 ? 64 : 256;
  const label = mode === "lse" ? "logsumexp" : mode === "ce" ? "crossEntropy" : "softmax";
  ctx.dispatch({
    label, key: `row:${mode}:${wg}`, wgsl: () => rowWgsl(mode, wg),
    buffers: [ctx.ref(out, label), ...ins.map((a) => ctx.ref(a, label))],
    params: new ParamWords().u(rows).u(n).words(),
    groups: grid(rows, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export const softmaxKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "softmax", ins, out);
export const logsumexpKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "lse", ins, out);
export const crossEntropyKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "ce", ins, out);

// ---------- causal depthwise conv1d: x, y [B, L, C], w [C, K] ----------

const WG = 256;

/**
 * y[b,t,c] = Σ_k w[c,k] x[b, t-K+1+k, c] (forward) or dx[b,s,c] = Σ_k w[c,k] g[b, s+K-1-k, c]
 * (gradX): one thread per output element, k ascending as on the CPU.
 */
function convWgsl(grad: boolean): string {
  const src = grad
    ? `let t = i32(tl) + K - 1i - k; if (t < i32(L)) { s += w[c * u32(K) + u32(k)] * v[(bt + u32(K - 1i - k)) * C + c]; }`
    : `let t = i32(tl) - K + 1i + k; if (t >= 0i) { s += w[c * u32(K) + u32(k)] * v[(bt - u32(K - 1i - k)) * C + c]; }`;
  return `${header(4, [{ name: "out", type: "f32", write: true }, { name: "v", type: "f32" }, { name: "w", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let C = ${pu(2)}; let K = i32(${pu(3)});
  let c = i % C; let bt = i / C; let tl = bt % L;
  var s = 0.0f;
  for (var k = 0i; k < K; k++) { ${src} }
  out[i] = s;
}`;
}

function conv(ctx: GpuCtx, grad: boolean, v: KernelArg, w: KernelArg, out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const [, L, C] = v.shape;
  const label = grad ? "conv1dCausalGradX" : "conv1dCausal";
  ctx.dispatch({
    label, key: `conv:${grad}`, wgsl: () => convWgsl(grad),
    buffers: [ctx.ref(out, label), ctx.ref(v, label), ctx.ref(w, label)],
    params: new ParamWords().u(n).u(L).u(C).u(w.shape[1]).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export const conv1dCausalKernel = (ctx: GpuCtx, [x, w]: readonly KernelArg[], out: KernelArg) => conv(ctx, false, x, w, out);
export const conv1dCausalGradXKernel = (ctx: GpuCtx, [g, w]: readonly KernelArg[], out: KernelArg) => conv(ctx, true, g, w, out);

/**
 * dw[c,k] = Σ_{b,t} g[b,t,c] x[b,t-K+1+k,c]: a reduction over B·L per output. A workgroup
 * takes OX adjacent channels (coalesced reads) of one k, with 256/OX lanes splitting B·L;
 * Kahan-compensated sums, then a workgroup tree over the lanes.
 */
function gradWWgsl(ox: number): string {
  const lanes = WG / ox;
  const steps: string[] = [];
  for (let s = lanes / 2; s >= 1; s /= 2) steps.push(`if (lane < ${s}u) { sh[lid] += sh[lid + ${s * ox}u]; }\n  workgroupBarrier();`);
  return `${header(5, [{ name: "out", type: "f32", write: true }, { name: "g", type: "f32" }, { name: "x", type: "f32" }])}
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let BL = ${pu(0)}; let L = ${pu(1)}; let C = ${pu(2)}; let K = ${pu(3)}; let cBlocks = ${pu(4)};
  if (wg >= cBlocks * K) { return; }
  let k = wg / cBlocks;
  let ox = lid % ${ox}u; let lane = lid / ${ox}u;
  let c = (wg % cBlocks) * ${ox}u + ox;
  let shift = K - 1u - k;
  var acc = 0.0f; var comp = 0.0f;
  if (c < C) {
    for (var bt = lane; bt < BL; bt += ${lanes}u) {
      if (bt % L >= shift) {
        let y = g[bt * C + c] * x[(bt - shift) * C + c] - comp;
        let t = acc + y; comp = (t - acc) - y; acc = t;
      }
    }
  }
  sh[lid] = acc;
  workgroupBarrier();
  ${steps.join("\n  ")}
  if (lane == 0u && c < C) { out[c * K + k] = sh[lid]; }
}`;
}

export function conv1dCausalGradWKernel(ctx: GpuCtx, [g, x]: readonly KernelArg[], out: KernelArg): void {
  const [B, L, C] = g.shape;
  const K = out.shape[1];
  if (C * K === 0) return;
  let ox = 1;
  while (ox < C && ox < 64) ox *= 2;
  const cBlocks = ceilDiv(C, ox);
  ctx.dispatch({
    label: "conv1dCausalGradW", key: `convGradW:${ox}`, wgsl: () => gradWWgsl(ox),
    buffers: [ctx.ref(out, "conv1dCausalGradW"), ctx.ref(g, "conv1dCausalGradW"), ctx.ref(x, "conv1dCausalGradW")],
    params: new ParamWords().u(B * L).u(Math.max(1, L)).u(C).u(K).u(cBlocks).words(),
    groups: grid(cBlocks * K, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
