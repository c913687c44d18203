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
 *
 * This module is the loop (`train`); its parts, re-exported from here: ./trainer-types.ts (what
 * it trains on what data, its options, a step's record, its result, TRAIN_DEFAULTS),
 * ./trainer-files.ts (the run directory's files: runFiles, plotLoss) and ./trainer-resume.ts (the
 * resume check before any tensor is made, the starting state, firstDifference).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import {
  adamw, clipScale, disposeTree, flatGradients, GradAccumulator, random, reshape, stack, tidy, valueAndGrad, type Tensor,
} from "@memmamba/tensor";
import { saveCheckpoint } from "./checkpoint.ts";
import { JsonlLogger, readLogForResume, type LogRecord } from "./log.ts";
import { Progress } from "./progress.ts";
import { plotLoss, runFiles } from "./trainer-files.ts";
import { initialState, prepareResume } from "./trainer-resume.ts";
import { type DataArg, type StepRecord, type TrainableModel, TRAIN_DEFAULTS, type TrainOptions, type TrainResult } from "./trainer-types.ts";

import type { Key } from "./checkpoint.ts";
export type { Key };
export {
  TRAIN_DEFAULTS, type BatchSource, type DataArg, type StepRecord, type TrainableModel, type TrainOptions, type TrainResult,
} from "./trainer-types.ts";
export { plotLoss, runFiles } from "./trainer-files.ts";
export { firstDifference } from "./trainer-resume.ts";

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

  // ---- state: fresh or from a checkpoint (the resume check: ./trainer-resume.ts) ----
  const { ck, resumeLog, resumeNotice } = prepareResume(model, o, files, label);
  mkdirSync(o.out, { recursive: true }); // only once the checkpoint to resume (if any) has been read and checked
  const rootKey: Key = ck ? ck.key : random.key(o.seed);
  const source = typeof data === "function" ? data(random.foldIn(rootKey, 1)) : data;
  const startStep = ck ? ck.step : 0;
  let checkpointStep: number | undefined = ck?.step;
  let { params, optState } = initialState(model, rootKey, ck);
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
