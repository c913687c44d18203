/**
 * Batched matmul C[b] = op(A[b]) · op(B[b]) with transA / transB and broadcast batch dims on
 * WebGPU: matmulKernel and addMatmulKernel, which turn a problem into launches and dispatch them.
 *
 * Three kernels, by problem size (matmulPlan):
 * - untiled, for small or thin problems: a thread per 4x4 block of C, straight from memory
 *   (matmul-untiled.ts, with the row dot of matrix-vector products and split-K's sum pass);
 * - tiled, the classic register-blocked SGEMM: a workgroup of 256 threads computes a BM x BN
 *   block of C (128x256, 128x128 or 128x64 by size; 64x64 with BK = 16 for small ones; all
 *   specialised), marching along K in steps of BK (the WGSL generator: matmul-tiled.ts).
 * Its other modules: matmul-tile-config.ts (TileConfig, tile spec strings, the library's tiles,
 * fitTile), matmul-plan.ts (the matmulTuning knobs, matmulPlan, splitKPlan), plan-cache.ts
 * (PlanCache); what they export stays importable from here.
 * Batch: when B has no batch and A is not transposed, A's batch folds into M (one big GEMM).
 * Otherwise grid z walks the output batch (chunks of 65535) and each workgroup finds its A / B
 * offsets through the broadcast strides.
 * Split-K (splitKPlan): K cut into S slices that run as extra grid z, each writing its partial C
 * into a scratch [S, batches, m, N] that a second kernel sums in order.
 * Host cost: a problem's launches (plan, keys, param words, grids) are computed once and kept in
 * matmulPlans, a bounded cache keyed by the shapes and transposes that forgets everything when a
 * matmulTuning knob or the device limits change; a call then only binds its buffers.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { broadcastStrides, ceilDiv, coalesce, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, strides, type BufRef, type GpuCtx } from "../context.ts";
import { matmulPlan, matmulTuning, splitKPlan } from "./matmul-plan.ts";
import { fitTile, tileName, type TileConfig } from "./matmul-tile-config.ts";
import { matmulWgsl, type MatmulVariant } from "./matmul-tiled.ts";
import {
  LANES, LANES_WG, lanesGen, NAIVE_ONE_MAX_WG, NAIVE_WG, naiveGen, ROWDOT_ROWS, rowDotGens, SPLIT_SUM_KEY, SUM_WG, splitSumGen, splitSumLanes,
} from "./matmul-untiled.ts";
import { PlanCache } from "./plan-cache.ts";
// kept importable from here (tests, benchmarks and the other kernels name them through matmul.ts)
export { linearSigmoidKernel, SPLIT_SUM_KEY, splitSumGen, splitSumLanes, SUM_WG } from "./matmul-untiled.ts";
export { matmulPlan, matmulTuning, splitKPlan, type SplitK } from "./matmul-plan.ts";
export {
  BIG_TILE, fitTile, MID_TILE, MID_TILE_TALL, NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32, parseTile, SHORT_K_TILE, SMALL_TILE, tileName, tileProblem,
  tileSmemBytes, WIDE_TILE, type TileConfig,
} from "./matmul-tile-config.ts";
export { PlanCache } from "./plan-cache.ts";

/** One launch of a plan: everything but the buffers, which are the call's. */
interface PlannedLaunch {
  readonly key: string;
  readonly wgsl: () => string;
  readonly params: Uint32Array;
  readonly groups: readonly [number, number, number];
  /** The tiled kernel's variant (addMatmul derives its epilogue kernels from it). */
  readonly variant?: MatmulVariant;
}

/**
 * The launches of one matmul problem (shapes and transposes on one device's limits), as
 * matmulKernel dispatches them: the main kernel (rowdot, untiled, or tiled in chunks of grid z),
 * with split-K a scratch of `scratchBytes` and the sum pass. Everything in it follows from the
 * shapes, the flags, the limits and matmulTuning, so it is computed once per problem (planning,
 * coalescing the batch strides, the pipeline key and the param words cost a few µs a launch).
 */
interface MatmulLaunchPlan {
  /** Rowdot binds C directly; the others bind the partials when split. */
  readonly rowDot: boolean;
  readonly main: readonly PlannedLaunch[];
  readonly scratchBytes: number;
  readonly sum: PlannedLaunch | null;
}

/** Per-problem matmul plans (exported for tests: size, max). */
export const matmulPlans = new PlanCache<MatmulLaunchPlan | null>(matmulTuning);

