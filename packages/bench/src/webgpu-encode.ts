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
 *   bun packages/bench/src/webgpu-encode.ts [--calls 2000] [--rounds 9] [--cases add,mul,...]
 *       [--json] [--out FILE]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { fmt, formatTable, fromRoot, median, now, parseFlags, positiveInt, programArgs, writeJson } from "./runtime.ts";
import process from "node:process";
import { gpuBenchHeader } from "./gpu-timing.ts";
import type { BufferHandle, KernelArg } from "../../tensor/src/backend.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";

const HELP = `webgpu-encode: JavaScript time per WebGPU kernel launch (encode only, small shapes)

  --calls N        calls of the primitive per timed round (default 2000)
  --rounds N       timed rounds per case; the median is reported (default 9)
  --cases a,b,...  which cases (default all: add,add+alloc,mul,matmul,reduce,rmsNorm,adamwStep)
  --json           print the JSON result on stdout instead of the table
  --out FILE       where to write the JSON (default packages/bench/results/webgpu-encode.json)
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
}

/** An f32 tensor argument with a fresh buffer of ones (values do not matter for encode time). */
function tensor(gpu: WebGpuBackend, bufs: BufferHandle[], shape: number[]): KernelArg {
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = gpu.alloc(n, "f32");
  gpu.write(buf, new Float32Array(n).fill(1));
  bufs.push(buf);
  return { buf, shape, dtype: "f32" };
}

const CASES: Case[] = [
  {
    name: "add", call: "binary add [4096] + [4096] (flat map)",
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
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [64, 256]), b = tensor(gpu, bufs, [1, 256]), o = tensor(gpu, bufs, [64, 256]);
      return { run: () => gpu.run("binary", [a, b], o, { op: "mul" }), bufs };
    },
  },
  {
    name: "matmul", call: "matmul [16,64] · [64,64]",
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const a = tensor(gpu, bufs, [16, 64]), b = tensor(gpu, bufs, [64, 64]), o = tensor(gpu, bufs, [16, 64]);
      return { run: () => gpu.run("matmul", [a, b], o, { transA: false, transB: false }), bufs };
    },
  },
  {
    name: "reduce", call: "reduce sum [64,256] over axis 1",
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [64, 256]), o = tensor(gpu, bufs, [64, 1]);
      return { run: () => gpu.run("reduce", [x], o, { op: "sum", axes: [1] }), bufs };
    },
  },
  {
    name: "rmsNorm", call: "rmsNorm [16,256]",
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const x = tensor(gpu, bufs, [16, 256]), o = tensor(gpu, bufs, [16, 256]);
      return { run: () => gpu.run("rmsNorm", [x], o, { eps: 1e-5 }), bufs };
    },
  },
  {
    name: "adamwStep", call: "runMulti adamwStep [4096] (p, g, m, v → p', m', v')",
    setup(gpu) {
      const bufs: BufferHandle[] = [];
      const ins = [0, 1, 2, 3].map(() => tensor(gpu, bufs, [4096]));
      const outs = [0, 1, 2].map(() => tensor(gpu, bufs, [4096]));
      const q = { a1: 0.9, b1: 0.1, a2: 0.999, b2: 0.001, decay: 0.99, decays: true, sqrtBc2: 0.5, eps: 1e-8, stepSize: 1e-3 };
      return { run: () => gpu.runMulti("adamwStep", ins, outs, q), bufs };
    },
  },
];

async function benchCase(gpu: WebGpuBackend, c: Case, calls: number, rounds: number): Promise<EncodeRow> {
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
  }
}

async function main(): Promise<void> {
  const argv = programArgs();
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, { calls: "string", rounds: "string", cases: "string", json: "boolean", out: "string" });
  const calls = positiveInt("calls", f.calls, 2000);
  const rounds = positiveInt("rounds", f.rounds, 9);
  const names = typeof f.cases === "string" ? f.cases.split(",").map((s) => s.trim()).filter(Boolean) : CASES.map((c) => c.name);
  const cases = names.map((n) => {
    const c = CASES.find((x) => x.name === n);
    if (!c) throw new Error(`--cases: unknown case "${n}" (known: ${CASES.map((x) => x.name).join(", ")})`);
    return c;
  });
  if (cases.length === 0) throw new Error("--cases: empty list");

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

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
