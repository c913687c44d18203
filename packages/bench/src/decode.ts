/**
 * Decoding speed: the recurrent step (lm.step, one token per row, the state carried) as a
 * token-by-token generator runs it — each step's logits read back before the next token goes in
 * (what greedy decoding must wait for). MemMamba and Mamba (the Transformer has no recurrent
 * step). The state first takes a --prompt of random bytes through the chunked forward, so the
 * note pools are full and every MemMamba step writes into a full pool (eviction included).
 *
 *   bun packages/bench/src/decode.ts --backend wasm
 *   node .gpu/decode.mjs --backend webgpu
 *
 * Reports per kind and batch: the median ms a step (readback included), tokens/s (batch / step),
 * and launches a step (the engine's counter: one primitive may dispatch several kernels). Steps
 * share a StepCache (the parameters' folded weights computed once, as the CLI's decoding does);
 * --step-cache on,off measures both.
 * Writes JSON; asserts nothing about time.
 */
import {
  choice, detectRuntime, flagList, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, nonNegativeInt, oneOf, parseFlags, POSITIVE_INT,
  positiveInt, runMain, writeJson, type FlagType,
} from "./runtime.ts";
import { disposeTree, fromArray, random, readCounters, tidy } from "@memmamba/tensor";
import { initLM, lm, presetNames, StepCache, type LMParams, type LMState } from "@memmamba/memmamba";
import { BACKENDS, type ModelBenchHead, modelConfig, openBackend, progress, randomTokens } from "./model-common.ts";

const HELP = `decode: tokens/s of the recurrent step (lm.step), each step's logits read back

  --backend B     cpu, wasm or webgpu (default wasm)
  --preset P      ${presetNames.join(", ")} (default small)
  --kinds K,...   memmamba, mamba (default both)
  --batch N,...   rows stepped together (default 1)
  --prompt N      tokens fed through the chunked forward first (default 512; 0: an empty state)
  --steps N       timed steps; the median is reported (default 64)
  --warmup N      untimed steps first (default 8)
  --step-cache M,...  on: the steps share a StepCache (the parameters' folded weights and A
                  computed once), off: every step recomputes them; each value in turn (default on)
  --json          print the JSON result on stdout instead of the table
  --out FILE      JSON output (default packages/bench/results/decode-<backend>.json)
  --help          this text`;

type DecodeKind = "memmamba" | "mamba";
const DECODE_KINDS: readonly DecodeKind[] = ["memmamba", "mamba"];
const DECODE_KIND: FlagType<DecodeKind> = {
  ...choice(DECODE_KINDS), message: (flag, v) => `${flag}: "${v}" has no recurrent step (known: ${DECODE_KINDS.join(", ")})`,
};
const STEP_CACHE: FlagType<"on" | "off"> = { ...choice(["on", "off"]), message: (flag, v) => `${flag} takes on and/or off, got "${v}"` };

/** One kind at one batch size. */
export interface DecodeRow {
  kind: DecodeKind;
  batch: number;
  /** Median ms a step (the step's launches, then its logits read back). */
  msPerStep: number;
  /** batch / the median step, in tokens a second. */
  tokensPerSec: number;
  /** Primitive launches a step. */
  launchesPerStep: number;
  /** Whether the steps shared a StepCache. */
  stepCache: boolean;
  samplesMs: number[];
}

/** What decode writes. */
export interface DecodeResult extends ModelBenchHead<"decode", { prompt: number; steps: number; warmup: number; stepCache: boolean[] }> {
  rows: DecodeRow[];
}

