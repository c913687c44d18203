/*
 * Elementwise kernels: unary (f32) and binary / compare (f32 or i32) with broadcasting.
 *
 * Every result equals the TypeScript reference's bit for bit: + - * / of f32 values are the same
 * whether rounded once to f32 or through f64 first; transcendentals use the detmath port in f64,
 * exactly as the reference does; rsqrt and silu are computed in f64 as in the reference.
 */
#include "common.h"
#include "detmath.h"

/* unary ops (order of UnaryOp in src/wasm/elementwise.ts) */
enum { U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_TANH, U_SIGMOID, U_SILU, U_SOFTPLUS, U_ABS, U_RELU, U_SIN, U_COS,
       U_SQUARE, U_RECIPROCAL, U_SIGN };

INLINE f32 unary1(int op, f32 v) {
  f64 x = v;
  switch (op) {
    case U_NEG: return -v;
    case U_EXP: return (f32)dm_exp(x);
    case U_LOG: return (f32)dm_log(x);
    case U_SQRT: return (f32)__builtin_sqrt(x);
    case U_RSQRT: return (f32)(1.0 / __builtin_sqrt(x));
    case U_TANH: return (f32)dm_tanh(x);
    case U_SIGMOID: return (f32)dm_sigmoid(x);
    case U_SILU: return (f32)(x * dm_sigmoid(x));
    case U_SOFTPLUS: return (f32)dm_softplus(x);
    case U_ABS: return __builtin_fabsf(v);
    case U_RELU: return v > 0 ? v : 0.0f;
    case U_SIN: return (f32)dm_sin(x);
    case U_COS: return (f32)dm_cos(x);
    case U_SQUARE: return v * v;
    case U_RECIPROCAL: return 1.0f / v;
    case U_SIGN: return v > 0 ? 1.0f : v < 0 ? -1.0f : v == 0 ? 0.0f : __builtin_nanf("");
  }
  return 0;
}

/* Lane pairs of the exp-based unary ops in lockstep (measured: see wasm/README.md, "exp"; a build
 * may define another even width to compare). */
#ifndef UNARY_NQ
#define UNARY_NQ 8
#endif

/* Two lanes of exp-based ops through exp_v2 (f64x2), converted to two f32s. */
INLINE void unary_exp2(int op, const f32* x, f32* o) {
  v128_t v = wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(x));
  v128_t r;
  if (op == U_EXP) {
    r = exp_v2(v);
  } else { /* sigmoid / silu: x >= 0: 1 / (1 + e^-x); else e^x / (1 + e^x) (NaN: e^x = NaN) */
    v128_t pos = wasm_f64x2_ge(v, wasm_f64x2_splat(0));
    v128_t e = exp_v2(wasm_v128_bitselect(wasm_f64x2_neg(v), v, pos));
    v128_t one = wasm_f64x2_splat(1.0);
    v128_t d = wasm_f64x2_add(one, e);
    r = wasm_v128_bitselect(wasm_f64x2_div(one, d), wasm_f64x2_div(e, d), pos);
    if (op == U_SILU) r = wasm_f64x2_mul(v, r);
  }
  wasm_v128_store64_lane(o, wasm_f32x4_demote_f64x2_zero(r), 0);
}

/* Loads 2·nq values as nq f64x2 lane pairs (one v128 load per four). */
INLINE void load_pairs(const f32* x, v128_t* v, const int nq) {
  for (int g = 0; g < nq / 2; g++) {
    const v128_t w = wasm_v128_load(x + 4 * g);
    v[2 * g] = wasm_f64x2_promote_low_f32x4(w);
    v[2 * g + 1] = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(w, w, 2, 3, 0, 1));
  }
}
/* Stores nq f64x2 lane pairs as 2·nq f32 values (one v128 store per four). */
INLINE void store_pairs(f32* o, const v128_t* v, const int nq) {
  for (int g = 0; g < nq / 2; g++)
    wasm_v128_store(o + 4 * g, wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(v[2 * g]), wasm_f32x4_demote_f64x2_zero(v[2 * g + 1]), 0, 1, 4, 5));
}

