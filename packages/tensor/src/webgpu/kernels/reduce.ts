/**
 * Reductions (sum, max) over any set of axes, keepDims output.
 *
 * The input's axes are coalesced into alternating groups of kept and reduced axes. A workgroup of
 * 256 threads handles OX consecutive outputs with LANES = 256 / OX threads each, laid out so
 * that adjacent threads read adjacent addresses:
 * - kept innermost group ("kept-inner": biases' gradients [B·L, C] → [C], sums over a batch of
 *   matmuls): OX consecutive outputs on adjacent threads, each step reads a contiguous row; few
 *   lanes (at most 8), each summing a strided share of the reduced range;
 * - reduced innermost group ("red-inner": RMSNorm's [B·L, D] → [B·L, 1], full sums): the LANES
 *   of one output on adjacent threads stride along the contiguous reduced run, up to 256 lanes
 *   for long runs.
 * Lane counts aim at about 8 terms per thread (unrolled by 4 so that four loads are in flight).
 * Each thread accumulates sequentially (Kahan-compensated for sums), then the lanes are combined
 * in workgroup memory in two fixed-order serial levels of up to 16 (the previous single serial
 * chain was 255 dependent workgroup-memory reads in each of the 16384 workgroups of RMSNorm's
 * row sums at [8, 2048, 256]; a barrier-per-level tree compiles several times slower on
 * lavapipe). When there are few outputs and a long reduction, a first pass writes
 * partial results for S chunks of the reduced range ([S, outputs], scratch) and a second pass
 * reduces those, so the whole GPU works on it. Every order is fixed by the shapes alone: the same
 * input gives the same bits on every run.
 *
 * The pipeline key is reduce:<op>:k<kept groups>:r<reduced groups>:<kept-inner|red-inner>
 * (the group counts padded to 3 and 1 or 2), so a profile tells the two layouts apart.
 * The WGSL sources are in reduce-wgsl.ts.
 * reduceKernel and maxGradKernel keep each (op, shape, axes)'s launches in a bounded cache
 * (reducePlans, maxGradPlans; emptied when a reduceTuning knob or the limits change).
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import {
  ceilDiv, grid, ParamWords, prod, strides, type BufRef, type GpuCtx, type GpuLimits,
} from "../context.ts";
import { PlanCache } from "./plan-cache.ts";
import { maxGradWgsl, range, reduceWgsl, WG, type MaxGradCfg, type ReduceCfg } from "./reduce-wgsl.ts";

export interface Group {
  size: number;
  stride: number;
  reduced: boolean;
}

/**
 * Knobs of the reduction's plan (for benchmarks and tests; the defaults are the library's
 * choice). Changing one changes only how the work is split, never the pipeline's code.
 */
