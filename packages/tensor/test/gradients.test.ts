/**
 * Gradient checks of every primitive that has a gradient (backend.ts's PrimParams), against
 * central differences (gradcheck.ts), with shapes and values drawn by fast-check.
 *
 * Primitives without a gradient are not checked here: fill (no inputs), compare and oneHot
 * (piecewise constant / integer inputs; compare is checked to give a zero gradient), cast (f32→f32
 * returns its input without a primitive; i32 casts carry no gradient).
 *
 * Inputs avoid the points where a function is not differentiable: positive values away from 0 for
 * log/sqrt/rsqrt/reciprocal and pow's base, |x| ≥ 0.05 for abs/relu/sign, and values on a 0.05 grid
 * (all distinct) for max/min, so no ±h step crosses a kink or a tie.
 *
 * GRADCHECK_RUNS_SCALE=10 multiplies every property's number of runs (a longer soak).
 */
import fc from "fast-check";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { expectNoLeak, testBackends, useBackend } from "../../../test/support/backends.ts";
import {
  abs, add, addMatmul, bind, foldWeight, broadcastTo, concat, conv1dCausal, conv1dCausalSilu, cos, linearSigmoid, linearSoftplus, ssmGate, crossEntropy, div, eq, exp, gather, gt, log, logSoftmax,
  logsumexp, matmul, matmulRows, max, maximum, mean, minimum, mT, mul, neg, pad, pow, primitive, reciprocal, relu, reshape,
  rsqrt, scan, scatterAdd, sigmoid, sign, silu, sin, slice, sliceAxis, softmax, softplus, sqrt, square, stack, sub,
  sum, tanh, transpose, where, fromArray, valueAndGrad, readCounters, resetCounters, disposeTree, getBackend, rmsNormalize, tidy,
} from "../src/index.ts";
import { GRAD_UNARY_OPS } from "../src/ops/elementwise.ts";
import type { PrimDef, Tensor } from "../src/index.ts";
import { checkGradients, type GradCheckOptions, type GradInput } from "./gradcheck.ts";

// ---------------------------------------------------------------------------------------------
// arbitraries
// ---------------------------------------------------------------------------------------------

function env(name: string): string | undefined {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  try {
    return g.process?.env?.[name] ?? g.Deno?.env?.get(name);
  } catch {
    return undefined;
  }
}
const RUNS_SCALE = Math.max(1, Number(env("GRADCHECK_RUNS_SCALE") ?? 1) || 1);

/** Value ranges: any in [-2, 2]; pos in [0.25, 3]; away: |x| in [0.05, 2]; bounded: |x| in [0.3, 2]. */
type Kind = "any" | "pos" | "away" | "bounded" | "distinct" | "decay";

const f32 = (min: number, max: number) => fc.float({ min: Math.fround(min), max: Math.fround(max), noNaN: true, noDefaultInfinity: true });
const signed = (min: number, max: number) => fc.tuple(fc.boolean(), f32(min, max)).map(([n, v]) => (n ? -v : v));
const valueArb: Record<Exclude<Kind, "distinct">, fc.Arbitrary<number>> = {
  any: f32(-2, 2),
  pos: f32(0.25, 3),
  away: signed(0.05, 2),
  bounded: signed(0.3, 2),
  decay: f32(-1.1, 1.1), // scan coefficients
};

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** n distinct values on a 0.05 grid in about [-3, 3] (no ties, no value within 2h of another). */
function distinctValues(n: number): fc.Arbitrary<Float32Array> {
  if (n > 121) throw new Error(`distinctValues: ${n} values do not fit the grid of 121 (draw smaller shapes)`);
  return fc.uniqueArray(fc.integer({ min: -60, max: 60 }), { minLength: n, maxLength: n })
    .map((ks) => Float32Array.from(ks, (k) => k * 0.05 + 0.0125));
}
function values(n: number, kind: Kind): fc.Arbitrary<Float32Array> {
  if (kind === "distinct") return distinctValues(n);
  return fc.array(valueArb[kind], { minLength: n, maxLength: n }).map((v) => Float32Array.from(v));
}
/** An f32 input of a given shape. */
function input(shape: readonly number[], kind: Kind = "any"): fc.Arbitrary<GradInput> {
  return values(size(shape), kind).map((data) => ({ data, shape: [...shape] }));
}
/** An i32 input of a given shape with values in [0, hi). */
function indices(shape: readonly number[], hi: number): fc.Arbitrary<GradInput> {
  return fc.array(fc.integer({ min: 0, max: hi - 1 }), { minLength: size(shape), maxLength: size(shape) })
    .map((v) => ({ data: Int32Array.from(v), shape: [...shape] }));
}
const dimArb = (max = 5) => fc.integer({ min: 1, max });
/** A shape of rank minRank..maxRank, dims 1..maxDim, at most maxSize elements. */
function shapeArb(minRank: number, maxRank: number, maxDim = 5, maxSize = 60): fc.Arbitrary<number[]> {
  return fc.array(dimArb(maxDim), { minLength: minRank, maxLength: maxRank }).filter((s) => size(s) <= maxSize);
}
function tensorArb(minRank: number, maxRank: number, kind: Kind = "any", maxDim = 5): fc.Arbitrary<GradInput> {
  return shapeArb(minRank, maxRank, maxDim).chain((s) => input(s, kind));
}
/** A shape that broadcasts to `out`: some leading axes dropped, some axes set to 1. */
function operandOf(out: readonly number[]): fc.Arbitrary<number[]> {
  return fc.tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
    .map(([drop, ones]) => out.slice(drop).map((d, i) => (ones[i + drop] ? 1 : d)));
}
/** Two inputs whose shapes broadcast (values of the given kinds; "distinct" is distinct across both). */
function pairOf(sa: readonly number[], sb: readonly number[], ka: Kind, kb: Kind): fc.Arbitrary<GradInput[]> {
  if (ka === "distinct" || kb === "distinct") {
    return distinctValues(size(sa) + size(sb)).map((v) => [
      { data: v.slice(0, size(sa)), shape: [...sa] },
      { data: v.slice(size(sa)), shape: [...sb] },
    ]);
  }
  return fc.tuple(input(sa, ka), input(sb, kb));
}
function arrayOfN<T>(n: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.array(arb, { minLength: n, maxLength: n });
}
/** A permutation of 0..n-1. */
function permArb(n: number): fc.Arbitrary<number[]> {
  const ids = Array.from({ length: n }, (_, i) => i);
  return fc.shuffledSubarray(ids, { minLength: n, maxLength: n });
}

