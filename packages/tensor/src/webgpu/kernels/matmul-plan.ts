/**
 * The matmul's planning rules, pure functions of a problem's sizes and the knobs:
 * - matmulTuning, the knobs (module state, the one object: tests and benchmarks set them between
 *   calls, and matmul.ts's plan cache forgets its plans when one changes);
 * - matmulPlan: the kernel a problem of `batches` [m, K]·[K, N] products takes, "untiled" or a
 *   tile config (matmul-tile-config.ts);
 * - splitKPlan: whether and how K is cut.
 * Split-K: when C has too few blocks to fill the GPU and K is long (the weight
 * gradients of a training step, dW = Xᵀ·dY: [256, 64] from K = 2048 rows per batch element), K is
 * cut into S slices that run as extra grid z (zz = slice · batches + batch), each writing its
 * partial C into a scratch [S, batches, m, N]; a second kernel sums the S partials in order
 * (deterministic). The slice bounds are params; K stays the leading dimension of A / B.
 */
import { ceilDiv } from "../context.ts";
import { BIG_TILE, MID_TILE, MID_TILE_TALL, NARROW_TILE_16, NARROW_TILE_16_TALL, NARROW_TILE_32, SHORT_K_TILE, SMALL_TILE, WIDE_TILE, type TileConfig } from "./matmul-tile-config.ts";
import { NAIVE_WG } from "./matmul-untiled.ts";

/**
 * Tuning knobs: force one tile config (null: choose by problem size); the number of blocks from
 * which the big (128x128) and mid (128x64) tiles are used; whether the specialised tiles' inner
 * loop is unrolled (tests on a software Vulkan turn it off: same code paths, a 10x shorter compile).
 */
export const matmulTuning = {
  /** A tile (or "untiled") for every matmul that reaches the planner (tests, benchmark sweeps); null: by size. */
  force: null as TileConfig | "untiled" | null,
  wideTileMinBlocks: 128,
  bigTileMinBlocks: 192,
  midTileMinBlocks: 96,
  /** From this many rows (m · batches) a product with N < 64 and B untransposed takes the 64x64 tile, not the 128x64 one (see matmulPlan). */
  narrowSmallMinRows: 32768,
  /** From this many rows (m · batches) a product of N = 16, 32 or 48 columns, B untransposed, takes a tile of 16 or 32 columns (NARROW_TILE_*); Infinity: never. */
  narrowTileMinRows: 4096,
  /** From this many rows (m · batches) the 128x64 tile runs at BK 16 (MID_TILE_TALL). */
  tallMidMinRows: 32768,
  unrollBig: true,
  /** Problems up to this many multiply-adds (or with M or N below 16) use the untiled kernel. */
  naiveMaxFlops: 2 ** 21,
  /** Products with K up to this (and at least 128 useful output columns) take SHORT_K_TILE. */
  shortKMax: 64,
  /** Use runtime transposes in the big tile too (tests: one pipeline for all four). */
  runtimeTrans: false,
  /** Split-K for problems with too few output blocks and a long K (see splitKPlan); false: never. */
  splitK: true,
  /**
   * Split only when the unsplit launch has fewer workgroups than this, counted in 64x64 blocks of
   * C (a 128x128 block counts 4: it fills an SM as 4 small ones do; untiled: workgroups of 64
   * threads). An H100 / H200 (132 SMs) holds several 64x64 workgroups per SM.
   */
  splitKMaxWorkgroups: 256,
  /** The workgroups (same count, times slices) the slice count aims for. */
  splitKTargetWorkgroups: 512,
  /** The shortest slice of K, rounded up to whole k-tiles (128: 8 k-tiles of the 64x64 tile, 4 of the 128-row ones). */
  splitKMinSlice: 128,
  /**
   * The same for the untiled kernel (no k-tiles): a thin product such as a scorer's weight
   * gradient Xᵀ·g ([16384, 256]ᵀ·[16384, 1]) has one workgroup per slice, so it needs many short
   * slices to fill a GPU (H200: 38 µs with slices of 128, 18 µs with 32; webgpu-matmul --shapes).
   */
  splitKMinSliceUntiled: 32,
  /**
   * A wider tile is taken only where its columns are at least this fraction used (N over the
   * columns its blocks cover): a 128x256 block over N = 64 computes four times the work. On an
   * H200, [16384, 256]·[256, 64] took 56 µs in the 128x256 tile and 19.5 µs in the 128x64 one
   * (webgpu-matmul --shapes … --tile auto,128x64,…, 2026-11-26).
   */
  minColumnUse: 0.75,
  /**
   * From this K on, a problem with too few blocks for the rules above (a weight gradient Xᵀ·dY:
   * small output, K = batch · length) takes the 128x128 (or, for N ≤ 64, the 128x64) tile where
   * it uses 3/4 of its rows and columns, not the 64x64 one: split-K supplies the parallelism, and
   * the bigger tile does twice the work per load. On an H200, with split-K, [256, 16384]·[16384,
   * 1024]: 333 → 200 µs; [512, ·]·[·, 256]: 174 → 106 µs; [256, ·]·[·, 256]: 96 → 61 µs; [256,
   * ·]·[·, 64] (128x64): 39 → 30 µs (webgpu-matmul --shapes … --tile auto,128,128x64, 2026-11-26).
   */
  bigTileSplitMinK: 4096,
  /** No split for problems of at most this many multiply-adds (the extra launch would dominate). */
  splitKMinFlops: 2 ** 21,
  /**
   * Matrix-vector products A·b (N = 1, A untransposed, one batch after folding) as row dots:
   * 32 lanes a row reading it in 128-byte runs (see rowDotWgsl); false: the untiled kernel.
   */
  rowDot: true,
  /** Small untiled products without a split of K: LANES threads an element (see lanesWgsl); false: a thread per element. */
  lanes: true,
};

