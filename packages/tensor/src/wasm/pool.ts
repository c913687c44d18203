/**
 * Worker threads over the shared wasm memory.
 *
 * Each worker instantiates the same kernels on the same memory (its own shadow stack) and loops:
 * wait for a new job on the job board (wasm/dispatch.c), take its tasks (run_job) until none is
 * left. The calling thread takes tasks too, then blocks until the job's tasks have all completed
 * (Backend.run is synchronous) — it does not wait for workers that took no task, so a worker that
 * wakes late costs nothing but its help. Workers spin for the next job for spinMs (2 ms) after
 * the last one before sleeping in Atomics.wait: a burst of kernels finds them awake. (Measured
 * here: a futex wake on a 2-vCPU VM often took longer than a whole 0.4 ms task, so with a short
 * spin the caller ended up running every task itself; workers woken only by a message were
 * sometimes packed onto one core.)
 *
 * Threads come from node:worker_threads where the runtime has it (Node, Bun and Deno: their
 * workers can be unref'd, so an idle pool never keeps a program alive), else from Web Workers on a
 * blob URL (a browser; only off the main thread, where Atomics.wait is allowed — on a page's main
 * thread the backend runs single-threaded).
 */

// The job board (wasm/dispatch.c, job_board): Int32 words from ctrl, the ticket an Int64 at byte 16,
// 8 job slots of 8 words from byte 32 (slotGen, kid, args, ntasks, completed).
const GEN = 0, QUIT = 1, FAILED = 2, READY = 3, TICKET_BYTE = 16, SLOTS = 8, SLOT_WORDS = 8;
const S_GEN = 0, S_KID = 1, S_ARGS = 2, S_NTASKS = 3, S_COMPLETED = 4;
/** Loads the caller spins for its job's last tasks before it sleeps (the last worker to finish wakes it). */
const MAIN_SPIN = 200_000;
/** Bytes the job board takes. */
export const CTRL_BYTES = 512;

export interface PoolInit {
  bytes: Uint8Array<ArrayBuffer>;
  memory: WebAssembly.Memory;
  ctrl: number;
  /** Top of each worker's shadow stack (workers 1..n-1; index 0 unused). */
  stackTops: number[];
  /** How long a worker spins for the next job before it sleeps (ms). */
  spinMs: number;
}