export const reduceTuning = {
  /** Terms each thread sums sequentially that the lane count aims at. */
  termsPerThread: 8,
  /** Most lanes per output when the kept axes are innermost (the rest of the 256 threads take more outputs). */
  maxKeptLanes: 8,
  /** A reduction of few outputs is split into chunks until pass 1 has about this many workgroups. */
  targetWorkgroups: 1024,
  /** Fewest terms per chunk of a split reduction. */
  minChunk: 256,
};

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function pow2floor(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Coalesces the input's axes into alternating kept / reduced groups (size-1 axes dropped). */
function groupsOf(shape: readonly number[], axes: readonly number[]): Group[] {
  const st = strides(shape);
  const gs: Group[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const reduced = axes.includes(d);
    const last = gs[gs.length - 1];
    if (last && last.reduced === reduced) {
      last.size *= shape[d];
      last.stride = st[d];
    } else gs.push({ size: shape[d], stride: st[d], reduced });
  }
  return gs;
}

/** How one pass splits its work: outputs per workgroup and lanes per output. */
interface PassPlan {
  ox: number;
  lanes: number;
  laneInner: boolean;
}

/** The thread layout for `CH` terms per output (see the file comment). */
function passPlan(gs: Group[], CH: number): PassPlan {
  const innerKept = gs.length > 0 && !gs[gs.length - 1].reduced;
  const want = Math.max(1, Math.ceil(CH / Math.max(1, reduceTuning.termsPerThread)));
  if (innerKept) {
    const lanes = Math.min(pow2floor(Math.max(1, reduceTuning.maxKeptLanes)), pow2ceil(want), WG);
    return { ox: WG / lanes, lanes, laneInner: false };
  }
  const lanes = Math.min(WG, pow2ceil(want));
  return { ox: WG / lanes, lanes, laneInner: true };
}

/** One pass of a reduction: everything but its buffers. */
interface PassLaunch {
  readonly key: string;
  readonly wgsl: () => string;
  readonly params: Uint32Array;
  readonly groups: readonly [number, number, number];
}

/** One reduction pass over groups of its source into its destination ([S, outputs] when split into S chunks). */
function planPass(limits: GpuLimits, op: "sum" | "max", gs: Group[], S: number, srcOff = 0): PassLaunch {
  const kept = gs.filter((g) => !g.reduced), red = gs.filter((g) => g.reduced);
  const nOut = prod(kept.map((g) => g.size));
  const R = prod(red.map((g) => g.size));
  const CH = Math.ceil(R / S);
  const { ox, lanes, laneInner } = passPlan(gs, CH);
  // pad: kept groups to 3 (outermost first, so pad in front), reduced to 1 or 2
  const nk = Math.max(3, kept.length), nr = red.length <= 1 ? 1 : Math.max(2, red.length);
  const padK: Group[] = [...range(nk - kept.length).map(() => ({ size: 1, stride: 0, reduced: false })), ...kept];
  const padR: Group[] = [...range(nr - red.length).map(() => ({ size: 1, stride: 0, reduced: true })), ...red];
  const w = new ParamWords().u(nOut).u(S).u(CH).u(R).u(ox).u(lanes).u(srcOff);
  for (const g of padK) w.u(g.size).u(g.stride);
  for (const g of padR) w.u(g.size).u(g.stride);
  const cfg: ReduceCfg = { op, nk, nr, laneInner };
  return {
    key: `reduce:${op}:k${nk}:r${nr}:${laneInner ? "red-inner" : "kept-inner"}`, wgsl: () => reduceWgsl(cfg),
    params: w.words(), groups: grid(ceilDiv(nOut * S, ox), limits.maxComputeWorkgroupsPerDimension),
  };
}

/**
 * A reduction's launches (see reduceGroups): one pass, or with `scratchBytes` of partials two
 * (the chunks, then the partials into the output). Follows from the groups, op, limits and
 * reduceTuning alone, so reduceKernel computes it once per (op, shape, axes).
 */
interface ReducePlan {
  readonly passes: readonly PassLaunch[];
  readonly scratchBytes: number;
}

function planReduce(limits: GpuLimits, op: "sum" | "max", gs: Group[], srcOff = 0): ReducePlan {
  const nOut = prod(gs.filter((g) => !g.reduced).map((g) => g.size));
  const R = prod(gs.filter((g) => g.reduced).map((g) => g.size));
  const S = R === 0 ? 1 : reduceSplit(gs);
  if (S <= 1) return { passes: [planPass(limits, op, gs, 1, srcOff)], scratchBytes: 0 };
  const second: Group[] = [{ size: S, stride: nOut, reduced: true }];
  if (nOut > 1) second.push({ size: nOut, stride: 1, reduced: false });
  return { passes: [planPass(limits, op, gs, S, srcOff), planPass(limits, op, second, 1)], scratchBytes: S * nOut * 4 };
}

function runReduce(ctx: GpuCtx, plan: ReducePlan, op: "sum" | "max", src: BufRef, dst: BufRef): void {
  const [p1, p2] = plan.passes;
  if (plan.scratchBytes === 0) {
    ctx.dispatch({ label: op, key: p1.key, wgsl: p1.wgsl, buffers: [dst, src], params: p1.params, groups: p1.groups });
    return;
  }
  const partial = ctx.temp(plan.scratchBytes);
  ctx.dispatch({ label: op, key: p1.key, wgsl: p1.wgsl, buffers: [partial, src], params: p1.params, groups: p1.groups });
  ctx.dispatch({ label: op, key: p2.key, wgsl: p2.wgsl, buffers: [dst, partial], params: p2.params, groups: p2.groups });
  ctx.releaseTemp(partial);
}

/** Per-(op, shape, axes) reduction plans of reduceKernel (exported for tests: size, max). */
export const reducePlans = new PlanCache<ReducePlan | null>(reduceTuning);

/** The cache key of a reduction: op, shape, axes. */
function reduceKey(op: string, shape: readonly number[], axes: readonly number[]): string {
  let k = op;
  for (let i = 0; i < shape.length; i++) k += "," + shape[i];
  k += "|";
  for (let i = 0; i < axes.length; i++) k += "," + axes[i];
  return k;
}

export function reduceKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["reduce"]): void {
  const key = reduceKey(p.op, x.shape, p.axes);
  let plan = reducePlans.get(key, ctx.limits);
  if (plan === undefined) {
    // an empty output launches nothing (the output's shape follows from x's and the axes)
    plan = prod(out.shape) === 0 ? null : planReduce(ctx.limits, p.op, groupsOf(x.shape, p.axes));
    reducePlans.set(key, plan);
  }
  if (plan === null) return;
  runReduce(ctx, plan, p.op, ctx.ref(x, p.op), ctx.ref(out, p.op));
}

