/**
 * WebGPU time of the small ops that a training step of the `small` Mamba / MemMamba runs many
 * times (issue 11): the causal depthwise conv (forward, gradX, gradW) at [8, 2048, 512] with 4
 * taps, and the reductions the step runs, at the step's sizes (found by logging every reduce of a
 * step: bias and RMSNorm-weight gradients [B·L, C] → [C], RMSNorm's row sums [B·L, D] → [B·L],
 * the fused selective scan's dB / dC sums [B, L, 8, 16] → [B, L, 16], batched weight gradients
 * [8, m, n] → [m, n], the squared norms of clipping, full sums; a MemMamba step ran 477
 * reductions at L = 256, a Mamba step 185).
 *
 * Each op runs as the backend runs it (all its dispatches: a split reduction is two), with
 * buffers allocated once, outside the timing. Variants: the conv kernels "window" (default) and
 * "direct" (the previous kernels: convTuning.algo), the reduction under several plans
 * (reduceTuning knobs). GPU time from timestamp queries around the compute passes when the adapter
 * has 'timestamp-query', else wall clock with one sync per sample; each sample runs enough calls
 * to last about --sample-ms (Dawn quantises timestamps to about 0.1 ms); the median of --runs
 * samples per call is reported. Every result is compared with the CPU backend (max relative
 * error printed: a wrong kernel is not a benchmark).
 *
 * Prints a table and writes JSON; asserts nothing about time. Runs under Bun, Deno and Node
 * (Node: bundle with esbuild; see ../../../../shared/gpu/README.md for GPU-machine runs).
 *
 *   bun packages/bench/src/webgpu-ops.ts [--small] [--ops conv,reduce] [--reduce-plans default,t4,t16,w4096]
 *       [--rows 8] [--gradw-targets 1024,4096] [--runs 9] [--json] [--out FILE]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { choice, flagList, fmt, formatTable, fromRoot, median, parseFlags, POSITIVE_INT, positiveInt, runMain, UsageError, writeJson } from "./runtime.ts";
import { gpuBenchHeader, launchKeys, timeGpuCalls } from "./gpu-timing.ts";
import type { KernelArg, PrimName, PrimParams } from "../../tensor/src/backend.ts";
import { bind, disposeTree, fromArray, setBackend } from "../../tensor/src/index.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { convTuning } from "../../tensor/src/webgpu/kernels/conv.ts";
import { reduceTuning } from "../../tensor/src/webgpu/kernels/reduce.ts";

const HELP = `webgpu-ops: GPU time of the conv1d and reduction kernels at a training step's sizes

  --small           small sizes (runs on lavapipe in seconds; a smoke test of this program)
  --ops a,b         which families: conv, reduce (default both)
  --reduce-plans P  reduction plans, comma-separated, each "default" or knobs joined by "+":
                    tN terms per thread, lN most lanes per output (kept-inner), wN target
                    workgroups of a split, mN shortest chunk (default "default,t4,t16,w4096")
  --rows a,b        steps per thread of the conv forward / gradX window kernel (default 8)
  --gradw-targets a,b  most workgroups of conv1dCausalGradW's first pass (steps per thread
                    double from 8 to 64 until they fit; default 1024,4096)
  --runs N          timed samples per case; the median is reported (default 9)
  --sample-ms MS    target duration of one sample (default 20)
  --warmup-ms MS    busy time before timing each case (default 300)
  --json            print the JSON result on stdout instead of the table
  --out FILE        JSON output (default packages/bench/results/webgpu-ops.json)
  --help            this text`;

interface OpCase {
  family: "conv" | "reduce";
  /** What the op is in a training step. */
  what: string;
  prim: PrimName;
  params: PrimParams[PrimName];
  inputs: number[][];
  out: number[];
}

function reduceCase(what: string, shape: number[], axes: number[]): OpCase {
  return { family: "reduce", what, prim: "reduce", params: { op: "sum", axes }, inputs: [shape], out: shape.map((d, i) => (axes.includes(i) ? 1 : d)) };
}

