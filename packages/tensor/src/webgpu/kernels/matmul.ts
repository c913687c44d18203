/**
 * Batched matmul C[b] = op(A[b]) · op(B[b]) with transA / transB and broadcast batch dims.
 *
 * Three kernels, by problem size (matmulPlan):
 * - untiled, for small or thin problems: a thread per 4x4 block of C, straight from memory;
 * - tiled, the classic register-blocked SGEMM: a workgroup of 256 threads computes a BM x BN
 *   block of C (128x256, 128x128 or 128x64 by size; 64x64 with BK = 16 for small ones; all
 *   specialised), marching along K in steps of BK;
 * - each step stages a BK x BM slice of op(A) and a BK x BN slice of op(B) in workgroup memory,
 *   both stored k-major as vec4 along m / n, so the inner loop reads one vec4 per 4 rows / cols;
 * - each thread owns a TM x TN block (8x8 or 4x4) of C in vec4 registers (no function-scope
 *   arrays, which naga compiles badly: separate generated variables), and the specialised tiles
 *   unroll the BK steps of the inner loop;
 * - global loads for step k+1 are issued into registers before the math of step k (register
 *   prefetch), so their latency hides behind the FMAs;
 * - specialised tiles: loads are vec4 along whichever axis is contiguous in memory (k for A, n
 *   for B, or m / k when transposed) when that axis is a multiple of 4, else four guarded scalar
 *   loads, and bounds checks disappear when M, N, K are multiples of the tile ("full"); a
 *   generic tile (a config without `specialize`, or matmulTuning.runtimeTrans) takes transA /
 *   transB as uniforms (one pipeline for the four combinations).
 * Tile options (TileConfig; spec strings "BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf]" for
 * the benchmark's --tile / --sweep): double-buffered workgroup memory (:db), bank-conflict-free
 * tile stores (:cf, padded; with :xs XOR-swizzled instead), warp-shaped thread layout (:wl),
 * swizzled block order for L2 reuse (:sw, bands of 8 block rows; :swN, of N), fragments of the
 * next k step read before the FMAs of this one (:rf); any size of block and thread tile that
 * tileProblem accepts. fitTile shrinks one that exceeds the device's workgroup memory.
 * Measured on an H100 (Dawn under Node, GPU-timed, packages/bench/src/webgpu-matmul.ts): 40.8
 * TFLOP/s at 4096², 40.3 at 2048², 30.3 at 1024²; cuBLAS fp32 (TF32 off): 50.8 / 47.9 / 27.8.
 * Batch: when B has no batch and A is not transposed, A's batch folds into M (one big GEMM).
 * Otherwise grid z walks the output batch (chunks of 65535) and each workgroup finds its A / B
 * offsets through the broadcast strides.
 * Split-K (splitKPlan): when C has too few blocks to fill the GPU and K is long (the weight
 * gradients of a training step, dW = Xᵀ·dY: [256, 64] from K = 2048 rows per batch element), K is
 * cut into S slices that run as extra grid z (zz = slice · batches + batch), each writing its
 * partial C into a scratch [S, batches, m, N]; a second kernel sums the S partials in order
 * (deterministic). The slice bounds are params; K stays the leading dimension of A / B.
 * Host cost: a problem's launches (plan, keys, param words, grids) are computed once and kept in
 * matmulPlans, a bounded cache keyed by the shapes and transposes that forgets everything when a
 * matmulTuning knob or the device limits change; a call then only binds its buffers.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { broadcastStrides, ceilDiv, coalesce, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, prod, strides, type BufRef, type GpuCtx } from "../context.ts";
import {
  LANES, LANES_WG, lanesGen, NAIVE_ONE_MAX_WG, NAIVE_WG, naiveGen, ROWDOT_ROWS, rowDotGens, SPLIT_SUM_KEY, SUM_WG, splitSumGen, splitSumLanes,
} from "./matmul-untiled.ts";
// kept importable from here (tests, benchmarks and the other kernels name them through matmul.ts)
export { linearSigmoidKernel, SPLIT_SUM_KEY, splitSumGen, splitSumLanes, SUM_WG } from "./matmul-untiled.ts";

export interface TileConfig {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
  /** Specialise on the transposes, vector widths and divisibility (else one generic variant). */
  specialize?: boolean;
  /**
   * Double-buffered workgroup memory: two k-tiles, the next one stored while the current one is
   * read, one barrier per step instead of two (specialised tiles only).
   */
  dbuf?: boolean;
  /**
   * Conflict-free tile stores where k is the contiguous axis in memory (A not transposed, B
   * transposed): each warp loads 16 rows × 8 consecutive k (one full 32-byte sector a row) and
   * the tiles' rows are padded by one vec4, so its 32 scalar stores of one k hit 32 different
   * banks (unpadded, with 8 k a row, 8 lanes share a bank). Needs BK % 8 = 0 and BM, BN % 16 = 0.
   */
  cf?: boolean;
  /**
   * Warp-shaped lanes: each 32 threads cover 8 (n) x 4 (m) thread positions instead of 16 x 2,
   * so one k step's fragment reads touch 8 distinct vec4 of B and 4 of A (one 128-byte wavefront
   * each) instead of 16 and 2 (three). Needs BN / TN % 8 = 0 and BM / TM % 4 = 0.
   */
  wl?: boolean;
  /**
   * Swizzled block order: consecutive workgroups walk down a band of 8 block rows before moving
   * to the next block column, so the blocks resident at one time share A and B tiles in L2
   * (row-major order sweeps a whole row of B tiles for each A tile).
   */
  sw?: boolean;
  /**
   * Block rows per band of the swizzled order (":swN"; absent: 8). With one 128x256 workgroup per
   * SM, 8 rows x 16 columns is about one wave of 132 SMs; other heights trade A-tile for B-tile
   * reuse in L2. Needs sw.
   */
  swBand?: number;
  /**
   * XOR-swizzled tiles instead of :cf's padding: vec4 column c of tile row k is stored at
   * c ^ (k & 4), so the two k of a :cf store (k and k + 4) land in different banks without the
   * extra vec4 a row. Saves BK · 8 floats of workgroup memory, which lets a 128x256 block take
   * k-tiles of 32 within 48 KB (the padded one needs 50176 bytes). The reads' XOR key is a
   * constant in the unrolled loop. Needs cf and BM, BN multiples of 32.
   */
  xs?: boolean;
  /**
   * Register-double-buffered fragments: the inner loop reads the A / B vec4s of step k + 1 from
   * workgroup memory before the FMAs of step k, so the shared-memory latency overlaps the math
   * (costs one more set of fragment registers: (TM + TN) / 4 vec4s).
   */
  rf?: boolean;
}