/** The body of every worker: self-contained (it is sent as source text, so it may capture nothing). */
function workerMain(): void {
  // deno-lint-ignore no-explicit-any
  const g: any = globalThis;
  // deno-lint-ignore no-explicit-any
  const start = (d: any) => {
    const mod = new WebAssembly.Module(d.bytes);
    // deno-lint-ignore no-explicit-any
    const ex = new WebAssembly.Instance(mod, { env: { memory: d.memory } }).exports as any;
    ex.__stack_pointer.value = d.stackTop;
    const i32 = new Int32Array(d.memory.buffer);
    const c = d.ctrl >>> 2;
    const spinMs: number = d.spinMs;
    let seen = Atomics.load(i32, c + 0);
    Atomics.add(i32, c + 3, 1);
    Atomics.notify(i32, c + 3);
    for (;;) {
      // spin for spinMs after the last job (a futex wake can take longer than a whole kernel on a
      // busy or virtual machine, and the caller then runs every task itself), then sleep
      let gen = Atomics.load(i32, c + 0);
      const t0 = performance.now();
      while (gen === seen) {
        for (let s = 0; gen === seen && s < 2000; s++) gen = Atomics.load(i32, c + 0);
        if (gen !== seen || performance.now() - t0 > spinMs) break;
      }
      while (gen === seen) {
        Atomics.wait(i32, c + 0, seen);
        gen = Atomics.load(i32, c + 0);
      }
      seen = gen;
      if (Atomics.load(i32, c + 1) !== 0) break;
      try {
        ex.run_job(d.ctrl, gen, d.tid);
      } catch (e) {
        // a trap (a bug, or out of bounds): count it; the main thread throws
        console.error(`wasm worker thread ${d.tid}:`, e);
        Atomics.add(i32, c + 2, 1);
        Atomics.notify(i32, c + 8 + 8 * (gen & 7) + 4);
      }
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
  on?(event: "error", f: (e: unknown) => void): void;
  onerror?: ((e: unknown) => void) | null;
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
  #disposed = false;
  #ctrl: number;
  #gen = 0;
  #ticket: BigInt64Array;

  private constructor(workers: AnyWorker[], i32: () => Int32Array, ctrl: number) {
    this.#workers = workers;
    this.#i32 = i32;
    this.#ctrl = ctrl;
    this.#c = ctrl >>> 2;
    this.#ticket = new BigInt64Array(i32().buffer, ctrl + TICKET_BYTE, 1); // low memory: valid after growth too
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
    if (init.ctrl % 64 !== 0) throw new Error("wasm: the job board must be 64-byte aligned");
    const c = init.ctrl >>> 2;
    const v = i32();
    for (let w = 0; w < CTRL_BYTES / 4; w++) v[c + w] = 0;
    const workers: AnyWorker[] = [];
    let failure: string | null = null;
    const onError = (e: unknown) => {
      failure ??= e instanceof Error ? e.message : String((e as { message?: string })?.message ?? e);
    };
    for (let t = 1; t <= n; t++) {
      const w = spawn(WORKER_SOURCE);
      if (w.on) w.on("error", onError);
      else w.onerror = onError;
      w.unref?.();
      w.postMessage({ bytes: init.bytes, memory: init.memory, ctrl: init.ctrl, tid: t, stackTop: init.stackTops[t], spinMs: init.spinMs });
      workers.push(w);
    }
    const t0 = Date.now();
    while (Atomics.load(i32(), c + READY) < n) {
      // yield to the event loop (the workers start on their own threads)
      await new Promise((r) => setTimeout(r, 1));
      if (failure !== null || Date.now() - t0 > timeoutMs) {
        for (const w of workers) w.terminate();
        throw new Error(failure !== null ? `a wasm worker thread failed to start: ${failure}` : `wasm worker threads did not start within ${timeoutMs} ms`);
      }
    }
    return new WorkerPool(workers, i32, init.ctrl);
  }

  /** Runs tasks [0, ntasks) of kernel `kid` on every thread; returns when all are done. */
  run(exports: { run_job(board: number, g: number, tid: number): number }, kid: number, args: number, ntasks: number): void {
    if (this.#disposed) throw new Error("wasm worker pool used after dispose()");
    const v = this.#i32();
    const c = this.#c;
    const g = (this.#gen = (this.#gen + 1) | 0);
    const s = c + SLOTS + SLOT_WORDS * (g & 7);
    // publish: the slot under its seqlock, then the ticket, then the generation (wasm/dispatch.c)
    Atomics.store(v, s + S_GEN, 0);
    v[s + S_KID] = kid;
    v[s + S_ARGS] = args;
    v[s + S_NTASKS] = ntasks;
    Atomics.store(v, s + S_COMPLETED, 0);
    Atomics.store(v, c + FAILED, 0);
    Atomics.store(v, s + S_GEN, g);
    const ticket = this.#ticket;
    Atomics.store(ticket, 0, BigInt.asIntN(64, BigInt(g) << 32n));
    Atomics.store(v, c + GEN, g);
    Atomics.notify(v, c + GEN);
    let error: unknown = null;
    try {
      if (exports.run_job(this.#ctrl, g, 0) < 0) error = new Error(`wasm: unknown kernel ${kid}`);
    } catch (e) {
      error = e;
      Atomics.add(v, c + FAILED, 1);
    }
    // wait for every task to complete (not for every worker: one that took no task delays nothing)
    let done = Atomics.load(v, s + S_COMPLETED);
    for (let i = 0; done < ntasks && i < MAIN_SPIN && Atomics.load(v, c + FAILED) === 0; i++) done = Atomics.load(v, s + S_COMPLETED);
    while (done < ntasks) {
      const failed = Atomics.load(v, c + FAILED);
      if (failed !== 0) {
        // stop handing out tasks, then wait for the ones in flight (a failed task never completes)
        const before = Atomics.exchange(ticket, 0, BigInt.asIntN(64, (BigInt(g) << 32n) | 0x7fffffffn));
        const taken = Math.min(ntasks, Number(before & 0xffffffffn));
        while (Atomics.load(v, s + S_COMPLETED) + Atomics.load(v, c + FAILED) < taken) Atomics.wait(v, s + S_COMPLETED, Atomics.load(v, s + S_COMPLETED), 50);
        break;
      }
      Atomics.wait(v, s + S_COMPLETED, done, 50);
      done = Atomics.load(v, s + S_COMPLETED);
    }
    if (error) throw error;
    if (Atomics.load(v, c + FAILED) !== 0) throw new Error(`wasm: kernel ${kid} trapped on a worker thread (its error is printed above)`);
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
