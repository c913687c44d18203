/**
 * Long-context latency at batch 1 (issue #11): wall time of our chunked forward (lm.applyChunked:
 * the logits of every position, the state carried chunk to chunk; the last chunk builds no state
 * unless --final-state, as PyTorch's forward returns logits only) over --lengths tokens, for
 * each --kinds model and each --chunks size, against the PyTorch figures the issue gives for an
 * H100 (a plain Mamba: 0.87 s at 61K and 4.2 s at 262K; a flash-attention Transformer: 0.52 s and
 * 9.2 s), and, with --reference FILE, against the PyTorch reference port's own forward measured in
 * the same GPU run (packages/bench/gpu/ref_long_context.py).
 *
 *   node .gpu/long-context.mjs --backend webgpu [--lengths 61440,262144] [--chunks 4096,16384]
 *       [--kinds memmamba,mamba] [--runs 3] [--cap-s 90] [--reference ref-long.json] [--json] [--out FILE]
 *
 * "61K" is read as 61,440 (60 × 1024) and "262K" as 262,144 (256 × 1024). Writes JSON after every
 * configuration. Asserts nothing about time.
 */
import {
  choice, detectRuntime, flagList, flagValue, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, nonNegativeInt, numberFlag, oneOf, parseFlags,
  positiveInt, readJson, runMain, UsageError, writeJson, type FlagType,
} from "./runtime.ts";
import { existsSync } from "node:fs";
import { z } from "zod";
import { disposeTree, random, type Tensor } from "@memmamba/tensor";
import { selectTuning } from "../../tensor/src/webgpu/kernels/select.ts";
import { rowsTuning } from "../../tensor/src/webgpu/kernels/matmul-rows.ts";
import { initLM, type LMParams, presetNames } from "@memmamba/memmamba";
import {
  applyAttnReadFlags, ATTN_READ_FLAGS, attnReadFlagsHelp, BACKENDS, chunkedForward, isOutOfMemory, mib, modelConfig, type ModelBenchHead, type ModelKind, openBackend, parseLengths, progress,
  profileRun, randomTokens, type RunProfile, settleOn, showLength, timeAsync, type WorkCount,
} from "./model-common.ts";

const HELP = `long-context: batch-1 latency of the chunked forward at long lengths

  --backend B       cpu, wasm or webgpu (default webgpu)
  --preset P        ${presetNames.join(", ")} (default small)
  --kinds K,...     memmamba, mamba (default memmamba,mamba)
  --lengths L,...   tokens, K = 1024 (default 60K,256K = 61440,262144)
  --chunks N,...    chunk sizes tried (default 4096,16384)
  --runs N          timed runs, the median reported (default 3)
  --warmup N        untimed runs first (default 1; on WebGPU up to 3 more, until a run creates no
                    pool buffer and no bind group: the row's warmups field says how many)
  --cap-s S         stop timing a configuration after S seconds (default 90)
  --reference F     JSON of packages/bench/gpu/ref_long_context.py from the same run
${attnReadFlagsHelp()}
  --rows-unroll N   WebGPU matmulRowsMax (the held notes' projection): k steps a round of loads
                    (default ${rowsTuning.unroll})
  --rows-grid N     WebGPU matmulRowsMax: at most N workgroups, each taking every N-th row; 0 for
                    the earlier kernel, a workgroup a row (default ${rowsTuning.grid})
  --select-super G  WebGPU causalSelect: tiles per super-tile of its first pass, 0 for none (default ${selectTuning.superTiles})
  --final-state     also build the state after the last position (a streaming caller's
                    chunk); by default the forward returns logits only, as PyTorch's does
  --profile         WebGPU: after each timed row, one more forward with every dispatch timed,
                    GPU ms by kernel and primitive call (shapes); the top rows go in the JSON
  --json            print the JSON result on stdout instead of the table
  --out FILE        JSON output (default packages/bench/results/long-context-<backend>.json)
  --help            this text`;

/** The issue's PyTorch figures on an H100, batch 1, seconds. */
export const ISSUE_FIGURES: Record<string, Record<number, number>> = {
  "pytorch mamba": { 61440: 0.87, 262144: 4.2 },
  "pytorch flash transformer": { 61440: 0.52, 262144: 9.2 },
};

export interface LatencyRow {
  kind: ModelKind;
  L: number;
  chunk: number;
  runs: number;
  /** Untimed runs before them (--warmup, and on WebGPU more until a run created no buffer and no bind group). */
  warmups?: number;
  seconds: number | null;
  samplesS: number[];
  tokensPerSec: number | null;
  peakLiveMiB: number | null;
  peakPoolMiB: number | null;
  note?: string;
  /**
   * Host-side work of one more forward after the timed ones (launches, bind groups and buffers
   * created, submits): a forward that creates bind groups or buffers pays host time per chunk.
   * wallMs: that forward's time; encodeMs: the host's share of it, the model's call until it
   * returned (every launch encoded): near wallMs, the host and not the GPU sets the pace.
   */
  counts?: WorkCount & { wallMs: number; encodeMs: number };
  /** --profile: one more forward, GPU ms by kernel and primitive call (top rows). */
  profile?: RunProfile;
}

