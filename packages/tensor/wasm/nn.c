/*
 * Row kernels (softmax, logsumexp, cross-entropy), the linear scans and the causal depthwise
 * conv1d. All follow the reference's f64 arithmetic in the same order, so they give the same bits;
 * the vector lanes run over independent outputs (rows' elements for exp, channels for conv1d,
 * states for the scans), never over one sum.
 */
#include "common.h"
#include "detmath.h"

/* exp(x[j] - m) for j in [0, n): writes f32(e) to o (if o) and returns the sequential f64 sum.
 * 16 values a block have their exps computed in lockstep (exp_v2xn, detmath.h: the same bits), then
 * are added in order. */
static f64 exp_row(const f32* x, f64 m, int n, f32* o) {
  f64 s = 0;
  int j = 0;
  const v128_t mv = wasm_f64x2_splat(m);
  for (; j + 16 <= n; j += 16) {
    v128_t e[8];
    for (int g = 0; g < 4; g++) {
      const v128_t w = wasm_v128_load(x + j + 4 * g);
      e[2 * g] = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(w), mv);
      e[2 * g + 1] = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(w, w, 2, 3, 0, 1)), mv);
    }
    exp_v2xn(e, 8);
    for (int q = 0; q < 8; q++) {
      s += wasm_f64x2_extract_lane(e[q], 0);
      s += wasm_f64x2_extract_lane(e[q], 1);
    }
    if (o)
      for (int g = 0; g < 4; g++)
        wasm_v128_store(o + j + 4 * g, wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(e[2 * g]), wasm_f32x4_demote_f64x2_zero(e[2 * g + 1]), 0, 1, 4, 5));
  }
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

/*
 * Lanes and chunks of the linear scans (k_scan, k_scan_reverse). A lane is one sequence b, or a
 * block of its columns [s0, s1) where there are fewer sequences than threads; a chunk is R rows of
 * a lane (the forward scan counts them from the first row, the reverse scan from the last). A
 * lane's chunks must run in order, one at a time (row t needs row t-1, or t+1), so the tasks of a
 * scan are not fixed blocks: each task is a loop that claims the next chunk of a free lane until
 * none is left. lanes[l] = 2 * (chunks of lane l done) + 1 while a thread works on it; the
 * launcher zeroes it. A thread that finds no free lane with chunks left returns (it never waits).
 *
 * Why (measured on the 2-vCPU VM, 2026-11-26, a log of which thread ran each task): with one task
 * per sequence (4 tasks for B = 4 on 2 threads), a worker that woke 1-4 ms late (a futex wake
 * after the benchmark's 100 ms pauses, on a machine shared with other jobs: 30-50% of the calls)
 * found one task or none left, so one thread streamed 3/4 or all of the bytes; saxpy's 16 tasks
 * absorb the same delay. Chunks of ~512 KiB per array keep each thread's streams contiguous (a
 * chunk is whole rows of one sequence), and the lane with the fewest chunks done goes first, so
 * every lane ends at about the same time and a late thread still gets an equal share.
 *
 * Results do not depend on who runs a chunk or when: every row is computed from the row before it
 * by the same operations (the lane's state is claimed and released with sequentially consistent
 * atomics, so a chunk sees the rows its predecessor wrote).
 */

/* Claims the next chunk of the free lane with the fewest chunks done (ties: `cur`, the lane this
 * thread just ran, whose rows are still in its cache, else the lowest). Returns the lane and sets
 * *chunk, or -1 when no free lane has a chunk left. */
