/**
 * Reductions (sum, max) over any set of axes, keepDims output.
 *
 * The input's axes are coalesced into alternating groups of kept and reduced axes. A workgroup of
 * 256 threads handles OX consecutive outputs with LANES = 256 / OX threads each:
 * - reduced innermost group: the lanes of an output stride along the contiguous reduced run
 *   (OX = 1 for long runs, more outputs per workgroup for short ones);
 * - kept innermost group: OX (up to 64) consecutive outputs sit on adjacent threads, so each
 *   step reads a contiguous row; the lanes split the reduced range.
 * Each thread accumulates sequentially (Kahan-compensated for sums), then the lanes are combined
 * in workgroup memory (context.ts workgroupCombine). When there are few outputs and a long
 * reduction, a first pass writes partial results for S chunks of the reduced range ([S, outputs],
 * scratch) and a second pass reduces those, so the whole GPU works on it.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import {
  ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, strides, workgroupCombine, type BufRef, type GpuCtx,
} from "../context.ts";

const WG = 256;

export interface Group {
  size: number;
  stride: number;
  reduced: boolean;
}

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Coalesces the input's axes into alternating kept / reduced groups (size-1 axes dropped). */
function groupsOf(shape: readonly number[], axes: readonly number[]): Group[] {
  const st = strides(shape);
  const gs: Group[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const reduced = axes.includes(d);
    const last = gs[gs.length - 1];
    if (last && last.reduced === reduced) {
      last.size *= shape[d];
      last.stride = st[d];
    } else gs.push({ size: shape[d], stride: st[d], reduced });
  }
  return gs;
}

/** WGSL: decompose `idx` over the groups (outermost first), summing coord * stride into `acc`. */
function chain(idx: string, sizes: string[], strideExprs: string[], acc: string, tmp: string): string {
  const n = sizes.length;
  if (n === 0) return `let ${acc} = 0u;`;
  if (n === 1) return `let ${acc} = ${idx} * ${strideExprs[0]};`;
  const lines = [`var ${acc} = 0u;`, `var ${tmp} = ${idx};`];
  for (let j = n - 1; j >= 0; j--) {
    if (j === 0) lines.push(`${acc} += ${tmp} * ${strideExprs[0]};`);
    else lines.push(`${acc} += (${tmp} % ${sizes[j]}) * ${strideExprs[j]}; ${tmp} = ${tmp} / ${sizes[j]};`);
  }
  return lines.join("\n    ");
}

interface ReduceCfg {
  op: "sum" | "max";
  /** Kept / reduced groups in the shader (padded with size-1 groups). */
  nk: number;
  nr: number;
}

/**
 * params: nOut, S, CH, R, ox, lanes, source offset, then kept sizes+strides (nk), reduced
 * sizes+strides (nr).
 * OX and the lane count are runtime values, so a handful of pipelines serve every reduction.
 */
