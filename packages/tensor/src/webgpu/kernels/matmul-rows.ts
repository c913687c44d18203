/**
 * WebGPU kernel of matmulRows (ops/linalg.ts): out[i] = x[i]·w where rows[i] ≠ 0, else 0.
 *
 * A workgroup per row of x (ROWS_WG threads). A dropped row writes its N zeros and stops: the
 * cost of a row nobody reads is its output's bytes. A kept row: thread t takes the columns t,
 * t + ROWS_WG, … (COLS of them at a time, in registers), walking k in order with the loads of
 * UNROLL steps issued before their multiply-adds; x[i, k] is the same address for every thread
 * (one broadcast read), w[k, ·] a coalesced run. No workgroup memory, no barrier.
 *
 * Sized for MemMamba's notes, where a chunk of 60K tokens has a few hundred rows that any pool
 * ever holds: [61440, 256]·[256, 256] kept at ~400 rows. With every row kept it reads w once per
 * row from L2, slower than the tiled matmul (the model uses this only where few rows are kept).
 * params: R (rows), K, N.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";

const ROWS_WG = 64;
/** Columns a thread holds at once. */
const COLS = 4;
/** k steps whose loads are issued together (matmulRows). */
const UNROLL = 4;

/**
 * matmulRowsMax's vec4 path (see stridedPoolWgsl): `grid` workgroups at most, each taking every
 * grid-th row; `unroll` k steps whose loads are issued together in each of the 4 slices of K.
 * `strided: false` takes the earlier kernel (a workgroup a row). Read when a pipeline is built.
 */
export const rowsTuning = { unroll: 16, grid: 2048, strided: true };

/** Threads of the strided kernel: 4 slices of K × 64 groups of r = 4 columns. */
const STRIDED_WG = 256;
const SLICES = 4;
const GROUP_LANES = STRIDED_WG / SLICES;

function wgsl(): string {
  const cs = [...Array(COLS).keys()], us = [...Array(UNROLL).keys()];
  const col = (j: number) => `c0 + ${j * ROWS_WG}u`;
  return `${header(3, [{ name: "C", type: "f32", write: true }, { name: "X", type: "f32" }, { name: "W", type: "f32" }, { name: "keep", type: "f32" }])}
@compute @workgroup_size(${ROWS_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let R = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)};
  if (wg >= R) { return; }
  let row = wg;
  let cBase = row * N;
  if (keep[row] == 0.0f) {
    for (var c = lid; c < N; c += ${ROWS_WG}u) { C[cBase + c] = 0.0f; }
    return;
  }
  let xBase = row * K;
  for (var c0 = lid; c0 < N; c0 += ${ROWS_WG * COLS}u) {
    ${cs.map((j) => `let ok${j} = ${col(j)} < N; let n${j} = select(0u, ${col(j)}, ok${j}); var a${j} = 0.0f;`).join("\n    ")}
    var k = 0u;
    for (; k + ${UNROLL}u <= K; k += ${UNROLL}u) {
      ${us.map((u) => `let x${u} = X[xBase + k + ${u}u];`).join(" ")}
      ${us.map((u) => cs.map((j) => `let w${u}_${j} = W[(k + ${u}u) * N + n${j}];`).join(" ")).join("\n      ")}
      ${us.map((u) => cs.map((j) => `a${j} += x${u} * w${u}_${j};`).join(" ")).join("\n      ")}
    }
    for (; k < K; k++) {
      let x0 = X[xBase + k];
      ${cs.map((j) => `a${j} += x0 * W[k * N + n${j}];`).join(" ")}
    }
    ${cs.map((j) => `if (ok${j}) { C[cBase + ${col(j)}] = a${j}; }`).join("\n    ")}
  }
}`;
}

/**
 * matmulRowsMax: the same rows, each output the max of r adjacent columns of the product (the max
 * reduction's rule: the first of equal values stays, a NaN wins). A dropped row writes its N / r
 * zeros; a kept row's thread walks its group's r columns one after another, each summed over k in
 * order as above; for r = 4 (MemMamba's window, N a multiple of 4) the group's 4 sums in one vec4,
 * w read as vec4 rows (coalesced) with the loads of rowsTuning.unroll steps of k ahead, as matmulRows' shader
 * (the one-column-at-a-time loop took 0.25 ms a call at [61440, 256]·[256, 256] with ~400 rows
 * kept on an H200, this 0.065). A workgroup a row, as matmulRows: 16 rows a workgroup, one after
 * another, ran slower (0.30 ms: the kept rows, which cluster, queue in a few workgroups).
 * params: R, K, N, r.
 */
