/**
 * Bad input to each command, through runCli as the bin files run it: a wrong or unknown flag is
 * one line naming the flag (exit code 2); a missing or corrupt checkpoint is one line naming the
 * file's path and what is wrong (exit code 1). Nothing here trains: every case fails before that
 * (one 0-step run writes a checkpoint to evaluate).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { disposeTree } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { type Command, type FlagDefs, runCli } from "../src/args.ts";
import { type CommandIO, defaultOutDir } from "../src/commands/common.ts";
import { evalCommand, runEval } from "../src/commands/eval.ts";
import { passkeyCommand, runPasskey } from "../src/commands/passkey.ts";
import { FIXED_BYTES } from "@memmamba/memmamba";
import { runTrain, trainCommand } from "../src/commands/train.ts";

const quiet: CommandIO = { out: () => {}, err: () => {}, progress: false };
const mains: Record<string, (a: never) => Promise<unknown>> = {
  train: (a) => runTrain(a, quiet).then((r) => disposeTree(r.params)),
  passkey: (a) => runPasskey(a, quiet),
  eval: (a) => runEval(a, quiet),
};
const commands: Record<string, Command<FlagDefs>> = {
  train: trainCommand as unknown as Command<FlagDefs>,
  passkey: passkeyCommand as unknown as Command<FlagDefs>,
  eval: evalCommand as unknown as Command<FlagDefs>,
};

async function cli(name: string, argv: string[]) {
  let out = "", err = "", code = -1;
  await runCli(commands[name], argv, async (a) => {
    await mains[name](a as never);
  }, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), exit: (c) => void (code = c) });
  return { out, err, code };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

describe("commands: a wrong or unknown flag is one line naming it, exit code 2", () => {
  const cases: [string, string[], string][] = [
    ["train", ["--step", "5"], "train: unknown flag --step (did you mean --steps?); see --help"],
    ["train", ["--steps"], "train: --steps expects a non-negative integer, got nothing"],
    ["train", ["--batch", "0"], `train: --batch expects a positive integer, got "0"`],
    ["train", ["--dtype", "F8"], `train: --dtype expects one of F32, F16, BF16, got "F8"`],
    ["train", ["runs/x"], `train: unexpected argument "runs/x" (this command takes only flags); see --help`],
    ["train", ["--task", "docret"], "train: --task docret needs --data (the books whose paragraphs are the documents)"],
    ["train", ["--task", "passkey", "--data", "books"], "train: --task passkey takes its filler from --filler, not --data"],
    ["train", ["--data", "books", "--docret-k", "2,3"], "train: --docret-k is for --task docret (this is --task text)"],
    ["train", ["--task", "docret", "--data", "books", "--filler", "books"], "train: --filler is for the passkey task (this is --task docret)"],
    ["train", ["--data", "books", "--task-loss", "all"], "train: --task-loss is for the passkey and docret tasks (the LM scores every byte)"],
    ["train", ["--task", "docrte"], `train: --task expects one of passkey, text, docret, got "docrte" (did you mean docret?)`],
    ["passkey", ["--samples", "0"], `passkey: --samples expects a positive integer, got "0"`],
    ["passkey", ["--checkpoint"], "passkey: --checkpoint expects a path, got nothing"],
    ["passkey", ["--filler-split", "train"], "passkey: --filler-split is for --filler (which of its books); the generated filler has none"],
    ["passkey", ["--filler", "books", "--filler-kind", "random"], "passkey: --filler-kind is for the generated filler; --filler takes the text from its books"],
    ["eval", ["ppl", "--lenghts", "1k"], "eval: unknown flag --lenghts (did you mean --lengths?); see --help"],
    ["eval", ["docret", "--samples", "many"], `eval: --samples expects a positive integer, got "many"`],
    ["eval", ["ppl", "--k", "3"], "eval: --k is for docret (this is eval ppl)"],
    ["eval", ["ppl", "--query", "echo"], "eval: --query is for docret (this is eval ppl)"],
    ["eval", ["docret", "--lengths", "1k"], "eval: --lengths is for ppl (this is eval docret)"],
    ["eval", ["docret", "--metrics-len", "1k"], "eval: --metrics-len is for metrics (this is eval docret)"],
    ["eval", ["metrics", "--chunk", "256"], "eval: --chunk is for ppl and docret (this is eval metrics)"],
    ["eval", ["ppl", "--samples", "3"], "eval: --samples is for docret and metrics (this is eval ppl)"],
  ];
  for (const [name, argv, line] of cases) {
    test(`${name} ${argv.join(" ")}`, async () => {
      const r = await cli(name, argv);
      expect(r.err).toBe(`${line}\n`);
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
    });
  }
});

describe("commands: a missing or corrupt checkpoint is named with its path, exit code 1", () => {
  test("train --resume, passkey and eval, each with a missing file and a corrupt one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-badck-"));
    try {
      const empty = join(dir, "empty");
      const broken = join(dir, "broken");
      mkdirSync(broken);
      const corrupt = join(broken, "checkpoint.safetensors");
      writeFileSync(corrupt, "this is not a safetensors file, just some text that is long enough");
      const books = join(dir, "book.txt");
      writeFileSync(books, "Some text. ".repeat(200));
      const missing = join(empty, "checkpoint.safetensors");
      const runs: [string, string[], string][] = [
        ["train", ["--resume", "--out", empty, "--steps", "1"], missing], // (and makes no --out directory: below)
        ["train", ["--resume", "--out", broken, "--steps", "1"], corrupt],
        ["passkey", ["--checkpoint", missing, "--lengths", "128", "--samples", "1"], missing],
        ["passkey", ["--checkpoint", corrupt, "--lengths", "128", "--samples", "1"], corrupt],
        ["eval", ["ppl", "--checkpoint", missing, "--data", books, "--split", "all"], missing],
        ["eval", ["docret", "--checkpoint", corrupt, "--data", books, "--split", "all"], corrupt],
      ];
      for (const [name, argv, path] of runs) {
        const r = await cli(name, argv);
        const what = `${name} ${argv.join(" ")}`;
        expect({ what, code: r.code }).toEqual({ what, code: 1 });
        // one line: "<command>: <path>: <what is wrong>"
        expect(r.err).toMatch(new RegExp(`^${escape(name)}: ${escape(path)}: [^\\n]+\\n$`));
        expect(r.err).toMatch(path === corrupt ? /not a valid/ : /no such file|not found/);
      }
      expect(existsSync(empty)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: outputs and values checked before any work, exit code 2", () => {
  test("--out that is a file, a too-short passkey length, --scored past --lengths, passkey --train over a checkpoint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-badout-"));
    try {
      const file = join(dir, "afile");
      writeFileSync(file, "keep me");
      const books = join(dir, "book.txt");
      writeFileSync(books, "Some text. ".repeat(200));
      const run = join(dir, "run");
      mkdirSync(run);
      const ck = join(run, "checkpoint.safetensors");
      writeFileSync(ck, "an earlier run's checkpoint");
      const cases: [string, string[], string][] = [
        ["train", ["--out", file, "--steps", "1"], `train: --out ${file}: is a file, not a directory`],
        ["train", ["--out", join(file, "sub"), "--steps", "1"], `train: --out ${join(file, "sub")}: ${file} is a file, so the directory cannot be made`],
        ["passkey", ["--checkpoint", ck, "--out", file, "--lengths", "128"], `passkey: --out ${file}: is a file, not a directory`],
        ["passkey", ["--checkpoint", ck, "--lengths", `${FIXED_BYTES - 1},128`], `passkey: --lengths ${FIXED_BYTES - 1}: a prompt needs at least ${FIXED_BYTES} tokens (the needle and the question)`],
        ["passkey", ["--checkpoint", ck, "--overwrite"], "passkey: --overwrite is for --train (it replaces the checkpoint that --train writes)"],
        ["passkey", ["--checkpoint", ck, "--train"], `passkey: --train would replace ${ck}: evaluate it without --train, pass another --checkpoint directory, or add --overwrite`],
        ["passkey", ["--checkpoint", join(run, "other.safetensors"), "--train"], `passkey: --train would replace ${ck}: evaluate it without --train, pass another --checkpoint directory, or add --overwrite`],
        ["eval", ["ppl", "--checkpoint", ck, "--data", books, "--out", file], `eval: --out ${file}: is a file, not a directory`],
        ["eval", ["ppl", "--checkpoint", ck, "--data", books, "--scored", "500", "--lengths", "256"], "eval: --scored 500 exceeds the shortest --lengths 256"],
      ];
      for (const [name, argv, line] of cases) {
        const r = await cli(name, argv);
        expect({ argv, err: r.err, code: r.code }).toEqual({ argv, err: `${line}\n`, code: 2 });
      }
      expect(readFileSync(file, "utf8")).toBe("keep me");
      expect(readFileSync(ck, "utf8")).toBe("an earlier run's checkpoint");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("commands: data too small for the flags is one line naming the flag, exit code 2", () => {
  test("train --data shorter than --seq-len, eval docret with fewer paragraphs than --k needs, eval metrics with books shorter than --metrics-len, eval ppl at lengths no book reaches", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mm-baddata-"));
    try {
      const short = join(dir, "short.txt");
      writeFileSync(short, "A short text. It holds no window of 128 bytes.\n");
      const books = join(dir, "book.txt");
      writeFileSync(books, "Some text. ".repeat(200)); // 2,200 bytes, one block too long to be a paragraph
      // a checkpoint to evaluate: a run of 0 steps saves its initial weights
      const ckRun = join(dir, "run");
      await runTrain(trainCommand.parse(["--steps", "0", "--eval-every", "0", "--out", ckRun]), quiet).then((r) => disposeTree(r.params));
      const ck = join(ckRun, "checkpoint.safetensors");
      const cases: [string, string[], RegExp][] = [
        ["train", ["--data", short, "--steps", "1", "--out", join(dir, "t")],
          new RegExp(`^train: --data ${escape(short)}: no training document holds a --seq-len 128 window \\(129 bytes; the longest has \\d+\\): pass a smaller --seq-len or more text\n$`)],
        ["eval", ["docret", "--checkpoint", ck, "--data", books, "--split", "all", "--k", "3,5", "--out", join(dir, "e")],
          new RegExp(`^eval: --data ${escape(books)} has 0 paragraphs of 200-1000 characters \\(all documents\\); --k up to 5 needs 6 \\(add books\\)\n$`)],
        ["eval", ["metrics", "--checkpoint", ck, "--data", books, "--split", "all", "--metrics-len", "4k", "--out", join(dir, "e")],
          new RegExp(`^eval: --metrics-len 4096: no book of --data ${escape(books)} is longer than that \\(the longest has 2200 bytes; all documents\\)\n$`)],
        ["eval", ["ppl", "--checkpoint", ck, "--data", books, "--split", "all", "--lengths", "1k,4k,8k", "--out", join(dir, "e")],
          new RegExp(`^eval: --lengths 4096,8192: no book of --data ${escape(books)} is longer than that \\(the longest has 2200 bytes; all documents\\): pass shorter --lengths or more text\n$`)],
      ];
      for (const [name, argv, line] of cases) {
        const r = await cli(name, argv);
        expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
        expect(r.err).toMatch(line);
      }
      expect(existsSync(join(dir, "t"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("results go beside a run's checkpoint, and under runs/ for any other file (never into weights/)", () => {
  expect(defaultOutDir("passkey", join("runs", "a", "checkpoint.safetensors"), "passkey")).toBe(join("runs", "a", "passkey"));
  expect(defaultOutDir("eval", join("runs", "a", "checkpoint.safetensors"))).toBe(join("runs", "a"));
  expect(defaultOutDir("passkey", join("weights", "memmamba-small-passkey.safetensors"), "passkey")).toBe(join("runs", "passkey", "memmamba-small-passkey"));
  expect(defaultOutDir("eval", join("weights", "m.safetensors"))).toBe(join("runs", "eval", "m"));
});
