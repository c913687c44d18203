/**
 * The WGSL sources of the reductions (reduceWgsl) and of maxGrad, the VJP of a max reduction
 * (maxGradWgsl), with their helpers: the index chain over coalesced groups and the fixed-order
 * lane combine. The plans and launches that use them are in reduce.ts.
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu, workgroupCombine } from "../context.ts";

export const WG = 256;

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

export interface ReduceCfg {
  op: "sum" | "max";
  /** Kept / reduced groups in the shader (padded with size-1 groups). */
  nk: number;
  nr: number;
  /** Thread layout: the lanes of one output adjacent (reduced innermost) or the outputs adjacent. */
  laneInner: boolean;
}

/**
 * WGSL: combines the `lanes` (a power of two) partial values sh[lane·OX + ox] of each of OX
 * outputs into `t` of lane 0, in a fixed order: groups of 16 lanes first (lane 16j adds its 15
 * neighbours), then lane 0 adds the group results. Two barriers, no barrier inside a loop (cheap
 * to compile on lavapipe), at most 30 serial workgroup-memory reads. The caller stored
 * sh[lane·OX + ox] and defined `lane`, `ox`, `OX`, `lanes`; `then` runs in lane 0 with `t`.
 */
function laneCombine(combine: (a: string, b: string) => string, then: string, sh = "sh"): string {
  return `workgroupBarrier();
  if (lanes > 16u) {
    if (lane % 16u == 0u) {
      var t = ${sh}[lane * OX + ox];
      for (var j = 1u; j < 16u; j++) { t = ${combine("t", `${sh}[(lane + j) * OX + ox]`)}; }
      ${sh}[lane * OX + ox] = t;
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    var t = ${sh}[ox];
    let st = select(1u, 16u, lanes > 16u);
    for (var j = st; j < lanes; j += st) { t = ${combine("t", `${sh}[j * OX + ox]`)}; }
    ${then}
  }`;
}

/**
 * params: nOut, S, CH, R, ox, lanes, source offset, then kept sizes+strides (nk), reduced
 * sizes+strides (nr).
 * OX and the lane count are runtime values, so a handful of pipelines serve every reduction.
 */
