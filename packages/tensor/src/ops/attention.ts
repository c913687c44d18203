/**
 * Indexed attention: softmax(q · K[idx]ᵀ · scale, masked) · V[idx] for each position, read straight
 * from small key and value tables through a slot index, without materialising the gathered
 * keys and values ([..., P, S] per position) in the forward or the backward pass.
 *
 * Three linear primitives do the indexed work; each one's VJP is written with the other two, so
 * the set is closed under differentiation (gradients of gradients work) and no primitive ever
 * produces more than [..., P] or [M, S] elements:
 *
 *   indexedDot(x, T, idx)[n, p]   = x[n] · T[idx[n, p]]                       [..., P]
 *   indexedSum(w, T, idx)[n]      = Σ_p w[n, p] · T[idx[n, p]]                 [..., S]
 *   indexedOuter(w, x, idx)[r]    = Σ_{(n, p): idx[n, p] = r} w[n, p] · x[n]   [M, S]
 *
 * d indexedDot:   dx = indexedSum(g, T),  dT = indexedOuter(g, x)
 * d indexedSum:   dw = indexedDot(g, T),  dT = indexedOuter(w, g)
 * d indexedOuter: dw = indexedDot(x, G),  dx = indexedSum(w, G)
 *
 * The masked softmax between them runs on [..., P] tensors: one `maskedSoftmax` row pass (and one
 * for its VJP), or where the backend prefers composites the ordinary ops (mul, where, softmax,
 * mul), which give the same bits.
 *
 * Index −1 marks an empty slot on every backend: it reads a zero row (indexedDot gives 0,
 * indexedSum adds nothing) and receives nothing (indexedOuter), so the VJPs above hold for it
 * too. Callers with padding slots should use −1 rather than a real row with weight 0: the GPU's
 * indexedOuter builds one inverse index per index tensor and shares it between the two calls of
 * an attention's backward (dK and dV), listing every in-range entry whatever its weight, so
 * thousands of padding entries on row 0 would cost it time (see webgpu/kernels/indexed.ts).
 */
