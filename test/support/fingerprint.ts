/**
 * A small but complete training run on the CPU backend whose every bit is fingerprinted:
 * random init from a seed, a two-layer MLP with gather, matmul, softmax cross-entropy, the
 * selective scan, AdamW and clipping. Run directly (`bun|deno run test/support/fingerprint.ts`)
 * it prints the fingerprint; determinism.test.ts compares it across runs and runtimes.
 */
import * as T from "../../packages/tensor/src/index.ts";

function fnv1a(bytes: Uint8Array, h = 0x811c9dc5): number {
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h;
}

export async function fingerprint(seed = 123, steps = 8): Promise<string> {
  T.setBackend("cpu");
  const [k1, k2, k3, k4] = T.random.split(T.random.key(seed), 4);
  const V = 17, D = 12, L = 9, B = 3, N = 4;
  let params: { emb: T.Tensor; w1: T.Tensor; A: T.Tensor; w2: T.Tensor } = {
    emb: T.init.normal(k1, [V, D], 0.5),
    w1: T.init.kaimingUniform(k2, [D, D]),
    A: T.neg(T.init.uniform(k3, [D, N], 0.5, 2)),
    w2: T.init.kaimingUniform(k4, [D, V]),
  };
  let state = T.adamw.init(params);
  let h = 0x811c9dc5;
  for (let step = 0; step < steps; step++) {
    const tokens = T.random.randint(T.random.foldIn(T.random.key(seed + 1), step), [B, L + 1], 0, V);
    const inp = T.sliceAxis(tokens, 1, 0, L), tgt = T.sliceAxis(tokens, 1, 1, L + 1);
    const loss = (p: typeof params) => {
      const x = T.gather(p.emb, inp);
      const u = T.tanh(T.matmul(x, p.w1));
      const delta = T.softplus(u);
      const { y } = T.selectiveScan(u, delta, p.A, T.sliceAxis(u, 2, 0, N), T.sliceAxis(u, 2, N, 2 * N), T.zeros([B, D, N]));
      return T.mean(T.crossEntropy(T.matmul(T.silu(y), p.w2), tgt));
    };
    const { value, grads } = T.valueAndGrad(loss)(params);
    const { grads: clipped } = T.clipByGlobalNorm(grads, 1.0);
    ({ params, state } = T.adamw.update(params, clipped, state, { lr: 1e-2, weightDecay: 0.1 }));
    h = fnv1a(new Uint8Array((await value.data()).buffer), h);
    T.disposeTree([value, grads, clipped, tokens, inp, tgt]);
  }
  for (const [, t] of T.flattenTree(params)) h = fnv1a(new Uint8Array((await t.data()).buffer), h);
  T.disposeTree([params, state]);
  return h.toString(16).padStart(8, "0");
}

// deno-lint-ignore no-explicit-any
if ((import.meta as any).main) console.log(await fingerprint());
