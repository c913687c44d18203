import { adamw, disposeTree, flattenTree, fromArray, liveBuffers, noGrad, random, readCounters, resetCounters, sliceAxis, tidy, valueAndGrad } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { lm, preset, transformerTuning, type LMParams } from "../src/index.ts";
import { maxAbsDiff, randomTokens } from "./support.ts";

const kinds = ["memmamba", "mamba", "transformer"] as const;

describe("language model", () => {
  test("shapes, tied head, and aux counts", async () => {
    const params = lm.init(random.key(31), preset("tiny"));
    const tokens = randomTokens(32, 2, 20);
    const out = noGrad(() => lm.apply(params, tokens, { trace: true }));
    expect(out.logits.shape).toEqual([2, 20, 256]);
    expect(out.aux.notesWritten!.shape).toEqual([2]);
    const trace = out.aux.trace!;
    expect(trace.length).toBe(2);
    // notesWritten counts the tokens with I_token > τ1
    const written = await out.aux.notesWritten!.data();
    for (const [l, t] of trace.entries()) {
      const scores = await t.tokenScore.data();
      expect(written[l]).toBe(Array.from(scores).filter((s) => s > params.config.memory.tau1).length);
      expect(Array.from(await t.write.data()).reduce((a, v) => a + v, 0)).toBe(written[l]);
    }
    const reads = await out.aux.poolReads!.data();
    for (const r of reads) expect(r).toBeLessThanOrEqual(2 * 19); // position 0 never has a note to read
    disposeTree([params, tokens, out]);
  });

  test("transformer: attention by query blocks (inference, long L) gives the one-shot logits; training keeps one shot", async () => {
    const params = lm.init(random.key(34), preset("tiny", { kind: "transformer" }));
    const tokens = randomTokens(35, 2, 23);
    const was = transformerTuning.attnBlock;
    try {
      const once = noGrad(() => lm.apply(params, tokens));
      resetCounters();
      noGrad(() => lm.apply(params, tokens)).logits.dispose();
      const onceLaunches = readCounters().launches;
      transformerTuning.attnBlock = 5; // 23 positions: blocks of 5, the last of 3
      resetCounters();
      const blocked = noGrad(() => lm.apply(params, tokens));
      expect(readCounters().launches).toBeGreaterThan(onceLaunches); // the blocks ran
      expect(maxAbsDiff(await blocked.logits.data(), await once.logits.data())).toBeLessThan(1e-5);
      // under a gradient the one-shot form runs whatever the block size
      resetCounters();
      const { value, grads } = valueAndGrad((p: LMParams) => lm.loss(p, tokens, tokens))(params);
      const withGrad = readCounters().launches;
      transformerTuning.attnBlock = was;
      resetCounters();
      const again = valueAndGrad((p: LMParams) => lm.loss(p, tokens, tokens))(params);
      expect(readCounters().launches).toBe(withGrad);
      disposeTree([once, blocked, value, grads, again, tokens, params]);
    } finally {
      transformerTuning.attnBlock = was;
    }
  });

  test("apply with counts: false: the same logits, no counts, fewer launches", async () => {
    const params = lm.init(random.key(32), preset("tiny"));
    const tokens = randomTokens(33, 2, 24);
    resetCounters();
    const full = noGrad(() => lm.apply(params, tokens));
    const withCounts = readCounters().launches;
    resetCounters();
    const bare = noGrad(() => lm.apply(params, tokens, { counts: false }));
    const without = readCounters().launches;
    expect(bare.aux.notesWritten).toBeUndefined();
    expect(bare.aux.poolReads).toBeUndefined();
    expect(full.aux.notesWritten!.shape).toEqual([2]);
    expect(without).toBeLessThan(withCounts);
    expect(Array.from(await bare.logits.data())).toEqual(Array.from(await full.logits.data()));
    disposeTree([full, bare, tokens, params]);
  });

  for (const kind of kinds) {
    test(`${kind}: causal (a later token never changes an earlier logit)`, async () => {
      const params = lm.init(random.key(33), preset("tiny", { kind }));
      const a = await (async () => {
        const t = fromArray(Int32Array.from({ length: 16 }, (_, i) => (i * 31) % 256), [1, 16], "i32");
        const u = fromArray(Int32Array.from({ length: 16 }, (_, i) => (i < 9 ? (i * 31) % 256 : 255 - i)), [1, 16], "i32");
        const [la, lb] = noGrad(() => [lm.apply(params, t), lm.apply(params, u)]);
        const pa = await tidy(() => sliceAxis(la.logits, 1, 0, 9)).data();
        const pb = await tidy(() => sliceAxis(lb.logits, 1, 0, 9)).data();
        const after = maxAbsDiff(await la.logits.data(), await lb.logits.data());
        disposeTree([t, u, la, lb]);
        return { before: maxAbsDiff(pa, pb), after };
      })();
      expect(a.before).toBe(0);
      expect(a.after).toBeGreaterThan(0);
      disposeTree(params);
    });
  }

  test("S3Pool samples while training (a key), averages at evaluation", async () => {
    const params = lm.init(random.key(34), preset("tiny", { memory: { pooling: "s3pool" } }));
    const tokens = randomTokens(35, 1, 12);
    const run = async (key?: ReturnType<typeof random.key>) => {
      const l = noGrad(() => lm.loss(params, tokens, tokens, key ? { key } : {}));
      const v = await l.item();
      l.dispose();
      return v;
    };
    const [e, k1, k1again, k2] = [await run(), await run(random.key(1)), await run(random.key(1)), await run(random.key(2))];
    expect(k1).toBe(k1again);
    expect(k1).not.toBe(e);
    expect(k2).not.toBe(k1);
    disposeTree([params, tokens]);
  });

  for (const kind of kinds) {
    test(`${kind}: an AdamW training step frees every temporary, and the loss falls`, async () => {
      let params: LMParams = lm.init(random.key(36), preset("tiny", { kind }));
      const data = randomTokens(37, 2, 25);
      const inputs = tidy(() => sliceAxis(data, 1, 0, 24));
      const targets = tidy(() => sliceAxis(data, 1, 1, 25));
      let opt = adamw.init(params);
      const base = liveBuffers();
      const vg = valueAndGrad((p: LMParams) => lm.loss(p, inputs, targets));
      const losses: number[] = [];
      for (let s = 0; s < 6; s++) {
        const { value, grads } = vg(params);
        losses.push(await value.item());
        ({ params, state: opt } = adamw.update(params, grads, opt, { lr: 1e-2, weightDecay: 0 }));
        disposeTree([value, grads]);
        expect(liveBuffers()).toBe(base);
      }
      expect(losses[5]).toBeLessThan(losses[0] - 0.1);
      expect(params.config.kind).toBe(kind); // the config rides along untouched
      disposeTree([params, opt, data, inputs, targets]);
    });
  }

  test("the loss of a fresh model is near ln(256) and its gradient reaches every parameter", async () => {
    const params = lm.init(random.key(38), preset("tiny"));
    const tokens = randomTokens(39, 1, 16);
    const { value, grads } = valueAndGrad((p: LMParams) => lm.loss(p, tokens, tokens))(params);
    expect(Math.abs((await value.item()) - Math.log(256))).toBeLessThan(0.5);
    const dead: string[] = [];
    for (const [path, g] of flattenTree(grads)) if (Array.from(await g.data()).every((v) => v === 0)) dead.push(path);
    expect(dead).toEqual([]);
    disposeTree([params, tokens, value, grads]);
  });
});
