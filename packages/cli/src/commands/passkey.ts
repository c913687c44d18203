/**
 * `deno task passkey`: passkey retrieval (DeciMamba protocol) of a checkpoint by context length ×
 * needle depth, in streaming mode (constant memory at any length). Prints a table and writes
 * passkey.json and passkey.svg (a heatmap) to --out.
 */
import { dirname, join } from "node:path";
import { disposeTree, random } from "@memmamba/tensor";
import { existsSync } from "node:fs";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { greedyDecode } from "../inference.ts";
import { loadModelFile } from "../weights.ts";
import { heatmap, writeSvg } from "../plot.ts";
import { Progress } from "../progress.ts";
import { backendFlag, type CommandIO, cpuKernelsFlag, defaultIO, defaultOutDir, formatTable, lengthLabel, requireOutDir, requirePath, selectBackend, writeJson } from "./common.ts";
import { PASSKEY_DEMO, runTrain, trainCommand } from "./train.ts";
import { runFiles } from "../trainer.ts";
import { loadTexts, splitPart } from "@memmamba/memmamba";
import { FIXED_BYTES, type FillerSpec, PASSKEY_DECODE_TOKENS, passkeyGrid, scorePasskey } from "@memmamba/memmamba";

/** The `passkey` command: its flags, parser and help. */
export const passkeyCommand = defineCommand({
  name: "passkey",
  summary: "passkey retrieval accuracy of a checkpoint by context length × needle depth (streaming, constant memory)",
  usage: "deno task passkey [flags]      (bun run passkey [flags])",
  flags: {
    checkpoint: flag.path("the checkpoint or shipped weights file (weights/*.safetensors) to evaluate", { default: "runs/train/checkpoint.safetensors" }),
    train: flag.bool("first train a quick model (the `train` demo's defaults) into <checkpoint dir>/checkpoint.safetensors, then evaluate that; a checkpoint already there needs --overwrite; a training that diverges is an error and nothing is evaluated"),
    overwrite: flag.bool("with --train: replace a checkpoint already in the checkpoint's directory"),
    trainSteps: flag.int("optimizer steps of that quick training", { positive: true, defaultLabel: `the train demo's ${PASSKEY_DEMO.steps}` }),
    trainLr: flag.number("peak learning rate of that quick training (train's --lr)", { positive: true, defaultLabel: `the train demo's ${PASSKEY_DEMO.lr}` }),
    filler: flag.path("take the filler text from this file or directory (default: generated)"),
    fillerSplit: flag.enum(["validation", "train", "all"], "which books of --filler (the books' split; `train --filler` trains on train, so validation is unseen text)", { default: "validation" }),
    fillerKind: flag.enum(["classic", "random"], "the generated filler: the classic grass/sky/sun sentences or random sentences", { default: "classic" }),
    lengths: flag.intList("context lengths in tokens (bytes); the paper goes to 400k", { default: [1024, 2048, 4096, 8192], positive: true }),
    depths: flag.numberList("needle depths", { default: [0, 0.25, 0.5, 0.75, 1], min: 0, max: 1 }),
    samples: flag.int("samples per (length, depth) cell", { default: 5, positive: true }),
    seed: flag.int("seed of the samples (passkeys, filler)", { default: 123, min: 0 }),
    chunk: flag.int("tokens per chunk when streaming the prompt (memory ∝ chunk, not length)", { default: 512, positive: true }),
    out: flag.path("where passkey.json and passkey.svg go", { defaultLabel: "<run>/passkey for a run's checkpoint.safetensors, else runs/passkey/<file name>" }),
    backend: backendFlag,
    cpuKernels: cpuKernelsFlag,
  },
  epilog: `Example:
  deno task passkey --checkpoint runs/train/checkpoint.safetensors --lengths 1k,2k,4k,8k,16k,32k,64k,128k,256k,400k`,
});

/** The parsed flags of `passkey`. */
export type PasskeyArgs = ParseResult<typeof passkeyCommand.spec.flags>;

/** What `passkey` measured (also written to passkey.json). */
export interface PasskeyReport {
  /** The checkpoint evaluated. */
  checkpoint: string;
  /** The context lengths, in bytes. */
  lengths: number[];
  /** The needle depths. */
  depths: number[];
  /** Samples per (length, depth) cell. */
  samples: number;
  /** accuracy[depthIndex][lengthIndex] */
  accuracy: number[][];
  /** Every sample's outcome. */
  results: { length: number; depth: number; sample: number; passkey: string; predicted: string; correct: boolean }[];
}

/**
 * Runs `passkey` with parsed arguments: prints the accuracy table, writes passkey.json and passkey.svg, and returns the report.
 */
