/** The causalSelect kernel: for each position, the positions before it that a memory would hold. */
import type { PrimParams } from "../backend.ts";
import type { CpuArg } from "./kernels.ts";

/**
 * mask, score [B, L] → out [B, L, k] (i32): for each t, the positions j < t with mask ≠ 0 —
 * the k most recent ("last": a FIFO memory) or the k highest-scoring ("top": a memory that
 * evicts its lowest score; among equal scores the oldest goes) — in increasing position order,
 * padded with −1.
 */
export function causalSelectKernel([mask, score]: CpuArg[], out: CpuArg, p: PrimParams["causalSelect"]): void {
  const [B, L] = mask.shape;
  const { k, mode } = p;
  const M = mask.data, S = score.data, O = out.data;
  O.fill(-1);
  const held: number[] = []; // positions in the memory, increasing
  for (let b = 0; b < B; b++) {
    held.length = 0;
    for (let t = 0; t < L; t++) {
      const o = (b * L + t) * k;
      for (let i = 0; i < held.length; i++) O[o + i] = held[i];
      const j = b * L + t;
      if (M[j] === 0 || k === 0) continue;
      if (held.length < k) held.push(t);
      else if (mode === "last") {
        held.shift();
        held.push(t);
      } else {
        // evict the lowest score, the newcomer included; among equal scores the oldest goes
        let worst = -1, ws = S[j];
        for (let i = 0; i < held.length; i++) {
          const v = S[b * L + held[i]];
          if (v < ws || (v === ws && worst === -1)) {
            ws = v;
            worst = i;
          }
        }
        if (worst >= 0) {
          held.splice(worst, 1);
          held.push(t);
        }
      }
    }
  }
}

/** causalEntered: 1 where row start + t + 1's largest position exceeds row start + t's (−1 for none). */
export function causalEnteredKernel([pos]: CpuArg[], out: CpuArg, p: PrimParams["causalEntered"]): void {
  const [B, N, k] = pos.shape;
  const P = pos.data, O = out.data;
  const newest = (b: number, r: number): number => {
    let m = -1;
    if (r >= N) return m; // the row past the end holds nothing
    const o = (b * N + r) * k;
    for (let i = 0; i < k; i++) if (P[o + i] > m) m = P[o + i];
    return m;
  };
  for (let b = 0; b < B; b++) {
    let prev = p.count > 0 ? newest(b, p.start) : 0;
    for (let t = 0; t < p.count; t++) {
      const cur = newest(b, p.start + t + 1);
      O[b * p.count + t] = cur > prev ? 1 : 0;
      prev = cur;
    }
  }
}
