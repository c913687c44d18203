import { disposeTree, liveBuffers, noGrad, random, sliceAxis, sum, tidy, valueAndGrad, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import {
  dims, initCrossLayer, initCrossToken, initFusion, initFusionState, initLayer, initLayerState, initLinear, initMamba, initMambaState, initNote, initPoolState,
  initRMSNorm, initTransformerLayer, mambaBlock, poolAttention, poolSummary, preset, type ModelConfig,
} from "../src/index.ts";
import { maxAbsDiff, tensorOf } from "./support.ts";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) => expect(maxAbsDiff(a, b)).toBeLessThan(tol);

describe("Pool_r (Eq. 9)", () => {
  const u = () => tensorOf([1, 4, 2, 3, -1, -2, -3, -5], [1, 8]);

  test("max, mean, T-Max-Avg over groups of r features", async () => {
    const x = u();
    const got = tidy(() => ["max", "mean", "tmaxavg"].map((k) => poolSummary(x, 4, k as "max", { threshold: 0 })));
    close(await got[0].data(), [4, -1]);
    close(await got[1].data(), [2.5, -2.75]);
    close(await got[2].data(), [4, -2.75]); // group 2's max (−1) is below T = 0: its mean
    disposeTree([x, got]);
  });

  test("S3Pool: one random member per group while training, the mean at evaluation", async () => {
    const x = u();
    const evalOut = poolSummary(x, 4, "s3pool");
    close(await evalOut.data(), [2.5, -2.75]);
    for (let seed = 0; seed < 4; seed++) {
      const { value, grads } = valueAndGrad((v: Tensor) => sum(poolSummary(v, 4, "s3pool", { key: random.key(seed) })))(x);
      const g = await grads.data();
      // the gradient marks exactly one member per group, and the value is their sum
      expect(Array.from(g.subarray(0, 4)).filter((v) => v === 1).length).toBe(1);
      expect(Array.from(g.subarray(4)).filter((v) => v === 1).length).toBe(1);
      const d = await x.data();
      close([await value.item()], [Array.from(d).reduce((a, v, i) => a + v * g[i], 0)]);
      disposeTree([value, grads]);
    }
    disposeTree([x, evalOut]);
  });

  test("a width that is not a multiple of r is an error", () => {
    const x = u();
    expect(() => poolSummary(x, 3, "max")).toThrow(/multiple of the window r = 3/);
    x.dispose();
  });
});

describe("pool attention (Eq. 6/7)", () => {
  test("masked softmax over the valid slots; no valid slot reads 0, never NaN", async () => {
    const q = tensorOf([1, 0, 0, 1], [1, 2, 2]); // two positions, S = 2
    const keys = tensorOf([1, 0, 0, 1, 5, 5, /* t1 */ 0, 1, 1, 0, 9, 9], [1, 2, 3, 2]);
    const values = tensorOf([1, 2, 3, 4, 100, 100, /* t1 */ 5, 6, 7, 8, 100, 100], [1, 2, 3, 2]);
    const valid = tensorOf([1, 1, 0, 0, 0, 0], [1, 2, 3]);
    const c = poolAttention(q, keys, values, valid);
    const d = await c.data();
    const s = 1 / Math.sqrt(2);
    const w0 = Math.exp(s) / (Math.exp(s) + 1), w1 = 1 - w0;
    close(d.subarray(0, 2), [w0 * 1 + w1 * 3, w0 * 2 + w1 * 4]);
    expect(Array.from(d.subarray(2))).toEqual([0, 0]);
    disposeTree([q, keys, values, valid, c]);
  });
});

