/*
 * where over flat operands, with the reference's results (src/cpu/elementwise.ts, whereKernel):
 * out[i] = c[i] != 0 ? a[i] : b[i], each of c, a, b the output's size or one value; the 32-bit
 * words of a and b are copied as they are. Tasks are blocks of elements.
 */
#include "common.h"

/* where: out[i] = c[i] != 0 ? a[i] : b[i] (32-bit words copied as they are), each of c, a, b full
 * size or one value (the launcher sends the broadcasting forms to the reference). A float
 * condition compares as a float (NaN is true, −0 false), an int one as an int.
 * args: c, a, b, out, n, cFull, aFull, bFull, cIsInt, perTask */
void k_where(const i32* a, int task, int tid) {
  (void)tid;
  const int n = a[4], cFull = a[5], aFull = a[6], bFull = a[7], cInt = a[8], per = a[9];
  const int i0 = task * per, i1 = MIN(n, i0 + per);
  const i32 *C = PTR(i32, a[0]), *A = PTR(i32, a[1]), *B = PTR(i32, a[2]);
  i32* O = PTR(i32, a[3]);
  const v128_t zero = wasm_i32x4_splat(0);
  const v128_t c1 = wasm_i32x4_splat(C[0]), a1 = wasm_i32x4_splat(A[0]), b1 = wasm_i32x4_splat(B[0]);
  int i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v128_t c = cFull ? wasm_v128_load(C + i) : c1;
    const v128_t m = cInt ? wasm_i32x4_ne(c, zero) : wasm_f32x4_ne(c, zero);
    wasm_v128_store(O + i, wasm_v128_bitselect(aFull ? wasm_v128_load(A + i) : a1, bFull ? wasm_v128_load(B + i) : b1, m));
  }
  for (; i < i1; i++) {
    const i32 cw = cFull ? C[i] : C[0];
    const int t = cInt ? cw != 0 : as_f32(cw) != 0.0f;
    O[i] = t ? (aFull ? A[i] : A[0]) : (bFull ? B[i] : B[0]);
  }
}
