/**
 * What the wasm CPU backend (backend.ts) is made with and reports: the kernel choice, the options
 * (threads, memory, speed switches), the KernelInfo that kernelInfo() returns, and the machine's
 * logical core count that the thread count defaults to.
 *
 * Kernel choice (option `kernels`, else $MEMMAMBA_CPU_KERNELS):
 *   auto       BLAS matmul where available (one printed line when the runtime has FFI but no
 *              library), wasm kernels for the rest, relaxed SIMD where valid   (the default)
 *   wasm       the wasm kernels only (relaxed SIMD where valid)
 *   wasm-simd  the wasm kernels without relaxed SIMD: no fused multiply-add anywhere, so results
 *              are the same bits under every engine (use it where a test pins cross-runtime bits)
 *   ts         the TypeScript reference kernels for every primitive (on the shared memory)
 * Threads: option `threads`, else $MEMMAMBA_CPU_THREADS, else the machine's logical cores. For a
 * given kernel choice the results do not depend on the thread count (wasm/common.h says why).
 */
export type CpuKernelChoice = "auto" | "wasm" | "wasm-simd" | "ts";
export const CHOICES: CpuKernelChoice[] = ["auto", "wasm", "wasm-simd", "ts"];

export interface WasmBackendOptions {
  /** Threads that run a kernel, the calling one included (default: $MEMMAMBA_CPU_THREADS or the logical cores). */
  threads?: number;
  /** See the module comment (default: $MEMMAMBA_CPU_KERNELS or "auto"). */
  kernels?: CpuKernelChoice;
  /** Initial memory in MiB (it grows as needed; default 64). */
  initialMemoryMiB?: number;
  /** How long an idle worker thread spins for the next kernel before it sleeps in Atomics.wait (ms, default 2). */
  spinMs?: number;
  /** Do not print the one line that says BLAS is missing. */
  quiet?: boolean;
  /**
   * Rows of the wasm matmul's register tile (default: 4 under Deno, whose V8 bounds-checks every
   * wasm load, 6 elsewhere: see wasm/gemm.c). Speed only: the results are the same bits either way.
   */
  gemmTile?: 4 | 6;
  /**
   * Whether the selective scan computes eight exps in lockstep (default: on; off only to compare.
   * Measured on the forward, one thread: 0.72 (Bun), 0.55-0.57 (Deno), 0.82 (Node 20) of the time
   * of one exp at a time; see wasm/ssm.c). Speed only: the same bits either way.
   */
  expLockstep?: boolean;
  /**
   * Whether the linear scan reads a word of its inputs and of its output 64 KiB ahead once per
   * page, a software prefetch (default: on; off only to compare. Measured side by side with saxpy
   * on the 2-vCPU Zen VM, one thread: 0.57-0.64 untouched -> 0.64-0.75 of saxpy's bytes/s under
   * Deno, Bun and Node 20; see wasm/common.h). Speed only: the same bits either way.
   */
  touchAhead?: boolean;
}

export interface KernelInfo {
  /** What runs matmul: "blas", "wasm-relaxed", "wasm-simd" or "ts". */
  matmul: "blas" | "wasm-relaxed" | "wasm-simd" | "ts";
  /** What runs the other primitives with a wasm kernel: "wasm-relaxed", "wasm-simd" or "ts". */
  kernels: "wasm-relaxed" | "wasm-simd" | "ts";
  /** The library behind "blas", or why it is not used (null when not asked for). */
  blas: string | null;
  /**
   * Whether the BLAS matmul's bits are the same whatever the thread count (measured per OpenBLAS
   * kernel set: see BLAS_THREAD_STABLE_CORES in ffi/blas.ts); null when matmul is not "blas".
   */
  blasThreadStable: boolean | null;
  /** Threads a large kernel runs on now (1 until the workers have started). */
  threads: number;
  /** Whether f32x4.relaxed_madd rounds once (a fused multiply-add) on this engine and machine. */
  relaxedMaddFused: boolean | null;
  /** The choice this backend was made with. */
  choice: CpuKernelChoice;
  /** Rows of the wasm matmul's register tile (4 or 6; speed only, see WasmBackendOptions.gemmTile). */
  gemmTile: 4 | 6;
  /** Whether the selective scan runs its exps eight in lockstep (speed only, see WasmBackendOptions.expLockstep). */
  expLockstep: boolean;
  /** Whether the linear scan touches its inputs and output ahead (speed only, see WasmBackendOptions.touchAhead). */
  touchAhead: boolean;
}

/** The logical cores of this machine (navigator.hardwareConcurrency, else node:os). */
export async function logicalCores(): Promise<number> {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const hc = g.navigator?.hardwareConcurrency;
  if (typeof hc === "number" && hc > 0) return hc;
  try {
    const spec = "node:os";
    const os = await import(/* @vite-ignore */ spec);
    return os.availableParallelism?.() ?? os.cpus().length ?? 1;
  } catch {
    return 1;
  }
}
