/**
 * The associative-recall diagnostic (src/recall.ts): its rows are what the module note says (K
 * distinct keys with a digit each, a query that repeats one, the one scored target the value that
 * followed that key), the same seed gives the same rows, and a short CPU run at K = 1 learns the
 * fixed-position case and writes its JSON; --backend webgpu trains the same model. Nothing here
 * asserts a time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, flattenTree, getBackend, setBackend } from "@memmamba/tensor";
import { loadModelFile, runTrain, trainCommand } from "@memmamba/cli";
import { expect, test } from "../../../test/support/harness.ts";
import { main as recall, recallBatch, recallLength } from "../src/recall.ts";
import { lcg } from "../src/runtime.ts";
import { useBackend } from "../../../test/support/backends.ts";

test("recall rows: K distinct keys with a digit each, a query repeating one, its value the only scored target", () => {
  for (const K of [1, 4, 8]) {
    const L = recallLength(K);
    const b = recallBatch(lcg(7), 16, K);
    expect(b.length).toBe(L);
    for (let r = 0; r < 16; r++) {
      const row = Array.from(b.inputs.subarray(r * L, (r + 1) * L));
      const text = String.fromCharCode(...row.slice(0, b.answerAt[r] + 1)) + String.fromCharCode(b.answer[r]);
      const m = /^((?:[a-z]{2}:\d )+)\?([a-z]{2}):(\d)$/.exec(text);
      expect(m).not.toBeNull();
      const pairs = m![1].trim().split(" ").map((p) => p.split(":"));
      expect(pairs).toHaveLength(K);
      expect(new Set(pairs.map((p) => p[0])).size).toBe(K);
      expect(pairs.find((p) => p[0] === m![2])?.[1]).toBe(m![3]); // the answer is the value that followed the quoted key
      const mask = Array.from(b.mask.subarray(r * L, (r + 1) * L));
      expect(mask.reduce((a, w) => a + w, 0)).toBe(1);
      expect(mask[b.answerAt[r]]).toBe(1);
      expect(b.targets[r * L + b.answerAt[r]]).toBe(b.answer[r]);
    }
  }
  expect(recallBatch(lcg(3), 4, 8).inputs).toEqual(recallBatch(lcg(3), 4, 8).inputs);
  expect(recallBatch(lcg(4), 4, 8).inputs).not.toEqual(recallBatch(lcg(3), 4, 8).inputs);
  expect(() => recallBatch(lcg(1), 1, 0)).toThrow("pairs must be an integer in [1, 676], got 0");
});

test("recall rows with longer keys and filler before each pair: the quoted key's pair is the only one, the default rows unchanged", () => {
  // the defaults draw exactly the rows of before (explicit keyLen 2, gap 0 draw the same)
  expect(recallBatch(lcg(9), 8, 4, { keyLen: 2, gap: 0 }).inputs).toEqual(recallBatch(lcg(9), 8, 4).inputs);
  for (const [K, keyLen, gap] of [[2, 8, 0], [3, 8, 40], [4, 2, 17]]) {
    const L = recallLength(K, { keyLen, gap });
    expect(L).toBe(Math.ceil((K * (gap + (gap ? 1 : 0) + keyLen + 3) + keyLen + 3) / 8) * 8);
    const b = recallBatch(lcg(7), 16, K, { keyLen, gap });
    expect(b.length).toBe(L);
    const re = new RegExp(`^((?:${gap ? `[a-z]{${gap}} ` : ""}[a-z]{${keyLen}}:\\d )+)\\?([a-z]{${keyLen}}):(\\d)$`);
    for (let r = 0; r < 16; r++) {
      const row = Array.from(b.inputs.subarray(r * L, (r + 1) * L));
      const text = String.fromCharCode(...row.slice(0, b.answerAt[r] + 1)) + String.fromCharCode(b.answer[r]);
      const m = re.exec(text);
      expect(m).not.toBeNull();
      const body = m![1];
      // "<key>:" occurs once before the query, and the digit after it is the answer
      const at = body.indexOf(`${m![2]}:`);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(body.indexOf(`${m![2]}:`, at + 1)).toBe(-1);
      expect(body[at + keyLen + 1]).toBe(m![3]);
      expect(b.mask.subarray(r * L, (r + 1) * L).reduce((a, w) => a + w, 0)).toBe(1);
    }
  }
  expect(() => recallBatch(lcg(1), 1, 30, { keyLen: 1 })).toThrow("pairs must be an integer in [1, 26], got 30");
  expect(() => recallBatch(lcg(1), 1, 2, { gap: -1 })).toThrow("gap must be an integer >= 0, got -1");
});

test("recall: a short CPU run at K = 1 (the value at a fixed place) learns it and writes its JSON", async () => {
  const before = getBackend();
  const dir = mkdtempSync(join(tmpdir(), "bench-recall-"));
  try {
    const out = join(dir, "recall.json");
    await recall(["--kind", "mamba", "--pairs", "1", "--minutes", "0.5", "--eval-every", "25", "--out", out]);
    const res = JSON.parse(readFileSync(out, "utf8"));
    expect(res.benchmark).toBe("recall");
    expect(res.options).toMatchObject({ kind: "mamba", pairs: 1, rowBytes: 16 });
    expect(res.curve.length).toBeGreaterThan(0);
    expect(res.finalAccuracy).toBeGreaterThanOrEqual(0.9); // stops as soon as it gets there (measured: 50 steps)
    expect(res.stepsTo["0.9"]).toBe(res.steps);
  } finally {
    setBackend(before);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("recall: --steps is a budget of optimizer steps (no time limit alone; with --minutes, whichever comes first), recorded in the JSON", async () => {
  const before = getBackend();
  const dir = mkdtempSync(join(tmpdir(), "bench-recall-"));
  const tiny = ["--kind", "mamba", "--pairs", "2", "--d-model", "16", "--layers", "1", "--batch", "4"];
  const run = async (...args: string[]) => {
    const out = join(dir, "recall.json");
    await recall([...tiny, ...args, "--out", out]);
    return JSON.parse(readFileSync(out, "utf8"));
  };
  try {
    // --steps alone: stops at step 3 (checked at 2 and at the last step), no minutes budget
    const a = await run("--steps", "3", "--eval-every", "2");
    expect(a.steps).toBe(3);
    expect(a.curve.map((c: { step: number }) => c.step)).toEqual([2, 3]);
    expect(a.options).toMatchObject({ maxSteps: 3, minutes: null });
    expect(a.stoppedBy).toBe("steps");
    // both: the steps run out first
    const b = await run("--steps", "3", "--minutes", "10");
    expect([b.steps, b.stoppedBy, b.options.maxSteps, b.options.minutes]).toEqual([3, "steps", 3, 10]);
    // both: the minutes run out first (60 µs: after the first step)
    const c = await run("--steps", "1000", "--minutes", "0.000001");
    expect([c.steps, c.stoppedBy, c.options.maxSteps]).toEqual([1, "minutes", 1000]);
  } finally {
    setBackend(before);
    rmSync(dir, { recursive: true, force: true });
  }
  // a bad budget is a usage error naming the flag, before anything runs
  await expect(recall(["--steps", "0"])).rejects.toThrow('--steps must be a positive integer, got "0"');
  await expect(recall(["--steps", "2.5"])).rejects.toThrow('--steps must be a positive integer, got "2.5"');
  await expect(recall(["--minutes", "soon"])).rejects.toThrow('--minutes must be a positive number, got "soon"');
});

test("recall --backend webgpu trains the same model as the CPU: the first two steps' losses agree", async () => {
  const before = getBackend();
  if (!(await useBackend("webgpu"))) return;
  const dir = mkdtempSync(join(tmpdir(), "bench-recall-"));
  const run = async (backend: string) => {
    const out = join(dir, `recall-${backend}.json`);
    await recall(["--backend", backend, "--kind", "memmamba", "--pairs", "2", "--key-len", "4", "--gap", "6", "--d-model", "16", "--layers", "1",
      "--batch", "4", "--steps", "2", "--eval-every", "1", "--out", out]);
    return JSON.parse(readFileSync(out, "utf8"));
  };
  try {
    const cpu = await run("cpu"), gpu = await run("webgpu");
    expect(gpu.options).toMatchObject({ backend: "webgpu", keyLen: 4, gap: 6, rowBytes: recallLength(2, { keyLen: 4, gap: 6 }) });
    expect(cpu.options.backend).toBe("cpu");
    const losses = (r: { curve: { loss: number }[] }) => r.curve.map((c) => c.loss);
    expect(losses(gpu)).toHaveLength(2);
    losses(gpu).forEach((l, i) => expect(Math.abs(l - losses(cpu)[i])).toBeLessThan(1e-3 * Math.max(1, Math.abs(losses(cpu)[i]))));
  } finally {
    setBackend(before);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("recall --gap 0,4,8 is a curriculum: each gap until its held-out rows reach 0.9, then the next; the final model checked at every gap", async () => {
  const before = getBackend();
  const dir = mkdtempSync(join(tmpdir(), "bench-recall-"));
  try {
    const out = join(dir, "recall.json");
    // K = 1 (one pair at a fixed place: learnt in ~50 steps at each gap, measured)
    await recall(["--kind", "mamba", "--pairs", "1", "--gap", "0,4,8", "--eval-every", "25", "--steps", "600", "--out", out]);
    const res = JSON.parse(readFileSync(out, "utf8"));
    expect(res.options.gap).toEqual([0, 4, 8]);
    expect(res.options.rowBytes).toEqual([0, 4, 8].map((gap) => recallLength(1, { gap })));
    expect(res.stages.map((s: { gap: number }) => s.gap)).toEqual([0, 4, 8]);
    // each stage starts the step after the one before passed, and the curve's points carry their stage's gap
    for (let i = 0; i < 3; i++) {
      const s = res.stages[i];
      expect(s.passedAt).not.toBeNull();
      if (i > 0) expect(s.firstStep).toBe(res.stages[i - 1].passedAt + 1);
      const pts = res.curve.filter((c: { step: number }) => c.step >= s.firstStep && c.step <= s.passedAt);
      expect(pts.length).toBeGreaterThan(0);
      for (const c of pts) expect(c.gap).toBe(s.gap);
    }
    expect(res.stoppedBy).toBe("accuracy");
    expect(res.steps).toBe(res.stages[2].passedAt);
    // steps to 0.9 count at the last gap only
    expect(res.stepsTo["0.9"]).toBe(res.stages[2].passedAt);
    expect(Object.keys(res.finalByGap).sort()).toEqual(["0", "4", "8"]);
    for (const a of Object.values(res.finalByGap) as number[]) expect(a).toBeGreaterThanOrEqual(0);
    expect(res.finalByGap["8"]).toBeGreaterThanOrEqual(0.9); // the last check at 8 passed, with the same rows and weights
  } finally {
    setBackend(before);
    rmSync(dir, { recursive: true, force: true });
  }
  await expect(recall(["--gap", "64,-1"])).rejects.toThrow('--gap must be 0 or a positive integer, got "-1"');
  await expect(recall(["--gap", ","])).rejects.toThrow("--gap: empty list");
});

test("recall --save writes a checkpoint that train --init and recall --init take (the model and its config from the file)", async () => {
  const before = getBackend();
  const dir = mkdtempSync(join(tmpdir(), "bench-recall-"));
  try {
    const first = join(dir, "a", "recall.safetensors"), second = join(dir, "b.safetensors");
    const tiny = ["--pairs", "2", "--batch", "4", "--eval-every", "1"];
    await recall(["--kind", "mamba", "--d-model", "16", "--layers", "1", ...tiny, "--steps", "3", "--save", first, "--out", join(dir, "a.json")]);
    const a = loadModelFile(first);
    expect(a.config).toMatchObject({ kind: "mamba", dModel: 16, nLayers: 1 });
    expect(a.checkpoint.step).toBe(3);
    expect(a.checkpoint.extra).toMatchObject({ task: "recall", pairs: "2", keyLen: "2", gap: "0" });
    // recall --init: the file's model goes on (a learning rate of ~0: the weights stay put)
    const res = await recall(["--init", first, ...tiny, "--steps", "1", "--lr", "1e-20", "--save", second, "--out", join(dir, "b.json")]);
    expect(res!.options).toMatchObject({ kind: "mamba", dModel: 16, nLayers: 1, init: first });
    const b = loadModelFile(second);
    const [fa, fb] = [flattenTree(a.params), flattenTree(b.params)];
    expect(fb.map(([k]) => k)).toEqual(fa.map(([k]) => k));
    for (let i = 0; i < fa.length; i++) {
      const [x, y] = [await fa[i][1].data(), await fb[i][1].data()];
      for (let j = 0; j < x.length; j++) expect(Math.abs(x[j] - y[j])).toBeLessThan(1e-6);
    }
    // train --init takes it for another task (the same config)
    const io = { out: () => {}, err: () => {}, progress: false as const };
    const cfg = join(dir, "config.json");
    writeFileSync(cfg, JSON.stringify({ dModel: 16, nLayers: 1 }));
    const t = await runTrain(trainCommand.parse(["--model", "mamba", "--preset", "tiny", "--config", cfg, "--steps", "0", "--eval-every", "0", "--init", first, "--out", join(dir, "t")]), io);
    const ft = flattenTree(t.params);
    for (let i = 0; i < fa.length; i++) expect(Array.from(await ft[i][1].data())).toEqual(Array.from(await fa[i][1].data()));
    disposeTree([a.params, b.params, t.params]);
    // the model comes from the file: no --kind, --d-model, --layers beside it
    await expect(recall(["--init", first, "--d-model", "32"])).rejects.toThrow(`--d-model: the model comes from --init ${first} (its config)`);
    await expect(recall(["--init", join(dir, "none.safetensors")])).rejects.toThrow("no such file");
  } finally {
    setBackend(before);
    rmSync(dir, { recursive: true, force: true });
  }
});
