/**
 * WebGPU kernels of foldWeight (ops/linalg.ts): y = (a·op(b)) ⊙ s over small matrices (a [M, K],
 * b [K, N] or [N, K] with transB, s [N] optional; the op takes its composite past FOLD_MAX_WORK
 * multiply-adds), and its VJP foldWeightGrad in one launch.
 *
 * Both give every output element LANES threads (as the untiled matmul's lanes kernel does): lane l
 * adds the terms j ≡ l (mod LANES) of the element's sum in order, four terms' loads ahead of
 * their adds, and lane 0 adds the lane sums in order. The products are a few hundred by a few
 * hundred (MemMamba's W_q·W_kᵀ and (W_v·W_F) ⊙ α), where one thread an element walked each sum as a
 * chain of cache latencies: on an H200 the first version (one thread an element, ds one thread a
 * column over all M·K terms) took 282 µs a [64, 64]·[64, 256] gradient and 30 µs its forward. The
 * composite took one or two launches forward (the matmul, the column scale) and up to five
 * backward (mul's product and its sum over rows, matmul's two products).
 *
 * foldWeightGrad's elements, in one 1-D grid: the first M·K are da[i, k] = Σ_n gs[i, n]·op(b)[k, n]
 * (gs = g ⊙ s, each product rounded before the next multiply, as the composite's mul rounds it);
 * the next K·N db in b's layout, Σ_i a[i, k]·gs[i, n]; with s, the last N ds[n] =
 * Σ_i g[i, n]·(a·op(b))[i, n], each product element recomputed by the lane that adds its term.
 * The composite's values, summed in another order.
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

/** Threads an output element: lane l adds the terms j ≡ l (mod LANES) in order, lane 0 the lane sums in order. */
const LANES = 16;
const WG = 256;
const PER_WG = WG / LANES;

/** op(b)[k, n] for b [K, N], or b [N, K] with transB (K and N the names of params in scope). */
const bAt = (transB: boolean, k: string, n: string) => (transB ? `b[${n} * K + ${k}]` : `b[${k} * N + ${n}]`);

/**
 * WGSL adding term(j) for j = lane, lane + LANES, … below `count` into `c`, four terms' loads
 * issued before their adds (a thread's terms are otherwise a chain of one cache latency each).
 */
function laneSum(count: string, term: (j: string) => string, unroll = true): string {
  const us = unroll ? [0, 1, 2, 3] : [];
  return `var j = lane;
    ${unroll ? `for (; j + ${3 * LANES}u < ${count}; j += ${4 * LANES}u) {
      ${us.map((u) => `let t${u} = ${term(`(j + ${u * LANES}u)`)};`).join(" ")}
      ${us.map((u) => `c += t${u};`).join(" ")}
    }` : ""}
    for (; j < ${count}; j += ${LANES}u) { c += ${term("j")}; }`;
}

/** The lane sums of the workgroup's elements added by each element's lane 0 (every thread reaches the barrier). */
const REDUCE = `red[lid] = c;
  workgroupBarrier();
  var t = 0.0f;
  if (lane == 0u) { t = red[lid]; for (var q = 1u; q < ${LANES}u; q++) { t += red[lid + q]; } }`;

/** Both kernels' entry: the lane sums' workgroup array, params M, K, N, element e and its lane. */
const PROLOGUE = `var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)};
  let e = wg * ${PER_WG}u + lid / ${LANES}u; let lane = lid % ${LANES}u;`;

// params: M, K, N
function forwardWgsl(transB: boolean, scaled: boolean): string {
  return `${header(3, [
    { name: "y", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "b", type: "f32" }, ...(scaled ? [{ name: "s", type: "f32" }] : []),
  ])}
${PROLOGUE}
  let live = e < M * N;
  let i = select(0u, e / N, live); let n = select(0u, e % N, live);
  var c = 0.0f;
  if (live) {
    ${laneSum("K", (k) => `a[i * K + ${k}] * ${bAt(transB, k, "n")}`)}
  }
  ${REDUCE}
  if (live && lane == 0u) { y[e] = ${scaled ? "t * s[n]" : "t"}; }
}`;
}

