/**
 * The WebGPU backend's pipeline and bind-group caches (see backend.ts): one compute pipeline per
 * launch key, compiled on first use, and bind groups by pipeline, params size and buffer ranges;
 * with them the record of each pooled GPUBuffer that a bind group names (BufInfo: its id for
 * bind-group keys and the batch that last bound it).
 */
import type { BufRef, Launch } from "./context.ts";
import { type BufInfo, WholeRef } from "./buffers.ts";
import type { GpuErrors } from "./errors.ts";
import { ShaderStage } from "./flags.ts";

/** Bind groups kept (see bindGroup); a training step of the small model binds a few thousand. */
const BIND_GROUP_CACHE = 16384;

export interface CachedPipeline {
  pipeline: GPUComputePipeline;
  bgl: GPUBindGroupLayout;
  /** Small integer id for bind-group keys. */
  id: number;
  /** Storage bindings the WGSL declares (bindings 1..storage). */
  storage: number;
}

/** One backend's pipelines, bind groups and buffer records (see BufInfo). */
export class PipelineCache {
  readonly device: GPUDevice;
  readonly #errors: GpuErrors;
  #pipelines = new Map<string, CachedPipeline>();
  /** Bind groups by pipeline, params size and buffer ranges (see bindGroup). */
  #bindGroups = new Map<string, GPUBindGroup>();
  /** Per pooled GPUBuffer: its id for bind-group keys and the batch that last bound it (see BufInfo). */
  #bufInfo = new WeakMap<GPUBuffer, BufInfo>();
  #bgStats = { hits: 0, misses: 0 };
  #nextBufferId = 1;

  constructor(device: GPUDevice, errors: GpuErrors) {
    this.device = device;
    this.#errors = errors;
  }

  /** Compiled pipelines, and the bind-group cache's hits and misses (WebGpuBackend.poolStats). */
  stats(): { pipelines: number; bindGroups: { hits: number; misses: number } } {
    return { pipelines: this.#pipelines.size, bindGroups: { ...this.#bgStats } };
  }

  /** The record of `b` (undefined where no launch has bound it yet). */
  info(b: GPUBuffer): BufInfo | undefined {
    return this.#bufInfo.get(b);
  }

  /** Drops every cached bind group (the backend is destroyed). */
  clear(): void {
    this.#bindGroups.clear();
  }

  /**
   * The cached pipeline of a launch's key (compiled on first use). Its layout is explicit — the
   * params uniform with a dynamic offset, then one storage binding per declared buffer, read-only
   * or read-write as the WGSL declares it — so one bind group serves every dispatch that binds
   * the same buffers, whatever its params slot (see bindGroup).
   */
  pipeline(l: Launch): CachedPipeline {
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
    this.#errors.pending(
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

  /** The record of `b`, made on first use. */
  infoOf(b: GPUBuffer): BufInfo {
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
   * whole when it grows past BIND_GROUP_CACHE entries. Also marks each buffer as used by `batch`,
   * the batch being encoded (one BufInfo per buffer serves both). Binding 0 is `params`, the
   * batch's params uniform (see encoder.ts).
   */
  bindGroup(p: CachedPipeline, pBytes: number, buffers: readonly BufRef[], batch: number, params: GPUBuffer): GPUBindGroup {
    let key = p.id + "|" + pBytes;
    for (let i = 0; i < buffers.length; i++) {
      const r = buffers[i];
      if (r instanceof WholeRef && r.owner === this) {
        r.info.lastUse = batch;
        key += r.key;
      } else {
        const info = this.infoOf(r.buf);
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
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: params, offset: 0, size: pBytes } }];
    buffers.forEach((r, i) => entries.push({ binding: i + 1, resource: { buffer: r.buf, offset: r.offset, size: r.size } }));
    g = this.device.createBindGroup({ layout: p.bgl, entries });
    if (this.#bindGroups.size >= BIND_GROUP_CACHE) this.#bindGroups.clear();
    this.#bindGroups.set(key, g);
    return g;
  }
}
