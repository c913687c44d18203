/**
 * Small helpers shared by the benchmark programs, written to run unchanged under Bun, Deno and
 * Node (through an esbuild bundle): runtime detection, machine description, timing with warm-up
 * and medians, flag parsing, table printing and JSON writing. Besides `node:` built-ins (which all
 * three runtimes provide) it uses zod, which checks every flag value (see FlagType).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join, relative } from "node:path";
import process from "node:process";
import { z } from "zod";

// Node 20 has no Symbol.dispose. Classes that define `[Symbol.dispose]` (Tensor does) would get a
// method named "undefined" without it, so give it the well-known registry symbol. This module is
// imported before the tensor library by every bench entry, so it runs first.
// deno-lint-ignore no-explicit-any
(Symbol as any).dispose ??= Symbol.for("Symbol.dispose");

export type RuntimeName = "bun" | "deno" | "node";

export interface RuntimeInfo {
  name: RuntimeName;
  version: string;
}

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** Which JavaScript runtime runs this program, and its version. */
export function detectRuntime(): RuntimeInfo {
  if (typeof g.Bun !== "undefined") return { name: "bun", version: String(g.Bun.version) };
  if (typeof g.Deno !== "undefined") return { name: "deno", version: String(g.Deno.version?.deno ?? "unknown") };
  return { name: "node", version: process.versions.node };
}

export interface MachineInfo {
  cpuModel: string;
  /** Logical cores this process may use. */
  cores: number;
  platform: string;
  arch: string;
}

/** The CPU model (from /proc/cpuinfo when readable, else os.cpus()) and the core count. */
export function machineInfo(): MachineInfo {
  let cpuModel = "";
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux, or not readable: fall back below
  }
  let list: { model: string }[] = [];
  try {
    list = cpus();
  } catch {
    // some sandboxes refuse; keep the empty list
  }
  if (!cpuModel) cpuModel = list[0]?.model?.trim() || "unknown";
  let cores = list.length;
  try {
    cores = availableParallelism();
  } catch {
    // older runtimes lack availableParallelism
  }
  return { cpuModel, cores, platform: process.platform, arch: process.arch };
}

/** The program's own arguments (after the runtime and the script), in every runtime. */
export function programArgs(): string[] {
  if (typeof g.Deno !== "undefined" && Array.isArray(g.Deno.args)) return [...g.Deno.args];
  return process.argv.slice(2);
}

/**
 * A bad command line (an unknown flag, a value out of range): runMain reports it as one line and
 * exits with status 2, where any other error is a failure of the run (status 1).
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Whether DEBUG is set in the environment (then runMain prints a failure's stack). */
function debugOn(): boolean {
  try {
    return !!process.env.DEBUG;
  } catch {
    return false; // Deno without --allow-env
  }
}

/**
 * Runs a benchmark program's `main` on programArgs() and exits (an explicit exit, so that nothing
 * left open, such as a GPU device, keeps the process alive): status 0 when it resolves; when it
 * rejects, one line "`name`: message" on stderr and status 2 for a UsageError (a bad argument),
 * 1 for anything else (the run failed; with DEBUG set, the stack too). Call it under the
 * program's own `import.meta.main` check.
 */
export function runMain(name: string, main: (argv: string[]) => Promise<unknown> | unknown): void {
  Promise.resolve().then(() => main(programArgs())).then(() => process.exit(0), (e) => {
    const msg = (e instanceof Error ? e.message : String(e)).trim().replace(/\s*\n\s*/g, "; ");
    console.error(`${name}: ${msg}`);
    if (debugOn() && e instanceof Error && e.stack) console.error(e.stack);
    process.exit(e instanceof UsageError ? 2 : 1);
  });
}

/** Milliseconds from a monotonic clock. */
export const now = (): number => performance.now();

/** The median of a non-empty list (the mean of the middle two for an even length). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median: empty list");
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

export interface TimingOptions {
  /** Timed samples; the median is reported. */
  runs: number;
  /** Warm up for at least this long (and at least one call) before timing. */
  warmupMs?: number;
  /** Repeat the call inside one sample until the sample lasts this long (small kernels). */
  minSampleMs?: number;
}

export interface Timing {
  /** Median time of one call, ms. */
  medianMs: number;
  /** Fastest sample, per call, ms. */
  minMs: number;
  /** Every sample, per call, ms. */
  samplesMs: number[];
  /** Calls per sample. */
  reps: number;
  warmupCalls: number;
}

/**
 * Times `fn`: warm-up calls first (so the JIT has compiled the hot loops), then `runs` samples,
 * each of `reps` back-to-back calls, with `reps` chosen so that a sample lasts at least
 * `minSampleMs`. Reports per-call times.
 */
