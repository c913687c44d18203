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
import { isRecording } from "../autodiff.ts";
import { add, ge, mul, where } from "./elementwise.ts";
import { concat } from "./movement.ts";
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

/** The most reads `indexedAttentionParts` runs as one launch (the GPU binds three buffers a read, eight in all). */
export const ATTN_READ_MAX_PARTS: number = 2;
/** The widest rows `indexedAttentionParts` runs as one launch (a GPU thread holds a position's q and sum in registers). */
export const ATTN_READ_PARTS_MAX_S: number = 64;

/** One read of `indexedAttentionParts`: rows `index` [...N, P] i32 of a keys and a values table [M, S] (−1: an empty slot). */
export interface AttentionPart {
  /** The keys table [M, S]. */
  keys: Tensor;
  /** The values table [M, S] (may be the keys tensor itself). */
  values: Tensor;
  /** Rows of the tables each position reads, i32 [...N, P] (−1: an empty slot). */
  index: Tensor;
}

/** The checks of attnReadParts: inputs [q, (keys, values, index) per read]. */
function checkParts(ins: readonly Tensor[]): void {
  if (ins.length < 4 || (ins.length - 1) % 3 !== 0) throw new ShapeError(`attnReadParts: expected q and (keys, values, index) per read, got ${ins.length} inputs`);
  const q = ins[0];
  for (let i = 1; i < ins.length; i += 3) {
    const [keys, values, idx] = ins.slice(i, i + 3);
    const part = `read ${(i - 1) / 3}`;
    if (q.dtype !== "f32" || keys.dtype !== "f32" || values.dtype !== "f32") throw new ShapeError(`attnReadParts: q, keys and values must be f32 (${part}: q ${q.dtype}, keys ${keys.dtype}, values ${values.dtype})`);
    if (idx.dtype !== "i32") throw new ShapeError(`attnReadParts: ${part}'s index must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
    if (keys.rank !== 2 || !sameShape(keys.shape, values.shape) || keys.shape[0] < 1) {
      throw new ShapeError(`attnReadParts: ${part}'s keys ${showShape(keys.shape)} and values ${showShape(values.shape)} must be the same non-empty [M, S] tables`);
    }
    if (q.rank < 1 || q.rank !== idx.rank || !sameShape(q.shape.slice(0, -1), idx.shape.slice(0, -1)) || q.shape[q.rank - 1] !== keys.shape[1]) {
      throw new ShapeError(`attnReadParts: q ${showShape(q.shape)}, ${part}'s table ${showShape(keys.shape)} and index ${showShape(idx.shape)} must be [...N, S], [M, S] and [...N, P]`);
    }
    const P = idx.shape[idx.rank - 1];
    if (P < 1) throw new ShapeError(`attnReadParts: ${part} has no slot (index ${showShape(idx.shape)})`);
  }
  const S = q.shape[q.rank - 1];
  if (S < 1 || S > ATTN_READ_PARTS_MAX_S) throw new ShapeError(`attnReadParts: S ${S} must be in 1..${ATTN_READ_PARTS_MAX_S}`);
}

definePrimitive("attnReadParts", {
  shape: (ins) => {
    checkParts(ins);
    return { shape: [...ins[0].shape], dtype: "f32" };
  },
  flops: (ins) => {
    let slots = 0;
    for (let i = 3; i < ins.length; i += 3) slots += ins[i].size;
    return slots * (4 * ins[0].shape[ins[0].rank - 1] + 8);
  },
  vjp: () => {
    throw new Error("attnReadParts has no gradient: indexedAttentionParts joins its reads into indexedAttentionFused where a gradient is recorded");
  },
});

/** A read for `joinAttentionParts`: an `AttentionPart`, with the mask of the slots that hold a note where that is not exactly index ≥ 0. */
export interface MaskedAttentionPart extends AttentionPart {
  /** 1 where a slot holds a note [...N, P] (absent: where its index is not −1). */
  valid?: Tensor;
}

