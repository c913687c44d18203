/**
 * Glue between the trainer's small interfaces and the library: a language model as a
 * `TrainableModel`, and host token batches (text windows, passkey samples) as a `BatchSource`.
 *
 *   import { lm, preset } from "@memmamba/memmamba";
 *   const config = preset("tiny");
 *   const model = lmTrainable(lm, config);
 *   const data = (key) => tokenSource((i) => sampler.batch(i, 8));    // WindowSampler(docs, L, key)
 *   await train(model, data, { steps: 1000, out: "runs/x" });
 *
 * A batch with a `mask` (passkey training: 1 on the answer digits) is scored by the masked mean
 * Σ mask·CE / Σ mask, computed from `lm.apply(params, tokens).logits`; without a mask the model's
 * own `lm.loss(params, tokens, targets)` is used.
 */
import { crossEntropy, disposeTree, div, fromArray, mul, sum, type Tensor, tidy } from "@memmamba/tensor";
import type { BatchSource, Key, TrainableModel } from "./trainer.ts";

/** What the trainer needs of a language model (the shape of `lm` in @memmamba/memmamba). */
export interface LanguageModel<P, C> {
  /** Fresh parameters for `config`. */
  init(key: Key, config: C): P;
  /** Mean next-token cross-entropy of tokens [B, L] i32 against targets [B, L] i32. */
  loss(params: P, tokens: Tensor, targets: Tensor, opts?: { key?: Key }): Tensor;
  /** Logits [B, L, V] (needed for masked losses). */
  apply?(params: P, tokens: Tensor, opts?: { key?: Key }): { logits: Tensor };
}

/** A token batch on the device. */
export interface LmBatch {
  /** Input token ids i32 [B, L]. */
  tokens: Tensor;
  /** Target token ids i32 [B, L]. */
  targets: Tensor;
  /** [B, L] f32 weights of each target (optional). */
  mask?: Tensor;
  /** Tokens in the batch (B · L). */
  count: number;
}

/** A host batch: row-major [batch, seqLen] token ids and an optional target mask. */
export interface HostTokenBatch {
  /** Input token ids. */
  inputs: Int32Array;
  /** Target token ids. */
  targets: Int32Array;
  /** Per-target loss weights. */
  mask?: Float32Array;
  /** Rows. */
  batch: number;
  /** Tokens per row. */
  seqLen: number;
}

/**
 * A language model as a trainable model. `config` must be JSON (it is stored in checkpoints and
 * compared on resume). The loss key is passed as `opts.key` (for dropout-like randomness).
 */
export function lmTrainable<P, C extends object>(lm: LanguageModel<P, C>, config: C): TrainableModel<P, LmBatch> {
  return {
    config: JSON.parse(JSON.stringify(config)) as Record<string, unknown>,
    init: (key) => lm.init(key, config),
    loss: (params, b, key) => {
      if (!b.mask) return lm.loss(params, b.tokens, b.targets, { key });
      if (!lm.apply) throw new Error("lmTrainable: a masked batch needs lm.apply (logits)");
      const mask = b.mask;
      return tidy(() => {
        const ce = crossEntropy(lm.apply!(params, b.tokens, { key }).logits, b.targets);
        return div(sum(mul(ce, mask)), sum(mask));
      });
    },
  };
}

/** Host batches (a pure function of the micro-batch index) uploaded as tensors, freed after use. */
export function tokenSource(make: (index: number) => HostTokenBatch): BatchSource<LmBatch> {
  return {
    batch(index) {
      const h = make(index);
      const shape = [h.batch, h.seqLen];
      return {
        tokens: fromArray(h.inputs, shape, "i32"),
        targets: fromArray(h.targets, shape, "i32"),
        mask: h.mask ? fromArray(h.mask, shape) : undefined,
        count: h.batch * h.seqLen,
      };
    },
    tokens: (b) => b.count,
    dispose: (b) => disposeTree([b.tokens, b.targets, b.mask]),
  };
}