// ---------------------------------------------------------------------------------------------
// test registration
// ---------------------------------------------------------------------------------------------

/** Registers a property test per backend: every drawn case must pass its gradient check. */
function gradProp<T>(name: string, arb: fc.Arbitrary<T>, check: (v: T) => Promise<unknown>, numRuns = 12): void {
  for (const b of testBackends()) {
    test(`[${b}] ${name}`, async () => {
      if (!(await useBackend(b))) return;
      worstRatio = 0;
      await fc.assert(fc.asyncProperty(arb, async (v) => {
        await check(v);
      }), { numRuns: numRuns * RUNS_SCALE });
      if (VERBOSE) console.log(`worst ratio ${worstRatio.toFixed(3)}  ${name}`);
    });
  }
}

/** The worst |num − ana| / tolerance seen in the current test (printed with GRADCHECK_VERBOSE=1). */
let worstRatio = 0;
const VERBOSE = !!env("GRADCHECK_VERBOSE");

const check = async (f: (xs: Tensor[]) => Tensor, ins: readonly GradInput[], label: string, opts: GradCheckOptions = {}) => {
  const r = await checkGradients(f, ins, { label, ...opts });
  if (r.worst) worstRatio = Math.max(worstRatio, r.worst.ratio);
  return r;
};

// ---------------------------------------------------------------------------------------------
// unary
// ---------------------------------------------------------------------------------------------

describe("gradients: unary", () => {
  const ops: [string, (x: Tensor) => Tensor, Kind][] = [
    ["neg", neg, "any"],
    ["exp", exp, "any"],
    ["log", log, "pos"],
    ["sqrt", sqrt, "pos"],
    ["rsqrt", rsqrt, "pos"],
    ["tanh", tanh, "any"],
    ["sigmoid", sigmoid, "any"],
    ["silu", silu, "any"],
    ["softplus", softplus, "any"],
    ["abs", abs, "away"],
    ["relu", relu, "away"],
    ["sin", sin, "any"],
    ["cos", cos, "any"],
    ["square", square, "any"],
    ["reciprocal", reciprocal, "pos"],
    ["sign", sign, "away"],
  ];
  for (const [name, fn, kind] of ops) {
    gradProp(`unary ${name}`, tensorArb(0, 3, kind, 4), (x) => check((xs) => fn(xs[0]), [x], name), 10);
  }
  // negative inputs of the positive-domain ops that allow them
  gradProp("unary reciprocal of negatives", tensorArb(1, 2, "pos", 4).map((x) => ({ ...x, data: x.data.map((v) => -v) })),
    (x) => check((xs) => reciprocal(xs[0]), [x], "reciprocal<0"), 6);
});

// ---------------------------------------------------------------------------------------------
// binary (broadcasting), compare, where
// ---------------------------------------------------------------------------------------------

const PATTERNS: [number[], number[]][] = [
  [[3, 4], [4]],
  [[4], [3, 4]],
  [[2, 1, 3], [4, 1]],
  [[4, 1], [2, 1, 3]],
  [[], [5]],
  [[5], []],
  [[1], [2, 3]],
  [[2, 3], [1]],
  [[2, 3], [2, 3]],
];

describe("gradients: binary", () => {
  type BinFn = (a: Tensor, b: Tensor) => Tensor;
  const ops: [string, BinFn, Kind, Kind][] = [
    ["add", add, "any", "any"],
    ["sub", sub, "any", "any"],
    ["mul", mul, "any", "any"],
    ["div", div, "any", "bounded"],
    ["pow", pow, "pos", "any"],
    ["maximum", maximum, "distinct", "distinct"],
    ["minimum", minimum, "distinct", "distinct"],
  ];
  const randomPair = shapeArb(0, 3, 4).chain((out) => fc.tuple(operandOf(out), operandOf(out)));
  for (const [name, fn, ka, kb] of ops) {
    const fixed = fc.constantFrom(...PATTERNS).chain(([sa, sb]) => pairOf(sa, sb, ka, kb));
    gradProp(`binary ${name}: fixed broadcast patterns`, fixed, (ins) => check((xs) => fn(xs[0], xs[1]), ins, name), 18);
    gradProp(`binary ${name}: random broadcast shapes`, randomPair.chain(([sa, sb]) => pairOf(sa, sb, ka, kb)),
      (ins) => check((xs) => fn(xs[0], xs[1]), ins, name), 10);
  }
  // each fixed pattern at least once, deterministically
  for (const b of testBackends()) {
    test(`[${b}] binary: every fixed pattern, every op`, async () => {
      if (!(await useBackend(b))) return;
      for (const [name, fn, ka, kb] of ops) {
        for (const [sa, sb] of PATTERNS) {
          const [ins] = fc.sample(pairOf(sa, sb, ka, kb), { numRuns: 1, seed: 42 });
          await check((xs) => fn(xs[0], xs[1]), ins, `${name} ${JSON.stringify(sa)}·${JSON.stringify(sb)}`);
        }
      }
    });
  }
  gradProp("pow with a scalar exponent (x^2.5, x^-1.5)", tensorArb(1, 2, "pos", 4), async (x) => {
    await check((xs) => pow(xs[0], 2.5), [x], "pow 2.5");
    await check((xs) => pow(xs[0], -1.5), [x], "pow -1.5");
  }, 5);
  gradProp("the same tensor on both sides (x·x, x−x, max(x, x) splits ties)", tensorArb(1, 2, "any", 4), async (x) => {
    await check((xs) => mul(xs[0], xs[0]), [x], "x*x");
    await check((xs) => sub(xs[0], xs[0]), [x], "x-x");
    await check((xs) => maximum(xs[0], xs[0]), [x], "max(x,x)");
  }, 5);

  gradProp("compare: zero gradient", randomPair.chain(([sa, sb]) => pairOf(sa, sb, "distinct", "distinct")),
    (ins) => check((xs) => add(gt(xs[0], xs[1]), eq(xs[0], xs[1])), ins, "compare"), 8);
});

