/**
 * CPU kernels of the indexed-attention primitives (ops/attention.ts): dot products with, weighted
 * sums of, and outer-product scatters into the rows of a small table picked by an i32 index.
 * Every sum runs in a fixed order and rounds to f32 after each step, as the matmul and scatterAdd
 * kernels do, so the results equal the composite (gather + matmul, scatterAdd) bit for bit.
 *
 * Index −1 is an empty slot (EMPTY_SLOT): it reads a zero row (indexedDot, indexedSum) and
 * receives nothing (indexedOuter). Any other index outside [0, rows) is an error naming it and
 * its position.
 */
import { showShape } from "../shape.ts";
import type { CpuArg } from "./kernels.ts";

const fround = Math.fround;

/** The index of an empty slot (see the module comment). */
const EMPTY_SLOT = -1;

function badIndex(op: string, r: number, i: number, rows: number, table: readonly number[]): RangeError {
  return new RangeError(`${op}: index ${r} at position ${i} is outside [0, ${rows}) of table ${showShape(table)} (and is not −1, an empty slot)`);
}

/** out[n, p] = x[n, :] · table[idx[n, p], :] (0 for an empty slot). */
export function indexedDotKernel([x, table, idx]: CpuArg[], out: CpuArg): void {
  const I = idx.data, X = x.data, T = table.data, O = out.data;
  const rows = table.shape[0], S = table.shape[1];
  const P = idx.shape[idx.shape.length - 1];
  for (let i = 0; i < I.length; i++) {
    const r = I[i];
    if (r < 0 || r >= rows) {
      if (r !== EMPTY_SLOT) throw badIndex("indexedDot", r, i, rows, table.shape);
      O[i] = 0;
      continue;
    }
    const xo = ((i / P) | 0) * S, to = r * S;
    let acc = 0;
    for (let j = 0; j < S; j++) acc = fround(acc + X[xo + j] * T[to + j]);
    O[i] = acc;
  }
}

/** out[n, :] = Σ_p w[n, p] · table[idx[n, p], :], p in order (empty slots add nothing). */
export function indexedSumKernel([w, table, idx]: CpuArg[], out: CpuArg): void {
  const I = idx.data, W = w.data, T = table.data, O = out.data;
  const rows = table.shape[0], S = table.shape[1];
  const P = idx.shape[idx.shape.length - 1];
  O.fill(0);
  for (let i = 0; i < I.length; i++) {
    const r = I[i];
    if (r < 0 || r >= rows) {
      if (r !== EMPTY_SLOT) throw badIndex("indexedSum", r, i, rows, table.shape);
      continue;
    }
    const oo = ((i / P) | 0) * S, to = r * S, a = W[i];
    for (let j = 0; j < S; j++) O[oo + j] += a * T[to + j];
  }
}

/**
 * out[r, :] = Σ over (n, p) with idx[n, p] = r of w[n, p] · x[n, :], in index order. Each term is
 * rounded to f32 before it is added, as the composite (matmul, then scatterAdd) does. Terms whose
 * weight is exactly 0 are skipped (as on the GPU, whose sum skips them inline): adding them would
 * change nothing but turn an infinite x into NaN. Empty slots (−1) add nothing either.
 */
export function indexedOuterKernel([w, x, idx, w2, x2]: CpuArg[], out: CpuArg): void {
  outerSum(w, x, idx, out);
  if (!w2 || !x2) return;
  // the second pair's sum on its own, then added: add(indexedOuter(w, x), indexedOuter(w2, x2))'s bits
  const second: CpuArg = { data: new Float32Array(out.data.length), shape: out.shape };
  outerSum(w2, x2, idx, second);
  const O = out.data, O2 = second.data;
  for (let i = 0; i < O.length; i++) O[i] += O2[i];
}

function outerSum(w: CpuArg, x: CpuArg, idx: CpuArg, out: CpuArg): void {
  const I = idx.data, W = w.data, X = x.data, O = out.data;
  const rows = out.shape[0], S = out.shape[1];
  const P = idx.shape[idx.shape.length - 1];
  O.fill(0);
  for (let i = 0; i < I.length; i++) {
    const r = I[i];
    if (r < 0 || r >= rows) {
      if (r !== EMPTY_SLOT) throw badIndex("indexedOuter", r, i, rows, out.shape);
      continue;
    }
    const a = W[i];
    if (a === 0) continue;
    const xo = ((i / P) | 0) * S, oo = r * S;
    for (let j = 0; j < S; j++) O[oo + j] += fround(a * X[xo + j]);
  }
}
