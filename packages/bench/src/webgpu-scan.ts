/**
 * WebGPU selective-scan bandwidth: the library's scan kernels as the backend runs them, against
 * the device's copy bandwidth measured in the same run.
 *
 * - `scan` (h_t = a_t h_{t−1} + b_t over a, b [B, L, S]) and its backward `scanReverse`
 *   (λ_t = a_{t+1} λ_{t+1} + g_t) at each --lengths L, with B·S = --elems / L (so every tensor
 *   holds about --elems floats). Two byte counts per call:
 *     min bytes:    what any scan must move: read a and b, write h (12 bytes per element);
 *     kernel bytes: what the chosen kernels actually read and write (the single-pass
 *                   look-back scan of kernels/scan.ts 12 plus about 1 byte per element of
 *                   status; the tile look-back 12 plus 3 status words per channel and tile
 *                   written, cleared and read; the chunked scan reads a and b twice, plus its
 *                   carries: about 20 bytes per element; the direct scan 12). --scan-algo runs
 *                   several algorithms (and tile shapes) in turn on the same data, for a
 *                   side-by-side table.
 *   GB/s = bytes / GPU time; "% copy" divides by the copy bandwidth below.
 * - the fused `selectiveScan` (x, delta [B, L, Di], A [Di, N], B, C [B, L, N], h0 [B, Di, N])
 *   forward and `selectiveScanGrad` (batch-1 L = 4K..256K, and one training-like batch; the chunking
 *   along L each uses is printed): GB/s over the compulsory bytes (inputs
 *   read once, outputs written once) and state updates per second (B·L·Di·N per pass; the
 *   backward counts the same B·L·Di·N, though it runs the recurrence twice and the adjoint once).
 * - the peak: copyBufferToBuffer of 256 MiB (--copy-mib), bytes read + written, timed on the
 *   wall clock over --copy-reps copies in one submit minus an empty submit's round trip (timestamp
 *   queries exist only around compute passes); and, GPU-timed like the scans, the library's
 *   elementwise kernel (unary neg) over the same bytes.
 *
 * Timing as webgpu-matmul.ts: warm-up, then --runs samples (median reported) of enough calls to
 * last about --sample-ms, GPU time from timestamp queries around the compute passes when the
 * adapter has 'timestamp-query', else wall clock. Outputs are checked against a float64 CPU
 * recurrence on a few channels (max error printed; a wrong kernel is not a benchmark).
 * The selective scan's part is webgpu-scan-ssm.ts, the helpers both parts use webgpu-scan-common.ts.
 * Prints a table and writes JSON; asserts nothing about time. Runs under Bun, Deno and Node
 * (Node: bundle with esbuild, --external:webgpu; see ../../../../shared/gpu/README.md).
 *
 *   bun packages/bench/src/webgpu-scan.ts [--lengths 4096,16384,65536,262144] [--runs 9] [--json]
 *       [--scan-algo lookback,tile:v4t8r4c64,chunked] [--ssm-fwd-threads N,..] [--ssm-fwd-vec 1,0]
 *       [--ssm-fwd-algo chunked,lookback] [--ssm-bwd-algo scratch,segments]
 *       [--out FILE] [--small]   (--help lists every flag)
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import { choice, flagList, fmt, formatTable, fromRoot, median, now, parseFlags, POSITIVE_INT, positiveInt, runMain, UsageError, writeJson } from "./runtime.ts";
import { gpuBenchHeader } from "./gpu-timing.ts";
import { arg, fillRandom, GB, rng, timeCalls, type Timed, type TimeOpts } from "./webgpu-scan-common.ts";
import { applyStepBlock, benchSsm, parseBwdVariant, parseFwdVariant, printSsm, PROFILE_CALLS, SSM_DEFAULT, type SsmRow } from "./webgpu-scan-ssm.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu } from "../../tensor/src/webgpu/context.ts";
import { createWebGpuBackend, type WebGpuBackend } from "../../tensor/src/webgpu/backend.ts";
import { parseScanTile, scanPlan, scanTileName, scanTuning, type ScanTile } from "../../tensor/src/webgpu/kernels/scan.ts";
import { ssmTuning } from "../../tensor/src/webgpu/kernels/ssm.ts";

const HELP = `webgpu-scan: selective-scan bandwidth of the WebGPU backend vs the device's copy bandwidth

  --lengths a,b,...  sequence lengths L of scan / scanReverse (default 4096,16384,65536,262144)
  --scan-algo A,...  the scan algorithms for long L, each run in turn on the same data:
                     lookback (single pass, a look-back per thread chunk: the library's default),
                     tile (single pass, a look-back per workgroup tile, the default tile shape),
                     tile:vVtTrRcC (that tile shape: V channels per thread, 1 or 4 (vec4), T steps
                     per thread, R thread rows along time, C threads along channels; e.g.
                     tile:v4t8r4c64), chunked (three passes) (default lookback,tile,chunked)
  --elems N          floats per [B, L, S] tensor: B·S = N / L (default 67108864 = 256 MiB; --small 16384)
  --ssm SPEC         selectiveScan sizes, B×L×Di×N separated by commas
                     (default ${SSM_DEFAULT}; --small 1x64x8x16,2x300x8x13; none: skip)
  --ssm-fwd-threads N,...  the forward's chunking along L: chunks are added until B·Di·chunks
                     reaches N threads at every L (default: the library's ${ssmTuning.fwdThreads},
                     or ${ssmTuning.fwdThreadsLong} from L = ${ssmTuning.fwdLongL});
                     several values run the forward once each, the backward with the first
  --ssm-fwd-vec 1,0  the forward's B, C loads: 1 vec4 (when N % 4 == 0; the library's default),
                     0 scalar (ssmTuning.fwdVecBC); each value × each --ssm-fwd-threads in turn
  --ssm-fwd-algo A,...  the chunked forward's algorithm (ssmTuning.fwdAlgo): chunked (three
                     passes) or lookback (one dispatch, a decoupled look-back), each
                     optionally :u<steps> (the step loops in blocks whose Δ, x loads come
                     first, ssmTuning.stepBlock; :u1 one step at a time) and :bc (B, C loaded
                     with them, stepBlockBC) and :pf (each block's loads issued one block
                     ahead, stepPrefetch), e.g. lookback:u8:pf; each value ×
                     each --ssm-fwd-vec × each --ssm-fwd-threads in turn, side by side on the
                     same data (default: the library's ${ssmTuning.fwdAlgo})
  --ssm-bwd-algo A,...  the parallel backward's per-chunk kernel (ssmTuning.bwdAlgo): scratch
                     (states through global scratch) or segments (states on chip), each
                     optionally :s<steps a segment>, :t<shortest chunk> and :scalar (B, C read
                     as guarded scalars, ssmTuning.bwdVecBC off), :u<steps> and :bc (the step
                     loops' blocking, as --ssm-fwd-algo's) and :pf; e.g. segments:s2, scratch:t64,
                     scratch:scalar, scratch:u1); the backward runs once per value, side by side on the same
                     data (default: the library's ${ssmTuning.bwdAlgo}). Caution: at
                     [8, 2048, 512, 16] each later case in one process ran slower, on an H100
                     whatever the variant (1.77, 3.02, 4.33 ms) and on an H200 even the same
                     variant repeated (1.25, 3.21, 4.00, 4.85 ms); not at 16K; cause not
                     found: for an A/B at such shapes run one variant a process
                     (results/gpu/issue5-s11/: order-* on the H100, repeat-h200/; README there)
  --profile          selective-scan cases: also the GPU time of each kernel of a call (a profile of
                     ${PROFILE_CALLS} calls, one compute pass per dispatch), printed and in the JSON
  --runs N           timed samples; the median is reported (default 9)
  --sample-ms MS     target duration of one sample (default 20)
  --warmup-ms MS     busy time before timing each case (default 500)
  --copy-mib M       size of the copied buffer for the peak (default 256; --small 4)
  --small            tiny sizes (software Vulkan, CI): lengths default to 256
  --json             print the JSON result on stdout instead of the tables
  --out FILE         where to write the JSON (default packages/bench/results/webgpu-scan.json)
  --help             this text`;

export interface CopyPeak {
  bytes: number;
  /** copyBufferToBuffer, wall clock per copy (empty-submit round trip subtracted). */
  copy: Timed & { GBps: number; reps: number };
  /** The library's elementwise kernel (unary neg), GPU-timed (null without timestamps). */
  kernel: (Timed & { GBps: number }) | null;
  /** A vec4 copy kernel (dst[e] = src[e]), GPU-timed (null without timestamps). */
  vec4Copy: (Timed & { GBps: number }) | null;
}

