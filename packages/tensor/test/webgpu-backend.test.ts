/**
 * The WebGPU backend's mechanics: dispatch grids beyond 65535 workgroups, bindings split when a
 * tensor exceeds maxStorageBufferBindingSize (simulated with lowered limits on the same device),
 * zero-size tensors, buffer pooling and the live-buffer count, writes to buffers that queued work
 * still uses, clear errors, destroy(). Without a WebGPU adapter the tests print why and pass
 * (CI=true makes that a failure).
 */
import { expect, test } from "../../../test/support/harness.ts";
import { useBackend } from "../../../test/support/backends.ts";
import * as T from "../src/index.ts";
import type { Backend } from "../src/index.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../src/webgpu/backend.ts";
import { BufferPool, poolTuning, sizeClass, STALE_ACQUIRES } from "../src/webgpu/pool.ts";

async function webgpu(): Promise<WebGpuBackend | null> {
  if (!(await useBackend("webgpu"))) return null;
  return T.getBackend() as WebGpuBackend;
}

/** f on the CPU and on `b`, from the same inputs; returns both results' data. */
async function both(b: Backend, ins: Float32Array[], shapes: number[][], f: (...t: T.Tensor[]) => T.Tensor): Promise<[Float32Array, Float32Array]> {
  const out: Float32Array[] = [];
  for (const be of [T.setBackend("cpu"), b]) {
    T.setBackend(be);
    const ts = ins.map((d, i) => T.fromArray(d, shapes[i]));
    const r = T.tidy(() => f(...ts));
    out.push((await r.data()) as Float32Array);
    T.disposeTree([ts, r]);
  }
  return [out[0], out[1]];
}

