/**
 * The declarations of a command line (see ./args.ts, which parses them and re-exports all of
 * this): `flag.number / int / string / path / bool / enum / intList / numberList / stringList`
 * (each flag's zod schema, its conversion from the raw string, what a good value looks like for
 * messages, its placeholder and default for the help), the `CommandSpec` a command is defined
 * from, and `kebab`, the command-line spelling of a flag's camelCase key.
 */
import { z } from "zod";

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

/** "seqLen" → "seq-len". */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
