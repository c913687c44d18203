/**
 * The decode benchmark runs end to end at a tiny size on the CPU and writes JSON of the
 * documented shape; a MemMamba step stays within a small multiple of a Mamba step's launches (its
 * pool write is one primitive, not the ~40-op composite). Nothing here asserts a time.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "../../../test/support/harness.ts";
import { getBackend, setBackend } from "@memmamba/tensor";
import { type DecodeResult, main as decode } from "../src/decode.ts";
import { positiveInt } from "../src/runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "bench-decode-"));

test("decode: a tiny CPU run steps each kind at each batch, reads back every step, and writes its JSON", async () => {
  const before = getBackend();
  const out = join(dir, "decode.json");
  let res: DecodeResult | undefined;
  try {
    res = await decode(["--backend", "cpu", "--preset", "tiny", "--batch", "1,3", "--prompt", "24", "--steps", "3", "--warmup", "1", "--out", out]);
  } finally {
    setBackend(before);
  }
  const j = JSON.parse(readFileSync(out, "utf8")) as DecodeResult;
  expect(j).toEqual(JSON.parse(JSON.stringify(res)));
  expect(j.rows.map((r) => `${r.kind} ${r.batch}`)).toEqual(["memmamba 1", "memmamba 3", "mamba 1", "mamba 3"]);
  for (const r of j.rows) {
    expect(r.samplesMs.length).toBe(3);
    expect(r.tokensPerSec).toBeCloseTo(r.batch / (r.msPerStep / 1000), 6);
    expect(r.launchesPerStep).toBeGreaterThan(10);
  }
  const launches = (kind: string) => j.rows.find((r) => r.kind === kind && r.batch === 1)!.launchesPerStep;
  // the note pool's write is one poolInsert launch a layer (it was ~40 ops: 4x Mamba's step)
  expect(launches("memmamba") / launches("mamba")).toBeLessThan(2.5);
  expect(j.options).toEqual({ prompt: 24, steps: 3, warmup: 1, stepCache: [true] });
  expect(j.rows.every((r) => r.stepCache)).toBe(true);
});

test("decode: --step-cache on,off measures both; the cache takes the parameter-only launches out of each step", async () => {
  const before = getBackend();
  let res: DecodeResult | undefined;
  try {
    res = await decode(["--backend", "cpu", "--preset", "tiny", "--kinds", "memmamba", "--prompt", "16", "--steps", "2", "--warmup", "1", "--step-cache", "on,off", "--out", join(dir, "cache.json")]);
  } finally {
    setBackend(before);
  }
  expect(res!.rows.map((r) => r.stepCache)).toEqual([true, false]);
  const [on, off] = res!.rows;
  // per layer at least A = −exp(A_log) (two launches) and the pool read's folded query weight
  expect(off.launchesPerStep - on.launchesPerStep).toBeGreaterThanOrEqual(3 * 2);
  await expect(decode(["--backend", "cpu", "--step-cache", "maybe", "--out", join(dir, "x.json")])).rejects.toThrow('--step-cache takes on and/or off, got "maybe"');
});

test("decode: the Transformer has no recurrent step, and bad flags say what they expected", async () => {
  await expect(decode(["--backend", "cpu", "--kinds", "transformer", "--out", join(dir, "x.json")])).rejects.toThrow('--kinds: "transformer" has no recurrent step');
  await expect(decode(["--backend", "cpu", "--batch", "0", "--out", join(dir, "x.json")])).rejects.toThrow("--batch must be a positive integer");
  // a flag's name given with or without its dashes reads the same (it once said "----runs")
  expect(() => positiveInt("--runs", "0", 9)).toThrow(/^--runs must be a positive integer, got "0"$/);
  expect(() => positiveInt("runs", "x", 9)).toThrow(/^--runs must be a positive integer, got "x"$/);
  expect(positiveInt("--runs", undefined, 9)).toBe(9);
});