describe("Mamba block (Eq. 1)", () => {
  const cfg = preset("tiny");
  const { dInner, N, dtRank } = dims(cfg);

  test("initialisation follows mamba_simple", async () => {
    const p = initMamba(random.key(3), cfg);
    expect(p.inProj.w.shape).toEqual([32, 2 * dInner]);
    expect(p.xProj.w.shape).toEqual([dInner, dtRank + 2 * N]);
    expect(p.dtProj.w.shape).toEqual([dtRank, dInner]);
    expect(p.conv.w.shape).toEqual([dInner, 4]);
    const aLog = await p.A_log.data();
    close(aLog.subarray(0, N), Array.from({ length: N }, (_, i) => Math.log(i + 1)), 1e-6);
    close(aLog.subarray(N, 2 * N), Array.from({ length: N }, (_, i) => Math.log(i + 1)), 1e-6);
    expect(Array.from(await p.D.data()).every((v) => v === 1)).toBe(true);
    // softplus(dt_bias) = Δ in [dtMin, dtMax]
    const dt = Array.from(await p.dtProj.b!.data()).map((b) => Math.log1p(Math.exp(b)));
    expect(Math.min(...dt)).toBeGreaterThanOrEqual(1e-3 * 0.999);
    expect(Math.max(...dt)).toBeLessThanOrEqual(0.1 * 1.001);
    const bound = 1 / Math.sqrt(dtRank);
    expect(Math.max(...Array.from(await p.dtProj.w.data()).map(Math.abs))).toBeLessThanOrEqual(bound);
    // out_proj: nn.Linear's U(±1/√d_inner) scaled by 1/√n_layers
    expect(Math.max(...Array.from(await p.outProj.w.data()).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(dInner) / Math.sqrt(2));
    disposeTree(p);
  });

  test("carrying the state across chunks equals one pass; the state has a fixed size", async () => {
    const base = liveBuffers();
    const p = initMamba(random.key(4), cfg);
    const x = random.normal(random.key(5), [2, 13, 32]);
    const whole = noGrad(() => tidy(() => mambaBlock(p, x, cfg).out));
    const parts = noGrad(() =>
      tidy(() => {
        let state = initMambaState(cfg, 2);
        const outs: Tensor[] = [];
        for (const [s, e] of [[0, 1], [1, 6], [6, 7], [7, 13]]) {
          const r = mambaBlock(p, sliceAxis(x, 1, s, e), cfg, state);
          expect(r.state!.conv.shape).toEqual([2, 3, dInner]);
          expect(r.state!.ssm.shape).toEqual([2, dInner, N]);
          outs.push(r.out);
          state = r.state!;
        }
        return outs;
      })
    );
    const w = await whole.data();
    const got: number[] = [];
    const pieces = await Promise.all(parts.map((t) => t.data()));
    for (let b = 0; b < 2; b++) for (const d of pieces) { const n = d.length / 2; got.push(...d.subarray(b * n, (b + 1) * n)); }
    close(w, got, 1e-5);
    disposeTree([p, x, whole, parts]);
    expect(liveBuffers()).toBe(base);
  });
});

describe("initialisers validate what they are given", () => {
  const tiny = preset("tiny");
  const bad = (over: Record<string, unknown>) => ({ ...tiny, ...over }) as ModelConfig;

  test("a bad config is named by the initialiser and the field, before any tensor is made", () => {
    const base = liveBuffers();
    const k = random.key(0);
    expect(() => initMamba(k, bad({ dModel: -3 }))).toThrow(/^initMamba: invalid model config:\n {2}config\.dModel: expected a positive integer \(got -3\)$/);
    expect(() => initMamba(k, bad({ dModel: 2.5 }))).toThrow(/initMamba: invalid model config:\n {2}config\.dModel: expected a positive integer \(got 2\.5\)/);
    expect(() => initMamba(k, bad({ dState: 0 }))).toThrow(/initMamba: [\s\S]*config\.dState: expected a positive integer \(got 0\)/);
    expect(() => initMambaState(bad({ dConv: NaN }), 1)).toThrow(/initMambaState: [\s\S]*config\.dConv: .*must be finite \(got NaN\)/);
    expect(() => initNote(k, bad({ memory: { ...tiny.memory, summaryDim: 0 } }))).toThrow(/initNote: [\s\S]*config\.memory\.summaryDim/);
    expect(() => initCrossToken(k, bad({ dModel: 0 }))).toThrow(/initCrossToken: [\s\S]*config\.dModel/);
    expect(() => initCrossLayer(k, bad({ dModel: 0 }))).toThrow(/initCrossLayer: [\s\S]*config\.dModel/);
    expect(() => initFusion(k, bad({ dModel: 0 }))).toThrow(/initFusion: [\s\S]*config\.dModel/);
    expect(() => initFusionState(bad({ dModel: 0 }), 1)).toThrow(/initFusionState: [\s\S]*config\.dModel/);
    expect(() => initTransformerLayer(k, bad({ kind: "transformer", dModel: 30 }))).toThrow(/initTransformerLayer: [\s\S]*config\.transformer\.nHeads/);
    expect(() => initLayer(k, bad({ dState: 0 }), 0)).toThrow(/initLayer: [\s\S]*config\.dState/);
    expect(() => initLayer(k, tiny, 2)).toThrow(/initLayer: l must be a layer index in \[0, 2\) \(config\.nLayers 2\), got 2/);
    expect(() => initLayerState(bad({ nlayers: 3 }), 0, 1)).toThrow(/initLayerState: [\s\S]*unknown key "nlayers" \(did you mean "nLayers"\?\)/);
    expect(() => initPoolState({ ...tiny.memory, poolSize: -1 }, 1)).toThrow(/initPoolState: [\s\S]*config\.memory\.poolSize: expected a positive integer \(got -1\)/);
    expect(() => initRMSNorm(NaN)).toThrow(/^initRMSNorm: d must be a positive integer, got NaN$/);
    expect(() => initRMSNorm(0)).toThrow(/^initRMSNorm: d must be a positive integer, got 0$/);
    expect(() => initLinear(k, 4, 2.5)).toThrow(/^initLinear: outDim must be a positive integer, got 2\.5$/);
    expect(liveBuffers()).toBe(base);
  });

  test("mambaBlock names an input or state of the wrong shape", () => {
    const p = initMamba(random.key(6), tiny);
    const x2 = random.normal(random.key(7), [4, 32]);
    const x3 = random.normal(random.key(8), [1, 3, 32]);
    const other = initMambaState(preset("tiny", { dState: 4 }), 1);
    try {
      expect(() => mambaBlock(p, x2, tiny)).toThrow(/^mambaBlock: x must be \[B, L, D\] with D = config\.dModel = 32, got \[4, 32\]$/);
      expect(() => mambaBlock(p, x3, preset("tiny", { dModel: 64 }))).toThrow(/mambaBlock: x must be \[B, L, D\] with D = config\.dModel = 64, got \[1, 3, 32\]/);
      expect(() => mambaBlock(p, x3, preset("tiny", { expand: 3 }))).toThrow(/mambaBlock: the block was built for another config: inProj\.w is \[32, 128\]/);
      expect(() => mambaBlock(p, x3, tiny, other)).toThrow(/mambaBlock: state\.ssm is \[1, 64, 4\], .* need \[1, 64, 8\]/);
    } finally {
      disposeTree([p, x2, x3, other]);
    }
  });
});
