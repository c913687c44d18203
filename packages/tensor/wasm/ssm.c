/*
 * The fused selective scan (see src/ops/ssm.ts and the reference src/cpu/ssm.ts):
 *   h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t,   y_t = h_t · C_t      (per channel i: h_t[i, :] ∈ R^N)
 *
 * Channels are independent, so tasks take blocks of channels and the f64x2 lanes run over two
 * channels: every per-channel quantity (h, y, dx, dΔ, dA, dh0) is computed with the reference's
 * f64 operations in the reference's order, and equals it bit for bit. Only dB and dC sum over
 * channels: each channel block writes f64 partial sums, and K_SSM_BWD_REDUCE adds the blocks in
 * order (the block size depends on Di alone, so the result does not depend on the thread count;
 * it differs from the reference, which accumulates dB in f32, by rounding only).
 *
 * Scratch layouts are channel-minor: [n][lane] for a block of `w` channels padded to an even w2
 * (padding lanes hold zeros and are never written out).
 */
#include "common.h"
#include "detmath.h"

#define V2(p) wasm_v128_load(p)
#define S2(x) wasm_f64x2_splat(x)
#define ADD wasm_f64x2_add
#define MUL wasm_f64x2_mul

/* f64 -> f32 -> f64 on two lanes (Math.fround) */
INLINE v128_t fround2(v128_t v) { return wasm_f64x2_promote_low_f32x4(wasm_f32x4_demote_f64x2_zero(v)); }

/* Loads `w` f32 values from src (stride 1) as f64 into dst[w2], zero padding. */
INLINE void load_lanes(f64* dst, const f32* src, int w, int w2) {
  for (int i = 0; i < w; i++) dst[i] = src[i];
  for (int i = w; i < w2; i++) dst[i] = 0;
}

/*
 * One step of the state recurrence for a channel block: h[n][i] (f64 holding f32 values) updated
 * in place from dt[i], dtx[i] = dt*x, A[n][i] (f64), Bn[n]. If y != 0, y[i] = Σ_n h·C[n] (f64).
 */
INLINE void step(f64* h, const f64* At, const f64* dt, const f64* dtx, const f32* Bn, const f32* Cn, int N, int w2, f64* y, f64* aout, int lockstep) {
  for (int i = 0; i < w2; i += 2) {
    const v128_t dtv = V2(dt + i), dtxv = V2(dtx + i);
    v128_t acc = S2(0);
    int n = 0;
    /* lockstep: eight states' exps at a time, pinned in lockstep (exp_v2xn, detmath.h), then the
     * updates in state order; the same bits either way. Measured (forward, [2, 1024, 512, 16], one
     * thread, CPU time, against one exp at a time): Bun 0.72, Deno 0.55-0.57, Node 20 0.82; four
     * written side by side without pins, as before, ran at 0.92 / 0.79-0.80 / 0.94 (wasm/README.md) */
    for (; lockstep && n + 8 <= N; n += 8) {
      v128_t e[8];
      for (int q = 0; q < 8; q++) e[q] = MUL(dtv, V2(At + (n + q) * w2 + i));
      exp_v2xn(e, 8);
      for (int q = 0; q < 8; q++) {
        f64* hp = h + (n + q) * w2 + i;
        if (aout) wasm_v128_store(aout + (n + q) * w2 + i, e[q]);
        const v128_t hn = fround2(ADD(fround2(MUL(e[q], V2(hp))), fround2(MUL(dtxv, S2(Bn[n + q])))));
        wasm_v128_store(hp, hn);
        if (y) acc = ADD(acc, MUL(hn, S2(Cn[n + q])));
      }
    }
    for (; n < N; n++) {
      f64* hp = h + n * w2 + i;
      const v128_t a = exp_v2(MUL(dtv, V2(At + n * w2 + i)));
      if (aout) wasm_v128_store(aout + n * w2 + i, a);
      /* fround(exp(dt*A) * h) + fround(dtx * B), rounded to f32 */
      const v128_t hn = fround2(ADD(fround2(MUL(a, V2(hp))), fround2(MUL(dtxv, S2(Bn[n])))));
      wasm_v128_store(hp, hn);
      if (y) acc = ADD(acc, MUL(hn, S2(Cn[n])));
    }
    if (y) wasm_v128_store(y + i, acc);
  }
}

