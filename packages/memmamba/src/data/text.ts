/**
 * Byte-level text data: tokens are bytes (vocabulary 256), so any UTF-8 file is a token stream.
 *
 * Loading. `loadTexts(path)` reads one file, or every `*.txt` of a directory (sorted by name).
 * Each Project Gutenberg book is cut to the text between the line holding `*** START OF` and the
 * line holding `*** END OF` (both marker lines excluded); a file without the markers is kept whole.
 *
 * Split (`splitTexts`), deterministic and documented:
 *   1. a set of documents that includes all six books the data README holds out (10700, 11080,
 *      10343, 10351, 10064, 10114) uses exactly those six as validation (the suggested split);
 *   2. otherwise, with two or more documents, the ⌈n/10⌉ longest (after the cut; ties by name)
 *      are validation: the same spirit, long books held out for long-context evaluation;
 *   3. a single document is split by position: the last 10% of its bytes is validation.
 *
 * Training windows (`WindowSampler`). Batch `step` row r is a uniformly random window of L + 1
 * bytes over all windows of all training documents (a document of n bytes has n − L of them),
 * drawn from the key `foldIn(foldIn(key, step), r)`: a pure function of (key, step), so a run
 * resumed at step k sees exactly the batches an uninterrupted run saw. inputs = bytes[s, s+L),
 * targets = bytes[s+1, s+L+1).
 *
 * Evaluation windows (`pplWindows`), the paper's PG-19 protocol: for each book of n bytes and a
 * context length L, 10 windows of L + 1 bytes at starts i · stride, i = 0..9, with
 * stride = ⌊(n − L − 1) / 10⌋ (i.e. "(len − L) / 10"); the NLL is measured on each window's last
 * 100 targets (positions L − 100 .. L − 1). Books shorter than L + 1 bytes are skipped (and
 * counted). The model call is the caller's: `scoreFrom` says where scoring starts. So each length
 * scores other bytes. With `alignTo` = A (the longest length evaluated) every length scores the
 * same ones instead: the windows of length A are placed as above, and the window of length L ≤ A
 * is the last L bytes of each (it ends where that one ends), so PPL by context length compares
 * contexts on fixed targets; books shorter than A + 1 bytes are skipped at every length.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { HostRng, keyAt, type Key } from "./rng.ts";

/** The vocabulary of the byte-level models: one token per byte value. */
export const VOCAB_SIZE = 256;

/** A document: a name (file name) and its bytes (after the Gutenberg cut). */
export interface TextDoc {
  /** The file name. */
  name: string;
  /** The text's bytes (UTF-8 as stored), one token each. */
  bytes: Uint8Array;
}

/** The six longest books of ../shared/data/books, held out by the data README's suggested split. */
export const SUGGESTED_VALIDATION: readonly string[] = Object.freeze([
  "10700.txt",
  "11080.txt",
  "10343.txt",
  "10351.txt",
  "10064.txt",
  "10114.txt",
]);

// "*** START OF" / "*** END OF"; 20 of the 69 books write "***START OF" without the space
const START = /\*\*\* ?START OF/g;
const END = /\*\*\* ?END OF/g;

/** A byte-for-byte string view of the bytes (windows-1252 maps each byte to one UTF-16 unit). */
function byteString(bytes: Uint8Array): string {
  return new TextDecoder("windows-1252").decode(bytes);
}

/**
 * The book text of a Gutenberg file: from the line after the one holding `*** START OF` to the end
 * of the line before the one holding `*** END OF` (the space after the stars is optional, as in
 * some of the files). Without a START marker the text starts at 0; without an END marker after it,
 * it runs to the end. Returns a view (no copy).
 */
export function cutGutenberg(bytes: Uint8Array): Uint8Array {
  const text = byteString(bytes);
  let begin = 0;
  START.lastIndex = 0;
  const s = START.exec(text);
  if (s) {
    const nl = bytes.indexOf(0x0a, s.index);
    begin = nl < 0 ? bytes.length : nl + 1;
  }
  let end = bytes.length;
  END.lastIndex = begin;
  const e = END.exec(text);
  if (e) {
    const lineStart = e.index === 0 ? -1 : bytes.lastIndexOf(0x0a, e.index - 1);
    end = Math.max(begin, lineStart + 1);
  }
  return bytes.subarray(begin, end);
}

/** Options of `loadTexts`. */
export interface LoadOptions {
  /** Cut each file to its Gutenberg book text (default true). */
  cut?: boolean;
}

/** Reads one file or every `*.txt` in a directory (sorted by name). Errors name the path. */
export function loadTexts(path: string, opts: LoadOptions = {}): TextDoc[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new Error(`${path}: no such file or directory (expected a .txt file or a directory of them)`);
  }
  const files = st.isDirectory()
    ? readdirSync(path).filter((n) => n.endsWith(".txt")).sort().map((n) => join(path, n))
    : [path];
  if (files.length === 0) throw new Error(`${path}: the directory holds no .txt files`);
  return files.map((f) => {
    const raw = new Uint8Array(readFileSync(f));
    // text has no NUL bytes; a checkpoint or an archive given by mistake does (in its first 64 KiB)
    const nul = raw.subarray(0, 65536).indexOf(0);
    if (nul >= 0) throw new Error(`${f}: not a text file (a NUL byte at offset ${nul}); expected UTF-8 text such as a .txt book`);
    return { name: basename(f), bytes: opts.cut === false ? raw : cutGutenberg(raw) };
  });
}

