import { disposeTree, noGrad, random, sliceAxis, tidy, valueAndGrad, readCounters, resetCounters } from "@memmamba/tensor";
import { lm, preset, type LMParams, type ConfigOverrides } from "../src/index.ts";
import { randomTokens } from "./support.ts";
const L = 256;
const cases: [string, ConfigOverrides][] = [
  ["mamba", { kind: "mamba" }],
  ["notes only", { memory: { crossToken: false, crossLayer: { enabled: false } } }],
  ["+crossToken", { memory: { crossLayer: { enabled: false } } }],
  ["full", {}],
];
for (const [name, o] of cases) {
  const params = lm.init(random.key(0), preset("small", o));
  const data = randomTokens(1, 1, L + 1);
  const x = tidy(() => sliceAxis(data, 1, 0, L)), y = tidy(() => sliceAxis(data, 1, 1, L + 1));
  const fw: number[] = [];
  for (let i = 0; i < 5; i++) {
    resetCounters();
    const t0 = performance.now();
    const l = noGrad(() => lm.loss(params, x, y)); await l.item(); l.dispose();
    fw.push(performance.now() - t0);
  }
  const c = readCounters();
  console.log(name, "min", Math.min(...fw).toFixed(0), "launches", c.launches, "Mflop", (c.flops / 1e6).toFixed(0), "MB", (c.bytes / 1e6).toFixed(0));
  disposeTree([params, data, x, y]);
}