/**
 * "BMxBNxBK/TMxTN" plus ":db" (double-buffered), ":cf" (conflict-free stores), ":xs" (XOR
 * swizzle instead of padding), ":wl" (warp-shaped lanes), ":sw" / ":swN" (swizzled block order,
 * bands of 8 / N rows), ":rf" (register-double-buffered fragments): tables, pipeline keys.
 */
export function tileName(t: TileConfig): string {
  const sw = t.sw ? `:sw${t.swBand !== undefined && t.swBand !== 8 ? t.swBand : ""}` : "";
  return `${t.BM}x${t.BN}x${t.BK}/${t.TM}x${t.TN}${t.dbuf ? ":db" : ""}${t.cf ? ":cf" : ""}${t.xs ? ":xs" : ""}${t.wl ? ":wl" : ""}${sw}${t.rf ? ":rf" : ""}`;
}

/**
 * Parses a tile spec "BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf]" (e.g.
 * "128x128x16/8x8:db", flags in any order) into a specialised tile config, checking that it
 * describes a kernel matmulWgsl can generate: TM, TN multiples of 4, BM / TM · BN / TN threads
 * (at most 256), each k-tile an exact number of vec4 loads per thread, and each flag's needs.
 */
export function parseTile(spec: string): TileConfig {
  const m = /^(\d+)x(\d+)x(\d+)\/(\d+)x(\d+)((?::db|:cf|:xs|:wl|:sw\d*|:rf)*)$/.exec(spec.trim());
  if (!m) throw new Error(`matmul tile "${spec}": expected BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf], e.g. 128x128x16/8x8:db`);
  const [BM, BN, BK, TM, TN] = m.slice(1, 6).map(Number);
  const t: TileConfig = { BM, BN, BK, TM, TN, specialize: true, dbuf: m[6].includes(":db") };
  if (m[6].includes(":cf")) t.cf = true;
  if (m[6].includes(":xs")) t.xs = true;
  if (m[6].includes(":wl")) t.wl = true;
  const sw = /:sw(\d*)/.exec(m[6]);
  if (sw) {
    t.sw = true;
    // ":sw8" is ":sw" (one config, one name, one pipeline)
    if (sw[1] !== "" && Number(sw[1]) !== 8) t.swBand = Number(sw[1]);
  }
  if (m[6].includes(":rf")) t.rf = true;
  const why = tileProblem(t);
  if (why) throw new Error(`matmul tile "${spec}": ${why}`);
  return t;
}

