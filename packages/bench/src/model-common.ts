/**
 * What the model benchmarks (scaling.ts, train-throughput.ts, long-context.ts) share: choosing a
 * backend, counting what it does (kernel dispatches, queue submits, readbacks, syncs), measuring
 * memory, and the two measured operations — a full training step (forward, backward, global-norm
 * clipping, AdamW, as the PyTorch reference's bench_train.py does) and a chunked forward.
 *
 * Counting wraps methods of the backend instance and of its GPUDevice (own properties shadow the
 * prototype's): nothing in the tensor library changes for it, and a backend that is not wrapped
 * pays nothing.
 *
 * Memory, three views:
 *   - live tensor bytes: every alloc minus every free of the current backend (logical sizes),
 *     with a high-water mark that the benchmark resets per configuration (any backend);
 *   - WebGPU: the buffer pool's bytes in use (size classes, kernel temporaries included), its
 *     high-water mark from webgpu/pool.ts;
 *   - CPU: the process's resident set size, sampled after each measured call (it includes the JS
 *     heap and buffers the garbage collector has not yet returned, so it is an upper bound).
 */
import process from "node:process";
import {
  adamw, clipScale, disposeTree, flatGradients, fromArray, readCounters, setBackend, sliceAxis, tidy, valueAndGrad,
  type Backend, type BufferHandle, type Tensor,
} from "@memmamba/tensor";
import { lm, preset, type LMParams, type LMState, type ModelConfig, type PresetName } from "@memmamba/memmamba";
import { type FlagType, flagValue, type MachineInfo, oneOf, type RuntimeInfo, UsageError } from "./runtime.ts";
import { z } from "zod";
import { type KernelProfiler, kernelProfiler } from "./kernel-profile.ts";
export { type KernelProfiler, type KernelTime, profileRun, type RunProfile } from "./kernel-profile.ts";
import { attnReadTuning } from "../../tensor/src/webgpu/kernels/attention.ts";

export type BackendChoice = "cpu" | "wasm" | "webgpu";
export const BACKENDS: readonly BackendChoice[] = ["cpu", "wasm", "webgpu"];
export type ModelKind = "memmamba" | "mamba" | "transformer";
export const KINDS: readonly ModelKind[] = ["memmamba", "mamba", "transformer"];

/**
 * The fields every model benchmark's JSON result starts with (which benchmark, when, on what
 * runtime, device, backend and preset, with which options); each result adds its own rows.
 */
export interface ModelBenchHead<Name extends string, Options = Record<string, unknown>> {
  benchmark: Name;
  /** The repository's commit (short hash, "-dirty" with local changes; null without git): runtime.ts gitCommit. */
  commit: string | null;
  date: string;
  runtime: RuntimeInfo;
  /** The host: CPU model, logical cores, platform, arch (runtime.ts machineInfo, as cpu-kernels records it). */
  machine: MachineInfo;
  device: string;
  backend: BackendChoice;
  preset: PresetName;
  options: Options;
}

/** Work counters of a backend since the last reset. */
export interface WorkCount {
  /** Primitive launches (the engine's counter; one primitive may dispatch several kernels). */
  launches: number;
  /**
   * Bind groups the WebGPU backend had to create (dispatches that missed its bind-group cache;
   * each costs tens of µs of host time); 0 on the CPU.
   */
  bindGroupsCreated: number;
  /** WebGPU queue submits; 0 on the CPU. */
  submits: number;
  /** Host readbacks (backend.read). */
  reads: number;
  /** Explicit syncs (backend.sync). */
  syncs: number;
  /** GPU buffers the WebGPU pool had to create (0 when every allocation reused a pooled one; 0 on the CPU). */
  buffersCreated: number;
}

/** The backend in use, with counters and memory meters installed. */
export interface BenchBackend {
  name: BackendChoice;
  backend: Backend;
  /** The adapter (WebGPU) or the CPU backend's name. */
  device: string;
  count(): WorkCount;
  resetCount(): void;
  /** Live tensor bytes now, and their high-water mark since resetPeak. */
  liveBytes(): number;
  peakLiveBytes(): number;
  /** WebGPU pool bytes in use at the high-water mark since resetPeak (null on the CPU). */
  peakPoolBytes(): number | null;
  /** The backend's own memory now: WebGPU pool bytes in use; wasm heap bytes in use and its top (high-water). */
  backendMemory(): { inUseBytes: number; topBytes: number | null } | null;
  /** The process's resident set size now, and the largest seen by sampleRss since resetPeak. */
  sampleRss(): number;
  peakRss(): number;
  resetPeak(): void;
  /** Waits for queued work (WebGPU) — call before reading a clock. */
  sync(): Promise<void>;
  /** Releases the device (WebGPU). */
  destroy(): void;
}

