/**
 * The memory-fidelity metrics on cases whose answer is known: ECLMF (Eq. 24/25) against closed
 * forms of ridge regression, ETMF (Eq. 21) on states built to equal (or not) the embeddings, and
 * both on the three model kinds.
 */
import fc from "fast-check";
import { disposeTree, fromArray, liveBuffers, mul, random, zeros, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import {
  crossLayerFidelity, eclmf, eclmfFromStates, etmf, etmfFromStates, lm, metrics, preset, type LayerParams, type LMParams,
  type ModelConfig, type TransformerLayerParams,
} from "../src/index.ts";
import { randomTokens, rng } from "./support.ts";

/** Standard normal host samples (Box–Muller on the test PRNG). */
function gaussian(r: () => number, n: number, std = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return out;
}

/** Y = X W for X [n, p], W [p, q]. */
function matmulHost(X: ArrayLike<number>, W: ArrayLike<number>, n: number, p: number, q: number): Float64Array {
  const Y = new Float64Array(n * q);
  for (let r = 0; r < n; r++) for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) Y[r * q + j] += X[r * p + i] * W[i * q + j];
  return Y;
}

function frob(A: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < A.length; i++) s += A[i] * A[i];
  return Math.sqrt(s);
}

/** Column j of the Sylvester–Hadamard matrix of order n (a power of 2): entries ±1. */
function hadamard(i: number, j: number): number {
  let b = i & j, parity = 0;
  while (b) {
    parity ^= b & 1;
    b >>= 1;
  }
  return parity ? -1 : 1;
}

/** X = Q diag(s) with Q [n, p] orthonormal columns (Hadamard columns 1..p over √n). */
function orthogonalDesign(n: number, s: readonly number[]): Float64Array {
  const p = s.length;
  const X = new Float64Array(n * p);
  for (let r = 0; r < n; r++) for (let j = 0; j < p; j++) X[r * p + j] = (hadamard(r, j + 1) / Math.sqrt(n)) * s[j];
  return X;
}

