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
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { crossEntropy, disposeTree, fromArray, mean, random, schedule, sum, tidy } from "@memmamba/tensor";
import {
  booksTooShort, lm, loadTexts, metrics, perplexity, pplWindows, preset, presetNames, splitTexts, WindowSampler,
  type LMParams, type ModelConfig, type PresetName, type TextDoc,
} from "@memmamba/memmamba";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { lmTrainable, tokenSource } from "../adapters.ts";
import {
  type AblationSettings, buildSuiteResult, configKey, markdownTable, type Phase, type SeedResult, SUITE_NAMES, suiteColumns,
  suitePlot, type SuiteResult, SuiteResultSchema, suitesOf, type SuiteSpec, type VariantSpec,
} from "../ablation.ts";
import { windowNllBatch } from "../inference.ts";
import { loadModel } from "../weights.ts";
import { writeSvg } from "../plot.ts";
import { runFiles, train, type TrainOptions } from "../trainer.ts";
import { backendFlag, type CommandIO, cpuKernelsFlag, DEFAULT_BOOKS, defaultIO, formatTable, requirePath, requireWindow, selectBackend, writeJson } from "./common.ts";

export { DEFAULT_BOOKS };


/** Per-preset defaults: the GPU budget at `small` (see the README's "Ablations"), seconds per run at `tiny`. */
export const ABLATE_DEFAULTS: Readonly<Record<PresetName, { steps: number; seqLen: number; batch: number; lengths: number[] }>> = Object.freeze({
  tiny: { steps: 30, seqLen: 128, batch: 2, lengths: [256, 512, 1024, 2048] },
  small: { steps: 150, seqLen: 2048, batch: 4, lengths: [1024, 2048, 4096, 10240, 20480, 30720, 40960, 51200, 61440] },
  paper: { steps: 150, seqLen: 2048, batch: 4, lengths: [1024, 2048, 4096, 10240, 20480, 30720, 40960, 51200, 61440] },
});

/** The `ablate` command's flags and help. */
export const ablateCommand = defineCommand({
  name: "ablate",
  summary: "train and evaluate the ablation variants of a suite with several seeds; writes results.json, results.md and results.svg per suite",
  usage: "bun run ablate --suite <core|fidelity|pooling|fusion|sensitivity|all> [flags]      (deno task ablate …)",
  flags: {
    suite: flag.enum([...SUITE_NAMES, "all"], "which suite: core (mechanisms), fidelity (ETMF/ECLMF of the core variants), pooling, fusion, sensitivity (k, S, τ1, τ2), or all", { required: true }),
    preset: flag.enum(presetNames as unknown as readonly [PresetName, ...PresetName[]], "model size of every variant", { default: "small" }),
    backend: backendFlag,
    cpuKernels: cpuKernelsFlag,
    steps: flag.int("optimizer steps per run (the same for every variant)", { positive: true, defaultLabel: "small/paper 150, tiny 30" }),
    seqLen: flag.int("bytes per training window (k = ×1024)", { positive: true, defaultLabel: "small/paper 2k, tiny 128" }),
    batch: flag.int("windows per micro-batch", { positive: true, defaultLabel: "small/paper 4, tiny 2" }),
    accum: flag.int("micro-batches per optimizer step", { positive: true, default: 1 }),
    lr: flag.number("AdamW learning rate after warmup, then constant (higher than the paper's 1e-4: the budget is short)", { positive: true, default: 1e-3 }),
    warmup: flag.int("steps of linear warmup from 0", { min: 0, defaultLabel: "steps / 10" }),
    seeds: flag.intList("seeds, each a full training run of every variant (at least two give a spread)", { default: [1, 2], min: 0 }),
    data: flag.path("books: a directory of .txt files (or one file); the training split trains, the validation split evaluates", { defaultLabel: "../shared/data/books beside the repository" }),
    lengths: flag.intList("context lengths of the perplexity evaluation", { positive: true, defaultLabel: "small/paper 1k,2k,4k,10k,20k,30k,40k,50k,60k; tiny 256,512,1k,2k" }),
    windows: flag.int("perplexity: windows per validation book at each length", { default: 1, positive: true }),
    scored: flag.int("perplexity: bytes scored at the end of each window", { default: 100, positive: true }),
    chunk: flag.int("tokens per chunk when streaming the evaluation windows", { default: 2048, positive: true }),
    metricsLen: flag.int("fidelity: bytes per ETMF/ECLMF window (k = ×1024)", { default: 512, positive: true }),
    metricsSamples: flag.int("fidelity: ETMF/ECLMF windows", { default: 20, positive: true }),
    checkpointEvery: flag.int("steps between checkpoints within a run", { positive: true, defaultLabel: "steps / 10" }),
    out: flag.path("output directory: runs/ (one directory per config and seed) and one directory per suite", { default: "runs/ablate" }),
    maxMinutes: flag.number("time budget from the process's start: stop cleanly (between runs, or at a step boundary with a checkpoint) and continue with the same command", { positive: true }),
    shard: flag.string("i/n: run only every n-th (config, seed) pair starting at the i-th, so that n processes (one GPU each, or several sharing one GPU) split a suite; a shard writes no tables — rerun without --shard once all are done to write them", { defaultLabel: "all runs" }),
    prune: flag.bool("delete a run's checkpoint once every phase the chosen suites need is done (its JSON files stay; keeps --out small enough to carry between machines)"),
  },
  epilog: `Each variant is trained from scratch for the same number of tokens (steps × batch × accum × seq-len,
printed at the start) with each seed, then evaluated; variants of equal config (at the small preset:
max pooling, weighted fusion, k = 50, S = 64, τ1 = τ2 = 0.5 are the full MemMamba) share one run.
A difference from the full MemMamba is marked real (†) only when the seed ranges do not overlap.
Examples:
  bun run ablate --suite core --preset tiny --steps 20 --lengths 256,512    # seconds on a CPU
  bun run ablate --suite all --backend webgpu --max-minutes 8 --prune       # the GPU budget; rerun until "all done"`,
});

