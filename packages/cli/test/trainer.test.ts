import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, getBackend, liveBuffers, setBackend } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { loadCheckpoint } from "../src/checkpoint.ts";
import { readJsonl } from "../src/log.ts";
import { runFiles, train, type TrainOptions } from "../src/trainer.ts";
import { FIXTURE_OPTIONS, linearData, linearModel } from "./fixtures/linear.ts";
import { runUntilThenKill } from "./fixtures/spawn.ts";
import { checkWellFormedXml } from "./svg.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "mm-train-"));
}

const base: Omit<TrainOptions, "out" | "steps"> = FIXTURE_OPTIONS;

/** Loss bits, to compare bit for bit (Object.is would also do; this shows them on failure). */
function bits(xs: number[]): string[] {
  const f = new Float64Array(1);
  const u = new BigUint64Array(f.buffer);
  return xs.map((x) => {
    f[0] = x;
    return u[0].toString(16);
  });
}

describe("trainer", () => {
  test("trains: the loss falls, the log, plot and checkpoint are written, nothing leaks", async () => {
    const dir = tmp();
    const live = liveBuffers();
    try {
      const r = await train(linearModel(), linearData, { ...base, steps: 30, out: dir });
      expect(r.status).toBe("done");
      expect(r.step).toBe(30);
      expect(r.records).toHaveLength(30);
      expect(r.records[29].loss).toBeLessThan(r.records[0].loss / 4);
      expect(r.records.every((x) => x.tokens === 32 && !x.skipped && Number.isFinite(x.gradNorm))).toBe(true);
      const files = runFiles(dir);
      expect(readJsonl(files.log).map((x) => x.step)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const svg = readFileSync(files.plot, "utf8");
      expect(checkWellFormedXml(svg)).toEqual([]);
      expect(svg).toContain('data-series="loss"');
      const ck = loadCheckpoint(files.checkpoint);
      expect(ck.step).toBe(30);
      expect(ck.dataPosition).toBe(120); // 30 steps × accum 4
      expect(ck.optim!.step).toBe(30);
      expect(ck.config).toEqual({ kind: "linear", features: 4 });
      expect(r.checkpointStep).toBe(30);
      expect(readdirSync(dir).sort()).toEqual(["checkpoint.safetensors", "loss.svg", "train.jsonl"]);
      disposeTree(r.params);
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--resume continues the exact loss curve of an uninterrupted run, bit for bit", async () => {
    const a = tmp();
    const b = tmp();
    try {
      const full = await train(linearModel(), linearData, { ...base, steps: 20, out: a });
      const first = await train(linearModel(), linearData, { ...base, steps: 10, out: b });
      expect(first.checkpointStep).toBe(10);
      // a new model instance and data source, as a new process would make
      const second = await train(linearModel(), linearData, { ...base, steps: 20, out: b, resume: true, seed: 999 /* ignored: the checkpoint's key wins */ });
      expect(second.records.map((x) => x.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
      const resumed = [...first.records, ...second.records].map((x) => x.loss);
      expect(bits(resumed)).toEqual(bits(full.records.map((x) => x.loss)));
      expect(bits(second.records.map((x) => x.gradNorm))).toEqual(bits(full.records.slice(10).map((x) => x.gradNorm)));
      // the log reads as one run
      expect(bits(readJsonl(runFiles(b).log).map((x) => x.loss as number))).toEqual(bits(full.records.map((x) => x.loss)));
      // and the final weights are identical
      const ca = loadCheckpoint(runFiles(a).checkpoint);
      const cb = loadCheckpoint(runFiles(b).checkpoint);
      expect(Array.from(cb.weights.w.data)).toEqual(Array.from(ca.weights.w.data));
      expect(Array.from(cb.optim!.v.w.data)).toEqual(Array.from(ca.optim!.v.w.data));
      disposeTree([full.params, first.params, second.params]);
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });

  test("resume after SIGKILL during a save: the old checkpoint loads and the curve is still exact", async () => {
    const a = tmp();
    const b = tmp();
    // the child process trains on the default backend (the TS reference kernels); so must we, to
    // compare bits, whatever backend an earlier test file in this process left current
    const before = getBackend();
    setBackend("cpu");
    try {
      const full = await train(linearModel(), linearData, { ...base, steps: 20, out: a });
      // the child saves at steps 5, 10, 15, 20; it is killed during the third save (step 15)
      const r = await runUntilThenKill(join(FIXTURES, "train-killed.ts"), [b, "3"], "SAVING");
      expect(r.signal).toBe("SIGKILL");
      expect(readdirSync(b).some((n) => n.startsWith("checkpoint.safetensors.tmp-"))).toBe(true);
      expect(loadCheckpoint(runFiles(b).checkpoint).step).toBe(10);
      expect(readJsonl(runFiles(b).log).length).toBe(15); // the child logged up to step 15

      const rest = await train(linearModel(), linearData, { ...base, steps: 20, out: b, resume: true });
      expect(rest.records[0].step).toBe(11);
      expect(bits(readJsonl(runFiles(b).log).map((x) => x.loss as number))).toEqual(bits(full.records.map((x) => x.loss)));
      expect(readdirSync(b).some((n) => n.includes(".tmp-"))).toBe(false); // the dead child's temporary file was cleared
      disposeTree([full.params, rest.params]);
    } finally {
      setBackend(before);
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });

  test("a NaN loss or a NaN gradient skips the step and reports it; the curve stays on course", async () => {
    const a = tmp();
    const b = tmp();
    const messages: string[] = [];
    try {
      const clean = await train(linearModel(), linearData, { ...base, steps: 12, out: a });
      // micro-batch 13 is in step 4 (accum 4), micro-batch 30 in step 8
      const r = await train(linearModel({ nanLossAt: [13], nanGradAt: [30] }), linearData, {
        ...base, steps: 12, out: b, progress: { stream: { write: (s: string) => void messages.push(s) }, tty: false, plainEverySec: 1e9 },
      });
      expect(r.status).toBe("done");
      expect(r.skipped).toEqual([4, 8]);
      expect(r.records[3].skipped).toBe(true);
      expect(r.records[3].reason).toBe("loss is NaN (micro-batch 2/4)");
      expect(r.records[7].reason).toBe("gradient norm is NaN");
      expect(Number.isFinite(r.records[7].loss)).toBe(true);
      // before the first bad step the runs agree; the skipped step changed nothing, so step 5
      // continues from the same weights as the clean run's step 4 did
      expect(bits(r.records.slice(0, 3).map((x) => x.loss))).toEqual(bits(clean.records.slice(0, 3).map((x) => x.loss)));
      expect(r.records.filter((x) => !x.skipped).every((x) => Number.isFinite(x.loss))).toBe(true);
      const text = messages.join("");
      expect(text).toContain("train: step 4 skipped: loss is NaN (micro-batch 2/4) (1 in a row; stopping at 5)");
      expect(text).toContain("train: step 8 skipped: gradient norm is NaN");
      const logged = readJsonl(runFiles(b).log);
      expect(logged[3]).toMatchObject({ step: 4, skipped: true, loss: "NaN" });
      const ck = loadCheckpoint(runFiles(b).checkpoint);
      expect(ck.optim!.step).toBe(10); // 12 steps, 2 skipped
      disposeTree([clean.params, r.params]);
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });

  test("repeated non-finite steps stop training cleanly, keeping the last good checkpoint", async () => {
    const dir = tmp();
    const messages: string[] = [];
    try {
      // every micro-batch from step 8 on is NaN: steps 8, 9, 10 fail, and maxBadSteps = 3 stops at 10
      const nan = Array.from({ length: 100 }, (_, i) => 28 + i);
      const r = await train(linearModel({ nanLossAt: nan }), linearData, {
        ...base, steps: 50, out: dir, maxBadSteps: 3, progress: { stream: { write: (s: string) => void messages.push(s) }, tty: false },
      });
      expect(r.status).toBe("diverged");
      expect(r.step).toBe(10);
      expect(r.skipped).toEqual([8, 9, 10]);
      expect(r.checkpointStep).toBe(5);
      const ck = loadCheckpoint(runFiles(dir).checkpoint);
      expect(ck.step).toBe(5);
      expect(messages.join("")).toContain("stopped after 3 consecutive non-finite steps at step 10; last good checkpoint:");
      expect(existsSync(runFiles(dir).plot)).toBe(true);
      disposeTree(r.params);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a fresh run over an earlier one (overwrite) shows none of its steps: an empty log, no plot until it saves; 0 steps save the initial state", async () => {
    const dir = tmp();
    try {
      const files = runFiles(dir);
      const first = await train(linearModel(), linearData, { ...base, steps: 3, out: dir });
      disposeTree(first.params);
      writeFileSync(join(dir, "notes.txt"), "not the trainer's");
      // 0 steps over it: the earlier run's curve and log rows are gone, the checkpoint is this run's (step 0)
      const zero = await train(linearModel(), linearData, { ...base, steps: 0, out: dir, overwrite: true });
      disposeTree(zero.params);
      expect(zero.status).toBe("done");
      expect(zero.checkpointStep).toBe(0);
      expect(loadCheckpoint(files.checkpoint).step).toBe(0);
      expect(readJsonl(files.log)).toEqual([]);
      expect(readdirSync(dir).sort()).toEqual(["checkpoint.safetensors", "notes.txt", "train.jsonl"]);
      expect(readFileSync(join(dir, "notes.txt"), "utf8")).toBe("not the trainer's");
      // that checkpoint is the initial state: resuming it is the uninterrupted run, bit for bit
      const resumed = await train(linearModel(), linearData, { ...base, steps: 3, out: dir, resume: true });
      disposeTree(resumed.params);
      expect(bits(resumed.records.map((x) => x.loss))).toEqual(bits(first.records.map((x) => x.loss)));
      expect(readJsonl(files.log).map((x) => x.step)).toEqual([1, 2, 3]);
      // a fresh run does not read the earlier log (a bad line in it is no error) and draws its own plot
      writeFileSync(files.log, "not json\n{\"step\": 7, \"loss\": 1}\n{\"note\": \"no step\"}\n");
      const again = await train(linearModel(), linearData, { ...base, steps: 2, out: dir, overwrite: true });
      disposeTree(again.params);
      expect(readJsonl(files.log).map((x) => x.step)).toEqual([1, 2]);
      expect(readFileSync(files.plot, "utf8")).toContain('data-series="loss"');
      // without a checkpoint to replace (an earlier run that stopped before its first save), the same
      rmSync(files.checkpoint);
      const timedOut = await train(linearModel(), linearData, { ...base, steps: 2, out: dir, deadline: Date.now() - 1 });
      disposeTree(timedOut.params);
      expect(timedOut.checkpointStep).toBeUndefined();
      expect(readdirSync(dir).sort()).toEqual(["notes.txt", "train.jsonl"]);
      expect(readJsonl(files.log)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("resume refuses a checkpoint whose log stops short of it (an --overwrite run that ended before its first save); a missing log is none", async () => {
    const dir = tmp();
    try {
      const files = runFiles(dir);
      const first = await train(linearModel(), linearData, { ...base, steps: 4, out: dir });
      disposeTree(first.params);
      // an --overwrite run that stops before its first save: the step-4 checkpoint stays beside a new, empty log
      const cut = await train(linearModel(), linearData, { ...base, steps: 3, out: dir, overwrite: true, deadline: Date.now() - 1 });
      disposeTree(cut.params);
      expect(cut.checkpointStep).toBeUndefined();
      expect(loadCheckpoint(files.checkpoint).step).toBe(4);
      // a log that ends before the checkpoint's step is another run's: refused, nothing changed
      writeFileSync(files.log, '{"step": 1, "loss": 1}\n{"step": 2, "loss": 1}\n');
      await expect(train(linearModel(), linearData, { ...base, steps: 6, out: dir, resume: true })).rejects.toThrow(
        `${files.checkpoint}: holds step 4, but ${files.log} ends at step 2: they are not one run's (was an --overwrite run stopped before its first save?)`,
      );
      expect(readJsonl(files.log).map((x) => x.step)).toEqual([1, 2]);
      // the run's own log (here: emptied by that run, so no step in it) resumes, as does one moved away
      writeFileSync(files.log, "");
      const resumed = await train(linearModel(), linearData, { ...base, steps: 6, out: dir, resume: true });
      disposeTree(resumed.params);
      expect(resumed.step).toBe(6);
      expect(readJsonl(files.log).map((x) => x.step)).toEqual([5, 6]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("resume refuses a checkpoint of another model config; a fresh run refuses to replace a checkpoint", async () => {
    const dir = tmp();
    try {
      const r = await train(linearModel(), linearData, { ...base, steps: 2, out: dir });
      disposeTree(r.params);
      const other = { ...linearModel(), config: { kind: "linear", features: 5 } };
      let err: unknown;
      try {
        await train(other, linearData, { ...base, steps: 4, out: dir, resume: true });
      } catch (e) {
        err = e;
      }
      expect(String(err)).toContain(`${runFiles(dir).checkpoint}: was written for another model config (features: 4 in the checkpoint, 5 now)`);
      // a fresh run never silently replaces an existing checkpoint
      await expect(train(linearModel(), linearData, { ...base, steps: 4, out: dir })).rejects.toThrow(
        `${runFiles(dir).checkpoint}: a checkpoint is already here: resume it (--resume), or choose another --out, or pass --overwrite to start afresh`,
      );
      expect(loadCheckpoint(runFiles(dir).checkpoint).step).toBe(2);
      const again = await train(linearModel(), linearData, { ...base, steps: 3, out: dir, overwrite: true });
      disposeTree(again.params);
      expect(loadCheckpoint(runFiles(dir).checkpoint).step).toBe(3);
      expect(readJsonl(runFiles(dir).log).map((x) => x.step)).toEqual([1, 2, 3]);
      await expect(train(linearModel(), linearData, { ...base, steps: 4, out: join(dir, "none"), resume: true })).rejects.toThrow(
        `${join(dir, "none", "checkpoint.safetensors")}: checkpoint not found (no such file)`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
