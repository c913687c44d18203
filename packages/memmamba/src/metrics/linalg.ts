/**
 * Small dense linear algebra in float64 on the host, for the metrics (the systems are d × d, with
 * d the model width: a Cholesky factorisation is instant, and float64 keeps λ = 1e-4 meaningful,
 * which float32 Gram matrices of long sequences would not).
 *
 * Matrices are row-major Float64Arrays with their sizes passed alongside.
 */

/** XᵀY for X [n, p] and Y [n, q] (row-major) → [p, q]. */
export function gramCross(X: ArrayLike<number>, Y: ArrayLike<number>, n: number, p: number, q: number): Float64Array {
  const out = new Float64Array(p * q);
  for (let r = 0; r < n; r++) {
    const xo = r * p, yo = r * q;
    for (let i = 0; i < p; i++) {
      const xi = X[xo + i];
      if (xi === 0) continue;
      const oo = i * q;
      for (let j = 0; j < q; j++) out[oo + j] += xi * Y[yo + j];
    }
  }
  return out;
}

/** The lower Cholesky factor L of a symmetric positive definite A [d, d] (A = L Lᵀ). Throws if A is not. */
export function cholesky(A: ArrayLike<number>, d: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * d + j];
      for (let k = 0; k < j; k++) s -= L[i * d + k] * L[j * d + k];
      if (i === j) {
        if (!(s > 0)) throw new RangeError(`cholesky: the matrix is not positive definite (pivot ${i} is ${s}); use a larger ridge λ`);
        L[i * d + i] = Math.sqrt(s);
      } else {
        L[i * d + j] = s / L[j * d + j];
      }
    }
  }
  return L;
}

/** Solves (L Lᵀ) X = B for X [d, m], given the Cholesky factor L [d, d] and B [d, m]. */
export function choleskySolve(L: Float64Array, B: ArrayLike<number>, d: number, m: number): Float64Array {
  const X = Float64Array.from(B as ArrayLike<number>);
  for (let c = 0; c < m; c++) {
    // forward: L z = b
    for (let i = 0; i < d; i++) {
      let s = X[i * m + c];
      for (let k = 0; k < i; k++) s -= L[i * d + k] * X[k * m + c];
      X[i * m + c] = s / L[i * d + i];
    }
    // backward: Lᵀ x = z
    for (let i = d - 1; i >= 0; i--) {
      let s = X[i * m + c];
      for (let k = i + 1; k < d; k++) s -= L[k * d + i] * X[k * m + c];
      X[i * m + c] = s / L[i * d + i];
    }
  }
  return X;
}

/** Frobenius norm of a flat array. */
export function frobenius(A: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < A.length; i++) s += A[i] * A[i];
  return Math.sqrt(s);
}

/**
 * Ridge regression of Y [n, q] on X [n, p]: W = (XᵀX + λI)⁻¹ XᵀY [p, q], and the residual
 * ‖Y − XW‖_F (computed row by row, not from the normal equations, so it stays accurate when the
 * fit is nearly exact).
 */
export function ridge(X: ArrayLike<number>, Y: ArrayLike<number>, n: number, p: number, q: number, lambda: number): { W: Float64Array; residual: number } {
  if (!(lambda >= 0)) throw new RangeError(`ridge: λ must be ≥ 0, got ${lambda}`);
  if (X.length !== n * p || Y.length !== n * q) throw new RangeError(`ridge: X has ${X.length} values, Y ${Y.length}; expected ${n}×${p} and ${n}×${q}`);
  const G = gramCross(X, X, n, p, p);
  for (let i = 0; i < p; i++) G[i * p + i] += lambda;
  const W = choleskySolve(cholesky(G, p), gramCross(X, Y, n, p, q), p, q);
  let ss = 0;
  const row = new Float64Array(q);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < q; j++) row[j] = Y[r * q + j];
    for (let i = 0; i < p; i++) {
      const xi = X[r * p + i];
      if (xi === 0) continue;
      const wo = i * q;
      for (let j = 0; j < q; j++) row[j] -= xi * W[wo + j];
    }
    for (let j = 0; j < q; j++) ss += row[j] * row[j];
  }
  return { W, residual: Math.sqrt(ss) };
}
