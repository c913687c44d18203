/**
 * WebGPU attnRead (the fused pool read: logits, masked softmax and weighted sum of each position
 * over its pool slots; tensor/src/webgpu/kernels/attention*.ts): its forward kernels side by side
 * on model-like reads, as the backend runs them (attnReadTuning.forward picks the kernel; buffers
 * allocated once, outside the timing).
 *
 * Cases: every --slots P × --changes c at --positions N: one pool of P rows (a table of N + P rows
 * of 64 floats, keys and values one tensor as in the model), and every c positions on average
 * the pool drops a row (the oldest with --drop oldest, a random one with --drop random) and takes
 * the newest position's row, as a full pool that takes a note does; c = 0: the pool never changes.
 * Every slot is valid. (The model's 60K-token forward reads 50 slots in each of its 8 layers and
 * 100, two pools side by side, in 3.)
 *
 * Timing as webgpu-matmul.ts (gpu-timing.ts): GPU time from timestamp queries where the adapter
 * has them. Each kernel's output is compared with the CPU kernel's within 1e-5 (a wrong kernel
 * is not a benchmark: the program fails). Prints a table and writes JSON; asserts nothing about
 * time. Runs under Bun, Deno and Node (Node: bundle with esbuild, --external:webgpu; see
 * ../../../../shared/gpu/README.md).
 *
 *   bun packages/bench/src/webgpu-attn-read.ts [--positions 61440] [--slots 50,100]
 *       [--changes 0,170,4] [--drop random] [--forwards lanes,online,shared] [--runs 9] [--json] [--out FILE] [--small]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { choice, flagList, fmt, formatTable, fromRoot, lcg, NON_NEGATIVE_INT, oneOf, parseFlags, POSITIVE_INT, positiveInt, runMain, writeJson } from "./runtime.ts";
import { gpuBenchHeader, launchKeys, timeGpuCalls, type GpuTiming } from "./gpu-timing.ts";
import type { KernelArg } from "../../tensor/src/backend.ts";
import { attnReadKernel as cpuAttnRead } from "../../tensor/src/cpu/attention.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { attnReadTuning } from "../../tensor/src/webgpu/kernels/attention.ts";

const HELP = `webgpu-attn-read: the fused pool read's forward kernels on the WebGPU backend

  --positions N      positions read (default 61440, one 60K chunk; --small 2048)
  --slots a,b,...    pool slots P (default 50,100)
  --changes a,b,...  the pool changes every c positions on average; 0: never (default 0,170,4)
  --drop D           the row a change drops: oldest or random (default random)
  --forwards f,...   kernels: lanes, online, shared (attnRead's), parts1, parts4, parts8
                     (attnReadParts, 1, 4 or 8 threads a position), parts1kv, parts4kv, parts8kv
                     (the key row in registers added as the value row: keys and values are one
                     table here) (default lanes,online,shared)
  --runs N           timed samples per kernel and case; the median is reported (default 9)
  --sample-ms MS     target duration of one sample: calls per sample (default 20)
  --warmup-ms MS     busy time before timing each kernel and case (default 300; --small 30)
  --small            tiny sizes (software Vulkan, CI)
  --json             print the JSON result on stdout instead of the table
  --out FILE         where to write the JSON (default packages/bench/results/webgpu-attn-read.json)
  --help             this text`;

const S = 64;
/** attnRead's forwards (attnReadTuning.forward), and attnReadParts with 1, 4 or 8 threads a position (partsLanes; its slots valid by their index). */
const PARTS = ["parts1", "parts4", "parts8"].flatMap((p) => [p, `${p}kv`]);
type Forward = string;
const FORWARDS: readonly Forward[] = ["lanes", "online", "shared", ...PARTS];
const DEFAULT_FORWARDS: readonly Forward[] = ["lanes", "online", "shared"];

export interface AttnReadRow {
  N: number;
  P: number;
  changeEvery: number;
  /** Changes of the pool over the N positions. */
  changes: number;
  /** Per kernel: its pipeline key and the per-call times. */
  kernels: Record<string, GpuTiming & { key: string }>;
}

