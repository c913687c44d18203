/**
 * What the evaluation commands do with a trained language model: load it from a checkpoint,
 * decode greedily after a long prompt in streaming mode, and measure the NLL of a window's last
 * tokens — all in constant memory in the prompt length (the prompt goes through `lm.applyChunked`
 * chunk by chunk, only the state and the current chunk's logits are alive at any time).
 *
 * The transformer baseline has no recurrent state: it runs `lm.apply` on the whole sequence
 * (memory grows with the length, as it does for any transformer).
 */
import { crossEntropy, disposeTree, fromArray, random, sliceAxis, sum, tidy, type Tensor } from "@memmamba/tensor";
import { lm, parseConfig, StepCache, type LMParams, type LMState, type ModelConfig } from "@memmamba/memmamba";
import { loadCheckpoint, restoreState, type LoadedCheckpoint } from "./checkpoint.ts";

/** A model loaded from a checkpoint. */
export interface LoadedModel {
  /** The parameters, on the current backend (dispose them when done). */
  params: LMParams;
  /** The validated config the checkpoint holds. */
  config: ModelConfig;
  /** The checkpoint it came from. */
  checkpoint: LoadedCheckpoint;
}

function argmaxRow(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** The last position's logits after feeding `tokens` from `state`, and the new state (chunked). */
async function feedChunked(params: LMParams, tokens: Uint8Array, state: LMState, chunk: number): Promise<{ last: Float32Array; state: LMState }> {
  let cur = state;
  let last: Float32Array | undefined;
  for (let s = 0; s < tokens.length; s += chunk) {
    const piece = tokens.subarray(s, Math.min(tokens.length, s + chunk));
    const n = piece.length;
    const r = tidy(() => {
      const t = fromArray(Int32Array.from(piece), [1, n], "i32");
      const out = lm.applyChunked(params, t, { chunk }, cur);
      return { lastLogits: sliceAxis(out.logits, 1, n - 1, n), state: out.state };
    });
    if (cur !== state) disposeTree(cur);
    cur = r.state;
    last = Float32Array.from(await r.lastLogits.data());
    r.lastLogits.dispose();
  }
  return { last: last!, state: cur };
}

/**
 * Greedy decoding of up to `maxTokens` bytes after `prompt` (batch 1). Streams the prompt through
 * the recurrent state `chunk` tokens at a time, then steps one token at a time.
 */
export async function greedyDecode(params: LMParams, prompt: Uint8Array, maxTokens: number, chunk = 512): Promise<number[]> {
  if (prompt.length === 0) throw new RangeError("greedyDecode: empty prompt");
  const out: number[] = [];
  if (params.config.kind === "transformer") {
    const seq = Array.from(prompt);
    for (let i = 0; i < maxTokens; i++) {
      const row = tidy(() => {
        const t = fromArray(Int32Array.from(seq), [1, seq.length], "i32");
        return sliceAxis(lm.apply(params, t, { counts: false }).logits, 1, seq.length - 1, seq.length);
      });
      const next = argmaxRow(Float32Array.from(await row.data()));
      row.dispose();
      out.push(next);
      seq.push(next);
    }
    return out;
  }
  const init = lm.initState(params.config, 1);
  let { last, state } = await feedChunked(params, prompt, init, chunk);
  if (state !== init) disposeTree(init);
  const cache = new StepCache(); // the parameters' folded weights, computed once for the steps
  try {
    for (let i = 0; i < maxTokens; i++) {
      const next = argmaxRow(last);
      out.push(next);
      if (i === maxTokens - 1) break;
      const r = tidy(() => lm.step(params, fromArray(Int32Array.of(next), [1], "i32"), state, { cache }));
      disposeTree(state);
      state = r.state;
      last = Float32Array.from(await r.logits.data());
      r.logits.dispose();
    }
  } finally {
    disposeTree(state);
    cache.dispose();
  }
  return out;
}

/**
 * `windowNll` of several windows of the same length and the same first scored position at once,
 * as one batch (one row per window): the summed NLL and count over all of them. On a GPU this
 * streams B windows for about the price of one; each row's numbers are those of `windowNll` up to
 * f32 summation order. Transformers (no chunked state) take the windows one by one.
 */
export async function windowNllBatch(
  params: LMParams,
  windows: readonly { inputs: Uint8Array; targets: Uint8Array; scoreFrom: number }[],
  chunk = 512,
): Promise<{ sum: number; count: number }> {
  if (windows.length === 0) return { sum: 0, count: 0 };
  const L = windows[0].inputs.length, scoreFrom = windows[0].scoreFrom, B = windows.length;
  for (const w of windows) {
    if (w.inputs.length !== L || w.targets.length !== L || w.scoreFrom !== scoreFrom) {
      throw new RangeError(`windowNllBatch: every window must have ${L} inputs and targets and score from ${scoreFrom}; got ${w.inputs.length}, ${w.targets.length}, ${w.scoreFrom}`);
    }
  }
  if (params.config.kind === "transformer") {
    let sum = 0, count = 0;
    for (const w of windows) {
      const r = await windowNll(params, w.inputs, w.targets, w.scoreFrom, chunk);
      sum += r.sum;
      count += r.count;
    }
    return { sum, count };
  }
  const rows = (pick: (w: (typeof windows)[number]) => Uint8Array, from: number, to: number) => {
    const out = new Int32Array(B * (to - from));
    windows.forEach((w, b) => out.set(pick(w).subarray(from, to), b * (to - from)));
    return fromArray(out, [B, to - from], "i32");
  };
  let state = lm.initState(params.config, B);
  let total = 0;
  try {
    for (let s = 0; s < L; s += chunk) {
      const e = Math.min(L, s + chunk);
      const r = tidy(() => {
        const out = lm.applyChunked(params, rows((w) => w.inputs, s, e), { chunk }, state);
        const from = Math.max(s, scoreFrom);
        const nll = e > scoreFrom ? sum(crossEntropy(sliceAxis(out.logits, 1, from - s, e - s), rows((w) => w.targets, from, e))) : undefined;
        return { nll, state: out.state };
      });
      disposeTree(state);
      state = r.state;
      if (r.nll) {
        total += await r.nll.item();
        r.nll.dispose();
      }
    }
  } finally {
    disposeTree(state);
  }
  return { sum: total, count: B * (L - scoreFrom) };
}

/**
 * Sum of −log p(targets[t]) over t in [scoreFrom, L) for one window (batch 1), and the count.
 * Positions before scoreFrom only build the state (their logits are dropped chunk by chunk).
 */
export async function windowNll(
  params: LMParams,
  inputs: Uint8Array,
  targets: Uint8Array,
  scoreFrom: number,
  chunk = 512,
): Promise<{ sum: number; count: number }> {
  const L = inputs.length;
  if (targets.length !== L) throw new RangeError(`windowNll: ${L} inputs but ${targets.length} targets`);
  const scored = (logits: Tensor, from: number, to: number, offset: number) =>
    sum(crossEntropy(sliceAxis(logits, 1, from - offset, to - offset), fromArray(Int32Array.from(targets.subarray(from, to)), [1, to - from], "i32")));
  if (params.config.kind === "transformer") {
    const t = tidy(() => scored(lm.apply(params, fromArray(Int32Array.from(inputs), [1, L], "i32"), { counts: false }).logits, scoreFrom, L, 0));
    const v = await t.item();
    t.dispose();
    return { sum: v, count: L - scoreFrom };
  }
  return await windowNllBatch(params, [{ inputs, targets, scoreFrom }], chunk);
}
