/**
 * `bun run train`: trains a language model (memmamba, mamba or transformer) with ../trainer.ts.
 *
 * Without --data it is the passkey demo: the built-in passkey task (classic filler, the needle at
 * a random depth, the 5 answer digits the only targets scored) with its own defaults
 * (PASSKEY_DEMO: a higher learning rate with warmup, short samples, note pools tuned for the
 * tiny model), printed at the start; every --eval-every steps it scores held-out samples
 * (answer-digit loss, digit accuracy, exact match) and prints a line. With --data it trains the
 * byte-level LM on text windows (the books' suggested split: see memmamba/src/data/text.ts) with
 * the paper's defaults (TEXT_DEFAULTS: lr 1e-4 constant, accumulation 4) and reports the
 * validation loss. With --task docret (and --data) it trains document retrieval under noise: one
 * sample a row (k noise paragraphs of the training split and the gold one, the question, then
 * the gold id's digits and "]" as the scored targets), held-out samples of the validation split
 * scored like the passkey demo's (DOCRET_TRAIN). A flag given explicitly always wins.
 */
import { existsSync, readdirSync } from "node:fs";
import { basename } from "node:path";
import { disposeTree, fromArray, random, schedule, tidy, type Tensor } from "@memmamba/tensor";
import { lm, preset, presetNames, type ConfigOverrides, type LMParams, type ModelConfig, type PresetName } from "@memmamba/memmamba";
import { defineCommand, flag, kebab, type ParseResult, UsageError } from "../args.ts";
import { lmTrainable, tokenSource, type HostTokenBatch } from "../adapters.ts";
import { firstDifference, runFiles, train, TRAIN_DEFAULTS, type TrainResult } from "../trainer.ts";
import { loadModelFile } from "../weights.ts";
import { saveHangFromEnv } from "../save-hook.ts";
import { backendFlag, type CommandIO, cpuKernelsFlag, defaultIO, docretCharsFlag, paragraphChars, readJsonFile, requireOutDir, requirePath, requireWindow, selectBackend } from "./common.ts";
import { docretTrainingBatch, loadTexts, PARAGRAPH_CHARS, QUERY_KINDS, paragraphsOf, splitPart, splitTexts, WindowSampler } from "@memmamba/memmamba";
import type { FillerSpec } from "@memmamba/memmamba";
import { answerScores, MIN_PASSKEY_SEQ_LEN, passkeyScores, passkeyStopBatch } from "../passkey-demo.ts";

/** Defaults of the text (--data) mode: the paper's optimizer settings. */
export const TEXT_DEFAULTS = Object.freeze({
  steps: 200,
  seqLen: 128,
  batch: 4,
  accum: TRAIN_DEFAULTS.accum,
  lr: TRAIN_DEFAULTS.lr,
  warmup: 0,
  evalEvery: 50,
});

/**
 * Defaults of the passkey demo (no --data), measured on a 2-core CPU (see the README): the
 * shortest classic-filler passkey sample (a 99-byte prompt, then the 5 answer digits and the "."
 * that ends them, the only targets scored: see ../passkey-demo.ts), a higher learning rate than
 * the paper's with a short warmup, and the tiny preset whose note pools hold the whole sample:
 * every token offers a note (τ1 = 0) and reads (τ2 = 0), and a pool of 104 notes, so while
 * training nothing is evicted and the token scorer learns from every read (at longer lengths, in
 * `passkey`, the pool must then choose by those learned scores).
 *
 * Measured (`time npm run train`, 2-core shared machine, 3 min 14 s in all): the held-out digit
 * accuracy sits near chance for ~300 steps, climbs slowly (0.26 at step 1000), then retrieval
 * takes hold (0.46 at 1400, 0.90 at 1600, 1.0 with exact match 1.0 at 1700; 0.99 / 0.97 at the
 * end). Tried on the way, over the first 300-800 steps: pools of 20, 50 and 64 notes, lr 1e-2 and
 * 2e-3, every byte scored (--task-loss all), dModel 64, batch 4, batch 16 at lr 3e-3, an unpooled
 * summary (summaryWindow 1) — each learned more slowly or not at all.
 */
