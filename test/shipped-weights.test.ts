/**
 * The trained weights shipped in weights/ (README: "The paper's experiments") load on the CPU and
 * do what the results table says at a short length: the small MemMamba retrieves the passkey, the
 * same-size Mamba trained with it does not. Built-in filler (the books are not in CI), 1K bytes,
 * the needle mid-context: a few seconds per model.
 */
import { fileURLToPath } from "node:url";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "./support/harness.ts";
import { passkeyCommand, runPasskey } from "../packages/cli/src/commands/passkey.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const quiet = { out: () => {}, err: () => {}, progress: false as const };

async function accuracy(file: string): Promise<{ acc: number; predicted: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "mm-weights-"));
  try {
    const rep = await runPasskey(passkeyCommand.parse([
      "--checkpoint", join(root, "weights", file), "--lengths", "1k", "--depths", "0.5", "--samples", "2", "--out", dir,
    ]), quiet);
    return { acc: rep.accuracy[0][0], predicted: rep.results.map((r) => r.predicted) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("shipped weights: the small MemMamba retrieves a passkey in 1K bytes of filler", async () => {
  expect(existsSync(join(root, "weights", "memmamba-small-passkey.safetensors"))).toBe(true);
  const r = await accuracy("memmamba-small-passkey.safetensors");
  expect(r.acc).toBe(1);
}, 120_000);

test("shipped weights: the same-size plain Mamba, trained alike, does not", async () => {
  const r = await accuracy("mamba-small-passkey.safetensors");
  expect(r.acc).toBe(0);
  expect(r.predicted.length).toBe(2);
}, 120_000);
