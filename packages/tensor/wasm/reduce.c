/*
 * Sum / max over a contiguous block of axes: x viewed as [outer, R, inner] -> out [outer, inner].
 *
 * - inner > 1: out[o, j] = x[o, 0, j] + x[o, 1, j] + ... in f64, in increasing r for each j, two j
 *   per f64x2 lane pair: the same order (and so the same bits) as the reference's general path.
 * - inner == 1 (trailing axes): a row's R values are summed in f64 in 8 interleaved partial sums
 *   (lane l takes elements l, l+8, ...), then combined in a fixed tree: deterministic, but not the
 *   reference's sequential order (which runs at one add per 4 cycles); rows shorter than 32 are
 *   summed sequentially like the reference. The row loop touches one word of the input TOUCH_DIST
 *   floats ahead once per TOUCH_STEP (common.h, touch: a software prefetch across 4 KiB pages;
 *   no result depends on it). Measured on the benchmark's [8192, 2048] (one thread, CPU time,
 *   bytes/s over saxpy's in the same process, medians of 15 rounds, 2026-11-26): Bun 0.61-0.70 ->
 *   0.71-0.76 (4 runs), Node 20 +0.01-0.04, Deno unchanged (-0.02 to +0.01). Loading pairs with
 *   load64_zero instead of a shuffle, 8 accumulators instead of 4, and two or four rows at once
 *   (adjacent or far apart) gained nothing (wasm/README.md, "Trailing sums").
 * - max: NaN wins (as in the reference); the order does not matter except for -0 vs +0.
 */
#include "common.h"

/* args: op (0 sum, 1 max), x, out, outer, R, inner, tasks cover (outer x inner) in blocks:
 * outerPerTask, innerPerTask, innerTasks */
static void sum_rows(const f32* x, f32* out, int rows, int R, const f32* base, size_t last) {
  /* touch only streams long enough to cross pages */
  const int touching = (size_t)rows * R >= TOUCH_MIN;
  u32 sink = 0;
  for (int o = 0; o < rows; o++, x += R) {
    if (R < 32) {
      f64 acc = 0;
      for (int j = 0; j < R; j++) acc += x[j];
      out[o] = (f32)acc;
      continue;
    }
    v128_t s0 = wasm_f64x2_splat(0), s1 = s0, s2 = s0, s3 = s0;
    int j = 0;
    const int R8 = R & ~7;
    while (j < R8) {
      /* blocks of TOUCH_STEP floats, each after one touch TOUCH_DIST ahead */
      const int jend = MIN(R8, j + TOUCH_STEP);
      if (touching) sink ^= touch(base, (size_t)(x - base) + j + TOUCH_DIST, last);
      for (; j < jend; j += 8) {
        v128_t v0 = wasm_v128_load(x + j), v1 = wasm_v128_load(x + j + 4);
        s0 = wasm_f64x2_add(s0, wasm_f64x2_promote_low_f32x4(v0));
        s1 = wasm_f64x2_add(s1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v0, v0, 2, 3, 0, 1)));
        s2 = wasm_f64x2_add(s2, wasm_f64x2_promote_low_f32x4(v1));
        s3 = wasm_f64x2_add(s3, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v1, v1, 2, 3, 0, 1)));
      }
    }
    v128_t s = wasm_f64x2_add(wasm_f64x2_add(s0, s1), wasm_f64x2_add(s2, s3));
    f64 acc = wasm_f64x2_extract_lane(s, 0) + wasm_f64x2_extract_lane(s, 1);
    for (; j < R; j++) acc += x[j];
    out[o] = (f32)acc;
  }
  if (touching) touch_done(sink);
}

static void max_rows(const f32* x, f32* out, int rows, int R) {
  for (int o = 0; o < rows; o++, x += R) {
    v128_t m = wasm_f32x4_splat(-__builtin_inff());
    int j = 0;
    for (; j + 4 <= R; j += 4) {
      v128_t v = wasm_v128_load(x + j);
      m = wasm_v128_bitselect(v, m, wasm_v128_or(wasm_f32x4_gt(v, m), wasm_f32x4_ne(v, v)));
    }
    f32 acc = -__builtin_inff();
    for (int l = 0; l < 4; l++) {
      f32 v = wasm_f32x4_extract_lane(m, 0);
      m = wasm_i32x4_shuffle(m, m, 1, 2, 3, 0);
      if (v > acc || v != v) acc = v;
    }
    for (; j < R; j++) if (x[j] > acc || x[j] != x[j]) acc = x[j];
    out[o] = acc;
  }
}

void k_reduce(const i32* a, int task, int tid) {
  (void)tid;
  const int op = a[0], outer = a[3], R = a[4], inner = a[5];
  const int outerPer = a[6], innerPer = a[7], innerTasks = a[8];
  const int ot = task / innerTasks, it = task % innerTasks;
  const int o0 = ot * outerPer, o1 = MIN(outer, o0 + outerPer);
  const f32* x = PTR(f32, a[1]);
  f32* out = PTR(f32, a[2]);
  if (inner == 1) {
    if (op == 0) sum_rows(x + (size_t)o0 * R, out + o0, o1 - o0, R, x, (size_t)outer * R - 1);
    else max_rows(x + (size_t)o0 * R, out + o0, o1 - o0, R);
    return;
  }
  const int j0 = it * innerPer, j1 = MIN(inner, j0 + innerPer);
  for (int o = o0; o < o1; o++) {
    const f32* xo = x + (size_t)o * R * inner;
    f32* oo = out + (size_t)o * inner;
    int j = j0;
    if (op == 0) {
      for (; j + 4 <= j1; j += 4) {
        v128_t lo = wasm_f64x2_splat(0), hi = lo;
        const f32* p = xo + j;
        for (int r = 0; r < R; r++, p += inner) {
          v128_t v = wasm_v128_load(p);
          lo = wasm_f64x2_add(lo, wasm_f64x2_promote_low_f32x4(v));
          hi = wasm_f64x2_add(hi, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)));
        }
        v128_t f = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
        wasm_v128_store(oo + j, f);
      }
      for (; j < j1; j++) {
        f64 acc = 0;
        for (int r = 0; r < R; r++) acc += xo[(size_t)r * inner + j];
        oo[j] = (f32)acc;
      }
    } else {
      for (; j + 4 <= j1; j += 4) {
        v128_t m = wasm_f32x4_splat(-__builtin_inff());
        const f32* p = xo + j;
        for (int r = 0; r < R; r++, p += inner) {
          v128_t v = wasm_v128_load(p);
          m = wasm_v128_bitselect(v, m, wasm_v128_or(wasm_f32x4_gt(v, m), wasm_f32x4_ne(v, v)));
        }
        wasm_v128_store(oo + j, m);
      }
      for (; j < j1; j++) {
        f32 acc = -__builtin_inff();
        for (int r = 0; r < R; r++) {
          f32 v = xo[(size_t)r * inner + j];
          if (v > acc || v != v) acc = v;
        }
        oo[j] = acc;
      }
    }
  }
}
