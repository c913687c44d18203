/**
 * The three modes of the same parameters — parallel, chunked, recurrent — give the same logits,
 * and the recurrent state does not grow.
 */
import { disposeTree, forEachTensor, fromArray, liveBuffers, noGrad, reshape, sliceAxis, tidy, type Tensor } from "@memmamba/tensor";
import { random } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { lm, preset, type ConfigOverrides, type LMParams } from "../src/index.ts";
import { maxAbsDiff, randomTokens } from "./support.ts";

const B = 2, L = 24, V = 256, TOL = 1e-4;

async function parallelLogits(params: LMParams, tokens: Tensor): Promise<{ logits: Float32Array; written: number[]; reads: number[] }> {
  const out = noGrad(() => lm.apply(params, tokens));
  const r = {
    logits: (await out.logits.data()) as Float32Array,
    written: Array.from(out.aux.notesWritten ? await out.aux.notesWritten.data() : []),
    reads: Array.from(out.aux.poolReads ? await out.aux.poolReads.data() : []),
  };
  disposeTree(out);
  return r;
}

async function recurrentLogits(params: LMParams, tokens: Tensor): Promise<Float32Array> {
  const out = new Float32Array(B * L * V);
  let state = lm.initState(params.config, B);
  for (let t = 0; t < L; t++) {
    const tok = tidy(() => reshape(sliceAxis(tokens, 1, t, t + 1), [B]));
    const r = noGrad(() => lm.step(params, tok, state));
    const d = await r.logits.data();
    for (let b = 0; b < B; b++) out.set(d.subarray(b * V, (b + 1) * V), (b * L + t) * V);
    disposeTree([state, tok, r.logits]);
    state = r.state;
  }
  disposeTree(state);
  return out;
}

const cases: [string, ConfigOverrides][] = [
  ["fifo, weighted fusion, max pooling", { memory: { replacement: "fifo" } }],
  ["priority, weighted fusion, max pooling", { memory: { replacement: "priority" } }],
  ["priority, conv1d fusion, I_state on the scan", { memory: { fusion: "conv1d", stateScore: "scan" } }],
  ["fifo, gated fusion, T-Max-Avg", { memory: { replacement: "fifo", fusion: "gated", pooling: "tmaxavg" } }],
  ["priority, product fusion, S3Pool (eval)", { memory: { fusion: "product", pooling: "s3pool", crossLayer: { group: 1 } } }],
  ["residual fusion, no cross-token read (cross-layer only)", { memory: { fusion: "residual", crossToken: false } }],
  ["plain Mamba", { kind: "mamba" }],
];

describe("parallel = chunked = recurrent", () => {
  for (const [name, overrides] of cases) {
    test(name, async () => {
      const base = liveBuffers();
      // a pool of 4 overflows within 24 tokens, so eviction matters
      const cfg = preset("tiny", { ...overrides, memory: { poolSize: 4, ...overrides.memory } });
      const params = lm.init(random.key(11), cfg);
      const tokens = randomTokens(12, B, L);
      const par = await parallelLogits(params, tokens);
      if (cfg.kind === "memmamba") {
        for (const w of par.written) expect(w).toBeGreaterThan(cfg.memory.poolSize); // written, and overflowing
        for (const w of par.written) expect(w).toBeLessThan(B * L); // but not every token
        if (cfg.memory.crossToken) for (const r of par.reads) expect(r).toBeGreaterThan(0);
      }
      for (const chunk of [5, 23, 24]) { // 23: a last chunk of one token
        const ch = noGrad(() => lm.applyChunked(params, tokens, { chunk }));
        const chLogits = await ch.logits.data();
        expect(maxAbsDiff(par.logits, chLogits)).toBeLessThan(TOL);
        // without the final state: the same logits to the bit, no state, nothing left behind
        const bare = noGrad(() => lm.applyChunked(params, tokens, { chunk, finalState: false }));
        expect(bare.state).toBeUndefined();
        expect(maxAbsDiff(chLogits, await bare.logits.data())).toBe(0);
        disposeTree([ch, bare]);
      }
      expect(maxAbsDiff(par.logits, await recurrentLogits(params, tokens))).toBeLessThan(TOL);
      disposeTree([params, tokens]);
      expect(liveBuffers()).toBe(base);
    });
  }

  test("the pool's contents matter: fifo and priority pools give different logits", async () => {
    const fifo = lm.init(random.key(11), preset("tiny", { memory: { poolSize: 4, replacement: "fifo" } }));
    const prio = { ...fifo, config: preset("tiny", { memory: { poolSize: 4, replacement: "priority" } }) };
    const tokens = randomTokens(12, B, L);
    const a = await parallelLogits(fifo, tokens);
    const b = await parallelLogits(prio, tokens);
    expect(maxAbsDiff(a.logits, b.logits)).toBeGreaterThan(100 * TOL);
    disposeTree([fifo, tokens]);
  });
});

