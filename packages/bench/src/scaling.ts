/**
 * Scaling with sequence length (issue #11): time per token and peak memory of MemMamba, Mamba
 * and the Transformer baseline at batch 1, for the forward pass and for a training step, at each
 * --lengths L; and streaming memory over --stream-total tokens. With --tokens N the forward runs
 * N / L rows of L a call instead of one (at least one): the same work per call at every length,
 * which separates the model's cost per token from the fixed cost of a call (at batch 1 a short
 * forward is a few hundred kernel launches and little else, so its time per token is mostly
 * that fixed cost).
 *
 * - forward: the parallel forward (lm.apply) up to --parallel-max tokens, the chunked forward
 *   (lm.applyChunked, --chunk tokens a chunk, the state carried; the last chunk builds none)
 *   beyond; the Transformer always
 *   runs in parallel (it has no recurrent state) and stops at its first failure to fit or at the
 *   first length whose run passes --cap-s (longer ones would be slower still);
 * - train: one full step (forward, backward, clipping, AdamW; see model-common.ts) on one row of
 *   L tokens, up to --train-max;
 * - stream: MemMamba and Mamba stream --stream-total tokens --stream-chunk at a time from an
 *   empty state, dropping each chunk's logits, with memory sampled every --stream-every tokens.
 *
 * Peak memory per configuration: live tensor bytes (any backend), the WebGPU pool's bytes in use
 * (kernel temporaries included) and the process RSS (CPU). Goals, printed as ratios: MemMamba's
 * forward time per token at the longest length over that at the shortest (flat: within 15%),
 * MemMamba / Mamba (≤ 1.3) and MemMamba / Transformer (≤ 0.5) at 60K (61,440; null unless measured), and the
 * streaming live bytes max / min (constant: 1).
 *
 *   bun packages/bench/src/scaling.ts --backend cpu --preset tiny --lengths 1K,2K,4K,8K,16K
 *   node .gpu/scaling.mjs --backend webgpu --preset small   (GPU defaults: 1K … 256K)
 *
 * Writes JSON after every configuration (a run cut off by a time limit keeps what it measured)
 * and an SVG plot of time per token against length. Asserts nothing about time.
 */
import {
  choice, detectRuntime, flagList, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, nonNegativeInt, oneOf, parseFlags, positiveInt, runMain,
  UsageError, writeJson,
} from "./runtime.ts";
import { disposeTree, random } from "@memmamba/tensor";
import { initLM, lm, presetNames, type LMParams } from "@memmamba/memmamba";
import { linePlot, writeSvg, type Series } from "../../cli/src/plot.ts";
import {
  BACKENDS, type BenchBackend, chunkedForward, isOutOfMemory, KINDS, makeTrainer, mib, modelConfig,
  type KernelProfiler, type ModelBenchHead, type ModelKind, openBackend, parallelForward, parseLengths, profileRun, progress, randomTokens, type RunProfile, settleOn, showLength, stream,
  timeAsync,
} from "./model-common.ts";

