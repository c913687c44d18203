/**
 * The checkpoint format: the layout of a file, its encoding and decoding, and parameter trees
 * <-> host tensors (see ./checkpoint.ts, which saves, loads and restores checkpoints with these
 * and re-exports all of this).
 *
 * Layout of one file (safetensors):
 *   <path>            a weight, under its dotted path in the parameter tree ("layers.0.mixer.w")
 *                     as F32 (default), F16 or BF16 (integer leaves as I32)
 *   optim.m.<path>    AdamW first moment of that weight (always F32)
 *   optim.v.<path>    AdamW second moment (always F32)
 *   __metadata__      strings:
 *     format            "memmamba-checkpoint"
 *     format_version    "1"
 *     step              training steps done, a decimal integer
 *     key               the run's root PRNG key, JSON [k0, k1] (two uint32)
 *     data_position     JSON: where the data source stands (the trainer: micro-batches consumed)
 *     config            JSON object: the model / run config
 *     weight_dtype      "F32" | "F16" | "BF16"
 *     optim_step        AdamW's step count (present iff optim.* tensors are)
 *     x.<name>          free-form extra strings (e.g. x.runtime), returned in `extra`
 *
 * Bit-exact resume needs F32 weights (F16/BF16 round them); the optimizer state is always F32.
 *
 * Decoding validates everything and names what is wrong: a corrupt or truncated file (the
 * safetensors decoder's message, prefixed by the path), bad metadata (the field and what it should
 * be), tensors that do not match the model (`hostToTree`: the tensor and both shapes).
 */
import { z } from "zod";
import { flattenTree, fromArray, mapTree, showShape, type Tensor } from "@memmamba/tensor";
import {
  decodeSafetensors, encodeSafetensors, fromF32, SafetensorsError, toF32, type StTensor,
} from "@memmamba/tensor";

/** The `format` metadata value that marks a MemMamba checkpoint. */
export const CHECKPOINT_FORMAT = "memmamba-checkpoint";
/** The checkpoint layout version this code writes and reads. */
export const CHECKPOINT_VERSION = "1";

/** The storage type of the weights in a checkpoint file. */
export type WeightDType = "F32" | "F16" | "BF16";
/** A PRNG key as stored in a checkpoint: two 32-bit words. */
export type Key = readonly [number, number];

/** A tensor on the host: its shape and values. */
export interface HostTensor {
  /** The tensor's shape. */
  shape: number[];
  /** The values, row-major. */
  data: Float32Array | Int32Array;
}

/** A problem with a checkpoint file; the message starts with the file's path. */
export class CheckpointError extends Error {
  /** `path` is the checkpoint file; `message` says what is wrong with it. */
  constructor(readonly path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = "CheckpointError";
  }
}

/** Everything a checkpoint holds, with tensors on the host. */
export interface CheckpointData {
  /** Weights by dotted path (F16/BF16 files are widened back to f32). */
  weights: Record<string, HostTensor>;
  /** AdamW state, by the same paths as the weights. */
  optim?: { step: number; m: Record<string, HostTensor>; v: Record<string, HostTensor> };
  /** The number of optimizer steps taken. */
  step: number;
  /** The run's PRNG key. */
  key: Key;
  /** Where the data source stands (whatever it needs to resume exactly). */
  dataPosition: unknown;
  /** The model config. */
  config: Record<string, unknown>;
  /** Extra strings (stored as x.<name>). */
  extra?: Record<string, string>;
}