/* 2·nq values of an exp-based op: unary_exp2's operations on nq lane pairs, the exps in lockstep
 * (exp_v2xn). Sigmoid and silu divide once per lane: (x >= 0 ? 1 : e) / (1 + e) is the division
 * whose quotient unary_exp2 keeps (it computes both and selects). nq is even and a constant. */
INLINE void unary_exp_block(int op, const f32* x, f32* o, const int nq) {
  v128_t v[nq], e[nq], pos[nq];
  load_pairs(x, v, nq);
  if (op == U_EXP) {
    for (int q = 0; q < nq; q++) e[q] = v[q];
    exp_v2xn(e, nq);
  } else {
    for (int q = 0; q < nq; q++) {
      pos[q] = wasm_f64x2_ge(v[q], wasm_f64x2_splat(0));
      e[q] = wasm_v128_bitselect(wasm_f64x2_neg(v[q]), v[q], pos[q]);
    }
    exp_v2xn(e, nq);
    for (int q = 0; q < nq; q++) {
      const v128_t one = wasm_f64x2_splat(1.0);
      const v128_t r = wasm_f64x2_div(wasm_v128_bitselect(one, e[q], pos[q]), wasm_f64x2_add(one, e[q]));
      e[q] = op == U_SILU ? wasm_f64x2_mul(v[q], r) : r;
    }
  }
  store_pairs(o, e, nq);
}

/* 2·nq values of softplus (softplus_v2xn). */
INLINE void softplus_block(const f32* x, f32* o, const int nq) {
  v128_t v[nq];
  load_pairs(x, v, nq);
  softplus_v2xn(v, nq);
  store_pairs(o, v, nq);
}

/* args: op, x, out, n, chunk */
void k_unary(const i32* a, int task, int tid) {
  (void)tid;
  const int op = a[0], n = a[3], chunk = a[4];
  const f32* x = PTR(f32, a[1]);
  f32* o = PTR(f32, a[2]);
  int i = task * chunk;
  const int end = MIN(n, i + chunk);
  switch (op) {
    case U_NEG:
      for (; i + 4 <= end; i += 4) wasm_v128_store(o + i, wasm_f32x4_neg(wasm_v128_load(x + i)));
      break;
    case U_ABS:
      for (; i + 4 <= end; i += 4) wasm_v128_store(o + i, wasm_f32x4_abs(wasm_v128_load(x + i)));
      break;
    case U_SQUARE:
      for (; i + 4 <= end; i += 4) { v128_t v = wasm_v128_load(x + i); wasm_v128_store(o + i, wasm_f32x4_mul(v, v)); }
      break;
    case U_RELU: /* v > 0 ? v : 0 (NaN -> 0, -0 -> 0) */
      for (; i + 4 <= end; i += 4) {
        v128_t v = wasm_v128_load(x + i);
        wasm_v128_store(o + i, wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0))));
      }
      break;
    case U_RECIPROCAL:
      for (; i + 4 <= end; i += 4) wasm_v128_store(o + i, wasm_f32x4_div(wasm_f32x4_splat(1.0f), wasm_v128_load(x + i)));
      break;
    case U_SQRT: /* the f64 sqrt of an f32, rounded to f32, equals the f32 sqrt */
      for (; i + 4 <= end; i += 4) wasm_v128_store(o + i, wasm_f32x4_sqrt(wasm_v128_load(x + i)));
      break;
    case U_RSQRT:
      for (; i + 2 <= end; i += 2) {
        v128_t v = wasm_f64x2_promote_low_f32x4(wasm_v128_load64_zero(x + i));
        v128_t r = wasm_f64x2_div(wasm_f64x2_splat(1.0), wasm_f64x2_sqrt(v));
        wasm_v128_store64_lane(o + i, wasm_f32x4_demote_f64x2_zero(r), 0);
      }
      break;
    case U_EXP: case U_SIGMOID: case U_SILU:
      /* UNARY_NQ independent exps an iteration, in lockstep: their long dependency chains (a
       * degree-12 Horner polynomial in f64) overlap */
      for (; i + 2 * UNARY_NQ <= end; i += 2 * UNARY_NQ) unary_exp_block(op, x + i, o + i, UNARY_NQ);
      for (; i + 2 <= end; i += 2) unary_exp2(op, x + i, o + i);
      break;
    case U_SOFTPLUS: /* the exps and the log1p of UNARY_NQ lane pairs in lockstep */
      for (; i + 2 * UNARY_NQ <= end; i += 2 * UNARY_NQ) softplus_block(x + i, o + i, UNARY_NQ);
      break;
    default:
      break;
  }
  for (; i < end; i++) o[i] = unary1(op, x[i]);
}

