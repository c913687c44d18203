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
 * increasing order, s = g·T. params: B, L, k, T, nSeg. The threads test [0, s) in interleaved
 * order (thread i takes j = i, i + 256, …, four loads in flight: each load of the workgroup reads 1 KiB of one row's
 * ends in a piece) and append the members to workgroup memory through an atomic counter; a
 * memory holds at most k positions, so there are at most k ≤ SEG_MAX_K members, and each one's
 * place in increasing order is the number of members below it. (The earlier layout gave each
 * thread a contiguous share of [0, s): 256 loads of addresses s / 256 words apart per step, about
 * 5x slower at L 61K.) Should more than SEG_MAX_K entries ever pass the test, one thread lists the
 * first k in order instead.
 */
export function segmentStartsWgsl(): string {
  return `${header(5, [{ name: "seg", type: "i32", write: true }, { name: "ends", type: "u32" }])}
var<workgroup> mem: array<u32, ${SEG_MAX_K}>;
var<workgroup> cnt: atomic<u32>;
@compute @workgroup_size(${SEG_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let T = ${pu(3)}; let nSeg = ${pu(4)};
  if (wg >= B * nSeg) { return; }
  let b = wg / nSeg; let g = wg % nSeg;
  let s = g * T;
  let row = b * L;
  if (lid == 0u) { atomicStore(&cnt, 0u); }
  workgroupBarrier();
  // four loads in flight a thread (a segment near the row's end reads ~L / 256 entries a thread)
  for (var j0 = lid; j0 < s; j0 += ${4 * SEG_WG}u) {
    ${[0, 1, 2, 3].map((u) => `let j${u} = j0 + ${u * SEG_WG}u; var e${u} = 0u; if (j${u} < s) { e${u} = ends[row + j${u}]; }`).join("\n    ")}
    ${[0, 1, 2, 3].map((u) => `if (j${u} < s && e${u} >= s) { let o = atomicAdd(&cnt, 1u); if (o < ${SEG_MAX_K}u) { mem[o] = j${u}; } }`).join("\n    ")}
  }
  workgroupBarrier();
  let c = atomicLoad(&cnt);
  let base = wg * (k + 1u);
  if (c <= ${SEG_MAX_K}u) {
    if (lid == 0u) { seg[base] = i32(min(k, c)); }
    for (var q = lid; q < c; q += ${SEG_WG}u) {
      let j = mem[q];
      var r = 0u;
      for (var i = 0u; i < c; i++) { r += select(0u, 1u, mem[i] < j); }
      if (r < k) { seg[base + 1u + r] = i32(j); }
    }
  } else if (lid == 0u) {
    seg[base] = i32(k);
    var o = 0u;
    for (var j = 0u; j < s && o < k; j++) {
      if (ends[row + j] >= s) { seg[base + 1u + o] = i32(j); o++; }
    }
  }
}
`;
}

/** The largest k whose rows pass B stages in workgroup memory (ROWS_WG rows of k words, under 16 KiB with its other arrays). */
export const STAGE_MAX_K = 56;

/**
 * Pass B: row t of out from its segment's list (the members still held at t) and the segment's
 * positions before t that are held at t, then −1 up to k. params: B, L, k, T, nSeg. A workgroup
 * fills ROWS_WG consecutive rows of one segment; the list with each member's end, and the
 * segment's ends up to its last row, go through workgroup memory. With `staged` (k ≤
 * STAGE_MAX_K) each thread builds its row in workgroup memory and the workgroup then writes its
 * rows, which are contiguous in out, word by word across the threads: a thread writing its own
 * row scatters each store over ROWS_WG rows k words apart (about 3x slower at L 61K, k 50).
 */
export function segmentRowsWgsl(staged: boolean): string {
  const PJ = staged ? STAGE_MAX_K : SEG_MAX_K;
  const put = (at: string, v: string) => (staged ? `stage[lid * k + ${at}] = ${v};` : `out[o + ${at}] = ${v};`);
  return `${header(5, [{ name: "out", type: "i32", write: true }, { name: "ends", type: "u32" }, { name: "seg", type: "i32" }])}
var<workgroup> pj: array<u32, ${PJ}>;
var<workgroup> pe: array<u32, ${PJ}>;
var<workgroup> se: array<u32, ${SEG_MAX_T}>;
${staged ? `var<workgroup> stage: array<i32, ${ROWS_WG * STAGE_MAX_K}>;` : ""}
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
  let o = (row + t) * k;
  if (t < L) {
    var n = 0u;
    for (var q = 0u; q < c; q++) {
      if (pe[q] >= t) {
        if (n < k) { ${put("n", "i32(pj[q])")} }
        n++;
      }
    }
    for (var j = s; j < t; j++) {
      if (se[j - s] >= t) {
        if (n < k) { ${put("n", "i32(j)")} }
        n++;
      }
    }
    for (var q = n; q < k; q++) { ${put("q", "-1i")} }
  }
  ${staged ? `workgroupBarrier();
  // the workgroup's rows t0 … hi − 1, contiguous in out
  let first = (row + t0) * k;
  let words = (hi - t0) * k;
  for (var i = lid; i < words; i += ${ROWS_WG}u) { out[first + i] = stage[i]; }` : ""}
}
`;
}