function reduceWgsl(c: ReduceCfg): string {
  const kb = 7, rb = 7 + 2 * c.nk;
  const nWords = rb + 2 * c.nr;
  const isMax = c.op === "max";
  const ident = isMax ? "-bitcast<f32>(ninf)" : "0.0f";
  const combine = (a: string, b: string) =>
    isMax ? `select(${a}, ${b}, ${b} > ${a} || (bitcast<u32>(${b}) & 0x7fffffffu) > 0x7f800000u)` : `${a} + ${b}`;
  const keptChain = chain("o", range(c.nk).map((j) => pu(kb + 2 * j)), range(c.nk).map((j) => pu(kb + 2 * j + 1)), "base", "ko");
  const redChain = chain("r", range(c.nr).map((j) => pu(rb + 2 * j)), range(c.nr).map((j) => pu(rb + 2 * j + 1)), "roff", "ro");
  const accumulate = isMax
    ? `acc = ${combine("acc", "v")};`
    : // Kahan: comp carries the low bits lost by acc + v
      `let y = v - comp; let t = acc + y; comp = (t - acc) - y; acc = t;`;
  return `${header(nWords, [{ name: "out", type: "f32", write: true }, { name: "src", type: "f32" }])}
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let ninf = 0x7f800000u;
  let nOut = ${pu(0)};
  let total = nOut * ${pu(1)};
  let OX = ${pu(4)}; let lanes = ${pu(5)};
  if (wg * OX >= total) { return; }
  let ox = lid % OX;
  let lane = lid / OX;
  let op = wg * OX + ox;
  var acc = ${ident};
  var comp = 0.0f;
  if (op < total && lane < lanes) {
    let s = op / nOut;
    let o = op % nOut;
    ${keptChain}
    let r0 = s * ${pu(2)};
    let r1 = min(${pu(3)}, r0 + ${pu(2)});
    for (var r = r0 + lane; r < r1; r += lanes) {
      ${redChain}
      let v = src[${pu(6)} + base + roff];
      ${accumulate}
    }
  }
  sh[lid] = acc;
  ${workgroupCombine(combine)}
  if (lane == 0u && op < total) { out[op] = sh[lid]; }
}`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** One reduction pass over groups of `src` into `dst` ([S, outputs] when split into S chunks). */
function reducePass(ctx: GpuCtx, op: "sum" | "max", src: BufRef, dst: BufRef, gs: Group[], S: number, srcOff = 0): void {
  const kept = gs.filter((g) => !g.reduced), red = gs.filter((g) => g.reduced);
  const nOut = prod(kept.map((g) => g.size));
  const R = prod(red.map((g) => g.size));
  const innerKept = gs.length > 0 && !gs[gs.length - 1].reduced;
  let ox: number;
  if (innerKept) ox = Math.min(64, pow2ceil(gs[gs.length - 1].size));
  else ox = WG / Math.min(WG, pow2ceil(Math.max(1, Math.ceil(R / S))));
  const CH = Math.ceil(R / S);
  // pad: kept groups to 3 (outermost first, so pad in front), reduced to 1 or 2
  const nk = Math.max(3, kept.length), nr = red.length <= 1 ? 1 : Math.max(2, red.length);
  const padK: Group[] = [...range(nk - kept.length).map(() => ({ size: 1, stride: 0, reduced: false })), ...kept];
  const padR: Group[] = [...range(nr - red.length).map(() => ({ size: 1, stride: 0, reduced: true })), ...red];
  const w = new ParamWords().u(nOut).u(S).u(CH).u(R).u(ox).u(WG / ox).u(srcOff);
  for (const g of padK) w.u(g.size).u(g.stride);
  for (const g of padR) w.u(g.size).u(g.stride);
  const cfg: ReduceCfg = { op, nk, nr };
  ctx.dispatch({
    label: op, key: `reduce:${op}:k${nk}:r${nr}`, wgsl: () => reduceWgsl(cfg),
    buffers: [dst, src], params: w.words(),
    groups: grid(ceilDiv(nOut * S, ox), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export function reduceKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["reduce"]): void {
  const nOut = prod(out.shape);
  if (nOut === 0) return;
  const gs = groupsOf(x.shape, p.axes);
  reduceGroups(ctx, p.op, ctx.ref(x, p.op), ctx.ref(out, p.op), gs);
}

/**
 * Reduces `src` (from element `srcOff`) over its reduced groups into the dense `dst` (the kept
 * groups in order), in
 * one pass or, with few workgroups for a long reduction, two: S chunks of the reduced range
 * first (about 1024 workgroups in all, at least 256 terms each), then the S partials.
 * (Measured on an H100: [4096, 4096] summed over axis 0 in one pass runs 64 workgroups,
 * 165 GB/s.)
 */
export function reduceGroups(ctx: GpuCtx, op: "sum" | "max", src: BufRef, dst: BufRef, gs: Group[], srcOff = 0): void {
  const nOut = prod(gs.filter((g) => !g.reduced).map((g) => g.size));
  const R = prod(gs.filter((g) => g.reduced).map((g) => g.size));
  const innerKept = gs.length > 0 && !gs[gs.length - 1].reduced;
  const ox = innerKept ? Math.min(64, pow2ceil(gs[gs.length - 1].size)) : 1;
  const wgs = ceilDiv(nOut, ox);
  const S = R >= 1024 && wgs < 256 ? Math.max(1, Math.min(Math.floor(1024 / wgs), Math.ceil(R / 256))) : 1;
  if (S <= 1 || R === 0) {
    reducePass(ctx, op, src, dst, gs, 1, srcOff);
    return;
  }
  const partial = ctx.temp(S * nOut * 4);
  reducePass(ctx, op, src, partial, gs, S, srcOff);
  const second: Group[] = [{ size: S, stride: nOut, reduced: true }];
  if (nOut > 1) second.push({ size: nOut, stride: 1, reduced: false });
  reducePass(ctx, op, partial, dst, second, 1);
  ctx.releaseTemp(partial);
}
