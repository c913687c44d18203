/** Index helpers for broadcasting kernels. */
import { stridesOf } from "../shape.ts";

/** Strides of `shape` broadcast to `outShape` (0 on broadcast axes), aligned on the right. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const s = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => (i < off || shape[i - off] === 1 ? 0 : s[i - off]));
}

/**
 * Walks the output in row-major order one innermost row at a time, calling
 * `row(outStart, len, bases, innerStrides)` with each input's offset at the row's start.
 * The callback holds the tight loop, so the per-element cost has no index arithmetic.
 */
export function forEachRow(
  outShape: readonly number[],
  inStrides: number[][],
  row: (outStart: number, len: number, bases: number[], inner: number[]) => void,
): void {
  const r = outShape.length;
  if (r === 0) {
    row(0, 1, inStrides.map(() => 0), inStrides.map(() => 0));
    return;
  }
  const len = outShape[r - 1];
  let rows = 1;
  for (let i = 0; i < r - 1; i++) rows *= outShape[i];
  if (len === 0 || rows === 0) return;
  const inner = inStrides.map((s) => s[r - 1]);
  const idx = new Array<number>(r - 1).fill(0);
  const bases = inStrides.map(() => 0);
  for (let q = 0; q < rows; q++) {
    row(q * len, len, bases, inner);
    for (let ax = r - 2; ax >= 0; ax--) {
      idx[ax]++;
      for (let k = 0; k < bases.length; k++) bases[k] += inStrides[k][ax];
      if (idx[ax] < outShape[ax]) break;
      for (let k = 0; k < bases.length; k++) bases[k] -= inStrides[k][ax] * outShape[ax];
      idx[ax] = 0;
    }
  }
}
