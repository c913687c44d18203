/**
 * Declarative command-line flags, validated with zod.
 *
 *   const cmd = defineCommand({
 *     name: "train",
 *     summary: "Train a model",
 *     flags: {
 *       lr: flag.number("learning rate (AdamW)", { default: 1e-4, positive: true }),
 *       seqLen: flag.int("tokens per training window", { default: 512, min: 1 }),
 *       model: flag.enum(["memmamba", "mamba", "transformer"], "architecture", { default: "memmamba" }),
 *       resume: flag.bool("continue from the checkpoint in --out"),
 *       lengths: flag.intList("context lengths", { default: [1024, 2048] }),
 *     },
 *   });
 *   const args = cmd.parse(process.argv.slice(2)); // { lr: number, seqLen: number, ... }
 *
 * Keys are camelCase in code and kebab-case on the command line (`seqLen` is `--seq-len`).
 * Accepted forms: `--flag value`, `--flag=value`, booleans `--x` / `--no-x` / `--x=true|false`,
 * lists `--lengths 1k,2k,4k`. Integers (and integer lists) take the suffixes k/K (×1024) and
 * m/M (×1024²): context lengths are counted in powers of two, as the papers' "1K … 400K" are.
 *
 * Every problem is a `UsageError` whose message is ONE line naming the command, the flag and what
 * was expected (`train: --lr expects a positive number, got "abc"`); `runCli` prints it on stderr
 * and exits with code 2. `--help` / `-h` prints `cmd.help()` (every flag, its type, default and
 * description) and exits 0.
 *
 * This module parses and runs (`defineCommand`, `runCli`, the errors); the flag declarations are
 * in ./flags.ts and the help text in ./help.ts, both re-exported from here.
 */
import { z } from "zod";
import { editDistance } from "@memmamba/memmamba";
import { type CommandSpec, type FlagDefs, kebab, type ParsedFlags } from "./flags.ts";
import { helpText } from "./help.ts";

export {
  flag, kebab, parseSizeSuffix, type CommandSpec, type FlagDef, type FlagDefs, type ParsedFlags, type PositionalDef,
} from "./flags.ts";
export { helpText } from "./help.ts";

/** A command-line mistake: one line, exit code 2. */
export class UsageError extends Error {
  /** The process exit code for a usage error. */
  readonly exitCode = 2;
  /** `message` is the one line printed (it names the flag and what was expected). */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Thrown by `parse` when `--help` was given; carries the help text. */
export class HelpRequested extends Error {
  /** `text` is the command's help. */
  constructor(readonly text: string) {
    super("help requested");
    this.name = "HelpRequested";
  }
}

/** What `Command.parse` returns. */
export interface ParseResult<F extends FlagDefs> {
  /** Every flag's value (defaults applied). */
  flags: ParsedFlags<F>;
  /** Positional arguments in order. */
  positionals: string[];
  /** The flags the user actually gave (camelCase keys), e.g. to let them override a preset. */
  given: Set<keyof F & string>;
}

/** A defined command: its spec, the zod schema of its flags, a parser and its help text. */
export interface Command<F extends FlagDefs> {
  /** The spec it was defined from. */
  readonly spec: CommandSpec<F>;
  /** The zod schema of the whole flag object (each key its flag's schema, defaults applied). */
  readonly schema: z.ZodType<ParsedFlags<F>>;
  /** Parses argv; throws UsageError (one line) or HelpRequested. */
  parse(argv: readonly string[]): ParseResult<F>;
  /** The help text: usage, every flag with its type and default, the epilog. */
  help(): string;
}

/** Levenshtein distance (for "did you mean"; shared with the config's unknown keys). */
export { editDistance };

function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = c.startsWith(name) || name.startsWith(c) ? Math.min(editDistance(name, c), 2) : editDistance(name, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // a guess that rewrites the whole word ("F8" → "F32") is no guess
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) && bestD < name.length ? best : undefined;
}

function quote(raw: string): string {
  const s = raw.length > 60 ? `${raw.slice(0, 57)}...` : raw;
  return JSON.stringify(s);
}

