/** Element types: f32 for values, i32 for indices and targets. */
export type DType = "f32" | "i32";
/** Every DType, for run-time checks of a dtype given from untyped code. */
export const DTYPES: readonly DType[] = ["f32", "i32"];

export function arrayFor(dtype: DType, size: number): Float32Array | Int32Array {
  return dtype === "f32" ? new Float32Array(size) : new Int32Array(size);
}

export const bytesPerElement = 4;
