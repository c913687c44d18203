/**
 * The row kernels: softmax / logsumexp / crossEntropy over the last axis, and maskedSoftmax (a
 * workgroup a row with workgroup trees for the max and the sum, or a thread a row for short rows),
 * with the row plans and their cache (RowPlan, cachedPlan) that the row-pair kernels in
 * nn-row-pair.ts share.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, workgroupCombine, type GpuCtx, type GpuLimits } from "../context.ts";
import { PlanCache } from "./plan-cache.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const ROW_WG = 256;

// What the two row kernels (a workgroup a row, a thread a row) share: the bindings, the max step
// (softmax ignores NaN in the max, as the CPU's x > m; logsumexp propagates it) and the one
// value a logsumexp / crossEntropy row writes from its max m and Σ exp(x − m).
const ROW_HEAD = `${header(3, [{ name: "out", type: "f32", write: true }, { name: "x", type: "f32" }, { name: "tgt", type: "i32" }])}${WGSL_MATH}`;
// maskedSoftmax's variant (mode 0 only): valid in the third binding, scale in param word 3.
const ROW_HEAD_MASKED = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "x", type: "f32" }, { name: "vld", type: "f32" }])}${WGSL_MATH}`;
/** valid[i] ≠ 0 as the where kernel tests it: on the bits (NaN counts, a subnormal is not flushed). */
export const validAt = (i: string) => `((bitcast<u32>(vld[${i}]) & 0x7fffffffu) != 0u)`;
/**
 * The row's element i as the softmax sees it. Masked: the composite's where(valid, x · scale,
 * −1e9), each product rounded to f32 as its mul kernel rounds it. The select sits between the
 * product and the exp's subtraction (no multiply feeds a subtraction directly: nothing
 * for a shader compiler to contract into a fused multiply-add).
 */
const rowIn = (masked: boolean, i: string) => (masked ? `select(-1e9f, x[${i}] * bitcast<f32>(${pu(3)}), ${validAt(i)})` : `x[${i}]`);
/** The softmax output y of element i as stored: masked multiplies it by valid (the composite's mul). */
const rowOut = (masked: boolean, i: string, y: string) => (masked ? `out[${i}] = (${y}) * vld[${i}];` : `out[${i}] = ${y};`);
const rowMaxStep = (a: string, b: string) => `select(${a}, ${b}, ${b} > ${a} || (mode != 0u && m_isnan(${b})))`;
/** One max step over element base + j (masked: the logit bound once, the step reads it thrice). */
const rowMaxBody = (masked: boolean, acc: string) =>
  masked ? `let z = ${rowIn(true, "base + j")}; ${acc} = ${rowMaxStep(acc, "z")};` : `${acc} = ${rowMaxStep(acc, "x[base + j]")};`;
const ROW_LSE_OUT = `var r = m;
    if (m_isfinite(m)) { r = m + m_log(ssum); }
    if (mode == 2u) {
      let t = tgt[row];
      if (t < 0i || u32(t) >= n) { r = m_nan(); } else { r = r - x[base + u32(t)]; }
    }
    out[row] = r;`;

/**
 * params: rows, n, mode (0 softmax, 1 logsumexp, 2 crossEntropy). One shader for the three
 * (a uniform branch), the workgroup trees as loops: fewer, smaller pipelines.
 */
function rowWgsl(masked = false): string {
  const wg = ROW_WG;
  const tree = (combine: (a: string, b: string) => string) => workgroupCombine(combine);
  const maxStep = rowMaxStep;
  return `${masked ? ROW_HEAD_MASKED : ROW_HEAD}
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
  for (var j = lid; j < n; j += ${wg}u) { ${rowMaxBody(masked, "mx")} }
  sh[lid] = mx;
  ${tree(maxStep)}
  let m = sh[0];
  workgroupBarrier();
  var mz = m;
  if (!m_isfinite(m)) { mz = 0.0f; }
  var s = 0.0f;
  for (var j = lid; j < n; j += ${wg}u) { s += m_exp(${rowIn(masked, "base + j")} - mz); }
  sh[lid] = s;
  ${tree((a, b) => `${a} + ${b}`)}
  let ssum = sh[0];
  if (mode == 0u) {
    let inv = 1.0f / ssum;
    for (var j = lid; j < n; j += ${wg}u) { ${rowOut(masked, "base + j", `m_exp(${rowIn(masked, "base + j")} - mz) * inv`)} }
  }${masked ? "" : ` else if (lid == 0u) {
    ${ROW_LSE_OUT}
  }`}
}`;
}

/**
 * Rows of at most SMALL_ROW elements get a thread each instead of a workgroup of ROW_WG threads:
 * MemMamba's attention over its 50-slot pool left 206 of 256 threads idle and paid two 8-level
 * workgroup trees per row (0.46 ms a softmax of 16K rows on an H200; its cross-layer read over
 * two pools, 100 slots, the same). Same rules as rowWgsl (NaN, ±∞, targets); the sums run left
 * to right in the thread instead of as a tree.
 */
const SMALL_ROW = 128;
const SMALL_WG = 64;
function rowSmallWgsl(masked = false): string {
  return `${masked ? ROW_HEAD_MASKED : ROW_HEAD}
@compute @workgroup_size(${SMALL_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let row = wg * ${SMALL_WG}u + lid;
  let n = ${pu(1)};
  let mode = ${pu(2)};
  if (row >= ${pu(0)}) { return; }
  let base = row * n;
  var m = -m_inf();
  for (var j = 0u; j < n; j++) { ${rowMaxBody(masked, "m")} }
  var mz = m;
  if (!m_isfinite(m)) { mz = 0.0f; }
  var ssum = 0.0f;
  for (var j = 0u; j < n; j++) { ssum += m_exp(${rowIn(masked, "base + j")} - mz); }
  if (mode == 0u) {
    let inv = 1.0f / ssum;
    for (var j = 0u; j < n; j++) { ${rowOut(masked, "base + j", `m_exp(${rowIn(masked, "base + j")} - mz) * inv`)} }
  }${masked ? "" : ` else {
    ${ROW_LSE_OUT}
  }`}
}`;
}

