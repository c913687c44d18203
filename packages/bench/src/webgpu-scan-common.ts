/**
 * What webgpu-scan.ts's two parts (the generic scans there, the fused selective scan in
 * webgpu-scan-ssm.ts) share: seeded random inputs, kernel arguments, dispatch counting and the
 * GPU timing of one call.
 */
import type { BufferHandle, KernelArg } from "../../tensor/src/backend.ts";
import type { WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { launchKeys, timeGpuCalls } from "./gpu-timing.ts";

/** One case's timing: the median and the fastest sample (ms a call), every sample, calls a sample. */
export interface Timed {
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  repsPerSample: number;
}

/** A seeded uniform generator on [0, 1). */
export type Rng = () => number;
/** An LCG generator from `seed` (the same inputs in every runtime and run). */
export function rng(seed: number): Rng {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
/** n values uniform on [lo, hi) from `r`. */
export function fillRandom(n: number, r: Rng, lo: number, hi: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** A kernel argument: an f32 buffer of `shape`. */
export function arg(buf: BufferHandle, shape: number[]): KernelArg {
  return { buf, shape, dtype: "f32" };
}

/** Counts the dispatches `fn` encodes (to keep one timed sample under the timer's pass limit). */
export function countDispatches(gpu: WebGpuBackend, fn: () => void): number {
  return launchKeys(gpu, fn).length;
}

/** The timing options: samples, their length, the warm-up, GPU timestamps, and --profile. */
export interface TimeOpts {
  runs: number;
  sampleMs: number;
  warmupMs: number;
  timestamps: boolean;
  /** Selective-scan cases: also a per-kernel profile (one compute pass per dispatch) of a few calls. */
  profile: boolean;
}

/** GPU time per call of `run` (gpu-timing.ts), with at most 48 compute passes per sample. */
export async function timeCalls(gpu: WebGpuBackend, run: () => void, o: TimeOpts): Promise<Timed> {
  const perCall = countDispatches(gpu, run);
  await gpu.sync();
  // the timer records at most 64 compute passes per sample; a pass ends every 128 dispatches
  const passCap = Math.max(1, Math.floor(48 / (Math.ceil(perCall / 128) + 1)));
  const t = await timeGpuCalls(gpu, run, { ...o, maxReps: Math.min(200, passCap) });
  return { medianMs: t.medianMs, minMs: t.minMs, samplesMs: t.samplesMs, repsPerSample: t.reps };
}

/** GB/s of `bytes` in `ms`. */
export const GB = (bytes: number, ms: number) => bytes / (ms * 1e-3) / 1e9;
