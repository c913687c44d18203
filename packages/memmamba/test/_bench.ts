import { disposeTree, noGrad, random, sliceAxis, tidy, valueAndGrad, liveBuffers } from "@memmamba/tensor";
import { lm, preset, type LMParams } from "../src/index.ts";
import { randomTokens } from "./support.ts";
const L = 256;
for (const kind of ["memmamba", "mamba", "transformer"] as const) {
  const params = lm.init(random.key(0), preset("small", { kind }));
  const data = randomTokens(1, 1, L + 1);
  const x = tidy(() => sliceAxis(data, 1, 0, L)), y = tidy(() => sliceAxis(data, 1, 1, L + 1));
  const vg = valueAndGrad((p: LMParams) => lm.loss(p, x, y));
  const fw: number[] = [], fb: number[] = [];
  for (let i = 0; i < 4; i++) {
    let t0 = performance.now();
    const l = noGrad(() => lm.loss(params, x, y)); await l.item(); l.dispose();
    fw.push(performance.now() - t0);
    t0 = performance.now();
    const { value, grads } = vg(params); await value.item();
    fb.push(performance.now() - t0);
    disposeTree([value, grads]);
  }
  const med = (a: number[]) => a.slice(1).sort((p, q) => p - q)[1].toFixed(0);
  console.log(`${kind}: forward ${med(fw)} ms, forward+backward ${med(fb)} ms (median of 3 after a warm-up), live ${liveBuffers()}`);
  disposeTree([params, data, x, y]);
}
