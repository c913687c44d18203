/**
 * The peers of the CPU kernel benchmark (cpu-kernels.ts), each timing an n × n fp32 matmul the way
 * its users would run it:
 *
 * - jax-js (`@jax-js/jax`, its "wasm" device: its own kernels and worker threads),
 * - TensorFlow.js with `@tensorflow/tfjs-backend-wasm` (XNNPACK; its threaded build is only loaded
 *   in browsers, so it runs on one thread under Bun, Deno and Node),
 * - numpy (Debian's python3-numpy on the system OpenBLAS, all cores), in a child process: in the
 *   runtime's own environment (the one our FFI matmul loads OpenBLAS in: the ratio the issue asks
 *   for), and again with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed (OpenBLAS then picks the
 *   kernel for the CPU it finds: context),
 * - plain JavaScript: the textbook i-k-j loop on one thread.
 *
 * Each peer gives a timer of one call (ms), set up once per size; the caller warms every timer up
 * and then calls them in turn, round after round (so a change in the machine's load hits all
 * alike), each sample the median of a few back-to-back calls (threads awake, as in a loop of
 * calls), and takes medians.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { median, now } from "./runtime.ts";

/**
 * Back-to-back calls per sample (their median is the sample): the first call of a burst may wait
 * for worker threads that slept through the pause before it (a futex wake took 1-4 ms on the
 * 2-vCPU VM); the later ones find them awake, as a loop of calls does.
 */
export const BACK_TO_BACK = 3;

export interface PeerTiming {
  samplesMs: number[];
  medianMs: number;
  /** What ran (library and version, device, threads). */
  detail: string;
}

export function fillMatrix(n: number, salt: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca77);
    out[i] = ((Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** Warm-up (at least `warmupMs` and 2 calls), then `runs` timed calls. */
export async function timeAsync(fn: () => Promise<void> | void, runs: number, warmupMs: number): Promise<PeerTiming> {
  const w0 = now();
  let calls = 0;
  while (calls < 2 || now() - w0 < warmupMs) {
    await fn();
    calls++;
  }
  const samplesMs: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = now();
    await fn();
    samplesMs.push(now() - t);
  }
  return { samplesMs, medianMs: median(samplesMs), detail: "" };
}

// ---------------------------------------------------------------------------------------------

// deno-lint-ignore no-explicit-any
type Any = any;

/** One peer at one size, set up once: `once()` times one call (ms). */
export interface CallTimer {
  detail: string;
  once(): Promise<number>;
  /**
   * Set where once() already returns the median of back-to-back calls made in one go (numpy: one
   * python process per sample), so that the caller calls it once per sample.
   */
  backToBack?: boolean;
  dispose(): void;
}

let jax: Any = null;
/** jax-js on its wasm device (its own kernels and worker threads), or why it cannot load. */
export async function jaxTimer(n: number): Promise<CallTimer | string> {
  try {
    if (!jax) {
      // jax-js sizes its worker pool from navigator.hardwareConcurrency, which Node 20 lacks
      // deno-lint-ignore no-explicit-any
      const g = globalThis as any;
      if (typeof g.navigator === "undefined") {
        const os = await import("node:os");
        g.navigator = { hardwareConcurrency: os.availableParallelism?.() ?? os.cpus().length };
      }
      jax = await import("@jax-js/jax");
      await jax.init();
      jax.defaultDevice("wasm");
    }
  } catch (e) {
    jax = null;
    return `jax-js unavailable: ${(e as Error).message}`;
  }
  const np = jax.numpy;
  const a = np.array(fillMatrix(n * n, 1)).reshape([n, n]);
  const b = np.array(fillMatrix(n * n, 2)).reshape([n, n]);
  return {
    detail: "@jax-js/jax wasm device",
    once: async () => {
      const t = now();
      const c = np.matmul(a.ref, b.ref);
      await c.blockUntilReady();
      const ms = now() - t;
      c.dispose();
      return ms;
    },
    dispose: () => {
      a.dispose();
      b.dispose();
    },
  };
}

let tf: Any = null;
/** TensorFlow.js on its wasm backend, or why it cannot load. */
export async function tfjsTimer(n: number, root: string): Promise<CallTimer | string> {
  try {
    if (!tf) {
      tf = await import("@tensorflow/tfjs");
      const wasm = await import("@tensorflow/tfjs-backend-wasm");
      wasm.setWasmPaths(join(root, "node_modules/@tensorflow/tfjs-backend-wasm/dist/") + "/");
      if (!(await tf.setBackend("wasm"))) throw new Error("setBackend('wasm') failed");
      await tf.ready();
    }
  } catch (e) {
    tf = null;
    return `tfjs-wasm unavailable: ${(e as Error).message}`;
  }
  const a = tf.tensor2d(fillMatrix(n * n, 1), [n, n]);
  const b = tf.tensor2d(fillMatrix(n * n, 2), [n, n]);
  return {
    detail: `@tensorflow/tfjs ${tf.version?.tfjs ?? ""} wasm backend`,
    once: () => {
      const t = now();
      const c = tf.matMul(a, b);
      c.dataSync();
      const ms = now() - t;
      c.dispose();
      return Promise.resolve(ms);
    },
    dispose: () => {
      a.dispose();
      b.dispose();
    },
  };
}

/** C = A · B, n × n row-major, the textbook i-k-j loop (unit-stride inner loop, no blocking), one thread. */
export function plainMatmul(A: Float32Array, B: Float32Array, n: number): Float32Array {
  const C = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const ci = i * n;
    for (let k = 0; k < n; k++) {
      const a = A[ci + k];
      const bk = k * n;
      for (let j = 0; j < n; j++) C[ci + j] += a * B[bk + j];
    }
  }
  return C;
}

