/**
 * The fast CPU backend against its peers, side by side in one run (issue 13):
 *
 *   for each runtime (Deno, Bun, Node 20 through an esbuild bundle) — one child process each —
 *   - the measured WASM SIMD peak: a register-only loop of 12 independent f32x4 multiply-adds
 *     (the same instruction as the matmul: relaxed_madd where the engine validates it), on every
 *     thread at once (8 tasks per thread from the matmul's job board: per thread, summed), and on
 *     one thread;
 *   - saxpy bandwidth: y = a·x + y on 64 MiB arrays, on one thread and on all;
 *   - fp32 matmul n × n (512, 1024, 2048), median GFLOP/s of several runs (each the median of 3
 *     back-to-back calls, as for the peak and saxpy), for: ours-wasm (the wasm
 *     backend's packed SIMD kernels, all threads), ours-ffi (the same backend's cblas_sgemm over
 *     FFI: Bun and Deno), jax-js (wasm device), tfjs-wasm, numpy (system OpenBLAS, all cores, in
 *     the runtime's environment; numpy-auto: with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset) and
 *     plain JS (i-k-j loop, one thread);
 *   - memory-bound kernels of the wasm backend (all threads): the linear scan (the scan primitive),
 *     an elementwise op (silu), a row reduction (sum over the last axis), and the selective scan
 *     forward and forward + backward (compute-bound: GFLOP/s);
 *   - one training step (loss + every gradient) of the "small" MemMamba on 4 × 128 tokens: tokens/s
 *     on the plain-TypeScript CPU backend, the wasm kernels and wasm + FFI; PyTorch (the reference
 *     port on Debian's python3-torch, all cores) once, by the parent, in the same run;
 *   - a summary with the ratios the goals name: wasmOfPeak (ours-wasm at 1024² / the peak),
 *     wasmOverBestPeer (/ the faster of jax-js and tfjs-wasm), ffiOverNumpy (ours-ffi / numpy at
 *     1024², both in the same environment), scanOfBandwidth (the scan's GB/s / saxpy's, all threads).
 *
 * Prints one table and writes packages/bench/results/cpu.json. Asserts nothing about time.
 *
 *   bun packages/bench/src/cpu-kernels.ts [--runtimes deno,bun,node] [--sizes 512,1024,2048] [--runs 7]
 *                                         [--only matmul,memory,step] [--out packages/bench/results/cpu.json]
 * (one runtime only, printing its JSON: --child --json-out FILE)
 */
import {
  choice, detectRuntime, flagList, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, now, parseFlags, POSITIVE_INT, positiveInt,
  readJson, repoRoot, runMain, UsageError, writeJson, type Cell, type MachineInfo, type RuntimeInfo,
} from "./runtime.ts";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  disposeTree, fromArray, matmul, mul, random, readCounters, resetCounters, scan, selectiveScan, setBackend, silu, sum, valueAndGrad,
  type Backend,
} from "@memmamba/tensor";
import { lm, preset } from "@memmamba/memmamba";
import { createWasmBackend, type WasmBackend } from "../../tensor/src/wasm/backend.ts";
import { K } from "../../tensor/src/wasm/kernel-ids.ts";
import {
  BACK_TO_BACK, fillMatrix, jaxTimer, numpyTimer, plainJsMatmul, tfjsTimer, timeAsync, torchTrainStep, type CallTimer,
} from "./cpu-peers.ts";

const HELP = `cpu-kernels: the wasm / FFI CPU kernels against jax-js, tfjs-wasm, numpy and plain JS

  --runtimes a,b,...  runtimes to run, each in its own process (default deno,bun,node)
  --sizes a,b,...     square matmul sizes (default 512,1024,2048)
  --runs N            timed runs per case; the median is reported (default 7; plain JS at 2048: 3).
                      Each run is the median of 3 back-to-back calls (threads awake)
  --warmup-ms MS      warm-up per case (default 400)
  --only a,b,...      sections to measure (default all): matmul (the matmul table, the peak's
                      ratios), memory (saxpy and the memory-bound kernels: scanOfBandwidth),
                      step (the training step, with PyTorch); the peak and saxpy are always
                      measured. For example --only memory to compare the scan with saxpy alone.
  --out FILE          the combined JSON (default packages/bench/results/cpu.json)
                      (the summary's matmul ratios are at 1024²: null unless --sizes has 1024)
  --child             measure this runtime only (used by the parent)
  --json-out FILE     where a child writes its JSON
  --help              this text`;

export const KERNELS = ["ours-wasm", "ours-ffi", "jax-js", "tfjs-wasm", "numpy", "numpy-auto", "plain-js"] as const;
export type KernelName = (typeof KERNELS)[number];

export const GOALS = { wasmOfPeak: 0.7, wasmOverBestPeer: 1.3, ffiOverNumpy: 0.85, scanOfBandwidth: 0.7 };

