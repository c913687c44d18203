/**
 * WebGPU kernels of foldWeight (ops/linalg.ts): y = (a·op(b)) ⊙ s over small matrices (a [M, K],
 * b [K, N] or [N, K] with transB, s [N] optional; the op takes its composite past FOLD_MAX_WORK
 * multiply-adds), and its VJP foldWeightGrad in one launch.
 *
 * Both give every output element one thread, which walks its dot product in order: the products
 * are a few hundred by a few hundred (MemMamba's W_q·W_kᵀ and (W_v·W_F) ⊙ α), so the cost of a
 * launch is its dispatch, not its arithmetic. The composite took one or two launches forward (the
 * matmul, the column scale) and up to five backward (mul's product and its sum over rows, matmul's
 * two products).
 *
 * foldWeightGrad's threads, in one 1-D grid: the first M·K write da[i, k] = Σ_n gs[i, n]·op(b)[k, n]
 * (gs = g ⊙ s, each product rounded before the next multiply, as the composite's mul rounds it);
 * the next K·N write db in b's layout, Σ_i a[i, k]·gs[i, n]; with s, the last N write ds[n] =
 * Σ_i g[i, n]·(a·op(b))[i, n], the product's element recomputed in the thread. The composite's
 * values, summed in another order (each sum in index order here).
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

const WG = 64;

/** op(b)[k, n] for b [K, N], or b [N, K] with transB (K and N the names of params in scope). */
const bAt = (transB: boolean, k: string, n: string) => (transB ? `b[${n} * K + ${k}]` : `b[${k} * N + ${n}]`);

// params: M, K, N
function forwardWgsl(transB: boolean, scaled: boolean): string {
  return `${header(3, [
    { name: "y", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "b", type: "f32" }, ...(scaled ? [{ name: "s", type: "f32" }] : []),
  ])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)};
  let t = wg * ${WG}u + lid;
  if (t >= M * N) { return; }
  let i = t / N; let n = t - i * N;
  var acc = 0.0f;
  for (var k = 0u; k < K; k++) { acc = acc + a[i * K + k] * ${bAt(transB, "k", "n")}; }
  y[t] = ${scaled ? "acc * s[n]" : "acc"};
}`;
}

// params: M, K, N
function gradWgsl(transB: boolean, scaled: boolean): string {
  const gs = (i: string, n: string) => (scaled ? `(g[${i} * N + ${n}] * s[${n}])` : `g[${i} * N + ${n}]`);
  return `${header(3, [
    { name: "da", type: "f32", write: true }, { name: "db", type: "f32", write: true }, ...(scaled ? [{ name: "ds", type: "f32", write: true }] : []),
    { name: "g", type: "f32" }, { name: "a", type: "f32" }, { name: "b", type: "f32" }, ...(scaled ? [{ name: "s", type: "f32" }] : []),
  ])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)};
  let t = wg * ${WG}u + lid;
  if (t < M * K) {
    let i = t / K; let k = t - i * K;
    var acc = 0.0f;
    for (var n = 0u; n < N; n++) { acc = acc + ${gs("i", "n")} * ${bAt(transB, "k", "n")}; }
    da[t] = acc;
    return;
  }
  let u = t - M * K;
  if (u < K * N) {
    ${transB ? "let n = u / K; let k = u - n * K;" : "let k = u / N; let n = u - k * N;"}
    var acc = 0.0f;
    for (var i = 0u; i < M; i++) { acc = acc + a[i * K + k] * ${gs("i", "n")}; }
    db[u] = acc;
    return;
  }
  ${scaled
    ? `let n = u - K * N;
  if (n >= N) { return; }
  var acc = 0.0f;
  for (var i = 0u; i < M; i++) {
    var p = 0.0f;
    for (var k = 0u; k < K; k++) { p = p + a[i * K + k] * ${bAt(transB, "k", "n")}; }
    acc = acc + g[i * N + n] * p;
  }
  ds[n] = acc;`
    : ""}
}`;
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
    params: new ParamWords().u(M).u(K).u(N).words(), groups: grid(ceilDiv(M * N, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** foldWeightGrad: inputs [g [M, N], a, b, s?] → [da [M, K], db (b's shape), ds [N] with s]. */
export function foldWeightGradKernel(ctx: GpuCtx, [g, a, b, s]: readonly KernelArg[], [da, db, ds]: readonly KernelArg[], p: MultiPrimParams["foldWeightGrad"]): void {
  const label = "foldWeightGrad";
  const [M, K, N] = dims(a, b, p.transB);
  const scaled = s !== undefined;
  const threads = M * K + K * N + (scaled ? N : 0);
  if (threads === 0) return;
  const v = variant(p.transB, scaled);
  ctx.dispatch({
    label, key: `foldGrad:${v}`, wgsl: gradGens.get(v)!,
    buffers: [
      ctx.ref(da, label), ctx.ref(db, label), ...(scaled ? [ctx.ref(ds, label)] : []),
      ctx.ref(g, label), ctx.ref(a, label), ctx.ref(b, label), ...(scaled ? [ctx.ref(s, label)] : []),
    ],
    params: new ParamWords().u(M).u(K).u(N).words(), groups: grid(ceilDiv(threads, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
