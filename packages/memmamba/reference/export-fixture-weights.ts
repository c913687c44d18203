/**
 * Step 1 of the parity fixtures (regen-fixtures.sh runs both steps): for a few tiny configs, writes
 * what the PyTorch reference needs to compute the expected outputs, under
 * packages/memmamba/test/fixtures/reference/<name>/:
 *
 *   config.json           the parsed config (every field, camelCase), as parseConfig returns it
 *   weights.safetensors   F32 weights, one tensor per parameter, named by its TS tree path
 *                         ("layers.0.mamba.inProj.w"), TS layout (dense weights [in, out])
 *   inputs.safetensors    tokens and targets, I32 [B, L]
 *
 * and fixtures/reference/ts-config.json: the TS defaults and presets, which the Python side checks
 * its own against (so the two config readers cannot drift apart silently).
 *
 * The weights are initLM's, perturbed so that no parameter sits at a special value (every RMSNorm
 * weight 1, D = 1, biases 0, fusion scales all 0.1 would hide a swapped or transposed tensor):
 *   w ← w·(1 + 0.1·ε) + 0.02·ε′   (ε, ε′ ~ N(0, 1), fresh per tensor)
 * with two exceptions that make the memory matter to the logits: the embedding (also the tied head)
 * is N(0, 0.3²), so logits are O(1) rather than O(0.02), and weighted-fusion scales are 0.5 + 0.1·ε.
 *
 * Run from the repository root:  tools/node_modules/.bin/bun packages/memmamba/reference/export-fixture-weights.ts
 * Deterministic: the same TS code writes the same bytes.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { add, disposeTree, flattenTree, mapTree, mul, random, sliceAxis, tidy, type Tensor } from "@memmamba/tensor";
import { encodeSafetensors, type StTensor } from "../../tensor/src/io/safetensors.ts";
import { initLM, parseConfig, preset, presetNames, type ModelConfigInput } from "../src/index.ts";

/** One parity fixture: a config, a seed for its weights and tokens, and the input size. */
export interface FixtureSpec {
  name: string;
  seed: number;
  batch: number;
  length: number;
  config: ModelConfigInput;
}

const small = { vocab: 64, dModel: 16, dState: 8 } as const;

/** Tiny on purpose (L ≤ 24, d ≤ 32, vocab 64): all of them together stay far under 1 MB. */
export const FIXTURES: FixtureSpec[] = [
  {
    // FIFO pool of 4 (evicts: about half of 24 tokens write), weighted fusion, cross-layer on layer 1 over layer 0
    name: "memmamba-fifo-weighted",
    seed: 101, batch: 2, length: 24,
    config: { kind: "memmamba", ...small, nLayers: 2, memory: { summaryDim: 8, summaryWindow: 2, poolSize: 4, replacement: "fifo", fusion: "weighted", crossLayer: { every: 2, group: 1 } } },
  },
  {
    // priority pool, gated fusion, cross-layer on layer 2 over the pools of layers 0 and 1 (one softmax over 2·P slots)
    name: "memmamba-priority-gated-xlayer",
    seed: 102, batch: 2, length: 24,
    config: { kind: "memmamba", ...small, nLayers: 3, memory: { summaryDim: 8, summaryWindow: 2, poolSize: 4, replacement: "priority", fusion: "gated", crossLayer: { every: 3, group: 2 } } },
  },
  {
    // conv1d fusion, T-Max-Avg pooling, I_state scored on the scan readout, priority pool
    name: "memmamba-conv1d-tmaxavg-scan",
    seed: 103, batch: 2, length: 20,
    config: { kind: "memmamba", vocab: 64, dModel: 8, dState: 4, nLayers: 2, memory: { summaryDim: 4, summaryWindow: 3, poolSize: 3, pooling: "tmaxavg", tmaxavgThreshold: 0.1, stateScore: "scan", replacement: "priority", fusion: "conv1d", crossLayer: { every: 2, group: 2 } } },
  },
  {
    // product fusion, mean pooling, no cross-layer attention, FIFO
    name: "memmamba-product-mean",
    seed: 104, batch: 2, length: 20,
    config: { kind: "memmamba", vocab: 64, dModel: 8, dState: 4, nLayers: 2, memory: { summaryDim: 4, summaryWindow: 2, poolSize: 3, pooling: "mean", replacement: "fifo", fusion: "product", crossLayer: { enabled: false } } },
  },
  {
    // residual fusion, S3Pool (evaluation: the mean), no cross-token attention: layer 1 reads layer 0's pool only across layers
    name: "memmamba-residual-s3pool-xlayer-only",
    seed: 105, batch: 2, length: 20,
    config: { kind: "memmamba", vocab: 64, dModel: 8, dState: 4, nLayers: 2, memory: { summaryDim: 4, summaryWindow: 2, poolSize: 3, pooling: "s3pool", replacement: "priority", fusion: "residual", crossToken: false, crossLayer: { every: 2, group: 1 } } },
  },
  {
    // the same backbone without memory; conv kernel 3 and an explicit Δ rank
    name: "mamba",
    seed: 106, batch: 2, length: 24,
    config: { kind: "mamba", ...small, nLayers: 2, dConv: 3, dtRank: 3 },
  },
  {
    name: "transformer",
    seed: 107, batch: 2, length: 24,
    config: { kind: "transformer", ...small, nLayers: 2, transformer: { nHeads: 2, rotary: true, mlpRatio: 2 } },
  },
];

