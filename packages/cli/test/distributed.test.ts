/**
 * The PyTorch port (packages/memmamba/reference) against the TypeScript trainer: the config schema,
 * the data windows, checkpoints both ways (weights, AdamW moments, step, key, data position) with
 * equal logits, a 2-process gloo DDP run, and refusal of bad checkpoints on both sides. The
 * Python unittest modules (reference/tests/) run here too, one test each, so the count includes
 * them.
 *
 * Needs torch for `/usr/bin/python3` (Debian's python3-torch; MEMMAMBA_PYTHON picks another). Without
 * it the torch tests are skipped with a printed reason, except under CI=true, where they fail.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { decodeSafetensors, disposeTree, encodeSafetensors, fromArray, random, type StTensor } from "@memmamba/tensor";
import { lm, loadTexts, parseConfig, preset, splitTexts, WindowSampler } from "@memmamba/memmamba";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { CheckpointError, loadCheckpoint, restoreState } from "../src/checkpoint.ts";
import { lmTrainable, tokenSource } from "../src/adapters.ts";
import { readJsonl } from "../src/log.ts";
import { train } from "../src/trainer.ts";
import { configSchemaText, SCHEMA_PATH } from "../../memmamba/reference/export-config-schema.ts";

const REF = new URL("../../memmamba/reference/", import.meta.url).pathname;
const PY = process.env.MEMMAMBA_PYTHON ?? "/usr/bin/python3";
const probe = spawnSync(PY, ["-c", "import torch"], { encoding: "utf8" });
const HAS_TORCH = probe.status === 0;
const CI = process.env.CI === "true";
const LONG = 300_000;

function py(args: string[], opts: { ok?: boolean } = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(PY, args, { cwd: REF, encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1", PYTHONDONTWRITEBYTECODE: "1" }, maxBuffer: 64 << 20 });
  const out = { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
  if (opts.ok !== false && out.status !== 0) throw new Error(`${PY} ${args.join(" ")} exited ${out.status}:\n${out.stderr.slice(-4000)}`);
  return out;
}

/** Three small documents (deterministic), in a fresh directory. */
function makeData(dir: string): string {
  const words = "the quick brown fox jumps over a lazy dog and then some more text follows here".split(" ");
  let s = 1;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % words.length;
  const data = join(dir, "data");
  mkdirSync(data);
  for (const [name, n] of [["a.txt", 3000], ["b.txt", 1500], ["c.txt", 900]] as const) {
    writeFileSync(join(data, name), Array.from({ length: n }, () => words[next()]).join(" "));
  }
  return data;
}

const SEQ = 32, BATCH = 2, ACCUM = 4, SEED = 7;
const COMMON = (data: string) => ["--data", data, "--seq-len", String(SEQ), "--batch", String(BATCH), "--accum", String(ACCUM), "--seed", String(SEED), "--eval-every", "0", "--quiet"];

/** Logits of `tokens` under a checkpoint's weights, computed by the TS model. */
async function tsLogits(path: string, tokens: Int32Array, shape: [number, number]): Promise<Float32Array> {
  const ck = loadCheckpoint(path);
  const config = parseConfig(ck.config);
  const template = lm.init(random.key(0), config);
  let params;
  try {
    params = restoreState(ck, template).params;
  } finally {
    disposeTree(template);
  }
  const t = fromArray(tokens, shape, "i32");
  const out = lm.apply(params, t).logits;
  const v = Float32Array.from(await out.data());
  disposeTree([params, t, out]);
  return v;
}

