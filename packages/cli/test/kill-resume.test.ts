/**
 * The real `train` process (src/bin/train.ts, under the runtime running this test) killed with
 * SIGKILL in the middle of checkpoint saves, then resumed with --resume: the checkpoint on disk is
 * always the previous complete one or the new complete one, and the resumed run's log equals an
 * uninterrupted run's bit for bit. The kill moments come from the MEMMAMBA_TEST_SAVE_HANG hook
 * (src/save-hook.ts): the child says where it stands in the save and waits to be killed there.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { CheckpointError, loadCheckpoint } from "../src/checkpoint.ts";
import { readJsonl } from "../src/log.ts";
import { SAVE_HANG_ENV } from "../src/save-hook.ts";
import { runFiles } from "../src/trainer.ts";
import { runToEnd, runUntilThenKill, type SpawnOptions } from "./fixtures/spawn.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const TRAIN = new URL("../src/bin/train.ts", import.meta.url).pathname;

/** The passkey task at the smallest size the CLI takes: 8 steps, a checkpoint every 2 (saves at 2, 4, 6, 8). */
function trainArgs(out: string, config: string): string[] {
  return [
    "--config", config, "--steps", "8", "--checkpoint-every", "2", "--eval-every", "8",
    "--seq-len", "103", "--batch", "1", "--accum", "1", "--lr", "1e-2", "--warmup", "2", "--out", out,
  ];
}

/** The fields of the log that must agree bit for bit (not `ms`: wall time). */
function curve(out: string): unknown[] {
  return readJsonl(runFiles(out).log).map((r) => [r.step, r.loss, r.gradNorm, r.lr, r.evalLoss, r.digitAcc, r.exactMatch]);
}

function temps(out: string): string[] {
  return readdirSync(out).filter((n) => n.startsWith("checkpoint.safetensors.tmp-"));
}

describe("train process: SIGKILL during a save, then --resume", () => {
  test("the checkpoint is never torn and the resumed loss curve is the uninterrupted one, bit for bit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-kill-"));
    try {
      const config = join(dir, "model.json");
      // a very small MemMamba (notes on, every token offers and reads): a few seconds per process
      writeFileSync(config, JSON.stringify({ dModel: 8, nLayers: 2, dState: 4, memory: { summaryDim: 4, poolSize: 4, tau1: 0, tau2: 0 } }));
      const full = join(dir, "full");
      const cut = join(dir, "cut");
      const opts = (hang?: string): SpawnOptions => ({ cwd: ROOT, env: hang ? { [SAVE_HANG_ENV]: hang } : {} });
      const ck = () => runFiles(cut).checkpoint;

      const ref = await runToEnd(TRAIN, trainArgs(full, config), 60_000, opts());
      expect({ code: ref.code, stderr: ref.code === 0 ? "" : ref.stderr }).toEqual({ code: 0, stderr: "" });
      expect(curve(full).map((r) => (r as unknown[])[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      // the untrained model's scores come first (the baseline), and the run ends with the passkey command
      // at the trained prompt length (seq-len 103 − 5) and 2×, 4× it
      expect(ref.stderr).toMatch(/\ntrain step 0\/8: evalLoss [\d.]+ \| digitAcc [\d.]+ \| exactMatch [\d.]+ \|/);
      expect(ref.stderr).toContain(`train: next: deno task passkey --checkpoint ${runFiles(full).checkpoint} --lengths 98,196,392 --samples 4\n`);

      // 1. killed half-way through writing step 4's temporary file: step 2's checkpoint stands
      const k1 = await runUntilThenKill(TRAIN, trainArgs(cut, config), "SAVE-HANG", 60_000, opts("2:partial"));
      expect(k1.signal).toBe("SIGKILL");
      expect(loadCheckpoint(ck()).step).toBe(2);
      const partial = temps(cut);
      expect(partial).toHaveLength(1);
      let err: unknown;
      try {
        loadCheckpoint(join(cut, partial[0]));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CheckpointError); // a torn file is named as such, with its path
      expect((err as Error).message).toContain(`${join(cut, partial[0])}: not a valid checkpoint:`);

      // 2. resumed, then killed with step 4's file complete and fsync'ed but not yet renamed: still step 2
      const k2 = await runUntilThenKill(TRAIN, [...trainArgs(cut, config), "--resume"], "SAVE-HANG", 60_000, opts("1:synced"));
      expect(k2.signal).toBe("SIGKILL");
      expect(loadCheckpoint(ck()).step).toBe(2);
      expect(temps(cut)).toHaveLength(1); // the first child's leftover was cleared, this one's is there
      expect(temps(cut)[0]).not.toBe(partial[0]);
      expect(loadCheckpoint(join(cut, temps(cut)[0])).step).toBe(4); // complete, just not in place

      // 3. resumed, then killed right after step 6's rename (before the directory fsync): step 6 stands
      const k3 = await runUntilThenKill(TRAIN, [...trainArgs(cut, config), "--resume"], "SAVE-HANG", 60_000, opts("2:renamed"));
      expect(k3.signal).toBe("SIGKILL");
      expect(loadCheckpoint(ck()).step).toBe(6);
      expect(temps(cut)).toEqual([]);

      // 4. resumed to the end: the log reads as the uninterrupted run's, bit for bit
      const end = await runToEnd(TRAIN, [...trainArgs(cut, config), "--resume"], 60_000, opts());
      expect({ code: end.code, stderr: end.code === 0 ? "" : end.stderr }).toEqual({ code: 0, stderr: "" });
      expect(curve(cut)).toEqual(curve(full));
      expect(loadCheckpoint(ck()).step).toBe(8);
      expect(temps(cut)).toEqual([]);
      expect(existsSync(runFiles(cut).plot)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
