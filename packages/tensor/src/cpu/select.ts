/** The causalSelect kernel (for each position, the positions before it that a memory would hold) and the recurrent pool write. */
import type { MultiPrimParams, PrimParams } from "../backend.ts";
import { maxRun } from "./reduce.ts";
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

/**
 * poolInsert: per row b, the composite's numbers (ops/pool.ts, poolInsertOps) computed once:
 * count = Σ valid (f64, rounded), full = count ≥ P; "priority": lowest = −max(−scores) (the max
 * reduction's rule: a NaN wins), first = P − max((scores = lowest)·(P − i)), leaving = full ?
 * first : count, accept = write·(full ? [lowest ≤ score] : 1); fifo: leaving = full ? 0 : count,
 * accept = write. With last = min(count + 1, P) − 1, slot i of the new pool is old[i] (i <
 * leaving), old[min(i + 1, P − 1)] (i < last), the newcomer (i = last), else old[i]; the old pool
 * where accept is 0. evicted = leaving where accept·full ≠ 0, else −1.
 */
export function poolInsertKernel(ins: CpuArg[], outs: CpuArg[], p: MultiPrimParams["poolInsert"]): void {
  const [notes, scores, valid, note, score, write] = ins.map((a) => a.data);
  const [oNotes, oScores, oValid, oAccepted, oEvicted] = outs.map((a) => a.data);
  const [B, P, S] = ins[0].shape;
  const f = Math.fround;
  const neg = new Float32Array(P);
  for (let b = 0; b < B; b++) {
    const r = b * P;
    let c = 0;
    for (let i = 0; i < P; i++) c += valid[r + i];
    const count = f(c);
    const full = count >= P ? 1 : 0;
    const s = score[b], w = write[b];
    let leaving: number, accept: number;
    if (p.priority) {
      for (let i = 0; i < P; i++) neg[i] = -scores[r + i];
      const lowest = -maxRun(neg, 0, P);
      for (let i = 0; i < P; i++) neg[i] = (scores[r + i] === lowest ? 1 : 0) * (P - i);
      const first = f(P - maxRun(neg, 0, P));
      leaving = full !== 0 ? first : count;
      accept = f(w * (full !== 0 ? (lowest <= s ? 1 : 0) : 1));
    } else {
      leaving = full !== 0 ? 0 : count;
      accept = w;
    }
    const last = f(Math.min(f(count + 1), P) - 1);
    const take = (i: number): number => {
      if (accept === 0 || i < leaving) return i;
      if (i < last) return Math.min(i + 1, P - 1);
      return i === last ? -1 : i;
    };
    for (let i = 0; i < P; i++) {
      const j = take(i);
      const o = (r + i) * S;
      if (j < 0) {
        for (let e = 0; e < S; e++) oNotes[o + e] = note[b * S + e];
        oScores[r + i] = s;
        oValid[r + i] = 1;
      } else {
        const q = (r + j) * S;
        for (let e = 0; e < S; e++) oNotes[o + e] = notes[q + e];
        oScores[r + i] = scores[r + j];
        oValid[r + i] = valid[r + j];
      }
    }
    oAccepted[b] = accept;
    oEvicted[b] = f(accept * full) !== 0 ? leaving : -1;
  }
}
