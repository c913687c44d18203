/**
 * The causal depthwise conv1d, x, y [B, L, C], w [C, K], with its two gradient kernels (see
 * convTuning: "window" kernels that keep the last K inputs of a channel in registers, the weight
 * gradient split over blocks of steps with a fixed-order second pass).
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, workgroupCombine, type GpuCtx } from "../context.ts";
import { reduceGroups } from "./reduce.ts";
import { unaryExpr } from "./elementwise.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const WG = 256;

/** conv1dCausalSilu's store: silu(s + bias) as the add and the unary kernel write it. */
const CONV_ACT_STORE = (dst: string, bias: string) => `let z = s + ${bias}; ${dst} = ${unaryExpr("silu", "z")};`;

/**
 * Knobs of the causal conv kernels (benchmarks and tests; the defaults are the library's
 * choice).
 */
export const convTuning = {
  /**
   * "window" (default): each thread walks T consecutive steps of one channel keeping the last
   * K inputs in registers (one load per step instead of K, index arithmetic once per thread),
   * and the weight gradient is split over blocks of steps with a fixed-order second pass.
   * "direct": the first kernels (one thread per output; one workgroup per 64 weights summing
   * all B·L steps: 1.9 ms a dispatch at [8, 2048, 512], K 4, in a training step's profile on
   * an H200), kept for comparison and for K > MAX_TAPS.
   */
  algo: "window" as "window" | "direct",
  /** Steps per thread of the forward / gradX kernels. */
  rowsPerThread: 8,
  /** Pass 1 of the weight gradient doubles its steps per thread (8 to 64) until at most this many workgroups. */
  gradWTargetWorkgroups: 1024,
};

/** The window kernels hold at most this many taps in registers (wider convs run "direct"). */
export const MAX_TAPS = 8;
const TAPS = Array.from({ length: MAX_TAPS }, (_, j) => j);

/**
 * The window kernels' work split: a workgroup takes CW adjacent channels (CW a power of two up
 * to 64: each warp reads whole cache lines along C) times RL = 256 / CW runs of T consecutive
 * steps of one sequence; workgroups are ordered (b, step block, channel block).
 */
interface ConvBlocks {
  CW: number;
  RL: number;
  cBlocks: number;
  tBlocks: number;
  wgs: number;
}

function convBlocks(B: number, L: number, C: number, T: number): ConvBlocks {
  let CW = 1;
  while (CW < C && CW < 64) CW *= 2;
  const RL = WG / CW;
  const cBlocks = ceilDiv(C, CW), tBlocks = ceilDiv(L, RL * T);
  return { CW, RL, cBlocks, tBlocks, wgs: B * tBlocks * cBlocks };
}

/** params 0..7: B, L, C, K, cBlocks, tBlocks, CW, T (then one word per kernel). */
function convParams(B: number, L: number, C: number, K: number, b: ConvBlocks, T: number): ParamWords {
  return new ParamWords().u(B).u(L).u(C).u(K).u(b.cBlocks).u(b.tBlocks).u(b.CW).u(T);
}

/** WGSL shared by the window kernels: this thread's channel c, steps [t0, t1), `base` of (b, 0, c). */
const CONV_THREAD = `
  let L = ${pu(1)}; let C = ${pu(2)}; let K = ${pu(3)}; let cBlocks = ${pu(4)}; let tBlocks = ${pu(5)};
  let CW = ${pu(6)}; let T = ${pu(7)};
  if (wg >= ${pu(0)} * tBlocks * cBlocks) { return; }
  let cb = wg % cBlocks; let bt = wg / cBlocks; let tb = bt % tBlocks; let b = bt / tBlocks;
  let ox = lid % CW; let lane = lid / CW; let RL = ${WG}u / CW;
  let c = cb * CW + ox;
  let t0 = (tb * RL + lane) * T;
  let t1 = min(t0 + T, L);
  let base = b * L * C + c;`;

/**
 * Forward (dir 0): y[t] = Σ_j w[c, K−1−j] x[t−j]; gradX (dir 1): dx[s] = Σ_j w[c, K−1−j] g[s+j]
 * (the same sums as the CPU's, j = K−1−k, added in the CPU's order k ascending). The thread
 * walks its steps forward (or backward for gradX) with the window v0 (this step) … v7 in
 * registers. params: convParams, dir. `pre` (forward only): the K − 1 inputs before the start are
 * pre[b, K − 1 − j, c] for x[b, −j, c] (a binding [B, K − 1, C]) instead of 0.
 */
