/**
 * `bun run train`: trains a language model (memmamba, mamba or transformer) with ../trainer.ts.
 *
 * Without --data it trains on the built-in passkey task (generated filler, the answer digits are
 * the only targets scored) and reports the passkey accuracy on held-out samples every
 * --eval-every steps; with --data it trains the byte-level LM on text windows (the books'
 * suggested split: see memmamba/src/data/text.ts) and reports the validation loss.
 */
import { fromArray, random, tidy, type Tensor } from "@memmamba/tensor";
import { lm, preset, presetNames, type LMParams, type ModelConfig, type PresetName } from "@memmamba/memmamba";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { lmTrainable, tokenSource, type HostTokenBatch } from "../adapters.ts";
import { runFiles, train, TRAIN_DEFAULTS, type TrainResult } from "../trainer.ts";
import { type CommandIO, defaultIO, readJsonFile, requirePath, selectBackend } from "./common.ts";
import { loadTexts, splitTexts, WindowSampler } from "@memmamba/memmamba";
import { type FillerSpec, FIXED_BYTES, PASSKEY_DIGITS, passkeyTrainingBatch } from "@memmamba/memmamba";

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
    steps: flag.int("optimizer steps in all (a resumed run continues up to this)", { default: 200, min: 0 }),
    seqLen: flag.int("tokens per training sequence (k = ×1024)", { default: 128, positive: true }),
    batch: flag.int("sequences per micro-batch", { default: 4, positive: true }),
    accum: flag.int("micro-batches per optimizer step (gradient accumulation)", { default: TRAIN_DEFAULTS.accum, positive: true }),
    lr: flag.number("AdamW learning rate (constant)", { default: TRAIN_DEFAULTS.lr, positive: true }),
    weightDecay: flag.number("AdamW decoupled weight decay", { default: TRAIN_DEFAULTS.weightDecay, min: 0 }),
    clip: flag.number("gradient clipping at this global norm (0: off)", { default: TRAIN_DEFAULTS.clip, min: 0 }),
    seed: flag.int("random seed (parameters, data order)", { default: TRAIN_DEFAULTS.seed, min: 0 }),
    out: flag.path("output directory: checkpoint.safetensors, train.jsonl, loss.svg", { default: "runs/train" }),
    resume: flag.bool("continue from <out>/checkpoint.safetensors, exactly where it stopped"),
    overwrite: flag.bool("start afresh even if <out> already holds a checkpoint (it is replaced at the first save)"),
    checkpointEvery: flag.int("steps between checkpoints", { default: 50, positive: true }),
    evalEvery: flag.int("steps between evaluations (passkey accuracy or validation loss; 0: never)", { default: 50, min: 0 }),
    maxBadSteps: flag.int("stop after this many consecutive NaN/Inf steps", { default: TRAIN_DEFAULTS.maxBadSteps, positive: true }),
    dtype: flag.enum(["F32", "F16", "BF16"], "weight storage type in checkpoints (F32 for exact resume)", { default: "F32" }),
    filler: flag.path("passkey task: filler text from this file or directory (default: generated)"),
    taskLoss: flag.enum(["answer", "all"], "passkey task: score only the 5 answer digits, or every next byte (filler, needle and answer)", { default: "answer" }),
  },
  epilog: `Defaults follow the paper: AdamW lr 1e-4, weight decay 0.1, constant LR, accumulation 4, clip 1.0, seed 123.
Examples:
  bun run train                                   # tiny MemMamba on the passkey task
  bun run train --data ../shared/data/books --preset small --seq-len 2k --steps 20000 --out runs/books
  bun run train --out runs/books --resume         # continue after an interruption`,
});

export type TrainArgs = ParseResult<typeof trainCommand.spec.flags>;

