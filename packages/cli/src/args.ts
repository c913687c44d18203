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
 */
import { z } from "zod";
import { editDistance } from "@memmamba/memmamba";

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

/** A flag of value type T; `H` is true when the flag always has a value (a default, or required). */
export interface FlagDef<T, H extends boolean = boolean> {
  /** Type-level marker only. */
  readonly __hasValue?: H;
  /** The value type, which decides the conversion and the placeholder. */
  readonly kind: "number" | "int" | "string" | "path" | "bool" | "enum" | "intList" | "numberList" | "stringList";
  /** One line for the help. */
  readonly description: string;
  /** Value used when the flag is absent (undefined: the flag is optional, or `required`). */
  readonly default: T | undefined;
  /** True when the flag must be given. */
  readonly required: boolean;
  /** What a good value looks like, for messages: "a positive number". */
  readonly expects: string;
  /** Placeholder in the help: `<number>`, `<a|b|c>`. Empty for booleans. */
  readonly placeholder: string;
  /** Validates the converted value. */
  readonly schema: z.ZodType<T>;
  /** Converts the raw string (never throws: a bad string becomes a value the schema rejects). */
  readonly convert: (raw: string) => unknown;
  /** Short aliases, e.g. ["n"] for -n. */
  readonly aliases: readonly string[];
  /** Shown in the help next to the default, e.g. for values that depend on other flags. */
  readonly defaultLabel?: string;
  /** An enum's values (a wrong one is answered with the closest: "did you mean"). */
  readonly choices?: readonly string[];
}

interface Common<T> {
  default?: T;
  required?: boolean;
  aliases?: string[];
  /** Help text shown instead of the default value (e.g. "from --preset"). */
  defaultLabel?: string;
}

const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const INT_RE = /^[+-]?\d+(\.\d+)?([kKmM])?$/;

function toNumber(raw: string): number {
  const s = raw.trim();
  if (s === "inf" || s === "Infinity") return Infinity;
  return NUMBER_RE.test(s) ? Number(s) : NaN;
}

/** "4k" → 4096, "1.5K" → 1536, "2M" → 2097152, "12" → 12; anything else NaN. */
export function parseSizeSuffix(raw: string): number {
  const s = raw.trim();
  if (!INT_RE.test(s)) return NaN;
  const last = s[s.length - 1];
  const mult = last === "k" || last === "K" ? 1024 : last === "m" || last === "M" ? 1024 * 1024 : 1;
  const v = Number(mult === 1 ? s : s.slice(0, -1)) * mult;
  return v;
}

function splitList(raw: string): string[] {
  return raw.split(",").map((s) => s.trim()).filter((s, i, a) => !(s === "" && a.length === 1));
}

function make<T>(
  kind: FlagDef<T>["kind"],
  description: string,
  schema: z.ZodType<T>,
  expects: string,
  placeholder: string,
  convert: (raw: string) => unknown,
  opts: Common<T>,
): FlagDef<T, never> {
  return {
    kind,
    description,
    default: opts.default,
    required: opts.required ?? false,
    expects,
    placeholder,
    schema,
    convert,
    aliases: opts.aliases ?? [],
    defaultLabel: opts.defaultLabel,
  };
}

interface Bounds {
  positive?: boolean;
  min?: number;
  max?: number;
}
interface NumberOpts extends Common<number>, Bounds {}
interface ListOpts<T> extends Common<T[]>, Bounds {}

/** "a positive number", "an integer in [0, 10]"; plural: "positive numbers", "integers in [0, 10]". */
function rangeText(base: "number" | "integer", o: Bounds, plural = false): string {
  const noun = plural ? `${base}s` : base;
  const art = (w: string) => (plural ? "" : /^[aeiou]/.test(w) ? "an " : "a ");
  if (o.positive) return `${art("p")}positive ${noun}`;
  if (o.min !== undefined && o.max !== undefined) return `${art(base)}${noun} in [${o.min}, ${o.max}]`;
  if (o.min === 0) return `${art("n")}non-negative ${noun}`;
  if (o.min !== undefined) return `${art(base)}${noun} >= ${o.min}`;
  if (o.max !== undefined) return `${art(base)}${noun} <= ${o.max}`;
  return `${art(base)}${noun}`;
}

