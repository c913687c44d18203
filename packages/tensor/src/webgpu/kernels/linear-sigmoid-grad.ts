/**
 * WebGPU kernels of linearSigmoidGrad (ops/linear-fused.ts: linearSigmoid's VJP in three launches):
 * for s = σ(x·w + b) over rows x [N, d] and its cotangent g [N], e = g ⊙ s(1 − s) (unaryGrad's
 * sigmoid, the same expression), dx = e ⊗ w, dw = xᵀ·e and db = Σ e. The composite took five
 * launches (unaryGrad, dx as a K = 1 matmul through the wide tiled kernel, dw as a split-K product
 * and its sum, db as a reduction): ~75 µs a scorer at MemMamba's training shape on an H200, the
 * K = 1 product alone ~31 µs for 16 MB.
 *
 * Pass 1 ("lsg:rows"): a workgroup of 256 threads per block of rows, 64 lanes a row (four rows at
 * a time), lane l holding columns l, l + 64, … (vec4s where d is a multiple of 4). Per row it
 * writes dx's row and adds e·x into its column sums; the four rows' sums are added in order
 * through workgroup memory into the block's row of partial dw in the scratch, and e's sum into
 * the block's partial db. Pass 2: the split-K sum (matmul-untiled.ts) adds the blocks' partials in block
 * order, once for dw and once for db. Deterministic (fixed orders); dx has the composite's bits
 * (one product an element; a zero product stores +0, as the matmul's sum from 0 does: a
 * compiler may drop a `+ 0.0`), dw and db its sums in another order.
 * params (pass 1): N, columns (vec4s or floats), rows a block, d (floats), db's offset (floats).
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type BufRef, type GpuCtx } from "../context.ts";
import { SPLIT_SUM_KEY, splitSumGen, splitSumLanes, SUM_WG } from "./matmul-untiled.ts";

const WG = 256;
const LANES = 64; // lanes a row: WG / LANES rows at a time
/** Blocks of rows at most: the partials (blocks × d floats) stay small next to x. */
const MAX_BLOCKS = 1024;
/** Rows a block at least (fewer blocks for small N: each block's partial row costs a store and a sum). */
const MIN_BLOCK_ROWS = 32;

function rowsWgsl(vec: boolean): string {
  const T = vec ? "vec4<f32>" : "f32";
  const store = vec
    ? "let o = wg * D + 4u * c; P[o] = t.x; P[o + 1u] = t.y; P[o + 2u] = t.z; P[o + 3u] = t.w;"
    : "P[wg * D + c] = t;";
  return `${header(5, [
    { name: "dx", type: T, write: true }, { name: "P", type: "f32", write: true },
    { name: "g", type: "f32" }, { name: "s", type: "f32" }, { name: "x", type: T }, { name: "w", type: T },
  ])}
var<workgroup> red: array<${T}, ${WG}>;
var<workgroup> redB: array<f32, ${WG / LANES}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let N = ${pu(0)}; let Dv = ${pu(1)}; let RB = ${pu(2)}; let D = ${pu(3)}; let dbOff = ${pu(4)};
  let lane = lid % ${LANES}u; let sub = lid / ${LANES}u;
  let r0 = wg * RB; let r1 = min(N, r0 + RB);
  for (var c0 = 0u; c0 < Dv; c0 += ${LANES}u) {
    let c = c0 + lane;
    let inside = c < Dv;
    let wc = w[min(c, Dv - 1u)];
    var acc = ${T}(0.0f);
    var accB = 0.0f;
    for (var r = r0 + sub; r < r1; r += ${WG / LANES}u) {
      let sv = s[r];
      let e = g[r] * (sv * (1.0f - sv));
      accB += e;
      if (inside) {
        let i = r * Dv + c;
        let v = e * wc;
        dx[i] = select(v, ${T}(0.0f), v == ${T}(0.0f));
        acc += e * x[i];
      }
    }
    red[lid] = acc;
    if (lane == 0u) { redB[sub] = accB; }
    workgroupBarrier();
    if (sub == 0u && inside) {
      let t = ((red[lane] + red[lane + ${LANES}u]) + red[lane + ${2 * LANES}u]) + red[lane + ${3 * LANES}u];
      ${store}
    }
    if (c0 == 0u && lid == 0u) { P[dbOff + wg] = ((redB[0] + redB[1]) + redB[2]) + redB[3]; }
    workgroupBarrier();
  }
}`;
}

const rowsGens = [() => rowsWgsl(false), () => rowsWgsl(true)];

/** The row blocks of N rows: [blocks, rows a block]. */
export function lsgBlocks(N: number): [number, number] {
  const blocks = Math.max(1, Math.min(MAX_BLOCKS, Math.floor(N / MIN_BLOCK_ROWS)));
  const rb = ceilDiv(N, blocks);
  return [ceilDiv(N, rb), rb];
}

/** linearSigmoidGrad: inputs [g [..., n], s [..., n], x [..., n, d], w [d, 1]] → [dx (x's shape), dw [d, 1], db [1]]. */
export function linearSigmoidGradKernel(ctx: GpuCtx, [g, s, x, w]: readonly KernelArg[], [dx, dw, db]: readonly KernelArg[]): void {
  const label = "linearSigmoidGrad";
  const d = w.shape[0], N = prod(g.shape);
  if (N === 0 || d === 0) throw new Error(`webgpu.${label}: no rows or no columns (${N} × ${d}): the op takes its composite there`);
  const vec = d % 4 === 0;
  const Dv = vec ? d / 4 : d;
  const [blocks, rb] = lsgBlocks(N);
  const align = ctx.limits.minStorageBufferOffsetAlignment / 4;
  const dbOff = ceilDiv(blocks * d, align) * align;
  const scratch = ctx.temp((dbOff + blocks) * 4);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  try {
    ctx.dispatch({
      label, key: vec ? "lsg:rows:v4" : "lsg:rows", wgsl: rowsGens[vec ? 1 : 0],
      buffers: [ctx.ref(dx, label), scratch, ctx.ref(g, label), ctx.ref(s, label), ctx.ref(x, label), ctx.ref(w, label)],
      params: new ParamWords().u(N).u(Dv).u(rb).u(d).u(dbOff).words(), groups: grid(blocks, maxDim),
    });
    const sum = (out: BufRef, part: BufRef, n: number) => {
      const R = splitSumLanes(n, blocks);
      ctx.dispatch({
        label, key: SPLIT_SUM_KEY, wgsl: splitSumGen, buffers: [out, part],
        params: new ParamWords().u(n).u(blocks).u(R).words(), groups: grid(ceilDiv(n * R, SUM_WG), maxDim),
      });
    };
    sum(ctx.ref(dw, label), { buf: scratch.buf, offset: scratch.offset, size: blocks * d * 4 }, d);
    sum(ctx.ref(db, label), { buf: scratch.buf, offset: scratch.offset + dbOff * 4, size: blocks * 4 }, 1);
  } finally {
    ctx.releaseTemp(scratch);
  }
}
