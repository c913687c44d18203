/**
 * The fused AdamW parts (PrimParams["adamw"]): one elementwise pass each instead of the unfused
 * chain's twelve launches per parameter (a training step of the small model launched about
 * 1,200 optimizer kernels). Same op order as the CPU kernel; f32 arithmetic throughout.
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";

const WG = 256;
const pf = (i: number) => `bitcast<f32>(${pu(i)})`;

// params: n, part (0 m, 1 v, 2 p), decay, a, b, c, d, scaled (m, v: x2[0] scales g)
const ADAMW = `${header(8, [{ name: "out", type: "f32", write: true }, { name: "x0", type: "f32" }, { name: "x1", type: "f32" }, { name: "x2", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let part = ${pu(1)};
  let a = ${pf(3)}; let b = ${pf(4)}; let c = ${pf(5)}; let d = ${pf(6)};
  if (part == 0u) {
    var g = x1[i];
    if (${pu(7)} == 1u) { g = g * x2[0]; }
    out[i] = x0[i] * a + g * b;
  } else if (part == 1u) {
    var g = x1[i];
    if (${pu(7)} == 1u) { g = g * x2[0]; }
    out[i] = x0[i] * a + (g * g) * b;
  } else {
    var p0 = x0[i];
    if (${pu(2)} == 1u) { p0 = p0 * a; }
    let denom = sqrt(x2[i]) / b + c;
    out[i] = p0 - (x1[i] / denom) * d;
  }
}`;

const adamwGen = () => ADAMW;

export function adamwKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, p: PrimParams["adamw"]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  if (ins.length < 2 || ins.length > 3) throw new Error(`webgpu.adamw: expected 2 or 3 inputs, got ${ins.length}`);
  const scaled = p.part !== "p" && ins.length === 3;
  // out, then the inputs (2 or 3); the two-input parts bind x0 again as the unused third (no map / spread)
  const x0 = ctx.ref(ins[0], "adamw"), x1 = ctx.ref(ins[1], "adamw");
  const x2 = ins.length > 2 ? ctx.ref(ins[2], "adamw") : x0;
  const buffers = [ctx.ref(out, "adamw"), x0, x1, x2];
  ctx.dispatch({
    label: "adamw", key: "adamw", wgsl: adamwGen,
    buffers,
    params: new ParamWords().u(n).u(p.part === "m" ? 0 : p.part === "v" ? 1 : 2).u(p.decay ? 1 : 0).f(p.a).f(p.b).f(p.c).f(p.d).u(scaled ? 1 : 0).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

// params: n, decays, scaled, then f32: a1, b1, a2, b2, decay, sqrtBc2, eps, stepSize
const ADAMW_STEP = `${header(11, [
  { name: "po", type: "f32", write: true }, { name: "mo", type: "f32", write: true }, { name: "vo", type: "f32", write: true },
  { name: "p", type: "f32" }, { name: "g", type: "f32" }, { name: "m", type: "f32" }, { name: "v", type: "f32" }, { name: "s", type: "f32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  var gi = g[i];
  if (${pu(2)} == 1u) { gi = gi * s[0]; }
  let m1 = m[i] * ${pf(3)} + gi * ${pf(4)};
  let v1 = v[i] * ${pf(5)} + (gi * gi) * ${pf(6)};
  mo[i] = m1;
  vo[i] = v1;
  var p0 = p[i];
  if (${pu(1)} == 1u) { p0 = p0 * ${pf(7)}; }
  let denom = sqrt(v1) / ${pf(8)} + ${pf(9)};
  po[i] = p0 - (m1 / denom) * ${pf(10)};
}`;

const adamwStepGen = () => ADAMW_STEP;

/**
 * A whole AdamW step of one parameter in one dispatch (MultiPrimParams["adamwStep"]): the three
 * "adamw" parts' arithmetic in the same order, m' and v' kept in registers for p'. Binds 8
 * storage buffers (WebGPU's default limit); without a gradient scale, g is bound again in its place.
 */
export function adamwStepKernel(ctx: GpuCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], q: MultiPrimParams["adamwStep"]): void {
  const n = prod(outs[0].shape);
  if (n === 0) return;
  if (ins.length < 4 || ins.length > 5 || outs.length !== 3) {
    throw new Error(`webgpu.adamwStep: expected inputs p, g, m, v (, scale) and outputs p', m', v'; got ${ins.length} inputs and ${outs.length} outputs`);
  }
  const scaled = ins.length > 4;
  // the three outs, then p, g, m, v and the scale (without one, g again in its place): no map / spread
  const p = ctx.ref(ins[0], "adamwStep"), g = ctx.ref(ins[1], "adamwStep"), m = ctx.ref(ins[2], "adamwStep"), v = ctx.ref(ins[3], "adamwStep");
  const s = scaled ? ctx.ref(ins[4], "adamwStep") : g;
  const buffers = [ctx.ref(outs[0], "adamwStep"), ctx.ref(outs[1], "adamwStep"), ctx.ref(outs[2], "adamwStep"), p, g, m, v, s];
  ctx.dispatch({
    label: "adamwStep", key: "adamwStep", wgsl: adamwStepGen,
    buffers,
    params: new ParamWords().u(n).u(q.decays ? 1 : 0).u(scaled ? 1 : 0).f(q.a1).f(q.b1).f(q.a2).f(q.b2).f(q.decay).f(q.sqrtBc2).f(q.eps).f(q.stepSize).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