function numberSchema(o: Bounds, int: boolean): z.ZodNumber {
  let s = z.number();
  if (int) s = s.int();
  if (o.positive) s = s.positive();
  if (o.min !== undefined) s = s.min(o.min);
  if (o.max !== undefined) s = s.max(o.max);
  return s;
}

/** @internal True when options give the flag a value always (a default, or `required: true`). */
type Has<O> = O extends { default: unknown } ? true : O extends { required: true } ? true : false;

/** Flag constructors. */
export const flag = {
  /** A finite number (`1e-4`, `0.5`). */
  number<const O extends NumberOpts = {}>(description: string, opts?: O): FlagDef<number, Has<O>> {
    const o: NumberOpts = opts ?? {};
    return make("number", description, numberSchema(o, false), rangeText("number", o), "<number>", toNumber, o);
  },
  /** An integer; k/K (×1024) and m/M (×1024²) suffixes accepted (`--seq-len 4k`). */
  int<const O extends NumberOpts = {}>(description: string, opts?: O): FlagDef<number, Has<O>> {
    const o: NumberOpts = opts ?? {};
    return make("int", description, numberSchema(o, true), rangeText("integer", o), "<int>", parseSizeSuffix, o);
  },
  /** Any non-empty string. */
  string<const O extends Common<string> = {}>(description: string, opts?: O): FlagDef<string, Has<O>> {
    return make("string", description, z.string().min(1), "a non-empty string", "<text>", (s) => s, opts ?? {});
  },
  /** A file or directory path (checked for existence by the command, which knows what it needs). */
  path<const O extends Common<string> = {}>(description: string, opts?: O): FlagDef<string, Has<O>> {
    return make("path", description, z.string().min(1), "a path", "<path>", (s) => s, opts ?? {});
  },
  /** A boolean: `--x`, `--no-x`, `--x=true|false|1|0|yes|no`. Default false unless given. */
  bool(description: string, opts: Common<boolean> = {}): FlagDef<boolean, true> {
    const conv = (raw: string) => {
      const s = raw.trim().toLowerCase();
      if (["true", "1", "yes", "on"].includes(s)) return true;
      if (["false", "0", "no", "off"].includes(s)) return false;
      return raw;
    };
    return make("bool", description, z.boolean(), "true or false", "", conv, { ...opts, default: opts.default ?? false });
  },
  /** One of a fixed set of strings. */
  enum<const V extends readonly [string, ...string[]], const O extends Common<V[number]> = {}>(
    values: V,
    description: string,
    opts?: O,
  ): FlagDef<V[number], Has<O>> {
    const schema = z.enum(values as unknown as [V[number], ...V[number][]]) as unknown as z.ZodType<V[number]>;
    return { ...make("enum", description, schema, `one of ${values.join(", ")}`, `<${values.join("|")}>`, (s) => s, opts ?? {}), choices: values };
  },
  /** A comma-separated list of integers with k/K/m/M suffixes (`1k,2k,4k`). */
  intList<const O extends ListOpts<number> = {}>(description: string, opts?: O): FlagDef<number[], Has<O>> {
    const { default: def, ...num } = (opts ?? {}) as ListOpts<number>;
    const item = numberSchema(num, true);
    const what = rangeText("integer", num, true);
    return make("intList", description, z.array(item).min(1), `a comma-separated list of ${what} (k = ×1024)`, "<int,...>",
      (s) => splitList(s).map(parseSizeSuffix), { ...(opts ?? {}), default: def });
  },
  /** A comma-separated list of numbers (`0,0.25,0.5`). */
  numberList<const O extends ListOpts<number> = {}>(description: string, opts?: O): FlagDef<number[], Has<O>> {
    const { default: def, ...num } = (opts ?? {}) as ListOpts<number>;
    const item = numberSchema(num, false);
    const what = rangeText("number", num, true);
    return make("numberList", description, z.array(item).min(1), `a comma-separated list of ${what}`, "<number,...>",
      (s) => splitList(s).map(toNumber), { ...(opts ?? {}), default: def });
  },
  /** A comma-separated list of non-empty strings. */
  stringList<const O extends Common<string[]> = {}>(description: string, opts?: O): FlagDef<string[], Has<O>> {
    return make("stringList", description, z.array(z.string().min(1)).min(1), "a comma-separated list", "<text,...>", splitList, opts ?? {});
  },
};