async function benchCase(
  gpu: WebGpuBackend, N: number, P: number, every: number, drop: "oldest" | "random", forwards: readonly Forward[],
  runs: number, sampleMs: number, warmupMs: number, timestamps: boolean,
): Promise<AttnReadRow> {
  const r = lcg(N * 31 + P * 7 + every);
  const M = N + P;
  const index = new Int32Array(N * P), valid = new Float32Array(N * P).fill(1);
  const pool = Array.from({ length: P }, (_, i) => i);
  let changes = 0;
  for (let n = 0; n < N; n++) {
    if (every > 0 && r() < 1 / every) {
      pool.splice(drop === "oldest" ? 0 : Math.floor(r() * P), 1);
      pool.push(P + n);
      changes++;
    }
    index.set(pool, n * P);
  }
  const q = Float32Array.from({ length: N * S }, () => 2 * r() - 1);
  const k = Float32Array.from({ length: M * S }, () => 2 * r() - 1);
  const scale = 1 / Math.sqrt(S);
  const want = new Float32Array(N * S);
  cpuAttnRead(
    [{ data: q, shape: [N, S] }, { data: k, shape: [M, S] }, { data: k, shape: [M, S] }, { data: index, shape: [N, P] }, { data: valid, shape: [N, P] }],
    { data: want, shape: [N, S] },
    { scale },
  );
  const bq = gpu.alloc(N * S, "f32"), bk = gpu.alloc(M * S, "f32"), bi = gpu.alloc(N * P, "i32"), bv = gpu.alloc(N * P, "f32"), bo = gpu.alloc(N * S, "f32");
  gpu.write(bq, q);
  gpu.write(bk, k);
  gpu.write(bi, index);
  gpu.write(bv, valid);
  const arg = (buf: KernelArg["buf"], shape: number[], dtype: "f32" | "i32"): KernelArg => ({ buf, shape, dtype });
  const ins = [arg(bq, [N, S], "f32"), arg(bk, [M, S], "f32"), arg(bk, [M, S], "f32"), arg(bi, [N, P], "i32"), arg(bv, [N, P], "f32")];
  let run = () => gpu.run("attnRead", ins, arg(bo, [N, S], "f32"), { scale });
  const saved = { ...attnReadTuning };
  const kernels: AttnReadRow["kernels"] = {};
  try {
    for (const fw of forwards) {
      if (fw.startsWith("parts")) {
        attnReadTuning.partsLanes = Number(fw.slice(5, 6)) as 1 | 4 | 8;
        attnReadTuning.partsSharedRows = fw.endsWith("kv");
        run = () => gpu.run("attnReadParts", ins.slice(0, 4), arg(bo, [N, S], "f32"), { scale });
      } else {
        attnReadTuning.forward = fw as "lanes" | "online" | "shared";
      }
      const key = [...new Set(launchKeys(gpu, run))].join(",");
      const t = await timeGpuCalls(gpu, run, { runs, sampleMs, warmupMs, timestamps });
      const got = (await gpu.read(bo)) as Float32Array;
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])))) {
          throw new Error(`the ${fw} kernel differs from the CPU kernel at element ${i} (${got[i]} vs ${want[i]}; N ${N}, P ${P}, changes every ${every})`);
        }
      }
      kernels[fw] = { key, ...t };
    }
  } finally {
    Object.assign(attnReadTuning, saved);
    for (const h of [bq, bk, bi, bv, bo]) gpu.free(h);
  }
  return { N, P, changeEvery: every, changes, kernels };
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, {
    positions: "string", slots: "string", changes: "string", drop: "string", forwards: "string", runs: "string",
    "sample-ms": "string", "warmup-ms": "string", small: "boolean", json: "boolean", out: "string",
  });
  const small = f.small === true;
  const N = positiveInt("--positions", f.positions, small ? 2048 : 61440);
  const slots = flagList("slots", f.slots, POSITIVE_INT, [50, 100]);
  const changes = flagList("changes", f.changes, NON_NEGATIVE_INT, [0, 170, 4]);
  const drop = oneOf("drop", f.drop, ["oldest", "random"]) ?? "random";
  const forwards = flagList("forwards", f.forwards, choice(FORWARDS), DEFAULT_FORWARDS);
  const runs = positiveInt("--runs", f.runs, 9);
  const sampleMs = positiveInt("--sample-ms", f["sample-ms"], 20);
  const warmupMs = positiveInt("--warmup-ms", f["warmup-ms"], small ? 30 : 300);

  const gpu = await createWebGpuBackend({ timestamps: true });
  const timestamps = gpu.device.features.has("timestamp-query");
  const rows: AttnReadRow[] = [];
  try {
    for (const P of slots) for (const c of changes) rows.push(await benchCase(gpu, N, P, c, drop, forwards, runs, sampleMs, warmupMs, timestamps));
  } finally {
    gpu.destroy();
  }
  const result = { ...gpuBenchHeader("webgpu-attn-read", gpu, timestamps), runs, S, drop, rows };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-attn-read.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-attn-read — ${result.runtime}, ${result.adapter} via ${result.via}; ${result.timing}; median of ${runs}, µs a call; outputs equal to the CPU kernel within 1e-5`);
  console.log(formatTable(
    ["N", "P", "changes every", "changes", ...forwards.map((fw) => `${fw} µs`), ...forwards.slice(1).map((fw) => `${fw} / ${forwards[0]}`)],
    rows.map((r) => [
      String(r.N), String(r.P), r.changeEvery ? String(r.changeEvery) : "never", String(r.changes),
      ...forwards.map((fw) => fmt(r.kernels[fw].medianMs * 1000, 4)),
      ...forwards.slice(1).map((fw) => fmt(r.kernels[fw].medianMs / r.kernels[forwards[0]].medianMs, 3)),
    ]),
  ));
}

if (import.meta.main ?? true) runMain("webgpu-attn-read", main);
