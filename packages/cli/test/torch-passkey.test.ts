/**
 * The PyTorch fallback for passkey training (packages/memmamba/reference/memmamba_ref/passkey.py,
 * `python -m memmamba_ref.train --task passkey`): its samples and training rows are the TS ones
 * byte for byte (classic, random and book fillers; needle placement; loss masks), and a checkpoint
 * it trains loads in TS for `passkey` and `export-weights`.
 *
 * Needs torch for `/usr/bin/python3` (MEMMAMBA_PYTHON picks another); without it the tests are
 * skipped with a printed reason, except under CI=true, where they fail.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { disposeTree, random } from "@memmamba/tensor";
import { type FillerSpec, loadTexts, passkeySample, passkeyTrainingBatch } from "@memmamba/memmamba";
import { describe, expect, test } from "../../../test/support/harness.ts";
import type { CommandIO } from "../src/commands/common.ts";
import { passkeyCommand, runPasskey } from "../src/commands/passkey.ts";
import { readJsonl } from "../src/log.ts";
import { exportWeights, loadModelFile } from "../src/weights.ts";

const REF = new URL("../../memmamba/reference/", import.meta.url).pathname;
const PY = process.env.MEMMAMBA_PYTHON ?? "/usr/bin/python3";
const HAS_TORCH = spawnSync(PY, ["-c", "import torch"], { encoding: "utf8" }).status === 0;
const CI = process.env.CI === "true";

function py(args: string[]): string {
  const r = spawnSync(PY, args, { cwd: REF, encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1", PYTHONDONTWRITEBYTECODE: "1" }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${PY} ${args.join(" ")} exited ${r.status}:\n${(r.stderr ?? "").slice(-4000)}`);
  return r.stdout;
}

/** Two small "books" with Gutenberg markers, digits (they become "#") and sentence ends. */
function makeBooks(dir: string): string {
  const books = join(dir, "books");
  mkdirSync(books);
  const words = "it was the year 1843 and the river ran high. who could say? nobody! the 2 boats came home\nand then".split(" ");
  let s = 3;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % words.length;
  for (const [name, n] of [["a.txt", 900], ["b.txt", 1400]] as const) {
    const body = Array.from({ length: n }, () => words[next()]).join(" ");
    writeFileSync(join(books, name), `Header 12\n*** START OF THE BOOK\n${body}\n*** END OF THE BOOK\nfooter 99\n`);
  }
  return books;
}

const PY_DUMP = `
import json, sys
from memmamba_ref.data import load_texts
from memmamba_ref.passkey import Filler, passkey_sample, passkey_training_batch
from memmamba_ref.philox import fold_in, key_from_seed, key_at
docs = load_texts(sys.argv[1])
out = {}
for kind in ("classic", "random", "text"):
    f = Filler(kind, docs if kind == "text" else None)
    b = passkey_training_batch(fold_in(key_from_seed(7), 1), 3, 3, 300, f, answer_weight=2.0, other_weight=0.5)
    out[kind] = {"inputs": b.inputs.flatten().tolist(), "targets": b.targets.flatten().tolist(), "mask": b.mask.flatten().tolist(),
                 "passkeys": b.passkeys, "depths": b.depths,
                 "samples": [[list(s.prompt), s.passkey, s.needle_start] for s in
                             (passkey_sample(key_at(key_from_seed(11), L, i), L, d, f) for i, (L, d) in enumerate([(200, 0.0), (3000, 0.37), (3000, 1.0), (5000, 0.5)]))]}
print(json.dumps(out))
`;

