/** The CPU kernel table: one kernel per primitive (the compiler checks none is missing). */
import type { HostArray, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import { addNKernel, unaryGradKernel, adamwKernel, adamwGroupKernel, adamwStepKernel, binaryKernel, castKernel, compareKernel, fillKernel, ssmGateKernel, unaryKernel, whereKernel } from "./elementwise.ts";
import { concatKernel, padKernel, sliceKernel, transposeKernel } from "./movement.ts";
import { addMatmulKernel, foldWeightGradKernel, foldWeightKernel, linearSigmoidGateKernel, linearSigmoidGradKernel, linearSigmoidKernel, linearSoftplusKernel, matmulKernel, matmulRowsKernel, matmulRowsMaxKernel, rmsNormScoresKernel } from "./matmul.ts";
import { maxGradKernel, reduceKernel } from "./reduce.ts";
import { causalEnteredKernel, causalSelectKernel, poolInsertKernel } from "./select.ts";
import { indexedDotKernel, indexedOuterKernel, indexedSumKernel } from "./indexed.ts";
import { attnReadGradKernel, attnReadKernel, attnReadPartsKernel } from "./attention.ts";
import { selectiveScanGradKernel, selectiveScanKernel, selectiveScanStateKernel, selectiveScanWithStateKernel } from "./ssm.ts";
import {
  conv1dCausalGradWKernel, conv1dCausalGradXKernel, conv1dCausalKernel, conv1dCausalSiluKernel, crossEntropyKernel, gatherKernel,
  logsumexpKernel, oneHotKernel, rmsNormGradKernel, rmsNormGradWKernel, rmsNormKernel, scanKernel, scanReverseKernel, scatterAddKernel, softmaxGradKernel, softmaxKernel,
  maskedSoftmaxGradKernel, maskedSoftmaxKernel,
} from "./nn.ts";

/** One tensor as a kernel sees it: the live array and its shape. */
export interface CpuArg {
  data: HostArray;
  shape: readonly number[];
}
export type CpuKernel<K extends PrimName> = (ins: CpuArg[], out: CpuArg, params: PrimParams[K]) => void;

/** The multi-output kernels (Backend.runMulti). */
export const cpuMultiKernels: { [K in MultiPrimName]: (ins: CpuArg[], outs: CpuArg[], params: MultiPrimParams[K]) => void } = {
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

export const cpuKernels: { [K in PrimName]: CpuKernel<K> } = {
  fill: fillKernel,
  adamw: adamwKernel,
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
  scan: scanKernel,
  selectiveScan: selectiveScanKernel,
  selectiveScanState: selectiveScanStateKernel,
  selectiveScanGrad: selectiveScanGradKernel,
  scanReverse: scanReverseKernel,
};
