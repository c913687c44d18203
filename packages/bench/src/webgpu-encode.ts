/**
 * WebGPU host cost per launch: the JavaScript time that Backend.run / runMulti spend encoding one
 * kernel launch (kernel planning, params, bind-group lookup, setPipeline / setBindGroup /
 * dispatchWorkgroups), on small shapes where the GPU work is negligible. At batch 1 a MemMamba
 * forward is hundreds of launches per chunk, so this cost bounds short and chunked forwards
 * (issue 11).
 *
 * Each case calls one primitive --calls times in a loop with performance.now() around the loop
 * only: the backend submits every maxBatch dispatches inside the loop as it always does (that is
 * part of the cost), and the sync that waits for the GPU comes after the timed region. Warm-up
 * first (pipeline compilation, JIT), then --rounds rounds; the median round is reported, per call
 * and per launch (launches per call counted from the bind-group cache's hits + misses). The
 * bind-group cache counters of the timed rounds are reported too (all hits once warm: a miss
 * costs a createBindGroup). Prints a table and writes JSON; asserts nothing about time. Runs
 * under Bun, Deno and Node (Node: bundle with esbuild, --external:webgpu; see
 * ../../../../shared/gpu/README.md).
 *
 * --no-device times the kernel functions alone (kernels/index.ts: planning, param words, the
 * Launch object) on a GpuCtx whose dispatch does nothing: no adapter needed, and none of the
 * driver's or a software Vulkan's time, which on a shared machine is most of the noise.
 *
 *   bun packages/bench/src/webgpu-encode.ts [--calls 2000] [--rounds 9] [--cases add,mul,...]
 *       [--no-device] [--json] [--out FILE]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import {
  choice, detectRuntime, flagList, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, now, parseFlags, positiveInt, runMain, UsageError, writeJson,
} from "./runtime.ts";
import { gpuBenchHeader } from "./gpu-timing.ts";
import type { BufferHandle, KernelArg, MultiPrimName, PrimName } from "../../tensor/src/backend.ts";
import type { BufRef, GpuCtx, GpuLimits, Launch } from "../../tensor/src/webgpu/context.ts";
import { gpuKernels, gpuMultiKernels } from "../../tensor/src/webgpu/kernels/index.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { matmulTuning } from "../../tensor/src/webgpu/kernels/matmul.ts";

const HELP = `webgpu-encode: JavaScript time per WebGPU kernel launch (encode only, small shapes)

  --calls N        calls of the primitive per timed round (default 2000)
  --rounds N       timed rounds per case; the median is reported (default 9)
  --cases a,b,...  which cases (default all: add,add+alloc,mul,matmul,matmul-batched,
                   matmul-splitk,reduce,reduce-mid,softmax,rmsNorm,adamwStep)
  --no-device      time the kernel functions alone on a no-op GpuCtx (no adapter needed;
                   --calls defaults to 20000 there; add+alloc is device-only)
  --json           print the JSON result on stdout instead of the table
  --out FILE       where to write the JSON (default packages/bench/results/webgpu-encode.json;
                   with --no-device webgpu-encode-host.json)
  --help           this text`;

export interface EncodeRow {
  case: string;
  /** The call, in words (primitive and shapes). */
  call: string;
  /** Kernel launches per call (bind-group lookups per call). */
  launches: number;
  /** Median round: microseconds of host time per call and per launch. */
  usPerCall: number;
  usPerLaunch: number;
  /** Per-launch µs of every round. */
  roundsUsPerLaunch: number[];
  /** Bind-group cache lookups during the timed rounds. */
  bindGroupHits: number;
  bindGroupMisses: number;
}

interface Case {
  name: string;
  call: string;
  /** Allocates the case's buffers and returns the call and the buffers to free. */
  setup(gpu: WebGpuBackend): { run: () => void; bufs: BufferHandle[] };
  /**
   * The same call as a kernel function's (for --no-device): primitive, input / output shapes
   * (f32), params; multi: a runMulti primitive. Absent: the case needs the device.
   */
  kernel?: { prim: string; ins: number[][]; outs: number[][]; params: unknown; multi?: boolean };
  /** Sets a tuning knob for the case and returns what restores it. */
  tune?: () => () => void;
}

/** An f32 tensor argument with a fresh buffer of ones (values do not matter for encode time). */
function tensor(gpu: WebGpuBackend, bufs: BufferHandle[], shape: number[]): KernelArg {
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = gpu.alloc(n, "f32");
  gpu.write(buf, new Float32Array(n).fill(1));
  bufs.push(buf);
  return { buf, shape, dtype: "f32" };
}

