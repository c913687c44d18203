/**
 * What one runtime's run of the CPU kernel benchmark (cpu-kernels.ts) gives, and the table printed
 * from such runs: the kernels, sections and goals, the matmul size the summary's ratios are taken
 * at, the rows (matmul, memory-bound kernels, training step) and RuntimeResult (a child's JSON, one
 * runtime's entry in results/cpu.json); tableOf prints one runtime's results or all of them side
 * by side.
 */
import { fmt, formatTable, type Cell, type MachineInfo, type RuntimeInfo } from "./runtime.ts";
import type { WasmBackend } from "../../tensor/src/wasm/backend.ts";

export const KERNELS = ["ours-wasm", "ours-ffi", "jax-js", "tfjs-wasm", "numpy", "numpy-auto", "plain-js"] as const;
export type KernelName = (typeof KERNELS)[number];

export const GOALS = { wasmOfPeak: 0.7, wasmOverBestPeer: 1.3, ffiOverNumpy: 0.85, scanOfBandwidth: 0.7 };

/** The matmul size the summary's ratios (and goals) are measured at: n × n. */
export const RATIO_N = 1024;

/** The sections `--only` picks from (each one's rows and ratios; the rest come out empty or null). */
export const SECTIONS = ["matmul", "memory", "step"] as const;
export type Section = (typeof SECTIONS)[number];

export interface MatmulRow {
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

export interface StepRow {
  backend: "ts" | "ours-wasm" | "ours-ffi" | "torch";
  tokensPerSec: number | null;
  medianMs: number | null;
  samplesMs: number[];
  detail: string;
}

export interface BoundRow {
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

export function tableOf(results: RuntimeResult[], sizes: number[], torch: StepRow | null = null): string {
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