static int claim_chunk(i32* lanes, int nl, int nc, int cur, int* chunk) {
  for (;;) {
    int best = -1, bc = nc;
    for (int l = 0; l < nl; l++) {
      const i32 st = __atomic_load_n(&lanes[l], __ATOMIC_SEQ_CST);
      const int done = st >> 1;
      if ((st & 1) || done >= nc) continue;
      if (done < bc || (done == bc && l == cur)) { best = l; bc = done; }
    }
    if (best < 0) return -1;
    i32 want = bc << 1;
    if (__atomic_compare_exchange_n(&lanes[best], &want, want | 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      *chunk = bc;
      return best;
    }
  }
}

/* Marks chunk c of lane l done (its rows written: the next chunk may start). */
INLINE void release_chunk(i32* lanes, int l, int c) { __atomic_store_n(&lanes[l], (c + 1) << 1, __ATOMIC_SEQ_CST); }

/* h[b,t,s] = a[b,t,s] h[b,t-1,s] + x[b,t,s] from h0[b,s] for rows [t0, t1) of lane l. Rows go in
 * pieces of a page (TOUCH_STEP), each touching a and x TOUCH_DIST ahead, and the output as far
 * ahead in the lane's own columns (common.h), when `touch` is set and the lane is large. The
 * output's touch reads the line the scan will write a few rows later (a read-for-ownership that
 * wasm cannot skip, started early); it stays inside the lane's columns of sequence b, which no
 * other thread writes before this chunk is released (later chunks of a lane start after it). */
static u32 scan_rows(const i32* a, int l, int t0, int t1) {
  const int L = a[5], S = a[6], per = a[7], st = a[8];
  const int b = l / st, s0 = (l % st) * per, s1 = MIN(S, s0 + per);
  const f32* A = PTR(f32, a[0]);
  const f32* X = PTR(f32, a[1]);
  f32* H = PTR(f32, a[3]);
  const f32* prev = t0 == 0 ? PTR(f32, a[2]) + (size_t)b * S : H + ((size_t)b * L + t0 - 1) * S;
  const int tch = a[9] && (size_t)L * (s1 - s0) >= TOUCH_MIN;
  const size_t last = ((size_t)b * L + L) * S - 1; /* the last element of sequence b */
  const int ahead = (TOUCH_DIST + S - 1) / S;     /* rows: the output's touch distance */
  u32 sink = 0;
  for (int t = t0; t < t1; t++) {
    const size_t o = ((size_t)b * L + t) * S;
    const size_t oh = ((size_t)b * L + MIN(L - 1, t + ahead)) * S; /* the touched output row */
    for (int c = s0; c < s1; c += TOUCH_STEP) {
      if (tch) sink ^= touch(A, o + c + TOUCH_DIST, last) ^ touch(X, o + c + TOUCH_DIST, last) ^ touch(H, oh + c, oh + c);
      scan_seg(A + o, prev, X + o, H + o, c, MIN(s1, c + TOUCH_STEP));
    }
    prev = H + o;
  }
  return sink;
}

/* The forward scan. args: a, x, h0, out, B, L, S, sPerLane, sLanes, touch, lanes, R (rows per
 * chunk); every task claims chunks until none is left (see claim_chunk). */
void k_scan(const i32* a, int task, int tid) {
  (void)task;
  (void)tid;
  const int B = a[4], L = a[5], st = a[8], R = a[11];
  i32* lanes = PTR(i32, a[10]);
  const int nl = B * st, nc = (L + R - 1) / R;
  u32 sink = 0;
  int c = 0;
  for (int l = -1; (l = claim_chunk(lanes, nl, nc, l, &c)) >= 0;) {
    sink ^= scan_rows(a, l, c * R, MIN(L, c * R + R));
    release_chunk(lanes, l, c);
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

/* λ[b,t,s] = g[b,t,s] + a[b,t+1,s] λ[b,t+1,s] for rows t1-1 down to t0 of lane l: rows go
 * backwards and each row from its end (scan_reverse_seg). */
static void scan_reverse_rows(const i32* a, int l, int t0, int t1) {
  const int L = a[4], S = a[5], per = a[6], st = a[7];
  const int b = l / st, s0 = (l % st) * per, s1 = MIN(S, s0 + per);
  const f32* A = PTR(f32, a[0]);
  const f32* G = PTR(f32, a[1]);
  f32* O = PTR(f32, a[2]);
  for (int t = t1 - 1; t >= t0; t--) {
    const size_t o = ((size_t)b * L + t) * S;
    if (t == L - 1) {
      for (int s = s0; s < s1; s++) O[o + s] = G[o + s];
    } else {
      scan_reverse_seg(A + o + S, O + o + S, G + o, O + o, s0, s1);
    }
  }
}

/* The reverse scan. args: a, g, out, B, L, S, sPerLane, sLanes, lanes, R (rows per chunk, counted
 * from the last row); every task claims chunks until none is left (see claim_chunk). */
void k_scan_reverse(const i32* a, int task, int tid) {
  (void)task;
  (void)tid;
  const int B = a[3], L = a[4], st = a[7], R = a[9];
  i32* lanes = PTR(i32, a[8]);
  const int nl = B * st, nc = (L + R - 1) / R;
  int c = 0;
  for (int l = -1; (l = claim_chunk(lanes, nl, nc, l, &c)) >= 0;) {
    const int t1 = L - c * R;
    scan_reverse_rows(a, l, MAX(0, t1 - R), t1);
    release_chunk(lanes, l, c);
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
