/**
 * Reductions (sum, max) over any set of axes, keepDims output.
 *
 * The input's axes are coalesced into alternating groups of kept and reduced axes. A workgroup of
 * 256 threads handles OX consecutive outputs with LANES = 256 / OX threads each:
 * - reduced innermost group: the lanes of an output stride along the contiguous reduced run
 *   (OX = 1 for long runs, more outputs per workgroup for short ones);
 * - kept innermost group: OX (up to 64) consecutive outputs sit on adjacent threads, so each
 *   step reads a contiguous row; the lanes split the reduced range.
 * Each thread accumulates sequentially (Kahan-compensated for sums), then a workgroup tree
 * combines the lanes. When there are few outputs and a long reduction, a first pass writes
 * partial results for S chunks of the reduced range ([S, outputs], scratch) and a second pass
 * reduces those, so the whole GPU works on it.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import {
  ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, strides, type BufRef, type GpuCtx,
} from "../context.ts";

const WG = 256;

interface Group {
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
  kept: Group[];
  red: Group[];
  ox: number;
}

function reduceWgsl(c: ReduceCfg): string {
  const lanes = WG / c.ox;
  const nk = c.kept.length, nr = c.red.length;
  // params: nOut, S, CH, R, then kept sizes+strides, reduced sizes+strides
  const kb = 4, rb = 4 + 2 * nk;
  const nWords = rb + 2 * nr;
  const isMax = c.op === "max";
  const ident = isMax ? "-bitcast<f32>(ninf)" : "0.0f";
  const combine = (a: string, b: string) =>
    isMax ? `select(${a}, ${b}, ${b} > ${a} || (bitcast<u32>(${b}) & 0x7fffffffu) > 0x7f800000u)` : `${a} + ${b}`;
  const keptChain = chain("o", c.kept.map((_, j) => pu(kb + 2 * j)), c.kept.map((_, j) => pu(kb + 2 * j + 1)), "base", "ko");
  const redChain = chain("r", c.red.map((_, j) => pu(rb + 2 * j)), c.red.map((_, j) => pu(rb + 2 * j + 1)), "roff", "ro");
  const steps: string[] = [];
  for (let s = lanes / 2; s >= 1; s /= 2) {
    steps.push(`if (lane < ${s}u) { sh[lid] = ${combine("sh[lid]", `sh[lid + ${s * c.ox}u]`)}; }\n  workgroupBarrier();`);
  }
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
  if (wg * ${c.ox}u >= total) { return; }
  let ox = lid % ${c.ox}u;
  let lane = lid / ${c.ox}u;
  let op = wg * ${c.ox}u + ox;
  var acc = ${ident};
  var comp = 0.0f;
  if (op < total) {
    let s = op / nOut;
    let o = op % nOut;
    ${keptChain}
    let r0 = s * ${pu(2)};
    let r1 = min(${pu(3)}, r0 + ${pu(2)});
    for (var r = r0 + lane; r < r1; r += ${lanes}u) {
      ${redChain}
      let v = src[base + roff];
      ${accumulate}
    }
  }
  sh[lid] = acc;
  workgroupBarrier();
  ${steps.join("\n  ")}
  if (lane == 0u && op < total) { out[op] = sh[lid]; }
}`;
}

/** One reduction pass over groups of `src` into `dst` ([S, outputs] when split into S chunks). */
function reducePass(ctx: GpuCtx, op: "sum" | "max", src: BufRef, dst: BufRef, gs: Group[], S: number): void {
  const kept = gs.filter((g) => !g.reduced), red = gs.filter((g) => g.reduced);
  const nOut = prod(kept.map((g) => g.size));
  const R = prod(red.map((g) => g.size));
  const innerKept = gs.length > 0 && !gs[gs.length - 1].reduced;
  let ox: number;
  if (innerKept) ox = Math.min(64, pow2ceil(gs[gs.length - 1].size));
  else ox = WG / Math.min(WG, pow2ceil(Math.max(1, Math.ceil(R / S))));
  const CH = Math.ceil(R / S);
  const w = new ParamWords().u(nOut).u(S).u(CH).u(R);
  for (const g of kept) w.u(g.size).u(g.stride);
  for (const g of red) w.u(g.size).u(g.stride);
  const cfg: ReduceCfg = { op, kept, red, ox };
  ctx.dispatch({
    label: op, key: `reduce:${op}:k${kept.length}:r${red.length}:ox${ox}`, wgsl: () => reduceWgsl(cfg),
    buffers: [dst, src], params: w.words(),
    groups: grid(ceilDiv(nOut * S, ox), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export function reduceKernel(ctx: GpuCtx, [x]: readonly KernelArg[], out: KernelArg, p: PrimParams["reduce"]): void {
  const nOut = prod(out.shape);
  if (nOut === 0) return;
  const gs = groupsOf(x.shape, p.axes);
  const R = prod(x.shape) / nOut;
  const src = ctx.ref(x, p.op), dst = ctx.ref(out, p.op);
  // few outputs, long reduction: split the reduced range into S chunks (two passes)
  const innerKept = gs.length > 0 && !gs[gs.length - 1].reduced;
  const ox = innerKept ? Math.min(64, pow2ceil(gs[gs.length - 1].size)) : 1;
  const wgs = ceilDiv(nOut, ox);
  const S = R >= 8192 && wgs < 256 ? Math.max(1, Math.min(Math.floor(1024 / wgs), Math.ceil(R / 2048))) : 1;
  if (S <= 1 || R === 0) {
    reducePass(ctx, p.op, src, dst, gs, 1);
    return;
  }
  const partial = ctx.temp(S * nOut * 4);
  reducePass(ctx, p.op, src, partial, gs, S);
  const second: Group[] = [{ size: S, stride: nOut, reduced: true }];
  if (nOut > 1) second.push({ size: nOut, stride: 1, reduced: false });
  reducePass(ctx, p.op, partial, dst, second, 1);
  ctx.releaseTemp(partial);
}