/* ---------------------------------------------------------------------------------------------- */
/* binary ops (order of BinaryOp then CompareOp in src/wasm/elementwise.ts) */
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

static f64 dm_pow(f64 a, f64 b) {
  if (b == 0) return 1;
  if (b == 1) return a;
  if (b == 2) return a * a;
  if (b == 0.5) return __builtin_sqrt(a);
  if (a > 0) return dm_exp(b * dm_log(a));
  if (a == 0) return b > 0 ? 0 : __builtin_inf();
  if (b == __builtin_floor(b) && dm_fabs(b) != __builtin_inf()) {
    f64 m = dm_exp(b * dm_log(-a));
    return __builtin_floor(b * 0.5) == b * 0.5 ? m : -m; /* b % 2 === 0 for an integer b */
  }
  return __builtin_nan("");
}

INLINE f32 binf(int op, f32 x, f32 y) {
  switch (op) {
    case B_ADD: return x + y;
    case B_SUB: return x - y;
    case B_MUL: return x * y;
    case B_DIV: return x / y;
    case B_POW: return (f32)dm_pow(x, y);
    case B_MAX: return (x > y || x != x) ? x : y;
    case B_MIN: return (x < y || x != x) ? x : y;
    case C_EQ: return x == y ? 1.0f : 0.0f;
    case C_NE: return x != y ? 1.0f : 0.0f;
    case C_LT: return x < y ? 1.0f : 0.0f;
    case C_LE: return x <= y ? 1.0f : 0.0f;
    case C_GT: return x > y ? 1.0f : 0.0f;
    case C_GE: return x >= y ? 1.0f : 0.0f;
  }
  return 0;
}

/* i32 ops: add/sub/mul wrap (as C's int32 / Math.imul), max, min, compares give f32 0/1. */
INLINE i32 bini(int op, i32 x, i32 y) {
  switch (op) {
    case B_ADD: return (i32)((u32)x + (u32)y);
    case B_SUB: return (i32)((u32)x - (u32)y);
    case B_MUL: return (i32)((u32)x * (u32)y);
    case B_MAX: return x > y ? x : y;
    case B_MIN: return x < y ? x : y;
  }
  return 0;
}
INLINE f32 cmpi(int op, i32 x, i32 y) {
  switch (op) {
    case C_EQ: return x == y;
    case C_NE: return x != y;
    case C_LT: return x < y;
    case C_LE: return x <= y;
    case C_GT: return x > y;
    case C_GE: return x >= y;
  }
  return 0;
}