/** The model config from --preset, --config and --model (an explicit --model wins over the file). */
export function resolveConfig(args: TrainArgs): ModelConfig {
  const f = args.flags;
  const file = f.config ? readJsonFile("train", "--config", f.config) : {};
  const kind = args.given.has("model") || file.kind === undefined ? f.model : file.kind;
  try {
    return preset(f.preset, { ...file, kind } as Parameters<typeof preset>[1]);
  } catch (e) {
    throw new Error(`${f.config ? `--config ${f.config}: ` : ""}${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Teacher-forced accuracy on the answer digits: `acc` = rows whose 5 digits are all right (the
 * same as greedy exact match of the 5 digits), `digitAcc` = digits right (partial credit).
 */
async function passkeyAccuracy(params: LMParams, batch: HostTokenBatch): Promise<{ acc: number; digitAcc: number }> {
  const { batch: B, seqLen: L } = batch;
  const logits = tidy(() => lm.apply(params, fromInts(batch.inputs, [B, L])).logits);
  const v = await logits.data();
  logits.dispose();
  const V = v.length / (B * L);
  let rows = 0;
  let digits = 0;
  for (let r = 0; r < B; r++) {
    let all = true;
    for (let t = L - PASSKEY_DIGITS; t < L; t++) {
      const row = v.subarray((r * L + t) * V, (r * L + t + 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
      if (best === batch.targets[r * L + t]) digits++;
      else all = false;
    }
    if (all) rows++;
  }
  return { acc: rows / B, digitAcc: digits / (B * PASSKEY_DIGITS) };
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
  let data;
  let evaluate: (params: LMParams) => Promise<Record<string, number>>;
  if (f.data) {
    requirePath("train", "--data", f.data);
    const split = splitTexts(loadTexts(f.data));
    log(`train: ${split.train.length} training and ${split.validation.length} validation documents (${split.rule})\n`);
    const seqLen = f.seqLen;
    data = (key: random.Key) => {
      const sampler = new WindowSampler(split.train, seqLen, key);
      return tokenSource((i) => sampler.batch(i, f.batch));
    };
    const valSampler = new WindowSampler(split.validation, seqLen, evalKey);
    const valBatches = [0, 1].map((i) => valSampler.batch(i, f.batch));
    evaluate = async (params) => ({ valLoss: await meanLoss(params, valBatches) });
  } else {
    if (f.seqLen < FIXED_BYTES + PASSKEY_DIGITS - 1) {
      throw new UsageError(`train: --seq-len ${f.seqLen} is too short for the passkey task (it needs at least ${FIXED_BYTES + PASSKEY_DIGITS - 1})`);
    }
    let filler: FillerSpec = { kind: "random" };
    if (f.filler) {
      requirePath("train", "--filler", f.filler);
      filler = { kind: "text", docs: loadTexts(f.filler) };
    }
    const all = f.taskLoss === "all";
    data = (key: random.Key) =>
      tokenSource((i) => {
        const b = passkeyTrainingBatch({ key, step: i, batch: f.batch, seqLen: f.seqLen, filler });
        return all ? { ...b, mask: undefined } : b; // no mask: the model's plain next-byte loss
      });
    const held = passkeyTrainingBatch({ key: evalKey, step: 0, batch: 16, seqLen: f.seqLen, filler });
    evaluate = async (params) => {
      const a = await passkeyAccuracy(params, held);
      return { passkeyAcc: a.acc, passkeyDigitAcc: a.digitAcc };
    };
    log(`train: passkey task, ${f.seqLen}-byte samples, needle at random depths (${filler.kind} filler)\n`);
  }
  const result = await train(model, data, {
    steps: f.steps,
    out: f.out,
    lr: f.lr,
    weightDecay: f.weightDecay,
    accum: f.accum,
    clip: f.clip,
    seed: f.seed,
    checkpointEvery: f.checkpointEvery,
    resume: f.resume,
    overwrite: f.overwrite,
    maxBadSteps: f.maxBadSteps,
    dtype: f.dtype,
    extra: { task: f.data ? "text" : "passkey", seqLen: String(f.seqLen) },
    progress: io.progress === false ? false : { stream: io.progress },
    onStep: f.evalEvery > 0
      ? async (rec, params) => (rec.step % f.evalEvery === 0 || rec.step === f.steps ? await evaluate(params as LMParams) : undefined)
      : undefined,
  });
  const files = runFiles(f.out);
  log(`train: log ${files.log}, loss plot ${files.plot}\n`);
  return result;
}