const ADAMW_Q = { a1: 0.9, b1: 0.1, a2: 0.999, b2: 0.001, decay: 0.99, decays: true, sqrtBc2: 0.5, eps: 1e-8, stepSize: 1e-3 };

/** Split-K's flop floor lowered to 0 (restored after the case): a small problem that still splits. */
function lowerSplitKFloor(): () => void {
  const saved = matmulTuning.splitKMinFlops;
  matmulTuning.splitKMinFlops = 0;
  return () => {
    matmulTuning.splitKMinFlops = saved;
  };
}

const CASES: Case[] = [
  {
    name: "add", call: "binary add [4096] + [4096] (flat map)",
    kernel: { prim: "binary", ins: [[4096], [4096]], outs: [[4096]], params: { op: "add" } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [4096]), b = tensor(gpu, bufs, [4096]), o = tensor(gpu, bufs, [4096]);
      return { run: () => gpu.run("binary", [a, b], o, { op: "add" }), bufs };
    },
  },
  {
    // as a model runs it: every op writes a fresh tensor (alloc from the pool, free after use),
    // so the binding of the output is new each time
    name: "add+alloc", call: "binary add [4096] + [4096] into a fresh output (alloc, run, free)",
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [4096]), b = tensor(gpu, bufs, [4096]);
      return {
        run: () => {
          const buf = gpu.alloc(4096, "f32");
          gpu.run("binary", [a, b], { buf, shape: [4096], dtype: "f32" }, { op: "add" });
          gpu.free(buf);
        },
        bufs,
      };
    },
  },
  {
    name: "mul", call: "binary mul [64,256] * [1,256] (rank-2 broadcast map)",
    kernel: { prim: "binary", ins: [[64, 256], [1, 256]], outs: [[64, 256]], params: { op: "mul" } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [64, 256]), b = tensor(gpu, bufs, [1, 256]), o = tensor(gpu, bufs, [64, 256]);
      return { run: () => gpu.run("binary", [a, b], o, { op: "mul" }), bufs };
    },
  },
  {
    name: "matmul", call: "matmul [16,64] · [64,64]",
    kernel: { prim: "matmul", ins: [[16, 64], [64, 64]], outs: [[16, 64]], params: { transA: false, transB: false } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [16, 64]), b = tensor(gpu, bufs, [64, 64]), o = tensor(gpu, bufs, [16, 64]);
      return { run: () => gpu.run("matmul", [a, b], o, { transA: false, transB: false }), bufs };
    },
  },
  {
    // B batched: the broadcast-strides path (no fold of A's batch into M)
    name: "matmul-batched", call: "matmul [4,16,64] · [4,64,64] (batched B)",
    kernel: { prim: "matmul", ins: [[4, 16, 64], [4, 64, 64]], outs: [[4, 16, 64]], params: { transA: false, transB: false } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [4, 16, 64]), b = tensor(gpu, bufs, [4, 64, 64]), o = tensor(gpu, bufs, [4, 16, 64]);
      return { run: () => gpu.run("matmul", [a, b], o, { transA: false, transB: false }), bufs };
    },
  },
  {
    // a weight gradient's shape, small: split-K's flop floor is lowered for the case (the real
    // ones are too much GPU work for a software Vulkan), so it runs the untiled kernel in 64
    // slices, then the sum pass: two launches, a scratch buffer
    name: "matmul-splitk", call: "matmul [2048,16]ᵀ · [2048,16] (split-K: 64 slices + sum)",
    kernel: { prim: "matmul", ins: [[2048, 16], [2048, 16]], outs: [[16, 16]], params: { transA: true, transB: false } },
    tune: lowerSplitKFloor,
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [2048, 16]), b = tensor(gpu, bufs, [2048, 16]), o = tensor(gpu, bufs, [16, 16]);
      return { run: () => gpu.run("matmul", [a, b], o, { transA: true, transB: false }), bufs };
    },
  },
  {
    name: "reduce", call: "reduce sum [64,256] over axis 1",
    kernel: { prim: "reduce", ins: [[64, 256]], outs: [[64, 1]], params: { op: "sum", axes: [1] } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [64, 256]), o = tensor(gpu, bufs, [64, 1]);
      return { run: () => gpu.run("reduce", [x], o, { op: "sum", axes: [1] }), bufs };
    },
  },
  {
    name: "reduce-mid", call: "reduce sum [8,64,32] over axis 1 (kept groups on both sides)",
    kernel: { prim: "reduce", ins: [[8, 64, 32]], outs: [[8, 1, 32]], params: { op: "sum", axes: [1] } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [8, 64, 32]), o = tensor(gpu, bufs, [8, 1, 32]);
      return { run: () => gpu.run("reduce", [x], o, { op: "sum", axes: [1] }), bufs };
    },
  },
  {
    name: "softmax", call: "softmax [16,64] (a thread per row)",
    kernel: { prim: "softmax", ins: [[16, 64]], outs: [[16, 64]], params: {} },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [16, 64]), o = tensor(gpu, bufs, [16, 64]);
      return { run: () => gpu.run("softmax", [x], o, {}), bufs };
    },
  },
  {
    name: "rmsNorm", call: "rmsNorm [16,256]",
    kernel: { prim: "rmsNorm", ins: [[16, 256]], outs: [[16, 256]], params: { eps: 1e-5 } },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [16, 256]), o = tensor(gpu, bufs, [16, 256]);
      return { run: () => gpu.run("rmsNorm", [x], o, { eps: 1e-5 }), bufs };
    },
  },
  {
    name: "adamwStep", call: "runMulti adamwStep [4096] (p, g, m, v → p', m', v')",
    kernel: { prim: "adamwStep", ins: [[4096], [4096], [4096], [4096]], outs: [[4096], [4096], [4096]], params: ADAMW_Q, multi: true },
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const ins = [0, 1, 2, 3].map(() => tensor(gpu, bufs, [4096]));
      const outs = [0, 1, 2].map(() => tensor(gpu, bufs, [4096]));
      return { run: () => gpu.runMulti("adamwStep", ins, outs, ADAMW_Q), bufs };
    },
  },
];

