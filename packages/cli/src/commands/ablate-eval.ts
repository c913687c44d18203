/**
 * The evaluation phases of an `ablate` run, on the eval command's library functions: PPL by
 * context length (`eval ppl`'s protocol), ETMF / ECLMF (`eval metrics`'s), and the loss and the
 * model's note and pool-read counters on validation windows of the training length.
 */
import { crossEntropy, disposeTree, fromArray, mean, random, sum, tidy } from "@memmamba/tensor";
import { booksTooShort, lm, metrics, perplexity, pplWindows, WindowSampler, type LMParams } from "@memmamba/memmamba";
import { UsageError } from "../args.ts";
import { windowNllBatch } from "../inference.ts";
import type { Context } from "./ablate-args.ts";
import { finiteOrNull } from "./ablate-phases.ts";

/** Validation windows streamed together in the perplexity evaluation. */
const PPL_BATCH = 8;

/** PPL by context length on the validation split: `eval ppl`'s protocol (pplWindows + windowNllBatch). */
export async function evalPpl(c: Context, params: LMParams) {
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
export async function evalMetrics(c: Context, params: LMParams) {
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

export const VAL_BATCHES = 2;
/** The same validation windows for every run and seed. */
const VAL_KEY = random.key(0x61626c74); // "ablt"

/**
 * On validation windows of the training length: the loss, and the model's counters (lm.apply's
 * aux): notes written and pool reads, each per token and layer.
 */
export async function evalVal(c: Context, params: LMParams) {
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