/** The cases at the training's sizes (B·L = 8 × 2048, d_inner 512, d 256, N 16) or --small ones. */
function cases(small: boolean): OpCase[] {
  const [B, L, Di, D] = small ? [2, 256, 128, 32] : [8, 2048, 512, 256];
  const K = 4;
  return [
    { family: "conv", what: "conv1dCausal (Mamba's conv)", prim: "conv1dCausal", params: {}, inputs: [[B, L, Di], [Di, K]], out: [B, L, Di] },
    { family: "conv", what: "conv1dCausalGradX", prim: "conv1dCausalGradX", params: {}, inputs: [[B, L, Di], [Di, K]], out: [B, L, Di] },
    { family: "conv", what: "conv1dCausalGradW (\"convGradW\")", prim: "conv1dCausalGradW", params: { k: K }, inputs: [[B, L, Di], [B, L, Di]], out: [Di, K] },
    reduceCase("bias gradient (conv b, broadcast adds)", [B, L, Di], [0, 1]),
    reduceCase("RMSNorm weight gradient", [B, L, D], [0, 1]),
    reduceCase("RMSNorm row sums", [B, L, D], [2]),
    reduceCase("selective scan dB / dC sums", [B, L, Di / 64, 16], [2]),
    reduceCase("batched matmul weight gradient", [B, 2 * D, D], [0]),
    reduceCase("squared norm for clipping", [D, 4 * D], [0, 1]),
    reduceCase("loss / row total", [B, L, 1], [0, 1, 2]),
    reduceCase("note scores over 4 (MemMamba)", [B, L, 64, 4], [3]),
    reduceCase("full sum of [B, L, 50] (MemMamba)", [B, L, 50], [0, 1, 2]),
  ];
}

/** A reduction plan from "default" or e.g. "t16+w4096" (see --help). */
function parsePlan(spec: string): Partial<typeof reduceTuning> {
  if (spec === "default") return {};
  const keys: Record<string, keyof typeof reduceTuning> = { t: "termsPerThread", l: "maxKeptLanes", w: "targetWorkgroups", m: "minChunk" };
  const plan: Partial<typeof reduceTuning> = {};
  for (const part of spec.split("+")) {
    const k = keys[part[0]], n = Number(part.slice(1));
    if (!k || !Number.isInteger(n) || n < 1) throw new UsageError(`--reduce-plans: "${part}" in "${spec}" is not tN, lN, wN or mN with N a positive integer`);
    plan[k] = n;
  }
  return plan;
}

