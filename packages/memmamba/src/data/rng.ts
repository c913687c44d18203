/**
 * Host-side deterministic choices for data pipelines, from explicit Philox keys.
 *
 * `HostRng` is a counter over one key: draw i uses the key `foldIn(key, i)`, so a sequence of
 * draws is a pure function of (key, how many draws came before), identical on every runtime.
 * Nothing here touches a backend.
 */
import { random } from "@memmamba/tensor";

import type { Key } from "../nn.ts";
export type { Key };

const TWO_31 = 2147483648;

/** A deterministic host-side random number generator over one Philox key (see the module note). */
export class HostRng {
  #n = 0;
  /** Starts the draws from `key`. */
  constructor(readonly key: Key) {}

  /** Number of draws made so far. */
  get draws(): number {
    return this.#n;
  }

  #next(): Key {
    return random.foldIn(this.key, this.#n++);
  }

  /** A uniform integer in [0, n), n a positive integer <= 2^53 (exactly unbiased). */
  below(n: number): number {
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`HostRng.below: n must be a positive safe integer, got ${n}`);
    if (n <= TWO_31) return random.randintArray(this.#next(), 1, 0, n)[0];
    // n > 2^31: high part and low part, rejecting the top partial block
    const hi = Math.ceil(n / TWO_31);
    for (;;) {
      const [a, b] = random.randintArray(this.#next(), 2, 0, TWO_31);
      const v = (a % hi) * TWO_31 + b;
      if (a < hi * Math.floor(TWO_31 / hi) && v < n) return v;
    }
  }

  /** A uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** A uniform float in [0, 1) with 31 random bits. */
  float(): number {
    return this.below(TWO_31) / TWO_31;
  }

  /** A uniformly chosen element. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("HostRng.pick: empty list");
    return items[this.below(items.length)];
  }

  /** A uniformly random permutation of 0 .. n-1. */
  permutation(n: number): Int32Array {
    return random.permutationArray(this.#next(), n);
  }

  /** `k` distinct integers from [0, n), in random order (k <= n). */
  sample(n: number, k: number): number[] {
    if (k > n) throw new RangeError(`HostRng.sample: cannot draw ${k} distinct values from ${n}`);
    if (k * 4 >= n) return Array.from(this.permutation(n).subarray(0, k));
    const seen = new Set<number>();
    const out: number[] = [];
    while (out.length < k) {
      const v = this.below(n);
      if (!seen.has(v)) {
        seen.add(v);
        out.push(v);
      }
    }
    return out;
  }
}

/** The key for (key, a, b, ...): foldIn applied in order. */
export function keyAt(key: Key, ...path: number[]): Key {
  let k = key;
  for (const p of path) k = random.foldIn(k, p);
  return k;
}
