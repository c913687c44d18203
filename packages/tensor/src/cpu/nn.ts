/** CPU kernels of the fused NN primitives and the index primitives. */
import type { MultiPrimParams, PrimParams } from "../backend.ts";
import { showShape } from "../shape.ts";
import * as dm from "./detmath.ts";
import type { CpuArg } from "./kernels.ts";
import { siluF64 } from "./elementwise.ts";

function rowsOf(x: CpuArg): [number, number] {
  const n = x.shape[x.shape.length - 1];
  return [n === 0 ? 0 : x.data.length / n, n];
}

export function softmaxKernel([x]: CpuArg[], out: CpuArg): void {
  const [rows, n] = rowsOf(x);
  const X = x.data, O = out.data;
  for (let r = 0; r < rows; r++) {
    const b = r * n;
    let m = -Infinity;
    for (let j = 0; j < n; j++) if (X[b + j] > m) m = X[b + j];
    if (m === -Infinity) m = 0;
    let s = 0;
    for (let j = 0; j < n; j++) {
      const e = dm.exp(X[b + j] - m);
      O[b + j] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let j = 0; j < n; j++) O[b + j] *= inv;
  }
}

/** softmax's VJP per row: dx = y ⊙ (g − Σ g⊙y), the sum in float64 in index order. */
export function softmaxGradKernel([g, y]: CpuArg[], out: CpuArg): void {
  const [rows, n] = rowsOf(y);
  const G = g.data, Y = y.data, O = out.data;
  for (let r = 0; r < rows; r++) {
    const b = r * n;
    let t = 0;
    for (let j = 0; j < n; j++) t += G[b + j] * Y[b + j];
    for (let j = 0; j < n; j++) O[b + j] = Y[b + j] * (G[b + j] - t);
  }
}

/**
 * maskedSoftmax (ops/softmax.ts): softmaxKernel with a prologue and an epilogue, rounded where the
 * composite's f32 tensors round: z = valid ≠ 0 ? f32(x · f32(scale)) : −1e9 (held in out), the
 * softmax of z exactly as softmaxKernel computes it, then f32(y · valid).
 */
export function maskedSoftmaxKernel([x, v]: CpuArg[], out: CpuArg, p: PrimParams["maskedSoftmax"]): void {
  const [rows, n] = rowsOf(x);
  const X = x.data, V = v.data, O = out.data;
  const sc = Math.fround(p.scale);
  for (let r = 0; r < rows; r++) {
    const b = r * n;
    let m = -Infinity;
    for (let j = 0; j < n; j++) {
      O[b + j] = V[b + j] !== 0 ? X[b + j] * sc : -1e9; // rounded to f32 by the store
      if (O[b + j] > m) m = O[b + j];
    }
    if (m === -Infinity) m = 0;
    let s = 0;
    for (let j = 0; j < n; j++) {
      const e = dm.exp(O[b + j] - m);
      O[b + j] = e;
      s += e;
    }
    const inv = 1 / s;
    for (let j = 0; j < n; j++) {
      O[b + j] *= inv; // the softmax output, rounded
      O[b + j] *= V[b + j];
    }
  }
}

/**
 * maskedSoftmaxGrad (ops/softmax.ts), inputs [g, w, valid]: the composite's chain in one row pass,
 * each step rounded as its kernel rounds: gv = f32(g · valid); softmaxGradKernel's
 * f32(w · (gv − Σ gv·w)) with the float64 sum in index order; where(valid, ·, 0); f32(· · scale).
 */
export function maskedSoftmaxGradKernel([g, w, v]: CpuArg[], out: CpuArg, p: PrimParams["maskedSoftmaxGrad"]): void {
  const [rows, n] = rowsOf(w);
  const G = g.data, W = w.data, V = v.data, O = out.data;
  const f = Math.fround, sc = f(p.scale);
  for (let r = 0; r < rows; r++) {
    const b = r * n;
    let t = 0;
    for (let j = 0; j < n; j++) t += f(G[b + j] * V[b + j]) * W[b + j];
    for (let j = 0; j < n; j++) {
      const dz = V[b + j] !== 0 ? f(W[b + j] * (f(G[b + j] * V[b + j]) - t)) : 0;
      O[b + j] = dz * sc;
    }
  }
}

/** 1/√(mean(x²) + eps) of row b (float64 sum in index order). */
function rmsScale(X: Float32Array | Int32Array, b: number, n: number, eps: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s += X[b + j] * X[b + j];
  return 1 / Math.sqrt(s / n + eps);
}

