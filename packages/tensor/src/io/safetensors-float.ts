/**
 * Float conveniences over safetensors tensors: `toF32` reads an F32/F16/BF16 tensor as a
 * Float32Array, `fromF32` / `f16Tensor` / `bf16Tensor` make one from a Float32Array (the F16/BF16
 * bit conversions live in half.ts).
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.ts";
import { dataKind, SafetensorsError, type StTensor } from "./safetensors-format.ts";

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
