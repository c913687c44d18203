/**
 * Native matmul through a system BLAS (OpenBLAS's cblas_sgemm), called by FFI on pointers into the
 * wasm backend's shared memory: Bun's bun:ffi (dlopen + ptr) or Deno's Deno.dlopen (needs
 * --allow-ffi). Node has no FFI and browsers none either: they use the wasm kernels.
 *
 * The library: $MEMMAMBA_BLAS if set, else libopenblas.so.0 from the loader's search path or the
 * Debian locations (package libopenblas0-pthread, through the alternatives symlink).
 */
import { readEnv as env } from "../env.ts";

/** Bun's module-scoped `require` (declared here, not through @types/node, so that `deno check` of a program importing this package passes). */
declare const require: ((id: string) => unknown) | undefined;
const moduleRequire = typeof require === "function" ? require : undefined;

/** C[m,n] = op(A)·op(B) + beta·C on byte offsets into the memory (row-major, lda/ldb/ldc in elements). */
export interface Sgemm {
  (transA: boolean, transB: boolean, m: number, n: number, k: number, a: number, lda: number, b: number, ldb: number, beta: number, c: number, ldc: number): void;
}

export interface Blas {
  sgemm: Sgemm;
  /** Where it came from, e.g. "OpenBLAS 0.3.21 (SkylakeX) via bun:ffi from /usr/lib/…". */
  describe: string;
  /** Sets OpenBLAS's thread count (no-op where the library lacks it). */
  setThreads(n: number): void;
}

const CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112;

/**
 * OpenBLAS kernel sets (the core name in openblas_get_config, e.g. "… DYNAMIC_ARCH … Cooperlake
 * …") whose sgemm gives the same bits on one thread and on several for the K chunks that matmul
 * hands it (wasm/matmul.ts, blasKChunks). Measured with OpenBLAS 0.3.21 (python3 + ctypes, 1, 2,
 * 3, 4 and 8 threads, 64 random shapes × 3 transposes, OPENBLAS_CORETYPE set to each): SkylakeX,
 * Cooperlake and Sandybridge agree in every case; Haswell and Zen (the AVX2 kernels, which AVX2-only
 * x86 CPUs get) differ in every case, with K in calls of 256 as well. There (and on cores not
 * measured) the FFI matmul's bits may depend on the thread count; the wasm kernels' never do.
 */
export const BLAS_THREAD_STABLE_CORES = ["SkylakeX", "Cooperlake", "Sandybridge"] as const;

/** Whether a BLAS description (Blas.describe, KernelInfo.blas) names a core of BLAS_THREAD_STABLE_CORES. */
export function blasThreadStable(describe: string | null): boolean {
  return describe !== null && BLAS_THREAD_STABLE_CORES.some((c) => new RegExp(`\\b${c}\\b`).test(describe));
}

function candidates(): string[] {
  const own = env("MEMMAMBA_BLAS");
  if (own) return [own];
  return [
    "libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  ];
}

const SGEMM_ARGS = ["i32", "i32", "i32", "i32", "i32", "i32", "f32", "ptr", "i32", "ptr", "i32", "f32", "ptr", "i32"] as const;

function cstring(read: (i: number) => number): string {
  let s = "";
  for (let i = 0; i < 256; i++) {
    const c = read(i);
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/**
 * Opens the BLAS for a memory, or returns why it cannot (no FFI in this runtime, no permission,
 * library not found). `memory` is the wasm memory whose byte offsets sgemm takes.
 */
export function openBlas(memory: WebAssembly.Memory): Blas | string {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const errors: string[] = [];
  if (typeof g.Bun !== "undefined") {
    // deno-lint-ignore no-explicit-any
    let ffi: any;
    try {
      const spec = "bun:ffi";
      ffi = g.require ? g.require(spec) : (typeof moduleRequire === "function" ? moduleRequire(spec) : null);
    } catch (e) {
      return `bun:ffi unavailable: ${(e as Error).message}`;
    }
    if (!ffi) return "bun:ffi unavailable";
    for (const path of candidates()) {
      try {
        const lib = ffi.dlopen(path, {
          cblas_sgemm: { args: SGEMM_ARGS, returns: "void" },
          openblas_set_num_threads: { args: ["i32"], returns: "void" },
          openblas_get_config: { args: [], returns: "ptr" },
        });
        const s = lib.symbols;
        let base = 0, baseOf: SharedArrayBuffer | null = null;
        const ptrOf = (off: number) => {
          const buf = memory.buffer as unknown as SharedArrayBuffer;
          if (buf !== baseOf) {
            base = ffi.ptr(new Uint8Array(buf));
            baseOf = buf;
          }
          return base + off;
        };
        const cfgPtr = s.openblas_get_config();
        const cfg = cfgPtr ? new ffi.CString(cfgPtr).toString() : "";
        return {
          sgemm: (ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc) =>
            s.cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1, ptrOf(a), lda, ptrOf(b), ldb, beta, ptrOf(c), ldc),
          describe: `${cfg || "cblas"} via bun:ffi from ${path}`,
          setThreads: (n) => s.openblas_set_num_threads(n),
        };
      } catch (e) {
        errors.push(`${path}: ${(e as Error).message.split("\n")[0]}`);
      }
    }
    return `no BLAS library (${errors.join("; ")})`;
  }
  if (typeof g.Deno !== "undefined") {
    const D = g.Deno;
    if (typeof D.dlopen !== "function") return "Deno.dlopen unavailable";
    for (const path of candidates()) {
      try {
        const lib = D.dlopen(path, {
          cblas_sgemm: { parameters: SGEMM_ARGS.map((t) => (t === "ptr" ? "pointer" : t)), result: "void" },
          openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
          openblas_get_config: { parameters: [], result: "pointer", optional: true },
        });
        const s = lib.symbols;
        // deno-lint-ignore no-explicit-any
        let base: any = null, baseOf: SharedArrayBuffer | null = null;
        const ptrOf = (off: number) => {
          const buf = memory.buffer as unknown as SharedArrayBuffer;
          if (buf !== baseOf) {
            base = D.UnsafePointer.of(new Uint8Array(buf));
            baseOf = buf;
          }
          return D.UnsafePointer.offset(base, off);
        };
        let cfg = "";
        const cp = s.openblas_get_config?.();
        if (cp) {
          const view = new D.UnsafePointerView(cp);
          cfg = cstring((i) => view.getUint8(i));
        }
        return {
          sgemm: (ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc) =>
            s.cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1, ptrOf(a), lda, ptrOf(b), ldb, beta, ptrOf(c), ldc),
          describe: `${cfg || "cblas"} via Deno.dlopen from ${path}`,
          setThreads: (n) => s.openblas_set_num_threads?.(n),
        };
      } catch (e) {
        const msg = (e as Error).message.split("\n")[0];
        if (/permission|--allow-ffi|NotCapable/i.test(msg + (e as Error).name)) return `FFI not permitted (run Deno with --allow-ffi): ${msg}`;
        errors.push(`${path}: ${msg}`);
      }
    }
    return `no BLAS library (${errors.join("; ")})`;
  }
  return "this runtime has no FFI (Node and browsers use the wasm kernels)";
}
