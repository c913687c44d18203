/**
 * The passkey demo's batches and held-out scores (the `train` command without --data).
 *
 * A row is the library's passkey training row (memmamba/src/tasks/passkey.ts: the prompt, then
 * the 5 answer digits as targets) followed by one more target: the "." that follows the key in
 * the needle ("The pass key is 12345. Remember it."). Why: the `passkey` command decodes greedily
 * and scores the leading digits exactly, so a model that was never taught where the answer ends
 * goes on emitting digits ("1234512345") and scores 0 even when it knows the key. The stop is
 * scored with the answer digits' weight.
 */
import { fromArray, tidy } from "@memmamba/tensor";
import { FIXED_BYTES, lm, type LMParams, PASSKEY_DIGITS, passkeyTrainingBatch, type PasskeyTrainingOptions } from "@memmamba/memmamba";
import type { HostTokenBatch } from "./adapters.ts";

/** The byte that ends the answer. */
export const PASSKEY_STOP = ".".charCodeAt(0);
/** Answer targets per row: the 5 digits and the stop. */
export const ANSWER_TARGETS = PASSKEY_DIGITS + 1;
/** The shortest training row: the needle, the question and the answer targets. */
export const MIN_PASSKEY_SEQ_LEN = FIXED_BYTES + PASSKEY_DIGITS;

/** A passkey training batch of `seqLen` tokens per row whose last target is the stop (see the module note). */
export function passkeyStopBatch(opts: PasskeyTrainingOptions): HostTokenBatch {
  const L = opts.seqLen;
  if (!Number.isInteger(L) || L < MIN_PASSKEY_SEQ_LEN) throw new RangeError(`passkeyStopBatch: seqLen must be an integer >= ${MIN_PASSKEY_SEQ_LEN}, got ${L}`);
  const b = passkeyTrainingBatch({ ...opts, seqLen: L - 1 });
  const B = b.batch;
  const inputs = new Int32Array(B * L);
  const targets = new Int32Array(B * L);
  const mask = new Float32Array(B * L);
  for (let r = 0; r < B; r++) {
    const src = r * (L - 1);
    inputs.set(b.inputs.subarray(src, src + L - 1), r * L);
    targets.set(b.targets.subarray(src, src + L - 1), r * L);
    mask.set(b.mask.subarray(src, src + L - 1), r * L);
    inputs[r * L + L - 1] = b.targets[src + L - 2]; // the last digit
    targets[r * L + L - 1] = PASSKEY_STOP;
    mask[r * L + L - 1] = b.mask[src + L - 2]; // the answer's weight
  }
  return { inputs, targets, mask, batch: B, seqLen: L };
}

/** Held-out scores of the demo (all teacher-forced on the answer targets). */
export type PasskeyScores = {
  /** Mean cross-entropy of the 5 answer digits (nats; guessing gives ln 10 ≈ 2.30). */
  evalLoss: number;
  /** Fraction of answer digits predicted right (argmax; chance 0.1). */
  digitAcc: number;
  /** Fraction of rows whose 5 digits and stop are all right: what greedy decoding would emit, so the `passkey` command's exact match at the training length. */
  exactMatch: number;
};

/** Scores a batch of passkeyStopBatch rows: its answer targets are each row's last ANSWER_TARGETS. */
export function passkeyScores(params: LMParams, batch: HostTokenBatch): Promise<PasskeyScores> {
  const L = batch.seqLen;
  return answerScores(params, batch, Array.from({ length: batch.batch }, () => ({ start: L - ANSWER_TARGETS, end: L })));
}

/**
 * Teacher-forced scores of answer spans: row r's targets [start, end) are an answer whose last
 * target is its stop (the passkey's ".", docret's "]"); evalLoss and digitAcc count the targets
 * before the stop, exactMatch needs the whole span right (what greedy decoding would emit).
 */
export async function answerScores(params: LMParams, batch: HostTokenBatch, spans: readonly { start: number; end: number }[]): Promise<PasskeyScores> {
  const { batch: B, seqLen: L } = batch;
  if (spans.length !== B) throw new RangeError(`answerScores: ${spans.length} spans for ${B} rows`);
  for (const [r, sp] of spans.entries()) {
    if (!(Number.isInteger(sp.start) && Number.isInteger(sp.end) && sp.start >= 0 && sp.end - sp.start >= 2 && sp.end <= L)) {
      throw new RangeError(`answerScores: row ${r}'s span [${sp.start}, ${sp.end}) must hold at least one answer target and the stop inside [0, ${L})`);
    }
  }
  const logits = tidy(() => lm.apply(params, fromArray(batch.inputs, [B, L], "i32"), { counts: false }).logits);
  const v = await logits.data();
  logits.dispose();
  const V = v.length / (B * L);
  let rows = 0;
  let digits = 0;
  let scored = 0;
  let nll = 0;
  for (let r = 0; r < B; r++) {
    const { start, end } = spans[r];
    let all = true;
    for (let t = start; t < end; t++) {
      const row = v.subarray((r * L + t) * V, (r * L + t + 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
      const target = batch.targets[r * L + t];
      if (best !== target) all = false;
      if (t === end - 1) continue; // the stop: part of exact match only
      let z = 0;
      for (let i = 0; i < V; i++) z += Math.exp(row[i] - row[best]);
      nll += Math.log(z) - (row[target] - row[best]);
      scored++;
      if (best === target) digits++;
    }
    if (all) rows++;
  }
  return { evalLoss: nll / scored, digitAcc: digits / scored, exactMatch: rows / B };
}