INLINE v128_t binv(int op, v128_t x, v128_t y) {
  const v128_t one = wasm_f32x4_splat(1.0f);
  switch (op) {
    case B_ADD: return wasm_f32x4_add(x, y);
    case B_SUB: return wasm_f32x4_sub(x, y);
    case B_MUL: return wasm_f32x4_mul(x, y);
    case B_DIV: return wasm_f32x4_div(x, y);
    case B_MAX: return wasm_v128_bitselect(x, y, wasm_v128_or(wasm_f32x4_gt(x, y), wasm_f32x4_ne(x, x)));
    case B_MIN: return wasm_v128_bitselect(x, y, wasm_v128_or(wasm_f32x4_lt(x, y), wasm_f32x4_ne(x, x)));
    case C_EQ: return wasm_v128_and(one, wasm_f32x4_eq(x, y));
    case C_NE: return wasm_v128_and(one, wasm_f32x4_ne(x, y));
    case C_LT: return wasm_v128_and(one, wasm_f32x4_lt(x, y));
    case C_LE: return wasm_v128_and(one, wasm_f32x4_le(x, y));
    case C_GT: return wasm_v128_and(one, wasm_f32x4_gt(x, y));
    case C_GE: return wasm_v128_and(one, wasm_f32x4_ge(x, y));
  }
  return x;
}

/*
 * The vector part of a row for one op, OPC a constant (so binv folds to one instruction): 16 values
 * an iteration, then 4. Inside the loop a switch on the op cost a jump table every 4 values, and
 * Deno's V8 adds a bounds check to every load: unrolled, the loop streams at ~the saxpy rate.
 */
#define ROW_VEC(OPC)                                                                                                  \
  if (sx && sy) {                                                                                                     \
    for (; j + 16 <= len; j += 16) {                                                                                  \
      const v128_t r0 = binv(OPC, wasm_v128_load(x + j), wasm_v128_load(y + j));                                      \
      const v128_t r1 = binv(OPC, wasm_v128_load(x + j + 4), wasm_v128_load(y + j + 4));                              \
      const v128_t r2 = binv(OPC, wasm_v128_load(x + j + 8), wasm_v128_load(y + j + 8));                              \
      const v128_t r3 = binv(OPC, wasm_v128_load(x + j + 12), wasm_v128_load(y + j + 12));                            \
      wasm_v128_store(o + j, r0); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 12, r3); \
    }                                                                                                                 \
    for (; j + 4 <= len; j += 4) wasm_v128_store(o + j, binv(OPC, wasm_v128_load(x + j), wasm_v128_load(y + j)));   \
  } else if (sx) {                                                                                                    \
    const v128_t yv = wasm_v128_load32_splat(y);                                                                      \
    for (; j + 16 <= len; j += 16) {                                                                                  \
      const v128_t r0 = binv(OPC, wasm_v128_load(x + j), yv), r1 = binv(OPC, wasm_v128_load(x + j + 4), yv);          \
      const v128_t r2 = binv(OPC, wasm_v128_load(x + j + 8), yv), r3 = binv(OPC, wasm_v128_load(x + j + 12), yv);     \
      wasm_v128_store(o + j, r0); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 12, r3); \
    }                                                                                                                 \
    for (; j + 4 <= len; j += 4) wasm_v128_store(o + j, binv(OPC, wasm_v128_load(x + j), yv));                       \
  } else if (sy) {                                                                                                    \
    const v128_t xv = wasm_v128_load32_splat(x);                                                                      \
    for (; j + 16 <= len; j += 16) {                                                                                  \
      const v128_t r0 = binv(OPC, xv, wasm_v128_load(y + j)), r1 = binv(OPC, xv, wasm_v128_load(y + j + 4));          \
      const v128_t r2 = binv(OPC, xv, wasm_v128_load(y + j + 8)), r3 = binv(OPC, xv, wasm_v128_load(y + j + 12));     \
      wasm_v128_store(o + j, r0); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 12, r3); \
    }                                                                                                                 \
    for (; j + 4 <= len; j += 4) wasm_v128_store(o + j, binv(OPC, xv, wasm_v128_load(y + j)));                       \
  }