/** Parsed `ablate` arguments. */
export type AblateArgs = ParseResult<typeof ablateCommand.spec.flags>;

/** Test hooks, to leave runs as an interrupted job leaves them. */
export interface AblateHooks {
  /** Stop the command before this phase of this run. */
  stopBefore?: (where: { run: string; seed: number; phase: "train" | Phase }) => boolean;
  /** Stop the command once this run's training has reached (and checkpointed) this step. */
  stopAtStep?: (where: { run: string; seed: number }) => number | undefined;
}

/** `--shard i/n` → {i, n} with 1 ≤ i ≤ n; undefined when not given. */
export function parseShard(raw: string | undefined): { i: number; n: number } | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
  const i = m ? Number(m[1]) : NaN, n = m ? Number(m[2]) : NaN;
  if (!m || n < 1 || i < 1 || i > n) throw new UsageError(`ablate: --shard expects i/n with 1 <= i <= n (e.g. 2/3), got "${raw}"`);
  return { i, n };
}

/** What `runAblate` returns (the suites' results are also written to --out). */
export interface AblateReport {
  /** done: every run of the chosen suites finished; stopped: the time budget (or a hook) ended it first. */
  status: "done" | "stopped";
  suites: SuiteResult[];
  /** "<run>/seed-<s>" of the runs trained or evaluated in this call, and of those skipped as done. */
  ran: string[];
  skipped: string[];
}

// ---------- phase files ----------

const TrainSettingsSchema = z.object({
  preset: z.string(),
  config: z.record(z.string(), z.unknown()),
  seqLen: z.number().int(),
  batch: z.number().int(),
  accum: z.number().int(),
  lr: z.number(),
  warmup: z.number().int(),
  seed: z.number().int(),
  split: z.string(),
});
type TrainSettings = z.infer<typeof TrainSettingsSchema>;

const TrainDoneSchema = z.object({
  settings: TrainSettingsSchema,
  status: z.enum(["done", "diverged"]),
  steps: z.number().int(),
  tokens: z.number(),
  seconds: z.number(),
  tokensPerSecond: z.number().nullable(),
  finalLoss: z.number().nullable(),
});
type TrainDone = z.infer<typeof TrainDoneSchema>;