/** rmsNorm, inputs [x] or [x, gain]: x·r, or (x·r rounded to f32)·w[j] as the composite's mul rounds it. */
export function rmsNormKernel([x, w]: CpuArg[], out: CpuArg, p: PrimParams["rmsNorm"]): void {
  const [rows, n] = rowsOf(x);
  const X = x.data, O = out.data;
  if (w === undefined) {
    for (let r = 0; r < rows; r++) {
      const b = r * n, k = rmsScale(X, b, n, p.eps);
      for (let j = 0; j < n; j++) O[b + j] = X[b + j] * k;
    }
    return;
  }
  const W = w.data, f = Math.fround;
  for (let r = 0; r < rows; r++) {
    const b = r * n, k = rmsScale(X, b, n, p.eps);
    for (let j = 0; j < n; j++) O[b + j] = f(X[b + j] * k) * W[j];
  }
}

export function rmsNormGradKernel([g, x]: CpuArg[], out: CpuArg, p: PrimParams["rmsNormGrad"]): void {
  const [rows, n] = rowsOf(x);
  const G = g.data, X = x.data, O = out.data;
  for (let r = 0; r < rows; r++) {
    const b = r * n, k = rmsScale(X, b, n, p.eps);
    let t = 0;
    for (let j = 0; j < n; j++) t += G[b + j] * X[b + j];
    const c = (k * k * k * t) / n;
    for (let j = 0; j < n; j++) O[b + j] = k * G[b + j] - X[b + j] * c;
  }
}

/**
 * rmsNormGradW (MultiPrimParams["rmsNormGradW"]), inputs [g, x, w], outputs [dx, gxhat]: the
 * composite's launches in one row pass, each value rounded where their f32 tensors round:
 * gw = f32(g · w[j]) (mul), then rmsNormGradKernel's formula on gw (its float64 sum in index
 * order); gxhat = f32(g · f32(x · r)) (rmsNorm, then mul).
 */
export function rmsNormGradWKernel([g, x, w]: CpuArg[], [dx, gx]: CpuArg[], p: MultiPrimParams["rmsNormGradW"]): void {
  const [rows, n] = rowsOf(x);
  const G = g.data, X = x.data, W = w.data, D = dx.data, Q = gx.data, f = Math.fround;
  for (let r = 0; r < rows; r++) {
    const b = r * n, k = rmsScale(X, b, n, p.eps);
    let t = 0;
    for (let j = 0; j < n; j++) t += f(G[b + j] * W[j]) * X[b + j];
    const c = (k * k * k * t) / n;
    for (let j = 0; j < n; j++) {
      D[b + j] = k * f(G[b + j] * W[j]) - X[b + j] * c;
      Q[b + j] = G[b + j] * f(X[b + j] * k);
    }
  }
}

function lseRow(X: Float32Array | Int32Array, b: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) if (X[b + j] > m || X[b + j] !== X[b + j]) m = X[b + j];
  if (m === -Infinity || m === Infinity || m !== m) return m;
  let s = 0;
  for (let j = 0; j < n; j++) s += dm.exp(X[b + j] - m);
  return m + dm.log(s);
}

export function logsumexpKernel([x]: CpuArg[], out: CpuArg): void {
  const [rows, n] = rowsOf(x);
  for (let r = 0; r < rows; r++) out.data[r] = lseRow(x.data, r * n, n);
}

export function crossEntropyKernel([logits, targets]: CpuArg[], out: CpuArg): void {
  const [rows, n] = rowsOf(logits);
  const T = targets.data;
  for (let r = 0; r < rows; r++) {
    const t = T[r];
    if (t < 0 || t >= n) throw new RangeError(`crossEntropy: target ${t} at position ${r} is outside [0, ${n})`);
    out.data[r] = lseRow(logits.data, r * n, n) - logits.data[r * n + t];
  }
}

export function gatherKernel([table, idx]: CpuArg[], out: CpuArg): void {
  const rows = table.shape[0];
  const row = rows === 0 ? 0 : table.data.length / rows;
  const I = idx.data, T = table.data, O = out.data;
  for (let i = 0; i < I.length; i++) {
    const r = I[i];
    if (r < 0 || r >= rows) throw new RangeError(`gather: index ${r} at position ${i} is outside [0, ${rows}) of table ${showShape(table.shape)}`);
    O.set(T.subarray(r * row, (r + 1) * row), i * row);
  }
}

export function scatterAddKernel([idx, upd]: CpuArg[], out: CpuArg): void {
  const rows = out.shape[0];
  const row = rows === 0 ? 0 : out.data.length / rows;
  const I = idx.data, U = upd.data, O = out.data;
  O.fill(0);
  for (let i = 0; i < I.length; i++) {
    const r = I[i];
    if (r < 0 || r >= rows) throw new RangeError(`scatterAdd: index ${r} at position ${i} is outside [0, ${rows})`);
    const o = r * row, u = i * row;
    for (let j = 0; j < row; j++) O[o + j] += U[u + j];
  }
}