/**
 * The kernel for a problem of `batches` [m, K]·[K, N] products: "untiled" for small or thin
 * ones, SHORT_K_TILE for a short K over many blocks, else a tile config: the widest tile that has enough blocks to fill a GPU and uses at least
 * matmulTuning.minColumnUse of its columns (narrow outputs, N ≤ 64, get the 128x64 tile, except
 * N = 16, 32, 48 with B untransposed over narrowTileMinRows rows: a tile of 16 or 32 columns, and
 * other N < 64 with B untransposed over narrowSmallMinRows rows or more: the 64x64 one); with
 * too few blocks and a long K (split-K's problems), the 128-row tiles where they fit
 * (matmulTuning.bigTileSplitMinK).
 */
export function matmulPlan(m: number, N: number, K: number, batches: number, transB = false): "untiled" | TileConfig {
  if (matmulTuning.force) return matmulTuning.force;
  if (m * N * K * batches <= matmulTuning.naiveMaxFlops || m < 16 || N < 16) return "untiled";
  const use = (BN: number) => N / (ceilDiv(N, BN) * BN) >= matmulTuning.minColumnUse;
  if (K <= matmulTuning.shortKMax && use(128) && ceilDiv(m, 128) * ceilDiv(N, 128) * batches >= matmulTuning.bigTileMinBlocks) return SHORT_K_TILE;
  if (use(256) && ceilDiv(m, 128) * ceilDiv(N, 256) * batches >= matmulTuning.wideTileMinBlocks) return WIDE_TILE;
  if (use(128) && ceilDiv(m, 128) * ceilDiv(N, 128) * batches >= matmulTuning.bigTileMinBlocks) return BIG_TILE;
  // 16, 32 or 48 columns, B untransposed, over many rows: a tile of 16 or 32 columns (NARROW_TILE_*)
  const rows = m * batches;
  if (!transB && rows >= matmulTuning.narrowTileMinRows && (N === 16 || N === 32 || N === 48)) {
    return N === 32 ? NARROW_TILE_32 : N === 48 && rows >= 16384 ? NARROW_TILE_16_TALL : NARROW_TILE_16;
  }
  // a narrower B than the 128x64 tile's 64 columns, untransposed, over very many rows: the 64x64
  // tile. On an H100, [61440, 512]·[512, 48] (Mamba's x_proj in a 60K chunk) 0.270 → 0.186 ms,
  // [61440, ·]·[·, 16] 0.254 → 0.176, [32768, ·]·[·, 48] 0.138 → 0.096; at 16384 rows the two are
  // within 5%, and with B transposed the 128x64 tile stays ahead (webgpu-matmul --shapes, 2026-11-26)
  const narrowTall = N < 64 && !transB && m * batches >= matmulTuning.narrowSmallMinRows;
  if (!narrowTall && ceilDiv(m, 128) * ceilDiv(N, 64) * batches >= matmulTuning.midTileMinBlocks) {
    return m * batches >= matmulTuning.tallMidMinRows ? MID_TILE_TALL : MID_TILE;
  }
  if (matmulTuning.splitK && K >= matmulTuning.bigTileSplitMinK && m / (ceilDiv(m, 128) * 128) >= matmulTuning.minColumnUse) {
    if (use(128)) return BIG_TILE;
    if (use(64)) return MID_TILE;
  }
  return SMALL_TILE;
}

