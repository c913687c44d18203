/**
 * The user's commands end to end at a tiny size: --help, bad input (one line, exit 2), a missing
 * or corrupt checkpoint (named with its path), train → resume → passkey → eval ppl / docret.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree, flattenTree, liveBuffers } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { type Command, type FlagDefs, kebab, runCli } from "../src/args.ts";
import type { CommandIO } from "../src/commands/common.ts";
import { evalCommand, runEval } from "../src/commands/eval.ts";
import { passkeyCommand, type PasskeyReport, runPasskey } from "../src/commands/passkey.ts";
import { runTrain, trainCommand } from "../src/commands/train.ts";
import { loadCheckpoint } from "../src/checkpoint.ts";
import { loadModelFile } from "../src/weights.ts";
import { readJsonl } from "../src/log.ts";
import { checkWellFormedXml } from "./svg.ts";

function quietIO(): CommandIO & { text: () => string } {
  let text = "";
  return { out: (s) => void (text += s), err: (s) => void (text += s), progress: false, text: () => text };
}

/** Runs a command through runCli (as the bin files do), capturing output and the exit code. */
async function cli<F extends FlagDefs>(cmd: Command<F>, argv: string[], main: (a: never) => Promise<unknown>) {
  let out = "", err = "", code = -1;
  await runCli(cmd, argv, async (a) => {
    await main(a as never);
  }, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), exit: (c) => void (code = c) });
  return { out, err, code };
}

/**
 * Small "books" in `dir`: `paragraphs` distinct two-sentence paragraphs of ~270 bytes each (prose
 * the docret task keeps), blank-line separated, optionally inside a Gutenberg header and footer.
 */
function writeBooks(dir: string, names: string[], paragraphs: number, gutenberg: boolean): string {
  mkdirSync(dir);
  const word = (i: number) => "abcdefghij"[i % 10] + "klmnopqrst"[Math.floor(i / 10) % 10];
  const para = (n: string, i: number) =>
    `Paragraph ${word(i)} of book ${n} begins here. It tells of a journey across the hills to the sea, and of what was found there. The end of the tale is quiet. `;
  for (const n of names) {
    const body = Array.from({ length: paragraphs }, (_, i) => para(n, i).repeat(2)).join("\n\n");
    writeFileSync(join(dir, `${n}.txt`), gutenberg ? `head\n*** START OF THE BOOK\n${body}\n*** END OF THE BOOK\nfoot` : body);
  }
  return dir;
}

const commands = [trainCommand, passkeyCommand, evalCommand] as const;

describe("commands: --help", () => {
  for (const cmd of commands) {
    test(`${cmd.spec.name} --help lists every flag with its default`, async () => {
      const r = await cli(cmd as Command<FlagDefs>, ["--help"], async () => {});
      expect(r.code).toBe(0);
      for (const [key, def] of Object.entries(cmd.spec.flags as FlagDefs)) {
        const name = def.kind === "bool" ? `--[no-]${kebab(key)}` : `--${kebab(key)} `;
        const at = r.out.indexOf(name);
        expect(at).toBeGreaterThan(0);
        const block = r.out.slice(at, r.out.indexOf("\n  -", at + 1));
        const want = def.defaultLabel ?? (def.default === undefined ? "optional" : Array.isArray(def.default) ? def.default.join(",") : String(def.default));
        expect(block.replace(/\s+/g, " ")).toContain(def.default === undefined && def.defaultLabel === undefined ? "[optional]" : `[default: ${want}]`);
      }
    });
  }
});

