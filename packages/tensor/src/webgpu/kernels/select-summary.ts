/**
 * causalSelect's first pass in "top" mode with f32 scores, from tile summaries (selectTuning.end =
 * "summary"):
 * the same ends e_j and counts as the scan (select-parallel.ts's selectEndWgsl, select-lanes.ts's selectEndLanesWgsl), with
 * most of each row read through the sorted best keys of its tiles instead of entry by entry.
 *
 * The scan's rule (select.ts), restated with one key per entry: an unset entry and a NaN score
 * taken in after the memory filled have key 0 (never better than anything), a NaN taken in while
 * it filled (a "fill-time" NaN: fewer than k set positions before it) key +∞ (it holds its slot
 * for good), a set entry ord(score) (> 0). Then, for a set position j with a finite score κ:
 *   c0 = #entries before j with a key > κ; j is never held when c0 ≥ k;
 *   else e_j = the first set entry i > j with a finite key ≥ κ at which the entries in (j, i]
 *   with keys ≥ κ number at least k − c0 (e_j = L when there is none).
 * (The scan's c0 + m, and its c0 + cnt + m tested at entries with keys ≥ κ, are these counts:
 * m counts the fill-time NaNs, the +∞ keys.) An unset j is never held; a NaN j is held for
 * good when fill-time, else never. With f32 scores every finite key is at least ord(−∞) > 0 and
 * below 0xffffffff, the +∞ stand-in; i32 scores use the whole u32 range, so they take the scan.
 *
 * The scan walks the row from its start for every j whose key ranks among the k best so far —
 * in "top" mode those are spread over the whole row, so each pass-1 call on a long-context
 * chunk (B 1, L 16K, k 50) spent ~0.13 ms on an H200, most of causalSelect, and 1.8 ms at L 64K.
 * Here pass S sorts each tile of TILE_S entries by key and keeps its k best (and its number of
 * set positions); pass E gives each j a thread that counts the keys > κ of the tiles before its
 * own by a binary search in each tile's list (a tile whose k-th best key is > κ already holds k:
 * j is never held), reads its own tile entry by entry, and after j again searches each tile's
 * list for the keys ≥ κ until the tile where the count reaches k − c0, which it then reads entry
 * by entry. A tile's list is exact for counts below k: if fewer than the needed number of its
 * k best keys are ≥ κ, no other key of the tile is.
 *
 * Super-tiles (selectTuning.superTiles = G, 8 by default): pass S2 merges each G tiles' lists
 * into one list of their k best keys (exact in the same way), and pass E reads whole
 * super-tiles before j's super-tile, and after j whole super-tiles from each super-tile start,
 * where it would read G tile lists one after another. The pass runs in one wave (a thread a
 * position), so its time is that of its slowest threads: the positions that enter the pool,
 * which search the row before and after them; at L 61K a row is 240 tiles, 30 super-tiles. The
 * gain is modest (pass E 1.12 → 0.90 ms a 60K chunk on an H200, S2 0.12 ms): the entry-by-entry
 * reads of j's own tile and of the tile where the search ends remain. Those loops now load
 * ENTRY_AHEAD entries' words before stepping through them (session 18): a whole causalSelect
 * (B 1, L 61491, k 50, "top") 0.188 / 0.202 → 0.166 / 0.174 ms at densities 0.25 / 1 on an
 * H200 (webgpu-select, two alternations, the same numbers both times), pass E 0.90 → 0.68 ms a
 * 60K forward.
 */
import type { DType } from "../../dtype.ts";
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";
import { bitsFns } from "./select-lanes.ts";
import { inclusiveSumWgsl } from "./select-segments.ts";

/** Entries per tile (and threads of pass S: one entry each). */
export const TILE_S = 256;
/** Threads of pass E (one position each). */
export const END_WG = 64;
/** The largest k this pass serves (a tile's list is k keys; larger k takes the scan). */
export const SUMMARY_MAX_K = 128;

/** Threads of pass S2 (one workgroup per super-tile). */
const SUPER_WG = 256;
/** The most keys pass S2 holds in workgroup memory (G · k). */
export const SUPER_MAX_KEYS = 2048;
/** The keys pass S2 holds for G tiles of k keys. */
export const superKeys = (G: number, k: number): number => G * k;

/** Words of one tile's summary: its set count, then its k best keys, largest first. */
export const summaryWords = (k: number): number => k + 1;

/**
 * Pass S: summ[(b·nT + τ)·(k + 1)] = the set positions of tile τ, then its k best keys
 * (descending, 0-padded). params: B, L, k, nT. One workgroup of TILE_S threads a tile; the
 * fill-time test of a NaN needs the set positions before it, counted (up to k) only in tiles
 * that hold a NaN.
 */