export function reduceWgsl(c: ReduceCfg): string {
  const kb = 7, rb = 7 + 2 * c.nk;
  const nWords = rb + 2 * c.nr;
  const isMax = c.op === "max";
  const ident = isMax ? "-bitcast<f32>(ninf)" : "0.0f";
  const combine = (a: string, b: string) =>
    isMax ? `select(${a}, ${b}, ${b} > ${a} || (bitcast<u32>(${b}) & 0x7fffffffu) > 0x7f800000u)` : `${a} + ${b}`;
  const keptChain = chain("o", range(c.nk).map((j) => pu(kb + 2 * j)), range(c.nk).map((j) => pu(kb + 2 * j + 1)), "base", "ko");
  const redChain = (idx: string, q: string) =>
    chain(idx, range(c.nr).map((j) => pu(rb + 2 * j)), range(c.nr).map((j) => pu(rb + 2 * j + 1)), `roff${q}`, `ro${q}`);
  const load = (idx: string, q: string) => `${redChain(idx, q)}
      let v${q} = src[${pu(6)} + base + roff${q}];`;
  const accumulate = (v: string) => isMax
    ? `acc = ${combine("acc", v)};`
    : // Kahan: comp carries the low bits lost by acc + v
      `{ let y = ${v} - comp; let t = acc + y; comp = (t - acc) - y; acc = t; }`;
  const Q = ["a", "b", "c", "d"];
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
  ${c.laneInner ? "let ox = lid / lanes; let lane = lid % lanes;" : "let ox = lid % OX; let lane = lid / OX;"}
  let op = wg * OX + ox;
  var acc = ${ident};
  var comp = 0.0f;
  if (op < total) {
    let s = op / nOut;
    let o = op % nOut;
    ${keptChain}
    let r1 = min(${pu(3)}, s * ${pu(2)} + ${pu(2)});
    var r = s * ${pu(2)} + lane;
    // four independent loads in flight, then their terms in order
    while (r + 3u * lanes < r1) {
      let ra = r; let rb = r + lanes; let rc = rb + lanes; let rd = rc + lanes;
      ${Q.map((q) => load(`r${q}`, q)).join("\n      ")}
      ${Q.map((q) => accumulate(`v${q}`)).join("\n      ")}
      r = rd + lanes;
    }
    while (r < r1) {
      ${load("r", "a")}
      ${accumulate("va")}
      r += lanes;
    }
  }
  sh[lane * OX + ox] = acc;
  ${laneCombine(combine, "if (op < total) { out[op] = t; }")}
}`;
}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

// ---------- maxGrad: the VJP of a max reduction ----------

export interface MaxGradCfg {
  /** Kept / reduced groups in the shader (padded with size-1 groups). */
  nk: number;
  nr: number;
  laneInner: boolean;
}

/**
 * params: nOut, R, ox, lanes, then kept sizes+strides (nk), reduced sizes+strides (nr).
 * Each output o (one group of x) has `lanes` threads: each counts the ties x = y[o] in its strided
 * share of the group, the counts are added in workgroup memory (skipped when lanes is 1: no
 * barrier), then each thread writes its share of dx = (g + 0) · (mask / count). The two passes
 * read x twice; the second read hits the cache. The arithmetic is the composite's, op by op:
 * - x = y is IEEE (false for NaN): a NaN test on y keeps it so where a compiler assumes no NaNs;
 * - count 0 (a NaN max) gives NaN, the composite's 0 / 0, written explicitly for the same reason;
 * - g + 0 (the composite's broadcast adds zeros) turns −0 into +0: done on the bits, which no
 *   compiler folds away; not for groups of one (R = 1), where g has x's shape and the composite
 *   does not broadcast.
 */
export function maxGradWgsl(c: MaxGradCfg): string {
  const kb = 4, rb = 4 + 2 * c.nk;
  const keptChain = chain("oc", range(c.nk).map((j) => pu(kb + 2 * j)), range(c.nk).map((j) => pu(kb + 2 * j + 1)), "base", "ko");
  const redChain = chain("r", range(c.nr).map((j) => pu(rb + 2 * j)), range(c.nr).map((j) => pu(rb + 2 * j + 1)), "roff", "ro");
  return `${header(rb + 2 * c.nr, [
    { name: "out", type: "f32", write: true }, { name: "x", type: "f32" }, { name: "y", type: "f32" }, { name: "g", type: "f32" },
  ])}
var<workgroup> sh: array<u32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let nOut = ${pu(0)}; let R = ${pu(1)};
  let OX = ${pu(2)}; let lanes = ${pu(3)};
  if (wg * OX >= nOut) { return; }
  ${c.laneInner ? "let ox = lid / lanes; let lane = lid % lanes;" : "let ox = lid % OX; let lane = lid / OX;"}
  let o = wg * OX + ox;
  let live = o < nOut;
  let oc = min(o, nOut - 1u);
  ${keptChain}
  let yv = y[oc];
  let yNum = (bitcast<u32>(yv) & 0x7fffffffu) <= 0x7f800000u;
  var cnt = 0u;
  if (live) {
    for (var r = lane; r < R; r += lanes) {
      ${redChain}
      if (x[base + roff] == yv && yNum) { cnt += 1u; }
    }
  }
  if (lanes > 1u) {
    sh[lane * OX + ox] = cnt;
    ${workgroupCombine((a, b) => `${a} + ${b}`)}
    cnt = sh[ox];
  }
  if (live) {
    let gb = bitcast<u32>(g[oc]);
    let gv = bitcast<f32>(select(gb, 0u, gb == 0x80000000u && R > 1u));
    let cf = f32(cnt);
    let qnan = 0x7fc00000u; // a let, not a constant: WGSL rejects a constant NaN
    for (var r = lane; r < R; r += lanes) {
      ${redChain}
      let hit = x[base + roff] == yv && yNum;
      let m = select(select(0.0f, 1.0f, hit) / cf, bitcast<f32>(qnan), cnt == 0u);
      out[base + roff] = gv * m;
    }
  }
}`;
}
