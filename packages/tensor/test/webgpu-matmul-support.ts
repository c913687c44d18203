/**
 * Shared by the WebGPU matmul tests (webgpu-matmul-splitk, webgpu-matmul-tiles): seeded inputs,
 * the CPU / WebGPU backend pair (gpuPair), one matmul on a given backend, and the pipeline keys a
 * piece of work dispatched (keysOf, also used by the selective-scan tests).
 */
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend, HostArray, Tensor } from "../src/index.ts";
import type { WebGpuBackend } from "../src/webgpu/backend.ts";
import type { Launch } from "../src/webgpu/context.ts";

/** A matmul operand: its data and shape. */
export type In = { data: Float32Array; shape: number[] };

/** A generator of operands with values in [-2, 2), from a seeded LCG (the same inputs every run). */
export function seededF32(seed: number): (shape: number[]) => In {
  let s = seed >>> 0;
  return (shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Float32Array.from({ length: n }, () => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return (s / 2 ** 32) * 4 - 2;
    });
    return { data, shape };
  };
}

/** The CPU reference and the WebGPU backend (null where WebGPU has no adapter: useBackend says why); WebGPU left current. */
export async function cpuAndGpu(): Promise<{ cpu: Backend; gpu: WebGpuBackend } | null> {
  if (!(await useBackend("webgpu"))) return null;
  const gpu = T.getBackend() as unknown as WebGpuBackend;
  const cpu = T.setBackend("cpu");
  T.setBackend(gpu as unknown as Backend);
  return { cpu, gpu };
}

/**
 * A test file's CPU / WebGPU pair: each test that needs it awaits `load()` first (false where
 * WebGPU has no adapter: the test then returns), which leaves WebGPU current; `cpu` and `gpu`
 * are the backends the last successful load() found.
 */
export interface GpuPair {
  load(): Promise<boolean>;
  readonly cpu: Backend;
  readonly gpu: WebGpuBackend;
}

/** A GpuPair, not loaded yet (reading `cpu` or `gpu` before a successful load() throws). */
export function gpuPair(): GpuPair {
  let pair: { cpu: Backend; gpu: WebGpuBackend } | null = null;
  const loaded = () => {
    if (!pair) throw new Error("gpuPair: await load() (and check that it returned true) before using the backends");
    return pair;
  };
  return {
    async load() {
      const p = await cpuAndGpu();
      if (p) pair = p;
      return p !== null;
    },
    get cpu() {
      return loaded().cpu;
    },
    get gpu() {
      return loaded().gpu;
    },
  };
}

/** x·y (with the transposes) on backend `b`, which it makes current; throws if a buffer leaked. */
export async function matmulOn(b: Backend, x: In, y: In, transA: boolean, transB: boolean): Promise<HostArray> {
  T.setBackend(b);
  const before = b.liveBuffers();
  const ts: Tensor[] = [T.fromArray(x.data, x.shape), T.fromArray(y.data, y.shape)];
  const r = T.matmul(ts[0], ts[1], { transA, transB });
  const data = await r.data();
  T.disposeTree([ts, r]);
  if (b.liveBuffers() !== before) throw new Error(`${b.name}: ${b.liveBuffers() - before} buffer(s) leaked`);
  return data;
}

/** Runs `fn` and returns its result with the pipeline keys of the dispatches it made on `gpu`. */
export async function keysOf<R>(gpu: WebGpuBackend, fn: () => Promise<R>): Promise<{ result: R; keys: string[] }> {
  const ctx = gpu.ctx;
  const orig = ctx.dispatch;
  const keys: string[] = [];
  ctx.dispatch = (l: Launch) => {
    keys.push(l.key);
    orig(l);
  };
  try {
    return { result: await fn(), keys };
  } finally {
    ctx.dispatch = orig;
  }
}
