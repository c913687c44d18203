/**
 * The `ablate` command's flags and help, its per-preset defaults, `--shard` parsing, the types of
 * its test hooks and of its report, and the context every run of one call shares (the resolved
 * settings and the split books). The command itself is ./ablate.ts.
 */
import { join } from "node:path";
import { presetNames, type PresetName, type TextDoc } from "@memmamba/memmamba";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { type Phase, SUITE_NAMES, type SuiteResult } from "../ablation.ts";
import { backendFlag, type CommandIO, cpuKernelsFlag } from "./common.ts";

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

export interface Context {
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

export const runDir = (c: Context, run: string, seed: number) => join(c.f.out, "runs", run, `seed-${seed}`);