export interface ScanRow {
  prim: "scan" | "scanReverse";
  /** direct, lookback (single pass) or chunked (three passes). */
  algo: string;
  B: number;
  L: number;
  S: number;
  /** Chunks of the chunked scan (1: the direct scan). */
  chunks: number;
  minBytes: number;
  kernelBytes: number;
  timing: Timed;
  /** min bytes / time. */
  GBps: number;
  /** kernel bytes / time. */
  kernelGBps: number;
  /** GBps / peak GB/s, kernelGBps / peak GB/s (peak: the fastest copy measured). */
  fracCopy: number;
  /** GBps / copyBufferToBuffer GB/s. */
  fracCopyBuffer: number;
  kernelFracCopy: number;
  /** max |gpu − ref| / (1 + max |ref|) over the checked channels. */
  maxErr: number;
}

/** A plain vec4 copy kernel (one vec4 per thread), the compute-shader peak. params: n4. */
const COPY4 = `${header(1, [{ name: "dst", type: "vec4<f32>", write: true }, { name: "src", type: "vec4<f32>" }])}
@compute @workgroup_size(256)
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * 256u + lid;
  if (e < ${pu(0)}) { dst[e] = src[e]; }
}`;


async function copyPeak(gpu: WebGpuBackend, mib: number, o: TimeOpts): Promise<CopyPeak> {
  const bytes = mib * 2 ** 20;
  const dev = gpu.device;
  const U = GPUBufferUsage;
  const src = dev.createBuffer({ size: bytes, usage: U.COPY_SRC | U.COPY_DST });
  const dst = dev.createBuffer({ size: bytes, usage: U.COPY_SRC | U.COPY_DST });
  const submit = async (n: number) => {
    const enc = dev.createCommandEncoder();
    for (let i = 0; i < n; i++) enc.copyBufferToBuffer(src, 0, dst, 0, bytes);
    const t0 = now();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return now() - t0;
  };
  let copy: CopyPeak["copy"];
  try {
    await submit(4);
    const w0 = now();
    let calls = 0;
    while (now() - w0 < o.warmupMs) {
      await submit(8);
      calls += 8;
    }
    const oneMs = Math.max((now() - w0) / Math.max(calls, 1), 1e-3);
    const reps = Math.max(4, Math.min(400, Math.round((4 * o.sampleMs) / oneMs)));
    const empties: number[] = [];
    for (let i = 0; i < 9; i++) empties.push(await submit(0));
    const empty = median(empties);
    const samples: number[] = [];
    for (let i = 0; i < o.runs; i++) samples.push(Math.max(1e-6, (await submit(reps)) - empty) / reps);
    const med = median(samples);
    copy = { medianMs: med, minMs: Math.min(...samples), samplesMs: samples, repsPerSample: reps, reps, GBps: GB(2 * bytes, med) };
  } finally {
    src.destroy();
    dst.destroy();
  }
  let kernel: CopyPeak["kernel"] = null, vec4Copy: CopyPeak["vec4Copy"] = null;
  if (o.timestamps) {
    const n = bytes / 4;
    const x = gpu.alloc(n, "f32"), y = gpu.alloc(n, "f32");
    try {
      const t = await timeCalls(gpu, () => gpu.run("unary", [arg(x, [n])], arg(y, [n]), { op: "neg" }), o);
      kernel = { ...t, GBps: GB(2 * bytes, t.medianMs) };
      const n4 = n / 4;
      const launch = (): void =>
        gpu.ctx.dispatch({
          label: "copy4", key: "bench:copy4", wgsl: () => COPY4,
          buffers: [gpu.ctx.ref(arg(y, [n]), "copy4"), gpu.ctx.ref(arg(x, [n]), "copy4")],
          params: new ParamWords().u(n4).words(), groups: grid(ceilDiv(n4, 256), gpu.limits.maxComputeWorkgroupsPerDimension),
        });
      const t4 = await timeCalls(gpu, launch, o);
      vec4Copy = { ...t4, GBps: GB(2 * bytes, t4.medianMs) };
    } finally {
      gpu.free(x);
      gpu.free(y);
    }
  }
  return { bytes: 2 * bytes, copy, kernel, vec4Copy };
}

