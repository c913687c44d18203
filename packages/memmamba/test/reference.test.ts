/**
 * Parity with the PyTorch reference (packages/memmamba/reference): for each committed fixture, our
 * model with the fixture's weights must give the reference's logits, loss and the gradient of the
 * loss with respect to every parameter, and take the same threshold decisions. Torch is not needed
 * here: the fixtures are files (regenerate them with packages/memmamba/reference/regen-fixtures.sh).
 *
 * Tolerances (the reference runs in float64; we run in float32):
 *   logits, loss   |ours − ref| ≤ 1e-4 (absolute; logits are O(1) by construction of the weights)
 *   gradients      |ours − ref| ≤ 1e-4 · max(max |ref| over that tensor, 1e-3) per element, i.e. 1e-4
 *                  relative to the tensor's own scale (a gradient's entries span orders of magnitude,
 *                  so a pure per-element relative bound would judge rounding noise on near-zero
 *                  entries; the floor keeps an all-but-zero tensor from demanding 1e-10 absolute)
 *   decisions      write masks (I_token > τ1) and read gates (I_state > τ2) equal exactly
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import process from "node:process";
import {
  disposeTree, flattenTree, fromArray, mapTree, noGrad, random, showShape, valueAndGrad, type Tensor,
} from "@memmamba/tensor";
import { decodeSafetensors, type StTensor } from "../../tensor/src/io/safetensors.ts";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { initLM, lm, parseConfig, type LMParams } from "../src/index.ts";

// REFERENCE_FIXTURES: another fixtures directory (e.g. one regenerated on another torch), with a trailing slash
const DIR = process.env.REFERENCE_FIXTURES ?? new URL("./fixtures/reference/", import.meta.url).pathname;
const LOGIT_TOL = 1e-4;
const GRAD_TOL = 1e-4;
const GRAD_FLOOR = 1e-3;

interface ManifestEntry {
  name: string;
  kind: string;
}

function readSt(path: string): Record<string, StTensor> {
  return decodeSafetensors(new Uint8Array(readFileSync(path)), { source: path }).tensors;
}

function f32(t: StTensor, what: string): Float32Array {
  if (t.dtype !== "F32") throw new Error(`${what}: expected F32, got ${t.dtype}`);
  return t.data as Float32Array;
}

/** The fixture's weights as our parameter tree: every TS path present, same shapes, nothing else. */
function loadParams(dir: string): LMParams {
  const cfg = parseConfig(JSON.parse(readFileSync(`${dir}config.json`, "utf8")));
  const weights = readSt(`${dir}weights.safetensors`);
  const template = initLM(random.key(0), cfg);
  const want = new Set<string>();
  for (const [path, t] of flattenTree(template)) {
    want.add(path);
    const w = weights[path];
    if (!w) throw new Error(`${dir}: parameter "${path}" ${showShape(t.shape)} is missing from weights.safetensors`);
    if (w.shape.join(",") !== t.shape.join(",")) throw new Error(`${dir}: "${path}" is ${showShape(w.shape)} in the file, ${showShape(t.shape)} in the model`);
  }
  for (const name of Object.keys(weights)) if (!want.has(name)) throw new Error(`${dir}: "${name}" in weights.safetensors is not a parameter`);
  const params = mapTree(template, (t, path) => fromArray(f32(weights[path], path), [...t.shape]) as Tensor);
  disposeTree(template);
  return params;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** max |a − b| and the index where it is reached. */
function worstDiff(a: ArrayLike<number>, b: ArrayLike<number>): { diff: number; at: number } {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  let diff = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= diff)) [diff, at] = [d, i]; // NaN counts as the worst
  }
  return { diff, at };
}

const manifest = JSON.parse(readFileSync(`${DIR}manifest.json`, "utf8")) as { torch: string; fixtures: ManifestEntry[] };

