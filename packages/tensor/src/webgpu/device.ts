/**
 * What the WebGPU backend (backend.ts) takes of its device: the options it is built with, the
 * limits its kernels see (the device's, lowered where the options ask), and the destroy-at-exit of
 * the backends still alive when the program ends (the set of them is kept here, once).
 */
import type { GpuLimits } from "./context.ts";
import type { AcquiredGpu, AcquireOptions } from "./probe.ts";

export interface WebGpuOptions extends AcquireOptions {
  /** Use this device instead of acquiring one (it is then not destroyed by destroy()). */
  gpu?: AcquiredGpu;
  /** Lower some limits below the device's (tests use this to exercise 2-D grids and split bindings). */
  limits?: Partial<GpuLimits>;
  /** Bytes of freed buffers kept for reuse (default 1 GiB). */
  poolBytes?: number;
  /** Request 'timestamp-query' where the adapter has it (benchmarks). */
  timestamps?: boolean;
  /**
   * Dispatches per queue submit (default 128). Each submit costs host time (about 0.4 ms under
   * Dawn on an NVIDIA driver); a larger batch makes the GPU start a little later.
   */
  maxBatch?: number;
  /**
   * Dispatches of the first submit after the GPU went idle (a read or a sync waited for it; and
   * the first of all), each submit after it twice the one before up to maxBatch (default 16, or
   * $MEMMAMBA_WEBGPU_RAMP; maxBatch or more: no ramp). The host encodes a dispatch in ~10 µs and the
   * GPU waits for the first submit: with 128 it idled ~1.5 ms at the start of every forward.
   */
  rampBatch?: number;
}

/** The limits the backend's kernels see: the device's, each lowered to the one in `opts.limits` where that is lower (tests). */
export function backendLimits(device: GPUDevice, opts: WebGpuOptions): GpuLimits {
  const L = device.limits;
  return {
    maxStorageBufferBindingSize: Math.min(L.maxStorageBufferBindingSize, opts.limits?.maxStorageBufferBindingSize ?? Infinity),
    maxComputeWorkgroupsPerDimension: Math.min(L.maxComputeWorkgroupsPerDimension, opts.limits?.maxComputeWorkgroupsPerDimension ?? Infinity),
    maxComputeWorkgroupStorageSize: Math.min(L.maxComputeWorkgroupStorageSize, opts.limits?.maxComputeWorkgroupStorageSize ?? Infinity),
    minStorageBufferOffsetAlignment: L.minStorageBufferOffsetAlignment,
    maxStorageBuffersPerShaderStage: Math.min(L.maxStorageBuffersPerShaderStage, opts.limits?.maxStorageBuffersPerShaderStage ?? Infinity),
  };
}

/** The backends alive (destroyAtExit adds one; WebGpuBackend.destroy removes it). */
export const liveBackends = new Set<{ destroy(): void }>();
let exitHook = false;

/**
 * Destroys the backends still alive when the program ends, before the runtime tears down the
 * native Dawn objects: under Deno, a process that ended with devices alive aborted in about 1 of
 * 6 runs ("double free or corruption", "corrupted size vs. prev_size") after every test passed.
 */
export function destroyAtExit(b: { destroy(): void }): void {
  liveBackends.add(b);
  if (exitHook) return;
  exitHook = true;
  const destroyAll = () => {
    for (const x of liveBackends) {
      try {
        x.destroy();
      } catch {
        // exiting anyway
      }
    }
    liveBackends.clear();
  };
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (typeof g.Deno !== "undefined" && typeof g.addEventListener === "function") g.addEventListener("unload", destroyAll);
  else g.process?.once?.("exit", destroyAll);
}
