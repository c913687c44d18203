/** Helpers shared by the memmamba tests (not a test file). */
import { fromArray, random, type Tensor } from "@memmamba/tensor";

/** Random bytes as i32 [B, L] from a seed. */
export function randomTokens(seed: number, B: number, L: number, vocab = 256): Tensor {
  return random.randint(random.key(seed), [B, L], 0, vocab);
}

/** max |a − b| over two same-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: lengths ${a.length} and ${b.length} differ`);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

/** Host f32 values as a tensor. */
export function tensorOf(values: ArrayLike<number>, shape: number[]): Tensor {
  return fromArray(Float32Array.from(values), shape);
}

/** A deterministic PRNG for choosing test cases (mulberry32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
