/** Movement kernels: transpose, slice, pad, concat (all produce contiguous outputs). */
import type { PrimParams } from "../backend.ts";
import { stridesOf } from "../shape.ts";
import type { CpuArg } from "./kernels.ts";
import { forEachRow } from "./strided.ts";

export function transposeKernel([x]: CpuArg[], out: CpuArg, p: PrimParams["transpose"]): void {
  const xs = stridesOf(x.shape);
  const X = x.data, O = out.data;
  forEachRow(out.shape, [p.perm.map((a) => xs[a])], (o0, len, [b], [s]) => {
    for (let j = 0; j < len; j++) O[o0 + j] = X[b + j * s];
  });
}

export function sliceKernel([x]: CpuArg[], out: CpuArg, p: PrimParams["slice"]): void {
  const xs = stridesOf(x.shape);
  let start = 0;
  for (let i = 0; i < xs.length; i++) start += p.starts[i] * xs[i];
  const X = x.data, O = out.data;
  forEachRow(out.shape, [xs], (o0, len, [b]) => {
    O.set(X.subarray(start + b, start + b + len), o0);
  });
}

export function padKernel([x]: CpuArg[], out: CpuArg, p: PrimParams["pad"]): void {
  const O = out.data, X = x.data;
  O.fill(p.value);
  if (X.length === 0) return;
  const os = stridesOf(out.shape);
  let start = 0;
  for (let i = 0; i < os.length; i++) start += p.before[i] * os[i];
  forEachRow(x.shape, [os], (x0, len, [b]) => {
    O.set(X.subarray(x0, x0 + len), start + b);
  });
}

export function concatKernel(xs: CpuArg[], out: CpuArg, p: PrimParams["concat"]): void {
  const O = out.data;
  const ax = p.axis;
  let outer = 1;
  for (let i = 0; i < ax; i++) outer *= out.shape[i];
  let innerOut = 1;
  for (let i = ax; i < out.shape.length; i++) innerOut *= out.shape[i];
  let off = 0;
  for (const x of xs) {
    let inner = 1;
    for (let i = ax; i < x.shape.length; i++) inner *= x.shape[i];
    for (let o = 0; o < outer; o++) O.set(x.data.subarray(o * inner, (o + 1) * inner), o * innerOut + off);
    off += inner;
  }
}
