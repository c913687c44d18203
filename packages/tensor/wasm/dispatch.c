/* The task loop every thread runs, and the kernel table. */
#include "common.h"

typedef void (*kernel_fn)(const i32*, int, int);

static kernel_fn kernel_of(int kid) {
  switch (kid) {
    case K_GEMM_PACK_B: return k_gemm_pack_b;
    case K_GEMM: return k_gemm;
    case K_UNARY: return k_unary;
    case K_BINARY: return k_binary;
    case K_REDUCE: return k_reduce;
    case K_SOFTMAX: return k_softmax;
    case K_LOGSUMEXP: return k_logsumexp;
    case K_CROSS_ENTROPY: return k_cross_entropy;
    case K_SCAN: return k_scan;
    case K_SCAN_REVERSE: return k_scan_reverse;
    case K_CONV1D: return k_conv1d;
    case K_CONV1D_GRAD_X: return k_conv1d_grad_x;
    case K_CONV1D_GRAD_W: return k_conv1d_grad_w;
    case K_SSM_FWD: return k_ssm_fwd;
    case K_SSM_BWD: return k_ssm_bwd;
    case K_SSM_BWD_REDUCE: return k_ssm_bwd_reduce;
    case K_PEAK: return k_peak;
    case K_SAXPY: return k_saxpy;
    case K_COPY: return k_copy;
    default: return 0;
  }
}

/*
 * Runs tasks of kernel `kid` until none is left: each thread takes the next index from *counter
 * (atomic fetch-add). Returns how many tasks this thread ran (or -1 for an unknown kernel).
 * With counter == 0 (single-threaded call) it runs every task in order.
 */
EXPORT(run_tasks) int run_tasks(int kid, const i32* args, int ntasks, i32* counter, int tid) {
  kernel_fn f = kernel_of(kid);
  if (!f) return -1;
  int done = 0;
  if (!counter) {
    for (int t = 0; t < ntasks; t++) f(args, t, tid);
    return ntasks;
  }
  for (;;) {
    int t = __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
    if (t >= ntasks) break;
    f(args, t, tid);
    done++;
  }
  return done;
}
