/**
 * Shared by the pool-read tests (indexed-attention.test.ts: indexedAttention and its primitives;
 * attention-fused.test.ts: indexedAttentionFused; attention-parts.test.ts): the host data every
 * case of theirs carries, the element-wise comparison they report with, and the WebGPU pipeline
 * keys a call dispatched.
 */
import type { Backend } from "../src/index.ts";

/** One pool read's host data: each position's query against P slots that index an M-row table. */
export interface SlotReadCase {
  P: number;
  S: number;
  M: number;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** The table row of each slot (−1: an empty slot). */
  index: Int32Array;
  /** 1 where a slot counts, 0 where it is masked. */
  valid: Float32Array;
  /** The cotangent of out. */
  cOut: Float32Array;
}

/** "ok", or the first element where |got − want| > tol · (1 + |want|) (NaN anywhere fails). */
export function close(what: string, got: Float32Array, want: Float32Array, tol: number): string {
  if (got.length !== want.length) return `${what}: length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) return `${what}[${i}]: ${got[i]} vs ${want[i]} (tol ${tol})`;
  }
  return "ok";
}

/** Records the pipeline keys `b` dispatches until restore() (b a WebGPU backend). */
export function recordKeys(b: Backend): { seen: Set<string>; restore: () => void } {
  const seen = new Set<string>();
  // deno-lint-ignore no-explicit-any
  const ctx = (b as any).ctx, dispatch = ctx.dispatch;
  ctx.dispatch = (l: { key: string }) => (seen.add(l.key), dispatch(l));
  return { seen, restore: () => (ctx.dispatch = dispatch) };
}
