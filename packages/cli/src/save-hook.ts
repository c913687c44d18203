/**
 * A test hook that makes a checkpoint save observable from outside the process, so a test can
 * SIGKILL the real `train` process at a chosen moment of a save (packages/cli/test/kill-resume.test.ts).
 *
 *   MEMMAMBA_TEST_SAVE_HANG=<n>:<stage>
 *
 * During the n-th checkpoint save of this process (1-based), at `stage`, the process prints one
 * line `SAVE-HANG <n> <stage> <temporary file>` on stdout and then blocks until it is killed.
 * Stages, in the order a save goes through them (see writeFileAtomic):
 *   created   the temporary file exists, empty
 *   partial   the first 4 KiB chunk of the temporary file is written (writes go in 4 KiB chunks)
 *   synced    the temporary file is complete and fsync'ed, not yet renamed over the checkpoint
 *   renamed   the checkpoint is the new file; the directory is not yet fsync'ed
 * Unset (the normal case), saves are untouched.
 */
import { writeSync } from "node:fs";
import process from "node:process";
import type { AtomicWriteOptions, AtomicWriteStage } from "./checkpoint.ts";

/** The environment variable of the hook. */
export const SAVE_HANG_ENV = "MEMMAMBA_TEST_SAVE_HANG";
/** The moments of a save the hook can stop at, in order (see the module note). */
export const SAVE_HANG_STAGES = ["created", "partial", "synced", "renamed"] as const;
/** One of SAVE_HANG_STAGES. */
export type SaveHangStage = (typeof SAVE_HANG_STAGES)[number];

const CHUNK = 4096;

function hangForever(): never {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0, 60_000);
}

/** The save options that implement the hook, or undefined when `value` (the variable) is unset or empty. */
export function saveHangOptions(value: string | undefined): AtomicWriteOptions | undefined {
  if (value === undefined || value === "") return undefined;
  const m = /^(\d+):([a-z]+)$/.exec(value);
  if (!m || Number(m[1]) < 1 || !(SAVE_HANG_STAGES as readonly string[]).includes(m[2])) {
    throw new Error(`${SAVE_HANG_ENV}=${JSON.stringify(value)}: expected <save number ≥ 1>:<${SAVE_HANG_STAGES.join("|")}>`);
  }
  const target = Number(m[1]);
  const stage = m[2] as SaveHangStage;
  let saves = 0;
  let tmp = "";
  const hang = (): never => {
    writeSync(1, `SAVE-HANG ${target} ${stage} ${tmp}\n`);
    hangForever();
  };
  return {
    chunkBytes: CHUNK,
    onStage: (s: AtomicWriteStage, tmpPath: string) => {
      if (s === "created") {
        saves++;
        tmp = tmpPath;
      }
      if (saves === target && s === stage) hang();
    },
    onChunk: (written: number) => {
      if (saves === target && stage === "partial" && written === CHUNK) hang();
    },
  };
}

/** `saveHangOptions` of this process's MEMMAMBA_TEST_SAVE_HANG. */
export function saveHangFromEnv(): AtomicWriteOptions | undefined {
  return saveHangOptions(process.env[SAVE_HANG_ENV]);
}
