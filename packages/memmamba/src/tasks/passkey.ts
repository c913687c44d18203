/**
 * Passkey retrieval, the DeciMamba protocol (Ben-Kish et al., "DeciMamba: Exploring the Length
 * Extrapolation Potential of Mamba"), on byte tokens.
 *
 * A sample of total length N bytes (= N tokens) is
 *
 *   filler[0, p) ‖ NEEDLE ‖ filler[p, F) ‖ QUESTION                      (exactly N bytes)
 *
 *   NEEDLE   = "The pass key is 12345. Remember it. 12345 is the pass key. "
 *   QUESTION = " What is the pass key? The pass key is "
 *   answer   = "12345"   (5 digits, 10000..99999; the prompt ends with a space, so the answer is
 *                          exactly the next 5 bytes)
 *
 * with F = N − |NEEDLE| − |QUESTION| filler bytes and the needle at depth d ∈ [0, 1]: p is the
 * sentence boundary of the filler nearest to d·F (a position right after ". ", "? ", "! " or a
 * newline), or d·F itself when no boundary lies within 256 bytes. So d = 0 puts the needle first,
 * d = 1 after the last whole filler sentence.
 *
 * Fillers (`FillerSpec`):
 *   classic  "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back
 *            again. " repeated (the classic passkey filler), starting at a sentence chosen by the key
 *   random   random-ish sentences from a small grammar (no digits), deterministic from the key
 *   text     bytes of given documents (e.g. books, Gutenberg header cut), from an offset chosen by
 *            the key, wrapping around; digits are replaced by "#" so that the passkey stays
 *            the only number in the context
 *
 * Scoring: the model greedily decodes up to 10 tokens after the prompt; the sample is correct iff
 * the leading digits of the decoded text (after leading whitespace) are exactly the passkey.
 *
 * Training (`passkeyTrainingBatch`): rows of seqLen + 1 bytes = a sample of seqLen − 4 bytes
 * followed by the 5 answer digits, depth uniform in [0, 1]; inputs = bytes[0, L), targets =
 * bytes[1, L + 1), and per-target loss weights `mask`: `answerWeight` (default 1) on the last 5
 * targets (the answer digits), `otherWeight` (default 0) on every other target — by default the
 * answer digits are the only targets scored.
 *
 * Everything is a pure function of its key.
 */
import { HostRng, keyAt, type Key } from "../data/rng.ts";
import { checkedLossWeights } from "./loss-weights.ts";
import type { TextDoc } from "../data/text.ts";

/** Needle depths evaluated by default: 0 puts the needle at the start of the filler, 1 at its end. */
export const PASSKEY_DEPTHS: readonly number[] = Object.freeze([0, 0.25, 0.5, 0.75, 1]);
/** DeciMamba's lengths run from 1K to 400K tokens. */
export const PASSKEY_LENGTHS: readonly number[] = Object.freeze([1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 409600]);
/** Digits of a pass key. */
export const PASSKEY_DIGITS = 5;
/** Greedy decoding length for scoring. */
export const PASSKEY_DECODE_TOKENS = 10;
/** The question that ends every prompt; the model answers with the digits. */
export const QUESTION = " What is the pass key? The pass key is ";
/** The classic repeated filler sentence of the passkey retrieval benchmark. */
export const CLASSIC_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";

/** The needle for a passkey. */
export function needleText(passkey: string): string {
  return `The pass key is ${passkey}. Remember it. ${passkey} is the pass key. `;
}

/** Fixed part of a sample: needle + question bytes (all ASCII). */
export const FIXED_BYTES: number = needleText("00000").length + QUESTION.length;

/** What fills the prompt around the needle: the classic repeated sentence, random generated sentences, or book text. */
export type FillerSpec =
  | { kind: "classic" }
  | { kind: "random" }
  | { kind: "text"; docs: readonly TextDoc[] };

const enc = new TextEncoder();

// ---------- fillers ----------

const SUBJECTS = ["The old man", "A small bird", "The river", "My neighbour", "The quiet child", "A tired horse", "The baker", "The north wind",
  "A young sailor", "The garden", "The teacher", "A grey cat", "The traveller", "The farmer", "An old clock", "The lighthouse keeper"];
