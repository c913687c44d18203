/**
 * causalSelect's second pass from segments (selectTuning.fill = "segments"): the rows out of the
 * ends e_j that pass 1 wrote (select.ts: j is held at t ∈ [j + 1, e_j], e_j = 0 when never).
 *
 * The one-pass fill (selectFillWgsl and its lanes form) walks back from every t until it has the
 * memory's min(k, #set positions < t) entries. In "top" mode those are the k best keys so far,
 * spread over the whole prefix, so each row walks about t positions: O(L²) per row of L, 0.18 ms
 * a call at B = 1, L = 16K, k = 50 on an H200 (a long-context chunk), more than pass 1.
 *
 * Here the row is cut into segments of T positions (T a multiple of the 64 rows a workgroup
 * fills). What the memory holds at t splits at the segment's start s ≤ t:
 *   held(t) = { j ∈ held(s) : e_j ≥ t }  ∪  { j ∈ [s, t) : e_j ≥ t }
 * (j < s held at t was held at s, as j < s ≤ t ≤ e_j), and everything in held(s) is below s, so
 * the two parts come out in increasing order one after the other. Pass A lists held(s) for every
 * segment start (each a workgroup: every j < s tested once, then a prefix sum places the ≤ k
 * members in order); pass B fills each row from its segment's list and at most T − 1 positions.
 * Work: (L / T) · L / 2 tests plus L · (k + T), against about L² / 2 for the walk.
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";

/** Threads of pass A (one workgroup per segment start). */
export const SEG_WG = 256;
/** Rows a pass-B workgroup fills (every segment length is a multiple of it). */
export const ROWS_WG = 64;
/** The largest k pass B holds in workgroup memory (a larger k takes the walk). */
export const SEG_MAX_K = 128;
/** The longest segment: pass B keeps a segment's ends in workgroup memory. */
export const SEG_MAX_T = 256;

/**
 * WGSL: `arr[lid]` = the sum of `value` over threads 0..lid of a workgroup of n threads
 * (Hillis-Steele: log2(n) rounds, two barriers each; call from uniform control flow).
 */
export function inclusiveSumWgsl(arr: string, value: string, n: number): string {
  return `${arr}[lid] = ${value};
  workgroupBarrier();
  for (var d = 1u; d < ${n}u; d = d * 2u) {
    var v = 0u;
    if (lid >= d) { v = ${arr}[lid - d]; }
    workgroupBarrier();
    ${arr}[lid] += v;
    workgroupBarrier();
  }`;
}

/** Segment length for rows of L: about √(L / 4) (pass A's L² / 2T against pass B's L·T), a power of two in [64, 256]. */
export function segmentLength(L: number): number {
  let T = ROWS_WG;
  while (T < SEG_MAX_T && T * T < L / 4) T *= 2;
  return T;
}

/**
 * Pass A: seg[(b·nSeg + g)·(k + 1)] = |held(s)| and the k words after it the members in
 * increasing order, s = g·T. params: B, L, k, T, nSeg. A thread tests a contiguous share of
 * [0, s) (ends of one row are a few KiB to a few hundred: L2 reads), the shares' counts are
 * summed as a prefix over the workgroup, and each thread writes its members at its offset.
 */
export function segmentStartsWgsl(): string {
  return `${header(5, [{ name: "seg", type: "i32", write: true }, { name: "ends", type: "u32" }])}
var<workgroup> sums: array<u32, ${SEG_WG}>;
@compute @workgroup_size(${SEG_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let T = ${pu(3)}; let nSeg = ${pu(4)};
  if (wg >= B * nSeg) { return; }
  let b = wg / nSeg; let g = wg % nSeg;
  let s = g * T;
  let row = b * L;
  let r = (s + ${SEG_WG - 1}u) / ${SEG_WG}u;
  let j0 = min(s, lid * r); let j1 = min(s, j0 + r);
  var c = 0u;
  for (var j = j0; j < j1; j++) { c += select(0u, 1u, ends[row + j] >= s); }
  // exclusive prefix of the counts over the workgroup (from the inclusive sums)
  ${inclusiveSumWgsl("sums", "c", SEG_WG)}
  let base = wg * (k + 1u);
  var o = sums[lid] - c;
  if (lid == ${SEG_WG - 1}u) { seg[base] = i32(min(k, sums[lid])); }
  if (c > 0u) {
    for (var j = j0; j < j1; j++) {
      if (ends[row + j] >= s) {
        if (o < k) { seg[base + 1u + o] = i32(j); }
        o++;
      }
    }
  }
}
`;
}

/**
 * Pass B: row t of out from its segment's list (the members still held at t) and the segment's
 * positions before t that are held at t, then −1 up to k. params: B, L, k, T, nSeg. A workgroup
 * fills ROWS_WG consecutive rows of one segment; the list with each member's end, and the
 * segment's ends up to its last row, go through workgroup memory.
 */
export function segmentRowsWgsl(): string {
  return `${header(5, [{ name: "out", type: "i32", write: true }, { name: "ends", type: "u32" }, { name: "seg", type: "i32" }])}
var<workgroup> pj: array<u32, ${SEG_MAX_K}>;
var<workgroup> pe: array<u32, ${SEG_MAX_K}>;
var<workgroup> se: array<u32, ${SEG_MAX_T}>;
@compute @workgroup_size(${ROWS_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let T = ${pu(3)}; let nSeg = ${pu(4)};
  let per = (L + ${ROWS_WG - 1}u) / ${ROWS_WG}u;
  if (wg >= B * per) { return; }
  let b = wg / per;
  let t0 = (wg % per) * ${ROWS_WG}u;
  let g = t0 / T;
  let s = g * T;
  let row = b * L;
  let base = (b * nSeg + g) * (k + 1u);
  let c = u32(seg[base]);
  for (var q = lid; q < c; q += ${ROWS_WG}u) {
    let j = u32(seg[base + 1u + q]);
    pj[q] = j;
    pe[q] = ends[row + j];
  }
  // the segment's ends from s up to the workgroup's last row (the rows' j < t)
  let hi = min(t0 + ${ROWS_WG}u, L);
  for (var j = s + lid; j < hi; j += ${ROWS_WG}u) { se[j - s] = ends[row + j]; }
  workgroupBarrier();
  let t = t0 + lid;
  if (t >= L) { return; }
  let o = (row + t) * k;
  var n = 0u;
  for (var q = 0u; q < c; q++) {
    if (pe[q] >= t) {
      if (n < k) { out[o + n] = i32(pj[q]); }
      n++;
    }
  }
  for (var j = s; j < t; j++) {
    if (se[j - s] >= t) {
      if (n < k) { out[o + n] = i32(j); }
      n++;
    }
  }
  for (var q = n; q < k; q++) { out[o + q] = -1i; }
}
`;
}
