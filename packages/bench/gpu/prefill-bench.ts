/**
 * Prefill speed of the evaluation path (passkey / eval): tokens per second of feeding a long prompt
 * through the recurrent state, three ways, on the current backend:
 *
 *   chunked-sync   lm.applyChunked chunk by chunk, reading the last logits back after every chunk
 *                  (what inference.ts greedyDecode does)
 *   chunked-async  the same chunks, reading back only after the last one (the GPU queue stays full)
 *   step           lm.step one token at a time (one dispatch chain per token), on fewer tokens
 *
 *   bun packages/bench/gpu/prefill-bench.ts [--backend cpu|webgpu] [--preset tiny] [--model memmamba]
 *       [--length 16384] [--chunk 512,2048] [--step-tokens 256] [--json]
 */
import process from "node:process";
import { disposeTree, fromArray, initBackend, random, sliceAxis, tidy } from "@memmamba/tensor";
import { lm, preset, type LMParams, type LMState, type PresetName } from "@memmamba/memmamba";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
};
const backend = opt("--backend", "cpu") as "cpu" | "webgpu";
const presetName = opt("--preset", "tiny") as PresetName;
const kind = opt("--model", "memmamba") as "memmamba" | "mamba";
const length = Number(opt("--length", "16384"));
const chunks = opt("--chunk", "512,2048").split(",").map(Number);
const stepTokens = Number(opt("--step-tokens", "256"));
await initBackend(backend, {});
const config = preset(presetName, { kind } as Parameters<typeof preset>[1]);
const params: LMParams = lm.init(random.key(1), config);
const tokens = new Int32Array(length);
for (let i = 0; i < length; i++) tokens[i] = 32 + ((i * 7919) % 90);

async function chunked(chunk: number, sync: boolean, n: number): Promise<number> {
  let state: LMState = lm.initState(config, 1);
  const t0 = performance.now();
  let lastLogits;
  for (let s = 0; s < n; s += chunk) {
    const e = Math.min(n, s + chunk);
    const r = tidy(() => {
      const out = lm.applyChunked(params, fromArray(tokens.subarray(s, e), [1, e - s], "i32"), { chunk }, state);
      return { last: sliceAxis(out.logits, 1, e - s - 1, e - s), state: out.state };
    });
    disposeTree(state);
    state = r.state;
    if (sync || e === n) await r.last.data();
    lastLogits?.dispose();
    lastLogits = r.last;
  }
  lastLogits?.dispose();
  disposeTree(state);
  return n / ((performance.now() - t0) / 1000);
}

async function stepwise(n: number): Promise<number> {
  let state: LMState = lm.initState(config, 1);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const r = tidy(() => lm.step(params, fromArray(Int32Array.of(tokens[i]), [1], "i32"), state));
    disposeTree(state);
    state = r.state;
    if (i === n - 1) await r.logits.data();
    r.logits.dispose();
  }
  disposeTree(state);
  return n / ((performance.now() - t0) / 1000);
}

const rows: { mode: string; chunk: number | null; tokens: number; tokPerSec: number }[] = [];
await chunked(chunks[0], true, Math.min(length, 2 * chunks[0])); // warm-up (pipeline compilation)
for (const c of chunks) {
  rows.push({ mode: "chunked-sync", chunk: c, tokens: length, tokPerSec: await chunked(c, true, length) });
  rows.push({ mode: "chunked-async", chunk: c, tokens: length, tokPerSec: await chunked(c, false, length) });
}
await stepwise(8);
rows.push({ mode: "step", chunk: null, tokens: stepTokens, tokPerSec: await stepwise(stepTokens) });
if (argv.includes("--json")) process.stdout.write(JSON.stringify({ backend, preset: presetName, model: kind, rows }, null, 2) + "\n");
else {
  process.stdout.write(`prefill, ${kind} ${presetName} on ${backend}\n`);
  for (const r of rows) process.stdout.write(`${r.mode.padEnd(14)} chunk ${String(r.chunk ?? "-").padStart(5)}  ${r.tokens} tokens  ${r.tokPerSec.toFixed(0)} tok/s\n`);
}
disposeTree(params);
process.exit(0);
