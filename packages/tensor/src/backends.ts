/**
 * Picking a backend by name, for programs and the command line.
 *
 * The fast CPU backend (wasm SIMD kernels on worker threads, matmul through the system OpenBLAS
 * where the runtime has FFI) and the WebGPU backend start asynchronously (workers, adapter and
 * device), so they are not in the synchronous `setBackend` registry by default; `initBackend`
 * starts one, makes it current and returns it. Their modules are imported only when asked for,
 * so a program that uses the reference CPU backend never loads them.
 */
import type { Backend } from "./backend.ts";
import { setBackend } from "./engine.ts";
import { cpuThreadsFromEnv, readEnv as env } from "./env.ts";

/** Where tensors live: the CPU (kernels per `cpuKernels`) or a WebGPU device. */
export type BackendKind = "cpu" | "webgpu";
/**
 * Which CPU kernels run (see wasm/backend.ts): `auto` (OpenBLAS matmul where available, wasm SIMD
 * for the rest), `wasm`, `wasm-simd` (no relaxed SIMD: the same bits under every engine), or `ts`
 * (the plain TypeScript reference backend, bit-identical under every runtime).
 */
export type CpuKernels = "auto" | "wasm" | "wasm-simd" | "ts";
/** The accepted values of {@link CpuKernels}, for argument parsers. */
export const CPU_KERNELS: readonly CpuKernels[] = ["auto", "wasm", "wasm-simd", "ts"];

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /** CPU kernels (default: $MEMMAMBA_CPU_KERNELS, else "auto"). */
  cpuKernels?: CpuKernels;
  /** CPU threads (default: $MEMMAMBA_CPU_THREADS, else the logical cores). */
  threads?: number;
  /** Do not print the one line that says the BLAS library is missing. */
  quiet?: boolean;
}

/** The CPU kernel choice from the environment ($MEMMAMBA_CPU_KERNELS), checked. */
export function cpuKernelsFromEnv(): CpuKernels | undefined {
  const v = env("MEMMAMBA_CPU_KERNELS");
  if (v === undefined || v === "") return undefined;
  if (!(CPU_KERNELS as readonly string[]).includes(v)) {
    throw new Error(`MEMMAMBA_CPU_KERNELS=${v}: expected one of ${CPU_KERNELS.join(", ")}`);
  }
  return v as CpuKernels;
}

/**
 * Starts the backend `kind`, makes it the current one and returns it. The CPU backend falls back
 * to the reference TypeScript kernels (with one line on stderr) where WebAssembly threads cannot
 * start; WebGPU throws an error that says what was found and why it failed.
 */
export async function initBackend(kind: BackendKind, opts: InitBackendOptions = {}): Promise<Backend> {
  const choice = kind === "cpu" ? opts.cpuKernels ?? cpuKernelsFromEnv() ?? "auto" : "";
  // a bad $MEMMAMBA_CPU_THREADS is the user's error, not a reason to fall back to slower kernels
  if (kind === "cpu" && choice !== "ts" && opts.threads === undefined) cpuThreadsFromEnv();
  // one instance per kind and kernel choice: a second call (a command that runs another) reuses
  // the running workers or device instead of starting more
  const key = `${kind}:${choice}:${opts.threads ?? ""}`;
  let p = started.get(key);
  if (!p) {
    p = start(kind, choice as CpuKernels, opts);
    started.set(key, p);
    p.catch(() => started.delete(key));
  }
  return setBackend(await p);
}

const started = new Map<string, Promise<Backend>>();

async function start(kind: BackendKind, choice: CpuKernels, opts: InitBackendOptions): Promise<Backend> {
  if (kind === "webgpu") {
    const { createWebGpuBackend } = await import("./webgpu/backend.ts");
    return await createWebGpuBackend();
  }
  if (kind !== "cpu") throw new Error(`initBackend: unknown backend "${String(kind)}" (expected cpu or webgpu)`);
  if (choice === "ts") return setBackend("cpu");
  try {
    const { createWasmBackend } = await import("./wasm/backend.ts");
    return await createWasmBackend({ kernels: choice, threads: opts.threads, quiet: opts.quiet });
  } catch (e) {
    console.error(`cpu: the wasm kernels could not start (${e instanceof Error ? e.message : String(e)}); using the TypeScript kernels`);
    return setBackend("cpu");
  }
}

/** One line that says what runs: the backend, its kernels and threads, or the GPU adapter. */
export function describeBackend(b: Backend): string {
  // deno-lint-ignore no-explicit-any
  const any = b as any;
  if (typeof any.kernelInfo === "function") {
    const k = any.kernelInfo();
    const blas = k.matmul === "blas" ? ` (${k.blas})` : k.blas ? ` (no BLAS: ${k.blas})` : "";
    return `cpu: matmul ${k.matmul}${blas}, other kernels ${k.kernels}, ${k.threads} thread${k.threads === 1 ? "" : "s"}`;
  }
  if (typeof any.adapterInfo === "string") return `webgpu: ${any.adapterInfo}${any.via ? ` via ${any.via}` : ""}`;
  if (b.name === "cpu") return "cpu: TypeScript reference kernels, 1 thread";
  return b.name;
}