/* Per-thread scratch of the forward kernel: h, At ([N][w2] f64 each), dt, dtx, y ([w2] f64). */
/* args: x, delta, A, Bm, C, h0, y (or 0), hL (or 0), B, L, Di, N, chunk, scratch, stride, lockstep (see step) */
void k_ssm_fwd(const i32* a, int task, int tid) {
  const int L = a[9], Di = a[10], N = a[11], chunk = a[12];
  const int nchunks = (Di + chunk - 1) / chunk;
  const int b = task / nchunks, i0 = (task % nchunks) * chunk, w = MIN(chunk, Di - i0), w2 = (w + 1) & ~1;
  const f32 *X = PTR(f32, a[0]), *D = PTR(f32, a[1]), *A = PTR(f32, a[2]), *Bm = PTR(f32, a[3]), *C = PTR(f32, a[4]), *H0 = PTR(f32, a[5]);
  f32* Y = PTR(f32, a[6]);
  f32* HL = PTR(f32, a[7]);
  f64* h = (f64*)thread_scratch(a[13], a[14], tid);
  f64* At = h + N * w2;
  f64* dt = At + N * w2;
  f64* dtx = dt + w2;
  f64* y = dtx + w2;
  for (int n = 0; n < N; n++)
    for (int i = 0; i < w2; i++) {
      At[n * w2 + i] = i < w ? A[(i0 + i) * N + n] : 0;
      h[n * w2 + i] = i < w ? H0[((size_t)b * Di + i0 + i) * N + n] : 0;
    }
  for (int t = 0; t < L; t++) {
    const size_t row = ((size_t)b * L + t) * Di + i0, bn = ((size_t)b * L + t) * N;
    load_lanes(dt, D + row, w, w2);
    for (int i = 0; i < w2; i++) dtx[i] = dt[i] * (i < w ? (f64)X[row + i] : 0);
    step(h, At, dt, dtx, Bm + bn, C + bn, N, w2, Y ? y : 0, 0, a[15]);
    if (Y) for (int i = 0; i < w; i++) Y[row + i] = (f32)y[i];
  }
  if (HL)
    for (int i = 0; i < w; i++)
      for (int n = 0; n < N; n++) HL[((size_t)b * Di + i0 + i) * N + n] = (f32)h[n * w2 + i];
}

/*
 * Backward for one block of channels over every sequence b (so dA sums over b in the reference's
 * order). Inputs x, delta, A, Bm, C, h0, gy [B,L,Di], ghL [B,Di,N]; output: the packed gradients
 * dx | dΔ [B,L,Di] | dA [Di,N] | dB | dC [B,L,N] | dh0 [B,Di,N]; dB and dC as f64 partial sums per
 * block in dBp / dCp [nblocks][B·L·N] (reduced by k_ssm_bwd_reduce).
 * args: x, delta, A, Bm, C, h0, gy, ghL, out, B, L, Di, N, chunk, scratch, stride, dBp, dCp, lockstep (see step)
 * Scratch (f64): hs [L+1][N][w2] (hs[0] = h0), as [L][N][w2] (exp(Δ A) of each step, kept from
 * the forward so the backward computes no exp), At, lam, dA [N][w2], dt, xv, g, dtx [w2].
 */
