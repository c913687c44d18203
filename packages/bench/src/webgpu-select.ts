/**
 * WebGPU causalSelect: the step-by-step walk (one workgroup per row, a tree argmin and barriers
 * every step; the one-thread walk for k > 512) against the parallel kernels (an end-of-hold
 * pass, a thread per position, then a fill pass; see tensor/src/webgpu/kernels/select.ts), both
 * as the backend runs them (selectTuning.force picks the kernel; buffers allocated once, outside
 * the timing), and the parallel kernels with the fill walking back from every position instead
 * of building the rows from segments (selectTuning.fill; "top" mode) or with the first pass
 * scanning each row from its start instead of reading tile summaries (selectTuning.end; "top").
 *
 * Cases: every --lengths L × --ks k × --modes × --densities (the fraction of positions whose mask
 * is set) at batch --batch, scores uniform in [−1, 1) (the MemMamba training step runs B = 8,
 * L = 2048, k = 50 or 64, "top").
 *
 * Timing as webgpu-matmul.ts: warm-up (--warmup-ms), then --runs samples (median reported) of
 * enough calls to last about --sample-ms, GPU time from timestamp queries around the compute
 * passes when the adapter has 'timestamp-query', else wall clock with one sync per sample.
 * Both kernels' outputs are compared with the CPU reference (cpu/select.ts) element by element
 * (a wrong kernel is not a benchmark: the program fails). Prints a table and writes JSON;
 * asserts nothing about time. Runs under Bun, Deno and Node (Node: bundle with esbuild,
 * --external:webgpu; see ../../../../shared/gpu/README.md).
 *
 *   bun packages/bench/src/webgpu-select.ts [--batch 8] [--lengths 2048,4096] [--ks 50,64]
 *       [--modes last,top] [--densities 0.25,1] [--runs 9] [--json] [--out FILE] [--small]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { choice, flagList, flagValue, fmt, formatTable, fromRoot, lcg, numberFlag, parseFlags, POSITIVE_INT, positiveInt, runMain, writeJson } from "./runtime.ts";
import { z } from "zod";
import { gpuBenchHeader, timeGpuCalls } from "./gpu-timing.ts";
import type { KernelArg } from "../../tensor/src/backend.ts";
import { causalSelectKernel as cpuCausalSelect } from "../../tensor/src/cpu/select.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { causalSelectPlan, selectTuning, usesSummary } from "../../tensor/src/webgpu/kernels/select.ts";

const HELP = `webgpu-select: causalSelect on the WebGPU backend, the walk vs the parallel kernels

  --batch B          rows (default 8; --small 2)
  --lengths a,b,...  row lengths L (default 2048,4096; --small 100,300)
  --ks a,b,...       pool sizes k (default 50,64; --small 5,8)
  --modes m,...      last (FIFO) and/or top (evict the lowest score) (default last,top)
  --densities d,...  fraction of positions with the mask set, each in (0, 1] (default 0.25,1)
  --runs N           timed samples per kernel and case; the median is reported (default 9)
  --sample-ms MS     target duration of one sample: calls per sample (default 20)
  --warmup-ms MS     busy time before timing each kernel and case (default 500; --small 50)
  --segment T        positions a segment of the second pass (a multiple of 64 up to 256; default
                     by length: selectTuning.segment 0)
  --small            tiny sizes (software Vulkan, CI)
  --json             print the JSON result on stdout instead of the table
  --out FILE         where to write the JSON (default packages/bench/results/webgpu-select.json)
  --help             this text`;

type Kernel = "walk" | "parallel" | "parallelWalkFill" | "parallelScanEnd" | "parallelSummaryEnd";

/**
 * The kernels timed: the walk, the parallel passes as the backend runs them, and the parallel
 * passes with the walk-back second pass, with the first pass scanning each row from its start, or
 * with it reading tile summaries whatever the row's length.
 */
const KERNELS: { name: Kernel; force: "walk" | "parallel"; fill: "segments" | "walk"; end: "summary" | "scan"; summaryMinL?: number }[] = [
  { name: "walk", force: "walk", fill: "segments", end: "summary" },
  { name: "parallel", force: "parallel", fill: "segments", end: "summary" },
  { name: "parallelWalkFill", force: "parallel", fill: "walk", end: "summary" },
  { name: "parallelScanEnd", force: "parallel", fill: "segments", end: "scan" },
  { name: "parallelSummaryEnd", force: "parallel", fill: "segments", end: "summary", summaryMinL: 0 },
];

export interface SelectRow {
  B: number;
  L: number;
  k: number;
  mode: "last" | "top";
  density: number;
  /** Per kernel: the plan causalSelectPlan chose under the forcing, and the per-call times. */
  walk: KernelTiming;
  /** The parallel passes as the backend runs them ("top": the second pass from segments, select-segments.ts). */
  parallel: KernelTiming;
  /** The parallel passes with the second pass walking back from every position (selectTuning.fill "walk"; in "last" mode the same kernels as `parallel`). */
  parallelWalkFill: KernelTiming;
  /** The parallel passes with the first pass scanning each row from its start (selectTuning.end "scan"; in "last" mode the same kernels as `parallel`). */
  parallelScanEnd: KernelTiming;
  /** The parallel passes with the first pass from tile summaries at any length (summaryMinL 0; "top" with f32 scores, else as `parallel`). */
  parallelSummaryEnd: KernelTiming;
  /** walk median / parallel median. */
  speedup: number;
}

interface KernelTiming {
  plan: string;
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  /** Calls per sample. */
  reps: number;
}

