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
 *
 * The code lies in four modules, all re-exported here: safetensors-format.ts (types, error,
 * constants, shared helpers), safetensors-encode.ts (the writer), safetensors-decode.ts (the
 * reader) and safetensors-float.ts (F32/F16/BF16 conveniences).
 */
export {
  DEFAULT_MAX_HEADER_BYTES,
  type DecodedSafetensors,
  type DecodeOptions,
  MAX_ELEMENTS,
  SafetensorsError,
  ST_DTYPES,
  ST_ITEMSIZE,
  type StDType,
  type StTensor,
} from "./safetensors-format.ts";
export { encodeSafetensors } from "./safetensors-encode.ts";
export { decodeSafetensors } from "./safetensors-decode.ts";
export { bf16Tensor, f16Tensor, fromF32, toF32 } from "./safetensors-float.ts";
