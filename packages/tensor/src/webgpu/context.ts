/**
 * What a WebGPU kernel sees of the backend: bindings of tensors, scratch buffers, device limits and
 * `dispatch`. Kernels generate WGSL per "shape class" (rank, broadcast pattern, dtypes, tile
 * config: whatever changes the code) and pass the actual sizes and strides as uniform params, so
 * one cached pipeline serves every shape of its class.
 *
 * Conventions shared by every generated shader:
 * - binding 0 is the params uniform `prm` (an array of vec4<u32>; `pu(i)` below writes the WGSL
 *   expression that reads word i, bitcast it for f32 / i32), bindings 1..n the storage buffers
 *   in the order of `Launch.buffers`;
 * - few pipelines: each distinct one costs a shader compile, 0.1 to several seconds on a software
 *   Vulkan (lavapipe, where CI runs) with a cold cache. So ops that differ only in a formula share
 *   a shader and pick it by a uniform op code, ranks are padded to a fixed few, and loops with
 *   barriers are avoided where they are not needed for speed (see workgroupCombine);
 * - 1-D work of more than maxComputeWorkgroupsPerDimension workgroups runs on a 2-D grid
 *   (`grid()`); the shader rebuilds its linear workgroup index from `workgroup_id` and
 *   `num_workgroups` (`LINEAR_WG`) and guards the tail.
 */
import type { KernelArg } from "../backend.ts";
import type { DType } from "../dtype.ts";

/** A storage binding: a buffer range in bytes (offset a multiple of 256, size a multiple of 4). */
export interface BufRef {
  readonly buf: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

export interface Launch {
  /** The primitive (for error messages). */
  readonly label: string;
  /** Pipeline-cache key: equal keys must mean equal WGSL. */
  readonly key: string;
  /** The WGSL source, generated only on a cache miss. */
  readonly wgsl: () => string;
  /** Bindings 1..n (binding 0 is the params uniform). */
  readonly buffers: readonly BufRef[];
  /** Param words (u32 bit patterns; see ParamWords). */
  readonly params: Uint32Array;
  /** Workgroups: [x, y, z] (each at most maxComputeWorkgroupsPerDimension; use grid()). */
  readonly groups: readonly [number, number, number];
}

export interface GpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly minStorageBufferOffsetAlignment: number;
  /** Storage bindings one dispatch may use (WebGPU's default is 8). */
  readonly maxStorageBuffersPerShaderStage: number;
}

export interface GpuCtx {
  readonly limits: GpuLimits;
  /** A software (fallback) adapter, e.g. Mesa's lavapipe: the GPU runs on the CPU's cores, where fewer loads beat more threads. */
  readonly software?: boolean;
  /** The device's smallest subgroup where kernels may use subgroup operations (WGSL `enable subgroups`), else 0 or absent. */
  readonly subgroupMinSize?: number;
  /** The whole of a tensor's buffer as a binding (a clear error if it exceeds the binding limit). */
  ref(arg: KernelArg, prim: string): BufRef;
  /** A range of a tensor's buffer, in elements (start must be a multiple of 64 elements). */
  range(arg: KernelArg, start: number, count: number): BufRef;
  /**
   * The binding that reaches a tensor together with the other views of its allocGroup slab (the
   * slab from byte 0; for a tensor of its own, its ref), and the tensor's first element in it.
   * Tensors whose views have the same `ref.buf` can be updated by one launch.
   */
  view(arg: KernelArg, prim: string): { ref: BufRef; base: number };
  /** A scratch buffer valid for the launches encoded before `releaseTemp` (freed back to the pool). */
  temp(bytes: number): BufRef;
  releaseTemp(ref: BufRef): void;
  dispatch(launch: Launch): void;
}

/** Scratch for f32 → u32 bit patterns (shared: ParamWords.f copies the bits out at once). */
const F32_BITS = new Float32Array(1);
const U32_BITS = new Uint32Array(F32_BITS.buffer);

/**
 * Builds param words: u32, i32 and f32 values as bit patterns, written straight into a small
 * typed array (grown by doubling): every launch builds one, so no intermediate list.
 */
export class ParamWords {
  #w = new Uint32Array(16);
  #n = 0;
  #push(bits: number): void {
    if (this.#n === this.#w.length) {
      const grown = new Uint32Array(this.#w.length * 2);
      grown.set(this.#w);
      this.#w = grown;
    }
    this.#w[this.#n++] = bits;
  }
  u(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`webgpu: param ${v} is not a u32 (a tensor too large for 32-bit indexing?)`);
    this.#push(v);
    return this;
  }
  i(v: number): this {
    this.#push(v | 0);
    return this;
  }
  f(v: number): this {
    F32_BITS[0] = v;
    this.#push(U32_BITS[0]);
    return this;
  }
  /** f32 bits for an f32 tensor, i32 bits for an i32 one. */
  typed(v: number, dtype: DType): this {
    return dtype === "f32" ? this.f(v) : this.i(v);
  }
  get length(): number {
    return this.#n;
  }
  /**
   * The words (one zero word when there are none), a copy: slice of a small array is about 4x
   * cheaper than a subarray view under V8 (a view makes V8 move the array's storage off-heap).
   */
  words(): Uint32Array {
    return this.#w.slice(0, Math.max(1, this.#n));
  }
}

// ---------- WGSL snippets ----------

/** The WGSL expression reading param word i as u32. */
export function pu(i: number): string {
  return `prm.v[${i >> 2}].${"xyzw"[i & 3]}`;
}

export interface StorageDecl {
  name: string;
  /** Element type: f32, i32, u32, vec4<f32>… */
  type: string;
  write?: boolean;
}