function scanBytes(prim: "scan" | "scanReverse", B: number, L: number, S: number): { min: number; kernel: number; chunks: number; algo: string } {
  const n = B * L * S, bs = B * S, h0 = prim === "scan" ? 4 * bs : 0;
  const { nC, algo, tile } = scanPlan(B, L, S);
  const min = 12 * n + h0;
  const c = B * nC * S;
  // tile: per channel and tile, 3 status words cleared, 3 published, at least 1 read
  if (algo === "tile" && tile) return { min, kernel: 12 * n + h0 + 4 * 7 * c, chunks: nC, algo: `tile:${scanTileName(tile)}` };
  if (nC <= 1) return { min, kernel: min, chunks: 1, algo };
  // look-back: a, x read and h written once; status cleared (3 words a chunk), published (3),
  // and read by the look-back (at least the inclusive word of the predecessor: counted once)
  if (algo === "lookback") return { min, kernel: 12 * n + h0 + 4 * (3 * c + 3 * c + c), chunks: nC, algo };
  // pass 1: read a, x; write P, E. pass 2: read P, E (h0); write E. pass 3: read E, a, x; write h
  return { min, kernel: 8 * n + 8 * c + (12 * c + h0) + (12 * n + 4 * c), chunks: nC, algo };
}

/** One --scan-algo entry: the algorithm and, for tile, its shape (null: the library's default tile). */
interface ScanAlgo {
  algo: typeof scanTuning.algo;
  tile: ScanTile | null;
}

