/**
 * WebGPU fp32 matmul throughput: C = A·B at n × n (TFLOP/s = 2n³ / t), the library's kernel
 * as the backend runs it (pipeline chosen by size; buffers allocated once, outside the timing).
 *
 * Timing: after about a second of warm-up (clocks settle), each sample runs enough dispatches to
 * last about --sample-ms; GPU time from timestamp queries around the compute passes when the
 * adapter has 'timestamp-query' (Dawn quantises them to about 0.1 ms, hence several dispatches),
 * otherwise wall clock with one sync at the end. The median of --runs samples (default 9) is
 * reported, per dispatch. Each size is also checked against a float64 CPU dot product on
 * --check sampled entries of C (max relative error printed; a wrong kernel is not a benchmark).
 *
 * Prints a table and writes JSON; asserts nothing about time. Runs under Bun, Deno and Node
 * (Node: bundle with esbuild, --external:webgpu; see ../../../../shared/gpu/README.md for H100 runs).
 *
 *   node out.mjs [--sizes 1024,2048,4096] [--runs 9] [--json] [--out FILE] [--tile auto|64|128x64|128|BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf],...] [--sweep]
 *   node out.mjs --shapes train|MxNxK[xBATCH][:tA][:tB],... [--split-k on|off|both]
 *
 * --tile takes a comma-separated list: every size is run with every tile (a sweep in one run;
 * the fastest per size is marked in the table and listed in the JSON's "best").
 * --shapes times rectangular (and batched) problems as the library plans them, with split-K on
 * and off side by side (--split-k both, the default): "train" is the shape classes of a MemMamba
 * training step (small preset, batch 8 × 2048 tokens) whose output has few blocks, mostly the
 * weight gradients dW = Xᵀ·dY per batch element (transA, K = 2048 rows).
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { flagList, fmt, formatTable, fromRoot, median, oneOf, parseFlags, POSITIVE_INT, positiveInt, runMain, UsageError, writeJson } from "./runtime.ts";
import { gpuBenchHeader, timeGpuCalls } from "./gpu-timing.ts";
import type { KernelArg } from "../../tensor/src/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { BIG_TILE, fitTile, matmulPlan, matmulTuning, MID_TILE, parseTile, SMALL_TILE, splitKPlan, tileName, type TileConfig } from "../../tensor/src/webgpu/kernels/matmul.ts";

const HELP = `webgpu-matmul: fp32 matmul throughput of the WebGPU backend

  --sizes a,b,...   square sizes (default 1024,2048,4096)
  --runs N          timed samples per size; the median is reported (default 9)
  --check N         entries of C compared with a float64 CPU reference (default 64)
  --sample-ms MS    target duration of one sample: dispatches per sample (default 20)
  --warmup-ms MS    busy time before timing each size (default 1000)
  --tile T,...      block tiles to run, each size with each (a sweep): auto (default: chosen
                    by size), 64, 128x64, 128 (the library's three), or a spec
                    BMxBNxBK/TMxTN[:db][:cf][:xs][:wl][:sw|:swN][:rf] (:db double-buffers
                    workgroup memory, :cf stores tiles without bank conflicts, :xs does
                    it by an XOR swizzle instead of padding, :wl lays threads out 8x4
                    per warp, :sw orders blocks in bands of 8 rows, :swN of N rows, :rf
                    reads the next k step's fragments before this step's FMAs), e.g.
                    --tile auto,128x128x16/8x8:db,128x256x16/8x16,256x128x8/16x8:db
  --sweep           shorthand for --tile with a list of candidate tiles (printed in the table)
  --shapes S,...    rectangular problems instead of (or, with --sizes, besides) the squares,
                    each with every --tile (also "untiled" here: the library's small kernel):
                    MxNxK[xBATCH][:tA][:tB] is C [BATCH, M, N] = op(A)·op(B) with A [BATCH, M, K]
                    ([BATCH, K, M] with :tA), B [BATCH, K, N] ([BATCH, N, K] with :tB); :add
                    times addMatmul instead, C_in + A·B (:scale also each row times s [BATCH, M]:
                    MemMamba's fusions, e.g. 61440x256x64:add:scale); "train" expands to a
                    training step's few-block shapes (default with --split-k)
  --split-k MODE    on, off or both (default both: each shape twice, the speedup printed)
  --split-max N     split launches below N workgroups in 64x64-block units (matmulTuning.
                    splitKMaxWorkgroups, default 256; e.g. 1024 also splits the 128x64 tile's
                    training shapes)
  --split-target N  workgroups × slices to aim for (splitKTargetWorkgroups, default 512)
  --split-min-slice N  shortest slice of K (splitKMinSlice, default 128)
  --json            print the JSON result on stdout instead of the table
  --out FILE        where to write the JSON (default packages/bench/results/webgpu-matmul.json,
                    or webgpu-matmul-shapes.json for a run of --shapes alone)
  --help            this text`;

/**
 * --shapes train: the matmuls of one MemMamba training step (small preset: d 256, 8 layers, batch
 * 8 × 2048 tokens) whose output has too few blocks for a big GPU, as the backend sees them
 * (logged from Backend.run on one step): the weight gradients dW = Xᵀ·dY per batch element
 * (transA, K = 2048) of the in / x / dt / out / note / summary projections, and the thin
 * [16384, 256]·[256, 1] gate forward (untiled).
 */