/** The runtimes --runtimes picks from (each runs in a child process of its own). */
export const RUNTIMES = ["deno", "bun", "node"] as const;

/** The matmul size the summary's ratios (and goals) are measured at: n × n. */
export const RATIO_N = 1024;

/** The sections `--only` picks from (each one's rows and ratios; the rest come out empty or null). */
export const SECTIONS = ["matmul", "memory", "step"] as const;
export type Section = (typeof SECTIONS)[number];

interface MatmulRow {
  kernel: KernelName;
  n: number;
  /** Median GFLOP/s (2n³ / median time); null where the kernel is not available here. */
  gflops: number | null;
  medianMs: number | null;
  samplesMs: number[];
  detail: string;
}

/** The training step's batch: B sequences of L tokens. */
export const STEP_B = 4, STEP_L = 128;

interface StepRow {
  backend: "ts" | "ours-wasm" | "ours-ffi" | "torch";
  tokensPerSec: number | null;
  medianMs: number | null;
  samplesMs: number[];
  detail: string;
}

interface BoundRow {
  kernel: string;
  shape: number[];
  medianMs: number;
  /** Bytes the kernel reads + writes (its inputs and output once). */
  bytes: number;
  gbPerSec: number;
  gflops: number | null;
}

export interface RuntimeResult {
  runtime: RuntimeInfo;
  machine: MachineInfo;
  date: string;
  threads: number;
  kernelInfo: ReturnType<WasmBackend["kernelInfo"]>;
  ffiInfo: string | null;
  peak: { gflops: number; gflopsOneThread: number; threads: number; instruction: string };
  saxpy: { gbPerSec: number; gbPerSecOneThread: number; bytesPerCall: number };
  matmul: MatmulRow[];
  memoryBound: BoundRow[];
  trainStep: StepRow[];
  summary: {
    /**
     * The matmul size the ratios below that use a matmul are taken at (RATIO_N), or null where
     * --sizes left it out (those ratios are then null: another size's time against 1024's flops
     * would be meaningless).
     */
    matmulN: number | null;
    wasmOfPeak: number | null;
    wasmOverBestPeer: number | null;
    bestPeer: string | null;
    ffiOverNumpy: number | null;
    /**
     * Extra context: ours-ffi over numpy with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (numpy-auto:
     * OpenBLAS's kernel for the CPU it finds, where ours-ffi runs the one the environment names).
     */
    ffiOverNumpyAuto: number | null;
    scanOfBandwidth: number | null;
    /**
     * Extra context: ours-wasm at 1024² on one thread over the peak loop on one thread (the same
     * kernels without the second thread, which a busy or shared machine slows first).
     */
    wasmOfPeakOneThread: number | null;
    /** Extra context: the elementwise mul and the row sum against saxpy, all threads. */
    elementwiseOfBandwidth: number | null;
    reduceOfBandwidth: number | null;
    /** The small model's training step, tokens/s: the fastest of ours over the TypeScript kernels. */
    trainStepOverTs: number | null;
    goalsMet: Record<keyof typeof GOALS, boolean | null>;
  };
  notes: string[];
  /** The machine's 1-minute load average before and after this runtime's run (others' work skews timings). */
  loadAverage: { before: number; after: number };
}

// ---------------------------------------------------------------------------------------------
// measurements (one runtime)

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Iterations of the peak loop per task (~1.6 ms at 60 GFLOP/s), and tasks per thread. */
const PEAK_ITERS = 1_000_000, PEAK_TASKS_PER_THREAD = 8;
/**
 * Flops of one peak call per thread (~13 ms at 60 GFLOP/s: about as long as the 1024² matmul it
 * is compared with, so that a time slice lost to another process weighs alike on both).
 */
const PEAK_FLOPS_PER_THREAD = PEAK_TASKS_PER_THREAD * PEAK_ITERS * 12 * 8;

/**
 * The register-only FMA loop on `threads` threads at once: 8 tasks per thread, taken from the
 * same job board as the matmul's (so a worker that wakes late or shares its core is counted the
 * same way in both; with one task per thread, the calling thread ran both tasks whenever the
 * worker woke late, and the "2-thread peak" came out as the 1-thread one).
 */
function peakTimer(b: WasmBackend, threads: number): CallTimer {
  const tasks = threads * PEAK_TASKS_PER_THREAD;
  const out = b.heap.alloc(tasks * 4);
  const run = () => b.launchRaw(K.PEAK, [PEAK_ITERS, out], tasks, threads > 1);
  return {
    detail: "12 independent f32x4 multiply-adds in registers",
    once: () => {
      const t = now();
      run();
      return Promise.resolve(now() - t);
    },
    dispose: () => b.heap.free(out, tasks * 4),
  };
}