export const PASSKEY_DEMO = Object.freeze({
  steps: 1800,
  seqLen: 104,
  batch: 8,
  accum: 1,
  lr: 5e-3,
  warmup: 30,
  evalEvery: 100,
  /** Held-out samples per evaluation. */
  evalSamples: 64,
  taskLoss: "answer" as "answer" | "all",
  filler: { kind: "classic" } as FillerSpec,
  /** Wall time of the plain `npm run train` on a 2-core CPU, printed at its start (measured: see the README). */
  expected: "about 1-2 minutes on a 2-core CPU (longer on a busy machine; the progress line shows the ETA)",
  /** Merged over the preset when neither --preset nor --config is given. */
  config: Object.freeze({ memory: { poolSize: 104, tau1: 0, tau2: 0, fusion: "residual" } }) as ConfigOverrides,
});

/** How train's docret start-up line names each query. */
const QUERY_LINE: Record<(typeof QUERY_KINDS)[number], string> = {
  "sentence": "a sentence",
  "first-words": "the gold document's first words",
  "last-words": "the gold document's last words (each id after its document)",
  "echo": "the gold document's last words, repeated by the answer before \"[Doc \" (each id after its document)",
};

/**
 * Defaults of the docret task (--task docret): samples of up to 4K bytes (k = 1…6 noise
 * paragraphs of the books, 1.5K–4K bytes; the evaluation's k = 10 is ~6K, k = 200 ~110K), the
 * passkey runs' optimizer settings on the GPU (lr 1e-3 after 100 warmup steps, batch 8), and 32
 * held-out samples of the validation split scored every 100 steps.
 */
export const DOCRET_TRAIN = Object.freeze({
  steps: 2000,
  seqLen: 4096,
  batch: 8,
  accum: 1,
  lr: 1e-3,
  warmup: 100,
  evalEvery: 100,
  evalSamples: 32,
  ks: Object.freeze([1, 2, 3, 4, 5, 6]) as readonly number[],
});

/** What `train` trains on: --task, else text with --data and the passkey demo without. */
export type TrainTask = "passkey" | "text" | "docret";
function taskOf(args: TrainArgs): TrainTask {
  return args.flags.task ?? (args.flags.data ? "text" : "passkey");
}

/** The plain demo: no --data, and none of the flags that change its size or length given. */
function isDemoDefault(args: TrainArgs): boolean {
  const sizing = ["data", "task", "model", "preset", "config", "steps", "seqLen", "batch", "accum", "evalEvery"] as const;
  return sizing.every((k) => !args.given.has(k));
}

function demoSummary(): string {
  const d = PASSKEY_DEMO;
  return `${d.steps} steps, ${d.seqLen}-byte samples, batch ${d.batch}, accumulation ${d.accum}, lr ${d.lr} after ${d.warmup} warmup steps, ` +
    `the answer digits and the "." after them scored, ${d.filler.kind} filler, evaluation on ${d.evalSamples} held-out samples every ${d.evalEvery} steps, ` +
    `and (without --preset or --config) the tiny preset with memory ${JSON.stringify(d.config.memory)}`;
}