export interface RefRow {
  kind: string;
  L: number;
  seconds?: number | null;
  error?: string;
  [k: string]: unknown;
}

export interface Comparison {
  kind: ModelKind;
  L: number;
  /** Our best chunk size's time. */
  seconds: number;
  chunk: number;
  /** ours / each figure (below 1: we are faster). */
  overIssueMamba: number | null;
  overIssueFlashTransformer: number | null;
  overReferenceSameKind: number | null;
}

export interface LongContextResult extends ModelBenchHead<"long-context"> {
  rows: LatencyRow[];
  reference: RefRow[];
  issueFigures: typeof ISSUE_FIGURES;
  comparisons: Comparison[];
}

/** Our best time per (kind, L) against the issue's figures and the reference port. */
export function compare(rows: readonly LatencyRow[], ref: readonly RefRow[]): Comparison[] {
  const out: Comparison[] = [];
  const keys = new Set(rows.filter((r) => r.seconds !== null).map((r) => `${r.kind}|${r.L}`));
  for (const k of keys) {
    const [kind, Ls] = k.split("|");
    const L = Number(Ls);
    const best = rows.filter((r) => r.kind === kind && r.L === L && r.seconds !== null).reduce((a, b) => (b.seconds! < a.seconds! ? b : a));
    const fig = (name: string) => ISSUE_FIGURES[name][L] ?? null;
    const refRow = ref.find((r) => r.kind === kind && r.L === L && typeof r.seconds === "number");
    const q = (d: number | null | undefined) => (d ? best.seconds! / d : null);
    out.push({
      kind: kind as ModelKind, L, seconds: best.seconds!, chunk: best.chunk,
      overIssueMamba: q(fig("pytorch mamba")), overIssueFlashTransformer: q(fig("pytorch flash transformer")),
      overReferenceSameKind: q(refRow?.seconds as number | undefined),
    });
  }
  return out;
}

/** --kinds: the models with a chunked mode. */
const CHUNKED_KINDS: FlagType<ModelKind> = { ...choice(["memmamba", "mamba"]), expects: "memmamba or mamba (the kinds with a chunked mode)" };
/** --select-super: 0 (none) or at least 2 tiles a super-tile. */
const SELECT_SUPER = numberFlag(z.number().int().min(0).refine((n) => n !== 1), "0 or an integer ≥ 2");