/** A checkpoint as read from a file. */
export interface LoadedCheckpoint extends CheckpointData {
  /** The file it was read from. */
  path: string;
  /** The storage type of its weights. */
  weightDtype: WeightDType;
  /** Extra strings (stored as x.<name>); empty when there are none. */
  extra: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// trees <-> host tensors
// ---------------------------------------------------------------------------------------------

/** Reads every leaf of a tensor tree back to the host, by dotted path. */
export async function treeToHost(tree: unknown): Promise<Record<string, HostTensor>> {
  const out: Record<string, HostTensor> = {};
  for (const [path, t] of flattenTree(tree)) {
    const data = await t.data();
    out[path] = { shape: [...t.shape], data: data instanceof Int32Array ? data.slice() : Float32Array.from(data) };
  }
  return out;
}

/**
 * A tree shaped like `template` whose leaves are new tensors made from `tensors[path]`.
 * Every leaf of the template must be present with the same shape, and nothing else may be there
 * (errors name the tensor and both shapes). `what` prefixes names in messages ("optim.m.");
 * `asFloat` makes every leaf f32 (optimizer moments are f32 even for an integer parameter).
 */
export function hostToTree<T>(template: T, tensors: Record<string, HostTensor>, source: string, what = "", asFloat = false): T {
  const want = flattenTree(template);
  const seen = new Set<string>();
  for (const [path, t] of want) {
    const h = Object.hasOwn(tensors, path) ? tensors[path] : undefined;
    if (!h) throw new CheckpointError(source, `tensor "${what}${path}" (shape ${showShape(t.shape)}) expected by the model is missing from the checkpoint`);
    if (h.shape.length !== t.shape.length || h.shape.some((d, i) => d !== t.shape[i])) {
      throw new CheckpointError(source, `tensor "${what}${path}" has shape ${showShape(h.shape)} in the checkpoint but the model expects ${showShape(t.shape)}`);
    }
    const isInt = h.data instanceof Int32Array;
    if (isInt !== (t.dtype === "i32" && !asFloat)) {
      throw new CheckpointError(source, `tensor "${what}${path}" is ${isInt ? "an integer" : "a float"} tensor in the checkpoint but the model expects ${t.dtype}`);
    }
    seen.add(path);
  }
  for (const name of Object.keys(tensors)) {
    if (!seen.has(name)) throw new CheckpointError(source, `tensor "${what}${name}" in the checkpoint is not a parameter of the model`);
  }
  return mapTree(template, (t, path) => {
    const h = tensors[path];
    return fromArray(h.data, [...h.shape], asFloat ? "f32" : t.dtype) as Tensor;
  });
}

// ---------------------------------------------------------------------------------------------
// encode / decode
// ---------------------------------------------------------------------------------------------

function stOf(h: HostTensor, dtype: WeightDType): StTensor {
  if (h.data instanceof Int32Array) return { dtype: "I32", shape: [...h.shape], data: h.data };
  return fromF32(h.data, [...h.shape], dtype);
}

/** Checkpoint bytes (safetensors) from host data. */
export function encodeCheckpoint(ck: CheckpointData, dtype: WeightDType = "F32"): Uint8Array {
  const tensors: Record<string, StTensor> = {};
  for (const [path, h] of Object.entries(ck.weights)) {
    if (path.startsWith("optim.")) throw new Error(`checkpoint: a parameter may not be named "${path}" (the prefix "optim." is reserved)`);
    tensors[path] = stOf(h, dtype);
  }
  if (ck.optim) {
    for (const [path, h] of Object.entries(ck.optim.m)) tensors[`optim.m.${path}`] = stOf(h, "F32");
    for (const [path, h] of Object.entries(ck.optim.v)) tensors[`optim.v.${path}`] = stOf(h, "F32");
  }
  const meta: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: CHECKPOINT_VERSION,
    step: String(ck.step),
    key: JSON.stringify([ck.key[0], ck.key[1]]),
    data_position: JSON.stringify(ck.dataPosition ?? null),
    config: JSON.stringify(ck.config ?? {}),
    weight_dtype: dtype,
  };
  if (ck.optim) meta.optim_step = String(ck.optim.step);
  for (const [k, v] of Object.entries(ck.extra ?? {})) meta[`x.${k}`] = v;
  return encodeSafetensors(tensors, meta);
}

const intString = z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER));
const u32 = z.number().int().min(0).max(0xffffffff);
function jsonString<T extends z.ZodType>(inner: T) {
  return z.string().transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "is not valid JSON" });
      return z.NEVER;
    }
  }).pipe(inner);
}