/** The `train` command: its flags, parser and help. */
export const trainCommand = defineCommand({
  name: "train",
  summary: "train a byte-level MemMamba (or a Mamba / Transformer baseline); checkpoints, a JSONL log and a loss plot go to --out",
  usage: "bun run train [flags]      (deno task train [flags])",
  flags: {
    data: flag.path("a .txt file or a directory of them (e.g. ../shared/data/books): the text of the LM or the docret task; omitted: the built-in passkey task"),
    task: flag.enum(["passkey", "text", "docret"], "what to train on: the passkey demo, the byte-level LM on --data, or document retrieval among --data's paragraphs", { defaultLabel: "text with --data, else passkey" }),
    model: flag.enum(["memmamba", "mamba", "transformer"], "architecture", { default: "memmamba" }),
    preset: flag.enum(presetNames as unknown as readonly [PresetName, ...PresetName[]], "model size", {
      default: "tiny",
      defaultLabel: "tiny; the passkey demo without --preset and --config: tiny with the demo's memory settings (see below), so an explicit --preset tiny is the plain preset",
    }),
    config: flag.path("JSON file of config fields, merged over the preset"),
    backend: backendFlag,
    cpuKernels: cpuKernelsFlag,
    steps: flag.int("optimizer steps in all (a resumed run continues up to this)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.steps}; passkey demo ${PASSKEY_DEMO.steps}; docret ${DOCRET_TRAIN.steps}` }),
    seqLen: flag.int("tokens per training sequence (k = ×1024)", { positive: true, defaultLabel: `${TEXT_DEFAULTS.seqLen}; passkey demo ${PASSKEY_DEMO.seqLen}; docret ${DOCRET_TRAIN.seqLen}` }),
    batch: flag.int("sequences per micro-batch", { positive: true, defaultLabel: `${TEXT_DEFAULTS.batch}; passkey demo ${PASSKEY_DEMO.batch}; docret ${DOCRET_TRAIN.batch}` }),
    accum: flag.int("micro-batches per optimizer step (gradient accumulation)", { positive: true, defaultLabel: `${TEXT_DEFAULTS.accum}; passkey demo ${PASSKEY_DEMO.accum}; docret ${DOCRET_TRAIN.accum}` }),
    lr: flag.number("AdamW peak learning rate", { positive: true, defaultLabel: `${TEXT_DEFAULTS.lr}; passkey demo ${PASSKEY_DEMO.lr}; docret ${DOCRET_TRAIN.lr}` }),
    warmup: flag.int("steps of linear learning-rate warmup from 0, then constant (0: constant from the start)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.warmup}; passkey demo ${PASSKEY_DEMO.warmup}; docret ${DOCRET_TRAIN.warmup}` }),
    weightDecay: flag.number("AdamW decoupled weight decay", { default: TRAIN_DEFAULTS.weightDecay, min: 0 }),
    clip: flag.number("gradient clipping at this global norm (0: off)", { default: TRAIN_DEFAULTS.clip, min: 0 }),
    seed: flag.int("random seed (parameters, data order)", { default: TRAIN_DEFAULTS.seed, min: 0 }),
    out: flag.path("output directory: checkpoint.safetensors, train.jsonl, loss.svg", { default: "runs/train" }),
    resume: flag.bool("continue from <out>/checkpoint.safetensors, exactly where it stopped"),
    init: flag.path("start a fresh run from these weights (a checkpoint or an exported weights file of the same model config) instead of a random init; a resumed run continues from its checkpoint"),
    overwrite: flag.bool("start afresh even if <out> already holds a run: train.jsonl and loss.svg start afresh, the checkpoint is replaced at the first save (--steps 0: by the initial weights); other files there are left alone"),
    checkpointEvery: flag.int("steps between checkpoints", { default: 50, positive: true }),
    evalEvery: flag.int("steps between evaluations (passkey accuracy or validation loss; 0: never)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.evalEvery}; passkey demo ${PASSKEY_DEMO.evalEvery}; docret ${DOCRET_TRAIN.evalEvery}` }),
    maxBadSteps: flag.int("stop after this many consecutive NaN/Inf steps", { default: TRAIN_DEFAULTS.maxBadSteps, positive: true }),
    dtype: flag.enum(["F32", "F16", "BF16"], "weight storage type in checkpoints (F32 for exact resume)", { default: "F32" }),
    filler: flag.path("passkey task: filler text from this file or directory (default: the classic filler, \"The grass is green. …\")"),
    taskLoss: flag.enum(["answer", "all"], "passkey and docret tasks: score only the answer (the digits and the stop after them), or every next byte of the sample", { default: PASSKEY_DEMO.taskLoss }),
    answerWeight: flag.number("passkey and docret tasks with --task-loss all: weight of the answer digits relative to the other bytes", { positive: true, default: 1 }),
    docretK: flag.intList("docret task: noise-document counts, one drawn per row (a row that does not fit --seq-len is drawn again, then with a smaller k)", { positive: true, defaultLabel: DOCRET_TRAIN.ks.join(",") }),
    query: flag.enum(QUERY_KINDS, "docret task: what the question quotes from the gold document (last-words and echo also write each id after its document; echo's answer repeats the quoted words first; as `eval docret --query`)", { default: "sentence" }),
    docretChars: docretCharsFlag(`docret task: the documents' lengths, MIN,MAX characters (the paragraphs of --data that long; default ${PARAGRAPH_CHARS.join(",")}): short ones put the ids close together, a curriculum's first stage; recorded, and eval docret uses it unless told otherwise`),
    fillerSplit: flag.enum(["train", "validation", "all"], "passkey task: which books of --filler (the books' split; `passkey` evaluates on validation, so training on train keeps that text unseen)", { default: "train" }),
    maxMinutes: flag.number("time budget: stop cleanly at a step boundary once the next step would end later than this many minutes after start, write the checkpoint and exit 0 (continue with --resume)", { positive: true }),
  },
  epilog: `With --data, the defaults follow the paper: AdamW lr 1e-4 (constant), weight decay 0.1,
accumulation 4, clip 1.0, seed 123, the --preset model (tiny).
Without --data (the passkey demo) the defaults are the demo's own, chosen so that a tiny model
learns the task on a CPU (${PASSKEY_DEMO.expected}): ${demoSummary()}.
Any flag given explicitly wins over either set of defaults.
Examples:
  bun run train                                   # the passkey demo: a tiny MemMamba, 1-2 minutes on a 2-core CPU
  bun run train --model mamba --out runs/mamba    # the same demo without the notes (plain Mamba)
  bun run train --data ../shared/data/books --preset small --seq-len 2k --steps 20000 --out runs/books
  bun run train --task docret --data ../shared/data/books --preset small --out runs/docret
  bun run train --out runs/books --resume         # continue after an interruption`,
});

/** The parsed flags of `train`. */
export type TrainArgs = ParseResult<typeof trainCommand.spec.flags>;

/**
 * The model config from --preset, --config and --model (an explicit --model wins over the file).
 * The passkey demo (no --data) without --preset and --config uses the tiny preset with the
 * demo's memory settings (PASSKEY_DEMO.config).
 */
export function resolveConfig(args: TrainArgs): ModelConfig {
  const f = args.flags;
  const file = f.config ? readJsonFile("train", "--config", f.config) : {};
  const kind = args.given.has("model") || file.kind === undefined ? f.model : file.kind;
  const demo = taskOf(args) === "passkey" && !f.config && !args.given.has("preset") ? PASSKEY_DEMO.config : {};
  try {
    return preset(f.preset, { ...demo, ...file, kind } as Parameters<typeof preset>[1]);
  } catch (e) {
    throw new UsageError(`train: ${f.config ? `--config ${f.config}: ` : ""}${e instanceof Error ? e.message : String(e)}`);
  }
}

function fromInts(a: Int32Array, shape: number[]): Tensor {
  return fromArray(a, shape, "i32");
}

async function meanLoss(params: LMParams, batches: HostTokenBatch[]): Promise<number> {
  let s = 0;
  for (const b of batches) {
    const l = tidy(() => lm.loss(params, fromInts(b.inputs, [b.batch, b.seqLen]), fromInts(b.targets, [b.batch, b.seqLen])));
    s += await l.item();
    l.dispose();
  }
  return s / batches.length;
}

/** Runs `train` with parsed arguments; returns the trainer's result (the caller disposes its params). */
export async function runTrain(args: TrainArgs, io: CommandIO = defaultIO): Promise<TrainResult<LMParams>> {
  const log = io.err;
  const f = args.flags;
  requireOutDir("train", "--out", f.out);
  await selectBackend("train", f.backend, f.cpuKernels, io.err);
  const config = resolveConfig(args);
  const base = lmTrainable(lm, config);
  let model = base;
  if (f.init) {
    requirePath("train", "--init", f.init);
    const first = loadModelFile(f.init); // the file's errors (missing, truncated, not weights) name it
    disposeTree(first.params);
    const diff = firstDifference(JSON.parse(JSON.stringify(first.config)), base.config);
    if (diff) throw new UsageError(`train: --init ${f.init} holds another model config than this run's (${diff.replace("in the checkpoint", "in the file")}); pass the --preset / --config it was trained with`);
    // each call loads the file afresh (the trainer frees what init returns when it resumes instead)
    model = { ...base, init: () => loadModelFile(f.init!).params };
    log(`train: initial weights from ${f.init} (step ${first.checkpoint.step} of its run)${f.resume ? "; --resume continues from the checkpoint instead where one is" : ""}\n`);
  }
  const evalKey = random.foldIn(random.key(f.seed), 0x65766131); // "eva1": held-out samples, never trained on
  // the mode's defaults for what was not given (the demo has its own: see PASSKEY_DEMO)
  const task = taskOf(args);
  if (task !== "passkey" && !f.data) throw new UsageError(`train: --task ${task} needs --data (the books${task === "docret" ? " whose paragraphs are the documents" : ""})`);
  if (task === "passkey" && f.data) throw new UsageError(`train: --task passkey takes its filler from --filler, not --data`);
  // flags of another task: refused by name, never silently ignored
  const misplaced: [readonly (keyof TrainArgs["flags"])[], boolean, string][] = [
    [["filler", "fillerSplit"], task !== "passkey", `is for the passkey task (this is --task ${task})`],
    [["taskLoss", "answerWeight"], task === "text", "is for the passkey and docret tasks (the LM scores every byte)"],
    [["docretK", "query", "docretChars"], task !== "docret", `is for --task docret (this is --task ${task})`],
  ];
  for (const [keys, wrong, why] of misplaced) {
    for (const k of keys) if (wrong && args.given.has(k)) throw new UsageError(`train: --${kebab(k)} ${why}`);
  }
  const chars = paragraphChars("train", f.docretChars ?? PARAGRAPH_CHARS); // docret's document lengths: a bad pair is refused before any work
  const d = task === "text" ? TEXT_DEFAULTS : task === "docret" ? DOCRET_TRAIN : PASSKEY_DEMO;
  const steps = f.steps ?? d.steps;
  const seqLen = f.seqLen ?? d.seqLen;
  const batch = f.batch ?? d.batch;
  const accum = f.accum ?? d.accum;
  const lr = f.lr ?? d.lr;
  const warmup = f.warmup ?? d.warmup;
  const evalEvery = f.evalEvery ?? d.evalEvery;
  // what the start-up lines of each task share
  const m = config.memory;
  const modelLine = `a ${config.kind} of ${config.nLayers} layers × ${config.dModel}` +
    (config.kind === "memmamba" && m.enabled ? ` (notes: pool ${m.poolSize}, τ1 ${m.tau1}, τ2 ${m.tau2}, fusion ${m.fusion})` : "");
  const planLine = `${steps} steps of batch ${batch}×${accum}, lr ${lr}${warmup > 0 ? ` after ${warmup} warmup steps` : " (constant)"}`;
  const weights = f.taskLoss === "all" ? { answerWeight: f.answerWeight, otherWeight: 1 } : { answerWeight: 1, otherWeight: 0 };
  let data;
  let evaluate: (params: LMParams) => Promise<Record<string, number>>;
  if (task === "text") {
    requirePath("train", "--data", f.data!);
    const split = splitTexts(loadTexts(f.data!));
    log(`train: ${split.train.length} training and ${split.validation.length} validation documents (${split.rule})\n`);
    requireWindow("train", f.data!, split.train, "training", seqLen);
    requireWindow("train", f.data!, split.validation, "validation", seqLen);
    log(
      `train: byte-level LM: a ${config.kind} of ${config.nLayers} layers × ${config.dModel}; ${seqLen}-byte windows; ${planLine}, weight decay ${f.weightDecay}, clip ${f.clip}\n`,
    );
    data = (key: random.Key) => {
      const sampler = new WindowSampler(split.train, seqLen, key);
      return tokenSource((i) => sampler.batch(i, batch));
    };
    const valSampler = new WindowSampler(split.validation, seqLen, evalKey);
    const valBatches = [0, 1].map((i) => valSampler.batch(i, batch));
    evaluate = async (params) => ({ valLoss: await meanLoss(params, valBatches) });
  } else if (task === "docret") {
    requirePath("train", "--data", f.data!);
    const split = splitTexts(loadTexts(f.data!));
    const [trainParas, valParas] = [paragraphsOf(split.train, chars), paragraphsOf(split.validation, chars)];
    const ks = f.docretK ?? DOCRET_TRAIN.ks;
    const need = Math.max(...ks) + 1;
    for (const [name, p] of [["training", trainParas], ["validation", valParas]] as const) {
      if (p.length < need) {
        throw new UsageError(`train: --data ${f.data} has ${p.length} ${name} paragraphs of ${chars.minChars}-${chars.maxChars} characters; --docret-k up to ${need - 1} needs ${need} (add books${f.docretChars ? " or widen --docret-chars" : ""})`);
      }
    }
    const opts = { seqLen, ks, query: f.query, ...weights };
    data = (key: random.Key) => tokenSource((i) => docretTrainingBatch({ key, step: i, batch, paragraphs: trainParas, ...opts }));
    const held = docretTrainingBatch({ key: evalKey, step: 0, batch: DOCRET_TRAIN.evalSamples, paragraphs: valParas, ...opts, answerWeight: 1, otherWeight: 0 });
    evaluate = (params) => answerScores(params, held, held.answerSpans);
    log(`train: docret: ${trainParas.length} training and ${valParas.length} validation paragraphs of ${chars.minChars}-${chars.maxChars} characters of ${f.data} (${split.rule})\n`);
    log(
      `train: docret: ${modelLine}` +
        `; one sample a row of ${seqLen} tokens, k = ${ks.join(",")} noise paragraphs, the question quoting ${QUERY_LINE[f.query]}; ` +
        (f.taskLoss === "all" ? `every byte of a sample scored (answer ×${f.answerWeight})` : "the id's digits and the \"]\" after them scored") +
        `; ${planLine}` +
        (evalEvery > 0
          ? `; ${DOCRET_TRAIN.evalSamples} held-out samples of the validation paragraphs scored every ${evalEvery} steps (evalLoss: the id digits' loss, ln 10 ≈ 2.30 is guessing; digitAcc; exactMatch: the id and "]")\n`
          : "; no held-out scores (--eval-every 0)\n"),
    );
  } else {
    if (seqLen < MIN_PASSKEY_SEQ_LEN) {
      throw new UsageError(`train: --seq-len ${seqLen} is too short for the passkey task (it needs at least ${MIN_PASSKEY_SEQ_LEN})`);
    }
    let filler: FillerSpec = PASSKEY_DEMO.filler;
    if (f.filler) {
      requirePath("train", "--filler", f.filler);
      const part = splitPart(loadTexts(f.filler), f.fillerSplit);
      filler = { kind: "text", docs: part.docs };
      log(`train: passkey filler: ${part.docs.length} documents of ${f.filler} (${part.rule})\n`);
    }
    data = (key: random.Key) => tokenSource((i) => passkeyStopBatch({ key, step: i, batch, seqLen, filler, ...weights }));
    const held = passkeyStopBatch({ key: evalKey, step: 0, batch: PASSKEY_DEMO.evalSamples, seqLen, filler });
    evaluate = (params) => passkeyScores(params, held);
    log(
      `train: passkey demo: ${modelLine}` +
        `; ${seqLen}-byte samples (${filler.kind} filler, the needle at a random depth), ` +
        (f.taskLoss === "all" ? `every byte scored (answer ×${f.answerWeight})` : "the 5 answer digits and the \".\" after them scored") +
        `; ${planLine}` +
        (evalEvery > 0
          ? `; ${PASSKEY_DEMO.evalSamples} held-out samples scored every ${evalEvery} steps (evalLoss: answer-digit loss, ln 10 ≈ 2.30 is guessing; digitAcc: chance 0.1; exactMatch: all 5 digits and the \".\")\n`
          : "; no held-out scores (--eval-every 0)\n"),
    );
    if (isDemoDefault(args)) log(`train: expected time: ${PASSKEY_DEMO.expected}\n`);
  }
  const files = runFiles(f.out);
  if (f.overwrite && !f.resume && existsSync(files.checkpoint)) {
    // what passkey / eval wrote beside the checkpoint being replaced is not train's to delete
    const own = new Set([files.checkpoint, files.log, files.plot].map((p) => basename(p)));
    const others = readdirSync(f.out, { withFileTypes: true })
      .filter((e) => !own.has(e.name) && !e.name.startsWith(`${basename(files.checkpoint)}.tmp-`))
      .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
      .sort();
    if (others.length > 0) {
      log(`train: note: ${f.out} also holds ${others.join(", ")} from before, not this run's (results of the checkpoint it replaces, say); ` +
        `--overwrite replaces only ${basename(files.checkpoint)}, ${basename(files.log)} and ${basename(files.plot)}\n`);
    }
  }
  const result = await train(model, data, {
    steps,
    out: f.out,
    lr: warmup > 0 ? schedule.linearWarmup({ peak: lr, warmup }) : lr,
    weightDecay: f.weightDecay,
    accum,
    clip: f.clip,
    seed: f.seed,
    checkpointEvery: f.checkpointEvery,
    resume: f.resume,
    overwrite: f.overwrite,
    maxBadSteps: f.maxBadSteps,
    dtype: f.dtype,
    extra: { task, seqLen: String(seqLen), ...(f.init ? { init: f.init } : {}), ...(task === "docret" ? { docretK: (f.docretK ?? DOCRET_TRAIN.ks).join(","), query: f.query, docretChars: `${chars.minChars},${chars.maxChars}` } : {}) },
    saveOptions: saveHangFromEnv(), // undefined unless a test sets MEMMAMBA_TEST_SAVE_HANG (../save-hook.ts)
    // counted from the process's start (start-up and backend compilation are part of a job's time)
    deadline: f.maxMinutes !== undefined ? performance.timeOrigin + f.maxMinutes * 60_000 : undefined,
    progress: io.progress === false ? false : { stream: io.progress },
    logExtras: true,
    onStart: evalEvery > 0 ? (params) => evaluate(params as LMParams) : undefined, // the untrained model's scores: the baseline
    onStep: evalEvery > 0
      ? async (rec, params) => (rec.step % evalEvery === 0 || rec.step === steps ? await evaluate(params as LMParams) : undefined)
      : undefined,
  });
  log(`train: log ${files.log}${existsSync(files.plot) ? `, loss plot ${files.plot}` : ""}\n`);
  if (task === "docret" && result.checkpointStep !== undefined) {
    log(`train: next: bun run eval docret --checkpoint ${result.checkpoint} --data ${f.data} --split validation --k 10,20 --samples 10   (it asks with the query trained on)\n`);
  }
  if (task === "passkey" && result.checkpointStep !== undefined) {
    // passkey at the trained prompt length (a row is the prompt, then 5 digits and the stop: seq-len − 5 bytes) and at 2× and 4× it
    const p = seqLen - 5;
    log(`train: next: deno task passkey --checkpoint ${result.checkpoint} --lengths ${p},${2 * p},${4 * p} --samples 4\n`);
  }
  if (result.status === "timeout") {
    log(result.checkpointStep === undefined
      ? `train: stopped by --max-minutes ${f.maxMinutes} before the first step ended (start-up and the first evaluation took the budget); no checkpoint written\n`
      : `train: stopped by --max-minutes ${f.maxMinutes} at step ${result.step} of ${steps}; checkpoint ${result.checkpoint}; continue with the same flags and --resume\n`);
  }
  return result;
}
