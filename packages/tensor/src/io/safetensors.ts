/**
 * safetensors codec over raw bytes (https://github.com/huggingface/safetensors), byte-compatible
 * with the Rust crate / Python `safetensors.torch`:
 *
 *   [u64 little-endian N][N bytes UTF-8 JSON header][byte buffer]
 *
 * header = { "__metadata__"?: {string: string},
 *            name: { "dtype": ..., "shape": [ints], "data_offsets": [begin, end] }, ... }
 * with offsets relative to the start of the byte buffer. All data is little-endian.
 *
 * The writer sorts tensors by name (UTF-8 byte order), packs them contiguously and pads the header
 * with spaces so the buffer starts 8-byte aligned, as the Rust crate does. The reader is written
 * for hostile input: every failure is a `SafetensorsError` naming the source, the tensor and the
 * problem; nothing is allocated or decoded before the header length has been bounds-checked.
 */
import { z } from "zod";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.ts";

/** The safetensors dtypes this reader and writer support. */
export type StDType = "F32" | "F16" | "BF16" | "I32" | "I64";

/** One tensor of a safetensors file, in host memory. */
export interface StTensor {
  /** The element type as the file names it. */
  dtype: StDType;
  /** The tensor's shape. */
  shape: number[];
  /** F32: Float32Array, F16/BF16: raw Uint16Array bits, I32: Int32Array, I64: BigInt64Array. */
  data: Float32Array | Int32Array | BigInt64Array | Uint16Array;
}

/** Options of `decodeSafetensors`. */
export interface DecodeOptions {
  /** Largest accepted JSON header, in bytes. Default 100 MB (the Rust crate's limit). */
  maxHeaderBytes?: number;
  /** File path (or any label) used as the prefix of error messages. */
  source?: string;
}

/** The contents of a safetensors file. */
export interface DecodedSafetensors {
  /** The header's `__metadata__` (string to string). */
  metadata: Record<string, string>;
  /** Every tensor, by name. */
  tensors: Record<string, StTensor>;
}

/** A malformed or unsupported safetensors file; the message names the source and the tensor. */
export class SafetensorsError extends Error {
  /** The source label, if one was given. */
  readonly source: string | undefined;
  /** The tensor the problem is about, where there is one. */
  readonly tensor: string | undefined;
  /** Prefixes `message` with the source label and the tensor name where given. */
  constructor(message: string, opts: { source?: string; tensor?: string } = {}) {
    const where = opts.tensor !== undefined ? `tensor ${JSON.stringify(opts.tensor)}: ` : "";
    super(`${opts.source !== undefined ? `${opts.source}: ` : ""}${where}${message}`);
    this.name = "SafetensorsError";
    this.source = opts.source;
    this.tensor = opts.tensor;
  }
}

/** Bytes per element of each dtype. */
export const ST_ITEMSIZE: Readonly<Record<StDType, number>> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8 };
/** Every supported dtype. */
export const ST_DTYPES: readonly StDType[] = ["F32", "F16", "BF16", "I32", "I64"];
/** Default `maxHeaderBytes`: 100 MB, as in the Rust crate. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;
/** Largest accepted element count of one tensor. */
export const MAX_ELEMENTS = 2 ** 31;

const METADATA_KEY = "__metadata__";
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type TypedData = StTensor["data"];

function dataKind(d: unknown): string {
  if (d instanceof Float32Array) return "Float32Array";
  if (d instanceof Uint16Array) return "Uint16Array";
  if (d instanceof Int32Array) return "Int32Array";
  if (d instanceof BigInt64Array) return "BigInt64Array";
  if (d !== null && typeof d === "object") return (d as object).constructor?.name ?? "object";
  return typeof d;
}

const EXPECTED_KIND: Record<StDType, string> = {
  F32: "Float32Array",
  F16: "Uint16Array",
  BF16: "Uint16Array",
  I32: "Int32Array",
  I64: "BigInt64Array",
};

