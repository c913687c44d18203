/**
 * Associative recall (multi-query, byte level), a diagnostic for issue #11's document retrieval:
 * can a small MemMamba or Mamba learn to answer with the value that followed a quoted key at all?
 * A row is K key-value pairs, then a query that repeats one key:
 *
 *   ab:3 cd:7 ef:1 gh:9 ?cd:7
 *
 * keys are distinct random 2-letter lowercase strings, values random digits, and the only scored
 * target is the digit after the query's ":" (chance 0.10; guessing among the row's values,
 * without matching the key, gives about 1 / the number of distinct values). Held-out accuracy on
 * fixed rows every --eval-every steps, until the budget is spent or the accuracy reaches 0.9.
 *
 * Two knobs move the rows towards the document task (an 8-word key, ~50 bytes, whose value sits
 * 200-1,000 bytes from the next pair): --key-len letters a key (default 2) and --gap random
 * lowercase letters before each pair, then a space (default 0: the rows above). With a gap:
 *
 *   qzkw... ab:3 hhtr... cd:7 ?cd:7
 *
 * The filler holds no ":" and no "?", so the query's key followed by ":" occurs once among the
 * pairs. Rows are drawn as before and the filler after them, so the default rows are unchanged.
 *
 * A curriculum: --gap takes a list, e.g. --gap 64,128,256. The run trains at the first gap until
 * the held-out accuracy (rows at that gap) reaches 0.9, then moves to the next gap (new held-out
 * rows at it), and so on; 0.9 at the last gap ends the run. Each curve point records its gap, the
 * JSON's `stages` when each gap was entered and passed, and at the end the model is checked at
 * every gap of the list (`finalByGap`: does it keep the shorter distances?).
 *
 * --init FILE starts from a checkpoint or weights file (the model and its config come from it: a
 * small model's passkey weights, say, or an earlier recall run's --save); --save FILE writes the
 * final model as a training checkpoint, which `train --init` (any task, the same config) and a
 * later `recall --init` (to go on with a curriculum past one GPU command's limit) take.
 *
 * The budget: --minutes of training time, --steps optimizer steps, or both (whichever runs out
 * first). Without either it is 6 minutes; --steps alone sets no time limit, so that a run's length
 * (and, on the CPU backend, its curve) does not depend on the machine's load. The JSON's options
 * record both (`minutes`, `maxSteps`: null where there is none), and `stoppedBy` says which of
 * accuracy, steps or minutes ended the run.
 *
 *   bun packages/bench/src/recall.ts [--kind memmamba|mamba] [--pairs 8] [--d-model 64]
 *       [--key-len 2] [--gap 0] [--layers 2] [--batch 32] [--lr 3e-3] [--minutes 6] [--steps N] [--eval-every 100] [--out FILE]
 *
 * Prints the curve and writes JSON. Runs on the CPU backend (initBackend("cpu"); bit-identical
 * whatever the thread count), or with --backend webgpu on the GPU (faster for long rows; GPU
 * training is not bit-reproducible run to run).
 */
import { adamw, clipScale, crossEntropy, disposeTree, div, fromArray, initBackend, mul, random, sum, type Tensor, tidy, valueAndGrad } from "@memmamba/tensor";
import { lm, type ModelConfig, preset, type LMParams } from "@memmamba/memmamba";
import { loadModelFile, saveCheckpoint } from "@memmamba/cli";
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import {
  detectRuntime, flagList, flagValue, formatTable, fromRoot, gitCommit, lcg, machineInfo, NON_NEGATIVE_INT, numberFlag, oneOf, parseFlags, POSITIVE_INT,
  POSITIVE_NUMBER, positiveInt, positiveNumber, runMain, UsageError, writeJson,
} from "./runtime.ts";

