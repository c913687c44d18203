/**
 * Pool_r, the pooling of the state summary (Eq. 9): the projected features u [..., S·r] are cut
 * into S contiguous groups of r features and each group gives one feature of the note.
 *
 *   max      the group's maximum (the paper's best).
 *   mean     the group's mean.
 *   tmaxavg  T-Max-Avg: the maximum where it exceeds the threshold T, else the mean. Our
 *            definition (the paper names the method only): a strong feature passes as is, a
 *            weak group is averaged rather than represented by its noisiest member.
 *   s3pool   S3Pool-style stochastic pooling: while training (a key given) each group gives one
 *            member chosen uniformly at random; at evaluation (no key) the expectation of that
 *            choice, the mean. The streaming and chunked modes are evaluation, hence the mean.
 */
import { gt, max, mean, mul, oneHot, random, reshape, sum, where, type Tensor } from "@memmamba/tensor";
import type { MemoryConfig } from "./config.ts";
import type { Key } from "./nn.ts";

/** How a note pools groups of r features (Eq. 9): max, mean, T-Max-Avg or S3Pool. */
export type PoolingKind = MemoryConfig["pooling"];

/** Pools u [..., S·r] over groups of r features → [..., S]. `key` switches S3Pool to sampling. */
export function poolSummary(u: Tensor, r: number, kind: PoolingKind, opts: { threshold?: number; key?: Key } = {}): Tensor {
  const last = u.shape[u.rank - 1];
  if (last % r !== 0) throw new Error(`poolSummary: the last axis (${last}) is not a multiple of the window r = ${r}`);
  const S = last / r;
  const g = reshape(u, [...u.shape.slice(0, -1), S, r]);
  switch (kind) {
    case "max":
      return max(g, -1);
    case "mean":
      return mean(g, -1);
    case "tmaxavg": {
      const m = max(g, -1);
      return where(gt(m, opts.threshold ?? 0), m, mean(g, -1));
    }
    case "s3pool": {
      if (!opts.key) return mean(g, -1);
      const pick = random.randint(opts.key, g.shape.slice(0, -1), 0, r);
      return sum(mul(g, oneHot(pick, r)), -1);
    }
  }
}
