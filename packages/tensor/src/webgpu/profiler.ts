/**
 * Per-kernel GPU time: while a profile runs, every dispatch gets its own compute pass with
 * timestamp writes at its start and end, and the pipeline key of the kernel that ran (e.g.
 * "matmul:128x128x32/8x8:…", "scatterAdd:rank"). Reading the
 * profile sums the durations per kernel. Meant for finding where a training step's time goes
 * (one pass per dispatch costs a little, so profiled totals run somewhat above unprofiled ones).
 *
 * Query sets fill up (QUERIES each), so a profile may use several; each is resolved into its own
 * buffer when the backend submits, because Backend.run is synchronous and cannot wait for a read.
 */
import { BufferUsage, MapMode } from "./flags.ts";
const QUERIES = 4096;

/** GPU time of one kernel over a profile. */
export interface ProfileRow {
  /** The kernel's pipeline key. */
  label: string;
  /** Summed GPU time (ms). */
  ms: number;
  /** Dispatches. */
  count: number;
}

interface Chunk {
  qs: GPUQuerySet;
  labels: string[];
  /** Pairs already resolved into read buffers. */
  resolved: number;
  reads: { buf: GPUBuffer; first: number; n: number }[];
}

export class GpuProfiler {
  readonly #device: GPUDevice;
  readonly #chunks: Chunk[] = [];

  constructor(device: GPUDevice) {
    this.#device = device;
  }

  /** The descriptor of the pass for one dispatch of the kernel `label` (its pipeline key). */
  passDescriptor(label: string): GPUComputePassDescriptor {
    let c = this.#chunks[this.#chunks.length - 1];
    if (!c || c.labels.length * 2 >= QUERIES) {
      c = { qs: this.#device.createQuerySet({ type: "timestamp", count: QUERIES }), labels: [], resolved: 0, reads: [] };
      this.#chunks.push(c);
    }
    const i = c.labels.length;
    c.labels.push(label);
    return { timestampWrites: { querySet: c.qs, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } };
  }

  /** Encodes the copy of every timestamp recorded since the last call (after the last pass ended). */
  resolve(enc: GPUCommandEncoder): void {
    for (const c of this.#chunks) {
      const n = c.labels.length - c.resolved;
      if (n === 0) continue;
      const bytes = 2 * n * 8;
      const U = BufferUsage;
      const res = this.#device.createBuffer({ size: bytes, usage: U.QUERY_RESOLVE | U.COPY_SRC });
      const buf = this.#device.createBuffer({ size: bytes, usage: U.MAP_READ | U.COPY_DST });
      enc.resolveQuerySet(c.qs, 2 * c.resolved, 2 * n, res, 0);
      enc.copyBufferToBuffer(res, 0, buf, 0, bytes);
      c.reads.push({ buf, first: c.resolved, n });
      c.resolved += n;
    }
  }

  /** Sums the recorded times per label (after the work was submitted), largest first, and frees the queries. */
  async report(): Promise<ProfileRow[]> {
    const rows = new Map<string, ProfileRow>();
    for (const c of this.#chunks) {
      for (const r of c.reads) {
        await r.buf.mapAsync(MapMode.READ);
        const t = new BigInt64Array(r.buf.getMappedRange().slice(0));
        r.buf.unmap();
        r.buf.destroy();
        for (let i = 0; i < r.n; i++) {
          const label = c.labels[r.first + i];
          const ns = Number(t[2 * i + 1] - t[2 * i]);
          const row = rows.get(label) ?? { label, ms: 0, count: 0 };
          // a pass whose timestamps were not written (or wrapped) reads as a huge or negative span
          if (ns >= 0 && ns < 1e11) row.ms += ns / 1e6;
          row.count++;
          rows.set(label, row);
        }
      }
      c.qs.destroy();
    }
    this.#chunks.length = 0;
    return [...rows.values()].sort((a, b) => b.ms - a.ms);
  }
}

/**
 * A primitive call as a detailed profile labels it: name, the op of an elementwise or reduce
 * call, input shapes → output shapes, and the scalar parameters that pick another code path
 * (transposes, axes, modes), e.g. `matmul [16384,256]·[256,64] → [16384,64] transB`.
 */
export function describeRun(prim: string, inputs: readonly { shape: readonly number[] }[], outputs: readonly { shape: readonly number[] }[], params: unknown): string {
  const shape = (a: { shape: readonly number[] }) => `[${a.shape.join(",")}]`;
  const flags: string[] = [];
  let op = "";
  if (params && typeof params === "object") {
    for (const [k, v] of Object.entries(params as Record<string, unknown>)) {
      if (k === "op" && typeof v === "string") op = `:${v}`;
      else if (v === true) flags.push(k);
      else if (typeof v === "string" || Number.isInteger(v)) flags.push(`${k}=${v}`); // not step sizes and the like
      else if (Array.isArray(v) && v.length <= 8 && v.every((x) => typeof x === "number")) flags.push(`${k}=[${v.join(",")}]`);
    }
  }
  const ins = inputs.length > 6 ? `${inputs.length} inputs` : inputs.map(shape).join("·"); // concat of a whole parameter tree
  return `${prim}${op} ${ins} → ${outputs.map(shape).join(",")}${flags.length ? " " + flags.join(" ") : ""}`;
}
