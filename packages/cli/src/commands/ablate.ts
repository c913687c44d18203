/**
 * `bun run ablate --suite core|fidelity|pooling|fusion|sensitivity|all`: trains every variant of
 * the suite for the same number of tokens with each seed, evaluates it, and writes per suite
 * <out>/<suite>/results.json, results.md and results.svg (the suites: ../ablation.ts).
 *
 * Training is the train command's LM path (../trainer.ts on random windows of the training split
 * of the books, memmamba/src/data/text.ts); evaluation is the eval command's protocol, on the same
 * library functions: PPL by context length on the validation split (pplWindows + windowNllBatch, as
 * `eval ppl`), ETMF / ECLMF on validation windows (metrics.etmf / metrics.eclmf, as
 * `eval metrics`), and, on validation windows of the training length, the loss and how often
 * notes are written and the pool is read (the model's own counters, lm.apply's aux).
 *
 * Resumable per run. Each distinct config × seed trains in <out>/runs/<run>/seed-<seed>/, which
 * holds the trainer's files (checkpoint.safetensors, train.jsonl, loss.svg) and one JSON per
 * finished phase: train.json (the done marker of training, with its settings), eval-ppl.json,
 * eval-metrics.json, eval-val.json. A rerun skips what is done (a phase whose file exists with the
 * same settings and the same trained step), resumes a run whose training was interrupted from its
 * checkpoint, and refuses (naming the directory) one trained with other settings. So a suite can
 * span several time-limited jobs: `--max-minutes` stops cleanly between runs, or at a step
 * boundary inside one (the checkpoint is written), and the same command continues.
 *
 * The command takes the backend once (a WebGPU device, or the CPU kernels' threads) for all runs.
 *
 * This file holds runAblate, the loop over the runs and the tables it prints; the flags, defaults
 * and the context the runs share are in ./ablate-args.ts, the phase files in ./ablate-phases.ts,
 * planning and doing one run in ./ablate-runs.ts, its evaluation phases in ./ablate-eval.ts, and
 * each suite's results files in ./ablate-report.ts.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadTexts, splitTexts } from "@memmamba/memmamba";
import { UsageError } from "../args.ts";
import { type AblationSettings, suitesOf } from "../ablation.ts";
import { type CommandIO, DEFAULT_BOOKS, defaultIO, formatTable, requirePath, requireWindow, selectBackend } from "./common.ts";
import { ABLATE_DEFAULTS, type AblateArgs, type AblateHooks, type AblateReport, type Context, parseShard, runDir } from "./ablate-args.ts";
import { readPhase, TrainDoneSchema } from "./ablate-phases.ts";
import { writeSuite } from "./ablate-report.ts";
import { doRun, planRuns } from "./ablate-runs.ts";

export { DEFAULT_BOOKS };
export { ABLATE_DEFAULTS, ablateCommand, type AblateArgs, type AblateHooks, type AblateReport, parseShard } from "./ablate-args.ts";
export { planRuns, type Run } from "./ablate-runs.ts";

/** Runs `ablate`; see the module note. */
export async function runAblate(args: AblateArgs, io: CommandIO = defaultIO, hooks: AblateHooks = {}): Promise<AblateReport> {
  const f = args.flags;
  const presetName = f.preset;
  const d = ABLATE_DEFAULTS[presetName];
  const steps = f.steps ?? d.steps;
  const seqLen = f.seqLen ?? d.seqLen;
  const batch = f.batch ?? d.batch;
  const lengths = f.lengths ?? d.lengths;
  const warmup = f.warmup ?? Math.round(steps / 10);
  const seeds = [...new Set(f.seeds)];
  if (seeds.length !== f.seeds.length) throw new UsageError(`ablate: --seeds ${f.seeds.join(",")} names a seed twice`);
  if (f.scored > Math.min(...lengths)) throw new UsageError(`ablate: --scored ${f.scored} exceeds the shortest --lengths ${Math.min(...lengths)}`);
  const shard = parseShard(f.shard);
  const data = f.data ?? DEFAULT_BOOKS;
  if (f.data === undefined && !existsSync(data)) {
    throw new UsageError(`ablate: no --data given and the default book folder ${data} does not exist; pass --data <a directory of .txt books>`);
  }
  requirePath("ablate", "--data", data);
  const chosen = suitesOf(f.suite);
  const { runs, runOf, reference } = planRuns(chosen, presetName);

  const split = splitTexts(loadTexts(data));
  if (split.validation.length === 0) throw new UsageError(`ablate: --data ${data}: no validation documents`);
  requireWindow("ablate", data, split.train, "training", seqLen);
  requireWindow("ablate", data, split.validation, "validation", seqLen);
  await selectBackend("ablate", f.backend, f.cpuKernels, io.err);
  const c: Context = {
    f: { ...f, seeds },
    io,
    hooks,
    presetName,
    steps,
    seqLen,
    batch,
    warmup,
    lengths,
    checkpointEvery: f.checkpointEvery ?? Math.max(1, Math.round(steps / 10)),
    train: split.train,
    validation: split.validation,
    split: split.rule,
    // counted from the process's start, as train --max-minutes (start-up is part of a job's time)
    deadline: f.maxMinutes !== undefined ? performance.timeOrigin + f.maxMinutes * 60_000 : undefined,
  };
  const tokensPerRun = steps * batch * f.accum * seqLen;
  const settings: AblationSettings = {
    preset: presetName, backend: f.backend, steps, seqLen, batch, accum: f.accum, lr: f.lr, warmup, tokensPerRun, seeds,
    data, split: split.rule, lengths, windowsPerBook: f.windows, scoredTokens: f.scored, metricsLen: f.metricsLen, metricsSamples: f.metricsSamples,
  };
  io.err(
    `ablate: suites ${chosen.map((s) => s.name).join(", ")}; ${runs.length} distinct configs × ${seeds.length} seeds = ${runs.length * seeds.length} runs ` +
      `(${split.train.length} training / ${split.validation.length} validation books: ${split.rule})\n` +
      `ablate: training budget per run, the same for every variant: ${steps} steps × batch ${batch} × accum ${f.accum} × ${seqLen} bytes = ` +
      `${tokensPerRun.toLocaleString("en-US")} tokens (${presetName} preset, lr ${f.lr}${warmup ? ` after ${warmup} warmup steps` : ""})\n`,
  );

  const ran: string[] = [], skipped: string[] = [];
  let status: AblateReport["status"] = "done";
  const durations: number[] = [];
  let pairIndex = -1;
  outer: for (const run of runs) {
    for (const seed of seeds) {
      pairIndex++;
      if (shard && pairIndex % shard.n !== shard.i - 1) continue;
      // between runs: do not start one that the budget cannot hold (judged by the runs so far)
      const est = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : 0;
      if (c.deadline !== undefined && Date.now() + est > c.deadline) {
        status = "stopped";
        break outer;
      }
      const t0 = Date.now();
      const r = await doRun(c, run, seed);
      const name = `${run.id}/seed-${seed}`;
      if (r === "stopped") {
        status = "stopped";
        break outer;
      }
      if (r === "skipped") {
        skipped.push(name);
        io.err(`ablate: ${name}: done already, skipped\n`);
      } else {
        ran.push(name);
        durations.push(Date.now() - t0);
      }
    }
  }

  if (shard) {
    // shards run side by side: none writes the suite files (they would overwrite each other with partial tables)
    io.out(status === "done"
      ? `ablate: shard ${shard.i}/${shard.n} done (${ran.length} run now, ${skipped.length} already done); once every shard is done, rerun without --shard to write the tables\n`
      : `ablate: shard ${shard.i}/${shard.n} stopped by its time budget (${ran.length} run now); rerun the same command to continue\n`);
    return { status, suites: [], ran, skipped };
  }
  const suites = chosen.map((s) => writeSuite(c, s, runOf, reference, settings));
  for (const r of suites) {
    io.out(`\n${r.title}${r.complete ? "" : " (incomplete)"}\n`);
    io.out(formatTable(["variant", ...r.columns.map((col) => col.label)], r.variants.map((v) => [
      v.label,
      ...r.columns.map((col) => {
        const st = v.summary[col.key];
        if (st.mean === null) return "–";
        const dg = col.key.startsWith("ppl@") || col.key === "valLoss" ? 3 : 4;
        return `${st.mean.toFixed(dg)}${st.n >= 2 ? ` ±${st.spread!.toFixed(dg)}` : ""}${v.vsReference[col.key]?.real ? " †" : ""}`;
      }),
    ])));
    io.out(`wrote ${join(c.f.out, r.suite, "results.json")}, results.md, results.svg\n`);
  }
  const total = runs.length * seeds.length;
  const left = total - runs.reduce((a, run) => a + seeds.filter((s) => {
    const t = readPhase(join(runDir(c, run.id, s), "train.json"), TrainDoneSchema);
    return t && t.steps === steps;
  }).length, 0);
  io.out(status === "done" && suites.every((r) => r.complete)
    ? `ablate: all done (${total} runs; ${ran.length} run now, ${skipped.length} already done)\n`
    : `ablate: stopped with ${left} of ${total} runs still to train; rerun the same command to continue\n`);
  return { status, suites, ran, skipped };
}
