/** Reduction kernels (sum, max) over any set of axes, accumulating in float64 in a fixed order. */
import type { PrimParams } from "../backend.ts";
import { stridesOf } from "../shape.ts";
import type { CpuArg } from "./kernels.ts";
import { forEachRow } from "./strided.ts";

/** The max of a[at … at + n) as the max reduction takes it: from −∞, the first of equal values stays, a NaN wins. */
export function maxRun(a: ArrayLike<number>, at: number, n: number): number {
  let acc = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = a[at + j];
    if (v > acc || v !== v) acc = v;
    if (acc !== acc) break;
  }
  return acc;
}

export function reduceKernel([x]: CpuArg[], out: CpuArg, p: PrimParams["reduce"]): void {
  const X = x.data, O = out.data;
  const isMax = p.op === "max";
  const rank = x.shape.length;
  // fast path: the reduced axes are exactly the trailing ones -> contiguous blocks
  const trailing = p.axes.length > 0 && p.axes.every((a, i) => a === rank - p.axes.length + i);
  if (trailing) {
    const block = O.length === 0 ? 0 : X.length / O.length;
    for (let o = 0; o < O.length; o++) {
      const base = o * block;
      let acc = 0;
      if (isMax) acc = maxRun(X, base, block);
      else for (let j = 0; j < block; j++) acc += X[base + j];
      O[o] = acc;
    }
    return;
  }
  // general path: walk the input row by row; each element lands in its output slot
  const outStr = stridesOf(out.shape).map((s, i) => (p.axes.includes(i) ? 0 : s));
  const acc = new Float64Array(O.length).fill(isMax ? -Infinity : 0);
  forEachRow(x.shape, [stridesOf(x.shape), outStr], (_i0, len, [bx, bo], [sx, so]) => {
    if (isMax) {
      for (let j = 0; j < len; j++) {
        const v = X[bx + j * sx], k = bo + j * so;
        if (v > acc[k] || v !== v) acc[k] = v;
      }
    } else for (let j = 0; j < len; j++) acc[bo + j * so] += X[bx + j * sx];
  });
  O.set(acc);
}

/**
 * maxGrad, the VJP of a max reduction: out = (g + 0) · ([x = y] / ties in the group), with the
 * composite's f32 rounding at each step (count as an f32 sum of the mask, mask / count rounded,
 * then the product rounded: an f32 product is exact in float64, so storing it rounds once).
 * `g + 0` is the composite's broadcast (an add of zeros), which turns −0 into +0; where every
 * reduced axis has size 1 g already has x's shape, the broadcast is skipped and −0 stays. A NaN
 * max has no tie (NaN ≠ NaN): count 0, 0 / 0 = NaN over its group, as in the composite.
 */
export function maxGradKernel([x, y, g]: CpuArg[], out: CpuArg, p: PrimParams["maxGrad"]): void {
  const X = x.data, Y = y.data, G = g.data, O = out.data;
  if (O.length === 0) return;
  const rank = x.shape.length;
  const z = X.length === Y.length ? -0 : 0; // g + z: the broadcast's add of zeros, or none (−0 + −0 = −0)
  const trailing = p.axes.every((a) => a >= rank - p.axes.length);
  if (trailing && p.axes.length > 0 && new Set(p.axes).size === p.axes.length) {
    // the reduced axes are exactly the trailing ones: contiguous groups of `block` elements
    const block = X.length / Y.length;
    for (let o = 0; o < Y.length; o++) {
      const base = o * block, yv = Y[o];
      let count = 0;
      for (let j = 0; j < block; j++) if (X[base + j] === yv) count++;
      const gv = G[o] + z, c = Math.fround(count);
      for (let j = 0; j < block; j++) O[base + j] = gv * Math.fround((X[base + j] === yv ? 1 : 0) / c);
    }
    return;
  }
  // general: y's (and g's) element of each x element, the reduced axes at stride 0
  const yStr = stridesOf(y.shape).map((s, i) => (p.axes.includes(i) ? 0 : s));
  const xStr = stridesOf(x.shape);
  const count = new Float64Array(Y.length);
  forEachRow(x.shape, [xStr, yStr], (_i0, len, [bx, by], [sx, sy]) => {
    for (let j = 0; j < len; j++) if (X[bx + j * sx] === Y[by + j * sy]) count[by + j * sy]++;
  });
  forEachRow(x.shape, [xStr, yStr], (i0, len, [bx, by], [sx, sy]) => {
    for (let j = 0; j < len; j++) {
      const k = by + j * sy;
      O[i0 + j] = (G[k] + z) * Math.fround((X[bx + j * sx] === Y[k] ? 1 : 0) / Math.fround(count[k]));
    }
  });
}