// params: M, K, N
function gradWgsl(transB: boolean, scaled: boolean): string {
  const gs = (i: string, n: string) => (scaled ? `(g[${i} * N + ${n}] * s[${n}])` : `g[${i} * N + ${n}]`);
  return `${header(3, [
    { name: "da", type: "f32", write: true }, { name: "db", type: "f32", write: true }, ...(scaled ? [{ name: "ds", type: "f32", write: true }] : []),
    { name: "g", type: "f32" }, { name: "a", type: "f32" }, { name: "b", type: "f32" }, ...(scaled ? [{ name: "s", type: "f32" }] : []),
  ])}
${PROLOGUE}
  let MK = M * K; let KN = K * N;
  var c = 0.0f;
  if (e < MK) {
    let i = e / K; let k = e - i * K;
    ${laneSum("N", (n) => `${gs("i", n)} * ${bAt(transB, "k", n)}`)}
  } else if (e < MK + KN) {
    let u = e - MK;
    ${transB ? "let n = u / K; let k = u - n * K;" : "let k = u / N; let n = u - k * N;"}
    ${laneSum("M", (i) => `a[${i} * K + k] * ${gs(i, "n")}`)}
  }${scaled ? ` else if (e < MK + KN + N) {
    let n = e - MK - KN;
    ${laneSum("M", (i) => `g[${i} * N + n] * rowDot(${i}, n, K, N)`, false)}
  }` : ""}
  ${REDUCE}
  if (lane == 0u) {
    if (e < MK) { da[e] = t; }
    else if (e < MK + KN) { db[e - MK] = t; }${scaled ? `
    else if (e < MK + KN + N) { ds[e - MK - KN] = t; }` : ""}
  }
}${scaled ? `
/** (a·op(b))[i, n], k in order. */
fn rowDot(i: u32, n: u32, K: u32, N: u32) -> f32 {
  var p = 0.0f;
  for (var k = 0u; k < K; k++) { p += a[i * K + k] * ${bAt(transB, "k", "n")}; }
  return p;
}` : ""}`;
}

const variant = (transB: boolean, scaled: boolean) => `${transB ? "t" : "n"}${scaled ? "s" : ""}`;
const forwardGens = new Map<string, () => string>();
const gradGens = new Map<string, () => string>();
for (const transB of [false, true]) {
  for (const scaled of [false, true]) {
    forwardGens.set(variant(transB, scaled), () => forwardWgsl(transB, scaled));
    gradGens.set(variant(transB, scaled), () => gradWgsl(transB, scaled));
  }
}

function dims(a: KernelArg, b: KernelArg, transB: boolean): [number, number, number] {
  const [M, K] = a.shape;
  return [M, K, transB ? b.shape[0] : b.shape[1]];
}

/** foldWeight: inputs [a [M, K], b, s?] → y [M, N]. */
export function foldWeightKernel(ctx: GpuCtx, [a, b, s]: readonly KernelArg[], y: KernelArg, p: PrimParams["foldWeight"]): void {
  const label = "foldWeight";
  const [M, K, N] = dims(a, b, p.transB);
  if (M * N === 0) return;
  const v = variant(p.transB, s !== undefined);
  ctx.dispatch({
    label, key: `fold:${v}`, wgsl: forwardGens.get(v)!,
    buffers: [ctx.ref(y, label), ctx.ref(a, label), ctx.ref(b, label), ...(s ? [ctx.ref(s, label)] : [])],
    params: new ParamWords().u(M).u(K).u(N).words(), groups: grid(ceilDiv(M * N, PER_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** foldWeightGrad: inputs [g [M, N], a, b, s?] → [da [M, K], db (b's shape), ds [N] with s]. */
export function foldWeightGradKernel(ctx: GpuCtx, [g, a, b, s]: readonly KernelArg[], [da, db, ds]: readonly KernelArg[], p: MultiPrimParams["foldWeightGrad"]): void {
  const label = "foldWeightGrad";
  const [M, K, N] = dims(a, b, p.transB);
  const scaled = s !== undefined;
  const elements = M * K + K * N + (scaled ? N : 0);
  if (elements === 0) return;
  const v = variant(p.transB, scaled);
  ctx.dispatch({
    label, key: `foldGrad:${v}`, wgsl: gradGens.get(v)!,
    buffers: [
      ctx.ref(da, label), ctx.ref(db, label), ...(scaled ? [ctx.ref(ds, label)] : []),
      ctx.ref(g, label), ctx.ref(a, label), ctx.ref(b, label), ...(scaled ? [ctx.ref(s, label)] : []),
    ],
    params: new ParamWords().u(M).u(K).u(N).words(), groups: grid(ceilDiv(elements, PER_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