/** The cache key of a problem: both flags and the three shapes (the limits and knobs are checked by the cache). */
function problemKey(a: readonly number[], b: readonly number[], out: readonly number[], tA: boolean, tB: boolean): string {
  let k = tA ? (tB ? "TT" : "TN") : tB ? "NT" : "NN";
  for (let i = 0; i < a.length; i++) k += "," + a[i];
  k += "|";
  for (let i = 0; i < b.length; i++) k += "," + b[i];
  k += "|";
  for (let i = 0; i < out.length; i++) k += "," + out[i];
  return k;
}

/** The cached launch plan of a problem (null: an empty output). */
function planOf(ctx: GpuCtx, a: KernelArg, b: KernelArg, out: KernelArg, p: PrimParams["matmul"]): MatmulLaunchPlan | null {
  const key = problemKey(a.shape, b.shape, out.shape, p.transA, p.transB);
  let plan = matmulPlans.get(key, ctx.limits);
  if (plan === undefined) {
    plan = planLaunches(ctx.limits, a.shape, b.shape, out.shape, p);
    matmulPlans.set(key, plan);
  }
  return plan;
}

export function matmulKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["matmul"]): void {
  // the bindings first: a tensor over the binding limit gets that error, not a grid's
  const cOut = ctx.ref(out, "matmul"), aRef = ctx.ref(a, "matmul"), bRef = ctx.ref(b, "matmul");
  const plan = planOf(ctx, a, b, out, p);
  if (plan !== null) dispatchPlan(ctx, plan, cOut, aRef, bRef);
}

/** The launches of a plan into C = cOut from A, B. */
function dispatchPlan(ctx: GpuCtx, plan: MatmulLaunchPlan, cOut: BufRef, aRef: BufRef, bRef: BufRef): void {
  if (plan.rowDot) {
    const l = plan.main[0];
    ctx.dispatch({
      label: "matmul", key: l.key, wgsl: l.wgsl,
      buffers: [cOut, aRef, bRef],
      params: l.params, groups: l.groups,
    });
    return;
  }
  // split: the kernel writes S partial C's into scratch, the sum pass below writes C
  const partial = plan.scratchBytes > 0 ? ctx.temp(plan.scratchBytes) : null;
  const bufs = [partial ?? cOut, aRef, bRef];
  try {
    for (let i = 0; i < plan.main.length; i++) {
      const l = plan.main[i];
      ctx.dispatch({ label: "matmul", key: l.key, wgsl: l.wgsl, buffers: bufs, params: l.params, groups: l.groups });
    }
    if (partial && plan.sum) {
      const l = plan.sum;
      ctx.dispatch({ label: "matmul", key: l.key, wgsl: l.wgsl, buffers: [cOut, partial], params: l.params, groups: l.groups });
    }
  } finally {
    if (partial) ctx.releaseTemp(partial);
  }
}