function allocate(dtype: StDType, n: number): TypedData {
  switch (dtype) {
    case "F32":
      return new Float32Array(n);
    case "F16":
    case "BF16":
      return new Uint16Array(n);
    case "I32":
      return new Int32Array(n);
    case "I64":
      return new BigInt64Array(n);
  }
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Element count of a shape, or `undefined` if it exceeds MAX_ELEMENTS. A shape with a zero
 * dimension has zero elements whatever its other dimensions.
 */
function shapeProduct(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > MAX_ELEMENTS) return undefined;
  }
  return n;
}

/** Compares strings by Unicode code point (= UTF-8 byte order, the Rust crate's `String` order). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

/** Byte view of typed data, swapped to little-endian on a big-endian host (a copy then). */
function leBytes(d: TypedData, itemsize: number): Uint8Array {
  const view = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  if (LITTLE_ENDIAN || itemsize === 1) return view;
  const out = view.slice();
  swapInPlace(out, itemsize);
  return out;
}

function swapInPlace(b: Uint8Array, itemsize: number): void {
  for (let i = 0; i + itemsize <= b.length; i += itemsize) b.subarray(i, i + itemsize).reverse();
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** True if the string is valid Unicode (encodes to UTF-8 without replacement characters). */
function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

function defineOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  // defineProperty so a key such as "__proto__" becomes an own property, never the prototype
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/**
 * Serialises tensors (and optional string metadata) to safetensors bytes. Tensors are sorted by
 * name and packed contiguously; the header is padded with spaces to a multiple of 8 bytes.
 */
export function encodeSafetensors(tensors: Record<string, StTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort(compareCodePoints);
  const entries: { name: string; t: StTensor; itemsize: number; bytes: number }[] = [];
  for (const name of names) {
    const t = tensors[name];
    if (name.length === 0) throw new SafetensorsError("tensor names must be non-empty");
    if (name === METADATA_KEY) throw new SafetensorsError(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!wellFormed(name)) throw new SafetensorsError("tensor name contains a lone UTF-16 surrogate (not valid UTF-8)", { tensor: name });
    if (t === null || typeof t !== "object") throw new SafetensorsError("not a tensor object", { tensor: name });
    if (!ST_DTYPES.includes(t.dtype)) {
      throw new SafetensorsError(`unsupported dtype ${JSON.stringify(t.dtype)} (expected one of ${ST_DTYPES.join(", ")})`, { tensor: name });
    }
    if (!Array.isArray(t.shape)) throw new SafetensorsError("shape must be an array", { tensor: name });
    t.shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0) {
        throw new SafetensorsError(`shape[${i}] = ${d} is not a non-negative safe integer`, { tensor: name });
      }
    });
    const kind = dataKind(t.data);
    if (kind !== EXPECTED_KIND[t.dtype]) {
      throw new SafetensorsError(`dtype ${t.dtype} needs data as ${EXPECTED_KIND[t.dtype]}, got ${kind}`, { tensor: name });
    }
    const n = shapeProduct(t.shape);
    if (n === undefined) throw new SafetensorsError(`shape ${fmtShape(t.shape)} has more than 2^31 elements`, { tensor: name });
    if (t.data.length !== n) {
      throw new SafetensorsError(`data has ${t.data.length} elements but shape ${fmtShape(t.shape)} needs ${n}`, { tensor: name });
    }
    const itemsize = ST_ITEMSIZE[t.dtype];
    entries.push({ name, t, itemsize, bytes: n * itemsize });
  }

  // Header: "__metadata__" first, then tensors in buffer order; key order dtype, shape, data_offsets.
  // Built as text (not via one object) so integer-like names keep this order too.
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) {
      throw new SafetensorsError("metadata must be an object of strings");
    }
    const meta: string[] = [];
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError(`metadata ${JSON.stringify(k)} must be a string, got ${typeof v}`);
      if (!wellFormed(k) || !wellFormed(v)) throw new SafetensorsError(`metadata ${JSON.stringify(k)} contains a lone UTF-16 surrogate`);
      meta.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.join(",")}}`);
  }
  let offset = 0;
  for (const e of entries) {
    const info = { dtype: e.t.dtype, shape: [...e.t.shape], data_offsets: [offset, offset + e.bytes] };
    parts.push(`${JSON.stringify(e.name)}:${JSON.stringify(info)}`);
    offset += e.bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const e of entries) {
    out.set(leBytes(e.t.data, e.itemsize), pos);
    pos += e.bytes;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

const dim = z.number().int().nonnegative();
const tensorInfoSchema = z.object({
  dtype: z.string(),
  shape: z.array(dim),
  data_offsets: z.tuple([dim, dim]),
});
const metadataSchema = z.record(z.string(), z.string()).nullable();
const headerSchema = z.record(z.string(), z.unknown());

function zodProblem(err: z.ZodError, what: string): string {
  const parts = err.issues.slice(0, 3).map((iss) => {
    const path = iss.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    return `${path ? `${path.replace(/^\./, "")}: ` : ""}${iss.message}`;
  });
  const more = err.issues.length > 3 ? ` (and ${err.issues.length - 3} more)` : "";
  return `invalid ${what}: ${parts.join("; ")}${more}`;
}

/**
 * Parses safetensors bytes. Validates everything (header length, UTF-8, JSON, schema, dtypes,
 * shapes, offsets, exact coverage of the buffer) and copies each tensor's data into a fresh,
 * aligned typed array. Throws `SafetensorsError` on any problem.
 */
export function decodeSafetensors(bytes: Uint8Array, opts: DecodeOptions = {}): DecodedSafetensors {
  const source = opts.source;
  const fail: (msg: string, tensor?: string) => never = (msg, tensor) => {
    throw new SafetensorsError(msg, tensor === undefined ? { source } : { source, tensor });
  };
  const maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!(bytes instanceof Uint8Array)) fail(`expected a Uint8Array, got ${dataKind(bytes)}`);
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);

  // 1. header length: bounds-checked as a BigInt before anything is allocated or decoded
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (typeof maxHeader !== "number" || Number.isNaN(maxHeader) || maxHeader < 0) fail(`maxHeaderBytes must be a non-negative number, got ${maxHeader}`);
  if (Number.isFinite(maxHeader) && n64 > BigInt(Math.floor(maxHeader))) fail(`header length ${n64} exceeds the limit of ${maxHeader} bytes`);
  if (n64 > BigInt(bytes.length - 8)) fail(`header length ${n64} exceeds the ${bytes.length - 8} bytes after the length prefix`);
  const n = Number(n64);
  const bufferStart = 8 + n;
  const bufferLen = bytes.length - bufferStart;

  // 2. UTF-8 + JSON
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, bufferStart));
  } catch {
    return fail("header is not valid UTF-8");
  }
  if (!text.startsWith("{")) fail(`header must be a JSON object starting with "{", got ${JSON.stringify(text.slice(0, 16))}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }

  // 3. schema
  const top = headerSchema.safeParse(raw);
  if (!top.success) return fail(zodProblem(top.error, "header"));
  const obj = raw as Record<string, unknown>; // read keys from the raw object (zod drops "__proto__")

  const metadata: Record<string, string> = {};
  const infos: { name: string; dtype: StDType; shape: number[]; begin: number; end: number; count: number }[] = [];
  for (const name of Object.keys(obj)) {
    const value = obj[name];
    if (name === METADATA_KEY) {
      const m = metadataSchema.safeParse(value);
      if (!m.success) fail(zodProblem(m.error, `"${METADATA_KEY}" (must be an object of strings)`));
      if (value !== null) {
        for (const k of Object.keys(value as object)) {
          const v = (value as Record<string, unknown>)[k];
          if (typeof v !== "string") fail(`"${METADATA_KEY}" entry ${JSON.stringify(k)} must be a string, got ${typeof v}`);
          defineOwn(metadata, k, v as string);
        }
      }
      continue;
    }
    if (name.length === 0) fail("tensor names must be non-empty");
    const p = tensorInfoSchema.safeParse(value);
    if (!p.success) return fail(zodProblem(p.error, "tensor entry"), name);
    const { dtype, shape, data_offsets } = p.data;
    if (!(ST_DTYPES as readonly string[]).includes(dtype)) {
      fail(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${ST_DTYPES.join(", ")})`, name);
    }
    const dt = dtype as StDType;
    const [begin, end] = data_offsets;
    if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, name);
    if (end > bufferLen) fail(`data_offsets [${begin}, ${end}] run past the end of the ${bufferLen}-byte data buffer`, name);
    const count = shapeProduct(shape);
    if (count === undefined) fail(`shape ${fmtShape(shape)} has more than 2^31 elements`, name);
    const need = count! * ST_ITEMSIZE[dt];
    if (end - begin !== need) {
      fail(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but shape ${fmtShape(shape)} of ${dt} needs ${need}`, name);
    }
    infos.push({ name, dtype: dt, shape, begin, end, count: count! });
  }

  // 4. the tensors must tile the buffer exactly: no overlap, no hole, nothing left over
  const byOffset = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: string | undefined;
  for (const t of byOffset) {
    if (t.begin < cursor) {
      fail(`data_offsets [${t.begin}, ${t.end}] overlap tensor ${JSON.stringify(prev)} (which ends at ${cursor})`, t.name);
    }
    if (t.begin > cursor) fail(`data_offsets [${t.begin}, ${t.end}] leave a hole: bytes [${cursor}, ${t.begin}) belong to no tensor`, t.name);
    cursor = t.end;
    prev = t.name;
  }
  if (cursor !== bufferLen) fail(`data buffer is ${bufferLen} bytes but the tensors cover only ${cursor}: bytes [${cursor}, ${bufferLen}) belong to no tensor`);

  // 5. copy out into fresh (aligned) arrays
  const tensors: Record<string, StTensor> = {};
  for (const t of infos) {
    const data = allocate(t.dtype, t.count);
    const dst = new Uint8Array(data.buffer);
    dst.set(bytes.subarray(bufferStart + t.begin, bufferStart + t.end));
    if (!LITTLE_ENDIAN) swapInPlace(dst, ST_ITEMSIZE[t.dtype]);
    defineOwn(tensors, t.name, { dtype: t.dtype, shape: t.shape, data });
  }
  return { metadata, tensors };
}

