/** Index primitives: gather (embedding lookup), its adjoint scatterAdd, and oneHot. */
import { bind, definePrimitive } from "../dispatch.ts";
import { ShapeError, showShape } from "../shape.ts";
import type { Tensor } from "../tensor.ts";

definePrimitive("gather", {
  shape: ([table, idx]) => {
    if (idx.dtype !== "i32") throw new ShapeError(`gather: indices must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
    if (table.rank < 1) throw new ShapeError(`gather: table must have rank >= 1, got ${showShape(table.shape)}`);
    return { shape: [...idx.shape, ...table.shape.slice(1)], dtype: table.dtype };
  },
  flops: () => 0,
  vjp: (g, [table, idx]) => [scatterAdd(idx, g, table.shape[0]), null],
});

definePrimitive("scatterAdd", {
  shape: ([idx, upd], p) => {
    const rows = p.rows;
    if (idx.dtype !== "i32") throw new ShapeError(`scatterAdd: indices must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
    const ok = upd.rank >= idx.rank && idx.shape.every((d, i) => upd.shape[i] === d);
    if (!ok) throw new ShapeError(`scatterAdd: updates ${showShape(upd.shape)} do not start with the index shape ${showShape(idx.shape)}`);
    return { shape: [rows, ...upd.shape.slice(idx.rank)], dtype: "f32" };
  },
  vjp: (g, [idx]) => [null, gather(g, idx)],
});

definePrimitive("oneHot", {
  shape: ([idx], { depth }) => {
    if (idx.dtype !== "i32") throw new ShapeError(`oneHot: indices must be i32, got ${idx.dtype} ${showShape(idx.shape)}`);
    if (!Number.isSafeInteger(depth) || depth < 1) {
      throw new ShapeError(`oneHot: depth must be a positive integer, got ${depth} (indices ${showShape(idx.shape)})`);
    }
    return { shape: [...idx.shape, depth], dtype: "f32" };
  },
  vjp: () => [null],
});

/**
 * Rows of `table` picked by integer `indices`: out[...i, ...] = table[indices[...i], ...]
 * (an embedding lookup). An index outside [0, rows) is an error naming it and its position.
 */
export function gather(table: Tensor, indices: Tensor): Tensor {
  return bind("gather", [table, indices], {});
}

/** out[r] = Σ updates[i] over positions i whose index is r: the adjoint of gather. */
export function scatterAdd(indices: Tensor, updates: Tensor, rows: number): Tensor {
  return bind("scatterAdd", [indices, updates], { rows });
}

/** One-hot encoding (f32) of integer indices (depth: a positive integer); indices outside [0, depth) give a zero row. */
export function oneHot(indices: Tensor, depth: number): Tensor {
  return bind("oneHot", [indices], { depth });
}

definePrimitive("causalSelect", {
  shape: ([mask, score], { k }) => {
    if (mask.rank !== 2 || score.rank !== 2 || mask.shape[0] !== score.shape[0] || mask.shape[1] !== score.shape[1]) {
      throw new ShapeError(`causalSelect: mask ${showShape(mask.shape)} and score ${showShape(score.shape)} must both be [B, L]`);
    }
    if (!Number.isInteger(k) || k < 0) throw new ShapeError(`causalSelect: k must be a natural number, got ${k}`);
    return { shape: [mask.shape[0], mask.shape[1], k], dtype: "i32" };
  },
  flops: ([mask], _o, { k }) => mask.size * k,
  vjp: () => [null, null],
});

definePrimitive("causalEntered", {
  shape: ([pos], { start, count }) => {
    if (pos.dtype !== "i32" || pos.rank !== 3) throw new ShapeError(`causalEntered: positions must be i32 [B, N, k] (causalSelect's), got ${pos.dtype} ${showShape(pos.shape)}`);
    const N = pos.shape[1];
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || (count > 0 && start + count > N)) {
      throw new ShapeError(`causalEntered: rows start ${start} … start + count ${start + count} must lie in [0, ${N}] (count ${count}, positions ${showShape(pos.shape)})`);
    }
    return { shape: [pos.shape[0], count], dtype: "f32" };
  },
  flops: ([pos], _o, { count }) => 2 * pos.shape[0] * count * pos.shape[2],
  vjp: () => [null],
});

/**
 * Of causalSelect's positions [B, N, k] (increasing, −1 in empty slots): 1 where the memory after
 * row start + t + 1 holds a newer position than after row start + t, else 0, for t < count → f32
 * [B, count]. With the rows of a sequence, that is where position start + t entered the memory
 * (what `selectNotes` needs to project only the notes some memory ever holds). start + count may
 * reach N: the row past the end holds nothing (−1), so the last comparison then gives 0. One
 * launch for the composite gt(slice(max(cast(pos)), …), slice(max(cast(pos)), …)). No gradient.
 */
export function causalEntered(positions: Tensor, start: number, count: number): Tensor {
  return bind("causalEntered", [positions], { start, count });
}

/**
 * For each position t of each row, the positions j < t where `mask` is nonzero that a bounded
 * memory of `k` slots would hold at t: the k most recent (`"last"`, FIFO) or the k with the
 * highest `score` (`"top"`: the lowest is evicted, a newcomer included; among equal scores the oldest).
 * mask, score [B, L] → i32 [B, L, k], positions increasing, −1 in unused slots. No gradient.
 */
export function causalSelect(mask: Tensor, score: Tensor, k: number, mode: "last" | "top" = "last"): Tensor {
  return bind("causalSelect", [mask, score], { k, mode });
}