describe("ECLMF (Eq. 24/25): ridge fidelity between layers", () => {
  test("a linear map Y = XW₀: F = 1 at λ = 0, and F = 1 − ‖diag(sλ/(s² + λ)) W₀‖/‖X‖ at λ > 0 (orthogonal design)", () => {
    const n = 64, s = [3, 1, 0.3, 0.1, 0.03, 0.01], p = s.length, q = 5;
    const X = orthogonalDesign(n, s);
    const W0 = gaussian(rng(1), p * q);
    const Y = matmulHost(X, W0, n, p, q);
    expect(crossLayerFidelity(X, Y, n, p, 0).score).toBeCloseTo(1, 10);
    const normX = Math.sqrt(s.reduce((a, v) => a + v * v, 0));
    for (const lambda of [1e-4, 1e-2, 1]) {
      // XᵀX = diag(s²): W* = diag(s²/(s² + λ)) W₀ and Y − XW* = Q diag(sλ/(s² + λ)) W₀
      let ss = 0;
      for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) ss += ((s[i] * lambda) / (s[i] * s[i] + lambda) * W0[i * q + j]) ** 2;
      const expected = 1 - Math.sqrt(ss) / (normX + 1e-6);
      const got = crossLayerFidelity(X, Y, n, p, lambda);
      expect(Math.abs(got.score - expected)).toBeLessThan(1e-10);
      for (let i = 0; i < p; i++) expect(got.W[i * q] / W0[i * q]).toBeCloseTo((s[i] * s[i]) / (s[i] * s[i] + lambda), 8);
    }
    // a general (non-orthogonal) X: still exact at λ = 0, and the paper's λ = 1e-4 barely moves it
    const Xg = gaussian(rng(2), 500 * 8), Wg = gaussian(rng(3), 8 * 8);
    const Yg = matmulHost(Xg, Wg, 500, 8, 8);
    expect(crossLayerFidelity(Xg, Yg, 500, 8, 0).score).toBeCloseTo(1, 9);
    expect(crossLayerFidelity(Xg, Yg, 500, 8).score).toBeGreaterThan(1 - 1e-6);
  });

  test("Y independent of X (n ≫ d): F ≈ 1 − (‖Y‖/‖X‖)·√(1 − d/n), the least-squares residual of pure noise", () => {
    const n = 4000, d = 8;
    for (const [sx, sy, seed] of [[1, 0.5, 4], [1, 1, 5], [0.5, 2, 6]] as const) {
      const X = gaussian(rng(seed), n * d, sx), Y = gaussian(rng(seed + 100), n * d, sy);
      // E‖(I − P_X) Y‖² = (n − d)/n · E‖Y‖² for Y independent of X (P_X projects on d columns)
      const expected = 1 - (frob(Y) * Math.sqrt(1 - d / n)) / frob(X);
      const got = crossLayerFidelity(X, Y, n, d).score;
      expect(Math.abs(got - expected)).toBeLessThan(0.01 * Math.max(1, sy / sx));
    }
  });

  test("λ: F falls monotonically as λ grows, from the least-squares fit to 1 − ‖Y‖/‖X‖ (W* → 0)", () => {
    const n = 300, d = 6;
    const X = gaussian(rng(7), n * d);
    const Y = matmulHost(X, gaussian(rng(8), d * d, 0.3), n, d, d);
    const noise = gaussian(rng(9), n * d, 0.1);
    for (let i = 0; i < Y.length; i++) Y[i] += noise[i];
    const lambdas = [0, 1e-4, 1e-2, 1, 10, 100, 1e4, 1e12];
    const scores = lambdas.map((l) => crossLayerFidelity(X, Y, n, d, l).score);
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeLessThanOrEqual(scores[i - 1] + 1e-12);
    expect(scores[0] - scores[1]).toBeLessThan(1e-6); // the paper's λ = 1e-4 is negligible at this scale
    expect(scores[scores.length - 1]).toBeCloseTo(1 - frob(Y) / frob(X), 6);
  });

  test("invariances (fast-check): F ≤ 1, unchanged by orthogonal rotations of X's or Y's features and by reordering the rows", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 20, max: 80 }), fc.nat(), fc.double({ min: 0, max: 2 * Math.PI, noNaN: true }), fc.constantFrom(0, 1e-4, 0.1), (d, n, seed, theta, lambda) => {
        const r = rng(seed);
        const X = gaussian(r, n * d), Y = gaussian(r, n * d, 0.1 + 2 * r());
        const base = crossLayerFidelity(X, Y, n, d, lambda).score;
        expect(base).toBeLessThanOrEqual(1);
        // a Givens rotation of features 0 and 1
        const rot = (A: Float64Array) => {
          const B = Float64Array.from(A);
          for (let k = 0; k < n; k++) {
            const a = A[k * d], b = A[k * d + 1];
            B[k * d] = Math.cos(theta) * a - Math.sin(theta) * b;
            B[k * d + 1] = Math.sin(theta) * a + Math.cos(theta) * b;
          }
          return B;
        };
        expect(crossLayerFidelity(rot(X), Y, n, d, lambda).score).toBeCloseTo(base, 9);
        expect(crossLayerFidelity(X, rot(Y), n, d, lambda).score).toBeCloseTo(base, 9);
        const perm = Array.from({ length: n }, (_, i) => (i * 7 + 3) % n).filter((v, i, a) => a.indexOf(v) === i);
        if (perm.length === n) {
          const rows = (A: Float64Array) => Float64Array.from({ length: n * d }, (_, i) => A[perm[Math.floor(i / d)] * d + (i % d)]);
          expect(crossLayerFidelity(rows(X), rows(Y), n, d, lambda).score).toBeCloseTo(base, 9);
        }
      }),
      { numRuns: 40 },
    );
  });

  test("gaps: pairs (l, l + G) over R_0 … R_n; a gap deeper than the model is skipped, with why", () => {
    const rows = 40, d = 3;
    const reps = Array.from({ length: 4 }, (_, l) => gaussian(rng(20 + l), rows * d)); // R_0 … R_3
    const r = eclmfFromStates(reps, rows, d, { gaps: [1, 2, 5, 10] });
    expect(r.lambda).toBe(1e-4);
    expect(r.gaps.map((g) => [g.gap, g.pairs.length])).toEqual([[1, 3], [2, 2]]);
    expect(r.gaps[1].pairs.map((p) => [p.from, p.to])).toEqual([[0, 2], [1, 3]]);
    expect(r.gaps[1].value).toBeCloseTo((r.gaps[1].pairs[0].score + r.gaps[1].pairs[1].score) / 2, 12);
    expect(r.gaps[1].pairs[0].score).toBeCloseTo(crossLayerFidelity(reps[0], reps[2], rows, d).score, 12);
    expect(r.skipped.map((s) => s.gap)).toEqual([5, 10]);
    expect(r.skipped[0].reason).toContain("exceeds the depth");
    expect(() => crossLayerFidelity(new Float64Array(rows * d), reps[0], rows, d, 0)).toThrow(/positive definite/);
  });
});