// ---------------------------------------------------------------------------------------------
// Conveniences
// ---------------------------------------------------------------------------------------------

/**
 * Float values of an F32/F16/BF16 tensor. F32 returns `t.data` itself (no copy); F16/BF16 are
 * converted exactly into a new array. I32/I64 throw a SafetensorsError.
 */
export function toF32(t: StTensor, name?: string): Float32Array {
  const opts = name === undefined ? {} : { tensor: name };
  switch (t.dtype) {
    case "F32":
      if (!(t.data instanceof Float32Array)) throw new SafetensorsError(`F32 data must be a Float32Array, got ${dataKind(t.data)}`, opts);
      return t.data;
    case "F16":
    case "BF16":
      if (!(t.data instanceof Uint16Array)) throw new SafetensorsError(`${t.dtype} data must be a Uint16Array, got ${dataKind(t.data)}`, opts);
      return t.dtype === "F16" ? f16ToF32(t.data) : bf16ToF32(t.data);
    default:
      throw new SafetensorsError(`toF32: ${t.dtype} is an integer dtype, not a float one (read t.data directly)`, opts);
  }
}

/**
 * A float tensor for encoding: stores `data` as F32 (shared, no copy), or converted to F16 / BF16
 * bits (round-to-nearest-even). `shape` defaults to `[data.length]`.
 */
export function fromF32(data: Float32Array, shape: number[] = [data.length], dtype: "F32" | "F16" | "BF16" = "F32"): StTensor {
  switch (dtype) {
    case "F32":
      return { dtype, shape: [...shape], data };
    case "F16":
      return { dtype, shape: [...shape], data: f32ToF16(data) };
    case "BF16":
      return { dtype, shape: [...shape], data: f32ToBf16(data) };
  }
}

/** `fromF32(data, shape, "F16")`. */
export function f16Tensor(data: Float32Array, shape: number[] = [data.length]): StTensor {
  return fromF32(data, shape, "F16");
}

/** `fromF32(data, shape, "BF16")`. */
export function bf16Tensor(data: Float32Array, shape: number[] = [data.length]): StTensor {
  return fromF32(data, shape, "BF16");
}