/** Runs the benchmark with these arguments; resolves to the JSON it wrote (undefined for --help). */
export async function main(argv: readonly string[]): Promise<DecodeResult | undefined> {
  if (argv.includes("--help")) {
    console.log(HELP);
    return undefined;
  }
  const f = parseFlags(argv, { backend: "string", preset: "string", kinds: "string", batch: "string", prompt: "string", steps: "string", warmup: "string", "step-cache": "string", json: "boolean", out: "string", help: "boolean" });
  const backend = oneOf("backend", f.backend, BACKENDS) ?? "wasm";
  const presetName = oneOf("preset", f.preset, presetNames) ?? "small";
  const kinds = flagList("kinds", f.kinds, DECODE_KIND, DECODE_KINDS);
  const batches = flagList("batch", f.batch, POSITIVE_INT, [1]);
  const prompt = nonNegativeInt("prompt", f.prompt, 512);
  const steps = positiveInt("steps", f.steps, 64);
  const warmup = nonNegativeInt("warmup", f.warmup, 8);
  const cacheModes = flagList("step-cache", f["step-cache"], STEP_CACHE, ["on"]).map((s) => s === "on");
  const out = String(f.out ?? fromRoot("packages", "bench", "results", `decode-${backend}.json`));

  const bb = await openBackend(backend);
  progress(`decode: ${bb.device}, preset ${presetName}, prompt ${prompt}, ${steps} steps after ${warmup}`);
  const rows: DecodeRow[] = [];
  try {
    for (const kind of kinds) {
      const params = initLM(random.key(0), modelConfig(presetName, kind));
      try {
        for (const B of batches) {
          for (const cached of cacheModes) {
            rows.push(await measure(params, kind, B, prompt, steps, warmup, cached));
            const r = rows[rows.length - 1];
            progress(`  ${kind} batch ${B}${cacheModes.length > 1 ? `, step cache ${cached ? "on" : "off"}` : ""}: ${fmt(r.msPerStep)} ms a step, ${fmt(r.tokensPerSec)} tokens/s, ${r.launchesPerStep} launches`);
          }
        }
      } finally {
        disposeTree(params);
      }
    }
  } finally {
    bb.destroy();
  }
  const res: DecodeResult = {
    benchmark: "decode", commit: gitCommit(), date: new Date().toISOString(), runtime: detectRuntime(), machine: machineInfo(), device: bb.device, backend, preset: presetName,
    options: { prompt, steps, warmup, stepCache: cacheModes }, rows,
  };
  writeJson(out, res);
  if (f.json) console.log(JSON.stringify(res, null, 2));
  else {
    console.log(`${res.device}; ${res.runtime.name} ${res.runtime.version}; preset ${presetName}; prompt ${prompt}`);
    console.log(formatTable(
      ["kind", "batch", "step cache", "ms/step", "tokens/s", "launches/step"],
      rows.map((r) => [r.kind, String(r.batch), r.stepCache ? "on" : "off", r.msPerStep, r.tokensPerSec, String(r.launchesPerStep)]),
    ));
    console.log(`\nwrote ${out}`);
  }
  return res;
}

async function measure(params: LMParams, kind: DecodeKind, B: number, prompt: number, steps: number, warmup: number, cached: boolean): Promise<DecodeRow> {
  let state: LMState = lm.initState(params.config, B);
  if (prompt > 0) {
    const x = randomTokens(B, prompt, prompt);
    const r = lm.applyChunked(params, x, { chunk: Math.min(prompt, 2048) }, state);
    disposeTree([state, x, r.logits]);
    state = r.state;
  }
  const tokens = Array.from({ length: 256 }, (_, i) => fromArray(Int32Array.from({ length: B }, (_, b) => (i * 7 + b * 13) & 255), [B], "i32"));
  const samples: number[] = [];
  let launches = 0;
  const cache = cached ? new StepCache() : undefined;
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const t = performance.now();
      const l0 = readCounters().launches;
      const r = tidy(() => lm.step(params, tokens[i % tokens.length], state, { cache }));
      launches = readCounters().launches - l0;
      disposeTree(state);
      state = r.state;
      await r.logits.data();
      r.logits.dispose();
      if (i >= warmup) samples.push(performance.now() - t);
    }
  } finally {
    disposeTree([state, tokens]);
    cache?.dispose();
  }
  const ms = median(samples);
  return {
    kind, batch: B, msPerStep: ms, tokensPerSec: B / (ms / 1000), launchesPerStep: launches, stepCache: cached, samplesMs: samples.map((s) => Math.round(s * 1000) / 1000),
  };
}

if (import.meta.main ?? true) runMain("decode", main);