/** What each metadata field must be, for messages. */
const FIELD_EXPECTS: Record<string, string> = {
  format: `"${CHECKPOINT_FORMAT}"`,
  format_version: `"${CHECKPOINT_VERSION}" (this program reads version ${CHECKPOINT_VERSION} checkpoints)`,
  step: "a non-negative integer",
  key: "a JSON array of two uint32 [k0, k1]",
  data_position: "JSON",
  config: "a JSON object",
  weight_dtype: "one of F32, F16, BF16",
  optim_step: "a non-negative integer",
};

const metadataSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  format_version: z.literal(CHECKPOINT_VERSION),
  step: intString,
  key: jsonString(z.tuple([u32, u32])),
  data_position: jsonString(z.unknown()),
  config: jsonString(z.record(z.string(), z.unknown())),
  weight_dtype: z.enum(["F32", "F16", "BF16"]),
  optim_step: intString.optional(),
});

/** Decodes and validates checkpoint bytes; `path` names the source in errors. */
export function decodeCheckpoint(bytes: Uint8Array, path: string): LoadedCheckpoint {
  let decoded;
  try {
    decoded = decodeSafetensors(bytes, { source: path });
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(path, `not a valid checkpoint: ${e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message}`, { cause: e });
    throw e;
  }
  const md = decoded.metadata;
  const parsed = metadataSchema.safeParse(md);
  if (!parsed.success) {
    const iss = parsed.error.issues[0];
    const field = String(iss.path[0] ?? "");
    const got = Object.hasOwn(md, field) ? `got ${JSON.stringify(md[field].length > 80 ? `${md[field].slice(0, 77)}...` : md[field])}` : "it is missing";
    const hint = field === "format" && !Object.hasOwn(md, field) ? " (is this a checkpoint written by this program?)" : "";
    throw new CheckpointError(path, `metadata "${field}" must be ${FIELD_EXPECTS[field] ?? iss.message}, ${got}${hint}`);
  }
  const meta = parsed.data;
  const weights: Record<string, HostTensor> = {};
  const m: Record<string, HostTensor> = {};
  const v: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(decoded.tensors)) {
    let data: Float32Array | Int32Array;
    if (t.dtype === "I32") data = t.data as Int32Array;
    else if (t.dtype === "I64") throw new CheckpointError(path, `tensor "${name}" is I64, which checkpoints never hold`);
    else data = toF32(t, name);
    const h: HostTensor = { shape: t.shape, data };
    if (name.startsWith("optim.m.")) m[name.slice(8)] = h;
    else if (name.startsWith("optim.v.")) v[name.slice(8)] = h;
    else if (name.startsWith("optim.")) throw new CheckpointError(path, `tensor "${name}" is neither optim.m.* nor optim.v.*`);
    else weights[name] = h;
  }
  const hasOptim = Object.keys(m).length + Object.keys(v).length > 0;
  if (hasOptim !== (meta.optim_step !== undefined)) {
    throw new CheckpointError(path, hasOptim ? `metadata "optim_step" is missing but the file holds optimizer tensors` : `metadata "optim_step" is set but the file holds no optim.* tensors`);
  }
  if (hasOptim) {
    for (const [what, tensors] of [["m", m], ["v", v]] as const) {
      for (const [p, h] of Object.entries(tensors)) {
        const w = weights[p];
        if (!w) throw new CheckpointError(path, `tensor "optim.${what}.${p}" has no weight "${p}"`);
        if (w.shape.length !== h.shape.length || w.shape.some((d, i) => d !== h.shape[i])) {
          throw new CheckpointError(path, `tensor "optim.${what}.${p}" has shape ${showShape(h.shape)} but weight "${p}" has ${showShape(w.shape)}`);
        }
      }
    }
  }
  const extra: Record<string, string> = {};
  for (const [k, val] of Object.entries(md)) if (k.startsWith("x.")) extra[k.slice(2)] = val;
  return {
    path,
    weightDtype: meta.weight_dtype,
    weights,
    optim: hasOptim ? { step: meta.optim_step!, m, v } : undefined,
    step: meta.step,
    key: Object.freeze([meta.key[0], meta.key[1]]) as Key,
    dataPosition: meta.data_position,
    config: meta.config,
    extra,
  };
}