// deno-lint-ignore no-explicit-any
type Any = any;

/** Selects and instruments a backend. WebGPU: Dawn or navigator.gpu (see tensor/src/webgpu/probe.ts). */
export async function openBackend(name: BackendChoice, opts: { timestamps?: boolean; maxBatch?: number } = {}): Promise<BenchBackend & { profiler: KernelProfiler | null }> {
  let backend: Backend;
  let device: string = name;
  let gpu: Any = null;
  if (name === "cpu") backend = setBackend("cpu");
  else if (name === "wasm") {
    const mod = await import("../../tensor/src/wasm/backend.ts");
    backend = setBackend(await mod.createWasmBackend());
  } else if (name === "webgpu") {
    const mod = await import("../../tensor/src/webgpu/backend.ts");
    gpu = await mod.createWebGpuBackend({ timestamps: opts.timestamps, maxBatch: opts.maxBatch });
    backend = setBackend(gpu);
    const poll = (await import("../../tensor/src/webgpu/dawn-poll.ts")).dawnPollStats();
    const waits = gpu.via !== "dawn" ? "" : poll.installed ? `, waits: spin ${poll.options!.spinMs} ms, then a poll a ${poll.options!.sleepMs} ms` : ", waits: Dawn's polling (MEMMAMBA_DAWN_POLL=spin)";
    device = `webgpu ${gpu.adapterInfo} (${gpu.via}${waits})`;
  } else throw new UsageError(`--backend must be one of ${BACKENDS.join(", ")}, got "${name}"`);

  const created = () => (gpu ? gpu.poolStats().tensor.created as number : 0);
  const c = { bindGroupsCreated: 0, submits: 0, reads: 0, syncs: 0, launches0: readCounters().launches, created0: created() };
  let live = 0, peak = 0, rssPeak = 0;
  const sizes = new WeakMap<BufferHandle, number>();
  const b = backend as Any;
  const alloc = b.alloc.bind(b), free = b.free.bind(b), read = b.read.bind(b), sync = b.sync.bind(b);
  b.alloc = (size: number, dtype: string, hint?: string) => {
    const h = alloc(size, dtype, hint); // the hint too (long-lived buffers have their own pool lists)
    const bytes = size * 4; // f32 and i32 alike
    sizes.set(h, bytes);
    live += bytes;
    if (live > peak) peak = live;
    return h;
  };
  b.free = (h: BufferHandle) => {
    free(h);
    live -= sizes.get(h) ?? 0;
  };
  b.read = (h: BufferHandle) => {
    c.reads++;
    return read(h);
  };
  b.sync = () => {
    c.syncs++;
    return sync();
  };
  if (gpu) {
    // one bind group per dispatch that misses the backend's bind-group cache (webgpu/pipelines.ts,
    // bindGroup): the "dispatches" counter counts those creations, one submit per batch
    const dev = gpu.device as Any, queue = dev.queue as Any;
    const createBindGroup = dev.createBindGroup.bind(dev), submit = queue.submit.bind(queue);
    dev.createBindGroup = (d: unknown) => {
      c.bindGroupsCreated++;
      return createBindGroup(d);
    };
    queue.submit = (cmds: unknown) => {
      c.submits++;
      return submit(cmds);
    };
  }
  const rss = () => {
    try {
      return process.memoryUsage().rss;
    } catch {
      return 0;
    }
  };
  return {
    name,
    backend,
    device,
    profiler: gpu && gpu.device.features.has("timestamp-query") ? kernelProfiler(gpu) : null,
    count: () => ({
      launches: readCounters().launches - c.launches0, bindGroupsCreated: c.bindGroupsCreated, submits: c.submits, reads: c.reads, syncs: c.syncs,
      buffersCreated: created() - c.created0,
    }),
    resetCount: () => {
      Object.assign(c, { bindGroupsCreated: 0, submits: 0, reads: 0, syncs: 0, launches0: readCounters().launches, created0: created() });
    },
    liveBytes: () => live,
    peakLiveBytes: () => peak,
    peakPoolBytes: () => (gpu ? gpu.poolStats().tensor.peakInUseBytes as number : null),
    backendMemory: () => {
      if (gpu) return { inUseBytes: gpu.poolStats().tensor.inUseBytes as number, topBytes: null };
      const heap = (backend as Any).heap;
      if (heap?.stats) {
        const h = heap.stats();
        return { inUseBytes: h.inUseBytes, topBytes: h.topBytes };
      }
      return null;
    },
    sampleRss: () => {
      const r = rss();
      if (r > rssPeak) rssPeak = r;
      return r;
    },
    peakRss: () => rssPeak,
    resetPeak: () => {
      peak = live;
      rssPeak = rss();
      gpu?.resetPoolPeak?.();
    },
    sync: () => backend.sync(),
    destroy: () => gpu?.destroy(),
  };
}

