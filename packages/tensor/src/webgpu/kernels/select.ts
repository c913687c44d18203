/**
 * causalSelect: mask, score [B, L] → out [B, L, k] (i32), the positions j < t a bounded memory
 * of k slots holds at t ("last": FIFO; "top": evicts the lowest score, the oldest among equals),
 * increasing, −1 in unused slots. See cpu/select.ts for the reference.
 *
 * Two formulations:
 * - the walks (select-walk.ts) replay the memory's history step by step along L, one thread or
 *   one workgroup per row: parallel over B only, so latency-bound;
 * - the parallel one (select-parallel.ts), used up to selectTuning.parallelMaxL: order
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
 *   (the reference's count), and pads with −1. Both passes read the row through workgroup memory
 *   in tiles (select-parallel.ts). Where B·L is small (selectTuning.lanesBelow), both passes give
 *   each position several threads instead, each scanning a share of every tile (select-lanes.ts).
 *   In "top" mode pass 2 builds the rows from segments instead (select-segments.ts: lists of the
 *   held positions at segment starts, then each row from its segment's list), and for rows of
 *   selectTuning.summaryMinL and more (or B·L² of selectTuning.summaryMinWork and more) with f32
 *   scores pass 1 reads each tile's k best keys
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
import { checkLanes, selectEndLanesWgsl, selectFillLanesWgsl, WGP } from "./select-lanes.ts";
import { selectEndWgsl, selectFillWgsl } from "./select-parallel.ts";
import { KMAX, selectWgsl, selectWgWgsl, WALK_WG } from "./select-walk.ts";

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
  /**
   * Shorter rows take them too where B·L² reaches this: the scan from each row's start costs about
   * B·L² work, the summaries about B·L plus ~0.1 ms. On an H200 (webgpu-select, k 50, "top",
   * density 0.25, 2026-11-26), a call with the scan / with the summaries: B 64, L 4K 0.567 / 0.363
   * ms; B 16, L 16K 1.15 / 0.356; B 4, L 8K 0.170 / 0.153; B 256, L 1K 0.307 / 0.371; B 32, L 2K
   * 0.133 / 0.162; B 8, L 2K 0.081 / 0.121; B 1, L 4K 0.057 / 0.139; B 1, L 16K 0.153 / 0.135.
   * 2^29 takes the first two (B·L² 1.1e9 and 4.3e9) and leaves those of 2.7e8 and less.
   */
  summaryMinWork: number;
  /**
   * The longest row for the parallel kernels where the first pass reads summaries (parallelMaxL
   * for the scan). Their work grows about as L²/(tile · superTiles) a row, the walk's as L·k in
   * one thread a row: on an H200, MemMamba's forward over one 256K chunk (rows of 262,194 with
   * the pool's notes) took 3.5 s with the walk (this was 262,144) and 118 ms with the summaries
   * (128K chunks: 124–130 ms; scaling --chunk, 2026-11-27).
   */
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
  /** Positions a segment of the second pass from segments (a multiple of 64 up to 256); 0: by length (segmentLength). */
  segment: number;
} = { segment: 0, parallelMaxL: 65536, force: "auto", lanes: lanesFromEnv(), lanesLast: 1, lanesBelow: 65536, fill: "segments", end: "summary", summaryMinL: 24576, summaryMinWork: 2 ** 29, parallelMaxLSummary: 1048576, superTiles: 8 };

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
  const maxL = usesSummary(B, L, k, mode, scoreDtype) ? selectTuning.parallelMaxLSummary : selectTuning.parallelMaxL;
  const parallel = selectTuning.force === "parallel" || (selectTuning.force === "auto" && L <= maxL);
  if (parallel && scratchFits) return "parallel";
  return k <= KMAX ? "walkWg" : "walk";
}

/**
 * Whether the parallel path's first pass reads tile summaries (select-summary.ts): "top" mode, f32
 * scores, k ≤ SUMMARY_MAX_K, rows of at least selectTuning.summaryMinL or B rows of L with B·L² of
 * at least selectTuning.summaryMinWork (below both the scan from each row's start is faster: the
 * summaries' passes cost about 0.1 ms however short the row).
 */