// deno-lint-ignore no-explicit-any
/** A command's flags by camelCase name (the command line spells them in kebab-case). */
export type FlagDefs = Record<string, FlagDef<any, boolean>>;

/** @internal The parsed value of one flag: optional flags without a default may be undefined. */
type ValueOf<F> = F extends FlagDef<infer T, infer _H> ? T : never;
/** @internal True when a flag definition always yields a value. */
type HasValue<F> = F extends FlagDef<infer _T, infer H> ? H : false;
/** The parsed flags: each flag's value, `undefined` where an optional flag without a default was not given. */
export type ParsedFlags<F extends FlagDefs> = { -readonly [K in keyof F]: ValueOf<F[K]> | (HasValue<F[K]> extends true ? never : undefined) };

/** A positional argument of a command. */
export interface PositionalDef {
  /** Its name in the usage line and messages. */
  name: string;
  /** One line for the help. */
  description: string;
  /** True when it must be given (default false). */
  required?: boolean;
  /** Allowed values (a subcommand name, say). */
  choices?: readonly string[];
}

/** What `defineCommand` takes: the command's name, help texts, flags and positionals. */
export interface CommandSpec<F extends FlagDefs> {
  /** Shown as the prefix of every message: "train". */
  name: string;
  /** One line saying what the command does (the help's first line). */
  summary: string;
  /** The usage line after "Usage: ", e.g. "bun run train [flags]". */
  usage?: string;
  /** The flags, by camelCase name (see `flag`). */
  flags: F;
  /** The positional arguments, in order. */
  positionals?: readonly PositionalDef[];
  /** Extra text at the end of the help (examples, notes). */
  epilog?: string;
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

/** "seqLen" → "seq-len". */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
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

function fmtDefault(d: unknown): string {
  if (Array.isArray(d)) return d.join(",");
  if (typeof d === "string") return d;
  return String(d);
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

const NBSP = "\u00a0"; // keeps "[default: x]" on one line when wrapping

function wrap(text: string, width: number, indent: number): string[] {
  const words = text.split(/[ \t\n]+/).filter(Boolean);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.map((l, i) => (i === 0 ? l : " ".repeat(indent) + l));
}

/** The help text: summary, usage, positionals, then every flag with its type, default and description. */
export function helpText<F extends FlagDefs>(spec: CommandSpec<F>): string {
  const out: string[] = [`${spec.name}: ${spec.summary}`, "", `Usage: ${spec.usage ?? `${spec.name} [flags]`}`];
  const pos = spec.positionals ?? [];
  if (pos.length) {
    out.push("", "Arguments:");
    for (const p of pos) {
      const choices = p.choices ? ` (one of: ${p.choices.join(", ")})` : "";
      out.push(`  <${p.name}>  ${p.description}${choices}${p.required ? "" : " [optional]"}`);
    }
  }
  out.push("", "Flags:");
  const rows: [string, string][] = [];
  for (const [key, def] of Object.entries(spec.flags)) {
    const cli = kebab(key);
    const aliases = def.aliases.map((a) => (a.length === 1 ? `-${a}, ` : `--${a}, `)).join("");
    const left = def.kind === "bool" ? `${aliases}--[no-]${cli}` : `${aliases}--${cli} ${def.placeholder}`;
    const dflt = def.defaultLabel !== undefined
      ? ` [default: ${def.defaultLabel}]`
      : def.required ? " [required]" : def.default !== undefined ? ` [default: ${fmtDefault(def.default)}]` : " [optional]";
    // the placeholder already says what an enum, a path, a string or a boolean takes; numbers add their range
    const type = ["number", "int", "intList", "numberList"].includes(def.kind) ? ` (${def.expects})` : "";
    // (the space before "[default: …]" stays breakable: only the bracket holds together, so the
    // description's last word is not pulled onto the next line with it)
    rows.push([left, `${def.description}${type} ${dflt.trimStart().replace(/ /g, NBSP)}`]);
  }
  rows.push(["-h, --help", "print this help and exit"]);
  const w = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  for (const [l, r] of rows) {
    const pad = l.length + 2 > w ? `\n${" ".repeat(2 + w)}` : " ".repeat(w - l.length);
    out.push(`  ${l}${pad}${wrap(r, 100 - w, 2 + w).join("\n").replaceAll(NBSP, " ")}`);
  }
  if (spec.epilog) out.push("", spec.epilog.trimEnd());
  return out.join("\n") + "\n";
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
