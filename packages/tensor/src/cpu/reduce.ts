/** Reduction kernels (sum, max) over any set of axes, accumulating in float64 in a fixed order. */
import type { PrimParams } from "../backend.ts";
import { stridesOf } from "../shape.ts";
import type { CpuArg } from "./kernels.ts";
import { forEachRow } from "./strided.ts";

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
      let acc = isMax ? -Infinity : 0;
      if (isMax) {
        for (let j = 0; j < block; j++) {
          const v = X[base + j];
          if (v > acc || v !== v) acc = v;
          if (acc !== acc) break;
        }
      } else for (let j = 0; j < block; j++) acc += X[base + j];
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
