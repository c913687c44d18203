/**
 * Fused NN kernels: softmax / logsumexp / crossEntropy over the last axis (one workgroup per row,
 * workgroup trees for the max and the sum), and the causal depthwise conv1d with its two
 * gradient kernels.
 *
 * crossEntropy: a target outside [0, vocab) cannot throw on a GPU; its loss is NaN (the CPU
 * throws). The shape rules, which run on the host, are the same for both backends.
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, workgroupCombine, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

type RowMode = "softmax" | "lse" | "ce";
const ROW_MODES: RowMode[] = ["softmax", "lse", "ce"];
const ROW_WG = 256;

/**
 * params: rows, n, mode (0 softmax, 1 logsumexp, 2 crossEntropy). One shader for the three
 * (a uniform branch), the workgroup trees as loops: fewer, smaller pipelines.
 */
function rowWgsl(): string {
  const wg = ROW_WG;
  const tree = (combine: (a: string, b: string) => string) => workgroupCombine(combine);
  // softmax ignores NaN in the max (as the CPU's x > m); logsumexp propagates it
  const maxStep = (a: string, b: string) => `select(${a}, ${b}, ${b} > ${a} || (mode != 0u && m_isnan(${b})))`;
  return `${header(3, [{ name: "out", type: "f32", write: true }, { name: "x", type: "f32" }, { name: "tgt", type: "i32" }])}${WGSL_MATH}
var<workgroup> sh: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let row = wg;
  let n = ${pu(1)};
  let mode = ${pu(2)};
  if (row >= ${pu(0)}) { return; }
  let OX = 1u; let ox = 0u; let lane = lid; let lanes = ${wg}u;
  let base = row * n;
  var mx = -m_inf();
  for (var j = lid; j < n; j += ${wg}u) { mx = ${maxStep("mx", "x[base + j]")}; }
  sh[lid] = mx;
  ${tree(maxStep)}
  let m = sh[0];
  workgroupBarrier();
  var mz = m;
  if (!m_isfinite(m)) { mz = 0.0f; }
  var s = 0.0f;
  for (var j = lid; j < n; j += ${wg}u) { s += m_exp(x[base + j] - mz); }
  sh[lid] = s;
  ${tree((a, b) => `${a} + ${b}`)}
  let ssum = sh[0];
  if (mode == 0u) {
    let inv = 1.0f / ssum;
    for (var j = lid; j < n; j += ${wg}u) { out[base + j] = m_exp(x[base + j] - mz) * inv; }
  } else if (lid == 0u) {
    var r = m;
    if (m_isfinite(m)) { r = m + m_log(ssum); }
    if (mode == 2u) {
      let t = tgt[row];
      if (t < 0i || u32(t) >= n) { r = m_nan(); } else { r = r - x[base + u32(t)]; }
    }
    out[row] = r;
  }
}`;
}

function rowKernel(ctx: GpuCtx, mode: RowMode, ins: readonly KernelArg[], out: KernelArg): void {
  const x = ins[0];
  const n = x.shape[x.shape.length - 1];
  const rows = n === 0 ? 0 : prod(x.shape) / n;
  if (rows === 0) return;
  const label = mode === "lse" ? "logsumexp" : mode === "ce" ? "crossEntropy" : "softmax";
  const rx = ctx.ref(x, label);
  ctx.dispatch({
    label, key: "row", wgsl: rowWgsl,
    // softmax / logsumexp bind x again where the targets would be (never read)
    buffers: [ctx.ref(out, label), rx, mode === "ce" ? ctx.ref(ins[1], label) : rx],
    params: new ParamWords().u(rows).u(n).u(ROW_MODES.indexOf(mode)).words(),
    groups: grid(rows, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export const softmaxKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "softmax", ins, out);
export const logsumexpKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "lse", ins, out);
export const crossEntropyKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, "ce", ins, out);

// ---------- causal depthwise conv1d: x, y [B, L, C], w [C, K] ----------

const WG = 256;

/**
 * y[b,t,c] = Σ_k w[c,k] x[b, t-K+1+k, c] (forward, grad = 0) or dx[b,s,c] = Σ_k w[c,k]
 * g[b, s+K-1-k, c] (gradX, grad = 1): one thread per output element, k ascending as on the CPU.
 * params: n, L, C, K, grad.
 */
const CONV = `${header(5, [{ name: "out", type: "f32", write: true }, { name: "v", type: "f32" }, { name: "w", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let C = ${pu(2)}; let K = i32(${pu(3)}); let grad = ${pu(4)} != 0u;
  let c = i % C; let bt = i / C; let tl = bt % L;
  var s = 0.0f;
  for (var k = 0i; k < K; k++) {
    let wk = w[c * u32(K) + u32(k)];
    if (grad) {
      if (i32(tl) + K - 1i - k < i32(L)) { s += wk * v[(bt + u32(K - 1i - k)) * C + c]; }
    } else {
      if (i32(tl) - K + 1i + k >= 0i) { s += wk * v[(bt - u32(K - 1i - k)) * C + c]; }
    }
  }
  out[i] = s;
}`;

function conv(ctx: GpuCtx, grad: boolean, v: KernelArg, w: KernelArg, out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const [, L, C] = v.shape;
  const label = grad ? "conv1dCausalGradX" : "conv1dCausal";
  ctx.dispatch({
    label, key: "conv", wgsl: () => CONV,
    buffers: [ctx.ref(out, label), ctx.ref(v, label), ctx.ref(w, label)],
    params: new ParamWords().u(n).u(L).u(C).u(w.shape[1]).u(grad ? 1 : 0).words(),
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
const GRAD_W = `${header(7, [{ name: "out", type: "f32", write: true }, { name: "g", type: "f32" }, { name: "x", type: "f32" }])}
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let BL = ${pu(0)}; let L = ${pu(1)}; let C = ${pu(2)}; let K = ${pu(3)}; let cBlocks = ${pu(4)};
  let OX = ${pu(5)}; let lanes = ${pu(6)};
  if (wg >= cBlocks * K) { return; }
  let k = wg / cBlocks;
  let ox = lid % OX; let lane = lid / OX;
  let c = (wg % cBlocks) * OX + ox;
  let shift = K - 1u - k;
  var acc = 0.0f; var comp = 0.0f;
  if (c < C) {
    for (var bt = lane; bt < BL; bt += lanes) {
      if (bt % L >= shift) {
        let y = g[bt * C + c] * x[(bt - shift) * C + c] - comp;
        let t = acc + y; comp = (t - acc) - y; acc = t;
      }
    }
  }
  sh[lid] = acc;
  ${workgroupCombine((a, b) => `${a} + ${b}`)}
  if (lane == 0u && c < C) { out[c * K + k] = sh[lid]; }
}`;

export function conv1dCausalGradWKernel(ctx: GpuCtx, [g, x]: readonly KernelArg[], out: KernelArg): void {
  const [B, L, C] = g.shape;
  const K = out.shape[1];
  if (C * K === 0) return;
  let ox = 1;
  while (ox < C && ox < 64) ox *= 2;
  const cBlocks = ceilDiv(C, ox);
  ctx.dispatch({
    label: "conv1dCausalGradW", key: "convGradW", wgsl: () => GRAD_W,
    buffers: [ctx.ref(out, "conv1dCausalGradW"), ctx.ref(g, "conv1dCausalGradW"), ctx.ref(x, "conv1dCausalGradW")],
    params: new ParamWords().u(B * L).u(Math.max(1, L)).u(C).u(K).u(cBlocks).u(ox).u(WG / ox).words(),
    groups: grid(cBlocks * K, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
