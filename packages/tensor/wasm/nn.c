/*
 * Row kernels (softmax, logsumexp, cross-entropy), the linear scans and the causal depthwise
 * conv1d. All follow the reference's f64 arithmetic in the same order, so they give the same bits;
 * the vector lanes run over independent outputs (rows' elements for exp, channels for conv1d,
 * states for the scans), never over one sum.
 */
#include "common.h"
#include "detmath.h"

/* exp(x[j] - m) for j in [0, n): writes f32(e) to o (if o) and returns the sequential f64 sum. */
static f64 exp_row(const f32* x, f64 m, int n, f32* o) {
  f64 s = 0;
  int j = 0;
  const v128_t mv = wasm_f64x2_splat(m);
  for (; j + 2 <= n; j += 2) {
    v128_t e = exp_v2(wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(x + j)), mv));
    s += wasm_f64x2_extract_lane(e, 0);
    s += wasm_f64x2_extract_lane(e, 1);
    if (o) wasm_v128_store64_lane(o + j, wasm_f32x4_demote_f64x2_zero(e), 0);
  }
  for (; j < n; j++) {
    f64 e = dm_exp((f64)x[j] - m);
    s += e;
    if (o) o[j] = (f32)e;
  }
  return s;
}

/* args: x, out, rows, n, rowsPerTask */
void k_softmax(const i32* a, int task, int tid) {
  (void)tid;
  const int rows = a[2], n = a[3], per = a[4];
  const int r0 = task * per, r1 = MIN(rows, r0 + per);
  for (int r = r0; r < r1; r++) {
    const f32* x = PTR(f32, a[0]) + (size_t)r * n;
    f32* o = PTR(f32, a[1]) + (size_t)r * n;
    f32 m = -__builtin_inff();
    for (int j = 0; j < n; j++) if (x[j] > m) m = x[j];
    if (m == -__builtin_inff()) m = 0;
    f64 s = exp_row(x, m, n, o);
    f64 inv = 1 / s;
    int j = 0;
    const v128_t iv = wasm_f64x2_splat(inv);
    for (; j + 2 <= n; j += 2) {
      v128_t v = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(o + j)), iv);
      wasm_v128_store64_lane(o + j, wasm_f32x4_demote_f64x2_zero(v), 0);
    }
    for (; j < n; j++) o[j] = (f32)((f64)o[j] * inv);
  }
}

static f64 lse_row(const f32* x, int n) {
  f32 m = -__builtin_inff();
  for (int j = 0; j < n; j++) if (x[j] > m || x[j] != x[j]) m = x[j];
  if (m == -__builtin_inff() || m == __builtin_inff() || m != m) return m;
  return (f64)m + dm_log(exp_row(x, m, n, 0));
}

/* args: x, out, rows, n, rowsPerTask */
void k_logsumexp(const i32* a, int task, int tid) {
  (void)tid;
  const int rows = a[2], n = a[3], per = a[4];
  const int r0 = task * per, r1 = MIN(rows, r0 + per);
  for (int r = r0; r < r1; r++) PTR(f32, a[1])[r] = (f32)lse_row(PTR(f32, a[0]) + (size_t)r * n, n);
}

/* args: logits, targets (i32, checked in range by the caller), out, rows, n, rowsPerTask */
void k_cross_entropy(const i32* a, int task, int tid) {
  (void)tid;
  const int rows = a[3], n = a[4], per = a[5];
  const int r0 = task * per, r1 = MIN(rows, r0 + per);
  for (int r = r0; r < r1; r++) {
    const f32* x = PTR(f32, a[0]) + (size_t)r * n;
    const int t = PTR(i32, a[1])[r];
    PTR(f32, a[2])[r] = (f32)(lse_row(x, n) - (f64)x[t]);
  }
}

/* hr[s] = ar[s] * prev[s] + xr[s] for s in [s, s1): 16 values an iteration (a streaming loop, and
 * fewer loop and bounds-check instructions per byte: Deno's V8 checks every load; measured +15-25%
 * at 1 thread) */
INLINE void scan_seg(const f32* ar, const f32* prev, const f32* xr, f32* hr, int s, int s1) {
  for (; s + 16 <= s1; s += 16) {
    const v128_t h0 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ar + s), wasm_v128_load(prev + s)), wasm_v128_load(xr + s));
    const v128_t h1 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ar + s + 4), wasm_v128_load(prev + s + 4)), wasm_v128_load(xr + s + 4));
    const v128_t h2 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ar + s + 8), wasm_v128_load(prev + s + 8)), wasm_v128_load(xr + s + 8));
    const v128_t h3 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ar + s + 12), wasm_v128_load(prev + s + 12)), wasm_v128_load(xr + s + 12));
    wasm_v128_store(hr + s, h0); wasm_v128_store(hr + s + 4, h1); wasm_v128_store(hr + s + 8, h2); wasm_v128_store(hr + s + 12, h3);
  }
  for (; s + 4 <= s1; s += 4)
    wasm_v128_store(hr + s, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(ar + s), wasm_v128_load(prev + s)), wasm_v128_load(xr + s)));
  for (; s < s1; s++) hr[s] = ar[s] * prev[s] + xr[s];
}