/** The launches of a problem (null: an empty output, nothing to launch); see MatmulLaunchPlan. */
function planLaunches(
  limits: GpuCtx["limits"], aShape: readonly number[], bShape: readonly number[], outShape: readonly number[], p: PrimParams["matmul"],
): MatmulLaunchPlan | null {
  const ar = aShape.length, brk = bShape.length, or = outShape.length;
  const M = outShape[or - 2], N = outShape[or - 1];
  const K = p.transA ? aShape[ar - 2] : aShape[ar - 1];
  const outBatch = outShape.slice(0, or - 2);
  let batches = prod(outBatch);
  if (batches === 0 || M === 0 || N === 0) return null;
  let m = M;
  let batchShape: number[] = [], aStr: number[] = [], bStr: number[] = [];
  const bBatched = prod(bShape.slice(0, brk - 2)) > 1;
  if (!bBatched && !p.transA) {
    m = M * batches; // A's batch folds into its rows
    batches = 1;
  } else {
    const aB = aShape.slice(0, ar - 2), bB = bShape.slice(0, brk - 2);
    const mk = aShape[ar - 2] * aShape[ar - 1], kn = bShape[brk - 2] * bShape[brk - 1];
    const c = coalesce(outBatch, [
      strides(outBatch),
      broadcastStrides(aB, outBatch).map((s) => s * mk),
      broadcastStrides(bB, outBatch).map((s) => s * kn),
    ]);
    batchShape = c.shape;
    aStr = c.strides[1];
    bStr = c.strides[2];
  }
  // batch dims padded to rank 3 (size 1, stride 0) so the batch rank does not multiply variants
  const bRank = Math.max(3, batchShape.length);
  while (batchShape.length < bRank) {
    batchShape.unshift(1);
    aStr.unshift(0);
    bStr.unshift(0);
  }
  const maxDim = limits.maxComputeWorkgroupsPerDimension;
  if (matmulTuning.rowDot && N === 1 && batches === 1 && !p.transA) {
    // vec4 bindings need whole vec4s (an empty tensor's buffer is one word)
    const vec4Rows = K % 4 === 0 && K > 0;
    return {
      rowDot: true, scratchBytes: 0, sum: null,
      main: [{
        key: vec4Rows ? "matmul:rowdot4" : "matmul:rowdot", wgsl: rowDotGens[vec4Rows ? 1 : 0],
        params: new ParamWords().u(m).u(vec4Rows ? K / 4 : K).words(), groups: grid(ceilDiv(m, ROWDOT_ROWS), maxDim),
      }],
    };
  }
  const plan = matmulPlan(m, N, K, batches, p.transB);
  const t = plan === "untiled" ? plan : fitTile(plan, limits.maxComputeWorkgroupStorageSize);
  const { slices: S, sliceLen } = splitKPlan(m, N, K, batches, t, limits.maxStorageBufferBindingSize);
  const params = (q0: number, split: boolean) => {
    const w = new ParamWords().u(m).u(N).u(K).u(q0);
    for (const d of batchShape) w.u(d);
    for (const s of aStr) w.u(s);
    for (const s of bStr) w.u(s);
    w.u(p.transA ? 1 : 0).u(p.transB ? 1 : 0);
    return (split ? w.u(sliceLen).u(batches).u(S) : w).words();
  };
  let main: PlannedLaunch[];
  if (t === "untiled") {
    const R = ceilDiv(ceilDiv(m, 4) * ceilDiv(N, 4) * batches * S, NAIVE_WG) < NAIVE_ONE_MAX_WG ? 1 : 4;
    if (R === 1 && S === 1 && matmulTuning.lanes) {
      const lanes = m * N * batches * LANES;
      main = [{ key: `matmul:lanes:b${bRank}`, wgsl: lanesGen(bRank), params: params(0, true), groups: grid(ceilDiv(lanes, LANES_WG), maxDim) }];
    } else {
      const threads = ceilDiv(m, R) * ceilDiv(N, R) * batches * S;
      main = [{ key: `matmul:naive${R === 1 ? "1" : ""}:b${bRank}`, wgsl: naiveGen(bRank, R), params: params(0, true), groups: grid(ceilDiv(threads, NAIVE_WG), maxDim) }];
    }
  } else {
    main = tiledLaunches(limits, t, p, { m, M, N, K, batches: batches * S, bRank, split: S > 1 }, (q0) => params(q0, S > 1));
  }
  let sum: PlannedLaunch | null = null;
  if (S > 1) {
    const n = batches * m * N;
    const R = splitSumLanes(n, S);
    sum = { key: SPLIT_SUM_KEY, wgsl: splitSumGen, params: new ParamWords().u(n).u(S).u(R).words(), groups: grid(ceilDiv(n * R, SUM_WG), maxDim) };
  }
  return { rowDot: false, main, scratchBytes: S > 1 ? S * batches * m * N * 4 : 0, sum };
}

