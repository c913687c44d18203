/**
 * Gradients of whole blocks (every parameter tensor and the input) against central differences,
 * on a few random elements of each. The thresholds make a MemMamba layer piecewise: an element
 * whose ±h perturbation flips a write mask or a read gate is skipped (the step is not a
 * derivative there), and the test requires that almost none are.
 */
import { add, disposeTree, flattenTree, fromArray, mapTree, mul, noGrad, random, sum, tidy, valueAndGrad, type Tensor } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { initLayer, initTransformerLayer, memMambaLayer, preset, ropeTables, transformerLayer, type LayerResult, type ModelConfig, type PoolRead } from "../src/index.ts";
import { rng } from "./support.ts";

interface Inputs {
  params: unknown;
  x: Tensor;
}

/** The forward under test: its output and the piecewise decisions it took (as host numbers). */
type Forward = (inp: Inputs) => { out: Tensor; decisions: Tensor[] };

async function hostDecisions(ts: Tensor[]): Promise<string> {
  const parts = await Promise.all(ts.map((t) => t.data()));
  return parts.map((p) => Array.from(p).join(",")).join("|");
}

async function checkSomeGradients(f: Forward, inputs: Inputs, opts: { perLeaf: number; h: number; seed: number }) {
  const r = rng(opts.seed);
  const weights = tidy(() => random.normal(random.key(opts.seed), noGrad(() => f(inputs).out.shape) as number[]));
  const scalar = (inp: Inputs) => sum(mul(f(inp).out, weights));
  const { value, grads } = valueAndGrad(scalar)(inputs);
  value.dispose();
  const gradLeaves = flattenTree(grads);
  const baseDecisions = await (async () => {
    const run = noGrad(() => tidy(() => f(inputs).decisions));
    const s = await hostDecisions(run);
    disposeTree(run);
    return s;
  })();

  const lossAt = async (path: string, index: number, delta: number): Promise<{ loss: number; decisions: string }> => {
    const perturbed = mapTree(inputs, (t, p) => {
      if (p !== path) return t;
      const d = new Float32Array(t.size);
      d[index] = delta;
      return tidy(() => add(t, fromArray(d, [...t.shape])));
    });
    const run = noGrad(() => tidy(() => f(perturbed)));
    const out = (await run.out.data()) as Float32Array;
    const w = await weights.data();
    let loss = 0;
    for (let i = 0; i < out.length; i++) loss += out[i] * w[i];
    const decisions = await hostDecisions(run.decisions);
    disposeTree(run);
    for (const [p, t] of flattenTree(perturbed)) if (p === path) t.dispose();
    return { loss, decisions };
  };

  let checked = 0, skipped = 0, worst = 0;
  const failures: string[] = [];
  for (const [path, t] of flattenTree(inputs)) {
    if (t.dtype !== "f32") continue;
    const g = (await gradLeaves.find(([p]) => p === path)![1].data()) as Float32Array;
    const values = await t.data();
    const scale = Math.max(1e-2, ...Array.from(g).map(Math.abs));
    for (let k = 0; k < Math.min(opts.perLeaf, t.size); k++) {
      const i = Math.floor(r() * t.size);
      const h = opts.h * Math.max(1, Math.abs(values[i]));
      const plus = await lossAt(path, i, h);
      const minus = await lossAt(path, i, -h);
      if (plus.decisions !== baseDecisions || minus.decisions !== baseDecisions) {
        skipped++;
        continue;
      }
      checked++;
      const num = (plus.loss - minus.loss) / (2 * h);
      const ana = g[i];
      const ratio = Math.abs(num - ana) / (2e-2 * scale + 5e-2 * Math.abs(ana));
      worst = Math.max(worst, ratio);
      if (ratio > 1) failures.push(`${path}[${i}]: analytic ${ana}, numeric ${num}`);
    }
  }
  disposeTree([grads, weights]);
  return { checked, skipped, failures, worst };
}

describe("gradients against central differences", () => {
  for (const cfgCase of [
    // max pooling has kinks that a ±h step may straddle (a slope mix, not a bug): the smooth mean
    // pooling checks the rest tightly; one case keeps max
    { name: "two MemMamba layers (note block, cross-token, cross-layer, weighted fusion)", overrides: { memory: { pooling: "mean" } } },
    { name: "two MemMamba layers, max pooling, priority pool, gated fusion, I_state on the scan", overrides: { memory: { replacement: "priority", fusion: "gated", stateScore: "scan" } } },
    { name: "two MemMamba layers, conv1d fusion", overrides: { memory: { pooling: "mean", fusion: "conv1d" } } },
  ] as const) {
    test(cfgCase.name, async () => {
      const cfg: ModelConfig = preset("tiny", { memory: { poolSize: 3, replacement: "fifo", ...cfgCase.overrides.memory } } as never);
      const [k0, k1, kx] = random.split(random.key(21), 3);
      // weighted fusion starts at α = 0.1: raise it so the memory path's gradients are not tiny
      const params = tidy(() => mapTree([initLayer(k0, cfg, 0), initLayer(k1, cfg, 1)], (t, p) => (p.endsWith("scale") ? mul(t, 10) : t)));
      const x = random.normal(kx, [1, 10, cfg.dModel]);
      const f: Forward = ({ params, x }) => {
        const [p0, p1] = params as ReturnType<typeof initLayer>[];
        const reads: (PoolRead | undefined)[] = [];
        const r0: LayerResult = memMambaLayer(p0, x, cfg, 0, { reads, trace: true });
        reads.push(r0.read);
        const r1 = memMambaLayer(p1, r0.x, cfg, 1, { reads, trace: true });
        const decisions = [r0, r1].flatMap((r) => [r.trace!.write, r.trace!.readGate!, r.read!.index]);
        return { out: r1.x, decisions };
      };
      const res = await checkSomeGradients(f, { params, x }, { perLeaf: 3, h: 1e-2, seed: 5 });
      expect(res.failures).toEqual([]);
      expect(res.checked).toBeGreaterThan(60);
      expect(res.skipped).toBeLessThan(res.checked / 10);
      disposeTree([params, x]);
    });
  }

  test("a Transformer layer (rotary attention, SiLU MLP)", async () => {
    const cfg = preset("tiny", { kind: "transformer" });
    const params = initTransformerLayer(random.key(22), cfg);
    const x = random.normal(random.key(23), [1, 8, cfg.dModel]);
    const rope = ropeTables(8, cfg.dModel / cfg.transformer.nHeads, cfg.transformer.ropeBase);
    const f: Forward = ({ params, x }) => ({ out: transformerLayer(params as typeof paramsT, x, cfg, rope), decisions: [] });
    const paramsT = params;
    const res = await checkSomeGradients(f, { params, x }, { perLeaf: 3, h: 1e-2, seed: 6 });
    expect(res.failures).toEqual([]);
    disposeTree([params, x, rope]);
  });
});
