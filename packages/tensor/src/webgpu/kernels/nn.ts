/**
 * Fused NN kernels: softmax / logsumexp / crossEntropy over the last axis (one workgroup per row,
 * workgroup trees for the max and the sum), and the row-pair kernels (rmsNorm and the softmax /
 * rmsNorm gradients). The causal depthwise conv1d kernels are in conv.ts. The row kernels are in
 * nn-row.ts, the row-pair kernels in nn-row-pair.ts; this module re-exports both.
 *
 * crossEntropy: a target outside [0, vocab) cannot throw on a GPU; its loss is NaN (the CPU
 * throws). The shape rules, which run on the host, are the same for both backends.
 */
export { crossEntropyKernel, logsumexpKernel, maskedSoftmaxKernel, rowTuning, softmaxKernel } from "./nn-row.ts";
export {
  maskedSoftmaxGradKernel, rmsNormGradKernel, rmsNormGradWKernel, rmsNormKernel, rowPairThreads, softmaxGradKernel,
} from "./nn-row-pair.ts";