/** Why a tile config cannot be generated (null: it can). */
export function tileProblem(t: TileConfig): string | null {
  const { BM, BN, BK, TM, TN } = t;
  if (TM % 4 || TN % 4 || TM <= 0 || TN <= 0) return "TM and TN must be positive multiples of 4";
  if (BM % TM || BN % TN) return "BM must be a multiple of TM and BN of TN";
  const NT = (BM / TM) * (BN / TN);
  if (NT > 256) return `${NT} threads per workgroup, over the 256 the backend requests`;
  if (BK % 4 || BK <= 0) return "BK must be a positive multiple of 4";
  if (((BK * BM) / 4) % NT || ((BK * BN) / 4) % NT) return `a ${BK}-deep k-tile is not a whole number of vec4 loads per thread (${NT} threads)`;
  if (t.cf && (BK % 8 || BM % 16 || BN % 16)) return ":cf needs BK a multiple of 8 and BM, BN multiples of 16";
  if (t.wl && ((BN / TN) % 8 || (BM / TM) % 4)) return ":wl needs BN / TN a multiple of 8 and BM / TM a multiple of 4";
  // the XOR key (k & 4) must map a vec4 column inside its row (BX / 4 a multiple of 8) and be
  // the same for the 4 k of one vec4 load and both halves of a double buffer (cf: BK % 8 = 0)
  if (t.xs && (!t.cf || BM % 32 || BN % 32)) return ":xs needs :cf and BM, BN multiples of 32";
  if (t.swBand !== undefined && (!t.sw || !Number.isInteger(t.swBand) || t.swBand < 1 || t.swBand > 64)) {
    return `swizzle band of ${t.swBand} block rows: needs :sw and a whole number from 1 to 64`;
  }
  return null;
}
// Measured on an H100 (Dawn, 4096² / 2048² / 1024², TFLOP/s): 128x128 BK 32 40.3 / 39.9 / 19.3,
// BK 16 36.8 / 36.6 / 16; 128x64 BK 32 31.8 / 31.5 / 30.2; 64x64 BK 16 (generic) 24 / 24 / 19.
// The sweep of 2026-11-25 on an H100 (`webgpu-matmul --sweep`, Dawn under Node; cuBLAS fp32 with
// TF32 off in the same run: 36.7 / 49.8 / 51.7 TFLOP/s at 1024² / 2048² / 4096²):
//   128x256x16/8x16:cf:wl:sw  10.8 / 44.4 / 45.1   (the wide tile: best from 2048²)
//   128x128x32/8x8:wl         20.9 / 42.9 / 43.8   (best 128² tile)
//   128x64x32/8x4:cf:wl       32.3 / 33.7 / 34.0   (best at 1024²)
//   double-buffered tiles (:db) were slower everywhere (32 at 4096²).
// H200, 2026-11-26 (same runs as cuBLAS 50.9–51.4 TFLOP/s at 4096²): the XOR-swizzled k-tiles
// (:xs) 45.1 against 44.8 for the padded ones at 4096² (44.5 / 44.0 at 2048²); with Dawn's
// disable_robustness toggle (MEMMAMBA_DAWN_FLAGS, opt-in) 47.05 = 92% of cuBLAS.
export const WIDE_TILE: TileConfig = { BM: 128, BN: 256, BK: 16, TM: 8, TN: 16, specialize: true, cf: true, wl: true, sw: true, xs: true };
export const BIG_TILE: TileConfig = { BM: 128, BN: 128, BK: 32, TM: 8, TN: 8, specialize: true, wl: true };
export const MID_TILE: TileConfig = { BM: 128, BN: 64, BK: 32, TM: 8, TN: 4, specialize: true, cf: true, wl: true };
// Products with a short K (a few k-tiles: MemMamba's fusions, [61440, 64]·[64, 256] plus a
// stored c and a row scale) spend their time in the store, not the k loop: the wide tile's
// 128 accumulators a thread leave one workgroup an SM to stream c in and out. On an H200
// (2026-11-27, medians of 7, µs; `webgpu-matmul --shapes 61440x256x64:add:scale,61440x256x64:add
// --split-k off --tile …`, packages/bench/results/gpu/issue11-s19/ab-8e685c9/short-k.txt):
// addMatmul with scale 83.8 with the wide tile, 82.7 at 128x128x32, 65.5 at 128x128x16 (this),
// 67.0 at 64x128x16, 68.1 at 128x64x16, 75.2 at 64x64x16; without the scale 80.4 → 67.2.
export const SHORT_K_TILE: TileConfig = { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, specialize: true, wl: true };
// The 64x64 tile was the one generic kernel (runtime transposes, guarded scalar loads) until
// session 16; specialised like the others and with the 8x4 warp layout it ran every problem that
// takes it faster on an H200 (webgpu-matmul --shapes, split-K on, medians of 9): the training
// step's dW shapes [8] 256x64 / 64x256 from K 2048 34.4 / 34.7 → 27.2 / 27.5 µs, [8] 256x256
// 93.6 → 77.1, [8] 512x48 51.5 → 45.2, [8] 16x512 46.4 → 43.3; the 60K forward's
// [61440, 512]·[512, 48] 185 → 153 and ·[512, 16] 177 → 152 (packages/bench/results/gpu/issue11-s16/).
export const SMALL_TILE: TileConfig = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, specialize: true, wl: true };
// The 128x64 tile at BK 16, for very tall products (m · batches ≥ matmulTuning.tallMidMinRows):
// MemMamba's queries in a 60K chunk, [61440, 256]·[256, 64], 72.3 → 64.6 µs on an H200
// (webgpu-matmul --shapes train,61440x64x256 --tile auto,128x64x16/8x4:cf:wl, 2026-11-27,
// results/gpu/issue11-s19/ab-0101e66/mid-bk.txt); the
// training step's shapes that take MID_TILE moved either way (512x256 from K 2048 +5%, 256x1024
// −3%), so they keep BK 32.
export const MID_TILE_TALL: TileConfig = { ...MID_TILE, BK: 16 };
// Tiles as narrow as the product for N = 16, 32, 48 (B untransposed, m · batches ≥
// matmulTuning.narrowTileMinRows): Mamba's x_proj is [rows, d_inner]·[d_inner, dt_rank + 2N], 48
// columns for the small preset, which the 64-column tiles computed a quarter of in vain. On an
// H200 (webgpu-matmul --shapes …x512 --split-k off, 2026-11-27, results/gpu/issue11-s22/matmul/),
// µs: N 48 at 61440 rows 152 (64x64) → 119 (128x16), at 16384 rows 47 (128x64) → 38, at 4096
// 28 → 17 (64x16); N 32 at 61440 151 → 67 (128x32), 16384 47 → 22; N 16 at 61440 151 → 59
// (64x16), 16384 47 → 17.
export const NARROW_TILE_16: TileConfig = { BM: 64, BN: 16, BK: 16, TM: 4, TN: 4, specialize: true };
export const NARROW_TILE_16_TALL: TileConfig = { BM: 128, BN: 16, BK: 16, TM: 8, TN: 4, specialize: true };
export const NARROW_TILE_32: TileConfig = { BM: 128, BN: 32, BK: 16, TM: 8, TN: 4, specialize: true };

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

interface MatmulVariant {
  t: TileConfig;
  /** null: a runtime flag (one pipeline for the four combinations). */
  transA: boolean | null;
  transB: boolean | null;
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
  full: boolean;
  batchRank: number;
  /** Unroll the BK steps of the inner loop (fast on GPUs; a much longer compile on lavapipe). */
  unroll: boolean;
  /**
   * Split-K: grid z walks slices × batches, K's slice bounds come from two more params and C is
   * the scratch of partials (false: the code is exactly the unsplit kernel's).
   */
  split?: boolean;
  /**
   * addMatmul's store (never with split): "add" C = acc + D, "scaleAdd" C = acc · S[row] + D, D a
   * buffer of C's shape and layout and S one f32 a row of C (false or absent: C = acc).
   */
  epi?: false | "add" | "scaleAdd";
}

const X = ["x", "y", "z", "w"];

