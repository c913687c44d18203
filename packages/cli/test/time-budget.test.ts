/**
 * The trainer's time budget (`deadline`, `train --max-minutes`): it stops at a step boundary,
 * writes the checkpoint of the last step and reports "timeout"; resuming continues the exact loss
 * curve of an uninterrupted run, so one long run can span several time-limited jobs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { loadCheckpoint } from "../src/checkpoint.ts";
import type { CommandIO } from "../src/commands/common.ts";
import { passkeyCommand } from "../src/commands/passkey.ts";
import { runTrain, trainCommand } from "../src/commands/train.ts";
import { readJsonl } from "../src/log.ts";
import { runFiles, train } from "../src/trainer.ts";
import { FIXTURE_OPTIONS, linearData, linearModel } from "./fixtures/linear.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("trainer time budget", () => {
  test("stops at a step boundary with a checkpoint; resume continues the same curve", async () => {
    const a = mkdtempSync(join(tmpdir(), "mm-budget-"));
    const b = mkdtempSync(join(tmpdir(), "mm-budget-"));
    try {
      const full = await train(linearModel(), linearData, { ...FIXTURE_OPTIONS, steps: 40, out: a });
      // every step takes at least 50 ms (onStep waits), the budget is 500 ms: it stops early
      const t0 = Date.now();
      const first = await train(linearModel(), linearData, {
        ...FIXTURE_OPTIONS, steps: 40, out: b, deadline: Date.now() + 500, onStep: () => sleep(50),
      });
      const took = Date.now() - t0;
      expect(first.status).toBe("timeout");
      expect(first.step).toBeGreaterThan(0);
      expect(first.step).toBeLessThan(40);
      expect(first.records.map((r) => r.step)).toEqual(Array.from({ length: first.step }, (_, i) => i + 1));
      expect(took).toBeLessThan(500 + 1000); // it did not run on to the end (40 × 50 ms)
      expect(first.checkpointStep).toBe(first.step); // saved at the stop, also off the checkpointEvery grid
      expect(loadCheckpoint(runFiles(b).checkpoint).step).toBe(first.step);
      const second = await train(linearModel(), linearData, { ...FIXTURE_OPTIONS, steps: 40, out: b, resume: true });
      expect(second.status).toBe("done");
      expect(readJsonl(runFiles(b).log).map((r) => r.loss)).toEqual(full.records.map((r) => r.loss));
      disposeTree([full.params, first.params, second.params]);
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });

  test("a deadline already past takes no step and writes nothing; --max-minutes must be positive", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-budget-"));
    try {
      const r = await train(linearModel(), linearData, { ...FIXTURE_OPTIONS, steps: 5, out: dir, deadline: Date.now() - 1 });
      expect(r.status).toBe("timeout");
      expect(r.step).toBe(0);
      expect(r.checkpointStep).toBeUndefined();
      disposeTree(r.params);
      expect(() => trainCommand.parse(["--max-minutes", "0"])).toThrow(/--max-minutes/);
      expect(() => trainCommand.parse(["--max-minutes", "soon"])).toThrow(/--max-minutes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("train --max-minutes (counted from the process start) stops and says how to continue", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-budget-cli-"));
    try {
      let text = "";
      const io: CommandIO = { out: (s) => void (text += s), err: (s) => void (text += s), progress: false };
      // the test process started well over 0.001 min (60 ms) ago: no step fits
      const r = await runTrain(trainCommand.parse(["--seq-len", "112", "--batch", "1", "--steps", "3", "--max-minutes", "0.001", "--out", join(dir, "run")]), io);
      expect(r.status).toBe("timeout");
      expect(r.step).toBe(0);
      expect(text).toMatch(/stopped by --max-minutes 0\.001 before the first step ended .*no checkpoint written/);
      disposeTree(r.params);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("passkey filler split flags", () => {
  test("the commands' defaults: train on the training books, evaluate on the held-out ones", () => {
    expect(trainCommand.parse([]).flags.fillerSplit).toBe("train");
    expect(passkeyCommand.parse([]).flags.fillerSplit).toBe("validation");
    expect(passkeyCommand.parse(["--filler-split", "all"]).flags.fillerSplit).toBe("all");
    expect(() => passkeyCommand.parse(["--filler-split", "dev"])).toThrow(/--filler-split/);
  });
});
