/**
 * The recurrent step's trace (`lm.step(..., { trace: true })`, used by the browser demo):
 * - it changes nothing: logits and state are bit-identical to a step without it;
 * - a host mirror of each pool's token positions, driven only by the trace (drop `evicted`,
 *   append where `accepted`), matches the pool state after every step: the same slots hold a
 *   note, and slot i holds exactly the score the mirrored position wrote;
 * - the attention weights are the ones the read used: 0 on empty slots, rows summing to 1, and
 *   gate · I_state · Σ_i w_i (note_i W_v) gives back the cross-token read c_tok.
 */
import { disposeTree, matmul, noGrad, reshape, sliceAxis, tidy, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { lm, preset, type LayerParams, type LayerTrace, type LMState } from "../src/index.ts";
import { maxAbsDiff, randomTokens } from "./support.ts";

const B = 2, L = 40, P = 3;

async function host(t: Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

async function stateValues(s: LMState): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const layer of s.layers) {
    out.push(await host(layer.mamba.conv), await host(layer.mamba.ssm));
    if (layer.pool) out.push(await host(layer.pool.notes), await host(layer.pool.scores), await host(layer.pool.valid));
  }
  return out;
}

for (const replacement of ["fifo", "priority"] as const) {
  describe(`step trace (${replacement})`, () => {
    // τ1 = 0.5 with the scorer's random init: about half the tokens write, so a 3-slot pool fills,
    // evicts and (priority) rejects within 40 tokens
    const cfg = preset("tiny", { memory: { poolSize: P, replacement, tau1: 0.5, tau2: 0 } });

    test("changes no number, and a host mirror driven by it matches the pool state", async () => {
      const params = lm.init([7, 1], cfg);
      const tokens = randomTokens(3, B, L);
      let plain = lm.initState(cfg, B), traced = lm.initState(cfg, B);
      // positions[l][b]: the token positions the mirror says pool l of row b holds, in slot order
      const positions = Array.from({ length: cfg.nLayers }, () => Array.from({ length: B }, () => [] as number[]));
      const scoreAt = Array.from({ length: cfg.nLayers }, () => Array.from({ length: B }, () => new Map<number, number>()));
      let evictions = 0, reads = 0;
      for (let t = 0; t < L; t++) {
        const tok = tidy(() => reshape(sliceAxis(tokens, 1, t, t + 1), [B]));
        const a = noGrad(() => lm.step(params, tok, plain));
        const b = noGrad(() => lm.step(params, tok, traced, { trace: true }));
        expect(a.trace).toBeUndefined();
        expect(b.trace!.length).toBe(cfg.nLayers);
        expect(Array.from(await host(b.logits))).toEqual(Array.from(await host(a.logits)));
        const sa = await stateValues(a.state), sb = await stateValues(b.state);
        for (let i = 0; i < sa.length; i++) expect(Array.from(sb[i])).toEqual(Array.from(sa[i]));

        for (let l = 0; l < cfg.nLayers; l++) {
          const tr: LayerTrace = b.trace![l];
          const [accepted, evicted, score] = [await host(tr.accepted!), await host(tr.evicted!), await host(tr.tokenScore)];
          const [write, weights, gate, sScore, c] = [
            await host(tr.write), await host(tr.attention!), await host(tr.readGate!), await host(tr.stateScore!), await host(tr.crossToken!),
          ];
          const old = traced.layers[l].pool!, next = b.state.layers[l].pool!;
          const oldValid = await host(old.valid), valid = await host(next.valid), scores = await host(next.scores);
          // what the read saw: the old pool's notes through W_v
          const values = noGrad(() => matmul(old.notes, (params.layers[l] as LayerParams).crossToken!.v.w));
          const v = await host(values);
          values.dispose();
          const S = cfg.memory.summaryDim;
          for (let r = 0; r < B; r++) {
            // the trace's own consistency: only a written note is accepted, only an accepted one evicts
            expect(accepted[r] <= write[r]).toBe(true);
            if (evicted[r] >= 0) expect(accepted[r]).toBe(1);
            // the mirror
            const pos = positions[l][r];
            if (accepted[r] === 1) {
              if (evicted[r] >= 0) {
                expect(pos.length).toBe(P); // only a full pool evicts
                pos.splice(evicted[r], 1);
                evictions++;
              }
              pos.push(t);
              scoreAt[l][r].set(t, score[r]);
            }
            for (let i = 0; i < P; i++) {
              expect(valid[r * P + i]).toBe(i < pos.length ? 1 : 0);
              expect(scores[r * P + i]).toBe(i < pos.length ? scoreAt[l][r].get(pos[i])! : 0);
            }
            // the weights: zero on empty slots, a distribution over the full ones
            let sum = 0;
            for (let i = 0; i < P; i++) {
              const w = weights[r * P + i];
              if (oldValid[r * P + i] === 0) expect(w).toBe(0);
              sum += w;
            }
            const any = oldValid.subarray(r * P, (r + 1) * P).some((x) => x === 1);
            expect(Math.abs(sum - (any ? 1 : 0))).toBeLessThan(1e-5);
            if (any && gate[r] === 1) reads++;
            // c_tok from the weights
            const want = new Float32Array(S);
            for (let i = 0; i < P; i++) for (let s = 0; s < S; s++) want[s] += weights[r * P + i] * v[(r * P + i) * S + s];
            for (let s = 0; s < S; s++) want[s] *= gate[r] * sScore[r];
            expect(maxAbsDiff(want, c.subarray(r * S, (r + 1) * S))).toBeLessThan(1e-5);
          }
        }
        disposeTree([tok, plain, traced, a.logits, b.logits, b.trace!]);
        plain = a.state;
        traced = b.state;
      }
      disposeTree([plain, traced, tokens, params]);
      // the run exercised what it checks: full pools evicted, and tokens read non-empty pools
      expect(evictions).toBeGreaterThan(0);
      expect(reads).toBeGreaterThan(0);
    });
  });
}