describe("gradients: where", () => {
  const triple = shapeArb(0, 3, 4).chain((out) =>
    fc.tuple(operandOf(out), operandOf(out), operandOf(out)).chain(([sc, sa, sb]) =>
      fc.tuple(indices(sc, 2), input(sa), input(sb))
    )
  );
  gradProp("where (a, b; i32 condition, broadcast)", triple,
    (ins) => check((xs) => where(xs[0], xs[1], xs[2]), ins, "where"), 15);
  gradProp("where with f32 condition [3,1], a [4], b [3,4]", fc.tuple(indices([3, 1], 2), input([4]), input([3, 4])),
    ([c, a, bb]) => check((xs) => where(gt(xs[0], 0.5), xs[1], xs[2]), [{ data: Float32Array.from(c.data), shape: c.shape }, a, bb], "where f32 cond"), 5);
  gradProp("where with a scalar branch", fc.tuple(indices([2, 3], 2), input([2, 3])),
    (ins) => check((xs) => where(xs[0], xs[1], 0.5), ins, "where scalar"), 5);
});

// ---------------------------------------------------------------------------------------------
// reductions
// ---------------------------------------------------------------------------------------------

describe("gradients: reduce", () => {
  const reduceCase = shapeArb(1, 4, 4).chain((s) =>
    fc.record({
      shape: fc.constant(s),
      axes: fc.shuffledSubarray(s.map((_, i) => i), { minLength: 1 }),
      negative: fc.boolean(),
      keepDims: fc.boolean(),
    })
  );
  const axesOf = (c: { shape: number[]; axes: number[]; negative: boolean }) => c.negative ? c.axes.map((a) => a - c.shape.length) : c.axes;
  gradProp("sum over random axes", reduceCase.chain((c) => fc.tuple(fc.constant(c), input(c.shape))),
    ([c, x]) => check((xs) => sum(xs[0], axesOf(c), c.keepDims), [x], `sum ${axesOf(c)}`), 15);
  gradProp("max over random axes (distinct values)", reduceCase.chain((c) => fc.tuple(fc.constant(c), input(c.shape, "distinct"))),
    ([c, x]) => check((xs) => max(xs[0], axesOf(c), c.keepDims), [x], `max ${axesOf(c)}`), 15);
  gradProp("mean over random axes", reduceCase.chain((c) => fc.tuple(fc.constant(c), input(c.shape))),
    ([c, x]) => check((xs) => mean(xs[0], axesOf(c), c.keepDims), [x], `mean ${axesOf(c)}`), 8);
  gradProp("sum / max over all axes", tensorArb(0, 3, "distinct", 4), async (x) => {
    await check((xs) => sum(xs[0]), [x], "sum all");
    await check((xs) => max(xs[0]), [x], "max all");
  }, 8);
});

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

describe("gradients: matmul", () => {
  const mmCase = fc.record({
    m: dimArb(4), k: dimArb(4), n: dimArb(4),
    batch: shapeArb(0, 2, 3).chain((out) => fc.tuple(operandOf(out), operandOf(out))),
  });
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const arb = mmCase.chain(({ m, k, n, batch: [ba, bb] }) =>
        fc.tuple(input([...ba, ...(transA ? [k, m] : [m, k])]), input([...bb, ...(transB ? [n, k] : [k, n])]))
      );
      gradProp(`matmul transA=${transA} transB=${transB} (batched, broadcast batch dims)`, arb,
        (ins) => check((xs) => matmul(xs[0], xs[1], { transA, transB }), ins, `matmul ${transA} ${transB}`), 15);
    }
  }
  gradProp("matmul of a tensor with itself (x·xᵀ)", tensorArb(2, 3, "any", 4),
    (x) => check((xs) => matmul(xs[0], xs[0], { transB: true }), [x], "x xT"), 6);
  // the mask as gt(m, 0.5) of a 0/1 input: no ±h step changes it, so its numeric gradient is 0 too
  const rowsCase = fc.record({ b: dimArb(2), r: dimArb(4), k: dimArb(4), n: dimArb(4) })
    .chain(({ b, r, k, n }) => fc.tuple(input([b, r, k]), input([k, n]), indices([b, r], 2)));
  gradProp("matmulRows (dropped rows: no gradient to their x rows, nor to w through them)", rowsCase,
    ([x, w, m]) => check((xs) => matmulRows(xs[0], xs[1], gt(xs[2], 0.5)), [x, w, { data: Float32Array.from(m.data), shape: m.shape }], "matmulRows"), 10);
});

// ---------------------------------------------------------------------------------------------
// movement
// ---------------------------------------------------------------------------------------------

