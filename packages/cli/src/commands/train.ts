/**
 * `bun run train`: trains a language model (memmamba, mamba or transformer) with ../trainer.ts.
 *
 * Without --data it trains on the built-in passkey task (generated filler, the answer digits are
 * the only targets scored) and reports the passkey accuracy on held-out samples every
 * --eval-every steps; with --data it trains the byte-level LM on text windows (the books'
 * suggested split: see memmamba/src/data/text.ts) and reports the validation loss.
 */
import { fromArray, random, schedule, tidy, type Tensor } from "@memmamba/tensor";
import { lm, preset, presetNames, type ConfigOverrides, type LMParams, type ModelConfig, type PresetName } from "@memmamba/memmamba";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { lmTrainable, tokenSource, type HostTokenBatch } from "../adapters.ts";
import { runFiles, train, TRAIN_DEFAULTS, type TrainResult } from "../trainer.ts";
import { type CommandIO, defaultIO, readJsonFile, requirePath, selectBackend } from "./common.ts";
import { loadTexts, splitTexts, WindowSampler } from "@memmamba/memmamba";
import { type FillerSpec, FIXED_BYTES, PASSKEY_DIGITS, passkeyTrainingBatch } from "@memmamba/memmamba";

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
 * Defaults of the passkey demo (no --data), measured on a 2-core CPU (see the README): a short
 * classic-filler passkey sample, the answer digits as the only targets, a higher learning rate
 * with a short warmup, and a tiny model whose note pools are tuned for the task — every token
 * offers a note (τ1 = 0), every token reads (τ2 = 0), and a pool of 10 notes, so the pool
 * has to choose (priority replacement) and ends up holding the key's digits.
 */
export const PASSKEY_DEMO = Object.freeze({
  steps: 800,
  seqLen: 104,
  batch: 8,
  accum: 1,
  lr: 5e-3,
  warmup: 30,
  evalEvery: 50,
  /** Held-out samples per evaluation. */
  evalSamples: 64,
  taskLoss: "answer" as "answer" | "all",
  filler: { kind: "classic" } as FillerSpec,
  /** Merged over the preset when neither --preset nor --config is given. */
  config: Object.freeze({ memory: { poolSize: 10, tau1: 0, tau2: 0, fusion: "residual" } }) as ConfigOverrides,
});

function demoSummary(): string {
  const d = PASSKEY_DEMO;
  return `${d.steps} steps, ${d.seqLen}-byte samples, batch ${d.batch}, accumulation ${d.accum}, lr ${d.lr} after ${d.warmup} warmup steps, ` +
    `the answer digits scored, ${d.filler.kind} filler, evaluation on ${d.evalSamples} held-out samples every ${d.evalEvery} steps, ` +
    `and (without --preset or --config) the tiny preset with memory ${JSON.stringify(d.config.memory)}`;
}