/** The config of `kind` at a preset (the Transformer: the same width, depth and vocab). */
export function modelConfig(name: PresetName, kind: ModelKind): ModelConfig {
  return preset(name, { kind });
}

/** Deterministic random byte tokens i32 [B, L] (the data pipeline is not measured). */
export function randomTokens(B: number, L: number, seed: number): Tensor {
  const a = new Int32Array(B * L);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) & 255;
  }
  return fromArray(a, [B, L], "i32");
}

/** A training setup: params and AdamW state it owns, and one full step. */
export interface Trainer {
  /** One step on (x, y): forward, backward, clip at global norm 1, AdamW. Resolves to the loss (one readback). */
  step(x: Tensor, y: Tensor): Promise<number>;
  dispose(): void;
}

/**
 * AdamW as the reference's bench_train.py (lr 1e-4, β (0.9, 0.999), eps 1e-8, weight decay 0.1,
 * clipping at 1.0). The loss is read back once per step (which also waits for the step's work).
 */
export function makeTrainer(params: LMParams): Trainer {
  let p = params;
  let opt = adamw.init(p);
  const vg = valueAndGrad((q: LMParams, x: Tensor, y: Tensor) => lm.loss(q, x, y));
  return {
    async step(x, y) {
      const { value, grads } = vg(p, x, y);
      // the CLI trainer's recipe: the clip's scale applied inside AdamW's fused update, the
      // gradients concatenated once for both
      const flat = flatGradients(grads);
      const { norm, scale } = clipScale(grads, 1.0, { flat });
      ({ params: p, state: opt } = adamw.update(p, grads, opt, { lr: 1e-4, weightDecay: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, gradScale: scale, flatGrads: flat }));
      disposeTree([grads, norm, scale, flat]);
      const loss = await value.item();
      value.dispose();
      return loss;
    },
    dispose() {
      disposeTree([p, opt]);
    },
  };
}

/**
 * The chunked forward of a recurrent model over tokens [B, L] (lm.applyChunked), keeping the
 * logits of every position as the API returns them; resolves after reading one logit (so the
 * clock includes the GPU's work). `finalState` (default false): also build the state after the
 * last position, which a forward that only wants logits (as PyTorch's reference forward) skips.
 */
export async function chunkedForward(params: LMParams, tokens: Tensor, chunk: number, finalState = false): Promise<{ encodeMs: number }> {
  const t = performance.now();
  const { logits, state } = lm.applyChunked(params, tokens, { chunk, finalState });
  // the host's share: every launch encoded (and all but the last batch submitted) by now
  const encodeMs = performance.now() - t;
  disposeTree(state);
  await lastLogit(logits);
  return { encodeMs };
}

/** The parallel forward (lm.apply) over tokens [B, L], waited for as chunkedForward. */
export async function parallelForward(params: LMParams, tokens: Tensor): Promise<void> {
  const { logits } = lm.apply(params, tokens, { counts: false });
  await lastLogit(logits);
}

async function lastLogit(logits: Tensor): Promise<void> {
  // reading a whole [B, L, 256] block back would time the copy, not the model: one element
  const last = tidy(() => sliceAxis(sliceAxis(sliceAxis(logits, 1, logits.shape[1] - 1, logits.shape[1]), 2, 0, 1), 0, 0, 1));
  logits.dispose();
  await last.data();
  last.dispose();
}

/**
 * Streams `total` tokens through the model `chunk` at a time from an empty state, freeing each
 * chunk's logits, and calls `sample` every `every` tokens (memory along the way). Constant
 * memory is the claim: the state has the same size after ten tokens as after a million.
 */
export async function stream(
  params: LMParams, B: number, total: number, chunk: number, every: number,
  sample: (tokensSoFar: number, state: LMState) => void | Promise<void>,
  deadline = Infinity,
): Promise<number> {
  let state = lm.initState(params.config, B);
  let done = 0;
  let next = every;
  try {
    while (done < total && performance.now() < deadline) {
      const n = Math.min(chunk, total - done);
      const x = randomTokens(B, n, 7 + done);
      const r = lm.applyChunked(params, x, { chunk: n }, state);
      x.dispose();
      disposeTree(state);
      state = r.state;
      await lastLogit(r.logits);
      done += n;
      if (done >= next || done === total) {
        await sample(done, state);
        while (next <= done) next += every;
      }
    }
  } finally {
    disposeTree(state);
  }
  return done;
}