/** y = a·x + y on 64 MiB arrays, split over `threads` threads. */
function saxpyTimer(b: WasmBackend, threads: number): CallTimer {
  const n = 16 * 1024 * 1024;
  const x = b.heap.alloc(n * 4), y = b.heap.alloc(n * 4);
  b.heap.f32.fill(0.5, x >> 2, (x >> 2) + n);
  b.heap.f32.fill(0.25, y >> 2, (y >> 2) + n);
  const alpha = new Int32Array(Float32Array.of(1e-3).buffer)[0];
  const chunk = Math.ceil(n / (threads * 8) / 16) * 16;
  return {
    detail: "64 MiB arrays",
    once: () => {
      const t = now();
      b.launchRaw(K.SAXPY, [n, alpha, x, y, chunk], Math.ceil(n / chunk), threads > 1);
      return Promise.resolve(now() - t);
    },
    dispose: () => {
      b.heap.free(x, n * 4);
      b.heap.free(y, n * 4);
    },
  };
}

/** A tensor-level call on backend `b`, timed (the backend is selected before each call). */
function opTimer(b: Backend, fn: () => void, dispose: () => void, detail: string): CallTimer {
  return {
    detail,
    once: () => {
      setBackend(b);
      const t = now();
      fn();
      return Promise.resolve(now() - t);
    },
    dispose,
  };
}

function matmulTimer(b: WasmBackend, n: number, detail: string): CallTimer {
  setBackend(b);
  const a = fromArray(fillMatrix(n * n, 1), [n, n]), c = fromArray(fillMatrix(n * n, 2), [n, n]);
  return opTimer(b, () => matmul(a, c).dispose(), () => disposeTree([a, c]), detail);
}

/**
 * Warms every timer up (≥ warmupMs and 2 calls each), then runs `rounds` rounds, each taking one
 * sample of every timer, in an order rotated from round to round, with a pause between samples
 * (OpenBLAS's threads busy-wait after a call). A sample is the median of `calls` back-to-back calls
 * (BACK_TO_BACK; a timer with `backToBack` makes them itself): every kernel, the peak and saxpy
 * alike, is timed with its threads awake. Returns each timer's per-round samples (ms).
 */
async function interleave(timers: Record<string, CallTimer>, rounds: number, warmupMs: number, calls = BACK_TO_BACK): Promise<Record<string, number[]>> {
  const names = Object.keys(timers);
  for (const k of names) {
    const t0 = now();
    for (let i = 0; i < 2 || now() - t0 < warmupMs; i++) await timers[k].once();
    await sleep(100);
  }
  const out: Record<string, number[]> = Object.fromEntries(names.map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < names.length; j++) {
      const k = names[(j + r) % names.length];
      const burst: number[] = [];
      for (let c = 0; c < (timers[k].backToBack ? 1 : calls); c++) burst.push(await timers[k].once());
      out[k].push(median(burst));
      await sleep(100);
    }
  }
  return out;
}

/** The median over rounds of a per-round ratio (robust to the machine's load drifting). */
function medianRatio(a: number[] | undefined, b: number[] | undefined, f: (x: number, y: number) => number): number | null {
  if (!a || !b || a.length === 0 || a.length !== b.length) return null;
  return median(a.map((x, i) => f(x, b[i])));
}

/** The summary's matmul ratios (see RuntimeResult["summary"]), from the per-round samples (ms) of each size's timers. */
export type MatmulRatios = Pick<RuntimeResult["summary"], "matmulN" | "wasmOfPeak" | "wasmOfPeakOneThread" | "wasmOverBestPeer" | "ffiOverNumpy" | "ffiOverNumpyAuto">;

/**
 * The matmul ratios at RATIO_N × RATIO_N, each the median over rounds of the per-round ratio
 * (time of the other / time of ours, for the same flops): all null when `perRound` has no
 * RATIO_N (the size was not measured). `threads`: the all-thread peak's threads; the peak's flops
 * per thread a call default to the peak loop's.
 */
export function matmulRatios(perRound: Readonly<Record<number, Record<string, number[]>>>, threads: number, peakFlopsPerThread = PEAK_FLOPS_PER_THREAD): MatmulRatios {
  const r = perRound[RATIO_N];
  if (!r) return { matmulN: null, wasmOfPeak: null, wasmOfPeakOneThread: null, wasmOverBestPeer: null, ffiOverNumpy: null, ffiOverNumpyAuto: null };
  const f = 2 * RATIO_N ** 3;
  const bestPeerRounds = r["jax-js"] || r["tfjs-wasm"]
    ? (r["jax-js"] ?? r["tfjs-wasm"]).map((_, i) => Math.min(r["jax-js"]?.[i] ?? Infinity, r["tfjs-wasm"]?.[i] ?? Infinity))
    : undefined;
  return {
    matmulN: RATIO_N,
    wasmOfPeak: medianRatio(r["ours-wasm"], r.peak, (ours, pk) => (f / ours) / ((threads * peakFlopsPerThread) / pk)),
    wasmOfPeakOneThread: medianRatio(r["ours-wasm-1t"], r.peak1, (ours, pk) => (f / ours) / (peakFlopsPerThread / pk)),
    wasmOverBestPeer: medianRatio(r["ours-wasm"], bestPeerRounds, (ours, peer) => peer / ours),
    ffiOverNumpy: medianRatio(r["ours-ffi"], r.numpy, (ours, np) => np / ours),
    ffiOverNumpyAuto: medianRatio(r["ours-ffi"], r["numpy-auto"], (ours, np) => np / ours),
  };
}