describe("streaming", () => {
  test("the recurrent state has the same size after 10 and after 1000 tokens", async () => {
    const cfg = preset("tiny");
    const params = lm.init(random.key(13), cfg);
    const stream = randomTokens(14, 1, 1000);
    let state = lm.initState(cfg, 1);
    const sizes: number[] = [];
    for (const [s, e] of [[0, 10], [10, 1000]]) {
      const chunk = tidy(() => sliceAxis(stream, 1, s, e));
      const r = noGrad(() => lm.feed(params, chunk, state));
      disposeTree([state, r.logits, chunk]);
      state = r.state;
      sizes.push(lm.stateElementCount(state));
    }
    expect(sizes[1]).toBe(sizes[0]);
    // conv + SSM state + pool {notes, scores, valid} per layer, for batch 1
    const { dModel: d, dState: N, dConv: K, expand, memory: m } = cfg;
    const perLayer = (K - 1) * expand * d + expand * d * N + m.poolSize * (m.summaryDim + 2);
    expect(sizes[0]).toBe(cfg.nLayers * perLayer);
    // the pools are full after 1000 tokens
    const valid = await state.layers[0].pool!.valid.data();
    expect(Array.from(valid).every((v) => v === 1)).toBe(true);
    disposeTree([state, params, stream]);
  });

  test("streaming 100 tokens frees everything but the state", () => {
    const cfg = preset("tiny");
    const params = lm.init(random.key(15), cfg);
    const tokens = randomTokens(16, 2, 100);
    const base = liveBuffers();
    const state0 = lm.initState(cfg, 2);
    // a fresh state's zeros share one buffer a shape (initState); a stepped state holds its own
    const shapes = new Set<string>();
    let leaves = 0;
    forEachTensor(state0, (t: Tensor) => {
      shapes.add(t.shape.join(","));
      leaves++;
    });
    expect(liveBuffers() - base).toBe(shapes.size);
    expect(leaves).toBeGreaterThan(shapes.size);
    const r = noGrad(() => lm.feed(params, tokens, state0));
    disposeTree(state0);
    r.logits.dispose();
    expect(liveBuffers() - base).toBe(leaves);
    disposeTree(r.state);
    expect(liveBuffers()).toBe(base);
    disposeTree([params, tokens]);
  });

  test("bad inputs are named", () => {
    const cfg = preset("tiny");
    const params = lm.init(random.key(17), cfg);
    const state = lm.initState(cfg, 2);
    const tok = fromArray(Int32Array.of(1, 2, 3), [3], "i32");
    expect(() => lm.step(params, tok, state)).toThrow(/token must be i32 \[2\]/);
    expect(() => lm.applyChunked(params, reshape(tok, [1, 3]), { chunk: 0 })).toThrow(/chunk must be a positive integer/);
    expect(() => lm.initState(preset("tiny", { kind: "transformer" }), 1)).toThrow(/no fixed-size recurrent state/);
    disposeTree([params, state, tok]);
  });

  test("a state built for another config is named at the top of lm.step and lm.applyChunked", () => {
    const params = lm.init(random.key(18), preset("tiny"));
    const tok = fromArray(Int32Array.of(1), [1], "i32");
    const states = [
      lm.initState(preset("tiny", { dModel: 64 }), 1),
      lm.initState(preset("tiny", { nLayers: 3 }), 1),
      lm.initState(preset("tiny", { memory: { poolSize: 4 } }), 1),
      lm.initState(preset("tiny", { kind: "mamba" }), 1),
    ];
    try {
      expect(() => lm.step(params, tok, states[0])).toThrow(
        /^lm\.step: the state was built for another config: layers\[0\]\.mamba\.conv is \[1, 3, 128\], the params' config \(kind memmamba, dModel 32, .*\) needs \[1, 3, 64\]$/,
      );
      expect(() => lm.step(params, tok, states[1])).toThrow(/lm\.step: the state was built for another config: it has 3 layers, the params' config has nLayers 2/);
      expect(() => lm.step(params, tok, states[2])).toThrow(/lm\.step: .*layers\[0\]\.pool\.notes is \[1, 4, 16\], .*memory\.poolSize 8.* needs \[1, 8, 16\]/);
      expect(() => lm.step(params, tok, states[3])).toThrow(/lm\.step: .*layers\[0\]\.pool\.notes is absent, .* needs \[1, 8, 16\]/);
      expect(() => lm.applyChunked(params, reshape(tok, [1, 1]), { chunk: 4 }, states[0])).toThrow(/^lm\.applyChunked: the state was built for another config: layers\[0\]/);
    } finally {
      disposeTree([params, tok, states]);
    }
  });
});