const VERBS = ["walked past", "looked at", "waited by", "sang about", "remembered", "carried", "painted", "forgot", "followed", "watched",
  "cleaned", "found", "admired", "avoided", "dreamed of", "spoke about"];
const OBJECTS = ["the green hill", "a wooden bridge", "the empty market", "the tall trees", "an open window", "the winding road",
  "a blue door", "the stone wall", "the evening sky", "a quiet harbour", "the red barn", "the frozen lake", "a small boat",
  "the busy square", "the distant mountains", "a broken fence"];
const ENDINGS = [".", ".", ".", " in the morning.", " after dinner.", " once again.", " without a word.", " for a long time.", " in the rain."];

/** `n` bytes of generated random-ish sentences (no digits), deterministic from the rng. */
function randomSentences(rng: HostRng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let pos = 0;
  while (pos < n) {
    const s = enc.encode(`${rng.pick(SUBJECTS)} ${rng.pick(VERBS)} ${rng.pick(OBJECTS)}${rng.pick(ENDINGS)} `);
    out.set(s.subarray(0, Math.min(s.length, n - pos)), pos);
    pos += s.length;
  }
  return out;
}

function repeatBytes(unit: Uint8Array, offset: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = unit[(offset + i) % unit.length];
  return out;
}

const CLASSIC = enc.encode(CLASSIC_FILLER);
const CLASSIC_STARTS = [...CLASSIC_FILLER.matchAll(/(^|\. )(?=[A-Z])/g)].map((m) => m.index + m[0].length);

/** `n` filler bytes of the given kind, deterministic from the rng. */
export function makeFiller(spec: FillerSpec, rng: HostRng, n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`makeFiller: n must be a non-negative integer, got ${n}`);
  switch (spec.kind) {
    case "classic":
      return repeatBytes(CLASSIC, rng.pick(CLASSIC_STARTS), n);
    case "random":
      return randomSentences(rng, n);
    case "text": {
      const docs = spec.docs.filter((d) => d.bytes.length > 0);
      const total = docs.reduce((a, d) => a + d.bytes.length, 0);
      if (total === 0) throw new RangeError("makeFiller: the filler documents are empty");
      const out = new Uint8Array(n);
      let g = rng.below(total);
      let di = 0;
      while (g >= docs[di].bytes.length) g -= docs[di++].bytes.length;
      let off = g;
      for (let pos = 0; pos < n;) {
        const src = docs[di].bytes;
        const take = Math.min(src.length - off, n - pos);
        out.set(src.subarray(off, off + take), pos);
        pos += take;
        off = 0;
        di = (di + 1) % docs.length;
      }
      for (let i = 0; i < n; i++) if (out[i] >= 0x30 && out[i] <= 0x39) out[i] = 0x23; // digits → "#"
      return out;
    }
  }
}

// ---------- samples ----------

/** True if position p of the filler starts a sentence: p = 0, or right after ". ", "? ", "! " or a newline. */
function isBoundary(f: Uint8Array, p: number): boolean {
  if (p === 0) return true;
  const a = f[p - 1];
  if (a === 0x0a) return true;
  if (a !== 0x20 || p < 2) return false;
  const b = f[p - 2];
  return b === 0x2e || b === 0x3f || b === 0x21; // . ? !
}

/** The needle position for depth d in a filler: the sentence boundary nearest to d·F (see the module note). */
export function needlePosition(filler: Uint8Array, depth: number, window = 256): number {
  const F = filler.length;
  const target = Math.round(depth * F);
  for (let r = 0; r <= window; r++) {
    if (target - r >= 0 && isBoundary(filler, target - r)) return target - r;
    if (target + r <= F && isBoundary(filler, target + r)) return target + r;
  }
  return target;
}

/** One passkey retrieval sample: a prompt with a hidden pass key and where it is. */
export interface PasskeySample {
  /** The prompt, exactly `length` bytes, ending with the question. */
  prompt: Uint8Array;
  /** The 5 digits. */
  passkey: string;
  /** Needle depth in [0, 1] as asked for. */
  depth: number;
  /** Prompt length in bytes. */
  length: number;
  /** Byte offset of the needle in the prompt, and of its end. */
  needleStart: number;
  /** Byte offset just past the needle. */
  needleEnd: number;
  /** Filler bytes (F). */
  fillerBytes: number;
}

