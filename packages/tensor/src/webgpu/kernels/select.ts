/**
 * causalSelect: mask, score [B, L] → out [B, L, k] (i32), the positions j < t a bounded memory
 * of k slots holds at t ("last": FIFO; "top": evicts the lowest score, the oldest among equals),
 * increasing, −1 in unused slots. See cpu/select.ts for the reference.
 *
 * Two formulations:
 * - the walks (selectWgsl, selectWgWgsl) replay the memory's history step by step along L: one
 *   thread, or one workgroup, per row. Parallel over B only, so latency-bound (a MemMamba training
 *   step at B = 8, L = 2048, k = 50 spent 3.3 ms a call in the workgroup walk on an H200);
 * - the parallel one (selectEndWgsl, selectFillWgsl), used up to selectTuning.parallelMaxL: order
 *   the set positions by key(j) = (score[j], j), higher is better ("last": key(j) = j). Evicting
 *   the lowest key of the held ones and the newcomer keeps exactly the k best keys seen so far
 *   (the newcomer is the youngest, so "ties evict the oldest" is "lower j loses"). So position j
 *   is held at t iff j < t and fewer than k set positions i < t have a better key: with c0 such
 *   positions before j, it is held for t ∈ [j + 1, e_j], e_j the position of the (k − c0)-th set
 *   i > j with a better key (or L, or never held when c0 ≥ k). Pass 1 computes e_j, a thread per
 *   (b, j), each scanning the row: O(L²) per row in "top" mode, where a position that ranks among
 *   the k best so far needs every better key before it; in "last" mode, and for positions that
 *   cannot be held, the scan before j stops after k set positions. Pass 2, a thread per (b, t),
 *   walks j = t − 1, t − 2, … collecting the held ones until it has min(k, #set positions < t)
 *   (the reference's count), and pads with −1.
 *
 * NaN scores ("top"), as the reference's comparisons treat them: a NaN newcomer to a full memory
 * is dropped (it compares below everything), a NaN that entered while the memory filled up is
 * never evicted (it compares with nothing). So the parallel kernel holds those fill-time NaNs
 * for good, ignores later NaNs, and runs the rule above on the other positions with k − m slots
 * (m fill-time NaNs). Scores are compared as integers that order like the floats (−0 = +0, no
 * flush of subnormals), so the result does not depend on the GPU's float compare. The walks do
 * not model NaN (beyond L > parallelMaxL a NaN score may give another answer than the CPU).
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import type { DType } from "../../dtype.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";

const WG = 64;

/** params: B, L, k, mode (0 last, 1 top): one shader for both modes. */
function selectWgsl(maskType: DType, scoreType: DType): string {
  const set = maskType === "f32" ? "(bitcast<u32>(mask[j]) & 0x7fffffffu) != 0u" : "mask[j] != 0i";
  const update = `if (${pu(3)} == 0u) {
        for (var q = 1u; q < k; q++) { out[o + q - 1u] = out[p + q]; }
        out[o + k - 1u] = i32(t - 1u);
      } else {
        var worst = -1i;
        var ws = score[j];
        for (var q = 0u; q < k; q++) {
          let v = score[b * L + u32(out[p + q])];
          if (v < ws || (v == ws && worst == -1i)) { ws = v; worst = i32(q); }
        }
        if (worst < 0i) {
          for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
        } else {
          var w = 0u;
          for (var q = 0u; q < k; q++) { if (i32(q) != worst) { out[o + w] = out[p + q]; w++; } }
          out[o + k - 1u] = i32(t - 1u);
        }
      }`;
  return `${header(4, [{ name: "out", type: "i32", write: true }, { name: "mask", type: maskType }, { name: "score", type: scoreType }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let b = wg * ${WG}u + lid;
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)};
  if (b >= B) { return; }
  for (var q = 0u; q < k; q++) { out[b * L * k + q] = -1i; }
  var cnt = 0u;
  for (var t = 1u; t < L; t++) {
    let o = (b * L + t) * k;
    let p = o - k;
    let j = b * L + t - 1u;
    if (!(${set})) {
      for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
    } else if (cnt < k) {
      for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
      out[o + cnt] = i32(t - 1u);
      cnt++;
    } else {
      ${update}
    }
  }
}`;
}

/** Largest pool the workgroup kernel holds in workgroup memory (larger: the one-thread walk). */
const KMAX = 512;
const WGS = 64;

/**
 * One workgroup per row b: the held list lives in workgroup memory (two copies, written in
 * turn), each thread owns slots q ≡ lid (mod 64), and every step t costs a few barriers: a tree
 * argmin over the held scores ("top" mode), the copy into the other list with the shift applied,
 * and the coalesced write of row t. The decisions are the one-thread walk's (selectWgsl): the
 * evicted slot is the first one holding the lowest score, and only when that score is ≤ the new
 * one. (The walk took 23 ms a call for B = 8, L = 2048, k = 50 on an H100: latency-bound.)
 */
