/**
 * CPU kernels of the fused pool read (ops/attention-fused.ts): attnRead and its VJP's kernel
 * attnReadGrad. Straight loops per position that round to f32 exactly where the composite's
 * kernels do (indexedDot, mul, where, softmax, mul, indexedSum forward; indexedDot, mul,
 * softmaxGrad, where, mul, indexedSum backward: cpu/indexed.ts, cpu/nn.ts, cpu/elementwise.ts),
 * so their results equal the composite's on the CPU bit for bit (the tests check it).
 *
 * Index −1 is an empty slot: its dot products are 0 and it adds no term. Any other index outside
 * [0, M) is an error naming it and its position, as in the indexed kernels.
 */
import type { MultiPrimParams, PrimParams } from "../backend.ts";
import { showShape } from "../shape.ts";
import * as dm from "./detmath.ts";
import type { CpuArg } from "./kernels.ts";

const fround = Math.fround;
/** The index of an empty slot. */
const EMPTY_SLOT = -1;
/** The logit of a masked slot (exact in f32). */
const MASKED = -1e9;

/** What both kernels compute per position: the sizes, and the softmax of one position's slots. */
class Rows {
  readonly S: number;
  readonly P: number;
  readonly M: number;
  /** f32(scale), as the composite's mul by a scalar tensor uses it. */
  readonly s: number;
  /** The checked row of each slot of the current position (−1: empty). */
  readonly r: Int32Array;
  /** The softmax output y of the current position (before ⊙ valid). */
  readonly y: Float64Array;

  constructor(readonly op: string, readonly q: CpuArg, readonly keys: CpuArg, readonly idx: CpuArg, readonly valid: CpuArg, scale: number) {
    this.S = keys.shape[1];
    this.M = keys.shape[0];
    this.P = idx.shape[idx.shape.length - 1];
    this.s = fround(scale);
    this.r = new Int32Array(this.P);
    this.y = new Float64Array(this.P);
  }

  get positions(): number {
    return this.P === 0 ? 0 : this.idx.data.length / this.P;
  }

  /** x[n] · table[r], the terms added left to right in f32 (indexedDot's order). */
  dot(X: ArrayLike<number>, xo: number, T: ArrayLike<number>, r: number): number {
    if (r === EMPTY_SLOT) return 0;
    const S = this.S, to = r * S;
    let acc = 0;
    for (let j = 0; j < S; j++) acc = fround(acc + X[xo + j] * T[to + j]);
    return acc;
  }

  /** Fills r and y for position n: logits, the −1e9 mask, the softmax (as cpu/nn.ts's softmaxKernel). */
  softmax(n: number): void {
    const { P, M, r, y } = this;
    const I = this.idx.data, VAL = this.valid.data, Q = this.q.data, K = this.keys.data;
    const eo = n * P;
    let m = -Infinity;
    for (let p = 0; p < P; p++) {
      const ri = I[eo + p];
      if (ri !== EMPTY_SLOT && (ri < 0 || ri >= M)) {
        throw new RangeError(`${this.op}: index ${ri} at position ${eo + p} is outside [0, ${M}) of table ${showShape(this.keys.shape)} (and is not −1, an empty slot)`);
      }
      r[p] = ri;
      const z = VAL[eo + p] !== 0 ? fround(this.dot(Q, n * this.S, K, ri) * this.s) : MASKED;
      y[p] = z;
      if (z > m) m = z;
    }
    if (m === -Infinity) m = 0;
    let sum = 0;
    for (let p = 0; p < P; p++) {
      const e = dm.exp(y[p] - m);
      y[p] = fround(e);
      sum += e;
    }
    const inv = 1 / sum;
    for (let p = 0; p < P; p++) y[p] = fround(y[p] * inv);
  }
}

/**
 * attnRead (PrimParams["attnRead"]): inputs [q, keys, values, idx, valid], out [...N, S] =
 * Σ_p w[n, p] · values[idx[n, p]], p in order, terms of weight exactly 0 skipped.
 */
export function attnReadKernel([q, keys, values, idx, valid]: CpuArg[], out: CpuArg, { scale }: PrimParams["attnRead"]): void {
  const R = new Rows("attnRead", q, keys, idx, valid, scale);
  const { S, P, r, y } = R;
  const VAL = valid.data, V = values.data, O = out.data;
  O.fill(0);
  for (let n = 0; n < R.positions; n++) {
    R.softmax(n);
    const oo = n * S;
    for (let p = 0; p < P; p++) {
      const w = fround(y[p] * VAL[n * P + p]);
      if (r[p] === EMPTY_SLOT || w === 0) continue;
      const vo = r[p] * S;
      for (let j = 0; j < S; j++) O[oo + j] += w * V[vo + j];
    }
  }
}

