/**
 * The WebGPU backend: the narrow Backend interface (alloc / free / write / read / run / sync) over
 * one GPUDevice, from navigator.gpu (browsers, Deno) or Dawn (Node, Bun, Deno via Node-API).
 *
 * - Kernels (./kernels) generate WGSL per shape class; pipelines are cached by key (./pipelines.ts,
 *   with the bind groups).
 * - run() only encodes: dispatches accumulate in one compute pass of one command encoder and are
 *   submitted in batches, ramping up after the GPU went idle, with each dispatch's params in one
 *   uniform buffer per batch (./encoder.ts says how and why; the GPU timings and profiles run
 *   there too).
 * - Buffers come from a pool by size class (./pool.ts); a logical tensor buffer is one pooled
 *   GPUBuffer, or a view of a slab shared by an allocGroup's tensors (./buffers.ts). liveBuffers()
 *   counts the logical buffers alloc'd and not freed (not the pool).
 * - Reads are async only: copy into a pooled MAP_READ staging buffer, submit, mapAsync.
 * - WebGPU reports errors asynchronously: validation errors (a bad shader, a bad binding) are
 *   collected (./errors.ts) and thrown by the next read() or sync().
 * - The options, the limits the kernels see and the destroy-at-exit of live backends: ./device.ts.
 */