const HELP = `scaling: time per token and peak memory against sequence length (batch 1, or --tokens)

  --backend B         cpu, wasm or webgpu (default cpu)
  --preset P          ${presetNames.join(", ")} (default tiny on the CPU, small on WebGPU)
  --kinds K,...       memmamba, mamba, transformer (default all three)
  --modes M,...       forward, train, stream (default all three)
  --lengths L,...     sequence lengths, K = 1024 (CPU default 1K,2K,4K,8K,16K;
                      WebGPU default 1K,4K,16K,60K,64K,128K,256K)
  --chunk N           chunk of the chunked forward (default 2048)
  --tokens N          forward: N / L rows of L a call (at least 1), the same tokens a call at
                      every length (default: 1 row); the training step stays at 1 row
  --parallel-max N    longest parallel forward; longer ones run chunked (default 4K)
  --train-max N       longest training step (default 16K on the CPU, 32K on WebGPU)
  --transformer-max N longest Transformer run (default 4K on the CPU, 60K on WebGPU: its
                      inference attention runs by blocks of 1,024 queries beyond 1K tokens)
  --runs N            timed runs per configuration, the median reported (default 3)
  --warmup N          untimed runs first (default 1; on WebGPU up to 3 more, until a run creates
                      no pool buffer and no bind group: the row's warmups field says how many)
  --cap-s S           time cap of one configuration: stop timing it after S seconds, and skip the
                      longer lengths of that model and mode once one run alone passes it (default 60)
  --stream-total N    tokens streamed (default 1M; 0: no streaming)
  --stream-chunk N    tokens per streamed chunk (default 4096)
  --stream-every N    memory sampled every N tokens (default 64K)
  --stream-cap-s S    stop streaming after S seconds (default 120)
  --profile           WebGPU, forward rows: one more forward with every dispatch timed, GPU ms by
                      kernel and primitive call (shapes); the top rows go in the JSON
  --json              print the JSON result on stdout instead of the tables
  --out FILE          JSON output (default packages/bench/results/scaling-<backend>.json); the SVG
                      plot goes beside it (.svg)
  --help              this text`;

export type Mode = "forward" | "train" | "stream";
const MODES: readonly Mode[] = ["forward", "train", "stream"];

export interface ScalingRow {
  kind: ModelKind;
  mode: "forward" | "train";
  L: number;
  /** Rows of L a call (1, or --tokens / L in forward mode). */
  batch: number;
  /** parallel or chunked (forward); parallel (train). */
  how: "parallel" | "chunked";
  chunk: number | null;
  runs: number;
  /** Untimed runs before them (--warmup, and on WebGPU more until a run created no buffer and no bind group). */
  warmups?: number;
  medianMs: number | null;
  samplesMs: number[];
  /** medianMs / (batch · L), in microseconds. */
  usPerToken: number | null;
  peakLiveMiB: number | null;
  peakPoolMiB: number | null;
  peakRssMiB: number | null;
  /** Why there is no time: did not fit, skipped past a cap, an error. */
  note?: string;
  /** --profile (forward rows): one more forward, GPU ms by kernel and primitive call (top rows). */
  profile?: RunProfile;
}

export interface StreamSample {
  tokens: number;
  liveMiB: number;
  poolPeakMiB: number | null;
  rssMiB: number;
  /** The backend's own memory: WebGPU pool bytes in use, or the wasm heap's bytes in use and top. */
  backendInUseMiB: number | null;
  backendTopMiB: number | null;
  stateElements: number;
  elapsedS: number;
}

export interface StreamResult {
  kind: ModelKind;
  chunk: number;
  tokens: number;
  samples: StreamSample[];
  /** max / min of live bytes over the samples (1: constant). */
  liveMaxOverMin: number | null;
  /** Whether the state held the same number of elements at every sample. */
  stateConstant: boolean;
  usPerToken: number | null;
}

export interface Goals {
  /** MemMamba forward µs/token at the longest measured length over the shortest (goal: within ±15%). */
  memmambaFlatness: { fromL: number; toL: number; ratio: number } | null;
  /** At 60K (AT_60K tokens); null where that length was not measured for MemMamba's forward. */
  at60K: { L: number; memmambaOverMamba: number | null; memmambaOverTransformer: number | null; transformerNote?: string } | null;
  /** MemMamba / Transformer at the longest length where both ran (the Transformer stops early). */
  longestWithTransformer: { L: number; memmambaOverTransformer: number } | null;
  streamLiveMaxOverMin: Record<string, number | null>;
}

export interface ScalingResult extends ModelBenchHead<"scaling"> {
  rows: ScalingRow[];
  stream: StreamResult[];
  goals: Goals;
}

/** The length the issue's "at 60K" goals are for: 60 × 1024 tokens ("60K" in --lengths). */
export const AT_60K = 61440;