export function timeIt(fn: () => void, opts: TimingOptions): Timing {
  const warmupMs = opts.warmupMs ?? 300;
  const minSampleMs = opts.minSampleMs ?? 50;
  let warmupCalls = 0;
  let last = 0;
  const w0 = now();
  do {
    const t = now();
    fn();
    last = now() - t;
    warmupCalls++;
  } while (now() - w0 < warmupMs);
  const reps = Math.max(1, Math.ceil(minSampleMs / Math.max(last, 1e-3)));
  const samplesMs: number[] = [];
  for (let r = 0; r < opts.runs; r++) {
    const t = now();
    for (let i = 0; i < reps; i++) fn();
    samplesMs.push((now() - t) / reps);
  }
  return { medianMs: median(samplesMs), minMs: Math.min(...samplesMs), samplesMs, reps, warmupCalls };
}

export type Cell = string | number | null | undefined;

/** Formats a number with about `digits` significant digits (no exponent for ordinary sizes). */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  if (x === 0) return "0";
  const mag = Math.floor(Math.log10(Math.abs(x)));
  const decimals = Math.max(0, digits - 1 - mag);
  return x.toFixed(Math.min(decimals, 6));
}

/**
 * A plain-text table: left-aligned text columns, right-aligned numeric columns. A column whose
 * numbers are all integers (counts: rows, reads, launches) prints them as integers; other numbers
 * go through fmt.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const integer = header.map((_, j) => rows.every((r) => typeof r[j] !== "number" || Number.isInteger(r[j])));
  const cells = rows.map((r) => r.map((c, j) => (typeof c === "number" ? (integer[j] ? String(c) : fmt(c)) : c ?? "-")));
  const numeric = header.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === "number" || r[j] == null));
  const width = header.map((h, j) => Math.max(h.length, ...cells.map((r) => String(r[j]).length)));
  const line = (r: readonly string[]) =>
    r.map((c, j) => (numeric[j] ? c.padStart(width[j]) : c.padEnd(width[j]))).join("  ").trimEnd();
  return [line(header), width.map((w) => "-".repeat(w)).join("  "), ...cells.map((r) => line(r.map(String)))].join("\n");
}

/**
 * The monorepo root: the nearest folder at or above the current directory that holds
 * packages/bench/package.json (so default output paths work from any sub-folder), else the
 * current directory.
 */
