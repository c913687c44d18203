/**
 * `eval ppl | docret | metrics` of a checkpoint.
 *
 *   ppl     perplexity by context length on books (PG-19 protocol: 10 windows per book at stride
 *           (len − L)/10, NLL on each window's last 100 tokens; Gutenberg header/footer cut)
 *   docret  document retrieval under noise: k noise paragraphs + the gold one, exact-match of the id
 *   metrics ETMF (Eq. 21) and ECLMF (Eq. 24/25) of the model on --samples windows of --metrics-len bytes
 *
 * Prints a table and writes eval-<task>.json (and for ppl an SVG plot) to --out.
 */
import { join } from "node:path";
import { disposeTree, random } from "@memmamba/tensor";
import { defineCommand, flag, kebab, type ParseResult, UsageError } from "../args.ts";
import { greedyDecode, windowNll } from "../inference.ts";
import { loadModelFile } from "../weights.ts";
import { linePlot, writeSvg } from "../plot.ts";
import { Progress } from "../progress.ts";
import {
  backendFlag, type CommandIO, cpuKernelsFlag, DEFAULT_BOOKS, defaultIO, defaultOutDir, docretCharsFlag, formatTable, lengthLabel, longestBytes, paragraphChars, requireOutDir,
  requirePath, selectBackend, writeJson,
} from "./common.ts";
import { booksTooShort, loadTexts, perplexity, pplWindows, pplWindowStarts, splitTexts, type TextDoc } from "@memmamba/memmamba";
import { DOCRET_DECODE_TOKENS, docretSamples, isQueryKind, PARAGRAPH_CHARS, paragraphsOf, QUERY_KINDS, scoreDocret } from "@memmamba/memmamba";
import { metrics, type LMParams } from "@memmamba/memmamba";
import { fromArray } from "@memmamba/tensor";

/** The `eval` command: its flags, parser and help. */
export const evalCommand = defineCommand({
  name: "eval",
  summary: "evaluate a checkpoint: perplexity by context length, document retrieval under noise, or the memory metrics",
  usage: "bun run eval <ppl|docret|metrics> [flags]      (deno task eval ...)",
  positionals: [{ name: "task", description: "what to evaluate", required: true, choices: ["ppl", "docret", "metrics"] }],
  flags: {
    checkpoint: flag.path("the checkpoint or shipped weights file (weights/*.safetensors) to evaluate", { default: "runs/train/checkpoint.safetensors" }),
    data: flag.path("books: a .txt file or a directory of them", { default: DEFAULT_BOOKS, defaultLabel: "../shared/data/books beside the repository" }),
    split: flag.enum(["validation", "train", "all"], "which books of the split (see the data README)", { default: "validation" }),
    lengths: flag.intList("ppl: context lengths (k = ×1024)", { default: [1024, 2048, 4096, 10240, 20480, 30720, 40960, 51200, 61440], positive: true }),
    windows: flag.int("ppl and metrics: windows per book (metrics uses the first of them, as many as its samples)", { default: 10, positive: true }),
    scored: flag.int("ppl: tokens scored at the end of each window", { default: 100, positive: true }),
    align: flag.bool("ppl: score the same bytes at every length (each window ends where a window of the longest --lengths ends; books shorter than it are skipped at every length), so the rows compare contexts on fixed targets; default: each length's own windows, the paper's protocol"),
    k: flag.intList("docret: numbers of noise documents", { default: [10, 20, 120, 160, 200], positive: true }),
    samples: flag.int("docret: samples per k; metrics: windows", { default: 20, positive: true }),
    query: flag.enum(QUERY_KINDS, "docret: what the question quotes from the gold document (unless given: the query a `train --task docret` checkpoint was trained with)", { default: "sentence" }),
    docretChars: docretCharsFlag(`docret: the documents' lengths, MIN,MAX characters (unless given: those a \`train --task docret\` checkpoint was trained on, else ${PARAGRAPH_CHARS.join(",")})`),
    seed: flag.int("seed of the docret samples", { default: 123, min: 0 }),
    chunk: flag.int("tokens per chunk when streaming (memory ∝ chunk, not length)", { default: 512, positive: true }),
    out: flag.path("where the JSON (and SVG) go", { defaultLabel: "a run's directory for its checkpoint.safetensors, else runs/eval/<file name>" }),
    metricsLen: flag.int("metrics: bytes per window (k = ×1024)", { default: 512, positive: true }),
    backend: backendFlag,
    cpuKernels: cpuKernelsFlag,
  },
  epilog: `Examples:
  bun run eval ppl --checkpoint runs/books/checkpoint.safetensors --lengths 1k,2k,4k
  bun run eval docret --k 10,20 --samples 10`,
});