function selectWgWgsl(maskType: DType, scoreType: DType): string {
  const set = maskType === "f32" ? "(bitcast<u32>(mask[j]) & 0x7fffffffu) != 0u" : "mask[j] != 0i";
  const S = scoreType === "f32" ? "f32" : "i32";
  return `${header(4, [{ name: "out", type: "i32", write: true }, { name: "mask", type: maskType }, { name: "score", type: scoreType }])}
var<workgroup> slots: array<i32, ${2 * KMAX}>;
var<workgroup> sscore: array<${S}, ${2 * KMAX}>;
var<workgroup> redV: array<${S}, ${WGS}>;
var<workgroup> redQ: array<u32, ${WGS}>;
@compute @workgroup_size(${WGS})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let b = wg;
  if (b >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let k = ${pu(2)}; let top = ${pu(3)} == 1u;
  for (var q = lid; q < k; q += ${WGS}u) { slots[q] = -1i; out[b * L * k + q] = -1i; }
  var cnt = 0u;
  var cur = 0u;
  workgroupBarrier();
  for (var t = 1u; t < L; t++) {
    let j = b * L + t - 1u;
    let isSet = ${set};
    let sj = score[j];
    let cb = cur * ${KMAX}u;
    let nx = (cur ^ 1u) * ${KMAX}u;
    // where the shift starts (k: none) and whether t − 1 goes in at the end
    var start = k;
    var append = false;
    if (top) {
      var bv = sj;
      var bq = 0xffffffffu;
      for (var q = lid; q < k; q += ${WGS}u) {
        let v = sscore[cb + q];
        if (bq == 0xffffffffu || v < bv) { bv = v; bq = q; }
      }
      redV[lid] = bv;
      redQ[lid] = bq;
      workgroupBarrier();
      for (var off = ${WGS / 2}u; off > 0u; off = off >> 1u) {
        if (lid < off) {
          let ov = redV[lid + off];
          let oq = redQ[lid + off];
          if (oq != 0xffffffffu && (redQ[lid] == 0xffffffffu || ov < redV[lid] || (ov == redV[lid] && oq < redQ[lid]))) {
            redV[lid] = ov;
            redQ[lid] = oq;
          }
        }
        workgroupBarrier();
      }
      if (isSet && cnt >= k && redQ[0] != 0xffffffffu && redV[0] <= sj) { start = redQ[0]; append = true; }
    } else if (isSet && cnt >= k) {
      start = 0u;
      append = true;
    }
    // each slot written by the thread that owns it (no other thread touches nx + q)
    let fill = select(k, cnt, isSet && cnt < k);
    for (var q = lid; q < k; q += ${WGS}u) {
      if ((append && q == k - 1u) || q == fill) {
        slots[nx + q] = i32(t - 1u);
        sscore[nx + q] = sj;
      } else {
        var src = q;
        if (q >= start && q + 1u < k) { src = q + 1u; }
        slots[nx + q] = slots[cb + src];
        sscore[nx + q] = sscore[cb + src];
      }
    }
    if (isSet && cnt < k) { cnt++; }
    cur = cur ^ 1u;
    workgroupBarrier();
    let o = (b * L + t) * k;
    for (var q = lid; q < k; q += ${WGS}u) { out[o + q] = slots[nx + q]; }
  }
}`;
}

/** Threads per workgroup of the parallel kernels. */
const WGP = 64;
/**
 * Loads in flight per thread in the parallel kernels' scans: each scan is a serial loop of L
 * steps per thread at worst ("top" mode), so it is bound by memory latency, not bandwidth.
 */
const SEL_WIN = 4;

/**
 * WGSL on the raw u32 bits of mask and score entries (the bindings are read as u32, so no float
 * op touches a NaN or a subnormal): `isSet(maskBits)`, `isNan(scoreBits)` and `ord(scoreBits)`,
 * an integer that orders like the score (−0 and +0 equal).
 */
function bitsFns(maskType: DType, scoreType: DType): string {
  const set = maskType === "f32" ? "(m & 0x7fffffffu) != 0u" : "m != 0u";
  const nan = scoreType === "f32" ? "(s & 0x7fffffffu) > 0x7f800000u" : "false";
  const ord = scoreType === "f32"
    ? `var u = s;
  if (u == 0x80000000u) { u = 0u; }
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);`
    : "return s ^ 0x80000000u;";
  return `fn isSet(m: u32) -> bool { return ${set}; }
fn isNan(s: u32) -> bool { return ${nan}; }
fn ord(s: u32) -> u32 {
  ${ord}
}`;
}

