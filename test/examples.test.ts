/**
 * The examples run, at tiny sizes, in-process: the MLP demo's training function (it learns: loss
 * at least halved, accuracy well above the 1/3 of chance, and it frees what it allocates);
 * finetune.ts (the loss falls; a saved checkpoint and a weights/ folder are picked up);
 * stream-stdin.ts (chunking changes no number; it reads stdin as a program under this runtime);
 * the browser demo's model side (examples/browser/session.ts; test/browser.test.ts drives the page).
 * Nothing here measures time.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, encodeSafetensors, liveBuffers, random } from "@memmamba/tensor";
import { lm, needleText, preset } from "@memmamba/memmamba";
import { encodeCheckpoint, greedyDecode, treeToHost } from "@memmamba/cli";
import { parseArgs, train } from "../examples/mlp-demo.ts";
import * as finetuneEx from "../examples/finetune.ts";
import * as streamEx from "../examples/stream-stdin.ts";
import { shippedWeightsFile, WEIGHTS_DIR } from "../examples/model-source.ts";
import { freshModel, modelFromCheckpoint, passkeyPrompt, runPasskey, StreamSession } from "../examples/browser/session.ts";
import { expect, runtime, test } from "./support/harness.ts";

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

// ---------- finetune.ts, stream-stdin.ts and the browser demo's model side (tiny sizes) ----------


/** An empty folder to stand for weights/, so that shipped weights (if any) never slow these tests. */
function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "memmamba-examples-"));
}

async function* pieces(bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  for (let off = 0, i = 0; off < bytes.length; i++) {
    const n = sizes[i % sizes.length];
    yield bytes.slice(off, off + n);
    off += n;
  }
}

test("finetune.ts: the loss falls, --save writes a checkpoint, and a weights/ folder is picked up by default", async () => {
  const noWeights = tempDir(), shipped = tempDir();
  try {
    const lines: string[] = [];
    const base = { steps: 8, pretrain: 3, lr: 1e-2, seq: 32, batch: 2, seed: 0 };
    const saved = join(shipped, "tuned.safetensors");
    const losses = await finetuneEx.main({ ...base, save: saved }, (l) => lines.push(l), noWeights);
    expect(lines[0]).toMatch(/training a tiny model from scratch \(3 steps\)/);
    expect(losses.length).toBe(8);
    const tail = losses.slice(-3).reduce((a, b) => a + b, 0) / 3;
    expect(tail).toBeLessThan(losses[0]);
    // the saved model, found in a weights/ folder, starts where the first run ended: lower than it began
    const again: string[] = [];
    const resumed = await finetuneEx.main({ ...base, steps: 1 }, (l) => again.push(l), shipped);
    expect(again[0]).toContain(saved);
    expect(resumed[0]).toBeLessThan(losses[0]);
  } finally {
    rmSync(noWeights, { recursive: true, force: true });
    rmSync(shipped, { recursive: true, force: true });
  }
});