/** Options of `passkeySample`. */
export interface PasskeySampleOptions {
  /** The key the sample is drawn from (the same key gives the same sample). */
  key: Key;
  /** Total prompt length in bytes (tokens). */
  length: number;
  /** Needle depth in [0, 1]. */
  depth: number;
  /** What fills the prompt (default the classic sentence). */
  filler?: FillerSpec;
}

/** One passkey sample (see the module note). The same key gives the same sample. */
export function passkeySample(opts: PasskeySampleOptions): PasskeySample {
  const { length, depth } = opts;
  if (!Number.isInteger(length) || length < FIXED_BYTES) {
    throw new RangeError(`passkeySample: length must be an integer >= ${FIXED_BYTES} (needle + question), got ${length}`);
  }
  if (!(depth >= 0 && depth <= 1)) throw new RangeError(`passkeySample: depth must be in [0, 1], got ${depth}`);
  const rng = new HostRng(opts.key);
  const passkey = String(rng.int(10000, 99999));
  const needle = enc.encode(needleText(passkey));
  const question = enc.encode(QUESTION);
  const F = length - needle.length - question.length;
  const filler = makeFiller(opts.filler ?? { kind: "classic" }, rng, F);
  const p = needlePosition(filler, depth);
  const prompt = new Uint8Array(length);
  prompt.set(filler.subarray(0, p), 0);
  prompt.set(needle, p);
  prompt.set(filler.subarray(p), p + needle.length);
  prompt.set(question, F + needle.length);
  return { prompt, passkey, depth, length, needleStart: p, needleEnd: p + needle.length, fillerBytes: F };
}

/** Options of `passkeyGrid`. */
export interface PasskeyGridOptions {
  /** The key of the whole grid (see `passkeyGrid` for each sample's key). */
  key: Key;
  /** Prompt lengths in bytes (default PASSKEY_LENGTHS). */
  lengths?: readonly number[];
  /** Needle depths (default PASSKEY_DEPTHS). */
  depths?: readonly number[];
  /** Samples per (length, depth) cell (default 5). */
  samples?: number;
  /** What fills the prompts (default the classic sentence). */
  filler?: FillerSpec;
}

/** One sample of an evaluation grid, with its cell and index. */
export interface PasskeyGridItem {
  /** Index into the grid's lengths. */
  lengthIndex: number;
  /** Index into the grid's depths. */
  depthIndex: number;
  /** Index of the sample within its cell. */
  sampleIndex: number;
  /** The sample. */
  sample: PasskeySample;
}

/**
 * Every sample of an evaluation grid, lazily. Sample s of cell (length, depth) uses the key
 * foldIn(foldIn(foldIn(key, length), round(depth · 10⁶)), s): adding lengths or depths to a run
 * leaves the other cells' samples unchanged.
 */
export function* passkeyGrid(opts: PasskeyGridOptions): Generator<PasskeyGridItem> {
  const lengths = opts.lengths ?? PASSKEY_LENGTHS;
  const depths = opts.depths ?? PASSKEY_DEPTHS;
  const samples = opts.samples ?? 5;
  for (let li = 0; li < lengths.length; li++) {
    for (let di = 0; di < depths.length; di++) {
      for (let s = 0; s < samples; s++) {
        const key = keyAt(opts.key, lengths[li], Math.round(depths[di] * 1e6), s);
        yield { lengthIndex: li, depthIndex: di, sampleIndex: s, sample: passkeySample({ key, length: lengths[li], depth: depths[di], filler: opts.filler }) };
      }
    }
  }
}

// ---------- scoring ----------

/** The outcome of scoring one decoded answer. */
export interface PasskeyScore {
  /** True when the decoded digits are exactly the pass key. */
  correct: boolean;
  /** The digits the model produced (possibly ""). */
  predicted: string;
}

