/**
 * Movement kernels: transpose, slice, pad, concat. They copy 32-bit words, so one shader serves
 * f32 and i32 alike. One thread per output element (per input element for concat).
 *
 * transpose and slice are strided gathers: out[i] = in[base + Σ c_d s_d] over the output's
 * coordinates, with axes coalesced where the source is contiguous too. The last-two-axes
 * transpose of a large matrix goes through a 32x32 tile in workgroup memory instead, so that
 * both the reads and the writes are coalesced.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import {
  ceilDiv, coalesce, ENTRY_ARGS, grid, header, indexChain, LINEAR_WG, ParamWords, pu, prod, strides, type GpuCtx,
} from "../context.ts";

const WG = 256;

/** out[i] = in[base + Σ_d coord_d(i) · srcStrides[d]] over `shape` (the output's shape). */
function stridedCopy(ctx: GpuCtx, label: string, x: KernelArg, out: KernelArg, base: number, srcStrides: number[]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  const c = coalesce(out.shape, [strides(out.shape), srcStrides]);
  // padded to rank 4 with size-1 axes: one pipeline for every copy of rank <= 4
  const rank = Math.max(4, c.shape.length);
  const pad = rank - c.shape.length;
  const w = new ParamWords().u(n).u(base);
  for (let d = 0; d < rank; d++) w.u(d < pad ? 1 : c.shape[d - pad]);
  for (let d = 0; d < rank; d++) w.u(d < pad ? 0 : c.strides[1][d - pad]);
  const wgsl = () => `${header(2 + 2 * rank, [{ name: "out", type: "u32", write: true }, { name: "src", type: "u32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  ${indexChain("i", rank, (d) => pu(2 + d), 1, (_k, d) => pu(2 + rank + d))}
  out[i] = src[${pu(1)} + off0];
}`;
  ctx.dispatch({
    label, key: `strided:r${rank}`, wgsl,
    buffers: [ctx.ref(out, label), ctx.ref(x, label)],
    params: w.words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

const TILE = 32;

/** [B, R, C] → [B, C, R] through 32x32 tiles (8 rows of threads, 4 elements each). */
function tiledTranspose(ctx: GpuCtx, x: KernelArg, out: KernelArg, B: number, R: number, C: number): void {
  const tilesC = ceilDiv(C, TILE), tilesR = ceilDiv(R, TILE);
  const w = new ParamWords().u(R).u(C).u(tilesC).u(tilesR).u(B);
  const wgsl = () => `${header(5, [{ name: "out", type: "u32", write: true }, { name: "src", type: "u32" }])}
var<workgroup> tile: array<u32, ${TILE * (TILE + 1)}>;
@compute @workgroup_size(${TILE}, 8)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let R = ${pu(0)}; let C = ${pu(1)};
  let t = wid.x + wid.y * nwg.x;
  let perB = ${pu(2)} * ${pu(3)};
  let b = t / perB;
  if (b >= ${pu(4)}) { return; }
  let tc = (t % perB) % ${pu(2)}; let tr = (t % perB) / ${pu(2)};
  let base = b * R * C;
  for (var k = 0u; k < ${TILE}u; k += 8u) {
    let r = tr * ${TILE}u + l.y + k; let c = tc * ${TILE}u + l.x;
    if (r < R && c < C) { tile[(l.y + k) * ${TILE + 1}u + l.x] = src[base + r * C + c]; }
  }
  workgroupBarrier();
  for (var k = 0u; k < ${TILE}u; k += 8u) {
    let c = tc * ${TILE}u + l.y + k; let r = tr * ${TILE}u + l.x;
    if (r < R && c < C) { out[base + c * R + r] = tile[l.x * ${TILE + 1}u + l.y + k]; }
  }
}`;
  ctx.dispatch({
    label: "transpose", key: "transpose-tiled", wgsl,
    buffers: [ctx.ref(out, "transpose"), ctx.ref(x, "transpose")],
    params: w.words(),
    groups: grid(B * tilesC * tilesR, ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export function transposeKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["transpose"]): void {
  const xs = strides(x.shape);
  const src = p.perm.map((a) => xs[a]);
  // a swap of the last two axes (after coalescing: [B?, R, C] → [B?, C, R]) of a big enough matrix
  const c = coalesce(out.shape, [strides(out.shape), src]);
  const r = c.shape.length;
  if (r >= 2 && r <= 3 && c.strides[1][r - 1] !== 1 && c.strides[1][r - 2] === 1) {
    const C = c.shape[r - 2], R = c.shape[r - 1]; // out is [.., C, R]; x is [.., R, C]
    const batchOk = r === 2 || c.strides[1][0] === R * C;
    if (batchOk && c.strides[1][r - 1] === C && R >= 16 && C >= 16) {
      tiledTranspose(ctx, x, out, r === 3 ? c.shape[0] : 1, R, C);
      return;
    }
  }
  stridedCopy(ctx, "transpose", x, out, 0, src);
}

export function sliceKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["slice"]): void {
  const xs = strides(x.shape);
  let base = 0;
  for (let i = 0; i < xs.length; i++) base += p.starts[i] * xs[i];
  stridedCopy(ctx, "slice", x, out, base, xs);
}

export function padKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["pad"]): void {
  const n = prod(out.shape);
  if (n === 0) return;
  // padded to rank 4 with size-1 axes (one pipeline for ranks <= 4)
  const rank = Math.max(4, out.shape.length);
  const pad = rank - out.shape.length;
  const xs = strides(x.shape);
  // params: n, value, then per axis: out size, before, in size, in stride
  const w = new ParamWords().u(n).typed(p.value, out.dtype);
  for (let d = 0; d < pad; d++) w.u(1).u(0).u(1).u(0);
  for (let d = 0; d < out.shape.length; d++) w.u(out.shape[d]).u(p.before[d]).u(x.shape[d]).u(xs[d]);
  const lines: string[] = ["var rem = i;", "var off = 0u;", "var inside = true;"];
  for (let d = rank - 1; d >= 0; d--) {
    const b = 2 + 4 * d;
    lines.push(d === 0 ? "let c = rem;" : `{ let c = rem % ${pu(b)}; rem = rem / ${pu(b)};`);
    // c - before wraps to a huge u32 when negative, so one compare checks both ends
    lines.push(`let ci = c - ${pu(b + 1)}; inside = inside && ci < ${pu(b + 2)}; off += ci * ${pu(b + 3)};`);
    if (d !== 0) lines.push("}");
  }
  const wgsl = () => `${header(2 + 4 * rank, [{ name: "out", type: "u32", write: true }, { name: "src", type: "u32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  ${lines.join("\n  ")}
  if (inside) { out[i] = src[off]; } else { out[i] = ${pu(1)}; }
}`;
  ctx.dispatch({
    label: "pad", key: `pad:r${rank}`, wgsl,
    buffers: [ctx.ref(out, "pad"), ctx.ref(x, "pad")],
    params: w.words(),
    groups: grid(ceilDiv(n, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/**
 * Concat of up to `g` inputs in one dispatch (a launch costs host time: a gradient norm over
 * 190 parameter tensors concatenated 190 one-element sums, one dispatch each). Thread i is
 * element i of the inputs laid end to end; it finds its input k from the starts (ascending) and
 * copies to out[(e / inner_k) · innerOut + off_k + e % inner_k]. params: total, innerOut, then
 * per input: start, inner, off.
 */
function concatWgsl(g: number): string {
  const bufs = [{ name: "out", type: "u32", write: true }, ...Array.from({ length: g }, (_, k) => ({ name: `x${k}`, type: "u32" }))];
  const find = Array.from({ length: g - 1 }, (_, k) => `if (i >= ${pu(2 + 3 * (k + 1))}) { k = ${k + 1}u; }`).join(" ");
  const copy = Array.from({ length: g }, (_, k) => {
    const body = `let e = i - ${pu(2 + 3 * k)}; let inner = ${pu(3 + 3 * k)}; out[(e / inner) * ${pu(1)} + ${pu(4 + 3 * k)} + e % inner] = x${k}[e];`;
    return g === 1 ? body : `${k ? "else " : ""}${k < g - 1 ? `if (k == ${k}u) ` : ""}{ ${body} }`;
  }).join("\n  ");
  return `${header(2 + 3 * g, bufs)}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  var k = 0u;
  ${find}
  ${copy}
}`;
}

/** The most inputs one concat dispatch binds (the output takes one storage binding). */
const CONCAT_GROUP = 7;

/**
 * Copies each input into its band of the output, out[o, off + j] = x[o, j] over [outer, inner],
 * up to CONCAT_GROUP inputs (and the device's storage-buffer limit) per dispatch.
 */
export function concatKernel(ctx: GpuCtx, xs: readonly KernelArg[], out: KernelArg, p: PrimParams["concat"]): void {
  const ax = p.axis;
  const innerOut = prod(out.shape.slice(ax));
  const per = Math.max(1, Math.min(CONCAT_GROUP, ctx.limits.maxStorageBuffersPerShaderStage - 1));
  let off = 0;
  let group: { x: KernelArg; n: number; inner: number; off: number }[] = [];
  const flush = () => {
    if (group.length === 0) return;
    const w = new ParamWords().u(0).u(innerOut);
    let total = 0;
    for (const e of group) {
      w.u(total).u(e.inner).u(e.off);
      total += e.n;
    }
    const words = w.words();
    words[0] = total;
    const g = group.length;
    ctx.dispatch({
      label: "concat", key: `concat:${g}`, wgsl: () => concatWgsl(g),
      buffers: [ctx.ref(out, "concat"), ...group.map((e) => ctx.ref(e.x, "concat"))],
      params: words,
      groups: grid(ceilDiv(total, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    group = [];
  };
  for (const x of xs) {
    const inner = prod(x.shape.slice(ax));
    const n = prod(x.shape);
    if (n > 0) {
      group.push({ x, n, inner, off });
      if (group.length === per) flush();
    }
    off += inner;
  }
  flush();
}
