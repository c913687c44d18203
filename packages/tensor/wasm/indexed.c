/*
 * The pool reads' indexed primitives, with the reference's bits (src/cpu/indexed.ts): each sum in
 * the reference's order, each step as JavaScript computes it (the product and the sum of two f32
 * values in f64, the result rounded to f32 where the reference stores or frounds it):
 *   indexedDot    out[i] = Σ_j x[n, j]·table[idx[i], j], n = i / P: acc = f32(acc + x·t), j in order;
 *   indexedSum    out[n, :] = Σ_p w[i]·table[idx[i], :], p in order: o = f32(o + w·t);
 *   indexedOuter  out[r, :] = Σ over the entries i with idx[i] = r, in index order, of the term
 *                 f32(w[i]·x[n, :]) (terms whose weight is 0 skipped): o = f32(o + term); with a
 *                 second pair (w2, x2), its sum on its own (in scratch), then o = f32(o + o2).
 * An empty slot (−1) adds nothing (indexedDot writes 0). An index out of range is taken as empty
 * and raises the word at `bad` (args), after which the launcher (src/wasm/indexing.ts) lets the
 * reference run and throw its error (no pass over the indices in JavaScript first).
 *
 * Tasks: blocks of positions n (dot, sum: each writes its own rows); blocks of output rows for the
 * outer sums, each task scanning every entry and taking those that land in its rows (as
 * scatterAdd, indexing.c), so no sum depends on the thread count. The dot runs four slots'
 * accumulators side by side (independent chains; each in its own order).
 */
#include "common.h"

INLINE f32 step_add(f32 acc, f32 a, f32 b) { return (f32)((f64)acc + (f64)a * (f64)b); }

/* −1 (empty) for an index out of [0, rows) other than −1 too, after raising *bad. */
INLINE int slot_or_empty(int r, int rows, i32* bad) {
  if (r >= -1 && r < rows) return r;
  __atomic_store_n(bad, 1, __ATOMIC_RELAXED);
  return -1;
}

/* args: x, table, idx, out, nPositions, P, S, positionsPerTask, rows, bad */
void k_indexed_dot(const i32* a, int task, int tid) {
  (void)tid;
  const int N = a[4], P = a[5], S = a[6], per = a[7], rows = a[8];
  i32* bad = PTR(i32, a[9]);
  const int n0 = task * per, n1 = MIN(N, n0 + per);
  const f32 *X = PTR(f32, a[0]), *T = PTR(f32, a[1]);
  const i32* I = PTR(i32, a[2]);
  f32* O = PTR(f32, a[3]);
  for (int n = n0; n < n1; n++) {
    const f32* x = X + (size_t)n * S;
    const i32* idx = I + (size_t)n * P;
    f32* o = O + (size_t)n * P;
    int p = 0;
    for (; p + 4 <= P; p += 4) {
      const int r0 = slot_or_empty(idx[p], rows, bad), r1 = slot_or_empty(idx[p + 1], rows, bad);
      const int r2 = slot_or_empty(idx[p + 2], rows, bad), r3 = slot_or_empty(idx[p + 3], rows, bad);
      if (r0 < 0 || r1 < 0 || r2 < 0 || r3 < 0) break; /* the rest slot by slot */
      const f32 *t0 = T + (size_t)r0 * S, *t1 = T + (size_t)r1 * S, *t2 = T + (size_t)r2 * S, *t3 = T + (size_t)r3 * S;
      f32 c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (int j = 0; j < S; j++) {
        const f32 xj = x[j];
        c0 = step_add(c0, xj, t0[j]);
        c1 = step_add(c1, xj, t1[j]);
        c2 = step_add(c2, xj, t2[j]);
        c3 = step_add(c3, xj, t3[j]);
      }
      o[p] = c0; o[p + 1] = c1; o[p + 2] = c2; o[p + 3] = c3;
    }
    for (; p < P; p++) {
      const int r = slot_or_empty(idx[p], rows, bad);
      if (r < 0) { o[p] = 0; continue; }
      const f32* t = T + (size_t)r * S;
      f32 c = 0;
      for (int j = 0; j < S; j++) c = step_add(c, x[j], t[j]);
      o[p] = c;
    }
  }
}

/* args: w, table, idx, out, nPositions, P, S, positionsPerTask, rows, bad */
void k_indexed_sum(const i32* a, int task, int tid) {
  (void)tid;
  const int N = a[4], P = a[5], S = a[6], per = a[7], rows = a[8];
  i32* bad = PTR(i32, a[9]);
  const int n0 = task * per, n1 = MIN(N, n0 + per);
  const f32 *W = PTR(f32, a[0]), *T = PTR(f32, a[1]);
  const i32* I = PTR(i32, a[2]);
  f32* O = PTR(f32, a[3]);
  for (int n = n0; n < n1; n++) {
    f32* o = O + (size_t)n * S;
    for (int j = 0; j < S; j++) o[j] = 0;
    for (int p = 0; p < P; p++) {
      const size_t i = (size_t)n * P + p;
      const int r = slot_or_empty(I[i], rows, bad);
      if (r < 0) continue;
      const f32 w = W[i];
      const f32* t = T + (size_t)r * S;
      for (int j = 0; j < S; j++) o[j] = step_add(o[j], w, t[j]);
    }
  }
}

/* o[r0 * S .. r1 * S) = the outer sums of (w, x) over the entries that land in rows [r0, r1);
 * with `bad`, also raises it for an index out of [0, rows) other than −1. */
static void outer_rows(const f32* W, const f32* X, const i32* I, f32* O, int nIdx, int P, int S, int r0, int r1, int rows, i32* bad) {
  for (size_t k = (size_t)r0 * S; k < (size_t)r1 * S; k++) O[k] = 0;
  for (int i = 0; i < nIdx; i++) {
    const int r = I[i];
    if (bad && (r < -1 || r >= rows)) __atomic_store_n(bad, 1, __ATOMIC_RELAXED);
    if (r < r0 || r >= r1) continue;
    const f32 w = W[i];
    if (w == 0) continue;
    const f32* x = X + (size_t)(i / P) * S;
    f32* o = O + (size_t)r * S;
    for (int j = 0; j < S; j++) o[j] = (f32)((f64)o[j] + (f64)(f32)((f64)w * (f64)x[j]));
  }
}

/* args: w, x, idx, out, w2 (0: none), x2, scratch (rows · S floats where w2), nIdx, rows, P, S, rowsPerTask, bad
 * (the first task checks every index: each task scans them all anyway) */
void k_indexed_outer(const i32* a, int task, int tid) {
  (void)tid;
  const int nIdx = a[7], rows = a[8], P = a[9], S = a[10], per = a[11];
  const int r0 = task * per, r1 = MIN(rows, r0 + per);
  const i32* I = PTR(i32, a[2]);
  f32* O = PTR(f32, a[3]);
  outer_rows(PTR(f32, a[0]), PTR(f32, a[1]), I, O, nIdx, P, S, r0, r1, rows, task == 0 ? PTR(i32, a[12]) : 0);
  if (!a[4]) return;
  f32* O2 = PTR(f32, a[6]);
  outer_rows(PTR(f32, a[4]), PTR(f32, a[5]), I, O2, nIdx, P, S, r0, r1, rows, 0);
  for (size_t k = (size_t)r0 * S; k < (size_t)r1 * S; k++) O[k] = (f32)((f64)O[k] + (f64)O2[k]);
}
