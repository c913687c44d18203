/** Elementwise CPU kernels. Transcendentals come from detmath (bit-identical across runtimes). */
import type { BinaryOp, CompareOp, MultiPrimParams, PrimParams, UnaryOp } from "../backend.ts";
import { sameShape } from "../shape.ts";
import * as dm from "./detmath.ts";
import type { CpuArg } from "./kernels.ts";
import { broadcastStrides, forEachRow } from "./strided.ts";

export function fillKernel(_ins: CpuArg[], out: CpuArg, p: PrimParams["fill"]): void {
  out.data.fill(p.value);
}

/** silu as the unary kernel takes it: z · sigmoid(z) in float64 (rounded once, by the store). */
export const siluF64 = (x: number): number => x * dm.sigmoid(x);

const unaryFns: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: dm.exp,
  log: dm.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: dm.tanh,
  sigmoid: dm.sigmoid,
  silu: siluF64,
  softplus: dm.softplus,
  abs: Math.abs,
  relu: (x) => (x > 0 ? x : 0),
  sin: dm.sin,
  cos: dm.cos,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN),
};

/**
 * f′ for unaryGrad (x, and y = f(x) as the forward rounded it to f32), the formulas of the
 * composite VJPs in ops/elementwise.ts evaluated in float64 and rounded once.
 */
const unaryDerivs: Partial<Record<UnaryOp, (x: number, y: number) => number>> = {
  sqrt: (_x, y) => 0.5 / y,
  rsqrt: (x, y) => -0.5 * (y / x),
  tanh: (_x, y) => 1 - y * y,
  sigmoid: (_x, y) => y * (1 - y),
  silu: (x) => {
    const s = dm.sigmoid(x);
    return s * (1 + x * (1 - s));
  },
  softplus: (x) => dm.sigmoid(x),
  abs: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN),
  relu: (x) => (x > 0 ? 1 : 0),
  sin: (x) => dm.cos(x),
  cos: (x) => -dm.sin(x),
  square: (x) => 2 * x,
  reciprocal: (_x, y) => -(y * y),
};

export function unaryGradKernel([g, x, y]: CpuArg[], out: CpuArg, p: PrimParams["unaryGrad"]): void {
  const d = unaryDerivs[p.op];
  if (!d) throw new Error(`unaryGrad: no fused derivative for ${p.op}`);
  const G = g.data, X = x.data, Y = y.data, o = out.data;
  for (let i = 0; i < o.length; i++) o[i] = G[i] * d(X[i], Y[i]);
}

export function unaryKernel([x]: CpuArg[], out: CpuArg, p: PrimParams["unary"]): void {
  const f = unaryFns[p.op];
  const a = x.data, o = out.data;
  for (let i = 0; i < o.length; i++) o[i] = f(a[i]);
}

// Integer binary ops wrap like C's int32 (add/sub/mul) and truncate (div).
const binaryFns: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => dmPow(a, b),
  max: (a, b) => (a > b || a !== a ? a : b),
  min: (a, b) => (a < b || a !== a ? a : b),
};

/** a^b from exp and log, with exact handling of integer exponents of negative bases. */
function dmPow(a: number, b: number): number {
  if (b === 0) return 1;
  if (b === 1) return a;
  if (b === 2) return a * a;
  if (b === 0.5) return Math.sqrt(a);
  if (a > 0) return dm.exp(b * dm.log(a));
  if (a === 0) return b > 0 ? 0 : Infinity;
  if (Number.isInteger(b)) {
    const m = dm.exp(b * dm.log(-a));
    return b % 2 === 0 ? m : -m;
  }
  return NaN;
}

function broadcastBinary(a: CpuArg, b: CpuArg, out: CpuArg, f: (x: number, y: number) => number): void {
  const A = a.data, B = b.data, O = out.data;
  if (sameShape(a.shape, b.shape)) {
    for (let i = 0; i < O.length; i++) O[i] = f(A[i], B[i]);
    return;
  }
  if (B.length === 1) {
    const y = B[0];
    if (A.length === O.length) {
      for (let i = 0; i < O.length; i++) O[i] = f(A[i], y);
      return;
    }
  }
  if (A.length === 1 && B.length === O.length) {
    const x = A[0];
    for (let i = 0; i < O.length; i++) O[i] = f(x, B[i]);
    return;
  }
  forEachRow(out.shape, [broadcastStrides(a.shape, out.shape), broadcastStrides(b.shape, out.shape)], (o0, len, [ba, bb], [sa, sb]) => {
    for (let j = 0; j < len; j++) O[o0 + j] = f(A[ba + j * sa], B[bb + j * sb]);
  });
}