export function usesSummary(B: number, L: number, k: number, mode: "last" | "top", scoreDtype: DType): boolean {
  const long = L >= selectTuning.summaryMinL || B * L * L >= selectTuning.summaryMinWork;
  return selectTuning.end === "summary" && mode !== "last" && scoreDtype === "f32" && k <= SUMMARY_MAX_K && long;
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
    if (usesSummary(B, L, p.k, p.mode, score.dtype)) {
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
      const g = G > 0 && nT > G && superKeys(G, p.k) <= SUPER_MAX_KEYS ? G : 0;
      const w2 = g ? new ParamWords().u(B).u(L).u(p.k).u(nT).u(ceilDiv(nT, g)).words() : w;
      const summ2 = g ? ctx.temp(B * ceilDiv(nT, g) * summaryWords(p.k) * 4) : null;
      if (summ2) {
        ctx.dispatch({
          label: "causalSelect", key: `causalSelectSumm2:${g}`, wgsl: () => superSummaryWgsl(g),
          buffers: [summ2, summ], params: w2, groups: grid(B * ceilDiv(nT, g), maxDim),
        });
      }
      ctx.dispatch({
        label: "causalSelect", key: `causalSelectEndS:${mask.dtype}${score.dtype}${g ? `:g${g}` : ""}`, wgsl: () => summaryEndWgsl(mask.dtype, score.dtype, g),
        buffers: [ends, ...ms, summ, ...(summ2 ? [summ2] : [])], params: w2, groups: grid(B * ceilDiv(L, END_WG), maxDim),
      });
      if (summ2) ctx.releaseTemp(summ2);
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
      const T = selectTuning.segment || segmentLength(L), nSeg = ceilDiv(L, T);
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
    groups: grid(ceilDiv(B, WALK_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

const ENTERED_WG = 256;
/** Threads a row of causalEntered (each takes every ENTERED_LANES-th word: coalesced loads). */
const ENTERED_LANES = 8;
/** Rows a workgroup reduces, and the outputs it writes (each compares two adjacent rows). */
const ENTERED_ROWS = ENTERED_WG / ENTERED_LANES;
const ENTERED_OUT = ENTERED_ROWS - 1;

/**
 * causalEntered: a workgroup reduces ENTERED_ROWS consecutive rows (ENTERED_LANES threads a row,
 * so a warp's loads cover a few whole runs of words, not one word in each of 32 rows), each row's
 * largest position from −1 into workgroup memory, then writes the ENTERED_OUT comparisons of
 * adjacent rows. params: B, N, k, start, count.
 */
function enteredWgsl(): string {
  const LN = ENTERED_LANES, OUT = ENTERED_OUT;
  return `${header(5, [{ name: "out", type: "f32", write: true }, { name: "pos", type: "i32" }])}
var<workgroup> mx: array<i32, ${ENTERED_WG}>;
@compute @workgroup_size(${ENTERED_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${pu(0)}; let N = ${pu(1)}; let k = ${pu(2)}; let start = ${pu(3)}; let count = ${pu(4)};
  let per = (count + ${OUT - 1}u) / ${OUT}u;
  if (wg >= B * per) { return; }
  let b = wg / per;
  let t0 = (wg % per) * ${OUT}u;
  let rr = lid / ${LN}u;
  var m = -1i;
  // rows start + t0 … start + min(t0 + ${OUT}, count): the last output compares row start + count
  // (past the end when start + count = N: −1, and so a 0)
  if (t0 + rr <= count && start + t0 + rr < N) {
    let base = (b * N + start + t0 + rr) * k;
    for (var j = lid % ${LN}u; j < k; j += ${LN}u) { m = max(m, pos[base + j]); }
  }
  mx[lid] = m;
  workgroupBarrier();
  if (lid < ${OUT}u && t0 + lid < count) {
    var m0 = -1i; var m1 = -1i;
    for (var u = 0u; u < ${LN}u; u++) { m0 = max(m0, mx[lid * ${LN}u + u]); m1 = max(m1, mx[(lid + 1u) * ${LN}u + u]); }
    out[b * count + t0 + lid] = select(0.0f, 1.0f, m1 > m0);
  }
}
`;
}

/** causalEntered on the GPU: one launch (the composite's cast, max, two slices and compare). */
export function causalEnteredKernel(ctx: GpuCtx, [pos]: readonly KernelArg[], out: KernelArg, p: PrimParams["causalEntered"]): void {
  const [B, N, k] = pos.shape;
  if (B * p.count === 0) return;
  ctx.dispatch({
    label: "causalEntered", key: "causalEntered", wgsl: enteredWgsl,
    buffers: [ctx.ref(out, "causalEntered"), ctx.ref(pos, "causalEntered")],
    params: new ParamWords().u(B).u(N).u(k).u(p.start).u(p.count).words(),
    groups: grid(B * ceilDiv(p.count, ENTERED_OUT), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
