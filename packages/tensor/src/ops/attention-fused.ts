/**
 * The pool read of `indexedAttention` (ops/attention.ts) as one primitive: logits, masked softmax
 * and weighted sum of each position in one kernel, and a backward of one multi-output kernel plus
 * the two table scatters.
 *
 *   attnRead(q, K, V, idx, valid)[n] = Σ_p w[n, p] · V[idx[n, p]]
 *   w[n] = softmax(where(valid[n] ≠ 0, scale · q[n] · K[idx[n]]ᵀ, −1e9)) ⊙ valid[n]
 *
 * The composite (`indexedAttention`) runs indexedDot → masked softmax (maskedSoftmax, or mul,
 * where, softmax, mul where the backend prefers them) → indexedSum forward and, backward,
 * indexedDot (dw) → the masked softmax's VJP → indexedSum (dq) before its two indexedOuter
 * scatters, with an [N, P] tensor written and read between every two of them.
 * Here the forward is one launch (`attnRead`) and the backward's per-position part one launch
 * (`attnReadGrad`, a multi-output primitive: it recomputes the logits and the softmax instead of
 * saving them, and writes dq [...N, S], w [...N, P] and dl [...N, P], the cotangent of the q·K
 * product that indexedDot's VJP would receive); dK = indexedOuter(dl, q) and dV = indexedOuter(w,
 * g) stay as they are (on the GPU the two share one inverse index, webgpu/kernels/indexed.ts), or,
 * where one table is both the keys and the values, are one indexedOuter with two pairs.
 *
 * No weights output (the model reads only `out`), and no second-order gradients: attnReadGrad is
 * the VJP's own kernel and has none (a clear error, as softmaxGrad's).
 */
