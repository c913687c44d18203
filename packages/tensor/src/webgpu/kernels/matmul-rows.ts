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
import type { KernelArg } from "../../backend.ts";
import { ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";

const ROWS_WG = 64;
/** Columns a thread holds at once. */
const COLS = 4;
/** k steps whose loads are issued together. */
const UNROLL = 4;

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