export async function runPasskey(args: PasskeyArgs, io: CommandIO = defaultIO): Promise<PasskeyReport> {
  const print = io.out;
  const f = args.flags;
  if (f.overwrite && !f.train) throw new UsageError("passkey: --overwrite is for --train (it replaces the checkpoint that --train writes)");
  if (args.given.has("trainLr") && !f.train) throw new UsageError("passkey: --train-lr is for --train (the learning rate of its quick training)");
  if (args.given.has("trainSteps") && !f.train) throw new UsageError("passkey: --train-steps is for --train (the steps of its quick training)");
  // a filler flag that would be ignored is refused by name, as train does
  if (args.given.has("fillerSplit") && !f.filler) throw new UsageError("passkey: --filler-split is for --filler (which of its books); the generated filler has none");
  if (args.given.has("fillerKind") && f.filler) throw new UsageError("passkey: --filler-kind is for the generated filler; --filler takes the text from its books");
  const tooShort = f.lengths.filter((n) => n < FIXED_BYTES);
  if (tooShort.length) throw new UsageError(`passkey: --lengths ${tooShort.join(",")}: a prompt needs at least ${FIXED_BYTES} tokens (the needle and the question)`);
  // with --train, the model evaluated is the one trained: <checkpoint dir>/checkpoint.safetensors
  const checkpoint = f.train ? join(dirname(f.checkpoint), "checkpoint.safetensors") : f.checkpoint;
  const out = f.out ?? defaultOutDir("passkey", checkpoint, "passkey");
  requireOutDir("passkey", "--out", out);
  if (f.train) {
    if (existsSync(checkpoint) && !f.overwrite) {
      throw new UsageError(`passkey: --train would replace ${checkpoint}: evaluate it without --train, pass another --checkpoint directory, or add --overwrite`);
    }
    if (checkpoint !== f.checkpoint && args.given.has("checkpoint")) io.err(`passkey: --train writes and evaluates ${checkpoint} (not ${f.checkpoint})\n`);
  }
  await selectBackend("passkey", f.backend, f.cpuKernels, io.err);
  if (f.train) {
    const dir = dirname(checkpoint);
    const t = await runTrain(trainCommand.parse([
      "--out", dir, ...(f.trainSteps !== undefined ? ["--steps", String(f.trainSteps)] : []), ...(f.trainLr !== undefined ? ["--lr", String(f.trainLr)] : []),
      "--backend", f.backend, ...(f.cpuKernels ? ["--cpu-kernels", f.cpuKernels] : []), ...(f.overwrite ? ["--overwrite"] : []),
    ]), io);
    disposeTree(t.params);
    if (t.status !== "done") {
      // no checkpoint there is this training's finished model: one that diverged before its first save leaves the
      // earlier run's (--overwrite replaces it only at that save), whose scores would pass for this one's
      let first = t.records.length;
      while (first > 0 && t.records[first - 1].skipped) first--; // the first of the non-finite steps that stopped it
      const bad = t.records[first];
      const what = t.status === "diverged" ? `diverged${bad ? ` at step ${bad.step} (${bad.reason})` : ""}` : `did not finish (${t.status})`;
      throw new Error(`--train: the training in ${dir} ${what}: train ${t.summary}; nothing evaluated (its log: ${runFiles(dir).log})`);
    }
  }
  let filler: FillerSpec = { kind: f.fillerKind };
  if (f.filler) {
    requirePath("passkey", "--filler", f.filler);
    filler = { kind: "text", docs: splitPart(loadTexts(f.filler), f.fillerSplit).docs };
  }
  const model = loadModelFile(checkpoint);
  const report: PasskeyReport = {
    checkpoint,
    lengths: f.lengths,
    depths: f.depths,
    samples: f.samples,
    accuracy: f.depths.map(() => f.lengths.map(() => 0)),
    results: [],
  };
  const total = f.lengths.length * f.depths.length * f.samples;
  const totalTokens = f.lengths.reduce((a, n) => a + n, 0) * f.depths.length * f.samples;
  const progress = io.progress === false ? undefined : new Progress({ total, totalTokens, label: "passkey", showLoss: false, stream: io.progress });
  let done = 0;
  try {
    for (const item of passkeyGrid({ key: random.key(f.seed), lengths: f.lengths, depths: f.depths, samples: f.samples, filler })) {
      const s = item.sample;
      const gen = await greedyDecode(model.params, s.prompt, PASSKEY_DECODE_TOKENS, f.chunk);
      const score = scorePasskey(gen, s.passkey);
      report.results.push({ length: s.length, depth: s.depth, sample: item.sampleIndex, passkey: s.passkey, predicted: score.predicted, correct: score.correct });
      if (score.correct) report.accuracy[item.depthIndex][item.lengthIndex] += 1 / f.samples;
      progress?.update(++done, { tokens: s.length });
    }
  } finally {
    disposeTree(model.params);
  }
  progress?.finish();
  const labels = f.lengths.map(lengthLabel);
  print(`passkey retrieval accuracy (${f.samples} samples per cell) of ${checkpoint}\n`);
  print(formatTable(["depth \\ length", ...labels], f.depths.map((d, di) => [String(d), ...f.lengths.map((_, li) => report.accuracy[di][li].toFixed(2))])));
  writeJson(join(out, "passkey.json"), report);
  writeSvg(join(out, "passkey.svg"), heatmap({
    rowLabels: f.depths.map(String), colLabels: labels, values: report.accuracy,
    title: "passkey retrieval accuracy", xLabel: "context length (tokens)", yLabel: "needle depth",
  }));
  print(`wrote ${join(out, "passkey.json")} and ${join(out, "passkey.svg")}\n`);
  return report;
}