/* h[b,t,s] = a[b,t,s] h[b,t-1,s] + x[b,t,s] from h0[b,s]
 * args: a, x, h0, out, B, L, S, sPerTask, sTasks, touch; task = (b, s-chunk). Rows go in pieces of
 * a page (TOUCH_STEP), each touching a and x TOUCH_DIST ahead, and the output as far ahead in the
 * task's own columns (common.h), when `touch` is set and the block is large. The output's touch
 * reads the line the scan will write a few rows later (a read-for-ownership that wasm cannot skip,
 * started early); it stays inside the block this task writes, which no other task reads or writes. */
void k_scan(const i32* a, int task, int tid) {
  (void)tid;
  const int L = a[5], S = a[6], per = a[7], st = a[8];
  const int b = task / st, s0 = (task % st) * per, s1 = MIN(S, s0 + per);
  const f32* A = PTR(f32, a[0]);
  const f32* X = PTR(f32, a[1]);
  f32* H = PTR(f32, a[3]);
  const f32* prev = PTR(f32, a[2]) + (size_t)b * S;
  const int tch = a[9] && (size_t)L * (s1 - s0) >= TOUCH_MIN;
  const size_t last = ((size_t)b * L + L) * S - 1; /* the last element of sequence b */
  const int ahead = (TOUCH_DIST + S - 1) / S;     /* rows: the output's touch distance */
  u32 sink = 0;
  for (int t = 0; t < L; t++) {
    const size_t o = ((size_t)b * L + t) * S;
    const size_t oh = ((size_t)b * L + MIN(L - 1, t + ahead)) * S; /* the touched output row */
    for (int c = s0; c < s1; c += TOUCH_STEP) {
      if (tch) sink ^= touch(A, o + c + TOUCH_DIST, last) ^ touch(X, o + c + TOUCH_DIST, last) ^ touch(H, oh + c, oh + c);
      scan_seg(A + o, prev, X + o, H + o, c, MIN(s1, c + TOUCH_STEP));
    }
    prev = H + o;
  }
  touch_done(sink);
}

/* orow[s] = an[s] * on[s] + gr[s] for s in [s0, s1), from the top down: the reverse scan walks its
 * rows from the last to the first, and a descending walk inside each row too makes all of its
 * streams descend steadily (ascending rows visited in descending order restarted the hardware
 * prefetchers at every row: measured 0.3-0.45 of saxpy's bytes/s against the forward scan's 0.6) */
INLINE void scan_reverse_seg(const f32* an, const f32* on, const f32* gr, f32* orow, int s0, int s1) {
  int s = s1;
  for (; (s - s0) & 3; ) { s--; orow[s] = an[s] * on[s] + gr[s]; }
  for (; (s - s0) & 15; ) {
    s -= 4;
    wasm_v128_store(orow + s, wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(an + s), wasm_v128_load(on + s)), wasm_v128_load(gr + s)));
  }
  while (s > s0) {
    s -= 16;
    const v128_t l3 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(an + s + 12), wasm_v128_load(on + s + 12)), wasm_v128_load(gr + s + 12));
    const v128_t l2 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(an + s + 8), wasm_v128_load(on + s + 8)), wasm_v128_load(gr + s + 8));
    const v128_t l1 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(an + s + 4), wasm_v128_load(on + s + 4)), wasm_v128_load(gr + s + 4));
    const v128_t l0 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(an + s), wasm_v128_load(on + s)), wasm_v128_load(gr + s));
    wasm_v128_store(orow + s + 12, l3); wasm_v128_store(orow + s + 8, l2); wasm_v128_store(orow + s + 4, l1); wasm_v128_store(orow + s, l0);
  }
}

/* λ[b,t,s] = g[b,t,s] + a[b,t+1,s] λ[b,t+1,s]; args: a, g, out, B, L, S, sPerTask, sTasks. Rows go
 * backwards and each row from its end (scan_reverse_seg). */
void k_scan_reverse(const i32* a, int task, int tid) {
  (void)tid;
  const int L = a[4], S = a[5], per = a[6], st = a[7];
  const int b = task / st, s0 = (task % st) * per, s1 = MIN(S, s0 + per);
  const f32* A = PTR(f32, a[0]);
  const f32* G = PTR(f32, a[1]);
  f32* O = PTR(f32, a[2]);
  if (L == 0) return;
  const size_t last = ((size_t)b * L + L - 1) * S;
  for (int s = s0; s < s1; s++) O[last + s] = G[last + s];
  for (int t = L - 2; t >= 0; t--) {
    const size_t o = ((size_t)b * L + t) * S, nx = o + S;
    scan_reverse_seg(A + nx, O + nx, G + o, O + o, s0, s1);
  }
}

/* ---- causal depthwise conv1d: x, y [B, L, C]; w [C, K] ---- */