/**
 * Several reads as one, for `indexedAttentionFused` or `indexedAttention`: the tables side by side
 * (rows; the values are the keys' join where every read's values are its keys), each index offset
 * by the rows before its table, index and valid joined along the slot axis (valid = index ≥ 0 for
 * a read without one). An empty slot's −1 stays −1 where a gradient is recorded (indexedOuter lists
 * the in-range entries) and in a read without a mask of its own; in a read with one, outside a
 * gradient, it becomes the previous table's last row, which its valid 0 masks (a read never looks
 * at a masked slot's row): one launch a read instead of three. One read is returned as it is,
 * with its valid.
 */
export function joinAttentionParts(parts: readonly MaskedAttentionPart[]): { keys: Tensor; values: Tensor; index: Tensor; valid: Tensor } {
  if (parts.length === 0) throw new ShapeError("joinAttentionParts: needs at least one read");
  const validOf = (p: MaskedAttentionPart) => p.valid ?? ge(p.index, 0);
  if (parts.length === 1) return { ...parts[0], valid: validOf(parts[0]) };
  const recorded = isRecording();
  let rows = 0;
  const index: Tensor[] = [], valid: Tensor[] = [];
  for (const p of parts) {
    const v = validOf(p);
    valid.push(v);
    // −1 kept (its own test, or v where v is that test), or the offset alone for a read with its own mask outside a gradient
    const keep = recorded || !p.valid;
    index.push(rows === 0 ? p.index : keep ? where(p.valid ? ge(p.index, 0) : v, add(p.index, rows), -1) : add(p.index, rows));
    rows += p.keys.shape[0];
  }
  const keys = concat(parts.map((p) => p.keys), 0);
  const values = parts.every((p) => p.values === p.keys) ? keys : concat(parts.map((p) => p.values), 0);
  return { keys, values, index: concat(index, -1), valid: concat(valid, -1) };
}

/**
 * The reads of several tables at once: softmax(scale · q·K[idx]ᵀ) V[idx] over the slots of all
 * `parts` together (part 0's slots first), a slot holding a note iff its index is not −1, i.e.
 * `indexedAttentionFused` over `joinAttentionParts(parts)` (the composite's semantics: an empty
 * slot is masked, a position with no note reads 0). That join is what runs where a gradient is
 * recorded, on a backend that prefers the composite (wasm), for more than ATTN_READ_MAX_PARTS
 * reads or rows wider than ATTN_READ_PARTS_MAX_S; elsewhere it is one launch (`attnReadParts`)
 * that reads each table where it lies: no copy of the tables, the indices or a valid mask
 * (MemMamba's cross-layer reads of two pools, and every read of a pool that causalSelect listed).
 * The same numbers as the join, bit for bit on the TypeScript CPU kernels, within f32 rounding on
 * a GPU.
 */
export function indexedAttentionParts(q: Tensor, parts: readonly AttentionPart[], scale?: number): Tensor {
  if (parts.length === 0) throw new ShapeError("indexedAttentionParts: needs at least one read");
  const S = q.shape[q.rank - 1];
  const ins = [q, ...parts.flatMap((p) => [p.keys, p.values, p.index])];
  const fused = attentionTuning.fused && !isRecording() && !getBackend().prefersComposite?.("attnReadParts") && parts.length <= ATTN_READ_MAX_PARTS && S <= ATTN_READ_PARTS_MAX_S;
  if (fused) {
    // shapes the kernel does not take (no slot, S = 0, empty tables) run the join, which handles them
    const takes = S >= 1 && parts.every((p) => p.index.rank >= 1 && p.index.shape[p.index.rank - 1] >= 1 && p.keys.rank === 2 && p.keys.shape[0] >= 1);
    if (takes) return bind("attnReadParts", ins, { scale: scale ?? 1 / Math.sqrt(S) });
  }
  return tidy(() => {
    const j = joinAttentionParts(parts);
    return indexedAttentionFused(q, j.keys, j.values, j.index, j.valid, scale);
  });
}
