/**
 * One runtime's run of the CPU kernel benchmark (cpu-kernels.ts, its --child): the peak and saxpy,
 * the matmul table (ours and the peers of cpu-peers.ts, size by size), the memory-bound kernels,
 * the training step, and the summary's ratios, each the median over rounds of a per-round ratio
 * (matmulRatios: the matmul's, at RATIO_N² only).
 */
import { detectRuntime, machineInfo, median, repoRoot } from "./runtime.ts";
import { loadavg } from "node:os";
import { disposeTree, fromArray, mul, readCounters, resetCounters, scan, setBackend, silu, sum } from "@memmamba/tensor";
import { createWasmBackend, type WasmBackend } from "../../tensor/src/wasm/backend.ts";
import { fillMatrix, jaxTimer, numpyTimer, plainJsMatmul, tfjsTimer, type CallTimer } from "./cpu-peers.ts";
import {
  GOALS, KERNELS, RATIO_N, SECTIONS, STEP_B, STEP_L, type BoundRow, type KernelName, type MatmulRow, type RuntimeResult, type Section, type StepRow,
} from "./cpu-kernels-results.ts";
import {
  interleave, matmulTimer, opTimer, PEAK_FLOPS_PER_THREAD, peakTimer, saxpyTimer, selectiveScanRows, stepTimer,
} from "./cpu-kernels-timers.ts";

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

export async function measureRuntime(sizes: number[], runs: number, warmupMs: number, only: readonly Section[] = SECTIONS): Promise<RuntimeResult> {
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
