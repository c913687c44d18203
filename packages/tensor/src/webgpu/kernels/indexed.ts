/**
 * WebGPU kernels of the indexed-attention primitives (ops/attention.ts). None of them writes a
 * gathered [N, P, S] tensor: the table rows are read where they are used.
 *
 * - indexedDot:   one thread per (n, p): the dot product of x[n] with the table row idx[n, p]
 *   (read as vec4s where S is a multiple of 4);
 * - indexedSum:   one thread per (n, j): Σ_p w[n, p] · table[idx[n, p], j], p in order;
 * - indexedOuter: the inverse index of scatterAdd (indexing.ts), listing only the entries whose
 *   weight is nonzero, each row's entries split by blocks of 64 positions into up to 16 lists
 *   (a pool note is read by every position that holds it: ranking a row's entries in one list
 *   would cost len²); then one thread per (chunk, j) adds its chunk's w[e] · x[e / P, j] in
 *   index order, and the chunk sums are added in order (list by list): deterministic, and equal
 *   to the CPU's sequential sum within f32 rounding (bit for bit where a row has at most
 *   SUM_CHUNK terms in one list).
 *
 * Out-of-range indices (a shader cannot throw; the CPU does): a zero row in indexedDot and
 * indexedSum, a dropped term in indexedOuter — as gather and scatterAdd do.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { ENTRY_ARGS, header, LINEAR_WG, prod, pu, type GpuCtx } from "../context.ts";
import { buildInverseIndex, launchStep, overItems, sumChunks, SUM_CHUNK } from "./indexing.ts";

/** Threads per workgroup (overItems launches one thread per item in groups of this many). */
const WG = 256;
/**
 * Terms the sum loops load ahead of their adds: each term is a chain of dependent loads (an
 * index, then the row it picks), so one at a time the loops waited on memory at every term.
 */
const UNROLL = 4;
const unrolled = (f: (k: number) => string) => Array.from({ length: UNROLL }, (_, k) => f(k)).join(" ");

// params: n (= N·P), P, S (in vec4s where vec: S / 4), rows. With vec (S a multiple of 4) the
// rows are read as vec4s, a quarter of the load instructions; the terms are still added one by
// one in j order, the scalar form's (and the CPU's) order.
const dot = (vec: boolean) => `${header(4, [
  { name: "out", type: "f32", write: true }, { name: "x", type: vec ? "vec4<f32>" : "f32" },
  { name: "tab", type: vec ? "vec4<f32>" : "f32" }, { name: "idx", type: "i32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * ${WG}u + lid;
  if (e >= ${pu(0)}) { return; }
  let S = ${pu(2)};
  let r = idx[e];
  var acc = 0.0f;
  if (r >= 0i && u32(r) < ${pu(3)}) {
    let xo = (e / ${pu(1)}) * S;
    let to = u32(r) * S;
    for (var j = 0u; j < S; j++) {
      ${vec
        ? `let a = x[xo + j];
      let b = tab[to + j];
      acc = acc + a.x * b.x;
      acc = acc + a.y * b.y;
      acc = acc + a.z * b.z;
      acc = acc + a.w * b.w;`
        : "acc = acc + x[xo + j] * tab[to + j];"}
    }
  }
  out[e] = acc;
}`;

