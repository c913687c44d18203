/**
 * The narrow backend interface: allocate, free, write, read (async), run a kernel.
 * Everything above it (shapes, autodiff, optimizers, the model) is backend-free.
 * A backend never imports a model, and knows a primitive only by its name and params.
 */
import type { DType } from "./dtype.ts";

/** The elementwise one-input functions of the `unary` primitive. */
export type UnaryOp =
  | "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "tanh" | "sigmoid" | "silu" | "softplus"
  | "abs" | "relu" | "sin" | "cos" | "square" | "reciprocal" | "sign";
/** The broadcasting two-input functions of the `binary` primitive. */
export type BinaryOp = "add" | "sub" | "mul" | "div" | "pow" | "max" | "min";
/** The comparisons of the `compare` primitive (results are 1 where true, 0 where false). */
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";

/** Every primitive's name and the static params its kernel receives. Shapes travel with the args. */
export interface PrimParams {
  /** A tensor of `shape` filled with `value`. */
  fill: { value: number; shape: number[] };
  /** One elementwise function of one input. */
  unary: { op: UnaryOp };
  /**
   * The VJP of `unary` in one pass: g · f′(x), inputs [g, x, y] of one shape (y = f(x), the
   * forward's output, where f′ is cheaper from it). For the ops of GRAD_UNARY_OPS (ops/elementwise.ts).
   */
  unaryGrad: { op: UnaryOp };
  /** One elementwise function of two inputs of the same (already broadcast) shape. */
  binary: { op: BinaryOp };
  /** The sum of several f32 inputs of one shape, added in order: ((x0 + x1) + x2) + … (f32 rounding at each step). */
  addN: Record<string, never>;
  /** An elementwise comparison of two inputs. */
  compare: { op: CompareOp };
  /** Picks the second input where the first is nonzero, else the third. */
  where: Record<string, never>;
  /** Converts to `dtype` (f32 → i32 truncates toward zero). */
  cast: { dtype: DType };
  /** Sums or maxima over `axes` (kept with size 1). */
  reduce: { op: "sum" | "max"; axes: number[] };
  /**
   * The VJP of a max reduction in one pass (ops/reduce.ts): inputs [x, y, g], y = max of x over
   * `axes` and g its cotangent (both x's shape with `axes` kept as size 1); out (x's shape) =
   * (g + 0) · ([x = y] / ties in x's group), rounded to f32 at each step as the composite is.
   */
  maxGrad: { axes: number[] };
  /** Batched matrix product over the last two axes, each operand optionally transposed. */
  matmul: { transA: boolean; transB: boolean };
  /** The same elements in another shape of the same size (a view: no kernel runs). */
  reshape: { shape: number[] };
  /** Permutes the axes: output axis i is input axis `perm[i]`. */
  transpose: { perm: number[] };
  /** The block of `sizes` elements starting at `starts`, per axis. */
  slice: { starts: number[]; sizes: number[] };
  /** Pads each axis with `value`: `before[i]` elements in front, `after[i]` behind. */
  pad: { before: number[]; after: number[]; value: number };
  /** Joins the inputs along `axis`. */
  concat: { axis: number };
  /** Rows of the first input picked by the i32 indices of the second. */
  gather: Record<string, never>;
  /** Adds rows into a zero tensor of `rows` rows at the given i32 indices (the VJP of gather). */
  scatterAdd: { rows: number };
  /** One-hot rows of length `depth` for i32 indices. */
  oneHot: { depth: number };
  /** Softmax over the last axis. */
  softmax: Record<string, never>;
  /** The VJP of softmax in one pass over each row: inputs [g, y], dx = y ⊙ (g − Σ g⊙y). */
  softmaxGrad: Record<string, never>;
  /**
   * Masked softmax over the last axis (ops/softmax.ts), inputs [x, valid]: softmax(where(valid ≠ 0,
   * scale·x, −1e9)) ⊙ valid, each step rounded as the composite's ops round it.
   */
  maskedSoftmax: { scale: number };
  /**
   * Its VJP in one row pass, inputs [g, w, valid]: scale · [valid ≠ 0] · w ⊙ (g⊙valid − Σ (g⊙valid)⊙w),
   * rounded as the composite's mul, softmaxGrad, where and mul (w stands in for the softmax output).
   */
  maskedSoftmaxGrad: { scale: number };
  /**
   * x / √(mean(x²) + eps) over the last axis, inputs [x]; or RMSNorm with its gain, inputs
   * [x, w] with w [n]: (x · r rounded to f32) · w[j], the bits of the unweighted form then a mul.
   */
  rmsNorm: { eps: number };
  /** Its VJP, inputs [g, x]: r·g − x·r³·(Σ g⊙x)/n per row, r = 1/√(mean(x²) + eps). */
  rmsNormGrad: { eps: number };
  /** log Σ exp over the last axis, computed stably. */
  logsumexp: Record<string, never>;
  /** Per-row softmax cross-entropy of logits against i32 targets. */
  crossEntropy: Record<string, never>;
  /**
   * σ(x·w + b) of x [..., n, d], w [d, 1], b [1] → [..., n]: a one-output linear layer and its sigmoid
   * (the memory path's scorers) in one launch; the bits of matmul, add and sigmoid in turn.
   */
  linearSigmoid: Record<string, never>;
  /**
   * softplus(x·w + b) of x [..., n, r], w [r, c], b [c] → [..., n, c]: Mamba's Δ projection from a
   * few inputs (dt_rank) and its softplus in one launch; the numbers of matmul, add and softplus.
   */
  linearSoftplus: Record<string, never>;
  /**
   * Mamba's output gate, (y + u ⊙ D) ⊙ silu(z) of y, u, z [..., Di] and D [Di], in one pass (the
   * mul, add, silu and mul it replaces each round to f32 as they would).
   */
  ssmGate: Record<string, never>;
  /** Depthwise causal 1-D convolution over the sequence axis, inputs [x, w] or [x, w, prefix]. */
  conv1dCausal: Record<string, never>;
  /**
   * silu(conv1dCausal(x, w, prefix) + b), inputs [x, w, b] or [x, w, b, prefix] (b [C]): Mamba's
   * conv with its bias and activation in one launch; the numbers of the conv, add and silu.
   */
  conv1dCausalSilu: Record<string, never>;
  /** The gradient of conv1dCausal with respect to its input. */
  conv1dCausalGradX: Record<string, never>;
  /** The gradient of conv1dCausal with respect to its `k`-tap kernel. */
  conv1dCausalGradW: { k: number };
  /**
   * Indexed attention, part 1 (ops/attention.ts): out[n, p] = x[n, :] · table[idx[n, p], :]
   * (inputs x [...N, S], table [M, S], idx i32 [...N, P]).
   */
  indexedDot: Record<string, never>;
  /** Indexed attention, part 2: out[n, :] = Σ_p w[n, p] · table[idx[n, p], :] (inputs w, table, idx). */
  indexedSum: Record<string, never>;
  /**
   * The adjoint of both: out[r, :] = Σ over (n, p) with idx[n, p] = r of w[n, p] · x[n, :]
   * (inputs w [...N, P], x [...N, S], idx; `rows` rows out), or with two more inputs w2, x2 of
   * w's and x's shapes, that sum plus the same sum of w2 · x2.
   */
  indexedOuter: { rows: number };
  /**
   * Indexed attention's read in one pass (ops/attention-fused.ts), inputs [q, keys, values, idx,
   * valid]: out[n] = Σ_p w[n, p] · values[idx[n, p]], w[n] = softmax(where(valid[n] ≠ 0,
   * scale · q[n] · keys[idx[n]]ᵀ, −1e9)) ⊙ valid[n].
   */
  attnRead: { scale: number };
  /**
   * attnRead over several reads at once (ops/attention-fused.ts, indexedAttentionParts), inputs
   * [q, (keys, values, idx) per read]: the softmax runs over all the reads' slots together, read 0's
   * first, and a slot is valid iff its index is not −1 (no gradient: the op joins the reads where
   * one is recorded).
   */
  attnReadParts: { scale: number };
  /**
   * The rows of a matmul that a mask keeps (ops/linalg.ts, matmulRows), inputs [x [..., K], w [K, N],
   * rows [...] f32]: out[i] = x[i]·w where rows[i] ≠ 0, else 0 (whatever x[i] holds).
   */
  matmulRows: Record<string, never>;
  /**
   * matmulRows with its columns max-pooled in groups of r (ops/linalg.ts, matmulRowsMax): out[i, j]
   * = max over c in [j·r, j·r + r) of (x[i]·w)[c] where rows[i] ≠ 0, else 0 → [..., N / r]; with a
   * fourth input scale [...], each out[i] times scale[i] (rounded as a mul after the max).
   */
  matmulRowsMax: { r: number };
  /**
   * c + (a·w) ⊙ s (ops/linalg.ts, addMatmul), inputs [c [..., R, N], a [..., R, K], w [K, N]] or
   * with s [..., R]: a matmul whose store scales its rows and adds c.
   */
  addMatmul: Record<string, never>;
  /**
   * (a·op(b)) ⊙ s (ops/linalg.ts, foldWeight): inputs [a [M, K], b [K, N] ([N, K] with transB)] or
   * with s [N], a scale of each column: a small product of weights folded into one weight.
   */
  foldWeight: { transB: boolean };
  /** For each position, the earlier marked positions a `k`-slot memory holds (`last`: FIFO, `top`: by score). */
  causalSelect: { k: number; mode: "last" | "top" };
  /**
   * Of causalSelect's positions [B, N, k], which rows' memories gained a newer position: out[b, t]
   * = 1 where the largest position of row start + t + 1 exceeds that of row start + t (−1 for a
   * row of empty slots, and for the row past the end: start + count ≤ N), t < count.
   */
  causalEntered: { start: number; count: number };
  /** The linear recurrence h_t = a_t · h_{t-1} + b_t along the sequence axis. */
  scan: Record<string, never>;
  /** Mamba's fused selective scan (discretisation, recurrence and readout). */
  selectiveScan: Record<string, never>;
  /** The final state h_L of the selective scan. */
  selectiveScanState: Record<string, never>;
  /** The fused VJP of the selective scan. */
  selectiveScanGrad: Record<string, never>;
  /** The recurrence run backwards in time (the VJP of `scan`). */
  scanReverse: Record<string, never>;
  /**
   * One part of a fused AdamW update (optim/adamw.ts), each intermediate rounded to f32 as the
   * unfused ops would: "m": a·m + b·g; "v": a·v + b·g²; "p": (decay? a·p : p) − d·m / (√v / b + c)
   * with inputs [p, m1, v1]. "m" and "v" take an optional third input s (one element): g is
   * replaced by g·s (rounded to f32 first, as a separate multiply would: a gradient clip's scale).
   */
  adamw: { part: "m" | "v" | "p"; a: number; b: number; c: number; d: number; decay: boolean };
}
/** The name of a primitive. */
export type PrimName = keyof PrimParams;