export const trainCommand = defineCommand({
  name: "train",
  summary: "train a byte-level MemMamba (or a Mamba / Transformer baseline); checkpoints, a JSONL log and a loss plot go to --out",
  usage: "bun run train [flags]      (deno task train [flags])",
  flags: {
    data: flag.path("a .txt file or a directory of them (e.g. ../shared/data/books); omitted: the built-in passkey task"),
    model: flag.enum(["memmamba", "mamba", "transformer"], "architecture", { default: "memmamba" }),
    preset: flag.enum(presetNames as unknown as readonly [PresetName, ...PresetName[]], "model size", { default: "tiny" }),
    config: flag.path("JSON file of config fields, merged over the preset"),
    backend: flag.enum(["cpu", "webgpu"], "tensor backend", { default: "cpu" }),
    steps: flag.int("optimizer steps in all (a resumed run continues up to this)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.steps}; passkey demo ${PASSKEY_DEMO.steps}` }),
    seqLen: flag.int("tokens per training sequence (k = ×1024)", { positive: true, defaultLabel: `${TEXT_DEFAULTS.seqLen}; passkey demo ${PASSKEY_DEMO.seqLen}` }),
    batch: flag.int("sequences per micro-batch", { positive: true, defaultLabel: `${TEXT_DEFAULTS.batch}; passkey demo ${PASSKEY_DEMO.batch}` }),
    accum: flag.int("micro-batches per optimizer step (gradient accumulation)", { positive: true, defaultLabel: `${TEXT_DEFAULTS.accum}; passkey demo ${PASSKEY_DEMO.accum}` }),
    lr: flag.number("AdamW peak learning rate", { positive: true, defaultLabel: `${TEXT_DEFAULTS.lr}; passkey demo ${PASSKEY_DEMO.lr}` }),
    warmup: flag.int("steps of linear learning-rate warmup from 0, then constant (0: constant from the start)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.warmup}; passkey demo ${PASSKEY_DEMO.warmup}` }),
    weightDecay: flag.number("AdamW decoupled weight decay", { default: TRAIN_DEFAULTS.weightDecay, min: 0 }),
    clip: flag.number("gradient clipping at this global norm (0: off)", { default: TRAIN_DEFAULTS.clip, min: 0 }),
    seed: flag.int("random seed (parameters, data order)", { default: TRAIN_DEFAULTS.seed, min: 0 }),
    out: flag.path("output directory: checkpoint.safetensors, train.jsonl, loss.svg", { default: "runs/train" }),
    resume: flag.bool("continue from <out>/checkpoint.safetensors, exactly where it stopped"),
    overwrite: flag.bool("start afresh even if <out> already holds a checkpoint (it is replaced at the first save)"),
    checkpointEvery: flag.int("steps between checkpoints", { default: 50, positive: true }),
    evalEvery: flag.int("steps between evaluations (passkey accuracy or validation loss; 0: never)", { min: 0, defaultLabel: `${TEXT_DEFAULTS.evalEvery}; passkey demo ${PASSKEY_DEMO.evalEvery}` }),
    maxBadSteps: flag.int("stop after this many consecutive NaN/Inf steps", { default: TRAIN_DEFAULTS.maxBadSteps, positive: true }),
    dtype: flag.enum(["F32", "F16", "BF16"], "weight storage type in checkpoints (F32 for exact resume)", { default: "F32" }),
    filler: flag.path("passkey task: filler text from this file or directory (default: the classic filler, \"The grass is green. …\")"),
    taskLoss: flag.enum(["answer", "all"], "passkey task: score only the 5 answer digits, or every next byte (filler, needle, question and answer)", { default: PASSKEY_DEMO.taskLoss }),
    answerWeight: flag.number("passkey task with --task-loss all: weight of the answer digits relative to the other bytes", { positive: true, default: 1 }),
  },
  epilog: `With --data, the defaults follow the paper: AdamW lr 1e-4 (constant), weight decay 0.1,
accumulation 4, clip 1.0, seed 123, the --preset model (tiny).
Without --data (the passkey demo) the defaults are the demo's own, chosen so that a tiny model
learns the task on a CPU in a few minutes: ${demoSummary()}.
Any flag given explicitly wins over either set of defaults.
Examples:
  bun run train                                   # the passkey demo: a tiny MemMamba, a few minutes on a CPU
  bun run train --model mamba --out runs/mamba    # the same demo without the notes (plain Mamba)
  bun run train --data ../shared/data/books --preset small --seq-len 2k --steps 20000 --out runs/books
  bun run train --out runs/books --resume         # continue after an interruption`,
});

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
  const demo = !f.data && !f.config && !args.given.has("preset") ? PASSKEY_DEMO.config : {};
  try {
    return preset(f.preset, { ...demo, ...file, kind } as Parameters<typeof preset>[1]);
  } catch (e) {
    throw new Error(`${f.config ? `--config ${f.config}: ` : ""}${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Teacher-forced scores on the answer digits of held-out rows: `exactMatch` = rows whose 5 digits
 * are all right (the same as greedy exact match of the 5 digits), `digitAcc` = digits right
 * (partial credit, chance 0.1), `evalLoss` = the mean cross-entropy of the answer digits (nats;
 * guessing digits gives ln 10 ≈ 2.30).
 */
async function passkeyScores(params: LMParams, batch: HostTokenBatch): Promise<{ evalLoss: number; digitAcc: number; exactMatch: number }> {
  const { batch: B, seqLen: L } = batch;
  const logits = tidy(() => lm.apply(params, fromInts(batch.inputs, [B, L])).logits);
  const v = await logits.data();
  logits.dispose();
  const V = v.length / (B * L);
  let rows = 0;
  let digits = 0;
  let nll = 0;
  for (let r = 0; r < B; r++) {
    let all = true;
    for (let t = L - PASSKEY_DIGITS; t < L; t++) {
      const row = v.subarray((r * L + t) * V, (r * L + t + 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(row[i] - row[best]);
      const target = batch.targets[r * L + t];
      nll += Math.log(z) - (row[target] - row[best]);
      if (best === target) digits++;
      else all = false;
    }
    if (all) rows++;
  }
  return { evalLoss: nll / (B * PASSKEY_DIGITS), digitAcc: digits / (B * PASSKEY_DIGITS), exactMatch: rows / B };
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
  selectBackend("train", f.backend);
  const config = resolveConfig(args);
  const model = lmTrainable(lm, config);
  const evalKey = random.foldIn(random.key(f.seed), 0x65766131); // "eva1": held-out samples, never trained on
  // the mode's defaults for what was not given (the demo has its own: see PASSKEY_DEMO)
  const d = f.data ? TEXT_DEFAULTS : PASSKEY_DEMO;
  const steps = f.steps ?? d.steps;
  const seqLen = f.seqLen ?? d.seqLen;
  const batch = f.batch ?? d.batch;
  const accum = f.accum ?? d.accum;
  const lr = f.lr ?? d.lr;
  const warmup = f.warmup ?? d.warmup;
  const evalEvery = f.evalEvery ?? d.evalEvery;
  let data;
  let evaluate: (params: LMParams) => Promise<Record<string, number>>;
  if (f.data) {
    requirePath("train", "--data", f.data);
    const split = splitTexts(loadTexts(f.data));
    log(`train: ${split.train.length} training and ${split.validation.length} validation documents (${split.rule})\n`);
    data = (key: random.Key) => {
      const sampler = new WindowSampler(split.train, seqLen, key);
      return tokenSource((i) => sampler.batch(i, batch));
    };
    const valSampler = new WindowSampler(split.validation, seqLen, evalKey);
    const valBatches = [0, 1].map((i) => valSampler.batch(i, batch));
    evaluate = async (params) => ({ valLoss: await meanLoss(params, valBatches) });
  } else {
    if (seqLen < FIXED_BYTES + PASSKEY_DIGITS - 1) {
      throw new UsageError(`train: --seq-len ${seqLen} is too short for the passkey task (it needs at least ${FIXED_BYTES + PASSKEY_DIGITS - 1})`);
    }
    let filler: FillerSpec = PASSKEY_DEMO.filler;
    if (f.filler) {
      requirePath("train", "--filler", f.filler);
      filler = { kind: "text", docs: loadTexts(f.filler) };
    }
    const weights = f.taskLoss === "all" ? { answerWeight: f.answerWeight, otherWeight: 1 } : { answerWeight: 1, otherWeight: 0 };
    data = (key: random.Key) => tokenSource((i) => passkeyTrainingBatch({ key, step: i, batch, seqLen, filler, ...weights }));
    const held = passkeyTrainingBatch({ key: evalKey, step: 0, batch: PASSKEY_DEMO.evalSamples, seqLen, filler });
    evaluate = (params) => passkeyScores(params, held);
    const m = config.memory;
    log(
      `train: passkey demo: a ${config.kind} of ${config.nLayers} layers × ${config.dModel}` +
        (config.kind === "memmamba" && m.enabled ? ` (notes: pool ${m.poolSize}, τ1 ${m.tau1}, τ2 ${m.tau2}, fusion ${m.fusion})` : "") +
        `; ${seqLen}-byte samples (${filler.kind} filler, the needle at a random depth), ` +
        (f.taskLoss === "all" ? `every byte scored (answer ×${f.answerWeight})` : "the 5 answer digits scored") +
        `; ${steps} steps of batch ${batch}×${accum}, lr ${lr}${warmup > 0 ? ` after ${warmup} warmup steps` : " (constant)"}` +
        `; ${PASSKEY_DEMO.evalSamples} held-out samples scored every ${evalEvery} steps (evalLoss: answer-digit loss, ln 10 ≈ 2.30 is guessing; digitAcc: chance 0.1; exactMatch: all 5 digits)\n`,
    );
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
    extra: { task: f.data ? "text" : "passkey", seqLen: String(seqLen) },
    progress: io.progress === false ? false : { stream: io.progress },
    logExtras: true,
    onStep: evalEvery > 0
      ? async (rec, params) => (rec.step % evalEvery === 0 || rec.step === steps ? await evaluate(params as LMParams) : undefined)
      : undefined,
  });
  const files = runFiles(f.out);
  log(`train: log ${files.log}, loss plot ${files.plot}\n`);
  return result;
}
