/**
 * The WebGPU backend: the narrow Backend interface (alloc / free / write / read / run / sync) over
 * one GPUDevice, from navigator.gpu (browsers, Deno) or Dawn (Node, Bun, Deno via Node-API).
 *
 * - Kernels (./kernels) generate WGSL per shape class; pipelines are cached by key.
 * - run() only encodes: dispatches accumulate in one compute pass of one command encoder and are
 *   submitted in batches (at most MAX_BATCH dispatches, or when a read, a sync or a write to a
 *   buffer the batch uses needs it), because every submit/wait has a fixed cost (about 11 ms
 *   per wait on Deno's own WebGPU). After the GPU went idle (a read or a sync waited for it) the
 *   batches ramp up from RAMP_BATCH dispatches, doubling, so that the GPU starts early. Each
 *   dispatch's params go into one uniform buffer per batch, at 256-byte slots, uploaded with a
 *   single writeBuffer just before the submit.
 * - Buffers come from a pool by size class (./pool.ts); a logical tensor buffer is one pooled
 *   GPUBuffer. liveBuffers() counts the logical buffers alloc'd and not freed (not the pool).
 * - Reads are async only: copy into a pooled MAP_READ staging buffer, submit, mapAsync.
 * - WebGPU reports errors asynchronously: validation errors (a bad shader, a bad binding) are
 *   collected and thrown by the next read() or sync().
 */
