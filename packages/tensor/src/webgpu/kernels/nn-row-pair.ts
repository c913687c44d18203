/**
 * The row-pair kernels: rmsNorm (with or without its gain), rmsNormGrad, rmsNormGradW, softmaxGrad
 * and maskedSoftmaxGrad (two row sums, then every element: scalar and vec4 shaders), with their
 * plans (rowPairThreads chooses the vec4 shader's threads a row).
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, type GpuCtx, type GpuLimits, type StorageDecl } from "../context.ts";
import { PlanCache } from "./plan-cache.ts";
import { cachedPlan, validAt, type RowPlan } from "./nn-row.ts";

// ---------- row pairs: softmaxGrad, rmsNorm (with or without its gain), rmsNormGrad, rmsNormGradW ----------

const PAIR_WG = 64;
/**
 * The row-pair shaders' first lines (both layouts): the buffers, the partial-sum arrays, the entry
 * point, this workgroup's row (none past the last) and the param words n, mode and eps.
 */
function rowPairPrologue(bufs: readonly StorageDecl[], T = PAIR_WG): string {
  // T threads a row: PAIR_WG / T rows a workgroup; a row past the last runs the last row's code
  // (its threads reach the barriers too) and stores nothing
  const head = T === PAIR_WG
    ? `let row = wg;
  if (row >= ${pu(0)}) { return; }
  let live = true;
  let lt = lid;
  let rr = 0u;`
    : `let rr = lid / ${T}u;
  let lt = lid % ${T}u;
  let live = wg * ${PAIR_WG / T}u + rr < ${pu(0)};
  let row = min(wg * ${PAIR_WG / T}u + rr, ${pu(0)} - 1u);`;
  return `${header(4, bufs)}
var<workgroup> shs: array<f32, ${PAIR_WG}>;
var<workgroup> sht: array<f32, ${PAIR_WG}>;
@compute @workgroup_size(${PAIR_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  ${head}
  let n = ${pu(1)}; let mode = ${pu(2)}; let eps = bitcast<f32>(${pu(3)});`;
}

/**
 * One workgroup of PAIR_WG threads per row of n: s = Σ a², t = Σ a·b (strided partial sums,
 * then lane 0 adds the lanes in order), then every element. params: rows, n, mode, eps (f32).
 * mode 0 rmsNorm (a = x): x·r; 1 rmsNormGrad (a = x, b = g): r·g − x·r³·t/n; 2 softmaxGrad
 * (a = y, b = g): y·(g − t); 4 rmsNorm with its gain (a = x, b = the gain [n]): (x·r)·b[j], rounded
 * as rmsNorm's launch then mul's; r = 1/√(s/n + eps). Only modes 1 and 2 need t (mode 4's b is
 * one row long: never read at base + j).
 * Masked (maskedSoftmaxGrad, mode 2, a = w, b = g, vld = valid, word 3 the scale instead of eps):
 * b reads as the composite's g·valid, and the out is where(valid, w·(g·valid − t), 0) · scale.
 * Gain (rmsNormGradW, mode 1, a = x, b = g, wt = the gain [n], gx a second output): b reads as
 * the composite's g·w[j] (mul's product, rounded to f32 before it is used), so out is dx =
 * rmsNormGrad(g·w, x), and gx = g·(x·r), rmsNorm's launch then mul's: both outputs in one pass.
 */