/** Row kernels' choice (tests force each path): "auto" (a thread per row up to SMALL_ROW = 128), "workgroup" or "thread". */
export const rowTuning = { algo: "auto" as "auto" | "workgroup" | "thread" };

/** What a row launch needs besides its buffers, per (rows, n) and mode (and scale / eps where one is a param). */
export interface RowPlan {
  readonly key: string;
  readonly wgsl: () => string;
  readonly params: Uint32Array;
  readonly groups: readonly [number, number, number];
  /** The f32 param (maskedSoftmax's scale, rowPair's eps) the words hold: another value is another plan. */
  readonly f: number;
}

/**
 * A numeric cache key for (rows, n): exact below 2^20 columns (2^52 in all); -1 (not cached,
 * planned on every call) beyond, where a row kernel's launch is no longer small.
 */
function rowsKey(rows: number, n: number): number {
  return n < 1048576 && rows < 4294967296 ? n * 4294967296 + rows : -1;
}

/** Row plans of the four row kernels (softmax, logsumexp, crossEntropy, maskedSoftmax), by rowsKey. */
const rowPlans = [0, 1, 2, 3].map(() => new PlanCache<RowPlan, number>(rowTuning));
const ROW_LABELS = ["softmax", "logsumexp", "crossEntropy", "maskedSoftmax"];
const rowSmallMasked = () => rowSmallWgsl(true);
const rowMasked = () => rowWgsl(true);

/** The launch of mode `m` (0 softmax, 1 logsumexp, 2 crossEntropy; 3 maskedSoftmax with `scale`) over rows × n. */
function planRow(limits: GpuLimits, m: number, rows: number, n: number, scale: number): RowPlan {
  const small = rowTuning.algo === "thread" || (rowTuning.algo === "auto" && n <= SMALL_ROW);
  const groups = grid(small ? ceilDiv(rows, SMALL_WG) : rows, limits.maxComputeWorkgroupsPerDimension);
  if (m === 3) {
    return {
      key: small ? "row:small:masked" : "row:masked", wgsl: small ? rowSmallMasked : rowMasked,
      params: new ParamWords().u(rows).u(n).u(0).f(scale).words(), groups, f: scale,
    };
  }
  return { key: small ? "row:small" : "row", wgsl: small ? rowSmallWgsl : rowWgsl, params: new ParamWords().u(rows).u(n).u(m).words(), groups, f: 0 };
}

/**
 * The plan of mode `m` for rows × n from `caches[m]`, made by `plan` when missing or made for
 * another float param f (Object.is: a NaN matches itself, -0 is not 0); uncached where the shape
 * has no key. Serves the row kernels (planRow) and the row-pair kernels (planPair).
 */
export function cachedPlan(
  ctx: GpuCtx, caches: readonly PlanCache<RowPlan, number>[], plan: typeof planRow, m: number, rows: number, n: number, f: number,
): RowPlan {
  const k = rowsKey(rows, n);
  if (k < 0) return plan(ctx.limits, m, rows, n, f);
  const cache = caches[m];
  let got = cache.get(k, ctx.limits);
  if (got === undefined || !Object.is(got.f, f)) {
    got = plan(ctx.limits, m, rows, n, f);
    cache.set(k, got);
  }
  return got;
}

/** The cached row-kernel plan of mode `m` (see cachedPlan). */
const rowPlan = (ctx: GpuCtx, m: number, rows: number, n: number, scale: number): RowPlan => cachedPlan(ctx, rowPlans, planRow, m, rows, n, scale);

function rowKernel(ctx: GpuCtx, mode: number, ins: readonly KernelArg[], out: KernelArg): void {
  const x = ins[0];
  const n = x.shape[x.shape.length - 1];
  const rows = n === 0 ? 0 : prod(x.shape) / n;
  if (rows === 0) return;
  const label = ROW_LABELS[mode];
  const plan = rowPlan(ctx, mode, rows, n, 0);
  const rx = ctx.ref(x, label);
  ctx.dispatch({
    label, key: plan.key, wgsl: plan.wgsl,
    // softmax / logsumexp bind x again where the targets would be (never read)
    buffers: [ctx.ref(out, label), rx, mode === 2 ? ctx.ref(ins[1], label) : rx],
    params: plan.params, groups: plan.groups,
  });
}

export const softmaxKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, 0, ins, out);

/**
 * maskedSoftmax: the softmax row kernels (same choice of a thread or a workgroup per row, same
 * code) with the composite's where(valid, x · scale, −1e9) as they read x and its · valid as they
 * write, so the bits are those of the four launches it replaces.
 */
export function maskedSoftmaxKernel(ctx: GpuCtx, [x, valid]: readonly KernelArg[], out: KernelArg, p: PrimParams["maskedSoftmax"]): void {
  const n = x.shape[x.shape.length - 1];
  const rows = n === 0 ? 0 : prod(x.shape) / n;
  if (rows === 0) return;
  const label = "maskedSoftmax";
  const plan = rowPlan(ctx, 3, rows, n, p.scale);
  ctx.dispatch({
    label, key: plan.key, wgsl: plan.wgsl,
    buffers: [ctx.ref(out, label), ctx.ref(x, label), ctx.ref(valid, label)],
    params: plan.params, groups: plan.groups,
  });
}

export const logsumexpKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, 1, ins, out);
export const crossEntropyKernel = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg) => rowKernel(ctx, 2, ins, out);