const TRAIN_SHAPES = [
  "256x1x2048x8:tA", "256x64x2048x8:tA", "64x256x2048x8:tA", "256x256x2048x8:tA", "512x48x2048x8:tA",
  "16x512x2048x8:tA", "512x256x2048x8:tA", "256x1024x2048x8:tA", "16384x1x256",
].join(",");

/** --sweep: the library's choice, then candidates around it (each compiled once, about a second per size on an H100). */
const SWEEP = [
  "auto", "128x128x32/8x8:cf", "128x128x32/8x8:wl", "128x128x32/8x8:cf:wl", "128x128x16/8x8:cf:wl", "128x128x16/8x8:db:cf:wl",
  "128x128x8/8x8:db:cf:wl", "128x256x16/8x16:cf", "128x256x16/8x16:cf:wl", "128x256x8/8x16:db:cf:wl", "256x128x16/16x8:cf:wl",
  "256x128x8/16x8:db:cf:wl", "128x64x32/8x4:cf:wl", "128x128x32/8x8:cf:wl:sw", "128x128x16/8x8:db:cf:wl:sw",
  "128x256x16/8x16:cf:wl:sw",
  // issue 5 candidates, next to the wide tile above: band heights; next-step fragments first;
  // XOR swizzle instead of padding, which lets 32-deep k-tiles of a 128x256 (or 256x128) block
  // fit 48 KB (fitTile runs them with BK 16 on a device with less); the unpadded 32-deep tile
  // (bank conflicts on A's stores) as the control
  "128x256x16/8x16:cf:wl:sw4", "128x256x16/8x16:cf:wl:sw16", "128x256x16/8x16:cf:wl:sw:rf", "128x256x16/8x16:cf:xs:wl:sw",
  "128x256x32/8x16:wl:sw", "128x256x32/8x16:cf:xs:wl:sw", "128x256x32/8x16:cf:xs:wl:sw:rf", "256x128x32/16x8:cf:xs:wl:sw",
].join(",");

export interface MatmulRow {
  n: number;
  /** The --tile entry this row ran with. */
  requested: string;
  tile: string;
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  /** Dispatches per sample. */
  repsPerSample: number;
  tflops: number;
  /** Largest |gpu − ref| / (|ref| + 1e-3·Σ|a·b|) over the checked entries. */
  maxRelErr: number;
}

