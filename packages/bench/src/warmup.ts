/** Timed runs after a warm-up that, on request, goes on until a run is steady (see Settle). */
import type { BenchBackend } from "./model-common.ts";

/**
 * More warm-up where the first runs are not yet steady: after the fixed warm-up runs, untimed runs
 * go on while the last one was not steady, at most `maxExtra` more. On WebGPU a run's first
 * repetitions still create pool buffers and bind groups (each bind group tens of µs of host time:
 * a short training step's second and third runs created ~1,200 and ~260 on lavapipe, none after),
 * which a fixed warm-up of one run left in the timed samples.
 */
export interface Settle {
  /** Called before each warm-up run: resets what `steady` looks at. */
  reset(): void;
  /** Whether the run since the last reset() was steady. */
  steady(): boolean;
  /** At most this many warm-up runs beyond the fixed ones. */
  maxExtra: number;
  /** Set by timeAsync (with a warm-up asked for): the warm-up runs it did in all. */
  warmups?: number;
}

/** A Settle for a bench backend: a run is steady when it created no pool buffer and no bind group (always on the CPU). */
export function settleOn(bb: BenchBackend, maxExtra = 3): Settle {
  return {
    reset: () => bb.resetCount(),
    steady: () => {
      const c = bb.count();
      return c.buffersCreated === 0 && c.bindGroupsCreated === 0;
    },
    maxExtra,
  };
}

/** Runs `fn` `runs` times after `warmup` runs (and, with `settle` and a warm-up, until a run is steady); wall-clock ms of each timed run, stopping early past the deadline. */
export async function timeAsync(fn: () => Promise<unknown>, runs: number, warmup: number, deadline = Infinity, settle?: Settle): Promise<number[]> {
  let warmups = 0, steady = false;
  for (; warmups < warmup && performance.now() < deadline; warmups++) {
    settle?.reset();
    await fn();
    steady = settle?.steady() ?? true;
  }
  // (--warmup 0 asks for no warm-up at all: then none)
  if (settle && warmup > 0) {
    for (let extra = 0; !steady && extra < settle.maxExtra && performance.now() < deadline; extra++, warmups++) {
      settle.reset();
      await fn();
      steady = settle.steady();
    }
    settle.warmups = warmups;
  }
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (out.length > 0 && performance.now() > deadline) break;
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}
