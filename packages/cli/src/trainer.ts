/**
 * A generic training loop: AdamW with gradient accumulation and clipping, NaN/Inf step skipping,
 * atomic periodic checkpoints, exact resume, a JSONL log, an SVG loss plot and a progress bar.
 *
 *   const result = await train(model, data, { steps: 1000, out: "runs/tiny" });
 *
 * The model is anything with `init(key) → params`, `loss(params, batch, key) → scalar tensor`
 * and a JSON `config` (see `TrainableModel`; ./adapters.ts wraps a language model `lm`). The data
 * is a `BatchSource`: micro-batch i must be a pure function of i (and of the key the trainer gives
 * a source factory), which is what makes resume exact.
 *
 * Defaults are the paper's: AdamW lr 1e-4, weight decay 0.1, β = (0.9, 0.999), eps 1e-8,
 * constant learning rate, gradient accumulation 4, clipping at global norm 1.0, seed 123.
 *
 * Keys. The seed gives the root key R; parameters are initialised from foldIn(R, 0), a source
 * factory gets foldIn(R, 1), and micro-batch i's loss gets foldIn(foldIn(R, 2), i) (for dropout
 * or any sampling inside the loss). The checkpoint stores R, so a resumed run uses the same keys
 * whatever `--seed` says.
 *
 * Step t (1-based) uses micro-batches (t − 1)·accum … t·accum − 1, averages their gradients,
 * clips, and applies one AdamW update. A step whose loss or gradient norm is NaN or ±Inf is
 * skipped: no update, the optimizer state untouched, the data position still advances (so the
 * batches of later steps do not depend on which steps were skipped), and it is reported on the
 * progress display and in the log (`skipped: true`, `reason`). After `maxBadSteps` consecutive
 * skipped steps training stops with status "diverged" WITHOUT writing a checkpoint, so the last
 * good one stays on disk.
 *
 * Files in `out` (a directory): checkpoint.safetensors (./checkpoint.ts), train.jsonl (one record
 * per step), loss.svg (redrawn at every checkpoint and at the end). A fresh run (not a resume)
 * starts with an empty train.jsonl and no loss.svg, whatever an earlier run left there, so neither
 * shows steps this run did not take; an earlier run's checkpoint (`overwrite`) stays until this
 * run's first save replaces it (a fresh run of 0 steps saves its initial state), and the other
 * files in `out` are not the trainer's and are left alone.
 *
 * Exactness. On the CPU backend every kernel is deterministic, the checkpoint holds the F32
 * weights, both Adam moments, Adam's step, the step, the root key and the data position, so a run
 * resumed from step k produces the same losses, bit for bit, as an uninterrupted run — also
 * after the process was killed during a save (the previous checkpoint is intact; see
 * writeFileAtomic).
 */
import { join } from "node:path";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import {
  adamw, clipScale, disposeTree, flatGradients, GradAccumulator, random, reshape, stack, tidy, valueAndGrad, type Tensor,
} from "@memmamba/tensor";
import {
  type AtomicWriteOptions, CheckpointError, loadCheckpoint, restoreState, saveCheckpoint, type WeightDType,
} from "./checkpoint.ts";
import { JsonlLogger, readJsonl, readLogForResume, type LogRecord } from "./log.ts";
import { linePlot, writeSvg, type Point } from "./plot.ts";
import { Progress, type ProgressStream } from "./progress.ts";

import type { Key } from "./checkpoint.ts";
export type { Key };

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

/** The three files of a run directory. */
export function runFiles(out: string): { checkpoint: string; log: string; plot: string } {
  return { checkpoint: join(out, "checkpoint.safetensors"), log: join(out, "train.jsonl"), plot: join(out, "loss.svg") };
}