describe("PyTorch passkey port", () => {
  const skip = !HAS_TORCH && !CI;
  if (skip) console.log(`torch-passkey: skipped: ${PY} cannot import torch (set MEMMAMBA_PYTHON)`);

  test("samples and training rows equal the TS ones byte for byte (classic, random, book filler)", () => {
    if (skip) return;
    const dir = mkdtempSync(join(tmpdir(), "mm-pypk-"));
    try {
      const books = makeBooks(dir);
      const got = JSON.parse(py(["-c", PY_DUMP, books]));
      const docs = loadTexts(books);
      for (const kind of ["classic", "random", "text"] as const) {
        const filler: FillerSpec = kind === "text" ? { kind, docs } : { kind };
        const b = passkeyTrainingBatch({ key: random.foldIn(random.key(7), 1), step: 3, batch: 3, seqLen: 300, filler, answerWeight: 2, otherWeight: 0.5 });
        const g = got[kind];
        expect(g.passkeys).toEqual(b.passkeys);
        expect(g.depths).toEqual(b.depths);
        expect(g.inputs).toEqual(Array.from(b.inputs));
        expect(g.targets).toEqual(Array.from(b.targets));
        expect(g.mask).toEqual(Array.from(b.mask));
        const cells: [number, number][] = [[200, 0], [3000, 0.37], [3000, 1], [5000, 0.5]];
        cells.forEach(([L, d], i) => {
          const s = passkeySample({ key: random.foldIn(random.foldIn(random.key(11), L), i), length: L, depth: d, filler });
          expect(g.samples[i][1]).toBe(s.passkey);
          expect(g.samples[i][2]).toBe(s.needleStart);
          expect(g.samples[i][0]).toEqual(Array.from(s.prompt));
        });
      }
      // the book filler really is book text: no digit but the pass key's, "#" where digits were
      const text = new TextDecoder().decode(Uint8Array.from(got.text.samples[3][0]));
      expect(text.replaceAll(got.text.samples[3][1], "")).not.toMatch(/\d/);
      expect(text).toContain("#");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("python -m memmamba_ref.train --task passkey trains; TS passkey and export-weights load its checkpoint", async () => {
    if (skip) return;
    const dir = mkdtempSync(join(tmpdir(), "mm-pypk-"));
    try {
      const books = makeBooks(dir);
      const out = join(dir, "run");
      py(["-m", "memmamba_ref.train", "--task", "passkey", "--filler", books, "--filler-split", "all", "--seq-len", "112", "--batch", "2",
        "--accum", "2", "--steps", "2", "--eval-every", "1", "--lr", "1e-3", "--warmup", "1", "--device", "cpu", "--out", out, "--quiet"]);
      const recs = readJsonl(join(out, "train.jsonl"));
      expect(recs.map((r) => r.step)).toEqual([1, 2]);
      expect(recs[0].lr).toBe(0); // warmup: the first update uses init (0), as TS linearWarmup
      expect(recs[1].lr).toBe(1e-3);
      for (const r of recs) {
        expect(r.evalLoss as number).toBeGreaterThan(0);
        expect(r.digitAcc as number).toBeGreaterThanOrEqual(0);
        expect(r.digitAcc as number).toBeLessThanOrEqual(1);
      }
      const ckpt = join(out, "checkpoint.safetensors");
      const m = loadModelFile(ckpt);
      expect(m.checkpoint.extra.task).toBe("passkey");
      expect(m.checkpoint.step).toBe(2);
      disposeTree(m.params);
      let text = "";
      const io: CommandIO = { out: (s) => void (text += s), err: (s) => void (text += s), progress: false };
      const rep = await runPasskey(passkeyCommand.parse(["--checkpoint", ckpt, "--filler", books, "--filler-split", "all", "--lengths", "150", "--depths", "0,1", "--samples", "1"]), io);
      expect(rep.results).toHaveLength(2);
      const w = join(dir, "w.safetensors");
      expect(exportWeights(ckpt, w, "F16").step).toBe(2);
      const back = loadModelFile(w);
      expect(back.config.kind).toBe("memmamba");
      disposeTree(back.params);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("refuses --data with --task passkey, and a too-short --seq-len", () => {
    if (skip) return;
    const r = spawnSync(PY, ["-m", "memmamba_ref.train", "--task", "passkey", "--data", "x"], { cwd: REF, encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--data is for --task text/);
    const s = spawnSync(PY, ["-m", "memmamba_ref.train", "--task", "passkey", "--seq-len", "40", "--steps", "1", "--out", join(tmpdir(), "mm-never")], { cwd: REF, encoding: "utf8" });
    expect(s.status).toBe(2);
    expect(s.stderr).toMatch(/--seq-len 40 is too short for the passkey task/);
  });
});
