/**
 * Numerical gradient checking (a test helper, not a test).
 *
 *   await checkGradients((xs) => matmul(xs[0], xs[1]), [{ data, shape: [2, 3] }, { data, shape: [3, 4] }]);
 *
 * f's output is reduced to a scalar with a fixed pseudo-random cotangent w (loss = Σ f(x) ⊙ w), so
 * every output element and every VJP path contributes. The analytic gradient comes from
 * `valueAndGrad` over the array of inputs; the numerical one from central differences, perturbing
 * ONE element at a time by ±h with h = eps · max(1, |x|). f runs in f32 as always, but the loss of
 * each perturbed evaluation is summed on the host in float64, and the difference is divided by the
 * step actually taken in f32 (fround(x + h) − fround(x − h)), so f32 rounding of x ± h costs nothing.
 * The perturbed outputs are read back in batches (up to PERTURBED_BATCH evaluations, one read
 * each): a backend whose readback has a fixed latency (Deno's WebGPU: ~11 ms) pays it once a
 * batch, not twice an element.
 *
 * Every element of every f32 input is compared:
 *
 *   |num − ana| ≤ atol · scale + rtol · max(|num|, |ana|)
 *
 * where scale = max(0.1, the largest |num| or |ana| over all inputs): the gradient's own
 * magnitude, so the absolute slack follows the problem, not an arbitrary unit. Integer (i32)
 * inputs — indices, targets — are not differentiated. A failure throws naming the worst element
 * (input number, multi-index, both values) and how many elements failed. The check also asserts
 * that neither the forward evaluations nor valueAndGrad leave a buffer allocated.
 */
import {
  concat,
  fromArray,
  liveBuffers,
  mul,
  noGrad,
  showShape,
  reshape,
  sum,
  Tensor,
  tidy,
  valueAndGrad,
} from "../src/index.ts";

/** One input of f: host data and a shape. Int32Array data makes an i32 tensor (not differentiated). */
export interface GradInput {
  data: Float32Array | Int32Array;
  shape: readonly number[];
}

export interface GradCheckOptions {
  /** Relative step: h = eps · max(1, |x|). Default 1e-2 (f32). */
  eps?: number;
  /** Absolute tolerance, as a fraction of the gradient's scale. Default 1e-2. */
  atol?: number;
  /** Relative tolerance. Default 2e-2. */
  rtol?: number;
  /** Seed of the cotangent w. */
  seed?: number;
  /** Names the check in error messages. */
  label?: string;
}

export interface GradCheckWorst {
  input: number;
  index: number[];
  flat: number;
  analytic: number;
  numeric: number;
  /** |num − ana| / tolerance: ≤ 1 passes. */
  ratio: number;
}

export interface GradCheckReport {
  /** Elements compared. */
  checked: number;
  /** The element closest to (or furthest past) its tolerance. */
  worst: GradCheckWorst | null;
  /** The scale the absolute tolerance was multiplied by. */
  scale: number;
}

/** Perturbed evaluations whose outputs are read back together (and the most values of one read). */
const PERTURBED_BATCH = 64;
const PERTURBED_MAX_VALUES = 1 << 20;

/** The default tolerances (exported so tests can state what they check against). */
export const GRADCHECK_DEFAULTS = { eps: 1e-2, atol: 1e-2, rtol: 2e-2 } as const;

/** A small deterministic PRNG (mulberry32): uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = flat % shape[i];
    flat = Math.floor(flat / shape[i]);
  }
  return idx;
}

/** The values of `ts`, flattened and joined on the device, in one readback (empty tensors add nothing). */
async function readJoined(ts: readonly Tensor[]): Promise<Float32Array> {
  const flat = ts.filter((t) => t.size > 0);
  if (flat.length === 0) return new Float32Array(0);
  const joined = noGrad(() => tidy(() => concat(flat.map((t) => reshape(t, [t.size])), 0)));
  try {
    return (await joined.data()) as Float32Array;
  } finally {
    if (!flat.includes(joined)) joined.dispose(); // (a join of one flat tensor may hand it back)
  }
}

