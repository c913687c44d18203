/** Pieces shared by the commands: backend selection, config files, tables, JSON output. */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { CPU_KERNELS, type CpuKernels, describeBackend, initBackend } from "@memmamba/tensor";
import { flag, UsageError } from "../args.ts";
import { writeSvg } from "../plot.ts";
import type { ProgressStream } from "../progress.ts";

/** The repository root (four levels above this file). */
const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
/** The default --data of ablate and eval: ../shared/data/books beside the repository (whatever the working directory). */
export const DEFAULT_BOOKS: string = resolve(REPO_ROOT, "../shared/data/books");

/** Where a command writes: results (stdout), notes (stderr) and its progress display. */
export interface CommandIO {
  /** Writes results. */
  out: (s: string) => void;
  /** Writes notes and errors. */
  err: (s: string) => void;
  /** The progress display's stream, or false for none. */
  progress: ProgressStream | false;
}

/** The process's stdout and stderr, with progress on stderr. */
export const defaultIO: CommandIO = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  progress: process.stderr,
};

/** The `--docret-chars` flag of train and eval: the documents' lengths, "MIN,MAX" characters (see paragraphChars). */
export const docretCharsFlag = (description: string) => flag.intList(description, { positive: true });

/**
 * The paragraph lengths of a `--docret-chars` value: exactly two integers, the shortest and the
 * longest document kept, shortest first; else a usage error naming the command and the flag.
 */
export function paragraphChars(command: string, v: readonly number[]): { minChars: number; maxChars: number } {
  if (v.length !== 2 || v[0] > v[1]) {
    throw new UsageError(`${command}: --docret-chars takes the shortest and the longest document in characters, MIN,MAX with MIN <= MAX (e.g. 200,1000), got ${v.join(",")}`);
  }
  return { minChars: v[0], maxChars: v[1] };
}

/** The `--backend` flag every command shares. */
export const backendFlag = flag.enum(["cpu", "webgpu"], "tensor backend", { default: "cpu" });
/** The `--cpu-kernels` flag every command shares (default: $MEMMAMBA_CPU_KERNELS, else auto). */
export const cpuKernelsFlag = flag.enum(CPU_KERNELS as unknown as readonly [CpuKernels, ...CpuKernels[]],
  "CPU kernels: auto (OpenBLAS matmul through FFI where present, wasm SIMD on all cores), wasm, wasm-simd (no relaxed SIMD), ts (the plain TypeScript reference)",
  { defaultLabel: "$MEMMAMBA_CPU_KERNELS or auto" });

/**
 * Starts the tensor backend and makes it current; says on `log` what runs. A backend that is not
 * available is a one-line usage error.
 */
export async function selectBackend(command: string, name: string, cpuKernels?: CpuKernels, log?: (s: string) => void): Promise<void> {
  let b;
  try {
    b = await initBackend(name as "cpu" | "webgpu", { cpuKernels });
  } catch (e) {
    throw new UsageError(`${command}: --backend ${name} is not available here (${e instanceof Error ? e.message : String(e)})${name === "cpu" ? "" : "; use --backend cpu"}`);
  }
  log?.(`${command}: ${describeBackend(b)}\n`);
}

/** Reads a JSON object from a file; errors name the file (and the flag). */
export function readJsonFile(command: string, flagName: string, path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UsageError(`${command}: ${flagName} ${path}: no such file`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`${command}: ${flagName} ${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new UsageError(`${command}: ${flagName} ${path}: expected a JSON object`);
  return v as Record<string, unknown>;
}

/** Checks that a path exists (a file or a directory), as a one-line usage error. */
export function requirePath(command: string, flagName: string, path: string): void {
  if (!existsSync(path)) throw new UsageError(`${command}: ${flagName} ${path}: no such file or directory`);
}

/** The byte length of the longest of `docs` (0 for none): what the data-too-short errors name. */
export function longestBytes(docs: readonly { bytes: Uint8Array }[]): number {
  return docs.reduce((m, d) => Math.max(m, d.bytes.length), 0);
}

/**
 * Checks that some document of `docs` (the `part` of --data: "training", "validation") is long
 * enough for one window of `seqLen` inputs and its shifted targets (`seqLen` + 1 bytes, what the
 * window sampler cuts), as a one-line usage error naming --seq-len and the longest document.
 */
export function requireWindow(command: string, data: string, docs: readonly { bytes: Uint8Array }[], part: string, seqLen: number): void {
  const longest = longestBytes(docs);
  if (longest <= seqLen) {
    throw new UsageError(`${command}: --data ${data}: no ${part} document holds a --seq-len ${seqLen} window (${seqLen + 1} bytes; the longest has ${longest}): pass a smaller --seq-len or more text`);
  }
}

/**
 * Where a command's results go without --out: beside a training run's checkpoint
 * (`<run>/checkpoint.safetensors` → `<run>/<sub>`), else under runs/ (`weights/x.safetensors` →
 * `runs/<command>/x`), so that evaluating a shipped weights file writes nothing into weights/.
 */
export function defaultOutDir(command: string, checkpoint: string, sub = ""): string {
  if (basename(checkpoint) === "checkpoint.safetensors") return join(dirname(checkpoint), sub);
  return join("runs", command, basename(checkpoint, extname(checkpoint)));
}

/** Checks, before any work, that an output directory is a directory or can be made one (no file in the way). */
export function requireOutDir(command: string, flagName: string, dir: string): void {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d)) {
      if (!statSync(d).isDirectory()) {
        throw new UsageError(`${command}: ${flagName} ${dir}: ${d === dir ? "is a file, not a directory" : `${d} is a file, so the directory cannot be made`}`);
      }
      return;
    }
    if (dirname(d) === d) return;
  }
}

/** A fixed-width text table. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n") + "\n";
}

/** Writes a JSON file (pretty, atomic). */
export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeSvg(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** "1K" for 1024, "400K" for 409600, "1000" otherwise. */
export function lengthLabel(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / (1024 * 1024)}M`;
  if (n % 1024 === 0) return `${n / 1024}K`;
  return String(n);
}
