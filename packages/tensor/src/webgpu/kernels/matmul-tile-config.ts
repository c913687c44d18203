/**
 * The tiled matmul's tile configs (matmul-tiled.ts generates their kernels, matmul-plan.ts picks
 * one for a problem): TileConfig and its options, their spec strings and names, what the
 * generator can build (tileProblem), the library's own tiles with the measurements behind them,
 * and the fit of a tile to a device's workgroup memory (tileSmemBytes, fitTile).
 * Tile options (TileConfig; spec strings "BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf]" for
 * the benchmark's --tile / --sweep): double-buffered workgroup memory (:db), bank-conflict-free
 * tile stores (:cf, padded; with :xs XOR-swizzled instead), warp-shaped thread layout (:wl),
 * swizzled block order for L2 reuse (:sw, bands of 8 block rows; :swN, of N), fragments of the
 * next k step read before the FMAs of this one (:rf); any size of block and thread tile that
 * tileProblem accepts. fitTile shrinks one that exceeds the device's workgroup memory.
 */

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