/** A train / validation split of documents. */
export interface Split {
  /** The documents to train on. */
  train: TextDoc[];
  /** The held-out documents. */
  validation: TextDoc[];
  /** Which rule made the split, in words. */
  rule: string;
}

/** The train / validation split described in the module note. */
export function splitTexts(docs: readonly TextDoc[]): Split {
  if (docs.length === 0) throw new Error("splitTexts: no documents");
  const names = new Set(docs.map((d) => d.name));
  if (SUGGESTED_VALIDATION.every((n) => names.has(n))) {
    const val = new Set(SUGGESTED_VALIDATION);
    return {
      train: docs.filter((d) => !val.has(d.name)),
      validation: docs.filter((d) => val.has(d.name)),
      rule: "the data README's suggested split (the six longest books held out)",
    };
  }
  if (docs.length >= 2) {
    const k = Math.ceil(docs.length / 10);
    const byLength = [...docs].sort((a, b) => b.bytes.length - a.bytes.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const val = new Set(byLength.slice(0, k).map((d) => d.name));
    return {
      train: docs.filter((d) => !val.has(d.name)),
      validation: docs.filter((d) => val.has(d.name)),
      rule: `the ${k} longest of ${docs.length} documents held out`,
    };
  }
  const d = docs[0];
  const cut = Math.floor(d.bytes.length * 0.9);
  return {
    train: [{ name: d.name, bytes: d.bytes.subarray(0, cut) }],
    validation: [{ name: `${d.name}#validation`, bytes: d.bytes.subarray(cut) }],
    rule: "one document: its last 10% held out",
  };
}

/** Which documents of a split: "train", "validation" or "all" (no split). */
export type SplitPart = "train" | "validation" | "all";

/**
 * The documents of one part of `splitTexts(docs)` (or all of them for "all"), and the rule in
 * words. The passkey filler uses it: training on the "train" books and evaluating on the
 * "validation" ones keeps the evaluation filler unseen.
 */
export function splitPart(docs: readonly TextDoc[], part: SplitPart): { docs: TextDoc[]; rule: string } {
  if (part === "all") return { docs: [...docs], rule: "all documents" };
  if (part !== "train" && part !== "validation") throw new RangeError(`splitPart: part must be train, validation or all, got ${JSON.stringify(part)}`);
  const s = splitTexts(docs);
  return { docs: part === "train" ? s.train : s.validation, rule: `${part} split: ${s.rule}` };
}

/** Bytes to token ids (Int32Array of 0..255). */
export function bytesToTokens(bytes: Uint8Array): Int32Array {
  return Int32Array.from(bytes);
}

/** Token ids (0..255) back to text (invalid UTF-8 shown as U+FFFD). */
export function tokensToText(tokens: ArrayLike<number>): string {
  return new TextDecoder().decode(Uint8Array.from(tokens as ArrayLike<number>));
}

/** One training batch: row-major [batch, seqLen] token ids. */
export interface TokenBatch {
  /** Input token ids, row-major [batch, seqLen]. */
  inputs: Int32Array;
  /** Target token ids (the inputs shifted by one), row-major [batch, seqLen]. */
  targets: Int32Array;
  /** Rows. */
  batch: number;
  /** Tokens per row. */
  seqLen: number;
}

/** A batch of training windows with the place each row was cut from. */
export interface WindowBatch extends TokenBatch {
  /** Where each row came from. */
  origins: { doc: string; start: number }[];
}

/** Random training windows, a pure function of (key, step, row): see the module note. */
export class WindowSampler {
  /** The documents windows are cut from. */
  readonly docs: readonly TextDoc[];
  /** Input tokens per window (a window holds seqLen + 1 bytes: inputs and shifted targets). */
  readonly seqLen: number;
  /** The key every batch is derived from. */
  readonly key: Key;
  /** Number of distinct windows. */
  readonly windows: number;
  readonly #cum: number[] = []; // cumulative window counts, one per usable doc
  readonly #usable: TextDoc[] = [];

  /** Windows of `seqLen` + 1 bytes from `docs` (documents shorter than that are skipped), drawn with `key`. */
  constructor(docs: readonly TextDoc[], seqLen: number, key: Key) {
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`WindowSampler: seqLen must be a positive integer, got ${seqLen}`);
    this.docs = docs;
    this.seqLen = seqLen;
    this.key = key;
    let total = 0;
    for (const d of docs) {
      const n = d.bytes.length - seqLen;
      if (n <= 0) continue;
      total += n;
      this.#usable.push(d);
      this.#cum.push(total);
    }
    if (total === 0) {
      const longest = Math.max(0, ...docs.map((d) => d.bytes.length));
      throw new RangeError(`WindowSampler: no document is longer than seqLen + 1 = ${seqLen + 1} bytes (the longest has ${longest})`);
    }
    this.windows = total;
  }

  /** The window with global index g: its document and start. */
  locate(g: number): { doc: TextDoc; start: number } {
    let lo = 0, hi = this.#cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#cum[mid] > g) hi = mid;
      else lo = mid + 1;
    }
    const before = lo === 0 ? 0 : this.#cum[lo - 1];
    return { doc: this.#usable[lo], start: g - before };
  }

  /** Batch number `step` of `batch` rows. */
  batch(step: number, batch: number): WindowBatch {
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`WindowSampler.batch: step must be a non-negative integer, got ${step}`);
    const L = this.seqLen;
    const inputs = new Int32Array(batch * L);
    const targets = new Int32Array(batch * L);
    const origins: { doc: string; start: number }[] = [];
    const stepKey = keyAt(this.key, step);
    for (let r = 0; r < batch; r++) {
      const g = new HostRng(keyAt(stepKey, r)).below(this.windows);
      const { doc, start } = this.locate(g);
      const w = doc.bytes.subarray(start, start + L + 1);
      for (let t = 0; t < L; t++) {
        inputs[r * L + t] = w[t];
        targets[r * L + t] = w[t + 1];
      }
      origins.push({ doc: doc.name, start });
    }
    return { inputs, targets, batch, seqLen: L, origins };
  }
}