export function summaryWgsl(maskType: DType, scoreType: DType): string {
  const T = TILE_S;
  return `${header(4, [{ name: "summ", type: "u32", write: true }, { name: "mask", type: "u32" }, { name: "score", type: "u32" }])}
${bitsFns(maskType, scoreType)}
var<workgroup> keys: array<u32, ${T}>;
var<workgroup> pre: array<u32, ${T}>;
var<workgroup> wcnt: atomic<u32>;
var<workgroup> wnan: atomic<u32>;
var<workgroup> wtot: u32;
@compute @workgroup_size(${T})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let nT = ${pu(3)};
  if (wg >= B * nT) { return; }
  let b = wg / nT; let tau = wg % nT;
  let row = b * L;
  if (lid == 0u) { atomicStore(&wcnt, 0u); atomicStore(&wnan, 0u); }
  workgroupBarrier();
  let i = tau * ${T}u + lid;
  var isS = false;
  var nan = false;
  var key = 0u;
  if (i < L) {
    isS = isSet(mask[row + i]);
    if (isS) {
      let s = score[row + i];
      nan = isNan(s);
      if (!nan) { key = ord(s); }
    }
  }
  if (isS) { atomicAdd(&wcnt, 1u); }
  if (nan) { atomicAdd(&wnan, 1u); }
  workgroupBarrier();
  if (lid == 0u) { wtot = atomicLoad(&wcnt) | select(0u, 0x80000000u, atomicLoad(&wnan) != 0u); }
  let tot = workgroupUniformLoad(&wtot);
  if ((tot & 0x80000000u) != 0u) {
    // a NaN in the tile: the set positions before each entry (up to k), for the fill-time test
    var before = 0u;
    var t = 0u;
    loop {
      if (t >= tau || before >= k) { break; }
      if (lid == 0u) { atomicStore(&wcnt, 0u); }
      workgroupBarrier();
      let x = t * ${T}u + lid;
      if (x < L && isSet(mask[row + x])) { atomicAdd(&wcnt, 1u); }
      workgroupBarrier();
      if (lid == 0u) { wtot = atomicLoad(&wcnt); }
      before += workgroupUniformLoad(&wtot);
      t++;
    }
    // the tile's set flags summed up to each entry (minus its own: the set positions before it)
    ${inclusiveSumWgsl("pre", "select(0u, 1u, isS)", T)}
    if (nan && before + pre[lid] - 1u < k) { key = 0xffffffffu; }
  }
  // bitonic sort, largest first
  keys[lid] = key;
  workgroupBarrier();
  for (var size = 2u; size <= ${T}u; size = size * 2u) {
    for (var stride = size / 2u; stride > 0u; stride = stride / 2u) {
      let p = lid ^ stride;
      if (p > lid) {
        let a = keys[lid]; let c = keys[p];
        let down = (lid & size) == 0u;
        if ((down && a < c) || (!down && a > c)) { keys[lid] = c; keys[p] = a; }
      }
      workgroupBarrier();
    }
  }
  let base = wg * (k + 1u);
  if (lid == 0u) { summ[base] = tot & 0x7fffffffu; }
  if (lid < k) { summ[base + 1u + lid] = keys[lid]; }
}
`;
}

/**
 * WGSL: how many of the list's first n keys (largest first) at `lb` in `buf` are > kappa (gt) or
 * ≥ kappa; the list's best key first: for a position among the best so far most lists have none
 * (one load each, and the loads of successive lists do not wait on each other), a binary search
 * only where some are.
 */
function countAboveFn(name: string, buf: string): string {
  return `fn ${name}(lb: u32, n: u32, kappa: u32, gt: bool) -> u32 {
  let top = ${buf}[lb];
  if (n == 0u || top < kappa || (gt && top == kappa)) { return 0u; }
  var lo = 1u; var hi = n;
  loop {
    if (lo >= hi) { break; }
    let mid = (lo + hi) / 2u;
    let v = ${buf}[lb + mid];
    if (v > kappa || (!gt && v == kappa)) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}`;
}

/**
 * Pass S2 (G > 0): summ2[(b·nS + u)·(k + 1)] = the set positions of super-tile u (tiles u·G …
 * u·G + G − 1), then its k best keys (descending, 0-padded): the merge of its tiles' lists (the
 * k best of a union are among the k best of each part). params: B, L, k, nT, nS. One workgroup a
 * super-tile holds the G lists (G·k ≤ SUPER_MAX_KEYS keys) in workgroup memory; each key's place
 * in the merged order (key descending, then list, then place in its list) is the number of keys
 * before it: its place in its own list plus, in each other list, the keys above it (and the
 * equal ones of earlier lists), counted as pass E counts a list (countAboveFn). The keys placed
 * below k are written there.
 */