/** The first place where two JSON values differ ("path: A in the checkpoint, B now"), or undefined when equal. */
export function firstDifference(a: unknown, b: unknown, path = ""): string | undefined {
  if (Object.is(a, b)) return undefined;
  if (a && b && typeof a === "object" && typeof b === "object" && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return `${path || "(root)"}: ${JSON.stringify(a)} in the checkpoint, ${JSON.stringify(b)} now`;
}

/** Writes loss.svg from the log: the per-step loss and its moving average. */
export function plotLoss(logPath: string, plotPath: string, title = "training loss"): void {
  const recs = readJsonl(logPath).filter((r) => typeof r.step === "number");
  const pts: Point[] = recs.map((r) => [r.step as number, typeof r.loss === "number" && !r.skipped ? (r.loss as number) : NaN]);
  const series = [{ name: "loss", points: pts, color: "#9ecae1" }];
  const finite = pts.filter(([, y]) => Number.isFinite(y));
  if (finite.length >= 20) {
    const w = Math.max(5, Math.round(finite.length / 50));
    const avg: Point[] = [];
    let s = 0;
    for (let i = 0; i < finite.length; i++) {
      s += finite[i][1];
      if (i >= w) s -= finite[i - w][1];
      if (i >= w - 1) avg.push([finite[i][0], s / w]);
    }
    series.push({ name: `moving average (${w} steps)`, points: avg, color: "#08519c" });
  }
  writeSvg(plotPath, linePlot(series, { title, xLabel: "step", yLabel: "loss" }));
}

/** A batch source, or a factory given the run's data key. */
export type DataArg<B> = BatchSource<B> | ((key: Key) => BatchSource<B>);

/** Trains `model` on `data`; see the module note. */
export async function train<P, B>(model: TrainableModel<P, B>, data: DataArg<B>, opts: TrainOptions): Promise<TrainResult<P>> {
  const o = { ...TRAIN_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as typeof TRAIN_DEFAULTS & TrainOptions;
  if (!Number.isSafeInteger(o.steps) || o.steps < 0) throw new RangeError(`train: steps must be a non-negative integer, got ${o.steps}`);
  if (!Number.isSafeInteger(o.accum) || o.accum < 1) throw new RangeError(`train: accum must be a positive integer, got ${o.accum}`);
  if (!Number.isSafeInteger(o.maxBadSteps) || o.maxBadSteps < 1) throw new RangeError(`train: maxBadSteps must be a positive integer, got ${o.maxBadSteps}`);
  const every = o.checkpointEvery ?? Math.max(1, Math.round(o.steps / 10));
  if (!Number.isSafeInteger(every) || every < 1) throw new RangeError(`train: checkpointEvery must be a positive integer, got ${every}`);
  const files = runFiles(o.out);
  const label = o.label ?? "train";

  // ---- state: fresh or from a checkpoint ----
  const resumePath = typeof o.resume === "string" ? o.resume : o.resume ? files.checkpoint : undefined;
  if (resumePath === undefined && !o.overwrite && existsSync(files.checkpoint)) {
    throw new CheckpointError(files.checkpoint, "a checkpoint is already here: resume it (--resume), or choose another --out, or pass --overwrite to start afresh");
  }
  // everything that can fail on bad input is checked before any tensor is made
  const ck = resumePath !== undefined ? loadCheckpoint(resumePath) : undefined;
  // a resumed run reads its log once: with --resume, to check it against the checkpoint (below) and
  // then to drop what came after the checkpoint; resuming a given file, only for the latter
  let resumeLog: ReturnType<typeof readLogForResume> | undefined;
  if (ck) {
    const diff = firstDifference(ck.config, model.config);
    if (diff) throw new CheckpointError(ck.path, `was written for another model config (${diff})`);
    if (!ck.optim) throw new CheckpointError(ck.path, "holds no optimizer state, so training cannot resume from it exactly");
    const expectedPos = ck.step * o.accum;
    if (ck.dataPosition !== expectedPos) {
      throw new CheckpointError(ck.path, `data position ${JSON.stringify(ck.dataPosition)} does not match step ${ck.step} × accum ${o.accum} = ${expectedPos} (was it written with another --accum?)`);
    }
    // (a half-precision checkpoint resumes too, just not bit-exactly: its weights were rounded)
    // the log is written a step at a time and the checkpoint after its steps, so the run's own log
    // reaches the checkpoint's step; one that stops short is another run's (an --overwrite run
    // that ended before its first save leaves the earlier run's checkpoint beside its new log)
    if (o.resume === true) resumeLog = readLogForResume(files.log);
    const logged = resumeLog?.lastStep;
    if (logged !== undefined && logged < ck.step) {
      throw new CheckpointError(ck.path, `holds step ${ck.step}, but ${files.log} ends at step ${logged}: they are not one run's ` +
        `(was an --overwrite run stopped before its first save?). Start afresh with --overwrite, or move ${files.log} away to resume the checkpoint with a new log`);
    }
  }
  const changed = ck ? Object.keys(o.extra ?? {}).filter((k) => ck.extra[k] !== undefined && ck.extra[k] !== o.extra![k]) : [];
  const resumeNotice = changed.length === 0 ? undefined
    : `${label}: note: resuming ${ck!.path}, written with ${changed.map((k) => `${k} ${ck!.extra[k]}`).join(", ")}, ` +
      `with ${changed.map((k) => `${k} ${o.extra![k]}`).join(", ")}: the batches from here on are not an uninterrupted run's`;
  mkdirSync(o.out, { recursive: true }); // only once the checkpoint to resume (if any) has been read and checked
  const rootKey: Key = ck ? ck.key : random.key(o.seed);
  const source = typeof data === "function" ? data(random.foldIn(rootKey, 1)) : data;
  const startStep = ck ? ck.step : 0;
  let checkpointStep: number | undefined = ck?.step;
  let params: P;
  let optState: adamw.AdamWState<P>;
  if (ck) {
    const template = model.init(random.foldIn(rootKey, 0));
    let restored;
    try {
      restored = restoreState(ck, template);
    } finally {
      disposeTree(template);
    }
    params = restored.params;
    optState = { step: restored.optim!.step, m: restored.optim!.m, v: restored.optim!.v };
  } else {
    params = model.init(random.foldIn(rootKey, 0));
    optState = adamw.init(params);
  }
  if (ck) (resumeLog ?? readLogForResume(files.log)).truncateFromStep(startStep); // a resumed run drops what came after its checkpoint
  else {
    // a fresh run starts an empty log (not read: an earlier run's bad line is no error now) and has
    // no loss plot until its first save draws one: an earlier run's would pass for this one's
    writeFileSync(files.log, "");
    rmSync(files.plot, { force: true });
  }
  const lossKeyBase = random.foldIn(rootKey, 2);

  const log = new JsonlLogger(files.log);
  const progress = o.progress === false
    ? undefined
    : new Progress({ total: o.steps, startStep, label, stream: o.progress?.stream, tty: o.progress?.tty, plainEverySec: o.progress?.plainEverySec });
  if (resumeNotice) progress?.log(resumeNotice);
  const vg = valueAndGrad((p: P, b: B, k: Key) => model.loss(p, b, k));
  const records: StepRecord[] = [];
  const skipped: number[] = [];
  let bad = 0;
  let status: "done" | "diverged" | "timeout" = "done";
  let lastIterMs = 0; // the previous step's wall time, evaluation and checkpoint included (deadline)
  let step = startStep;

  const save = async (s: number) => {
    await saveCheckpoint(files.checkpoint, {
      params,
      optim: { step: optState.step, m: optState.m, v: optState.v },
      step: s,
      key: rootKey,
      dataPosition: s * o.accum,
      config: model.config,
      extra: o.extra,
    }, { ...o.saveOptions, dtype: o.dtype });
    checkpointStep = s;
    if (s > 0) plotLoss(files.log, files.plot, `${label}: loss`); // (step 0: no loss yet, so no plot)
  };

  const tStart = performance.now();
  const lrOption: number | ((optimizerStep: number) => number) = opts.lr ?? TRAIN_DEFAULTS.lr;
  const showExtras = (s: number, extra: Record<string, number>) => {
    const fields = Object.entries(extra).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(3)}`).join(" | ");
    progress?.log(`${label} step ${s}/${o.steps}: ${fields} | ${((performance.now() - tStart) / 1000).toFixed(0)}s`);
  };
  let initial: Record<string, number> | undefined;
  try {
    if (startStep === 0 && o.onStart) {
      initial = (await o.onStart(params)) ?? undefined;
      if (initial && o.logExtras && Object.keys(initial).length > 0) showExtras(0, initial);
    }
    for (step = startStep + 1; step <= o.steps; step++) {
      const t0 = performance.now();
      if (o.deadline !== undefined && Date.now() + lastIterMs > o.deadline) {
        status = "timeout";
        step--; // the last step taken
        break;
      }
      const acc = new GradAccumulator<P>();
      let lossSum = 0;
      let gradNorm = NaN;
      let tokens = 0;
      let reason: string | undefined;
      const lr = typeof lrOption === "function" ? lrOption(optState.step) : lrOption;
      // The whole step (every micro-batch, the clip and the update) is recorded before anything is
      // read back, and then the losses and the norm come back in one readback: waiting on the loss
      // before recording the update left the GPU idle for half of each step. The update keeps the
      // old params and state until the numbers say whether to keep it (a NaN step changes nothing).
      const losses: Tensor[] = [];
      let norm: Tensor | undefined;
      let next: { params: P; state: adamw.AdamWState<P> } | undefined;
      try {
        for (let j = 0; j < o.accum; j++) {
          const index = (step - 1) * o.accum + j;
          const batch = source.batch(index);
          try {
            tokens += source.tokens?.(batch) ?? 0;
            const { value, grads } = vg(params, batch, random.foldIn(lossKeyBase, index));
            losses.push(value);
            acc.add(grads as adamw.GradTree<P>);
            disposeTree(grads);
          } finally {
            source.dispose?.(batch);
          }
        }
        const avg = acc.average();
        const doClip = o.clip > 0 && Number.isFinite(o.clip);
        // the clip's scale goes into the fused update (no clipped copy of every gradient); the
        // gradients are concatenated once, for the norm and for the grouped update
        const flat = flatGradients(avg);
        let clip: { norm: Tensor; scale: Tensor };
        try {
          clip = clipScale(avg, doClip ? o.clip : Number.MAX_VALUE, { flat });
        } catch (e) {
          disposeTree([flat, avg]);
          throw e;
        }
        norm = clip.norm;
        try {
          next = adamw.update(params, avg as adamw.GradTree<P>, optState, {
            lr, weightDecay: o.weightDecay, beta1: o.beta1, beta2: o.beta2, eps: o.eps, keepOld: true, gradScale: clip.scale, flatGrads: flat,
          });
        } finally {
          disposeTree([clip.scale, flat, avg]);
        }
        const read = tidy(() => stack([...losses.map((l) => reshape(l, [])), reshape(clip.norm, [])]));
        const values = await read.data();
        read.dispose();
        const lvs = Array.from(values.subarray(0, o.accum));
        gradNorm = values[o.accum];
        lossSum = lvs.reduce((a, b) => a + b, 0);
        const badLoss = lvs.findIndex((v) => !Number.isFinite(v));
        if (badLoss >= 0) {
          reason = `loss is ${lvs[badLoss]} (micro-batch ${badLoss + 1}/${o.accum})`;
          gradNorm = NaN; // the norm of a step with a non-finite loss means nothing
        } else if (!Number.isFinite(gradNorm)) reason = `gradient norm is ${gradNorm}`;
        if (reason === undefined) {
          adamw.disposeReplaced({ params, state: optState }, next);
          ({ params, state: optState } = next);
        } else adamw.disposeReplaced(next, { params, state: optState });
        next = undefined;
      } catch (e) {
        if (next) adamw.disposeReplaced(next, { params, state: optState }); // a failed readback: keep the old params
        throw e;
      } finally {
        acc.reset(); // frees the running gradient sum, also when a loss throws
        for (const l of losses) l.dispose();
        norm?.dispose();
      }
      const loss = lossSum / o.accum;

      const rec: StepRecord = { step, loss, gradNorm, lr, tokens, skipped: reason !== undefined, ms: performance.now() - t0 };
      if (reason !== undefined) {
        rec.reason = reason;
        skipped.push(step);
        bad++;
        progress?.log(`${label}: step ${step} skipped: ${reason} (${bad} in a row; stopping at ${o.maxBadSteps})`);
      } else bad = 0;
      const extra = (await o.onStep?.(rec, params)) ?? undefined;
      if (extra) Object.assign(rec, extra);
      if (extra && o.logExtras && Object.keys(extra).length > 0) showExtras(step, extra);
      records.push(rec);
      log.write(rec as LogRecord);
      progress?.update(step, {
        loss: reason === undefined ? loss : undefined,
        tokens,
        extra: extra ? Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, Number.isInteger(v) ? v : v.toFixed(4)])) : undefined,
      });
      if (bad >= o.maxBadSteps) {
        status = "diverged";
        break;
      }
      if (bad === 0 && (step % every === 0 || step === o.steps)) await save(step);
      lastIterMs = performance.now() - t0;
    }
    if (status !== "diverged") {
      step = Math.max(startStep, Math.min(step, o.steps));
      // the last steps were skipped (params untouched, so still good): save where the run ends; a
      // fresh run of 0 steps saves its initial state, the checkpoint of where it ends (with
      // overwrite, an earlier run's would otherwise stay beside this run's empty log)
      if (checkpointStep !== step && (step > startStep || (!ck && status === "done"))) await save(step);
    } else plotLoss(files.log, files.plot, `${label}: loss`);
  } catch (e) {
    disposeTree([params, optState.m, optState.v]);
    throw e;
  } finally {
    log.close();
  }
  disposeTree([optState.m, optState.v]);
  const kept = checkpointStep !== undefined ? `${files.checkpoint} (step ${checkpointStep})`
    : existsSync(files.checkpoint) ? `none written (the ${files.checkpoint} there is an earlier run's)` : "none written";
  const summary = status === "diverged" ? `stopped after ${o.maxBadSteps} consecutive non-finite steps at step ${step}; last good checkpoint: ${kept}`
    : status === "timeout" ? `time budget reached: stopped at step ${step} of ${o.steps}; checkpoint: ${kept} (resume it to continue)`
    : `done at step ${step}; checkpoint: ${kept}`;
  progress?.finish(`${label}: ${summary}`);
  return { status, step, records, skipped, checkpoint: files.checkpoint, checkpointStep, params, initial, resumeNotice, summary };
}