function rowPairWgsl(variant: "plain" | "masked" | "gain" = "plain"): string {
  const masked = variant === "masked", gain = variant === "gain";
  const bufs = [{ name: "out", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "b", type: "f32" }];
  const extra = masked ? [{ name: "vld", type: "f32" }] : gain ? [{ name: "wt", type: "f32" }, { name: "gx", type: "f32", write: true }] : [];
  const bAt = (i: string) => (masked ? `(b[${i}] * vld[${i}])` : gain ? `(b[${i}] * wt[j])` : `b[${i}]`);
  return `${rowPairPrologue([...bufs, ...extra])}
  let base = row * n;
  var s = 0.0f; var t = 0.0f;
  for (var j = lid; j < n; j += ${PAIR_WG}u) {
    let av = a[base + j];
    s += av * av;
    if (mode == 1u || mode == 2u) { t += av * ${bAt("base + j")}; }
  }
  shs[lid] = s; sht[lid] = t;
  workgroupBarrier();
  if (lid == 0u) {
    var ss = shs[0]; var tt = sht[0];
    for (var k = 1u; k < ${PAIR_WG}u; k++) { ss += shs[k]; tt += sht[k]; }
    shs[0] = ss; sht[0] = tt;
  }
  workgroupBarrier();
  let r = 1.0f / sqrt(shs[0] / f32(n) + eps);
  let tt = sht[0];
  let c = r * r * r * tt / f32(n);
  for (var j = lid; j < n; j += ${PAIR_WG}u) {
    let av = a[base + j];
    if (mode == 0u) { out[base + j] = av * r; }
    else if (mode == 4u) { out[base + j] = (av * r) * b[j]; }
    else if (mode == 1u) { out[base + j] = r * ${gain ? bAt("base + j") : "b[base + j]"} - av * c;${gain ? " gx[base + j] = b[base + j] * (av * r);" : ""} }
    else { ${masked
      ? `out[base + j] = select(0.0f, av * (${bAt("base + j")} - tt), ${validAt("base + j")}) * eps;`
      : "out[base + j] = av * (b[base + j] - tt);"} }
  }
}`;
}

/** The widest row (in vec4s) the vec4 row-pair shader takes: 4 vec4s a thread, held in registers. */
const PAIR_VEC_MAX = 4 * PAIR_WG;
/** Threads a row of the vec4 row-pair shader for rows of up to 4 · PAIR_NARROW vec4s. */
const PAIR_NARROW = 16;
/** `narrow` false: every row with 64 threads (the earlier layout; tests compare the two). */
export const rowPairThreads = { narrow: true };

/**
 * The row-pair shader for rows of n = 4·n4 elements, n4 ≤ U·T (U = 1 … 4), T threads a row (64, or
 * 16 for rows of up to 64 vec4s: 4 rows a workgroup): thread t of a row reads its vec4s t, t + T,
 * … once, keeps them in registers, and adds its partial sums in element order; after one barrier
 * every thread adds its row's T partials in lane order (the same sums on every thread, no second
 * barrier) and writes its vec4s. The same formulas as rowPairWgsl, element by
 * element; only the sums' order differs from it (f32 rounding). On an H200 the scalar shader, which
 * reads each row twice and has lane 0 add the partials between two barriers, ran rmsNorm of
 * [61440, 256] at ~1.5 TB/s; this one with 64 threads a row at 2.3 TB/s (54 µs), where every
 * thread's 64 partials cost more than its one vec4: 16 threads a row (rmsNormScores' layout, which
 * also computes two scorers) took 41 µs.
 */