/* One row of `len` outputs; inputs at x (stride sx in {0,1}), y (stride sy). */
static void row_f32(int op, const f32* x, int sx, const f32* y, int sy, f32* o, int len) {
  int j = 0;
  switch (op) {
    case B_ADD: ROW_VEC(B_ADD) break;
    case B_SUB: ROW_VEC(B_SUB) break;
    case B_MUL: ROW_VEC(B_MUL) break;
    case B_DIV: ROW_VEC(B_DIV) break;
    case B_MAX: ROW_VEC(B_MAX) break;
    case B_MIN: ROW_VEC(B_MIN) break;
    case C_EQ: ROW_VEC(C_EQ) break;
    case C_NE: ROW_VEC(C_NE) break;
    case C_LT: ROW_VEC(C_LT) break;
    case C_LE: ROW_VEC(C_LE) break;
    case C_GT: ROW_VEC(C_GT) break;
    case C_GE: ROW_VEC(C_GE) break;
    default: break; /* B_POW: scalar below */
  }
  for (; j < len; j++) o[j] = binf(op, x[j * sx], y[j * sy]);
}

/*
 * row_f32 from the top down: the same values (each output is one op on its inputs), written from
 * o[len-1] to o[0], 16 an iteration. On the 2-vCPU Zen 4 VM a fresh output written downwards
 * streamed at 0.71-0.82 of saxpy's bytes/s against 0.62-0.66 upwards (one thread, after a flush
 * of the caches; saxpy itself, which updates in place, ran the same either way).
 */
#define ROW_VEC_DESC(OPC)                                                                                             \
  if (sx && sy) {                                                                                                     \
    for (; j & 15; ) { j -= 4; wasm_v128_store(o + j, binv(OPC, wasm_v128_load(x + j), wasm_v128_load(y + j))); }    \
    while (j > 0) {                                                                                                   \
      j -= 16;                                                                                                        \
      const v128_t r3 = binv(OPC, wasm_v128_load(x + j + 12), wasm_v128_load(y + j + 12));                            \
      const v128_t r2 = binv(OPC, wasm_v128_load(x + j + 8), wasm_v128_load(y + j + 8));                              \
      const v128_t r1 = binv(OPC, wasm_v128_load(x + j + 4), wasm_v128_load(y + j + 4));                              \
      const v128_t r0 = binv(OPC, wasm_v128_load(x + j), wasm_v128_load(y + j));                                      \
      wasm_v128_store(o + j + 12, r3); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j, r0); \
    }                                                                                                                 \
  } else if (sx) {                                                                                                    \
    const v128_t yv = wasm_v128_load32_splat(y);                                                                      \
    for (; j & 15; ) { j -= 4; wasm_v128_store(o + j, binv(OPC, wasm_v128_load(x + j), yv)); }                       \
    while (j > 0) {                                                                                                   \
      j -= 16;                                                                                                        \
      const v128_t r3 = binv(OPC, wasm_v128_load(x + j + 12), yv), r2 = binv(OPC, wasm_v128_load(x + j + 8), yv);     \
      const v128_t r1 = binv(OPC, wasm_v128_load(x + j + 4), yv), r0 = binv(OPC, wasm_v128_load(x + j), yv);          \
      wasm_v128_store(o + j + 12, r3); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j, r0); \
    }                                                                                                                 \
  } else {                                                                                                            \
    const v128_t xv = wasm_v128_load32_splat(x);                                                                      \
    for (; j & 15; ) { j -= 4; wasm_v128_store(o + j, binv(OPC, xv, wasm_v128_load(y + j))); }                       \
    while (j > 0) {                                                                                                   \
      j -= 16;                                                                                                        \
      const v128_t r3 = binv(OPC, xv, wasm_v128_load(y + j + 12)), r2 = binv(OPC, xv, wasm_v128_load(y + j + 8));     \
      const v128_t r1 = binv(OPC, xv, wasm_v128_load(y + j + 4)), r0 = binv(OPC, xv, wasm_v128_load(y + j));          \
      wasm_v128_store(o + j + 12, r3); wasm_v128_store(o + j + 8, r2); wasm_v128_store(o + j + 4, r1); wasm_v128_store(o + j, r0); \
    }                                                                                                                 \
  }