function convWinWgsl(pre = false, act = false): string {
  const taps = (f: (j: number) => string) => TAPS.map(f).join("\n  ");
  const bufs = [{ name: "out", type: "f32", write: true }, { name: "v", type: "f32" }, { name: "w", type: "f32" }, ...(pre ? [{ name: "pre", type: "f32" }] : []), ...(act ? [{ name: "bias", type: "f32" }] : [])];
  // the window's first values before t0: x[t0 − 1 − j], from the prefix where that is before the start
  const before = (j: number) => pre
    ? `else if (t0 > ${j}u) { v${j} = v[base + (t0 - ${j + 1}u) * C]; } else { v${j} = pre[(b * (K - 1u) + K - ${j + 2}u + t0) * C + c]; }`
    : `else if (t0 > ${j}u) { v${j} = v[base + (t0 - ${j + 1}u) * C]; }`;
  return `${header(9, bufs)}
${act ? WGSL_MATH : ""}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}${CONV_THREAD}
  if (c >= C || t0 >= L) { return; }
  let back = ${pu(8)} != 0u;${act ? "\n  let bc = bias[c];" : ""}
  // taps newest first (taps j >= K are never added)
  ${taps((j) => `var w${j} = 0.0f; if (K > ${j}u) { w${j} = w[c * K + K - 1u - ${j}u]; }`)}
  // the window before the first step (the step before t0, or after t1 − 1 for gradX), shifted
  // on entering each step; inputs outside the sequence are 0 (causal padding)
  ${taps((j) => j === MAX_TAPS - 1 ? `var v${j} = 0.0f;` : `var v${j} = 0.0f;
  if (K > ${j + 1}u) {
    if (back) { if (t1 + ${j}u < L) { v${j} = v[base + (t1 + ${j}u) * C]; } }
    ${before(j)}
  }`)}
  for (var i = 0u; i < t1 - t0; i++) {
    let t = select(t0 + i, t1 - 1u - i, back);
    ${TAPS.slice(1).reverse().map((j) => `v${j} = v${j - 1};`).join(" ")}
    v0 = v[base + t * C];
    var s = 0.0f;
    // a tap outside the sequence is skipped, as on the CPU (0 · Inf would be NaN)
    ${TAPS.slice(1).reverse().map((j) => `if (K > ${j}u && ${pre ? "true" : `select(t >= ${j}u, t + ${j}u < L, back)`}) { s += w${j} * v${j}; }`).join("\n    ")}
    s += w0 * v0;
    ${act ? CONV_ACT_STORE("out[base + t * C]", "bc") : "out[base + t * C] = s;"}
  }
}`;
}

/**
 * Weight gradient, pass 1: each thread sums g[t]·x[t−j] over its T steps for every tap j (x's
 * window in registers), the RL runs of a workgroup are combined in workgroup memory in a fixed
 * order, and the workgroup writes its block's partial sums to part[s, c, k] (s = b·tBlocks +
 * step block). Pass 2 (reduceGroups) sums the S blocks in order: deterministic.
 * params: convParams.
 */
function gradWWinWgsl(): string {
  const taps = (f: (j: number) => string) => TAPS.map(f).join("\n  ");
  return `${header(8, [{ name: "part", type: "f32", write: true }, { name: "g", type: "f32" }, { name: "x", type: "f32" }])}
var<workgroup> sh: array<f32, ${WG * MAX_TAPS}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}${CONV_THREAD}
  ${taps((j) => `var a${j} = 0.0f;`)}
  if (c < C && t0 < L) {
    // x's window before the first step (shifted on entering each step); 0 before the sequence
    ${taps((j) => j === MAX_TAPS - 1 ? `var x${j} = 0.0f;` : `var x${j} = 0.0f; if (K > ${j + 1}u && t0 > ${j}u) { x${j} = x[base + (t0 - ${j + 1}u) * C]; }`)}
    for (var t = t0; t < t1; t++) {
      ${TAPS.slice(1).reverse().map((j) => `x${j} = x${j - 1};`).join(" ")}
      x0 = x[base + t * C];
      let gv = g[base + t * C];
      a0 += gv * x0;
      ${TAPS.slice(1).map((j) => `if (K > ${j}u && t >= ${j}u) { a${j} += gv * x${j}; }`).join("\n      ")}
    }
  }
  // sh[j·256 + lane·CW + ox]: tap j of this thread; lanes 16m add their 15 neighbours, then lane 0 the groups
  ${taps((j) => `sh[${j * WG}u + lid] = a${j};`)}
  workgroupBarrier();
  if (RL > 16u) {
    if (lane % 16u == 0u) {
      for (var j = 0u; j < K; j++) {
        var s = sh[j * ${WG}u + lid];
        for (var q = 1u; q < 16u; q++) { s += sh[j * ${WG}u + lid + q * CW]; }
        sh[j * ${WG}u + lid] = s;
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && c < C) {
    let st = select(1u, 16u, RL > 16u);
    let s = b * tBlocks + tb;
    for (var j = 0u; j < K; j++) {
      var acc = sh[j * ${WG}u + ox];
      for (var q = st; q < RL; q += st) { acc += sh[j * ${WG}u + q * CW + ox]; }
      part[(s * C + c) * K + K - 1u - j] = acc;
    }
  }
}`;
}