/**
 * attnReadParts (PrimParams["attnReadParts"]): inputs [q, (keys, values, idx) per read]: attnRead
 * over the reads' tables side by side, each index offset by the rows before its table (−1 stays
 * −1), valid = index ≥ 0; so the same bits as the join that indexedAttentionParts runs elsewhere.
 */
export function attnReadPartsKernel(ins: CpuArg[], out: CpuArg, params: PrimParams["attnReadParts"]): void {
  const q = ins[0], G = (ins.length - 1) / 3;
  const S = q.shape[q.shape.length - 1], N = out.data.length / Math.max(1, S);
  const slots: number[] = [], rows: number[] = [];
  for (let g = 0; g < G; g++) {
    const idx = ins[3 + 3 * g];
    slots.push(idx.shape[idx.shape.length - 1]);
    rows.push(ins[1 + 3 * g].shape[0]);
  }
  const P = slots.reduce((a, b) => a + b, 0), M = rows.reduce((a, b) => a + b, 0);
  const keys = new Float32Array(M * S), values = new Float32Array(M * S);
  const idx = new Int32Array(N * P), valid = new Float32Array(N * P);
  let r0 = 0, p0 = 0;
  for (let g = 0; g < G; g++) {
    keys.set(ins[1 + 3 * g].data as Float32Array, r0 * S);
    values.set(ins[2 + 3 * g].data as Float32Array, r0 * S);
    const I = ins[3 + 3 * g].data, Pg = slots[g], Mg = rows[g];
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < Pg; p++) {
        const ri = I[n * Pg + p];
        if (ri !== EMPTY_SLOT && (ri < 0 || ri >= Mg)) throw new RangeError(`attnReadParts: read ${g}'s index ${ri} at position ${n * Pg + p} is outside [0, ${Mg}) of table ${showShape(ins[1 + 3 * g].shape)} (and is not −1, an empty slot)`);
        idx[n * P + p0 + p] = ri === EMPTY_SLOT ? EMPTY_SLOT : ri + r0;
        valid[n * P + p0 + p] = ri >= 0 ? 1 : 0;
      }
    }
    r0 += Mg;
    p0 += Pg;
  }
  const lead = q.shape.slice(0, -1);
  attnReadKernel([q, { data: keys, shape: [M, S] }, { data: values, shape: [M, S] }, { data: idx, shape: [...lead, P] }, { data: valid, shape: [...lead, P] }], out, params);
}

/**
 * attnReadGrad (MultiPrimParams["attnReadGrad"]): inputs [q, keys, values, idx, valid, g],
 * outputs [dq, w, dl] (ops/attention-fused.ts). Per position: dy = (g · values[idx]) ⊙ valid,
 * t = Σ dy ⊙ y (float64, slot order, as softmaxGrad), dl = scale · where(valid, y ⊙ (dy − t), 0),
 * dq = Σ_p dl[p] · keys[idx[p]] (p in order, terms of dl exactly 0 skipped).
 */
export function attnReadGradKernel([q, keys, values, idx, valid, g]: CpuArg[], [dq, wOut, dlOut]: CpuArg[], { scale }: MultiPrimParams["attnReadGrad"]): void {
  const R = new Rows("attnReadGrad", q, keys, idx, valid, scale);
  const { S, P, r, y } = R;
  const VAL = valid.data, V = values.data, K = keys.data, G = g.data;
  const DQ = dq.data, W = wOut.data, DL = dlOut.data;
  const dy = new Float64Array(P);
  DQ.fill(0);
  for (let n = 0; n < R.positions; n++) {
    R.softmax(n);
    const eo = n * P, go = n * S;
    let t = 0;
    for (let p = 0; p < P; p++) {
      dy[p] = fround(R.dot(G, go, V, r[p]) * VAL[eo + p]);
      t += dy[p] * y[p];
    }
    for (let p = 0; p < P; p++) {
      W[eo + p] = y[p] * VAL[eo + p];
      const dx = fround(y[p] * (dy[p] - t));
      const dl = fround((VAL[eo + p] !== 0 ? dx : 0) * R.s);
      DL[eo + p] = dl;
      if (r[p] === EMPTY_SLOT || dl === 0) continue;
      const ko = r[p] * S;
      for (let j = 0; j < S; j++) DQ[go + j] += dl * K[ko + j];
    }
  }
}