const OUT = new URL("../test/fixtures/reference/", import.meta.url).pathname;

async function st(t: Tensor): Promise<StTensor> {
  const data = await t.data();
  return data instanceof Int32Array
    ? { dtype: "I32", shape: [...t.shape], data: Int32Array.from(data) }
    : { dtype: "F32", shape: [...t.shape], data: Float32Array.from(data) };
}

/** initLM's weights, perturbed as the module comment says. */
export function fixtureParams(spec: FixtureSpec) {
  const cfg = parseConfig(spec.config);
  const key = random.key(spec.seed);
  const base = initLM(random.foldIn(key, 0), cfg);
  let i = 0;
  const params = mapTree(base, (t, path) =>
    tidy(() => {
      const k = random.split(random.foldIn(random.foldIn(key, 1), i++), 2);
      if (path === "embed") return random.normal(k[0], [...t.shape], { std: 0.3 });
      if (path.endsWith(".scale")) return add(0.5, mul(random.normal(k[0], [...t.shape]), 0.1));
      return add(mul(t, add(1, mul(random.normal(k[0], [...t.shape]), 0.1))), mul(random.normal(k[1], [...t.shape]), 0.02));
    })
  );
  disposeTree(base);
  return params;
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  for (const spec of FIXTURES) {
    const dir = `${OUT}${spec.name}/`;
    mkdirSync(dir, { recursive: true });
    const params = fixtureParams(spec);
    const weights: Record<string, StTensor> = {};
    for (const [path, t] of flattenTree(params)) weights[path] = await st(t);
    const all = random.randint(random.foldIn(random.key(spec.seed), 2), [spec.batch, spec.length + 1], 0, params.config.vocab);
    const tokens = tidy(() => sliceAxis(all, 1, 0, spec.length));
    const targets = tidy(() => sliceAxis(all, 1, 1, spec.length + 1));
    const meta = { format: "memmamba-reference-fixture", fixture: spec.name, seed: String(spec.seed) };
    writeFileSync(`${dir}config.json`, JSON.stringify(params.config, null, 2) + "\n");
    writeFileSync(`${dir}weights.safetensors`, encodeSafetensors(weights, meta));
    writeFileSync(`${dir}inputs.safetensors`, encodeSafetensors({ tokens: await st(tokens), targets: await st(targets) }, meta));
    console.log(`${spec.name}: ${Object.keys(weights).length} tensors, ${Object.values(weights).reduce((n, t) => n + t.data.length, 0)} weights`);
    disposeTree([params, all, tokens, targets]);
  }
  const presets = Object.fromEntries(presetNames.map((n) => [n, preset(n)]));
  writeFileSync(`${OUT}ts-config.json`, JSON.stringify({ defaults: parseConfig({}), presets }, null, 2) + "\n");
}

if (import.meta.main) await main();