/** How K is cut for split-K: `slices` pieces of `sliceLen` (the last may be shorter); 1 slice: no split. */
export interface SplitK {
  slices: number;
  sliceLen: number;
}

/**
 * The split-K decision for a problem of `batches` [m, K]·[K, N] products run with `plan` (a tile
 * as fitTile returns it, or "untiled"). Split when (matmulTuning) splitK is on, the problem has
 * more than splitKMinFlops multiply-adds, and the unsplit launch has fewer than
 * splitKMaxWorkgroups workgroups W (blocks × batches, weighted by block area over 64x64, so a
 * launch of 128 of the 128x256 tile, which already fills a 132-SM GPU at one per SM, is not
 * split; untiled: workgroups of 64 threads of 4x4 outputs each): then
 * S = ⌈splitKTargetWorkgroups / W⌉ slices, fewer where a slice would be shorter
 * than splitKMinSlice or the partials [S, batches, m, N] would exceed `maxScratchBytes`. A
 * slice is a whole number of k-tiles (so the tile's unguarded "full" variant stays valid), and
 * S is recomputed from the rounded length so no slice is empty.
 * Example (H100 / H200, a training step's dW = Xᵀ·dY per batch element): [8] 256×256 from
 * K = 2048 on the 64x64 tile is 128 workgroups, split 4 ways (slices of 512): 512 workgroups.
 */
export function splitKPlan(m: number, N: number, K: number, batches: number, plan: "untiled" | TileConfig, maxScratchBytes = Infinity): SplitK {
  const none: SplitK = { slices: 1, sliceLen: K };
  const T = matmulTuning;
  if (!T.splitK || m * N * K * batches <= T.splitKMinFlops) return none;
  const wgs = plan === "untiled"
    ? ceilDiv(ceilDiv(m, 4) * ceilDiv(N, 4) * batches, NAIVE_WG)
    : ceilDiv(m, plan.BM) * ceilDiv(N, plan.BN) * batches * Math.max(1, (plan.BM * plan.BN) / 4096);
  if (wgs >= T.splitKMaxWorkgroups) return none;
  const step = plan === "untiled" ? 1 : plan.BK;
  const minSlice = ceilDiv(Math.max(1, plan === "untiled" ? T.splitKMinSliceUntiled : T.splitKMinSlice), step) * step;
  const S0 = Math.min(ceilDiv(T.splitKTargetWorkgroups, wgs), Math.floor(K / minSlice), Math.floor(maxScratchBytes / (4 * m * N * batches)));
  if (S0 < 2) return none;
  const sliceLen = ceilDiv(ceilDiv(K, S0), step) * step;
  const slices = ceilDiv(K, sliceLen);
  return slices < 2 ? none : { slices, sliceLen };
}