export async function plainJsMatmul(n: number, runs: number, warmupMs: number): Promise<PeerTiming> {
  const A = fillMatrix(n * n, 1), B = fillMatrix(n * n, 2);
  const t = await timeAsync(() => {
    plainMatmul(A, B, n);
  }, runs, warmupMs);
  t.detail = "i-k-j loop, one thread";
  return t;
}

const NUMPY_SCRIPT = `
import json, sys, time
import numpy as np
n, calls = int(sys.argv[1]), int(sys.argv[2])
out = {"version": np.__version__, "config": ""}
try:
    import ctypes
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_config.restype = ctypes.c_char_p
    out["config"] = lib.openblas_get_config().decode()
except Exception as e:
    out["config"] = "unknown (" + str(e) + ")"
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32) * 2 - 1
b = rng.random((n, n), dtype=np.float32) * 2 - 1
a @ b
samples = []
for _ in range(calls):
    t = time.perf_counter()
    a @ b
    samples.append((time.perf_counter() - t) * 1000)
out["samples"] = samples
print(json.dumps(out))
`;

/**
 * A command line run through `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`: OpenBLAS then picks
 * its kernel for the CPU it finds. The `env` command unsets them the same way under every runtime
 * (Deno's child_process kept variables that an `env` option to spawnSync left out).
 */
function withBlasUnset(argv: readonly string[]): string[] {
  return ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", ...argv];
}

/**
 * numpy's matmul (Debian's python3-numpy on the system OpenBLAS, all cores): each `once()` runs a
 * python process that multiplies once to warm up, then times `perSample` back-to-back calls and gives
 * their median. `env` "same": the runtime's environment as it is (where OPENBLAS_CORETYPE and
 * OPENBLAS_L2_SIZE say which kernel OpenBLAS runs, as for our FFI matmul in this process); "auto":
 * both unset (withBlasUnset).
 */
export function numpyTimer(n: number, perSample = BACK_TO_BACK, env: "same" | "auto" = "same"): CallTimer | string {
  const python = process.env.MEMMAMBA_PYTHON ?? "/usr/bin/python3";
  const call = (calls: number) => {
    const argv = [python, "-c", NUMPY_SCRIPT, String(n), String(calls)];
    const [cmd, ...args] = env === "auto" ? withBlasUnset(argv) : argv;
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) return `numpy unavailable (${python}): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`;
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as { version: string; config: string; samples: number[] };
  };
  const probe = call(1);
  if (typeof probe === "string") return probe;
  const vars = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"].map((k) => `${k}=${process.env[k] ?? "(unset)"}`).join(", ");
  return {
    detail: `numpy ${probe.version} (${python}; ${env === "auto" ? "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset" : `the runtime's environment: ${vars}`}; OpenBLAS ${probe.config})`,
    once: () => {
      const r = call(perSample);
      if (typeof r === "string") throw new Error(r);
      return Promise.resolve(median(r.samples));
    },
    backToBack: true,
    dispose: () => {},
  };
}

const TORCH_STEP_SCRIPT = `
import json, os, sys, time
import torch
sys.path.insert(0, sys.argv[1])
from memmamba_ref import LM, preset
B, L, runs, threads = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(0)
torch.set_num_threads(threads)
cfg = preset("small")
model = LM(cfg)
tokens = torch.randint(0, cfg.vocab, (B, L))
targets = torch.randint(0, cfg.vocab, (B, L))
def step():
    loss = model.loss(tokens, targets)
    loss.backward()
    model.zero_grad(set_to_none=True)
step()
samples = []
for _ in range(runs):
    t = time.perf_counter()
    step()
    samples.append((time.perf_counter() - t) * 1000)
print(json.dumps({"version": torch.__version__, "threads": torch.get_num_threads(), "samples": samples}))
`;

/**
 * One training step (loss and every gradient, no optimizer) of the "small" MemMamba on B × L tokens
 * in the PyTorch reference port (packages/memmamba/reference) on Debian's python3-torch, all cores.
 */
export function torchTrainStep(root: string, B: number, L: number, runs: number, threads: number): PeerTiming | string {
  const python = process.env.MEMMAMBA_PYTHON ?? "/usr/bin/python3";
  const ref = join(root, "packages/memmamba/reference");
  // (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command alone, as the issue asks)
  const [cmd, ...args] = withBlasUnset([python, "-c", TORCH_STEP_SCRIPT, ref, String(B), String(L), String(runs), String(threads)]);
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 1_200_000 });
  if (r.status !== 0) return `torch unavailable (${python}): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`;
  const res = JSON.parse(r.stdout.trim().split("\n").pop()!) as { version: string; threads: number; samples: number[] };
  return { samplesMs: res.samples, medianMs: median(res.samples), detail: `PyTorch ${res.version} (${python}), ${res.threads} threads, memmamba_ref` };
}