/** The goal ratios from the rows (forward mode). */
export function goals(rows: readonly ScalingRow[], streams: readonly StreamResult[]): Goals {
  const fwd = (k: ModelKind) => rows.filter((r) => r.kind === k && r.mode === "forward" && r.usPerToken !== null);
  const mm = fwd("memmamba");
  const g: Goals = { memmambaFlatness: null, at60K: null, longestWithTransformer: null, streamLiveMaxOverMin: {} };
  if (mm.length >= 2) {
    const a = mm[0], b = mm[mm.length - 1];
    g.memmambaFlatness = { fromL: a.L, toL: b.L, ratio: b.usPerToken! / a.usPerToken! };
  }
  // the 60K goals only where 60K itself was measured (another length's ratio is not the goal's)
  const near = mm.find((r) => r.L === AT_60K);
  if (near) {
    const at = (k: ModelKind) => rows.find((r) => r.kind === k && r.mode === "forward" && r.L === near.L);
    const ma = at("mamba"), tr = at("transformer");
    g.at60K = {
      L: near.L,
      memmambaOverMamba: ma?.usPerToken ? near.usPerToken! / ma.usPerToken : null,
      memmambaOverTransformer: tr?.usPerToken ? near.usPerToken! / tr.usPerToken : null,
    };
    if (!tr?.usPerToken) g.at60K.transformerNote = tr?.note ?? "the Transformer was not run at this length";
  }
  if (mm.length) {
    const both = mm.filter((r) => fwd("transformer").some((t) => t.L === r.L));
    const last = both[both.length - 1];
    if (last) g.longestWithTransformer = { L: last.L, memmambaOverTransformer: last.usPerToken! / fwd("transformer").find((t) => t.L === last.L)!.usPerToken! };
  }
  for (const s of streams) g.streamLiveMaxOverMin[s.kind] = s.liveMaxOverMin;
  return g;
}

async function measureOne(bb: BenchBackend & { profiler: KernelProfiler | null }, params: LMParams, kind: ModelKind, mode: "forward" | "train", L: number, o: Opts): Promise<ScalingRow> {
  const chunked = mode === "forward" && kind !== "transformer" && L > o.parallelMax;
  const B = mode === "forward" ? Math.max(1, Math.floor(o.tokens / L)) : 1;
  const row: ScalingRow = {
    kind, mode, L, batch: B, how: chunked ? "chunked" : "parallel", chunk: chunked ? o.chunk : null, runs: 0, medianMs: null, samplesMs: [], usPerToken: null,
    peakLiveMiB: null, peakPoolMiB: null, peakRssMiB: null,
  };
  const x = randomTokens(B, L, L);
  const y = mode === "train" ? randomTokens(1, L, L + 1) : null;
  const trainer = mode === "train" ? makeTrainer(initLM(random.key(0), params.config)) : null;
  try {
    bb.resetPeak();
    const fn = mode === "train"
      ? () => trainer!.step(x, y!)
      : chunked ? () => chunkedForward(params, x, o.chunk) : () => parallelForward(params, x);
    const settle = settleOn(bb);
    const samples = await timeAsync(async () => {
      await fn();
      bb.sampleRss();
    }, o.runs, o.warmup, performance.now() + o.capS * 1000, settle);
    row.runs = samples.length;
    row.warmups = settle.warmups;
    row.samplesMs = samples.map((s) => Math.round(s * 100) / 100);
    row.medianMs = median(samples);
    row.usPerToken = (row.medianMs * 1000) / (B * L);
    row.peakLiveMiB = mib(bb.peakLiveBytes());
    row.peakPoolMiB = mib(bb.peakPoolBytes());
    row.peakRssMiB = mib(bb.peakRss());
    if (o.profile && mode === "forward" && bb.profiler) row.profile = await profileRun(bb.profiler, `${kind} forward ${B} × ${showLength(L)} (${row.how})`, fn);
  } catch (e) {
    row.note = `${isOutOfMemory(e) ? "does not fit: " : "error: "}${e instanceof Error ? e.message.split("\n")[0].slice(0, 300) : String(e)}`;
  } finally {
    trainer?.dispose();
    disposeTree([x, y]);
  }
  return row;
}