export function superSummaryWgsl(G: number): string {
  return `${header(5, [{ name: "summ2", type: "u32", write: true }, { name: "summ", type: "u32" }])}
var<workgroup> keys: array<u32, ${SUPER_MAX_KEYS}>;
var<workgroup> cnt: atomic<u32>;
${countAboveFn("countAbove", "keys")}
@compute @workgroup_size(${SUPER_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let k = ${pu(2)}; let nT = ${pu(3)}; let nS = ${pu(4)};
  if (wg >= B * nS) { return; }
  let b = wg / nS; let u = wg % nS;
  let t0 = u * ${G}u;
  let nl = min(${G}u, nT - t0); // lists in this super-tile
  if (lid == 0u) { atomicStore(&cnt, 0u); }
  workgroupBarrier();
  for (var i = lid; i < nl * k; i += ${SUPER_WG}u) { keys[i] = summ[(b * nT + t0 + i / k) * (k + 1u) + 1u + i % k]; }
  if (lid < nl) { atomicAdd(&cnt, summ[(b * nT + t0 + lid) * (k + 1u)]); }
  workgroupBarrier();
  let base = wg * (k + 1u);
  if (lid == 0u) { summ2[base] = atomicLoad(&cnt); }
  for (var i = lid; i < nl * k; i += ${SUPER_WG}u) {
    let li = i / k;
    let key = keys[i];
    var rank = i % k;
    for (var l = 0u; l < nl; l++) {
      if (l == li) { continue; }
      // keys of list l before this one: above it, or equal in an earlier list
      rank += countAbove(l * k, k, key, l > li);
      if (rank >= k) { break; }
    }
    if (rank < k) { summ2[base + 1u + rank] = key; }
  }
}
`;
}

/**
 * Pass E: ends[b·L + j] = e_j and ends[B·L + b·L + j] = min(k, #set positions ≤ j), as the scan
 * writes them. params: B, L, k, nT. A thread a position; no barriers.
 */
/**
 * Entries pass E reads at a time in its entry-by-entry loops: their mask and score words are all
 * loaded before the first entry's step (the steps, in order, are the one-entry loop's), where each
 * step waited on its own loads. The score word is read whether or not the entry is set.
 */
const ENTRY_AHEAD = 4;
const AHEAD = [...Array(ENTRY_AHEAD).keys()];
const loadAhead = (x: string) => AHEAD.map((u) => `let m${u} = mask[row + ${x} + ${u}u]; let s${u} = score[row + ${x} + ${u}u];`).join(" ");

