/**
 * The matmul kernels without workgroup tiles (matmul.ts plans which one a problem takes): the
 * untiled kernel for small and thin problems (a thread per 4x4 or 1x1 block of C, or LANES
 * threads an element), split-K's second pass (the sum of the slices' partials), and the row dot
 * of matrix-vector products (with linearSigmoid's bias and sigmoid in its store). Their WGSL
 * generators and the constants the planner sizes grids with.
 */
import type { KernelArg, MultiPrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const VEC = ["x", "y", "z", "w"];

/**
 * The kernel for small problems (and thin ones, M or N < 16): a thread per R x R block of C
 * (R = 4, or 1: NAIVE_ONE_MAX_WG) reading A and B straight from memory (the cache serves the
 * reuse), no workgroup memory and no barrier: for tiny matrices a tiled kernel is all overhead,
 * and on a software Vulkan its barrier-in-a-loop costs seconds to compile. params: M, N, K, q0,
 * batch (3 x 3), TA, TB, then the split-K slice length, batches and slices (unsplit: K, batches,
 * 1; one pipeline for both).
 */
export const NAIVE_WG = 64;
/**
 * A problem whose 4x4 blocks would fill fewer workgroups than this runs a thread per element
 * instead (R = 1): a thread's k loop is a chain of dependent loads, and with a few dozen
 * workgroups nothing hides their latency. On an H200, [64, 64]·[64, 256] (16 workgroups of 4x4
 * blocks) took ~38 µs a launch (the pool reads' folded weights, long-context --profile).
 */
export const NAIVE_ONE_MAX_WG = 128;
/** The untiled kernels' WGSL that turns batch index `rem` into A's and B's offsets aBase, bBase (params 4 … 3 + 3·br). */
function batchBaseLines(br: number): string[] {
  const lines: string[] = [];
  for (let d = br - 1; d >= 0; d--) {
    const size = pu(4 + d), sa = pu(4 + br + d), sb = pu(4 + 2 * br + d);
    lines.push(d === 0 ? `{ let c = rem;` : `{ let c = rem % ${size}; rem = rem / ${size};`);
    lines.push(`aBase += c * ${sa}; bBase += c * ${sb}; }`);
  }
  return lines;
}

/**
 * The untiled product for small outputs (where a thread per element would fill few
 * workgroups, and no split of K): LANES threads an element, lane l adding the terms k ≡ l
 * (mod LANES) in order, then lane 0 adding the lane sums in order (deterministic). A thread per
 * element walks all of K as a chain of dependent adds whose loads wait on the cache one step
 * after another: the pool reads' folded weights (K 64 and 256, 4,096 to 16,384 outputs) took
 * 13–27 µs a launch on an H200 that way. Same params as the untiled kernel (S = 1).
 */
export const LANES = 16;
export const LANES_WG = 256;
function lanesWgsl(br: number): string {
  const U = 4, us = [...Array(U).keys()];
  const aIdx = (k: string) => `select(aBase + m0 * K + ${k}, aBase + ${k} * M + m0, TA)`;
  const bIdx = (k: string) => `select(bBase + ${k} * N + n0, bBase + n0 * K + ${k}, TB)`;
  return `${header(9 + 3 * br, [{ name: "C", type: "f32", write: true }, { name: "A", type: "f32" }, { name: "B", type: "f32" }])}
var<workgroup> red: array<f32, ${LANES_WG}>;
@compute @workgroup_size(${LANES_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let N = ${pu(1)}; let K = ${pu(2)};
  let TA = ${pu(4 + 3 * br)} != 0u; let TB = ${pu(5 + 3 * br)} != 0u;
  let per = M * N;
  let id = wg * ${LANES_WG / LANES}u + lid / ${LANES}u;
  let lane = lid % ${LANES}u;
  let live = id < per * ${pu(7 + 3 * br)};
  let zz = select(0u, id / per, live);
  let m0 = (id % per) / N; let n0 = (id % per) % N;
  var aBase = 0u; var bBase = 0u; var rem = zz;
  ${batchBaseLines(br).join("\n  ")}
  var c = 0.0f;
  if (live) {
    var k = lane;
    for (; k + ${(U - 1) * LANES}u < K; k += ${U * LANES}u) {
      ${us.map((u) => `let a${u} = A[${aIdx(`(k + ${u * LANES}u)`)}]; let b${u} = B[${bIdx(`(k + ${u * LANES}u)`)}];`).join(" ")}
      ${us.map((u) => `c += a${u} * b${u};`).join(" ")}
    }
    for (; k < K; k += ${LANES}u) { c += A[${aIdx("k")}] * B[${bIdx("k")}]; }
  }
  red[lid] = c;
  workgroupBarrier();
  if (live && lane == 0u) {
    var t = red[lid];
    for (var j = 1u; j < ${LANES}u; j++) { t += red[lid + j]; }
    C[zz * per + m0 * N + n0] = t;
  }
}`;
}

function naiveWgsl(br: number, R: 1 | 4 = 4): string {
  const lines = batchBaseLines(br);
  const aAt = (m: string, k = "k") => `select(0.0f, A[select(0u, select(aBase + (${m}) * K + ${k}, aBase + ${k} * M + (${m}), TA), ${m} < M)], ${m} < M)`;
  const bAt = (n: string, k = "k") => `select(0.0f, B[select(0u, select(bBase + ${k} * N + (${n}), bBase + (${n}) * K + ${k}, TB), ${n} < N)], ${n} < N)`;
  // the k loop unrolled U steps, every load of the U steps issued before their multiply-adds
  // (which keep k's order): a thread's loads are otherwise a chain of one L2 latency per k step,
  // which no number of threads hides (a [64, 64]·[64, 256] took ~30 µs a launch on an H100)
  const U = R === 1 ? 8 : 4, us = [...Array(U).keys()], is = [0, 1, 2, 3];
  const kAt = (u: number) => `(k + ${u}u)`;
  const step1 = (k: (u: number) => string, ws: number[]) => `${ws.map((u) => `let a${u} = ${aAt("m0", k(u))}; let b${u} = ${bAt("n0", k(u))};`).join(" ")}
    ${ws.map((u) => `c += a${u} * b${u};`).join(" ")}`;
  const step4 = (k: (u: number) => string, ws: number[]) => `${ws.map((u) => `let b${u} = vec4<f32>(${is.map((e) => bAt(`n0 + ${e}u`, k(u))).join(", ")});`).join("\n    ")}
    ${ws.map((u) => is.map((i) => `let a${u}_${i} = ${aAt(`m0 + ${i}u`, k(u))};`).join(" ")).join("\n    ")}
    ${ws.map((u) => is.map((i) => `c${i} += a${u}_${i} * b${u};`).join(" ")).join("\n    ")}`;
  const step = R === 1 ? step1 : step4;
  return `${header(9 + 3 * br, [{ name: "C", type: "f32", write: true }, { name: "A", type: "f32" }, { name: "B", type: "f32" }])}
@compute @workgroup_size(${NAIVE_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let N = ${pu(1)}; let K = ${pu(2)};
  let TA = ${pu(4 + 3 * br)} != 0u; let TB = ${pu(5 + 3 * br)} != 0u;
  let nq = (N + ${R - 1}u) / ${R}u; let per = nq * ((M + ${R - 1}u) / ${R}u);
  let id = wg * ${NAIVE_WG}u + lid;
  let NB = ${pu(7 + 3 * br)};
  if (id >= per * NB * ${pu(8 + 3 * br)}) { return; }
  // zz = slice · batches + batch (unsplit: the batch); its C block is block zz of C (or of the partials)
  let zz = id / per + ${pu(3)}; let q = zz % NB;
  let kBeg = (zz / NB) * ${pu(6 + 3 * br)}; let kEnd = min(K, kBeg + ${pu(6 + 3 * br)});
  let m0 = ((id % per) / nq) * ${R}u; let n0 = (id % per) % nq * ${R}u;
  var aBase = 0u; var bBase = 0u; var rem = q;
  ${lines.join("\n  ")}
  let cBase = zz * M * N;
  ${R === 1 ? "var c = 0.0f;" : "var c0 = vec4<f32>(0.0f); var c1 = vec4<f32>(0.0f); var c2 = vec4<f32>(0.0f); var c3 = vec4<f32>(0.0f);"}
  var k = kBeg;
  for (; k + ${U}u <= kEnd; k += ${U}u) {
    ${step(kAt, us)}
  }
  for (; k < kEnd; k++) {
    ${step(() => "k", [0])}
  }
  ${R === 1 ? "if (m0 < M && n0 < N) { C[cBase + m0 * N + n0] = c; }"
    : is.map((i) => is.map((e) => `if (m0 + ${i}u < M && n0 + ${e}u < N) { C[cBase + (m0 + ${i}u) * N + n0 + ${e}u] = c${i}.${VEC[e]}; }`).join(" ")).join("\n  ")}
}`;
}


/** Threads a workgroup of the split-K sum (exported with its generator and key: linearSigmoidGrad sums its row blocks with it). */
export const SUM_WG = 256;
/** The split-K sum's pipeline key. */
export const SPLIT_SUM_KEY = "matmul:splitk-sum";
/**
 * The second pass of split-K: C[i] = Σ_s P[s·n + i] over the S partials. R lanes per output
 * (R a power of two, SUM_WG / R outputs per workgroup): lane r adds the slices s ≡ r (mod R) in
 * order, then lane 0 adds the R lane sums in order, so a result never depends on timing. One
 * thread walking all S slices was latency-bound where C is small and S large (a weight gradient
 * of 64 × 64 outputs from K = 16K rows: 16 workgroups walking 512 partials, ~30 µs a call on
 * an H200; as long as the product itself). params: n, S, R.
 */
function splitSumWgsl(): string {
  return `${header(3, [{ name: "C", type: "f32", write: true }, { name: "P", type: "f32" }])}
var<workgroup> part: array<f32, ${SUM_WG}>;
@compute @workgroup_size(${SUM_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let n = ${pu(0)}; let S = ${pu(1)}; let R = ${pu(2)};
  let i = wg * (${SUM_WG}u / R) + lid / R;
  let r = lid % R;
  var t = 0.0f;
  if (i < n) {
    for (var s = r; s < S; s += R) { t += P[s * n + i]; }
  }
  part[lid] = t;
  workgroupBarrier();
  if (r == 0u && i < n) {
    var c = part[lid];
    for (var k = 1u; k < R; k++) { c += part[lid + k]; }
    C[i] = c;
  }
}`;
}

/** Lanes per output of the split-K sum: enough threads to fill the GPU, at least 8 slices a lane. */
export function splitSumLanes(n: number, S: number): number {
  let R = 1;
  while (R < 64 && n * R < 65536 && S >= 16 * R) R *= 2;
  return R;
}

/**
 * C[r] = Σ_k A[r, k] · b[k] for A [M, K] row-major, b contiguous (a [K, 1] or [1, K] operand):
 * ROWDOT_ROWS rows a workgroup, ROWDOT_LANES lanes a row, lane l adding k ≡ l (mod ROWDOT_LANES)
 * in order, then lane 0 adding the lane sums in order (deterministic). The untiled kernel gave
 * each thread 4 rows walked along K (loads 4 rows apart across a warp: a scorer's [16K, 256]·[256,
 * 1] took ~60 µs on an H200 for 16 MB). Where K is a multiple of 4, a lane reads vec4s (k counts
 * vec4s then, and a term is a vec4's dot product): a quarter of the load instructions (the scalar
 * form read MemMamba's [61440, 256] rows at ~1.1 TB/s on an H100, 56 µs a scorer). With 32 lanes a
 * row, a 256-wide row gave each lane 2 vec4s and lane 0 a chain of 31 adds through workgroup
 * memory: 26–36 µs a scorer at [61440, 256] on an H200 (~2 TB/s); 8 lanes read a row's 64 vec4s as
 * 8 runs of 128 bytes a warp instruction, 8 loads in flight a lane, and add 7 lane sums.
 * params: M, K (in vec4s where vec).
 */
export const ROWDOT_ROWS = 32;
const ROWDOT_LANES = 8;
function rowDotWgsl(vec: boolean, sigmoid = false, gate = false): string {
  const T = vec ? "vec4<f32>" : "f32";
  const LN = ROWDOT_LANES;
  const bufs = [
    { name: "C", type: "f32", write: true }, ...(gate ? [{ name: "Cm", type: "f32", write: true }, { name: "Cg", type: "f32", write: true }] : []),
    { name: "A", type: T }, { name: "Bv", type: T }, ...(sigmoid ? [{ name: "bias", type: "f32" }] : []),
  ];
  // the gate (linearSigmoidGate): m = s > tau (params word 2: tau's f32 bits), m · s
  const store = gate
    ? `let sv = m_sigmoid(s + bias[0]); C[r] = sv; let mv = select(0.0f, 1.0f, sv > bitcast<f32>(${pu(2)})); Cm[r] = mv; Cg[r] = mv * sv;`
    : `C[r] = ${sigmoid ? "m_sigmoid(s + bias[0])" : "s"};`;
  return `${header(3, bufs)}${sigmoid ? WGSL_MATH : ""}
var<workgroup> red: array<f32, ${ROWDOT_ROWS * LN}>;
@compute @workgroup_size(${ROWDOT_ROWS * LN})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let K = ${pu(1)};
  let r = wg * ${ROWDOT_ROWS}u + lid / ${LN}u;
  let lane = lid % ${LN}u;
  var acc = 0.0f;
  if (r < M) {
    let base = r * K;
    for (var k = lane; k < K; k += ${LN}u) { acc += ${vec ? "dot(A[base + k], Bv[k])" : "A[base + k] * Bv[k]"}; }
  }
  red[lid] = acc;
  workgroupBarrier();
  if (lane == 0u && r < M) {
    var s = red[lid];
    for (var j = 1u; j < ${LN}u; j++) { s += red[lid + j]; }
    ${store}
  }
}`;
}

export const rowDotGens = [() => rowDotWgsl(false), () => rowDotWgsl(true), () => rowDotWgsl(false, true), () => rowDotWgsl(true, true), () => rowDotWgsl(false, true, true), () => rowDotWgsl(true, true, true)];

/**
 * σ(x·w + b) (linearSigmoid; x [..., K], w [K, 1], b [1]): the row-dot kernel of a one-column
 * matmul (a warp a row, the same sums in the same order) with the bias and the sigmoid (the
 * elementwise kernels' m_sigmoid) applied before its store: one launch for matmul, add and sigmoid,
 * with their bits where the matmul takes the row dot (matmulTuning.rowDot, the default).
 */
export function linearSigmoidKernel(ctx: GpuCtx, [x, w, b]: readonly KernelArg[], out: KernelArg): void {
  rowDotSigmoid(ctx, "linearSigmoid", x, w, b, [out]);
}

/** linearSigmoidGate: linearSigmoid's launch storing s, m = s > tau and m · s (MultiPrimParams["linearSigmoidGate"]). */
export function linearSigmoidGateKernel(ctx: GpuCtx, [x, w, b]: readonly KernelArg[], outs: readonly KernelArg[], p: MultiPrimParams["linearSigmoidGate"]): void {
  rowDotSigmoid(ctx, "linearSigmoidGate", x, w, b, outs, p.tau);
}

/** The row-dot kernel with the bias and sigmoid: one output, or with `tau` the gate's three. */
function rowDotSigmoid(ctx: GpuCtx, label: string, x: KernelArg, w: KernelArg, b: KernelArg, outs: readonly KernelArg[], tau?: number): void {
  rowDotSigmoidInto(ctx, label, x, w, b, outs.map((o) => ctx.ref(o, label)), outs[0].shape.reduce((a, d) => a * d, 1), tau);
}

/**
 * rowDotSigmoid into bindings the caller made (`outs`: the outputs' buffers, in order; M rows), for
 * a caller that keeps some outputs in scratch (rmsNormScores' three-kernel form). The pipeline key
 * is `${label}:rowdot4` or `${label}:rowdot`.
 */
export function rowDotSigmoidInto(ctx: GpuCtx, label: string, x: KernelArg, w: KernelArg, b: KernelArg, outs: readonly BufRef[], M: number, tau?: number): void {
  if (M === 0) return;
  const K = x.shape[x.shape.length - 1];
  const vec = K % 4 === 0 && K > 0;
  const params = new ParamWords().u(M).u(vec ? K / 4 : K);
  if (tau !== undefined) params.f(tau);
  ctx.dispatch({
    label, key: `${label}:${vec ? "rowdot4" : "rowdot"}`, wgsl: rowDotGens[(tau !== undefined ? 4 : 2) + (vec ? 1 : 0)],
    buffers: [...outs, ctx.ref(x, label), ctx.ref(w, label), ctx.ref(b, label)],
    params: params.words(), groups: grid(ceilDiv(M, ROWDOT_ROWS), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** The split-K sum's WGSL generator: C[i] = Σ_s P[s·n + i] in s order (params n, S, lanes a sum). */
export const splitSumGen = splitSumWgsl;
const lanesGens: (() => string)[] = [];
export function lanesGen(bRank: number): () => string {
  return (lanesGens[bRank] ??= () => lanesWgsl(bRank));
}
const naiveGens: (() => string)[] = [];
export function naiveGen(bRank: number, R: 1 | 4): () => string {
  return (naiveGens[bRank * 8 + R] ??= () => naiveWgsl(bRank, R));
}
