/**
 * A backend that forwards the narrow Backend interface (alloc / free / write / read / run /
 * liveBuffers / sync) to another one and nothing else: no runMulti, no prefersComposite — what a
 * third-party backend may look like. Tests extend it to observe calls (e.g. record allocations).
 */
import type { Backend, BufferHandle, DType, HostArray, KernelArg, PrimName, PrimParams } from "../../packages/tensor/src/index.ts";

export class DelegatingBackend implements Backend {
  readonly name: string = "delegating";
  constructor(readonly inner: Backend) {}
  alloc(size: number, dtype: DType): BufferHandle {
    return this.inner.alloc(size, dtype);
  }
  free(buf: BufferHandle): void {
    this.inner.free(buf);
  }
  write(buf: BufferHandle, data: HostArray): void {
    this.inner.write(buf, data);
  }
  read(buf: BufferHandle): Promise<HostArray> {
    return this.inner.read(buf);
  }
  run<K extends PrimName>(prim: K, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[K]): void {
    this.inner.run(prim, inputs, output, params);
  }
  liveBuffers(): number {
    return this.inner.liveBuffers();
  }
  sync(): Promise<void> {
    return this.inner.sync();
  }
}