interface Opts {
  chunk: number;
  /** Forward tokens a call (rows = tokens / L, at least 1); 1: one row. */
  tokens: number;
  parallelMax: number;
  trainMax: number;
  transformerMax: number;
  runs: number;
  warmup: number;
  capS: number;
  streamTotal: number;
  streamChunk: number;
  streamEvery: number;
  streamCapS: number;
  /** One more forward per row with every dispatch timed (WebGPU). */
  profile: boolean;
}

/** Runs the benchmark with these arguments; resolves to the JSON it wrote (undefined for --help). */
export async function main(argv: readonly string[]): Promise<ScalingResult | undefined> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return undefined;
  }
  const f = parseFlags(argv, {
    backend: "string", preset: "string", kinds: "string", modes: "string", lengths: "string", chunk: "string", "parallel-max": "string",
    "train-max": "string", "transformer-max": "string", runs: "string", warmup: "string", "cap-s": "string", "stream-total": "string",
    "stream-chunk": "string", "stream-every": "string", "stream-cap-s": "string", json: "boolean", out: "string", help: "boolean", tokens: "string", profile: "boolean",
  });
  const backend = oneOf("backend", f.backend, BACKENDS) ?? "cpu";
  const gpu = backend === "webgpu";
  const presetName = oneOf("preset", f.preset, presetNames) ?? (gpu ? "small" : "tiny");
  const kinds = flagList("kinds", f.kinds, choice(KINDS), KINDS);
  const modes = flagList("modes", f.modes, choice(MODES), MODES);
  const lengths = parseLengths("lengths", String(f.lengths ?? (gpu ? "1K,4K,16K,60K,64K,128K,256K" : "1K,2K,4K,8K,16K"))).sort((a, b) => a - b);
  const len = (name: string, dflt: string) => parseLengths(name, String(f[name] ?? dflt))[0];
  const nonNeg = (name: string, dflt: number) => nonNegativeInt(name, f[name], dflt);
  const o: Opts = {
    chunk: len("chunk", "2048"), tokens: f.tokens === undefined ? 1 : len("tokens", "1"), parallelMax: len("parallel-max", "4K"), trainMax: len("train-max", gpu ? "32K" : "16K"),
    transformerMax: len("transformer-max", gpu ? "60K" : "4K"), runs: positiveInt("runs", f.runs, 3), warmup: nonNeg("warmup", 1),
    capS: positiveInt("cap-s", f["cap-s"], 60), streamTotal: f["stream-total"] === "0" ? 0 : len("stream-total", "1M"),
    streamChunk: len("stream-chunk", "4096"), streamEvery: len("stream-every", "64K"), streamCapS: positiveInt("stream-cap-s", f["stream-cap-s"], 120),
    profile: !!f.profile,
  };
  const out = String(f.out ?? fromRoot("packages", "bench", "results", `scaling-${backend}.json`));

  const bb = await openBackend(backend, { timestamps: o.profile });
  if (o.profile && !bb.profiler) throw new UsageError("--profile needs the WebGPU backend on an adapter with 'timestamp-query'");
  progress(`scaling: ${bb.device}, preset ${presetName}, lengths ${lengths.map(showLength).join(",")}`);
  const rows: ScalingRow[] = [];
  const streams: StreamResult[] = [];
  const machine = machineInfo();
  const result = (): ScalingResult => ({
    benchmark: "scaling", commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine, device: bb.device, backend, preset: presetName,
    options: { ...o, kinds, modes, lengths }, rows, stream: streams, goals: goals(rows, streams),
  });
  const save = () => {
    const r = result();
    writeJson(out, r);
    writeSvg(out.replace(/\.json$/, "") + ".svg", plot(r));
    return r;
  };
  try {
    for (const kind of kinds) {
      const params = initLM(random.key(0), modelConfig(presetName, kind));
      try {
        for (const mode of modes) {
          if (mode === "stream") continue;
          let stop: string | undefined;
          for (const L of lengths) {
            const max = Math.min(mode === "train" ? o.trainMax : Infinity, kind === "transformer" ? o.transformerMax : Infinity);
            let row: ScalingRow;
            if (stop || L > max) {
              row = {
                kind, mode, L, batch: 1, how: "parallel", chunk: null, runs: 0, medianMs: null, samplesMs: [], usPerToken: null, peakLiveMiB: null,
                peakPoolMiB: null, peakRssMiB: null, note: stop ?? `skipped: over --${mode === "train" ? "train" : "transformer"}-max (${showLength(max)})`,
              };
            } else {
              progress(`scaling: ${kind} ${mode} L=${showLength(L)} …`);
              row = await measureOne(bb, params, kind, mode, L, o);
              progress(`  ${row.usPerToken !== null ? `${fmt(row.usPerToken)} µs/token, ${fmt(row.medianMs)} ms, peak live ${row.peakLiveMiB} MiB` : row.note}`);
              if (row.note) stop = `skipped: a shorter length failed (${showLength(L)}: ${row.note.slice(0, 80)})`;
              else if (row.samplesMs.length && Math.min(...row.samplesMs) > o.capS * 1000) stop = `skipped: one run at ${showLength(L)} took over --cap-s ${o.capS} s`;
            }
            rows.push(row);
            save();
          }
        }
        if (modes.includes("stream") && kind !== "transformer" && o.streamTotal > 0) {
          progress(`scaling: ${kind} streaming ${showLength(o.streamTotal)} tokens …`);
          streams.push(await streamOne(bb, params, kind, o));
          save();
        }
      } finally {
        disposeTree(params);
      }
    }
  } finally {
    bb.destroy();
  }
  const res = save();
  if (f.json) {
    console.log(JSON.stringify(res, null, 2));
    return res;
  }
  printTables(res);
  console.log(`\nwrote ${out} and ${out.replace(/\.json$/, "")}.svg`);
  return res;
}