/** The tiled kernel's launches: grid z walks `batches` (split-K: slices × batches) in chunks of maxDim. */
function tiledLaunches(
  limits: GpuCtx["limits"], t: TileConfig, p: PrimParams["matmul"],
  s: { m: number; M: number; N: number; K: number; batches: number; bRank: number; split: boolean },
  params: (q0: number) => Uint32Array,
): PlannedLaunch[] {
  const { m, M, N, K, batches, bRank } = s;
  const maxDim = limits.maxComputeWorkgroupsPerDimension;
  // A tile config with `specialize` (all of the library's own) gets a variant per transposes,
  // vector widths and divisibility (no guards where the problem is whole tiles) and unrolls its k
  // loop; without it (the tests' small tiles) or with matmulTuning.runtimeTrans, one generic
  // variant: runtime transposes, guarded scalar loads, a loop over k.
  const big = !!t.specialize && !matmulTuning.runtimeTrans;
  const v: MatmulVariant = {
    t,
    transA: big ? p.transA : null,
    transB: big ? p.transB : null,
    vecA: big && (p.transA ? M : K) % 4 === 0,
    vecB: big && (p.transB ? K : N) % 4 === 0,
    vecC: big && N % 4 === 0,
    full: big && m % t.BM === 0 && N % t.BN === 0 && K % t.BK === 0,
    batchRank: bRank,
    unroll: big && matmulTuning.unrollBig,
    split: s.split,
  };
  const tr = (x: boolean | null) => (x === null ? "r" : x ? "1" : "0");
  const key = `matmul:${tileName(t)}:${tr(v.transA)}${tr(v.transB)}:${+v.vecA}${+v.vecB}${+v.vecC}:${+v.full}:b${bRank}:u${+v.unroll}${s.split ? ":splitk" : ""}`;
  const gx = ceilDiv(N, t.BN), gy = ceilDiv(m, t.BM);
  if (gx > maxDim || gy > maxDim) throw new RangeError(`webgpu matmul: [${m}, ${N}] needs ${gy}x${gx} workgroups, over the limit ${maxDim}`);
  const wgsl = () => matmulWgsl(v);
  const out: PlannedLaunch[] = [];
  for (let q0 = 0; q0 < batches; q0 += maxDim) out.push({ key, wgsl, params: params(q0), groups: [gx, gy, Math.min(maxDim, batches - q0)], variant: v });
  return out;
}

/** addMatmul's epilogue kernels, by the tiled kernel's key and the epilogue. */
const epiGens = new Map<string, () => string>();

const EPI_WG = 256;
/** The unfused epilogue: C = T · S[i / N] + D (or T + D), for products the tiled kernel does not store (row dots, untiled, split-K). */
function epiWgsl(scale: boolean): string {
  const bufs = [{ name: "C", type: "f32", write: true }, { name: "T", type: "f32" }, { name: "D", type: "f32" }, ...(scale ? [{ name: "S", type: "f32" }] : [])];
  return `${header(2, bufs)}
@compute @workgroup_size(${EPI_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${EPI_WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  C[i] = ${scale ? `T[i] * S[i / ${pu(1)}]` : "T[i]"} + D[i];
}`;
}
const epiUnfusedGens = [() => epiWgsl(false), () => epiWgsl(true)];

/**
 * addMatmul (ops/linalg.ts): c + (a·w) ⊙ s, inputs [c, a, w] or [c, a, w, s]. Where the product
 * runs the tiled kernel in one pass (not split over K) the scale and the add are that kernel's store
 * (MatmulVariant.epi): C's rows are written once and the product never is. Otherwise the product
 * goes to a scratch buffer and one elementwise pass finishes it.
 */
export function addMatmulKernel(ctx: GpuCtx, [c, a, w, s]: readonly KernelArg[], out: KernelArg): void {
  const label = "addMatmul";
  const cOut = ctx.ref(out, label), dRef = ctx.ref(c, label), aRef = ctx.ref(a, label), wRef = ctx.ref(w, label);
  const sRef = s ? ctx.ref(s, label) : null;
  const p = { transA: false, transB: false };
  const plan = planOf(ctx, a, w, out, p);
  if (plan === null) return;
  const epi = s ? "scaleAdd" : "add";
  const one = plan.main.length === 1 ? plan.main[0] : null;
  if (one?.variant && !one.variant.split) {
    const key = `${one.key}:${epi}`;
    let wgsl = epiGens.get(key);
    if (!wgsl) {
      const v: MatmulVariant = { ...one.variant, epi };
      epiGens.set(key, (wgsl = () => matmulWgsl(v)));
    }
    ctx.dispatch({ label, key, wgsl, buffers: sRef ? [cOut, aRef, wRef, dRef, sRef] : [cOut, aRef, wRef, dRef], params: one.params, groups: one.groups });
    return;
  }
  const n = prod(out.shape);
  const t = ctx.temp(n * 4);
  try {
    dispatchPlan(ctx, plan, t, aRef, wRef);
    ctx.dispatch({
      label, key: s ? "addMatmul:epi:scale" : "addMatmul:epi", wgsl: epiUnfusedGens[s ? 1 : 0],
      buffers: sRef ? [cOut, t, dRef, sRef] : [cOut, t, dRef],
      params: new ParamWords().u(n).u(w.shape[1]).words(), groups: grid(ceilDiv(n, EPI_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
  } finally {
    ctx.releaseTemp(t);
  }
}