describe("gradients: movement", () => {
  gradProp("reshape (reversed dims, flatten, unit axes, -1)", fc.tuple(tensorArb(1, 3, "any", 4), fc.integer({ min: 0, max: 3 })),
    ([x, mode]) => {
      const s = x.shape;
      const target = [[...s].reverse(), [-1], [1, ...s, 1], [size(s), 1]][mode];
      return check((xs) => mul(reshape(xs[0], target), 1.5), [x], `reshape ${JSON.stringify(target)}`);
    });
  gradProp("transpose (random permutation)", shapeArb(1, 4, 4).chain((s) => fc.tuple(input(s), permArb(s.length))),
    ([x, perm]) => check((xs) => transpose(xs[0], perm), [x], `transpose [${perm}]`));
  gradProp("mT", tensorArb(2, 3, "any", 4), (x) => check((xs) => mT(xs[0]), [x], "mT"), 6);
  const sliceCase = shapeArb(1, 3, 5).chain((s) =>
    fc.tuple(fc.constant(s), fc.tuple(...s.map((d) => fc.integer({ min: 0, max: d - 1 }).chain((st) => fc.tuple(fc.constant(st), fc.integer({ min: 0, max: d - st }))))))
  );
  gradProp("slice (random boxes, including empty ones)", sliceCase.chain(([s, box]) => fc.tuple(input(s), fc.constant(box))),
    ([x, box]) => check((xs) => slice(xs[0], box.map((b) => b[0]), box.map((b) => b[1])), [x], `slice ${JSON.stringify(box)}`), 15);
  gradProp("sliceAxis with negative indices", tensorArb(1, 3, "any", 5).chain((x) => fc.tuple(fc.constant(x), fc.integer({ min: 0, max: x.shape.length - 1 }))),
    ([x, axis]) => {
      const n = x.shape[axis];
      return check((xs) => sliceAxis(xs[0], axis, -n, n > 1 ? -1 : undefined), [x], `sliceAxis ${axis}`);
    }, 8);
  const padCase = shapeArb(1, 3, 4).chain((s) =>
    fc.tuple(input(s), arrayOfN(s.length, fc.integer({ min: 0, max: 2 })), arrayOfN(s.length, fc.integer({ min: 0, max: 2 })), f32(-1, 1))
  );
  gradProp("pad (random before/after, constant value)", padCase,
    ([x, before, after, value]) => check((xs) => pad(xs[0], before, after, value), [x], `pad ${before} ${after}`), 15);
  const concatCase = shapeArb(1, 3, 4).chain((s) =>
    fc.tuple(fc.integer({ min: 0, max: s.length - 1 }), fc.integer({ min: 1, max: 3 })).chain(([axis, count]) =>
      fc.tuple(fc.constant(axis), arrayOfN(count, fc.integer({ min: 1, max: 3 }).chain((d) => input(s.map((v, i) => (i === axis ? d : v))))))
    )
  );
  gradProp("concat (1-3 tensors, random axis)", concatCase,
    ([axis, ins]) => check((xs) => concat(xs, axis), ins, `concat axis ${axis}`), 15);
  gradProp("concat of one tensor with itself", tensorArb(1, 2, "any", 4),
    (x) => check((xs) => concat([xs[0], xs[0]], 0), [x], "concat x,x"), 5);
  gradProp("stack (random axis)", shapeArb(0, 2, 4).chain((s) =>
    fc.tuple(fc.integer({ min: -(s.length + 1), max: s.length }), arrayOfN(2, input(s)))
  ), ([axis, ins]) => check((xs) => stack(xs, axis), ins, `stack ${axis}`), 8);
  gradProp("broadcastTo", shapeArb(0, 3, 4).chain((out) => fc.tuple(fc.constant(out), operandOf(out).chain((s) => input(s)))),
    ([out, x]) => check((xs) => broadcastTo(xs[0], out), [x], `broadcastTo ${out}`), 8);
});

// ---------------------------------------------------------------------------------------------
// indexing
// ---------------------------------------------------------------------------------------------

describe("gradients: indexing", () => {
  const gatherCase = fc.record({ rows: dimArb(5), rest: shapeArb(0, 2, 4), idx: shapeArb(0, 2, 4) }).chain(({ rows, rest, idx }) =>
    fc.tuple(input([rows, ...rest]), indices(idx, rows))
  );
  gradProp("gather (gradient w.r.t. the table; repeated indices accumulate)", gatherCase,
    (ins) => check((xs) => gather(xs[0], xs[1]), ins, "gather"), 15);
  const scatterCase = fc.record({ rows: dimArb(5), rest: shapeArb(0, 2, 4), idx: shapeArb(0, 2, 4) }).chain(({ rows, rest, idx }) =>
    fc.tuple(indices(idx, rows), input([...idx, ...rest]), fc.constant(rows))
  );
  gradProp("scatterAdd (gradient w.r.t. the updates)", scatterCase,
    ([idx, upd, rows]) => check((xs) => scatterAdd(xs[0], xs[1], rows), [idx, upd], "scatterAdd"), 15);
});

// ---------------------------------------------------------------------------------------------
// fused NN primitives
// ---------------------------------------------------------------------------------------------

