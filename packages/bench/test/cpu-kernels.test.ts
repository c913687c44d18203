/**
 * The benchmark programs' plumbing, without timing anything: cpu-kernels' summary ratios (taken
 * at 1024² only, never another size's time against 1024's flops) and its option parsing, the
 * shared helpers (usage errors, integer columns, the commit in every JSON), and the exit status
 * and one-line message of a CLI given a bad argument.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { expect, test } from "../../../test/support/harness.ts";
import { matmulRatios, parseOptions, RATIO_N } from "../src/cpu-kernels.ts";
import { AT_60K, goals, type ScalingRow } from "../src/scaling.ts";
import { stepGoalNote } from "../src/train-throughput.ts";
import { detectRuntime, formatTable, gitCommit, nonNegativeInt, positiveInt, repoRoot, UsageError, writeJson } from "../src/runtime.ts";

const dir = mkdtempSync(join(tmpdir(), "bench-cli-"));

test("cpu-kernels matmulRatios: at 1024² from the per-round samples; all null when 1024 was not measured", () => {
  const threads = 2, peakPerThread = 1e9; // flops per thread of one peak call
  const f = 2 * RATIO_N ** 3;
  // ours takes 2 × f / peak-rate: half the peak, every round
  const peakMs = [10, 12, 11], oursMs = peakMs.map((p) => (2 * f) / ((threads * peakPerThread) / p));
  const r = matmulRatios({
    [RATIO_N]: {
      peak: peakMs, "ours-wasm": oursMs, "jax-js": oursMs.map((x) => 1.5 * x), "tfjs-wasm": oursMs.map((x) => 3 * x),
      "ours-ffi": [4, 4, 4], numpy: [5, 5, 5],
    },
  }, threads, peakPerThread);
  expect(r.matmulN).toBe(RATIO_N);
  expect(r.wasmOfPeak).toBeCloseTo(0.5, 12);
  expect(r.wasmOverBestPeer).toBeCloseTo(1.5, 12); // the faster peer, round by round
  expect(r.ffiOverNumpy).toBeCloseTo(1.25, 12);
  expect(r.ffiOverNumpyAuto).toBeNull(); // numpy-auto not measured
  expect(r.wasmOfPeakOneThread).toBeNull(); // measured only with more than one thread
  // --sizes 64: nothing at 1024, so no ratio (it was 2004 "ok": 64's time against 1024's flops)
  const only64 = matmulRatios({ 64: { peak: peakMs, "ours-wasm": [0.01, 0.01, 0.01], numpy: [1, 1, 1], "ours-ffi": [1, 1, 1] } }, threads, peakPerThread);
  expect(only64).toEqual({ matmulN: null, wasmOfPeak: null, wasmOfPeakOneThread: null, wasmOverBestPeer: null, ffiOverNumpy: null, ffiOverNumpyAuto: null });
});

test("cpu-kernels options: --runtimes is checked when parsed (a UsageError naming the flag); --help is null", () => {
  expect(parseOptions(["--runtimes", "bun,deno", "--sizes", "64"])!.runtimes).toEqual(["bun", "deno"]);
  expect(() => parseOptions(["--runtimes", "bun,python"])).toThrow('--runtimes must be deno, bun or node, got "python"');
  expect(() => parseOptions(["--runtimes", "python"])).toThrow(UsageError);
  expect(() => parseOptions(["--sizes", "0"])).toThrow(UsageError);
  expect(parseOptions(["--help"])).toBeNull();
});

test("bench helpers: usage errors, 0 allowed where it means none, integer columns, the commit in the JSON", () => {
  expect(() => positiveInt("runs", "0", 1)).toThrow(UsageError);
  expect(nonNegativeInt("prompt", "0", 512)).toBe(0);
  expect(nonNegativeInt("prompt", undefined, 512)).toBe(512);
  expect(() => nonNegativeInt("prompt", "-1", 512)).toThrow(/^--prompt must be 0 or a positive integer, got "-1"$/);
  // counts print as integers, other numbers with 3 significant digits
  const t = formatTable(["kind", "rows", "ms"], [["a", 1, 1.5], ["b", 12, 2]]).split("\n");
  expect(t[2]).toBe("a        1  1.50");
  expect(t[3]).toBe("b       12  2.00");
  // writeJson puts the commit after the benchmark's name (unless the result has its own)
  const c = gitCommit();
  expect(c === null || /^[0-9a-f]{4,}(-dirty)?$/.test(c)).toBe(true);
  writeJson(join(dir, "r.json"), { benchmark: "x", date: "d" });
  expect(Object.entries(JSON.parse(readFileSync(join(dir, "r.json"), "utf8")))).toEqual([["benchmark", "x"], ["commit", c], ["date", "d"]]);
  writeJson(join(dir, "own.json"), { benchmark: "x", commit: null });
  expect(JSON.parse(readFileSync(join(dir, "own.json"), "utf8")).commit).toBeNull();
});

test("goals where they apply: scaling's 60K ratios only at 60K; the step ratio's goal is the small preset's on a GPU", () => {
  const row = (kind: ScalingRow["kind"], L: number, us: number): ScalingRow => ({
    kind, mode: "forward", L, batch: 1, how: "parallel", chunk: null, runs: 1, medianMs: us, samplesMs: [us], usPerToken: us, peakLiveMiB: 1, peakPoolMiB: null, peakRssMiB: null,
  });
  const short = [row("memmamba", 256, 2), row("mamba", 256, 1), row("memmamba", 512, 3), row("mamba", 512, 2)];
  expect(goals(short, []).at60K).toBeNull();
  const g = goals([...short, row("memmamba", AT_60K, 1.2), row("mamba", AT_60K, 1)], []);
  expect(g.at60K!.L).toBe(61440);
  expect(g.at60K!.memmambaOverMamba).toBeCloseTo(1.2, 12);
  expect(stepGoalNote({ backend: "webgpu", preset: "small" })).toBe("(goal ≤ 1.5)");
  expect(stepGoalNote({ backend: "wasm", preset: "tiny" })).toBe("(the goal applies to the small preset on a GPU)");
});

test("bench CLIs: a bad argument is one line '<name>: <message>' and status 2; --help is status 0", () => {
  const rt = detectRuntime();
  const bin = join(repoRoot(), "tools/node_modules/.bin", rt.name);
  const run = (file: string, ...args: string[]) => {
    const script = fileURLToPath(new URL(`../src/${file}`, import.meta.url));
    const argv = rt.name === "deno" ? ["run", "-A", script, ...args] : [script, ...args];
    return spawnSync(rt.name === "node" ? process.execPath : bin, argv, { encoding: "utf8", cwd: repoRoot(), env: { ...process.env, NO_COLOR: "1", DEBUG: "" } });
  };
  const bad = run("cpu-kernels.ts", "--runtimes", "bun,python");
  expect(bad.status).toBe(2);
  expect(bad.stderr.trim()).toBe('cpu-kernels: --runtimes must be deno, bun or node, got "python"');
  expect(bad.stdout).toBe("");
  const flag = run("cpu-matmul.ts", "--sizs", "64");
  expect(flag.status).toBe(2);
  expect(flag.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^cpu-matmul: unknown flag --sizs \(known: /)]);
  const help = run("decode.ts", "--help");
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/^decode: /);
});

test("cleanup", () => {
  rmSync(dir, { recursive: true, force: true });
});