/** Runs the benchmark with these arguments; resolves to the JSON it wrote (undefined for --help). */
export async function main(argv: readonly string[]): Promise<LongContextResult | undefined> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return undefined;
  }
  const f = parseFlags(argv, {
    backend: "string", preset: "string", kinds: "string", lengths: "string", chunks: "string", runs: "string", warmup: "string",
    "cap-s": "string", reference: "string", "final-state": "boolean", profile: "boolean", json: "boolean", out: "string", help: "boolean", ...ATTN_READ_FLAGS, "select-super": "string", "rows-unroll": "string", "rows-grid": "string",
  });
  applyAttnReadFlags(f);
  selectTuning.superTiles = flagValue("select-super", f["select-super"], SELECT_SUPER) ?? selectTuning.superTiles;
  if (f["rows-unroll"] !== undefined) rowsTuning.unroll = positiveInt("rows-unroll", f["rows-unroll"], rowsTuning.unroll);
  if (f["rows-grid"] !== undefined) {
    if (f["rows-grid"] === "0") rowsTuning.strided = false;
    else rowsTuning.grid = positiveInt("rows-grid", f["rows-grid"], rowsTuning.grid);
  }
  const backend = oneOf("backend", f.backend, BACKENDS) ?? "webgpu";
  const presetName = oneOf("preset", f.preset, presetNames) ?? "small";
  const kinds = flagList("kinds", f.kinds, CHUNKED_KINDS, ["memmamba", "mamba"]);
  const lengths = parseLengths("lengths", String(f.lengths ?? "60K,256K"));
  const chunks = parseLengths("chunks", String(f.chunks ?? "4096,16384"));
  const runs = positiveInt("runs", f.runs, 3), warmup = nonNegativeInt("warmup", f.warmup, 1);
  const capS = positiveInt("cap-s", f["cap-s"], 90);
  const out = String(f.out ?? fromRoot("packages", "bench", "results", `long-context-${backend}.json`));
  let ref: RefRow[] = [];
  if (f.reference) {
    const p = String(f.reference);
    if (!existsSync(p)) throw new UsageError(`--reference: ${p} does not exist`);
    const j = readJson<{ rows?: RefRow[] }>(p);
    ref = j.rows ?? [];
  }

  const profile = !!f.profile;
  const finalState = !!f["final-state"];
  const fwd = (params: LMParams, x: Tensor, chunk: number) => chunkedForward(params, x, chunk, finalState);
  const bb = await openBackend(backend, { timestamps: profile });
  if (profile && !bb.profiler) throw new UsageError("--profile needs the WebGPU backend on an adapter with 'timestamp-query'");
  progress(`long-context: ${bb.device}, preset ${presetName}`);
  const rows: LatencyRow[] = [];
  const machine = machineInfo();
  const result = (): LongContextResult => ({
    benchmark: "long-context", commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine, device: bb.device, backend, preset: presetName,
    options: { kinds, lengths, chunks, runs, warmup, capS, finalState }, rows, reference: ref, issueFigures: ISSUE_FIGURES, comparisons: compare(rows, ref),
  });
  try {
    for (const kind of kinds) {
      const params = initLM(random.key(0), modelConfig(presetName, kind));
      try {
        for (const L of lengths) {
          for (const chunk of chunks) {
            progress(`long-context: ${kind} L=${showLength(L)} chunk ${chunk} …`);
            const row: LatencyRow = { kind, L, chunk, runs: 0, seconds: null, samplesS: [], tokensPerSec: null, peakLiveMiB: null, peakPoolMiB: null };
            const x = randomTokens(1, L, 3);
            try {
              bb.resetPeak();
              const settle = settleOn(bb);
              const s = await timeAsync(() => fwd(params, x, chunk), runs, warmup, performance.now() + capS * 1000, settle);
              row.runs = s.length;
              row.warmups = settle.warmups;
              row.samplesS = s.map((v) => Math.round(v) / 1000);
              row.seconds = median(s) / 1000;
              row.tokensPerSec = L / row.seconds;
              row.peakLiveMiB = mib(bb.peakLiveBytes());
              row.peakPoolMiB = mib(bb.peakPoolBytes());
              bb.resetCount();
              const tc = performance.now();
              const { encodeMs } = await fwd(params, x, chunk);
              row.counts = { ...bb.count(), wallMs: Math.round((performance.now() - tc) * 10) / 10, encodeMs: Math.round(encodeMs * 10) / 10 };
              progress(`  ${fmt(row.seconds)} s; one more forward: ${row.counts.wallMs} ms (encoded in ${row.counts.encodeMs}), ${row.counts.launches} launches, ` +
                `${row.counts.bindGroupsCreated} new bind groups, ${row.counts.buffersCreated} new buffers, ${row.counts.submits} submits`);
              if (profile && bb.profiler) row.profile = await profileRun(bb.profiler, `${kind} L=${showLength(L)} chunk ${chunk}`, () => fwd(params, x, chunk));
            } catch (e) {
              row.note = `${isOutOfMemory(e) ? "does not fit: " : "error: "}${e instanceof Error ? e.message.split("\n")[0].slice(0, 300) : String(e)}`;
              progress(`  ${row.note}`);
            } finally {
              x.dispose();
            }
            rows.push(row);
            writeJson(out, result());
          }
        }
      } finally {
        disposeTree(params);
      }
    }
  } finally {
    bb.destroy();
  }
  const res = result();
  writeJson(out, res);
  if (f.json) {
    console.log(JSON.stringify(res, null, 2));
    return res;
  }
  console.log(`${bb.device}; ${res.runtime.name} ${res.runtime.version}; preset ${presetName}, batch 1`);
  console.log(formatTable(["kind", "L", "chunk", "s", "tokens/s", "peak live MiB", "peak pool MiB", "note"],
    rows.map((r) => [r.kind, showLength(r.L), r.chunk, r.seconds, r.tokensPerSec, r.peakLiveMiB, r.peakPoolMiB, r.note ?? ""])));
  console.log("\nours (best chunk) / PyTorch (below 1: ours is faster); issue figures: Mamba 0.87 s / 4.2 s, flash Transformer 0.52 s / 9.2 s");
  console.log(formatTable(["kind", "L", "ours s", "chunk", "/ issue Mamba", "/ issue flash Transformer", "/ reference port (same run)"],
    res.comparisons.map((c) => [c.kind, showLength(c.L), c.seconds, c.chunk, c.overIssueMamba, c.overIssueFlashTransformer, c.overReferenceSameKind])));
  console.log(`\nwrote ${out}`);
  return res;
}

if (import.meta.main ?? true) runMain("long-context", main);