export function repoRoot(): string {
  let dir = process.cwd();
  for (;;) {
    if (existsSync(join(dir, "packages", "bench", "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** A path under the repo root, shown relative to the current directory. */
export function fromRoot(...parts: string[]): string {
  return relative(process.cwd(), join(repoRoot(), ...parts)) || ".";
}

let commitCache: string | null | undefined;

/**
 * The repository's commit, for reproducibility: the short hash, with "-dirty" when tracked files
 * have changes, or null where git or the repository is not available (a bundle on the GPU
 * machine). Read once per process, read-only (no index refresh).
 */
export function gitCommit(): string | null {
  if (commitCache !== undefined) return commitCache;
  commitCache = null;
  try {
    const git = (...args: string[]) => spawnSync("git", ["--no-optional-locks", ...args], { cwd: repoRoot(), encoding: "utf8", timeout: 10_000 });
    const head = git("rev-parse", "--short", "HEAD");
    if (head.status === 0 && head.stdout.trim()) {
      const st = git("status", "--porcelain", "--untracked-files=no");
      commitCache = head.stdout.trim() + (st.status === 0 && st.stdout.trim() === "" ? "" : "-dirty");
    }
  } catch {
    // no git, or no permission to run it: null
  }
  return commitCache;
}

/**
 * Writes `data` as indented JSON, creating the folder if needed. A benchmark result (an object
 * with a `benchmark` or `bench` field) gets `commit` (gitCommit()) right after that field when it
 * has none; results returned to a caller set it themselves, so that file and value stay equal.
 */
export function writeJson(path: string, data: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(withCommit(data), null, 2) + "\n");
}

function withCommit(data: unknown): unknown {
  if (!data || typeof data !== "object" || Array.isArray(data) || "commit" in data) return data;
  const entries = Object.entries(data);
  const at = entries.findIndex(([k]) => k === "benchmark" || k === "bench");
  if (at < 0) return data;
  entries.splice(at + 1, 0, ["commit", gitCommit()]);
  return Object.fromEntries(entries);
}

/** Reads a JSON file written by writeJson. */
export function readJson<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

/**
 * Parses `--name value`, `--name=value` and bare `--flag` arguments. Names not in `known` are an
 * error naming them (a typo must not silently run the default).
 */
export function parseFlags(argv: readonly string[], known: Record<string, "string" | "boolean">): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument "${a}" (flags start with --)`);
    const eq = a.indexOf("=");
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const kind = known[name];
    if (!kind) throw new UsageError(`unknown flag --${name} (known: ${Object.keys(known).map((k) => "--" + k).join(", ")})`);
    if (kind === "boolean") {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
    } else if (eq >= 0) {
      out[name] = a.slice(eq + 1);
    } else {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

/**
 * A flag value's type: a zod schema that checks (and converts) the flag's text, and the words for
 * a good value in the usage error (`--runs must be a positive integer, got "0"`). Every flag value
 * of the bench programs goes through one (positiveInt, oneOf, flagList and the rest build on it).
 */
export interface FlagType<T> {
  /** Takes the flag's text as given ("7", "512,1024" item by item for a list). */
  readonly schema: z.ZodType<T>;
  /** A good value, for the message: "a positive integer", "deno, bun or node". */
  readonly expects: string;
  /** A message of its own for a bad value (given the flag, "--kinds", and the value), instead of "must be <expects>". */
  readonly message?: (flag: string, value: string) => string;
}

/**
 * A number flag: the text read as Number() reads it (so "1e3" and " 7 " are numbers; blank text is
 * none), then checked by `check` (zod's number rejects NaN and ±Infinity).
 */
export function numberFlag(check: z.ZodType<number, number>, expects: string): FlagType<number> {
  return { schema: z.string().transform((s) => (s.trim() === "" ? NaN : Number(s))).pipe(check), expects };
}

/** 1, 2, 3, ... */
export const POSITIVE_INT: FlagType<number> = numberFlag(z.number().int().min(1), "a positive integer");
/** 0, 1, 2, ... (0 where it means none). */
export const NON_NEGATIVE_INT: FlagType<number> = numberFlag(z.number().int().min(0), "0 or a positive integer");
/** A finite number above 0. */
export const POSITIVE_NUMBER: FlagType<number> = numberFlag(z.number().positive(), "a positive number");

/** One of a few strings (`--mode must be train, forward or step, got "x"`). */
export function choice<const T extends string>(allowed: readonly T[]): FlagType<T> {
  const list = allowed.length > 1 ? `${allowed.slice(0, -1).join(", ")} or ${allowed[allowed.length - 1]}` : allowed.join("");
  return { schema: z.enum(allowed as readonly [T, ...T[]]) as unknown as z.ZodType<T>, expects: list };
}

/** "--runs" for "runs" or "--runs" (callers spell the name either way). */
const flagName = (name: string): string => `--${name.replace(/^-+/, "")}`;

/**
 * A flag's value checked by its type's zod schema: the value, undefined where the flag is absent,
 * or a UsageError naming the flag and the bad value (`--runs must be a positive integer, got "0"`).
 */
export function flagValue<T>(name: string, v: string | boolean | undefined, type: FlagType<T>): T | undefined {
  if (v === undefined) return undefined;
  const r = type.schema.safeParse(v);
  if (r.success) return r.data;
  throw new UsageError(type.message ? type.message(flagName(name), String(v)) : `${flagName(name)} must be ${type.expects}, got "${v}"`);
}

/**
 * A comma-separated flag value, each item checked by `type` (blanks around items and empty items
 * are dropped): the items, `dflt` where the flag is absent, or a UsageError naming the flag and the
 * first bad item (`--sizes must be a positive integer, got "0"`), or the empty list.
 */
export function flagList<T>(name: string, v: string | boolean | undefined, type: FlagType<T>, dflt: readonly NoInfer<T>[]): T[] {
  if (v === undefined) return [...dflt];
  return parseList(flagName(name), String(v), (s) => flagValue(name, s, type)!);
}

/** A positive integer flag value (`dflt` where absent), or a clear error. */
export function positiveInt(name: string, v: string | boolean | undefined, dflt: number): number {
  return flagValue(name, v, POSITIVE_INT) ?? dflt;
}

/** A flag value that may be 0 or a positive integer (`dflt` where absent), or a clear error. */
export function nonNegativeInt(name: string, v: string | boolean | undefined, dflt: number): number {
  return flagValue(name, v, NON_NEGATIVE_INT) ?? dflt;
}

/** A positive finite number flag value (`dflt` where absent), or a clear error. */
export function positiveNumber(name: string, v: string | boolean | undefined, dflt: number): number {
  return flagValue(name, v, POSITIVE_NUMBER) ?? dflt;
}

/**
 * A flag that takes one of a few values: the value (undefined where the flag is absent), or a
 * clear error listing them (`--name must be a, b or c, got "v"`).
 */
export function oneOf<const T extends string>(name: string, v: string | boolean | undefined, allowed: readonly T[]): T | undefined {
  return flagValue(name, v, choice(allowed));
}

/** A comma-separated flag value parsed item by item (an empty list is an error naming the flag). */
export function parseList<T>(flag: string, v: string, parse: (s: string) => T): T[] {
  const xs = v.split(",").map((s) => s.trim()).filter(Boolean).map(parse);
  if (xs.length === 0) throw new UsageError(`${flag}: empty list`);
  return xs;
}

/** A seeded uniform generator in [0, 1) (an LCG: fine for benchmark inputs). */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
