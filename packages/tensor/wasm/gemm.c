/*
 * Packed, register-blocked f32 matmul C[m,n] = op(A)[m,k] · op(B)[k,n] (GotoBLAS / BLIS layout).
 *
 * - The micro-kernel keeps an MR x 8 tile of C in f32x4 accumulators over packed panels: A in
 *   MR-row micro-panels, B in 8-column micro-panels (b[p*8 + j]), both zero-padded at the edges so
 *   the inner loop has no branch. MR is 6 (micro6: 12 accumulators + 2 B vectors + 1 A vector = 15
 *   of the 16 registers x64 engines give wasm; A pre-broadcast) or 4 (micro4: A plain, each lane
 *   splat by a shuffle: fewer loads). The caller picks per engine (src/wasm/backend.ts): measured
 *   on Zen 4, 1 thread, 1024²: micro6 runs at 0.87 of the FMA peak under Bun and 0.82 under Node
 *   20, micro4 at 0.82 under Deno, whose V8 bounds-checks every load (micro6 there: 0.72). Every
 *   element of C is the same sequence of multiply-adds over k either way, so the choice never
 *   changes a result.
 * - B is packed once per call by all threads (K_GEMM_PACK_B, split over 8-column panels), in
 *   KC-deep slabs: slab s holds rows [s*KC, s*KC + kc) of every panel.
 * - K_GEMM splits the rows of C into tasks (multiples of MR); a task packs MC x KC blocks of A
 *   into its thread's scratch (see pack_a) and runs the micro-kernel over every panel of the
 *   current slab.
 * - Each element of C is computed the same way wherever its tile lies (same k order; edge tiles
 *   use the full micro-kernel on zero padding), so the result does not depend on the split.
 */
#include "common.h"

#define MR 6 /* the largest tile height */
#define NR 8
#define KC 256
#define MC 120

#ifdef RELAXED
#define MADD(a, b, c) wasm_f32x4_relaxed_madd(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(wasm_f32x4_mul(a, b), c)
#endif

/* args: see src/wasm/matmul.ts (the matmul launcher's words) */
enum { G_M, G_N, G_K, G_TA, G_TB, G_A, G_B, G_C, G_AOFF, G_BOFF, G_BPACK, G_PACKS, G_ROWS_PER_TASK, G_ROW_TASKS,
       G_PANELS_PER_TASK, G_PANEL_TASKS, G_SCRATCH, G_SCRATCH_STRIDE, G_MR };

INLINE int npad_of(int n) { return (n + NR - 1) / NR * NR; }

void k_gemm_pack_b(const i32* a, int task, int tid) {
  (void)tid;
  const int n = a[G_N], k = a[G_K], tb = a[G_TB];
  const int q = task / a[G_PANEL_TASKS], c = task % a[G_PANEL_TASKS];
  const int npanels = (n + NR - 1) / NR;
  const int jp0 = c * a[G_PANELS_PER_TASK], jp1 = MIN(npanels, jp0 + a[G_PANELS_PER_TASK]);
  const f32* B = PTR(f32, a[G_B]) + PTR(i32, a[G_BOFF])[q];
  f32* dst0 = PTR(f32, a[G_BPACK]) + (size_t)q * k * npad_of(n);
  const size_t slab = (size_t)KC * npad_of(n);
  for (int jp = jp0; jp < jp1; jp++) {
    const int j0 = jp * NR, nr = MIN(NR, n - j0);
    for (int p0 = 0, s = 0; p0 < k; p0 += KC, s++) {
      const int kc = MIN(KC, k - p0);
      f32* d = dst0 + s * slab + (size_t)jp * kc * NR;
      if (!tb) {
        const f32* src = B + (size_t)p0 * n + j0;
        if (nr == NR) {
          for (int p = 0; p < kc; p++, src += n, d += NR) {
            wasm_v128_store(d, wasm_v128_load(src));
            wasm_v128_store(d + 4, wasm_v128_load(src + 4));
          }
        } else {
          for (int p = 0; p < kc; p++, src += n, d += NR)
            for (int j = 0; j < NR; j++) d[j] = j < nr ? src[j] : 0.0f;
        }
      } else {
        /* B stored [n, k]: element (p, j) at B[j*k + p]; read rows of B^T contiguously */
        for (int j = 0; j < NR; j++) {
          if (j < nr) {
            const f32* src = B + (size_t)(j0 + j) * k + p0;
            for (int p = 0; p < kc; p++) d[p * NR + j] = src[p];
          } else {
            for (int p = 0; p < kc; p++) d[p * NR + j] = 0.0f;
          }
        }
      }
    }
  }
}