/** Replaces one tensor leaf in a params object path (returns a shallow-updated copy). */
function withLayers(params: LMParams, layers: LMParams["layers"]): LMParams {
  return { ...params, layers };
}

/** A model whose layers are exactly the identity (every residual branch's output weight is 0). */
function identityLayers(params: LMParams): LMParams {
  const cfg = params.config;
  return withLayers(
    params,
    params.layers.map((p) => {
      if (cfg.kind === "transformer") {
        const t = p as TransformerLayerParams;
        return { ...t, o: { w: zeros([...t.o.w.shape]) }, down: { w: zeros([...t.down.w.shape]) } };
      }
      const m = p as LayerParams;
      return { ...m, mamba: { ...m.mamba, outProj: { w: zeros([...m.mamba.outProj.w.shape]) } } };
    }),
  );
}

describe("ECLMF on models", () => {
  test("identity layers: every R_l equals R_0, so F = 1 at λ = 0 and 1 − O(λ/σ²_min(X)) at the paper's λ (mamba, transformer)", async () => {
    for (const kind of ["mamba", "transformer"] as const) {
      const params = identityLayers(lm.init(random.key(3), preset("tiny", { kind, nLayers: 6 })));
      const tokens = randomTokens(4, 2, 48);
      const exact = await eclmf(params, tokens, { lambda: 0 });
      expect(exact.gaps.map((g) => g.gap)).toEqual([2, 5]);
      expect(exact.gaps.map((g) => g.pairs.length)).toEqual([5, 2]);
      for (const g of exact.gaps) expect(g.value).toBeCloseTo(1, 6);
      const r = await eclmf(params, tokens);
      for (const g of r.gaps) expect(g.value).toBeGreaterThan(0.99);
      for (const g of r.gaps) expect(g.value).toBeLessThan(1);
      expect(r.skipped.map((s) => s.gap)).toEqual([10]);
      tokens.dispose();
    }
  });

  test("all three kinds: plain numbers, F ≤ 1, the depth decides which gaps are measured; no buffers leak", async () => {
    const before = liveBuffers();
    for (const kind of ["memmamba", "mamba", "transformer"] as const) {
      const params = lm.init(random.key(5), preset("tiny", { kind, nLayers: 5 }));
      const tokens = randomTokens(6, 2, 40);
      const r = await metrics.eclmf(params, tokens, { gaps: [2, 5, 10] });
      expect(r.gaps.map((g) => g.gap)).toEqual([2, 5]);
      for (const g of r.gaps) {
        expect(Number.isFinite(g.value)).toBe(true);
        for (const p of g.pairs) expect(p.score).toBeLessThanOrEqual(1);
      }
      expect(r.skipped).toEqual([{ gap: 10, reason: expect.stringContaining("exceeds the depth") }]);
      disposeTree([params, tokens]);
    }
    expect(liveBuffers()).toBe(before);
  });
});

