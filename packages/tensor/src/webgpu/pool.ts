/**
 * A pool of GPU buffers by size class. Creating a GPUBuffer costs far more than a kernel launch
 * on every implementation (and Dawn zero-fills it), so freed buffers are kept and reused.
 *
 * Size classes: 256 bytes, then four classes per power of two (at most 25% waste). A request
 * whose class has no free buffer, where a new one would take the pool past its limit, takes the
 * smallest free one of a class up to twice its own instead. Buffers go back to the pool until it
 * holds max(`capBytes`, poolTuning.keepFactor × the peak in use); beyond that, stale free
 * buffers (unused for STALE_ACQUIRES acquires) are destroyed to make room, else the released one
 * is (after the batch that may still use them has been submitted: release hands them to the
 * caller).
 *
 * Why: a chunked forward of 60K tokens in 16K chunks ends with a 12K chunk whose sizes are other
 * classes, and a forward in 8K chunks after it needs other classes again. With exact classes
 * only and nothing evicted but the released buffer, the pool stayed full of classes no longer
 * asked for and every chunk created and destroyed buffers (and so bind groups): on an H200,
 * MemMamba's 256K forward in 8K chunks took 0.95 s after a 16K-chunk forward against 0.36 s in a
 * fresh process (776 buffers and 8,333 bind groups created per forward, against 1 and 6).
 * Evicting whatever was released longest ago instead thrashed a repeated computation whose
 * buffers did not all fit: each run re-created the ones it was about to ask for.
 */

export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = Math.max(256, p / 4);
  return Math.ceil(bytes / step) * step;
}

/**
 * Pool knob (benchmarks vary it): keep freed buffers up to max(capBytes, keepFactor × the most
 * bytes ever in use at once). A training step's mix of sizes leaves some size classes short while
 * others sit free, so at exactly the peak in use the pool destroyed and re-created buffers every
 * step. On an H200, 8 × 2048 tokens of the small MemMamba: 319 buffers re-created a step at 1,
 * none at 1.5, and the bind groups created a step fell from 3,250 to 565 (the same buffers in the
 * same roles again). Serving a request from a larger free class instead did not help
 * (train-throughput --pool-keep; results/gpu/issue5-11-h200/pool-*).
 */
export const poolTuning = { keepFactor: 1.5 };

/**
 * Acquires after which a free buffer is stale (evicted, when the pool is full, to make room for
 * one being released): longer than a repeated computation's cycle (a MemMamba training step of
 * the small preset binds about 1,400 launches' buffers), shorter than a few chunks of a long
 * forward.
 */
export const STALE_ACQUIRES = 4096;

export interface PoolStats {
  created: number;
  reused: number;
  pooledBytes: number;
  /** Bytes of buffers handed out by acquire and not yet released (size classes, temps included). */
  inUseBytes: number;
  /** High-water mark of inUseBytes since creation or the last resetPeak (benchmarks' peak memory). */
  peakInUseBytes: number;
}

/** What the pool records of a buffer it created. */
interface BufInfo {
  /** Bytes (the size class it was created for). */
  size: number;
  /** Creation order (free lists hand out the earliest first). */
  order: number;
  /** 1: long-lived (see acquire), 0: the rest. */
  tag: number;
}

export class BufferPool {
  /**
   * Free buffers per size class and tag (key: size · 2 + tag), by creation order, latest first
   * (acquire pops the earliest). Tag 1: long-lived tensors (see AllocHint); 0: the rest.
   */
  readonly #free = new Map<number, GPUBuffer[]>();
  /** The free buffers in the order they were released, oldest first, with #acquires then. */
  readonly #released = new Map<GPUBuffer, number>();
  /** Acquires so far: the pool's clock (a free buffer's idle time is counted in them). */
  #acquires = 0;
  /**
   * Each buffer this pool created: its size, creation order and tag, kept on the JavaScript side
   * (a GPUBuffer's `size` and the device's `limits` are native getters: reading them on every
   * acquire and release cost about a third of the pool's time per launch).
   */
  readonly #info = new WeakMap<GPUBuffer, BufInfo>();
  #created = 0;
  readonly #maxBufferSize: number;
  /** The most bytes ever in use at once (never reset: the pool's keep limit). */
  #highWater = 0;
  #pooledBytes = 0;
  readonly stats: PoolStats = { created: 0, reused: 0, pooledBytes: 0, inUseBytes: 0, peakInUseBytes: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: GPUBufferUsageFlags,
    private readonly capBytes: number,
    private readonly label: string,
  ) {
    this.#maxBufferSize = device.limits.maxBufferSize;
  }