/* y[b,t,c] = Σ_k w[c,k] x[b,t-K+1+k,c] (k increasing, f64). args: x, w, y, B, L, C, K, tPerTask, tTasks */
void k_conv1d(const i32* a, int task, int tid) {
  (void)tid;
  const int L = a[4], C = a[5], K = a[6], per = a[7], tt = a[8];
  const int b = task / tt, t0 = (task % tt) * per, t1 = MIN(L, t0 + per);
  const f32* X = PTR(f32, a[0]);
  const f32* W = PTR(f32, a[1]);
  f32* Y = PTR(f32, a[2]);
  for (int t = t0; t < t1; t++) {
    f32* y = Y + ((size_t)b * L + t) * C;
    int c = 0;
    for (; c + 2 <= C; c += 2) {
      v128_t s = wasm_f64x2_splat(0);
      for (int k = 0; k < K; k++) {
        const int src = t - K + 1 + k;
        if (src < 0) continue;
        const f32* x = X + ((size_t)b * L + src) * C + c;
        v128_t wv = wasm_f64x2_make(W[c * K + k], W[(c + 1) * K + k]);
        s = wasm_f64x2_add(s, wasm_f64x2_mul(wv, wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(x))));
      }
      wasm_v128_store64_lane(y + c, wasm_f32x4_demote_f64x2_zero(s), 0);
    }
    for (; c < C; c++) {
      f64 s = 0;
      for (int k = 0; k < K; k++) {
        const int src = t - K + 1 + k;
        if (src >= 0) s += (f64)W[c * K + k] * X[((size_t)b * L + src) * C + c];
      }
      y[c] = (f32)s;
    }
  }
}

/* dx[b,s,c] = Σ_k w[c,k] g[b, s+K-1-k, c]. args: g, w, dx, B, L, C, K, sPerTask, sTasks */
void k_conv1d_grad_x(const i32* a, int task, int tid) {
  (void)tid;
  const int L = a[4], C = a[5], K = a[6], per = a[7], tt = a[8];
  const int b = task / tt, s0 = (task % tt) * per, s1 = MIN(L, s0 + per);
  const f32* G = PTR(f32, a[0]);
  const f32* W = PTR(f32, a[1]);
  f32* D = PTR(f32, a[2]);
  for (int s = s0; s < s1; s++) {
    f32* d = D + ((size_t)b * L + s) * C;
    int c = 0;
    for (; c + 2 <= C; c += 2) {
      v128_t acc = wasm_f64x2_splat(0);
      for (int k = 0; k < K; k++) {
        const int t = s + K - 1 - k;
        if (t >= L) continue;
        const f32* g = G + ((size_t)b * L + t) * C + c;
        v128_t wv = wasm_f64x2_make(W[c * K + k], W[(c + 1) * K + k]);
        acc = wasm_f64x2_add(acc, wasm_f64x2_mul(wv, wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(g))));
      }
      wasm_v128_store64_lane(d + c, wasm_f32x4_demote_f64x2_zero(acc), 0);
    }
    for (; c < C; c++) {
      f64 acc = 0;
      for (int k = 0; k < K; k++) {
        const int t = s + K - 1 - k;
        if (t < L) acc += (f64)W[c * K + k] * G[((size_t)b * L + t) * C + c];
      }
      d[c] = (f32)acc;
    }
  }
}

/* dw[c,k] = Σ_{b,t} g[b,t,c] x[b,t-K+1+k,c] in f64, (b, t) increasing.
 * args: g, x, dw, B, L, C, K, cPerTask, scratch, scratchStride; task = channel chunk */
void k_conv1d_grad_w(const i32* a, int task, int tid) {
  const int B = a[3], L = a[4], C = a[5], K = a[6], per = a[7];
  const int c0 = task * per, c1 = MIN(C, c0 + per), nc = c1 - c0;
  const f32* G = PTR(f32, a[0]);
  const f32* X = PTR(f32, a[1]);
  f64* acc = (f64*)thread_scratch(a[8], a[9], tid); /* [K][nc] */
  for (int i = 0; i < K * nc; i++) acc[i] = 0;
  for (int b = 0; b < B; b++) {
    for (int t = 0; t < L; t++) {
      const f32* g = G + ((size_t)b * L + t) * C;
      for (int k = 0; k < K; k++) {
        const int src = t - K + 1 + k;
        if (src < 0) continue;
        const f32* x = X + ((size_t)b * L + src) * C;
        f64* ak = acc + k * nc;
        int c = c0;
        for (; c + 2 <= c1; c += 2) {
          v128_t gv = wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(g + c));
          v128_t xv = wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(x + c));
          v128_t* p = (v128_t*)(ak + (c - c0));
          wasm_v128_store(p, wasm_f64x2_add(wasm_v128_load(p), wasm_f64x2_mul(gv, xv)));
        }
        for (; c < c1; c++) ak[c - c0] += (f64)g[c] * x[c];
      }
    }
  }
  f32* D = PTR(f32, a[2]);
  for (int c = c0; c < c1; c++)
    for (int k = 0; k < K; k++) D[c * K + k] = (f32)acc[k * nc + (c - c0)];
}
