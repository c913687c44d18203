/**
 * JSONL logs: one JSON object per line, appended and flushed line by line, so a log survives a
 * crash up to its last complete line and other tools (jq, pandas) read it as it grows.
 *
 * A resumed run first drops the records past the checkpoint it resumes from
 * (`truncateFromStep`), so the log of a killed-and-resumed run reads exactly like the log of an
 * uninterrupted one.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import process from "node:process";

/** One JSONL record: a plain object. */
export type LogRecord = Record<string, unknown>;

/** JSON that writes non-finite numbers as strings ("NaN", "Infinity") instead of null. */
export function toJsonLine(rec: LogRecord): string {
  return JSON.stringify(rec, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v));
}

/** Appends records to a JSONL file, one line each, written synchronously (a crash loses no finished line). */
export class JsonlLogger {
  #fd: number | null;
  /** The file written. */
  readonly path: string;

  /** Opens `path` for appending (creating it and its directory). */
  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.#fd = openSync(path, "a");
  }

  /** Appends one record as one line. */
  write(rec: LogRecord): void {
    if (this.#fd === null) throw new Error(`JsonlLogger: ${this.path} is closed`);
    const bytes = new TextEncoder().encode(`${toJsonLine(rec)}\n`);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.#fd, bytes, off, bytes.length - off);
  }

  /** Closes the file (idempotent). */
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
  /** The same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Reads a JSONL file. A last line cut short by a crash is ignored; a bad line elsewhere is an
 * error naming the file and line. A missing file gives [].
 */
export function readJsonl(path: string): LogRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, "utf8");
  const lines = text.split("\n");
  const out: LogRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogRecord);
    } catch (e) {
      const last = lines.slice(i + 1).every((l) => !l.trim());
      if (last) break; // torn final line
      throw new Error(`${path}:${i + 1}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return out;
}

/** The largest `rec[field]` of `records` (undefined: no record has one). */
function lastStepOf(records: readonly LogRecord[], field: string): number | undefined {
  let last: number | undefined;
  for (const r of records) {
    const v = r[field];
    if (typeof v === "number" && (last === undefined || v > last)) last = v;
  }
  return last;
}

/** Rewrites `path` atomically with the records of `records` that have `rec[field] <= step` (and those without the field). */
function keepUpToStep(path: string, records: readonly LogRecord[], step: number, field: string): void {
  const keep = records.filter((r) => !(typeof r[field] === "number" && (r[field] as number) > step));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, keep.map((r) => `${toJsonLine(r)}\n`).join(""));
  renameSync(tmp, path);
}

/**
 * A log read once for a resume: `lastStep`, the largest `rec[field]` of its records (undefined: no
 * file, or no record has one), to check it against the checkpoint, and `truncateFromStep(step)`,
 * which then drops the records past the checkpoint's step without reading the file again (the
 * same as the function `truncateFromStep`; nothing when there is no file). Nothing may append to
 * the file between the two.
 */
export function readLogForResume(path: string, field = "step"): { lastStep: number | undefined; truncateFromStep(step: number): void } {
  const exists = existsSync(path);
  const records = exists ? readJsonl(path) : [];
  return {
    lastStep: lastStepOf(records, field),
    truncateFromStep: (step) => {
      if (exists) keepUpToStep(path, records, step, field);
    },
  };
}

/**
 * Keeps only the records with `rec[field] <= step` (and records without the field), rewriting
 * the file atomically. Used on resume from a checkpoint at `step`.
 */
export function truncateFromStep(path: string, step: number, field = "step"): void {
  if (!existsSync(path)) return;
  keepUpToStep(path, readJsonl(path), step, field);
}
