/**
 * Index kernels: gather, scatterAdd, oneHot.
 *
 * A shader cannot throw, so indices outside the valid range behave as follows (the CPU throws
 * for gather and scatterAdd; the host-side shape rules are the same on both backends):
 * - gather: the output row is zeros;
 * - scatterAdd: the update is dropped;
 * - oneHot: a zero row (as on the CPU).
 *
 * scatterAdd is deterministic, without atomics (WGSL has no float atomics): each thread owns
 * one column j of a block of output rows, zeroes it, then walks every index in order and adds
 * the updates that land in its block. The adds happen in index order, as on the CPU, so the
 * results match it bit for bit. (Every thread reads every index: they are broadcast loads that
 * the cache serves; staging them in workgroup memory would need a barrier in the loop.)
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, type GpuCtx } from "../context.ts";

const WG = 256;

const GATHER = `${header(3, [{ name: "out", type: "u32", write: true }, { name: "tab", type: "u32" }, { name: "idx", type: "i32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * ${WG}u + lid;
  if (e >= ${pu(0)}) { return; }
  let row = ${pu(1)};
  let r = idx[e / row];
  if (r < 0i || u32(r) >= ${pu(2)}) { out[e] = 0u; } else { out[e] = tab[u32(r) * row + e % row]; }
}`;

export function gatherKernel(ctx: GpuCtx, [table, idx]: readonly KernelArg[], out: KernelArg): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const rows = table.shape[0];
  const row = prod(table.shape.slice(1));
  ctx.dispatch({
    label: "gather", key: "gather", wgsl: () => GATHER,
    buffers: [ctx.ref(out, "gather"), ctx.ref(table, "gather"), ctx.ref(idx, "gather")],
    params: new ParamWords().u(n).u(row).u(rows).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

const SCATTER = `${header(5, [{ name: "out", type: "f32", write: true }, { name: "idx", type: "i32" }, { name: "upd", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let nIdx = ${pu(0)}; let row = ${pu(1)}; let rows = ${pu(2)}; let rpb = ${pu(3)};
  let t = wg * ${WG}u + lid;
  if (t >= ${pu(4)}) { return; }
  let j = t % row;
  let r0 = (t / row) * rpb;
  let r1 = min(rows, r0 + rpb);
  for (var r = r0; r < r1; r++) { out[r * row + j] = 0.0f; }
  for (var i = 0u; i < nIdx; i++) {
    let r = idx[i];
    if (r >= i32(r0) && r < i32(r1)) {
      let o = u32(r) * row + j;
      out[o] = out[o] + upd[i * row + j];
    }
  }
}`;

export function scatterAddKernel(ctx: GpuCtx, [idx, upd]: readonly KernelArg[], out: KernelArg, p: PrimParams["scatterAdd"]): void {
  const rows = p.rows;
  const row = rows === 0 ? 0 : prod(out.shape) / rows;
  if (rows === 0 || row === 0) return;
  // enough threads to fill a GPU (~64k), as many row blocks as that allows
  const blocks = Math.max(1, Math.min(rows, Math.floor(65536 / row)));
  const rpb = ceilDiv(rows, blocks);
  const threads = ceilDiv(rows, rpb) * row;
  ctx.dispatch({
    label: "scatterAdd", key: "scatterAdd", wgsl: () => SCATTER,
    buffers: [ctx.ref(out, "scatterAdd"), ctx.ref(idx, "scatterAdd"), ctx.ref(upd, "scatterAdd")],
    params: new ParamWords().u(prod(idx.shape)).u(row).u(rows).u(rpb).u(threads).words(),
    groups: grid(ceilDiv(threads, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

const ONE_HOT = `${header(2, [{ name: "out", type: "f32", write: true }, { name: "idx", type: "i32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * ${WG}u + lid;
  if (e >= ${pu(0)}) { return; }
  let depth = ${pu(1)};
  out[e] = select(0.0f, 1.0f, idx[e / depth] == i32(e % depth));
}`;

export function oneHotKernel(ctx: GpuCtx, [idx]: readonly KernelArg[], out: KernelArg, p: PrimParams["oneHot"]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  ctx.dispatch({
    label: "oneHot", key: "oneHot", wgsl: () => ONE_HOT,
    buffers: [ctx.ref(out, "oneHot"), ctx.ref(idx, "oneHot")],
    params: new ParamWords().u(n).u(p.depth).words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
