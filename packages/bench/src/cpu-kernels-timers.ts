/**
 * How the CPU kernel benchmark (cpu-kernels.ts) times its own kernels, each as a timer of one call
 * (ms, the CallTimer of cpu-peers.ts): the measured WASM SIMD peak (the register-only FMA loop),
 * saxpy on 64 MiB arrays, a matmul or any tensor-level call on a backend, and one training step of
 * the small model; the selective scan's rows (forward, forward + backward); and interleave, which
 * warms timers up and samples them round after round.
 */
import { median, now } from "./runtime.ts";
import {
  disposeTree, fromArray, matmul, random, readCounters, resetCounters, selectiveScan, setBackend, sum, valueAndGrad, type Backend,
} from "@memmamba/tensor";
import { lm, preset } from "@memmamba/memmamba";
import type { WasmBackend } from "../../tensor/src/wasm/backend.ts";
import { K } from "../../tensor/src/wasm/kernel-ids.ts";
import { BACK_TO_BACK, fillMatrix, timeAsync, type CallTimer } from "./cpu-peers.ts";
import { STEP_B, STEP_L, type BoundRow } from "./cpu-kernels-results.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Iterations of the peak loop per task (~1.6 ms at 60 GFLOP/s), and tasks per thread. */
const PEAK_ITERS = 1_000_000, PEAK_TASKS_PER_THREAD = 8;
/**
 * Flops of one peak call per thread (~13 ms at 60 GFLOP/s: about as long as the 1024² matmul it
 * is compared with, so that a time slice lost to another process weighs alike on both).
 */
export const PEAK_FLOPS_PER_THREAD = PEAK_TASKS_PER_THREAD * PEAK_ITERS * 12 * 8;

/**
 * The register-only FMA loop on `threads` threads at once: 8 tasks per thread, taken from the
 * same job board as the matmul's (so a worker that wakes late or shares its core is counted the
 * same way in both; with one task per thread, the calling thread ran both tasks whenever the
 * worker woke late, and the "2-thread peak" came out as the 1-thread one).
 */
export function peakTimer(b: WasmBackend, threads: number): CallTimer {
  const tasks = threads * PEAK_TASKS_PER_THREAD;
  const out = b.heap.alloc(tasks * 4);
  const run = () => b.launchRaw(K.PEAK, [PEAK_ITERS, out], tasks, threads > 1);
  return {
    detail: "12 independent f32x4 multiply-adds in registers",
    once: () => {
      const t = now();
      run();
      return Promise.resolve(now() - t);
    },
    dispose: () => b.heap.free(out, tasks * 4),
  };
}

/** y = a·x + y on 64 MiB arrays, split over `threads` threads. */
export function saxpyTimer(b: WasmBackend, threads: number): CallTimer {
  const n = 16 * 1024 * 1024;
  const x = b.heap.alloc(n * 4), y = b.heap.alloc(n * 4);
  b.heap.f32.fill(0.5, x >> 2, (x >> 2) + n);
  b.heap.f32.fill(0.25, y >> 2, (y >> 2) + n);
  const alpha = new Int32Array(Float32Array.of(1e-3).buffer)[0];
  const chunk = Math.ceil(n / (threads * 8) / 16) * 16;
  return {
    detail: "64 MiB arrays",
    once: () => {
      const t = now();
      b.launchRaw(K.SAXPY, [n, alpha, x, y, chunk], Math.ceil(n / chunk), threads > 1);
      return Promise.resolve(now() - t);
    },
    dispose: () => {
      b.heap.free(x, n * 4);
      b.heap.free(y, n * 4);
    },
  };
}

/** A tensor-level call on backend `b`, timed (the backend is selected before each call). */
export function opTimer(b: Backend, fn: () => void, dispose: () => void, detail: string): CallTimer {
  return {
    detail,
    once: () => {
      setBackend(b);
      const t = now();
      fn();
      return Promise.resolve(now() - t);
    },
    dispose,
  };
}

export function matmulTimer(b: WasmBackend, n: number, detail: string): CallTimer {
  setBackend(b);
  const a = fromArray(fillMatrix(n * n, 1), [n, n]), c = fromArray(fillMatrix(n * n, 2), [n, n]);
  return opTimer(b, () => matmul(a, c).dispose(), () => disposeTree([a, c]), detail);
}