const HELP = `recall: can a small model learn byte-level associative recall? (a diagnostic for document retrieval)

  --kind K          memmamba or mamba (default memmamba; the tiny preset's memory settings)
  --backend B       cpu or webgpu (default cpu)
  --pairs N         key-value pairs a row, K (default 8)
  --key-len N       letters a key (default 2)
  --gap N[,N...]    random letters before each pair, then a space (default 0). A list is a
                    curriculum: train at each gap until the held-out accuracy there reaches 0.9,
                    then move to the next (the run ends at 0.9 on the last)
  --d-model N       width (default 64)
  --layers N        layers (default 2)
  --batch N         rows a step (default 32)
  --lr X            AdamW peak learning rate, after 50 warm-up steps (default 3e-3)
  --minutes X       training time budget (default 6; none when only --steps is given)
  --steps N         optimizer steps budget (default none): stop after step N. Given with --minutes,
                    whichever runs out first ends the run; --steps alone sets no time limit, so
                    the run does not depend on the machine's load. (A held-out accuracy of 0.9
                    at the last --gap ends any run.)
  --eval-every N    steps between held-out checks (256 fixed rows) (default 100)
  --seed N          seed of the parameters and the training rows (default 1)
  --init FILE       start from this checkpoint or weights file (its config: no --kind, --d-model, --layers)
  --save FILE       write the final model there as a training checkpoint, weights only (for train --init, or recall --init)
  --out FILE        JSON output (default packages/bench/results/recall-<kind>-k<K>[-key<N>][-gap<N>].json)
  --help            this text`;

/** A batch of recall rows: inputs, targets (inputs shifted by one), the mask of the scored position, and each row's answer. */
export interface RecallBatch {
  inputs: Int32Array;
  targets: Int32Array;
  mask: Float32Array;
  /** The position of each row's scored target (the query's ":"), and the byte expected there. */
  answerAt: Int32Array;
  answer: Int32Array;
  /** Tokens a row. */
  length: number;
}

/** The shape of a row beyond its pair count: letters a key, and filler letters before each pair. */
export interface RecallShape {
  /** Letters a key (default 2). */
  keyLen?: number;
  /** Random letters before each pair, then a space (default 0: none, and no space). */
  gap?: number;
}

/** Most pairs a row for keys of `keyLen` letters (they are distinct): 26^keyLen, at most 10,000. */
export function maxPairs(keyLen = 2): number {
  return Math.min(10_000, 26 ** keyLen);
}

/** Tokens a row for K pairs: "[filler ]ab:3 " per pair, then "?ab:3", rounded up to a multiple of 8. */
export function recallLength(pairs: number, shape: RecallShape = {}): number {
  const { keyLen = 2, gap = 0 } = shape;
  return Math.ceil((pairs * (gap + (gap > 0 ? 1 : 0) + keyLen + 3) + keyLen + 3) / 8) * 8;
}

/** `rows` recall rows of `pairs` pairs each, drawn from `u` (see the module note). */
export function recallBatch(u: () => number, rows: number, pairs: number, shape: RecallShape = {}): RecallBatch {
  const { keyLen = 2, gap = 0 } = shape;
  if (!Number.isInteger(keyLen) || keyLen < 1 || keyLen > 64) throw new RangeError(`recallBatch: keyLen must be an integer in [1, 64], got ${keyLen}`);
  if (!Number.isInteger(gap) || gap < 0) throw new RangeError(`recallBatch: gap must be an integer >= 0, got ${gap}`);
  const most = maxPairs(keyLen);
  if (!Number.isInteger(pairs) || pairs < 1 || pairs > most) throw new RangeError(`recallBatch: pairs must be an integer in [1, ${most}], got ${pairs}`);
  const L = recallLength(pairs, shape);
  const letter = () => String.fromCharCode(97 + Math.floor(u() * 26));
  const inputs = new Int32Array(rows * L), targets = new Int32Array(rows * L), mask = new Float32Array(rows * L);
  const answerAt = new Int32Array(rows), answer = new Int32Array(rows);
  for (let b = 0; b < rows; b++) {
    const keys = new Set<string>();
    while (keys.size < pairs) keys.add(Array.from({ length: keyLen }, letter).join(""));
    const ks = [...keys], vs = ks.map(() => Math.floor(u() * 10)), q = Math.floor(u() * pairs);
    const fill = ks.map(() => (gap > 0 ? `${Array.from({ length: gap }, letter).join("")} ` : ""));
    const text = ks.map((k, i) => `${fill[i]}${k}:${vs[i]} `).join("") + `?${ks[q]}:${vs[q]}`;
    const row = new Int32Array(L + 1);
    for (let i = 0; i < text.length; i++) row[i] = text.charCodeAt(i);
    for (let i = 0; i < L; i++) {
      inputs[b * L + i] = row[i];
      targets[b * L + i] = row[i + 1];
    }
    answerAt[b] = text.length - 2; // the input ":" predicts the digit
    mask[b * L + answerAt[b]] = 1;
    answer[b] = text.charCodeAt(text.length - 1);
  }
  return { inputs, targets, mask, answerAt, answer, length: L };
}

