import { disposeTree, getBackend, noGrad, random, sliceAxis, tidy } from "@memmamba/tensor";
import { lm, preset } from "../src/index.ts";
import { randomTokens } from "./support.ts";
const L = 256;
const params = lm.init(random.key(0), preset("small", {}));
const data = randomTokens(1, 1, L + 1);
const x = tidy(() => sliceAxis(data, 1, 0, L)), y = tidy(() => sliceAxis(data, 1, 1, L + 1));
const be = getBackend() as any;
const orig = be.run.bind(be);
const acc = new Map<string, number>();
be.run = (prim: string, ins: any[], out: any, p: any) => {
  const t0 = performance.now(); orig(prim, ins, out, p);
  const k = prim + (prim === "matmul" || prim === "reduce" || prim === "binary" || prim === "unary" ? ":" + JSON.stringify(p) + " " + ins.map((i: any) => "[" + i.shape + "]").join("") : "");
  acc.set(k, (acc.get(k) ?? 0) + performance.now() - t0);
};
for (let i = 0; i < 2; i++) { acc.clear(); const l = noGrad(() => lm.loss(params, x, y)); await l.item(); l.dispose(); }
const rows = [...acc.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
for (const [k, v] of rows) console.log(v.toFixed(1).padStart(8), k);
console.log("total", [...acc.values()].reduce((a, b) => a + b, 0).toFixed(0));
disposeTree([params, data, x, y]);
