/**
 * The trainer's resume check and starting state (see ./trainer.ts, which re-exports
 * `firstDifference`): `prepareResume` loads the checkpoint to resume (if any) and checks it
 * against the model's config, the options and the run's log before any tensor is made (a fresh
 * run must not write over an earlier run's checkpoint by mistake); `initialState` gives the
 * parameters and AdamW state a run starts from, restored from that checkpoint or fresh.
 */
import { existsSync } from "node:fs";
import { adamw, disposeTree, random } from "@memmamba/tensor";
import { CheckpointError, type Key, type LoadedCheckpoint, loadCheckpoint, restoreState } from "./checkpoint.ts";
import { readLogForResume } from "./log.ts";
import type { runFiles } from "./trainer-files.ts";
import type { TRAIN_DEFAULTS, TrainableModel, TrainOptions } from "./trainer-types.ts";

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

/** What `prepareResume` found. */
export interface ResumePlan {
  /** The checkpoint to resume, loaded and checked (undefined: a fresh run). */
  ck: LoadedCheckpoint | undefined;
  /** The run's log as read for the check (with `resume: true`), to truncate after the checkpoint's step. */
  resumeLog: ReturnType<typeof readLogForResume> | undefined;
  /** The line to print when the checkpoint's `extra` strings differ from this run's (`TrainResult.resumeNotice`). */
  resumeNotice: string | undefined;
}

/**
 * The resume check of `train`: with `resume`, loads the checkpoint and checks it against the
 * model's config, `accum` and the run's log; without, refuses to start over an existing checkpoint
 * unless `overwrite`. Errors are `CheckpointError`s naming the file and the problem.
 */
export function prepareResume(
  model: { config: Record<string, unknown> },
  o: typeof TRAIN_DEFAULTS & TrainOptions,
  files: ReturnType<typeof runFiles>,
  label: string,
): ResumePlan {
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
  return { ck, resumeLog, resumeNotice };
}

/**
 * The parameters and AdamW state a run starts from: those of `ck` (shaped by a fresh `init`,
 * which is then freed), or, for a fresh run (`ck` undefined), `init(foldIn(rootKey, 0))` and a
 * fresh optimizer state.
 */
export function initialState<P, B>(model: TrainableModel<P, B>, rootKey: Key, ck: LoadedCheckpoint | undefined): { params: P; optState: adamw.AdamWState<P> } {
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
  return { params, optState };
}