/**
 * Primitives with several outputs, run by `Backend.runMulti` (no autodiff: optimizer updates, a
 * VJP's kernel, the inference-only scan with its state).
 * One launch instead of one per output: on a GPU every launch costs host time.
 */
export interface MultiPrimParams {
  /**
   * A whole AdamW step of one parameter: inputs [p, g, m, v] and optionally a one-element
   * gradient scale s; outputs [p', m', v'], the bits of the "adamw" parts m, v, then p (with
   * m: a1 = β1, b1 = 1 − β1; v: a2 = β2, b2 = 1 − β2; p: decay, sqrtBc2, eps, stepSize).
   */
  adamwStep: { a1: number; b1: number; a2: number; b2: number; decay: number; decays: boolean; sqrtBc2: number; eps: number; stepSize: number };
  /**
   * adamwStep over `decays.length` = n parameters at once: inputs [p₁…pₙ, m₁…mₙ, v₁…vₙ, g] and
   * optionally the scale s, where g is every gradient flattened and concatenated in parameter
   * order; outputs [p'₁…p'ₙ, m'₁…m'ₙ, v'₁…v'ₙ]. Each parameter's bits are adamwStep's (decays[i]
   * says whether parameter i decays). On WebGPU, parameters whose p, m, v and outputs are views of
   * the same slabs (Backend.allocGroup) at the same relative offsets share a launch.
   */
  adamwGroup: { a1: number; b1: number; a2: number; b2: number; decay: number; decays: readonly boolean[]; sqrtBc2: number; eps: number; stepSize: number };
  /**
   * attnRead's VJP without its table scatters (ops/attention-fused.ts): inputs [q, keys, values,
   * idx, valid, g]; outputs [dq, w, dl]: dq [...N, S], the weights w and dl [...N, P], the
   * cotangent of the q·keys[idx] product (scale · where(valid, softmax's VJP of g·values ⊙ valid)).
   */
  attnReadGrad: { scale: number };
  /**
   * RMSNorm-with-a-gain's VJP in one row pass (ops/rms-norm.ts): inputs [g, x, w] (w [n], n = x's
   * last axis), outputs [dx, gxhat], both x's shape: dx = rmsNormGrad(g ⊙ w, x) and gxhat =
   * g ⊙ rmsNorm(x), each rounded as those launches round them (gxhat summed over the leading axes
   * is dw). Five launches (mul, rmsNormGrad, rmsNorm, mul, then dw's sum) become two.
   */
  rmsNormGradW: { eps: number };
  /**
   * The selective scan's y and last state in one forward: inputs [x, delta, A, Bm, C, h0] as
   * selectiveScan's, outputs [y [B, L, Di], state [B, Di, N]] (selectiveScan's and
   * selectiveScanState's values). The chunked forward needs both; as two primitives each
   * recomputes the whole scan.
   */
  selectiveScanWithState: Record<string, never>;
  /**
   * linearSigmoid's VJP (ops/linear-fused.ts): inputs [g [..., n], s [..., n], x [..., n, d],
   * w [d, 1]] (s the op's output, g its cotangent), outputs [dx (x's shape), dw [d, 1], db [1]]
   * with e = g ⊙ s(1 − s): dx = e ⊗ w, dw = xᵀ·e, db = Σ e. The CPU kernel has the composite's
   * bits (unaryGrad, the two matmuls and the reduction in turn); WebGPU's (a row pass and two
   * block sums: five launches become three) have dx's bits and sum dw and db in another order.
   */
  linearSigmoidGrad: Record<string, never>;
  /**
   * foldWeight's VJP (ops/linalg.ts): inputs [g [M, N], a, b, s?] as foldWeight's, outputs [da, db,
   * ds] (ds only with s): with gs = g ⊙ s, da = gs·op(b)ᵀ, db = aᵀ·gs (transB: gsᵀ·a) and ds = the
   * column sums of g ⊙ (a·op(b)). The CPU kernel has the composite's bits (the product, mul's
   * VJP, matmul's VJP in turn); WebGPU's one launch sums in another order.
   */
  foldWeightGrad: { transB: boolean };
  /**
   * linearSigmoid with its threshold test, outside a gradient (ops/linear-fused.ts,
   * linearSigmoidGate): inputs [x [..., n, d], w [d, 1], b [1]], outputs [s, m, m ⊙ s] (each
   * [..., n]) with s = σ(x·w + b) as linearSigmoid gives it and m = 1 where s > tau (f32), else 0.
   */
  linearSigmoidGate: { tau: number };
  /**
   * RMSNorm with its gain and two gated scorers of its output (ops/linear-fused.ts, rmsNormScores),
   * outside a gradient: inputs [x [..., n, d], gain [d], w1 [d, 1], b1 [1], w2 [d, 1], b2 [1]],
   * outputs [h, s1, m1, m2 ⊙ s2] with h = rmsNorm(x, gain), [s1, m1, ·] =
   * linearSigmoidGate(h, w1, b1, tau1) and [s2, m2, m2 ⊙ s2] = linearSigmoidGate(h, w2, b2, tau2).
   */
  rmsNormScores: { eps: number; tau1: number; tau2: number };
  /**
   * One recurrent write into bounded note pools (ops/pool.ts, poolInsert), outside a gradient:
   * inputs [notes [B, P, S], scores [B, P], valid [B, P], note [B, S], score [B], write [B]],
   * outputs [notes', scores', valid' (the inputs' shapes), accepted [B], evicted [B]], the numbers
   * of poolInsert's composite (compare, where, concat: ~40 launches) in one pass. `priority`: a
   * full pool drops its lowest score (the newcomer's included), else its oldest note.
   */
  poolInsert: { priority: boolean };
}
/**
 * What a buffer is for, where a backend recycles buffers: "long-lived" for tensors that replace
 * others of the same sizes at every step (an optimizer's parameters and moments), so that a
 * pooling backend can hand them the buffers their predecessors had and keep them apart from the
 * step's temporaries (then every step binds the same buffers in the same roles).
 */
