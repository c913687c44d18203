/**
 * Shipped weights: a trained model's parameters alone, in half precision, with its config.
 *
 * Layout (safetensors):
 *   <path>          each parameter under its dotted path ("layers.0.mixer.w"), F16 or BF16
 *                   (integer leaves, if any, as I32); no optimizer state
 *   __metadata__
 *     format          "memmamba-weights"
 *     format_version  "1"
 *     config          JSON object: the model config (what `parseConfig` reads)
 *     weight_dtype    "F16" | "BF16" (or "F32")
 *     step            the training step of the checkpoint they came from
 *     x.<name>        the checkpoint's extra strings (task, seqLen, ...)
 *
 * A small model's training checkpoint (F32 weights and both Adam moments) is 12 bytes a
 * parameter; these files are 2, which is what lets the repository ship trained models.
 *
 * `loadModelFile` opens either kind (a training checkpoint or a weights file), widening half
 * precision to f32; anything else is an error naming the path and what is wrong. `loadModel`
 * (the package's public one) reads training checkpoints only.
 */
import { readFileSync, statSync } from "node:fs";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { z } from "zod";
import { disposeTree, random } from "@memmamba/tensor";
import { decodeSafetensors, encodeSafetensors, fromF32, SafetensorsError, toF32, type StTensor } from "@memmamba/tensor";
import { lm, parseConfig, type ModelConfig } from "@memmamba/memmamba";
import {
  CHECKPOINT_FORMAT, CheckpointError, decodeCheckpoint, type HostTensor, loadCheckpoint, type LoadedCheckpoint, restoreState, type WeightDType,
  writeFileAtomic,
} from "./checkpoint.ts";
import type { LoadedModel } from "./inference.ts";

export const WEIGHTS_FORMAT = "memmamba-weights";
export const WEIGHTS_VERSION = "1";

/** What a weights file holds, on the host. */
export interface WeightsData {
  weights: Record<string, HostTensor>;
  config: Record<string, unknown>;
  step: number;
  extra?: Record<string, string>;
}

/**
 * Weights-file bytes. Half precision must keep every value finite: a weight beyond F16's range
 * (±65504) is an error naming it (use BF16 then), not a silent infinity.
 */
export function encodeWeights(data: WeightsData, dtype: WeightDType = "F16"): Uint8Array {
  const tensors: Record<string, StTensor> = {};
  for (const [path, h] of Object.entries(data.weights)) {
    if (h.data instanceof Int32Array) {
      tensors[path] = { dtype: "I32", shape: [...h.shape], data: h.data };
      continue;
    }
    const t = fromF32(h.data, [...h.shape], dtype);
    const back = toF32(t, path);
    for (let i = 0; i < back.length; i++) {
      if (!Number.isFinite(back[i]) && Number.isFinite(h.data[i])) {
        throw new RangeError(`weights: "${path}"[${i}] = ${h.data[i]} does not fit ${dtype} (use --dtype BF16)`);
      }
    }
    tensors[path] = t;
  }
  const meta: Record<string, string> = {
    format: WEIGHTS_FORMAT,
    format_version: WEIGHTS_VERSION,
    config: JSON.stringify(data.config),
    weight_dtype: dtype,
    step: String(data.step),
  };
  for (const [k, v] of Object.entries(data.extra ?? {})) meta[`x.${k}`] = v;
  return encodeSafetensors(tensors, meta);
}

const weightsMeta = z.object({
  format: z.literal(WEIGHTS_FORMAT),
  format_version: z.literal(WEIGHTS_VERSION),
  config: z.string(),
  weight_dtype: z.enum(["F32", "F16", "BF16"]),
  step: z.string().regex(/^\d+$/),
});