describe("gradients: nn", () => {
  gradProp("softmax (last axis)", tensorArb(1, 3, "any", 5), (x) => check((xs) => softmax(xs[0]), [x], "softmax"), 15);
  // eps large enough that x/√(x² + eps) is smooth at the scale of the numeric step where a row is
  // one element near 0 (eps 1e-5: slope 316 there, saturating within ±0.003)
  gradProp("rmsNormalize (last axis; eps 0.1 and 0.5)", tensorArb(1, 3, "any", 5), (x) =>
    check((xs) => add(rmsNormalize(xs[0], 0.1), mul(rmsNormalize(xs[0], 0.5), 0.5)), [x], "rmsNormalize"), 15);
  // the gain fused into the row pass: x (any leading axes, or none) and the gain w [n] together
  gradProp("rmsNormalize with a gain (x [..., n] and w [n]; eps 0.1)", shapeArb(1, 3, 5).chain((s) => fc.tuple(input(s), input([s[s.length - 1]]))),
    (ins) => check((xs) => rmsNormalize(xs[0], 0.1, xs[1]), ins, "rmsNormalize with a gain"), 15);
  gradProp("logsumexp (last axis)", tensorArb(1, 3, "any", 5), (x) => check((xs) => logsumexp(xs[0]), [x], "logsumexp"), 15);
  gradProp("logSoftmax", tensorArb(1, 3, "any", 5), (x) => check((xs) => logSoftmax(xs[0]), [x], "logSoftmax"), 8);
  const ceCase = fc.tuple(shapeArb(0, 2, 4), dimArb(5)).chain(([batch, v]) => fc.tuple(input([...batch, v]), indices(batch, v)));
  gradProp("crossEntropy (gradient w.r.t. the logits)", ceCase,
    (ins) => check((xs) => crossEntropy(xs[0], xs[1]), ins, "crossEntropy"), 15);

  const blc = fc.tuple(dimArb(3), dimArb(5), dimArb(4));
  gradProp("conv1dCausal (x and w)", fc.tuple(blc, dimArb(4)).chain(([[B, L, C], K]) => fc.tuple(input([B, L, C]), input([C, K]))),
    (ins) => check((xs) => conv1dCausal(xs[0], xs[1]), ins, "conv1dCausal"), 15);
  gradProp("linearSigmoid (x, w and b)", fc.tuple(shapeArb(1, 2, 4), dimArb(6)).chain(([lead, d]) => fc.tuple(input([...lead, d]), input([d, 1]), input([1]))),
    (ins) => check((xs) => linearSigmoid(xs[0], xs[1], xs[2]), ins, "linearSigmoid"), 15);
  gradProp("conv1dCausalSilu (x, w, b and the prefix)", fc.tuple(dimArb(2), dimArb(5), dimArb(4), fc.integer({ min: 2, max: 4 })).chain(([B, L, C, K]) =>
    fc.tuple(input([B, L, C]), input([C, K]), input([C]), input([B, K - 1, C]))),
    (ins) => check((xs) => conv1dCausalSilu(xs[0], xs[1], xs[2], xs[3]), ins, "conv1dCausalSilu"), 15);
  gradProp("linearSoftplus (x, w and b)", fc.tuple(shapeArb(1, 2, 4), dimArb(5), dimArb(6)).chain(([lead, r, c]) => fc.tuple(input([...lead, r]), input([r, c]), input([c]))),
    (ins) => check((xs) => linearSoftplus(xs[0], xs[1], xs[2]), ins, "linearSoftplus"), 15);
  gradProp("addMatmul (c, a, w and the row scale)", fc.tuple(shapeArb(1, 2, 4), dimArb(5), dimArb(6)).chain(([lead, K, N]) =>
    fc.tuple(input([...lead, N]), input([...lead, K]), input([K, N]), input(lead))),
    (ins) => check((xs) => addMatmul(xs[0], xs[1], xs[2], xs[3]), ins, "addMatmul"), 15);
  gradProp("addMatmul without a scale (c, a and w)", fc.tuple(shapeArb(1, 2, 4), dimArb(5), dimArb(6)).chain(([lead, K, N]) =>
    fc.tuple(input([...lead, N]), input([...lead, K]), input([K, N]))),
    (ins) => check((xs) => addMatmul(xs[0], xs[1], xs[2]), ins, "addMatmul without a scale"), 10);
  gradProp("foldWeight (a, b and the column scale; b transposed or not)", fc.tuple(dimArb(4), dimArb(5), dimArb(6), fc.boolean()).chain(([M, K, N, transB]) =>
    fc.tuple(input([M, K]), input(transB ? [N, K] : [K, N]), input([N]), fc.constant(transB))),
    ([a, b, s, transB]) => check((xs) => foldWeight(xs[0], xs[1], xs[2], { transB }), [a, b, s], `foldWeight${transB ? " transB" : ""}`), 15);
  gradProp("foldWeight without a scale (a and b)", fc.tuple(dimArb(4), dimArb(5), dimArb(6), fc.boolean()).chain(([M, K, N, transB]) =>
    fc.tuple(input([M, K]), input(transB ? [N, K] : [K, N]), fc.constant(transB))),
    ([a, b, transB]) => check((xs) => foldWeight(xs[0], xs[1], undefined, { transB }), [a, b], `foldWeight without a scale${transB ? " transB" : ""}`), 10);
  gradProp("ssmGate (y, u, D and z)", shapeArb(1, 3, 4).chain((sh) => fc.tuple(input(sh), input(sh), input([sh[sh.length - 1]]), input(sh))),
    (ins) => check((xs) => ssmGate(xs[0], xs[1], xs[2], xs[3]), ins, "ssmGate"), 15);
  gradProp("conv1dCausal with a prefix (x, w and the prefix)", fc.tuple(blc, dimArb(4)).chain(([[B, L, C], K]) => fc.tuple(input([B, L, C]), input([C, K]), input([B, K - 1, C]))),
    (ins) => check((xs) => conv1dCausal(xs[0], xs[1], xs[2]), ins, "conv1dCausal with a prefix"), 15);
  gradProp("conv1dCausalGradX (g and w, via bind)", fc.tuple(blc, dimArb(4)).chain(([[B, L, C], K]) => fc.tuple(input([B, L, C]), input([C, K]))),
    (ins) => check((xs) => bind("conv1dCausalGradX", xs, {}), ins, "conv1dCausalGradX"), 15);
  gradProp("conv1dCausalGradW (g and x, via bind)", fc.tuple(blc, dimArb(4)).chain(([[B, L, C], K]) => fc.tuple(input([B, L, C]), input([B, L, C]), fc.constant(K))),
    ([g, x, k]) => check((xs) => bind("conv1dCausalGradW", xs, { k }), [g, x], `conv1dCausalGradW k=${k}`), 15);

  const bls = fc.tuple(dimArb(3), dimArb(5), dimArb(4));
  gradProp("scan (a, b and h0)", bls.chain(([B, L, S]) => fc.tuple(input([B, L, S], "decay"), input([B, L, S]), input([B, S]))),
    (ins) => check((xs) => scan(xs[0], xs[1], xs[2]), ins, "scan"), 15);
  gradProp("scanReverse (a and g, via bind)", bls.chain(([B, L, S]) => fc.tuple(input([B, L, S], "decay"), input([B, L, S]))),
    (ins) => check((xs) => bind("scanReverse", xs, {}), ins, "scanReverse"), 15);
});

// ---------------------------------------------------------------------------------------------
// composites: several primitives chained (accumulation of cotangents along shared paths)
// ---------------------------------------------------------------------------------------------

describe("gradients: composites", () => {
  gradProp("a small MLP with softmax cross-entropy", fc.tuple(dimArb(3), dimArb(4), dimArb(4), dimArb(4)).chain(([n, d, h, v]) =>
    fc.tuple(input([n, d]), input([d, h]), input([h]), input([h, v]), indices([n], v))
  ), (ins) => check((xs) => {
    const hid = silu(add(matmul(xs[0], xs[1]), xs[2]));
    return mean(crossEntropy(matmul(hid, xs[3]), xs[4]));
  }, ins, "mlp"), 8);
  gradProp("a gated scan block (conv → silu → scan → mul)", fc.tuple(dimArb(2), dimArb(4), dimArb(3), dimArb(3)).chain(([B, L, C, K]) =>
    fc.tuple(input([B, L, C]), input([C, K]), input([B, L, C], "decay"), input([B, C]))
  ), (ins) => check((xs) => {
    const u = silu(conv1dCausal(xs[0], xs[1]));
    const h = scan(sigmoid(xs[2]), u, xs[3]);
    return mul(h, u);
  }, ins, "scan block", { eps: 5e-3 }), 8); // a smaller step: this chain has more curvature (truncation error ∝ h²)
});