/*
 * A block rows [i0, i0+mc) x cols [p0, p0+kc) into MRT-row micro-panels (zero-padded), k-major.
 * - MRT = 6: each value stored 4 times (a whole f32x4), so that micro6 loads it with a plain
 *   v128.load. A v128.load32_splat costs a shuffle on the FP pipes of x64 engines, next to the 12
 *   FMAs it feeds (measured: 71% of the FMA peak with splats, 80% with pre-broadcast A under V8;
 *   60% -> 100% of the mul+add peak under JavaScriptCore).
 * - MRT = 4: plain (4 values per k, one v128): micro4 splats each lane with a shuffle. Fewer loads
 *   per FMA, which is what counts where the engine bounds-checks every load (Deno; see micro4).
 */
static void pack_a(const f32* A, int ta, int m, int k, int i0, int mc, int p0, int kc, f32* dst, int MRT) {
  for (int ip = 0; ip < mc; ip += MRT) {
    const int mr = MIN(MRT, mc - ip);
    if (MRT == 4) {
      f32* d = dst + (size_t)ip * kc;
      if (!ta) {
        for (int r = 0; r < 4; r++) {
          if (r < mr) {
            const f32* src = A + (size_t)(i0 + ip + r) * k + p0;
            for (int p = 0; p < kc; p++) d[p * 4 + r] = src[p];
          } else {
            for (int p = 0; p < kc; p++) d[p * 4 + r] = 0.0f;
          }
        }
      } else {
        /* A stored [k, m]: element (i, p) at A[p*m + i] */
        const f32* src = A + (size_t)p0 * m + i0 + ip;
        for (int p = 0; p < kc; p++, src += m, d += 4)
          for (int r = 0; r < 4; r++) d[r] = r < mr ? src[r] : 0.0f;
      }
      continue;
    }
    f32* d = dst + (size_t)ip * kc * 4;
    if (!ta) {
      for (int r = 0; r < MRT; r++) {
        if (r < mr) {
          const f32* src = A + (size_t)(i0 + ip + r) * k + p0;
          for (int p = 0; p < kc; p++) wasm_v128_store(d + (p * MRT + r) * 4, wasm_v128_load32_splat(src + p));
        } else {
          for (int p = 0; p < kc; p++) wasm_v128_store(d + (p * MRT + r) * 4, wasm_f32x4_splat(0));
        }
      }
    } else {
      /* A stored [k, m]: element (i, p) at A[p*m + i] */
      const f32* src = A + (size_t)p0 * m + i0 + ip;
      for (int p = 0; p < kc; p++, src += m, d += MRT * 4)
        for (int r = 0; r < MRT; r++) wasm_v128_store(d + r * 4, wasm_f32x4_splat(r < mr ? src[r] : 0.0f));
    }
  }
}

#define STOREC(c0, c1, row) { wasm_v128_store(C + (row) * ldc, c0); wasm_v128_store(C + (row) * ldc + 4, c1); }
#define ADDC(c0, c1, row) { wasm_v128_store(C + (row) * ldc, wasm_f32x4_add(wasm_v128_load(C + (row) * ldc), c0)); \
                            wasm_v128_store(C + (row) * ldc + 4, wasm_f32x4_add(wasm_v128_load(C + (row) * ldc + 4), c1)); }

/* Writes a partial tile (mr x nr of the 6x8 in tmp) to C. */
static void edge_store(const f32* tmp, f32* C, int ldc, int first, int mr, int nr) {
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < nr; j++) {
      if (first) C[r * ldc + j] = tmp[r * NR + j];
      else C[r * ldc + j] = C[r * ldc + j] + tmp[r * NR + j];
    }
}

