/**
 * GPU timing with timestamp queries (only on devices with 'timestamp-query'): while started,
 * every compute pass the backend begins writes a timestamp at its start and its end; read()
 * returns the summed pass durations (the GPU's busy time) and the span from the first pass's start
 * to the last pass's end, in milliseconds: where the span is longer, the GPU waited between
 * passes (for the host's next submit).
 */
import { BufferUsage, MapMode } from "./flags.ts";
const MAX_PASSES = 256;

/** What a timing measured: the passes' summed durations, the first start to the last end, the pass count. */
export interface PassTimes {
  busyMs: number;
  spanMs: number;
  passes: number;
}

export class GpuTimer {
  readonly #qs: GPUQuerySet;
  readonly #resolveBuf: GPUBuffer;
  readonly #readBuf: GPUBuffer;
  #active = false;
  #passes = 0;

  constructor(device: GPUDevice) {
    this.#qs = device.createQuerySet({ type: "timestamp", count: 2 * MAX_PASSES });
    const bytes = 2 * MAX_PASSES * 8;
    this.#resolveBuf = device.createBuffer({ size: bytes, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
    this.#readBuf = device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  }

  start(): void {
    this.#active = true;
    this.#passes = 0;
  }

  stop(): void {
    this.#active = false;
  }

  /** The descriptor for the next compute pass (timestamp writes while active). */
  passDescriptor(): GPUComputePassDescriptor | undefined {
    if (!this.#active) return undefined;
    if (this.#passes >= MAX_PASSES) throw new Error(`GpuTimer: more than ${MAX_PASSES} compute passes in one timing`);
    const i = this.#passes++;
    return { timestampWrites: { querySet: this.#qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** Encodes the copy of the recorded timestamps (call after the last timed pass ended). */
  resolve(enc: GPUCommandEncoder): void {
    if (this.#passes === 0) return;
    enc.resolveQuerySet(this.#qs, 0, 2 * this.#passes, this.#resolveBuf, 0);
    enc.copyBufferToBuffer(this.#resolveBuf, 0, this.#readBuf, 0, 2 * this.#passes * 8);
  }

  async read(): Promise<PassTimes> {
    const n = this.#passes;
    if (n === 0) return { busyMs: 0, spanMs: 0, passes: 0 };
    await this.#readBuf.mapAsync(MapMode.READ, 0, 2 * n * 8);
    const t = new BigInt64Array(this.#readBuf.getMappedRange(0, 2 * n * 8).slice(0));
    this.#readBuf.unmap();
    let ns = 0;
    for (let i = 0; i < n; i++) ns += Number(t[2 * i + 1] - t[2 * i]);
    return { busyMs: ns / 1e6, spanMs: Number(t[2 * n - 1] - t[0]) / 1e6, passes: n };
  }

  destroy(): void {
    this.#qs.destroy();
    this.#resolveBuf.destroy();
    this.#readBuf.destroy();
  }
}
