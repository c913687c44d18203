/**
 * Loading the wasm kernels: decodes the committed builds (kernels-wasm.ts, made by
 * packages/tensor/wasm/build.sh), picks the relaxed-SIMD build where the engine validates it
 * (Bun, Deno; Node 20 only with --experimental-wasm-relaxed-simd) and the plain SIMD128 build
 * otherwise, and creates the shared memory every thread's instance imports.
 */
import { KERNELS_RELAXED, KERNELS_SIMD } from "./kernels-wasm.ts";

export type WasmVariant = "relaxed" | "simd";

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let cache: { simd: Uint8Array<ArrayBuffer>; relaxed: Uint8Array<ArrayBuffer> } | null = null;
function builds() {
  cache ??= { simd: decode(KERNELS_SIMD), relaxed: decode(KERNELS_RELAXED) };
  return cache;
}

/** The bytes of one build. */
export function wasmBytes(variant: WasmVariant): Uint8Array<ArrayBuffer> {
  return builds()[variant];
}

/** Whether this engine has SharedArrayBuffer, shared wasm memory and SIMD128 (else: no wasm backend). */
export function wasmSupport(): string | null {
  if (typeof WebAssembly !== "object") return "no WebAssembly";
  if (typeof SharedArrayBuffer !== "function") return "no SharedArrayBuffer (a browser page needs cross-origin isolation)";
  if (!WebAssembly.validate(wasmBytes("simd"))) return "this engine does not validate the SIMD128 kernels";
  return null;
}

/** Whether the engine validates relaxed SIMD (f32x4.relaxed_madd). */
export function hasRelaxedSimd(): boolean {
  return WebAssembly.validate(wasmBytes("relaxed"));
}

/** The build to use: `want` if given and valid here, else relaxed where valid, else simd. */
export function chooseVariant(want?: WasmVariant): WasmVariant {
  if (want === "simd") return "simd";
  if (want === "relaxed" && !hasRelaxedSimd()) throw new Error("wasm: relaxed SIMD was asked for but this engine does not validate it (Node 20 needs --experimental-wasm-relaxed-simd)");
  return hasRelaxedSimd() ? "relaxed" : "simd";
}

/** 64 KiB pages: the most a wasm32 memory can have (4 GiB), as declared by the module. */
export const MAX_PAGES = 65536;

/** A shared memory of `initialPages`, with the largest maximum the engine grants (4 GiB, else 1 GiB). */
export function createSharedMemory(initialPages: number): { memory: WebAssembly.Memory; maxPages: number } {
  let last: unknown;
  for (const maximum of [MAX_PAGES, 16384, 4096]) {
    try {
      return { memory: new WebAssembly.Memory({ initial: initialPages, maximum, shared: true }), maxPages: maximum };
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`wasm: could not create a shared WebAssembly.Memory: ${(last as Error)?.message}`);
}

export interface KernelExports {
  /** Runs every task of a kernel on the calling thread (wasm/dispatch.c). */
  run_tasks(kid: number, args: number, ntasks: number): number;
  /** Takes tasks of job g from the job board until none is left (wasm/dispatch.c). */
  run_job(board: number, g: number, tid: number): number;
  __heap_base: WebAssembly.Global;
  __stack_pointer: WebAssembly.Global;
}

/** Instantiates a compiled module on `memory` (synchronously: fine outside a browser's main thread). */
export function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory): KernelExports {
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  return inst.exports as unknown as KernelExports;
}
