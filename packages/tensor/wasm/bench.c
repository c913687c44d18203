/* Measurement kernels for the benchmark: the SIMD FMA peak and saxpy bandwidth, plus a copy. */
#include "common.h"

#ifdef RELAXED
#define MADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

/* args: iters, out. Each task runs `iters` rounds of 12 independent f32x4 multiply-adds held in
 * registers (2 * 4 * 12 flops a round) and writes a checksum to out[task]. */
void k_peak(const i32* a, int task, int tid) {
  (void)tid;
  const int iters = a[0];
  const v128_t x = wasm_f32x4_splat(0.999999f), y = wasm_f32x4_splat(1e-7f);
  v128_t c0 = wasm_f32x4_splat((float)task), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  v128_t c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (int i = 0; i < iters; i++) {
    c0 = MADD(c0, x, y); c1 = MADD(c1, x, y); c2 = MADD(c2, x, y); c3 = MADD(c3, x, y);
    c4 = MADD(c4, x, y); c5 = MADD(c5, x, y); c6 = MADD(c6, x, y); c7 = MADD(c7, x, y);
    c8 = MADD(c8, x, y); c9 = MADD(c9, x, y); c10 = MADD(c10, x, y); c11 = MADD(c11, x, y);
  }
  v128_t s = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_add(c0, c1), wasm_f32x4_add(c2, c3)),
                            wasm_f32x4_add(wasm_f32x4_add(c4, c5), wasm_f32x4_add(c6, c7)));
  s = wasm_f32x4_add(s, wasm_f32x4_add(wasm_f32x4_add(c8, c9), wasm_f32x4_add(c10, c11)));
  PTR(f32, a[1])[task] = wasm_f32x4_extract_lane(s, 0);
}

/* args: n, alpha (f32 bits), x, y, chunk: y[i] = alpha * x[i] + y[i] for i in the task's chunk. */
void k_saxpy(const i32* a, int task, int tid) {
  (void)tid;
  const int n = a[0], chunk = a[4];
  const v128_t al = wasm_f32x4_splat(as_f32(a[1]));
  const f32* x = PTR(f32, a[2]);
  f32* y = PTR(f32, a[3]);
  int i = task * chunk;
  const int end = MIN(n, i + chunk);
  for (; i + 16 <= end; i += 16) {
    v128_t y0 = wasm_f32x4_add(wasm_f32x4_mul(al, wasm_v128_load(x + i)), wasm_v128_load(y + i));
    v128_t y1 = wasm_f32x4_add(wasm_f32x4_mul(al, wasm_v128_load(x + i + 4)), wasm_v128_load(y + i + 4));
    v128_t y2 = wasm_f32x4_add(wasm_f32x4_mul(al, wasm_v128_load(x + i + 8)), wasm_v128_load(y + i + 8));
    v128_t y3 = wasm_f32x4_add(wasm_f32x4_mul(al, wasm_v128_load(x + i + 12)), wasm_v128_load(y + i + 12));
    wasm_v128_store(y + i, y0); wasm_v128_store(y + i + 4, y1); wasm_v128_store(y + i + 8, y2); wasm_v128_store(y + i + 12, y3);
  }
  const f32 alpha = as_f32(a[1]);
  for (; i < end; i++) y[i] = alpha * x[i] + y[i];
}

/* args: n (bytes), src, dst, chunk (bytes) */
void k_copy(const i32* a, int task, int tid) {
  (void)tid;
  const u32 n = (u32)a[0], chunk = (u32)a[3];
  const u32 o = (u32)task * chunk;
  const u32 len = MIN(chunk, n - o);
  __builtin_memcpy(PTR(char, a[2]) + o, PTR(char, a[1]) + o, len);
}