// ---------------------------------------------------------------------------------------------
// the checker itself: a wrong VJP must be caught
// ---------------------------------------------------------------------------------------------

/** Temporarily replaces a primitive's VJP. */
async function withVjp<K extends Parameters<typeof primitive>[0]>(name: K, vjp: (orig: PrimDef<K>["vjp"]) => PrimDef<K>["vjp"], fn: () => Promise<void>): Promise<void> {
  const def = primitive(name);
  const orig = def.vjp;
  def.vjp = vjp(orig);
  try {
    await fn();
  } finally {
    def.vjp = orig;
  }
}

async function expectCaught(p: Promise<unknown>): Promise<string> {
  let msg = "";
  try {
    await p;
  } catch (e) {
    msg = (e as Error).message;
  }
  expect(msg).toContain("gradient mismatch");
  expect(msg).toMatch(/Worst: input #\d+ at \[[\d, ]*\] \(flat \d+\)/);
  return msg;
}

describe("gradcheck self-test", () => {
  // fixed, well-spread values (1.3, -0.6, 1.9, ... ; distinct, away from 0), offset per input by `seed`
  const fixed = (shape: number[], seed: number, kind: Kind = "any"): GradInput => {
    const n = size(shape);
    const scaleBy = kind === "decay" ? 0.5 : 1;
    const data = Float32Array.from({ length: n }, (_, i) => scaleBy * (((i * 7 + seed * 3) % 11) / 5 - 1.1 + 0.05 * ((i + seed) % 3) + (i % 2 ? 0.01 : -0.01)));
    return { data, shape };
  };
  for (const b of testBackends()) {
    test(`[${b}] correct VJPs pass and report their worst element`, async () => {
      if (!(await useBackend(b))) return;
      const r = await checkGradients((xs) => square(xs[0]), [fixed([2, 3], 1)]);
      expect(r.checked).toBe(6);
      expect(r.worst!.ratio).toBeLessThan(1);
    });
    test(`[${b}] a missing factor 2 (square) is caught`, async () => {
      if (!(await useBackend(b))) return;
      await withVjp("unary", (orig) => (g, ins, y, p) => p.op === "square" ? [mul(g, ins[0])] : orig(g, ins, y, p), () =>
        expectCaught(checkGradients((xs) => square(xs[0]), [fixed([2, 3], 2)])).then(() => {}));
    });
    test(`[${b}] a sign flip (tanh, sub's second operand) is caught`, async () => {
      if (!(await useBackend(b))) return;
      await withVjp("unary", (orig) => (g, ins, y, p) => p.op === "tanh" ? orig(neg(g), ins, y, p) : orig(g, ins, y, p), () =>
        expectCaught(checkGradients((xs) => tanh(xs[0]), [fixed([3], 3)])).then(() => {}));
      await withVjp("binary", (orig) => (g, ins, y, p) => p.op === "sub" ? orig(g, ins, y, { op: "add" }) : orig(g, ins, y, p), () =>
        expectCaught(checkGradients((xs) => sub(xs[0], xs[1]), [fixed([2, 2], 4), fixed([2], 5)])).then(() => {}));
    });
    test(`[${b}] a wrong transpose (matmul on square matrices) is caught, and the message names the element`, async () => {
      if (!(await useBackend(b))) return;
      await withVjp("matmul", (orig) => (g, ins, y, p) => {
        const [da, db] = orig(g, ins, y, p);
        return [da && transpose(da), db];
      }, async () => {
        const msg = await expectCaught(checkGradients((xs) => matmul(xs[0], xs[1]), [fixed([3, 3], 6), fixed([3, 3], 7)], { label: "bad matmul" }));
        expect(msg).toContain("checkGradients[bad matmul]");
        expect(msg).toContain("input #0");
      });
    });
    test(`[${b}] max's gradient sent to every element, and scan's missing a₀ factor, are caught`, async () => {
      if (!(await useBackend(b))) return;
      await withVjp("reduce", (orig) => (g, ins, y, p) => p.op === "max" ? [broadcastTo(g, ins[0].shape)] : orig(g, ins, y, p), () =>
        expectCaught(checkGradients((xs) => max(xs[0], 1), [fixed([2, 4], 8, "distinct")])).then(() => {}));
      await withVjp("scan", (orig) => (g, ins, y, p) => {
        const [da, dbb] = orig(g, ins, y, p);
        const lam = bind("scanReverse", [ins[0], g], {});
        return [da, dbb, reshape(sliceAxis(lam, 1, 0, 1), [...ins[2].shape])];
      }, () =>
        expectCaught(checkGradients((xs) => scan(xs[0], xs[1], xs[2]), [fixed([1, 3, 2], 9, "decay"), fixed([1, 3, 2], 10), fixed([1, 2], 11)])).then(() => {}));
    });
    test(`[${b}] perturbed outputs read in batches: more evaluations than one batch, an f that returns an input, an error in the last batch caught`, async () => {
      if (!(await useBackend(b))) return;
      // 2 × 70 evaluations of x0 (three batches of up to 64), and f = x1 itself: its gradient is w, x0's is 0
      await expectNoLeak(() => checkGradients((xs) => xs[1], [fixed([70], 14), fixed([5], 15)]));
      const rep = await checkGradients((xs) => mul(xs[0], xs[0]), [fixed([7, 10], 16)]);
      expect(rep.checked).toBe(70);
      expect(rep.worst!.ratio).toBeLessThan(1);
      // only the last element's VJP is wrong: found in the last batch of evaluations
      const n = 70, last3 = Float32Array.from({ length: n }, (_, i) => (i === n - 1 ? 3 : 1));
      await withVjp("unary", (orig) => (g, ins, y, p) => p.op === "square" ? [mul(orig(g, ins, y, p)[0]!, fromArray(last3, [n]))] : orig(g, ins, y, p), () =>
        expectCaught(checkGradients((xs) => square(xs[0]), [fixed([70], 17)])).then((msg) => expect(msg).toContain("at [69] (flat 69)")));
    });
    test(`[${b}] gradcheck leaves nothing allocated, also when it fails`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(() => checkGradients((xs) => softmax(xs[0]), [fixed([2, 3], 12)]));
      await expectNoLeak(() =>
        withVjp("unary", (orig) => (g, ins, y, p) => p.op === "exp" ? [g] : orig(g, ins, y, p), () =>
          expectCaught(checkGradients((xs) => exp(xs[0]), [fixed([4], 13)])).then(() => {}))
      );
    });
  }
});