export { settleOn, timeAsync, type Settle } from "./warmup.ts";

/** Whether an error means "does not fit" (a tensor over the device's limits, an allocation failure). */
export function isOutOfMemory(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  return /maxBufferSize|maxStorageBufferBindingSize|out of memory|OutOfMemory|allocation failed|Invalid typed array length|Array buffer allocation/i.test(m);
}

const LENGTH_RE = /^\s*(\d+)\s*([kKmM]?)\s*$/;

/** A token count: 4096, 16K (K = 1024), 1M (M = 1024²), at least 1. */
export const LENGTH: FlagType<number> = {
  schema: z.string().regex(LENGTH_RE).transform((s) => {
    const [, n, unit] = LENGTH_RE.exec(s)!;
    return Number(n) * (unit === "" ? 1 : unit.toLowerCase() === "k" ? 1024 : 1024 * 1024);
  }).pipe(z.number().int().min(1)),
  expects: "a length (e.g. 4096, 16K, 1M)",
  message: (flag, v) => (/^\s*0+\s*[kKmM]?\s*$/.test(v) ? `${flag}: lengths must be positive, got "${v}"` : `${flag}: "${v}" is not a length (e.g. 4096, 16K, 1M)`),
};

/** Parses "1K,16K,1M,4096" into numbers (K = 1024, M = 1024²); a bad item is a UsageError naming the flag. */
export function parseLengths(flag: string, v: string): number[] {
  return v.split(",").map((s) => flagValue(flag, s, LENGTH)!);
}

/** "64K" for 65536, "1M" for 1048576, else the number. */
export function showLength(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  if (n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}

/** Prints a progress line on stderr (stdout may carry JSON). */
export function progress(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

/** Bytes as MiB with one decimal. */
export const mib = (b: number | null | undefined): number | null => (b === null || b === undefined ? null : Math.round((b / 2 ** 20) * 10) / 10);

export { lm };

/** The fused pool read's layout flags (WebGPU), as parseFlags takes them; see attnReadFlagsHelp. */
export const ATTN_READ_FLAGS = {
  "attn-positions": "string", "attn-forward": "string", "attn-shared-positions": "string", "attn-dots": "string", "attn-dot-lanes": "string",
} as const;

/** The help lines of ATTN_READ_FLAGS, with the current defaults. */
export function attnReadFlagsHelp(): string {
  const t = attnReadTuning;
  return `  --attn-positions N  WebGPU fused pool read: positions per workgroup, 1, 2, 4, 8 or 16 (default ${t.positions})
  --attn-forward F  WebGPU fused pool read's forward: auto, online (one thread a position, online softmax), shared (rows loaded once per workgroup) or lanes (default ${t.forward}: online on a GPU, shared on software adapters)
  --attn-shared-positions N  positions per workgroup of the shared forward: 4, 8 or 16 (default ${t.sharedPositions})
  --attn-dots D    WebGPU fused pool read's dot products: lanes or slots (default ${t.dots})
  --attn-dot-lanes N  lanes per slot with --attn-dots lanes: 4, 8 or 16 (default ${t.dotLanes})`;
}

/** Sets attnReadTuning from the ATTN_READ_FLAGS given (a bad value: a clear error naming the flag). */
export function applyAttnReadFlags(f: Partial<Record<keyof typeof ATTN_READ_FLAGS, string | boolean>>): void {
  const t = attnReadTuning;
  const positions = oneOf("attn-positions", f["attn-positions"], ["1", "2", "4", "8", "16"] as const);
  if (positions) t.positions = Number(positions);
  t.forward = oneOf("attn-forward", f["attn-forward"], ["auto", "online", "shared", "lanes"] as const) ?? t.forward;
  const sharedPositions = oneOf("attn-shared-positions", f["attn-shared-positions"], ["4", "8", "16"] as const);
  if (sharedPositions) t.sharedPositions = Number(sharedPositions);
  t.dots = oneOf("attn-dots", f["attn-dots"], ["lanes", "slots"] as const) ?? t.dots;
  const dotLanes = oneOf("attn-dot-lanes", f["attn-dot-lanes"], ["4", "8", "16"] as const);
  if (dotLanes) t.dotLanes = Number(dotLanes);
}
