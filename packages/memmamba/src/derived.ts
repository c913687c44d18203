/**
 * Values that depend on the parameters alone, kept across recurrent steps.
 *
 * Every forward recomputes a few values of the weights alone: the pool read's query weight
 * W_q·W_kᵀ, the fusion's folded weights (W_v·W_F) ⊙ α, the scan's A = −exp(A_log) and in_proj's
 * two halves. In a parallel forward or a training step they are a handful of small launches among
 * hundreds of large ones; in a recurrent step (one token) they were ~50 of a small MemMamba's
 * ~550 launches a token on the wasm backend, and 90% of a step's time on a software adapter
 * (lavapipe: 355 → 35.5 ms a token). A `StepCache` computes each of them once:
 *
 *   const cache = new StepCache();
 *   for (...) ({ logits, state } = lm.step(params, token, state, { cache }));
 *   cache.dispose();
 *
 * `lm.feed` and a many-chunk `lm.applyChunked` use one of their own.
 *
 * Entries are keyed by what they are and by the ids of the tensors they come from. Tensors are
 * immutable and ids never repeat, so an entry can only be stale for a tensor that was replaced by
 * a new one (an optimizer step makes new parameters: their values are computed afresh, and the
 * old entries just wait for `dispose` or `clear`). A cached value is the bits the forward would
 * compute (the same ops on the same inputs). Under a recorded gradient the cache is bypassed: the
 * values must be on the tape.
 */
import { isRecording, keep, type Tensor } from "@memmamba/tensor";

/** A memo of parameter-only values for repeated forwards of the same parameters (see the module note). */
export class StepCache {
  #entries = new Map<string, Tensor>();
  #disposed = false;

  /** The cached value of `compute()` for this name and these inputs (computed on first use). */
  get(name: string, inputs: readonly Tensor[], compute: () => Tensor): Tensor {
    if (this.#disposed) throw new Error("StepCache: used after dispose()");
    const key = `${name}:${inputs.map((t) => t.id).join(",")}`;
    const hit = this.#entries.get(key);
    if (hit && !hit.disposed) return hit;
    const v = compute();
    // an input handed back as it is (an op that had nothing to do) stays its owner's: not kept, never disposed here
    if (inputs.includes(v)) return v;
    this.#entries.set(key, keep(v));
    return v;
  }

  /** Entries held (each one tensor). */
  get size(): number {
    return this.#entries.size;
  }

  /** Frees every entry; the cache stays usable. */
  clear(): void {
    for (const t of this.#entries.values()) t.dispose();
    this.#entries.clear();
  }

  /** Frees every entry; the cache may not be used again. */
  dispose(): void {
    this.clear();
    this.#disposed = true;
  }
}

let active: StepCache | undefined;

/** Runs `fn` with `cache` as the cache that `derived` consults (none: computed as usual). */
export function withStepCache<T>(cache: StepCache | undefined, fn: () => T): T {
  const prev = active;
  active = cache;
  try {
    return fn();
  } finally {
    active = prev;
  }
}

/**
 * A parameter-only value: from the active StepCache when one is set and no gradient is recorded,
 * else `compute()` itself. `inputs` are every tensor `compute` reads.
 */
export function derived(name: string, inputs: readonly Tensor[], compute: () => Tensor): Tensor {
  return active && !isRecording() ? active.get(name, inputs, compute) : compute();
}
