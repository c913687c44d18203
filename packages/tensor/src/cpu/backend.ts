/**
 * The CPU backend: buffers are TypedArrays, kernels are plain TypeScript loops.
 * Correct first: each kernel is the reference that faster backends are tested against.
 * All arithmetic is IEEE-exact operations plus our own deterministic elementary functions
 * (detmath.ts), so a seed gives bit-identical results under Bun (JSC) and Deno (V8).
 */
import type { Backend, BufferHandle, HostArray, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { registerBackend } from "../engine.ts";
import { sizeOf, showShape } from "../shape.ts";
import { cpuKernels, cpuMultiKernels, type CpuArg } from "./kernels.ts";

class CpuBuffer implements BufferHandle {
  constructor(readonly id: number, public data: HostArray | null) {}
}

/** The reference CPU backend: TypeScript kernels on typed arrays, bit-identical under every runtime. */
export class CpuBackend implements Backend {
  /** Always "cpu". */
  readonly name = "cpu";
  #live = 0;
  #nextId = 1;

  /** Allocates a zeroed typed array of `size` elements. */
  alloc(size: number, dtype: DType): BufferHandle {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`cpu.alloc: invalid size ${size}`);
    this.#live++;
    return new CpuBuffer(this.#nextId++, dtype === "f32" ? new Float32Array(size) : new Int32Array(size));
  }
  /** Frees a buffer (an error when it was already freed). */
  free(buf: BufferHandle): void {
    const b = buf as CpuBuffer;
    if (!b.data) throw new Error(`cpu.free: buffer ${b.id} was freed twice`);
    b.data = null;
    this.#live--;
  }
  /** Copies host data into a buffer. */
  write(buf: BufferHandle, data: HostArray): void {
    this.array(buf).set(data);
  }
  /** A copy of a buffer's elements. */
  read(buf: BufferHandle): Promise<HostArray> {
    return Promise.resolve(this.readSync(buf));
  }
  /** Synchronous read (CPU only): a copy of the buffer. */
  readSync(buf: BufferHandle): HostArray {
    return this.array(buf).slice();
  }
  /** The live array behind a buffer (no copy). */
  array(buf: BufferHandle): HostArray {
    const d = (buf as CpuBuffer).data;
    if (!d) throw new Error(`cpu: buffer ${(buf as CpuBuffer).id} was used after it was freed`);
    return d;
  }
  run<K extends PrimName>(prim: K, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[K]): void {
    const kernel = cpuKernels[prim] as (ins: CpuArg[], out: CpuArg, p: PrimParams[K]) => void;
    kernel(inputs.map((a) => this.#arg(prim, a)), this.#arg(prim, output), params);
  }
  runMulti<K extends MultiPrimName>(prim: K, inputs: readonly KernelArg[], outputs: readonly KernelArg[], params: MultiPrimParams[K]): void {
    cpuMultiKernels[prim](inputs.map((a) => this.#arg(prim, a)), outputs.map((a) => this.#arg(prim, a)), params);
  }
  /** What a kernel sees of a tensor: its live array (checked against the shape) and the shape. */
  #arg(prim: string, a: KernelArg): CpuArg {
    const data = this.array(a.buf);
    if (data.length !== sizeOf(a.shape)) throw new Error(`cpu.${prim}: buffer of ${data.length} elements for shape ${showShape(a.shape)}`);
    return { data, shape: a.shape };
  }
  liveBuffers(): number {
    return this.#live;
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }
}

registerBackend("cpu", () => new CpuBackend());
