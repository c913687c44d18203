import { crossEntropy, disposeTree, fromArray, liveBuffers, random, sliceAxis, sum, tidy } from "@memmamba/tensor";
import { lm, preset } from "@memmamba/memmamba";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { greedyDecode, windowNll, windowNllBatch } from "../src/inference.ts";

const text = new TextEncoder().encode("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of");

/** The reference: one parallel forward over the whole sequence. */
async function directNll(params: ReturnType<typeof lm.init>, inputs: Uint8Array, targets: Uint8Array, from: number): Promise<number> {
  const L = inputs.length;
  const t = tidy(() => {
    const logits = lm.apply(params, fromArray(Int32Array.from(inputs), [1, L], "i32")).logits;
    return sum(crossEntropy(sliceAxis(logits, 1, from, L), fromArray(Int32Array.from(targets.subarray(from)), [1, L - from], "i32")));
  });
  const v = await t.item();
  t.dispose();
  return v;
}

async function naiveGreedy(params: ReturnType<typeof lm.init>, prompt: Uint8Array, n: number): Promise<number[]> {
  const seq = Array.from(prompt);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const row = tidy(() => sliceAxis(lm.apply(params, fromArray(Int32Array.from(seq), [1, seq.length], "i32")).logits, 1, seq.length - 1, seq.length));
    const v = await row.data();
    row.dispose();
    let best = 0;
    for (let j = 1; j < v.length; j++) if (v[j] > v[best]) best = j;
    out.push(best);
    seq.push(best);
  }
  return out;
}

describe("inference: streaming evaluation agrees with one parallel pass", () => {
  for (const kind of ["memmamba", "mamba", "transformer"] as const) {
    test(`${kind}: windowNll (chunked) and greedyDecode (chunked + recurrent steps)`, async () => {
      const live = liveBuffers();
      const params = lm.init(random.key(5), preset("tiny", { kind }));
      const inputs = text.subarray(0, 80);
      const targets = text.subarray(1, 81);
      const want = await directNll(params, inputs, targets, 60);
      for (const chunk of [16, 33, 80]) {
        const got = await windowNll(params, inputs, targets, 60, chunk);
        expect(got.count).toBe(20);
        expect(Math.abs(got.sum - want)).toBeLessThan(1e-3 * Math.abs(want));
      }
      const prompt = text.subarray(0, 40);
      expect(await greedyDecode(params, prompt, 6, 16)).toEqual(await naiveGreedy(params, prompt, 6));
      disposeTree(params);
      expect(liveBuffers()).toBe(live);
    });
  }
});

describe("inference: windows streamed as one batch", () => {
  for (const kind of ["memmamba", "mamba", "transformer"] as const) {
    test(`${kind}: windowNllBatch equals the sum of windowNll over its windows; mismatched windows are refused`, async () => {
      const live = liveBuffers();
      const params = lm.init(random.key(6), preset("tiny", { kind }));
      const windows = [0, 7, 13].map((o) => ({ inputs: text.subarray(o, o + 70), targets: text.subarray(o + 1, o + 71), scoreFrom: 50 }));
      let want = 0;
      for (const w of windows) want += (await windowNll(params, w.inputs, w.targets, w.scoreFrom, 32)).sum;
      const got = await windowNllBatch(params, windows, 32);
      expect(got.count).toBe(60);
      expect(Math.abs(got.sum - want)).toBeLessThan(1e-4 * Math.abs(want));
      let msg = "";
      try {
        await windowNllBatch(params, [windows[0], { ...windows[1], scoreFrom: 40 }], 32);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toContain("windowNllBatch: every window must have 70 inputs and targets and score from 50");
      disposeTree(params);
      expect(liveBuffers()).toBe(live);
    });
  }
});