/* C[6x8] (=|+=) A-panel · B-panel over kc; partial tiles go through `tmp`. */
__attribute__((noinline)) static void micro6(int kc, const f32* __restrict A, const f32* __restrict B, f32* C, int ldc, int first, int mr, int nr, f32* tmp) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  v128_t c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int p = 0; p < kc; p++) {
    const v128_t b0 = wasm_v128_load(B), b1 = wasm_v128_load(B + 4);
    v128_t x;
    x = wasm_v128_load(A + 0); c00 = MADD(x, b0, c00); c01 = MADD(x, b1, c01);
    x = wasm_v128_load(A + 4); c10 = MADD(x, b0, c10); c11 = MADD(x, b1, c11);
    x = wasm_v128_load(A + 8); c20 = MADD(x, b0, c20); c21 = MADD(x, b1, c21);
    x = wasm_v128_load(A + 12); c30 = MADD(x, b0, c30); c31 = MADD(x, b1, c31);
    x = wasm_v128_load(A + 16); c40 = MADD(x, b0, c40); c41 = MADD(x, b1, c41);
    x = wasm_v128_load(A + 20); c50 = MADD(x, b0, c50); c51 = MADD(x, b1, c51);
    A += MR * 4;
    B += NR;
  }
  if (mr == MR && nr == NR) {
    if (first) {
      STOREC(c00, c01, 0) STOREC(c10, c11, 1) STOREC(c20, c21, 2) STOREC(c30, c31, 3) STOREC(c40, c41, 4) STOREC(c50, c51, 5)
    } else {
      ADDC(c00, c01, 0) ADDC(c10, c11, 1) ADDC(c20, c21, 2) ADDC(c30, c31, 3) ADDC(c40, c41, 4) ADDC(c50, c51, 5)
    }
    return;
  }
  wasm_v128_store(tmp + 0, c00); wasm_v128_store(tmp + 4, c01);
  wasm_v128_store(tmp + 8, c10); wasm_v128_store(tmp + 12, c11);
  wasm_v128_store(tmp + 16, c20); wasm_v128_store(tmp + 20, c21);
  wasm_v128_store(tmp + 24, c30); wasm_v128_store(tmp + 28, c31);
  wasm_v128_store(tmp + 32, c40); wasm_v128_store(tmp + 36, c41);
  wasm_v128_store(tmp + 40, c50); wasm_v128_store(tmp + 44, c51);
  edge_store(tmp, C, ldc, first, mr, nr);
}

/*
 * C[4x8] (=|+=) A-panel · B-panel over kc, A packed plainly (4 values per k, one v128.load) and each
 * row's value splat from its lane by a shuffle: the same multiply-adds in the same order as micro6.
 * 3 loads per 8 FMAs (micro6: 8 per 12). Deno's V8 bounds-checks every wasm load explicitly (a
 * compare and a branch each; its trap handler is off), which leaves micro6 at ~83% of the FMA peak
 * and this kernel at ~89% (Zen 4, A and B in L1); Bun and Node (no such checks) run micro6 at
 * 97-100% and this one at 78-90%.
 */