function parseScanAlgo(s: string): ScanAlgo {
  if (s === "lookback" || s === "chunked" || s === "tile") return { algo: s, tile: null };
  if (s.startsWith("tile:")) return { algo: "tile", tile: parseScanTile(s.slice(5)) };
  throw new UsageError(`--scan-algo: expected lookback, chunked, tile or tile:vVtTrRcC (e.g. tile:v4t8r4c64), got "${s}"`);
}

/** Runs each algorithm in turn on the same data (generated once per L). */
async function benchScan(gpu: WebGpuBackend, L: number, elems: number, algos: ScanAlgo[], o: TimeOpts): Promise<ScanRow[]> {
  const bs = Math.max(1, Math.floor(elems / L));
  const S = Math.min(bs, 2048), B = Math.max(1, Math.floor(bs / S));
  const n = B * L * S;
  const r = rng(L);
  const A = fillRandom(n, r, 0.8, 0.999), X = fillRandom(n, r, -0.5, 0.5), H0 = fillRandom(B * S, r, -1, 1);
  const a = gpu.alloc(n, "f32"), x = gpu.alloc(n, "f32"), h0 = gpu.alloc(B * S, "f32"), out = gpu.alloc(n, "f32");
  const shape = [B, L, S];
  gpu.write(a, A);
  gpu.write(x, X);
  gpu.write(h0, H0);
  const rows: ScanRow[] = [];
  const defaults = { algo: scanTuning.algo, tile: scanTuning.tile, few: scanTuning.fewChannels };
  const poison = new Float32Array(n).fill(NaN);
  try {
    for (const al of algos) for (const prim of ["scan", "scanReverse"] as const) {
      scanTuning.algo = al.algo;
      scanTuning.tile = al.tile ?? defaults.tile;
      scanTuning.fewChannels = al.tile ? 0 : defaults.few; // a named tile runs as named
      gpu.write(out, poison); // an algorithm that writes nothing must fail the check, not pass on stale output
      const run = prim === "scan"
        ? () => gpu.run("scan", [arg(a, shape), arg(x, shape), arg(h0, [B, S])], arg(out, shape), {})
        : () => gpu.run("scanReverse", [arg(a, shape), arg(x, shape)], arg(out, shape), {});
      const timing = await timeCalls(gpu, run, o);
      // check a few channels (b, s) over the whole L against a float64 recurrence
      const H = (await gpu.read(out)) as Float32Array;
      let maxDiff = 0, maxRef = 0;
      for (const [b, s] of [[0, 0], [B - 1, S - 1], [B >> 1, S >> 1]]) {
        let y = prim === "scan" ? H0[b * S + s] : 0;
        for (let st = 0; st < L; st++) {
          const t = prim === "scan" ? st : L - 1 - st;
          const o2 = (b * L + t) * S + s;
          const al = prim === "scan" ? A[o2] : t + 1 < L ? A[o2 + S] : 0;
          y = al * y + X[o2];
          maxDiff = Math.max(maxDiff, Math.abs(H[o2] - y));
          maxRef = Math.max(maxRef, Math.abs(y));
        }
      }
      const by = scanBytes(prim, B, L, S);
      const GBps = GB(by.min, timing.medianMs), kernelGBps = GB(by.kernel, timing.medianMs);
      rows.push({
        prim, algo: by.algo, B, L, S, chunks: by.chunks, minBytes: by.min, kernelBytes: by.kernel, timing,
        GBps, kernelGBps, fracCopy: 0, kernelFracCopy: 0, fracCopyBuffer: 0, maxErr: maxDiff / (1 + maxRef),
      });
    }
  } finally {
    scanTuning.algo = defaults.algo;
    scanTuning.tile = defaults.tile;
    scanTuning.fewChannels = defaults.few;
    for (const h of [a, x, h0, out]) gpu.free(h);
  }
  return rows;
}

