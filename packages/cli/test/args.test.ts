import { describe, expect, test } from "../../../test/support/harness.ts";
import { defineCommand, editDistance, flag, HelpRequested, kebab, parseSizeSuffix, runCli, UsageError } from "../src/args.ts";

const cmd = defineCommand({
  name: "train",
  summary: "train a model",
  usage: "bun run train [flags]",
  flags: {
    lr: flag.number("learning rate", { default: 1e-4, positive: true }),
    seqLen: flag.int("tokens per window", { default: 512, positive: true }),
    steps: flag.int("optimizer steps", { default: 100, min: 0 }),
    data: flag.path("a .txt file or a directory of them"),
    model: flag.enum(["memmamba", "mamba", "transformer"], "architecture", { default: "memmamba" }),
    resume: flag.bool("continue from the checkpoint"),
    lengths: flag.intList("context lengths", { default: [1024, 2048], positive: true }),
    depths: flag.numberList("needle depths", { default: [0, 0.5, 1], min: 0, max: 1 }),
    out: flag.path("output directory", { default: "runs/x" }),
  },
});

/** Runs the command through runCli, capturing output and exit code. */
async function run(argv: string[]) {
  let out = "", err = "", exitCode = -1;
  let parsed: unknown;
  await runCli(cmd, argv, (a) => {
    parsed = a.flags;
  }, { stdout: (s) => void (out += s), stderr: (s) => void (err += s), exit: (c) => void (exitCode = c) });
  return { out, err, code: exitCode, flags: parsed as Record<string, unknown> | undefined };
}

describe("args: parsing", () => {
  test("defaults apply when flags are absent", () => {
    const { flags, given } = cmd.parse([]);
    expect(flags).toEqual({ lr: 1e-4, seqLen: 512, steps: 100, model: "memmamba", resume: false, lengths: [1024, 2048], depths: [0, 0.5, 1], out: "runs/x" });
    expect(given.size).toBe(0);
  });

  test("--flag value, --flag=value, booleans, negation, lists with k suffixes", () => {
    const { flags, given } = cmd.parse(["--lr", "3e-4", "--seq-len=4k", "--resume", "--lengths", "1k,2K,4k", "--depths=0,0.25", "--model", "mamba", "--data", "books"]);
    expect(flags.lr).toBe(3e-4);
    expect(flags.seqLen).toBe(4096);
    expect(flags.resume).toBe(true);
    expect(flags.lengths).toEqual([1024, 2048, 4096]);
    expect(flags.depths).toEqual([0, 0.25]);
    expect(flags.model).toBe("mamba");
    expect(flags.data).toBe("books");
    expect([...given].sort()).toEqual(["data", "depths", "lengths", "lr", "model", "resume", "seqLen"]);
    expect(cmd.parse(["--resume", "--no-resume"]).flags.resume).toBe(false);
    expect(cmd.parse(["--resume=false"]).flags.resume).toBe(false);
    expect(cmd.parse(["--steps", "0"]).flags.steps).toBe(0);
  });

  test("size suffixes and helpers", () => {
    expect(parseSizeSuffix("400k")).toBe(409600);
    expect(parseSizeSuffix("1M")).toBe(1048576);
    expect(parseSizeSuffix("12")).toBe(12);
    expect(parseSizeSuffix("1.5k")).toBe(1536);
    expect(parseSizeSuffix("abc")).toBeNaN();
    expect(kebab("seqLen")).toBe("seq-len");
    expect(editDistance("lrr", "lr")).toBe(1);
  });

  test("the zod schema is exposed and agrees with parse", () => {
    expect(cmd.schema.safeParse({}).success).toBe(true);
    expect(cmd.schema.safeParse({ lr: -1 }).success).toBe(false);
  });
});

