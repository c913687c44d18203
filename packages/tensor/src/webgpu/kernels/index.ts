/** The WebGPU kernel table: one kernel per primitive (the compiler checks that none is missing). */
import type { KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../../backend.ts";
import type { GpuCtx } from "../context.ts";
import { addNKernel, binaryKernel, castKernel, compareKernel, fillKernel, ssmGateKernel, unaryGradKernel, unaryKernel, whereKernel } from "./elementwise.ts";
import { gatherKernel, oneHotKernel, scatterAddKernel } from "./indexing.ts";
import { indexedDotKernel, indexedOuterKernel, indexedSumKernel } from "./indexed.ts";
import { attnReadGradKernel, attnReadKernel, attnReadPartsKernel } from "./attention.ts";
import { addMatmulKernel, linearSigmoidKernel, matmulKernel } from "./matmul.ts";
import { linearSigmoidGateKernel } from "./matmul-untiled.ts";
import { rmsNormScoresKernel } from "./norm-scores.ts";
import { linearSoftplusKernel } from "./linear-softplus.ts";
import { linearSigmoidGradKernel } from "./linear-sigmoid-grad.ts";
import { foldWeightGradKernel, foldWeightKernel } from "./fold-weight.ts";
import { matmulRowsKernel, matmulRowsMaxKernel } from "./matmul-rows.ts";
import { concatKernel, padKernel, sliceKernel, transposeKernel } from "./movement.ts";
import { conv1dCausalGradWKernel, conv1dCausalGradXKernel, conv1dCausalKernel, conv1dCausalSiluKernel } from "./conv.ts";
import {
  crossEntropyKernel, logsumexpKernel, softmaxKernel,
  rmsNormGradKernel, rmsNormGradWKernel, rmsNormKernel, softmaxGradKernel,
  maskedSoftmaxGradKernel, maskedSoftmaxKernel,
} from "./nn.ts";
import { maxGradKernel, reduceKernel } from "./reduce.ts";
import { scanKernel, scanReverseKernel } from "./scan.ts";
import { adamwGroupKernel, adamwKernel, adamwStepKernel } from "./optim.ts";
import { causalEnteredKernel, causalSelectKernel } from "./select.ts";
import { poolInsertKernel } from "./pool.ts";
import { selectiveScanGradKernel, selectiveScanKernel, selectiveScanStateKernel, selectiveScanWithStateKernel } from "./ssm.ts";

export type GpuKernel<K extends PrimName> = (ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, params: PrimParams[K]) => void;

/** The multi-output kernels (Backend.runMulti). */
export const gpuMultiKernels: { [K in MultiPrimName]: (ctx: GpuCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], params: MultiPrimParams[K]) => void } = {
  adamwStep: adamwStepKernel,
  adamwGroup: adamwGroupKernel,
  attnReadGrad: attnReadGradKernel,
  rmsNormGradW: rmsNormGradWKernel,
  selectiveScanWithState: selectiveScanWithStateKernel,
  linearSigmoidGrad: linearSigmoidGradKernel,
  foldWeightGrad: foldWeightGradKernel,
  linearSigmoidGate: linearSigmoidGateKernel,
  rmsNormScores: rmsNormScoresKernel,
  poolInsert: poolInsertKernel,
};

export const gpuKernels: { [K in PrimName]: GpuKernel<K> } = {
  fill: fillKernel,
  unary: unaryKernel,
  unaryGrad: unaryGradKernel,
  binary: binaryKernel,
  addN: addNKernel,
  compare: compareKernel,
  where: whereKernel,
  cast: castKernel,
  reduce: reduceKernel,
  maxGrad: maxGradKernel,
  matmul: matmulKernel,
  matmulRows: matmulRowsKernel,
  matmulRowsMax: matmulRowsMaxKernel,
  addMatmul: addMatmulKernel,
  foldWeight: foldWeightKernel,
  reshape: () => {
    throw new Error("internal: reshape is a view and runs no kernel");
  },
  transpose: transposeKernel,
  slice: sliceKernel,
  pad: padKernel,
  concat: concatKernel,
  gather: gatherKernel,
  scatterAdd: scatterAddKernel,
  oneHot: oneHotKernel,
  softmax: softmaxKernel,
  softmaxGrad: softmaxGradKernel,
  maskedSoftmax: maskedSoftmaxKernel,
  maskedSoftmaxGrad: maskedSoftmaxGradKernel,
  rmsNorm: rmsNormKernel,
  rmsNormGrad: rmsNormGradKernel,
  logsumexp: logsumexpKernel,
  crossEntropy: crossEntropyKernel,
  linearSigmoid: linearSigmoidKernel,
  linearSoftplus: linearSoftplusKernel,
  ssmGate: ssmGateKernel,
  conv1dCausal: conv1dCausalKernel,
  conv1dCausalSilu: conv1dCausalSiluKernel,
  conv1dCausalGradX: conv1dCausalGradXKernel,
  conv1dCausalGradW: conv1dCausalGradWKernel,
  causalSelect: causalSelectKernel,
  causalEntered: causalEnteredKernel,
  indexedDot: indexedDotKernel,
  indexedSum: indexedSumKernel,
  indexedOuter: indexedOuterKernel,
  attnRead: attnReadKernel,
  attnReadParts: attnReadPartsKernel,
  selectiveScan: selectiveScanKernel,
  selectiveScanState: selectiveScanStateKernel,
  selectiveScanGrad: selectiveScanGradKernel,
  scan: scanKernel,
  scanReverse: scanReverseKernel,
  adamw: adamwKernel,
};
