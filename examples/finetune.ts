/**
 * Fine-tuning a MemMamba language model on a text of your own, with a plain AdamW loop.
 *
 *   bun examples/finetune.ts [model.safetensors] [--text FILE] [--steps N] [--lr X] [--seq N] [--batch N] [--save FILE]
 *   deno run -A examples/finetune.ts [...]
 *
 * The model: the file given (a training checkpoint from `npm run train`, or a shipped weights
 * file), else the shipped MemMamba weights under weights/ when there are any (not the Mamba
 * baseline shipped beside them), else a tiny model trained here from scratch for `--pretrain`
 * steps on a built-in paragraph (so the fine-tuning starts from a model that has learned
 * something, not from noise). It then takes `--steps` AdamW steps on
 * random windows of the text (a built-in poem unless --text) and prints the loss as it falls.
 * `--save FILE` writes the result as a training checkpoint that the CLI and the demo page read.
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { adamw, disposeTree, fromArray, random, valueAndGrad, type Tensor } from "@memmamba/tensor";
import { lm, preset, type LMParams } from "@memmamba/memmamba";
import { saveCheckpoint } from "@memmamba/cli";
import { loadModelSource } from "./model-source.ts";

/** The text fine-tuned on by default (ours, written for this example). */
export const DEFAULT_TEXT =
  "Row the little boat along the quiet river, row it past the mill and past the willow.\n" +
  "Count the swallows on the wire, one and two and three, and tell the miller's daughter.\n" +
  "Row the little boat along the quiet river, row it home before the evening bell.\n";

/** What the tiny from-scratch model learns first (ours too). */
const PRETRAIN_TEXT =
  "The cat sat on the mat. The dog sat on the log. The bird sat in the tree and sang to the sun. " +
  "The fish swam in the pond, and the frog sat on the stone beside it. ";

export interface FinetuneOptions {
  params: LMParams;
  text: Uint8Array;
  steps: number;
  /** Windows per step (default 4). */
  batch?: number;
  /** Bytes per window (default 64). */
  seqLen?: number;
  /** AdamW learning rate (default 3e-3: a few steps must show the loss falling). */
  lr?: number;
  seed?: number;
  /** Receives one line per step. */
  log?: (line: string) => void;
}

export interface FinetuneResult {
  /** The new parameters (the ones given were replaced and freed by the optimizer). */
  params: LMParams;
  /** The loss (nats per byte) at each step, before its update. */
  losses: number[];
  ms: number;
}

/** Windows [B, L + 1] of `text` at offsets drawn from `key`: inputs and next-byte targets. */
function windows(text: Uint8Array, key: random.Key, B: number, L: number): { inputs: Tensor; targets: Tensor } {
  const starts = random.randintArray(key, B, 0, text.length - L);
  const x = new Int32Array(B * L), y = new Int32Array(B * L);
  starts.forEach((s, b) => {
    for (let i = 0; i < L; i++) {
      x[b * L + i] = text[s + i];
      y[b * L + i] = text[s + i + 1];
    }
  });
  return { inputs: fromArray(x, [B, L], "i32"), targets: fromArray(y, [B, L], "i32") };
}

/** `steps` AdamW steps of next-byte loss on random windows of `text`. Consumes `params`. */
export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const B = opts.batch ?? 4, L = opts.seqLen ?? 64, lr = opts.lr ?? 3e-3;
  if (opts.text.length < L + 2) throw new RangeError(`finetune: the text has ${opts.text.length} bytes; it needs more than --seq + 1 = ${L + 1}`);
  if (opts.params.config.kind === "transformer") throw new Error("finetune: this example streams a recurrent model; the transformer baseline is not one");
  const key = random.key(opts.seed ?? 0);
  const t0 = performance.now();
  let params = opts.params;
  let opt = adamw.init(params);
  const losses: number[] = [];
  for (let s = 0; s < opts.steps; s++) {
    const { inputs, targets } = windows(opts.text, random.foldIn(key, s), B, L);
    const { value, grads } = valueAndGrad((p: LMParams) => lm.loss(p, inputs, targets))(params);
    losses.push(await value.item());
    ({ params, state: opt } = adamw.update(params, grads, opt, { lr, weightDecay: 0 }));
    disposeTree([value, grads, inputs, targets]);
    opts.log?.(`step ${String(s + 1).padStart(4)}  loss ${losses[s].toFixed(4)} nats/byte  (${(losses[s] / Math.LN2).toFixed(3)} bits/byte)`);
  }
  disposeTree(opt);
  return { params, losses, ms: performance.now() - t0 };
}

/** A tiny model trained from scratch for `steps` steps on a built-in paragraph. */
export async function freshlyTrainedTiny(steps: number, seed = 0, log?: (line: string) => void): Promise<LMParams> {
  const params = lm.init(random.key(seed), preset("tiny"));
  if (steps === 0) return params;
  const r = await finetune({ params, text: new TextEncoder().encode(PRETRAIN_TEXT.repeat(4)), steps, lr: 1e-2, seed: seed + 1, log });
  return r.params;
}