import type { AllocHint, Backend, BufferHandle, HostArray, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { showShape, sizeOf } from "../shape.ts";
import type { BufRef, GpuCtx, GpuLimits } from "./context.ts";
import { gpuKernels, gpuMultiKernels, type GpuKernel } from "./kernels/index.ts";
import { dropInverseIndices, forgetInverseIndices } from "./kernels/indexed.ts";
import { BufferPool, type PoolStats } from "./pool.ts";
import { acquireGpu, type AcquiredGpu } from "./probe.ts";
import { dawnWaitStarts } from "./dawn-poll.ts";
import { GpuTimer, type PassTimes } from "./timer.ts";
import { describeRun, type ProfileRow } from "./profiler.ts";
import { BufferUsage, MapMode } from "./flags.ts";
import { GpuBuffer, type Slab, slabSpan, WholeRef } from "./buffers.ts";
import { backendLimits, destroyAtExit, liveBackends, type WebGpuOptions } from "./device.ts";
import { BatchEncoder } from "./encoder.ts";
import { GpuErrors } from "./errors.ts";
import { PipelineCache } from "./pipelines.ts";

export type { WebGpuOptions } from "./device.ts";

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
  readonly #errors = new GpuErrors();
  /** Pipelines, bind groups and the records of the pooled buffers (see pipelines.ts). */
  readonly #cache: PipelineCache;
  /** The batch being encoded and its submits (see encoder.ts). */
  readonly #enc: BatchEncoder;
  #destroyed = false;
  #onError: (ev: Event) => void;
  readonly ctx: GpuCtx;

  constructor(gpu: AcquiredGpu, opts: WebGpuOptions = {}) {
    this.device = gpu.device;
    this.acquired = gpu;
    this.adapterInfo = gpu.adapterInfo;
    this.via = gpu.via;
    this.keepAlive = gpu.keepAlive;
    this.#ownsDevice = !opts.gpu;
    this.limits = backendLimits(this.device, opts);
    const cap = opts.poolBytes ?? 2 ** 30;
    const U = BufferUsage;
    this.#pool = new BufferPool(this.device, U.STORAGE | U.COPY_SRC | U.COPY_DST, cap, "tensor");
    this.#staging = new BufferPool(this.device, U.MAP_READ | U.COPY_DST, Math.min(cap, 2 ** 28), "staging");
    this.#cache = new PipelineCache(this.device, this.#errors);
    this.#enc = new BatchEncoder(this.device, this.#cache, this.#errors, this.limits.maxStorageBuffersPerShaderStage, opts);
    this.#onError = (ev: Event) => this.#errors.push(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error?.message ?? String(ev)}`);
    this.device.addEventListener("uncapturederror", this.#onError);
    if (this.device.features.has("timestamp-query")) this.#enc.timer = new GpuTimer(this.device);
    this.ctx = {
      limits: this.limits,
      software: this.adapterInfo.includes("[fallback adapter]"),
      subgroupMinSize: gpu.subgroupMinSize ?? 0,
      ref: (a, prim) => this.#ref(a, prim),
      range: (a, start, count) => this.#range(a, start, count),
      view: (a, prim) => this.#view(a, prim),
      temp: (bytes) => ({ buf: this.#pool.acquire(Math.max(16, bytes)), offset: 0, size: Math.max(4, bytes) }),
      releaseTemp: (r) => this.#release(r.buf),
      dispatch: (l) => this.#enc.dispatch(l),
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
    if (this.#cache.info(g)?.lastUse === this.#enc.batch) {
      if (this.#enc.stage(g, b.offset, data)) return;
      this.#enc.flush();
    }
    this.device.queue.writeBuffer(g, b.offset, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(buf: BufferHandle): Promise<HostArray> {
    const g = this.#gpu(buf, "read");
    const b = buf as GpuBuffer;
    const bytes = b.size * 4;
    if (bytes === 0) {
      this.#enc.flush();
      await this.#errors.check();
      return b.dtype === "f32" ? new Float32Array(0) : new Int32Array(0);
    }
    const staging = this.#staging.acquire(bytes);
    this.#enc.endPass();
    this.#enc.encoderOrNew().copyBufferToBuffer(g, b.offset, staging, 0, bytes);
    this.#enc.flush();
    dawnWaitStarts();
    try {
      await staging.mapAsync(MapMode.READ, 0, bytes);
    } catch (e) {
      await this.#errors.check();
      throw e;
    }
    this.#enc.idle(); // the GPU has run everything submitted: start it soon
    const src = staging.getMappedRange(0, bytes);
    const out = b.dtype === "f32" ? new Float32Array(b.size) : new Int32Array(b.size);
    out.set(b.dtype === "f32" ? new Float32Array(src) : new Int32Array(src));
    staging.unmap();
    for (const d of this.#staging.release(staging)) d.destroy(); // staging buffers: no queued work uses them
    await this.#errors.check();
    return out;
  }

  liveBuffers(): number {
    return this.#live;
  }

  async sync(): Promise<void> {
    this.#alive();
    this.#enc.flush();
    dawnWaitStarts();
    await this.device.queue.onSubmittedWorkDone();
    this.#enc.idle();
    await this.#errors.check();
  }

  /** Pool counters (buffers created vs reused). */
  poolStats(): { tensor: PoolStats; staging: PoolStats; pipelines: number; bindGroups: { hits: number; misses: number } } {
    return { tensor: { ...this.#pool.stats }, staging: { ...this.#staging.stats }, ...this.#cache.stats() };
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
    if (this.#enc.profileDetail) this.#enc.profileOp = describeRun(prim, inputs, [output], params);
    (gpuKernels[prim] as GpuKernel<K>)(this.ctx, inputs, output, params);
  }

  runMulti<K extends MultiPrimName>(prim: K, inputs: readonly KernelArg[], outputs: readonly KernelArg[], params: MultiPrimParams[K]): void {
    this.#alive();
    this.#checkSizes(prim, inputs);
    this.#checkSizes(prim, outputs);
    if (outputs.every((o) => (o.buf as GpuBuffer).size === 0)) return; // sizes checked just above
    if (this.#enc.profileDetail) this.#enc.profileOp = describeRun(prim, inputs, outputs, params);
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
    return await this.#enc.timeGpuPasses(fn);
  }

  /**
   * Starts a per-kernel profile (timestamp queries around every dispatch: see profiler.ts); false
   * when the device has no 'timestamp-query'. `detail`: each row is a kernel *and* the primitive
   * call that launched it, with its argument shapes ("matmul:… | matmul [16384,256]·[256,64]ᵀ→…"),
   * to find which call of a kernel costs what (more rows; same timing).
   */
  startProfile(opts: { detail?: boolean } = {}): boolean {
    return this.#enc.startProfile(opts);
  }

  /** Ends the profile: GPU time per kernel (its pipeline key), largest first. */
  async stopProfile(): Promise<ProfileRow[]> {
    return await this.#enc.stopProfile();
  }

  /** Submits pending work, destroys the pooled buffers and (unless it was given one) the device. */
  destroy(): void {
    liveBackends.delete(this);
    if (this.#destroyed) return;
    this.#enc.flush();
    dropInverseIndices(this.ctx); // their scratch back to the pool, destroyed just below
    this.#destroyed = true;
    this.#cache.clear();
    this.#pool.clear();
    this.#staging.clear();
    this.#enc.destroy();
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
      if (this.#cache.info(d)?.lastUse === this.#enc.batch) this.#enc.retire(d);
      else d.destroy();
    }
  }

  #ref(a: KernelArg, prim: string): BufRef {
    const g = this.#gpu(a.buf, prim);
    const bytes = sizeOf(a.shape) * 4;
    const b = a.buf as GpuBuffer;
    const whole = b.whole;
    // the cached binding, where it binds the same bytes (it is made below once the checks passed)
    if (whole !== null && whole.owner === this.#cache && whole.buf === g && whole.size === Math.max(4, bytes)) return whole;
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new RangeError(
        `webgpu.${prim}: a ${a.dtype} tensor of shape ${showShape(a.shape)} (${bytes} bytes) exceeds this device's ` +
          `maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize} bytes); only flat elementwise ops ` +
          `(fill, unary, and binary/compare/where/cast on same-shape or scalar operands) split such tensors`,
      );
    }
    const size = Math.max(4, bytes);
    const info = this.#cache.infoOf(g);
    const ref = new WholeRef(g, b.offset, size, info, `|${info.id}:${b.offset}:${size}`, this.#cache);
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
