/**
 * The runs of `ablate`: the distinct configs of the chosen suites (planRuns), and one run of a
 * config with a seed: training it (fresh, or resumed from its checkpoint) and then the evaluation
 * phases it lacks, each written to its phase file (doRun; see ./ablate.ts's module note).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { disposeTree, random, schedule } from "@memmamba/tensor";
import { lm, preset, WindowSampler, type LMParams, type ModelConfig, type PresetName } from "@memmamba/memmamba";
import { UsageError } from "../args.ts";
import { lmTrainable, tokenSource } from "../adapters.ts";
import { configKey, type Phase, suitesOf, type SuiteSpec } from "../ablation.ts";
import { loadModel } from "../weights.ts";
import { runFiles, train, type TrainOptions } from "../trainer.ts";
import { writeJson } from "./common.ts";
import { type Context, runDir } from "./ablate-args.ts";
import { evalMetrics, evalPpl, evalVal, VAL_BATCHES } from "./ablate-eval.ts";
import {
  firstDiff, MetricsFileSchema, PplFileSchema, readPhase, sameJson, type TrainDone, TrainDoneSchema, type TrainSettings, TrainSettingsSchema,
  ValFileSchema,
} from "./ablate-phases.ts";

/** One training run per distinct config (and seed). */
export interface Run {
  /** Directory name under runs/. */
  id: string;
  config: ModelConfig;
  phases: Set<Phase>;
}

/**
 * The distinct runs of the chosen suites: each variant's resolved config, deduplicated (the first
 * variant of a config names the run, in the fixed order of all suites, so names do not depend on
 * which suites are chosen).
 */
export function planRuns(chosen: SuiteSpec[], presetName: PresetName): { runs: Run[]; runOf: Map<string, string>; reference: string } {
  const byKey = new Map<string, Run>();
  const runOf = new Map<string, string>(); // variant id → run id
  for (const suite of suitesOf("all")) {
    for (const v of suite.variants) {
      const config = preset(presetName, v.overrides);
      const key = configKey(config);
      let run = byKey.get(key);
      if (!run) byKey.set(key, (run = { id: v.id, config, phases: new Set() }));
      runOf.set(v.id, run.id);
    }
  }
  const runs: Run[] = [];
  for (const suite of chosen) {
    for (const v of suite.variants) {
      const run = [...byKey.values()].find((r) => r.id === runOf.get(v.id))!;
      for (const p of suite.phases) run.phases.add(p);
      if (!runs.includes(run)) runs.push(run);
    }
  }
  return { runs, runOf, reference: runOf.get("full")! };
}

function trainSettings(c: Context, run: Run, seed: number): TrainSettings {
  return {
    preset: c.presetName,
    config: JSON.parse(JSON.stringify(run.config)),
    seqLen: c.seqLen,
    batch: c.batch,
    accum: c.f.accum,
    lr: c.f.lr,
    warmup: c.warmup,
    seed,
    split: c.split,
  };
}

/** Trains one run (fresh, or resumed from its checkpoint). Returns the params, or "stopped". */
async function trainRun(c: Context, run: Run, seed: number, dir: string): Promise<{ params: LMParams; done: TrainDone } | "stopped"> {
  const settings = trainSettings(c, run, seed);
  const model = lmTrainable(lm, run.config);
  const data = (key: random.Key) => {
    const sampler = new WindowSampler(c.train, c.seqLen, key);
    return tokenSource((i) => sampler.batch(i, c.batch));
  };
  const ckpt = runFiles(dir).checkpoint;
  const resuming = existsSync(ckpt);
  writeJson(join(dir, "settings.json"), settings);
  const stopAt = c.hooks.stopAtStep?.({ run: run.id, seed });
  // `deadline` is the trainer's clean stop at a step boundary (it writes the checkpoint); typed
  // loosely so that this file does not depend on the option's presence
  const opts: TrainOptions & { deadline?: number } = {
    steps: stopAt !== undefined && stopAt < c.steps ? stopAt : c.steps,
    out: dir,
    lr: c.warmup > 0 ? schedule.linearWarmup({ peak: c.f.lr, warmup: c.warmup }) : c.f.lr,
    accum: c.f.accum,
    seed,
    checkpointEvery: c.checkpointEvery,
    resume: resuming,
    label: `${run.id} seed ${seed}`,
    extra: { task: "text", seqLen: String(c.seqLen), ablation: run.id },
    progress: c.io.progress === false ? false : { stream: c.io.progress },
    deadline: c.deadline,
  };
  const t0 = performance.now();
  const r = await train(model, data, opts);
  const status = r.status as string;
  if (status === "timeout" || (status === "done" && r.step < c.steps)) {
    disposeTree(r.params);
    c.io.err(`ablate: ${run.id} seed ${seed}: stopped at step ${r.step} of ${c.steps} (time budget; checkpoint kept: rerun to continue)\n`);
    return "stopped";
  }
  const ran = r.records.filter((x) => !x.skipped);
  const ms = ran.reduce((a, x) => a + x.ms, 0);
  const tokens = ran.reduce((a, x) => a + x.tokens, 0);
  const last = r.records.slice(-Math.max(1, Math.ceil(r.records.length / 10))).filter((x) => Number.isFinite(x.loss));
  const done: TrainDone = {
    settings,
    status: status === "diverged" ? "diverged" : "done",
    steps: r.step,
    tokens: c.steps * c.batch * c.f.accum * c.seqLen,
    seconds: (performance.now() - t0) / 1000,
    tokensPerSecond: ms > 0 ? tokens / (ms / 1000) : null,
    finalLoss: last.length ? last.reduce((a, x) => a + x.loss, 0) / last.length : null,
  };
  writeJson(join(dir, "train.json"), done);
  c.io.err(
    `ablate: ${run.id} seed ${seed}: trained ${r.step} steps${resuming ? " (resumed)" : ""} in ${done.seconds.toFixed(1)} s` +
      `${done.tokensPerSecond ? `, ${Math.round(done.tokensPerSecond).toLocaleString("en-US")} tokens/s` : ""}` +
      `${done.finalLoss !== null ? `, final loss ${done.finalLoss.toFixed(4)}` : ""}${done.status === "diverged" ? " — DIVERGED" : ""}\n`,
  );
  return { params: r.params, done };
}