  /** A buffer's size, order and tag (a buffer this pool did not create: its size, last in order, tag 0). */
  #infoOf(b: GPUBuffer): BufInfo {
    return this.#info.get(b) ?? { size: b.size, order: Number.MAX_SAFE_INTEGER, tag: 0 };
  }

  /**
   * A buffer of at least `bytes`. `tag` 1 (long-lived: an optimizer's outputs) draws only on
   * buffers released with tag 1: they alternate between two sets, step after step, in the same
   * order, instead of taking whichever temporary of the size class is free (which changed the
   * buffers, and so the bind groups, of every parameter at every step).
   */
  acquire(bytes: number, tag = 0): GPUBuffer {
    this.#acquires++;
    let size = sizeClass(bytes);
    // near maxBufferSize the class could overshoot it: then the exact size (a class of its own)
    if (size > this.#maxBufferSize) size = Math.ceil(bytes / 16) * 16;
    let list = this.#free.get(size * 2 + tag);
    if (!list?.length && this.stats.inUseBytes + this.#pooledBytes + size > this.#limit()) {
      // a new buffer would take the pool past its limit: the smallest free class above, up to
      // twice the request's (below the limit a new buffer of the exact class: a repeated
      // computation then binds the same buffers from its second run on)
      let best = Infinity;
      for (const [key, l] of this.#free) {
        const cls = Math.floor(key / 2); // keys pass 2³¹ (no bit operations)
        if (key % 2 === tag && l.length && cls > size && cls <= 2 * size && cls < best) best = cls;
      }
      list = best < Infinity ? this.#free.get(best * 2 + tag) : undefined;
    }
    const b = list?.pop();
    let gotSize = size;
    if (b) {
      gotSize = this.#infoOf(b).size;
      this.#released.delete(b);
      this.#pooledBytes -= gotSize;
      this.stats.reused++;
      this.stats.pooledBytes = this.#pooledBytes;
    }
    const got = b ?? this.#create(size, tag);
    this.stats.inUseBytes += gotSize;
    if (this.stats.inUseBytes > this.stats.peakInUseBytes) this.stats.peakInUseBytes = this.stats.inUseBytes;
    if (this.stats.inUseBytes > this.#highWater) this.#highWater = this.stats.inUseBytes;
    return got;
  }

  /** The bytes the pool keeps: max(capBytes, keepFactor × the most ever in use at once). */
  #limit(): number {
    return Math.max(this.capBytes, poolTuning.keepFactor * this.#highWater);
  }

  #create(size: number, tag: number): GPUBuffer {
    this.stats.created++;
    const nb = this.device.createBuffer({ label: `${this.label} ${size}B`, size, usage: this.usage });
    this.#info.set(nb, { size, order: this.#created++, tag });
    return nb;
  }

  /**
   * Returns a buffer to the pool. Returns the buffers to destroy (the caller does, once no
   * queued work uses them): stale ones that made room for it, and `b` itself where there is
   * still no room.
   */
  release(b: GPUBuffer): GPUBuffer[] {
    const info = this.#infoOf(b);
    const bSize = info.size;
    this.stats.inUseBytes -= bSize; // back from its user, whether pooled or destroyed
    // keep up to capBytes, or keepFactor × as much as was ever in use at once: a training step that needs
    // more than the cap (8×2048 tokens of the small MemMamba: several GiB) would otherwise
    // destroy buffers at every step and create them again at the next, and Dawn's createBuffer
    // and lazy zero-fill then cost more host time than the kernels' GPU time (and with the
    // size classes' mix, exactly the peak in use was not enough: see poolTuning)
    const limit = this.#limit();
    if (bSize > limit) return [b];
    const evicted: GPUBuffer[] = [];
    for (const [old, at] of this.#released) {
      if (this.#pooledBytes + bSize <= limit || this.#acquires - at <= STALE_ACQUIRES) break;
      const oi = this.#infoOf(old);
      const l = this.#free.get(oi.size * 2 + oi.tag)!;
      l.splice(l.indexOf(old), 1);
      this.#released.delete(old);
      this.#pooledBytes -= oi.size;
      evicted.push(old);
    }
    this.stats.pooledBytes = this.#pooledBytes;
    if (this.#pooledBytes + bSize > limit) {
      evicted.push(b);
      return evicted;
    }
    const key = bSize * 2 + info.tag;
    let list = this.#free.get(key);
    if (!list) this.#free.set(key, (list = []));
    // Keep each list sorted so that acquire always hands out the earliest-created free buffer:
    // then a repeated computation (a training step) binds the same buffers in the same roles
    // from one repetition to the next, and the backend's bind-group cache hits. (A plain stack
    // permuted the buffers between steps: 3% of bind groups were reused.)
    const o = info.order;
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#infoOf(list[mid]).order > o) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, b);
    this.#released.set(b, this.#acquires);
    this.#pooledBytes += bSize;
    this.stats.pooledBytes = this.#pooledBytes;
    return evicted;
  }

  /** Restarts the high-water mark from the bytes in use now. */
  resetPeak(): void {
    this.stats.peakInUseBytes = this.stats.inUseBytes;
  }

  /** Destroys every pooled buffer. */
  clear(): void {
    for (const list of this.#free.values()) for (const b of list) b.destroy();
    this.#free.clear();
    this.#released.clear();
    this.#pooledBytes = 0;
    this.stats.pooledBytes = 0;
  }
}
