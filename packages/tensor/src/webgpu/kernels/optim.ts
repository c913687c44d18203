/**
 * The fused AdamW parts (PrimParams["adamw"]): one elementwise pass each instead of the unfused
 * chain's twelve launches per parameter (a training step of the small model launched about
 * 1,200 optimizer kernels). Same op order as the CPU kernel; f32 arithmetic throughout.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
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

export function adamwKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, p: PrimParams["adamw"]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const refs = ins.map((t) => ctx.ref(t, "adamw"));
  const scaled = p.part !== "p" && ins.length === 3;
  while (refs.length < 3) refs.push(refs[0]); // unused bindings of the two-input parts
  ctx.dispatch({
    label: "adamw", key: "adamw", wgsl: () => ADAMW,
    buffers: [ctx.ref(out, "adamw"), ...refs],
    params: new ParamWords().u(n).u(p.part === "m" ? 0 : p.part === "v" ? 1 : 2).u(p.decay ? 1 : 0).f(p.a).f(p.b).f(p.c).f(p.d).u(scaled ? 1 : 0).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