async function benchCase(gpu: WebGpuBackend, c: Case, calls: number, rounds: number): Promise<EncodeRow> {
  const restore = c.tune?.();
  const { run, bufs } = c.setup(gpu);
  try {
    const lookups = () => {
      const s = gpu.poolStats().bindGroups;
      return { hits: s.hits, misses: s.misses };
    };
    // warm-up: compile the pipelines, fill the bind-group cache, let the JIT settle
    for (let w = 0; w < 3; w++) {
      for (let i = 0; i < calls; i++) run();
      await gpu.sync();
    }
    const s0 = lookups();
    const perCall: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = now();
      for (let i = 0; i < calls; i++) run();
      const t1 = now();
      await gpu.sync(); // outside the timed region: the GPU's work is not what we measure
      perCall.push(((t1 - t0) * 1000) / calls);
    }
    const s1 = lookups();
    const hits = s1.hits - s0.hits, misses = s1.misses - s0.misses;
    const launches = (hits + misses) / (rounds * calls);
    const perLaunch = perCall.map((us) => us / launches);
    return {
      case: c.name, call: c.call, launches, usPerCall: median(perCall), usPerLaunch: median(perLaunch),
      roundsUsPerLaunch: perLaunch, bindGroupHits: hits, bindGroupMisses: misses,
    };
  } finally {
    for (const b of bufs) gpu.free(b);
    restore?.();
  }
}

/** Limits of a typical discrete GPU, for the no-op context (the plans depend on them). */
const HOST_LIMITS: GpuLimits = {
  maxStorageBufferBindingSize: 2 ** 31 - 4, maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 49152,
  minStorageBufferOffsetAlignment: 256, maxStorageBuffersPerShaderStage: 8,
};

/**
 * --no-device: the case's kernel function called --calls times a round on a GpuCtx whose
 * dispatch only counts (and reads a word of the Launch, so nothing is optimised away); refs are
 * made once per tensor, as the backend caches a buffer's whole binding.
 */
