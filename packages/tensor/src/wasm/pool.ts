/**
 * Worker threads over the shared wasm memory.
 *
 * Each worker instantiates the same kernels on the same memory (its own shadow stack) and loops:
 * wait for a new job generation in the control block, take tasks from the job's atomic counter
 * (inside the wasm: run_tasks), report done. The main thread takes tasks too, then blocks until
 * every worker has reported (Backend.run is synchronous). Workers spin on the generation for a
 * short while before sleeping in Atomics.wait: a burst of kernels then finds them awake (workers
 * woken only by a message were sometimes packed onto one core, and a futex wake costs tens of µs).
 *
 * Threads come from node:worker_threads where the runtime has it (Node, Bun and Deno: their
 * workers can be unref'd, so an idle pool never keeps a program alive), else from Web Workers on a
 * blob URL (a browser; only off the main thread, where Atomics.wait is allowed — on a page's main
 * thread the backend runs single-threaded).
 */

// Control block words (Int32, at ctrl): the job and its barrier.
const GEN = 0, KID = 1, ARGS = 2, NTASKS = 3, COUNTER = 4, DONE = 5, QUIT = 6, READY = 7, NWORKERS = 8;
/** Bytes the control block takes (the counter must be 4-byte aligned; the block is 64). */
export const CTRL_BYTES = 64;

export interface PoolInit {
  bytes: Uint8Array<ArrayBuffer>;
  memory: WebAssembly.Memory;
  ctrl: number;
  /** Top of each worker's shadow stack (workers 1..n-1; index 0 unused). */
  stackTops: number[];
  spin: number;
}

/** The body of every worker: self-contained (it is sent as source text, so it may capture nothing). */
function workerMain(): void {
  // deno-lint-ignore no-explicit-any
  const g: any = globalThis;
  // deno-lint-ignore no-explicit-any
  const start = (d: any) => {
    const mod = new WebAssembly.Module(d.bytes);
    const ex = new WebAssembly.Instance(mod, { env: { memory: d.memory } }).exports as any;
    ex.__stack_pointer.value = d.stackTop;
    const i32 = new Int32Array(d.memory.buffer);
    const c = d.ctrl >> 2;
    const spin: number = d.spin;
    let seen = Atomics.load(i32, c + 0);
    Atomics.add(i32, c + 7, 1);
    Atomics.notify(i32, c + 7);
    for (;;) {
      let gen = Atomics.load(i32, c + 0);
      for (let s = 0; gen === seen && s < spin; s++) gen = Atomics.load(i32, c + 0);
      while (gen === seen) {
        Atomics.wait(i32, c + 0, seen);
        gen = Atomics.load(i32, c + 0);
      }
      seen = gen;
      if (Atomics.load(i32, c + 6) !== 0) break;
      ex.run_tasks(i32[c + 1], i32[c + 2], i32[c + 3], d.ctrl + 16, d.tid);
      if (Atomics.add(i32, c + 5, 1) + 1 === i32[c + 8]) Atomics.notify(i32, c + 5);
    }
    // nothing keeps the thread alive now: it ends (a Web Worker closes itself)
    if (!g.__NODE_WORKER__) g.close();
  };
  if (g.__NODE_WORKER__) g.__port.once("message", start);
  else g.onmessage = (e: MessageEvent) => start(e.data);
}

const WORKER_SOURCE = `(${workerMain.toString()})();`;

/** Whether this thread may block in Atomics.wait (not a browser page's main thread). */
export function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

interface AnyWorker {
  postMessage(m: unknown): void;
  terminate(): unknown;
  unref?(): void;
}

// deno-lint-ignore no-explicit-any
async function spawner(): Promise<((src: string) => AnyWorker) | null> {
  const g = globalThis as any;
  const isNodeLike = typeof g.process?.versions?.node === "string" || typeof g.Deno !== "undefined" || typeof g.Bun !== "undefined";
  if (isNodeLike) {
    try {
      const spec = "node:worker_threads"; // a variable: browser bundlers must not resolve it
      const wt = await import(/* @vite-ignore */ spec);
      return (src) => new wt.Worker(`globalThis.__NODE_WORKER__ = true; globalThis.__port = require("node:worker_threads").parentPort;\n${src}`, { eval: true });
    } catch {
      // fall through to Web Workers
    }
  }
  if (typeof g.Worker === "function" && typeof Blob === "function" && typeof URL?.createObjectURL === "function") {
    return (src) => {
      const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
      return new g.Worker(url, { type: "module" }) as AnyWorker;
    };
  }
  return null;
}

