/**
 * The recurrent and chunked modes of the same parameters.
 *
 * - `step`: one token per sequence, constant memory: the Mamba blocks run on length 1 from the
 *   carried conv buffer and SSM state; each layer reads its pool, then inserts its note with
 *   tensor ops (no readback), so it streams on any backend.
 * - `applyChunked`: the parallel form chunk by chunk, carrying the same state: the conv prefix,
 *   the scan's h0, and the pool (its notes replayed as virtual positions before the chunk).
 *
 * Ownership: neither disposes the state it is given; each returns a fresh state (no tensor shared
 * with the old one), which the caller disposes (`disposeTree(state)`).
 */
import { concat, disposeTree, reshape, showShape, sliceAxis, tidy, type Tensor } from "@memmamba/tensor";
import type { LayerTrace } from "./layer.ts";
import { StepCache, withStepCache } from "./derived.ts";
import { forward, type LMParams } from "./model.ts";
import { checkState, initState, type LMState } from "./state.ts";

/** What `step` returns. */
export interface StepOutput {
  /** [B, vocab]. */
  logits: Tensor;
  /** The state after this token. */
  state: LMState;
  /** Per layer, what the step did (with `{ trace: true }`; memmamba only): see LayerTrace. */
  trace?: LayerTrace[];
}

/** Options of `step`. */
export interface StepOptions {
  /**
   * Also return per-layer signals: token score, write, the note's fate in the pool (accepted,
   * evicted slot), the cross-token attention weights over the pool slots. Same logits and state.
   */
  trace?: boolean;
  /**
   * Keeps the values that depend on the parameters alone (folded weights, A = −exp(A_log)) from
   * one step to the next: pass the same cache to every step of the same parameters, and dispose
   * it after (see derived.ts). The same logits and state as without.
   */
  cache?: StepCache;
}

/** One recurrent step: token i32 [B] → the next-token logits [B, vocab] and the next state. */
export function step(params: LMParams, token: Tensor, state: LMState, opts: StepOptions = {}): StepOutput {
  if (token.dtype !== "i32" || token.rank !== 1 || token.shape[0] !== state.batch) {
    throw new Error(`lm.step: token must be i32 [${state.batch}] (the state's batch), got ${token.dtype} ${showShape(token.shape)}`);
  }
  checkState("lm.step", params.config, state);
  return tidy(() => {
    const B = state.batch;
    const r = withStepCache(opts.cache, () => forward(params, reshape(token, [B, 1]), { states: state.layers, step: true, trace: opts.trace }));
    const out: StepOutput = { logits: reshape(r.logits, [B, params.config.vocab]), state: { batch: B, layers: r.states! } };
    if (opts.trace) out.trace = r.trace;
    return out;
  });
}

/** Options of `applyChunked`. */
export interface ChunkOptions {
  /** Positions per chunk. */
  chunk: number;
  /**
   * Return the state after the last position (default true). false: the last chunk builds no
   * next state (per layer, the pool's gather of its held notes, the conv tail and the scan's
   * final h: about seven launches a MemMamba layer, two a Mamba one) — for callers that want
   * the logits only. The logits are the same either way.
   */
  finalState?: boolean;
}

/**
 * The chunked mode: tokens i32 [B, L] in chunks of `chunk` positions, starting from `state` (or an
 * empty one). Returns the logits of every position [B, L, vocab] and the state after the last
 * (none with `finalState: false`). With several chunks the parameter-only values are computed
 * once for all of them (a StepCache of its own, derived.ts): the same logits.
 */
export function applyChunked(params: LMParams, tokens: Tensor, opts: ChunkOptions & { finalState: false }, state?: LMState): { logits: Tensor; state?: undefined };
/** The chunked mode with the state after the last position (see the signature above). */
export function applyChunked(params: LMParams, tokens: Tensor, opts: ChunkOptions, state?: LMState): { logits: Tensor; state: LMState };
export function applyChunked(params: LMParams, tokens: Tensor, opts: ChunkOptions, state?: LMState): { logits: Tensor; state?: LMState } {
  const { chunk } = opts;
  const keepFinal = opts.finalState ?? true;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`lm.applyChunked: chunk must be a positive integer, got ${chunk}`);
  if (tokens.dtype !== "i32" || tokens.rank !== 2) throw new Error(`lm.applyChunked: tokens must be i32 [B, L], got ${tokens.dtype} ${showShape(tokens.shape)}`);
  const [B, L] = tokens.shape;
  if (L < 1) throw new Error("lm.applyChunked: tokens must hold at least one position");
  if (state && state.batch !== B) throw new Error(`lm.applyChunked: the state is for batch ${state.batch}, tokens have ${B}`);
  if (state) checkState("lm.applyChunked", params.config, state);
  // several chunks: the parameter-only values (folded weights, A, in_proj's halves) once for all
  const cache = L > chunk ? new StepCache() : undefined;
  try {
    return tidy(() => {
      let cur: LMState | undefined = state ?? initState(params.config, B);
      const logits: Tensor[] = [];
      for (let s = 0; s < L; s += chunk) {
        const e = Math.min(L, s + chunk);
        const r = withStepCache(cache, () => forward(params, sliceAxis(tokens, 1, s, e), { states: cur!.layers, nextStates: keepFinal || e < L }));
        if (cur !== state) disposeTree(cur); // ours, not the caller's: free it as we go
        cur = r.states && { batch: B, layers: r.states };
        logits.push(r.logits);
      }
      return cur ? { logits: concat(logits, 1), state: cur } : { logits: concat(logits, 1) };
    });
  } finally {
    cache?.dispose();
  }
}

/**
 * Feeds tokens i32 [B, T] one at a time through `step` (a prompt, a long stream), freeing each
 * intermediate state and logits. Returns the last position's logits [B, vocab] and the final state.
 */
export function feed(params: LMParams, tokens: Tensor, state: LMState): StepOutput {
  const T = tokens.shape[1];
  if (tokens.dtype !== "i32" || tokens.rank !== 2 || T < 1) throw new Error(`lm.feed: tokens must be i32 [B, T ≥ 1], got ${tokens.dtype} ${showShape(tokens.shape)}`);
  let cur: StepOutput | undefined;
  const cache = new StepCache();
  try {
    for (let t = 0; t < T; t++) {
      const tok = tidy(() => reshape(sliceAxis(tokens, 1, t, t + 1), [tokens.shape[0]]));
      const next = step(params, tok, cur ? cur.state : state, { cache });
      tok.dispose();
      if (cur) disposeTree(cur);
      cur = next;
    }
  } finally {
    cache.dispose();
  }
  return cur!;
}
