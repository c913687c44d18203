/**
 * Training checkpoints in safetensors, written atomically: `saveCheckpoint`, `loadCheckpoint`,
 * `restoreState`.
 *
 * The layout of a file, its encoding and decoding and the trees <-> host tensors are in
 * ./checkpoint-format.ts; the atomic write (`writeFileAtomic`, `removeStaleTemps`) is in
 * ./atomic-write.ts; this module re-exports both.
 *
 * Bit-exact resume needs F32 weights (F16/BF16 round them); the optimizer state is always F32.
 *
 * A save goes through writeFileAtomic: a crash (even SIGKILL) at any moment leaves either the
 * old file or the new one at `<path>`, never a torn one; a leftover temporary file of a dead
 * process is removed by the next save into that directory.
 *
 * Loading validates everything and names what is wrong: a missing file (its path), a corrupt or
 * truncated one (the safetensors decoder's message, prefixed by the path), bad metadata (the
 * field and what it should be), tensors that do not match the model (the tensor and both shapes).
 */
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { disposeTree } from "@memmamba/tensor";
import { type AtomicWriteOptions, removeStaleTemps, writeFileAtomic } from "./atomic-write.ts";
import {
  CheckpointError, type CheckpointData, decodeCheckpoint, encodeCheckpoint, hostToTree, type Key, type LoadedCheckpoint, treeToHost, type WeightDType,
} from "./checkpoint-format.ts";

export {
  CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, decodeCheckpoint, encodeCheckpoint, hostToTree, treeToHost,
  type CheckpointData, type HostTensor, type Key, type LoadedCheckpoint, type WeightDType,
} from "./checkpoint-format.ts";
export { removeStaleTemps, writeFileAtomic, type AtomicWriteOptions, type AtomicWriteStage } from "./atomic-write.ts";

/** What `saveCheckpoint` takes: tensor trees (read back asynchronously) and the run's state. */
export interface CheckpointState {
  /** The parameter tree (tensors). */
  params: unknown;
  /** The AdamW state: its step count and the m and v trees. */
  optim?: { step: number; m: unknown; v: unknown };
  /** The number of optimizer steps taken. */
  step: number;
  /** The run's PRNG key. */
  key: Key;
  /** Where the data source stands (whatever it needs to resume exactly). */
  dataPosition: unknown;
  /** The model config. */
  config: Record<string, unknown>;
  /** Extra strings to store (as x.<name>). */
  extra?: Record<string, string>;
}

/** Options of `saveCheckpoint`. */
export interface SaveOptions extends AtomicWriteOptions {
  /** Storage type of the weights (default F32; the optimizer state is always F32). */
  dtype?: WeightDType;
}

/** Saves a checkpoint atomically (see the module note). */
export async function saveCheckpoint(path: string, state: CheckpointState, opts: SaveOptions = {}): Promise<void> {
  const data: CheckpointData = {
    weights: await treeToHost(state.params),
    optim: state.optim ? { step: state.optim.step, m: await treeToHost(state.optim.m), v: await treeToHost(state.optim.v) } : undefined,
    step: state.step,
    key: state.key,
    dataPosition: state.dataPosition,
    config: state.config,
    extra: state.extra,
  };
  const bytes = encodeCheckpoint(data, opts.dtype ?? "F32");
  mkdirSync(dirname(path) || ".", { recursive: true });
  removeStaleTemps(path);
  writeFileAtomic(path, bytes, opts);
}

/** Reads and validates a checkpoint file (errors name the path and the problem). */
export function loadCheckpoint(path: string): LoadedCheckpoint {
  let bytes: Uint8Array;
  try {
    if (statSync(path).isDirectory()) throw new CheckpointError(path, "is a directory, not a checkpoint file");
    bytes = readFileSync(path);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") throw new CheckpointError(path, "checkpoint not found (no such file)", { cause: e });
    if (code === "EACCES" || code === "EPERM") throw new CheckpointError(path, "checkpoint not readable (permission denied)", { cause: e });
    throw new CheckpointError(path, `cannot read the checkpoint (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  return decodeCheckpoint(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/**
 * The parameter (and optimizer) trees of a loaded checkpoint, shaped like `template` (the tree a
 * fresh `init` gives). Errors name the tensor and both shapes.
 */
export function restoreState<P>(ck: LoadedCheckpoint, template: P): { params: P; optim?: { step: number; m: P; v: P } } {
  const made: unknown[] = [];
  try {
    const params = hostToTree(template, ck.weights, ck.path);
    made.push(params);
    if (!ck.optim) return { params };
    const m = hostToTree(template, ck.optim.m, ck.path, "optim.m.", true);
    made.push(m);
    const v = hostToTree(template, ck.optim.v, ck.path, "optim.v.", true);
    return { params, optim: { step: ck.optim.step, m, v } };
  } catch (e) {
    for (const t of made) disposeTree(t);
    throw e;
  }
}