describe("ETMF (Eq. 21): token reconstruction through the tied embeddings", () => {
  const V = 32, d = 32, B = 2, L = 40;

  /** hidden[b, j] = E[x_{b, j − Δ}] (j ≥ Δ), random before: the state at j holds token j − Δ exactly. */
  async function echoStates(E: Tensor, tokens: Tensor, delta: number, seed: number): Promise<Tensor> {
    const e = (await E.data()) as Float32Array, x = (await tokens.data()) as Int32Array;
    const noise = gaussian(rng(seed), B * L * d);
    const h = new Float32Array(B * L * d);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < L; j++) {
        for (let k = 0; k < d; k++) h[(b * L + j) * d + k] = j >= delta ? e[x[b * L + j - delta] * d + k] : noise[(b * L + j) * d + k];
      }
    }
    return fromArray(h, [B, L, d]);
  }

  test("states that hold E[x_i] at j = i + Δ: ETMF(Δ) = 1 (direct exactly; soft as the head sharpens), random states ≈ 0", async () => {
    const before = liveBuffers();
    const tokens = randomTokens(1, B, L, V);
    const E = random.normal(random.key(2), [V, d]);
    for (const delta of [0, 3, 17]) {
      const h = await echoStates(E, tokens, delta, delta);
      const direct = await etmfFromStates(E, h, tokens, { distances: [delta], reconstruct: "direct" });
      expect(direct.distances).toEqual([{ distance: delta, value: expect.any(Number), pairs: B * (L - delta) }]);
      expect(direct.value).toBeCloseTo(1, 6);
      // soft: ê = softmax(h Eᵀ / T) E → E[x_i] as T → 0 (distinct random rows: the own row wins)
      const soft = await etmfFromStates(E, h, tokens, { distances: [delta], temperature: 0.05 });
      expect(soft.value).toBeGreaterThan(1 - 1e-4);
      const warm = await etmfFromStates(E, h, tokens, { distances: [delta], temperature: 20 });
      expect(warm.value).toBeLessThan(soft.value); // a flat distribution reconstructs the mean embedding
      disposeTree(h);
    }
    // random states: no token is recoverable (|mean cosine| ~ 1/√(d · pairs))
    const hr = random.normal(random.key(9), [B, L, d]);
    for (const reconstruct of ["direct", "soft"] as const) {
      const r = await etmfFromStates(E, hr, tokens, { distances: [1, 4, 16], reconstruct });
      expect(Math.abs(r.value)).toBeLessThan(0.12);
    }
    disposeTree([tokens, E, hr]);
    expect(liveBuffers()).toBe(before);
  });

  test("invariances (fast-check): scaling a state leaves the direct ETMF unchanged; relabelling the vocabulary leaves both unchanged", async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.double({ min: 1e-3, max: 1e3, noNaN: true }), fc.constantFrom("direct", "soft"), async (seed, c, reconstruct) => {
        const tokens = randomTokens(seed, B, 16, V);
        const E = random.normal(random.key(seed + 1), [V, d]);
        const h = random.normal(random.key(seed + 2), [B, 16, d]);
        const opts = { distances: [0, 1, 5], reconstruct } as const;
        const base = await etmfFromStates(E, h, tokens, opts);
        if (reconstruct === "direct") {
          // per-position positive scales: cos(c_j h_j, e) = cos(h_j, e)
          const scaled = mul(h, mul(random.uniform(random.key(seed + 3), [B, 16, 1], { lo: 0.5, hi: 2 }), c));
          expect((await etmfFromStates(E, scaled, tokens, opts)).value).toBeCloseTo(base.value, 5);
          const eScaled = mul(E, c);
          expect((await etmfFromStates(eScaled, h, tokens, opts)).value).toBeCloseTo(base.value, 5);
          disposeTree([scaled, eScaled]);
        }
        // a permutation π of the vocabulary: rows E'[π(v)] = E[v], tokens x' = π(x)
        const pi = Int32Array.from({ length: V }, (_, v) => (v * 5 + 3) % V);
        const e = (await E.data()) as Float32Array, x = (await tokens.data()) as Int32Array;
        const eP = new Float32Array(V * d);
        for (let v = 0; v < V; v++) eP.set(e.subarray(v * d, (v + 1) * d), pi[v] * d);
        const EP = fromArray(eP, [V, d]), xP = fromArray(Int32Array.from(x, (t) => pi[t]), [B, 16], "i32");
        expect((await etmfFromStates(EP, h, xP, opts)).value).toBeCloseTo(base.value, 5);
        disposeTree([tokens, E, h, EP, xP]);
      }),
      { numRuns: 12 },
    );
  });

  test("distances not below L are skipped with why; the value averages the measured distances", async () => {
    const tokens = randomTokens(3, 1, 10, V);
    const E = random.normal(random.key(4), [V, d]), h = random.normal(random.key(5), [1, 10, d]);
    const r = await etmfFromStates(E, h, tokens, { distances: [1, 9, 10, 64] });
    expect(r.distances.map((x) => [x.distance, x.pairs])).toEqual([[1, 9], [9, 1]]);
    expect(r.value).toBeCloseTo((r.distances[0].value + r.distances[1].value) / 2, 12);
    expect(r.skipped.map((s) => s.distance)).toEqual([10, 64]);
    const none = await etmfFromStates(E, h, tokens, { distances: [64] });
    expect(Number.isNaN(none.value)).toBe(true);
    disposeTree([tokens, E, h]);
  });
});

