/**
 * A minimal reproduction of Deno's WebGPU (wgpu / naga) running shaders that index a
 * function-scope array dynamically far slower than Dawn does (issue #5; measured on an H100:
 * a matmul with local arrays 0.50 TFLOP/s under Deno's navigator.gpu vs 22.1 under Dawn), and of
 * its slow round trips (onSubmittedWorkDone / mapAsync about 11 ms, Dawn 0.03–0.09 ms).
 *
 * Three twins of one small compute shader (each thread: 16 accumulators, `--iters` rounds of
 * acc_j = acc_j·x + k, then their sum), differing only in how the 16 values are held:
 *   local-dynamic   `var acc: array<f32, 16>` indexed by a loop variable (the slow shape);
 *   local-constant  the same array, every index a literal (loops unrolled in the source);
 *   unrolled        16 separate variables acc0..acc15 (what our kernels generate).
 * Each is GPU-timed (timestamp queries when the adapter has them, else wall clock over
 * --reps dispatches per submit) on every WebGPU implementation present: Deno's navigator.gpu
 * and Dawn (npm `webgpu`) under Deno; Dawn alone under Node and Bun. The three outputs are
 * checked equal (relative 1e-5) so a wrong twin is not a result. Then the round trips: an
 * empty submit + onSubmittedWorkDone, and a 4-byte mapAsync read, median of --runs.
 *
 *   deno run -A --unstable-webgpu packages/bench/src/deno-wgpu-repro.ts [--via navigator,dawn]
 *       [--threads 1048576] [--iters 256] [--reps 20] [--runs 9] [--json] [--out FILE]
 *   (on the GPU machine: ../../../../shared/gpu/pack.sh this file with RUNTIME=deno, then
 *   `deno run -A --unstable-webgpu .gpu/deno-wgpu-repro.mjs`)
 *
 * Prints a table and writes JSON; asserts nothing about time.
 */
import {
  choice, detectRuntime, flagList, flagValue, fmt, formatTable, fromRoot, gitCommit, median, now, numberFlag, parseFlags, positiveInt, runMain, writeJson,
} from "./runtime.ts";
import { z } from "zod";
import { acquireGpu, type AcquiredGpu, type GpuVia } from "../../tensor/src/webgpu/probe.ts";

const HELP = `deno-wgpu-repro: local arrays vs unrolled variables, and submit / readback round trips,
on each WebGPU implementation present (Deno's navigator.gpu, Dawn)

  --via LIST     navigator, dawn or both (= navigator,dawn, the default); those absent are reported
  --threads N    invocations per dispatch (default 1048576; a multiple of 256)
  --iters N      rounds per invocation (default 256)
  --reps N       dispatches per timed sample (default 20)
  --runs N       samples; the median is reported (default 9)
  --json         print the JSON result instead of the table
  --out FILE     where to write the JSON (default packages/bench/results/deno-wgpu-repro.json)
  --help         this text`;

const K = 16;
const J = Array.from({ length: K }, (_, j) => j);
const HEAD = `@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> iters: vec4<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let x = src[gid.x];`;

/** The three twins (same arithmetic in the same order). */
export const SHADERS: Record<string, string> = {
  "local-dynamic": `${HEAD}
  var acc: array<f32, ${K}>;
  for (var j = 0u; j < ${K}u; j++) { acc[j] = f32(j) * 0.01; }
  for (var k = 0u; k < iters.x; k++) {
    let c = f32(k) * 1e-3;
    for (var j = 0u; j < ${K}u; j++) { acc[j] = acc[j] * x + c; }
  }
  var s = 0.0f;
  for (var j = 0u; j < ${K}u; j++) { s += acc[j]; }
  dst[gid.x] = s;
}`,
  "local-constant": `${HEAD}
  var acc: array<f32, ${K}>;
  ${J.map((j) => `acc[${j}] = f32(${j}) * 0.01;`).join(" ")}
  for (var k = 0u; k < iters.x; k++) {
    let c = f32(k) * 1e-3;
    ${J.map((j) => `acc[${j}] = acc[${j}] * x + c;`).join(" ")}
  }
  var s = 0.0f;
  ${J.map((j) => `s += acc[${j}];`).join(" ")}
  dst[gid.x] = s;
}`,
  unrolled: `${HEAD}
  ${J.map((j) => `var acc${j} = f32(${j}) * 0.01;`).join(" ")}
  for (var k = 0u; k < iters.x; k++) {
    let c = f32(k) * 1e-3;
    ${J.map((j) => `acc${j} = acc${j} * x + c;`).join(" ")}
  }
  var s = 0.0f;
  ${J.map((j) => `s += acc${j};`).join(" ")}
  dst[gid.x] = s;
}`,
};

