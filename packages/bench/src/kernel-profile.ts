/**
 * Per-kernel GPU profiles for the model benchmarks (train-throughput, long-context, scaling): the
 * WebGPU backend's timestamp profile (webgpu/profiler.ts) as kernel times, and one profiled run of
 * a forward or a step with its top kernels printed.
 */
import { fmt, formatTable } from "./runtime.ts";
import type { WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";

/** GPU time of one kernel (pipeline key) summed over the dispatches of a profiled stretch. */
export interface KernelTime {
  kernel: string;
  dispatches: number;
  gpuMs: number;
}

/** Per-kernel GPU time from timestamp queries (WebGPU with 'timestamp-query' only). */
export interface KernelProfiler {
  /**
   * Start recording: from now on every dispatch runs in a compute pass of its own, timed.
   * `detail`: rows per kernel *and* primitive call with its shapes (see WebGpuBackend.startProfile).
   */
  start(detail?: boolean): void;
  /** Stop recording and resolve to the kernels by GPU time (largest first), once all reads are back. */
  stop(): Promise<KernelTime[]>;
}

/** One profiled run: wall time, the GPU time of every dispatch (each timed alone) and the top kernels. */
export interface RunProfile {
  wallMs: number;
  gpuMs: number;
  top: KernelTime[];
}

/**
 * Runs `fn` once more with every dispatch timed (`detail`: rows per kernel and primitive call) and
 * returns the profile, its `keep` largest rows rounded to µs; prints the `show` largest under `label`.
 */
export async function profileRun(profiler: KernelProfiler, label: string, fn: () => Promise<unknown>, opts: { detail?: boolean; keep?: number; show?: number } = {}): Promise<RunProfile> {
  profiler.start(opts.detail ?? true);
  const t = performance.now();
  await fn();
  const wallMs = performance.now() - t;
  const k = await profiler.stop();
  const gpuMs = k.reduce((a, e) => a + e.gpuMs, 0);
  const top = k.slice(0, opts.keep ?? 60).map((e) => ({ ...e, gpuMs: Math.round(e.gpuMs * 1000) / 1000 }));
  console.log(`${label}: ${fmt(gpuMs)} GPU ms in ${fmt(wallMs)} ms wall (each dispatch timed alone)`);
  console.log(formatTable(["kernel | call", "dispatches", "GPU ms"], top.slice(0, opts.show ?? 30).map((e) => [e.kernel, String(e.dispatches), e.gpuMs])));
  return { wallMs, gpuMs, top };
}

/** The backend's per-dispatch GPU profile (webgpu/profiler.ts) as kernel times by pipeline key. */
export function kernelProfiler(gpu: WebGpuBackend): KernelProfiler {
  return {
    start(detail = false) {
      gpu.startProfile({ detail });
    },
    async stop() {
      return (await gpu.stopProfile()).map((r) => ({ kernel: r.label, dispatches: r.count, gpuMs: r.ms }));
    },
  };
}