/** One --shapes row: a problem run with split-K on or off. */
export interface ShapeRow extends ShapeSpec {
  /** The --tile entry this row ran with (auto: the library's choice). */
  requested?: string;
  splitK: boolean;
  /** The kernel the library ran: tile or "untiled", and the split (slices × slice length). */
  kernel: string;
  slices: number;
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  repsPerSample: number;
  gflops: number;
  /** Largest |gpu − ref| / (|ref| + 1e-3·Σ|a·b|) over the checked entries. */
  maxRelErr: number;
}

/** A --shapes problem: batch × [M, K]·[K, N], with the transposes. */
export interface ShapeSpec {
  /** The spec as given (MxNxK[xBATCH][:tA][:tB][:add][:scale]). */
  shape: string;
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** addMatmul: C = C_in + A·B (untransposed). */
  add?: boolean;
  /** addMatmul with a row scale: C = C_in + (A·B) ⊙ s. */
  scale?: boolean;
}

/** Parses --shapes ("train" expands to TRAIN_SHAPES), or a clear error naming the bad entry. */
export function parseShapes(list: string): ShapeSpec[] {
  const specs = list.split(",").map((s) => s.trim()).filter(Boolean).flatMap((s) => (s === "train" ? TRAIN_SHAPES.split(",") : [s]));
  if (specs.length === 0) throw new UsageError(`--shapes: no shapes in "${list}"`);
  return specs.map((spec) => {
    const m = /^(\d+)x(\d+)x(\d+)(?:x(\d+))?((?::tA|:tB|:add|:scale)*)$/.exec(spec);
    if (!m) throw new UsageError(`--shapes: "${spec}" is not MxNxK[xBATCH][:tA][:tB][:add][:scale] (e.g. 256x64x2048x8:tA) or train`);
    const [M, N, K, batch] = [m[1], m[2], m[3], m[4] ?? "1"].map(Number);
    if ([M, N, K, batch].some((v) => v < 1)) throw new UsageError(`--shapes: "${spec}": every size must be at least 1`);
    const flags = m[5];
    const scale = flags.includes(":scale"), add = scale || flags.includes(":add");
    const transA = flags.includes(":tA"), transB = flags.includes(":tB");
    if (add && (transA || transB)) throw new UsageError(`--shapes: "${spec}": addMatmul (:add, :scale) takes no transposes`);
    return { shape: spec, M, N, K, batch, transA, transB, ...(add ? { add, scale } : {}) };
  });
}