async function streamOne(bb: BenchBackend, params: LMParams, kind: ModelKind, o: Opts): Promise<StreamResult> {
  const samples: StreamSample[] = [];
  bb.resetPeak();
  const t0 = performance.now();
  const done = await stream(params, 1, o.streamTotal, o.streamChunk, o.streamEvery, (tokens, state) => {
    const m = bb.backendMemory();
    samples.push({
      tokens, liveMiB: mib(bb.liveBytes())!, poolPeakMiB: mib(bb.peakPoolBytes()), rssMiB: mib(bb.sampleRss())!,
      backendInUseMiB: mib(m?.inUseBytes), backendTopMiB: mib(m?.topBytes),
      stateElements: lm.stateElementCount(state), elapsedS: (performance.now() - t0) / 1000,
    });
    progress(`  ${showLength(tokens)} tokens: live ${mib(bb.liveBytes())} MiB, rss ${mib(bb.sampleRss())} MiB`);
  }, t0 + o.streamCapS * 1000);
  const live = samples.map((s) => s.liveMiB);
  const ms = performance.now() - t0;
  return {
    kind, chunk: o.streamChunk, tokens: done, samples,
    liveMaxOverMin: live.length && Math.min(...live) > 0 ? Math.max(...live) / Math.min(...live) : null,
    stateConstant: samples.every((s) => s.stateElements === samples[0].stateElements),
    usPerToken: done ? (ms * 1000) / done : null,
  };
}