/** --key-len: letters a key. */
const KEY_LEN = numberFlag(z.number().int().min(1).max(64), "an integer from 1 to 64");
/** --pairs: K distinct keys of --key-len letters, so at most 26^keyLen (and 10,000). */
const pairsFlag = (keyLen: number) =>
  numberFlag(z.number().int().min(1).max(maxPairs(keyLen)), `an integer from 1 to ${maxPairs(keyLen)} (distinct ${keyLen}-letter keys)`);

/** One held-out check: the scored step, the training loss then, the held-out accuracy (rows at `gap`) and seconds. */
interface CurvePoint {
  step: number;
  gap: number;
  loss: number;
  accuracy: number;
  seconds: number;
}

/** A stage of a --gap curriculum: its gap and row bytes, the first step trained at it, the step its held-out check reached 0.9 (null: it never did). */
interface Stage {
  gap: number;
  rowBytes: number;
  firstStep: number;
  passedAt: number | null;
}

export async function main(argv: string[]) {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, {
    kind: "string", backend: "string", pairs: "string", "key-len": "string", gap: "string", "d-model": "string", layers: "string", batch: "string", lr: "string", minutes: "string", steps: "string",
    "eval-every": "string", seed: "string", out: "string", init: "string", save: "string",
  });
  const init = f.init === undefined ? undefined : String(f.init), save = f.save === undefined ? undefined : String(f.save);
  for (const k of ["kind", "d-model", "layers"] as const) {
    if (init !== undefined && f[k] !== undefined) throw new UsageError(`--${k}: the model comes from --init ${init} (its config)`);
  }
  if (init !== undefined && !existsSync(init)) throw new UsageError(`--init ${init}: no such file`);
  if (save !== undefined) mkdirSync(dirname(resolve(save)), { recursive: true }); // before the training, not after it
  let kind: string = oneOf("kind", f.kind, ["memmamba", "mamba"] as const) ?? "memmamba";
  const backend = oneOf("backend", f.backend, ["cpu", "webgpu"] as const) ?? "cpu";
  const keyLen = flagValue("key-len", f["key-len"], KEY_LEN) ?? 2;
  const gaps = flagList("gap", f.gap, NON_NEGATIVE_INT, [0]);
  const pairs = flagValue("pairs", f.pairs, pairsFlag(keyLen)) ?? 8;
  const dModel = positiveInt("d-model", f["d-model"], 64), nLayers = positiveInt("layers", f.layers, 2), B = positiveInt("batch", f.batch, 32);
  const evalEvery = positiveInt("eval-every", f["eval-every"], 100), seed = positiveInt("seed", f.seed, 1);
  const lr = positiveNumber("lr", f.lr, 3e-3);
  // the budget (see the module note): 6 minutes by default, none when only --steps is given
  const maxSteps = flagValue("steps", f.steps, POSITIVE_INT) ?? null;
  const minutes = flagValue("minutes", f.minutes, POSITIVE_NUMBER) ?? (maxSteps === null ? 6 : null);
  const tag = `${keyLen === 2 ? "" : `-key${keyLen}`}${gaps.length === 1 && gaps[0] === 0 ? "" : `-gap${gaps.join("-")}`}`;

  await initBackend(backend);
  let config: ModelConfig, params: LMParams;
  if (init !== undefined) {
    const m = loadModelFile(init);
    ({ config, params } = m);
    kind = config.kind;
  } else {
    config = preset("tiny", { kind: kind as "memmamba" | "mamba", dModel, nLayers });
    params = lm.init(random.key(seed), config);
  }
  const WARM = 50;
  let opt = adamw.init(params);
  const draw = lcg(seed + 1);
  // held-out rows at a gap: the same 256 rows (seed 12345) whenever that gap is checked
  const evaluate = async (gap: number): Promise<number> => {
    const held = recallBatch(lcg(12345), 256, pairs, { keyLen, gap }), L = held.length;
    let right = 0;
    for (let o = 0; o < 256; o += 64) {
      const tok = fromArray(held.inputs.slice(o * L, (o + 64) * L), [64, L], "i32");
      const logits = tidy(() => lm.apply(params, tok).logits);
      const v = await logits.data();
      disposeTree([tok, logits]);
      for (let b = 0; b < 64; b++) {
        const base = (b * L + held.answerAt[o + b]) * 256;
        let best = 0;
        for (let j = 1; j < 256; j++) if (v[base + j] > v[base + best]) best = j;
        if (best === held.answer[o + b]) right++;
      }
    }
    return right / 256;
  };
  const vg = valueAndGrad((p: LMParams, t: Tensor, y: Tensor, m: Tensor) => tidy(() => div(sum(mul(crossEntropy(lm.apply(p, t).logits, y), m)), sum(m))));
  const budget = [minutes === null ? "" : `${minutes} min`, maxSteps === null ? "" : `${maxSteps} steps`].filter(Boolean).join(" or ");
  const out = String(f.out ?? fromRoot("packages", "bench", "results", `recall-${kind}-k${pairs}${tag}.json`));
  const rowBytes = gaps.map((gap) => recallLength(pairs, { keyLen, gap }));
  const rowDesc = gaps.length === 1
    ? `${pairs} pairs of ${keyLen}-letter keys${gaps[0] ? `, ${gaps[0]} filler letters before each` : ""} a row (${rowBytes[0]} bytes)`
    : `${pairs} pairs of ${keyLen}-letter keys a row, a curriculum of ${gaps.join(" → ")} filler letters before each pair (${rowBytes.join(" → ")} bytes), advancing at 0.9`;
  console.log(`recall (${backend}): a ${kind} of ${config.nLayers} layers × ${config.dModel}${init ? ` from ${init}` : ""}, ${rowDesc}, batch ${B}, lr ${lr} after ${WARM} warm-up steps, ${budget}; chance 0.10`);
  const curve: CurvePoint[] = [];
  const stages: Stage[] = [{ gap: gaps[0], rowBytes: rowBytes[0], firstStep: 1, passedAt: null }];
  let stoppedBy: "accuracy" | "steps" | "minutes" = "minutes";
  const t0 = performance.now();
  for (let step = 1; ; step++) {
    const stage = stages.at(-1)!, gap = stage.gap, L = stage.rowBytes;
    const h = recallBatch(draw, B, pairs, { keyLen, gap });
    const t = fromArray(h.inputs, [B, L], "i32"), y = fromArray(h.targets, [B, L], "i32"), m = fromArray(h.mask, [B, L]);
    const { value, grads } = vg(params, t, y, m);
    const { norm, scale } = clipScale(grads, 1.0);
    ({ params, state: opt } = adamw.update(params, grads, opt, { lr: (s: number) => lr * Math.min(1, (s + 1) / WARM), gradScale: scale, weightDecay: 0.01 }));
    const loss = await value.item();
    disposeTree([t, y, m, value, grads, norm, scale]);
    if (!Number.isFinite(loss)) throw new Error(`the loss is ${loss} at step ${step} (try a lower --lr)`);
    const seconds = (performance.now() - t0) / 1000;
    const outOfSteps = maxSteps !== null && step >= maxSteps, outOfTime = minutes !== null && seconds > minutes * 60;
    if (step % evalEvery === 0 || outOfSteps || outOfTime) {
      const accuracy = await evaluate(gap);
      curve.push({ step, gap, loss, accuracy, seconds });
      console.log(`step ${step}${gaps.length > 1 ? `  gap ${gap}` : ""}  loss ${loss.toFixed(4)}  held-out accuracy ${accuracy.toFixed(3)}  ${seconds.toFixed(0)} s`);
      const last = stages.length === gaps.length;
      if (accuracy >= 0.9) {
        stage.passedAt = step;
        if (!last) {
          stages.push({ gap: gaps[stages.length], rowBytes: rowBytes[stages.length], firstStep: step + 1, passedAt: null });
          console.log(`  gap ${gap} passed at step ${step}: now ${stages.at(-1)!.gap} filler letters (${stages.at(-1)!.rowBytes} bytes a row)`);
        }
      }
      if ((accuracy >= 0.9 && last) || outOfSteps || outOfTime) {
        stoppedBy = accuracy >= 0.9 && last ? "accuracy" : outOfSteps ? "steps" : "minutes";
        break;
      }
    }
  }
  // a curriculum: the final model at every gap of the list
  let finalByGap: Record<string, number> | null = null;
  if (gaps.length > 1) {
    finalByGap = {};
    for (const g of gaps) finalByGap[String(g)] ??= await evaluate(g);
  }
  const lastStep = curve.at(-1)!.step;
  if (save !== undefined) {
    await saveCheckpoint(save, {
      params, step: lastStep, key: random.key(seed), dataPosition: null, // the weights only: --init reads nothing else
      config: config as unknown as Record<string, unknown>, extra: { task: "recall", pairs: String(pairs), keyLen: String(keyLen), gap: gaps.join(","), ...(init ? { init } : {}) },
    });
    console.log(`saved the model (step ${lastStep}) to ${save}`);
  }
  disposeTree([params, opt.m, opt.v]);
  // steps to an accuracy at the last gap (a curriculum's earlier stages do not count)
  const reached = (a: number) => curve.find((c) => c.gap === gaps.at(-1) && c.accuracy >= a)?.step ?? null;
  const res = {
    benchmark: "recall", commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine: machineInfo(),
    options: { kind, backend, pairs, keyLen, gap: gaps.length === 1 ? gaps[0] : gaps, dModel: config.dModel, nLayers: config.nLayers, init: init ?? null, save: save ?? null, batch: B, lr, warmup: WARM, minutes, maxSteps, evalEvery, seed, rowBytes: gaps.length === 1 ? rowBytes[0] : rowBytes }, config, curve,
    steps: curve.at(-1)!.step, stoppedBy, finalAccuracy: curve.at(-1)!.accuracy, stepsTo: { "0.5": reached(0.5), "0.9": reached(0.9) },
    stages, finalByGap,
  };
  writeJson(out, res);
  console.log(formatTable(["steps", "final accuracy", "steps to 0.5", "steps to 0.9"], [[res.steps, res.finalAccuracy, res.stepsTo["0.5"], res.stepsTo["0.9"]]]));
  if (finalByGap) {
    console.log(formatTable(["gap", "row bytes", "first step", "passed 0.9 at", "final accuracy"],
      gaps.map((g, i) => [g, rowBytes[i], stages[i]?.firstStep ?? "-", stages[i]?.passedAt ?? "-", finalByGap![String(g)]])));
  }
  console.log(`wrote ${out}`);
  return res;
}

if (import.meta.main ?? true) runMain("recall", main);