static void row_f32_desc(int op, const f32* x, int sx, const f32* y, int sy, f32* o, int len) {
  if ((!sx && !sy) || op == B_POW) { /* both broadcast (a constant row) or pow: the ascending row */
    row_f32(op, x, sx, y, sy, o, len);
    return;
  }
  int j = len;
  for (; j & 3; ) { j--; o[j] = binf(op, x[j * sx], y[j * sy]); } /* the tail above the last multiple of 4 */
  switch (op) {
    case B_ADD: ROW_VEC_DESC(B_ADD) break;
    case B_SUB: ROW_VEC_DESC(B_SUB) break;
    case B_MUL: ROW_VEC_DESC(B_MUL) break;
    case B_DIV: ROW_VEC_DESC(B_DIV) break;
    case B_MAX: ROW_VEC_DESC(B_MAX) break;
    case B_MIN: ROW_VEC_DESC(B_MIN) break;
    case C_EQ: ROW_VEC_DESC(C_EQ) break;
    case C_NE: ROW_VEC_DESC(C_NE) break;
    case C_LT: ROW_VEC_DESC(C_LT) break;
    case C_LE: ROW_VEC_DESC(C_LE) break;
    case C_GT: ROW_VEC_DESC(C_GT) break;
    case C_GE: ROW_VEC_DESC(C_GE) break;
    default: break;
  }
}

static void row_i32(int op, const i32* x, int sx, const i32* y, int sy, void* o, int len) {
  if (op >= C_EQ) {
    f32* of = (f32*)o;
    for (int j = 0; j < len; j++) of[j] = cmpi(op, x[j * sx], y[j * sy]);
  } else {
    i32* oi = (i32*)o;
    for (int j = 0; j < len; j++) oi[j] = bini(op, x[j * sx], y[j * sy]);
  }
}

/*
 * args: op, isInt, x, y, out, d0, d1, d2, d3, sx0..sx3, sy0..sy3, rowsPerTask, colsPerTask, colTasks
 * The output is [d0, d1, d2, d3] (collapsed by the caller); s* are element strides of the inputs
 * (0 on broadcast axes); sx3, sy3 are 0 or 1. Tasks: blocks of rows of the flattened [d0*d1*d2]
 * x [d3] grid, each row maybe split in column chunks.
 */
void k_binary(const i32* a, int task, int tid) {
  (void)tid;
  const int op = a[0], isInt = a[1];
  const int d1 = a[6], d2 = a[7], d3 = a[8];
  const int rowsPer = a[17], colsPer = a[18], colTasks = a[19];
  const int rt = task / colTasks, ct = task % colTasks;
  const int nrows = a[5] * d1 * d2;
  const int r0 = rt * rowsPer, r1 = MIN(nrows, r0 + rowsPer);
  const int c0 = ct * colsPer, c1 = MIN(d3, c0 + colsPer);
  const int sx = a[12], sy = a[16], len = c1 - c0;
  /* f32: the rows from the last to the first, each from its end (row_f32_desc): the output (and
   * every streamed input) is walked downwards */
  for (int k = 0; k < r1 - r0; k++) {
    const int r = isInt ? r0 + k : r1 - 1 - k;
    const int i0 = r / (d1 * d2), rem = r % (d1 * d2), i1 = rem / d2, i2 = rem % d2;
    const int ox = i0 * a[9] + i1 * a[10] + i2 * a[11] + c0 * sx;
    const int oy = i0 * a[13] + i1 * a[14] + i2 * a[15] + c0 * sy;
    const int oo = r * d3 + c0;
    if (isInt) row_i32(op, PTR(i32, a[2]) + ox, sx, PTR(i32, a[3]) + oy, sy, PTR(i32, a[4]) + oo, len);
    else row_f32_desc(op, PTR(f32, a[2]) + ox, sx, PTR(f32, a[3]) + oy, sy, PTR(f32, a[4]) + oo, len);
  }
}