describe("commands: bad input is one line and exit code 2", () => {
  const cases: [Command<FlagDefs>, string[], string][] = [
    [trainCommand as unknown as Command<FlagDefs>, ["--steps", "-1"], `train: --steps expects a non-negative integer, got "-1"`],
    [trainCommand as unknown as Command<FlagDefs>, ["--model", "rwkv"], `train: --model expects one of memmamba, mamba, transformer, got "rwkv"`],
    [trainCommand as unknown as Command<FlagDefs>, ["--seq-len", "4x"], `train: --seq-len expects a positive integer, got "4x"`],
    [trainCommand as unknown as Command<FlagDefs>, ["--lr", "fast"], `train: --lr expects a positive number, got "fast"`],
    [trainCommand as unknown as Command<FlagDefs>, ["--data", "/nonexistent/books"], `train: --data /nonexistent/books: no such file or directory`],
    [trainCommand as unknown as Command<FlagDefs>, ["--backend", "webgpu2"], `train: --backend expects one of cpu, webgpu, got "webgpu2" (did you mean webgpu?)`],
    [trainCommand as unknown as Command<FlagDefs>, ["--seq-len", "64"], `train: --seq-len 64 is too short for the passkey task (it needs at least 103)`],
    [passkeyCommand as unknown as Command<FlagDefs>, ["--depths", "0,1.5"], `passkey: --depths expects a comma-separated list of numbers in [0, 1], got "0,1.5"`],
    [passkeyCommand as unknown as Command<FlagDefs>, ["--lengths", "1k,,2k"], `passkey: --lengths expects a comma-separated list of positive integers (k = ×1024), got "1k,,2k"`],
    [passkeyCommand as unknown as Command<FlagDefs>, ["--sample", "3"], `passkey: unknown flag --sample (did you mean --samples?); see --help`],
    [evalCommand as unknown as Command<FlagDefs>, ["pll"], `eval: <task> expects one of ppl, docret, metrics, got "pll" (did you mean ppl?)`],
    [evalCommand as unknown as Command<FlagDefs>, [], `eval: missing <task> (one of ppl, docret, metrics); see --help`],
    [evalCommand as unknown as Command<FlagDefs>, ["ppl", "--k", "ten"], `eval: --k expects a comma-separated list of positive integers (k = ×1024), got "ten"`],
  ];
  const mains: Record<string, (a: never) => Promise<unknown>> = {
    train: (a) => runTrain(a, quietIO()).then((r) => disposeTree(r.params)),
    passkey: (a) => runPasskey(a, quietIO()),
    eval: (a) => runEval(a, quietIO()),
  };
  for (const [cmd, argv, line] of cases) {
    test(`${cmd.spec.name} ${argv.join(" ")}`, async () => {
      const r = await cli(cmd, argv, mains[cmd.spec.name]);
      expect(r.code).toBe(2);
      expect(r.err).toBe(`${line}\n`);
    });
  }

  test("a bad --config file is named", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-cmd-"));
    try {
      const cfg = join(dir, "c.json");
      writeFileSync(cfg, "{ nope");
      const r = await cli(trainCommand as unknown as Command<FlagDefs>, ["--config", cfg], mains.train);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(new RegExp(`^train: --config ${cfg.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not valid JSON \\(.*\\)\\n$`));
      writeFileSync(cfg, JSON.stringify({ dModel: -4 }));
      const bad = await cli(trainCommand as unknown as Command<FlagDefs>, ["--config", cfg, "--steps", "1"], mains.train);
      expect(bad.code).toBe(2); // bad input in the file: a usage error, as malformed JSON is
      expect(bad.err).toContain(`train: --config ${cfg}: invalid model config:`);
      expect(bad.err).toContain("config.dModel");
      // a misspelt key is refused (it used to be dropped, and the default model trained)
      writeFileSync(cfg, JSON.stringify({ dModl: 32 }));
      const typo = await cli(trainCommand as unknown as Command<FlagDefs>, ["--config", cfg, "--steps", "1"], mains.train);
      expect(typo.code).toBe(2);
      expect(typo.err).toContain(`train: --config ${cfg}: invalid model config:\n  config: unknown key "dModl" (did you mean "dModel"?)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: end to end at a tiny size", () => {
  test("train → resume → passkey → eval ppl / docret / metrics; missing and corrupt checkpoints are named", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-e2e-"));
    const live = liveBuffers();
    try {
      const out = join(dir, "run");
      const tiny = ["--seq-len", "112", "--batch", "1", "--accum", "1", "--checkpoint-every", "2", "--eval-every", "2", "--lr", "1e-3", "--out", out];
      // 2 steps, then resume to 4: the log reads like one 4-step run
      const a = await runTrain(trainCommand.parse([...tiny, "--steps", "2"]), quietIO());
      disposeTree(a.params);
      const b = await runTrain(trainCommand.parse([...tiny, "--steps", "4", "--resume"]), quietIO());
      disposeTree(b.params);
      expect(b.records.map((r) => r.step)).toEqual([3, 4]);
      const straight = join(dir, "straight");
      const c = await runTrain(trainCommand.parse([...tiny, "--steps", "4", "--out", straight]), quietIO());
      disposeTree(c.params);
      expect(readJsonl(join(out, "train.jsonl")).map((r) => r.loss)).toEqual(c.records.map((r) => r.loss));
      expect(readJsonl(join(out, "train.jsonl"))[1].exactMatch).toBe(0); // evaluated every 2 steps
      expect(checkWellFormedXml(readFileSync(join(out, "loss.svg"), "utf8"))).toEqual([]);
      const ckpt = join(out, "checkpoint.safetensors");

      // passkey on it: the table, JSON and heatmap
      const io = quietIO();
      const rep: PasskeyReport = await runPasskey(passkeyCommand.parse(["--checkpoint", ckpt, "--lengths", "128,200", "--depths", "0,1", "--samples", "1", "--chunk", "64"]), io);
      expect(rep.accuracy).toHaveLength(2);
      expect(rep.results).toHaveLength(4);
      expect(rep.results.every((r) => /^\d{5}$/.test(r.passkey))).toBe(true);
      expect(io.text()).toContain("depth \\ length");
      expect(JSON.parse(readFileSync(join(out, "passkey", "passkey.json"), "utf8")).lengths).toEqual([128, 200]);
      expect(checkWellFormedXml(readFileSync(join(out, "passkey", "passkey.svg"), "utf8"))).toEqual([]);

      // eval on two small "books"
      const books = writeBooks(join(dir, "books"), ["one", "two"], 30, true);
      const ppl = await runEval(evalCommand.parse(["ppl", "--checkpoint", ckpt, "--data", books, "--split", "all", "--lengths", "128,256", "--windows", "2", "--scored", "16", "--chunk", "64"]), quietIO()) as { rows: { length: number; ppl: number; windows: number }[] };
      expect(ppl.rows.map((r) => [r.length, r.windows])).toEqual([[128, 4], [256, 4]]);
      expect(ppl.rows.every((r) => r.ppl > 1 && r.ppl < 1000)).toBe(true);
      expect(existsSync(join(out, "eval-ppl.svg"))).toBe(true);
      // --align: the same bytes scored at every length; the longest length's row is the unaligned one
      const aligned = await runEval(evalCommand.parse(["ppl", "--checkpoint", ckpt, "--data", books, "--split", "all", "--lengths", "128,256", "--windows", "2", "--scored", "16", "--chunk", "64", "--align"]), quietIO()) as { aligned: boolean; rows: { length: number; ppl: number; windows: number }[] };
      expect(aligned.aligned).toBe(true);
      expect(aligned.rows.map((r) => [r.length, r.windows])).toEqual([[128, 4], [256, 4]]);
      expect(aligned.rows[1].ppl).toBe(ppl.rows[1].ppl);
      expect(aligned.rows[0].ppl).not.toBe(ppl.rows[0].ppl); // other bytes scored at 128
      await expect(runEval(evalCommand.parse(["docret", "--checkpoint", ckpt, "--data", books, "--align"]), quietIO())).rejects.toThrow("eval: --align is for ppl (this is eval docret)");
      await expect(runEval(evalCommand.parse(["ppl", "--checkpoint", ckpt, "--data", books, "--split", "all", "--lengths", "128,1m", "--align"]), quietIO()))
        .rejects.toThrow("eval: --align scores every length on windows of the longest, 1048576: no book of --data");
      const drIO = quietIO();
      const dr = await runEval(evalCommand.parse(["docret", "--checkpoint", ckpt, "--data", books, "--split", "all", "--k", "3", "--samples", "2", "--chunk", "256"]), drIO) as {
        rows: { k: number; samples: number; guess: number; fromPrompt: number }[];
        results: { k: number; correct: boolean; goldPosition: number; predictedPosition: number | null }[];
      };
      expect(dr.rows).toEqual([expect.objectContaining({ k: 3, samples: 2, guess: 0.25 })]);
      // each answer's place among the prompt's 4 documents (null: no id of the prompt); the row's share of answers that are one
      for (const r of dr.results) {
        expect(r.goldPosition >= 0 && r.goldPosition <= 3).toBe(true);
        expect(r.predictedPosition === null || (r.predictedPosition >= 0 && r.predictedPosition <= 3)).toBe(true);
        if (r.correct) expect(r.predictedPosition).toBe(r.goldPosition);
      }
      expect(dr.rows[0].fromPrompt).toBe(dr.results.filter((r) => r.predictedPosition !== null).length / 2);
      expect(drIO.text()).toMatch(/k \(noise docs\)\s+accuracy\s+a guess among the ids\s+an id of the prompt/);
      expect(drIO.text()).toMatch(/\n3\s+\d\.\d{3}\s+0\.250\s+\d\.\d{3}\s+2\s/);
      const mt = await runEval(evalCommand.parse(["metrics", "--checkpoint", ckpt, "--data", books, "--split", "all", "--metrics-len", "64", "--samples", "2"]), quietIO()) as { rows: { metric: string; value: number }[]; windows: number };
      expect(mt.windows).toBe(2);
      expect(mt.rows[0].metric).toBe("ETMF");
      expect(mt.rows.every((r) => Number.isFinite(r.value) && r.value <= 1)).toBe(true);
      expect(existsSync(join(out, "eval-metrics.json"))).toBe(true);

      // a missing and a corrupt checkpoint: exit 1, the path and the problem
      const missing = await cli(passkeyCommand as unknown as Command<FlagDefs>, ["--checkpoint", join(dir, "nope.safetensors")], (a) => runPasskey(a, quietIO()));
      expect(missing.code).toBe(1);
      expect(missing.err).toMatch(new RegExp(`^passkey: ${join(dir, "nope.safetensors").replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: [^\\n]*no such file[^\\n]*\\n$`));
      const corrupt = join(dir, "corrupt.safetensors");
      writeFileSync(corrupt, readFileSync(ckpt).subarray(0, 1000));
      const bad = await cli(evalCommand as unknown as Command<FlagDefs>, ["ppl", "--checkpoint", corrupt, "--data", books], (a) => runEval(a, quietIO()));
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(new RegExp(`^eval: ${corrupt.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}: not a valid [^\\n]*\\n$`));
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: train --overwrite", () => {
  test("replaces the run's own files only: no earlier loss plot or log rows are left as this run's; passkey and eval results are named, not deleted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-overwrite-"));
    try {
      const out = join(dir, "run");
      const tiny = ["--seq-len", "112", "--batch", "1", "--accum", "1", "--eval-every", "0", "--out", out];
      const a = await runTrain(trainCommand.parse([...tiny, "--steps", "2"]), quietIO());
      disposeTree(a.params);
      expect(existsSync(join(out, "loss.svg"))).toBe(true);
      mkdirSync(join(out, "passkey"));
      writeFileSync(join(out, "passkey", "passkey.json"), "{}");
      writeFileSync(join(out, "eval-ppl.json"), "{}");
      const io = quietIO();
      const b = await runTrain(trainCommand.parse([...tiny, "--steps", "0", "--overwrite"]), io);
      disposeTree(b.params);
      // the checkpoint is this run's (its initial weights, step 0), its log is empty, and there is no loss plot: it took no step
      expect(loadCheckpoint(join(out, "checkpoint.safetensors")).step).toBe(0);
      expect(readJsonl(join(out, "train.jsonl"))).toEqual([]);
      expect(existsSync(join(out, "loss.svg"))).toBe(false);
      expect(io.text()).toContain(`train: log ${join(out, "train.jsonl")}\n`);
      // the other commands' results are left, and said to be from before
      expect(readFileSync(join(out, "passkey", "passkey.json"), "utf8")).toBe("{}");
      expect(readFileSync(join(out, "eval-ppl.json"), "utf8")).toBe("{}");
      expect(io.text()).toContain(`train: note: ${out} also holds eval-ppl.json, passkey/ from before, not this run's`);
      // a run that takes steps draws its own plot
      const c = await runTrain(trainCommand.parse([...tiny, "--steps", "1", "--overwrite"]), quietIO());
      disposeTree(c.params);
      expect(readJsonl(join(out, "train.jsonl")).map((r) => r.step)).toEqual([1]);
      expect(checkWellFormedXml(readFileSync(join(out, "loss.svg"), "utf8"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: passkey --train", () => {
  test("a quick training that diverges before its first save is an error naming the step and the run folder; the earlier run's checkpoint is not evaluated and its files are kept", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-passkey-train-"));
    const live = liveBuffers();
    try {
      const run = join(dir, "run");
      const ckpt = join(run, "checkpoint.safetensors");
      const evalFlags = ["--lengths", "128", "--depths", "0", "--samples", "1", "--chunk", "64"];
      // an earlier run: trained and evaluated by passkey --train
      const first = await runPasskey(passkeyCommand.parse(["--checkpoint", ckpt, "--train", "--train-steps", "2", ...evalFlags]), quietIO());
      expect(first.results).toHaveLength(1);
      expect(loadCheckpoint(ckpt).step).toBe(2);
      const before = { ckpt: readFileSync(ckpt), json: readFileSync(join(run, "passkey", "passkey.json"), "utf8"), svg: readFileSync(join(run, "passkey", "passkey.svg"), "utf8") };
      // --overwrite with an absurd learning rate: NaN from step 3 on, stopped at step 7, before the first save (step 20)
      const io = quietIO();
      const r = await cli(passkeyCommand as unknown as Command<FlagDefs>, ["--checkpoint", ckpt, "--train", "--overwrite", "--train-steps", "20", "--train-lr", "1e9", ...evalFlags], (a) => runPasskey(a, io));
      expect(r.code).toBe(1);
      const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      expect(r.err).toMatch(new RegExp(
        `^passkey: --train: the training in ${esc(run)} diverged at step \\d+ \\(loss is NaN \\(micro-batch 1/1\\)\\): train stopped after 5 consecutive non-finite steps at step \\d+; ` +
          `last good checkpoint: none written \\(the ${esc(ckpt)} there is an earlier run's\\); nothing evaluated \\(its log: ${esc(join(run, "train.jsonl"))}\\)\\n$`,
      ));
      expect(r.out).toBe("");
      expect(io.text()).not.toContain("passkey retrieval accuracy");
      // the step named is the run's first NaN step, and its log holds the skipped steps (as --overwrite documents)
      const log = readJsonl(join(run, "train.jsonl"));
      const firstBad = log.find((x) => x.skipped === true)!;
      expect(r.err).toContain(`diverged at step ${firstBad.step} (`);
      expect(r.err).toContain(`at step ${log[log.length - 1].step}; last good checkpoint`);
      // the earlier run's checkpoint and passkey results are untouched
      expect(readFileSync(ckpt).equals(before.ckpt)).toBe(true);
      expect(readFileSync(join(run, "passkey", "passkey.json"), "utf8")).toBe(before.json);
      expect(readFileSync(join(run, "passkey", "passkey.svg"), "utf8")).toBe(before.svg);
      // --train-lr belongs to --train
      const usage = await cli(passkeyCommand as unknown as Command<FlagDefs>, ["--checkpoint", ckpt, "--train-lr", "1e9"], (a) => runPasskey(a, quietIO()));
      expect({ code: usage.code, err: usage.err }).toEqual({ code: 2, err: "passkey: --train-lr is for --train (the learning rate of its quick training)\n" });
      const steps = await cli(passkeyCommand as unknown as Command<FlagDefs>, ["--checkpoint", ckpt, "--train-steps", "5"], (a) => runPasskey(a, quietIO()));
      expect({ code: steps.code, err: steps.err }).toEqual({ code: 2, err: "passkey: --train-steps is for --train (the steps of its quick training)\n" });
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: train --task docret", () => {
  test("trains on docret rows of --data's paragraphs, scores held-out validation rows, records the task (eval docret asks with its query); a resume with other rows says so; --init starts from given weights", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-docret-"));
    const live = liveBuffers();
    try {
      const books = writeBooks(join(dir, "books"), ["one", "two", "three"], 12, false);
      const out = join(dir, "run");
      const base = ["--task", "docret", "--data", books, "--batch", "2", "--steps", "2", "--eval-every", "1", "--out", out];
      const io = quietIO();
      const a = await runTrain(trainCommand.parse([...base, "--seq-len", "1200", "--docret-k", "1,2"]), io);
      disposeTree(a.params);
      expect(a.records.map((r) => r.step)).toEqual([1, 2]);
      for (const r of a.records) {
        expect(r.evalLoss as number).toBeGreaterThan(0);
        expect(r.digitAcc as number).toBeGreaterThanOrEqual(0);
        expect(r.exactMatch).toBe(0); // 2 steps of a tiny model
      }
      expect(io.text()).toContain("k = 1,2 noise paragraphs");
      const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
      expect(ck.extra).toEqual(expect.objectContaining({ task: "docret", seqLen: "1200", docretK: "1,2", query: "sentence" }));
      // the same rows: no note; other rows: a note naming both
      const b = await runTrain(trainCommand.parse([...base, "--seq-len", "1200", "--docret-k", "1,2", "--steps", "3", "--resume"]), quietIO());
      disposeTree(b.params);
      expect(b.resumeNotice).toBeUndefined();
      const c = await runTrain(trainCommand.parse([...base, "--seq-len", "1100", "--docret-k", "1", "--steps", "4", "--resume"]), quietIO());
      disposeTree(c.params);
      expect(c.resumeNotice).toContain("written with seqLen 1200, docretK 1,2, with seqLen 1100, docretK 1: the batches from here on are not an uninterrupted run's");
      expect(c.records.map((r) => r.step)).toEqual([4]);
      // eval docret asks with the query the checkpoint was trained on, unless --query says otherwise
      const fw = join(dir, "first-words");
      const d = await runTrain(trainCommand.parse([...base, "--seq-len", "1200", "--docret-k", "1", "--query", "first-words", "--steps", "1", "--eval-every", "0", "--out", fw]), quietIO());
      disposeTree(d.params);
      const ev = async (argv: string[]) => {
        const io = quietIO();
        const r = await runEval(evalCommand.parse(["docret", "--checkpoint", join(fw, "checkpoint.safetensors"), "--data", books, "--split", "all", "--k", "1", "--samples", "1", "--chunk", "256", ...argv]), io) as { query: string };
        return { query: r.query, said: io.text() };
      };
      const asTrained = await ev([]);
      expect(asTrained.query).toBe("first-words");
      expect(asTrained.said).toContain("the query the checkpoint was trained on, first-words (--query overrides)");
      expect((await ev(["--query", "sentence"])).query).toBe("sentence");
      // --init: a fresh run starts from a file's weights (here the LM task's); another config is refused, naming the field
      const lmRun = join(dir, "lm");
      const l = await runTrain(trainCommand.parse(["--data", books, "--steps", "1", "--eval-every", "0", "--out", lmRun]), quietIO());
      disposeTree(l.params);
      const lmFile = join(lmRun, "checkpoint.safetensors");
      const io2 = quietIO();
      const fromLm = await runTrain(trainCommand.parse([...base, "--seq-len", "1200", "--docret-k", "1", "--steps", "0", "--eval-every", "0", "--init", lmFile, "--out", join(dir, "init")]), io2);
      const want = loadModelFile(lmFile).params;
      const [got, exp] = [flattenTree(fromLm.params), flattenTree(want)];
      expect(got.map(([k]) => k)).toEqual(exp.map(([k]) => k));
      for (let i = 0; i < got.length; i++) expect(Array.from(await got[i][1].data())).toEqual(Array.from(await exp[i][1].data()));
      disposeTree([fromLm.params, want]);
      expect(io2.text()).toContain(`initial weights from ${lmFile} (step 1 of its run)`);
      await expect(runTrain(trainCommand.parse([...base, "--seq-len", "1200", "--preset", "small", "--init", lmFile, "--out", join(dir, "init2")]), quietIO()))
        .rejects.toThrow(`--init ${lmFile} holds another model config than this run's (dModel: 32 in the file, 256 now)`);
      // too short a row for the smallest k: the error says what to change
      await expect(runTrain(trainCommand.parse([...base, "--seq-len", "200", "--overwrite"]), quietIO())).rejects.toThrow("is too short for k = 1");
      expect(liveBuffers()).toBe(live);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--docret-chars picks the documents' lengths: train records it, eval docret uses it unless told otherwise; bad values and other tasks are refused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-docret-chars-"));
    try {
      // books of ~280-character paragraphs (writeBooks), each followed by ~60-character two-sentence ones
      const names = ["one", "two", "three"];
      const books = writeBooks(join(dir, "books"), names, 12, false);
      const word = (i: number) => "abcdefghij"[i % 10] + "klmnopqrst"[Math.floor(i / 10) % 10];
      for (const n of names) {
        const short = Array.from({ length: 12 }, (_, i) => `Short one ${word(i)} of book ${n} starts. It ends soon after.`).join("\n\n");
        writeFileSync(join(books, `${n}.txt`), `${readFileSync(join(books, `${n}.txt`), "utf8")}\n\n${short}`);
      }
      const out = join(dir, "run");
      const base = ["--task", "docret", "--data", books, "--batch", "2", "--steps", "1", "--eval-every", "0", "--seq-len", "600", "--docret-k", "1", "--out", out];
      const io = quietIO();
      const t = await runTrain(trainCommand.parse([...base, "--docret-chars", "40,160"]), io);
      disposeTree(t.params);
      expect(io.text()).toMatch(/train: docret: \d+ training and \d+ validation paragraphs of 40-160 characters/);
      expect(loadCheckpoint(join(out, "checkpoint.safetensors")).extra).toEqual(expect.objectContaining({ docretChars: "40,160" }));
      const ev = async (argv: string[]) => {
        const io = quietIO();
        const r = await runEval(evalCommand.parse(["docret", "--checkpoint", join(out, "checkpoint.safetensors"), "--data", books, "--split", "all", "--k", "1", "--samples", "2", "--chunk", "256", ...argv]), io) as {
          docretChars: number[];
          rows: { meanPromptBytes: number }[];
        };
        return { chars: r.docretChars, bytes: r.rows[0].meanPromptBytes, said: io.text() };
      };
      const asTrained = await ev([]);
      expect(asTrained.chars).toEqual([40, 160]);
      expect(asTrained.said).toContain("docret documents of 40,160 characters, as the checkpoint was trained on (--docret-chars overrides)");
      expect(asTrained.said).toContain("paragraphs of 40-160 characters");
      const long = await ev(["--docret-chars", "200,1000"]);
      expect(long.chars).toEqual([200, 1000]);
      // two ~60-character documents and the question against two ~280-character ones
      expect(asTrained.bytes).toBeLessThan(300);
      expect(long.bytes).toBeGreaterThan(600);
      // bad values: the command, the flag and what it takes
      await expect(runTrain(trainCommand.parse([...base, "--docret-chars", "300,200", "--overwrite"]), quietIO()))
        .rejects.toThrow("train: --docret-chars takes the shortest and the longest document in characters, MIN,MAX with MIN <= MAX (e.g. 200,1000), got 300,200");
      await expect(ev(["--docret-chars", "100"])).rejects.toThrow("eval: --docret-chars takes the shortest and the longest document in characters, MIN,MAX with MIN <= MAX (e.g. 200,1000), got 100");
      // too few documents of those lengths: the error names them
      await expect(runTrain(trainCommand.parse([...base, "--docret-chars", "5000,6000", "--overwrite"]), quietIO()))
        .rejects.toThrow("paragraphs of 5000-6000 characters; --docret-k up to 1 needs 2 (add books or widen --docret-chars)");
      // another task's flag
      await expect(runTrain(trainCommand.parse(["--data", books, "--docret-chars", "40,160", "--out", join(dir, "lm")]), quietIO()))
        .rejects.toThrow("train: --docret-chars is for --task docret (this is --task text)");
      await expect(runEval(evalCommand.parse(["ppl", "--checkpoint", join(out, "checkpoint.safetensors"), "--data", books, "--docret-chars", "40,160"]), quietIO()))
        .rejects.toThrow("eval: --docret-chars is for docret (this is eval ppl)");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
