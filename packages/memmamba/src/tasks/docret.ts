/**
 * Document retrieval under noise: find which of k + 1 documents holds a given sentence.
 *
 * Documents are paragraphs of books (`paragraphsOf`: blank-line separated blocks of the
 * Gutenberg-cut text, whitespace collapsed to single spaces, 200..1000 characters, at least two
 * sentences, plain prose: no digits-heavy tables, no "[Doc"). A sample draws the gold paragraph
 * and k noise paragraphs (distinct texts), gives each a distinct random id in [1, max(999,
 * 10(k+1))], shuffles them, and asks for the gold id:
 *
 *   [Doc 412] <noise paragraph>
 *   [Doc 17] <gold paragraph>
 *   ...
 *   [Doc 88] <noise paragraph>
 *
 *   Question: Which document contains the sentence "<query>"? Answer: [Doc 
 *
 * (one document per line, a blank line before the question; the prompt ends with "[Doc "; the
 * "last-words" and "echo" queries write each id after its document instead, below).
 * The answer is the gold id's digits, e.g. "17".
 *
 * Query (`query` option):
 *   "sentence"     (default) a sentence of the gold paragraph, 30..200 characters, that occurs in
 *                  no noise document; the most distinctive choice
 *   "first-words"  the gold paragraph's first 8 words; the question then reads
 *                  `Which document begins with "<words>"?`
 *   "last-words"   the gold paragraph's last 8 words, and every document's id written after its
 *                  text (`<paragraph> [Doc 17]`); the question reads `Which document ends with
 *                  "<words>"?`. The id then follows the quoted words, as a value follows its key
 *                  in associative recall: a model answers by recalling what came after the words,
 *                  where the other two queries need the id that came before them.
 *   "echo"         as last-words, and the answer first repeats the quoted words: the prompt ends
 *                  `Answer: <words> [Doc `, the very bytes that preceded the gold id in its
 *                  document, so the id is what followed the prompt's own last ~50 bytes earlier in
 *                  the context (an induction copy, with no hop from the quote to the answer).
 *
 * k ∈ {10, 20, 120, 160, 200} in the paper's protocol (`DOCRET_KS`); any k >= 1 works.
 * Scoring: exact match of the leading integer of the decoded text with the gold id.
 * Training (`docretTrainingBatch`): one sample a row from the prompt's first byte, then the id's
 * digits and "]" as the scored targets (by default the only ones), zeros after it.
 * Everything is a pure function of the key.
 */
import { HostRng, keyAt, type Key } from "../data/rng.ts";
import { checkedLossWeights } from "./loss-weights.ts";
import type { TextDoc } from "../data/text.ts";

/** Numbers of noise documents evaluated by default. */
export const DOCRET_KS: readonly number[] = Object.freeze([10, 20, 120, 160, 200]);
/** Decoded tokens looked at when scoring (ids have at most 4 digits for k < 1000). */
export const DOCRET_DECODE_TOKENS = 10;

/** A prose paragraph of a book, a document of the retrieval task. */
export interface Paragraph {
  /** The book it came from, and its index among that book's kept paragraphs. */
  doc: string;
  /** Its index among the book's kept paragraphs. */
  index: number;
  /** The paragraph, whitespace collapsed. */
  text: string;
}

/** The paragraph lengths `paragraphsOf` keeps by default, in characters: [shortest, longest]. */
export const PARAGRAPH_CHARS: readonly [number, number] = [200, 1000];

/** Options of `paragraphsOf`: the accepted paragraph lengths. */
export interface ParagraphOptions {
  /** Shortest paragraph kept, in characters (default 200, PARAGRAPH_CHARS[0]). */
  minChars?: number;
  /** Longest paragraph kept, in characters (default 1000, PARAGRAPH_CHARS[1]). */
  maxChars?: number;
}

