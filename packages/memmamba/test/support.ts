/** Helpers shared by the memmamba tests (not a test file). */
import { fromArray, random, type Tensor } from "@memmamba/tensor";
import { mulberry32 } from "../../tensor/test/gradcheck.ts";

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

/**
 * A deterministic PRNG for choosing test cases: the tensor tests' mulberry32, uniform in [0, 1)
 * (gradcheck.ts reaches the tensor library by its source path, the same module that
 * @memmamba/tensor resolves to under Bun and Deno).
 */
export const rng: (seed: number) => () => number = mulberry32;