describe("args: bad input gives one line and exit code 2", () => {
  const cases: [string[], RegExp][] = [
    [["--lr", "abc"], /^train: --lr expects a positive number, got "abc"$/],
    [["--lr", "-1"], /^train: --lr expects a positive number, got "-1"$/],
    [["--lr=0"], /^train: --lr expects a positive number, got "0"$/],
    [["--seq-len", "1.5"], /^train: --seq-len expects a positive integer, got "1.5"$/],
    [["--steps", "-3"], /^train: --steps expects a non-negative integer, got "-3"$/],
    [["--model", "rnn"], /^train: --model expects one of memmamba, mamba, transformer, got "rnn"$/],
    [["--lengths", "1k,x"], /^train: --lengths expects a comma-separated list of positive integers.*got "1k,x"$/],
    [["--depths", "0,2"], /^train: --depths expects a comma-separated list of numbers in \[0, 1\]s?, got "0,2"$/],
    [["--resume=maybe"], /^train: --resume expects true or false, got "maybe"$/],
    [["--lrr", "3"], /^train: unknown flag --lrr \(did you mean --lr\?\)/],
    [["--seqlen", "3"], /^train: unknown flag --seqlen \(did you mean --seq-len\?\)/],
    [["--frobnicate"], /^train: unknown flag --frobnicate; see --help$/],
    [["--lr"], /^train: --lr expects a positive number, got nothing$/],
    [["--lr", "--steps", "3"], /^train: --lr expects a positive number, got nothing$/],
    [["stray"], /^train: unexpected argument "stray"/],
    [["--no-lr"], /^train: unknown flag --no-lr/],
  ];
  for (const [argv, re] of cases) {
    test(`${argv.join(" ")}`, async () => {
      const r = await run(argv);
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.endsWith("\n")).toBe(true);
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
      expect(r.err.trimEnd()).toMatch(re);
      expect(r.flags).toBeUndefined();
    });
  }

  test("parse throws UsageError with exitCode 2", () => {
    let err: unknown;
    try {
      cmd.parse(["--lr", "x"]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
  });

  test("a required flag that is missing is named", async () => {
    const c = defineCommand({ name: "eval", summary: "s", flags: { checkpoint: flag.path("the checkpoint", { required: true }) } });
    let err = "";
    let code = -1;
    await runCli(c, [], () => {}, { stdout: () => {}, stderr: (s) => void (err += s), exit: (x) => void (code = x) });
    expect(code).toBe(2);
    expect(err.trim()).toBe("eval: --checkpoint is required (a path); see --help");
  });

  test("positional choices are checked", async () => {
    const c = defineCommand({ name: "eval", summary: "s", positionals: [{ name: "task", description: "what", required: true, choices: ["ppl", "docret"] }], flags: {} });
    expect(c.parse(["ppl"]).positionals).toEqual(["ppl"]);
    expect(() => c.parse(["pll"])).toThrow(/eval: <task> expects one of ppl, docret, got "pll" \(did you mean ppl\?\)/);
    expect(() => c.parse([])).toThrow(/eval: missing <task>/);
  });

  test("a failing main exits 1 with its message", async () => {
    let err = "";
    let code = -1;
    await runCli(cmd, [], () => {
      throw new Error("boom");
    }, { stdout: () => {}, stderr: (s) => void (err += s), exit: (x) => void (code = x) });
    expect(code).toBe(1);
    expect(err).toBe("train: boom\n");
  });
});

describe("args: --help", () => {
  test("lists every flag with its type, default and description, and exits 0", async () => {
    const r = await run(["--lr", "1", "--help"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toContain("Usage: bun run train [flags]");
    for (const [key, def] of Object.entries(cmd.spec.flags)) {
      const line = r.out.split("\n").find((l) => l.includes(`--${kebab(key)}`) || l.includes(`--[no-]${kebab(key)}`));
      expect(line).toBeDefined();
      const block = r.out.slice(r.out.indexOf(line!), r.out.indexOf(line!) + 300);
      expect(block).toContain(def.description);
      if (def.default !== undefined) {
        const d = Array.isArray(def.default) ? def.default.join(",") : String(def.default);
        expect(block).toContain(`[default: ${d}]`);
      } else expect(block).toContain("[optional]");
    }
    expect(r.out).toContain("--help");
    expect(r.out).toContain("--[no-]resume");
    expect(r.out).toContain("<memmamba|mamba|transformer>");
  });

  test("a long description wraps at word boundaries; its default stays whole, without pulling the last word along", () => {
    const long = defineCommand({
      name: "x",
      summary: "s",
      flags: { kernels: flag.enum(["a", "b"], `${"word ".repeat(30)}lastword`, { default: "a", defaultLabel: "$SOME_VARIABLE or a" }) },
    });
    const lines = long.help().split("\n");
    const at = lines.findIndex((l) => l.includes("lastword"));
    // the description's last word ends its own line; the default's bracket is one piece on the next
    expect(lines[at].trimEnd().endsWith("lastword")).toBe(true);
    expect(lines[at + 1].trim()).toBe("[default: $SOME_VARIABLE or a]");
    expect(lines.every((l) => l.length <= 100)).toBe(true);
  });

  test("-h throws HelpRequested from parse, also after a bad flag; not after --", () => {
    expect(() => cmd.parse(["-h"])).toThrow(HelpRequested);
    expect(() => cmd.parse(["--lrr", "x", "--help"])).toThrow(HelpRequested);
    expect(() => cmd.parse(["--", "--help"])).toThrow(/unexpected argument "--help"/);
  });
});
