/**
 * `ablate` end to end at a tiny size on the CPU: every suite runs, writes its JSON (validated by
 * the zod schema), Markdown table and SVG plot, with every variant and seed; an interrupted run
 * resumes from its checkpoint and a rerun skips what is done. Plus --help, bad input, the spread
 * rule and the sharing of runs between variants of equal config.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend, liveBuffers } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { type FlagDefs, kebab, runCli } from "../src/args.ts";
import { isRealDifference, SUITE_NAMES, SUITES, SuiteResultSchema, suitesOf, summarize } from "../src/ablation.ts";
import { ablateCommand, parseShard, planRuns, runAblate } from "../src/commands/ablate.ts";
import type { CommandIO } from "../src/commands/common.ts";
import { readJsonl } from "../src/log.ts";
import { checkWellFormedXml } from "./svg.ts";

function quietIO(): CommandIO & { text: () => string } {
  let text = "";
  return { out: (s) => void (text += s), err: (s) => void (text += s), progress: false, text: () => text };
}

async function cli(argv: string[]) {
  let out = "", err = "", code = -1;
  await runCli(ablateCommand, argv, async (a) => {
    await runAblate(a, quietIO());
  }, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), exit: (c) => void (code = c) });
  return { out, err, code };
}

/** Four small "books" of generated prose (the longest is the validation split). */
function makeBooks(dir: string): string {
  const books = join(dir, "books");
  mkdirSync(books);
  const words = "the river ran past the mill and the old bridge where children played in summer while the town slept".split(" ");
  for (let b = 0; b < 4; b++) {
    let s = "", i = b;
    while (s.length < 700 + 200 * b) s += `${words[(i = (i * 7 + 3) % words.length)]}${i % 5 === 0 ? ". " : " "}`;
    writeFileSync(join(books, `book${b}.txt`), s);
  }
  return books;
}

