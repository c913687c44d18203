/**
 * The allocator of the shared wasm memory. Only the main thread allocates; workers only read and
 * write the blocks a job names.
 *
 * Size classes: four per power of two (a block wastes at most 25%; small blocks are multiples of
 * 64 bytes), every block 64-byte aligned (a cache line; v128 needs 16); freed blocks go to their class's free list and are reused last-in first-out; a new block
 * comes from the top, growing the memory when needed (by at least a quarter of its size, so growth
 * happens O(log) times). The memory never shrinks (wasm memories cannot): the high-water mark of
 * each class is what a program keeps — steady-state training reuses the same sizes every step,
 * which this serves well. When the top would pass the memory's maximum, the free blocks are merged
 * with their free neighbours first: a run that ends at the top lowers the top, the request is cut
 * from the shortest run that holds it, and what is left is cut into blocks of the largest classes
 * that fit (a training step whose classes' high-water marks add up beyond 4 GiB, while far less is
 * live at once, used to fail here).
 */
const PAGE = 65536;
const MIN_BLOCK = 64;

/** The block size that serves `bytes`: a multiple of 64 (so every block is cache-line aligned), 4 classes per power of two. */
export function sizeClass(bytes: number): number {
  if (bytes <= MIN_BLOCK) return MIN_BLOCK;
  const e = Math.floor(Math.log2(bytes - 1)); // 2^e < bytes <= 2^(e+1)
  const step = Math.max(MIN_BLOCK, 2 ** (e - 2)); // a quarter of 2^e: 4 classes in (2^e, 2^(e+1)]
  return Math.ceil(bytes / step) * step;
}

/** The largest size class not above `bytes` (`bytes` a multiple of 64, at least 64). */
export function classAtMost(bytes: number): number {
  const c = sizeClass(bytes);
  if (c === bytes) return c;
  const e = Math.floor(Math.log2(bytes - 1));
  const step = Math.max(MIN_BLOCK, 2 ** (e - 2));
  return Math.floor(bytes / step) * step;
}

export class WasmHeap {
  readonly memory: WebAssembly.Memory;
  #top: number;
  #free = new Map<number, number[]>();
  #inUse = 0;
  #f32!: Float32Array;
  #i32!: Int32Array;
  #u8!: Uint8Array;
  #f64!: Float64Array;
  #maxBytes: number;

  /** `base`: the first byte the allocator may use (the module's __heap_base, rounded up). */
  constructor(memory: WebAssembly.Memory, base: number, maxBytes: number) {
    this.memory = memory;
    this.#top = Math.ceil(base / MIN_BLOCK) * MIN_BLOCK;
    this.#maxBytes = maxBytes;
    this.#refresh();
  }

  #refresh(): void {
    const buf = this.memory.buffer;
    this.#f32 = new Float32Array(buf);
    this.#i32 = new Int32Array(buf);
    this.#u8 = new Uint8Array(buf);
    this.#f64 = new Float64Array(buf);
  }

  /** Views of the whole memory (valid until the next alloc, which may grow it). */
  get f32(): Float32Array {
    return this.#f32;
  }
  get i32(): Int32Array {
    return this.#i32;
  }
  get u8(): Uint8Array {
    return this.#u8;
  }
  get f64(): Float64Array {
    return this.#f64;
  }

  /** A block of at least `bytes` bytes (16-byte aligned); its size class is what free() takes. */
  alloc(bytes: number): number {
    const cls = sizeClass(bytes);
    const list = this.#free.get(cls);
    this.#inUse += cls;
    if (list && list.length > 0) return list.pop()!;
    if (this.#top + cls > this.#maxBytes) {
      const q = this.#coalesce(cls);
      if (q >= 0) return q;
      if (this.#top + cls > this.#maxBytes) {
        this.#inUse -= cls;
        const gib = (n: number) => (n / 2 ** 30).toFixed(2);
        throw new RangeError(
          `wasm heap: out of memory: ${bytes} bytes asked, ${this.#inUse} in use, ${this.#freeBytes()} free in blocks too small for it, the memory's maximum is ${this.#maxBytes} bytes (${gib(this.#maxBytes)} GiB, ` +
            `a wasm32 memory's limit; the CPU backend keeps a training step's activations there: fewer tokens a micro-batch, or the WebGPU backend, fit)`,
        );
      }
    }
    const p = this.#top;
    const end = p + cls;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const want = Math.min(this.#maxBytes, Math.max(end, have + have / 4));
      this.memory.grow(Math.ceil((want - have) / PAGE));
      this.#refresh();
    }
    this.#top = end;
    return p;
  }

  /**
   * Merges every free block with its free neighbours into runs; a run that ends at the top lowers
   * the top. If the top still leaves no room for `cls` bytes below the maximum, a block of `cls`
   * is cut from the start of the shortest run that holds it (returned; -1 when none does). The
   * rest of every run goes back to the free lists as blocks of the largest classes that fit.
   */
  #coalesce(cls: number): number {
    const blocks: number[][] = [];
    for (const [size, list] of this.#free) for (const p of list) blocks.push([p, size]);
    this.#free.clear();
    blocks.sort((a, b) => a[0] - b[0]);
    const runs: number[][] = []; // [start, end)
    for (const [p, size] of blocks) {
      const last = runs.at(-1);
      if (last && last[1] === p) last[1] = p + size;
      else runs.push([p, p + size]);
    }
    if (runs.length && runs.at(-1)![1] === this.#top) this.#top = runs.pop()![0];
    let got = -1;
    if (this.#top + cls > this.#maxBytes) {
      let best = -1;
      for (let i = 0; i < runs.length; i++) {
        const len = runs[i][1] - runs[i][0];
        if (len >= cls && (best < 0 || len < runs[best][1] - runs[best][0])) best = i;
      }
      if (best >= 0) {
        got = runs[best][0];
        runs[best][0] += cls;
      }
    }
    for (const [start, end] of runs) {
      for (let p = start; p < end;) {
        const c = classAtMost(end - p);
        this.#pushFree(p, c);
        p += c;
      }
    }
    return got;
  }

  /** Puts a block of class `cls` on its free list. */
  #pushFree(ptr: number, cls: number): void {
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, (list = []));
    list.push(ptr);
  }

  #freeBytes(): number {
    let n = 0;
    for (const [size, list] of this.#free) n += size * list.length;
    return n;
  }

  free(ptr: number, bytes: number): void {
    const cls = sizeClass(bytes);
    this.#pushFree(ptr, cls);
    this.#inUse -= cls;
  }

  /** Bytes in blocks handed out now, and the top of the heap (the high-water mark). */
  stats(): { inUseBytes: number; topBytes: number; memoryBytes: number } {
    return { inUseBytes: this.#inUse, topBytes: this.#top, memoryBytes: this.memory.buffer.byteLength };
  }
}
