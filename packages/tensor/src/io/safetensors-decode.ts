/**
 * The safetensors reader: `decodeSafetensors` bounds-checks the header length, then validates the
 * header (UTF-8, JSON, schema, dtypes, shapes, offsets, exact coverage of the buffer) and copies
 * each tensor out into a fresh typed array (see safetensors.ts).
 */
import { z } from "zod";
import {
  allocate,
  dataKind,
  type DecodedSafetensors,
  type DecodeOptions,
  DEFAULT_MAX_HEADER_BYTES,
  defineOwn,
  fmtShape,
  LITTLE_ENDIAN,
  METADATA_KEY,
  SafetensorsError,
  shapeProduct,
  ST_DTYPES,
  ST_ITEMSIZE,
  type StDType,
  type StTensor,
  swapInPlace,
} from "./safetensors-format.ts";

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
