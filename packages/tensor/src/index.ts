/**
 * @memmamba/tensor — a small typed tensor library with reverse-mode autodiff and CPU / WebGPU
 * backends. Knows nothing of Mamba.
 */
import "./cpu/backend.ts"; // registers the CPU backend (the default)
import "./ops/elementwise.ts";
import "./ops/reduce.ts";
import "./ops/movement.ts";
import "./ops/linalg.ts";
import "./ops/indexing.ts";
import "./ops/nn.ts";
import "./ops/ssm.ts";
import "./ops/attention.ts";

export type { AllocHint, Backend, BinaryOp, BufferHandle, CompareOp, HostArray, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams, UnaryOp } from "./backend.ts";
export type { DType } from "./dtype.ts";
export { getBackend, readCounters, registerBackend, resetCounters, setBackend, type WorkCounters } from "./engine.ts";
export { CPU_KERNELS, cpuKernelsFromEnv, describeBackend, initBackend, type BackendKind, type CpuKernels, type InitBackendOptions } from "./backends.ts";
export { bind, definePrimitive, primitive, type OutSpec, type PrimDef } from "./dispatch.ts";
export {
  broadcastShapes, dim, ShapeError, showShape, sizeOf, stridesOf,
  type Broadcast, type CheckBroadcast, type CheckMatmul, type Dim, type dimBrand, type MatmulShape, type SameDim, type Shape, type ShowShape, type Var,
} from "./shape.ts";
export { allocTensor, allocTensorGroup, disposeTree, forEachTensor, fromArray, keep, liveBuffers, Tensor, tidy, tidyAsync, type TensorTree } from "./tensor.ts";
export { flattenTree, grad, isRecording, mapTree, noGrad, valueAndGrad, type ParamTree, type ValueAndGrad } from "./autodiff.ts";
export * from "./ops/elementwise.ts";
export { max, mean, sum, sumTo } from "./ops/reduce.ts";
export { broadcastTo, concat, mT, pad, reshape, slice, sliceAxis, stack, transpose } from "./ops/movement.ts";
export { addMatmul, foldWeight, matmul, matmulRows, matmulRowsMax } from "./ops/linalg.ts";
export { causalEntered, causalSelect, gather, oneHot, scatterAdd } from "./ops/indexing.ts";
export { poolInsert, poolInsertOps, type PoolInsertResult, type PoolReplacement } from "./ops/pool.ts";
export { indexedAttention, indexedDot, indexedOuter, indexedSum, type IndexedAttention } from "./ops/attention.ts";
export { ATTN_READ_MAX_PARTS, ATTN_READ_MAX_SLOTS, ATTN_READ_PARTS_MAX_S, indexedAttentionFused, indexedAttentionParts, joinAttentionParts, type AttentionPart, type MaskedAttentionPart } from "./ops/attention-fused.ts";
export { conv1dCausal, conv1dCausalSilu, crossEntropy, linearSigmoid, linearSigmoidGate, linearSoftplus, logSoftmax, logsumexp, maskedSoftmax, rmsNormalize, rmsNormScores, scan, softmax, type GateScorer } from "./ops/nn.ts";
export { CpuBackend } from "./cpu/backend.ts";
export { selectiveScan, selectiveScanReference, ssmGate, type SelectiveScanResult } from "./ops/ssm.ts";
/** Counter-based, splittable PRNG keys (Philox) and the distributions drawn from them. */
export * as random from "./random/random.ts";
/** Parameter initialisers (normal, truncated normal, Xavier, Kaiming, PyTorch's nn.Linear default). */
export * as init from "./init.ts";
/** The AdamW optimizer over parameter trees (decoupled weight decay, as torch.optim.AdamW). */
export * as adamw from "./optim/adamw.ts";
/** Learning-rate schedules: linear warmup, warmup then cosine decay. */
export * as schedule from "./optim/schedule.ts";
export { clipByGlobalNorm, clipScale, flatGradients, globalNorm, isFiniteTree, type ClipOptions } from "./optim/clip.ts";
export { GradAccumulator } from "./optim/accumulate.ts";
export type { GradTree } from "./optim/adamw.ts";
export * from "./io/safetensors.ts";
export { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./io/half.ts";