/** One evaluation window (views into the book, no copies). */
export interface EvalWindow {
  /** The document's name. */
  doc: string;
  /** Index of this window within its book (0..9). */
  index: number;
  /** Byte offset of the window in its document. */
  start: number;
  /** bytes[start, start + L) */
  inputs: Uint8Array;
  /** bytes[start + 1, start + L + 1) */
  targets: Uint8Array;
  /** First target position that is scored (L − scoredTokens); score targets[scoreFrom..L). */
  scoreFrom: number;
}

/** Options of the perplexity evaluation windows. */
export interface PplWindowOptions {
  /** Windows per book (default 10). */
  windowsPerBook?: number;
  /** Scored targets at the end of each window (default 100). */
  scoredTokens?: number;
  /**
   * Score the same targets at every length (see the module note): the windows of this length
   * (≥ seqLen, the longest evaluated) are placed, and each window of seqLen ends where one of
   * them ends. Default: none (each length's own windows).
   */
  alignTo?: number;
}

/** The starts of the evaluation windows of a book of n bytes (see the module note); [] if too short. */
export function pplWindowStarts(n: number, seqLen: number, windowsPerBook = 10): number[] {
  if (n < seqLen + 1) return [];
  const stride = Math.floor((n - seqLen - 1) / windowsPerBook);
  const starts: number[] = [];
  for (let i = 0; i < windowsPerBook; i++) {
    const s = i * stride;
    if (starts.length && starts[starts.length - 1] === s) break; // stride 0: one window only
    starts.push(s);
  }
  return starts;
}

/** The evaluation windows of every book at context length `seqLen`, lazily. */
export function* pplWindows(docs: readonly TextDoc[], seqLen: number, opts: PplWindowOptions = {}): Generator<EvalWindow> {
  const scored = opts.scoredTokens ?? 100;
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new RangeError(`pplWindows: seqLen must be a positive integer, got ${seqLen}`);
  if (!(scored >= 1 && scored <= seqLen)) throw new RangeError(`pplWindows: scoredTokens must be in [1, seqLen = ${seqLen}], got ${scored}`);
  const A = opts.alignTo ?? seqLen;
  if (!Number.isInteger(A) || A < seqLen) throw new RangeError(`pplWindows: alignTo must be an integer >= seqLen = ${seqLen}, got ${opts.alignTo}`);
  for (const d of docs) {
    const starts = pplWindowStarts(d.bytes.length, A, opts.windowsPerBook ?? 10);
    for (let i = 0; i < starts.length; i++) {
      const s = starts[i] + A - seqLen; // aligned: the last seqLen bytes of the window of length A
      yield {
        doc: d.name,
        index: i,
        start: s,
        inputs: d.bytes.subarray(s, s + seqLen),
        targets: d.bytes.subarray(s + 1, s + seqLen + 1),
        scoreFrom: seqLen - scored,
      };
    }
  }
}

/** Which books have no window at this length (shorter than seqLen + 1 bytes). */
export function booksTooShort(docs: readonly TextDoc[], seqLen: number): string[] {
  return docs.filter((d) => d.bytes.length < seqLen + 1).map((d) => d.name);
}

/** Perplexity from a summed NLL (nats) over `count` tokens, and bits per byte. */
export function perplexity(sumNll: number, count: number): { ppl: number; nll: number; bitsPerByte: number } {
  const nll = sumNll / count;
  return { ppl: Math.exp(nll), nll, bitsPerByte: nll / Math.LN2 };
}