async function main(argv: readonly string[]): Promise<void> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return;
  }
  const f = parseFlags(argv, {
    lengths: "string", elems: "string", ssm: "string", runs: "string", "sample-ms": "string", "warmup-ms": "string",
    "copy-mib": "string", "ssm-fwd-threads": "string", "ssm-fwd-vec": "string", "ssm-fwd-algo": "string", "ssm-bwd-algo": "string", small: "boolean", json: "boolean", out: "string", "scan-algo": "string", profile: "boolean",
  });
  const algos = String(f["scan-algo"] ?? "lookback,tile,chunked").split(",").map((s) => s.trim()).filter(Boolean).map(parseScanAlgo);
  const small = f.small === true;
  const lengths = flagList("lengths", f.lengths, POSITIVE_INT, small ? [256] : [4096, 16384, 65536, 262144]);
  const elemsWanted = positiveInt("--elems", f.elems, small ? 16384 : 2 ** 26);
  const ssmSpecs = String(f.ssm ?? (small ? "1x64x8x16,2x300x8x13" : SSM_DEFAULT)).split(",").map((s) => s.trim()).filter((s) => s && s !== "none");
  // absent: the library's own choice (fwdThreads, or fwdThreadsLong from fwdLongL on), as 0
  const fwdThreads = flagList("ssm-fwd-threads", f["ssm-fwd-threads"], POSITIVE_INT, [0]);
  const fwdVecs = flagList("ssm-fwd-vec", f["ssm-fwd-vec"], choice(["0", "1"]), [ssmTuning.fwdVecBC ? "1" : "0"]).map((s) => s === "1");
  const fwdAlgos = String(f["ssm-fwd-algo"] ?? ssmTuning.fwdAlgo).split(",").map((s) => s.trim()).filter(Boolean).map(parseFwdVariant);
  const bwdAlgos = String(f["ssm-bwd-algo"] ?? ssmTuning.bwdAlgo).split(",").map((x) => x.trim()).filter(Boolean).map(parseBwdVariant);
  const runs = positiveInt("--runs", f.runs, 9);
  const sampleMs = positiveInt("--sample-ms", f["sample-ms"], 20);
  const warmupMs = positiveInt("--warmup-ms", f["warmup-ms"], small ? 50 : 500);
  const copyMib = positiveInt("--copy-mib", f["copy-mib"], small ? 4 : 256);

  const gpu = await createWebGpuBackend({ timestamps: true });
  const timestamps = gpu.device.features.has("timestamp-query");
  const o: TimeOpts = { runs, sampleMs, warmupMs, timestamps, profile: f.profile === true };
  // one tensor must fit a binding
  const elems = Math.min(elemsWanted, Math.floor(gpu.limits.maxStorageBufferBindingSize / 4));
  let peak: CopyPeak;
  const scans: ScanRow[] = [];
  const ssm: SsmRow[] = [];
  try {
    peak = await copyPeak(gpu, copyMib, o);
    for (const L of lengths) scans.push(...(await benchScan(gpu, L, elems, algos, o)));
    const fwdDefault = { threads: ssmTuning.fwdThreads, long: ssmTuning.fwdThreadsLong, vec: ssmTuning.fwdVecBC, algo: ssmTuning.fwdAlgo };
    try {
      for (const s of ssmSpecs) {
        let first = true;
        for (const algo of fwdAlgos) {
          for (const vec of fwdVecs) {
            for (const th of fwdThreads) {
              // a given count holds at every L (short and long alike)
              ssmTuning.fwdThreads = th === 0 ? fwdDefault.threads : th;
              ssmTuning.fwdThreadsLong = th === 0 ? fwdDefault.long : th;
              ssmTuning.fwdVecBC = vec;
              ssmTuning.fwdAlgo = algo.algo;
              applyStepBlock(algo);
              ssm.push(...(await benchSsm(gpu, s, o, first, bwdAlgos)));
              first = false;
            }
          }
        }
      }
    } finally {
      ssmTuning.fwdThreads = fwdDefault.threads;
      ssmTuning.fwdThreadsLong = fwdDefault.long;
      ssmTuning.fwdVecBC = fwdDefault.vec;
      ssmTuning.fwdAlgo = fwdDefault.algo;
      applyStepBlock({});
    }
    if (gpu.liveBuffers() !== 0) throw new Error(`${gpu.liveBuffers()} buffers left alive`);
  } finally {
    gpu.destroy();
  }
  // the peak: the fastest of the measured copies (on NVIDIA, copyBufferToBuffer runs far below
  // what a copy kernel reaches, so the kernel copy is the fair mark for compute kernels)
  const copyGBps = Math.max(peak.copy.GBps, peak.kernel?.GBps ?? 0, peak.vec4Copy?.GBps ?? 0);
  for (const r of scans) {
    r.fracCopyBuffer = r.GBps / peak.copy.GBps;
    r.fracCopy = r.GBps / copyGBps;
    r.kernelFracCopy = r.kernelGBps / copyGBps;
  }
  for (const r of ssm) r.fracCopy = r.GBps / copyGBps;
  const result = {
    ...gpuBenchHeader("webgpu-scan", gpu, timestamps),
    runs,
    elemsPerTensor: elems,
    maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
    peak,
    peakGBps: copyGBps,
    scans,
    ssm,
  };
  writeJson(typeof f.out === "string" ? f.out : fromRoot("packages", "bench", "results", "webgpu-scan.json"), result);
  if (f.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`webgpu-scan — ${result.runtime}, ${result.adapter} via ${result.via}; ${result.timing}; median of ${runs}`);
  console.log(
    `peak: copyBufferToBuffer ${copyMib} MiB ${fmt(copyGBps, 4)} GB/s (read + write, wall clock over ${peak.copy.reps} copies)` +
      (peak.kernel ? `; elementwise kernel ${fmt(peak.kernel.GBps, 4)} GB/s` : "") +
      (peak.vec4Copy ? `; vec4 copy kernel ${fmt(peak.vec4Copy.GBps, 4)} GB/s (GPU-timed)` : "") + `; % below of ${fmt(copyGBps, 4)} GB/s`,
  );
  console.log(formatTable(
    ["prim", "algo", "B", "L", "S", "chunks", "median ms", "GB/s (12 B/el)", "% peak", "% copyBuffer", "kernel GB/s", "kernel % peak", "max err"],
    scans.map((r) => [
      r.prim, r.algo, String(r.B), String(r.L), String(r.S), String(r.chunks), fmt(r.timing.medianMs, 4), fmt(r.GBps, 4), fmt(100 * r.fracCopy, 3), fmt(100 * r.fracCopyBuffer, 3),
      fmt(r.kernelGBps, 4), fmt(100 * r.kernelFracCopy, 3), r.maxErr.toExponential(2),
    ]),
  ));
  console.log();
  printSsm(ssm);
}

if (import.meta.main ?? true) runMain("webgpu-scan", main);
