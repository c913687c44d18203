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
 *   node out.mjs [--sizes 1024,2048,4096] [--runs 9] [--json] [--out FILE] [--tile auto|64|128x64|128|BMxBNxBK/TMxTN[:db][:cf][:wl][:sw],...] [--sweep]
 *
 * --tile takes a comma-separated list: every size is run with every tile (a sweep in one run;
 * the fastest per size is marked in the table and listed in the JSON's "best").
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { detectRuntime, fmt, formatTable, fromRoot, median, now, parseFlags, positiveInt, programArgs, writeJson } from "./runtime.ts";
import process from "node:process";
import type { KernelArg } from "../../tensor/src/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { BIG_TILE, fitTile, matmulPlan, matmulTuning, MID_TILE, parseTile, SMALL_TILE, tileName, type TileConfig } from "../../tensor/src/webgpu/kernels/matmul.ts";

const HELP = `webgpu-matmul: fp32 matmul throughput of the WebGPU backend

  --sizes a,b,...   square sizes (default 1024,2048,4096)
  --runs N          timed samples per size; the median is reported (default 9)
  --check N         entries of C compared with a float64 CPU reference (default 64)
  --sample-ms MS    target duration of one sample: dispatches per sample (default 20)
  --warmup-ms MS    busy time before timing each size (default 1000)
  --tile T,...      block tiles to run, each size with each (a sweep): auto (default: chosen
                    by size), 64, 128x64, 128 (the library's three), or a spec
                    BMxBNxBK/TMxTN[:db][:cf][:wl][:sw] (:db double-buffers workgroup memory,
                    :cf stores tiles without bank conflicts, :wl lays threads out
                    8x4 per warp, :sw orders blocks in bands of 8 rows), e.g.
                    --tile auto,128x128x16/8x8:db,128x256x16/8x16,256x128x8/16x8:db
  --sweep           shorthand for --tile with a list of candidate tiles (printed in the table)
  --json            print the JSON result on stdout instead of the table
  --out FILE        where to write the JSON (default packages/bench/results/webgpu-matmul.json)
  --help            this text`;

/** --sweep: the library's choice, then candidates around it (each compiled once, about a second per size on an H100). */
const SWEEP = [
  "auto", "128x128x32/8x8:cf", "128x128x32/8x8:wl", "128x128x32/8x8:cf:wl", "128x128x16/8x8:cf:wl", "128x128x16/8x8:db:cf:wl",
  "128x128x8/8x8:db:cf:wl", "128x256x16/8x16:cf", "128x256x16/8x16:cf:wl", "128x256x8/8x16:db:cf:wl", "256x128x16/16x8:cf:wl",
  "256x128x8/16x8:db:cf:wl", "128x64x32/8x4:cf:wl", "128x128x32/8x8:cf:wl:sw", "128x128x16/8x8:db:cf:wl:sw",
  "128x256x16/8x16:cf:wl:sw",
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

function randomMatrix(n: number, seed: number): Float32Array {
  const a = new Float32Array(n * n);
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

async function benchSize(gpu: WebGpuBackend, requested: string, n: number, runs: number, checks: number, sampleMs: number, warmupMs: number, timestamps: boolean): Promise<MatmulRow> {
  const A = randomMatrix(n, 1), B = randomMatrix(n, 2);
  const a = gpu.alloc(n * n, "f32"), b = gpu.alloc(n * n, "f32"), c = gpu.alloc(n * n, "f32");
  gpu.write(a, A);
  gpu.write(b, B);
  const run = () => gpu.run("matmul", [arg(a, n), arg(b, n)], arg(c, n), { transA: false, transB: false });
  try {
    // warm-up: compile the pipeline, then keep the GPU busy so clocks settle before timing
    run();
    await gpu.sync();
    const w0 = now();
    let calls = 0;
    while (now() - w0 < warmupMs) {
      for (let r = 0; r < 10; r++) run();
      calls += 10;
      await gpu.sync();
    }
    const oneMs = Math.max((now() - w0) / Math.max(calls, 1), 1e-3);
    const samples: number[] = [];
    // several dispatches per sample: timestamps may be quantised (Dawn: to about 0.1 ms)
    const reps = Math.max(1, Math.min(200, Math.round(sampleMs / oneMs)));
    for (let i = 0; i < runs; i++) {
      const many = () => {
        for (let r = 0; r < reps; r++) run();
      };
      if (timestamps) samples.push((await gpu.timeGpu(many))! / reps);
      else {
        const s0 = now();
        many();
        await gpu.sync();
        samples.push((now() - s0) / reps);
      }
    }
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

async function main(): Promise<void> {
  const argv = programArgs();
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, { sizes: "string", runs: "string", check: "string", "sample-ms": "string", "warmup-ms": "string", tile: "string", sweep: "boolean", json: "boolean", out: "string" });
  const sizes = String(f.sizes ?? "1024,2048,4096").split(",").map((s) => positiveInt("--sizes", s.trim(), 0));
  const runs = positiveInt("--runs", f.runs, 9);
  const checks = positiveInt("--check", f.check, 64);
  const sampleMs = positiveInt("--sample-ms", f["sample-ms"], 20);
  const warmupMs = positiveInt("--warmup-ms", f["warmup-ms"], 1000);
  const tileList = f.sweep === true ? SWEEP : String(f.tile ?? "auto");
  const tiles: [string, TileConfig | null][] = tileList.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
    if (s === "auto") return [s, null];
    if (s === "64") return [s, SMALL_TILE];
    if (s === "128x64") return [s, MID_TILE];
    if (s === "128") return [s, BIG_TILE];
    try {
      return [s, parseTile(s)];
    } catch (e) {
      throw new Error(`--tile: ${(e as Error).message} (or auto, 64, 128x64, 128)`);
    }
  });

  const gpu = await createWebGpuBackend({ timestamps: true });
  const timestamps = gpu.device.features.has("timestamp-query");
  const rows: MatmulRow[] = [];
  try {
    for (const [name, t] of tiles) {
      matmulTuning.force = t;
      for (const n of sizes) rows.push(await benchSize(gpu, name, n, runs, checks, sampleMs, warmupMs, timestamps));
    }
  } finally {
    gpu.destroy();
  }
  const rt = detectRuntime();
  const result = {
    benchmark: "webgpu-matmul",
    date: new Date().toISOString(),
    runtime: `${rt.name} ${rt.version}`,
    adapter: gpu.adapterInfo,
    via: gpu.via,
    timing: timestamps ? "gpu timestamp queries around the compute passes" : "wall clock, one sync per sample",
    runs,
    rows,
    /** The fastest row per size (with its tile). */
    best: sizes.map((n) => {
      const r = rows.filter((q) => q.n === n).sort((p, q) => q.tflops - p.tflops)[0];
      return { n, requested: r.requested, tile: r.tile, tflops: r.tflops };
    }),
  };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-matmul.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-matmul — ${result.runtime}, ${result.adapter} via ${result.via}; ${result.timing}; median of ${runs}`);
  console.log(formatTable(
    ["n", "--tile", "kernel", "median ms", "min ms", "TFLOP/s", "max rel err", "best"],
    rows.map((r) => [
      r.n, r.requested, r.tile, fmt(r.medianMs, 4), fmt(r.minMs, 4), fmt(r.tflops, 4), r.maxRelErr.toExponential(2),
      result.best.some((b) => b.n === r.n && b.requested === r.requested) ? "*" : "",
    ]),
  ));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
