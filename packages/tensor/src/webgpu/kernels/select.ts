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
 *   (the reference's count), and pads with −1. Both passes run a workgroup per WGP consecutive
 *   positions of one row and read the row through workgroup memory, a tile of TILE entries at a
 *   time loaded by the whole workgroup, so each thread's serial scan waits on workgroup memory,
 *   not on a global load per step (with only B·L threads there are too few warps to hide that
 *   latency: before the tiling, each pass took 0.28 ms a call at B = 8, L = 2048, k = 50, "top",
 *   on an H200). Where B·L is small (selectTuning.lanesBelow), both passes give each position
 *   several threads instead, each scanning a share of every tile (select-lanes.ts).
 *   In "top" mode pass 2 builds the rows from segments instead (select-segments.ts: lists of the
 *   held positions at segment starts, then each row from its segment's list), and for rows of
 *   selectTuning.summaryMinL and more with f32 scores pass 1 reads each tile's k best keys
 *   (select-summary.ts) instead of the row entry by entry: both passes then grow about as
 *   L·(L / 256) a row instead of L², so chunks of 64K-128K positions stay fast.
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
import { readEnv } from "../../env.ts";
import { END_WG, SUMMARY_MAX_K, summaryEndWgsl, summaryWgsl, summaryWords, SUPER_MAX_KEYS, superKeys, superSummaryWgsl, TILE_S } from "./select-summary.ts";
import { ROWS_WG, SEG_MAX_K, segmentLength, segmentRowsWgsl, segmentStartsWgsl, STAGE_MAX_K } from "./select-segments.ts";
import { bitsFns, checkLanes, endsFetch, positionKey, range, selectEndLanesWgsl, selectFillLanesWgsl, TILE, tileConvert, tileFetch, tree, UNROLL, WGP } from "./select-lanes.ts";

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

/**
 * Pass 1, a workgroup per WGP consecutive positions j of one row b. Writes ends[b·L + j] = e_j
 * (the last t at which j is held; 0 when never) and ends[B·L + b·L + j] = min(k, the number of
 * set positions ≤ j). params: B, L, k, mode (0 last, 1 top).
 *
 * Each thread scans the row over i (the rule of the module comment) from workgroup memory: the
 * workgroup loads a tile of TILE entries (coalesced), each converted once to (kind, key) — kind
 * 0 unset, 1 set, 2 set with a NaN score ("top" only); key ord(score) for kind 1 in "top" mode,
 * else 0 (so it is never better than a position's key) — and every thread not yet done runs its
 * scan over the tile, UNROLL entries at a time. The counters and stopping rules are those of a
 * serial scan over i = 0, 1, … for each j (the formulation before the tiling), with shortcuts
 * that change no output:
 * - before j, the test c0 + m ≥ k (then e_j = 0 and rank = k, what the scan finds at j too, as
 *   nset ≥ c0 + m) and the jump below run every UNROLL entries: counting a few more positions
 *   before j changes neither, nor min(k, #set before j);
 * - once k set positions are counted, the scan stops counting them and the fill-time NaNs: m is
 *   final then, and only min(k, nset) is ever used. From there an UNROLL-entry chunk's count of
 *   keys is summed at once, and tested entry by entry only where it completes k after j;
 * - a thread that needs only min(k, #set before j) jumps to j once it has k.
 * The tiles are walked from i = 0 until no thread needs more (a vote through an atomic in
 * workgroup memory, so the loop and its barriers stay uniform). The next tile is the one holding
 * the smallest i a thread still needs, so a workgroup whose remaining threads all jump to j
 * skips the tiles between; its entries are fetched into registers while the current tile is
 * scanned (fetched again when the vote skips).
 */
function selectEndWgsl(maskType: DType, scoreType: DType): string {
  const P = TILE / WGP;
  const U = range(UNROLL);
  // one entry before j while fewer than k set positions are counted: the set positions, the
  // fill-time NaNs (NaNs among the first k set positions), the better keys
  const beforeFull = (q: string) => `m += select(0u, 1u, ${q}.x == 2u && nset < k);
          nset += min(${q}.x, 1u);
          c0 += select(0u, 1u, ${q}.y > myKey);`;
  // the same once k set positions are counted: only the better keys, summed as a tree (no chain
  // of dependent adds)
  const beforeFast = `c0 += ${tree(U.map((u) => `select(0u, 1u, q${u}.y > myKey)`), "+")};`;
  // one entry after j: keys as good as j's count, and j's hold ends at the set position whose
  // count completes k (only such a position, not a NaN, evicts)
  const afterCount = (q: string, i: string) => `let g${q} = ${q}.x == 1u && ${q}.y >= myKey;
          cnt += select(0u, 1u, g${q});
          if (g${q} && c0 + cnt + m >= k) { e = base + ${i}; done = true; break; }`;
  const afterFull = (q: string, i: string) => `m += select(0u, 1u, ${q}.x == 2u && nset < k);
          nset += min(${q}.x, 1u);
          ${afterCount(q, i)}`;
  // the same once k set positions are counted (m is final): the chunk's count as a tree, and the
  // entry-by-entry test only for the chunk where j's hold ends
  const afterFast = `${U.map((u) => `let g${u} = q${u}.x == 1u && q${u}.y >= myKey;`).join(" ")}
          let s = ${tree(U.map((u) => `select(0u, 1u, g${u})`), "+")};
          if (c0 + cnt + m + s < k) {
            cnt += s;
          } else {
          ${U.map((u) => `cnt += select(0u, 1u, g${u});
          if (g${u} && c0 + cnt + m >= k) { e = base + x + ${u}u; done = true; break; }`).join("\n          ")}
          }`;
  const loads = U.map((u) => `let q${u} = tile[x + ${u}u];`).join(" ");
  return `${header(4, [{ name: "ends", type: "u32", write: true }, { name: "mask", type: "u32" }, { name: "score", type: "u32" }])}
${bitsFns(maskType, scoreType)}
var<workgroup> tile: array<vec2<u32>, ${TILE}>;
var<workgroup> vote: atomic<u32>;
var<workgroup> nextBase: u32;
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let top = ${pu(3)} == 1u;
  let per = (L + ${WGP - 1}u) / ${WGP}u;
  let b = wg / per;
  if (b >= B) { return; }
  let row = b * L;
  let j = (wg % per) * ${WGP}u + lid;
  // threads past the row's end are done from the start; they still load and meet the barriers
  let live = j < L;
  var mySet = false;
  var myNan = false;
  // "last": every key 0, so the position alone decides (later is better)
  var myKey = 0u;
  ${positionKey}
  // only a position that may be held in "top" mode needs the better keys before it; the others
  // need only min(k, #set positions before j), known once k are counted: they skip to j
  let needC0 = top && mySet && !myNan;
  var nset = 0u; // set positions before i (exact up to k)
  var m = 0u;    // NaN scores among the first k set positions (held for good), before i
  var c0 = 0u;   // better keys before j
  var cnt = 0u;  // keys as good as j's after j, up to i
  var rank = 0u; // min(k, set positions before j)
  var e = L;
  var done = !live;
  if (lid == 0u) { atomicStore(&vote, 0xffffffffu); }
  ${range(P).map((u) => `var pm${u} = 0u; var ps${u} = 0u;`).join(" ")}
  var base = 0u;
  ${tileFetch("base")}
  loop {
    ${tileConvert((u) => `tile[${u * WGP}u + lid] = vec2<u32>(kind, key);`)}
    // the tile after this one, the likeliest next (fetched again below when the vote skips)
    ${tileFetch(`base + ${TILE}u`)}
    workgroupBarrier();
    if (!done) {
      let xe = min(${TILE}u, L - base);
      var x = 0u;
      if (j >= base) {
        // the entries before j (all of the tile when j is past it)
        let xj = min(j - base, xe);
        if (!needC0 && nset >= k) { x = xj; }
        loop {
          if (x + ${UNROLL}u > xj) { break; }
          ${loads}
          if (nset < k) {
          ${U.map((u) => beforeFull(`q${u}`)).join("\n          ")}
          } else {
          ${beforeFast}
          }
          x += ${UNROLL}u;
          if (!needC0 && nset >= k) { x = xj; }
          if (c0 + m >= k) { break; }
        }
        loop {
          if (x >= xj || c0 + m >= k) { break; }
          let q = tile[x];
          ${beforeFull("q")}
          x++;
        }
        if (c0 + m >= k) {
          // k better keys (or fill-time NaNs) before j: never held, and k set positions before it
          rank = k;
          e = 0u;
          done = true;
        } else if (xj < xe) {
          // j itself (x = xj)
          rank = min(nset, k);
          if (!mySet) {
            e = 0u;
            done = true;
          } else if (myNan) {
            if (rank >= k) { e = 0u; }
            done = true;
          } else {
            nset++;
          }
          x = xj + 1u;
        }
      }
      if (!done) {
        // the entries after j (none when j is past the tile: x = xe)
        loop {
          if (x + ${UNROLL}u > xe) { break; }
          ${loads}
          if (nset < k) {
          ${U.map((u) => afterFull(`q${u}`, `x + ${u}u`)).join("\n          ")}
          } else {
          ${afterFast}
          }
          x += ${UNROLL}u;
        }
        loop {
          if (done || x >= xe) { break; }
          let q = tile[x];
          ${afterFull("q", "x")}
          x++;
        }
      }
      if (!done) {
        var need = base + ${TILE}u;
        if (!needC0 && nset >= k && j > need) { need = j; }
        atomicMin(&vote, need);
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      nextBase = atomicLoad(&vote);
      atomicStore(&vote, 0xffffffffu);
    }
    let next = workgroupUniformLoad(&nextBase);
    if (next >= L) { break; }
    let nb = next - next % ${TILE}u;
    if (nb != base + ${TILE}u) {
      ${tileFetch("nb")}
    }
    base = nb;
  }
  if (live) {
    ends[row + j] = e;
    ends[B * L + row + j] = min(k, rank + select(0u, 1u, mySet));
  }
}`;
}

/**
 * Pass 2, a workgroup per WGP consecutive positions t of one row b: the reference holds
 * min(k, #set positions < t) positions at t (from pass 1); each thread walks j = t − 1, t − 2, …
 * and puts each held one (e_j ≥ t) in the next slot from the right, the rest −1. The walk reads
 * ends from workgroup memory, in tiles of TILE going down the row (the next one fetched into
 * registers while the current one is read), until every thread has filled its slots (a vote, as
 * in pass 1) or the row's start. An UNROLL-entry chunk is tested at once (its largest end against
 * t: most positions are no longer held) and entry by entry only when it holds one. params: B, L, k.
 */
function selectFillWgsl(): string {
  const P = TILE / WGP;
  // j (held at t) into the next slot from the right
  const take = (cond: string, jExpr: string) => `if (${cond}) {
          slot--;
          out[o + slot] = i32(${jExpr});
        }`;
  return `${header(3, [{ name: "out", type: "i32", write: true }, { name: "ends", type: "u32" }])}
var<workgroup> tile: array<u32, ${TILE}>;
var<workgroup> vote: atomic<u32>;
var<workgroup> more: u32;
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)};
  let per = (L + ${WGP - 1}u) / ${WGP}u;
  let b = wg / per;
  if (b >= B) { return; }
  let row = b * L;
  let t0 = (wg % per) * ${WGP}u;
  let t = t0 + lid;
  // threads past the row's end fill nothing; they still load and meet the barriers
  let live = t < L;
  let o = (row + t) * k;
  var have = 0u;
  if (live && t > 0u) { have = min(k, ends[B * L + row + t - 1u]); }
  if (live) {
    for (var q = have; q < k; q++) { out[o + q] = -1i; }
  }
  var slot = have;
  // the tile is [lo, hi): every j < hi, hi the workgroup's last t
  var hi = min(t0 + ${WGP}u, L) - 1u;
  var lo = hi - min(${TILE}u, hi);
  ${range(P).map((u) => `var pe${u} = 0u;`).join(" ")}
  ${endsFetch("lo", "hi")}
  if (lid == 0u) { atomicStore(&vote, 0u); }
  loop {
    ${range(P).map((u) => `tile[${u * WGP}u + lid] = pe${u};`).join(" ")}
    let lo2 = lo - min(${TILE}u, lo);
    ${endsFetch("lo2", "lo")}
    workgroupBarrier();
    if (slot > 0u) {
      var jj = min(t, hi); // the next j is jj − 1
      loop {
        if (slot == 0u || jj < lo + ${UNROLL}u) { break; }
        ${range(UNROLL).map((u) => `let a${u} = tile[jj - lo - ${u + 1}u];`).join(" ")}
        if (${tree(range(UNROLL).map((u) => `a${u}`), "max")} >= t) {
        ${range(UNROLL).map((u) => take((u === 0 ? "" : "slot > 0u && ") + `a${u} >= t`, `jj - ${u + 1}u`)).join("\n        ")}
        }
        jj -= ${UNROLL}u;
      }
      loop {
        if (slot == 0u || jj <= lo) { break; }
        jj--;
        ${take("tile[jj - lo] >= t", "jj")}
      }
      if (slot > 0u) { atomicAdd(&vote, 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      more = atomicLoad(&vote);
      atomicStore(&vote, 0u);
    }
    let go = workgroupUniformLoad(&more);
    if (go == 0u || lo == 0u) { break; }
    hi = lo;
    lo = lo2;
  }
}`;
}

/**
 * Which kernel causalSelect runs. `parallelMaxL`: the longest row for the parallel kernels
 * (their work grows as L² per row; beyond it the walks, whose work grows as L·k). `force`:
 * "walk" / "parallel" to override the choice (benchmarks, tests). On an H200 (B 8, k 64, every
 * position set, "top"), measured before the parallel kernels were tiled through workgroup
 * memory: parallel 0.60 / 5.6 / 14.5 ms against the walk's 3.2 / 25.6 / 51.4 ms at L = 2K / 16K
 * / 32K (webgpu-select, 2026-11-26); by the L² growth they crossed near L = 100K. The tiling
 * makes the parallel kernels faster, so that crossing (and parallelMaxL) is to be measured again.
 * `lanes` (1, 2, 4, 8 or 16), `lanesBelow`: the parallel kernels give each position `lanes`
 * threads (select-lanes.ts) when B·L < lanesBelow, else one (lanes 1 or lanesBelow 0: always
 * one). More threads per row where B·L alone is too few warps (B 1, L 8243: 8K threads, 2 warps
 * per SM on an H200). "last" mode uses `lanesLast` instead: its scans stop after k set positions,
 * so one thread per position was fastest. Measured on an H200 (webgpu-select, k 50, every
 * position set, 2026-11-26), 1 / 4 / 8 / 16 lanes: B 1, L 8243, "top" 0.300 / 0.266 / 0.167 /
 * 0.132 ms, "last" 0.020 / 0.040 / 0.033 / 0.036 ms; B 8, L 2048, "top" 0.095 / 0.108 / 0.084 /
 * 0.084 ms. Hence 16 ("top") and 1 ("last"); $MEMMAMBA_SELECT_LANES overrides `lanes` (e.g. 1 to
 * time the one-lane kernels with the benchmarks unchanged).
 */
export const selectTuning: {
  parallelMaxL: number;
  force: "auto" | "walk" | "parallel";
  lanes: number;
  lanesLast: number;
  lanesBelow: number;
  /** The parallel path's first pass in "top" mode with f32 scores: from tile summaries (select-summary.ts; k ≤ SUMMARY_MAX_K) or the scan from each row's start. */
  end: "summary" | "scan";
  /** The shortest row that takes the summaries (see usesSummary). */
  summaryMinL: number;
  /** The longest row for the parallel kernels where the first pass reads summaries (parallelMaxL for the scan). */
  parallelMaxLSummary: number;
  /** The parallel path's second pass in "top" mode: from segments (select-segments.ts; k ≤ SEG_MAX_K) or the walk back from every position ("last" mode always walks: it stops after k set positions). */
  fill: "segments" | "walk";
  /**
   * With summaries, tiles per super-tile (select-summary.ts, pass S2; 0: none): the first pass
   * then reads whole super-tiles' lists where it would read G tiles' lists in a row. Used where a
   * row has more than G tiles and G·k keys fit the merge (SUPER_MAX_KEYS). 8: on an H200, one 60K
   * chunk's 8 calls (k 50) took pass E + S2 1.12 ms without, 0.90 + 0.12 at G 8, 0.92 + 0.24 at
   * 16 and 0.99 + 0.67 at 32 (the merge ranks each key against the other lists).
   */
  superTiles: number;
} = { parallelMaxL: 65536, force: "auto", lanes: lanesFromEnv(), lanesLast: 1, lanesBelow: 65536, fill: "segments", end: "summary", summaryMinL: 24576, parallelMaxLSummary: 262144, superTiles: 8 };

/** selectTuning.lanes from $MEMMAMBA_SELECT_LANES (1, 2, 4, 8 or 16), else 16. */
function lanesFromEnv(): number {
  const v = readEnv("MEMMAMBA_SELECT_LANES")?.trim();
  if (v === undefined || v === "") return 16;
  const n = Number(v);
  if (n !== 1) {
    try {
      checkLanes(n);
    } catch {
      throw new RangeError(`MEMMAMBA_SELECT_LANES: expected threads per position for causalSelect (1, 2, 4, 8 or 16), got "${v}"`);
    }
  }
  return n;
}

/** Threads per position the parallel kernels use for B rows of L in `mode` (see selectTuning): 1, lanes or lanesLast. */
export function causalSelectLanes(B: number, L: number, mode: "last" | "top" = "top"): number {
  const { lanesBelow } = selectTuning;
  const lanes = mode === "last" ? selectTuning.lanesLast : selectTuning.lanes;
  if (lanes === 1 || B * L >= lanesBelow) return 1;
  checkLanes(lanes);
  return lanes;
}

/** The kernel causalSelect uses for rows of length L and pools of k (see selectTuning). */
export function causalSelectPlan(
  B: number, L: number, k: number, limits: GpuCtx["limits"], mode: "last" | "top" = "last", scoreDtype: DType = "i32",
): "parallel" | "walkWg" | "walk" {
  const scratchFits = 2 * B * L * 4 <= limits.maxStorageBufferBindingSize;
  // the summaries' first pass grows about as L·(L / 256) a row, not L²: it stays parallel longer
  const maxL = usesSummary(L, k, mode, scoreDtype) ? selectTuning.parallelMaxLSummary : selectTuning.parallelMaxL;
  const parallel = selectTuning.force === "parallel" || (selectTuning.force === "auto" && L <= maxL);
  if (parallel && scratchFits) return "parallel";
  return k <= KMAX ? "walkWg" : "walk";
}

/**
 * Whether the parallel path's first pass reads tile summaries (select-summary.ts): "top" mode, f32
 * scores, k ≤ SUMMARY_MAX_K, rows of at least selectTuning.summaryMinL (below it the scan from
 * each row's start is faster: the summaries' passes cost about 0.1 ms however short the row).
 */
export function usesSummary(L: number, k: number, mode: "last" | "top", scoreDtype: DType): boolean {
  return selectTuning.end === "summary" && mode !== "last" && scoreDtype === "f32" && k <= SUMMARY_MAX_K && L >= selectTuning.summaryMinL;
}

/** causalSelect on the GPU: the parallel kernels or a walk, as causalSelectPlan says. */
export function causalSelectKernel(ctx: GpuCtx, [mask, score]: readonly KernelArg[], out: KernelArg, p: PrimParams["causalSelect"]): void {
  const [B, L] = mask.shape;
  if (B * L * p.k === 0) return;
  const mode = p.mode === "last" ? 0 : 1;
  const plan = causalSelectPlan(B, L, p.k, ctx.limits, p.mode, score.dtype);
  if (plan === "parallel") {
    const ends: BufRef = ctx.temp(2 * B * L * 4);
    // a workgroup serves WGP / lanes positions of one row
    const lanes = causalSelectLanes(B, L, p.mode);
    const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
    const groups = grid(B * ceilDiv(L, WGP / lanes), maxDim);
    const ms = [ctx.ref(mask, "causalSelect"), ctx.ref(score, "causalSelect")];
    if (usesSummary(L, p.k, p.mode, score.dtype)) {
      // pass 1 from tile summaries (select-summary.ts): each tile's k best keys, then the ends
      const nT = ceilDiv(L, TILE_S);
      const summ = ctx.temp(B * nT * summaryWords(p.k) * 4);
      const w = new ParamWords().u(B).u(L).u(p.k).u(nT).words();
      ctx.dispatch({
        label: "causalSelect", key: `causalSelectSumm:${mask.dtype}${score.dtype}`, wgsl: () => summaryWgsl(mask.dtype, score.dtype),
        buffers: [summ, ...ms], params: w, groups: grid(B * nT, maxDim),
      });
      // super-tiles of G tiles (select-summary.ts, pass S2) where the row has more than G tiles
      const G = selectTuning.superTiles;
      if (G > 0 && nT > G && superKeys(G, p.k) <= SUPER_MAX_KEYS) {
        const nS = ceilDiv(nT, G);
        const summ2 = ctx.temp(B * nS * summaryWords(p.k) * 4);
        const w2 = new ParamWords().u(B).u(L).u(p.k).u(nT).u(nS).words();
        ctx.dispatch({
          label: "causalSelect", key: `causalSelectSumm2:${G}`, wgsl: () => superSummaryWgsl(G),
          buffers: [summ2, summ], params: w2, groups: grid(B * nS, maxDim),
        });
        ctx.dispatch({
          label: "causalSelect", key: `causalSelectEndS:${mask.dtype}${score.dtype}:g${G}`, wgsl: () => summaryEndWgsl(mask.dtype, score.dtype, G),
          buffers: [ends, ...ms, summ, summ2], params: w2, groups: grid(B * ceilDiv(L, END_WG), maxDim),
        });
        ctx.releaseTemp(summ2);
      } else {
        ctx.dispatch({
          label: "causalSelect", key: `causalSelectEndS:${mask.dtype}${score.dtype}`, wgsl: () => summaryEndWgsl(mask.dtype, score.dtype),
          buffers: [ends, ...ms, summ], params: w, groups: grid(B * ceilDiv(L, END_WG), maxDim),
        });
      }
      ctx.releaseTemp(summ);
    } else {
      ctx.dispatch({
        label: "causalSelect", key: `causalSelectEnd:${mask.dtype}${score.dtype}:${lanes}`,
        wgsl: () => (lanes === 1 ? selectEndWgsl(mask.dtype, score.dtype) : selectEndLanesWgsl(mask.dtype, score.dtype, lanes)),
        buffers: [ends, ...ms],
        params: new ParamWords().u(B).u(L).u(p.k).u(mode).words(),
        groups,
      });
    }
    if (selectTuning.fill === "segments" && p.mode !== "last" && p.k <= SEG_MAX_K) {
      // pass 2 from segments (select-segments.ts): the lists at segment starts, then the rows
      const T = segmentLength(L), nSeg = ceilDiv(L, T);
      const seg = ctx.temp(B * nSeg * (p.k + 1) * 4);
      const w = new ParamWords().u(B).u(L).u(p.k).u(T).u(nSeg).words();
      ctx.dispatch({ label: "causalSelect", key: "causalSelectSegStarts", wgsl: segmentStartsWgsl, buffers: [seg, ends], params: w, groups: grid(B * nSeg, maxDim) });
      const staged = p.k <= STAGE_MAX_K;
      ctx.dispatch({
        label: "causalSelect", key: `causalSelectSegRows${staged ? ":staged" : ""}`, wgsl: () => segmentRowsWgsl(staged), buffers: [ctx.ref(out, "causalSelect"), ends, seg], params: w,
        groups: grid(B * ceilDiv(L, ROWS_WG), maxDim),
      });
      ctx.releaseTemp(seg);
    } else {
      ctx.dispatch({
        label: "causalSelect", key: `causalSelectFill:${lanes}`,
        wgsl: () => (lanes === 1 ? selectFillWgsl() : selectFillLanesWgsl(lanes)),
        buffers: [ctx.ref(out, "causalSelect"), ends],
        params: new ParamWords().u(B).u(L).u(p.k).words(),
        groups,
      });
    }
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