/** Trains (or resumes) one run and runs the phases it lacks. "stopped" when the budget ended it. */
export async function doRun(c: Context, run: Run, seed: number): Promise<"ran" | "skipped" | "stopped"> {
  const dir = runDir(c, run.id, seed);
  const files = { train: join(dir, "train.json"), ppl: join(dir, "eval-ppl.json"), metrics: join(dir, "eval-metrics.json"), val: join(dir, "eval-val.json") };
  const settings = trainSettings(c, run, seed);
  let trained = readPhase(files.train, TrainDoneSchema);
  if (trained && !sameJson(trained.settings, settings)) {
    throw new UsageError(`ablate: ${dir} was trained with other settings (${firstDiff(trained.settings, settings)}); choose another --out or delete that directory`);
  }
  if (trained && trained.steps > c.steps && trained.status === "done") {
    throw new UsageError(`ablate: ${dir} was trained for ${trained.steps} steps, more than --steps ${c.steps}; choose another --out or delete that directory`);
  }
  if (trained && trained.status === "done" && trained.steps < c.steps) trained = undefined; // a longer budget: continue training
  const step = trained?.steps ?? c.steps;
  const want = {
    ppl: { step, lengths: c.lengths, windows: c.f.windows, scored: c.f.scored },
    metrics: { step, metricsLen: c.f.metricsLen, samples: c.f.metricsSamples },
    val: { step, seqLen: c.seqLen, batch: c.batch, batches: VAL_BATCHES },
  };
  const schemas = { ppl: PplFileSchema, metrics: MetricsFileSchema, val: ValFileSchema };
  const pending = () =>
    trained?.status === "diverged"
      ? []
      : (["val", "ppl", "metrics"] as const).filter((p) => run.phases.has(p) && !sameJson(readPhase(files[p], schemas[p] as z.ZodType<{ settings: unknown }>)?.settings, want[p]));
  const ckpt = runFiles(dir).checkpoint;
  if (trained && pending().length === 0) {
    if (c.f.prune && existsSync(ckpt)) rmSync(ckpt);
    return "skipped";
  }
  const before = readPhase(join(dir, "settings.json"), TrainSettingsSchema);
  if (!trained && before && existsSync(ckpt) && !sameJson(before, settings)) {
    throw new UsageError(`ablate: ${dir} holds a checkpoint trained with other settings (${firstDiff(before, settings)}); choose another --out or delete that directory`);
  }

  const stop = (phase: "train" | Phase) => (c.deadline !== undefined && Date.now() > c.deadline) || (c.hooks.stopBefore?.({ run: run.id, seed, phase }) ?? false);
  let params: LMParams | undefined;
  try {
    if (!trained) {
      if (stop("train")) return "stopped";
      const r = await trainRun(c, run, seed, dir);
      if (r === "stopped") return "stopped";
      params = r.params;
      trained = r.done;
      for (const p of ["ppl", "metrics", "val"] as const) want[p].step = trained.steps;
    }
    for (const phase of pending()) {
      if (stop(phase)) return "stopped";
      if (!params) {
        if (!existsSync(ckpt)) {
          throw new UsageError(`ablate: ${dir}: the checkpoint is gone (--prune?) but ${phase} is not evaluated with these settings; delete that directory to train it again`);
        }
        params = loadModel(ckpt).params;
      }
      const t0 = performance.now();
      const seconds = () => (performance.now() - t0) / 1000;
      if (phase === "ppl") writeJson(files.ppl, { settings: want.ppl, rows: await evalPpl(c, params), seconds: seconds() });
      else if (phase === "metrics") writeJson(files.metrics, { settings: want.metrics, ...(await evalMetrics(c, params)), seconds: seconds() });
      else writeJson(files.val, { settings: want.val, ...(await evalVal(c, params)), seconds: seconds() });
      c.io.err(`ablate: ${run.id} seed ${seed}: ${phase} evaluated in ${seconds().toFixed(1)} s\n`);
    }
  } finally {
    if (params) disposeTree(params);
  }
  if (c.f.prune && existsSync(ckpt)) rmSync(ckpt);
  return "ran";
}