/**
 * Warms every timer up (≥ warmupMs and 2 calls each), then runs `rounds` rounds, each taking one
 * sample of every timer, in an order rotated from round to round, with a pause between samples
 * (OpenBLAS's threads busy-wait after a call). A sample is the median of `calls` back-to-back calls
 * (BACK_TO_BACK; a timer with `backToBack` makes them itself): every kernel, the peak and saxpy
 * alike, is timed with its threads awake. Returns each timer's per-round samples (ms).
 */
export async function interleave(timers: Record<string, CallTimer>, rounds: number, warmupMs: number, calls = BACK_TO_BACK): Promise<Record<string, number[]>> {
  const names = Object.keys(timers);
  for (const k of names) {
    const t0 = now();
    for (let i = 0; i < 2 || now() - t0 < warmupMs; i++) await timers[k].once();
    await sleep(100);
  }
  const out: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(j + r) % names.length];
      const burst: number[] = [];
      for (let c = 0; c < (timers[k].backToBack ? 1 : calls); c++) burst.push(await timers[k].once());
      out[k].push(median(burst));
      await sleep(100);
    }
  }
  return out;
}

/** One training step of the small model on `b` (loss and all gradients of B × L tokens), set up once. */
export async function stepTimer(b: Backend): Promise<CallTimer> {
  setBackend(b);
  const cfg = preset("small");
  const params = lm.init(random.key(0), cfg);
  const tokens = fromArray(random.randintArray(random.key(1), STEP_B * STEP_L, 0, cfg.vocab), [STEP_B, STEP_L], "i32");
  const targets = fromArray(random.randintArray(random.key(2), STEP_B * STEP_L, 0, cfg.vocab), [STEP_B, STEP_L], "i32");
  const vg = valueAndGrad((p: typeof params) => lm.loss(p, tokens, targets));
  return {
    detail: b.name === "cpu" ? "the plain-TypeScript CPU backend" : `${b.name} backend, ${(b as WasmBackend).kernelInfo().matmul} matmul`,
    once: async () => {
      setBackend(b);
      const t = now();
      const { value, grads } = vg(params);
      await value.data();
      const ms = now() - t;
      value.dispose();
      disposeTree(grads);
      return ms;
    },
    dispose: () => disposeTree([params, tokens, targets]),
  };
}

/** The selective scan, forward and forward + backward (compute-bound: GFLOP/s by the op's own count). */
export async function selectiveScanRows(b: WasmBackend, runs: number, warmupMs: number): Promise<BoundRow[]> {
  setBackend(b);
  const [Bs, Ls, Di, N] = [2, 1024, 512, 16];
  const p = {
    x: fromArray(fillMatrix(Bs * Ls * Di, 6), [Bs, Ls, Di]), d: fromArray(fillMatrix(Bs * Ls * Di, 7).map((v) => 0.05 + 0.04 * v), [Bs, Ls, Di]),
    A: fromArray(fillMatrix(Di * N, 8).map((v) => -1.5 + v), [Di, N]), Bm: fromArray(fillMatrix(Bs * Ls * N, 9), [Bs, Ls, N]),
    C: fromArray(fillMatrix(Bs * Ls * N, 10), [Bs, Ls, N]), h0: fromArray(fillMatrix(Bs * Di * N, 11), [Bs, Di, N]),
  };
  const vg = valueAndGrad((q: typeof p) => sum(selectiveScan(q.x, q.d, q.A, q.Bm, q.C, q.h0).y));
  const ops: Record<string, () => void> = {
    "selectiveScan fwd": () => selectiveScan(p.x, p.d, p.A, p.Bm, p.C, p.h0).y.dispose(),
    "selectiveScan fwd+bwd": () => {
      const { value, grads } = vg(p);
      value.dispose();
      disposeTree(grads);
    },
  };
  const rows: BoundRow[] = [];
  try {
    for (const [k, fn] of Object.entries(ops)) {
      resetCounters();
      fn();
      const c = readCounters();
      const t = await timeAsync(fn, Math.min(runs, 5), warmupMs);
      rows.push({ kernel: k, shape: [Bs, Ls, Di, N], medianMs: t.medianMs, bytes: c.bytes, gbPerSec: c.bytes / t.medianMs / 1e6, gflops: c.flops / t.medianMs / 1e6 });
    }
  } finally {
    disposeTree(p);
  }
  return rows;
}