function makeTensor(inp: { data: Float32Array | Int32Array; shape: readonly number[] }): Tensor {
  return inp.data instanceof Int32Array ? fromArray(inp.data, [...inp.shape], "i32") : fromArray(inp.data, [...inp.shape]);
}

/**
 * Compares f's analytic gradient (valueAndGrad) with central differences, element by element.
 * Resolves with a report (the worst element's ratio to its tolerance); throws on a mismatch.
 */
export async function checkGradients(
  f: (inputs: Tensor[]) => Tensor,
  inputs: readonly GradInput[],
  opts: GradCheckOptions = {},
): Promise<GradCheckReport> {
  const eps = opts.eps ?? GRADCHECK_DEFAULTS.eps;
  const atol = opts.atol ?? GRADCHECK_DEFAULTS.atol;
  const rtol = opts.rtol ?? GRADCHECK_DEFAULTS.rtol;
  const label = opts.label ? `checkGradients[${opts.label}]` : "checkGradients";
  for (const [i, inp] of inputs.entries()) {
    if (inp.data.length !== sizeOfShape(inp.shape)) {
      throw new Error(`${label}: input #${i} has ${inp.data.length} values for shape ${showShape(inp.shape)}`);
    }
  }
  const baseline = liveBuffers();
  const base = inputs.map(makeTensor);

  /** f's output shape on the given tensors, recording nothing (no readback: the cotangent needs only its size). */
  const outputShape = (ts: Tensor[]): number[] => {
    const out = noGrad(() => tidy(() => f(ts)));
    try {
      if (out.dtype !== "f32") throw new Error(`${label}: f must return an f32 tensor, got ${out.dtype}`);
      return [...out.shape];
    } finally {
      if (!ts.includes(out)) out.dispose();
    }
  };

  let outShape: number[];
  let analytic: Float32Array[];
  let w: Float64Array;
  try {
    outShape = outputShape(base);
    // the cotangent: fixed pseudo-random values in ±[0.5, 1.5] (never near 0, so no element is ignored)
    const rand = mulberry32(opts.seed ?? 0x5eed);
    const w32 = Float32Array.from({ length: sizeOfShape(outShape) }, () => (rand() < 0.5 ? -1 : 1) * (0.5 + rand()));
    const wT = fromArray(w32, outShape);
    w = Float64Array.from(w32); // exactly the f32 values the analytic side uses
    try {
      const vg = valueAndGrad((xs: Tensor[]) => sum(mul(f(xs), wT)));
      const { value, grads } = vg(base);
      try {
        // every f32 input's gradient in one read (one readback's latency, not one an input)
        const wanted: Tensor[] = [];
        for (const [i, g] of grads.entries()) {
          if (inputs[i].data instanceof Int32Array) continue;
          if (showShape(g.shape) !== showShape(inputs[i].shape)) {
            throw new Error(`${label}: gradient of input #${i} has shape ${showShape(g.shape)}, the input ${showShape(inputs[i].shape)}`);
          }
          if (g.dtype !== "f32") throw new Error(`${label}: gradient of input #${i} is ${g.dtype}, not f32`);
          wanted.push(g);
        }
        const all = await readJoined(wanted);
        analytic = [];
        let at = 0;
        for (const [i, g] of grads.entries()) {
          if (inputs[i].data instanceof Int32Array) {
            analytic.push(new Float32Array(0));
            continue;
          }
          analytic.push(all.slice(at, at + g.size));
          at += g.size;
        }
      } finally {
        value.dispose();
        for (const g of grads) if (!base.includes(g)) g.dispose();
      }
    } finally {
      wT.dispose();
    }
  } catch (e) {
    for (const t of base) t.dispose();
    throw e;
  }

  // numerical gradients: one element at a time, loss summed on the host in float64
  const numeric: Float64Array[] = [];
  try {
    for (const [i, inp] of inputs.entries()) {
      if (inp.data instanceof Int32Array) {
        numeric.push(new Float64Array(0));
        continue;
      }
      const num = new Float64Array(inp.data.length);
      const work = Float32Array.from(inp.data);
      // the evaluations in order: element j at x + h, then at x − h
      const evals: { j: number; v: number }[] = [];
      for (let j = 0; j < inp.data.length; j++) {
        const x = inp.data[j];
        const h = eps * Math.max(1, Math.abs(x));
        evals.push({ j, v: Math.fround(x + h) }, { j, v: Math.fround(x - h) });
      }
      const loss = new Float64Array(evals.length);
      const outSize = sizeOfShape(outShape);
      const batch = Math.max(1, Math.min(PERTURBED_BATCH, Math.floor(PERTURBED_MAX_VALUES / Math.max(1, outSize))));
      for (let e0 = 0; e0 < evals.length; e0 += batch) {
        const chunk = evals.slice(e0, e0 + batch);
        const made: Tensor[] = [];
        const outs: Tensor[] = [];
        try {
          for (const { j, v } of chunk) {
            work[j] = v;
            const t = fromArray(work, [...inp.shape]);
            work[j] = inp.data[j];
            made.push(t);
            const ts = base.slice();
            ts[i] = t;
            const out = noGrad(() => tidy(() => f(ts)));
            if (!ts.includes(out)) made.push(out);
            if (out.dtype !== "f32") throw new Error(`${label}: f must return an f32 tensor, got ${out.dtype}`);
            if (showShape(out.shape) !== showShape(outShape)) throw new Error(`${label}: f's output has shape ${showShape(out.shape)} at a perturbed input, ${showShape(outShape)} at the given one`);
            outs.push(out);
          }
          if (outSize > 0) {
            const y = await readJoined(outs);
            for (let c = 0; c < chunk.length; c++) {
              let s = 0;
              for (let k = 0; k < outSize; k++) s += w[k] * y[c * outSize + k];
              loss[e0 + c] = s;
            }
          }
        } finally {
          for (const t of made) t.dispose();
        }
      }
      for (let j = 0; j < inp.data.length; j++) {
        const [xp, xm] = [evals[2 * j].v, evals[2 * j + 1].v];
        num[j] = (loss[2 * j] - loss[2 * j + 1]) / (xp - xm);
      }
      numeric.push(num);
    }
  } finally {
    for (const t of base) t.dispose();
  }

  const leaked = liveBuffers() - baseline;
  if (leaked !== 0) throw new Error(`${label}: ${leaked} buffer(s) leaked by f, its VJPs or the check`);

  // compare
  let scale = 0.1;
  for (const [i, num] of numeric.entries()) {
    for (let j = 0; j < num.length; j++) scale = Math.max(scale, Math.abs(num[j]), Math.abs(analytic[i][j]));
  }
  let worst: GradCheckWorst | null = null;
  let failed = 0, checked = 0;
  for (const [i, num] of numeric.entries()) {
    const ana = analytic[i];
    for (let j = 0; j < num.length; j++) {
      const a = ana[j], n = num[j];
      const tol = atol * scale + rtol * Math.max(Math.abs(a), Math.abs(n));
      const diff = Math.abs(a - n);
      const ratio = Number.isFinite(a) && Number.isFinite(n) ? diff / tol : Infinity;
      checked++;
      if (!(ratio <= 1)) failed++;
      if (worst === null || !(ratio <= worst.ratio)) {
        worst = { input: i, index: unravel(j, inputs[i].shape), flat: j, analytic: a, numeric: n, ratio };
      }
    }
  }
  if (failed > 0 && worst) {
    const shapes = inputs.map((inp, i) => `#${i} ${showShape(inp.shape)}${inp.data instanceof Int32Array ? " i32" : ""}`).join(", ");
    throw new Error(
      `${label}: gradient mismatch in ${failed} of ${checked} elements (inputs ${shapes}; output ${showShape(outShape)}). ` +
        `Worst: input #${worst.input} at [${worst.index.join(", ")}] (flat ${worst.flat}), x = ${inputs[worst.input].data[worst.flat]}: ` +
        `analytic ${worst.analytic} vs numeric ${worst.numeric} ` +
        `(|diff| ${Math.abs(worst.analytic - worst.numeric).toExponential(3)}, ${Number.isFinite(worst.ratio) ? worst.ratio.toFixed(1) : "∞"}× the tolerance ` +
        `${atol}·${scale.toPrecision(3)} + ${rtol}·max(|num|, |ana|))`,
    );
  }
  return { checked, worst, scale };
}