// params: n (= N·S), P, S, rows.
const SUM = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "w", type: "f32" }, { name: "tab", type: "f32" }, { name: "idx", type: "i32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let t = wg * ${WG}u + lid;
  if (t >= ${pu(0)}) { return; }
  let P = ${pu(1)};
  let S = ${pu(2)};
  let pos = t / S;
  let j = t - pos * S;
  let rows = ${pu(3)};
  var acc = 0.0f;
  // ${UNROLL} slots at a time: every load of the group issued before the first add (the index,
  // then the weight and the row it picks), the adds in slot order as before (same bits)
  var p = 0u;
  for (; p + ${UNROLL}u <= P; p += ${UNROLL}u) {
    ${unrolled((k) => `let e${k} = pos * P + p + ${k}u; let r${k} = idx[e${k}]; let ok${k} = r${k} >= 0i && u32(r${k}) < rows;`)}
    ${unrolled((k) => `let w${k} = w[e${k}]; let v${k} = tab[select(0u, u32(r${k}), ok${k}) * S + j];`)}
    ${unrolled((k) => `if (ok${k}) { acc = acc + w${k} * v${k}; }`)}
  }
  for (; p < P; p++) {
    let e = pos * P + p;
    let r = idx[e];
    if (r >= 0i && u32(r) < rows) { acc = acc + w[e] * tab[u32(r) * S + j]; }
  }
  out[t] = acc;
}`;

// params: lists, S, threads (maxChunks · S), P. part[c, j] = Σ over chunk c of w[e] · x[e / P, j].
const OUTER_PART = `${header(4, [
  { name: "part", type: "f32", write: true }, { name: "ord", type: "u32" }, { name: "start", type: "u32" },
  { name: "cstart", type: "u32" }, { name: "crow", type: "u32" }, { name: "w", type: "f32" }, { name: "x", type: "f32" },
])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let t = wg * ${WG}u + lid;
  if (t >= ${pu(2)}) { return; }
  let S = ${pu(1)};
  let P = ${pu(3)};
  let c = t / S;
  if (c >= cstart[${pu(0)}]) { return; }
  let j = t - c * S;
  let r = crow[c];
  let p0 = start[r] + (c - cstart[r]) * ${SUM_CHUNK}u;
  let p1 = min(p0 + ${SUM_CHUNK}u, start[r + 1u]);
  var acc = 0.0f;
  // ${UNROLL} entries at a time, loads first, adds in entry order (same bits as one at a time)
  var p = p0;
  for (; p + ${UNROLL}u <= p1; p += ${UNROLL}u) {
    ${unrolled((k) => `let e${k} = ord[p + ${k}u];`)}
    ${unrolled((k) => `let w${k} = w[e${k}]; let v${k} = x[(e${k} / P) * S + j];`)}
    ${unrolled((k) => `acc = acc + w${k} * v${k};`)}
  }
  for (; p < p1; p++) {
    let e = ord[p];
    acc = acc + w[e] * x[(e / P) * S + j];
  }
  part[t] = acc;
}`;

const lastDim = (a: KernelArg) => a.shape[a.shape.length - 1];

/** Positions per block, and at most this many lists per table row, in indexedOuter's inverse index. */
const BLOCK = 64, LISTS = 16;

export function indexedDotKernel(ctx: GpuCtx, [x, table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const S = table.shape[1], vec = S % 4 === 0;
  launchStep(
    ctx, "indexedDot", vec ? "indexedDot:vec4" : "indexedDot", dot(vec),
    [ctx.ref(out, "indexedDot"), ctx.ref(x, "indexedDot"), ctx.ref(table, "indexedDot"), ctx.ref(idx, "indexedDot")],
    [n, lastDim(idx), vec ? S / 4 : S, table.shape[0]], overItems(ctx, n),
  );
}

export function indexedSumKernel(ctx: GpuCtx, [w, table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  launchStep(
    ctx, "indexedSum", "indexedSum", SUM,
    [ctx.ref(out, "indexedSum"), ctx.ref(w, "indexedSum"), ctx.ref(table, "indexedSum"), ctx.ref(idx, "indexedSum")],
    [n, lastDim(idx), table.shape[1], table.shape[0]], overItems(ctx, n),
  );
}

export function indexedOuterKernel(ctx: GpuCtx, [w, x, idx]: readonly KernelArg[], out: KernelArg, p: PrimParams["indexedOuter"]): void {
  const rows = p.rows, S = out.shape[1];
  if (rows === 0 || S === 0) return;
  const nIdx = prod(idx.shape);
  const P = nIdx === 0 ? 1 : lastDim(idx);
  // a row's entries in up to LISTS lists by blocks of BLOCK positions (ListSplit says why); no
  // more lists in all than entries, so the scratch stays O(entries + rows)
  const K = Math.max(1, Math.min(LISTS, Math.ceil(nIdx / P / BLOCK), Math.floor(nIdx / rows)));
  const inv = buildInverseIndex(ctx, "indexedOuter", idx, rows, w, { K, G: BLOCK * P });
  const part = ctx.temp(Math.max(1, inv.maxChunks * S) * 4);
  if (nIdx > 0) {
    launchStep(
      ctx, "indexedOuter.sum", "indexedOuter:part", OUTER_PART,
      [part, inv.ord, inv.start, inv.cstart, inv.crow, ctx.ref(w, "indexedOuter"), ctx.ref(x, "indexedOuter")],
      [rows * K, S, inv.maxChunks * S, P], overItems(ctx, inv.maxChunks * S),
    );
  }
  // with no entries every row has no chunk, so the final step writes zeros
  sumChunks(ctx, "indexedOuter", inv, part, ctx.ref(out, "indexedOuter"), rows, S);
  ctx.releaseTemp(part);
  inv.release();
}