export interface Args {
  model?: string;
  text?: string;
  steps: number;
  pretrain: number;
  lr: number;
  seq: number;
  batch: number;
  seed: number;
  save?: string;
}

export const HELP = `usage: finetune.ts [MODEL.safetensors] [options]
Fine-tunes a MemMamba model on a text and prints the loss at every step.
  MODEL            a training checkpoint or a weights file (default: the MemMamba among
                   weights/*.safetensors, else a tiny model trained here from scratch for
                   --pretrain steps)
  --text FILE      the text to fine-tune on (default: a built-in poem)
  --steps N        fine-tuning steps (default 30)
  --pretrain N     from-scratch steps when no model file is found (default 40)
  --lr X           AdamW learning rate (default 0.003)
  --seq N          bytes per window (default 64)
  --batch N        windows per step (default 4)
  --seed N         which windows are drawn (default 0)
  --save FILE      write the fine-tuned model as a checkpoint
  --help`;

function num(name: string, v: string | undefined, int: boolean, min: number): number {
  const n = Number(v);
  if (v === undefined || v === "" || !Number.isFinite(n) || (int && !Number.isSafeInteger(n)) || n < min) {
    throw new Error(`--${name} needs ${int ? "an integer" : "a number"} >= ${min}, got ${v === undefined ? "nothing" : `"${v}"`}`);
  }
  return n;
}

/** Parses the command line; null means --help. Errors name the flag. */
export function parseArgs(argv: readonly string[]): Args | null {
  const a: Args = { steps: 30, pretrain: 40, lr: 3e-3, seq: 64, batch: 4, seed: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf("=");
    const [name, inline] = arg.startsWith("--") && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    if (name === "--help" || name === "-h") return null;
    else if (name === "--text") a.text = value() ?? (() => { throw new Error("--text needs a file"); })();
    else if (name === "--save") a.save = value() ?? (() => { throw new Error("--save needs a file"); })();
    else if (name === "--steps") a.steps = num("steps", value(), true, 0);
    else if (name === "--pretrain") a.pretrain = num("pretrain", value(), true, 0);
    else if (name === "--lr") a.lr = num("lr", value(), false, 0);
    else if (name === "--seq") a.seq = num("seq", value(), true, 1);
    else if (name === "--batch") a.batch = num("batch", value(), true, 1);
    else if (name === "--seed") a.seed = num("seed", value(), true, 0);
    else if (name.startsWith("-")) throw new Error(`unknown argument "${arg}"`);
    else if (a.model === undefined) a.model = arg;
    else throw new Error(`one model file only, got "${a.model}" and "${arg}"`);
  }
  return a;
}

/** The whole program, for the command line and the tests. Returns the losses of the fine-tuning. */
export async function main(args: Args, log: (line: string) => void = console.log, weightsDir?: string): Promise<number[]> {
  const text = args.text ? new Uint8Array(readFileSync(args.text)) : new TextEncoder().encode(DEFAULT_TEXT);
  let params: LMParams;
  const found = loadModelSource(args.model, weightsDir);
  if (found) {
    log(`model: ${found.source}`);
    params = found.params;
  } else {
    log(`model: no file given and no weights/*.safetensors: training a tiny model from scratch (${args.pretrain} steps)`);
    params = await freshlyTrainedTiny(args.pretrain, args.seed, args.pretrain <= 10 ? log : undefined);
  }
  log(`fine-tuning on ${args.text ?? "the built-in poem"} (${text.length} bytes): ${args.steps} steps of ${args.batch} × ${args.seq} bytes, lr ${args.lr}`);
  const r = await finetune({ params, text, steps: args.steps, batch: args.batch, seqLen: args.seq, lr: args.lr, seed: args.seed, log });
  if (r.losses.length) log(`loss ${r.losses[0].toFixed(4)} -> ${r.losses.at(-1)!.toFixed(4)} nats/byte in ${(r.ms / 1000).toFixed(1)} s`);
  if (args.save) {
    await saveCheckpoint(args.save, { params: r.params, step: args.steps, key: random.key(args.seed), dataPosition: null, config: r.params.config as unknown as Record<string, unknown> });
    log(`saved ${args.save}`);
  }
  disposeTree(r.params);
  return r.losses;
}

if (import.meta.main) {
  // deno-lint-ignore no-explicit-any
  const deno = (globalThis as any).Deno;
  const argv: string[] = deno ? [...deno.args] : process.argv.slice(2);
  let args: Args | null;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error(`finetune: ${(e as Error).message}\n\n${HELP}`);
    process.exit(2);
  }
  if (!args) console.log(HELP);
  else {
    try {
      await main(args);
    } catch (e) {
      console.error(`finetune: ${(e as Error).message}`);
      process.exit(1);
    }
  }
}