#define SPLAT_LANE(v, l) wasm_i32x4_shuffle(v, v, l, l, l, l)
__attribute__((noinline)) static void micro4(int kc, const f32* __restrict A, const f32* __restrict B, f32* C, int ldc, int first, int mr, int nr, f32* tmp) {
  v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int p = 0; p < kc; p++) {
    const v128_t b0 = wasm_v128_load(B), b1 = wasm_v128_load(B + 4), a = wasm_v128_load(A);
    v128_t x;
    x = SPLAT_LANE(a, 0); c00 = MADD(x, b0, c00); c01 = MADD(x, b1, c01);
    x = SPLAT_LANE(a, 1); c10 = MADD(x, b0, c10); c11 = MADD(x, b1, c11);
    x = SPLAT_LANE(a, 2); c20 = MADD(x, b0, c20); c21 = MADD(x, b1, c21);
    x = SPLAT_LANE(a, 3); c30 = MADD(x, b0, c30); c31 = MADD(x, b1, c31);
    A += 4;
    B += NR;
  }
  if (mr == 4 && nr == NR) {
    if (first) {
      STOREC(c00, c01, 0) STOREC(c10, c11, 1) STOREC(c20, c21, 2) STOREC(c30, c31, 3)
    } else {
      ADDC(c00, c01, 0) ADDC(c10, c11, 1) ADDC(c20, c21, 2) ADDC(c30, c31, 3)
    }
    return;
  }
  wasm_v128_store(tmp + 0, c00); wasm_v128_store(tmp + 4, c01);
  wasm_v128_store(tmp + 8, c10); wasm_v128_store(tmp + 12, c11);
  wasm_v128_store(tmp + 16, c20); wasm_v128_store(tmp + 20, c21);
  wasm_v128_store(tmp + 24, c30); wasm_v128_store(tmp + 28, c31);
  edge_store(tmp, C, ldc, first, mr, nr);
}

void k_gemm(const i32* a, int task, int tid) {
  const int m = a[G_M], n = a[G_N], k = a[G_K], ta = a[G_TA];
  const int q = task / a[G_ROW_TASKS], rt = task % a[G_ROW_TASKS];
  const int r0 = rt * a[G_ROWS_PER_TASK], r1 = MIN(m, r0 + a[G_ROWS_PER_TASK]);
  const f32* A = PTR(f32, a[G_A]) + PTR(i32, a[G_AOFF])[q];
  const int qb = a[G_PACKS] == 1 ? 0 : q;
  const int npad = npad_of(n);
  const f32* Bp = PTR(f32, a[G_BPACK]) + (size_t)qb * k * npad;
  f32* C = PTR(f32, a[G_C]) + (size_t)q * m * n;
  f32* apack = (f32*)thread_scratch(a[G_SCRATCH], a[G_SCRATCH_STRIDE], tid);
  f32* tmp = apack + MC * KC * 4;
  const int MRT = a[G_MR] == 4 ? 4 : 6;
  for (int i0 = r0; i0 < r1; i0 += MC) {
    const int mc = MIN(MC, r1 - i0);
    for (int p0 = 0, s = 0; p0 < k; p0 += KC, s++) {
      const int kc = MIN(KC, k - p0);
      pack_a(A, ta, m, k, i0, mc, p0, kc, apack, MRT);
      const f32* bs = Bp + (size_t)s * KC * npad;
      /* A micro-panel (6 x kc: 24 KB pre-broadcast; 4 x kc: 4 KB) stays in L1 while the slab's B
       * panels stream past it (8 KB each). Measured: the B-panel-outer order and other KC / MC
       * (128-384 / 48-240) within 2% of this. MC = 120 is a multiple of both tile heights. */
      for (int ip = 0; ip < mc; ip += MRT) {
        const f32* ap = apack + (size_t)ip * kc * (MRT == 4 ? 1 : 4);
        f32* crow = C + (size_t)(i0 + ip) * n;
        const int mr = MIN(MRT, mc - ip);
        if (MRT == 6) {
          for (int j0 = 0; j0 < n; j0 += NR) micro6(kc, ap, bs + (size_t)(j0 / NR) * kc * NR, crow + j0, n, s == 0, mr, MIN(NR, n - j0), tmp);
        } else {
          for (int j0 = 0; j0 < n; j0 += NR) micro4(kc, ap, bs + (size_t)(j0 / NR) * kc * NR, crow + j0, n, s == 0, mr, MIN(NR, n - j0), tmp);
        }
      }
    }
  }
}

/*
 * The same product without packing, for products of 1-3 rows (e.g. one query row against a
 * 50-entry pool, batched 512 times, or a recurrent step's [1, 256]·[256, 1024]), where packing B
 * and padding A's rows to a whole tile cost more than the multiply-adds (measured 1.5-3x faster
 * there; with more rows the packed kernel wins). Every element of C is the same sequence of
 * operations as in k_gemm — per KC slab, a fold over k of MADD(a, b, acc) from 0 in k order, then
 * the slabs added to C in order — so a row of C has the same bits whichever kernel computed it
 * (and whichever task: tasks split the batches and, for few batches, the columns).
 * args: m, n, k, ta, tb, A, B, C, aoffs, boffs, batchesPerTask, batches, colsPerTask (a multiple
 * of 16; tasks cover batch blocks x column blocks, column blocks innermost)
 */