/** One training step of the small model on `b` (loss and all gradients of B × L tokens), set up once. */
async function stepTimer(b: Backend): Promise<CallTimer> {
  setBackend(b);
  const cfg = preset("small");
  const params = lm.init(random.key(0), cfg);
  const tokens = fromArray(random.randintArray(random.key(1), STEP_B * STEP_L, 0, cfg.vocab), [STEP_B, STEP_L], "i32");
  const targets = fromArray(random.randintArray(random.key(2), STEP_B * STEP_L, 0, cfg.vocab), [STEP_B, STEP_L], "i32");
  const vg = valueAndGrad((p: typeof params) => lm.loss(p, tokens, targets));
  return {
    detail: b.name === "cpu" ? "the plain-TypeScript CPU backend" : `${b.name} backend, ${(b as WasmBackend).kernelInfo().matmul} matmul`,
    once: async () => {
      setBackend(b);
      const t = now();
      const { value, grads } = vg(params);
      await value.data();
      const ms = now() - t;
      value.dispose();
      disposeTree(grads);
      return ms;
    },
    dispose: () => disposeTree([params, tokens, targets]),
  };
}

/** The selective scan, forward and forward + backward (compute-bound: GFLOP/s by the op's own count). */
async function selectiveScanRows(b: WasmBackend, runs: number, warmupMs: number): Promise<BoundRow[]> {
  setBackend(b);
  const [Bs, Ls, Di, N] = [2, 1024, 512, 16];
  const p = {
    x: fromArray(fillMatrix(Bs * Ls * Di, 6), [Bs, Ls, Di]), d: fromArray(fillMatrix(Bs * Ls * Di, 7).map((v) => 0.05 + 0.04 * v), [Bs, Ls, Di]),
    A: fromArray(fillMatrix(Di * N, 8).map((v) => -1.5 + v), [Di, N]), Bm: fromArray(fillMatrix(Bs * Ls * N, 9), [Bs, Ls, N]),
    C: fromArray(fillMatrix(Bs * Ls * N, 10), [Bs, Ls, N]), h0: fromArray(fillMatrix(Bs * Di * N, 11), [Bs, Di, N]),
  };
  const vg = valueAndGrad((q: typeof p) => sum(selectiveScan(q.x, q.d, q.A, q.Bm, q.C, q.h0).y));
  const ops: Record<string, () => void> = {
    "selectiveScan fwd": () => selectiveScan(p.x, p.d, p.A, p.Bm, p.C, p.h0).y.dispose(),
    "selectiveScan fwd+bwd": () => {
      const { value, grads } = vg(p);
      value.dispose();
      disposeTree(grads);
    },
  };
  const rows: BoundRow[] = [];
  try {
    for (const [k, fn] of Object.entries(ops)) {
      resetCounters();
      fn();
      const c = readCounters();
      const t = await timeAsync(fn, Math.min(runs, 5), warmupMs);
      rows.push({ kernel: k, shape: [Bs, Ls, Di, N], medianMs: t.medianMs, bytes: c.bytes, gbPerSec: c.bytes / t.medianMs / 1e6, gflops: c.flops / t.medianMs / 1e6 });
    }
  } finally {
    disposeTree(p);
  }
  return rows;
}

