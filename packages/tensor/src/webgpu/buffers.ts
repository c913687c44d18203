/**
 * The WebGPU backend's records of its buffers (see backend.ts): a logical tensor buffer
 * (GpuBuffer: one pooled GPUBuffer, or a view of a slab that allocGroup shares with other
 * tensors), the record kept per pooled GPUBuffer (BufInfo) and a tensor's cached whole-buffer
 * binding (WholeRef).
 */
import type { BufferHandle } from "../backend.ts";
import type { DType } from "../dtype.ts";
import type { BufRef } from "./context.ts";

/**
 * What the backend tracks of one pooled GPUBuffer: a small integer id for bind-group keys (never
 * reused, so a destroyed buffer's cached bind groups are never hit again) and the batch that last
 * bound it (see write and #release in backend.ts). One record, so a launch does one lookup per buffer.
 */
export interface BufInfo {
  readonly id: number;
  lastUse: number;
}

/**
 * A binding of a whole tensor buffer, made once per logical buffer and reused by every launch
 * that binds it (ctx.ref is called for nearly every operand of every launch): `info` and `key`
 * save PipelineCache.bindGroup (pipelines.ts) a WeakMap lookup and a string build per buffer.
 * `owner`: the PipelineCache (one per backend) whose BufInfo and ids it holds (backends may share
 * a device: tests lower the limits of a second one).
 */
export class WholeRef implements BufRef {
  constructor(
    readonly buf: GPUBuffer, readonly offset: number, readonly size: number, readonly info: BufInfo, readonly key: string, readonly owner: object,
  ) {}
}

/**
 * One GPUBuffer shared by the tensors of an allocGroup call, each a view at its own offset; the
 * buffer goes back to the pool when the last view is freed.
 */
export interface Slab {
  readonly gpu: GPUBuffer;
  /** Bytes the views span (from 0): what a kernel binds to reach all of them. */
  readonly bytes: number;
  /** Views not yet freed. */
  refs: number;
}

export class GpuBuffer implements BufferHandle {
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
export const SLAB_ALIGN = 1024;
/** Bytes a view of `n` f32 / i32 elements takes in a slab (at least one aligned span). */
export const slabSpan = (n: number) => Math.ceil(Math.max(1, n * 4) / SLAB_ALIGN) * SLAB_ALIGN;