function matmulWgsl(v: MatmulVariant): string {
  const { BM, BN, BK, TM, TN } = v.t;
  const TXn = BN / TN, TYn = BM / TM; // threads along n and m
  const NT = TXn * TYn;
  const GM = TM / 4, GN = TN / 4;
  const LA = (BK * BM) / 4 / NT, LB = (BK * BN) / 4 / NT; // vec4 loads per thread per step
  const db = !!v.t.dbuf;
  const KS = db ? 2 * BK : BK; // k rows of workgroup memory (two k-tiles when double-buffered)
  const br = v.batchRank;
  const sp = !!v.split;
  const nWords = (sp ? 8 : 6) + 3 * br;
  // where the k loop ends: K itself, or the end of this workgroup's slice
  const KE = sp ? "kEnd" : "K";
  const code: string[] = [];
  const decl = [
    { name: "C", type: v.vecC ? "vec4<f32>" : "f32", write: true },
    { name: "A", type: v.vecA ? "vec4<f32>" : "f32" },
    { name: "B", type: v.vecB ? "vec4<f32>" : "f32" },
    ...(v.epi ? [{ name: "D", type: v.vecC ? "vec4<f32>" : "f32" }] : []),
    ...(v.epi === "scaleAdd" ? [{ name: "S", type: "f32" }] : []),
  ];
  code.push(header(nWords, decl));
  // k-major tiles as 2-D arrays: in the inner loop the k index is a constant (unrolled) and the
  // other is loop-invariant, so the index clamps that robustness (Tint, naga) adds to dynamic
  // indices can be hoisted out of the loop, which one flat index kk·stride + j would prevent
  const pad = v.t.cf && !v.t.xs ? 1 : 0; // vec4s of padding per tile row (bank-conflict-free stores)
  // :xs: the vec4 column of tile row kk (a number: a constant; else a WGSL expression)
  const col = (c: string, kk: string | number) => (!v.t.xs ? c : typeof kk === "number" ? (kk & 4 ? `(${c}) ^ 4u` : c) : `(${c}) ^ (${kk} & 4u)`);
  code.push(`var<workgroup> As: array<array<vec4<f32>, ${BM / 4 + pad}>, ${KS}>;`);
  code.push(`var<workgroup> Bs: array<array<vec4<f32>, ${BN / 4 + pad}>, ${KS}>;`);
  code.push(`@compute @workgroup_size(${NT})`);
  code.push(`fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {`);
  code.push(`let M = ${pu(0)}; let N = ${pu(1)}; let K = ${pu(2)};`);
  if (v.t.sw) {
    // bands of H (8) block rows: within a band, block columns one after another, rows fastest
    const H = `${v.t.swBand ?? 8}u`;
    code.push(`let lin = wid.y * nwg.x + wid.x; let band = lin / (${H} * nwg.x); let rows = min(nwg.y - band * ${H}, ${H});`);
    code.push(`let inb = lin % (${H} * nwg.x); let m0 = (band * ${H} + inb % rows) * ${BM}u; let n0 = (inb / rows) * ${BN}u;`);
  } else {
    code.push(`let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;`);
  }
  if (v.t.wl) {
    code.push(`let lane = lid % 32u; let wp = lid / 32u;`);
    code.push(`let tx = lane % 8u + 8u * (wp % ${TXn / 8}u); let ty = lane / 8u + 4u * (wp / ${TXn / 8}u);`);
  } else {
    code.push(`let tx = lid % ${TXn}u; let ty = lid / ${TXn}u;`);
  }
  // batch offsets (in elements)
  if (sp) {
    // zz = slice · batches + batch; the partial C of (slice, batch) is block zz of the scratch
    code.push(`let zz = wid.z + ${pu(3)}; let NB = ${pu(7 + 3 * br)}; let q = zz % NB;`);
    code.push(`let kBeg = (zz / NB) * ${pu(6 + 3 * br)}; let kEnd = min(K, kBeg + ${pu(6 + 3 * br)});`);
    code.push(`var aBase = 0u; var bBase = 0u;`);
  } else {
    code.push(`var aBase = 0u; var bBase = 0u; let q = wid.z + ${pu(3)};`);
  }
  if (br > 0) {
    code.push(`var rem = q;`);
    for (let d = br - 1; d >= 0; d--) {
      const size = pu(4 + d), sa = pu(4 + br + d), sb = pu(4 + 2 * br + d);
      code.push(d === 0 ? `{ let c = rem;` : `{ let c = rem % ${size}; rem = rem / ${size};`);
      code.push(`aBase += c * ${sa}; bBase += c * ${sb}; }`);
    }
  }
  code.push(sp ? `let cBase = zz * M * N;` : `let cBase = q * M * N;`);
  const g = !v.full;
  // ---- per-thread load coordinates (constant over k) ----
  // One load slot j of a tile: `alongK` when k is the contiguous axis in memory (A not
  // transposed, B transposed): 4 consecutive k of one row, scattered into the k-major tile;
  // else 4 consecutive m (n) of one k row, stored as one vec4.
  const slot = (which: "A" | "B", j: number, alongK: boolean, vec: boolean, BX: number) => {
    const rows = which === "A" ? "M" : "N"; // the non-k extent
    const base = which === "A" ? "aBase" : "bBase";
    const smem = which === "A" ? "As" : "Bs";
    const x0 = which === "A" ? "m0" : "n0";
    const r = `r${which}${j}`;
    const pre: string[] = [], body: string[] = [], store: ((off: number) => string)[] = [];
    const l = `(lid + ${j * NT}u)`;
    if (alongK && v.t.cf) {
      // lanes 2j, 2j+1 of each 32 take 8 consecutive k of row j (of 16): see TileConfig.cf
      pre.push(`let ${r}lo = ${l} % 32u; let ${r}hi = ${l} / 32u;`);
      pre.push(`let ${r}row = (${r}hi / ${BK / 8}u) * 16u + ${r}lo / 2u; let ${r}k = ((${r}hi % ${BK / 8}u) * 2u + ${r}lo % 2u) * 4u;`);
    } else if (alongK) {
      pre.push(`let ${r}row = ${l} / ${BK / 4}u; let ${r}k = (${l} % ${BK / 4}u) * 4u;`);
    }
    if (alongK) {
      pre.push(`let ${r}g = ${x0} + ${r}row; let ${r}ok = ${r}g < ${rows};`);
      const idx = `${base} + ${r}g * K + k0 + ${r}k`;
      if (vec) {
        const cond = g ? `${r}ok && k0 + ${r}k < ${KE}` : "true";
        body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
      } else {
        const comps = [0, 1, 2, 3].map((e) => {
          const cond = g ? `${r}ok && k0 + ${r}k + ${e}u < ${KE}` : "true";
          return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
        });
        body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
      }
      // the XOR key of rows rk + e + off is rk & 4 (e < 4, off a multiple of 8 under :cf)
      const c = col(`${r}row / 4u`, `${r}k`);
      for (let e = 0; e < 4; e++) store.push((off) => `${smem}[${r}k + ${e + off}u][${c}][${r}row % 4u] = ${r}.${X[e]};`);
    } else {
      pre.push(`let ${r}kk = ${l} / ${BX / 4}u; let ${r}x4 = ${l} % ${BX / 4}u;`);
      pre.push(`let ${r}h = ${x0} + ${r}x4 * 4u;`);
      const idx = `${base} + (k0 + ${r}kk) * ${rows} + ${r}h`;
      if (vec) {
        const cond = g ? `${r}h < ${rows} && k0 + ${r}kk < ${KE}` : "true";
        body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
      } else {
        const comps = [0, 1, 2, 3].map((e) => {
          const cond = g ? `${r}h + ${e}u < ${rows} && k0 + ${r}kk < ${KE}` : "true";
          return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
        });
        body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
      }
      const c = col(`${r}x4`, `${r}kk`);
      store.push((off) => (off ? `${smem}[${r}kk + ${off}u][${c}] = ${r};` : `${smem}[${r}kk][${c}] = ${r};`));
    }
    return { pre, body, store };
  };
  // trans: a constant (specialised: the other branch is never generated) or a runtime flag
  // (both generated, a uniform branch picks one)
  const loads = (which: "A" | "B", L: number, trans: boolean | null, vec: boolean, BX: number) => {
    const pre: string[] = [], body: string[] = [], store: ((off: number) => string)[] = [];
    const flag = which === "A" ? "TA" : "TB";
    for (let j = 0; j < L; j++) {
      pre.push(`var r${which}${j} = vec4<f32>(0.0f);`);
      if (trans !== null) {
        // A not transposed and B transposed are contiguous along k
        const s1 = slot(which, j, which === "A" ? !trans : trans, vec, BX);
        pre.push(...s1.pre);
        body.push(...s1.body);
        store.push(...s1.store);
      } else {
        const sk = slot(which, j, true, false, BX), sx = slot(which, j, false, false, BX);
        pre.push(...sk.pre, ...sx.pre);
        // A: transposed means contiguous along m (sx); B: transposed means along k (sk)
        const [yes, no] = which === "A" ? [sx, sk] : [sk, sx];
        body.push(`if (${flag}) {`, ...yes.body, `} else {`, ...no.body, `}`);
        store.push(() => `if (${flag}) {`, ...yes.store, () => `} else {`, ...no.store, () => `}`);
      }
    }
    return { pre, body, store };
  };
  const la = loads("A", LA, v.transA, v.vecA, BM);
  const lb = loads("B", LB, v.transB, v.vecB, BN);
  if (v.transA === null || v.transB === null) code.push(`let TA = ${pu(4 + 3 * br)} != 0u; let TB = ${pu(5 + 3 * br)} != 0u;`);
  code.push(...la.pre, ...lb.pre);
  for (let r = 0; r < TM; r++) for (let gn = 0; gn < GN; gn++) code.push(`var acc${r}_${gn} = vec4<f32>(0.0f);`);
  if (sp) {
    code.push(`let nK = (kEnd - kBeg + ${BK - 1}u) / ${BK}u;`);
    code.push(`var k0 = kBeg;`);
  } else {
    code.push(`let nK = (K + ${BK - 1}u) / ${BK}u;`);
    code.push(`var k0 = 0u;`);
  }
  code.push(...la.body, ...lb.body);
  // one k step: read the fragments of tile row kk (a number: a constant index), then the FMAs
  const frags = (kk: string | number, sfx: string, decl = "let") => {
    const k = typeof kk === "number" ? `${kk}u` : kk;
    for (let gm = 0; gm < GM; gm++) code.push(`${decl} a${gm}${sfx} = As[${k}][${col(`${gm * TYn}u + ty`, kk)}];`);
    for (let gn = 0; gn < GN; gn++) code.push(`${decl} b${gn}${sfx} = Bs[${k}][${col(`${gn * TXn}u + tx`, kk)}];`);
  };
  const fmas = (sfx: string) => {
    for (let gm = 0; gm < GM; gm++) {
      for (let i = 0; i < 4; i++) {
        for (let gn = 0; gn < GN; gn++) code.push(`acc${gm * 4 + i}_${gn} += a${gm}${sfx}.${X[i]} * b${gn}${sfx};`);
      }
    }
  };
  const kStep = (kk: string | number, sfx: string) => {
    frags(kk, sfx);
    fmas(sfx);
  };
  // store the tile, barrier, issue the next tile's global loads (their latency hides behind the
  // math), compute, barrier. (A ping-pong pair of tiles with one barrier per step, k-tiles of 8
  // or 16, 128x64 blocks, padded or lane-per-row tile stores: all measured slower on an H100.)
  const stores = (off: number) => [...la.store, ...lb.store].map((f) => f(off));
  const compute = (off: number) => {
    code.push(`{`); // a scope per k-tile: the double-buffered loop body holds two
    if (v.t.rf && v.unroll) {
      // :rf: step kk + 1's fragments are read before step kk's FMAs
      frags(off, "_0");
      for (let kk = 0; kk < BK; kk++) {
        if (kk + 1 < BK) frags(kk + 1 + off, `_${kk + 1}`);
        fmas(`_${kk}`);
      }
    } else if (v.t.rf) {
      // the same in a loop: the fragments in hand (c) are swapped for the next (n) each step
      frags(off, "c", "var");
      code.push(`for (var kk = ${off}u; kk < ${off + BK - 1}u; kk++) {`);
      frags("(kk + 1u)", "n");
      fmas("c");
      for (let gm = 0; gm < GM; gm++) code.push(`a${gm}c = a${gm}n;`);
      for (let gn = 0; gn < GN; gn++) code.push(`b${gn}c = b${gn}n;`);
      code.push(`}`);
      fmas("c");
    } else if (v.unroll) {
      for (let kk = 0; kk < BK; kk++) kStep(kk + off, `_${kk}`);
    } else {
      code.push(`for (var kk = ${off}u; kk < ${off + BK}u; kk++) {`);
      kStep("kk", "");
      code.push(`}`);
    }
    code.push(`}`);
  };
  if (!db) {
    code.push(`for (var kt = 0u; kt < nK; kt++) {`);
    code.push(...stores(0));
    code.push(`workgroupBarrier();`);
    code.push(`k0 = k0 + ${BK}u;`);
    code.push(`if (kt + 1u < nK) {`, ...la.body, ...lb.body, `}`);
    compute(0);
    code.push(`workgroupBarrier();`);
    code.push(`}`);
  } else {
    // two halves per iteration, so each reads a fixed buffer (constant indices): compute from
    // one buffer while storing the next k-tile (already in registers) into the other, then one
    // barrier. A buffer is overwritten only after the barrier that ends the reads of it.
    code.push(...stores(0));
    code.push(`workgroupBarrier();`);
    code.push(`for (var kt = 0u; kt < nK; kt += 2u) {`);
    for (const [cur, nxt, ahead] of [[0, BK, 1], [BK, 0, 2]]) {
      if (ahead === 2) code.push(`if (kt + 1u >= nK) { break; }`);
      code.push(`let more${ahead} = kt + ${ahead}u < nK;`);
      code.push(`if (more${ahead}) {`, `k0 = k0 + ${BK}u;`, ...la.body, ...lb.body, `}`);
      compute(cur);
      code.push(`if (more${ahead}) {`, ...stores(nxt), `}`);
      code.push(`workgroupBarrier();`);
    }
    code.push(`}`);
  }
  // ---- store ----
  for (let gm = 0; gm < GM; gm++) {
    for (let i = 0; i < 4; i++) {
      const r = gm * 4 + i;
      code.push(`{ let m = m0 + (${gm * TYn}u + ty) * 4u + ${i}u;`);
      if (g) code.push(`if (m < M) {`);
      if (v.epi === "scaleAdd") code.push(`let sm = S[m];`);
      // the value stored at C[at] from the accumulator's part `x` (addMatmul's epilogue, if any)
      const val = (x: string, at: string) => (v.epi === "scaleAdd" ? `${x} * sm + D[${at}]` : v.epi === "add" ? `${x} + D[${at}]` : x);
      for (let gn = 0; gn < GN; gn++) {
        code.push(`{ let n = n0 + (${gn * TXn}u + tx) * 4u; let o = cBase + m * N + n;`);
        const acc = `acc${r}_${gn}`;
        if (v.vecC) code.push(g ? `if (n < N) { C[o / 4u] = ${val(acc, "o / 4u")}; }` : `C[o / 4u] = ${val(acc, "o / 4u")};`);
        else {
          for (let e = 0; e < 4; e++) {
            const at = `o + ${e}u`;
            code.push(g ? `if (n + ${e}u < N) { C[${at}] = ${val(`${acc}.${X[e]}`, at)}; }` : `C[${at}] = ${val(`${acc}.${X[e]}`, at)};`);
          }
        }
        code.push(`}`);
      }
      if (g) code.push(`}`);
      code.push(`}`);
    }
  }
  code.push(`}`);
  return code.join("\n");
}

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

