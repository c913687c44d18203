/**
 * StepCache (derived.ts): recurrent steps that keep the parameter-only values (folded weights,
 * A = −exp(A_log)) give the bits of steps that recompute them, on every backend, with fewer
 * launches from the second step on; the cache holds one tensor a value, frees them all on
 * dispose, and stays out of a recorded gradient.
 */
import * as T from "@memmamba/tensor";
import type { Tensor } from "@memmamba/tensor";
import { expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import { derived, lm, preset, StepCache, withStepCache, type LMParams, type LMState } from "../src/index.ts";
import { randomTokens } from "./support.ts";

const B = 2, STEPS = 6;

/** Each step's logits and the launches it made, with or without a cache; the state is freed. */
async function run(params: LMParams, tokens: Tensor, cache?: StepCache): Promise<{ logits: Float32Array[]; launches: number[]; state: Float32Array }> {
  let state: LMState = lm.initState(params.config, B);
  const logits: Float32Array[] = [], launches: number[] = [];
  for (let t = 0; t < STEPS; t++) {
    const tok = T.tidy(() => T.reshape(T.sliceAxis(tokens, 1, t, t + 1), [B]));
    const l0 = T.readCounters().launches;
    const r = T.noGrad(() => lm.step(params, tok, state, { cache }));
    launches.push(T.readCounters().launches - l0);
    logits.push(Float32Array.from(await r.logits.data()));
    T.disposeTree([state, tok, r.logits]);
    state = r.state;
  }
  // the whole state, flattened in tree order: the pools, conv tails and scan states
  const parts: number[] = [];
  for (const [, t] of T.flattenTree(state)) parts.push(...(await t.data()));
  T.disposeTree(state);
  return { logits, launches, state: Float32Array.from(parts) };
}

/** One test per backend: `fn` on it, leaking no buffer; the backend put back after (later files run on the default). */
function perBackend(name: string, fn: () => Promise<void>): void {
  for (const backend of testBackends()) {
    test(`[${backend}] ${name}`, async () => {
      const before = T.getBackend();
      if (!(await useBackend(backend))) return;
      try {
        await expectNoLeak(fn);
      } finally {
        T.setBackend(before);
      }
    });
  }
}

perBackend("lm.step with a StepCache: the same logits and state bit for bit, fewer launches after the first step", async () => {
  // weighted fusion with W_v folded (the fold and the scaled fold), cross-layer reads, a pool
  // that overflows within the steps
  const cfg = preset("tiny", { memory: { poolSize: 3, crossLayer: { group: 1 } } });
  const params = lm.init(T.random.key(5), cfg);
  const tokens = randomTokens(6, B, STEPS);
  const plain = await run(params, tokens);
  const cache = new StepCache();
  const cached = await run(params, tokens, cache);
  for (let t = 0; t < STEPS; t++) expect(Array.from(cached.logits[t])).toEqual(Array.from(plain.logits[t]));
  expect(Array.from(cached.state)).toEqual(Array.from(plain.state));
  // per layer at least A and the query fold; filled by the first step, reused after
  expect(cache.size).toBeGreaterThanOrEqual(2 * cfg.nLayers);
  expect(cached.launches[0]).toBe(plain.launches[0]);
  for (let t = 1; t < STEPS; t++) expect(cached.launches[t]).toBeLessThanOrEqual(plain.launches[t] - cache.size);
  const size = cache.size;
  await run(params, tokens, cache);
  expect(cache.size).toBe(size); // the same parameters: no new entries
  cache.dispose();
  expect(cache.size).toBe(0);
  T.disposeTree([params, tokens]);
});

perBackend("lm.applyChunked over several chunks (its own StepCache) gives the bits of one call a chunk", async () => {
  const cfg = preset("tiny", { memory: { poolSize: 3 } });
  const params = lm.init(T.random.key(7), cfg);
  const L = 12, chunk = 4;
  const tokens = randomTokens(8, B, L);
  const all = lm.applyChunked(params, tokens, { chunk });
  // the same chunks, one call each: one chunk a call computes every value afresh
  let state: LMState = lm.initState(cfg, B);
  const parts: Float32Array[] = [];
  for (let s = 0; s < L; s += chunk) {
    const piece = T.sliceAxis(tokens, 1, s, s + chunk);
    const r = lm.applyChunked(params, piece, { chunk }, state);
    parts.push(Float32Array.from(await r.logits.data()));
    T.disposeTree([state, piece, r.logits]);
    state = r.state;
  }
  const got = await all.logits.data(), V = cfg.vocab;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < L / chunk; c++) {
      const want = parts[c].subarray(b * chunk * V, (b + 1) * chunk * V);
      expect(Array.from(got.subarray((b * L + c * chunk) * V, (b * L + c * chunk + chunk) * V))).toEqual(Array.from(want));
    }
  }
  const [a1, a2] = [T.flattenTree(all.state), T.flattenTree(state)];
  for (let i = 0; i < a1.length; i++) expect(Array.from(await a1[i][1].data())).toEqual(Array.from(await a2[i][1].data()));
  T.disposeTree([all, state, params, tokens]);
});

test("StepCache: keyed by its inputs, bypassed under a recorded gradient, unusable after dispose", async () => {
  await expectNoLeak(async () => {
    const a = T.fromArray([1, 2, 3], [3]), b = T.fromArray([1, 2, 3], [3]);
    const cache = new StepCache();
    let calls = 0;
    const twice = (x: Tensor) => derived("twice", [x], () => (calls++, T.mul(x, 2)));
    const [x1, x2, y1] = withStepCache(cache, () => T.tidy(() => [twice(a), twice(a), twice(b)]));
    expect(x1).toBe(x2); // one entry for a
    expect(y1).not.toBe(x1); // b has its own, equal values or not
    expect(calls).toBe(2);
    expect(Array.from(await x1.data())).toEqual([2, 4, 6]);
    // outside withStepCache: computed each time, and the caller owns it
    const z = twice(a);
    expect(calls).toBe(3);
    z.dispose();
    // under a recorded gradient the value goes on the tape: the cache is not consulted
    const g = T.tidy(() => T.grad((p: Tensor) => withStepCache(cache, () => T.sum(twice(p))))(a));
    expect(Array.from(await g.data())).toEqual([2, 2, 2]);
    expect(cache.size).toBe(2);
    g.dispose();
    cache.dispose();
    expect(x1.disposed && y1.disposed).toBe(true);
    expect(() => cache.get("twice", [a], () => T.mul(a, 2))).toThrow(/StepCache: used after dispose/);
    // a value that is one of its inputs is not the cache's to free
    const own = new StepCache();
    expect(own.get("same", [a], () => a)).toBe(a);
    expect(own.size).toBe(0);
    own.dispose();
    expect(a.disposed).toBe(false);
    T.disposeTree([a, b]);
  });
});