/**
 * Exact match of greedily decoded tokens (bytes; only the first 10 are looked at): correct iff
 * the leading digits after any leading whitespace are exactly the passkey.
 */
export function scorePasskey(generated: ArrayLike<number> | string, passkey: string): PasskeyScore {
  const text = typeof generated === "string"
    ? generated.slice(0, PASSKEY_DECODE_TOKENS)
    : new TextDecoder().decode(Uint8Array.from(Array.from(generated).slice(0, PASSKEY_DECODE_TOKENS)));
  const predicted = /^\s*(\d*)/.exec(text)![1];
  return { correct: predicted === passkey, predicted };
}

// ---------- training data ----------

/** Options of `passkeyTrainingBatch`. */
export interface PasskeyTrainingOptions {
  /** The key of the whole run (see `passkeyTrainingBatch` for each row's key). */
  key: Key;
  /** The training step (batches are a pure function of key and step). */
  step: number;
  /** Rows per batch. */
  batch: number;
  /** Tokens per row (the model sees seqLen inputs); >= FIXED_BYTES + 1. */
  seqLen: number;
  /** What fills the prompts (default the classic sentence). */
  filler?: FillerSpec;
  /** Depth range (default [0, 1]: uniform). */
  depthRange?: readonly [number, number];
  /** Loss weight of the 5 answer-digit targets (default 1). */
  answerWeight?: number;
  /** Loss weight of every other target: filler, needle, question (default 0: the answer only). */
  otherWeight?: number;
}

/** A passkey training batch: token ids, loss weights, and what each row holds. */
export interface PasskeyTrainingBatch {
  /** [batch, seqLen] row-major token ids. */
  inputs: Int32Array;
  /** [batch, seqLen] row-major target ids (the inputs shifted by one). */
  targets: Int32Array;
  /** [batch, seqLen] loss weights: answerWeight (1) on the 5 answer-digit targets of each row, otherWeight (0) elsewhere. */
  mask: Float32Array;
  /** Rows. */
  batch: number;
  /** Tokens per row. */
  seqLen: number;
  /** The pass key of each row. */
  passkeys: string[];
  /** The needle depth of each row. */
  depths: number[];
}

/**
 * Training batch `step`: row r comes from the key foldIn(foldIn(key, step), r), so resuming at a
 * step reproduces the batches. See the module note for the layout.
 */
export function passkeyTrainingBatch(opts: PasskeyTrainingOptions): PasskeyTrainingBatch {
  const { batch, seqLen } = opts;
  const promptLen = seqLen + 1 - PASSKEY_DIGITS;
  if (!Number.isInteger(seqLen) || promptLen < FIXED_BYTES) {
    throw new RangeError(`passkeyTrainingBatch: seqLen must be an integer >= ${FIXED_BYTES + PASSKEY_DIGITS - 1}, got ${seqLen}`);
  }
  const [d0, d1] = opts.depthRange ?? [0, 1];
  const { answerWeight, otherWeight } = checkedLossWeights("passkeyTrainingBatch", opts.answerWeight, opts.otherWeight);
  const inputs = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  const mask = new Float32Array(batch * seqLen);
  const passkeys: string[] = [];
  const depths: number[] = [];
  const stepKey = keyAt(opts.key, opts.step);
  for (let r = 0; r < batch; r++) {
    const rowKey = keyAt(stepKey, r);
    const depth = d0 + (d1 - d0) * new HostRng(keyAt(rowKey, 0)).float();
    const s = passkeySample({ key: keyAt(rowKey, 1), length: promptLen, depth, filler: opts.filler });
    const seq = new Uint8Array(seqLen + 1);
    seq.set(s.prompt, 0);
    seq.set(enc.encode(s.passkey), promptLen);
    for (let t = 0; t < seqLen; t++) {
      inputs[r * seqLen + t] = seq[t];
      targets[r * seqLen + t] = seq[t + 1];
    }
    for (let t = 0; t < seqLen; t++) mask[r * seqLen + t] = t >= seqLen - PASSKEY_DIGITS ? answerWeight : otherWeight;
    passkeys.push(s.passkey);
    depths.push(depth);
  }
  return { inputs, targets, mask, batch, seqLen, passkeys, depths };
}
