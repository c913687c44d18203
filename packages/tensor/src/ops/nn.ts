/**
 * Fused primitives for neural networks, each with its own VJP, in one import: softmax and
 * logsumexp over the last axis, cross-entropy with integer targets (softmax.ts), RMSNorm
 * (rms-norm.ts), linear layers fused with their activation and the gated scorers
 * (linear-fused.ts), causal depthwise conv1d (conv.ts), and the selective scan
 * h_t = a_t ⊙ h_{t-1} + b_t (scan.ts). Importing this module defines all their primitives.
 */
export { crossEntropy, logSoftmax, logsumexp, maskedSoftmax, softmax } from "./softmax.ts";
export { rmsNormalize } from "./rms-norm.ts";
export { linearSigmoid, linearSigmoidGate, linearSoftplus, rmsNormScores, type GateScorer } from "./linear-fused.ts";
export { conv1dCausal, conv1dCausalSilu } from "./conv.ts";
export { scan } from "./scan.ts";
