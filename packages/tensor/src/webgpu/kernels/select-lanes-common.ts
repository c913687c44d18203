/**
 * The WGSL building blocks of causalSelect's parallel passes, shared by select-parallel.ts's
 * one-thread-a-position kernels, select-lanes.ts's pass 1 with several lanes a position and
 * select-lanes-fill.ts's pass 2 (select-summary.ts uses bitsFns): the workgroup and tile sizes,
 * the lane count check, and the tile loads and conversions. Moved from select-lanes.ts, which
 * re-exports all of it.
 */
import type { DType } from "../../dtype.ts";

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
 * WGSL shared by pass 1's kernels (select-parallel.ts's one thread a position, and the lanes one in select-lanes.ts):
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