INLINE v128_t b_vec(const f32* B, int tb, int n, int k, int p, int j, int nr) {
  if (!tb && nr == 4) return wasm_v128_load(B + (size_t)p * n + j);
  f32 v[4] = { 0, 0, 0, 0 };
  for (int c = 0; c < nr; c++) v[c] = tb ? B[(size_t)(j + c) * k + p] : B[(size_t)p * n + j + c];
  return wasm_v128_load(v);
}

/* c[0..4) (nr of them) = acc (first slab) or c + acc */
INLINE void direct_store(f32* c, v128_t acc, int nr, int first) {
  if (nr == 4) {
    wasm_v128_store(c, first ? acc : wasm_f32x4_add(wasm_v128_load(c), acc));
  } else {
    f32 r[4];
    wasm_v128_store(r, acc);
    for (int cc = 0; cc < nr; cc++) c[cc] = first ? r[cc] : c[cc] + r[cc];
  }
}

void k_gemm_direct(const i32* a, int task, int tid) {
  (void)tid;
  const int m = a[0], n = a[1], k = a[2], ta = a[3], tb = a[4];
  const int nPer = a[12], colTasks = (n + nPer - 1) / nPer;
  const int q0 = (task / colTasks) * a[10], q1 = MIN(a[11], q0 + a[10]);
  const int j0 = (task % colTasks) * nPer, j1 = MIN(n, j0 + nPer);
  for (int q = q0; q < q1; q++) {
    const f32* A = PTR(f32, a[5]) + PTR(i32, a[8])[q];
    const f32* B = PTR(f32, a[6]) + PTR(i32, a[9])[q];
    f32* C = PTR(f32, a[7]) + (size_t)q * m * n;
    for (int i = 0; i < m; i++) {
      int j = j0;
      /* 16 columns at once (B untransposed): four independent chains over one cache line of each
       * row of B, where one chain of 4 waited on each multiply-add in turn; each column's chain is
       * the same */
      if (!tb) {
        for (; j + 16 <= j1; j += 16) {
          f32* c = C + (size_t)i * n + j;
          for (int p0 = 0; p0 < k; p0 += KC) {
            const int p1 = MIN(k, p0 + KC);
            v128_t c0 = wasm_f32x4_splat(0), c1 = c0, c2 = c0, c3 = c0;
            for (int p = p0; p < p1; p++) {
              const v128_t x = wasm_f32x4_splat(ta ? A[(size_t)p * m + i] : A[(size_t)i * k + p]);
              const f32* b = B + (size_t)p * n + j;
              c0 = MADD(x, wasm_v128_load(b), c0);
              c1 = MADD(x, wasm_v128_load(b + 4), c1);
              c2 = MADD(x, wasm_v128_load(b + 8), c2);
              c3 = MADD(x, wasm_v128_load(b + 12), c3);
            }
            direct_store(c, c0, 4, p0 == 0);
            direct_store(c + 4, c1, 4, p0 == 0);
            direct_store(c + 8, c2, 4, p0 == 0);
            direct_store(c + 12, c3, 4, p0 == 0);
          }
        }
      }
      for (; j < j1; j += 4) {
        const int nr = MIN(4, j1 - j);
        f32* c = C + (size_t)i * n + j;
        for (int p0 = 0; p0 < k; p0 += KC) {
          const int p1 = MIN(k, p0 + KC);
          v128_t acc = wasm_f32x4_splat(0);
          for (int p = p0; p < p1; p++) {
            const v128_t x = wasm_f32x4_splat(ta ? A[(size_t)p * m + i] : A[(size_t)i * k + p]);
            acc = MADD(x, b_vec(B, tb, n, k, p, j, nr), acc);
          }
          direct_store(c, acc, nr, p0 == 0);
        }
      }
    }
  }
}