function close(got: Float32Array, want: Float32Array, tol = 1e-5): string {
  if (got.length !== want.length) return `length ${got.length} vs ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) return `element ${i}: ${got[i]} vs ${want[i]}`;
  }
  return "ok";
}

const rnd = (n: number, s = 1) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + s) * 3);

test("webgpu backend: a 1-D op over more than 65535 workgroups runs on a 2-D grid", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const n = 65535 * 256 + 1000; // one more workgroup row than a 1-D grid allows
  const x = T.fromArray(rnd(n), [n]);
  const two = T.fromArray([2], []);
  const y = T.mul(x, two);
  const d = await y.data();
  const src = await x.data();
  let bad = -1;
  for (let i = 0; i < n; i += 1) if (d[i] !== src[i] * 2) { bad = i; break; }
  expect(bad).toBe(-1);
  T.disposeTree([x, two, y]);
});

test("webgpu backend: lowered limits: 2-D grids in every kernel family, split bindings, clear errors", async () => {
  const main = await webgpu();
  if (!main) return;
  // same device, limits lowered: 5 workgroups per grid dimension, 16 KiB (4096 floats) per binding
  const gpu = await createWebGpuBackend({ gpu: main.acquired, limits: { maxComputeWorkgroupsPerDimension: 5, maxStorageBufferBindingSize: 16384 } });
  try {
    // flat elementwise ops split a 10000-element tensor into bindings of 4096 (16 workgroups: 2-D)
    const n = 10000;
    let [want, got] = await both(gpu, [rnd(n), rnd(1, 2)], [[n], []], (a, b) => T.add(T.exp(T.mul(a, 0.1)), b));
    expect(close(got, want)).toBe("ok");
    // tensors whose kernels need 6 to 25 workgroups: 2-D grids
    const cases: [string, number[][], (...t: T.Tensor[]) => T.Tensor][] = [
      ["broadcast add", [[7, 300], [300]], (a, b) => T.add(a, b)],
      ["sum over a short last axis", [[300, 7]], (a) => T.sum(a, 1)],
      ["transpose", [[7, 300]], (a) => T.transpose(a)],
      ["pad", [[7, 290]], (a) => T.pad(a, [0, 3], [1, 0], 1.5)],
      ["softmax rows", [[20, 10]], (a) => T.softmax(a)],
      ["conv1dCausal", [[2, 100, 10], [10, 3]], (a, b) => T.conv1dCausal(a, b)],
      ["scan", [[1, 2, 1600], [1, 2, 1600], [1, 1600]], (a, b, c) => T.scan(a, b, c)],
      ["gather", [[10, 300]], (a) => T.gather(a, T.fromArray(Int32Array.of(3, 1, 4, 1, 5, 9, 2, 6), [8], "i32"))],
    ];
    for (const [name, shapes, f] of cases) {
      [want, got] = await both(gpu, shapes.map((s, i) => rnd(s.reduce((p, q) => p * q, 1), i)), shapes, f);
      expect(`${name}: ${close(got, want, 1e-4)}`).toBe(`${name}: ok`);
    }
    // a kernel that cannot split a tensor says so
    T.setBackend(gpu);
    const big = T.fromArray(rnd(5000), [5000, 1]);
    const one = T.fromArray([1], [1, 1]);
    expect(() => T.tidy(() => T.matmul(big, one))).toThrow(/maxStorageBufferBindingSize/);
    T.disposeTree([big, one]);
    expect(gpu.liveBuffers()).toBe(0);
  } finally {
    gpu.destroy(); // does not destroy the shared device (it was given one)
    T.setBackend(main);
  }
});

test("webgpu backend: submits ramp up from rampBatch dispatches after the GPU went idle, doubling to maxBatch; bad values refused", async () => {
  const main = await webgpu();
  if (!main) return;
  const gpu = await createWebGpuBackend({ gpu: main.acquired, maxBatch: 32, rampBatch: 4 });
  const queue = gpu.device.queue;
  const submit = queue.submit;
  let submits = 0;
  queue.submit = (cmds: Iterable<GPUCommandBuffer>) => {
    submits++;
    return submit.call(queue, cmds);
  };
  try {
    T.setBackend(gpu);
    const a = T.fromArray(rnd(64), [64]), b = T.fromArray(rnd(64, 2), [64]);
    await a.data(); // the uploads land; the GPU is idle
    const chain = async (n: number): Promise<number[]> => {
      const before = submits;
      const y = T.tidy(() => {
        let x: T.Tensor = a;
        for (let i = 0; i < n; i++) x = T.add(x, b); // one dispatch each
        return x;
      });
      const mid = submits - before;
      await y.data();
      y.dispose();
      return [mid, submits - before];
    };
    // 100 dispatches: batches of 4, 8, 16, 32, 32 submitted while encoding, the last 8 with the read
    expect(await chain(100)).toEqual([5, 6]);
    // after the read the ramp starts again: 4, then the other 6 with the read
    expect(await chain(10)).toEqual([1, 2]);
    T.disposeTree([a, b]);
    expect(gpu.liveBuffers()).toBe(0);
  } finally {
    queue.submit = submit;
    gpu.destroy();
    T.setBackend(main);
  }
  await expect(createWebGpuBackend({ gpu: main.acquired, rampBatch: 0 })).rejects.toThrow(/webgpu: rampBatch must be a positive integer, got 0/);
});

test("webgpu backend: zero-size tensors", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const before = gpu.liveBuffers();
  const e = T.fromArray([], [0, 3]);
  const outs = T.tidy(() => [
    T.add(e, T.fromArray([1, 2, 3], [3])), T.sum(e, 0), T.matmul(T.fromArray([], [2, 0]), T.fromArray([], [0, 4])), T.exp(e),
    T.transpose(e), T.concat([e, e], 0), T.pad(e, [1, 0], [0, 0], 4),
  ]);
  const data = await Promise.all(outs.map((t) => t.data()));
  expect(data.map((d) => Array.from(d))).toEqual([[], [0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [], [], [], [4, 4, 4]]);
  T.disposeTree([e, outs]);
  expect(gpu.liveBuffers()).toBe(before);
});

test("webgpu backend: freed buffers are reused; a write waits for queued work that uses the buffer", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const before = gpu.liveBuffers();
  const s0 = gpu.poolStats().tensor;
  // queue work that reads x, free x, then allocate and write a new tensor of the same size class:
  // it gets x's buffer back while the queued kernels still read it
  const results: T.Tensor[] = [];
  const want: number[] = [];
  for (let k = 0; k < 20; k++) {
    const x = T.fromArray(new Float32Array(64).fill(k), [64]);
    results.push(T.tidy(() => T.sum(T.mul(x, 2))));
    want.push(128 * k);
    x.dispose();
  }
  const got = await Promise.all(results.map((r) => r.item()));
  expect(got).toEqual(want);
  T.disposeTree(results);
  const s1 = gpu.poolStats().tensor;
  expect(s1.reused - s0.reused).toBeGreaterThan(20);
  expect(gpu.liveBuffers()).toBe(before);
});

test("webgpu backend: writes to buffers the unsubmitted batch uses: staged small ones and flushed large ones keep the order", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const before = gpu.liveBuffers();
  for (const n of [3, 64, 300_000]) { // 300K floats: over the 1 MiB upload buffer, the submit path
    const results: T.Tensor[] = [];
    const want: number[][] = [];
    for (let k = 0; k < 6; k++) {
      // queue a kernel that reads x, free x, then write a new tensor that reuses x's buffer
      const x = T.fromArray(new Float32Array(n).fill(k), [n]);
      results.push(T.tidy(() => T.mul(T.sliceAxis(x, 0, 0, 3), 2)));
      x.dispose();
      const z = T.fromArray(new Float32Array(n).fill(100 + k), [n]);
      results.push(T.tidy(() => T.add(T.sliceAxis(z, 0, 0, 3), 1)));
      z.dispose();
      want.push([2 * k, 2 * k, 2 * k].slice(0, Math.min(3, n)), [101 + k, 101 + k, 101 + k].slice(0, Math.min(3, n)));
    }
    const got = await Promise.all(results.map(async (r) => Array.from(await r.data())));
    expect(got).toEqual(want);
    T.disposeTree(results);
  }
  expect(gpu.liveBuffers()).toBe(before);
});

test("buffer pool: freed buffers are kept up to keepFactor × the peak in use; past it stale ones make room, else the released one goes (destroyed by the caller)", () => {
  // a stand-in device: the pool only creates buffers and reads maxBufferSize
  const device = { limits: { maxBufferSize: 2 ** 30 }, createBuffer: ({ size }: { size: number }) => ({ size, destroy() {} }) };
  const was = { ...poolTuning };
  try {
    for (const [factor, kept] of [[1, false], [1.5, true]] as const) {
      poolTuning.keepFactor = factor;
      const pool = new BufferPool(device as unknown as GPUDevice, 0, 0, "test");
      expect(sizeClass(1024)).toBe(1024);
      expect(sizeClass(256)).toBe(256);
      const a = pool.acquire(1024); // the peak in use: 1024 bytes
      expect(pool.release(a)).toEqual([]); // 1024 pooled ≤ factor × 1024
      const b = pool.acquire(256); // another class (a's is over twice its size): a new buffer
      expect(pool.stats.created).toBe(2);
      // 1024 + 256 pooled: over 1 × the peak (a is not stale: b goes), within 1.5 ×
      expect(pool.release(b)).toEqual(kept ? [] : [b]);
      expect(pool.stats.pooledBytes).toBe(kept ? 1280 : 1024);
      expect(pool.acquire(1000)).toBe(a);
    }
    // a buffer free for over STALE_ACQUIRES acquires makes room for one released now
    poolTuning.keepFactor = 1;
    const pool = new BufferPool(device as unknown as GPUDevice, 0, 0, "test");
    const old = pool.acquire(4096), c = pool.acquire(1024);
    expect(pool.release(old)).toEqual([]); // 4096 pooled, 1024 in use, limit 5120
    for (let i = 0; i < STALE_ACQUIRES; i++) pool.release(pool.acquire(512)); // 512s come and go
    const d = pool.acquire(1024); // a new one (old is over twice its class): 2048 in use, 4608 pooled
    expect(pool.release(c)).toEqual([old]); // old is stale: out, c kept
    expect(pool.stats.pooledBytes).toBe(512 + 1024);
    expect(pool.acquire(1024)).toBe(c);
    pool.release(d);
  } finally {
    Object.assign(poolTuning, was);
  }
});

test("buffer pool: where a new buffer would pass the limit, a request whose class is empty takes the smallest free buffer up to twice its class, and accounts its real size", () => {
  const device = { limits: { maxBufferSize: 2 ** 30 }, createBuffer: ({ size }: { size: number }) => ({ size, destroy() {} }) };
  // below the limit: a new buffer of the exact class
  const roomy = new BufferPool(device as unknown as GPUDevice, 0, 2 ** 20, "test");
  const r4 = roomy.acquire(4096);
  roomy.release(r4);
  expect(roomy.acquire(3000).size).toBe(3072);
  // at the limit (keepFactor × the peak in use, no cap): the free larger buffers serve
  const was = { ...poolTuning };
  poolTuning.keepFactor = 1;
  try {
  const pool = new BufferPool(device as unknown as GPUDevice, 0, 0, "test");
  const [b4, b5, b8] = [pool.acquire(4096), pool.acquire(5120), pool.acquire(8192)];
  for (const b of [b8, b5, b4]) expect(pool.release(b)).toEqual([]);
  expect(pool.stats.inUseBytes).toBe(0);
  expect(sizeClass(3000)).toBe(3072);
  // 3072's class is empty: 4096 is the smallest free class within 2 × 3072
  expect(pool.acquire(3000)).toBe(b4);
  expect(pool.stats.inUseBytes).toBe(4096);
  // 1024's class is empty and every free buffer is over 2048: a new one
  const n = pool.acquire(1000);
  expect(n).not.toBe(b5);
  expect(n.size).toBe(1024);
  expect(pool.stats.created).toBe(4);
  // long-lived requests never take temporaries, larger or not
  const l = pool.acquire(4000, 1);
  expect([b5, b8]).not.toContain(l);
  pool.release(b4);
  pool.release(n);
  pool.release(l);
  expect(pool.stats.inUseBytes).toBe(0);
  } finally {
    Object.assign(poolTuning, was);
  }
});

test("buffer pool: long-lived buffers (tag 1) come back only to long-lived requests, in creation order", () => {
  const device = { limits: { maxBufferSize: 2 ** 30 }, createBuffer: ({ size }: { size: number }) => ({ size, destroy() {} }) };
  const pool = new BufferPool(device as unknown as GPUDevice, 0, 2 ** 20, "test");
  // an optimizer's two generations of two tensors, and a temporary of the same size class
  const x1 = pool.acquire(1024, 1), x2 = pool.acquire(1024, 1);
  const y1 = pool.acquire(1024, 1), y2 = pool.acquire(1024, 1);
  const tmp = pool.acquire(1024);
  for (const b of [tmp, x2, x1]) expect(pool.release(b)).toEqual([]);
  // a temporary request gets the temporary, not an older long-lived buffer
  expect(pool.acquire(1000)).toBe(tmp);
  // the next generation gets x1, x2 back in the order they were created (the same roles)
  expect(pool.acquire(1024, 1)).toBe(x1);
  expect(pool.acquire(1024, 1)).toBe(x2);
  for (const b of [y2, y1]) pool.release(b);
  expect([pool.acquire(1024, 1), pool.acquire(1024, 1)]).toEqual([y1, y2]);
  // with no long-lived buffer free, a new one (not the free temporary)
  pool.release(tmp);
  const z = pool.acquire(1024, 1);
  expect(z).not.toBe(tmp);
  expect(pool.stats.created).toBe(6);
});

test("webgpu backend: an AdamW loop binds the same buffers every other step (no new bind groups once warm)", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const was = T.getBackend();
  T.setBackend(gpu as unknown as Backend);
  try {
    const w = T.fromArray(Array.from({ length: 300 }, (_, i) => Math.sin(i)), [20, 15]);
    const bias = T.fromArray(Array.from({ length: 15 }, (_, i) => i / 10), [15]);
    let params = { w, bias };
    let state = T.adamw.init(params);
    const g0 = { w: T.fromArray(Array.from({ length: 300 }, (_, i) => Math.cos(i)), [20, 15]), bias: T.fromArray(Array.from({ length: 15 }, () => 0.5), [15]) };
    const created: number[] = [];
    for (let step = 0; step < 8; step++) {
      // as in a training step: temporaries of the parameters' size classes (activations) are
      // freed before the update allocates its outputs; without the long-lived pool the outputs
      // took those buffers, and the next step's temporaries others, so the roles kept moving
      const temps = [T.mul(params.w, 2), T.mul(params.bias, 2), T.mul(params.w, 3)];
      T.disposeTree(temps);
      // the update's own bind groups (counted when it encodes)
      const before = gpu.poolStats().bindGroups.misses;
      const next = T.adamw.update(params, g0, state, { lr: 0.01 });
      created.push(gpu.poolStats().bindGroups.misses - before);
      ({ params, state } = next);
      await gpu.sync();
    }
    expect(created.slice(5)).toEqual([0, 0, 0]); // from step 6 on, the buffers of two steps before
    T.disposeTree([params, state.m, state.v, g0]);
  } finally {
    T.setBackend(was);
  }
});

test("webgpu backend: allocGroup's views of one buffer work as ordinary buffers; the buffer outlives all but the last view", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  const base = T.liveBuffers();
  const shapes = [[5], [0], [3, 100], [70000]];
  const data = shapes.map((s, k) => rnd(s.reduce((a, b) => a * b, 1), k + 1));
  const views = T.allocTensorGroup(shapes, "f32");
  expect(T.liveBuffers()).toBe(base + 4);
  views.forEach((t, k) => gpu.write(t.buf, data[k]));
  // a kernel reads each view at its offset and writes an ordinary buffer; the writes to the
  // views did not spill into their neighbours
  for (let k = 0; k < views.length; k++) {
    const y = T.tidy(() => T.mul(views[k], 2)); // (the scalar 2 is a temporary)
    expect(Array.from(await y.data())).toEqual(Array.from(data[k], (v) => Math.fround(v * 2)));
    expect(Array.from(await views[k].data())).toEqual(Array.from(data[k]));
    y.dispose();
  }
  // freeing three views keeps the shared buffer: new tensors of its size class get other buffers
  for (const k of [0, 1, 3]) views[k].dispose();
  expect(T.liveBuffers()).toBe(base + 1);
  const others = [T.full([70000 + 500], 7), T.full([70300], -1)];
  await gpu.sync();
  expect(Array.from(await views[2].data())).toEqual(Array.from(data[2]));
  T.disposeTree([others, views[2]]);
  expect(T.liveBuffers()).toBe(base);
  // under a lowered binding limit: slabs split where the next view would pass it, a tensor too
  // large to share one gets its own buffer; a bad size is refused with nothing left allocated
  const small = await createWebGpuBackend({ gpu: gpu.acquired, limits: { maxStorageBufferBindingSize: 8192 } });
  try {
    const sizes = [1000, 900, 3000, 100, 0];
    const handles = small.allocGroup(sizes, "f32");
    expect(small.liveBuffers()).toBe(5);
    const data2 = sizes.map((n, k) => rnd(n, 10 + k));
    handles.forEach((h, k) => small.write(h, data2[k]));
    for (let k = 0; k < sizes.length; k++) expect(Array.from(await small.read(handles[k]))).toEqual(Array.from(data2[k]));
    for (const h of handles) small.free(h);
    expect(small.liveBuffers()).toBe(0);
    expect(() => small.allocGroup([10, 2.5], "f32")).toThrow("webgpu.allocGroup: invalid size 2.5 (index 1)");
    expect(() => small.allocGroup([10, 2 ** 40], "f32")).toThrow(/exceeds this device's maxBufferSize/);
    expect(small.liveBuffers()).toBe(0);
  } finally {
    small.destroy();
  }
});

test("webgpu backend: clear errors: a tensor over maxBufferSize, double free, use after free", async () => {
  const gpu = await webgpu();
  if (!gpu) return;
  expect(() => gpu.alloc(Math.floor(gpu.device.limits.maxBufferSize / 4) + 1, "f32")).toThrow(/maxBufferSize/);
  const b = gpu.alloc(4, "f32");
  gpu.free(b);
  expect(() => gpu.free(b)).toThrow(/freed twice/);
  await expect(gpu.read(b)).rejects.toThrow(/after it was freed/);
});

test("webgpu backend: timeGpuPasses times every compute pass of the work (a readback inside it ends one pass, the next dispatch begins another): busy within the span; null without timestamps", async () => {
  const main = await webgpu();
  if (!main) return;
  if (!main.device.features.has("timestamp-query")) expect(await main.timeGpuPasses(() => {})).toBeNull();
  const gpu = await createWebGpuBackend({ timestamps: true });
  try {
    if (!gpu.device.features.has("timestamp-query")) {
      console.log("timeGpuPasses: this adapter has no 'timestamp-query'; only the null result is checked");
      expect(await gpu.timeGpuPasses(() => {})).toBeNull();
      return;
    }
    T.setBackend(gpu);
    const a = T.fromArray(rnd(64 * 64), [64, 64]);
    await a.data();
    let read: Promise<unknown> | null = null;
    const made: T.Tensor[] = [];
    const t = await gpu.timeGpuPasses(() => {
      const b = T.matmul(a, a);
      read = b.data(); // submits the first pass
      made.push(b, T.matmul(b, a)); // a second pass
    });
    await read;
    expect(t).not.toBeNull();
    expect(t!.passes).toBe(2);
    expect(t!.busyMs).toBeGreaterThanOrEqual(0);
    expect(t!.spanMs).toBeGreaterThanOrEqual(t!.busyMs); // passes run in order on one queue
    const busy = await gpu.timeGpu(() => made.push(T.matmul(a, a)));
    expect(typeof busy).toBe("number");
    T.disposeTree([a, made]);
    expect(gpu.liveBuffers()).toBe(0);
  } finally {
    gpu.destroy();
    T.setBackend(main);
  }
});

test("webgpu backend: destroy() releases the device; later use fails clearly", async () => {
  if (!(await webgpu())) return;
  const own = await createWebGpuBackend();
  const t = own.alloc(3, "f32");
  own.write(t, Float32Array.of(1, 2, 3));
  expect(Array.from(await own.read(t))).toEqual([1, 2, 3]);
  own.free(t);
  own.destroy();
  expect(() => own.alloc(1, "f32")).toThrow(/destroyed/);
  expect(own.keepAlive).toBeDefined();
});