export function oneHotKernel([idx]: CpuArg[], out: CpuArg, p: PrimParams["oneHot"]): void {
  const O = out.data, I = idx.data;
  O.fill(0);
  for (let i = 0; i < I.length; i++) {
    const c = I[i];
    if (c >= 0 && c < p.depth) O[i * p.depth + c] = 1;
  }
}

// x, y [B, L, C]; w [C, K]: y[b,t,c] = Σ_k w[c,k] x[b, t-K+1+k, c], the inputs before the start
// 0 or (with a prefix [B, K-1, C]) the prefix's rows: x[b, -j, c] = prefix[b, K-1-j, c]
export function conv1dCausalKernel([x, w, prefix]: CpuArg[], out: CpuArg): void {
  const [B, L, C] = x.shape, K = w.shape[1];
  const X = x.data, W = w.data, Y = out.data, P = prefix?.data;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const yo = (b * L + t) * C;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const src = t - K + 1 + k;
          if (src >= 0) s += W[c * K + k] * X[(b * L + src) * C + c];
          else if (P) s += W[c * K + k] * P[(b * (K - 1) + K - 1 + src) * C + c];
        }
        Y[yo + c] = s;
      }
    }
  }
}

/**
 * silu(conv1dCausal(x, w, prefix) + b) (conv1dCausalSilu): the conv kernel into the output, then
 * the add (rounded to f32 as the add kernel rounds it) and silu as the unary kernel takes it
 * (siluF64, rounded once): the bits of the three ops in turn.
 */
export function conv1dCausalSiluKernel([x, w, b, prefix]: CpuArg[], out: CpuArg): void {
  conv1dCausalKernel([x, w, prefix], out);
  const Y = out.data, bias = b.data, C = bias.length;
  for (let i = 0, c = 0; i < Y.length; i++) {
    const v = Math.fround(Y[i] + bias[c]);
    Y[i] = siluF64(v);
    if (++c === C) c = 0;
  }
}

// dx[b,s,c] = Σ_k w[c,k] g[b, s+K-1-k, c]
export function conv1dCausalGradXKernel([g, w]: CpuArg[], out: CpuArg): void {
  const [B, L, C] = g.shape, K = w.shape[1];
  const G = g.data, W = w.data, D = out.data;
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < L; s++) {
      const o = (b * L + s) * C;
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const t = s + K - 1 - k;
          if (t < L) acc += W[c * K + k] * G[(b * L + t) * C + c];
        }
        D[o + c] = acc;
      }
    }
  }
}

// dw[c,k] = Σ_{b,t} g[b,t,c] x[b, t-K+1+k, c]
export function conv1dCausalGradWKernel([g, x]: CpuArg[], out: CpuArg): void {
  const [B, L, C] = g.shape, K = out.shape[1];
  const G = g.data, X = x.data, D = out.data;
  const acc = new Float64Array(C * K);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      const go = (b * L + t) * C;
      for (let k = 0; k < K; k++) {
        const src = t - K + 1 + k;
        if (src < 0) continue;
        const xo = (b * L + src) * C;
        for (let c = 0; c < C; c++) acc[c * K + k] += G[go + c] * X[xo + c];
      }
    }
  }
  D.set(acc);
}

// h[b,t,s] = a[b,t,s] h[b,t-1,s] + x[b,t,s], from h0[b,s]
export function scanKernel([a, x, h0]: CpuArg[], out: CpuArg): void {
  const [B, L, S] = a.shape;
  const A = a.data, X = x.data, H0 = h0.data, H = out.data;
  for (let b = 0; b < B; b++) {
    let prev = b * S; // offset of h_{t-1} (in H0 for t = 0)
    let src: Float32Array | Int32Array = H0;
    for (let t = 0; t < L; t++) {
      const o = (b * L + t) * S;
      for (let s = 0; s < S; s++) H[o + s] = Math.fround(A[o + s] * src[prev + s]) + X[o + s];
      src = H;
      prev = o;
    }
  }
}

// λ[b,t,s] = g[b,t,s] + a[b,t+1,s] λ[b,t+1,s]
export function scanReverseKernel([a, g]: CpuArg[], out: CpuArg): void {
  const [B, L, S] = a.shape;
  const A = a.data, G = g.data, O = out.data;
  for (let b = 0; b < B; b++) {
    const last = (b * L + L - 1) * S;
    for (let s = 0; s < S; s++) O[last + s] = G[last + s];
    for (let t = L - 2; t >= 0; t--) {
      const o = (b * L + t) * S, n = o + S;
      for (let s = 0; s < S; s++) O[o + s] = Math.fround(A[n + s] * O[n + s]) + G[o + s];
    }
  }
}