describe("VJPs skip the gradients nobody asked for", () => {
  for (const b of testBackends()) {
    test(`[${b}] constants' gradients cost no launches; the wanted gradients are unchanged`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const x = fromArray(Array.from({ length: 12 }, (_, i) => (i % 5) - 2), [3, 4]);
        const w = fromArray(Array.from({ length: 20 }, (_, i) => ((i * 7) % 9) / 4 - 1), [4, 5]);
        const c = fromArray([0.5, -1, 2, 1.5, -0.25], [5]);
        const f = (a: Tensor, m: Tensor, k: Tensor) => sum(where(gt(k, 0), mul(matmul(a, m), k), div(matmul(a, m), add(square(k), 1))));
        // only x: W and c are constants of the function (closed over)
        resetCounters();
        const onlyX = valueAndGrad((a: Tensor) => f(a, w, c))(x);
        const fewer = readCounters().launches;
        resetCounters();
        const all = valueAndGrad((t: { a: Tensor; m: Tensor; k: Tensor }) => f(t.a, t.m, t.k))({ a: x, m: w, k: c });
        const more = readCounters().launches;
        // the matmul's dW twice, mul's and div's dc (products and sums to [5]), where's and add's
        expect(more - fewer).toBeGreaterThanOrEqual(8);
        expect(Array.from(await onlyX.grads.data())).toEqual(Array.from(await all.grads.a.data()));
        expect(await onlyX.value.item()).toBe(await all.value.item());
        disposeTree([onlyX, all, x, w, c]);
      });
    });
  }
});

describe("unaryGrad: the fused VJP of unary ops equals the composite one", () => {
  for (const b of testBackends()) {
    test(`[${b}] every fused op, on ordinary values, zeros and signed values`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const be = getBackend() as { prefersComposite?: (p: string) => boolean };
        const own = Object.hasOwn(be, "prefersComposite");
        const xs = [-3.5, -1, -0.25, 0, 0.3, 1, 2.75, 7];
        const ws = [0.5, -1, 2, 1, -0.75, 3, 1.25, -2];
        for (const op of GRAD_UNARY_OPS) {
          // sqrt, rsqrt and reciprocal only where they are finite and differentiable
          const pos = op === "sqrt" || op === "rsqrt";
          const vals = xs.map((v) => (pos ? Math.abs(v) + 0.5 : op === "reciprocal" && v === 0 ? 0.1 : v));
          const x = fromArray(vals, [2, 4]), w = fromArray(ws, [2, 4]);
          const f = (a: Tensor) => sum(mul(bind("unary", [a], { op }), w));
          const runWith = async (composite: boolean) => {
            if (composite) be.prefersComposite = () => true;
            try {
              resetCounters();
              const r = valueAndGrad(f)(x);
              const launches = readCounters().launches;
              const d = Array.from(await r.grads.data());
              disposeTree(r);
              return { d, launches };
            } finally {
              if (!own) delete be.prefersComposite;
            }
          };
          const fused = await runWith(false), comp = await runWith(true);
          for (let i = 0; i < vals.length; i++) {
            const tol = 1e-6 + 2e-6 * Math.abs(comp.d[i]);
            if (!(Math.abs(fused.d[i] - comp.d[i]) <= tol)) throw new Error(`${op} at ${vals[i]}: fused ${fused.d[i]} vs composite ${comp.d[i]}`);
          }
          if (b !== "wasm") expect(fused.launches).toBeLessThanOrEqual(comp.launches); // wasm keeps the composite
          disposeTree([x, w]);
        }
      });
    });
  }
});