function hostCase(c: Case, calls: number, rounds: number): EncodeRow {
  const k = c.kernel;
  if (!k) throw new UsageError(`--no-device: case "${c.name}" needs the device (it times alloc / free)`);
  let launches = 0, sink = 0;
  const fake = (size: number): BufRef => ({ buf: {} as GPUBuffer, offset: 0, size });
  const refs = new Map<unknown, BufRef>();
  const ctx: GpuCtx = {
    limits: HOST_LIMITS,
    ref: (a) => refs.get(a.buf) ?? fake(4),
    range: (_a, _start, count) => fake(4 * count),
    view: (a) => ({ ref: refs.get(a.buf) ?? fake(4), base: 0 }),
    temp: (bytes) => fake(bytes),
    releaseTemp: () => {},
    dispatch: (l: Launch) => {
      launches++;
      sink += l.params[0] + l.groups[0] + l.buffers.length;
    },
  };
  const arg = (shape: number[]): KernelArg => {
    const a: KernelArg = { buf: {} as BufferHandle, shape, dtype: "f32" };
    refs.set(a.buf, fake(4 * shape.reduce((x, y) => x * y, 1)));
    return a;
  };
  const ins = k.ins.map(arg), outs = k.outs.map(arg);
  const run = k.multi
    ? () => gpuMultiKernels[k.prim as MultiPrimName](ctx, ins, outs, k.params as never)
    : () => gpuKernels[k.prim as PrimName](ctx, ins, outs[0], k.params as never);
  const restore = c.tune?.();
  try {
    for (let w = 0; w < 3; w++) for (let i = 0; i < calls; i++) run();
    launches = 0;
    const perCall: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const t0 = now();
      for (let i = 0; i < calls; i++) run();
      perCall.push(((now() - t0) * 1000) / calls);
    }
    const per = launches / (rounds * calls);
    const perLaunch = perCall.map((us) => us / per);
    if (sink === -1) console.log(sink);
    return {
      case: c.name, call: c.call, launches: per, usPerCall: median(perCall), usPerLaunch: median(perLaunch),
      roundsUsPerLaunch: perLaunch, bindGroupHits: 0, bindGroupMisses: 0,
    };
  } finally {
    restore?.();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, { calls: "string", rounds: "string", cases: "string", "no-device": "boolean", json: "boolean", out: "string" });
  const noDevice = f["no-device"] === true;
  const calls = positiveInt("calls", f.calls, noDevice ? 20000 : 2000);
  const rounds = positiveInt("rounds", f.rounds, 9);
  const names = flagList("cases", f.cases, choice(CASES.map((c) => c.name)), CASES.filter((c) => !noDevice || c.kernel).map((c) => c.name));
  const cases = names.map((n) => CASES.find((x) => x.name === n)!);

  if (noDevice) {
    const rows = cases.map((c) => hostCase(c, calls, rounds));
    const result = {
      bench: "webgpu-encode", commit: gitCommit(), runtime: `${detectRuntime().name} ${detectRuntime().version}`, machine: machineInfo(),
      timing: "kernel functions alone on a no-op GpuCtx (no device, no backend dispatch)", calls, rounds, rows,
    };
    writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-encode-host.json"), result);
    if (f.json) {
      console.log(JSON.stringify(result, null, 2));
      return;
    }
    console.log(`webgpu-encode --no-device — ${result.runtime}; ${calls} calls a round, median of ${rounds} rounds; kernel functions only`);
    console.log(formatTable(
      ["case", "call", "launches", "µs/call", "µs/launch", "min µs/launch"],
      rows.map((r) => [r.case, r.call, fmt(r.launches, 3), fmt(r.usPerCall, 3), fmt(r.usPerLaunch, 3), fmt(Math.min(...r.roundsUsPerLaunch), 3)]),
    ));
    return;
  }
  const gpu = await createWebGpuBackend();
  const rows: EncodeRow[] = [];
  try {
    for (const c of cases) rows.push(await benchCase(gpu, c, calls, rounds));
  } finally {
    gpu.destroy();
  }
  const result = {
    ...gpuBenchHeader("webgpu-encode", gpu, false),
    timing: "wall clock of the encode loop only (submits inside it included; the sync after it excluded)",
    calls,
    rounds,
    rows,
  };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-encode.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-encode — ${result.runtime}, ${result.adapter} via ${result.via}; ${calls} calls a round, median of ${rounds} rounds; host time only`);
  console.log(formatTable(
    ["case", "call", "launches", "µs/call", "µs/launch", "min µs/launch", "bind-group hits", "misses"],
    rows.map((r) => [
      r.case, r.call, fmt(r.launches, 3), fmt(r.usPerCall, 3), fmt(r.usPerLaunch, 3), fmt(Math.min(...r.roundsUsPerLaunch), 3),
      String(r.bindGroupHits), String(r.bindGroupMisses),
    ]),
  ));
}

if (import.meta.main ?? true) runMain("webgpu-encode", main);