async function measureRuntime(sizes: number[], runs: number, warmupMs: number, only: readonly Section[] = SECTIONS): Promise<RuntimeResult> {
  const runtime = detectRuntime();
  const notes: string[] = [];
  const loadBefore = loadavg()[0];
  const root = repoRoot();
  const wasm = await createWasmBackend({ kernels: "wasm", quiet: true });
  if (wasm.threadError) notes.push(`wasm threads: ${wasm.threadError}`);
  const threads = wasm.kernelInfo().threads;
  const one = await createWasmBackend({ kernels: "wasm", quiet: true, threads: 1 });
  let ffi: WasmBackend | null = await createWasmBackend({ kernels: "auto", quiet: true });
  const ffiInfo = ffi.kernelInfo().blas;
  if (ffi.kernelInfo().matmul !== "blas") {
    notes.push(`ours-ffi: ${ffiInfo}`);
    ffi.dispose();
    ffi = null;
  }
  const flops = (n: number) => 2 * n ** 3;

  // the peak and saxpy, all threads and one, interleaved
  const base = await interleave({
    peak: peakTimer(wasm, threads), peak1: peakTimer(one, 1), saxpy: saxpyTimer(wasm, threads), saxpy1: saxpyTimer(one, 1),
  }, runs, warmupMs);
  const peak = {
    gflops: (threads * PEAK_FLOPS_PER_THREAD) / median(base.peak) / 1e6, gflopsOneThread: PEAK_FLOPS_PER_THREAD / median(base.peak1) / 1e6, threads,
    instruction: wasm.variant === "relaxed" ? "f32x4.relaxed_madd" : "f32x4.mul + f32x4.add",
  };
  const SAXPY_BYTES = 3 * 64 * 1024 * 1024;
  const saxpy = { gbPerSec: SAXPY_BYTES / median(base.saxpy) / 1e6, gbPerSecOneThread: SAXPY_BYTES / median(base.saxpy1) / 1e6, bytesPerCall: SAXPY_BYTES };

  // matmul: every kernel at one size, round after round (the peak in every round too)
  const rows: MatmulRow[] = [];
  const perRound: Record<number, Record<string, number[]>> = {};
  for (const n of only.includes("matmul") ? sizes : []) {
    const timers: Record<string, CallTimer> = { peak: peakTimer(wasm, threads) };
    const missing: Partial<Record<KernelName, string>> = {};
    const add = (k: KernelName, t: CallTimer | string | null) => {
      if (t === null || typeof t === "string") missing[k] = t ?? "not available in this runtime";
      else timers[k] = t;
    };
    add("ours-wasm", matmulTimer(wasm, n, `wasm ${wasm.kernelInfo().kernels}, ${threads} threads`));
    if (n === RATIO_N && threads > 1) {
      timers["ours-wasm-1t"] = matmulTimer(one, n, `wasm ${one.kernelInfo().kernels}, 1 thread`);
      timers.peak1 = peakTimer(one, 1);
    }
    add("ours-ffi", ffi ? matmulTimer(ffi, n, ffiInfo ?? "") : null);
    add("jax-js", await jaxTimer(n));
    add("tfjs-wasm", await tfjsTimer(n, root));
    add("numpy", numpyTimer(n));
    add("numpy-auto", numpyTimer(n, undefined, "auto"));
    const rounds = n >= 2048 ? Math.max(3, Math.ceil(runs / 2)) : runs;
    const s = await interleave(timers, rounds, warmupMs);
    perRound[n] = s;
    for (const t of Object.values(timers)) t.dispose();
    for (const k of KERNELS) {
      if (k === "plain-js") continue;
      if (s[k]) rows.push({ kernel: k, n, gflops: flops(n) / median(s[k]) / 1e6, medianMs: median(s[k]), samplesMs: s[k], detail: timers[k].detail });
      else {
        rows.push({ kernel: k, n, gflops: null, medianMs: null, samplesMs: [], detail: missing[k] ?? "" });
        if (n === sizes[0] && missing[k]) notes.push(`${k}: ${missing[k]}`);
      }
    }
    const plain = await plainJsMatmul(n, n >= 2048 ? 3 : Math.min(runs, 5), n >= 2048 ? 0 : warmupMs);
    rows.push({ kernel: "plain-js", n, gflops: flops(n) / plain.medianMs / 1e6, medianMs: plain.medianMs, samplesMs: plain.samplesMs, detail: plain.detail });
  }
  one.dispose();
  for (const k of ["numpy", "numpy-auto"] as const) {
    const numpyDetail = rows.find((r) => r.kernel === k && r.gflops !== null)?.detail;
    if (numpyDetail) notes.push(`${k}: ${numpyDetail}`);
  }

  // memory-bound kernels of the wasm backend, with saxpy in every round
  const bytesOf: Record<string, number> = {};
  let mb: Record<string, number[]> = {};
  const memoryBoundRows: BoundRow[] = [];
  if (only.includes("memory")) {
    setBackend(wasm);
    const [B, L, S] = [4, 2048, 2048];
    const nEl = B * L * S;
    const a = fromArray(fillMatrix(nEl, 3).map((v) => 0.95 + 0.05 * v), [B, L, S]), x = fromArray(fillMatrix(nEl, 4), [B, L, S]);
    const h0 = fromArray(fillMatrix(B * S, 5), [B, S]);
    const boundOps: Record<string, [number[], () => void]> = {
      scan: [[B, L, S], () => scan(a, x, h0).dispose()],
      mul: [[nEl], () => mul(x, a).dispose()],
      silu: [[nEl], () => silu(x).dispose()],
      "sum(-1)": [[B * L, S], () => sum(x, -1).dispose()],
    };
    for (const [k, [, fn]] of Object.entries(boundOps)) {
      resetCounters();
      fn();
      bytesOf[k] = readCounters().bytes;
    }
    mb = await interleave({
      saxpy: saxpyTimer(wasm, threads),
      ...Object.fromEntries(Object.entries(boundOps).map(([k, [, fn]]) => [k, opTimer(wasm, fn, () => {}, k)])),
    }, runs, warmupMs);
    disposeTree([a, x, h0]);
    memoryBoundRows.push(...Object.entries(boundOps).map(([k, [shape]]) => ({
      kernel: k, shape, medianMs: median(mb[k]), bytes: bytesOf[k], gbPerSec: bytesOf[k] / median(mb[k]) / 1e6, gflops: null,
    })));
    memoryBoundRows.push(...(await selectiveScanRows(wasm, runs, warmupMs)));
  }

  // the training step: the TypeScript kernels, wasm, wasm + FFI, round after round
  const stepTimers: Record<string, CallTimer> = {};
  if (only.includes("step")) {
    stepTimers.ts = await stepTimer(setBackend("cpu"));
    stepTimers["ours-wasm"] = await stepTimer(wasm);
    if (ffi) stepTimers["ours-ffi"] = await stepTimer(ffi);
  }
  const st = await interleave(stepTimers, 3, 0, 1); // seconds a step: one call a sample
  for (const t of Object.values(stepTimers)) t.dispose();
  const steps: StepRow[] = (["ts", "ours-wasm", "ours-ffi"] as const).map((k) => st[k]
    ? { backend: k, tokensPerSec: (STEP_B * STEP_L) / (median(st[k]) / 1000), medianMs: median(st[k]), samplesMs: st[k], detail: stepTimers[k].detail }
    : { backend: k, tokensPerSec: null, medianMs: null, samplesMs: [], detail: !only.includes("step") ? "not measured (--only)" : "no FFI BLAS here" });
  ffi?.dispose();
  const info = wasm.kernelInfo();
  wasm.dispose();

  if (only.includes("matmul") && !sizes.includes(RATIO_N)) notes.push(`matmul ratios (wasmOfPeak, wasmOverBestPeer, ffiOverNumpy, …): null, --sizes has no ${RATIO_N}`);
  const at = (k: KernelName) => rows.find((x) => x.kernel === k && x.n === RATIO_N)?.gflops ?? null;
  const peers = (["jax-js", "tfjs-wasm"] as const).filter((k) => at(k) !== null).sort((p, q) => at(q)! - at(p)!);
  const summary: RuntimeResult["summary"] = {
    // per-round ratios (time of the other / time of ours, for the same flops), then their median
    ...matmulRatios(perRound, threads),
    bestPeer: peers[0] ?? null,
    scanOfBandwidth: medianRatio(mb.scan, mb.saxpy, (t, ts) => (bytesOf.scan / t) / (SAXPY_BYTES / ts)),
    elementwiseOfBandwidth: medianRatio(mb.mul, mb.saxpy, (t, ts) => (bytesOf.mul / t) / (SAXPY_BYTES / ts)),
    reduceOfBandwidth: medianRatio(mb["sum(-1)"], mb.saxpy, (t, ts) => (bytesOf["sum(-1)"] / t) / (SAXPY_BYTES / ts)),
    trainStepOverTs: medianRatio(st.ts, st["ours-wasm"]?.map((w, i) => Math.min(w, st["ours-ffi"]?.[i] ?? Infinity)), (ts, ours) => ts / ours),
    goalsMet: { wasmOfPeak: null, wasmOverBestPeer: null, ffiOverNumpy: null, scanOfBandwidth: null },
  };
  for (const k of Object.keys(GOALS) as (keyof typeof GOALS)[]) {
    const v = summary[k];
    summary.goalsMet[k] = v === null ? null : v >= GOALS[k];
  }
  return {
    runtime, machine: machineInfo(), date: new Date().toISOString(), threads, kernelInfo: info, ffiInfo,
    peak, saxpy, matmul: rows, memoryBound: memoryBoundRows, trainStep: steps, summary, notes,
    loadAverage: { before: loadBefore, after: loadavg()[0] },
  };
}