import type { MultiPrimParams } from "../backend.ts";
import { bind, bindMulti, definePrimitive, noSecondOrder, primitive } from "../dispatch.ts";
import { engine, getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import { tidy, type Tensor } from "../tensor.ts";
import { indexedAttention, indexedDot, indexedOuter, indexedSum } from "./attention.ts";
import { mul, where } from "./elementwise.ts";
import { softmax } from "./nn.ts";

/**
 * The most slots per position the fused kernels take: the GPU keeps a position's P logits (and,
 * backward, their cotangents and row indices) in workgroup memory, sized for at most this many.
 * `indexedAttentionFused` runs the composite for more.
 */
export const ATTN_READ_MAX_SLOTS: number = 256;

/** The checks shared by attnRead and attnReadGrad: inputs [q, keys, values, index, valid, ...]. */
function checkInputs(op: string, [q, keys, values, idx, valid]: readonly Tensor[]): void {
  for (const [what, t] of [["q", q], ["keys", keys], ["values", values], ["valid", valid]] as const) {
    if (t.dtype !== "f32") throw new ShapeError(`${op}: ${what} must be f32, got ${t.dtype} ${showShape(t.shape)}`);
  }
  if (idx.dtype !== "i32") throw new ShapeError(`${op}: index must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
  if (keys.rank !== 2 || !sameShape(keys.shape, values.shape)) {
    throw new ShapeError(`${op}: keys ${showShape(keys.shape)} and values ${showShape(values.shape)} must be the same [M, S] tables`);
  }
  if (q.rank < 1 || q.rank !== idx.rank || !sameShape(q.shape.slice(0, -1), idx.shape.slice(0, -1)) || q.shape[q.rank - 1] !== keys.shape[1]) {
    throw new ShapeError(`${op}: q ${showShape(q.shape)}, tables ${showShape(keys.shape)} and index ${showShape(idx.shape)} must be [...N, S], [M, S] and [...N, P]`);
  }
  if (!sameShape(valid.shape, idx.shape)) throw new ShapeError(`${op}: valid ${showShape(valid.shape)} must have the index's shape ${showShape(idx.shape)}`);
  const P = idx.shape[idx.rank - 1], S = keys.shape[1], M = keys.shape[0];
  if (P < 1 || P > ATTN_READ_MAX_SLOTS || S < 1 || M < 1) {
    throw new ShapeError(`${op}: needs 1..${ATTN_READ_MAX_SLOTS} slots, S ≥ 1 and M ≥ 1 (index ${showShape(idx.shape)}, tables ${showShape(keys.shape)}); indexedAttentionFused runs the composite otherwise`);
  }
}

definePrimitive("attnRead", {
  shape: (ins) => {
    if (ins.length !== 5) throw new ShapeError(`attnRead: expected 5 inputs (q, keys, values, index, valid), got ${ins.length}`);
    checkInputs("attnRead", ins);
    return { shape: [...ins[0].shape], dtype: "f32" };
  },
  // two dot products of S per slot (q·K and the weighted sum of V), the softmax's few per slot
  flops: ([q, , , idx]) => idx.size * (4 * q.shape[q.rank - 1] + 8),
  vjp: (g, [q, keys, values, idx, valid], _y, { scale }, needs) => {
    const [dq, w, dl] = attnReadGrad(q, keys, values, idx, valid, g, scale);
    const M = keys.shape[0];
    // one table read as both keys and values (MemMamba reads its notes so): its gradient dK + dV in
    // one scatter (indexedOuter's second pair), given as the keys' (the values' null adds nothing)
    const shared = keys.storage === values.storage && needs?.[1] !== false && needs?.[2] !== false;
    const dK = needs?.[1] === false ? null : shared ? indexedOuter(dl, q, idx, M, [w, g]) : indexedOuter(dl, q, idx, M);
    const dV = needs?.[2] === false || shared ? null : indexedOuter(w, g, idx, M);
    // the [N, P] intermediates are dead now: free them at once, not at the end of the backward
    w.dispose();
    dl.dispose();
    if (needs?.[0] === false) {
      dq.dispose();
      return [null, dK, dV, null, null];
    }
    return [dq, dK, dV, null, null];
  },
});

/** The second-order error of attnReadGrad (it is the VJP's kernel: no gradient of its own). */
const attnReadGradHasNoGradient = noSecondOrder("attnReadGrad");

/**
 * @internal attnRead's VJP without the table scatters: [dq, w, dl] for the cotangent g of out
 * (see the module comment), in one multi-output launch; where the backend has no runMulti, with
 * the composite's ops (the same ops in the same order: the same numbers).
 */
export function attnReadGrad(q: Tensor, keys: Tensor, values: Tensor, index: Tensor, valid: Tensor, g: Tensor, scale: number): [Tensor, Tensor, Tensor] {
  const ins = [q, keys, values, index, valid, g];
  if (engine.tape && engine.noGradDepth === 0 && ins.some((t) => t.requiresGrad)) attnReadGradHasNoGradient();
  checkInputs("attnReadGrad", ins);
  if (!sameShape(g.shape, q.shape) || g.dtype !== "f32") throw new ShapeError(`attnReadGrad: g ${g.dtype} ${showShape(g.shape)} must be f32 of q's shape ${showShape(q.shape)}`);
  const params: MultiPrimParams["attnReadGrad"] = { scale };
  const slots = { shape: [...index.shape], dtype: "f32" as const };
  const outs = bindMulti("attnReadGrad", ins, [{ shape: [...q.shape], dtype: "f32" }, slots, slots], params);
  if (outs) return outs as [Tensor, Tensor, Tensor];
  // the composite's backward, op for op (ops/attention.ts and the VJPs of mul, where, softmax):
  // the same numbers as the composite on this backend (tidy frees the intermediates at once)
  return tidy(() => {
    const masked = where(valid, mul(indexedDot(q, keys, index), scale), -1e9);
    const y = softmax(masked);
    const w = mul(y, valid);
    const dy = mul(indexedDot(g, values, index), valid);
    const [dx] = primitive("softmax").vjp(dy, [masked], y, {});
    const dl = mul(where(valid, dx as Tensor, 0), scale);
    return [indexedSum(dl, keys, index), w, dl] as [Tensor, Tensor, Tensor];
  });
}

/** `fused: false` makes indexedAttentionFused run the composite everywhere (benchmarks compare the two in one run). */
export const attentionTuning = { fused: true };

/**
 * `indexedAttention(q, keys, values, index, valid, scale).out` in one launch forward and one
 * (plus the two table scatters) backward: the same semantics (index −1 an empty slot, the
 * softmax masked with −1e9 where valid is 0 and then multiplied by valid, a position with no
 * valid slot reads 0, never NaN) and, within f32 rounding, the same numbers (bit for bit on the
 * TypeScript CPU kernels). Terms of weight exactly 0 are skipped in the weighted sums (they add
 * nothing unless the table row holds an infinity or NaN).
 *
 * Runs the composite instead where the backend prefers it (wasm: its SIMD kernels cover the
 * composite's ops) and where the fused kernels do not apply: no slot, more than
 * ATTN_READ_MAX_SLOTS slots, S = 0, or empty tables. Bad shapes get an error naming attnRead and
 * the shapes; an index outside [0, M) other than −1 an error naming it and its position on the
 * CPU (on the GPU, which cannot throw, it reads as an empty slot, as in indexedDot).
 */
export function indexedAttentionFused(q: Tensor, keys: Tensor, values: Tensor, index: Tensor, valid: Tensor, scale?: number): Tensor {
  const S = q.shape[q.rank - 1];
  const P = index.rank > 0 ? index.shape[index.rank - 1] : 0;
  // tidy: the weights (and whatever else the composite leaves, e.g. its dot products when P = 0) freed
  const composite = () => tidy(() => indexedAttention(q, keys, values, index, valid, scale).out);
  if (!attentionTuning.fused || getBackend().prefersComposite?.("attnRead") || !(P >= 1 && P <= ATTN_READ_MAX_SLOTS) || !(S >= 1) || !(keys.rank === 2 && keys.shape[0] >= 1)) return composite();
  if (valid.dtype !== "f32" || !sameShape(valid.shape, index.shape)) {
    throw new ShapeError(`indexedAttentionFused: valid ${valid.dtype} ${showShape(valid.shape)} must be f32 with the index's shape ${showShape(index.shape)}`);
  }
  return bind("attnRead", [q, keys, values, index, valid], { scale: scale ?? 1 / Math.sqrt(S) });
}
