/**
 * The fused AdamW parts (PrimParams["adamw"]): one elementwise pass each instead of the unfused
 * chain's twelve launches per parameter (a training step of the small model launched about
 * 1,200 optimizer kernels). Same op order as the CPU kernel; f32 arithmetic throughout.
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { type BufRef, ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";

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

/** Parameters a group launch takes: its table (a vec4 each) after the 5-vec4 header fills 1 KiB of params. */
const GROUP_MAX = 59;
const GROUP_HEAD = 5;

// header: [count, scaled, -, -], [a1, b1, a2, b2], [decay, sqrtBc2, eps, stepSize], the element
// bases of p, m, v, po / mo, vo in their bindings; then per parameter [first workgroup, offset
// from the bases, offset in g, size | decays << 31]
const ADAMW_GROUP = `${header(4 * (GROUP_HEAD + GROUP_MAX), [
  { name: "po", type: "f32", write: true }, { name: "mo", type: "f32", write: true }, { name: "vo", type: "f32", write: true },
  { name: "p", type: "f32" }, { name: "m", type: "f32" }, { name: "v", type: "f32" }, { name: "g", type: "f32" }, { name: "s", type: "f32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  // this workgroup's parameter: the last whose first workgroup is at or before it (every
  // parameter starts a workgroup of its own, so a workgroup never spans two)
  var lo = 0u;
  var hi = prm.v[0].x - 1u;
  while (lo < hi) {
    let mid = (lo + hi + 1u) / 2u;
    if (prm.v[${GROUP_HEAD}u + mid].x <= wg) { lo = mid; } else { hi = mid - 1u; }
  }
  let t = prm.v[${GROUP_HEAD}u + lo];
  let e = (wg - t.x) * ${WG}u + lid;
  if (e >= (t.w & 0x7fffffffu)) { return; }
  let h = prm.v[1];
  let k = prm.v[2];
  let b0 = prm.v[3];
  let i = t.y + e;
  var gi = g[t.z + e];
  if (prm.v[0].y == 1u) { gi = gi * s[0]; }
  let m1 = m[b0.y + i] * bitcast<f32>(h.x) + gi * bitcast<f32>(h.y);
  let v1 = v[b0.z + i] * bitcast<f32>(h.z) + (gi * gi) * bitcast<f32>(h.w);
  mo[prm.v[4].x + i] = m1;
  vo[prm.v[4].y + i] = v1;
  var p0 = p[b0.x + i];
  if ((t.w >> 31u) == 1u) { p0 = p0 * bitcast<f32>(k.x); }
  let denom = sqrt(v1) / bitcast<f32>(k.y) + bitcast<f32>(k.z);
  po[b0.w + i] = p0 - (m1 / denom) * bitcast<f32>(k.w);
}`;

const adamwGroupGen = () => ADAMW_GROUP;

/**
 * AdamW over many parameters (MultiPrimParams["adamwGroup"]): adamwStep's arithmetic, one launch
 * for each run of parameters whose p, m, v, p', m', v' are views of the same six slabs at the same
 * relative offsets (Backend.allocGroup; at most GROUP_MAX a launch), else a launch per parameter.
 * The gradients come concatenated in one buffer, so a launch binds 8 buffers however many
 * parameters it updates: a training step of the small model goes from 190 launches to 4.
 */
export function adamwGroupKernel(ctx: GpuCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], q: MultiPrimParams["adamwGroup"]): void {
  const n = q.decays.length;
  if (outs.length !== 3 * n || (ins.length !== 3 * n + 1 && ins.length !== 3 * n + 2)) {
    throw new Error(`webgpu.adamwGroup: ${n} parameters need 3n + 1 (or + 2) inputs and 3n outputs, got ${ins.length} and ${outs.length}`);
  }
  const scaled = ins.length === 3 * n + 2;
  const g = ctx.ref(ins[3 * n], "adamwGroup");
  const s = scaled ? ctx.ref(ins[3 * n + 1], "adamwGroup") : g;
  const head = new ParamWords().u(0).u(scaled ? 1 : 0).u(0).u(0).f(q.a1).f(q.b1).f(q.a2).f(q.b2).f(q.decay).f(q.sqrtBc2).f(q.eps).f(q.stepSize).words();
  let refs: BufRef[] = [];
  let bases: number[] = [];
  let table: number[] = [];
  let wgs = 0;
  const flush = () => {
    if (table.length === 0) return;
    const words = new Uint32Array(4 * (GROUP_HEAD + GROUP_MAX));
    words.set(head);
    words[0] = table.length / 4;
    words.set(bases, 12);
    words.set(table, 4 * GROUP_HEAD);
    ctx.dispatch({
      label: "adamwGroup", key: "adamwGroup", wgsl: adamwGroupGen,
      buffers: [refs[3], refs[4], refs[5], refs[0], refs[1], refs[2], g, s],
      params: words,
      groups: grid(wgs, ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    table = [];
    wgs = 0;
  };
  let gOff = 0;
  for (let i = 0; i < n; i++) {
    const size = prod(outs[i].shape);
    if (size === 0) continue;
    // roles in the order p, m, v, p', m', v'
    const vs = [ins[i], ins[n + i], ins[2 * n + i], outs[i], outs[n + i], outs[2 * n + i]].map((a) => ctx.view(a, "adamwGroup"));
    const rel = vs[0].base - bases[0];
    const joins = table.length > 0 && table.length < 4 * GROUP_MAX &&
      vs.every((x, r) => x.ref.buf === refs[r].buf && x.ref.size === refs[r].size && x.base - bases[r] === rel);
    if (!joins) {
      flush();
      refs = vs.map((x) => x.ref);
      bases = vs.map((x) => x.base);
    }
    if (size > 0x7fffffff || gOff + size > 0xffffffff) throw new RangeError(`webgpu.adamwGroup: parameter ${i} (${size} elements) is too large for 32-bit indexing`);
    table.push(wgs, joins ? rel : 0, gOff, (size | 0) + (q.decays[i] ? 0x80000000 : 0));
    wgs += ceilDiv(size, WG);
    gOff += size;
  }
  flush();
}