void k_ssm_bwd(const i32* a, int task, int tid) {
  const int B = a[9], L = a[10], Di = a[11], N = a[12], chunk = a[13];
  const int i0 = task * chunk, w = MIN(chunk, Di - i0), w2 = (w + 1) & ~1;
  const f32 *X = PTR(f32, a[0]), *D = PTR(f32, a[1]), *A = PTR(f32, a[2]), *Bm = PTR(f32, a[3]), *C = PTR(f32, a[4]);
  const f32 *H0 = PTR(f32, a[5]), *GY = PTR(f32, a[6]), *GHL = PTR(f32, a[7]);
  f32* O = PTR(f32, a[8]);
  const size_t BLDi = (size_t)B * L * Di, BLN = (size_t)B * L * N;
  f32 *oDx = O, *oDd = O + BLDi, *oDA = O + 2 * BLDi, *oDh0 = O + 2 * BLDi + (size_t)Di * N + 2 * BLN;
  f64* dBp = PTR(f64, a[16]) + (size_t)task * BLN;
  f64* dCp = PTR(f64, a[17]) + (size_t)task * BLN;
  const int S = N * w2;
  f64* hs = (f64*)thread_scratch(a[14], a[15], tid);
  f64* as = hs + (size_t)(L + 1) * S;
  f64* At = as + (size_t)L * S;
  f64* lam = At + S;
  f64* dA = lam + S;
  f64* dt = dA + S;
  f64* xv = dt + w2;
  f64* g = xv + w2;
  f64* dtx = g + w2;
  for (int n = 0; n < N; n++)
    for (int i = 0; i < w2; i++) {
      At[n * w2 + i] = i < w ? A[(i0 + i) * N + n] : 0;
      dA[n * w2 + i] = 0;
    }
  for (int b = 0; b < B; b++) {
    /* forward, keeping every state: hs[t+1] = h_t */
    for (int n = 0; n < N; n++)
      for (int i = 0; i < w2; i++) hs[n * w2 + i] = i < w ? H0[((size_t)b * Di + i0 + i) * N + n] : 0;
    for (int t = 0; t < L; t++) {
      const size_t row = ((size_t)b * L + t) * Di + i0, bn = ((size_t)b * L + t) * N;
      f64* h = hs + (size_t)(t + 1) * S;
      for (int k = 0; k < S; k++) h[k] = h[k - S];
      load_lanes(dt, D + row, w, w2);
      for (int i = 0; i < w2; i++) dtx[i] = dt[i] * (i < w ? (f64)X[row + i] : 0);
      step(h, At, dt, dtx, Bm + bn, C + bn, N, w2, 0, as + (size_t)t * S, a[18]);
    }
    for (int n = 0; n < N; n++)
      for (int i = 0; i < w2; i++) lam[n * w2 + i] = i < w ? GHL[((size_t)b * Di + i0 + i) * N + n] : 0;
    for (int t = L - 1; t >= 0; t--) {
      const size_t row = ((size_t)b * L + t) * Di + i0, bn = ((size_t)b * L + t) * N;
      const f64* ht = hs + (size_t)(t + 1) * S;
      const f64* hp = hs + (size_t)t * S; /* h_{t-1} (h0 at t = 0) */
      const f64* at = as + (size_t)t * S;
      load_lanes(dt, D + row, w, w2);
      load_lanes(xv, X + row, w, w2);
      load_lanes(g, GY + row, w, w2);
      f64* dbp = dBp + ((size_t)b * L + t) * N;
      f64* dcp = dCp + ((size_t)b * L + t) * N;
      for (int n = 0; n < N; n++) {
        f64 dc = 0;
        for (int i = 0; i < w; i++) dc += g[i] * ht[n * w2 + i];
        dcp[n] = dc;
        dbp[n] = 0;
      }
      for (int i = 0; i < w2; i += 2) {
        const v128_t dtv = V2(dt + i), xvv = V2(xv + i), gv = V2(g + i);
        v128_t ddt = S2(0), dx = S2(0);
        for (int n = 0; n < N; n++) {
          const int k = n * w2 + i;
          const v128_t Ak = V2(At + k);
          const v128_t l = ADD(V2(lam + k), MUL(gv, S2(C[bn + n])));
          const v128_t av = V2(at + k); /* exp(dt * A[k]), as the forward computed it */
          const v128_t bb = S2(Bm[bn + n]);
          ddt = ADD(ddt, MUL(MUL(l, xvv), bb));
          dx = ADD(dx, MUL(MUL(l, dtv), bb));
          const v128_t db = MUL(MUL(l, dtv), xvv);
          dbp[n] += wasm_f64x2_extract_lane(db, 0);
          if (i + 1 < w) dbp[n] += wasm_f64x2_extract_lane(db, 1);
          const v128_t da = MUL(MUL(l, V2(hp + k)), av);
          ddt = ADD(ddt, MUL(da, Ak));
          wasm_v128_store(dA + k, ADD(V2(dA + k), MUL(da, dtv)));
          wasm_v128_store(lam + k, MUL(l, av));
        }
        oDx[row + i] = (f32)wasm_f64x2_extract_lane(dx, 0);
        oDd[row + i] = (f32)wasm_f64x2_extract_lane(ddt, 0);
        if (i + 1 < w) {
          oDx[row + i + 1] = (f32)wasm_f64x2_extract_lane(dx, 1);
          oDd[row + i + 1] = (f32)wasm_f64x2_extract_lane(ddt, 1);
        }
      }
    }
    for (int i = 0; i < w; i++)
      for (int n = 0; n < N; n++) oDh0[((size_t)b * Di + i0 + i) * N + n] = (f32)lam[n * w2 + i];
  }
  for (int i = 0; i < w; i++)
    for (int n = 0; n < N; n++) oDA[(i0 + i) * N + n] = (f32)dA[n * w2 + i];
}

/* dB, dC = Σ over channel blocks (in block order) of the partials.
 * args: dBp, dCp, out, B, L, Di, N, nblocks, perTask */
void k_ssm_bwd_reduce(const i32* a, int task, int tid) {
  (void)tid;
  const int B = a[3], L = a[4], Di = a[5], N = a[6], nb = a[7], per = a[8];
  const size_t BLN = (size_t)B * L * N, BLDi = (size_t)B * L * Di;
  const size_t e0 = (size_t)task * per, e1 = MIN(BLN, e0 + per);
  const f64 *dBp = PTR(f64, a[0]), *dCp = PTR(f64, a[1]);
  f32* oDB = PTR(f32, a[2]) + 2 * BLDi + (size_t)Di * N;
  f32* oDC = oDB + BLN;
  for (size_t e = e0; e < e1; e++) {
    f64 sb = 0, sc = 0;
    for (int c = 0; c < nb; c++) {
      sb += dBp[(size_t)c * BLN + e];
      sc += dCp[(size_t)c * BLN + e];
    }
    oDB[e] = (f32)sb;
    oDC[e] = (f32)sc;
  }
}
