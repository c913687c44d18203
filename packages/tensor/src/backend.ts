/**
 * The narrow backend interface: allocate, free, write, read (async), run a kernel.
 * Everything above it (shapes, autodiff, optimizers, the model) is backend-free.
 * A backend never imports a model, and knows a primitive only by its name and params.
 */
import type { DType } from "./dtype.ts";

export type UnaryOp =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "sigmoid" | "silu" | "softplus"
  | "abs" | "relu" | "sin" | "cos" | "square" | "reciprocal" | "sign";
export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "max" | "min";
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";

/** Every primitive's name and the static params its kernel receives. Shapes travel with the args. */
export interface PrimParams {
  fill: { value: number; shape: number[] };
  unary: { op: UnaryOp };
  binary: { op: BinaryOp };
  compare: { op: CompareOp };
  where: Record<string, never>;
  cast: { dtype: DType };
  reduce: { op: "sum" | "max"; axes: number[] };
  matmul: { transA: boolean; transB: boolean };
  reshape: { shape: number[] };
  transpose: { perm: number[] };
  slice: { starts: number[]; sizes: number[] };
  pad: { before: number[]; after: number[]; value: number };
  concat: { axis: number };
  gather: Record<string, never>;
  scatterAdd: { rows: number };
  oneHot: { depth: number };
  softmax: Record<string, never>;
  logsumexp: Record<string, never>;
  crossEntropy: Record<string, never>;
  conv1dCausal: Record<string, never>;
  conv1dCausalGradX: Record<string, never>;
  conv1dCausalGradW: { k: number };
  causalSelect: { k: number; mode: "last" | "top" };
  scan: Record<string, never>;
  selectiveScan: Record<string, never>;
  selectiveScanState: Record<string, never>;
  selectiveScanGrad: Record<string, never>;
  scanReverse: Record<string, never>;
}
export type PrimName = keyof PrimParams;

/** An opaque buffer owned by a backend. */
export interface BufferHandle {
  readonly id: number;
}

/** What a kernel sees of one tensor: its buffer, shape and dtype (always contiguous, row-major). */
export interface KernelArg {
  readonly buf: BufferHandle;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

export type HostArray = Float32Array | Int32Array;

export interface Backend {
  readonly name: string;
  alloc(size: number, dtype: DType): BufferHandle;
  free(buf: BufferHandle): void;
  write(buf: BufferHandle, data: HostArray): void;
  read(buf: BufferHandle): Promise<HostArray>;
  /** Runs one primitive's kernel: reads `inputs`, writes `output` (freshly allocated, contiguous). */
  run<K extends PrimName>(prim: K, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[K]): void;
  /** Buffers allocated and not yet freed: tests assert it returns to its baseline. */
  liveBuffers(): number;
  /** Waits until queued work is done (a no-op where kernels run synchronously). */
  sync(): Promise<void>;
}