interface ShaderRow {
  via: GpuVia;
  shader: string;
  medianMs: number;
  samplesMs: number[];
  /** Multiply-adds per second (threads · iters · 16 / time). */
  gflops: number;
  /** Largest relative difference of this twin's output from the unrolled one's. */
  maxRelDiff: number;
}

interface RoundTrip {
  via: GpuVia;
  /** Empty submit + onSubmittedWorkDone, ms. */
  submitDoneMs: number;
  /** mapAsync + getMappedRange + unmap of 4 bytes (after a copy into the buffer), ms. */
  mapReadMs: number;
}

async function readBack(device: GPUDevice, buf: GPUBuffer, bytes: number): Promise<Float32Array> {
  const rb = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buf, 0, rb, 0, bytes);
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(rb.getMappedRange().slice(0));
  rb.unmap();
  rb.destroy();
  return out;
}

async function measure(g: AcquiredGpu, threads: number, iters: number, reps: number, runs: number): Promise<{ rows: ShaderRow[]; trip: RoundTrip }> {
  const { device } = g;
  const ts = device.features.has("timestamp-query");
  const bytes = threads * 4;
  const src = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  const dst = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const uni = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const xs = new Float32Array(threads);
  for (let i = 0; i < threads; i++) xs[i] = 0.5 + 0.4 * Math.sin(i); // |x| < 1: the values stay bounded
  device.queue.writeBuffer(src, 0, xs);
  device.queue.writeBuffer(uni, 0, new Uint32Array([iters, 0, 0, 0]));
  const qs = ts ? device.createQuerySet({ type: "timestamp", count: 2 }) : null;
  const qBuf = device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const qRead = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const outputs: Record<string, Float32Array> = {};
  const rows: ShaderRow[] = [];
  try {
    for (const [name, code] of Object.entries(SHADERS)) {
      const module = device.createShaderModule({ code, label: name });
      const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" }, label: name });
      const bind = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }, { binding: 2, resource: { buffer: uni } }],
      });
      const sample = async (n: number): Promise<number> => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass(qs ? { timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : undefined);
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        for (let r = 0; r < n; r++) pass.dispatchWorkgroups(threads / 256);
        pass.end();
        if (qs) {
          enc.resolveQuerySet(qs, 0, 2, qBuf, 0);
          enc.copyBufferToBuffer(qBuf, 0, qRead, 0, 16);
        }
        const t0 = now();
        device.queue.submit([enc.finish()]);
        if (!qs) {
          await device.queue.onSubmittedWorkDone();
          return (now() - t0) / n;
        }
        await qRead.mapAsync(GPUMapMode.READ);
        const t = new BigInt64Array(qRead.getMappedRange().slice(0));
        qRead.unmap();
        return Number(t[1] - t[0]) / 1e6 / n;
      };
      await sample(1); // compile and warm up
      await sample(reps);
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) samples.push(await sample(reps));
      outputs[name] = await readBack(device, dst, bytes);
      const med = median(samples);
      rows.push({ via: g.via, shader: name, medianMs: med, samplesMs: samples, gflops: (threads * iters * K) / (med * 1e-3) / 1e9, maxRelDiff: 0 });
    }
    const ref = outputs.unrolled;
    for (const r of rows) {
      let d = 0;
      for (let i = 0; i < threads; i++) d = Math.max(d, Math.abs(outputs[r.shader][i] - ref[i]) / (1 + Math.abs(ref[i])));
      r.maxRelDiff = d;
      if (!(d <= 1e-5)) throw new Error(`${g.via}: shader ${r.shader} differs from the unrolled twin by ${d} (relative): not a benchmark`);
    }
    // round trips
    const done: number[] = [], map: number[] = [];
    const small = device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      for (let i = 0; i < runs + 1; i++) {
        const t0 = now();
        device.queue.submit([]);
        await device.queue.onSubmittedWorkDone();
        const t1 = now();
        const enc = device.createCommandEncoder();
        enc.copyBufferToBuffer(dst, 0, small, 0, 4);
        device.queue.submit([enc.finish()]);
        await small.mapAsync(GPUMapMode.READ);
        small.getMappedRange();
        small.unmap();
        const t2 = now();
        if (i > 0) { // the first is a warm-up
          done.push(t1 - t0);
          map.push(t2 - t1);
        }
      }
    } finally {
      small.destroy();
    }
    return { rows, trip: { via: g.via, submitDoneMs: median(done), mapReadMs: median(map) } };
  } finally {
    for (const b of [src, dst, uni, qBuf, qRead]) b.destroy();
    qs?.destroy();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, { via: "string", threads: "string", iters: "string", reps: "string", runs: "string", json: "boolean", out: "string" });
  // "both" stands for navigator,dawn (the default)
  const vias = flagList("via", f.via, choice(["navigator", "navigator.gpu", "dawn", "both"]), ["both"])
    .flatMap((v): GpuVia[] => (v === "both" ? ["navigator.gpu", "dawn"] : v === "dawn" ? ["dawn"] : ["navigator.gpu"]));
  const threads = flagValue("threads", f.threads, numberFlag(z.number().int().positive().multipleOf(256), "a positive multiple of 256")) ?? 2 ** 20;
  const iters = positiveInt("--iters", f.iters, 256);
  const reps = positiveInt("--reps", f.reps, 20);
  const runs = positiveInt("--runs", f.runs, 9);

  const rows: ShaderRow[] = [];
  const trips: RoundTrip[] = [];
  const adapters: Record<string, string> = {};
  const skipped: string[] = [];
  for (const via of vias) {
    let g: AcquiredGpu;
    try {
      g = await acquireGpu({ via, features: ["timestamp-query"] });
    } catch (e) {
      skipped.push(`${via}: ${(e as Error).message.split("\n").join(" ")}`);
      continue;
    }
    adapters[via] = `${g.adapterInfo}; ${g.device.features.has("timestamp-query") ? "timestamp queries" : "wall clock"}`;
    try {
      const r = await measure(g, threads, iters, reps, runs);
      rows.push(...r.rows);
      trips.push(r.trip);
    } finally {
      g.device.destroy();
    }
  }
  if (rows.length === 0) throw new Error(`no WebGPU implementation ran: ${skipped.join("; ")}`);
  const rt = detectRuntime();
  const result = { benchmark: "deno-wgpu-repro", commit: gitCommit(), date: new Date().toISOString(), runtime: `${rt.name} ${rt.version}`, threads, iters, reps, runs, adapters, skipped, rows, roundTrips: trips, shaders: SHADERS };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "deno-wgpu-repro.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`deno-wgpu-repro — ${result.runtime}; ${threads} threads x ${iters} rounds x ${K} multiply-adds; median of ${runs}`);
  for (const [via, a] of Object.entries(adapters)) console.log(`  ${via}: ${a}`);
  for (const s of skipped) console.log(`  not run: ${s}`);
  const unrolledMs = (via: GpuVia) => rows.find((r) => r.via === via && r.shader === "unrolled")!.medianMs;
  console.log(formatTable(
    ["via", "shader", "median ms", "GFLOP/s (FMA=1)", "x unrolled time", "max rel diff"],
    rows.map((r) => [r.via, r.shader, fmt(r.medianMs, 4), fmt(r.gflops, 4), fmt(r.medianMs / unrolledMs(r.via), 3), r.maxRelDiff.toExponential(1)]),
  ));
  console.log();
  console.log(formatTable(["via", "submit + onSubmittedWorkDone ms", "mapAsync read ms"], trips.map((t) => [t.via, fmt(t.submitDoneMs, 3), fmt(t.mapReadMs, 3)])));
}

if (import.meta.main ?? true) runMain("deno-wgpu-repro", main);