const SENTENCE_RE = /[^.!?]+[.!?]+["')\]]*/g;

/** The sentences of a text (runs ending in . ! or ?, closing quotes kept), trimmed. */
export function sentencesOf(text: string): string[] {
  return (text.match(SENTENCE_RE) ?? []).map((s) => s.trim()).filter(Boolean);
}

/** Prose paragraphs of the documents (see the module note), in document order, texts unique. */
export function paragraphsOf(docs: readonly TextDoc[], opts: ParagraphOptions = {}): Paragraph[] {
  const min = opts.minChars ?? PARAGRAPH_CHARS[0];
  const max = opts.maxChars ?? PARAGRAPH_CHARS[1];
  const seen = new Set<string>();
  const out: Paragraph[] = [];
  const dec = new TextDecoder();
  for (const d of docs) {
    let index = 0;
    for (const block of dec.decode(d.bytes).split(/\n[ \t]*\n/)) {
      const text = block.replace(/\s+/g, " ").trim();
      if (text.length < min || text.length > max || seen.has(text)) continue;
      if (text.includes("[Doc") || /gutenberg/i.test(text)) continue;
      const digits = (text.match(/\d/g) ?? []).length;
      const letters = (text.match(/[A-Za-z]/g) ?? []).length;
      if (digits > 0.02 * text.length || letters < 0.6 * text.length) continue;
      if (sentencesOf(text).length < 2) continue;
      seen.add(text);
      out.push({ doc: d.name, index: index++, text });
    }
  }
  return out;
}

/** How the query quotes the gold document (see the module note). */
export const QUERY_KINDS = ["sentence", "first-words", "last-words", "echo"] as const;
/** How the query quotes the gold document: one of its sentences, its first words or its last words. */
export type QueryKind = (typeof QUERY_KINDS)[number];

/** True when `v` names a query kind. */
export function isQueryKind(v: unknown): v is QueryKind {
  return typeof v === "string" && (QUERY_KINDS as readonly string[]).includes(v);
}

/** Options of `docretSample`. */
export interface DocretSampleOptions {
  /** The key the sample is drawn from (the same key gives the same sample). */
  key: Key;
  /** The paragraphs the gold and noise documents are drawn from. */
  paragraphs: readonly Paragraph[];
  /** Noise documents. */
  k: number;
  /** How the query is made (default "sentence"). */
  query?: QueryKind;
}

/** One document-retrieval sample: k + 1 numbered documents, a query quoting one, and the expected id. */
export interface DocretSample {
  /** The whole prompt (UTF-8), ending with "[Doc ". */
  prompt: string;
  /** The prompt as UTF-8 bytes (the model's tokens). */
  bytes: Uint8Array;
  /** The id of the document the query quotes. */
  goldId: number;
  /** The expected continuation: the gold id's digits. */
  answer: string;
  /** Ids in prompt order; ids[goldPosition] === goldId. */
  ids: number[];
  /** Position of the gold document in prompt order. */
  goldPosition: number;
  /** The query text. */
  query: string;
  /** The number of noise documents. */
  k: number;
  /** The paragraphs in prompt order. */
  docs: Paragraph[];
}

/** Whether the query quotes the gold document's last words (each id then follows its document). */
function idAfter(kind: QueryKind): boolean {
  return kind === "last-words" || kind === "echo";
}

/** A document's line: the id before its text, or after it for the last-words and echo queries. */
function docLine(id: number, text: string, kind: QueryKind): string {
  return idAfter(kind) ? `${text} [Doc ${id}]` : `[Doc ${id}] ${text}`;
}

const QUESTION: Record<QueryKind, (q: string) => string> = {
  "sentence": (q) => `Which document contains the sentence "${q}"?`,
  "first-words": (q) => `Which document begins with "${q}"?`,
  "last-words": (q) => `Which document ends with "${q}"?`,
  "echo": (q) => `Which document ends with "${q}"?`,
};

/** The query sentence for a gold paragraph, or undefined when none is distinctive. */
function pickQuery(rng: HostRng, gold: string, noise: readonly string[], kind: QueryKind): string | undefined {
  const inNoise = (q: string) => noise.some((t) => t.includes(q));
  if (kind !== "sentence") {
    const words = gold.split(" ");
    const q = (kind === "first-words" ? words.slice(0, 8) : words.slice(-8)).join(" ");
    return inNoise(q) ? undefined : q;
  }
  const candidates = sentencesOf(gold).filter((s) => s.length >= 30 && s.length <= 200 && !s.includes('"') && !inNoise(s));
  return candidates.length ? rng.pick(candidates) : undefined;
}

/** One sample (see the module note). */
export function docretSample(opts: DocretSampleOptions): DocretSample {
  const { paragraphs, k } = opts;
  const kind = opts.query ?? "sentence";
  if (!isQueryKind(kind)) throw new RangeError(`docretSample: query must be one of ${QUERY_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`docretSample: k must be a positive integer, got ${k}`);
  if (paragraphs.length < k + 1) {
    throw new RangeError(`docretSample: k = ${k} needs at least ${k + 1} paragraphs, only ${paragraphs.length} given (add books)`);
  }
  const rng = new HostRng(opts.key);
  for (let attempt = 0; attempt < 100; attempt++) {
    const chosen = rng.sample(paragraphs.length, k + 1).map((i) => paragraphs[i]);
    const gold = chosen[0];
    const noise = chosen.slice(1);
    const query = pickQuery(rng, gold.text, noise.map((p) => p.text), kind);
    if (query === undefined) continue;
    const idRange = Math.max(999, 10 * (k + 1));
    const ids = rng.sample(idRange, k + 1).map((i) => i + 1);
    const order = Array.from(rng.permutation(k + 1)); // order[j] = which chosen paragraph goes at position j
    const docs = order.map((c) => chosen[c]);
    const posIds = order.map((c) => ids[c]);
    const goldPosition = order.indexOf(0);
    const goldId = ids[0];
    const question = `Question: ${QUESTION[kind](query)} Answer: ${kind === "echo" ? `${query} ` : ""}[Doc `;
    const prompt = `${docs.map((p, j) => docLine(posIds[j], p.text, kind)).join("\n")}\n\n${question}`;
    return {
      prompt,
      bytes: new TextEncoder().encode(prompt),
      goldId,
      answer: String(goldId),
      ids: posIds,
      goldPosition,
      query,
      k,
      docs,
    };
  }
  throw new Error(`docretSample: found no distinctive query in 100 attempts (are the paragraphs near-duplicates?)`);
}

/** Samples 0..n-1 for a k: sample i uses the key foldIn(foldIn(key, k), i). */
export function docretSamples(opts: Omit<DocretSampleOptions, "key"> & { key: Key; count: number }): DocretSample[] {
  return Array.from({ length: opts.count }, (_, i) => docretSample({ ...opts, key: keyAt(opts.key, opts.k, i) }));
}

/** The outcome of scoring one decoded answer. */
export interface DocretScore {
  /** True when the decoded id is the gold id. */
  correct: boolean;
  /** The id the model produced (NaN if none). */
  predicted: number;
}

/** Exact match: the leading integer of the decoded text (first 10 tokens) is the gold id. */
export function scoreDocret(generated: ArrayLike<number> | string, goldId: number): DocretScore {
  const text = typeof generated === "string"
    ? generated.slice(0, DOCRET_DECODE_TOKENS)
    : new TextDecoder().decode(Uint8Array.from(Array.from(generated).slice(0, DOCRET_DECODE_TOKENS)));
  const m = /^\s*(\d+)/.exec(text);
  const predicted = m ? Number(m[1]) : NaN;
  return { correct: m !== null && m[1] === String(goldId), predicted };
}

// ---------- training data ----------

/** The byte that ends a trained answer: the id is followed by "]", which closes "[Doc 17". */
export const DOCRET_STOP = "]";

/** Options of `docretTrainingBatch`. */
export interface DocretTrainingOptions {
  /** The key of the whole run (row r of step s comes from keyAt(key, s, r)). */
  key: Key;
  /** The training step (batches are a pure function of key and step). */
  step: number;
  /** Rows per batch. */
  batch: number;
  /** Tokens per row (the model sees seqLen inputs). */
  seqLen: number;
  /** The paragraphs the documents are drawn from (e.g. `paragraphsOf` the training split). */
  paragraphs: readonly Paragraph[];
  /** Noise-document counts; each row draws one uniformly. */
  ks: readonly number[];
  /** How the query is made (default "sentence"). */
  query?: QueryKind;
  /** Loss weight of the answer targets: the id's digits and the stop (default 1). */
  answerWeight?: number;
  /** Loss weight of every other target of the sample (default 0: the answer only). */
  otherWeight?: number;
}

/** A docret training batch: token ids, loss weights, and what each row holds. */
export interface DocretTrainingBatch {
  /** [batch, seqLen] row-major token ids; a row's bytes after its sample are 0. */
  inputs: Int32Array;
  /** [batch, seqLen] row-major targets (the inputs shifted by one). */
  targets: Int32Array;
  /** [batch, seqLen] loss weights: answerWeight on the answer's digits and stop, otherWeight on the rest of the sample, 0 on the padding. */
  mask: Float32Array;
  /** Rows. */
  batch: number;
  /** Tokens per row. */
  seqLen: number;
  /** Each row's answer targets: positions [start, end) of the row (the digits, then the stop at end − 1). */
  answerSpans: { start: number; end: number }[];
  /** The noise-document count of each row. */
  ks: number[];
  /** The gold id of each row. */
  goldIds: number[];
}

/** Draws per k before a smaller k is tried (a sample longer than the row is drawn again). */
const FIT_ATTEMPTS = 8;

/**
 * Training batch `step` of the docret task. A row is one sample, left-aligned as the evaluation
 * sees it (the prompt from position 0, then the id's digits and "]"), padded with zeros that carry
 * no loss. Row r draws its k from `ks` with keyAt(key, step, r, 0) and its sample from
 * keyAt(key, step, r, 1, k, attempt): a sample that does not fit in seqLen + 1 bytes is drawn
 * again (up to 8 times), then with the next smaller k of `ks`; so long rows favour shorter
 * paragraphs, and a seqLen too short for the smallest k is an error that says so.
 */
export function docretTrainingBatch(opts: DocretTrainingOptions): DocretTrainingBatch {
  const { batch, seqLen } = opts;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new RangeError(`docretTrainingBatch: seqLen must be an integer >= 2, got ${seqLen}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`docretTrainingBatch: batch must be a positive integer, got ${batch}`);
  const ks = [...new Set(opts.ks)].sort((a, b) => a - b);
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k < 1)) {
    throw new RangeError(`docretTrainingBatch: ks must be positive integers, got [${opts.ks.join(", ")}]`);
  }
  const { answerWeight, otherWeight } = checkedLossWeights("docretTrainingBatch", opts.answerWeight, opts.otherWeight);
  const inputs = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  const mask = new Float32Array(batch * seqLen);
  const answerSpans: { start: number; end: number }[] = [];
  const rowKs: number[] = [];
  const goldIds: number[] = [];
  const enc = new TextEncoder();
  for (let r = 0; r < batch; r++) {
    const rowKey = keyAt(opts.key, opts.step, r);
    let ki = new HostRng(keyAt(rowKey, 0)).below(ks.length);
    let seq: Uint8Array | undefined;
    let sample: DocretSample | undefined;
    let shortest = Infinity;
    for (; ki >= 0 && !seq; ki--) {
      for (let attempt = 0; attempt < FIT_ATTEMPTS; attempt++) {
        const s = docretSample({ key: keyAt(rowKey, 1, ks[ki], attempt), paragraphs: opts.paragraphs, k: ks[ki], query: opts.query });
        const tail = enc.encode(s.answer + DOCRET_STOP);
        const n = s.bytes.length + tail.length;
        shortest = Math.min(shortest, n);
        if (n > seqLen + 1) continue;
        seq = new Uint8Array(n);
        seq.set(s.bytes, 0);
        seq.set(tail, s.bytes.length);
        sample = s;
        break;
      }
    }
    if (!seq || !sample) {
      throw new RangeError(
        `docretTrainingBatch: seqLen ${seqLen} is too short for k = ${ks[0]}: ${FIT_ATTEMPTS} samples of row ${r} needed at least ${shortest - 1} tokens (raise the sequence length${ks[0] > 1 ? " or lower k" : ""})`,
      );
    }
    const n = seq.length, p = sample.bytes.length, o = r * seqLen;
    for (let t = 0; t < n - 1; t++) {
      inputs[o + t] = seq[t];
      targets[o + t] = seq[t + 1];
      mask[o + t] = t >= p - 1 ? answerWeight : otherWeight;
    }
    answerSpans.push({ start: p - 1, end: n - 1 });
    rowKs.push(sample.k);
    goldIds.push(sample.goldId);
  }
  return { inputs, targets, mask, batch, seqLen, answerSpans, ks: rowKs, goldIds };
}