/** The params uniform (sized for `nWords`) and storage buffers, bindings 0..n. */
export function header(nWords: number, bufs: readonly StorageDecl[]): string {
  const n = Math.max(1, Math.ceil(nWords / 4));
  const lines = [`struct Params { v: array<vec4<u32>, ${n}> }`, `@group(0) @binding(0) var<uniform> prm: Params;`];
  bufs.forEach((b, i) => {
    lines.push(`@group(0) @binding(${i + 1}) var<storage, ${b.write ? "read_write" : "read"}> ${b.name}: array<${b.type}>;`);
  });
  return lines.join("\n") + "\n";
}

/** Entry-point builtins for kernels that use LINEAR_WG. */
export const ENTRY_ARGS =
  "@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32";
/** The linear workgroup index over a 2-D grid. */
export const LINEAR_WG = "let wg = wid.x + wid.y * nwg.x;";

/** A grid of workgroups for `n` linear workgroups that fits the per-dimension limit (2-D when needed). */
export function grid(n: number, maxDim: number): [number, number, number] {
  if (n <= maxDim) return [Math.max(1, n), 1, 1];
  const y = Math.ceil(n / maxDim);
  if (y > maxDim) throw new RangeError(`webgpu: ${n} workgroups do not fit a ${maxDim}x${maxDim} grid`);
  return [Math.ceil(n / y), y, 1];
}

export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

// Row-major strides (`strides`) and element counts (`prod`) of a shape: the run-time shape rules'
// own functions under the names the kernels use, so every backend computes them one way.
export { sizeOf as prod, stridesOf as strides } from "../shape.ts";

/**
 * Merges adjacent output axes that every operand walks contiguously (stride[i] = stride[i+1] *
 * shape[i+1], including both 0), and drops size-1 axes. Returns the reduced shape and each
 * operand's strides on it. After this, most broadcasts are rank 1 or 2.
 */
export function coalesce(shape: readonly number[], opStrides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  // plain loops, no closures: elementwise maps run this on every launch
  const nOps = opStrides.length;
  const outShape: number[] = [];
  const outStr: number[][] = new Array(nOps);
  for (let k = 0; k < nOps; k++) outStr[k] = [];
  for (let d = 0; d < shape.length; d++) {
    const n = shape[d];
    if (n === 1) continue;
    const last = outShape.length - 1;
    let mergeable = last >= 0;
    for (let k = 0; k < nOps && mergeable; k++) mergeable = outStr[k][last] === opStrides[k][d] * n;
    if (mergeable) {
      outShape[last] *= n;
      for (let k = 0; k < nOps; k++) outStr[k][last] = opStrides[k][d];
    } else {
      outShape.push(n);
      for (let k = 0; k < nOps; k++) outStr[k].push(opStrides[k][d]);
    }
  }
  return { shape: outShape, strides: outStr };
}

/** Strides of `shape` broadcast to `outShape` (0 on broadcast axes), aligned on the right. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const off = outShape.length - shape.length;
  const out = new Array<number>(outShape.length);
  let acc = 1; // the row-major stride of axis i - off, built from the right
  for (let i = outShape.length - 1; i >= 0; i--) {
    if (i < off) out[i] = 0;
    else {
      const n = shape[i - off];
      out[i] = n === 1 ? 0 : acc;
      acc *= n;
    }
  }
  return out;
}

/**
 * WGSL statements that decompose the linear index `idx` over `rank` axes whose sizes are params
 * `shapeAt(d)` and accumulate, for each operand k, `off{k} += coord * stride`, with strides given
 * by `strideAt(k, d)` (a WGSL expression, or null for a zero stride). Unrolled: no local arrays.
 */
export function indexChain(
  idx: string,
  rank: number,
  shapeAt: (d: number) => string,
  nOps: number,
  strideAt: (k: number, d: number) => string | null,
  prefix = "off",
): string {
  const lines: string[] = [];
  for (let k = 0; k < nOps; k++) lines.push(`var ${prefix}${k} = 0u;`);
  if (rank === 0) return lines.join("\n");
  lines.push(`var rem = ${idx};`);
  for (let d = rank - 1; d >= 0; d--) {
    const c = `c${d}`;
    if (d === 0) lines.push(`let ${c} = rem;`);
    else lines.push(`let ${c} = rem % ${shapeAt(d)}; rem = rem / ${shapeAt(d)};`);
    for (let k = 0; k < nOps; k++) {
      const s = strideAt(k, d);
      if (s !== null) lines.push(`${prefix}${k} += ${c} * ${s};`);
    }
  }
  return lines.join("\n");
}

/**
 * WGSL: combines the `lanes` partial values sh[lane·OX + ox] of each of OX outputs into
 * sh[ox], with `combine(a, b)` an expression: after one barrier, lane 0 of each output adds
 * its lanes serially (at most 256 workgroup-memory reads, about a microsecond on a GPU). A tree
 * (log2(lanes) barriers) or any barrier in a loop costs five to ten times more to compile on
 * llvmpipe (software Vulkan, where CI runs), for no measurable gain in our kernels. The caller
 * has stored sh[lid] and defined `lane`, `ox`, `OX`, `lanes`; a barrier follows, so every
 * thread may read the results.
 */
export function workgroupCombine(combine: (a: string, b: string) => string, sh = "sh"): string {
  return `workgroupBarrier();
  if (lane == 0u) {
    var t = ${sh}[ox];
    for (var j = 1u; j < lanes; j++) { t = ${combine("t", `${sh}[j * OX + ox]`)}; }
    ${sh}[ox] = t;
  }
  workgroupBarrier();`;
}