/** Workgroup memory of a tile config, bytes. */
export function tileSmemBytes(c: TileConfig): number {
  return (c.dbuf ? 2 : 1) * c.BK * (c.BM + c.BN + (c.cf && !c.xs ? 8 : 0)) * 4;
}

/**
 * The tile config as run on a device with `maxSmem` bytes of workgroup memory: one that needs
 * more gets k-tiles of 16 (half the memory), then loses its double buffer; still too big: an error.
 */
export function fitTile(t: TileConfig, maxSmem: number): TileConfig {
  const asked = t;
  if (tileSmemBytes(t) > maxSmem && t.BK > 16) t = { ...t, BK: 16 };
  if (tileSmemBytes(t) > maxSmem && t.dbuf) t = { ...t, dbuf: false };
  if (tileSmemBytes(t) > maxSmem) {
    throw new RangeError(`webgpu matmul: tile ${tileName(t)} needs ${tileSmemBytes(t)} bytes of workgroup memory, over the limit ${maxSmem}`);
  }
  // a smaller k-tile must still be one the generator can build (a 256-thread tile of BK 16 may
  // not be a whole number of vec4 loads a thread: its kernel would compute garbage)
  const why = t === asked ? null : tileProblem(t);
  if (why) throw new RangeError(`webgpu matmul: tile ${tileName(asked)} needs ${tileSmemBytes(asked)} bytes of workgroup memory, over the limit ${maxSmem}, and as ${tileName(t)}: ${why}`);
  return t;
}

