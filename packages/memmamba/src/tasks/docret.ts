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
 * (one document per line, a blank line before the question; the prompt ends with "[Doc ").
 * The answer is the gold id's digits, e.g. "17".
 *
 * Query (`query` option):
 *   "sentence"     (default) a sentence of the gold paragraph, 30..200 characters, that occurs in
 *                  no noise document; the most distinctive choice
 *   "first-words"  the gold paragraph's first 8 words; the question then reads
 *                  `Which document begins with "<words>"?`
 *
 * k ∈ {10, 20, 120, 160, 200} in the paper's protocol (`DOCRET_KS`); any k >= 1 works.
 * Scoring: exact match of the leading integer of the decoded text with the gold id.
 * Everything is a pure function of the key.
 */
import { HostRng, keyAt, type Key } from "../data/rng.ts";
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

/** Options of `paragraphsOf`: the accepted paragraph lengths. */
export interface ParagraphOptions {
  /** Shortest paragraph kept, in characters (default 200). */
  minChars?: number;
  /** Longest paragraph kept, in characters (default 1000). */
  maxChars?: number;
}

const SENTENCE_RE = /[^.!?]+[.!?]+["')\]]*/g;

/** The sentences of a text (runs ending in . ! or ?, closing quotes kept), trimmed. */
export function sentencesOf(text: string): string[] {
  return (text.match(SENTENCE_RE) ?? []).map((s) => s.trim()).filter(Boolean);
}

/** Prose paragraphs of the documents (see the module note), in document order, texts unique. */
export function paragraphsOf(docs: readonly TextDoc[], opts: ParagraphOptions = {}): Paragraph[] {
  const min = opts.minChars ?? 200;
  const max = opts.maxChars ?? 1000;
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

/** How the query quotes the gold document: one of its sentences, or its first words. */
export type QueryKind = "sentence" | "first-words";

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

function docLine(id: number, text: string): string {
  return `[Doc ${id}] ${text}`;
}

/** The query sentence for a gold paragraph, or undefined when none is distinctive. */
function pickQuery(rng: HostRng, gold: string, noise: readonly string[], kind: QueryKind): string | undefined {
  const inNoise = (q: string) => noise.some((t) => t.includes(q));
  if (kind === "first-words") {
    const q = gold.split(" ").slice(0, 8).join(" ");
    return inNoise(q) ? undefined : q;
  }
  const candidates = sentencesOf(gold).filter((s) => s.length >= 30 && s.length <= 200 && !s.includes('"') && !inNoise(s));
  return candidates.length ? rng.pick(candidates) : undefined;
}

/** One sample (see the module note). */
export function docretSample(opts: DocretSampleOptions): DocretSample {
  const { paragraphs, k } = opts;
  const kind = opts.query ?? "sentence";
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
    const question = kind === "first-words"
      ? `Question: Which document begins with "${query}"? Answer: [Doc `
      : `Question: Which document contains the sentence "${query}"? Answer: [Doc `;
    const prompt = `${docs.map((p, j) => docLine(posIds[j], p.text)).join("\n")}\n\n${question}`;
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