export class WorkerPool {
  /** Threads that take part in a job: the workers plus the calling thread. */
  readonly threads: number;
  #i32: () => Int32Array;
  #c: number;
  #workers: AnyWorker[];
  #spin: number;
  #disposed = false;

  private constructor(workers: AnyWorker[], i32: () => Int32Array, ctrl: number, spin: number) {
    this.#workers = workers;
    this.#i32 = i32;
    this.#c = ctrl >> 2;
    this.#spin = spin;
    this.threads = workers.length + 1;
  }

  /**
   * Starts `init.stackTops.length - 1` workers; resolves once all have instantiated the kernels
   * (or rejects with the reason threads are unavailable).
   */
  static async start(init: PoolInit, i32: () => Int32Array, timeoutMs = 20_000): Promise<WorkerPool> {
    const n = init.stackTops.length - 1;
    if (n < 1) throw new Error("no worker asked for");
    if (!canBlock()) throw new Error("this thread may not block in Atomics.wait (a browser page's main thread)");
    const spawn = await spawner();
    if (!spawn) throw new Error("this runtime has no worker threads");
    const c = init.ctrl >> 2;
    const v = i32();
    for (let w = 0; w < CTRL_BYTES / 4; w++) v[c + w] = 0;
    Atomics.store(v, c + NWORKERS, n);
    const workers: AnyWorker[] = [];
    for (let t = 1; t <= n; t++) {
      const w = spawn(WORKER_SOURCE);
      w.unref?.();
      w.postMessage({ bytes: init.bytes, memory: init.memory, ctrl: init.ctrl, tid: t, stackTop: init.stackTops[t], spin: init.spin });
      workers.push(w);
    }
    const t0 = Date.now();
    while (Atomics.load(i32(), c + READY) < n) {
      // yield to the event loop (the workers start on their own threads)
      await new Promise((r) => setTimeout(r, 1));
      if (Date.now() - t0 > timeoutMs) {
        for (const w of workers) w.terminate();
        throw new Error(`wasm worker threads did not start within ${timeoutMs} ms`);
      }
    }
    return new WorkerPool(workers, i32, init.ctrl, init.spin);
  }

  /** Runs tasks [0, ntasks) of kernel `kid` on every thread; returns when all are done. */
  run(exports: { run_tasks(k: number, a: number, n: number, c: number, t: number): number }, kid: number, args: number, ntasks: number): void {
    if (this.#disposed) throw new Error("wasm worker pool used after dispose()");
    const v = this.#i32();
    const c = this.#c;
    v[c + KID] = kid;
    v[c + ARGS] = args;
    v[c + NTASKS] = ntasks;
    Atomics.store(v, c + COUNTER, 0);
    Atomics.store(v, c + DONE, 0);
    Atomics.add(v, c + GEN, 1);
    Atomics.notify(v, c + GEN);
    const r = exports.run_tasks(kid, args, ntasks, (c + COUNTER) * 4, 0);
    if (r < 0) throw new Error(`wasm: unknown kernel ${kid}`);
    const n = this.#workers.length;
    let done = Atomics.load(v, c + DONE);
    for (let s = 0; done < n && s < this.#spin; s++) done = Atomics.load(v, c + DONE);
    while (done < n) {
      Atomics.wait(v, c + DONE, done, 1000);
      done = Atomics.load(v, c + DONE);
    }
  }

  /** Stops the workers (they finish their loop and exit). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    const v = this.#i32();
    Atomics.store(v, this.#c + QUIT, 1);
    Atomics.add(v, this.#c + GEN, 1);
    Atomics.notify(v, this.#c + GEN);
  }
}
