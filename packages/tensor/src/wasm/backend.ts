/**
 * The wasm CPU backend: the narrow Backend interface over one shared WebAssembly.Memory.
 *
 * - Buffers are blocks of the memory (heap.ts); a kernel argument is a byte offset, so worker
 *   threads (pool.ts) work on the same bytes without copies, and so does a native BLAS (FFI).
 * - Kernels: C compiled to wasm32 + SIMD128 (+ relaxed SIMD where the engine has it), see
 *   packages/tensor/wasm/*.c and kernels.ts; every other primitive runs the TypeScript reference
 *   kernel (src/cpu/kernels.ts) on Float32Array / Int32Array views of the memory.
 * - matmul goes through the system OpenBLAS (cblas_sgemm over FFI) where the runtime has FFI (Bun,
 *   Deno with --allow-ffi) and the library exists, unless switched off.
 *
 * Kernel choice (option `kernels`: auto, wasm, wasm-simd, ts) and threads: see backend-options.ts.
 */
import type { Backend, BufferHandle, HostArray, KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import type { DType } from "../dtype.ts";
import { registerBackend } from "../engine.ts";
import { showShape, sizeOf } from "../shape.ts";
import { cpuKernels, cpuMultiKernels, type CpuArg } from "../cpu/kernels.ts";
import { blasThreadStable, openBlas, type Blas } from "../ffi/blas.ts";
import { WasmHeap } from "./heap.ts";
import { GEMM_SCRATCH_BYTES, wasmLaunchers, wasmMultiLaunchers, type Launcher, type MultiLauncher, type WasmCtx } from "./kernels.ts";
import { chooseVariant, createSharedMemory, instantiate, type KernelExports, wasmBytes, wasmSupport, type WasmVariant } from "./module.ts";
import { CTRL_BYTES, WorkerPool } from "./pool.ts";
import { cpuThreadsFromEnv as threadsFromEnv, readEnv as env } from "../env.ts";
import { CHOICES, type CpuKernelChoice, type KernelInfo, logicalCores, type WasmBackendOptions } from "./backend-options.ts";

export type { CpuKernelChoice, KernelInfo, WasmBackendOptions } from "./backend-options.ts";

let blasNoticePrinted = false;

class WasmBuffer implements BufferHandle {
  constructor(readonly id: number, readonly ptr: number, readonly size: number, readonly dtype: DType, public live: boolean) {}
}

const ARGS_BYTES = 1024;
const STACK_BYTES = 256 * 1024;

export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly choice: CpuKernelChoice;
  readonly variant: WasmVariant;
  readonly heap: WasmHeap;
  /** Resolves when the worker threads run (or have been given up on: see kernelInfo().threads). */
  readonly ready: Promise<void>;
  #ex: KernelExports;
  #module: WebAssembly.Module;
  #args: number;
  #ctrl: number;
  #pool: WorkerPool | null = null;
  #poolError: string | null = null;
  #blas: Blas | null = null;
  #blasNote: string | null = null;
  #live = 0;
  #nextId = 1;
  #temps: { ptr: number; bytes: number }[] = [];
  #gemmScratch = { base: 0, stride: GEMM_SCRATCH_BYTES };
  #relaxedFused: boolean | null = null;
  #gemmTile: 4 | 6;
  #expLockstep: boolean;
  #touchAhead: boolean;
  #blasThreadsNow = 0;
  #disposed = false;
  #ctx: WasmCtx;

  constructor(opts: WasmBackendOptions = {}) {
    const why = wasmSupport();
    if (why) throw new Error(`wasm backend unavailable: ${why}`);
    const choice = (opts.kernels ?? (env("MEMMAMBA_CPU_KERNELS") as CpuKernelChoice | undefined) ?? "auto") as CpuKernelChoice;
    if (!CHOICES.includes(choice)) throw new Error(`wasm backend: unknown kernel choice "${choice}" (MEMMAMBA_CPU_KERNELS / kernels: ${CHOICES.join(", ")})`);
    this.choice = choice;
    if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
      throw new Error(`wasm backend: threads must be a positive integer, got ${opts.threads}`);
    }
    if (opts.gemmTile !== undefined && opts.gemmTile !== 4 && opts.gemmTile !== 6) throw new Error(`wasm backend: gemmTile must be 4 or 6, got ${opts.gemmTile}`);
    this.#gemmTile = opts.gemmTile ?? (typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? 4 : 6);
    // measured: the selective scan's pinned lockstep exps help every engine (wasm/ssm.c, step)
    this.#expLockstep = opts.expLockstep ?? true;
    // measured: touching the scan's inputs and output ahead helps under every engine (wasm/common.h)
    this.#touchAhead = opts.touchAhead ?? true;
    this.variant = chooseVariant(choice === "wasm-simd" ? "simd" : undefined);
    const bytes = wasmBytes(this.variant);
    this.#module = new WebAssembly.Module(bytes);
    const { memory, maxPages } = createSharedMemory(Math.ceil(((opts.initialMemoryMiB ?? 64) * 1024 * 1024) / 65536));
    this.#ex = instantiate(this.#module, memory);
    // the top 64 KiB stay unused: every offset and size then fits an i32 (the kernels' arguments)
    const maxBytes = Math.min(maxPages, 65535) * 65536;
    this.heap = new WasmHeap(memory, this.#ex.__heap_base.value as number, maxBytes);
    this.#args = this.heap.alloc(ARGS_BYTES);
    this.#ctrl = this.heap.alloc(CTRL_BYTES); // 64-byte aligned (the heap's smallest block)
    this.#gemmScratch.base = this.heap.alloc(GEMM_SCRATCH_BYTES);
    if (choice === "auto") {
      const b = openBlas(memory);
      if (typeof b === "string") {
        this.#blasNote = b;
        // One line where BLAS could have run (a runtime with FFI) but did not.
        const hasFfi = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" || typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
        if (hasFfi && !opts.quiet && !blasNoticePrinted) {
          blasNoticePrinted = true;
          console.log(`memmamba: matmul uses the wasm kernels: ${b}`);
        }
      } else {
        this.#blas = b;
        this.#blasNote = b.describe;
      }
    }
    const self = this;
    this.#ctx = {
      heap: this.heap,
      get threads() {
        return self.#pool?.threads ?? 1;
      },
      ptr: (a) => this.#buf(a.buf).ptr,
      launch: (kid, words, ntasks, parallel) => this.#launch(kid, words, ntasks, parallel),
      temp: (n) => {
        const p = this.heap.alloc(n);
        this.#temps.push({ ptr: p, bytes: n });
        return p;
      },
      get gemmScratch() {
        return self.#gemmScratch;
      },
      get sgemm() {
        return self.#blas?.sgemm ?? null;
      },
      get gemmTile() {
        return self.#gemmTile;
      },
      get expLockstep() {
        return self.#expLockstep;
      },
      get touchAhead() {
        return self.#touchAhead;
      },
      blasThreads: (n) => {
        if (n !== this.#blasThreadsNow) this.#blas?.setThreads((this.#blasThreadsNow = n));
      },
    };
    if (this.variant === "relaxed" && choice !== "ts") this.#relaxedFused = this.#probeFusedMadd();
    this.ready = this.#startPool(opts, bytes, memory);
  }

  async #startPool(opts: WasmBackendOptions, bytes: Uint8Array<ArrayBuffer>, memory: WebAssembly.Memory): Promise<void> {
    const want = opts.threads ?? threadsFromEnv() ?? await logicalCores();
    if (want === 1 || this.choice === "ts") return;
    const scratch = this.heap.alloc(GEMM_SCRATCH_BYTES * want);
    const stacks = Array.from({ length: want - 1 }, () => this.heap.alloc(STACK_BYTES));
    const release = () => {
      this.heap.free(scratch, GEMM_SCRATCH_BYTES * want);
      for (const s of stacks) this.heap.free(s, STACK_BYTES);
    };
    try {
      const stackTops = [0, ...stacks.map((s) => s + STACK_BYTES)];
      const pool = await WorkerPool.start({ bytes, memory, ctrl: this.#ctrl, stackTops, spinMs: opts.spinMs ?? 2 }, () => this.heap.i32);
      if (this.#disposed) {
        pool.dispose();
        return;
      }
      this.heap.free(this.#gemmScratch.base, GEMM_SCRATCH_BYTES);
      this.#gemmScratch = { base: scratch, stride: GEMM_SCRATCH_BYTES };
      this.#pool = pool;
    } catch (e) {
      release();
      this.#poolError = (e as Error).message;
    }
  }

  /** Which kernels run (and why BLAS is not used, where it is not). */
  kernelInfo(): KernelInfo {
    const k = this.choice === "ts" ? "ts" : this.variant === "relaxed" ? "wasm-relaxed" : "wasm-simd";
    return {
      matmul: this.#blas ? "blas" : k,
      kernels: k,
      blas: this.#blasNote,
      blasThreadStable: this.#blas ? blasThreadStable(this.#blasNote) : null,
      threads: this.#pool?.threads ?? 1,
      relaxedMaddFused: this.#relaxedFused,
      choice: this.choice,
      gemmTile: this.#gemmTile,
      expLockstep: this.#expLockstep,
      touchAhead: this.#touchAhead,
    };
  }

  /** Why the worker threads are not running, if they are not. */
  get threadError(): string | null {
    return this.#poolError;
  }

  #buf(h: BufferHandle): WasmBuffer {
    const b = h as WasmBuffer;
    if (!(b instanceof WasmBuffer)) throw new Error("wasm: a buffer of another backend was passed");
    if (!b.live) throw new Error(`wasm: buffer ${b.id} was used after it was freed`);
    return b;
  }

  alloc(size: number, dtype: DType): BufferHandle {
    if (this.#disposed) throw new Error("wasm backend used after dispose()");
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`wasm.alloc: invalid size ${size}`);
    const ptr = size === 0 ? 0 : this.heap.alloc(size * 4);
    this.#live++;
    return new WasmBuffer(this.#nextId++, ptr, size, dtype, true);
  }
  free(buf: BufferHandle): void {
    const b = buf as WasmBuffer;
    if (!b.live) throw new Error(`wasm.free: buffer ${b.id} was freed twice`);
    b.live = false;
    if (b.size > 0) this.heap.free(b.ptr, b.size * 4);
    this.#live--;
  }
  /** A live view of a buffer (valid until the buffer is freed). */
  view(buf: BufferHandle): HostArray {
    const b = this.#buf(buf);
    const mem = this.heap.memory.buffer;
    return b.dtype === "f32" ? new Float32Array(mem, b.ptr, b.size) : new Int32Array(mem, b.ptr, b.size);
  }
  write(buf: BufferHandle, data: HostArray): void {
    const v = this.view(buf);
    if (data.length !== v.length) throw new Error(`wasm.write: ${data.length} values for a buffer of ${v.length}`);
    v.set(data);
  }
  read(buf: BufferHandle): Promise<HostArray> {
    return Promise.resolve(this.readSync(buf));
  }
  /** Synchronous read: a copy (not shared memory). */
  readSync(buf: BufferHandle): HostArray {
    return this.view(buf).slice();
  }

  run<Kn extends PrimName>(prim: Kn, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[Kn]): void {
    this.#checkSizes(prim, [...inputs, output]);
    const launcher = this.choice === "ts" ? undefined : (wasmLaunchers[prim] as Launcher<Kn> | undefined);
    if (launcher && this.#launched(() => launcher(this.#ctx, inputs, output, params))) return;
    const kernel = cpuKernels[prim] as (ins: CpuArg[], out: CpuArg, p: PrimParams[Kn]) => void;
    kernel(inputs.map((a) => this.#cpuArg(a)), this.#cpuArg(output), params);
  }

  /** Runs a wasm launcher (true: it handled the primitive), then frees the scratch it took. */
  #launched(launch: () => boolean): boolean {
    try {
      return launch();
    } finally {
      for (const t of this.#temps) this.heap.free(t.ptr, t.bytes);
      this.#temps.length = 0;
    }
  }

  /** Each buffer holds as many elements as its shape says (a clear error naming the primitive). */
  #checkSizes(prim: string, args: readonly KernelArg[]): void {
    for (const a of args) {
      const b = this.#buf(a.buf);
      if (b.size !== sizeOf(a.shape)) throw new Error(`wasm.${prim}: buffer of ${b.size} elements for shape ${showShape(a.shape)}`);
    }
  }

  /** A tensor as the TypeScript CPU kernels see it: a view of the wasm heap. */
  #cpuArg(a: KernelArg): CpuArg {
    return { data: this.view(a.buf), shape: a.shape };
  }

  /**
   * unaryGrad, rmsNorm, softmaxGrad and addN have no wasm kernels (their TS fallbacks are scalar
   * passes): their composites run on the SIMD kernels. maxGrad (max's VJP) has no wasm kernel
   * either but keeps its TS one: its single pass ran 3-10x faster than the composite's six
   * launches (2 threads, [8, 2048, 64, 4] over the last axis, Bun and Deno). attnRead (the fused
   * pool read) runs as its composite too: indexedAttentionFused then calls indexedAttention, and
   * indexedAttentionParts joins its reads into it (attnReadParts).
   * matmulRows runs its composite, where(rows, matmul(x, w), 0): the SIMD matmul of every row beats
   * the TS kernel's kept rows unless very few are kept. ssmGate runs its four SIMD ops (the TS
   * kernel's float64 sigmoid is a scalar pass). linearSoftplus and conv1dCausalSilu run their three
   * ops too (the SIMD matmul, conv, softplus and silu), matmulRowsMax matmulRows' composite and a
   * max, addMatmul its SIMD matmul, mul and add, linearSigmoid's VJP (linearSigmoidGrad) its ops,
   * foldWeight its SIMD matmul and mul, rmsNormScores its rmsNorm composite and scorers.
   */
  prefersComposite(prim: PrimName | MultiPrimName): boolean {
    // maskedSoftmax (indexedAttention's masked softmax): its composite runs wasm's SIMD softmax
    if (prim === "maskedSoftmax") return true;
    return prim === "unaryGrad" || prim === "rmsNorm" || prim === "softmaxGrad" || prim === "addN" || prim === "attnRead" || prim === "attnReadParts" || prim === "matmulRows" || prim === "ssmGate" || prim === "linearSoftplus" || prim === "conv1dCausalSilu" || prim === "matmulRowsMax" || prim === "addMatmul" || prim === "linearSigmoidGrad" || prim === "foldWeight" || prim === "linearSigmoidGate" || prim === "rmsNormScores";
  }

  /** Multi-output primitives: a wasm kernel where there is one (wasmMultiLaunchers), else the CPU kernels over views of the wasm heap. */
  runMulti<Kn extends MultiPrimName>(prim: Kn, inputs: readonly KernelArg[], outputs: readonly KernelArg[], params: MultiPrimParams[Kn]): void {
    this.#checkSizes(prim, [...inputs, ...outputs]);
    const launcher = this.choice === "ts" ? undefined : (wasmMultiLaunchers[prim] as MultiLauncher<Kn> | undefined);
    if (launcher && this.#launched(() => launcher(this.#ctx, inputs, outputs, params))) return;
    cpuMultiKernels[prim](inputs.map((a) => this.#cpuArg(a)), outputs.map((a) => this.#cpuArg(a)), params);
  }

  #launch(kid: number, words: readonly number[], ntasks: number, parallel: boolean): void {
    if (ntasks <= 0) return;
    this.heap.i32.set(words, this.#args >>> 2);
    if (parallel && this.#pool && ntasks > 1) this.#pool.run(this.#ex, kid, this.#args, ntasks);
    else if (this.#ex.run_tasks(kid, this.#args, ntasks) < 0) throw new Error(`wasm: unknown kernel ${kid}`);
  }

  /** Runs a kernel directly (benchmarks: the peak and saxpy kernels). */
  launchRaw(kid: number, words: readonly number[], ntasks: number, parallel: boolean): void {
    this.#launch(kid, words, ntasks, parallel);
  }

  /** Whether relaxed_madd fuses here: (1+2⁻¹²)² − 1 keeps its 2⁻²⁴ term only when fused. */
  #probeFusedMadd(): boolean {
    const a = this.alloc(2, "f32"), b = this.alloc(2, "f32"), c = this.alloc(1, "f32");
    try {
      const e = 1 + 2 ** -12;
      this.write(a, Float32Array.of(1, e));
      this.write(b, Float32Array.of(-1, e));
      const blas = this.#blas;
      this.#blas = null;
      try {
        this.run("matmul", [{ buf: a, shape: [1, 2], dtype: "f32" }, { buf: b, shape: [2, 1], dtype: "f32" }], { buf: c, shape: [1, 1], dtype: "f32" }, { transA: false, transB: false });
      } finally {
        this.#blas = blas;
      }
      return this.readSync(c)[0] !== 2 ** -11;
    } finally {
      this.free(a);
      this.free(b);
      this.free(c);
    }
  }

  liveBuffers(): number {
    return this.#live;
  }
  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** Stops the worker threads; the backend must not be used afterwards. */
  dispose(): void {
    this.#disposed = true;
    this.#pool?.dispose();
    this.#pool = null;
  }
}

/** A wasm backend with its worker threads running (or given up on: see kernelInfo / threadError). */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const b = new WasmBackend(opts);
  await b.ready;
  return b;
}

let shared: WasmBackend | null = null;
// setBackend("wasm") gives one shared instance (its threads start in the background).
registerBackend("wasm", () => (shared ??= new WasmBackend()));
