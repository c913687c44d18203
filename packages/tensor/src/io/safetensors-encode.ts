/**
 * The safetensors writer: `encodeSafetensors` validates the tensors and metadata, sorts the tensors
 * by name, packs them contiguously and pads the header to 8 bytes (see safetensors.ts).
 */
import {
  compareCodePoints,
  dataKind,
  EXPECTED_KIND,
  fmtShape,
  leBytes,
  METADATA_KEY,
  SafetensorsError,
  shapeProduct,
  ST_DTYPES,
  ST_ITEMSIZE,
  type StTensor,
  wellFormed,
} from "./safetensors-format.ts";

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