describe("parity with the PyTorch reference", () => {
  test("the fixtures cover the three kinds and are small", () => {
    const kinds = new Set(manifest.fixtures.map((f) => f.kind));
    expect([...kinds].sort()).toEqual(["mamba", "memmamba", "transformer"]);
    let bytes = 0;
    const walk = (dir: string): void => {
      for (const f of readdirSync(dir)) {
        const s = statSync(`${dir}${f}`);
        if (s.isDirectory()) walk(`${dir}${f}/`);
        else bytes += s.size;
      }
    };
    walk(DIR);
    expect(bytes).toBeLessThan(1_000_000);
  });

  for (const { name } of manifest.fixtures) {
    test(`${name}: logits, loss, every gradient and the threshold decisions`, async () => {
      const dir = `${DIR}${name}/`;
      const params = loadParams(dir);
      const inputs = readSt(`${dir}inputs.safetensors`);
      const expected = readSt(`${dir}expected.safetensors`);
      const tokens = fromArray(inputs.tokens.data as Int32Array, [...inputs.tokens.shape], "i32");
      const targets = fromArray(inputs.targets.data as Int32Array, [...inputs.targets.shape], "i32");
      const failures: string[] = [];
      const report: string[] = [];

      // logits and the decisions
      const out = noGrad(() => lm.apply(params, tokens, { trace: true }));
      expect([...out.logits.shape]).toEqual(expected.logits.shape);
      const logits = worstDiff(await out.logits.data(), f32(expected.logits, "logits"));
      report.push(`logits ${logits.diff.toExponential(2)}`);
      if (!(logits.diff <= LOGIT_TOL)) failures.push(`logits differ by ${logits.diff} at flat index ${logits.at}`);
      for (const [l, t] of (out.aux.trace ?? []).entries()) {
        const checks: [string, Tensor | undefined][] = [["write", t.write], ["readGate", t.readGate]];
        for (const [what, ours] of checks) {
          const ref = expected[`trace.${l}.${what}`];
          if (!ref && !ours) continue;
          if (!ref || !ours) {
            failures.push(`layer ${l}: ${what} present on ${ours ? "our" : "the reference"} side only`);
            continue;
          }
          const d = worstDiff(await ours.data(), f32(ref, what));
          if (d.diff !== 0) failures.push(`layer ${l}: ${what} differs at flat index ${d.at}`);
        }
      }

      // loss and gradients
      const { value, grads } = valueAndGrad((p: LMParams) => lm.loss(p, tokens, targets))(params);
      const loss = Math.abs((await value.data())[0] - f32(expected.loss, "loss")[0]);
      report.push(`loss ${loss.toExponential(2)}`);
      if (!(loss <= LOGIT_TOL)) failures.push(`loss differs by ${loss}`);
      let worstRel = 0, worstPath = "";
      const gradPaths = new Set<string>();
      for (const [path, g] of flattenTree(grads)) {
        gradPaths.add(path);
        const ref = expected[`grad.${path}`];
        if (!ref) {
          failures.push(`grad.${path} is missing from expected.safetensors`);
          continue;
        }
        const refData = f32(ref, `grad.${path}`);
        const scale = Math.max(maxAbs(refData), GRAD_FLOOR);
        const d = worstDiff(await g.data(), refData);
        const rel = d.diff / scale;
        if (!(rel <= worstRel)) [worstRel, worstPath] = [rel, path];
        if (!(rel <= GRAD_TOL)) failures.push(`grad ${path}: differs by ${d.diff} at flat index ${d.at} (tensor scale ${scale})`);
      }
      for (const k of Object.keys(expected)) {
        if (k.startsWith("grad.") && !gradPaths.has(k.slice(5))) failures.push(`${k} in the fixture is not a parameter gradient of ours`);
      }
      report.push(`grads ${worstRel.toExponential(2)} of scale (worst: ${worstPath})`);
      if (process.env.REFERENCE_REPORT) console.log(`${name}: ${report.join(", ")}`);
      disposeTree([params, tokens, targets, out, value, grads]);
      expect(failures).toEqual([]);
    });
  }
});