function randomMatrix(n: number, seed: number, len = n * n): Float32Array {
  const a = new Float32Array(len);
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function arg(buf: KernelArg["buf"], n: number): KernelArg {
  return { buf, shape: [n, n], dtype: "f32" };
}

/** One --shapes problem with split-K on or off (matmulTuning.splitK), checked on sampled entries. */
async function benchShape(gpu: WebGpuBackend, sp: ShapeSpec, splitK: boolean, runs: number, checks: number, sampleMs: number, warmupMs: number, timestamps: boolean): Promise<ShapeRow> {
  const { M, N, K, batch, transA, transB } = sp;
  const lead = batch > 1 ? [batch] : [];
  const aShape = [...lead, ...(transA ? [K, M] : [M, K])], bShape = [...lead, ...(transB ? [N, K] : [K, N])], cShape = [...lead, M, N];
  const A = randomMatrix(0, 1, batch * M * K), B = randomMatrix(0, 2, batch * K * N);
  const a = gpu.alloc(A.length, "f32"), b = gpu.alloc(B.length, "f32"), c = gpu.alloc(batch * M * N, "f32");
  gpu.write(a, A);
  gpu.write(b, B);
  const args = (buf: KernelArg["buf"], shape: number[]): KernelArg => ({ buf, shape, dtype: "f32" });
  // addMatmul (:add, :scale): C = C_in + (A·B) ⊙ s, w unbatched as the primitive takes it
  const Cin = sp.add ? randomMatrix(0, 3, batch * M * N) : null, S = sp.scale ? randomMatrix(0, 4, batch * M) : null;
  const extra = [Cin && gpu.alloc(Cin.length, "f32"), S && gpu.alloc(S.length, "f32")];
  if (Cin) gpu.write(extra[0]!, Cin);
  if (S) gpu.write(extra[1]!, S);
  if (sp.add && batch > 1) throw new UsageError(`--shapes: "${sp.shape}": addMatmul's weight is one [K, N] matrix (no batch)`);
  const run = sp.add
    ? () => gpu.run("addMatmul", [args(extra[0]!, cShape), args(a, aShape), args(b, [K, N]), ...(S ? [args(extra[1]!, [...lead, M])] : [])], args(c, cShape), {})
    : () => gpu.run("matmul", [args(a, aShape), args(b, bShape)], args(c, cShape), { transA, transB });
  const was = matmulTuning.splitK;
  matmulTuning.splitK = splitK;
  try {
    const { samplesMs: samples, reps } = await timeGpuCalls(gpu, run, { runs, sampleMs, warmupMs, timestamps });
    const C = (await gpu.read(c)) as Float32Array;
    let maxRelErr = 0;
    let s = 7;
    const next = (n: number) => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % n;
    };
    for (let q = 0; q < checks; q++) {
      const z = next(batch), i = next(M), j = next(N);
      let ref = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const x = A[z * M * K + (transA ? k * M + i : i * K + k)], y = B[z * K * N + (transB ? j * K + k : k * N + j)];
        ref += x * y;
        mag += Math.abs(x * y);
      }
      if (S) {
        ref *= S[z * M + i];
        mag *= Math.abs(S[z * M + i]);
      }
      if (Cin) {
        ref += Cin[z * M * N + i * N + j];
        mag += Math.abs(Cin[z * M * N + i * N + j]);
      }
      maxRelErr = Math.max(maxRelErr, Math.abs(C[z * M * N + i * N + j] - ref) / (Math.abs(ref) + 1e-3 * mag + 1e-30));
    }
    // the plan as matmulKernel makes it (batched B: no folding of A's batch into M)
    const p = matmulPlan(M, N, K, batch);
    const t = p === "untiled" ? p : fitTile(p, gpu.limits.maxComputeWorkgroupStorageSize);
    const { slices, sliceLen } = splitKPlan(M, N, K, batch, t, gpu.limits.maxStorageBufferBindingSize);
    const med = median(samples);
    return {
      ...sp, splitK, slices,
      kernel: `${t === "untiled" ? t : tileName(t)}${slices > 1 ? ` split ${slices}x${sliceLen}` : ""}`,
      medianMs: med, minMs: Math.min(...samples), samplesMs: samples, repsPerSample: reps,
      gflops: (2 * batch * M * N * K) / (med * 1e-3) / 1e9, maxRelErr,
    };
  } finally {
    matmulTuning.splitK = was;
    for (const h of [a, b, c, ...extra]) if (h) gpu.free(h);
  }
}

