/**
 * The WebGPU backend's command encoding (see backend.ts, whose run() only encodes): dispatches
 * accumulate in one compute pass of one command encoder and are submitted in batches (at most
 * MAX_BATCH dispatches, or when a read, a sync or a write to a buffer the batch uses needs it),
 * because every submit/wait has a fixed cost (about 11 ms per wait on Deno's own WebGPU). After the
 * GPU went idle (a read or a sync waited for it) the batches ramp up from RAMP_BATCH dispatches,
 * doubling, so that the GPU starts early. Each dispatch's params go into one uniform buffer per
 * batch, at 256-byte slots, uploaded with a single writeBuffer just before the submit; a small host
 * write to a buffer the batch uses is staged in an upload buffer and copied by a command of the
 * batch (stage). The GPU timings and per-kernel profiles (timer.ts, profiler.ts: timestamps
 * around the passes begun here) run here too, for WebGpuBackend's timeGpuPasses and
 * startProfile / stopProfile.
 */
import { readEnv } from "../env.ts";
import type { HostArray } from "../backend.ts";
import type { Launch } from "./context.ts";
import { BufferUsage } from "./flags.ts";
import type { PipelineCache } from "./pipelines.ts";
import type { GpuErrors } from "./errors.ts";
import { GpuProfiler, type ProfileRow } from "./profiler.ts";
import type { GpuTimer, PassTimes } from "./timer.ts";

const MAX_BATCH = 128; // dispatches per submit (the default of WebGpuOptions.maxBatch)
const RAMP_BATCH = 16; // the first submit's dispatches after an idle GPU (WebGpuOptions.rampBatch)
const SLOT = 256; // params slot alignment (minUniformBufferOffsetAlignment is at most 256)
const PARAMS_PER_DISPATCH = 4 * SLOT; // params bytes a batch holds per dispatch (slots of 256 bytes)
/**
 * Bytes of host writes a batch can stage (see stage): a write to a buffer that the unsubmitted
 * batch uses goes through this upload buffer and a copy command in the batch, instead of forcing
 * a submit (a training step's scalar constants land in buffers the same batch used a moment ago:
 * 30–40 forced submits a step, at ~0.4 ms of host time each).
 */
const UPLOAD_BYTES = 1 << 20;

/** One backend's batch being encoded, and the submits. */
export class BatchEncoder {
  readonly device: GPUDevice;
  readonly #pipelines: PipelineCache;
  readonly #errors: GpuErrors;
  readonly #maxStorageBuffers: number;
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
  /** Timestamps around each pass while a timing runs (set by the backend where the device has 'timestamp-query'). */
  timer: GpuTimer | null = null;
  /** The per-kernel profile being recorded (startProfile): one pass per dispatch. */
  #profiler: GpuProfiler | null = null;
  /** With a detailed profile: the primitive and argument shapes of the run being encoded. */
  profileOp: string | null = null;
  profileDetail = false;

  constructor(device: GPUDevice, pipelines: PipelineCache, errors: GpuErrors, maxStorageBuffers: number, opts: { maxBatch?: number; rampBatch?: number }) {
    this.device = device;
    this.#pipelines = pipelines;
    this.#errors = errors;
    this.#maxStorageBuffers = maxStorageBuffers;
    const U = BufferUsage;
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
  }

  /** The batch being encoded: 1, then one more after each submit (what BufInfo.lastUse records). */
  get batch(): number {
    return this.#batch;
  }

  /** The GPU has run everything submitted (a read or a sync waited for it): the next submit comes soon. */
  idle(): void {
    this.#batchLimit = this.#rampBatch;
  }

  /** Destroys `b` after the next submit (the unsubmitted batch may still use it). */
  retire(b: GPUBuffer): void {
    this.#retired.push(b);
  }

  /**
   * Stages a host write into `g` at byte `offset` behind the batch's work: the bytes go into the
   * upload buffer, and a copy command of the batch moves them; false (nothing done) when the upload
   * buffer has no room left for them.
   */
  stage(g: GPUBuffer, offset: number, data: HostArray): boolean {
    const bytes = data.byteLength; // a multiple of 4 (f32 / i32), as copyBufferToBuffer needs
    if (this.#uploadUsed + bytes <= UPLOAD_BYTES) {
      this.#uploadHost.set(new Uint8Array(data.buffer, data.byteOffset, bytes), this.#uploadUsed);
      this.endPass();
      this.encoderOrNew().copyBufferToBuffer(this.#upload, this.#uploadUsed, g, offset, bytes);
      this.#uploadUsed += bytes;
      return true;
    }
    return false;
  }

  /** The batch's command encoder (made on first use after a submit). */
  encoderOrNew(): GPUCommandEncoder {
    if (!this.#encoder) this.#encoder = this.device.createCommandEncoder();
    return this.#encoder;
  }

  /** Ends the open compute pass, if any (before a copy command, or the submit). */
  endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
      this.#passPipeline = null;
    }
  }