const PplFileSchema = z.object({
  settings: z.object({ step: z.number().int(), lengths: z.array(z.number().int()), windows: z.number().int(), scored: z.number().int() }),
  rows: z.array(z.object({ length: z.number().int(), ppl: z.number().nullable(), bitsPerByte: z.number().nullable(), windows: z.number().int(), tokens: z.number().int(), booksSkipped: z.array(z.string()) })),
  seconds: z.number(),
});
const MetricsFileSchema = z.object({
  settings: z.object({ step: z.number().int(), metricsLen: z.number().int(), samples: z.number().int() }),
  windows: z.number().int(),
  etmf: z.number().nullable(),
  eclmf: z.array(z.object({ gap: z.number().int(), value: z.number().nullable() })),
  seconds: z.number(),
});
const ValFileSchema = z.object({
  settings: z.object({ step: z.number().int(), seqLen: z.number().int(), batch: z.number().int(), batches: z.number().int() }),
  valLoss: z.number().nullable(),
  notesRate: z.number().nullable(),
  readsRate: z.number().nullable(),
  seconds: z.number(),
});

/** A phase file's content when it parses, else undefined (a torn or foreign file is redone). */
function readPhase<S extends z.ZodType>(path: string, schema: S): z.infer<S> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const r = schema.safeParse(JSON.parse(readFileSync(path, "utf8")));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);
const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The first field where two flat settings objects differ, for the message. */
function firstDiff(a: Record<string, unknown>, b: Record<string, unknown>): string {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!sameJson(a[k], b[k])) return `${k}: ${JSON.stringify(a[k])} there, ${JSON.stringify(b[k])} now`;
  }
  return "(none)";
}

// ---------- the runs ----------

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

interface Context {
  f: AblateArgs["flags"];
  io: CommandIO;
  hooks: AblateHooks;
  presetName: PresetName;
  steps: number;
  seqLen: number;
  batch: number;
  warmup: number;
  lengths: number[];
  checkpointEvery: number;
  train: TextDoc[];
  validation: TextDoc[];
  split: string;
  deadline?: number;
}

const runDir = (c: Context, run: string, seed: number) => join(c.f.out, "runs", run, `seed-${seed}`);

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

/** Validation windows streamed together in the perplexity evaluation. */
const PPL_BATCH = 8;

/** PPL by context length on the validation split: `eval ppl`'s protocol (pplWindows + windowNllBatch). */
async function evalPpl(c: Context, params: LMParams) {
  const rows = [];
  for (const L of c.lengths) {
    let s = 0, count = 0, windows = 0;
    // the windows of one length stream side by side, PPL_BATCH at a time (equal numbers up to f32 summation order)
    const all = [...pplWindows(c.validation, L, { windowsPerBook: c.f.windows, scoredTokens: c.f.scored })];
    for (let i = 0; i < all.length; i += PPL_BATCH) {
      const group = all.slice(i, i + PPL_BATCH);
      for (const from of new Set(group.map((w) => w.scoreFrom))) {
        const r = await windowNllBatch(params, group.filter((w) => w.scoreFrom === from), c.f.chunk);
        s += r.sum;
        count += r.count;
      }
      windows += group.length;
    }
    const p = count ? perplexity(s, count) : undefined;
    rows.push({ length: L, ppl: p ? finiteOrNull(p.ppl) : null, bitsPerByte: p ? finiteOrNull(p.bitsPerByte) : null, windows, tokens: count, booksSkipped: booksTooShort(c.validation, L) });
  }
  return rows;
}

/** ETMF and ECLMF averaged over validation windows: `eval metrics`'s protocol (10 windows per book, the first `samples`). */
async function evalMetrics(c: Context, params: LMParams) {
  const windows = [...pplWindows(c.validation, c.f.metricsLen, { windowsPerBook: 10, scoredTokens: 1 })].slice(0, c.f.metricsSamples);
  if (windows.length === 0) throw new UsageError(`ablate: fidelity: no validation book is longer than --metrics-len ${c.f.metricsLen}`);
  const etmfs: number[] = [];
  const byGap = new Map<number, number[]>();
  for (const w of windows) {
    const tokens = fromArray(Int32Array.from(w.inputs), [1, w.inputs.length], "i32");
    try {
      etmfs.push((await metrics.etmf(params, tokens)).value);
      for (const g of (await metrics.eclmf(params, tokens)).gaps) byGap.set(g.gap, [...(byGap.get(g.gap) ?? []), g.value]);
    } finally {
      tokens.dispose();
    }
  }
  const avg = (xs: number[]) => finiteOrNull(xs.reduce((a, b) => a + b, 0) / xs.length);
  return { windows: windows.length, etmf: avg(etmfs), eclmf: [...byGap].map(([gap, v]) => ({ gap, value: avg(v) })) };
}

const VAL_BATCHES = 2;
/** The same validation windows for every run and seed. */
const VAL_KEY = random.key(0x61626c74); // "ablt"