/**
 * The number of chunks S that pass 1 splits the reduced range into (1: one pass). A reduction
 * whose outputs fill fewer than reduceTuning.targetWorkgroups workgroups is split until about
 * that many run, each chunk at least reduceTuning.minChunk terms long.
 * (Measured on an H100 before the split existed: [4096, 4096] summed over axis 0 in one pass
 * ran 64 workgroups, 165 GB/s.)
 */
export function reduceSplit(gs: Group[]): number {
  const nOut = prod(gs.filter((g) => !g.reduced).map((g) => g.size));
  const R = prod(gs.filter((g) => g.reduced).map((g) => g.size));
  const { ox } = passPlan(gs, R);
  const wgs = ceilDiv(nOut, ox);
  const target = Math.max(1, reduceTuning.targetWorkgroups), minChunk = Math.max(1, reduceTuning.minChunk);
  if (R < 4 * minChunk || wgs * 4 > target) return 1;
  return Math.max(1, Math.min(Math.floor(target / wgs), Math.ceil(R / minChunk)));
}

/**
 * Reduces `src` (from element `srcOff`) over its reduced groups into the dense `dst` (the kept
 * groups in order), in one pass or, with few workgroups for a long reduction, two: S chunks of
 * the reduced range first (reduceSplit), then the S partials in one pass (chunk order fixed, so
 * the result does not depend on timing).
 */
export function reduceGroups(ctx: GpuCtx, op: "sum" | "max", src: BufRef, dst: BufRef, gs: Group[], srcOff = 0): void {
  runReduce(ctx, planReduce(ctx.limits, op, gs, srcOff), op, src, dst);
}

// ---------- maxGrad: the VJP of a max reduction ----------

/**
 * maxGrad on the GPU: x's axes coalesced into kept / reduced groups as for the reductions, and
 * the reductions' thread plan (passPlan): a short group (MemMamba's windows of r = 4 features,
 * the common case: one pipeline maxGrad:k1:r1:red-inner) gets one thread that walks it, a long
 * one up to 256 threads that share it. One launch instead of the composite's six (a fill and an
 * add to broadcast g, eq, the tie count's sum, div, mul).
 * Exact where the device's f32 division is correctly rounded (lavapipe); where it is not, the
 * composite's div uses the same instruction on the same operands.
 */
export function maxGradKernel(ctx: GpuCtx, [x, y, g]: readonly KernelArg[], out: KernelArg, p: PrimParams["maxGrad"]): void {
  const key = reduceKey("maxGrad", x.shape, p.axes);
  let l = maxGradPlans.get(key, ctx.limits);
  if (l === undefined) {
    l = prod(out.shape) === 0 ? null : planMaxGrad(ctx.limits, x.shape, p.axes);
    maxGradPlans.set(key, l);
  }
  if (l === null) return;
  ctx.dispatch({
    label: "maxGrad", key: l.key, wgsl: l.wgsl,
    buffers: [ctx.ref(out, "maxGrad"), ctx.ref(x, "maxGrad"), ctx.ref(y, "maxGrad"), ctx.ref(g, "maxGrad")], params: l.params,
    groups: l.groups,
  });
}

/** Per-(shape, axes) maxGrad launches (exported for tests: size, max). */
export const maxGradPlans = new PlanCache<PassLaunch | null>(reduceTuning);

function planMaxGrad(limits: GpuLimits, shape: readonly number[], axes: readonly number[]): PassLaunch {
  const gs = groupsOf(shape, axes);
  const kept = gs.filter((q) => !q.reduced), red = gs.filter((q) => q.reduced);
  const nOut = prod(kept.map((q) => q.size)), R = prod(red.map((q) => q.size));
  const { ox, lanes, laneInner } = passPlan(gs, R);
  const nk = kept.length <= 1 ? 1 : Math.max(3, kept.length), nr = red.length <= 1 ? 1 : Math.max(2, red.length);
  const padK: Group[] = [...range(nk - kept.length).map(() => ({ size: 1, stride: 0, reduced: false })), ...kept];
  const padR: Group[] = [...range(nr - red.length).map(() => ({ size: 1, stride: 0, reduced: true })), ...red];
  const w = new ParamWords().u(nOut).u(R).u(ox).u(lanes);
  for (const q of [...padK, ...padR]) w.u(q.size).u(q.stride);
  const cfg: MaxGradCfg = { nk, nr, laneInner };
  return {
    key: `maxGrad:k${nk}:r${nr}:${laneInner ? "red-inner" : "kept-inner"}`, wgsl: () => maxGradWgsl(cfg),
    params: w.words(), groups: grid(ceilDiv(nOut, ox), limits.maxComputeWorkgroupsPerDimension),
  };
}