// ---------------------------------------------------------------------------------------------
// the parent: one child per runtime, then the combined table and JSON

const BIN = () => join(repoRoot(), "tools/node_modules/.bin");

function runChild(rt: string, args: string[], out: string): RuntimeResult {
  const self = fileURLToPath(import.meta.url);
  const root = repoRoot();
  let cmd: string, argv: string[];
  if (rt === "bun") [cmd, argv] = [join(BIN(), "bun"), [self]];
  else if (rt === "deno") [cmd, argv] = [join(BIN(), "deno"), ["run", "-A", self]];
  else if (rt === "node") {
    mkdirSync(join(root, "out/bench"), { recursive: true });
    const bundle = join(root, "out/bench/cpu-kernels.mjs");
    const b = spawnSync(join(root, "node_modules/.bin/esbuild"), [
      self, "--bundle", "--platform=node", "--format=esm", "--target=node20", `--outfile=${bundle}`, "--log-level=warning",
      "--conditions=@memmamba/source", // the packages' sources, not their npm build (dist/)
      "--external:@jax-js/jax", "--external:@tensorflow/*",
    ], { stdio: "inherit", cwd: root });
    if (b.status !== 0) throw new Error("esbuild failed for the Node bundle");
    // relaxed SIMD is behind a flag in Node 20 (on by default in Bun and Deno)
    [cmd, argv] = ["node", ["--experimental-wasm-relaxed-simd", bundle]];
  } else throw new UsageError(`--runtimes: unknown runtime "${rt}" (${RUNTIMES.join(", ")})`);
  console.log(`== ${rt} ==`);
  const r = spawnSync(cmd, [...argv, "--child", "--json-out", out, ...args], { stdio: "inherit", cwd: root, timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`${rt} run failed (status ${r.status})`);
  return readJson<RuntimeResult>(out);
}

function tableOf(results: RuntimeResult[], sizes: number[], torch: StepRow | null = null): string {
  const lines: string[] = [];
  const names = results.map((r) => `${r.runtime.name} ${r.runtime.version}`);
  const g = (x: number | null | undefined) => (x === null || x === undefined ? null : x);
  const body: Cell[][] = [];
  for (const k of KERNELS) {
    for (const n of sizes) body.push([k, `${n}²`, ...results.map((r) => g(r.matmul.find((x) => x.kernel === k && x.n === n)?.gflops))]);
  }
  body.push(["WASM SIMD peak", "all threads", ...results.map((r) => r.peak.gflops)]);
  body.push(["WASM SIMD peak", "1 thread", ...results.map((r) => r.peak.gflopsOneThread)]);
  lines.push("fp32 matmul, GFLOP/s (2n³ / median time); peak = 12 independent f32x4 multiply-adds in registers");
  lines.push(formatTable(["kernel", "size", ...names], body));
  lines.push("");
  const bw: Cell[][] = [
    ["saxpy 64 MiB (all threads)", "GB/s", ...results.map((r) => r.saxpy.gbPerSec)],
    ["saxpy 64 MiB (1 thread)", "GB/s", ...results.map((r) => r.saxpy.gbPerSecOneThread)],
  ];
  for (const k of ["scan", "mul", "silu", "sum(-1)", "selectiveScan fwd", "selectiveScan fwd+bwd"]) {
    const isFlops = k.startsWith("selectiveScan");
    bw.push([`${k} ${results[0].memoryBound.find((x) => x.kernel === k)?.shape.join("x") ?? ""}`, isFlops ? "GFLOP/s" : "GB/s",
      ...results.map((r) => { const x = r.memoryBound.find((y) => y.kernel === k); return x ? (isFlops ? x.gflops : x.gbPerSec) : null; })]);
  }
  lines.push("wasm backend, memory-bound kernels (all threads; bytes = inputs + output once)");
  lines.push(formatTable(["kernel", "unit", ...names], bw));
  lines.push("");
  const sum: Cell[][] = (Object.keys(GOALS) as (keyof typeof GOALS)[]).map((k) => [
    k, `≥ ${GOALS[k]}`, ...results.map((r) => {
      const v = r.summary[k];
      return v === null ? "-" : `${fmt(v)} ${v >= GOALS[k] ? "ok" : "MISSED"}`;
    }),
  ]);
  sum.push([`best JS peer at ${RATIO_N}²`, "", ...results.map((r) => r.summary.bestPeer ?? "-")]);
  sum.push(["wasmOfPeakOneThread", "", ...results.map((r) => r.summary.wasmOfPeakOneThread)]);
  sum.push(["ffiOverNumpyAuto", "", ...results.map((r) => r.summary.ffiOverNumpyAuto ?? "-")]);
  sum.push(["trainStepOverTs", "", ...results.map((r) => r.summary.trainStepOverTs)]);
  if (torch?.tokensPerSec) {
    sum.push(["trainStepOverTorch", "> 1", ...results.map((r) => {
      const best = Math.max(...r.trainStep.filter((x) => x.backend !== "ts" && x.tokensPerSec !== null).map((x) => x.tokensPerSec!));
      return best / torch.tokensPerSec!;
    })]);
  }
  const st: Cell[][] = (["ts", "ours-wasm", "ours-ffi"] as const).map((k) => [k, ...results.map((r) => r.trainStep.find((x) => x.backend === k)?.tokensPerSec ?? null)]);
  if (torch) st.push(["torch (once, by the parent)", ...results.map(() => torch.tokensPerSec)]);
  lines.push(`training step of the small model (loss + gradients, ${STEP_B} x ${STEP_L} tokens), tokens/s`);
  lines.push(formatTable(["backend", ...names], st));
  lines.push("");
  lines.push(`summary (ratios measured side by side in each runtime's run; the matmul's at ${RATIO_N}², "-" where --sizes left it out)`);
  lines.push(formatTable(["ratio", "goal", ...names], sum));
  return lines.join("\n");
}

export interface Options {
  runtimes: string[];
  sizes: number[];
  runs: number;
  warmupMs: number;
  out: string;
  child: boolean;
  jsonOut: string | undefined;
  only: Section[];
}

/** The options from the command line, null for --help; a bad flag or value throws a UsageError naming it. */
export function parseOptions(argv: string[]): Options | null {
  const flags = parseFlags(argv, {
    runtimes: "string", sizes: "string", runs: "string", "warmup-ms": "string", out: "string", child: "boolean", "json-out": "string", only: "string", help: "boolean",
  });
  if (flags.help) return null;
  return {
    runtimes: flagList("runtimes", flags.runtimes, choice(RUNTIMES), RUNTIMES),
    sizes: flagList("sizes", flags.sizes, POSITIVE_INT, [512, 1024, 2048]),
    runs: positiveInt("runs", flags.runs, 7),
    warmupMs: positiveInt("warmup-ms", flags["warmup-ms"], 400),
    out: typeof flags.out === "string" ? flags.out : fromRoot("packages", "bench", "results", "cpu.json"),
    child: flags.child === true,
    jsonOut: typeof flags["json-out"] === "string" ? flags["json-out"] : undefined,
    only: flagList("only", flags.only, choice(SECTIONS), SECTIONS),
  };
}

async function main(argv: string[]): Promise<void> {
  const opts = parseOptions(argv); // a bad flag: a UsageError, one line and status 2 (runMain)
  if (!opts) {
    console.log(HELP);
    return;
  }
  const pass = ["--sizes", opts.sizes.join(","), "--runs", String(opts.runs), "--warmup-ms", String(opts.warmupMs), "--only", opts.only.join(",")];
  if (opts.child) {
    const r = await measureRuntime(opts.sizes, opts.runs, opts.warmupMs, opts.only);
    console.log(tableOf([r], opts.only.includes("matmul") ? opts.sizes : []));
    if (opts.jsonOut) writeJson(opts.jsonOut, r);
    process.exit(0); // the peers' worker threads would keep some runtimes alive
  }
  const tmp = join(repoRoot(), "out/bench");
  if (!existsSync(tmp)) mkdirSync(tmp, { recursive: true });
  const results = opts.runtimes.map((rt) => runChild(rt, pass, join(tmp, `cpu-kernels-${rt}.json`)));
  if (opts.only.includes("step")) console.log("== torch (the PyTorch reference port, one training step) ==");
  // 3 timed steps (after one warm-up): the median then ignores one step slowed by the machine's load
  const tt = opts.only.includes("step") ? torchTrainStep(repoRoot(), STEP_B, STEP_L, 3, results[0].threads) : "not measured (--only)";
  const torch: StepRow = typeof tt === "string"
    ? { backend: "torch", tokensPerSec: null, medianMs: null, samplesMs: [], detail: tt }
    : { backend: "torch", tokensPerSec: (STEP_B * STEP_L) / (tt.medianMs / 1000), medianMs: tt.medianMs, samplesMs: tt.samplesMs, detail: tt.detail };
  const table = tableOf(results, opts.only.includes("matmul") ? opts.sizes : [], torch);
  console.log(`\n== all runtimes: ${results[0].machine.cpuModel}, ${results[0].machine.cores} logical cores; load average ` +
    results.map((r) => `${r.runtime.name} ${r.loadAverage.before.toFixed(1)}→${r.loadAverage.after.toFixed(1)}`).join(", ") + " ==");
  console.log(table);
  const self = detectRuntime();
  writeJson(opts.out, {
    benchmark: "cpu-kernels",
    commit: gitCommit(),
    // the runtime that ran this parent (each child's is under runtimes) and its script and arguments
    command: [self.name, relative(repoRoot(), fileURLToPath(import.meta.url)), ...argv].join(" "),
    parent: { runtime: self, argv },
    date: new Date().toISOString(),
    machine: results[0].machine,
    goals: GOALS,
    sizes: opts.sizes,
    sections: opts.only,
    runs: opts.runs,
    /** Each sample of a kernel (matmul, peak, saxpy, the memory-bound kernels) is the median of this many back-to-back calls; the training step's is one call. */
    callsPerSample: BACK_TO_BACK,
    trainStepTorch: torch,
    runtimes: Object.fromEntries(results.map((r) => [r.runtime.name, r])),
  });
  console.log(`\nwrote ${opts.out}`);
}

if (import.meta.main ?? true) runMain("cpu-kernels", main);