export function binaryKernel([a, b]: CpuArg[], out: CpuArg, p: PrimParams["binary"]): void {
  let f = binaryFns[p.op];
  if (out.data instanceof Int32Array) {
    const g = f;
    f = p.op === "mul" ? Math.imul : p.op === "div" ? (x, y) => Math.trunc(x / y) : (x, y) => g(x, y) | 0;
  }
  broadcastBinary(a, b, out, f);
}

/** addN: the inputs (one shape, f32) added in order, rounded to f32 after each add as a chain of binary adds is. */
export function addNKernel(ins: CpuArg[], out: CpuArg): void {
  const O = out.data, n = O.length, first = ins[0].data;
  for (let i = 0; i < n; i++) {
    let acc = first[i];
    for (let k = 1; k < ins.length; k++) acc = Math.fround(acc + ins[k].data[i]);
    O[i] = acc;
  }
}

const compareFns: Record<CompareOp, (a: number, b: number) => number> = {
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

export function compareKernel([a, b]: CpuArg[], out: CpuArg, p: PrimParams["compare"]): void {
  broadcastBinary(a, b, out, compareFns[p.op]);
}

export function whereKernel([c, a, b]: CpuArg[], out: CpuArg): void {
  const C = c.data, A = a.data, B = b.data, O = out.data, n = O.length;
  // operands of the output's size (its shape, up to leading 1s) or of one value: one flat loop
  // (a masked softmax's where(valid, logits, −1e9), an index's where(valid, rows, −1)); the row
  // walk below costs a callback and its destructuring per row
  const full = (x: ArrayLike<number>) => x.length === n;
  if ((full(C) || C.length === 1) && (full(A) || A.length === 1) && (full(B) || B.length === 1)) {
    if (full(C) && full(A) && full(B)) {
      for (let i = 0; i < n; i++) O[i] = C[i] !== 0 ? A[i] : B[i];
    } else if (full(C) && full(A)) {
      const b0 = B[0];
      for (let i = 0; i < n; i++) O[i] = C[i] !== 0 ? A[i] : b0;
    } else if (full(C) && full(B)) {
      const a0 = A[0];
      for (let i = 0; i < n; i++) O[i] = C[i] !== 0 ? a0 : B[i];
    } else {
      const c0 = C[0], a0 = A[0], b0 = B[0];
      for (let i = 0; i < n; i++) O[i] = (C.length === 1 ? c0 : C[i]) !== 0 ? (A.length === 1 ? a0 : A[i]) : (B.length === 1 ? b0 : B[i]);
    }
    return;
  }
  const st = [c, a, b].map((x) => broadcastStrides(x.shape, out.shape));
  forEachRow(out.shape, st, (o0, len, [bc, ba, bb], [sc, sa, sb]) => {
    for (let j = 0; j < len; j++) O[o0 + j] = C[bc + j * sc] !== 0 ? A[ba + j * sa] : B[bb + j * sb];
  });
}

export function castKernel([x]: CpuArg[], out: CpuArg): void {
  const X = x.data, O = out.data;
  if (O instanceof Int32Array) for (let i = 0; i < O.length; i++) O[i] = Math.trunc(X[i]);
  else O.set(X);
}

/**
 * The fused AdamW parts (see PrimParams["adamw"]): every intermediate is rounded to f32 exactly
 * where the unfused ops (mul, add, square, sqrt, div, sub on f32 tensors) would round it, so the
 * fused update gives the same bits as the composite one.
 */
export function adamwKernel(ins: CpuArg[], out: CpuArg, p: PrimParams["adamw"]): void {
  const f = Math.fround;
  const a = f(p.a), b = f(p.b), c = f(p.c), d = f(p.d);
  const o = out.data, n = o.length;
  if (p.part !== "p" && ins.length === 3) {
    // g·s rounded first, as the clip's separate multiply would round it
    const x = ins[0].data, g = ins[1].data, s = ins[2].data[0];
    if (p.part === "m") for (let i = 0; i < n; i++) o[i] = f(x[i] * a) + f(f(g[i] * s) * b);
    else {
      for (let i = 0; i < n; i++) {
        const gs = f(g[i] * s);
        o[i] = f(x[i] * a) + f(f(gs * gs) * b);
      }
    }
  } else if (p.part === "m") {
    const m = ins[0].data, g = ins[1].data;
    for (let i = 0; i < n; i++) o[i] = f(m[i] * a) + f(g[i] * b);
  } else if (p.part === "v") {
    const v = ins[0].data, g = ins[1].data;
    for (let i = 0; i < n; i++) o[i] = f(v[i] * a) + f(f(g[i] * g[i]) * b);
  } else {
    const w = ins[0].data, m = ins[1].data, v = ins[2].data;
    for (let i = 0; i < n; i++) {
      const p0 = p.decay ? f(w[i] * a) : w[i];
      const denom = f(f(f(Math.sqrt(v[i])) / b) + c);
      o[i] = p0 - f(f(m[i] / denom) * d);
    }
  }
}

/**
 * A whole AdamW step (MultiPrimParams["adamwStep"]): inputs p, g, m, v (, s), outputs p', m', v',
 * rounded exactly as adamwKernel's parts m, v and p one after the other.
 */
export function adamwStepKernel(ins: CpuArg[], outs: CpuArg[], q: MultiPrimParams["adamwStep"]): void {
  const f = Math.fround;
  const a1 = f(q.a1), b1 = f(q.b1), a2 = f(q.a2), b2 = f(q.b2), dc = f(q.decay), sb = f(q.sqrtBc2), eps = f(q.eps), st = f(q.stepSize);
  const w = ins[0].data, g = ins[1].data, m = ins[2].data, v = ins[3].data;
  const s = ins.length > 4 ? ins[4].data[0] : 1;
  const scaled = ins.length > 4;
  const po = outs[0].data, mo = outs[1].data, vo = outs[2].data, n = po.length;
  for (let i = 0; i < n; i++) {
    const gi = scaled ? f(g[i] * s) : g[i];
    const m1 = f(m[i] * a1) + f(gi * b1);
    const v1 = f(v[i] * a2) + f(f(gi * gi) * b2);
    mo[i] = m1;
    vo[i] = v1;
    const p0 = q.decays ? f(w[i] * dc) : w[i];
    const denom = f(f(f(Math.sqrt(Math.fround(v1))) / sb) + eps);
    po[i] = p0 - f(f(Math.fround(m1) / denom) * st);
  }
}

/**
 * AdamW over many parameters (MultiPrimParams["adamwGroup"]): adamwStepKernel on each, its
 * gradient the next slice of the concatenated g.
 */
export function adamwGroupKernel(ins: CpuArg[], outs: CpuArg[], q: MultiPrimParams["adamwGroup"]): void {
  const n = q.decays.length;
  if (outs.length !== 3 * n || (ins.length !== 3 * n + 1 && ins.length !== 3 * n + 2)) {
    throw new Error(`adamwGroup: ${n} parameters need 3n + 1 (or + 2) inputs and 3n outputs, got ${ins.length} and ${outs.length}`);
  }
  const g = ins[3 * n].data;
  const scale = ins.length > 3 * n + 1 ? [ins[3 * n + 1]] : [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const size = outs[i].data.length;
    const gi: CpuArg = { data: g.subarray(off, off + size), shape: [size] };
    off += size;
    adamwStepKernel([ins[i], gi, ins[n + i], ins[2 * n + i], ...scale], [outs[i], outs[n + i], outs[2 * n + i]], { ...q, decays: q.decays[i] });
  }
  if (off !== g.length) throw new Error(`adamwGroup: the concatenated gradient has ${g.length} elements, the parameters ${off}`);
}

/**
 * (y + u ⊙ D) ⊙ silu(z) (ssmGate): y, u, z [..., Di], D [Di]. Each step rounded to f32 as the mul,
 * add, silu and mul kernels round it (silu as the unary kernel: siluF64, once).
 */
export function ssmGateKernel([y, u, d, z]: CpuArg[], out: CpuArg): void {
  const Y = y.data, U = u.data, D = d.data, Z = z.data, o = out.data;
  const Di = D.length;
  for (let i = 0, c = 0; i < o.length; i++) {
    const zi = Z[i];
    const a = Math.fround(siluF64(zi));
    const s = Math.fround(Y[i] + Math.fround(U[i] * D[c]));
    o[i] = s * a;
    if (++c === Di) c = 0;
  }
}