function poolWgsl(v4: boolean, scaled: boolean, unroll: number): string {
  const us = [...Array(unroll).keys()];
  // the max reduction's rule for the next value v (NaN tested on the bits: a compiler may fold v != v)
  const maxStep = (v: string) => `let nan = (bitcast<u32>(${v}) & 0x7fffffffu) > inf; if (${v} > m || nan) { m = ${v}; } if (nan) { break; }`;
  // a group's sums: r = 4 (v4) as one vec4 with `unroll` steps of loads ahead (as matmulRows), else
  // each of its r columns in turn
  const group = v4
    ? `var a = vec4<f32>(0.0f);
    var k = 0u;
    for (; k + ${unroll}u <= K; k += ${unroll}u) {
      ${us.map((u) => `let x${u} = X[xBase + k + ${u}u];`).join(" ")}
      ${us.map((u) => `let w${u} = W[(k + ${u}u) * G + g];`).join(" ")}
      ${us.map((u) => `a += x${u} * w${u};`).join(" ")}
    }
    for (; k < K; k++) { a += X[xBase + k] * W[k * G + g]; }
    for (var j = 0u; j < 4u; j++) { let v = a[j]; ${maxStep("v")} }`
    : `for (var c = g * r; c < g * r + r; c++) {
      var a = 0.0f;
      for (var k = 0u; k < K; k++) { a += X[xBase + k] * W[k * N + c]; }
      ${maxStep("a")}
    }`;
  const bufs = [{ name: "C", type: "f32", write: true }, { name: "X", type: "f32" }, { name: "W", type: v4 ? "vec4<f32>" : "f32" }, { name: "keep", type: "f32" }];
  // with a scale, each output times its row's (a dropped row's 0 too, as the composite's mul)
  const sc = scaled ? " * S[row]" : "";
  return `${header(4, scaled ? [...bufs, { name: "S", type: "f32" }] : bufs)}
@compute @workgroup_size(${ROWS_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let R = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)}; let r = ${pu(3)};
  if (wg >= R) { return; }
  let row = wg;
  let G = N / r;
  let cBase = row * G;
  if (keep[row] == 0.0f) {
    for (var g = lid; g < G; g += ${ROWS_WG}u) { C[cBase + g] = 0.0f${sc}; }
    return;
  }
  let xBase = row * K;
  // −∞ through a let (a constant one is a shader-creation error)
  let inf = 0x7f800000u;
  for (var g = lid; g < G; g += ${ROWS_WG}u) {
    var m = -bitcast<f32>(inf);
    ${group}
    C[cBase + g] = m${sc};
  }
}`;
}

/**
 * matmulRowsMax for r = 4 (MemMamba's window; N a multiple of 4), rows strided over at most
 * rowsTuning.grid workgroups: workgroup w takes rows w, w + grid, w + 2·grid, … A workgroup a
 * row (poolWgsl) launched 61440 workgroups for a 60K chunk, most of them only to write a dropped
 * row's 64 zeros, and the launches alone took ~40 µs of a call on an H200 (no row kept: 39.6 µs;
 * ~400 kept: 50.5); the kept rows, which cluster at the start of a sequence (a pool fills there),
 * land in different workgroups here. The workgroup stages its rows' keep flags (and scales) in
 * workgroup memory with one load each, then per row: a dropped row's G = N / 4 outputs are
 * 0 (· its scale); a kept row's 4 sums of each group are 4 vec4 partial sums over the 4 slices of
 * K (each in k order, `unroll` steps of loads ahead), added slice after slice, then the group's
 * max (the max reduction's rule: the first of equal values stays, a NaN wins) times the scale.
 * params: R, K, N, grid.
 */