/** The parsed flags of `eval`. */
export type EvalArgs = ParseResult<typeof evalCommand.spec.flags>;

function books(f: EvalArgs["flags"]): { docs: TextDoc[]; rule: string } {
  requirePath("eval", "--data", f.data);
  const all = loadTexts(f.data);
  if (f.split === "all") return { docs: all, rule: "all documents" };
  const s = splitTexts(all);
  return { docs: f.split === "train" ? s.train : s.validation, rule: `${f.split} split: ${s.rule}` };
}

export interface PplRow {
  length: number;
  ppl: number;
  nll: number;
  bitsPerByte: number;
  windows: number;
  tokens: number;
  booksSkipped: string[];
}

/**
 * Runs `eval` with parsed arguments: the task named by the positional (ppl, docret or metrics); prints a table, writes its JSON (and SVG) and returns what it wrote.
 */
export async function runEval(args: EvalArgs, io: CommandIO = defaultIO): Promise<unknown> {
  const print = io.out;
  const makeProgress = (total: number, label: string, totalTokens?: number) =>
    io.progress === false ? undefined : new Progress({ total, totalTokens, label, showLoss: false, stream: io.progress });
  const f = args.flags;
  const task = args.positionals[0];
  // flags of another task: refused by name, never silently ignored (as train does)
  const usedBy: Partial<Record<keyof EvalArgs["flags"], readonly string[]>> = {
    lengths: ["ppl"], scored: ["ppl"], align: ["ppl"], windows: ["ppl", "metrics"], chunk: ["ppl", "docret"],
    k: ["docret"], query: ["docret"], docretChars: ["docret"], seed: ["docret"], samples: ["docret", "metrics"], metricsLen: ["metrics"],
  };
  for (const [k, tasks] of Object.entries(usedBy) as [keyof EvalArgs["flags"], readonly string[]][]) {
    if (args.given.has(k) && !tasks.includes(task)) throw new UsageError(`eval: --${kebab(k)} is for ${tasks.join(" and ")} (this is eval ${task})`);
  }
  if (f.docretChars) paragraphChars("eval", f.docretChars); // a bad pair is refused before any work
  if (task === "ppl" && f.scored > Math.min(...f.lengths)) throw new UsageError(`eval: --scored ${f.scored} exceeds the shortest --lengths ${Math.min(...f.lengths)}`);
  const out = f.out ?? defaultOutDir("eval", f.checkpoint);
  requireOutDir("eval", "--out", out);
  await selectBackend("eval", f.backend, f.cpuKernels, io.err);
  const { docs, rule } = books(f);
  const model = loadModelFile(f.checkpoint);
  try {
    if (task === "metrics") return await runMetrics(f, model.params, docs, rule, out, print);
    if (task === "ppl") {
      const rows: PplRow[] = [];
      // --align: every length's windows end where the longest length's do (the same scored bytes)
      const alignTo = f.align ? Math.max(...f.lengths) : undefined;
      const starts = f.lengths.map((L) => docs.reduce((b, d) => b + pplWindowStarts(d.bytes.length, alignTo ?? L, f.windows).length, 0));
      // a length no book reaches would print a NaN row: refuse it before any work, naming it
      const unreached = f.lengths.filter((_, i) => starts[i] === 0);
      if (alignTo !== undefined && unreached.length) {
        throw new UsageError(`eval: --align scores every length on windows of the longest, ${alignTo}: no book of --data ${f.data} is longer than that (the longest has ${longestBytes(docs)} bytes; ${rule}): pass shorter --lengths or more text`);
      }
      if (unreached.length) {
        throw new UsageError(`eval: --lengths ${unreached.join(",")}: no book of --data ${f.data} is longer than that (the longest has ${longestBytes(docs)} bytes; ${rule}): pass shorter --lengths or more text`);
      }
      const total = starts.reduce((a, n) => a + n, 0);
      // windows of every length: the ETA follows the tokens left (the long windows come last)
      const progress = makeProgress(total, "eval ppl", starts.reduce((a, n, i) => a + n * f.lengths[i], 0));
      let done = 0;
      for (const L of f.lengths) {
        let sum = 0, count = 0, windows = 0;
        for (const w of pplWindows(docs, L, { windowsPerBook: f.windows, scoredTokens: f.scored, alignTo })) {
          const r = await windowNll(model.params, w.inputs, w.targets, w.scoreFrom, f.chunk);
          sum += r.sum;
          count += r.count;
          windows++;
          progress?.update(++done, { tokens: L });
        }
        const p = count ? perplexity(sum, count) : { ppl: NaN, nll: NaN, bitsPerByte: NaN };
        rows.push({ length: L, ...p, windows, tokens: count, booksSkipped: booksTooShort(docs, alignTo ?? L) });
      }
      progress?.finish();
      print(`perplexity by context length (${docs.length} books, ${rule}; ${alignTo ? `the same ${f.scored} bytes a window scored at every length, windows ending where the ${alignTo}-byte ones end` : "each length's own windows"}) of ${f.checkpoint}\n`);
      print(formatTable(["length", "ppl", "bits/byte", "windows", "books skipped"], rows.map((r) => [
        lengthLabel(r.length), r.ppl.toFixed(3), r.bitsPerByte.toFixed(4), String(r.windows), String(r.booksSkipped.length),
      ])));
      const report = { task, checkpoint: f.checkpoint, data: f.data, split: rule, windowsPerBook: f.windows, scoredTokens: f.scored, aligned: alignTo !== undefined, rows };
      writeJson(join(out, "eval-ppl.json"), report);
      writeSvg(join(out, "eval-ppl.svg"), linePlot([{ name: "perplexity", points: rows.map((r) => [r.length, r.ppl] as const) }], {
        title: "perplexity by context length", xLabel: "context length (tokens)", yLabel: "perplexity (bytes)",
      }));
      print(`wrote ${join(out, "eval-ppl.json")} and ${join(out, "eval-ppl.svg")}\n`);
      return report;
    }
    // docret: the query the checkpoint was trained on, where it was trained on docret and --query is not given
    const trained = model.checkpoint.extra ?? {};
    let query = f.query;
    if (!args.given.has("query") && trained.task === "docret" && isQueryKind(trained.query)) {
      query = trained.query;
      io.err(`eval: docret asks with the query the checkpoint was trained on, ${query} (--query overrides)\n`);
    }
    // the documents' lengths: --docret-chars, else those the checkpoint was trained on, else the default
    let charsList: readonly number[] = f.docretChars ?? PARAGRAPH_CHARS;
    const trainedChars = typeof trained.docretChars === "string" ? trained.docretChars.split(",").map(Number) : undefined;
    if (!f.docretChars && trained.task === "docret" && trainedChars && trainedChars.length === 2 && trainedChars.every((n) => Number.isInteger(n) && n > 0)) {
      charsList = trainedChars;
      if (trained.docretChars !== PARAGRAPH_CHARS.join(",")) io.err(`eval: docret documents of ${trained.docretChars} characters, as the checkpoint was trained on (--docret-chars overrides)\n`);
    }
    const chars = paragraphChars("eval", charsList);
    const paragraphs = paragraphsOf(docs, chars);
    const need = Math.max(...f.k) + 1;
    if (paragraphs.length < need) {
      throw new UsageError(`eval: --data ${f.data} has ${paragraphs.length} paragraphs of ${chars.minChars}-${chars.maxChars} characters (${rule}); --k up to ${need - 1} needs ${need} (add books)`);
    }
    // beside the accuracy: a guess among the prompt's k + 1 ids (1 / (k + 1)), and how often the answer is one of them at all
    const rows: { k: number; accuracy: number; guess: number; fromPrompt: number; samples: number; meanPromptBytes: number }[] = [];
    const results: {
      k: number; sample: number; goldId: number; predicted: number; correct: boolean;
      /** Where the gold document and the answered id's document stand in the prompt (0 = first); null: the answer is no id of the prompt. */
      goldPosition: number; predictedPosition: number | null;
    }[] = [];
    const progress = makeProgress(f.k.length * f.samples, "eval docret");
    let done = 0;
    for (const k of f.k) {
      const samples = docretSamples({ key: random.key(f.seed), paragraphs, k, count: f.samples, query });
      let correct = 0, bytes = 0, fromPrompt = 0;
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i];
        const gen = await greedyDecode(model.params, s.bytes, DOCRET_DECODE_TOKENS, f.chunk);
        const score = scoreDocret(gen, s.goldId);
        if (score.correct) correct++;
        bytes += s.bytes.length;
        const at = s.ids.indexOf(score.predicted);
        if (at >= 0) fromPrompt++;
        results.push({ k, sample: i, goldId: s.goldId, predicted: score.predicted, correct: score.correct, goldPosition: s.goldPosition, predictedPosition: at >= 0 ? at : null });
        progress?.update(++done, { tokens: s.bytes.length });
      }
      rows.push({ k, accuracy: correct / samples.length, guess: 1 / (k + 1), fromPrompt: fromPrompt / samples.length, samples: samples.length, meanPromptBytes: Math.round(bytes / samples.length) });
    }
    progress?.finish();
    print(`document retrieval accuracy (${paragraphs.length} paragraphs of ${chars.minChars}-${chars.maxChars} characters from ${docs.length} books, ${rule}) of ${f.checkpoint}\n`);
    print(formatTable(["k (noise docs)", "accuracy", "a guess among the ids", "an id of the prompt", "samples", "prompt bytes"], rows.map((r) => [
      String(r.k), r.accuracy.toFixed(3), r.guess.toFixed(3), r.fromPrompt.toFixed(3), String(r.samples), String(r.meanPromptBytes),
    ])));
    const report = { task, checkpoint: f.checkpoint, data: f.data, split: rule, query, docretChars: [chars.minChars, chars.maxChars], rows, results };
    writeJson(join(out, "eval-docret.json"), report);
    print(`wrote ${join(out, "eval-docret.json")}\n`);
    return report;
  } finally {
    disposeTree(model.params);
  }
}

