/**
 * What the safetensors codec (safetensors.ts) shares between its reader and its writer: the tensor
 * and option types, `SafetensorsError`, the dtype tables and limits, and the byte, shape and string
 * helpers (endianness, element counts, UTF-8 name order, own-property records).
 */
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

export const METADATA_KEY = "__metadata__";
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type TypedData = StTensor["data"];

export function dataKind(d: unknown): string {
  if (d instanceof Float32Array) return "Float32Array";
  if (d instanceof Uint16Array) return "Uint16Array";
  if (d instanceof Int32Array) return "Int32Array";
  if (d instanceof BigInt64Array) return "BigInt64Array";
  if (d !== null && typeof d === "object") return (d as object).constructor?.name ?? "object";
  return typeof d;
}

export const EXPECTED_KIND: Record<StDType, string> = {
  F32: "Float32Array",
  F16: "Uint16Array",
  BF16: "Uint16Array",
  I32: "Int32Array",
  I64: "BigInt64Array",
};

export function allocate(dtype: StDType, n: number): TypedData {
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

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * Element count of a shape, or `undefined` if it exceeds MAX_ELEMENTS. A shape with a zero
 * dimension has zero elements whatever its other dimensions.
 */
export function shapeProduct(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > MAX_ELEMENTS) return undefined;
  }
  return n;
}

/** Compares strings by Unicode code point (= UTF-8 byte order, the Rust crate's `String` order). */
export function compareCodePoints(a: string, b: string): number {
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
export function leBytes(d: TypedData, itemsize: number): Uint8Array {
  const view = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  if (LITTLE_ENDIAN || itemsize === 1) return view;
  const out = view.slice();
  swapInPlace(out, itemsize);
  return out;
}

export function swapInPlace(b: Uint8Array, itemsize: number): void {
  for (let i = 0; i + itemsize <= b.length; i += itemsize) b.subarray(i, i + itemsize).reverse();
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** True if the string is valid Unicode (encodes to UTF-8 without replacement characters). */
export function wellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export function defineOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  // defineProperty so a key such as "__proto__" becomes an own property, never the prototype
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