  /** Encodes one launch (GpuCtx.dispatch): its params slot, bind group and dispatch; submits first where the batch is full. */
  dispatch(l: Launch): void {
    if (l.buffers.length > this.#maxStorageBuffers) {
      throw new Error(`webgpu.${l.label}: ${l.buffers.length} storage buffers, over this device's maxStorageBuffersPerShaderStage (${this.#maxStorageBuffers})`);
    }
    const p = this.#pipelines.pipeline(l);
    if (l.buffers.length !== p.storage) {
      throw new Error(`webgpu.${l.label}: pipeline "${l.key}" declares ${p.storage} storage buffers, the launch binds ${l.buffers.length}`);
    }
    // whole 256-byte slots: a shader may declare a few more param words than it is given
    const pBytes = Math.max(1, Math.ceil(l.params.byteLength / SLOT)) * SLOT;
    if (this.#paramsUsed + pBytes > this.#paramsBytes || this.#dispatches >= this.#batchLimit) {
      this.flush();
      this.#batchLimit = Math.min(this.#maxBatch, 2 * this.#batchLimit);
    }
    const offset = this.#paramsUsed;
    const w0 = offset >> 2, words = this.#paramsWords;
    words.fill(0, w0 + l.params.length, w0 + (pBytes >> 2));
    words.set(l.params, w0);
    this.#paramsUsed += pBytes;
    const bindGroup = this.#pipelines.bindGroup(p, pBytes, l.buffers, this.#batch, this.#params);
    if (this.#profiler) {
      this.endPass();
      this.#pass = this.encoderOrNew().beginComputePass(this.#profiler.passDescriptor(this.profileDetail ? `${l.key} | ${this.profileOp ?? "?"}` : l.key));
    }
    let pass = this.#pass;
    if (!pass) pass = this.#pass = this.encoderOrNew().beginComputePass(this.timer?.passDescriptor());
    if (this.#passPipeline !== p.pipeline) {
      pass.setPipeline(p.pipeline);
      this.#passPipeline = p.pipeline;
    }
    pass.setBindGroup(0, bindGroup, [offset]);
    pass.dispatchWorkgroups(l.groups[0], l.groups[1], l.groups[2]);
    this.#dispatches++;
  }

  /** Submits the batch (its params and staged writes uploaded first) and destroys the buffers retired during it. */
  flush(): void {
    if (!this.#encoder) return;
    this.endPass();
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

  /** See WebGpuBackend.timeGpuPasses. */
  async timeGpuPasses(fn: () => void): Promise<PassTimes | null> {
    const timer = this.timer;
    if (!timer) return null;
    this.flush();
    timer.start();
    try {
      fn();
      this.endPass();
      const enc = this.encoderOrNew();
      timer.resolve(enc);
      this.flush();
    } finally {
      timer.stop();
    }
    const times = await timer.read();
    await this.#errors.check();
    return times;
  }

  /** See WebGpuBackend.startProfile. */
  startProfile(opts: { detail?: boolean } = {}): boolean {
    if (!this.device.features.has("timestamp-query")) return false;
    this.flush();
    this.#profiler = new GpuProfiler(this.device);
    this.profileDetail = opts.detail ?? false;
    return true;
  }

  /** See WebGpuBackend.stopProfile. */
  async stopProfile(): Promise<ProfileRow[]> {
    const p = this.#profiler;
    if (!p) return [];
    this.endPass();
    p.resolve(this.encoderOrNew());
    this.flush();
    this.#profiler = null;
    this.profileDetail = false;
    const rows = await p.report();
    await this.#errors.check();
    return rows;
  }

  /** Destroys the params and upload buffers, the timer's and the retired buffers (the backend is destroyed). */
  destroy(): void {
    this.#params.destroy();
    this.#upload.destroy();
    this.timer?.destroy();
    for (const b of this.#retired) b.destroy();
    this.#retired = [];
  }
}
