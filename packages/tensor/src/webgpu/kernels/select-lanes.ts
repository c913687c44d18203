/**
 * causalSelect's parallel passes with several threads ("lanes") per position, for small B·L
 * (a long-context forward runs B = 1, L ≈ 8K: one thread per position is 2 warps per SM, and
 * in "top" mode nearly every workgroup of 64 positions holds one whose scan runs the whole row).
 * Same outputs as select-parallel.ts's one-thread kernels (selectEndWgsl, selectFillWgsl);
 * select.ts's module comment gives the rule: position j is held at t ∈ [j + 1, e_j].
 *
 * A workgroup of WGP threads serves WGP / N positions, N lanes each; the row goes through
 * workgroup memory in tiles of TILE entries as in the one-lane kernels, and lane l of a position
 * examines the contiguous share [l·C, (l + 1)·C) of each tile, C = TILE / N (entry x stored at
 * x + ⌊x / C⌋, so the N lanes' reads fall in different banks). Per tile a lane counts, the lanes'
 * counts are summed through workgroup memory, and only where a running count reaches its limit
 * does a lane walk its share in order: each thread examines TILE / N entries a tile instead of
 * TILE, and a workgroup's walk ends when its WGP / N positions are done, not WGP.
 *
 * Pass 1 rests on two counts of the serial scan that do not depend on j: the set positions
 * before i (nset) and the fill-time NaNs before i (m: NaN scores among the first k set
 * positions). The workgroup computes them per tile (thread 0, only while fewer than k set
 * positions are counted: one tile for dense rows), so each lane's count of a share is
 * order-free: better keys before j (c0), set positions and fill-time NaNs before j (rank,
 * m at j), keys as good as j's after j (cnt) and fill-time NaNs. j's hold ends at the first
 * key as good as j's after j with c0 + cnt + m ≥ k; that sum only grows, so the lanes whose
 * share ends at or past k walk it from its start value (their prefix over the lanes before)
 * and the smallest hit wins (an atomicMin in workgroup memory).
 */
import type { DType } from "../../dtype.ts";
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";

/** Threads per workgroup of the parallel kernels. */
export const WGP = 64;
/**
 * Row entries per workgroup-memory tile (pass 1: (kind, key) pairs, 2 KiB; pass 2: ends, 1 KiB),
 * TILE / WGP loaded by each thread: a few barriers per tile amortised over the scan steps.
 */
export const TILE = 256;
/**
 * Tile entries a thread reads from workgroup memory at once in its scan: independent loads and
 * compares that pipeline (their counts summed as a tree), where one entry at a time would wait on
 * each load and each add in turn.
 */
export const UNROLL = 8;

export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** WGSL combining `xs` pairwise with `op` ("+" or a function such as "max"): a tree, not a chain. */
export function tree(xs: string[], op: string): string {
  if (xs.length === 1) return xs[0];
  const h = xs.length >> 1;
  const [a, b] = [tree(xs.slice(0, h), op), tree(xs.slice(h), op)];
  return op === "+" ? `(${a} + ${b})` : `${op}(${a}, ${b})`;
}

/**
 * WGSL on the raw u32 bits of mask and score entries (the bindings are read as u32, so no float
 * op touches a NaN or a subnormal): `isSet(maskBits)`, `isNan(scoreBits)` and `ord(scoreBits)`,
 * an integer that orders like the score (−0 and +0 equal).
 */
