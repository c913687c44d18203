/* The task loop every thread runs, and the kernel table. */
#include "common.h"

typedef void (*kernel_fn)(const i32*, int, int);

/* Where the forward scan stores the words it touches ahead (common.h, touch): never read. */
u32 touch_sink;
/* The word the lockstep pins test (detmath.h, LOCKSTEP_PIN): always zero, never written. */
volatile i32 lockstep_flag;
/* Where a pin would store its values if lockstep_flag were set: never written. */
volatile v128_t lockstep_sink;

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
    case K_GEMM_DIRECT: return k_gemm_direct;
    case K_GATHER: return k_gather;
    case K_SCATTER_ADD: return k_scatter_add;
    case K_INDEXED_DOT: return k_indexed_dot;
    case K_INDEXED_SUM: return k_indexed_sum;
    case K_INDEXED_OUTER: return k_indexed_outer;
    case K_WHERE: return k_where;
    default: return 0;
  }
}

/* Runs every task of kernel `kid` in order on the calling thread. Returns ntasks (or -1 for an
 * unknown kernel). */
EXPORT(run_tasks) int run_tasks(int kid, const i32* args, int ntasks) {
  kernel_fn f = kernel_of(kid);
  if (!f) return -1;
  for (int t = 0; t < ntasks; t++) f(args, t, 0);
  return ntasks;
}

/*
 * The job board that threads share (written by the main thread, src/wasm/pool.ts):
 *   gen      the latest job's number (threads wait on it)
 *   ticket   (job number << 32) | next task index: a thread takes a task with a compare-and-swap
 *            that only succeeds while the ticket still names its job, so a thread that wakes late
 *            never takes (or loses) a task of a later job
 *   slots    8 job descriptors, job g in slot g & 7: a seqlock (slotGen = 0 while rewritten, g
 *            once complete), the kernel, its args, the task count, the count of tasks completed
 * The main thread publishes a job only after the previous one completed, and waits for
 * `completed == ntasks`, not for every thread: a preempted worker that took no task delays nobody.
 */
typedef struct {
  i32 slotGen, kid, args, ntasks, completed, pad[3];
} job_slot;
typedef struct {
  i32 gen, quit, failed, pad0;
  int64_t ticket;
  i32 pad1[2];
  job_slot slots[8];
} job_board;

/* Takes tasks of job g until none is left; returns how many this thread ran. */
EXPORT(run_job) int run_job(job_board* b, int g, int tid) {
  job_slot* s = &b->slots[g & 7];
  if (__atomic_load_n(&s->slotGen, __ATOMIC_SEQ_CST) != g) return 0;
  const int kid = __atomic_load_n(&s->kid, __ATOMIC_SEQ_CST);
  const i32* args = PTR(const i32, __atomic_load_n(&s->args, __ATOMIC_SEQ_CST));
  const int ntasks = __atomic_load_n(&s->ntasks, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&s->slotGen, __ATOMIC_SEQ_CST) != g) return 0;
  kernel_fn f = kernel_of(kid);
  if (!f) return -1;
  int done = 0;
  int64_t t = __atomic_load_n(&b->ticket, __ATOMIC_SEQ_CST);
  for (;;) {
    if ((i32)(t >> 32) != g || (i32)(t & 0xffffffff) >= ntasks) return done;
    if (!__atomic_compare_exchange_n(&b->ticket, &t, t + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) continue; /* t reloaded */
    f(args, (i32)(t & 0xffffffff), tid);
    done++;
    if (__atomic_add_fetch(&s->completed, 1, __ATOMIC_SEQ_CST) == ntasks) __builtin_wasm_memory_atomic_notify(&s->completed, 1);
    t = __atomic_load_n(&b->ticket, __ATOMIC_SEQ_CST);
  }
}