describe("ablate: flags", () => {
  test("--help lists every flag", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    for (const [key, def] of Object.entries(ablateCommand.spec.flags as FlagDefs)) {
      expect(r.out).toContain(def.kind === "bool" ? `--[no-]${kebab(key)}` : `--${kebab(key)} `);
    }
  });
  test("bad input is one line and exit code 2", async () => {
    const cases: [string[], string][] = [
      [[], "ablate: --suite is required (one of core, fidelity, pooling, fusion, sensitivity, all); see --help"],
      [["--suite", "pooling", "--seeds", "1,1", "--data", "/nonexistent"], "ablate: --seeds 1,1 names a seed twice"],
      [["--suite", "fusion", "--data", "/nonexistent/books"], "ablate: --data /nonexistent/books: no such file or directory"],
      [["--suite", "core", "--lengths", "64", "--scored", "100", "--data", "/nonexistent"], "ablate: --scored 100 exceeds the shortest --lengths 64"],
      [["--suite", "core", "--shard", "3/2", "--data", "/nonexistent"], `ablate: --shard expects i/n with 1 <= i <= n (e.g. 2/3), got "3/2"`],
      [["--suite", "core", "--shard", "1", "--data", "/nonexistent"], `ablate: --shard expects i/n with 1 <= i <= n (e.g. 2/3), got "1"`],
      [["--suite", "cor"], `ablate: --suite expects one of core, fidelity, pooling, fusion, sensitivity, all, got "cor" (did you mean core?)`],
    ];
    for (const [argv, line] of cases) {
      const r = await cli(argv);
      expect(r.code).toBe(2);
      expect(r.err).toBe(`${line}\n`);
    }
    // books too short for --seq-len: named before any run starts (it was the window sampler's error, exit 1, mid-suite)
    const dir = mkdtempSync(join(tmpdir(), "mm-ablate-short-"));
    try {
      const books = makeBooks(dir);
      const out = join(dir, "out");
      const r = await cli(["--suite", "core", "--preset", "tiny", "--data", books, "--seq-len", "2k", "--out", out]);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(new RegExp(`^ablate: --data ${books.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: no training document holds a --seq-len 2048 window \\(2049 bytes; the longest has \\d+\\): pass a smaller --seq-len or more text\n$`));
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ablate: the spread rule and shared runs", () => {
  test("mean ± half the range; a difference is real only when the seed ranges do not overlap", () => {
    const a = summarize([1, 3]);
    expect(a).toEqual({ mean: 2, spread: 1, min: 1, max: 3, n: 2 });
    expect(summarize([null, 4, NaN])).toEqual({ mean: 4, spread: 0, min: 4, max: 4, n: 1 });
    expect(isRealDifference(a, summarize([3.5, 4.5]))).toBe(true); // [1, 3] vs [3.5, 4.5]
    expect(isRealDifference(a, summarize([2.5, 4.5]))).toBe(false); // overlap
    expect(isRealDifference(a, summarize([10]))).toBe(false); // one seed: no spread, nothing is real
  });
  test("variants of equal config share one run: at small, max / weighted / k = 50 / S = 64 / τ = 0.5 are the full model", () => {
    const small = planRuns(suitesOf("all"), "small");
    for (const id of ["pool-max", "fusion-weighted", "k-50", "summary-64", "tau1-0.5", "tau2-0.5"]) expect(small.runOf.get(id)).toBe("full");
    expect(small.runOf.get("k-25")).toBe("k-25");
    expect(small.runs.length).toBe(20);
    const tiny = planRuns(suitesOf("all"), "tiny"); // tiny's pool holds 8 notes of 16: k = 50 and S = 64 are runs of their own
    expect(tiny.runOf.get("k-50")).toBe("k-50");
    expect(tiny.runs.length).toBe(22);
    expect(planRuns(suitesOf("fidelity"), "tiny").runs.map((r) => [r.id, [...r.phases]])).toEqual(
      SUITES.core.variants.map((v) => [v.id, ["metrics"]]),
    );
  });
});

describe("ablate: every suite end to end on the CPU (tiny)", () => {
  test("all suites: files, schema, every variant and seed; an interrupted run resumes; a rerun skips what is done", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-ablate-"));
    // the backend ablate runs on (initBackend reuses one instance per kernel choice, which other
    // test files in the same process may have used): its count before, against its count after
    await initBackend("cpu", { cpuKernels: "ts" });
    const live = liveBuffers();
    try {
      const books = makeBooks(dir);
      const out = join(dir, "out");
      const argv = ablateCommand.parse([
        "--suite", "all", "--preset", "tiny", "--cpu-kernels", "ts", "--steps", "2", "--seq-len", "16", "--batch", "1", "--seeds", "1,2",
        "--lengths", "64", "--scored", "8", "--chunk", "64", "--metrics-len", "32", "--metrics-samples", "1", "--data", books, "--out", out,
      ]);
      // 1. a job that ends while fusion-gated seed 1 is half trained (its checkpoint at step 1)
      const first = await runAblate(argv, quietIO(), { stopAtStep: ({ run, seed }) => (run === "fusion-gated" && seed === 1 ? 1 : undefined) });
      expect(first.status).toBe("stopped");
      const gated = join(out, "runs", "fusion-gated", "seed-1");
      expect(existsSync(join(gated, "checkpoint.safetensors"))).toBe(true);
      expect(existsSync(join(gated, "train.json"))).toBe(false);
      expect(first.ran).toContain("full/seed-2");
      expect(first.suites.find((s) => s.suite === "core")!.complete).toBe(true);
      expect(first.suites.find((s) => s.suite === "fusion")!.complete).toBe(false);

      // 2. the same command again: the finished runs are skipped, the interrupted one resumes at step 2
      const io = quietIO();
      const second = await runAblate(argv, io);
      expect(second.status).toBe("done");
      expect(second.skipped).toEqual(first.ran);
      expect(second.ran[0]).toBe("fusion-gated/seed-1");
      expect(readJsonl(join(gated, "train.jsonl")).map((r) => r.step)).toEqual([1, 2]);
      expect(io.text()).toContain("fusion-gated seed 1: trained 2 steps (resumed)");
      expect(io.text()).toContain("training budget per run, the same for every variant: 2 steps × batch 1 × accum 1 × 16 bytes = 32 tokens");

      for (const name of SUITE_NAMES) {
        const files = ["results.json", "results.md", "results.svg"].map((f) => join(out, name, f));
        for (const f of files) expect(existsSync(f)).toBe(true);
        const r = SuiteResultSchema.parse(JSON.parse(readFileSync(files[0], "utf8")));
        expect(r.complete).toBe(true);
        expect(r.settings.tokensPerRun).toBe(32);
        expect(r.variants.map((v) => v.id)).toEqual(SUITES[name].variants.map((v) => v.id));
        for (const v of r.variants) {
          expect(v.seeds.map((s) => [s.seed, s.status])).toEqual([[1, "done"], [2, "done"]]);
          for (const c of r.columns) {
            const values = v.seeds.map((s) => s.values[c.key]);
            // the read rate of a model without cross-token attention, or of plain Mamba, does not exist
            if (c.key !== "readsRate") expect(values.every((x) => typeof x === "number" && Number.isFinite(x))).toBe(true);
            expect(v.summary[c.key].n).toBe(values.filter((x) => x !== null).length);
          }
        }
        expect(r.reference).toBe(name === "pooling" ? "pool-max" : name === "fusion" ? "fusion-weighted" : "full");
        const md = readFileSync(files[1], "utf8");
        for (const v of r.variants) expect(md).toContain(`| ${v.label}`);
        expect(md).toContain("† marks a difference");
        expect(checkWellFormedXml(readFileSync(files[2], "utf8"))).toEqual([]);
      }
      const sens = SuiteResultSchema.parse(JSON.parse(readFileSync(join(out, "sensitivity", "results.json"), "utf8")));
      const rate = (id: string) => sens.variants.find((v) => v.id === id)!.summary.notesRate.mean!;
      expect(rate("tau1-0.25")).toBeGreaterThanOrEqual(rate("tau1-0.75")); // a lower write threshold takes at least as many notes
      const fid = SuiteResultSchema.parse(JSON.parse(readFileSync(join(out, "fidelity", "results.json"), "utf8")));
      expect(fid.columns.map((c) => c.key)).toEqual(["etmf", "eclmf@2"]); // tiny has 2 layers: no gap 5 or 10

      // 3. once more: nothing to do
      const third = await runAblate(argv, quietIO());
      expect(third.ran).toEqual([]);
      expect(third.skipped.length).toBe(22 * 2);
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ablate: shards", () => {
  test("--shard i/n: the shards split the (config, seed) pairs without overlap and write no tables; a run without --shard then only writes them", async () => {
    expect(parseShard("2/3")).toEqual({ i: 2, n: 3 });
    expect(parseShard(undefined)).toBeUndefined();
    const dir = mkdtempSync(join(tmpdir(), "mm-ablate-shard-"));
    await initBackend("cpu", { cpuKernels: "ts" });
    try {
      const books = makeBooks(dir);
      const out = join(dir, "out");
      const base = [
        "--suite", "core", "--preset", "tiny", "--cpu-kernels", "ts", "--steps", "1", "--seq-len", "16", "--batch", "1", "--seeds", "1,2",
        "--lengths", "64", "--scored", "8", "--chunk", "64", "--data", books, "--out", out,
      ];
      const a = await runAblate(ablateCommand.parse([...base, "--shard", "1/2"]), quietIO());
      const b = await runAblate(ablateCommand.parse([...base, "--shard", "2/2"]), quietIO());
      expect(a.status).toBe("done");
      expect(b.status).toBe("done");
      expect(a.suites).toEqual([]);
      expect(existsSync(join(out, "core", "results.json"))).toBe(false);
      const all = [...a.ran, ...b.ran].sort();
      expect(new Set(all).size).toBe(all.length); // no pair ran twice
      expect(all.length).toBe(SUITES.core.variants.length * 2);
      expect(Math.abs(a.ran.length - b.ran.length)).toBeLessThanOrEqual(1);
      const io = quietIO();
      const whole = await runAblate(ablateCommand.parse(base), io);
      expect(whole.ran).toEqual([]);
      expect(whole.skipped.sort()).toEqual(all);
      expect(SuiteResultSchema.parse(JSON.parse(readFileSync(join(out, "core", "results.json"), "utf8"))).complete).toBe(true);
      expect(io.text()).toContain("ablate: all done");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