describe("ETMF on models", () => {
  /** Identity layers and one-hot embeddings E = c·I (V = d): h̃_j = √d·e_{x_j}, so cos(ê_j, E[x_i]) = [x_j = x_i]. */
  function echoModel(kind: ModelConfig["kind"], c: number): LMParams {
    const cfg = preset("tiny", { kind, dModel: 32, vocab: 32, nLayers: 2 });
    const p = identityLayers(lm.init(random.key(7), cfg));
    const eye = new Float32Array(32 * 32);
    for (let i = 0; i < 32; i++) eye[i * 32 + i] = c;
    return { ...p, embed: fromArray(eye, [32, 32]) };
  }

  test("identity layers, one-hot embeddings: ETMF(Δ) = the fraction of positions with x_{i+Δ} = x_i (mamba, transformer; direct and soft)", async () => {
    // tokens with planted repeats: period 5, one in four positions replaced at random
    const r = rng(11);
    const B = 2, L = 64;
    const x = Int32Array.from({ length: B * L }, (_, k) => (r() < 0.25 ? Math.floor(r() * 32) : [3, 9, 1, 30, 17][(k % L) % 5]));
    const tokens = fromArray(x, [B, L], "i32");
    const distances = [0, 1, 5, 10, 13];
    const expected = distances.map((delta) => {
      let same = 0;
      for (let b = 0; b < B; b++) for (let i = 0; i + delta < L; i++) same += x[b * L + i] === x[b * L + i + delta] ? 1 : 0;
      return same / (B * (L - delta));
    });
    for (const kind of ["mamba", "transformer"] as const) {
      const direct = await etmf(echoModel(kind, 1), tokens, { distances, reconstruct: "direct" });
      direct.distances.forEach((v, k) => expect(v.value).toBeCloseTo(expected[k], 5));
      // soft: logits = c·√32 on the own token, 0 elsewhere; c = 3 leaves 31·e^−17 ≈ 1e-6 off the own token
      const soft = await etmf(echoModel(kind, 3), tokens, { distances });
      soft.distances.forEach((v, k) => expect(v.value).toBeCloseTo(expected[k], 4));
    }
    tokens.dispose();
  });

  test("all three kinds: finite values in [−1, 1], per-layer readings (layer 0 = the embedding: Δ = 0 direct is 1)", async () => {
    const before = liveBuffers();
    for (const kind of ["memmamba", "mamba", "transformer"] as const) {
      const params = lm.init(random.key(8), preset("tiny", { kind }));
      const tokens = randomTokens(9, 2, 80);
      const r = await metrics.etmf(params, tokens);
      expect(r.distances.map((x) => x.distance)).toEqual([1, 4, 16, 64]);
      expect(r.skipped.map((x) => x.distance)).toEqual([256]);
      for (const v of r.distances) expect(Math.abs(v.value)).toBeLessThanOrEqual(1 + 1e-9);
      const l0 = await metrics.etmf(params, tokens, { layer: 0, distances: [0], reconstruct: "direct" });
      expect(l0.value).toBeCloseTo(1, 5); // RMSNorm(E[x]) with unit weights is parallel to E[x]
      await expect(metrics.etmf(params, tokens, { layer: 9 })).rejects.toThrow(/layer/);
      disposeTree([params, tokens]);
    }
    expect(liveBuffers()).toBe(before);
  });
});