function gradWWindow(ctx: GpuCtx, g: KernelArg, x: KernelArg, out: KernelArg): void {
  const [B, L, C] = g.shape;
  const K = out.shape[1];
  const label = "conv1dCausalGradW";
  let T = 8;
  let b = convBlocks(B, L, C, T);
  while (T < 64 && b.wgs > convTuning.gradWTargetWorkgroups) b = convBlocks(B, L, C, (T *= 2));
  const S = B * b.tBlocks;
  const ro = ctx.ref(out, label);
  const part = S > 1 ? ctx.temp(S * C * K * 4) : ro;
  ctx.dispatch({
    label, key: "convGradW:win", wgsl: gradWWinWgsl,
    buffers: [part, ctx.ref(g, label), ctx.ref(x, label)],
    params: convParams(B, L, C, K, b, T).words(),
    groups: grid(b.wgs, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
  if (S > 1) {
    reduceGroups(ctx, "sum", part, ro, [{ size: S, stride: C * K, reduced: true }, { size: C * K, stride: 1, reduced: false }]);
    ctx.releaseTemp(part);
  }
}

/**
 * The "direct" forward / gradX (convTuning.algo; K > MAX_TAPS).
 * y[b,t,c] = Σ_k w[c,k] x[b, t-K+1+k, c] (forward, grad = 0) or dx[b,s,c] = Σ_k w[c,k]
 * g[b, s+K-1-k, c] (gradX, grad = 1): one thread per output element, k ascending as on the CPU.
 * params: n, L, C, K, grad. `pre` (forward): the inputs before the start from pre [B, K − 1, C].
 */
const convDirectWgsl = (pre: boolean, act = false) => `${header(5, [{ name: "out", type: "f32", write: true }, { name: "v", type: "f32" }, { name: "w", type: "f32" }, ...(pre ? [{ name: "pre", type: "f32" }] : []), ...(act ? [{ name: "bias", type: "f32" }] : [])])}
${act ? WGSL_MATH : ""}
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
      if (i32(tl) - K + 1i + k >= 0i) { s += wk * v[(bt - u32(K - 1i - k)) * C + c]; }${pre ? `
      else { s += wk * pre[((bt / L) * u32(K - 1i) + u32(i32(tl) + k)) * C + c]; }` : ""}
    }
  }
  ${act ? CONV_ACT_STORE("out[i]", "bias[c]") : "out[i] = s;"}
}`;

function conv(ctx: GpuCtx, grad: boolean, v: KernelArg, w: KernelArg, out: KernelArg, prefix?: KernelArg, bias?: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const [B, L, C] = v.shape;
  const K = w.shape[1];
  const act = bias !== undefined;
  const label = grad ? "conv1dCausalGradX" : act ? "conv1dCausalSilu" : "conv1dCausal";
  const pre = prefix !== undefined && K > 1;
  const buffers = [ctx.ref(out, label), ctx.ref(v, label), ctx.ref(w, label), ...(pre ? [ctx.ref(prefix, label)] : []), ...(act ? [ctx.ref(bias, label)] : [])];
  const suffix = `${pre ? ":pre" : ""}${act ? ":silu" : ""}`;
  if (convTuning.algo === "window" && K <= MAX_TAPS) {
    const T = Math.max(1, Math.floor(convTuning.rowsPerThread));
    const b = convBlocks(B, L, C, T);
    ctx.dispatch({
      label, key: `conv:win${suffix}`, wgsl: () => convWinWgsl(pre, act),
      buffers,
      params: convParams(B, L, C, K, b, T).u(grad ? 1 : 0).words(),
      groups: grid(b.wgs, ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    return;
  }
  ctx.dispatch({
    label, key: `conv${suffix}`, wgsl: () => convDirectWgsl(pre, act),
    buffers,
    params: new ParamWords().u(n).u(L).u(C).u(w.shape[1]).u(grad ? 1 : 0).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export const conv1dCausalKernel = (ctx: GpuCtx, [x, w, prefix]: readonly KernelArg[], out: KernelArg) => conv(ctx, false, x, w, out, prefix);
/** conv1dCausalSilu: inputs [x, w, b] or [x, w, b, prefix]; the conv kernels with the bias and silu before the store. */
export const conv1dCausalSiluKernel = (ctx: GpuCtx, [x, w, b, prefix]: readonly KernelArg[], out: KernelArg) => conv(ctx, false, x, w, out, prefix, b);
export const conv1dCausalGradXKernel = (ctx: GpuCtx, [g, w]: readonly KernelArg[], out: KernelArg) => conv(ctx, true, g, w, out);

/**
 * The "direct" weight gradient (convTuning.algo; K > MAX_TAPS).
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
  if (convTuning.algo === "window" && K <= MAX_TAPS && B * L > 0) {
    gradWWindow(ctx, g, x, out);
    return;
  }
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