/** One launch of a plan: everything but the buffers, which are the call's. */
interface PlannedLaunch {
  readonly key: string;
  readonly wgsl: () => string;
  readonly params: Uint32Array;
  readonly groups: readonly [number, number, number];
  /** The tiled kernel's variant (addMatmul derives its epilogue kernels from it). */
  readonly variant?: MatmulVariant;
}

/**
 * The launches of one matmul problem (shapes and transposes on one device's limits), as
 * matmulKernel dispatches them: the main kernel (rowdot, untiled, or tiled in chunks of grid z),
 * with split-K a scratch of `scratchBytes` and the sum pass. Everything in it follows from the
 * shapes, the flags, the limits and matmulTuning, so it is computed once per problem (planning,
 * coalescing the batch strides, the pipeline key and the param words cost a few µs a launch).
 */
interface MatmulLaunchPlan {
  /** Rowdot binds C directly; the others bind the partials when split. */
  readonly rowDot: boolean;
  readonly main: readonly PlannedLaunch[];
  readonly scratchBytes: number;
  readonly sum: PlannedLaunch | null;
}

/**
 * A bounded map of per-problem plans, emptied when the tuning object it depends on changes
 * (tests and benchmarks set the knobs between calls): `stale` compares each knob with the
 * values the plans were made under. At `max` entries the oldest is dropped, so a model that
 * runs many shapes keeps its recent ones without growing without bound. Knobs are compared by
 * identity: assign a new tile to matmulTuning.force rather than mutating the one it holds.
 */
export class PlanCache<V, K extends string | number = string> {
  readonly #map = new Map<K, V>();
  readonly #tuning: Record<string, unknown>;
  readonly #keys: string[];
  #seen: unknown[];
  #limits: unknown = null;
  constructor(tuning: object, readonly max = 256) {
    this.#tuning = tuning as Record<string, unknown>;
    this.#keys = Object.keys(tuning);
    this.#seen = this.#keys.map((k) => this.#tuning[k]);
  }
  /** The plan for `key` under these `limits` (plans of other limits or knobs are dropped first). */
  get(key: K, limits: unknown): V | undefined {
    const keys = this.#keys, seen = this.#seen, t = this.#tuning;
    let same = limits === this.#limits;
    for (let i = 0; i < keys.length && same; i++) same = t[keys[i]] === seen[i];
    if (!same) {
      this.#map.clear();
      this.#limits = limits;
      this.#seen = keys.map((k) => t[k]);
      return undefined;
    }
    return this.#map.get(key);
  }
  set(key: K, v: V): void {
    if (this.#map.size >= this.max) this.#map.delete(this.#map.keys().next().value as K);
    this.#map.set(key, v);
  }
  get size(): number {
    return this.#map.size;
  }
  clear(): void {
    this.#map.clear();
  }
}

/** Per-problem matmul plans (exported for tests: size, max). */
export const matmulPlans = new PlanCache<MatmulLaunchPlan | null>(matmulTuning);

/** The cache key of a problem: both flags and the three shapes (the limits and knobs are checked by the cache). */
function problemKey(a: readonly number[], b: readonly number[], out: readonly number[], tA: boolean, tB: boolean): string {
  let k = tA ? (tB ? "TT" : "TN") : tB ? "NT" : "NN";
  for (let i = 0; i < a.length; i++) k += "," + a[i];
  k += "|";
  for (let i = 0; i < b.length; i++) k += "," + b[i];
  k += "|";
  for (let i = 0; i < out.length; i++) k += "," + out[i];
  return k;
}

/** The cached launch plan of a problem (null: an empty output). */
function planOf(ctx: GpuCtx, a: KernelArg, b: KernelArg, out: KernelArg, p: PrimParams["matmul"]): MatmulLaunchPlan | null {
  const key = problemKey(a.shape, b.shape, out.shape, p.transA, p.transB);
  let plan = matmulPlans.get(key, ctx.limits);
  if (plan === undefined) {
    plan = planLaunches(ctx.limits, a.shape, b.shape, out.shape, p);
    matmulPlans.set(key, plan);
  }
  return plan;
}

export function matmulKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["matmul"]): void {
  // the bindings first: a tensor over the binding limit gets that error, not a grid's
  const cOut = ctx.ref(out, "matmul"), aRef = ctx.ref(a, "matmul"), bRef = ctx.ref(b, "matmul");
  const plan = planOf(ctx, a, b, out, p);
  if (plan !== null) dispatchPlan(ctx, plan, cOut, aRef, bRef);
}