async function benchSize(gpu: WebGpuBackend, requested: string, n: number, runs: number, checks: number, sampleMs: number, warmupMs: number, timestamps: boolean): Promise<MatmulRow> {
  const A = randomMatrix(n, 1), B = randomMatrix(n, 2);
  const a = gpu.alloc(n * n, "f32"), b = gpu.alloc(n * n, "f32"), c = gpu.alloc(n * n, "f32");
  gpu.write(a, A);
  gpu.write(b, B);
  const run = () => gpu.run("matmul", [arg(a, n), arg(b, n)], arg(c, n), { transA: false, transB: false });
  try {
    const { samplesMs: samples, reps } = await timeGpuCalls(gpu, run, { runs, sampleMs, warmupMs, timestamps });
    // correctness on sampled entries against float64 dot products
    const C = (await gpu.read(c)) as Float32Array;
    let maxRelErr = 0;
    let s = 7;
    for (let q = 0; q < checks; q++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const i = s % n;
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const j = s % n;
      let ref = 0, mag = 0;
      for (let k = 0; k < n; k++) {
        ref += A[i * n + k] * B[k * n + j];
        mag += Math.abs(A[i * n + k] * B[k * n + j]);
      }
      maxRelErr = Math.max(maxRelErr, Math.abs(C[i * n + j] - ref) / (Math.abs(ref) + 1e-3 * mag));
    }
    const med = median(samples);
    const p = matmulPlan(n, n, n, 1);
    const t = p === "untiled" ? p : fitTile(p, gpu.limits.maxComputeWorkgroupStorageSize); // as the kernel runs it
    return {
      n, requested, tile: t === "untiled" ? t : `${tileName(t)}${t.specialize && matmulTuning.unrollBig ? " unrolled" : ""}`,
      medianMs: med, minMs: Math.min(...samples), samplesMs: samples, repsPerSample: reps,
      tflops: (2 * n ** 3) / (med * 1e-3) / 1e12, maxRelErr,
    };
  } finally {
    for (const h of [a, b, c]) gpu.free(h);
  }
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, {
    sizes: "string", runs: "string", check: "string", "sample-ms": "string", "warmup-ms": "string", tile: "string", sweep: "boolean", json: "boolean", out: "string",
    shapes: "string", "split-k": "string", "split-max": "string", "split-target": "string", "split-min-slice": "string",
  });
  matmulTuning.splitKMaxWorkgroups = positiveInt("split-max", f["split-max"], matmulTuning.splitKMaxWorkgroups);
  matmulTuning.splitKTargetWorkgroups = positiveInt("split-target", f["split-target"], matmulTuning.splitKTargetWorkgroups);
  matmulTuning.splitKMinSlice = positiveInt("split-min-slice", f["split-min-slice"], matmulTuning.splitKMinSlice);
  const splitMode = oneOf("split-k", f["split-k"], ["on", "off", "both"] as const) ?? "both";
  const splitRuns = splitMode === "both" ? [false, true] : [splitMode === "on"];
  // --split-k alone means the training's shapes; squares only when asked for or when no shapes are
  const shapes = f.shapes !== undefined || f["split-k"] !== undefined ? parseShapes(String(f.shapes ?? "train")) : [];
  const sizes = f.sizes === undefined && shapes.length > 0 ? [] : flagList("sizes", f.sizes, POSITIVE_INT, [1024, 2048, 4096]);
  const runs = positiveInt("--runs", f.runs, 9);
  const checks = positiveInt("--check", f.check, 64);
  const sampleMs = positiveInt("--sample-ms", f["sample-ms"], 20);
  const warmupMs = positiveInt("--warmup-ms", f["warmup-ms"], 1000);
  const tileList = f.sweep === true ? SWEEP : String(f.tile ?? "auto");
  const tiles: [string, TileConfig | "untiled" | null][] = tileList.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === "auto") return [s, null];
    if (s === "untiled") return [s, "untiled"];
    if (s === "64") return [s, SMALL_TILE];
    if (s === "128x64") return [s, MID_TILE];
    if (s === "128") return [s, BIG_TILE];
    try {
      return [s, parseTile(s)];
    } catch (e) {
      throw new UsageError(`--tile: ${(e as Error).message} (or auto, 64, 128x64, 128)`);
    }
  });

  const gpu = await createWebGpuBackend({ timestamps: true });
  const timestamps = gpu.device.features.has("timestamp-query");
  const rows: MatmulRow[] = [];
  const shapeRows: ShapeRow[] = [];
  try {
    for (const [name, t] of tiles) {
      matmulTuning.force = t;
      for (const n of sizes) rows.push(await benchSize(gpu, name, n, runs, checks, sampleMs, warmupMs, timestamps));
    }
    // shapes: every shape with every --tile (forced through matmulTuning.force) and split mode
    for (const sp of shapes) {
      for (const [name, t] of tiles) {
        matmulTuning.force = t;
        for (const on of splitRuns) shapeRows.push({ ...(await benchShape(gpu, sp, on, runs, checks, sampleMs, warmupMs, timestamps)), requested: name });
      }
    }
    matmulTuning.force = null;
  } finally {
    matmulTuning.force = null;
    gpu.destroy();
  }
  /** Per shape run both ways: unsplit median / split median (> 1: split-K is faster). */
  const splitSpeedup = shapes.flatMap((sp) => tiles.flatMap(([name]) => {
    const mine = shapeRows.filter((r) => r.shape === sp.shape && r.requested === name);
    const off = mine.find((r) => !r.splitK), on = mine.find((r) => r.splitK);
    return off && on ? [{ shape: sp.shape, requested: name, kernel: on.kernel, offMs: off.medianMs, onMs: on.medianMs, speedup: off.medianMs / on.medianMs }] : [];
  }));
  const result = {
    ...gpuBenchHeader("webgpu-matmul", gpu, timestamps),
    runs,
    /** The split-K knobs this run used. */
    splitKTuning: { maxWorkgroups: matmulTuning.splitKMaxWorkgroups, targetWorkgroups: matmulTuning.splitKTargetWorkgroups, minSlice: matmulTuning.splitKMinSlice, minFlops: matmulTuning.splitKMinFlops },
    rows,
    /** --shapes: each problem with split-K off and / or on. */
    shapes: shapeRows,
    splitSpeedup,
    /** The fastest row per size (with its tile). */
    best: sizes.map((n) => {
      const r = rows.filter((q) => q.n === n).sort((p, q) => q.tflops - p.tflops)[0];
      return { n, requested: r.requested, tile: r.tile, tflops: r.tflops };
    }),
  };
  // a shapes-only run keeps its own file (the squares' results stay where they were)
  const outName = sizes.length === 0 ? "webgpu-matmul-shapes.json" : "webgpu-matmul.json";
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", outName), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-matmul — ${result.runtime}, ${result.adapter} via ${result.via}${result.dawnFlags ? ` (Dawn flags: ${result.dawnFlags})` : ""}; ${result.timing}; median of ${runs}`);
  if (shapeRows.length > 0) {
    console.log(formatTable(
      ["shape", "--tile", "split-K", "kernel", "median ms", "min ms", "GFLOP/s", "max rel err", "speedup"],
      shapeRows.map((r) => {
        const sp = r.splitK ? splitSpeedup.find((q) => q.shape === r.shape && q.requested === r.requested) : undefined;
        return [r.shape, r.requested ?? "auto", r.splitK ? "on" : "off", r.kernel, fmt(r.medianMs, 4), fmt(r.minMs, 4), fmt(r.gflops, 4), r.maxRelErr.toExponential(2), sp ? `${fmt(sp.speedup, 3)}x` : ""];
      }),
    ));
    const off = splitSpeedup.reduce((a, q) => a + q.offMs, 0), on = splitSpeedup.reduce((a, q) => a + q.onMs, 0);
    if (splitSpeedup.length > 0 && tiles.length === 1) console.log(`all shapes once each: ${fmt(off, 4)} ms unsplit, ${fmt(on, 4)} ms with split-K (${fmt(off / on, 3)}x)`);
  }
  if (rows.length === 0) return;
  console.log(formatTable(
    ["n", "--tile", "kernel", "median ms", "min ms", "TFLOP/s", "max rel err", "best"],
    rows.map((r) => [
      r.n, r.requested, r.tile, fmt(r.medianMs, 4), fmt(r.minMs, 4), fmt(r.tflops, 4), r.maxRelErr.toExponential(2),
      result.best.some((b) => b.n === r.n && b.requested === r.requested) ? "*" : "",
    ]),
  ));
}

if (import.meta.main ?? true) runMain("webgpu-matmul", main);
