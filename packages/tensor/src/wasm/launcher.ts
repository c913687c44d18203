/**
 * What the wasm backend's kernel launchers (kernels.ts, the table; matmul.ts, elementwise.ts,
 * nn.ts, ssm.ts, indexing.ts) share: what a launcher needs from the backend (WasmCtx), the
 * launcher types, the work below which a kernel stays on the calling thread, and the size helpers.
 */
import type { KernelArg, MultiPrimName, MultiPrimParams, PrimName, PrimParams } from "../backend.ts";
import type { Sgemm } from "../ffi/blas.ts";
import type { WasmHeap } from "./heap.ts";

/** What a launcher needs from the backend. */
export interface WasmCtx {
  readonly heap: WasmHeap;
  /** Threads a parallel job runs on (1 when there is no pool). */
  readonly threads: number;
  /** Byte offset of an argument's buffer in the memory. */
  ptr(a: KernelArg): number;
  /** Runs tasks [0, ntasks) of a kernel on `words` (i32 args); on all threads when `parallel`. */
  launch(kid: number, words: readonly number[], ntasks: number, parallel: boolean): void;
  /** A temporary block (freed by the backend after the kernel). */
  temp(bytes: number): number;
  /** The per-thread matmul packing scratch: base and stride (bytes). */
  readonly gemmScratch: { base: number; stride: number };
  /** The native sgemm, when the backend uses it for matmul. */
  readonly sgemm: Sgemm | null;
  /** Sets the BLAS's thread count (for one call: see matmul). */
  blasThreads(n: number): void;
  /** Rows of the matmul's register tile, 4 or 6 (wasm/gemm.c: per engine; never changes a result). */
  readonly gemmTile: 4 | 6;
  /** Whether the selective scan computes eight exps in lockstep (wasm/ssm.c, step; never changes a result). */
  readonly expLockstep: boolean;
  /** Whether the linear scan touches its inputs and output ahead (wasm/common.h, touch; never changes a result). */
  readonly touchAhead: boolean;
}

/** A launcher: true when it ran the kernel, false to let the TypeScript reference run it. */
export type Launcher<Kn extends PrimName> = (ctx: WasmCtx, ins: readonly KernelArg[], out: KernelArg, p: PrimParams[Kn]) => boolean;
/** A multi-output primitive's wasm kernel (Backend.runMulti); false: not handled, the TypeScript kernel runs. */
export type MultiLauncher<Kn extends MultiPrimName> = (ctx: WasmCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], p: MultiPrimParams[Kn]) => boolean;

/** Work (elements or flops) below which a kernel stays on the calling thread. */
export const PARALLEL_MIN_WORK = 1 << 15;

export const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
export const ceilDiv = (a: number, b: number) => Math.floor((a + b - 1) / b);
export const roundUp = (a: number, m: number) => ceilDiv(a, m) * m;
