/**
 * GPU timing of one kernel call, shared by the WebGPU micro-benchmarks (webgpu-matmul, -scan,
 * -select, -ops): a first call (pipeline compilation), about `warmupMs` of busy warm-up so that
 * the clocks settle, then `runs` samples of `reps` calls each, where `reps` makes a sample last
 * about `sampleMs` (several calls per sample: Dawn quantises timestamps to about 0.1 ms).
 * GPU time from timestamp queries around the compute passes when `timestamps` is on (the adapter
 * has 'timestamp-query'), else the wall clock of the calls and one sync.
 */
import process from "node:process";
import { detectRuntime, gitCommit, median, now } from "./runtime.ts";
import type { WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import type { Launch } from "../../tensor/src/webgpu/context.ts";

export interface GpuTimingOptions {
  runs: number;
  sampleMs: number;
  warmupMs: number;
  timestamps: boolean;
  /** At most this many calls per sample (default 200; the scan bench caps passes per sample). */
  maxReps?: number;
}

export interface GpuTiming {
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  /** Calls per sample. */
  reps: number;
}

/** Times `run` (one call: any number of dispatches); milliseconds per call. */
export async function timeGpuCalls(gpu: WebGpuBackend, run: () => void, o: GpuTimingOptions): Promise<GpuTiming> {
  run();
  await gpu.sync();
  const w0 = now();
  let calls = 0;
  do {
    for (let r = 0; r < 4; r++) run();
    calls += 4;
    await gpu.sync();
  } while (now() - w0 < o.warmupMs);
  const oneMs = Math.max((now() - w0) / calls, 1e-3);
  const reps = Math.max(1, Math.min(o.maxReps ?? 200, Math.round(o.sampleMs / oneMs)));
  const samples: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    const many = () => {
      for (let r = 0; r < reps; r++) run();
    };
    if (o.timestamps) samples.push((await gpu.timeGpu(many))! / reps);
    else {
      const s0 = now();
      many();
      await gpu.sync();
      samples.push((now() - s0) / reps);
    }
  }
  return { medianMs: median(samples), minMs: Math.min(...samples), samplesMs: samples, reps };
}

/**
 * The fields every WebGPU micro-benchmark's JSON starts with: which benchmark, when, the runtime,
 * the adapter and how the library reached it, the options passed to Dawn's create()
 * (MEMMAMBA_DAWN_FLAGS, e.g. its disable_robustness toggle; null: none) and how it was timed.
 */
export function gpuBenchHeader<B extends string>(benchmark: B, gpu: WebGpuBackend, timestamps: boolean) {
  const rt = detectRuntime();
  return {
    benchmark,
    commit: gitCommit(),
    date: new Date().toISOString(),
    runtime: `${rt.name} ${rt.version}`,
    adapter: gpu.adapterInfo,
    via: gpu.via,
    dawnFlags: gpu.via === "dawn" ? (process.env.MEMMAMBA_DAWN_FLAGS || null) : null,
    timing: timestamps ? "gpu timestamp queries around the compute passes" : "wall clock, one sync per sample",
  };
}

/** The pipeline keys of the launches `fn` encodes, in order (seen through the kernel context; its dispatch restored after). */
export function launchKeys(gpu: WebGpuBackend, fn: () => void): string[] {
  const ctx = gpu.ctx as { dispatch(l: Launch): void };
  const dispatch = ctx.dispatch;
  const keys: string[] = [];
  ctx.dispatch = (l: Launch) => {
    keys.push(l.key);
    dispatch.call(ctx, l);
  };
  try {
    fn();
  } finally {
    ctx.dispatch = dispatch;
  }
  return keys;
}