/** The launches of a plan into C = cOut from A, B. */
function dispatchPlan(ctx: GpuCtx, plan: MatmulLaunchPlan, cOut: BufRef, aRef: BufRef, bRef: BufRef): void {
  if (plan.rowDot) {
    const l = plan.main[0];
    ctx.dispatch({
      label: "matmul", key: l.key, wgsl: l.wgsl,
      buffers: [cOut, aRef, bRef],
      params: l.params, groups: l.groups,
    });
    return;
  }
  // split: the kernel writes S partial C's into scratch, the sum pass below writes C
  const partial = plan.scratchBytes > 0 ? ctx.temp(plan.scratchBytes) : null;
  const bufs = [partial ?? cOut, aRef, bRef];
  try {
    for (let i = 0; i < plan.main.length; i++) {
      const l = plan.main[i];
      ctx.dispatch({ label: "matmul", key: l.key, wgsl: l.wgsl, buffers: bufs, params: l.params, groups: l.groups });
    }
    if (partial && plan.sum) {
      const l = plan.sum;
      ctx.dispatch({ label: "matmul", key: l.key, wgsl: l.wgsl, buffers: [cOut, partial], params: l.params, groups: l.groups });
    }
  } finally {
    if (partial) ctx.releaseTemp(partial);
  }
}

/** The launches of a problem (null: an empty output, nothing to launch); see MatmulLaunchPlan. */
function planLaunches(
  limits: GpuCtx["limits"], aShape: readonly number[], bShape: readonly number[], outShape: readonly number[], p: PrimParams["matmul"],
): MatmulLaunchPlan | null {
  const ar = aShape.length, brk = bShape.length, or = outShape.length;
  const M = outShape[or - 2], N = outShape[or - 1];
  const K = p.transA ? aShape[ar - 2] : aShape[ar - 1];
  const outBatch = outShape.slice(0, or - 2);
  let batches = prod(outBatch);
  if (batches === 0 || M === 0 || N === 0) return null;
  let m = M;
  let batchShape: number[] = [], aStr: number[] = [], bStr: number[] = [];
  const bBatched = prod(bShape.slice(0, brk - 2)) > 1;
  if (!bBatched && !p.transA) {
    m = M * batches; // A's batch folds into its rows
    batches = 1;
  } else {
    const aB = aShape.slice(0, ar - 2), bB = bShape.slice(0, brk - 2);
    const mk = aShape[ar - 2] * aShape[ar - 1], kn = bShape[brk - 2] * bShape[brk - 1];
    const c = coalesce(outBatch, [
      strides(outBatch),
      broadcastStrides(aB, outBatch).map((s) => s * mk),
      broadcastStrides(bB, outBatch).map((s) => s * kn),
    ]);
    batchShape = c.shape;
    aStr = c.strides[1];
    bStr = c.strides[2];
  }
  // batch dims padded to rank 3 (size 1, stride 0) so the batch rank does not multiply variants
  const bRank = Math.max(3, batchShape.length);
  while (batchShape.length < bRank) {
    batchShape.unshift(1);
    aStr.unshift(0);
    bStr.unshift(0);
  }
  const maxDim = limits.maxComputeWorkgroupsPerDimension;
  if (matmulTuning.rowDot && N === 1 && batches === 1 && !p.transA) {
    // vec4 bindings need whole vec4s (an empty tensor's buffer is one word)
    const vec4Rows = K % 4 === 0 && K > 0;
    return {
      rowDot: true, scratchBytes: 0, sum: null,
      main: [{
        key: vec4Rows ? "matmul:rowdot4" : "matmul:rowdot", wgsl: rowDotGens[vec4Rows ? 1 : 0],
        params: new ParamWords().u(m).u(vec4Rows ? K / 4 : K).words(), groups: grid(ceilDiv(m, ROWDOT_ROWS), maxDim),
      }],
    };
  }
  const plan = matmulPlan(m, N, K, batches, p.transB);
  const t = plan === "untiled" ? plan : fitTile(plan, limits.maxComputeWorkgroupStorageSize);
  const { slices: S, sliceLen } = splitKPlan(m, N, K, batches, t, limits.maxStorageBufferBindingSize);
  const params = (q0: number, split: boolean) => {
    const w = new ParamWords().u(m).u(N).u(K).u(q0);
    for (const d of batchShape) w.u(d);
    for (const s of aStr) w.u(s);
    for (const s of bStr) w.u(s);
    w.u(p.transA ? 1 : 0).u(p.transB ? 1 : 0);
    return (split ? w.u(sliceLen).u(batches).u(S) : w).words();
  };
  let main: PlannedLaunch[];
  if (t === "untiled") {
    const R = ceilDiv(ceilDiv(m, 4) * ceilDiv(N, 4) * batches * S, NAIVE_WG) < NAIVE_ONE_MAX_WG ? 1 : 4;
    if (R === 1 && S === 1 && matmulTuning.lanes) {
      const lanes = m * N * batches * LANES;
      main = [{ key: `matmul:lanes:b${bRank}`, wgsl: lanesGen(bRank), params: params(0, true), groups: grid(ceilDiv(lanes, LANES_WG), maxDim) }];
    } else {
      const threads = ceilDiv(m, R) * ceilDiv(N, R) * batches * S;
      main = [{ key: `matmul:naive${R === 1 ? "1" : ""}:b${bRank}`, wgsl: naiveGen(bRank, R), params: params(0, true), groups: grid(ceilDiv(threads, NAIVE_WG), maxDim) }];
    }
  } else {
    main = tiledLaunches(limits, t, p, { m, M, N, K, batches: batches * S, bRank, split: S > 1 }, (q0) => params(q0, S > 1));
  }
  let sum: PlannedLaunch | null = null;
  if (S > 1) {
    const n = batches * m * N;
    const R = splitSumLanes(n, S);
    sum = { key: SPLIT_SUM_KEY, wgsl: splitSumGen, params: new ParamWords().u(n).u(S).u(R).words(), groups: grid(ceilDiv(n * R, SUM_WG), maxDim) };
  }
  return { rowDot: false, main, scratchBytes: S > 1 ? S * batches * m * N * 4 : 0, sum };
}