/** Builds a command from its flag declarations. */
export function defineCommand<const F extends FlagDefs>(spec: CommandSpec<F>): Command<F> {
  const byCli = new Map<string, string>(); // cli name (without --) → key
  for (const key of Object.keys(spec.flags)) {
    const cli = kebab(key);
    if (cli === "help") throw new Error(`defineCommand(${spec.name}): "--help" is reserved`);
    if (byCli.has(cli)) throw new Error(`defineCommand(${spec.name}): two flags are called --${cli}`);
    byCli.set(cli, key);
    for (const a of spec.flags[key].aliases) byCli.set(a, key);
  }
  const shape: Record<string, z.ZodType> = {};
  for (const [key, def] of Object.entries(spec.flags)) {
    shape[key] = def.default !== undefined
      ? (def.schema as z.ZodType).default(def.default)
      : def.required ? def.schema : (def.schema as z.ZodType).optional();
  }
  const schema = z.object(shape) as unknown as z.ZodType<ParsedFlags<F>>;

  const fail = (msg: string): never => {
    throw new UsageError(`${spec.name}: ${msg}`);
  };

  const help = (): string => helpText(spec);

  const parse = (argv: readonly string[]): ParseResult<F> => {
    const raw: Record<string, unknown> = {};
    const rawText: Record<string, string> = {};
    const positionals: string[] = [];
    const given = new Set<keyof F & string>();
    let onlyPositionals = false;
    const end = argv.indexOf("--");
    if (argv.slice(0, end < 0 ? argv.length : end).some((a) => a === "--help" || a === "-h")) throw new HelpRequested(help());
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i];
      if (onlyPositionals || arg === "-" || !arg.startsWith("-") || /^-\d/.test(arg)) {
        positionals.push(arg);
        continue;
      }
      if (arg === "--") {
        onlyPositionals = true;
        continue;
      }
      const body = arg.replace(/^--?/, "");
      const eq = body.indexOf("=");
      let name = eq >= 0 ? body.slice(0, eq) : body;
      let inline: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
      let negated = false;
      let key = byCli.get(name);
      if (key === undefined && name.startsWith("no-") && byCli.has(name.slice(3)) && spec.flags[byCli.get(name.slice(3))!].kind === "bool") {
        negated = true;
        name = name.slice(3);
        key = byCli.get(name);
      }
      if (key === undefined) {
        const names = [...byCli.keys()].filter((n) => n.length > 1);
        const guess = closest(name, names);
        fail(`unknown flag ${arg.split("=")[0]}${guess ? ` (did you mean --${guess}?)` : ""}; see --help`);
      }
      const def = spec.flags[key!];
      const shown = `--${kebab(key!)}`;
      if (def.kind === "bool") {
        if (negated && inline !== undefined) fail(`${arg.split("=")[0]} takes no value, got ${quote(inline)}`);
        const v = negated ? false : inline === undefined ? true : def.convert(inline);
        if (typeof v !== "boolean") fail(`${shown} expects ${def.expects}, got ${quote(inline!)}`);
        raw[key!] = v;
        rawText[key!] = inline ?? String(v);
      } else {
        if (inline === undefined) {
          const next = argv[i + 1];
          if (next === undefined || (next.startsWith("--") && next.length > 2)) fail(`${shown} expects ${def.expects}, got nothing`);
          inline = next;
          i++;
        }
        raw[key!] = def.convert(inline!);
        rawText[key!] = inline!;
      }
      given.add(key! as keyof F & string);
    }

    // one flag at a time, so the message names the first bad one
    for (const [key, def] of Object.entries(spec.flags)) {
      if (!(key in raw)) {
        if (def.required) fail(`--${kebab(key)} is required (${def.expects}); see --help`);
        continue;
      }
      const r = (def.schema as z.ZodType).safeParse(raw[key]);
      if (!r.success) {
        const guess = def.choices && typeof raw[key] === "string" ? closest(raw[key] as string, def.choices) : undefined;
        fail(`--${kebab(key)} expects ${def.expects}, got ${quote(rawText[key])}${guess ? ` (did you mean ${guess}?)` : ""}`);
      }
    }
    const all = schema.safeParse(raw);
    if (!all.success) {
      const iss = all.error.issues[0];
      fail(`${iss.path.length ? `--${kebab(String(iss.path[0]))}: ` : ""}${iss.message}`);
    }

    const pos = spec.positionals ?? [];
    for (let j = 0; j < pos.length; j++) {
      const p = pos[j];
      const v = positionals[j];
      if (v === undefined) {
        if (p.required) fail(`missing <${p.name}>${p.choices ? ` (one of ${p.choices.join(", ")})` : ""}; see --help`);
        continue;
      }
      if (p.choices && !p.choices.includes(v)) {
        const guess = closest(v, p.choices);
        fail(`<${p.name}> expects one of ${p.choices.join(", ")}, got ${quote(v)}${guess ? ` (did you mean ${guess}?)` : ""}`);
      }
    }
    if (positionals.length > pos.length) {
      fail(`unexpected argument ${quote(positionals[pos.length])}${pos.length ? "" : " (this command takes only flags)"}; see --help`);
    }
    return { flags: (all as { data: ParsedFlags<F> }).data, positionals, given };
  };

  return { spec, schema, parse, help };
}

/** Where `runCli` writes and how it exits (tests substitute their own). */
export interface CliIO {
  /** Writes results. */
  stdout: (s: string) => void;
  /** Writes errors and notes. */
  stderr: (s: string) => void;
  /** Ends the process with an exit code. */
  exit: (code: number) => never | void;
}

/**
 * Runs a command's main with its parsed arguments: `--help` prints the help (exit 0); a
 * UsageError prints its one line on stderr and exits 2; any other error prints its message
 * (stack with DEBUG=1) and exits 1. Returns the exit code (also passed to `io.exit`).
 */
export async function runCli<F extends FlagDefs>(
  cmd: Command<F>,
  argv: readonly string[],
  main: (args: ParseResult<F>) => Promise<number | void> | number | void,
  io?: Partial<CliIO>,
): Promise<number> {
  const proc = (globalThis as { process?: { stdout: { write(s: string): void }; stderr: { write(s: string): void }; exit(c: number): never; env: Record<string, string | undefined> } }).process;
  const out = io?.stdout ?? ((s: string) => proc!.stdout.write(s));
  const err = io?.stderr ?? ((s: string) => proc!.stderr.write(s));
  const exit = io?.exit ?? ((c: number) => proc!.exit(c));
  let code: number;
  try {
    const args = cmd.parse(argv);
    code = (await main(args)) ?? 0;
  } catch (e) {
    if (e instanceof HelpRequested) {
      out(e.text);
      code = 0;
    } else if (e instanceof UsageError) {
      err(`${e.message}\n`);
      code = 2;
    } else {
      const debug = proc?.env?.DEBUG;
      err(`${cmd.spec.name}: ${e instanceof Error ? (debug ? e.stack ?? e.message : e.message) : String(e)}\n`);
      code = 1;
    }
  }
  exit(code);
  return code;
}