function stridedPoolWgsl(scaled: boolean, unroll: number): string {
  const us = [...Array(unroll).keys()];
  const bufs = [{ name: "C", type: "f32", write: true }, { name: "X", type: "f32" }, { name: "W", type: "vec4<f32>" }, { name: "keep", type: "f32" }];
  return `${header(4, scaled ? [...bufs, { name: "S", type: "f32" }] : bufs)}
var<workgroup> kf: array<f32, ${STRIDED_WG}>;
var<workgroup> sf: array<f32, ${STRIDED_WG}>;
var<workgroup> part: array<vec4<f32>, ${STRIDED_WG}>;
@compute @workgroup_size(${STRIDED_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let R = ${pu(0)}; let K = ${pu(1)}; let N = ${pu(2)}; let grid = ${pu(3)};
  if (wg >= min(R, grid)) { return; }
  let G = N / 4u;
  let cnt = (R - wg + grid - 1u) / grid;
  let slice = lid / ${GROUP_LANES}u;
  let gl = lid % ${GROUP_LANES}u;
  let kLen = (K + ${SLICES - 1}u) / ${SLICES}u;
  let k0 = min(K, slice * kLen);
  let k1 = min(K, k0 + kLen);
  // −∞ through a let (a constant one is a shader-creation error)
  let inf = 0x7f800000u;
  for (var i0 = 0u; i0 < cnt; i0 += ${STRIDED_WG}u) {
    let i = i0 + lid;
    if (i < cnt) {
      let row = wg + i * grid;
      kf[lid] = keep[row];
      ${scaled ? "sf[lid] = S[row];" : ""}
    }
    let n = min(${STRIDED_WG}u, cnt - i0);
    for (var j = 0u; j < n; j++) {
      let row = wg + (i0 + j) * grid;
      let cBase = row * G;
      // (the uniform load's barrier makes the staged flags and scales visible)
      let kept = workgroupUniformLoad(&kf[j]) != 0.0f;
      let sc = ${scaled ? "sf[j]" : "1.0f"};
      if (!kept) {
        for (var g = lid; g < G; g += ${STRIDED_WG}u) { C[cBase + g] = 0.0f${scaled ? " * sc" : ""}; }
        continue;
      }
      let xBase = row * K;
      for (var gb = 0u; gb < G; gb += ${GROUP_LANES}u) {
        let g = gb + gl;
        let gc = min(g, G - 1u);
        var a = vec4<f32>(0.0f);
        var k = k0;
        for (; k + ${unroll}u <= k1; k += ${unroll}u) {
          ${us.map((u) => `let x${u} = X[xBase + k + ${u}u];`).join(" ")}
          ${us.map((u) => `let w${u} = W[(k + ${u}u) * G + gc];`).join(" ")}
          ${us.map((u) => `a += x${u} * w${u};`).join(" ")}
        }
        for (; k < k1; k++) { a += X[xBase + k] * W[k * G + gc]; }
        part[lid] = a;
        workgroupBarrier();
        if (slice == 0u && g < G) {
          var t = part[gl];
          ${[...Array(SLICES - 1).keys()].map((q) => `t += part[gl + ${(q + 1) * GROUP_LANES}u];`).join(" ")}
          var m = -bitcast<f32>(inf);
          for (var c = 0u; c < 4u; c++) {
            let v = t[c];
            let nan = (bitcast<u32>(v) & 0x7fffffffu) > inf;
            if (v > m || nan) { m = v; }
            if (nan) { break; }
          }
          C[cBase + g] = m${scaled ? " * sc" : ""};
        }
        workgroupBarrier();
      }
    }
    workgroupBarrier();
  }
}`;
}

/** matmulRowsMax: inputs [x [..., R, K], w [K, N], rows [..., R]] (and scale [..., R]) → out [..., R, N / r]. */
export function matmulRowsMaxKernel(ctx: GpuCtx, [x, w, rows, scale]: readonly KernelArg[], out: KernelArg, { r }: PrimParams["matmulRowsMax"]): void {
  const K = w.shape[0], N = w.shape[1];
  const R = prod(rows.shape);
  if (R === 0 || N === 0) return;
  const label = "matmulRowsMax";
  const refs = [ctx.ref(out, label), ctx.ref(x, label), ctx.ref(w, label), ctx.ref(rows, label), ...(scale ? [ctx.ref(scale, label)] : [])];
  const v4 = r === 4 && N % 4 === 0;
  const unroll = v4 ? rowsTuning.unroll : UNROLL;
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (v4 && rowsTuning.strided) {
    const G = Math.max(1, Math.min(R, rowsTuning.grid));
    ctx.dispatch({
      label, key: `matmulRowsMax:4:strided:u${unroll}${scale ? ":s" : ""}`, wgsl: () => stridedPoolWgsl(!!scale, unroll),
      buffers: refs, params: new ParamWords().u(R).u(K).u(N).u(G).words(), groups: grid(G, maxDim),
    });
    return;
  }
  ctx.dispatch({
    label, key: `matmulRowsMax${v4 ? `:4:u${unroll}` : ""}${scale ? ":s" : ""}`, wgsl: () => poolWgsl(v4, !!scale, unroll),
    buffers: refs, params: new ParamWords().u(R).u(K).u(N).u(r).words(), groups: grid(R, maxDim),
  });
}

/** matmulRows: inputs [x [..., R, K], w [K, N], rows [..., R]] → out [..., R, N]. */
export function matmulRowsKernel(ctx: GpuCtx, [x, w, rows]: readonly KernelArg[], out: KernelArg): void {
  const K = w.shape[0], N = w.shape[1];
  const R = prod(rows.shape);
  if (R === 0 || N === 0) return;
  const refs = [ctx.ref(out, "matmulRows"), ctx.ref(x, "matmulRows"), ctx.ref(w, "matmulRows"), ctx.ref(rows, "matmulRows")];
  ctx.dispatch({
    label: "matmulRows", key: "matmulRows", wgsl,
    buffers: refs, params: new ParamWords().u(R).u(K).u(N).words(), groups: grid(R, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