/** The SVG plot of a result: time per token against log2 L, one line per model and mode (train dashed). */
export function plot(r: ScalingResult): string {
  const series: Series[] = [];
  const color: Record<ModelKind, string> = { memmamba: "#0072B2", mamba: "#009E73", transformer: "#D55E00" }; // one colour per model
  for (const kind of KINDS) {
    for (const mode of ["forward", "train"] as const) {
      const pts = r.rows.filter((x) => x.kind === kind && x.mode === mode && x.usPerToken !== null).map((x) => [Math.log2(x.L), x.usPerToken!] as const);
      if (pts.length) series.push({ name: `${kind} ${mode}`, points: pts, color: color[kind], dashed: mode === "train" });
    }
  }
  return linePlot(series, {
    title: `time per token vs length (${r.preset}, ${r.device.slice(0, 60)})`, xLabel: "log2 sequence length", yLabel: "µs per token", logY: true,
  });
}

function printTables(r: ScalingResult): void {
  const t = (r.options as { tokens?: number }).tokens ?? 1;
  console.log(`${r.device}; ${r.runtime.name} ${r.runtime.version}; preset ${r.preset}, ${t > 1 ? `forward: ${showLength(t)} tokens a call (rows = tokens / L); training step: batch 1` : "batch 1"}`);
  console.log(formatTable(
    ["kind", "mode", "L", "rows", "how", "ms", "µs/token", "peak live MiB", "peak pool MiB", "peak RSS MiB", "note"],
    r.rows.map((x) => [x.kind, x.mode, showLength(x.L), x.batch ?? 1, x.how + (x.chunk ? ` ${x.chunk}` : ""), x.medianMs, x.usPerToken, x.peakLiveMiB, x.peakPoolMiB, x.peakRssMiB, x.note ?? ""]),
  ));
  if (r.stream.length) {
    console.log("\nstreaming (chunked, logits dropped): memory along the way");
    for (const s of r.stream) {
      console.log(`${s.kind}: ${showLength(s.tokens)} tokens at ${fmt(s.usPerToken)} µs/token; live MiB max/min ${fmt(s.liveMaxOverMin)}; state constant: ${s.stateConstant}`);
      console.log(formatTable(["tokens", "live MiB", "pool peak MiB", "backend in use MiB", "backend top MiB", "RSS MiB", "state elements", "s"],
        s.samples.map((x) => [showLength(x.tokens), x.liveMiB, x.poolPeakMiB, x.backendInUseMiB, x.backendTopMiB, x.rssMiB, x.stateElements, x.elapsedS])));
    }
  }
  const g = r.goals;
  console.log("\ngoals");
  if (g.memmambaFlatness) {
    console.log(`  MemMamba forward µs/token at ${showLength(g.memmambaFlatness.toL)} / at ${showLength(g.memmambaFlatness.fromL)}: ${fmt(g.memmambaFlatness.ratio)} (goal: 0.85 … 1.15)`);
  }
  if (!g.at60K) {
    if (r.rows.some((x) => x.kind === "memmamba" && x.mode === "forward")) {
      console.log(`  at ${showLength(AT_60K)}: not measured (no ${showLength(AT_60K)} in --lengths, or MemMamba's forward failed there), so no MemMamba / Mamba goal (≤ 1.3) here`);
    }
  } else {
    console.log(`  at ${showLength(g.at60K.L)}: MemMamba / Mamba ${fmt(g.at60K.memmambaOverMamba)} (goal ≤ 1.3); MemMamba / Transformer ${fmt(g.at60K.memmambaOverTransformer)} (goal ≤ 0.5)${g.at60K.transformerNote ? ` — Transformer: ${g.at60K.transformerNote}` : ""}`);
  }
  if (g.longestWithTransformer && g.longestWithTransformer.L !== g.at60K?.L) {
    console.log(`  at ${showLength(g.longestWithTransformer.L)} (the longest the Transformer ran): MemMamba / Transformer ${fmt(g.longestWithTransformer.memmambaOverTransformer)}`);
  }
  for (const [k, v] of Object.entries(g.streamLiveMaxOverMin)) console.log(`  streaming ${k}: live bytes max / min ${fmt(v)} (goal: 1)`);
}

if (import.meta.main ?? true) runMain("scaling", main);