function randomData(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export interface OpRow {
  op: string;
  what: string;
  shapes: number[][];
  variant: string;
  /** Compute dispatches per call, with their pipeline keys. */
  dispatches: number;
  kernels: string[];
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  repsPerSample: number;
  /** Bytes of the inputs read once and the output written, per median time. */
  gbPerS: number;
  /** Largest |gpu − cpu| / (1 + |cpu|). */
  maxErr: number;
}

/** The CPU backend's result of the case (the reference). */
async function reference(c: OpCase, data: Float32Array[]): Promise<Float32Array> {
  setBackend("cpu");
  const ts = c.inputs.map((s, i) => fromArray(data[i], s, "f32"));
  const out = bind(c.prim, ts, c.params as never);
  const r = (await out.data()) as Float32Array;
  disposeTree([ts, out]);
  return r;
}

async function benchCase(gpu: WebGpuBackend, c: OpCase, variant: string, apply: () => () => void, data: Float32Array[], want: Float32Array,
  opts: { runs: number; sampleMs: number; warmupMs: number; timestamps: boolean }): Promise<OpRow> {
  const bufs = c.inputs.map((s, i) => {
    const h = gpu.alloc(size(s), "f32");
    gpu.write(h, data[i]);
    return h;
  });
  const out = gpu.alloc(size(c.out), "f32");
  const args: KernelArg[] = c.inputs.map((s, i) => ({ buf: bufs[i], shape: s, dtype: "f32" }));
  const oarg: KernelArg = { buf: out, shape: c.out, dtype: "f32" };
  const restore = apply();
  try {
    const run = () => gpu.run(c.prim, args, oarg, c.params as never);
    // the dispatches of one call
    const keys = launchKeys(gpu, run);
    await gpu.sync();
    const got = (await gpu.read(out)) as Float32Array;
    let maxErr = 0;
    for (let i = 0; i < want.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
    const t = await timeGpuCalls(gpu, run, opts);
    const samples = t.samplesMs, reps = t.reps;
    const med = median(samples);
    const bytes = 4 * (c.inputs.reduce((a, s) => a + size(s), 0) + size(c.out));
    return {
      op: c.prim, what: c.what, shapes: c.inputs, variant, dispatches: keys.length, kernels: keys, medianMs: med, minMs: Math.min(...samples),
      samplesMs: samples, repsPerSample: reps, gbPerS: bytes / (med * 1e-3) / 1e9, maxErr,
    };
  } finally {
    restore();
    for (const h of [...bufs, out]) gpu.free(h);
  }
}

function setKnobs<O extends object>(obj: O, change: Partial<O>): () => void {
  const saved = Object.fromEntries(Object.keys(change).map((k) => [k, obj[k as keyof O]])) as Partial<O>;
  Object.assign(obj, change);
  return () => Object.assign(obj, saved);
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, { small: "boolean", ops: "string", "reduce-plans": "string", rows: "string", "gradw-targets": "string", runs: "string", "sample-ms": "string", "warmup-ms": "string", json: "boolean", out: "string" });
  const small = f.small === true;
  const families = flagList("ops", f.ops, choice(["conv", "reduce"]), ["conv", "reduce"]);
  const plans = String(f["reduce-plans"] ?? "default,t4,t16,w4096").split(",").map((s) => s.trim()).filter(Boolean).map((s) => [s, parsePlan(s)] as const);
  const rowsList = flagList("rows", f.rows, POSITIVE_INT, [8]);
  const targets = flagList("gradw-targets", f["gradw-targets"], POSITIVE_INT, [1024, 4096]);
  const opts = {
    runs: positiveInt("runs", f.runs, small ? 3 : 9),
    sampleMs: positiveInt("sample-ms", f["sample-ms"], small ? 5 : 20),
    warmupMs: positiveInt("warmup-ms", f["warmup-ms"], small ? 20 : 300),
    timestamps: false,
  };

  const gpu = await createWebGpuBackend({ timestamps: true });
  opts.timestamps = gpu.device.features.has("timestamp-query");
  const rows: OpRow[] = [];
  try {
    let seed = 1;
    for (const c of cases(small).filter((q) => families.includes(q.family))) {
      const data = c.inputs.map((s) => randomData(size(s), seed++));
      const want = await reference(c, data);
      setBackend(gpu);
      const variants: [string, () => () => void][] = [];
      if (c.family === "conv") {
        const forward = c.prim !== "conv1dCausalGradW";
        if (forward) for (const r of rowsList) variants.push([`window, ${r} steps/thread`, () => setKnobs(convTuning, { algo: "window", rowsPerThread: r })]);
        else for (const t of targets) variants.push([`window, ≤ ${t} workgroups`, () => setKnobs(convTuning, { algo: "window", gradWTargetWorkgroups: t })]);
        variants.push(["direct (previous kernel)", () => setKnobs(convTuning, { algo: "direct" })]);
      } else for (const [name, plan] of plans) variants.push([name, () => setKnobs(reduceTuning, plan)]);
      for (const [name, apply] of variants) {
        const row = await benchCase(gpu, c, name, apply, data, want, opts);
        rows.push(row);
        console.error(`${c.prim} ${JSON.stringify(c.inputs)} ${name}: ${fmt(row.medianMs, 4)} ms`);
      }
    }
  } finally {
    gpu.destroy();
  }
  const result = {
    ...gpuBenchHeader("webgpu-ops", gpu, opts.timestamps),
    sizes: small ? "small (--small)" : "training: B 8, L 2048, d_inner 512, d 256, N 16, conv width 4",
    runs: opts.runs,
    rows,
  };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", small ? "webgpu-ops-small.json" : "webgpu-ops.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-ops — ${result.runtime}, ${result.adapter} via ${result.via}; ${result.timing}; median of ${opts.runs}; ${result.sizes}`);
  console.log(formatTable(
    ["op", "input shapes", "variant", "dispatches", "median ms", "min ms", "GB/s", "max err", "what"],
    rows.map((r) => [r.op === "reduce" ? `sum (${r.kernels[0]?.split(":").slice(-1)[0] ?? "none"})` : r.op, JSON.stringify(r.shapes), r.variant, String(r.dispatches), fmt(r.medianMs, 4), fmt(r.minMs, 4), fmt(r.gbPerS, 4), r.maxErr.toExponential(1), r.what]),
  ));
}

if (import.meta.main ?? true) runMain("webgpu-ops", main);