function rowPairVecWgsl(variant: "plain" | "masked" | "gain", U: number, T = PAIR_WG): string {
  const masked = variant === "masked", gain = variant === "gain";
  const V = "vec4<f32>";
  const bufs = [{ name: "out", type: V, write: true }, { name: "a", type: V }, { name: "b", type: V }];
  const extra = masked ? [{ name: "vld", type: V }] : gain ? [{ name: "wt", type: V }, { name: "gx", type: V, write: true }] : [];
  const us = [...Array(U).keys()];
  // b as the composite reads it (see rowPairWgsl), for vec4 u
  const bAt = (u: number) => (masked ? `(b${u} * vv${u})` : gain ? `(b${u} * wt[j${u}])` : `b${u}`);
  const dot = (acc: string, x: string, y: string) => `${acc} += ${x}.x * ${y}.x; ${acc} += ${x}.y * ${y}.y; ${acc} += ${x}.z * ${y}.z; ${acc} += ${x}.w * ${y}.w;`;
  // a store only for a live row (a workgroup's rows past the last run the last row's code)
  const live = T === PAIR_WG ? "" : " && live";
  return `${rowPairPrologue([...bufs, ...extra], T)}
  let n4 = n / 4u;
  let base = row * n4;
  let needT = mode == 1u || mode == 2u;
  var s = 0.0f; var t = 0.0f;
  ${us.map((u) => `let j${u} = lt + ${u * T}u; let ok${u} = j${u} < n4; let e${u} = base + select(0u, j${u}, ok${u});
  var a${u} = ${V}(0.0f); var b${u} = ${V}(0.0f);${masked ? ` var vv${u} = ${V}(0.0f);` : ""}
  if (ok${u}) {
    a${u} = a[e${u}];
    if (needT) { b${u} = b[e${u}];${masked ? ` vv${u} = vld[e${u}];` : ""} let bb = ${bAt(u)}; ${dot("t", `a${u}`, "bb")} }
    ${dot("s", `a${u}`, `a${u}`)}
  }`).join("\n  ")}
  shs[lid] = s; sht[lid] = t;
  workgroupBarrier();
  var ss = 0.0f; var tt = 0.0f;
  for (var k = 0u; k < ${T}u; k++) { ss += shs[rr * ${T}u + k]; }
  if (needT) { for (var k = 0u; k < ${T}u; k++) { tt += sht[rr * ${T}u + k]; } }
  let r = 1.0f / sqrt(ss / f32(n) + eps);
  let c = r * r * r * tt / f32(n);
  ${us.map((u) => `if (ok${u}${live}) {
    let av = a${u};
    if (mode == 0u) { out[e${u}] = av * r; }
    else if (mode == 4u) { out[e${u}] = (av * r) * b[j${u}]; }
    else if (mode == 1u) { out[e${u}] = r * ${gain ? bAt(u) : `b${u}`} - av * c;${gain ? ` gx[e${u}] = b${u} * (av * r);` : ""} }
    else { ${masked
      ? `out[e${u}] = select(${V}(0.0f), av * (${bAt(u)} - tt), (bitcast<vec4<u32>>(vv${u}) & vec4<u32>(0x7fffffffu)) != vec4<u32>(0u)) * eps;`
      : `out[e${u}] = av * (b${u} - tt);`} }
  }`).join("\n  ")}
}`;
}

/**
 * rowPair's plans by mode (0 rmsNorm, 1 rmsNormGrad, 2 softmaxGrad, 3 maskedSoftmaxGrad, 4 rmsNorm
 * with its gain, 5 rmsNormGradW) and rowsKey; f: eps or scale. Modes 3 and 5 are other shaders
 * (their own pipeline keys) running the code of mode 2 and mode 1.
 */
const pairCaches = () => [0, 1, 2, 3, 4, 5].map(() => new PlanCache<RowPlan, number>({}));
/** The plans with rowPairThreads.narrow on and off (a benchmark or test may switch it between calls). */
const pairPlans = { narrow: pairCaches(), wide: pairCaches() };
const rowPairPlain = () => rowPairWgsl("plain");
const rowPairMasked = () => rowPairWgsl("masked");
const rowPairGain = () => rowPairWgsl("gain");

function planPair(limits: GpuLimits, mode: number, rows: number, n: number, f: number): RowPlan {
  const variant = mode === 3 ? "masked" : mode === 5 ? "gain" : "plain";
  const name = mode === 3 ? "rowpair:masked" : mode === 5 ? "rowpair:gain" : "rowpair";
  // rows of whole vec4s up to PAIR_VEC_MAX of them: the vec4 shader
  const vec = n % 4 === 0 && n > 0 && n / 4 <= PAIR_VEC_MAX;
  // rows of up to 64 vec4s: 16 threads a row, 4 rows a workgroup (rowPairThreads)
  const T = vec && n / 4 <= 4 * PAIR_NARROW && rowPairThreads.narrow ? PAIR_NARROW : PAIR_WG;
  const U = vec ? Math.ceil(n / 4 / T) : 0;
  return {
    key: U ? `${name}:v4x${U}${T === PAIR_WG ? "" : `:t${T}`}` : name,
    wgsl: U ? () => rowPairVecWgsl(variant, U, T) : mode === 3 ? rowPairMasked : mode === 5 ? rowPairGain : rowPairPlain,
    params: new ParamWords().u(rows).u(n).u(mode === 3 ? 2 : mode === 5 ? 1 : mode).f(f).words(),
    groups: grid(ceilDiv(rows, PAIR_WG / T), limits.maxComputeWorkgroupsPerDimension), f,
  };
}