/**
 * On validation windows of the training length: the loss, and the model's counters (lm.apply's
 * aux): notes written and pool reads, each per token and layer.
 */
async function evalVal(c: Context, params: LMParams) {
  const sampler = new WindowSampler(c.validation, c.seqLen, VAL_KEY);
  let loss = 0, written = 0, reads = 0, positions = 0;
  let hasNotes = false, hasReads = false;
  for (let i = 0; i < VAL_BATCHES; i++) {
    const b = sampler.batch(i, c.batch);
    const shape = [b.batch, b.seqLen];
    const r = tidy(() => {
      const out = lm.apply(params, fromArray(b.inputs, shape, "i32"));
      return { loss: mean(crossEntropy(out.logits, fromArray(b.targets, shape, "i32"))), written: out.aux.notesWritten && sum(out.aux.notesWritten), reads: out.aux.poolReads && sum(out.aux.poolReads) };
    });
    loss += await r.loss.item();
    if (r.written) {
      hasNotes = true;
      written += await r.written.item();
    }
    if (r.reads) {
      hasReads = true;
      reads += await r.reads.item();
    }
    disposeTree([r.loss, r.written, r.reads]);
    positions += b.batch * b.seqLen * params.config.nLayers;
  }
  const usesReads = hasReads && params.config.memory.crossToken;
  return { valLoss: finiteOrNull(loss / VAL_BATCHES), notesRate: hasNotes ? written / positions : null, readsRate: usesReads ? reads / positions : null };
}

/** Trains (or resumes) one run and runs the phases it lacks. "stopped" when the budget ended it. */
async function doRun(c: Context, run: Run, seed: number): Promise<"ran" | "skipped" | "stopped"> {
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

/** One seed's values for a suite's columns, from the run's phase files. */
function seedResult(c: Context, run: string, seed: number): SeedResult {
  const dir = runDir(c, run, seed);
  const trained = readPhase(join(dir, "train.json"), TrainDoneSchema);
  const base = { seed, train: trained ? { steps: trained.steps, tokens: trained.tokens, seconds: trained.seconds, tokensPerSecond: trained.tokensPerSecond, finalLoss: trained.finalLoss } : null };
  if (trained?.status === "diverged") return { ...base, status: "diverged", values: {} };
  if (!trained || trained.steps !== c.steps) return { ...base, status: "missing", values: {} };
  const values: Record<string, number | null> = {};
  const step = trained.steps;
  const ppl = readPhase(join(dir, "eval-ppl.json"), PplFileSchema);
  let missing = false;
  if (ppl && ppl.settings.step === step) for (const r of ppl.rows) values[`ppl@${r.length}`] = r.ppl;
  const m = readPhase(join(dir, "eval-metrics.json"), MetricsFileSchema);
  if (m && m.settings.step === step) {
    values.etmf = m.etmf;
    for (const g of m.eclmf) values[`eclmf@${g.gap}`] = g.value;
  }
  const v = readPhase(join(dir, "eval-val.json"), ValFileSchema);
  if (v && v.settings.step === step) Object.assign(values, { valLoss: v.valLoss, notesRate: v.notesRate, readsRate: v.readsRate });
  if (!ppl && !m && !v) missing = true;
  return { ...base, status: missing ? "missing" : "done", values };
}

function writeSuite(c: Context, suite: SuiteSpec, runOf: Map<string, string>, reference: string, settings: AblationSettings): SuiteResult {
  const columns = suiteColumns(suite, { lengths: c.lengths, nLayers: preset(c.presetName).nLayers });
  const variants = suite.variants.map((spec: VariantSpec) => {
    const run = runOf.get(spec.id)!;
    const seeds = c.f.seeds.map((s) => {
      const r = seedResult(c, run, s);
      // a seed is complete for this suite only when every column has been evaluated
      if (r.status === "done" && columns.some((col) => !(col.key in r.values))) return { ...r, status: "missing" as const };
      return r;
    });
    return { spec, run, seeds };
  });
  const result = SuiteResultSchema.parse(buildSuiteResult(suite, settings, columns, variants, reference));
  const dir = join(c.f.out, suite.name);
  writeJson(join(dir, "results.json"), result);
  writeSvg(join(dir, "results.md"), markdownTable(result));
  writeSvg(join(dir, "results.svg"), suitePlot(result));
  return result;
}

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