import { bind, definePrimitive } from "../dispatch.ts";
import { getBackend } from "../engine.ts";
import { sameShape, ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { mul, where, zeros } from "./elementwise.ts";
import { maskedSoftmax, softmax } from "./nn.ts";

/** The leading (position) axes of x [...N, S] and idx [...N, P] must agree. */
function samePositions(op: string, what: string, x: Tensor, idx: Tensor): void {
  if (x.rank !== idx.rank || !sameShape(x.shape.slice(0, -1), idx.shape.slice(0, -1))) {
    throw new ShapeError(`${op}: ${what} ${showShape(x.shape)} and index ${showShape(idx.shape)} must share their leading axes ([...N, S] and [...N, P])`);
  }
}

function checkIndex(op: string, idx: Tensor): void {
  if (idx.dtype !== "i32") throw new ShapeError(`${op}: index must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
  if (idx.rank < 1) throw new ShapeError(`${op}: index must have rank >= 1 ([...N, P]), got ${showShape(idx.shape)}`);
}

function checkF32(op: string, ...xs: [string, Tensor][]): void {
  for (const [what, x] of xs) if (x.dtype !== "f32") throw new ShapeError(`${op}: ${what} must be f32, got ${x.dtype} ${showShape(x.shape)}`);
}

/** x [...N, S] against table [M, S]. */
function checkTable(op: string, x: Tensor, table: Tensor, xName: string): void {
  if (table.rank !== 2 || x.rank < 1 || table.shape[1] !== x.shape[x.rank - 1]) {
    throw new ShapeError(`${op}: table ${showShape(table.shape)} must be [M, S] with S the last axis of ${xName} ${showShape(x.shape)}`);
  }
}

definePrimitive("indexedDot", {
  shape: ([x, table, idx]) => {
    checkIndex("indexedDot", idx);
    checkF32("indexedDot", ["x", x], ["table", table]);
    samePositions("indexedDot", "x", x, idx);
    checkTable("indexedDot", x, table, "x");
    return { shape: [...idx.shape], dtype: "f32" };
  },
  flops: ([x, , idx]) => 2 * idx.size * x.shape[x.rank - 1],
  vjp: (g, [x, table, idx], _y, _p, needs) => [
    needs?.[0] === false ? null : indexedSum(g, table, idx),
    needs?.[1] === false ? null : indexedOuter(g, x, idx, table.shape[0]),
    null,
  ],
});

definePrimitive("indexedSum", {
  shape: ([w, table, idx]) => {
    checkIndex("indexedSum", idx);
    checkF32("indexedSum", ["weights", w], ["table", table]);
    if (!sameShape(w.shape, idx.shape)) throw new ShapeError(`indexedSum: weights ${showShape(w.shape)} and index ${showShape(idx.shape)} must have the same shape`);
    if (table.rank !== 2) throw new ShapeError(`indexedSum: table must be [M, S], got ${showShape(table.shape)}`);
    return { shape: [...idx.shape.slice(0, -1), table.shape[1]], dtype: "f32" };
  },
  flops: ([, table, idx]) => 2 * idx.size * table.shape[1],
  vjp: (g, [w, table, idx], _y, _p, needs) => [
    needs?.[0] === false ? null : indexedDot(g, table, idx),
    needs?.[1] === false ? null : indexedOuter(w, g, idx, table.shape[0]),
    null,
  ],
});

definePrimitive("indexedOuter", {
  // inputs [w, x, idx] or, with a second pair of the same shapes over the same index, [w, x, idx, w2, x2]
  shape: (ins, { rows }) => {
    if (ins.length !== 3 && ins.length !== 5) throw new ShapeError(`indexedOuter: expected 3 inputs (weights, x, index) or 5 (and a second weights, x), got ${ins.length}`);
    const [w, x, idx, w2, x2] = ins;
    checkIndex("indexedOuter", idx);
    checkF32("indexedOuter", ["weights", w], ["x", x]);
    if (!sameShape(w.shape, idx.shape)) throw new ShapeError(`indexedOuter: weights ${showShape(w.shape)} and index ${showShape(idx.shape)} must have the same shape`);
    samePositions("indexedOuter", "x", x, idx);
    if (w2 && x2) {
      checkF32("indexedOuter", ["second weights", w2], ["second x", x2]);
      if (!sameShape(w2.shape, w.shape) || !sameShape(x2.shape, x.shape)) {
        throw new ShapeError(`indexedOuter: the second pair ${showShape(w2.shape)}, ${showShape(x2.shape)} must have the first's shapes ${showShape(w.shape)}, ${showShape(x.shape)}`);
      }
    }
    if (!Number.isSafeInteger(rows) || rows < 0) throw new ShapeError(`indexedOuter: rows must be a natural number, got ${rows}`);
    return { shape: [rows, x.shape[x.rank - 1]], dtype: "f32" };
  },
  flops: (ins) => (ins.length === 5 ? 4 : 2) * ins[2].size * ins[1].shape[ins[1].rank - 1],
  vjp: (g, [w, x, idx, w2, x2]) => {
    const first = [indexedDot(x, g, idx), indexedSum(w, g, idx), null];
    return w2 && x2 ? [...first, indexedDot(x2, g, idx), indexedSum(w2, g, idx)] : first;
  },
});

/**
 * out[..., p] = x[..., :] · table[index[..., p], :]: x [...N, S], table [M, S], index i32
 * [...N, P] → [...N, P]. Index −1 is an empty slot: out is 0 there. Any other index outside
 * [0, M) is an error naming it and its position (on the GPU, which cannot throw, it reads a zero
 * row as −1 does).
 */
export function indexedDot(x: Tensor, table: Tensor, index: Tensor): Tensor {
  return bind("indexedDot", [x, table, index], {});
}

/**
 * out[..., :] = Σ_p weights[..., p] · table[index[..., p], :]: weights [...N, P], table [M, S],
 * index i32 [...N, P] → [...N, S]. Index −1 is an empty slot (it adds nothing); other
 * out-of-range indices as in `indexedDot`.
 */
export function indexedSum(weights: Tensor, table: Tensor, index: Tensor): Tensor {
  return bind("indexedSum", [weights, table, index], {});
}

