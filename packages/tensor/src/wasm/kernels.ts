/**
 * The wasm backend's kernel table: for each primitive, a launcher that writes the C kernel's
 * arguments and splits the work into tasks (src/wasm/*.c documents each layout), or null where the
 * TypeScript reference kernel runs on views of the shared memory instead (movement, oneHot,
 * where/cast/fill, and the odd cases a launcher declines by returning false).
 *
 * Task sizes may depend on the thread count: no result does (see wasm/common.h). The one split
 * that changes roundings — the channel blocks of the selective scan's dB/dC — depends on Di alone.
 *
 * The launchers live by group: matmul.ts (matmul, linearSigmoid), elementwise.ts (the elementwise
 * ops and the reductions), nn.ts (softmax / logsumexp / cross-entropy rows, the linear scans,
 * conv1d), indexing.ts (gather, scatterAdd, the indexed primitives) and ssm.ts (the selective
 * scan); launcher.ts holds what they share. This module re-exports their public names.
 */
import type { MultiPrimName, PrimName } from "../backend.ts";
import { linearSigmoid, matmul } from "./matmul.ts";
import { binary, compare, reduce, unary, where } from "./elementwise.ts";
import { conv1dCausal, conv1dCausalGradW, conv1dCausalGradX, crossEntropy, logsumexp, scan, scanReverse, softmax } from "./nn.ts";
import { gather, indexedDot, indexedOuter, indexedSum, scatterAdd } from "./indexing.ts";
import { selectiveScan, selectiveScanGrad, selectiveScanState, selectiveScanWithState } from "./ssm.ts";
import type { Launcher, MultiLauncher } from "./launcher.ts";

export { PARALLEL_MIN_WORK, type Launcher, type MultiLauncher, type WasmCtx } from "./launcher.ts";
export { BLAS_K_ALIGN, BLAS_KC, BLAS_PARALLEL_FLOPS, blasKChunks, GEMM_SCRATCH_BYTES } from "./matmul.ts";
export { collapse } from "./elementwise.ts";
export { SCAN_CHUNK_FLOATS } from "./nn.ts";
export { ssmBackwardChunk } from "./ssm.ts";

/** The multi-output primitives with a wasm kernel (the others run the TypeScript one on shared views). */
export const wasmMultiLaunchers: { [Kn in MultiPrimName]?: MultiLauncher<Kn> } = { selectiveScanWithState };

/** The primitives with a wasm kernel (the others run the TypeScript reference on shared views). */
export const wasmLaunchers: { [Kn in PrimName]?: Launcher<Kn> } = {
  matmul, linearSigmoid, unary, binary, compare, reduce, softmax, logsumexp, crossEntropy, scan, scanReverse,
  conv1dCausal, conv1dCausalGradX, conv1dCausalGradW, selectiveScan, selectiveScanState, selectiveScanGrad,
  gather, scatterAdd, indexedDot, indexedSum, indexedOuter, where,
};
