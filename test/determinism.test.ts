/**
 * The same seed gives bit-identical results across runs and across Bun and Deno (CPU backend):
 * each runtime computes the fingerprint in-process and also runs the other runtime on the same
 * script, and the two must agree bit for bit.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, runtime, test } from "./support/harness.ts";
import { fingerprint } from "./support/fingerprint.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const script = fileURLToPath(new URL("./support/fingerprint.ts", import.meta.url));

test("a seeded training run is bit-identical when repeated in one process", async () => {
  const a = await fingerprint(7, 4);
  const b = await fingerprint(7, 4);
  expect(a).toBe(b);
  expect(await fingerprint(8, 4)).not.toBe(a); // and the seed matters
});

test("a seeded training run is bit-identical under Bun and under Deno", async () => {
  const here = await fingerprint();
  const other = runtime === "bun" ? "deno" : "bun";
  const bin = `${root}tools/node_modules/.bin/${other}`;
  const args = other === "deno" ? ["run", "--allow-all", script] : [script];
  const r = spawnSync(bin, args, { encoding: "utf8", cwd: root });
  if (r.status !== 0) throw new Error(`${other} failed (${r.status}): ${r.stderr}`);
  const there = r.stdout.trim().split("\n").pop();
  expect(there).toBe(here);
}, 120_000);