import { readEnv } from "../env.ts";
import type { AllocHint, Backend, BufferHandle, HostArray, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { showShape, sizeOf } from "../shape.ts";
import type { BufRef, GpuCtx, GpuLimits, Launch } from "./context.ts";
import { gpuKernels, gpuMultiKernels, type GpuKernel } from "./kernels/index.ts";
import { dropInverseIndices, forgetInverseIndices } from "./kernels/indexed.ts";
import { BufferPool, type PoolStats } from "./pool.ts";
import { acquireGpu, type AcquiredGpu, type AcquireOptions } from "./probe.ts";
import { dawnWaitStarts } from "./dawn-poll.ts";
import { GpuTimer, type PassTimes } from "./timer.ts";
import { describeRun, GpuProfiler, type ProfileRow } from "./profiler.ts";
import { BufferUsage, MapMode, ShaderStage } from "./flags.ts";

const MAX_BATCH = 128; // dispatches per submit (the default of WebGpuOptions.maxBatch)
const RAMP_BATCH = 16; // the first submit's dispatches after an idle GPU (WebGpuOptions.rampBatch)
/** Bind groups kept (see #bindGroup); a training step of the small model binds a few thousand. */
const BIND_GROUP_CACHE = 16384;

interface CachedPipeline {
  pipeline: GPUComputePipeline;
  bgl: GPUBindGroupLayout;
  /** Small integer id for bind-group keys. */
  id: number;
  /** Storage bindings the WGSL declares (bindings 1..storage). */
  storage: number;
}
const SLOT = 256; // params slot alignment (minUniformBufferOffsetAlignment is at most 256)
const PARAMS_PER_DISPATCH = 4 * SLOT; // params bytes a batch holds per dispatch (slots of 256 bytes)
/**
 * Bytes of host writes a batch can stage (see write): a write to a buffer that the unsubmitted
 * batch uses goes through this upload buffer and a copy command in the batch, instead of forcing
 * a submit (a training step's scalar constants land in buffers the same batch used a moment ago:
 * 30–40 forced submits a step, at ~0.4 ms of host time each).
 */
const UPLOAD_BYTES = 1 << 20;

/**
 * What the backend tracks of one pooled GPUBuffer: a small integer id for bind-group keys (never
 * reused, so a destroyed buffer's cached bind groups are never hit again) and the batch that last
 * bound it (see write and #release). One record, so a launch does one lookup per buffer.
 */
interface BufInfo {
  readonly id: number;
  lastUse: number;
}

/**
 * A binding of a whole tensor buffer, made once per logical buffer and reused by every launch
 * that binds it (ctx.ref is called for nearly every operand of every launch): `info` and `key`
 * save #bindGroup a WeakMap lookup and a string build per buffer. `owner`: the backend whose
 * BufInfo and ids it holds (backends may share a device: tests lower the limits of a second one).
 */
class WholeRef implements BufRef {
  constructor(
    readonly buf: GPUBuffer, readonly offset: number, readonly size: number, readonly info: BufInfo, readonly key: string, readonly owner: object,
  ) {}
}

/**
 * One GPUBuffer shared by the tensors of an allocGroup call, each a view at its own offset; the
 * buffer goes back to the pool when the last view is freed.
 */
interface Slab {
  readonly gpu: GPUBuffer;
  /** Bytes the views span (from 0): what a kernel binds to reach all of them. */
  readonly bytes: number;
  /** Views not yet freed. */
  refs: number;
}

class GpuBuffer implements BufferHandle {
  /** Its whole-buffer binding (see WholeRef), made on first use. */
  whole: WholeRef | null = null;
  constructor(
    readonly id: number, readonly size: number, readonly dtype: DType, public gpu: GPUBuffer | null,
    /** Byte offset of the elements in `gpu` (views of a slab; 0 otherwise). */
    readonly offset = 0,
    readonly slab: Slab | null = null,
  ) {}
}

/** Slab views start at multiples of this many bytes: 256-byte binding offsets, and whole 256-thread workgroups of f32 per view. */
const SLAB_ALIGN = 1024;
/** Bytes a view of `n` f32 / i32 elements takes in a slab (at least one aligned span). */
const slabSpan = (n: number) => Math.ceil(Math.max(1, n * 4) / SLAB_ALIGN) * SLAB_ALIGN;

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

export class WebGpuBackend implements Backend {
  readonly name = "webgpu";
  readonly device: GPUDevice;
  /** The device as acquired (pass it as `gpu` to build another backend on the same device). */
  readonly acquired: AcquiredGpu;
  readonly adapterInfo: string;
  readonly via: string;
  readonly limits: GpuLimits;
  /** Dawn's GPU object (see probe.ts): must stay reachable while the device lives (Bun). */
  readonly keepAlive: unknown;
  #ownsDevice: boolean;
  #live = 0;
  #nextId = 1;
  #pool: BufferPool;
  #staging: BufferPool;
  #pipelines = new Map<string, CachedPipeline>();
  /** Bind groups by pipeline, params size and buffer ranges (see #bindGroup). */
  #bindGroups = new Map<string, GPUBindGroup>();
  /** Per pooled GPUBuffer: its id for bind-group keys and the batch that last bound it (see BufInfo). */
  #bufInfo = new WeakMap<GPUBuffer, BufInfo>();
  #bgStats = { hits: 0, misses: 0 };
  #nextBufferId = 1;
  #maxStorageBuffers = 0;
  #batch = 1;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  /** The pipeline last set on #pass (setPipeline is skipped when a launch uses the same one). */
  #passPipeline: GPUComputePipeline | null = null;
  #dispatches = 0;
  #params: GPUBuffer;
  readonly #maxBatch: number;
  /** The first submit's dispatches after an idle GPU (see WebGpuOptions.rampBatch). */
  readonly #rampBatch: number;
  /** Dispatches that make this batch's submit (rampBatch after an idle GPU, doubling to maxBatch). */
  #batchLimit: number;
  readonly #paramsBytes: number;
  #paramsHost: Uint8Array;
  /** #paramsHost as u32 words (params are copied word by word, without a view per launch). */
  #paramsWords: Uint32Array;
  #upload: GPUBuffer;
  readonly #uploadHost = new Uint8Array(UPLOAD_BYTES);
  #uploadUsed = 0;
  #paramsUsed = 0;
  #retired: GPUBuffer[] = [];
  #errors: string[] = [];
  #pendingChecks: Promise<void>[] = [];
  #destroyed = false;
  #timer: GpuTimer | null = null;
  #profiler: GpuProfiler | null = null;
  /** With a detailed profile: the primitive and argument shapes of the run being encoded. */
  #profileOp: string | null = null;
  #profileDetail = false;
  #onError: (ev: Event) => void;
  readonly ctx: GpuCtx;

  constructor(gpu: AcquiredGpu, opts: WebGpuOptions = {}) {
    this.device = gpu.device;
    this.acquired = gpu;
    this.adapterInfo = gpu.adapterInfo;
    this.via = gpu.via;
    this.keepAlive = gpu.keepAlive;
    this.#ownsDevice = !opts.gpu;
    const L = this.device.limits;
    this.limits = {
      maxStorageBufferBindingSize: Math.min(L.maxStorageBufferBindingSize, opts.limits?.maxStorageBufferBindingSize ?? Infinity),
      maxComputeWorkgroupsPerDimension: Math.min(L.maxComputeWorkgroupsPerDimension, opts.limits?.maxComputeWorkgroupsPerDimension ?? Infinity),
      maxComputeWorkgroupStorageSize: Math.min(L.maxComputeWorkgroupStorageSize, opts.limits?.maxComputeWorkgroupStorageSize ?? Infinity),
      minStorageBufferOffsetAlignment: L.minStorageBufferOffsetAlignment,
      maxStorageBuffersPerShaderStage: Math.min(L.maxStorageBuffersPerShaderStage, opts.limits?.maxStorageBuffersPerShaderStage ?? Infinity),
    };
    this.#maxStorageBuffers = this.limits.maxStorageBuffersPerShaderStage;
    const cap = opts.poolBytes ?? 2 ** 30;
    const U = BufferUsage;
    this.#pool = new BufferPool(this.device, U.STORAGE | U.COPY_SRC | U.COPY_DST, cap, "tensor");
    this.#staging = new BufferPool(this.device, U.MAP_READ | U.COPY_DST, Math.min(cap, 2 ** 28), "staging");
    const mb = opts.maxBatch ?? MAX_BATCH;
    if (!Number.isInteger(mb) || mb < 1 || mb > 65536) throw new RangeError(`webgpu: maxBatch must be an integer in 1..65536, got ${mb}`);
    this.#maxBatch = mb;
    const envRamp = readEnv("MEMMAMBA_WEBGPU_RAMP")?.trim();
    const rb = opts.rampBatch ?? (envRamp ? Number(envRamp) : RAMP_BATCH);
    if (!Number.isInteger(rb) || rb < 1) {
      throw new RangeError(`webgpu: rampBatch${opts.rampBatch === undefined && envRamp ? ` ($MEMMAMBA_WEBGPU_RAMP=${envRamp})` : ""} must be a positive integer, got ${opts.rampBatch ?? envRamp}`);
    }
    this.#rampBatch = Math.min(rb, mb);
    this.#batchLimit = this.#rampBatch;
    this.#paramsBytes = mb * PARAMS_PER_DISPATCH;
    this.#paramsHost = new Uint8Array(this.#paramsBytes);
    this.#paramsWords = new Uint32Array(this.#paramsHost.buffer);
    this.#params = this.device.createBuffer({ label: "params", size: this.#paramsBytes, usage: U.UNIFORM | U.COPY_DST });
    this.#upload = this.device.createBuffer({ label: "upload", size: UPLOAD_BYTES, usage: U.COPY_SRC | U.COPY_DST });
    this.#onError = (ev: Event) => this.#errors.push(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error?.message ?? String(ev)}`);
    this.device.addEventListener("uncapturederror", this.#onError);
    if (this.device.features.has("timestamp-query")) this.#timer = new GpuTimer(this.device);
    this.ctx = {
      limits: this.limits,
      software: this.adapterInfo.includes("[fallback adapter]"),
      subgroupMinSize: gpu.subgroupMinSize ?? 0,
      ref: (a, prim) => this.#ref(a, prim),
      range: (a, start, count) => this.#range(a, start, count),
      view: (a, prim) => this.#view(a, prim),
      temp: (bytes) => ({ buf: this.#pool.acquire(Math.max(16, bytes)), offset: 0, size: Math.max(4, bytes) }),
      releaseTemp: (r) => this.#release(r.buf),
      dispatch: (l) => this.#dispatch(l),
    };
  }

  // ---------- memory ----------

  alloc(size: number, dtype: DType, hint?: AllocHint): BufferHandle {
    this.#alive();
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`webgpu.alloc: invalid size ${size}`);
    const bytes = size * 4;
    if (bytes > this.device.limits.maxBufferSize) {
      throw new RangeError(`webgpu.alloc: a tensor of ${size} ${dtype} elements (${bytes} bytes) exceeds this device's maxBufferSize (${this.device.limits.maxBufferSize} bytes)`);
    }
    this.#live++;
    // zero-size tensors still get a (minimal) buffer: WebGPU rejects empty bindings
    return new GpuBuffer(this.#nextId++, size, dtype, this.#pool.acquire(Math.max(16, bytes), hint === "long-lived" ? 1 : 0));
  }

  /**
   * Allocates several buffers as views of as few GPUBuffers (slabs) as the binding limit allows,
   * each view at a multiple of 1 KiB, in order. A kernel that updates many tensors at once
   * (adamwGroup) then binds one slab instead of one buffer per tensor; to every other kernel a
   * view is an ordinary buffer.
   */
  allocGroup(sizes: readonly number[], dtype: DType, hint?: AllocHint): BufferHandle[] {
    this.#alive();
    sizes.forEach((n, j) => {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`webgpu.allocGroup: invalid size ${n} (index ${j})`);
    });
    const out: GpuBuffer[] = [];
    try {
      this.#fillGroup(sizes, dtype, hint, out);
    } catch (e) {
      for (const b of out) this.free(b); // a failed request leaves nothing allocated
      throw e;
    }
    return out;
  }

  #fillGroup(sizes: readonly number[], dtype: DType, hint: AllocHint | undefined, out: GpuBuffer[]): void {
    const cap = Math.min(this.limits.maxStorageBufferBindingSize, this.device.limits.maxBufferSize);
    let i = 0;
    while (i < sizes.length) {
      if (slabSpan(sizes[i]) > cap) {
        // too large to share a binding: a buffer of its own, as alloc gives (and the same errors)
        out.push(this.alloc(sizes[i], dtype, hint) as GpuBuffer);
        i++;
        continue;
      }
      // the views of one slab: as many of the next sizes as fit under the binding limit
      const offsets: number[] = [];
      let bytes = 0;
      let j = i;
      for (; j < sizes.length && bytes + slabSpan(sizes[j]) <= cap; j++) {
        offsets.push(bytes);
        bytes += slabSpan(sizes[j]);
      }
      const slab: Slab = { gpu: this.#pool.acquire(bytes, hint === "long-lived" ? 1 : 0), bytes, refs: j - i };
      for (let k = i; k < j; k++) out.push(new GpuBuffer(this.#nextId++, sizes[k], dtype, slab.gpu, offsets[k - i], slab));
      this.#live += j - i;
      i = j;
    }
  }


  free(buf: BufferHandle): void {
    const b = buf as GpuBuffer;
    if (!b.gpu) throw new Error(`webgpu.free: buffer ${b.id} was freed twice`);
    const g = b.gpu;
    b.gpu = null;
    b.whole = null;
    this.#live--;
    forgetInverseIndices(this.ctx, b); // indexedOuter's cached index of this buffer (kernels/indexed.ts)
    if (b.slab && --b.slab.refs > 0) return; // other views still use the slab
    if (!this.#destroyed) this.#release(g);
  }

  write(buf: BufferHandle, data: HostArray): void {
    const g = this.#gpu(buf, "write");
    const b = buf as GpuBuffer;
    forgetInverseIndices(this.ctx, b); // new contents: an index built from the old ones is stale
    if (data.length !== b.size) throw new RangeError(`webgpu.write: ${data.length} values for a buffer of ${b.size}`);
    if (data.length === 0) return;
    // writeBuffer lands before any unsubmitted work: if that work uses this buffer, the write
    // must come after it — staged in the upload buffer and copied by a command of the batch
    // (small writes), or after a submit
    if (this.#bufInfo.get(g)?.lastUse === this.#batch) {
      const bytes = data.byteLength; // a multiple of 4 (f32 / i32), as copyBufferToBuffer needs
      if (this.#uploadUsed + bytes <= UPLOAD_BYTES) {
        this.#uploadHost.set(new Uint8Array(data.buffer, data.byteOffset, bytes), this.#uploadUsed);
        this.#endPass();
        this.#encoderOrNew().copyBufferToBuffer(this.#upload, this.#uploadUsed, g, b.offset, bytes);
        this.#uploadUsed += bytes;
        return;
      }
      this.#flush();
    }
    this.device.queue.writeBuffer(g, b.offset, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(buf: BufferHandle): Promise<HostArray> {
    const g = this.#gpu(buf, "read");
    const b = buf as GpuBuffer;
    const bytes = b.size * 4;
    if (bytes === 0) {
      this.#flush();
      await this.#checkErrors();
      return b.dtype === "f32" ? new Float32Array(0) : new Int32Array(0);
    }
    const staging = this.#staging.acquire(bytes);
    this.#endPass();
    this.#encoderOrNew().copyBufferToBuffer(g, b.offset, staging, 0, bytes);
    this.#flush();
    dawnWaitStarts();
    try {
      await staging.mapAsync(MapMode.READ, 0, bytes);
    } catch (e) {
      await this.#checkErrors();
      throw e;
    }
    this.#batchLimit = this.#rampBatch; // the GPU has run everything submitted: start it soon
    const src = staging.getMappedRange(0, bytes);
    const out = b.dtype === "f32" ? new Float32Array(b.size) : new Int32Array(b.size);
    out.set(b.dtype === "f32" ? new Float32Array(src) : new Int32Array(src));
    staging.unmap();
    for (const d of this.#staging.release(staging)) d.destroy(); // staging buffers: no queued work uses them
    await this.#checkErrors();
    return out;
  }

  liveBuffers(): number {
    return this.#live;
  }

  async sync(): Promise<void> {
    this.#alive();
    this.#flush();
    dawnWaitStarts();
    await this.device.queue.onSubmittedWorkDone();
    this.#batchLimit = this.#rampBatch;
    await this.#checkErrors();
  }

  /** Pool counters (buffers created vs reused). */
  poolStats(): { tensor: PoolStats; staging: PoolStats; pipelines: number; bindGroups: { hits: number; misses: number } } {
    return { tensor: { ...this.#pool.stats }, staging: { ...this.#staging.stats }, pipelines: this.#pipelines.size, bindGroups: { ...this.#bgStats } };
  }

  /** Restarts the pools' high-water marks (peakInUseBytes) from the bytes in use now (benchmarks). */
  resetPoolPeak(): void {
    this.#pool.resetPeak();
    this.#staging.resetPeak();
  }

  // ---------- kernels ----------

  run<K extends PrimName>(prim: K, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[K]): void {
    this.#alive();
    this.#checkSizes(prim, inputs);
    this.#checkSize(prim, output);
    if ((output.buf as GpuBuffer).size === 0) return; // = sizeOf(output.shape), checked just above
    if (this.#profileDetail) this.#profileOp = describeRun(prim, inputs, [output], params);
    (gpuKernels[prim] as GpuKernel<K>)(this.ctx, inputs, output, params);
  }

  runMulti<K extends MultiPrimName>(prim: K, inputs: readonly KernelArg[], outputs: readonly KernelArg[], params: MultiPrimParams[K]): void {
    this.#alive();
    this.#checkSizes(prim, inputs);
    this.#checkSizes(prim, outputs);
    if (outputs.every((o) => (o.buf as GpuBuffer).size === 0)) return; // sizes checked just above
    if (this.#profileDetail) this.#profileOp = describeRun(prim, inputs, outputs, params);
    gpuMultiKernels[prim](this.ctx, inputs, outputs, params);
  }

  /**
   * GPU time in milliseconds of the work `fn` encodes (timestamp queries around each compute
   * pass), or null when the device has no 'timestamp-query'.
   */
  async timeGpu(fn: () => void): Promise<number | null> {
    return (await this.timeGpuPasses(fn))?.busyMs ?? null;
  }

  /**
   * timeGpu's measurement in full: the passes' summed GPU time (busyMs), the span from the first
   * pass's start to the last one's end (spanMs: longer where the GPU waited for the host between
   * submits) and the pass count; null without 'timestamp-query'. At most 256 passes.
   */
  async timeGpuPasses(fn: () => void): Promise<PassTimes | null> {
    if (!this.#timer) return null;
    this.#flush();
    this.#timer.start();
    try {
      fn();
      this.#endPass();
      const enc = this.#encoderOrNew();
      this.#timer.resolve(enc);
      this.#flush();
    } finally {
      this.#timer.stop();
    }
    const times = await this.#timer.read();
    await this.#checkErrors();
    return times;
  }

  /**
   * Starts a per-kernel profile (timestamp queries around every dispatch: see profiler.ts); false
   * when the device has no 'timestamp-query'. `detail`: each row is a kernel *and* the primitive
   * call that launched it, with its argument shapes ("matmul:… | matmul [16384,256]·[256,64]ᵀ→…"),
   * to find which call of a kernel costs what (more rows; same timing).
   */
  startProfile(opts: { detail?: boolean } = {}): boolean {
    if (!this.device.features.has("timestamp-query")) return false;
    this.#flush();
    this.#profiler = new GpuProfiler(this.device);
    this.#profileDetail = opts.detail ?? false;
    return true;
  }

  /** Ends the profile: GPU time per kernel (its pipeline key), largest first. */
  async stopProfile(): Promise<ProfileRow[]> {
    const p = this.#profiler;
    if (!p) return [];
    this.#endPass();
    p.resolve(this.#encoderOrNew());
    this.#flush();
    this.#profiler = null;
    this.#profileDetail = false;
    const rows = await p.report();
    await this.#checkErrors();
    return rows;
  }

  /** Submits pending work, destroys the pooled buffers and (unless it was given one) the device. */
  destroy(): void {
    liveBackends.delete(this);
    if (this.#destroyed) return;
    this.#flush();
    dropInverseIndices(this.ctx); // their scratch back to the pool, destroyed just below
    this.#destroyed = true;
    this.#bindGroups.clear();
    this.#pool.clear();
    this.#staging.clear();
    this.#params.destroy();
    this.#upload.destroy();
    this.#timer?.destroy();
    for (const b of this.#retired) b.destroy();
    this.#retired = [];
    this.device.removeEventListener("uncapturederror", this.#onError);
    if (this.#ownsDevice) this.device.destroy();
  }

  // ---------- internals ----------

  /** Each buffer holds as many elements as its shape says (a clear error naming the primitive). */
  #checkSizes(prim: string, args: readonly KernelArg[]): void {
    for (let i = 0; i < args.length; i++) this.#checkSize(prim, args[i]);
  }

  #checkSize(prim: string, a: KernelArg): void {
    const b = a.buf as GpuBuffer;
    if (b.size !== sizeOf(a.shape)) throw new Error(`webgpu.${prim}: buffer of ${b.size} elements for shape ${showShape(a.shape)}`);
  }

  #alive(): void {
    if (this.#destroyed) throw new Error("webgpu: the backend was destroyed");
  }

  #gpu(buf: BufferHandle, what: string): GPUBuffer {
    this.#alive();
    const g = (buf as GpuBuffer).gpu;
    if (!g) throw new Error(`webgpu.${what}: buffer ${(buf as GpuBuffer).id} was used after it was freed`);
    return g;
  }

  #release(g: GPUBuffer): void {
    for (const d of this.#pool.release(g)) {
      // may still be used by the unsubmitted batch: destroy after the next submit
      if (this.#bufInfo.get(d)?.lastUse === this.#batch) this.#retired.push(d);
      else d.destroy();
    }
  }

  #ref(a: KernelArg, prim: string): BufRef {
    const g = this.#gpu(a.buf, prim);
    const bytes = sizeOf(a.shape) * 4;
    const b = a.buf as GpuBuffer;
    const whole = b.whole;
    // the cached binding, where it binds the same bytes (it is made below once the checks passed)
    if (whole !== null && whole.owner === this && whole.buf === g && whole.size === Math.max(4, bytes)) return whole;
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new RangeError(
        `webgpu.${prim}: a ${a.dtype} tensor of shape ${showShape(a.shape)} (${bytes} bytes) exceeds this device's ` +
          `maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize} bytes); only flat elementwise ops ` +
          `(fill, unary, and binary/compare/where/cast on same-shape or scalar operands) split such tensors`,
      );
    }
    const size = Math.max(4, bytes);
    const info = this.#infoOf(g);
    const ref = new WholeRef(g, b.offset, size, info, `|${info.id}:${b.offset}:${size}`, this);
    b.whole = ref;
    return ref;
  }

  #range(a: KernelArg, start: number, count: number): BufRef {
    const g = this.#gpu(a.buf, "range");
    const offset = (a.buf as GpuBuffer).offset + start * 4;
    if (offset % this.limits.minStorageBufferOffsetAlignment !== 0) throw new Error(`webgpu: binding offset ${offset} is not aligned`);
    return { buf: g, offset, size: Math.max(4, count * 4) };
  }

  /** See GpuCtx.view. */
  #view(a: KernelArg, prim: string): { ref: BufRef; base: number } {
    const b = a.buf as GpuBuffer;
    const g = this.#gpu(b, prim);
    if (b.slab) return { ref: { buf: g, offset: 0, size: b.slab.bytes }, base: b.offset / 4 };
    return { ref: this.#ref(a, prim), base: 0 };
  }

  /**
   * The cached pipeline of a launch's key (compiled on first use). Its layout is explicit — the
   * params uniform with a dynamic offset, then one storage binding per declared buffer, read-only
   * or read-write as the WGSL declares it — so one bind group serves every dispatch that binds
   * the same buffers, whatever its params slot (see #bindGroup).
   */
  #pipeline(l: Launch): CachedPipeline {
    let p = this.#pipelines.get(l.key);
    if (p) return p;
    const code = l.wgsl();
    const access: boolean[] = [];
    for (const m of code.matchAll(/@binding\((\d+)\)\s*var<storage,\s*(read_write|read)>/g)) access[Number(m[1])] = m[2] === "read_write";
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: ShaderStage.COMPUTE, buffer: { type: "uniform", hasDynamicOffset: true } },
    ];
    for (let i = 1; i < access.length; i++) {
      if (access[i] === undefined) throw new Error(`webgpu.${l.label}: pipeline "${l.key}": binding ${i} is not a storage buffer declaration`);
      entries.push({ binding: i, visibility: ShaderStage.COMPUTE, buffer: { type: access[i] ? "storage" : "read-only-storage" } });
    }
    this.device.pushErrorScope("validation");
    const bgl = this.device.createBindGroupLayout({ label: l.key, entries });
    const module = this.device.createShaderModule({ label: l.key, code });
    const pipeline = this.device.createComputePipeline({
      label: l.key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }),
      compute: { module, entryPoint: "main" },
    });
    this.#pendingChecks.push(
      this.device.popErrorScope().then((err) => {
        if (err) {
          const src = code.split("\n").map((s, i) => `${String(i + 1).padStart(4)} ${s}`).join("\n");
          this.#errors.push(`webgpu.${l.label}: pipeline "${l.key}" failed: ${err.message}\n${src}`);
        }
      }),
    );
    p = { pipeline, bgl, id: this.#pipelines.size + 1, storage: access.length - 1 };
    this.#pipelines.set(l.key, p);
    return p;
  }

  #infoOf(b: GPUBuffer): BufInfo {
    let info = this.#bufInfo.get(b);
    if (info === undefined) {
      info = { id: this.#nextBufferId++, lastUse: 0 };
      this.#bufInfo.set(b, info);
    }
    return info;
  }

  /**
   * A bind group for the pipeline and buffer ranges, cached: creating one costs tens of µs on
   * Dawn (65 µs measured under Node on lavapipe), about as much as the rest of a dispatch, and a
   * training step binds the same pooled buffers in the same roles every time. Buffer ids are
   * never reused, so an entry of a destroyed buffer is never hit again; the cache is dropped
   * whole when it grows past BIND_GROUP_CACHE entries. Also marks each buffer as used by this
   * batch (one BufInfo per buffer serves both).
   */
  #bindGroup(p: CachedPipeline, pBytes: number, buffers: readonly BufRef[]): GPUBindGroup {
    let key = p.id + "|" + pBytes;
    const batch = this.#batch;
    for (let i = 0; i < buffers.length; i++) {
      const r = buffers[i];
      if (r instanceof WholeRef && r.owner === this) {
        r.info.lastUse = batch;
        key += r.key;
      } else {
        const info = this.#infoOf(r.buf);
        info.lastUse = batch;
        key += "|" + info.id + ":" + r.offset + ":" + r.size;
      }
    }
    let g = this.#bindGroups.get(key);
    if (g) {
      this.#bgStats.hits++;
      return g;
    }
    this.#bgStats.misses++;
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.#params, offset: 0, size: pBytes } }];
    buffers.forEach((r, i) => entries.push({ binding: i + 1, resource: { buffer: r.buf, offset: r.offset, size: r.size } }));
    g = this.device.createBindGroup({ layout: p.bgl, entries });
    if (this.#bindGroups.size >= BIND_GROUP_CACHE) this.#bindGroups.clear();
    this.#bindGroups.set(key, g);
    return g;
  }

  #encoderOrNew(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    return this.#encoder;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
      this.#passPipeline = null;
    }
  }

  #dispatch(l: Launch): void {
    if (l.buffers.length > this.#maxStorageBuffers) {
      throw new Error(`webgpu.${l.label}: ${l.buffers.length} storage buffers, over this device's maxStorageBuffersPerShaderStage (${this.#maxStorageBuffers})`);
    }
    const p = this.#pipeline(l);
    if (l.buffers.length !== p.storage) {
      throw new Error(`webgpu.${l.label}: pipeline "${l.key}" declares ${p.storage} storage buffers, the launch binds ${l.buffers.length}`);
    }
    // whole 256-byte slots: a shader may declare a few more param words than it is given
    const pBytes = Math.max(1, Math.ceil(l.params.byteLength / SLOT)) * SLOT;
    if (this.#paramsUsed + pBytes > this.#paramsBytes || this.#dispatches >= this.#batchLimit) {
      this.#flush();
      this.#batchLimit = Math.min(this.#maxBatch, 2 * this.#batchLimit);
    }
    const offset = this.#paramsUsed;
    const w0 = offset >> 2, words = this.#paramsWords;
    words.fill(0, w0 + l.params.length, w0 + (pBytes >> 2));
    words.set(l.params, w0);
    this.#paramsUsed += pBytes;
    const bindGroup = this.#bindGroup(p, pBytes, l.buffers);
    if (this.#profiler) {
      this.#endPass();
      this.#pass = this.#encoderOrNew().beginComputePass(this.#profiler.passDescriptor(this.#profileDetail ? `${l.key} | ${this.#profileOp ?? "?"}` : l.key));
    }
    let pass = this.#pass;
    if (!pass) pass = this.#pass = this.#encoderOrNew().beginComputePass(this.#timer?.passDescriptor());
    if (this.#passPipeline !== p.pipeline) {
      pass.setPipeline(p.pipeline);
      this.#passPipeline = p.pipeline;
    }
    pass.setBindGroup(0, bindGroup, [offset]);
    pass.dispatchWorkgroups(l.groups[0], l.groups[1], l.groups[2]);
    this.#dispatches++;
  }

  #flush(): void {
    if (!this.#encoder) return;
    this.#endPass();
    this.#profiler?.resolve(this.#encoder);
    if (this.#paramsUsed > 0) this.device.queue.writeBuffer(this.#params, 0, this.#paramsHost.buffer, 0, this.#paramsUsed);
    if (this.#uploadUsed > 0) this.device.queue.writeBuffer(this.#upload, 0, this.#uploadHost.buffer, 0, this.#uploadUsed);
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    this.#paramsUsed = 0;
    this.#uploadUsed = 0;
    this.#dispatches = 0;
    this.#batch++;
    for (const b of this.#retired) b.destroy();
    this.#retired = [];
  }

  async #checkErrors(): Promise<void> {
    if (this.#pendingChecks.length) {
      const checks = this.#pendingChecks;
      this.#pendingChecks = [];
      await Promise.all(checks);
    }
    if (this.#errors.length) {
      const errs = this.#errors;
      this.#errors = [];
      throw new Error(errs.join("\n"));
    }
  }
}

/** Acquires a device (navigator.gpu or Dawn, see probe.ts) and builds the backend on it. */
export async function createWebGpuBackend(opts: WebGpuOptions = {}): Promise<WebGpuBackend> {
  const features: GPUFeatureName[] = [...(opts.features ?? [])];
  if (opts.timestamps) features.push("timestamp-query");
  // subgroup operations where the adapter has them (the pool reads' lanes share a dot product
  // through them: webgpu/kernels/attention-online.ts)
  features.push("subgroups" as GPUFeatureName);
  const gpu = opts.gpu ?? (await acquireGpu({ ...opts, features }));
  const b = new WebGpuBackend(gpu, opts);
  destroyAtExit(b);
  return b;
}

const liveBackends = new Set<WebGpuBackend>();
let exitHook = false;

/**
 * Destroys the backends still alive when the program ends, before the runtime tears down the
 * native Dawn objects: under Deno, a process that ended with devices alive aborted in about 1 of
 * 6 runs ("double free or corruption", "corrupted size vs. prev_size") after every test passed.
 */
function destroyAtExit(b: WebGpuBackend): void {
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