function readLogits(path: string): { tokens: Int32Array; shape: [number, number]; logits: Float32Array } {
  const d = decodeSafetensors(new Uint8Array(readFileSync(path)), { source: path });
  const tok = d.tensors.tokens;
  return { tokens: tok.data as Int32Array, shape: [tok.shape[0], tok.shape[1]], logits: d.tensors.logits.data as Float32Array };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A copy of a checkpoint file with its tensors edited (metadata kept). */
function mutate(src: string, dst: string, edit: (t: Record<string, StTensor>) => void): string {
  const d = decodeSafetensors(new Uint8Array(readFileSync(src)), { source: src });
  const tensors = { ...d.tensors } as Record<string, StTensor>;
  edit(tensors);
  writeFileSync(dst, encodeSafetensors(tensors, d.metadata));
  return dst;
}

describe("PyTorch port: config schema", () => {
  test("the committed config.schema.json equals what the TS zod schema exports", () => {
    expect(readFileSync(SCHEMA_PATH, "utf8")).toBe(configSchemaText());
  });
});

if (!HAS_TORCH && !CI) {
  console.warn(`distributed.test.ts: SKIPPING the PyTorch tests: \`${PY} -c "import torch"\` failed (${(probe.stderr || String(probe.error ?? "")).trim().split("\n").pop()}); install python3-torch (or set MEMMAMBA_PYTHON) to run them`);
} else {
  const dir = mkdtempSync(join(tmpdir(), "mm-dist-"));
  const data = makeData(dir);

  describe("PyTorch port", () => {
    test("torch is importable (CI installs python3-torch)", () => {
      expect(probe.stderr).toBe("");
      expect(probe.status).toBe(0);
    });

    for (const mod of ["test_philox", "test_config_schema", "test_checkpoint", "test_distributed"]) {
      test(`python unittest tests.${mod}`, () => {
        const r = py(["-m", "unittest", "-v", `tests.${mod}`], { ok: false });
        if (r.status !== 0) throw new Error(`tests.${mod} failed:\n${r.stderr.slice(-6000)}`);
        expect(r.stderr).toMatch(/\nOK\b/);
      }, LONG);
    }

    test("the training windows of (seed, step, row) equal the TS WindowSampler's", () => {
      const split = splitTexts(loadTexts(data));
      const sampler = new WindowSampler(split.train, SEQ, random.foldIn(random.key(SEED), 1));
      const pairs: [number, number][] = [[0, 0], [0, 1], [3, 1], [7, 0], [123, 5], [100000, 2]];
      const ts = pairs.map(([i, r]) => {
        const o = sampler.batch(i, r + 1).origins[r];
        return [o.doc, o.start];
      });
      const out = JSON.parse(py(["-m", "memmamba_ref.tool", "origins", "--data", data, "--seq-len", String(SEQ), "--seed", String(SEED),
        "--index-rows", pairs.map(([i, r]) => `${i}:${r}`).join(",")]).stdout);
      expect(out.windows).toBe(sampler.windows);
      expect(out.origins).toEqual(ts);
    }, LONG);

    test("a 2-process gloo DDP run trains tiny; its checkpoint loads in TS with equal logits", async () => {
      const out = join(dir, "ddp");
      py(["-m", "memmamba_ref.launch", "--nproc", "2", "memmamba_ref.train", ...COMMON(data), "--steps", "3", "--out", out,
        "--backend", "gloo", "--device", "cpu", "--save-logits", join(out, "logits.safetensors")]);
      const recs = readJsonl(join(out, "train.jsonl"));
      expect(recs.map((r) => r.step)).toEqual([1, 2, 3]);
      expect(recs.every((r) => r.world === 2 && Number.isFinite(r.loss as number))).toBe(true);
      const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
      expect(ck.step).toBe(3);
      expect(ck.dataPosition).toBe(3 * ACCUM);
      expect(ck.key).toEqual(random.key(SEED));
      expect(ck.optim!.step).toBe(3);
      const ref = readLogits(join(out, "logits.safetensors"));
      const ours = await tsLogits(ck.path, ref.tokens, ref.shape);
      const diff = maxAbsDiff(ours, ref.logits);
      console.log(`distributed: DDP checkpoint, TS vs torch logits max |diff| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);
    }, LONG);

    test("a TS checkpoint loads in PyTorch with equal logits and resumes there; the result loads back in TS", async () => {
      const tsOut = join(dir, "ts");
      const config = preset("tiny");
      const model = lmTrainable(lm, config);
      const split = splitTexts(loadTexts(data));
      const source = (key: random.Key) => {
        const s = new WindowSampler(split.train, SEQ, key);
        return tokenSource((i) => s.batch(i, BATCH));
      };
      const opts = { out: tsOut, accum: ACCUM, seed: SEED, progress: false as const, extra: { task: "text", seqLen: String(SEQ) } };
      const r2 = await train(model, source, { ...opts, steps: 2 });
      disposeTree(r2.params);
      const ts2 = join(dir, "ts-step2.safetensors");
      copyFileSync(join(tsOut, "checkpoint.safetensors"), ts2);

      // 1. equal logits on the same weights
      const pyLogits = join(dir, "ts2-logits.safetensors");
      py(["-m", "memmamba_ref.tool", "logits", "--checkpoint", ts2, "--out", pyLogits]);
      const ref = readLogits(pyLogits);
      const diff = maxAbsDiff(await tsLogits(ts2, ref.tokens, ref.shape), ref.logits);
      console.log(`distributed: TS checkpoint, TS vs torch logits max |diff| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);

      // 2. resume in PyTorch for step 3 (same weights, moments and data windows as TS's step 3)
      const pyOut = join(dir, "py-resumed");
      py(["-m", "memmamba_ref.train", ...COMMON(data), "--steps", "3", "--out", pyOut, "--resume", ts2, "--save-logits", join(pyOut, "logits.safetensors")]);
      const pyRecs = readJsonl(join(pyOut, "train.jsonl"));
      expect(pyRecs.map((r) => r.step)).toEqual([3]);
      const r3 = await train(model, source, { ...opts, steps: 3, resume: true });
      disposeTree(r3.params);
      const tsLoss = r3.records[0].loss, pyLoss = pyRecs[0].loss as number;
      console.log(`distributed: step 3 loss TS ${tsLoss} torch ${pyLoss}`);
      expect(Number.isFinite(pyLoss)).toBe(true);
      expect(Math.abs(tsLoss - pyLoss)).toBeLessThan(1e-4);

      // 3. the PyTorch checkpoint loads back in TS, logits equal torch's
      const back = loadCheckpoint(join(pyOut, "checkpoint.safetensors"));
      expect([back.step, back.optim!.step, back.dataPosition]).toEqual([3, 3, 3 * ACCUM]);
      const ref3 = readLogits(join(pyOut, "logits.safetensors"));
      expect(maxAbsDiff(await tsLogits(back.path, ref3.tokens, ref3.shape), ref3.logits)).toBeLessThan(1e-4);
      // and its weights are within float32 noise of TS's own step 3 (same update, two implementations)
      const tsW = loadCheckpoint(join(tsOut, "checkpoint.safetensors")).weights;
      let wmax = 0;
      for (const [k, h] of Object.entries(back.weights)) wmax = Math.max(wmax, maxAbsDiff(h.data as Float32Array, tsW[k].data as Float32Array));
      console.log(`distributed: step-3 weights, TS vs torch max |diff| = ${wmax.toExponential(2)}`);
      expect(wmax).toBeLessThan(1e-4);
    }, LONG);

    test("corrupted or mismatched checkpoints are refused on both sides, naming the tensor", () => {
      const out = join(dir, "bad");
      mkdirSync(out);
      const good = join(dir, "ddp", "checkpoint.safetensors"); // written by PyTorch above
      // TS refuses a PyTorch checkpoint with a tensor of the wrong shape / a missing tensor
      const shape = mutate(good, join(out, "shape.safetensors"), (t) => {
        for (const p of ["", "optim.m.", "optim.v."]) t[`${p}layers.0.mamba.D`] = { dtype: "F32", shape: [3], data: new Float32Array(3) };
      });
      const template = lm.init(random.key(0), preset("tiny"));
      try {
        expect(() => restoreState(loadCheckpoint(shape), template)).toThrow(/tensor "layers\.0\.mamba\.D" has shape \[3\]/);
        const missing = mutate(good, join(out, "missing.safetensors"), (t) => {
          for (const p of ["", "optim.m.", "optim.v."]) delete t[`${p}layers.1.note.summary.w`];
        });
        expect(() => restoreState(loadCheckpoint(missing), template)).toThrow(CheckpointError);
        expect(() => restoreState(loadCheckpoint(missing), template)).toThrow(/"layers\.1\.note\.summary\.w".*missing/);
      } finally {
        disposeTree(template);
      }
      // PyTorch refuses a TS checkpoint with a missing moment / a wrong shape / another config
      const ts2 = join(dir, "ts-step2.safetensors");
      const noMoment = mutate(ts2, join(out, "nomoment.safetensors"), (t) => delete t["optim.v.embed"]);
      let r = py(["-m", "memmamba_ref.tool", "check", "--checkpoint", noMoment], { ok: false });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('tensor "optim.v.embed"');
      const wrong = mutate(ts2, join(out, "wrong.safetensors"), (t) => {
        for (const p of ["", "optim.m.", "optim.v."]) t[`${p}norm.weight`] = { dtype: "F32", shape: [31], data: new Float32Array(31) };
      });
      r = py(["-m", "memmamba_ref.tool", "check", "--checkpoint", wrong], { ok: false });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('tensor "norm.weight" has shape [31]');
      const other = join(out, "other.json");
      writeFileSync(other, JSON.stringify({ ...preset("tiny"), memory: { ...preset("tiny").memory, poolSize: 9 } }));
      r = py(["-m", "memmamba_ref.tool", "check", "--checkpoint", ts2, "--config", other], { ok: false });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("memory.poolSize: 8 in the checkpoint, 9 now");
      const trunc = join(out, "trunc.safetensors");
      const bytes = readFileSync(ts2);
      writeFileSync(trunc, bytes.subarray(0, bytes.length - 64));
      r = py(["-m", "memmamba_ref.tool", "check", "--checkpoint", trunc], { ok: false });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain("trunc.safetensors");
      expect(() => loadCheckpoint(trunc)).toThrow(CheckpointError);
    }, LONG);
  });
}
