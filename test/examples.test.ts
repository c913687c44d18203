/**
 * The examples run: the MLP demo's training function, at a tiny size, in-process. Asserts that it
 * learns (loss at least halved, accuracy well above the 1/3 of chance) and frees what it allocates.
 * Nothing here measures time.
 */
import { liveBuffers } from "@memmamba/tensor";
import { parseArgs, train } from "../examples/mlp-demo.ts";
import { expect, test } from "./support/harness.ts";

for (const seed of [0, 1]) {
  test(`mlp-demo learns the spirals (seed ${seed})`, async () => {
    const before = liveBuffers();
    const lines: string[] = [];
    const r = await train({ steps: 80, seed, pointsPerClass: 40, hidden: 32, log: (l) => lines.push(l), logEvery: 20 });
    expect(Number.isFinite(r.initialLoss)).toBe(true);
    expect(r.finalLoss).toBeLessThan(r.initialLoss / 2);
    expect(r.finalAccuracy).toBeGreaterThan(1 / 3 + 0.25);
    expect(r.history.map((h) => h.step)).toEqual([0, 20, 40, 60, 80]);
    expect(lines.length).toBe(5);
    expect(liveBuffers()).toBe(before);
  });
}

test("mlp-demo is deterministic for a seed", async () => {
  const a = await train({ steps: 10, seed: 5, pointsPerClass: 20, hidden: 16 });
  const b = await train({ steps: 10, seed: 5, pointsPerClass: 20, hidden: 16 });
  expect(b.finalLoss).toBe(a.finalLoss);
  expect(b.finalAccuracy).toBe(a.finalAccuracy);
});

test("mlp-demo parses its flags by hand", () => {
  expect(parseArgs([])).toEqual({ steps: 1000, seed: 0 });
  expect(parseArgs(["--steps", "12", "--seed=3"])).toEqual({ steps: 12, seed: 3 });
  expect(parseArgs(["--help"])).toBeNull();
  expect(() => parseArgs(["--steps", "-1"])).toThrow(/--steps/);
  expect(() => parseArgs(["--seed"])).toThrow(/--seed/);
  expect(() => parseArgs(["--lr", "1"])).toThrow(/unknown argument "--lr"/);
});