function readBytes(path: string): Uint8Array {
  try {
    if (statSync(path).isDirectory()) throw new CheckpointError(path, "is a directory, not a weights or checkpoint file");
    const b = readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "ENOENT") throw new CheckpointError(path, "no such file (expected a checkpoint or a weights file)", { cause: e });
    throw new CheckpointError(path, `cannot read it (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}

/**
 * Decodes a weights file or a training checkpoint into the checkpoint shape that `restoreState`
 * takes (a weights file has no optimizer state, key [0, 0]). Errors name `path`.
 */
export function decodeModelFile(bytes: Uint8Array, path: string): LoadedCheckpoint {
  let decoded;
  try {
    decoded = decodeSafetensors(bytes, { source: path });
  } catch (e) {
    if (e instanceof SafetensorsError) {
      const msg = e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message;
      throw new CheckpointError(path, `not a valid weights or checkpoint file (safetensors): ${msg}`, { cause: e });
    }
    throw e;
  }
  const md = decoded.metadata;
  if (md.format === CHECKPOINT_FORMAT) return decodeCheckpoint(bytes, path);
  if (md.format !== WEIGHTS_FORMAT) {
    throw new CheckpointError(path, `is a safetensors file but not one of ours: metadata "format" is ${md.format === undefined ? "missing" : JSON.stringify(md.format)} (expected "${WEIGHTS_FORMAT}" or "${CHECKPOINT_FORMAT}")`);
  }
  const parsed = weightsMeta.safeParse(md);
  if (!parsed.success) {
    const field = String(parsed.error.issues[0].path[0] ?? "");
    throw new CheckpointError(path, `weights metadata "${field}" is ${Object.hasOwn(md, field) ? `invalid (${JSON.stringify(md[field].slice(0, 80))})` : "missing"}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(parsed.data.config);
  } catch {
    throw new CheckpointError(path, `weights metadata "config" is not valid JSON`);
  }
  if (config === null || typeof config !== "object" || Array.isArray(config)) throw new CheckpointError(path, `weights metadata "config" is not a JSON object`);
  const weights: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(decoded.tensors)) {
    if (name.startsWith("optim.")) throw new CheckpointError(path, `tensor "${name}": a weights file holds no optimizer state`);
    if (t.dtype === "I64") throw new CheckpointError(path, `tensor "${name}" is I64, which weights files never hold`);
    weights[name] = { shape: t.shape, data: t.dtype === "I32" ? (t.data as Int32Array) : toF32(t, name) };
  }
  const extra: Record<string, string> = {};
  for (const [k, v] of Object.entries(md)) if (k.startsWith("x.")) extra[k.slice(2)] = v;
  return {
    path,
    weightDtype: parsed.data.weight_dtype,
    weights,
    step: Number(parsed.data.step),
    key: Object.freeze([0, 0]) as readonly [number, number],
    dataPosition: null,
    config: config as Record<string, unknown>,
    extra,
  };
}

/**
 * Loads a model from a training checkpoint or a weights file (half precision widened to f32).
 * Errors name the path: missing file, not safetensors, truncated, another format, a config that
 * is not a model config, tensors that do not match the config.
 */
export function loadModelFile(path: string): LoadedModel {
  return modelOf(decodeModelFile(readBytes(path), path));
}

/** The model a decoded file holds: its config validated, its weights in a fresh parameter tree. */
function modelOf(ck: LoadedCheckpoint): LoadedModel {
  let config: ModelConfig;
  try {
    config = parseConfig(ck.config);
  } catch (e) {
    throw new CheckpointError(ck.path, `its config is not a valid model config: ${e instanceof Error ? e.message : String(e)}`);
  }
  const template = lm.init(random.key(0), config);
  try {
    // the weights alone: restoring a training checkpoint's Adam moments too would only leak them
    return { params: restoreState({ ...ck, optim: undefined }, template).params, config, checkpoint: ck };
  } finally {
    disposeTree(template);
  }
}

/**
 * Loads a training checkpoint's weights into a fresh parameter tree (the package's public
 * `loadModel`; errors name the path and tensor). A weights file is not a checkpoint: its error
 * says so and points to `loadModelFile`, which reads both kinds.
 */
export function loadModel(path: string): LoadedModel {
  let ck: LoadedCheckpoint;
  try {
    ck = loadCheckpoint(path);
  } catch (e) {
    if (e instanceof CheckpointError && formatOf(path) === WEIGHTS_FORMAT) {
      throw new CheckpointError(path, `loadModel: this is a weights file (metadata "format" is "${WEIGHTS_FORMAT}"), and loadModel reads training checkpoints ("${CHECKPOINT_FORMAT}") only: use loadModelFile, which reads both`, { cause: e });
    }
    throw e;
  }
  return modelOf(ck);
}

/** The safetensors metadata "format" of the file at `path` (undefined where it is not readable as safetensors). */
function formatOf(path: string): string | undefined {
  try {
    return decodeSafetensors(readBytes(path), { source: path }).metadata.format;
  } catch {
    return undefined;
  }
}

/** Reads a checkpoint (or weights file) and writes its weights alone to `out`; returns sizes. */
export function exportWeights(checkpoint: string, out: string, dtype: WeightDType = "F16"): { bytes: number; parameters: number; step: number; config: Record<string, unknown> } {
  const ck = decodeModelFile(readBytes(checkpoint), checkpoint);
  try {
    parseConfig(ck.config);
  } catch (e) {
    throw new CheckpointError(checkpoint, `its config is not a valid model config: ${e instanceof Error ? e.message : String(e)}`);
  }
  const bytes = encodeWeights({ weights: ck.weights, config: ck.config, step: ck.step, extra: ck.extra }, dtype);
  mkdirSync(dirname(out) || ".", { recursive: true });
  writeFileAtomic(out, bytes);
  const parameters = Object.values(ck.weights).reduce((a, h) => a + h.data.length, 0);
  return { bytes: bytes.length, parameters, step: ck.step, config: ck.config };
}
