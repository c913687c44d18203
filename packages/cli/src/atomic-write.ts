/**
 * Atomic file writes (checkpoints, through ./checkpoint.ts, which re-exports all of this; and
 * exported weights files).
 *
 * Atomicity: the bytes go to `<path>.tmp-<pid>`, which is fsync'ed, renamed over `<path>`, and
 * the directory is fsync'ed. A crash (even SIGKILL) at any moment leaves either the old file or
 * the new one at `<path>`, never a torn one; a leftover temporary file of a dead process is
 * removed by the next checkpoint save into that directory (saveCheckpoint calls `removeStaleTemps`).
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import process from "node:process";

/** Options of `writeFileAtomic`. */
export interface AtomicWriteOptions {
  /** Bytes per write call (default 16 MiB). */
  chunkBytes?: number;
  /** Called after each chunk (tests use it to crash mid-write). */
  onChunk?: (written: number, total: number) => void;
  /**
   * Called at each stage of the write (tests use it to crash there): "created" (an empty
   * temporary file), "synced" (every byte written and fsync'ed, not yet renamed: `path` still
   * holds the old file), "renamed" (`path` holds the new file; the directory not yet fsync'ed).
   */
  onStage?: (stage: AtomicWriteStage, tmpPath: string) => void;
}

/** The stages of writeFileAtomic that `AtomicWriteOptions.onStage` sees, in order. */
export type AtomicWriteStage = "created" | "synced" | "renamed";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/** Removes `<path>.tmp-<pid>` files left by dead processes. */
export function removeStaleTemps(path: string): string[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid === process.pid || isAlive(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(join(dir, name));
    } catch { /* raced with someone else: fine */ }
  }
  return removed;
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // some platforms (Windows) cannot open or fsync a directory; the rename is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `bytes` to `path` atomically: `<path>.tmp-<pid>`, fsync, rename over `path`, fsync the
 * directory. On any error the temporary file is removed and `path` is untouched.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array, opts: AtomicWriteOptions = {}): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const chunk = opts.chunkBytes ?? 16 << 20;
  const fd = openSync(tmp, "w", 0o644);
  try {
    try {
      opts.onStage?.("created", tmp);
      let off = 0;
      while (off < bytes.length) {
        const n = writeSync(fd, bytes, off, Math.min(chunk, bytes.length - off));
        off += n;
        opts.onChunk?.(off, bytes.length);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    opts.onStage?.("synced", tmp);
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch { /* already gone */ }
    throw e;
  }
  opts.onStage?.("renamed", tmp);
  fsyncDir(dirname(path) || ".");
}