async function benchCase(
  gpu: WebGpuBackend, B: number, L: number, k: number, mode: "last" | "top", density: number,
  runs: number, sampleMs: number, warmupMs: number, timestamps: boolean,
): Promise<SelectRow> {
  const r = lcg(B * 1_000_003 + L * 101 + k);
  const mask = Float32Array.from({ length: B * L }, () => (r() < density ? 1 : 0));
  const score = Float32Array.from({ length: B * L }, () => 2 * r() - 1);
  const want = new Int32Array(B * L * k);
  cpuCausalSelect(
    [{ data: mask, shape: [B, L] }, { data: score, shape: [B, L] }],
    { data: want, shape: [B, L, k] },
    { k, mode },
  );
  const m = gpu.alloc(B * L, "f32"), s = gpu.alloc(B * L, "f32"), o = gpu.alloc(B * L * k, "i32");
  gpu.write(m, mask);
  gpu.write(s, score);
  const arg = (buf: KernelArg["buf"], shape: number[], dtype: "f32" | "i32"): KernelArg => ({ buf, shape, dtype });
  const run = () => gpu.run("causalSelect", [arg(m, [B, L], "f32"), arg(s, [B, L], "f32")], arg(o, [B, L, k], "i32"), { k, mode });
  const saved = { force: selectTuning.force, fill: selectTuning.fill, end: selectTuning.end, summaryMinL: selectTuning.summaryMinL };
  const out: Partial<Record<Kernel, KernelTiming>> = {};
  try {
    for (const { name: kernel, force, fill, end, summaryMinL } of KERNELS) {
      Object.assign(selectTuning, { force, fill, end, summaryMinL: summaryMinL ?? saved.summaryMinL });
      const plan = causalSelectPlan(B, L, k, gpu.limits, mode, "f32");
      const t = await timeGpuCalls(gpu, run, { runs, sampleMs, warmupMs, timestamps });
      const got = (await gpu.read(o)) as Int32Array;
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) {
          throw new Error(`the ${plan} kernel differs from the CPU reference at element ${i} (${got[i]} vs ${want[i]}; B ${B}, L ${L}, k ${k}, ${mode}, density ${density})`);
        }
      }
      const first = usesSummary(B, L, k, mode, "f32") ? "summary" : "scan";
      out[kernel] = { plan: force === "parallel" ? `${plan}, ${mode === "last" ? "scan, walk" : `${first}, ${fill}`}` : plan, ...t };
    }
  } finally {
    Object.assign(selectTuning, saved);
    for (const h of [m, s, o]) gpu.free(h);
  }
  return { B, L, k, mode, density, walk: out.walk!, parallel: out.parallel!, parallelWalkFill: out.parallelWalkFill!, parallelScanEnd: out.parallelScanEnd!, parallelSummaryEnd: out.parallelSummaryEnd!, speedup: out.walk!.medianMs / out.parallel!.medianMs };
}

/** --segment: a multiple of 64 up to 256. */
const SEGMENT = numberFlag(z.number().int().positive().multipleOf(64).max(256), "64, 128, 192 or 256");

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, {
    batch: "string", lengths: "string", ks: "string", modes: "string", densities: "string", runs: "string",
    "sample-ms": "string", "warmup-ms": "string", small: "boolean", json: "boolean", out: "string", segment: "string",
  });
  selectTuning.segment = flagValue("segment", f.segment, SEGMENT) ?? selectTuning.segment;
  const small = f.small === true;
  const B = positiveInt("--batch", f.batch, small ? 2 : 8);
  const lengths = flagList("lengths", f.lengths, POSITIVE_INT, small ? [100, 300] : [2048, 4096]);
  const ks = flagList("ks", f.ks, POSITIVE_INT, small ? [5, 8] : [50, 64]);
  const modes = flagList("modes", f.modes, choice(["last", "top"]), ["last", "top"]);
  const densities = flagList("densities", f.densities, numberFlag(z.number().gt(0).max(1), "a number in (0, 1]"), [0.25, 1]);
  const runs = positiveInt("--runs", f.runs, 9);
  const sampleMs = positiveInt("--sample-ms", f["sample-ms"], 20);
  const warmupMs = positiveInt("--warmup-ms", f["warmup-ms"], small ? 50 : 500);

  const gpu = await createWebGpuBackend({ timestamps: true });
  const timestamps = gpu.device.features.has("timestamp-query");
  const rows: SelectRow[] = [];
  try {
    for (const L of lengths) {
      for (const k of ks) {
        for (const mode of modes) {
          for (const d of densities) rows.push(await benchCase(gpu, B, L, k, mode, d, runs, sampleMs, warmupMs, timestamps));
        }
      }
    }
  } finally {
    gpu.destroy();
  }
  const result = {
    ...gpuBenchHeader("webgpu-select", gpu, timestamps),
    runs,
    parallelMaxL: selectTuning.parallelMaxL,
    rows,
  };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-select.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-select — ${result.runtime}, ${result.adapter} via ${result.via}; ${result.timing}; median of ${runs}; outputs equal to the CPU reference`);
  console.log(formatTable(
    ["B", "L", "k", "mode", "density", "walk kernel", "walk ms", "parallel (passes)", "parallel ms", "parallel min ms", "walk-back fill ms", "row-scan pass 1 ms", "summary pass 1 ms", "speedup"],
    rows.map((r) => [
      String(r.B), String(r.L), String(r.k), r.mode, String(r.density), r.walk.plan, fmt(r.walk.medianMs, 4), r.parallel.plan, fmt(r.parallel.medianMs, 4), fmt(r.parallel.minMs, 4),
      fmt(r.parallelWalkFill.medianMs, 4), fmt(r.parallelScanEnd.medianMs, 4), fmt(r.parallelSummaryEnd.medianMs, 4), `${fmt(r.speedup, 3)}x`,
    ]),
  ));
}

if (import.meta.main ?? true) runMain("webgpu-select", main);
