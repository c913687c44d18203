/**
 * causalSelect's parallel passes with one thread per position (select.ts's module comment gives
 * the rule: position j is held at t ∈ [j + 1, e_j]): pass 1 (selectEndWgsl) writes e_j, pass 2
 * (selectFillWgsl) the rows. Both passes run a workgroup per WGP consecutive positions of one row
 * and read the row through workgroup memory, a tile of TILE entries at a time loaded by the whole
 * workgroup, so each thread's serial scan waits on workgroup memory, not on a global load per
 * step (with only B·L threads there are too few warps to hide that latency: before the tiling,
 * each pass took 0.28 ms a call at B = 8, L = 2048, k = 50, "top", on an H200). The forms with
 * several threads per position are in select-lanes.ts.
 */
import type { DType } from "../../dtype.ts";
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";
import { bitsFns, endsFetch, positionKey, range, TILE, tileConvert, tileFetch, tree, UNROLL, WGP } from "./select-lanes.ts";

/**
 * Pass 1, a workgroup per WGP consecutive positions j of one row b. Writes ends[b·L + j] = e_j
 * (the last t at which j is held; 0 when never) and ends[B·L + b·L + j] = min(k, the number of
 * set positions ≤ j). params: B, L, k, mode (0 last, 1 top).
 *
 * Each thread scans the row over i (the rule in select.ts's doc) from workgroup memory: the
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
export function selectEndWgsl(maskType: DType, scoreType: DType): string {
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
export function selectFillWgsl(): string {
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