/**
 * Pass 1, a thread per (b, j), workgroups within one row (so the scan over i reads the same
 * address in every thread: a broadcast). Writes ends[b·L + j] = e_j (the last t at which j is
 * held; 0 when never) and ends[B·L + b·L + j] = min(k, the number of set positions ≤ j).
 * params: B, L, k, mode (0 last, 1 top).
 */
function selectEndWgsl(maskType: DType, scoreType: DType): string {
  return `${header(4, [{ name: "ends", type: "u32", write: true }, { name: "mask", type: "u32" }, { name: "score", type: "u32" }])}
${bitsFns(maskType, scoreType)}
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let top = ${pu(3)} == 1u;
  let per = (L + ${WGP - 1}u) / ${WGP}u;
  let b = wg / per;
  let j = (wg % per) * ${WGP}u + lid;
  if (b >= B || j >= L) { return; }
  let row = b * L;
  let mySet = isSet(mask[row + j]);
  let myNan = top && isNan(score[row + j]);
  // "last": every key 0, so the position alone decides (later is better)
  var myKey = 0u;
  if (top) { myKey = ord(score[row + j]); }
  // only a position that may be held in "top" mode needs the better keys before it; the others
  // need only min(k, #set positions before j), known once k are counted: they skip to j
  let needC0 = top && mySet && !myNan;
  var nset = 0u; // set positions before i (counted exactly up to k)
  var m = 0u;    // NaN scores among the first k set positions (held for good), before i
  var c0 = 0u;   // better keys before j
  var cnt = 0u;  // better keys after j, up to i
  var rank = 0u; // min(k, set positions before j)
  var e = L;
  // a window of the next WIN (mask, score) pairs, loaded WIN iterations before their use: each
  // iteration issues one load pair that no branch of it waits for, so the loop is not one memory
  // round trip an iteration (reloaded after the skip to j)
  ${Array.from({ length: SEL_WIN }, (_, w) => `var wm${w} = 0u; var ws${w} = 0u;`).join(" ")}
  var wi = L; // the index the window starts at (L: none loaded)
  for (var i = 0u; i < L; i++) {
    if (i < j && !needC0 && nset >= k) { i = j; }
    if (i != wi) {
      ${Array.from({ length: SEL_WIN }, (_, w) => `wm${w} = mask[row + min(i + ${w}u, L - 1u)]; ws${w} = score[row + min(i + ${w}u, L - 1u)];`).join("\n      ")}
    }
    let mb = wm0;
    let sb = ws0;
    ${Array.from({ length: SEL_WIN - 1 }, (_, w) => `wm${w} = wm${w + 1}; ws${w} = ws${w + 1};`).join(" ")}
    wm${SEL_WIN - 1} = mask[row + min(i + ${SEL_WIN}u, L - 1u)]; ws${SEL_WIN - 1} = score[row + min(i + ${SEL_WIN}u, L - 1u)];
    wi = i + 1u;
    if (i == j) {
      rank = min(nset, k);
      if (!mySet) { e = 0u; break; }
      if (myNan) {
        if (rank >= k) { e = 0u; }
        break;
      }
      if (c0 + m >= k) { e = 0u; break; }
      nset++;
      continue;
    }
    if (!isSet(mb)) { continue; }
    if (top && isNan(sb)) {
      if (nset < k) { m++; }
      nset++;
      continue;
    }
    nset++;
    var v = 0u;
    if (top) { v = ord(sb); }
    if (i < j) {
      if (v > myKey) {
        c0++;
        // k better keys (or fill-time NaNs) before j: never held, and k set positions before it
        if (c0 + m >= k) { rank = k; e = 0u; break; }
      }
    } else if (v >= myKey) {
      cnt++;
      if (c0 + cnt + m >= k) { e = i; break; }
    }
  }
  ends[row + j] = e;
  ends[B * L + row + j] = min(k, rank + select(0u, 1u, mySet));
}`;
}

/**
 * Pass 2, a thread per (b, t): the reference holds min(k, #set positions < t) positions at t;
 * walk j = t − 1, t − 2, … and put each held one (e_j ≥ t) in the next slot from the right.
 * params: B, L, k.
 */