export function bitsFns(maskType: DType, scoreType: DType): string {
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

/** Most lanes per position: a tile share of TILE / 16 = 16 entries, two UNROLL chunks. */
export const MAX_LANES = 16;

/**
 * Throws unless `lanes` is a power of two from 2 to MAX_LANES (a whole number of positions a
 * workgroup; past 16 the lanes' exchange each tile outweighs their shares of it).
 */
export function checkLanes(lanes: number): void {
  if (!Number.isInteger(lanes) || lanes < 2 || lanes > MAX_LANES || (lanes & (lanes - 1)) !== 0) {
    throw new RangeError(`causalSelect: selectTuning.lanes must be 1 or a power of two from 2 to ${MAX_LANES}, got ${lanes}`);
  }
}

/**
 * WGSL shared by pass 1's kernels (select-parallel.ts's one thread a position, and the lanes one below):
 * `tileFetch(base)` loads the TILE row entries from `base` into registers pm*, ps* (WGP apart, a
 * coalesced load per register pair); `tileConvert(store)` turns them into (kind, key) pairs — kind 0
 * unset, 1 set, 2 set with a NaN score ("top"); key ord(score) for kind 1 in "top" mode, else 0 —
 * and writes each with `store(u)`, the statement for register pair u (x = u·WGP + lid);
 * `positionKey` reads position j's own mask and score (mySet, myNan, myKey; vars declared).
 */
export function tileFetch(baseExpr: string): string {
  return range(TILE / WGP).map((u) => `{
      let i = ${baseExpr} + ${u * WGP}u + lid;
      if (i < L) { pm${u} = mask[row + i]; if (top) { ps${u} = score[row + i]; } }
    }`).join("\n    ");
}

/** Pass 2's load of the row's ends in [lo, hi) from `lo` into registers pe* (as tileFetch). */
export function endsFetch(loExpr: string, hiExpr: string): string {
  return range(TILE / WGP).map((u) => `{
      let i = ${loExpr} + ${u * WGP}u + lid;
      if (i < ${hiExpr}) { pe${u} = ends[row + i]; }
    }`).join("\n    ");
}

/** See tileFetch. */
export function tileConvert(store: (u: number) => string): string {
  return range(TILE / WGP).map((u) => `{
      var kind = 0u;
      var key = 0u;
      if (base + ${u * WGP}u + lid < L && isSet(pm${u})) {
        kind = 1u;
        if (top) {
          if (isNan(ps${u})) { kind = 2u; } else { key = ord(ps${u}); }
        }
      }
      ${store(u)}
    }`).join("\n    ");
}

/** See tileFetch. */
export const positionKey = `if (live) {
    mySet = isSet(mask[row + j]);
    if (top) {
      let sj = score[row + j];
      myNan = isNan(sj);
      myKey = ord(sj);
    }
  }`;

/**
 * Pass 1 with N lanes per position: ends[b·L + j] = e_j (0 when never held) and
 * ends[B·L + b·L + j] = min(k, #set positions ≤ j), as selectEndWgsl. params: B, L, k, mode
 * (0 last, 1 top). Tile entries are (kind, key): kind 0 unset, 1 set, 2 set with a NaN score
 * ("top"); key ord(score) for kind 1 in "top" mode, else 0. A kind-2 entry at tile index x is a
 * fill-time NaN iff x < xk, the first index with k set positions before it (0 once k are counted).
 *
 * Per position (state kept alike in its N lanes): a tile wholly before j adds to c0 and ends the
 * position when c0 + m ≥ k (never held: e = 0, rank = k; the serial scan finds the same at j, as
 * c0 and m only grow); a position that needs no c0 (unset, NaN, or "last" mode) ends, or jumps to
 * j's tile ("last", set), once k set positions are counted, as in the one-lane kernel. The tile
 * holding j settles rank = min(k, nset at j), the unset and NaN positions, and c0 + m ≥ k at j;
 * past j, a tile where c0 + cnt + m reaches k has the lanes walk their shares for the exit.
 */
export function selectEndLanesWgsl(maskType: DType, scoreType: DType, N: number): string {
  checkLanes(N);
  const C = TILE / N, PP = WGP / N, P = TILE / WGP;
  const U = range(UNROLL);
  const loads = U.map((u) => `let q${u} = tile[x + lane + ${u}u];`).join(" ");
  // a lane's share [a, z) of the tile, UNROLL entries at a time (a tree of counts), then the rest
  const share = (acc: string, pred: (q: string) => string) => `var x = a;
        loop {
          if (x + ${UNROLL}u > z) { break; }
          ${loads}
          ${acc} += ${tree(U.map((u) => `select(0u, 1u, ${pred(`q${u}`)})`), "+")};
          x += ${UNROLL}u;
        }
        loop {
          if (x >= z) { break; }
          let q = tile[x + lane];
          ${acc} += select(0u, 1u, ${pred("q")});
          x++;
        }`;
  return `${header(4, [{ name: "ends", type: "u32", write: true }, { name: "mask", type: "u32" }, { name: "score", type: "u32" }])}
${bitsFns(maskType, scoreType)}
var<workgroup> tile: array<vec2<u32>, ${TILE + N}>;
var<workgroup> sums: array<vec4<u32>, ${WGP}>;
var<workgroup> hit: array<atomic<u32>, ${PP}>;
var<workgroup> vote: atomic<u32>;
var<workgroup> nextBase: u32;
var<workgroup> rowInfo: vec4<u32>;
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)}; let top = ${pu(3)} == 1u;
  let per = (L + ${PP - 1}u) / ${PP}u;
  let b = wg / per;
  if (b >= B) { return; }
  let row = b * L;
  let pos = lid / ${N}u;
  let lane = lid % ${N}u;
  let j = (wg % per) * ${PP}u + pos;
  // positions past the row's end are done from the start; their threads still load and meet the barriers
  let live = j < L;
  var mySet = false;
  var myNan = false;
  var myKey = 0u; // "last": every key 0, so the position alone decides (later is better)
  ${positionKey}
  let needC0 = top && mySet && !myNan;
  // the better keys counted: none for a position that does not need c0
  let cKey = select(0xffffffffu, myKey, needC0);
  // the row's counts before the tile, alike in every thread: set positions (exact below k) and
  // fill-time NaNs
  var nsetW = 0u;
  var mW = 0u;
  var c0 = 0u;   // better keys before j
  var cnt = 0u;  // keys as good as j's after j
  var rank = 0u; // min(k, set positions before j)
  var e = L;
  var done = !live;
  if (lid == 0u) { atomicStore(&vote, 0xffffffffu); }
  ${range(P).map((u) => `var pm${u} = 0u; var ps${u} = 0u;`).join(" ")}
  var base = 0u;
  ${tileFetch("base")}
  loop {
    ${tileConvert((u) => `let x = ${u * WGP}u + lid;
      tile[x + x / ${C}u] = vec2<u32>(kind, key);`)}
    ${tileFetch(`base + ${TILE}u`)}
    if (lane == 0u) { atomicStore(&hit[pos], 0xffffffffu); }
    workgroupBarrier();
    let xe = min(${TILE}u, L - base);
    // the row's counts: xk (NaNs before it are fill-time), set positions and fill-time NaNs at
    // the tile's end; thread 0 walks the tile only while fewer than k set positions are counted
    let full = nsetW < k;
    var xk = 0u;
    var nEnd = nsetW;
    var mEnd = mW;
    if (full) {
      if (lid == 0u) {
        var n = nsetW;
        var mm = mW;
        var x = 0u;
        loop {
          if (x + ${UNROLL}u > xe) { break; }
          ${U.map((u) => `let k${u} = tile[x + (x + ${u}u) / ${C}u + ${u}u].x;`).join(" ")}
          let s = ${tree(U.map((u) => `min(k${u}, 1u)`), "+")};
          if (n + s >= k) { break; }
          n += s;
          mm += ${tree(U.map((u) => `select(0u, 1u, k${u} == 2u)`), "+")};
          x += ${UNROLL}u;
        }
        loop {
          if (x >= xe || n >= k) { break; }
          let q = tile[x + x / ${C}u].x;
          mm += select(0u, 1u, q == 2u);
          n += min(q, 1u);
          x++;
        }
        rowInfo = vec4<u32>(x, n, mm, 0u);
      }
      let ri = workgroupUniformLoad(&rowInfo);
      xk = ri.x;
      nEnd = ri.y;
      mEnd = ri.z;
    }
    // this lane's share [a, z); before j: x < xbj, after j: x ≥ xaj (j itself neither)
    let a = lane * ${C}u;
    let z = min(a + ${C}u, xe);
    let xbj = select(0u, min(j - base, xe), j >= base);
    let xaj = select(0u, j - base + 1u, j >= base);
    var sc = 0u;  // better keys before j
    var ss = 0u;  // set positions before j (counted while the row has fewer than k: rank is k after)
    var snb = 0u; // fill-time NaNs before j
    var sg = 0u;  // keys as good as j's after j
    var sn = 0u;  // fill-time NaNs
    var ending = false; // the exit is in this tile
    if (!done) {
      if (!full && z <= xbj) {
        ${share("sc", (q) => `${q}.y > cKey`)}
      } else if (!full && a >= xaj) {
        ${share("sg", (q) => `${q}.x == 1u && ${q}.y >= myKey`)}
      } else {
        for (var x = a; x < z; x++) {
          let q = tile[x + lane];
          let nc = q.x == 2u && x < xk;
          if (x < xbj) {
            sc += select(0u, 1u, q.y > cKey);
            ss += min(q.x, 1u);
            snb += select(0u, 1u, nc);
          } else if (x >= xaj) {
            sg += select(0u, 1u, q.x == 1u && q.y >= myKey);
          }
          sn += select(0u, 1u, nc);
        }
      }
    }
    sums[lid] = vec4<u32>(sc, ss | (snb << 16u), sg, sn);
    workgroupBarrier();
    if (!done) {
      // the position's totals, and (for the exit) keys as good as j's and fill-time NaNs in the
      // lanes before this one
      var tc = 0u;
      var ts = 0u;
      var tg = 0u;
      var tn = 0u;
      var before = 0u;
      for (var l = 0u; l < ${N}u; l++) {
        let v = sums[pos * ${N}u + l];
        tc += v.x;
        ts += v.y;
        tg += v.z;
        tn += v.w;
        before += select(0u, v.z + v.w, l < lane);
      }
      if (j >= base + xe) {
        // the tile is before j
        c0 += tc;
        if (needC0) {
          if (c0 + mEnd >= k) { rank = k; e = 0u; done = true; }
        } else if (nEnd >= k) {
          rank = k;
          if (!mySet || myNan) { e = 0u; done = true; }
        }
      } else {
        if (j >= base) {
          // j is in the tile
          c0 += tc;
          rank = min(k, nsetW + (ts & 0xffffu));
          if (!mySet) {
            e = 0u;
            done = true;
          } else if (myNan) {
            if (rank >= k) { e = 0u; }
            done = true;
          } else if (needC0 && c0 + mW + (ts >> 16u) >= k) {
            e = 0u;
            done = true;
          }
        }
        if (!done) {
          if (c0 + cnt + tg + mEnd >= k) {
            // without fill-time NaNs in the tile, the sum at its last key as good as j's is the
            // sum at its end: then the exit is surely here, and the position casts no vote for
            // the next tile (with them, it may vote for one it will not need)
            ending = tg > 0u && tn == 0u;
            // the exit may be in the tile: c0 + cnt + m at the start of this lane's share, then
            // its walk when the sum reaches k within the share or before it
            var f = c0 + cnt + mW + before;
            if (sg > 0u && f + sg + sn >= k) {
              for (var x = a; x < z; x++) {
                let q = tile[x + lane];
                if (q.x == 2u && x < xk) {
                  f++;
                } else if (x >= xaj && q.x == 1u && q.y >= myKey) {
                  f++;
                  if (f >= k) {
                    atomicMin(&hit[pos], x);
                    break;
                  }
                }
              }
            }
          }
          cnt += tg;
        }
      }
    }
    if (!done && !ending && lane == 0u) {
      var need = base + ${TILE}u;
      if (!needC0 && nEnd >= k && j > need) { need = j; }
      atomicMin(&vote, need);
    }
    workgroupBarrier();
    if (!done) {
      let h = atomicLoad(&hit[pos]);
      if (h != 0xffffffffu) {
        e = base + h;
        done = true;
      }
    }
    if (lid == 0u) {
      nextBase = atomicLoad(&vote);
      atomicStore(&vote, 0xffffffffu);
    }
    let next = workgroupUniformLoad(&nextBase);
    nsetW = nEnd;
    mW = mEnd;
    if (next >= L) { break; }
    let nb = next - next % ${TILE}u;
    if (nb != base + ${TILE}u) {
      ${tileFetch("nb")}
    }
    base = nb;
  }
  if (live && lane == 0u) {
    ends[row + j] = e;
    ends[B * L + row + j] = min(k, rank + select(0u, 1u, mySet));
  }
}`;
}

/**
 * Pass 2 with N lanes per position t, as selectFillWgsl: the held j < t (e_j ≥ t) from the
 * right, min(k, #set positions < t) of them, the rest −1. The tile holds j ∈ [lo, hi) going down
 * the row; lane l's share is [l·C, (l + 1)·C) of it (lanes above hold higher j). Each lane counts
 * the held j of its share, the counts are summed through workgroup memory, and a lane with held
 * ones writes them from slot (slot left) − (held in the lanes above), going down its share: the
 * slot order of the one-lane walk. params: B, L, k.
 */
export function selectFillLanesWgsl(N: number): string {
  checkLanes(N);
  const C = TILE / N, PP = WGP / N, P = TILE / WGP;
  const U = range(UNROLL);
  return `${header(3, [{ name: "out", type: "i32", write: true }, { name: "ends", type: "u32" }])}
var<workgroup> tile: array<u32, ${TILE + N}>;
var<workgroup> counts: array<u32, ${WGP}>;
var<workgroup> vote: atomic<u32>;
var<workgroup> more: u32;
@compute @workgroup_size(${WGP})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)};
  let per = (L + ${PP - 1}u) / ${PP}u;
  let b = wg / per;
  if (b >= B) { return; }
  let row = b * L;
  let pos = lid / ${N}u;
  let lane = lid % ${N}u;
  let t0 = (wg % per) * ${PP}u;
  let t = t0 + pos;
  // positions past the row's end fill nothing; their threads still load and meet the barriers
  let live = t < L;
  let o = (row + t) * k;
  var have = 0u;
  if (live && t > 0u) { have = min(k, ends[B * L + row + t - 1u]); }
  if (live) {
    for (var q = have + lane; q < k; q += ${N}u) { out[o + q] = -1i; }
  }
  var slot = have;
  // the tile is [lo, hi): every j < hi, hi the workgroup's last t
  var hi = min(t0 + ${PP}u, L) - 1u;
  var lo = hi - min(${TILE}u, hi);
  ${range(P).map((u) => `var pe${u} = 0u;`).join(" ")}
  ${endsFetch("lo", "hi")}
  if (lid == 0u) { atomicStore(&vote, 0u); }
  let a = lane * ${C}u;
  loop {
    ${range(P).map((u) => `{
      let x = ${u * WGP}u + lid;
      tile[x + x / ${C}u] = pe${u};
    }`).join("\n    ")}
    let lo2 = lo - min(${TILE}u, lo);
    ${endsFetch("lo2", "lo")}
    workgroupBarrier();
    // this lane's share [a, z) of the tile, j < t only
    let z = min(a + ${C}u, min(t, hi) - lo);
    var c = 0u;
    if (slot > 0u) {
      var x = a;
      loop {
        if (x + ${UNROLL}u > z) { break; }
        c += ${tree(U.map((u) => `select(0u, 1u, tile[x + lane + ${u}u] >= t)`), "+")};
        x += ${UNROLL}u;
      }
      loop {
        if (x >= z) { break; }
        c += select(0u, 1u, tile[x + lane] >= t);
        x++;
      }
    }
    counts[lid] = c;
    workgroupBarrier();
    if (slot > 0u) {
      var above = 0u;
      var total = 0u;
      for (var l = 0u; l < ${N}u; l++) {
        let v = counts[pos * ${N}u + l];
        total += v;
        above += select(0u, v, l > lane);
      }
      if (c > 0u && above < slot) {
        var s = slot - above;
        var x = z;
        loop {
          if (x <= a || s == 0u) { break; }
          x--;
          if (tile[x + lane] >= t) {
            s--;
            out[o + s] = i32(lo + x);
          }
        }
      }
      slot -= min(slot, total);
      if (slot > 0u && lane == 0u) { atomicAdd(&vote, 1u); }
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