/** ETMF and ECLMF of a model, averaged over `--samples` windows of the books (one window a call). */
async function runMetrics(f: EvalArgs["flags"], params: LMParams, docs: TextDoc[], rule: string, out: string, print: (s: string) => void) {
  const windows = [...pplWindows(docs, f.metricsLen, { windowsPerBook: f.windows, scoredTokens: 1 })].slice(0, f.samples);
  if (windows.length === 0) {
    throw new UsageError(`eval: --metrics-len ${f.metricsLen}: no book of --data ${f.data} is longer than that (the longest has ${longestBytes(docs)} bytes; ${rule})`);
  }
  const etmfs: number[] = [];
  const eclmfByGap = new Map<number, number[]>();
  let skipped: { gap: number; reason: string }[] = [];
  for (const w of windows) {
    const tokens = fromArray(Int32Array.from(w.inputs), [1, w.inputs.length], "i32");
    try {
      etmfs.push((await metrics.etmf(params, tokens)).value);
      const e = await metrics.eclmf(params, tokens);
      for (const g of e.gaps) eclmfByGap.set(g.gap, [...(eclmfByGap.get(g.gap) ?? []), g.value]);
      skipped = e.skipped;
    } finally {
      tokens.dispose();
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rows = [
    { metric: "ETMF", value: mean(etmfs) },
    ...[...eclmfByGap].map(([gap, v]) => ({ metric: `ECLMF G=${gap}`, value: mean(v) })),
  ];
  print(`memory metrics of ${f.checkpoint} over ${windows.length} windows of ${f.metricsLen} bytes (${rule})\n`);
  print(formatTable(["metric", "value"], rows.map((r) => [r.metric, r.value.toFixed(4)])));
  for (const s of skipped) print(`ECLMF G=${s.gap} skipped: ${s.reason}\n`);
  const report = { task: "metrics", checkpoint: f.checkpoint, data: f.data, split: rule, windowBytes: f.metricsLen, windows: windows.length, rows, skipped };
  writeJson(join(out, "eval-metrics.json"), report);
  print(`wrote ${join(out, "eval-metrics.json")}\n`);
  return report;
}