describe("rmsNorm with its gain: one launch, the numbers of mul(rmsNormalize(x), w)", () => {
  // rows not a multiple of 64 (the WebGPU workgroup), n not a multiple of 4 and above 64 (several
  // lanes per row), a leading batch, and one row without leading axes (dw needs no sum)
  const shapes = [[2, 67, 13], [3, 130], [5]];
  for (const b of testBackends()) {
    test(`[${b}] forward, dx and dw against the two-launch composite, 3 launches fewer a norm; x or w alone; a wrong gain is refused`, async () => {
      if (!(await useBackend(b))) return;
      // the CPU kernels round (x·r)·w as rmsNorm then mul do: bit for bit. WebGPU runs the same
      // f32 operations in one shader (no sums differ), stated here with a tolerance of a few ulps.
      const exact = b !== "webgpu";
      const near = (got: number, want: number) => (exact ? Object.is(got, want) : Math.abs(got - want) <= 1e-6 + 1e-6 * Math.abs(want));
      const same = (what: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) if (!near(got[i], want[i])) throw new Error(`${what} element ${i}: fused ${got[i]} vs composite ${want[i]}`);
      };
      await expectNoLeak(async () => {
        for (const shape of shapes) {
          const n = shape[shape.length - 1], len = shape.reduce((a, c) => a * c, 1);
          const x = fromArray(Array.from({ length: len }, (_, i) => Math.sin(i * 1.3) * 2 + (i % 5) * 0.3), shape);
          const w = fromArray(Array.from({ length: n }, (_, j) => 0.5 + Math.cos(j * 0.7)), [n]);
          const c = fromArray(Array.from({ length: len }, (_, i) => Math.cos(i * 0.37)), shape);
          const fused = (t: { x: Tensor; w: Tensor }) => sum(mul(rmsNormalize(t.x, 1e-5, t.w), c));
          const comp = (t: { x: Tensor; w: Tensor }) => sum(mul(mul(rmsNormalize(t.x, 1e-5), t.w), c));
          resetCounters();
          const yf = tidy(() => rmsNormalize(x, 1e-5, w)); // (wasm: the composite's intermediates)
          const fwdLaunches = readCounters().launches;
          const yc = tidy(() => mul(rmsNormalize(x, 1e-5), w));
          same(`${JSON.stringify(shape)} forward`, await yf.data(), await yc.data());
          if (b !== "wasm") expect(fwdLaunches).toBe(1); // wasm keeps the composite (and its mul)
          // forward + backward launches, the fused norm's against the composite's. The gain's first
          // VJP ran the composite's backward op for op (mul, rmsNormGrad, rmsNorm, mul, sum), so
          // fused and composite were level; now rmsNormGradW's one pass and dw's sum: 3 fewer a
          // norm (1 forward, 2 backward) with both gradients, 1 (the forward) with either alone.
          // wasm runs the composite (prefersComposite): level.
          const launches = <T>(f: () => T): [T, number] => {
            resetCounters();
            const r = f();
            return [r, readCounters().launches];
          };
          const drop = (perNorm: number) => (b === "wasm" ? 0 : perNorm);
          const [gf, lf] = launches(() => valueAndGrad(fused)({ x, w }));
          const [gc, lc] = launches(() => valueAndGrad(comp)({ x, w }));
          expect(lf).toBe(lc - drop(3));
          same(`${JSON.stringify(shape)} dx`, await gf.grads.x.data(), await gc.grads.x.data());
          same(`${JSON.stringify(shape)} dw`, await gf.grads.w.data(), await gc.grads.w.data());
          // two norms in a chain (the gain used twice: its two cotangents add as in the composite)
          const [g2f, l2f] = launches(() => valueAndGrad((t: { x: Tensor; w: Tensor }) => sum(mul(rmsNormalize(rmsNormalize(t.x, 1e-5, t.w), 1e-3, t.w), c)))({ x, w }));
          const [g2c, l2c] = launches(() =>
            valueAndGrad((t: { x: Tensor; w: Tensor }) => sum(mul(mul(rmsNormalize(mul(rmsNormalize(t.x, 1e-5), t.w), 1e-3), t.w), c)))({ x, w }));
          expect(l2f).toBe(l2c - 2 * drop(3));
          same(`${JSON.stringify(shape)} two norms dx`, await g2f.grads.x.data(), await g2c.grads.x.data());
          same(`${JSON.stringify(shape)} two norms dw`, await g2f.grads.w.data(), await g2c.grads.w.data());
          // w a constant: dx alone (mul, rmsNormGrad), no g ⊙ x̂ written; x a constant: dw alone
          // (rmsNormGradW, its dx dropped, then the sum: one launch fewer than rmsNorm, mul, sum)
          const [onlyX, lfx] = launches(() => valueAndGrad((a: Tensor) => sum(mul(rmsNormalize(a, 1e-5, w), c)))(x));
          const [cx, lcx] = launches(() => valueAndGrad((a: Tensor) => sum(mul(mul(rmsNormalize(a, 1e-5), w), c)))(x));
          const [onlyW, lfw] = launches(() => valueAndGrad((v: Tensor) => sum(mul(rmsNormalize(x, 1e-5, v), c)))(w));
          const [cw, lcw] = launches(() => valueAndGrad((v: Tensor) => sum(mul(mul(rmsNormalize(x, 1e-5), v), c)))(w));
          expect([lfx, lfw]).toEqual([lcx - drop(1), lcw - drop(1)]);
          same(`${JSON.stringify(shape)} dx (x only)`, await onlyX.grads.data(), await gc.grads.x.data());
          same(`${JSON.stringify(shape)} dw (w only)`, await onlyW.grads.data(), await gc.grads.w.data());
          disposeTree([x, w, c, yf, yc, gf, gc, g2f, g2c, onlyX, cx, onlyW, cw]);
        }
        const x = fromArray(Array.from({ length: 6 }, (_, i) => i + 1), [2, 3]);
        const bad: [number[], number[] | Int32Array][] = [[[4], [1, 2, 3, 4]], [[1], [2]], [[2, 3], [1, 2, 3, 4, 5, 6]]];
        for (const [ws, wv] of bad) {
          const w = fromArray(wv, ws);
          expect(() => rmsNormalize(x, 1e-5, w)).toThrow(new RegExp(`rmsNorm.*gain \\[${ws.join(", ")}\\].*x is \\[2, 3\\]`));
          w.dispose();
        }
        const wi = fromArray(Int32Array.of(1, 2, 3), [3], "i32");
        expect(() => rmsNormalize(x, 1e-5, wi)).toThrow(/rmsNorm.*f32.*i32/);
        disposeTree([x, wi]);
      });
    });
  }
});

describe("row-pass VJPs: softmaxGrad and rmsNorm equal their composites", () => {
  for (const b of testBackends()) {
    test(`[${b}] softmax's and rmsNormalize's fused passes against the composite ops, rows of 1, 50 and 300`, async () => {
      if (!(await useBackend(b))) return;
      await expectNoLeak(async () => {
        const be = getBackend() as { prefersComposite?: (p: string) => boolean };
        const own = Object.hasOwn(be, "prefersComposite");
        for (const n of [1, 50, 300]) {
          const vals = Array.from({ length: 3 * n }, (_, i) => Math.sin(i * 1.7) * 3 + (i % 7) * 0.25);
          const wv = Array.from({ length: 3 * n }, (_, i) => Math.cos(i * 0.9));
          const x = fromArray(vals, [3, n]), w = fromArray(wv, [3, n]);
          const fns: [string, (a: Tensor) => Tensor][] = [
            ["softmax", (a) => sum(mul(softmax(a), w))],
            ["rmsNormalize", (a) => sum(mul(rmsNormalize(a, 1e-5), w))],
          ];
          for (const [name, f] of fns) {
            const runWith = async (composite: boolean) => {
              if (composite) be.prefersComposite = () => true;
              try {
                const r = valueAndGrad(f)(x);
                const out = { v: await r.value.item(), d: Array.from(await r.grads.data()) };
                disposeTree(r);
                return out;
              } finally {
                if (!own) delete be.prefersComposite;
              }
            };
            const fused = await runWith(false), comp = await runWith(true);
            expect(Math.abs(fused.v - comp.v)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(comp.v)));
            for (let i = 0; i < comp.d.length; i++) {
              const tol = 2e-6 + 1e-5 * Math.abs(comp.d[i]);
              if (!(Math.abs(fused.d[i] - comp.d[i]) <= tol)) throw new Error(`${name} n=${n} element ${i}: fused ${fused.d[i]} vs composite ${comp.d[i]}`);
            }
          }
          disposeTree([x, w]);
        }
      });
    });
  }
});
