/*
 * Shared definitions of the wasm32 kernels (built by build.sh with clang for wasm32 + SIMD128).
 *
 * Calling convention: JavaScript writes a kernel's arguments as consecutive 32-bit words (i32 or
 * f32, pointers are byte offsets into the shared memory) into an args block, then either calls
 * run_tasks(kernel, args, ntasks) (every task on the calling thread) or publishes a job on the job
 * board that every thread takes tasks from (run_job, dispatch.c). A task writes a fixed part of the
 * output and computes it the same way whichever thread runs it, so results do not depend on the
 * number of threads (each reduction's order is fixed by the task layout, not by the thread).
 *
 * Determinism: compiled with -ffp-contract=off, so every a*b+c is a rounded multiply then a
 * rounded add, as in JavaScript; the only fused operation is MADD() in the relaxed build's
 * matmul (f32x4.relaxed_madd, which the engine may or may not fuse: fixed per machine+engine).
 */
#ifndef MM_COMMON_H
#define MM_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <wasm_simd128.h>

typedef float f32;
typedef double f64;
typedef int32_t i32;
typedef uint32_t u32;

#define INLINE static inline __attribute__((always_inline))
#define EXPORT(name) __attribute__((export_name(#name)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* The per-thread scratch area of a kernel: base + tid * stride (bytes). */
INLINE void* thread_scratch(i32 base, i32 stride, int tid) { return (void*)(uintptr_t)((u32)base + (u32)stride * (u32)tid); }
#define PTR(T, x) ((T*)(uintptr_t)(u32)(x))

/* Kernel ids (kept in sync with src/wasm/kernel-ids.ts). */
enum {
  K_GEMM_PACK_B = 1,
  K_GEMM = 2,
  K_UNARY = 3,
  K_BINARY = 4,
  K_REDUCE = 5,
  K_SOFTMAX = 6,
  K_LOGSUMEXP = 7,
  K_CROSS_ENTROPY = 8,
  K_SCAN = 9,
  K_SCAN_REVERSE = 10,
  K_CONV1D = 11,
  K_CONV1D_GRAD_X = 12,
  K_CONV1D_GRAD_W = 13,
  K_SSM_FWD = 14,
  K_SSM_BWD = 15,
  K_SSM_BWD_REDUCE = 16,
  K_PEAK = 17,
  K_SAXPY = 18,
  K_COPY = 19,
  K_GEMM_DIRECT = 20,
  K_GATHER = 21,
  K_SCATTER_ADD = 22,
  K_INDEXED_DOT = 23,
  K_INDEXED_SUM = 24,
  K_INDEXED_OUTER = 25,
  K_WHERE = 26,
};

void k_gemm_pack_b(const i32* a, int task, int tid);
void k_gemm(const i32* a, int task, int tid);
void k_unary(const i32* a, int task, int tid);
void k_binary(const i32* a, int task, int tid);
void k_reduce(const i32* a, int task, int tid);
void k_softmax(const i32* a, int task, int tid);
void k_logsumexp(const i32* a, int task, int tid);
void k_cross_entropy(const i32* a, int task, int tid);
void k_scan(const i32* a, int task, int tid);
void k_scan_reverse(const i32* a, int task, int tid);
void k_conv1d(const i32* a, int task, int tid);
void k_conv1d_grad_x(const i32* a, int task, int tid);
void k_conv1d_grad_w(const i32* a, int task, int tid);
void k_ssm_fwd(const i32* a, int task, int tid);
void k_ssm_bwd(const i32* a, int task, int tid);
void k_ssm_bwd_reduce(const i32* a, int task, int tid);
void k_peak(const i32* a, int task, int tid);
void k_saxpy(const i32* a, int task, int tid);
void k_copy(const i32* a, int task, int tid);
void k_gemm_direct(const i32* a, int task, int tid);
void k_gather(const i32* a, int task, int tid);
void k_scatter_add(const i32* a, int task, int tid);
void k_indexed_dot(const i32* a, int task, int tid);
void k_indexed_sum(const i32* a, int task, int tid);
void k_indexed_outer(const i32* a, int task, int tid);
void k_where(const i32* a, int task, int tid);

INLINE f32 as_f32(i32 bits) { union { i32 i; f32 f; } u = { bits }; return u.f; }

/*
 * Touch-ahead (a software prefetch: wasm has no prefetch instruction). The forward linear scan
 * reads one word of each input TOUCH_DIST floats (64 KiB, sixteen 4 KiB pages) ahead of where it
 * works, and one word of its output as far ahead in its own columns, once per TOUCH_STEP floats (a
 * page): the hardware prefetchers do not cross 4 KiB pages, and the early touch walks the page
 * table and starts the next pages' lines sooner; for the output it starts the read-for-ownership
 * that every store to a fresh line costs (wasm has no non-temporal store) a few rows early.
 * Measured on the scan over 64 MiB arrays (2-vCPU Zen VM shared with other jobs, 2026-11-26, one
 * thread, CPU time, each variant's bytes/s over saxpy's in the same process and round, medians of
 * 21 rounds, 3 runs; Bun / Node 20 / Deno): no touch 0.58-0.64 / 0.58-0.60 / 0.57-0.58; inputs
 * touched 0.64-0.67 / 0.64-0.71 / 0.63-0.66; inputs and output 0.64-0.68 / 0.69-0.75 / 0.65-0.69.
 * On two threads (wall time, as the benchmark) no change could be told from the shared machine's
 * noise (README.md). Touching every 2 KiB, or every cache line one row ahead, was slower; 32 or
 * 64 KiB ahead made no difference. The words read are XOR-ed into a sink that touch_done stores
 * once per task, so no compiler or engine can drop the loads; no result depends on them. Inputs
 * are touched only inside their own bounds, the output only inside the columns of the sequence
 * that the touching thread's lane writes (nn.c: no other thread writes them until its chunk is done).
 */
#define TOUCH_STEP 1024
#define TOUCH_DIST 16384
/* Streams shorter than this (floats) are not worth a touch. */
#define TOUCH_MIN 16384
extern u32 touch_sink;
/* One word at p, or at last if p is beyond it (both in floats from base). */
INLINE u32 touch(const f32* base, size_t p, size_t last) {
  union { f32 f; u32 u; } w = { base[p < last ? p : last] };
  return w.u;
}
INLINE void touch_done(u32 sink) { __atomic_store_n(&touch_sink, sink, __ATOMIC_RELAXED); }

#endif