/**
 * out[r, :] = Σ over the (n, p) with index[n, p] = r of weights[n, p] · x[n, :]: weights and index
 * [...N, P], x [...N, S] → [rows, S] (the gradient of a table read by `indexedDot` or
 * `indexedSum`). Each row adds its terms in index order, on every backend; terms whose weight is
 * exactly 0 are skipped (they add nothing, even where x is not finite). Index −1 is an empty slot:
 * its term is dropped. Other out-of-range indices: an error on the CPU, dropped on the GPU.
 *
 * `second` [w2, x2] (the shapes of weights and x) adds indexedOuter(w2, x2, index, rows) in the
 * same launch: the gradient of a table that an attention reads as both its keys and its values
 * (attnRead's VJP), one scatter over the index instead of two and their sum. The CPU adds the two
 * sums as add(indexedOuter(w, x), indexedOuter(w2, x2)) would (the same bits); the GPU adds each
 * chunk's w2 · x2 terms after its w · x terms (equal within f32 rounding).
 */
export function indexedOuter(weights: Tensor, x: Tensor, index: Tensor, rows: number, second?: readonly [Tensor, Tensor]): Tensor {
  return bind("indexedOuter", second ? [weights, x, index, second[0], second[1]] : [weights, x, index], { rows });
}

/** What `indexedAttention` returns. */
export interface IndexedAttention {
  /** The read: softmax-weighted values [...N, S] (0 where no slot is valid). */
  out: Tensor;
  /** The attention weights [...N, P]: 0 on invalid slots, a row sums to 1 where any slot is valid. */
  weights: Tensor;
}

/**
 * Attention of each position's query over a few slots picked from shared tables:
 *
 *   weights[n] = softmax(where(valid[n], scale · q[n] · keys[index[n]]ᵀ, −1e9)) ⊙ valid[n]
 *   out[n]     = weights[n] · values[index[n]]
 *
 * q [...N, S]; keys and values [M, S] (e.g. a table already projected by W_k and W_v); index i32
 * [...N, P], rows of the tables, −1 for an empty slot (give such a slot valid 0 too: the index
 * only picks rows, `valid` masks the softmax); valid [...N, P] (1/0, f32). `scale` defaults to
 * 1/√S. A position with no valid slot gets zero weights and reads 0, never NaN. `valid` is a mask,
 * not to be differentiated: the fused path gives it no gradient (see `maskedSoftmax`). Several groups
 * of slots that share one softmax are one call: concatenate their tables along rows, offset each
 * group's indices by its table's first row (keeping −1 where a slot is empty), and concatenate
 * index and valid along the last axis.
 *
 * Nothing of size [...N, P, S] is materialised, in the forward or the backward pass: the gathers
 * live inside the three indexed primitives (see the module comment).
 */
export function indexedAttention(q: Tensor, keys: Tensor, values: Tensor, index: Tensor, valid: Tensor, scale?: number): IndexedAttention {
  const S = q.shape[q.rank - 1];
  if (valid.dtype !== "f32" || !sameShape(valid.shape, index.shape)) {
    throw new ShapeError(`indexedAttention: valid ${valid.dtype} ${showShape(valid.shape)} must be f32 with the index's shape ${showShape(index.shape)}`);
  }
  if (!sameShape(keys.shape, values.shape)) {
    throw new ShapeError(`indexedAttention: keys ${showShape(keys.shape)} and values ${showShape(values.shape)} must be the same [M, S] tables`);
  }
  const s = scale ?? 1 / Math.sqrt(S);
  const dots = indexedDot(q, keys, index); // checks q, keys and index against each other
  if (index.shape[index.rank - 1] === 0) {
    // no slot at all: nothing to attend to (softmax over an empty axis is undefined), a zero read
    const weights = zeros([...index.shape]);
    return { out: indexedSum(weights, values, index), weights };
  }
  // scale, mask, softmax, re-mask: one row pass forward and one backward (maskedSoftmax), or the
  // four ops it fuses (the reference, with the same f32 rounding) where the backend prefers them
  const weights = getBackend().prefersComposite?.("maskedSoftmax")
    ? mul(softmax(where(valid, mul(dots, s), -1e9)), valid)
    : maskedSoftmax(dots, valid, s);
  return { out: indexedSum(weights, values, index), weights };
}
