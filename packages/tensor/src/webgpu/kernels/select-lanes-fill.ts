/**
 * Pass 2 of causalSelect with several lanes a position (selectFillLanesWgsl): the held positions
 * of each t written into its k slots. Moved from select-lanes.ts (whose module comment describes
 * the lanes scheme), which re-exports it.
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";
import { checkLanes, endsFetch, range, TILE, tree, UNROLL, WGP } from "./select-lanes-common.ts";

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