/** The cached row-pair plan of mode `mode` (see cachedPlan). */
const pairPlan = (ctx: GpuCtx, mode: number, rows: number, n: number, f: number): RowPlan =>
  cachedPlan(ctx, rowPairThreads.narrow ? pairPlans.narrow : pairPlans.wide, planPair, mode, rows, n, f);

/**
 * One row-pair launch of mode `mode` over the rows of `rowsOf` (its last axis is a row), binding
 * `bind` in order (the shader's buffers: out, a, b, then the mode's extras); f: eps or scale.
 */
function pairLaunch(ctx: GpuCtx, label: string, mode: number, rowsOf: KernelArg, bind: readonly KernelArg[], f: number): void {
  const n = rowsOf.shape[rowsOf.shape.length - 1];
  const rows = n === 0 ? 0 : prod(rowsOf.shape) / n;
  if (rows === 0) return;
  const plan = pairPlan(ctx, mode, rows, n, f);
  ctx.dispatch({ label, key: plan.key, wgsl: plan.wgsl, buffers: bind.map((a) => ctx.ref(a, label)), params: plan.params, groups: plan.groups });
}

const rowPair = (ctx: GpuCtx, label: string, mode: number, a: KernelArg, b: KernelArg, out: KernelArg, eps: number): void => pairLaunch(ctx, label, mode, a, [out, a, b], eps);

/** rmsNorm, inputs [x] (mode 0, x bound again as b, never read) or [x, gain] (mode 4). */
export const rmsNormKernel = (ctx: GpuCtx, [x, w]: readonly KernelArg[], out: KernelArg, p: PrimParams["rmsNorm"]) =>
  w === undefined ? rowPair(ctx, "rmsNorm", 0, x, x, out, p.eps) : rowPair(ctx, "rmsNorm", 4, x, w, out, p.eps);
export const rmsNormGradKernel = (ctx: GpuCtx, [g, x]: readonly KernelArg[], out: KernelArg, p: PrimParams["rmsNormGrad"]) => rowPair(ctx, "rmsNormGrad", 1, x, g, out, p.eps);
export const softmaxGradKernel = (ctx: GpuCtx, [g, y]: readonly KernelArg[], out: KernelArg) => rowPair(ctx, "softmaxGrad", 2, y, g, out, 0);

/** rmsNormGradW (Backend.runMulti), inputs [g, x, w], outputs [dx, gxhat]: one workgroup a row (mode 5, the gain shader). */
export function rmsNormGradWKernel(ctx: GpuCtx, [g, x, w]: readonly KernelArg[], [dx, gx]: readonly KernelArg[], p: MultiPrimParams["rmsNormGradW"]): void {
  pairLaunch(ctx, "rmsNormGradW", 5, x, [dx, x, g, w, gx], p.eps);
}

/** maskedSoftmaxGrad, inputs [g, w, valid]: softmaxGrad's row pass with the composite's mul, where and mul around it. */
export function maskedSoftmaxGradKernel(ctx: GpuCtx, [g, w, valid]: readonly KernelArg[], out: KernelArg, p: PrimParams["maskedSoftmaxGrad"]): void {
  pairLaunch(ctx, "maskedSoftmaxGrad", 3, w, [out, w, g, valid], p.scale);
}
