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
import {
  choice, detectRuntime, flagList, flagValue, formatTable, gitCommit, nonNegativeInt, numberFlag, oneOf, POSITIVE_INT, POSITIVE_NUMBER, positiveInt,
  positiveNumber, repoRoot, UsageError, writeJson,
} from "../src/runtime.ts";
import { z } from "zod";

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

test("cpu-kernels options: --sizes, --only and the numeric flags: their defaults, and one line naming the flag and the bad value", () => {
  const d = parseOptions([])!;
  expect([d.runtimes, d.sizes, d.only, d.runs, d.warmupMs]).toEqual([["deno", "bun", "node"], [512, 1024, 2048], ["matmul", "memory", "step"], 7, 400]);
  const o = parseOptions(["--sizes", " 64, 128", "--only=step,memory", "--runs", "3", "--warmup-ms", "10"])!;
  expect([o.sizes, o.only, o.runs, o.warmupMs]).toEqual([[64, 128], ["step", "memory"], 3, 10]);
  const bad = (argv: string[], message: string) => {
    let err: unknown;
    try {
      parseOptions(argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toBe(message);
  };
  bad(["--sizes", "512,abc"], '--sizes must be a positive integer, got "abc"');
  bad(["--sizes", "64,0"], '--sizes must be a positive integer, got "0"');
  bad(["--sizes", "1.5"], '--sizes must be a positive integer, got "1.5"');
  bad(["--sizes", "1e400"], '--sizes must be a positive integer, got "1e400"'); // Infinity
  bad(["--sizes", ","], "--sizes: empty list");
  bad(["--only", "matmul,gpu"], '--only must be matmul, memory or step, got "gpu"');
  bad(["--only", "Matmul"], '--only must be matmul, memory or step, got "Matmul"');
  bad(["--runs", "1.5"], '--runs must be a positive integer, got "1.5"');
  bad(["--runs", "0"], '--runs must be a positive integer, got "0"');
  bad(["--warmup-ms", "ten"], '--warmup-ms must be a positive integer, got "ten"');
  bad(["--warmup-ms=", "--runs", "3"], '--warmup-ms must be a positive integer, got ""');
  bad(["--sizes"], "--sizes needs a value");
});

test("bench flag types: zod schemas check every value; lists item by item; a type may word its own message", () => {
  expect(flagValue("runs", "7", POSITIVE_INT)).toBe(7);
  expect(flagValue("runs", undefined, POSITIVE_INT)).toBeUndefined();
  expect(positiveNumber("lr", "3e-3", 1)).toBe(0.003);
  expect(positiveNumber("lr", undefined, 1)).toBe(1);
  expect(() => positiveNumber("lr", "Infinity", 1)).toThrow(/^--lr must be a positive number, got "Infinity"$/);
  expect(() => flagValue("lr", "0", POSITIVE_NUMBER)).toThrow(/^--lr must be a positive number, got "0"$/);
  expect(oneOf("mode", "b", ["a", "b"])).toBe("b");
  expect(() => oneOf("mode", true, ["a", "b"])).toThrow(/^--mode must be a or b, got "true"$/); // a bare --mode
  expect(flagList("sizes", undefined, POSITIVE_INT, [1, 2])).toEqual([1, 2]);
  expect(flagList("kinds", "b, a,,", choice(["a", "b"]), [])).toEqual(["b", "a"]);
  const tile = numberFlag(z.number().int().positive().multipleOf(64).max(256), "64, 128, 192 or 256");
  expect(flagValue("--segment", "192", tile)).toBe(192);
  expect(() => flagValue("--segment", "100", tile)).toThrow(/^--segment must be 64, 128, 192 or 256, got "100"$/);
  const own = { ...choice(["on", "off"]), message: (flag: string, v: string) => `${flag} takes on and/or off, got "${v}"` };
  expect(() => flagList("step-cache", "on,maybe", own, [])).toThrow(/^--step-cache takes on and\/or off, got "maybe"$/);
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
  const sizes = run("cpu-kernels.ts", "--sizes", "512,x");
  expect(sizes.status).toBe(2);
  expect(sizes.stderr.trim()).toBe('cpu-kernels: --sizes must be a positive integer, got "x"');
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
