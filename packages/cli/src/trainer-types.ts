/**
 * The trainer's types and defaults (./trainer.ts, which re-exports all of this): what it trains
 * (`TrainableModel`), where the micro-batches come from (`BatchSource`, `DataArg`), its options
 * (`TrainOptions`), a step's log record (`StepRecord`), what `train` returns (`TrainResult`) and
 * the paper's defaults (`TRAIN_DEFAULTS`).
 */
import type { Tensor } from "@memmamba/tensor";
import type { AtomicWriteOptions, Key, WeightDType } from "./checkpoint.ts";
import type { ProgressStream } from "./progress.ts";

/** What the trainer trains. */
export interface TrainableModel<P, B> {
  /** Fresh parameters (a tree of tensors) from a key. */
  init(key: Key): P;
  /** The mean loss of a micro-batch: a scalar tensor. `key` is for randomness inside the loss. */
  loss(params: P, batch: B, key: Key): Tensor;
  /** JSON-serialisable description of the model, stored in checkpoints and checked on resume. */
  config: Record<string, unknown>;
}

/** Where micro-batches come from. */
export interface BatchSource<B> {
  /** Micro-batch number `index` (0, 1, 2, ...): a pure function of the index. */
  batch(index: number): B;
  /** Tokens in a batch (for tokens/s); default 0. */
  tokens?(batch: B): number;
  /** Frees a batch after use (its tensors, if any). */
  dispose?(batch: B): void;
}

/** Options of `train`. */
export interface TrainOptions {
  /** Total optimizer steps (a resumed run continues up to this). */
  steps: number;
  /** Output directory: checkpoint.safetensors, train.jsonl, loss.svg. */
  out: string;
  /**
   * AdamW learning rate: a number (constant, the paper's way) or a schedule of the optimizer's
   * step count (the updates already applied, which the checkpoint keeps: resume stays exact).
   */
  lr?: number | ((optimizerStep: number) => number);
  /**
   * Print a line above the progress bar with each step's extra fields whenever `onStep` returns
   * some (evaluations), so their history stays on screen (default false).
   */
  logExtras?: boolean;
  /** AdamW's decoupled weight decay (default TRAIN_DEFAULTS.weightDecay). */
  weightDecay?: number;
  /** AdamW's β1 (default 0.9). */
  beta1?: number;
  /** AdamW's β2 (default 0.999). */
  beta2?: number;
  /** AdamW's ε (default 1e-8). */
  eps?: number;
  /** Micro-batches per step (default 4). */
  accum?: number;
  /** Global-norm clipping threshold (default 1.0; 0 or Infinity: no clipping). */
  clip?: number;
  /** Seed of the run's PRNG key (default TRAIN_DEFAULTS.seed). */
  seed?: number;
  /** Steps between checkpoints (default: every max(1, round(steps / 10)) steps); the last step always saves. */
  checkpointEvery?: number;
  /** Resume from out/checkpoint.safetensors (true) or from a given checkpoint file. */
  resume?: boolean | string;
  /**
   * Start afresh even though out/checkpoint.safetensors exists (default false: that is an error, so
   * nothing is lost by mistake). The log and the plot start afresh at once (as in any fresh run);
   * the checkpoint is replaced at this run's first save.
   */
  overwrite?: boolean;
  /** Stop after this many consecutive skipped (NaN/Inf) steps (default 5). */
  maxBadSteps?: number;
  /** Weight storage type in checkpoints (default F32, needed for bit-exact resume). */
  dtype?: WeightDType;
  /** Progress display: false for none; a stream (default stderr); `tty` forces the mode. */
  progress?: false | { stream?: ProgressStream; tty?: boolean; plainEverySec?: number };
  /**
   * Called after every step with its record; may return extra fields (e.g. an accuracy) to log
   * and show. Runs before the step's checkpoint.
   */
  onStep?: (record: StepRecord, params: unknown) => Promise<Record<string, number> | void> | Record<string, number> | void;
  /**
   * Called once before the first step of a fresh run (not on resume) with the initial parameters;
   * what it returns (e.g. the untrained model's accuracy) is shown as a "step 0" line when
   * `logExtras` is on and returned as `TrainResult.initial` (it is not a step, so not in the log).
   */
  onStart?: (params: unknown) => Promise<Record<string, number> | void> | Record<string, number> | void;
  /** Passed to the checkpoint writer (tests use onChunk to crash mid-save). */
  saveOptions?: AtomicWriteOptions;
  /** Extra strings stored in the checkpoint (x.<name>). */
  extra?: Record<string, string>;
  /** Label of the progress display and log lines (default "train"). */
  label?: string;
  /**
   * Wall-clock deadline (a `Date.now()` value in ms). Before each step the trainer predicts the
   * step's end from the previous one's duration (evaluation and checkpoint included); if that is
   * past the deadline it stops there, at a step boundary, writes the checkpoint and returns status
   * "timeout", so a long run can span several time-limited jobs joined by `resume`.
   */
  deadline?: number;
}

/** One line of train.jsonl: what a step did (evaluation steps add their own fields). */
export interface StepRecord {
  /** The step number (1-based). */
  step: number;
  /** Mean micro-batch loss (NaN/Inf when that is why the step was skipped). */
  loss: number;
  /** Global gradient norm before clipping (NaN when not computed). */
  gradNorm: number;
  /** The learning rate this step used (a schedule's value at the step). */
  lr: number;
  /** Tokens this step trained on. */
  tokens: number;
  /** True when the update was skipped (a non-finite loss or gradient). */
  skipped: boolean;
  /** Why the step was skipped. */
  reason?: string;
  /** Wall time of the step in milliseconds. */
  ms: number;
  /** Fields an `onStep` callback added (evaluations). */
  [extra: string]: unknown;
}

/** What `train` returns. */
export interface TrainResult<P = unknown> {
  /** "timeout": stopped at `deadline` before `steps` (the checkpoint holds the last step; resume it). */
  status: "done" | "diverged" | "timeout";
  /** Last step taken. */
  step: number;
  /** Records of the steps this call ran. */
  records: StepRecord[];
  /** Steps that were skipped (in this call). */
  skipped: number[];
  /** The checkpoint on disk (the last good one). */
  checkpoint: string;
  /** What `onStart` returned (a fresh run only). */
  initial?: Record<string, number>;
  /**
   * On resume, when the checkpoint's `extra` strings differ from this call's (another task or
   * sequence length, say): the line printed about it. The run goes on (a curriculum may mean it),
   * but its batches are no longer those of an uninterrupted run.
   */
  resumeNotice?: string;
  /** The step that checkpoint holds (undefined if none was ever written). */
  checkpointStep: number | undefined;
  /**
   * How the run ended and which checkpoint is on disk, as the trainer's last line on its progress
   * display says it (without the label): "stopped after 5 consecutive non-finite steps at step 7;
   * last good checkpoint: none written (the runs/x/checkpoint.safetensors there is an earlier run's)".
   */
  summary: string;
  /** Final parameters (owned by the caller: disposeTree when done). */
  params: P;
}

/** The trainer's defaults (those of the paper's runs where it gives them). */
export const TRAIN_DEFAULTS: Readonly<{
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  accum: number;
  clip: number;
  seed: number;
  maxBadSteps: number;
}> = Object.freeze({
  lr: 1e-4,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  accum: 4,
  clip: 1.0,
  seed: 123,
  maxBadSteps: 5,
});

/** A batch source, or a factory given the run's data key. */
export type DataArg<B> = BatchSource<B> | ((key: Key) => BatchSource<B>);
