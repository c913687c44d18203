/** Kernel ids of the wasm module (kept in sync with the enum in packages/tensor/wasm/common.h). */
export const K = {
  GEMM_PACK_B: 1,
  GEMM: 2,
  UNARY: 3,
  BINARY: 4,
  REDUCE: 5,
  SOFTMAX: 6,
  LOGSUMEXP: 7,
  CROSS_ENTROPY: 8,
  SCAN: 9,
  SCAN_REVERSE: 10,
  CONV1D: 11,
  CONV1D_GRAD_X: 12,
  CONV1D_GRAD_W: 13,
  SSM_FWD: 14,
  SSM_BWD: 15,
  SSM_BWD_REDUCE: 16,
  PEAK: 17,
  SAXPY: 18,
  COPY: 19,
  GEMM_DIRECT: 20,
} as const;
export type KernelId = (typeof K)[keyof typeof K];