export type AllocHint = "long-lived";
/** The name of a multi-output primitive. */
export type MultiPrimName = keyof MultiPrimParams;

/** An opaque buffer owned by a backend. */
export interface BufferHandle {
  /** Unique among the live buffers of one backend. */
  readonly id: number;
}

/** What a kernel sees of one tensor: its buffer, shape and dtype (always contiguous, row-major). */
export interface KernelArg {
  /** The buffer holding the elements. */
  readonly buf: BufferHandle;
  /** The tensor's shape. */
  readonly shape: readonly number[];
  /** The element type. */
  readonly dtype: DType;
}

/** Host memory that holds a tensor's elements: f32 or i32. */
export type HostArray = Float32Array | Int32Array;

/** Where tensors live and kernels run: the narrow interface every backend (CPU, wasm, WebGPU) implements. */
export interface Backend {
  /** A short name, e.g. "cpu", "wasm" or "webgpu". */
  readonly name: string;
  /** Allocates a buffer of `size` elements of `dtype` (contents unspecified). */
  alloc(size: number, dtype: DType, hint?: AllocHint): BufferHandle;
  /**
   * Allocates buffers of the given sizes together (optional): the WebGPU backend places them as
   * views of one GPUBuffer, so that a kernel can reach them all through one binding (adamwGroup).
   * Each handle is freed on its own, as any other.
   */
  allocGroup?(sizes: readonly number[], dtype: DType, hint?: AllocHint): BufferHandle[];
  /** Frees a buffer; freeing twice is an error. */
  free(buf: BufferHandle): void;
  /** Copies host data into a buffer. */
  write(buf: BufferHandle, data: HostArray): void;
  /** Copies a buffer back to the host (asynchronous: a GPU has no synchronous readback). */
  read(buf: BufferHandle): Promise<HostArray>;
  /** Runs one primitive's kernel: reads `inputs`, writes `output` (freshly allocated, contiguous). */
  run<K extends PrimName>(prim: K, inputs: readonly KernelArg[], output: KernelArg, params: PrimParams[K]): void;
  /**
   * True where this backend would rather run a composite of other primitives than `prim` itself
   * (its kernel for it is a slow generic fallback): the wasm backend for unaryGrad, whose SIMD
   * kernels cover the composite's ops. Absent: every primitive is preferred.
   */
  prefersComposite?(prim: PrimName | MultiPrimName): boolean;
  /** Runs one multi-output primitive (optional: callers fall back to one-output primitives). */
  runMulti?<K extends MultiPrimName>(prim: K, inputs: readonly KernelArg[], outputs: readonly KernelArg[], params: MultiPrimParams[K]): void;
  /** Buffers allocated and not yet freed: tests assert it returns to its baseline. */
  liveBuffers(): number;
  /** Waits until queued work is done (a no-op where kernels run synchronously). */
  sync(): Promise<void>;
}