export function summaryEndWgsl(maskType: DType, scoreType: DType, G = 0): string {
  const T = TILE_S;
  const bufs = [{ name: "ends", type: "u32", write: true }, { name: "mask", type: "u32" }, { name: "score", type: "u32" }, { name: "summ", type: "u32" }];
  return `${header(5, G > 0 ? [...bufs, { name: "summ2", type: "u32" }] : bufs)}
${bitsFns(maskType, scoreType)}
// (kind, key) of entry i given the set positions before it: kind 0 unset, 1 a finite score, 2 a
// NaN; the key as in the module comment
fn keyAt(row: u32, i: u32, nsetBefore: u32, k: u32) -> vec2<u32> {
  if (!isSet(mask[row + i])) { return vec2<u32>(0u, 0u); }
  return keyOf(1u, score[row + i], nsetBefore, k);
}
// the same from an entry's mask and score words already loaded
fn keyOf(m: u32, s: u32, nsetBefore: u32, k: u32) -> vec2<u32> {
  if (!isSet(m)) { return vec2<u32>(0u, 0u); }
  if (isNan(s)) { return vec2<u32>(2u, select(0u, 0xffffffffu, nsetBefore < k)); }
  return vec2<u32>(1u, ord(s));
}
${countAboveFn("countAbove", "summ")}
${G > 0 ? countAboveFn("countAbove2", "summ2") : ""}
@compute @workgroup_size(${END_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let nT = ${pu(3)};${G > 0 ? ` let nS = ${pu(4)};` : ""}
  let per = (L + ${END_WG - 1}u) / ${END_WG}u;
  let b = wg / per;
  if (b >= B) { return; }
  let j = (wg % per) * ${END_WG}u + lid;
  if (j >= L) { return; }
  let row = b * L;
  let sb = b * nT * (k + 1u); // this row's summaries
  let tj = j / ${T}u;
  let t0 = tj * ${T}u;
  let mySet = isSet(mask[row + j]);
  var myNan = false;
  var kappa = 0u;
  if (mySet) {
    let s = score[row + j];
    myNan = isNan(s);
    if (!myNan) { kappa = ord(s); }
  }
  let finite = mySet && !myNan;
  // the set positions before j's tile, and the keys > κ there (from the lists; stops at k)
  var nset = 0u;
  var c0 = 0u;
  var tFirst = 0u;
  ${G > 0 ? `// whole super-tiles before j's from their lists, then the tiles of j's super-tile
  let ssb = b * nS * (k + 1u);
  let uj = tj / ${G}u;
  for (var u = 0u; u < uj; u++) {
    let lb = ssb + u * (k + 1u);
    nset += summ2[lb];
    if (finite && c0 < k) { c0 += countAbove2(lb + 1u, k - c0, kappa, true); }
  }
  tFirst = uj * ${G}u;` : ""}
  for (var t = tFirst; t < tj; t++) {
    let lb = sb + t * (k + 1u);
    nset += summ[lb];
    if (finite && c0 < k) { c0 += countAbove(lb + 1u, k - c0, kappa, true); }
  }
  // j's tile before j, entry by entry (${ENTRY_AHEAD} entries' words loaded before their steps)
  var x0 = t0;
  for (; x0 + ${ENTRY_AHEAD}u <= j; x0 += ${ENTRY_AHEAD}u) {
    ${loadAhead("x0")}
    ${AHEAD.map((u) => `{ let q = keyOf(m${u}, s${u}, nset, k); nset += min(q.x, 1u); c0 += select(0u, 1u, q.y > kappa); }`).join("\n    ")}
  }
  for (var x = x0; x < j; x++) {
    let q = keyAt(row, x, nset, k);
    nset += min(q.x, 1u);
    c0 += select(0u, 1u, q.y > kappa);
  }
  var e = 0u;
  if (mySet && myNan) {
    e = select(0u, L, nset < k);
  } else if (finite && c0 < k) {
    // after j: the keys ≥ κ until k − c0 of them, then the first finite one from there on
    var need = k - c0;
    var run = nset + 1u; // set positions before the entry read next
    var x = j + 1u;
    var tileEnd = min(L, t0 + ${T}u);
    var t = tj;
    e = L;
    loop {
      // entry by entry to the end of tile t (${ENTRY_AHEAD} entries' words loaded before their steps)
      var hit = false;
      loop {
        if (x >= tileEnd) { break; }
        if (x + ${ENTRY_AHEAD}u <= tileEnd) {
          ${loadAhead("x")}
          ${AHEAD.map((u) => `{
            let q = keyOf(m${u}, s${u}, run, k);
            run += min(q.x, 1u);
            if (q.x != 0u && q.y >= kappa) {
              if (need > 0u) { need--; }
              if (need == 0u && q.x == 1u) { e = x + ${u}u; hit = true; break; }
            }
          }`).join("\n          ")}
          x += ${ENTRY_AHEAD}u;
          continue;
        }
        let q = keyAt(row, x, run, k);
        run += min(q.x, 1u);
        if (q.x != 0u && q.y >= kappa) {
          if (need > 0u) { need--; }
          if (need == 0u && q.x == 1u) { e = x; hit = true; break; }
        }
        x++;
      }
      if (hit) { break; }
      // whole tiles from their lists while the count stays short of k − c0${G > 0 ? "; from a super-tile's start, whole super-tiles" : ""}
      t++;
      loop {
        if (t >= nT || need == 0u) { break; }
        ${G > 0 ? `if (t % ${G}u == 0u) {
          let lb2 = ssb + (t / ${G}u) * (k + 1u);
          let c2 = countAbove2(lb2 + 1u, need, kappa, false);
          if (c2 < need) {
            need -= c2;
            run += summ2[lb2];
            t += ${G}u;
            continue;
          }
        }` : ""}
        let lb = sb + t * (k + 1u);
        let c = countAbove(lb + 1u, need, kappa, false);
        if (c >= need) { break; }
        need -= c;
        run += summ[lb];
        t++;
      }
      if (t >= nT) { break; }
      x = t * ${T}u;
      tileEnd = min(L, x + ${T}u);
    }
  }
  ends[row + j] = e;
  ends[B * L + row + j] = min(k, nset + select(0u, 1u, mySet));
}
`;
}