/** The tiled kernel's launches: grid z walks `batches` (split-K: slices × batches) in chunks of maxDim. */
function tiledLaunches(
  limits: GpuCtx["limits"], t: TileConfig, p: PrimParams["matmul"],
  s: { m: number; M: number; N: number; K: number; batches: number; bRank: number; split: boolean },
  params: (q0: number) => Uint32Array,
): PlannedLaunch[] {
  const { m, M, N, K, batches, bRank } = s;
  const maxDim = limits.maxComputeWorkgroupsPerDimension;
  // A tile config with `specialize` (all of the library's own) gets a variant per transposes,
  // vector widths and divisibility (no guards where the problem is whole tiles) and unrolls its k
  // loop; without it (the tests' small tiles) or with matmulTuning.runtimeTrans, one generic
  // variant: runtime transposes, guarded scalar loads, a loop over k.
  const big = !!t.specialize && !matmulTuning.runtimeTrans;
  const v: MatmulVariant = {
    t,
    transA: big ? p.transA : null,
    transB: big ? p.transB : null,
    vecA: big && (p.transA ? M : K) % 4 === 0,
    vecB: big && (p.transB ? K : N) % 4 === 0,
    vecC: big && N % 4 === 0,
    full: big && m % t.BM === 0 && N % t.BN === 0 && K % t.BK === 0,
    batchRank: bRank,
    unroll: big && matmulTuning.unrollBig,
    split: s.split,
  };
  const tr = (x: boolean | null) => (x === null ? "r" : x ? "1" : "0");
  const key = `matmul:${tileName(t)}:${tr(v.transA)}${tr(v.transB)}:${+v.vecA}${+v.vecB}${+v.vecC}:${+v.full}:b${bRank}:u${+v.unroll}${s.split ? ":splitk" : ""}`;
  const gx = ceilDiv(N, t.BN), gy = ceilDiv(m, t.BM);
  if (gx > maxDim || gy > maxDim) throw new RangeError(`webgpu matmul: [${m}, ${N}] needs ${gy}x${gx} workgroups, over the limit ${maxDim}`);
  const wgsl = () => matmulWgsl(v);
  const out: PlannedLaunch[] = [];
  for (let q0 = 0; q0 < batches; q0 += maxDim) out.push({ key, wgsl, params: params(q0), groups: [gx, gy, Math.min(maxDim, batches - q0)], variant: v });
  return out;
}

/** addMatmul's epilogue kernels, by the tiled kernel's key and the epilogue. */
const epiGens = new Map<string, () => string>();

const EPI_WG = 256;
/** The unfused epilogue: C = T · S[i / N] + D (or T + D), for products the tiled kernel does not store (row dots, untiled, split-K). */
function epiWgsl(scale: boolean): string {
  const bufs = [{ name: "C", type: "f32", write: true }, { name: "T", type: "f32" }, { name: "D", type: "f32" }, ...(scale ? [{ name: "S", type: "f32" }] : [])];
  return `${header(2, bufs)}
@compute @workgroup_size(${EPI_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${EPI_WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  C[i] = ${scale ? `T[i] * S[i / ${pu(1)}]` : "T[i]"} + D[i];
}`;
}
const epiUnfusedGens = [() => epiWgsl(false), () => epiWgsl(true)];

/**
 * addMatmul (ops/linalg.ts): c + (a·w) ⊙ s, inputs [c, a, w] or [c, a, w, s]. Where the product
 * runs the tiled kernel in one pass (not split over K) the scale and the add are that kernel's store
 * (MatmulVariant.epi): C's rows are written once and the product never is. Otherwise the product
 * goes to a scratch buffer and one elementwise pass finishes it.
 */
export function addMatmulKernel(ctx: GpuCtx, [c, a, w, s]: readonly KernelArg[], out: KernelArg): void {
  const label = "addMatmul";
  const cOut = ctx.ref(out, label), dRef = ctx.ref(c, label), aRef = ctx.ref(a, label), wRef = ctx.ref(w, label);
  const sRef = s ? ctx.ref(s, label) : null;
  const p = { transA: false, transB: false };
  const plan = planOf(ctx, a, w, out, p);
  if (plan === null) return;
  const epi = s ? "scaleAdd" : "add";
  const one = plan.main.length === 1 ? plan.main[0] : null;
  if (one?.variant && !one.variant.split) {
    const key = `${one.key}:${epi}`;
    let wgsl = epiGens.get(key);
    if (!wgsl) {
      const v: MatmulVariant = { ...one.variant, epi };
      epiGens.set(key, (wgsl = () => matmulWgsl(v)));
    }
    ctx.dispatch({ label, key, wgsl, buffers: sRef ? [cOut, aRef, wRef, dRef, sRef] : [cOut, aRef, wRef, dRef], params: one.params, groups: one.groups });
    return;
  }
  const n = prod(out.shape);
  const t = ctx.temp(n * 4);
  try {
    dispatchPlan(ctx, plan, t, aRef, wRef);
    ctx.dispatch({
      label, key: s ? "addMatmul:epi:scale" : "addMatmul:epi", wgsl: epiUnfusedGens[s ? 1 : 0],
      buffers: sRef ? [cOut, t, dRef, sRef] : [cOut, t, dRef],
      params: new ParamWords().u(n).u(w.shape[1]).words(), groups: grid(ceilDiv(n, EPI_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
    });
  } finally {
    ctx.releaseTemp(t);
  }
}
