/**
 * causalSelect's walks (select.ts): replay the memory's history step by step along L, one thread
 * (selectWgsl) or one workgroup (selectWgWgsl) per row. Parallel over B only, so latency-bound (a
 * MemMamba training step at B = 8, L = 2048, k = 50 spent 3.3 ms a call in the workgroup walk on
 * an H200): causalSelect runs them beyond selectTuning.parallelMaxL, where the parallel kernels'
 * L² work per row costs more. They do not model NaN scores (see select.ts).
 */
import type { DType } from "../../dtype.ts";
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";

/** Threads per workgroup of the one-thread walk (a thread per row). */
export const WALK_WG = 64;

/** params: B, L, k, mode (0 last, 1 top): one shader for both modes. */
export function selectWgsl(maskType: DType, scoreType: DType): string {
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
@compute @workgroup_size(${WALK_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let b = wg * ${WALK_WG}u + lid;
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
export const KMAX = 512;
const WGS = 64;

/**
 * One workgroup per row b: the held list lives in workgroup memory (two copies, written in
 * turn), each thread owns slots q ≡ lid (mod 64), and every step t costs a few barriers: a tree
 * argmin over the held scores ("top" mode), the copy into the other list with the shift applied,
 * and the coalesced write of row t. The decisions are the one-thread walk's (selectWgsl): the
 * evicted slot is the first one holding the lowest score, and only when that score is ≤ the new
 * one. (The walk took 23 ms a call for B = 8, L = 2048, k = 50 on an H100: latency-bound.)
 */
export function selectWgWgsl(maskType: DType, scoreType: DType): string {
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