function selectFillWgsl(): string {
  return `${header(3, [{ name: "out", type: "i32", write: true }, { name: "ends", type: "u32" }])}
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)};
  let n = wg * ${WGP}u + lid;
  if (n >= B * L) { return; }
  let t = n % L;
  let row = n - t;
  let o = n * k;
  var have = 0u;
  if (t > 0u) { have = min(k, ends[B * L + n - 1u]); }
  for (var q = have; q < k; q++) { out[o + q] = -1i; }
  var slot = have;
  var j = t;
  // the next SEL_WIN ends (j − 1, j − 2, …) loaded SEL_WIN steps ahead of their use, as in pass 1
  ${Array.from({ length: SEL_WIN }, (_, w) => `var we${w} = ends[row + select(0u, t - ${w + 1}u, t >= ${w + 1}u)];`).join("\n  ")}
  loop {
    if (slot == 0u || j == 0u) { break; }
    j--;
    let ej = we0;
    ${Array.from({ length: SEL_WIN - 1 }, (_, w) => `we${w} = we${w + 1};`).join(" ")}
    we${SEL_WIN - 1} = ends[row + select(0u, j - ${SEL_WIN}u, j >= ${SEL_WIN}u)];
    if (ej >= t) {
      slot--;
      out[o + slot] = i32(j);
    }
  }
}`;
}

/**
 * Which kernel causalSelect runs. `parallelMaxL`: the longest row for the parallel kernels
 * (their work grows as L² per row; beyond it the walks, whose work grows as L·k). `force`:
 * "walk" / "parallel" to override the choice (benchmarks, tests). On an H200 (B 8, k 64, every
 * position set, "top"): parallel 0.60 / 5.6 / 14.5 ms against the walk's 3.2 / 25.6 / 51.4 ms at
 * L = 2K / 16K / 32K (webgpu-select, 2026-11-26); by the L² growth they cross near L = 100K.
 */
export const selectTuning: { parallelMaxL: number; force: "auto" | "walk" | "parallel" } = { parallelMaxL: 65536, force: "auto" };

/** The kernel causalSelect uses for rows of length L and pools of k (see selectTuning). */
export function causalSelectPlan(B: number, L: number, k: number, limits: GpuCtx["limits"]): "parallel" | "walkWg" | "walk" {
  const scratchFits = 2 * B * L * 4 <= limits.maxStorageBufferBindingSize;
  const parallel = selectTuning.force === "parallel" || (selectTuning.force === "auto" && L <= selectTuning.parallelMaxL);
  if (parallel && scratchFits) return "parallel";
  return k <= KMAX ? "walkWg" : "walk";
}

/** causalSelect on the GPU: the parallel kernels or a walk, as causalSelectPlan says. */
export function causalSelectKernel(ctx: GpuCtx, [mask, score]: readonly KernelArg[], out: KernelArg, p: PrimParams["causalSelect"]): void {
  const [B, L] = mask.shape;
  if (B * L * p.k === 0) return;
  const mode = p.mode === "last" ? 0 : 1;
  const plan = causalSelectPlan(B, L, p.k, ctx.limits);
  if (plan === "parallel") {
    const ends: BufRef = ctx.temp(2 * B * L * 4);
    ctx.dispatch({
      label: "causalSelect", key: `causalSelectEnd:${mask.dtype}${score.dtype}`,
      wgsl: () => selectEndWgsl(mask.dtype, score.dtype),
      buffers: [ends, ctx.ref(mask, "causalSelect"), ctx.ref(score, "causalSelect")],
      params: new ParamWords().u(B).u(L).u(p.k).u(mode).words(),
      groups: grid(B * ceilDiv(L, WGP), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    ctx.dispatch({
      label: "causalSelect", key: "causalSelectFill",
      wgsl: selectFillWgsl,
      buffers: [ctx.ref(out, "causalSelect"), ends],
      params: new ParamWords().u(B).u(L).u(p.k).words(),
      groups: grid(ceilDiv(B * L, WGP), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    ctx.releaseTemp(ends);
    return;
  }
  if (plan === "walkWg") {
    ctx.dispatch({
      label: "causalSelect", key: `causalSelectWg:${mask.dtype}${score.dtype}`,
      wgsl: () => selectWgWgsl(mask.dtype, score.dtype),
      buffers: [ctx.ref(out, "causalSelect"), ctx.ref(mask, "causalSelect"), ctx.ref(score, "causalSelect")],
      params: new ParamWords().u(B).u(L).u(p.k).u(mode).words(),
      groups: grid(B, ctx.limits.maxComputeWorkgroupsPerDimension),
    });
    return;
  }
  ctx.dispatch({
    label: "causalSelect", key: `causalSelect:${mask.dtype}${score.dtype}`,
    wgsl: () => selectWgsl(mask.dtype, score.dtype),
    buffers: [ctx.ref(out, "causalSelect"), ctx.ref(mask, "causalSelect"), ctx.ref(score, "causalSelect")],
    params: new ParamWords().u(B).u(L).u(p.k).u(mode).words(),
    groups: grid(ceilDiv(B, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
