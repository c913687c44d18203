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
import { bitsFns, checkLanes, positionKey, range, TILE, tileConvert, tileFetch, tree, UNROLL, WGP } from "./select-lanes-common.ts";

// the shared WGSL pieces and pass 2 live beside this file; their importers keep importing them from here
export { bitsFns, checkLanes, endsFetch, MAX_LANES, positionKey, range, TILE, tileConvert, tileFetch, tree, UNROLL, WGP } from "./select-lanes-common.ts";
export { selectFillLanesWgsl } from "./select-lanes-fill.ts";

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