test("model-source.ts: of the shipped weights the MemMamba is the default, not the Mamba baseline that sorts first", () => {
  const dir = tempDir();
  try {
    const file = (name: string, config?: Record<string, unknown>) =>
      writeFileSync(join(dir, name), encodeSafetensors({ w: { dtype: "F32", shape: [1], data: Float32Array.of(0) } }, config ? { config: JSON.stringify(config) } : {}));
    file("a-baseline.safetensors", { kind: "mamba" });
    expect(shippedWeightsFile(dir)).toBe(join(dir, "a-baseline.safetensors")); // none is a MemMamba: the first
    file("b-memmamba.safetensors", { dModel: 32 }); // kind left out: memmamba, as parseConfig reads it
    file("c-memmamba.safetensors", { kind: "memmamba" });
    expect(shippedWeightsFile(dir)).toBe(join(dir, "b-memmamba.safetensors"));
    if (existsSync(join(WEIGHTS_DIR, "memmamba-small-passkey.safetensors"))) {
      expect(shippedWeightsFile()).toBe(join(WEIGHTS_DIR, "memmamba-small-passkey.safetensors"));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("finetune.ts and stream-stdin.ts parse their flags and name the bad one", () => {
  expect(finetuneEx.parseArgs(["m.safetensors", "--steps=3", "--lr", "0.1"])).toMatchObject({ model: "m.safetensors", steps: 3, lr: 0.1 });
  expect(finetuneEx.parseArgs(["--help"])).toBeNull();
  expect(() => finetuneEx.parseArgs(["--seq", "0"])).toThrow(/--seq/);
  expect(() => finetuneEx.parseArgs(["a", "b"])).toThrow(/one model file/);
  expect(streamEx.parseArgs(["--chunk", "64", "--continue=5"])).toMatchObject({ chunk: 64, continueBytes: 5 });
  expect(() => streamEx.parseArgs(["--chunk", "x"])).toThrow(/--chunk/);
  expect(() => streamEx.parseArgs(["--temperature", "1"])).toThrow(/unknown argument "--temperature"/);
});

test("stream-stdin.ts: chunking changes no number, and the continuation is the greedy decode of the text", async () => {
  const params = lm.init(random.key(3), preset("tiny"));
  try {
    const text = new TextEncoder().encode("A stream of bytes, cut into chunks of any size, gives the same bits. ".repeat(2));
    const small = await streamEx.streamThrough(params, pieces(text, [5, 17, 3]), { chunk: 16, continueBytes: 12 });
    const one = await streamEx.streamThrough(params, pieces(text, [1000]), { chunk: 1000, continueBytes: 12 });
    expect(small.chunks.length).toBe(Math.ceil(text.length / 16));
    expect(small.chunks.reduce((a, c) => a + c.scored, 0)).toBe(text.length - 1);
    expect(Math.abs(small.bitsPerByte - one.bitsPerByte)).toBeLessThan(1e-4);
    expect(one.bitsPerByte).toBeGreaterThan(7); // untrained: about log2(256) = 8
    expect(one.bitsPerByte).toBeLessThan(9);
    expect(Array.from(one.continuation)).toEqual(await greedyDecode(params, text, 12, 1000));
  } finally {
    disposeTree(params);
  }
});

test(`stream-stdin.ts reads stdin as a program (${runtime})`, () => {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  const exe: string = runtime === "deno" ? g.Deno.execPath() : g.process.execPath;
  const args = [...(runtime === "deno" ? ["run", "-A"] : []), "examples/stream-stdin.ts", "--chunk", "40", "--continue", "8"];
  const r = spawnSync(exe, args, { input: "The quiet river runs past the mill and the willow tree.\n".repeat(2), encoding: "utf8", env: { ...g.process.env, NO_COLOR: "1" } });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/chunk +0 +bytes 0\.\.40 +[\d.]+ bits\/byte/);
  expect(r.stdout).toMatch(/^112 bytes, [\d.]+ bits\/byte overall$/m);
  expect(r.stdout).toMatch(/^continuation: /m);
  const bad = spawnSync(exe, [...args.slice(0, -4), "--chunk", "0"], { encoding: "utf8" });
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/--chunk needs an integer >= 1/);
}, 60_000);

test("browser demo session: a checkpoint streams exactly as the model it was saved from, and passkey mode answers", async () => {
  const fresh = freshModel(0);
  const bytes = encodeCheckpoint({ weights: await treeToHost(fresh.params), step: 0, key: [0, 0], dataPosition: null, config: fresh.params.config as never });
  const loaded = modelFromCheckpoint(bytes, "test.safetensors");
  const a = new StreamSession(fresh.params), b = new StreamSession(loaded.params);
  try {
    for (const byte of new TextEncoder().encode("note pools, note pools")) {
      const [va, vb] = [await a.push(byte), await b.push(byte)];
      expect(vb.bits).toBe(va.bits);
      expect(vb.top).toEqual(va.top);
      expect(vb.layers.map((l) => l.attention)).toEqual(va.layers.map((l) => l.attention));
    }
    expect(b.pools).toEqual(a.pools);
    expect(a.pools.every((p) => p.length <= a.poolSize)).toBe(true);
    expect(a.events.some((e) => e.kind === "write")).toBe(true);
    expect(() => modelFromCheckpoint(bytes.slice(0, 20), "cut.safetensors")).toThrow(/cut\.safetensors/);
    await expect(a.push(256)).rejects.toThrow(/byte must be an integer in \[0, 256\)/);

    const sample = passkeyPrompt(1, 110, 0.5);
    expect(new TextDecoder().decode(sample.prompt)).toContain(needleText(sample.passkey));
    const s = new StreamSession(loaded.params);
    const r = (await runPasskey(s, sample))!;
    expect(r.answer.length).toBeGreaterThan(0);
    expect(r.needleInPool.length).toBe(fresh.params.config.nLayers);
    for (const held of r.needleInPool) for (const p of held) expect(p >= sample.needleStart && p < sample.needleEnd).toBe(true);
    expect(s.length).toBe(110 + 9);
    s.dispose();
  } finally {
    a.dispose();
    b.dispose();
    disposeTree([fresh.params, loaded.params]);
  }
});
