/**
 * Compile-time shape checks. `tsc --noEmit` (the typecheck step of scripts/test.sh) checks this
 * file: every `@ts-expect-error` line must be an error (tsc reports an unused directive
 * otherwise), every `Expect<Equal<…>>` must hold, and the positive cases must compile.
 * The runtime tests at the end show that the same mismatches throw a ShapeError at run time
 * (Bun and Deno strip the types and run the code unchecked).
 *
 * What tsc prints for a mismatch (the text is in the parameter type):
 *
 *   error TS2345: Argument of type 'Tensor<readonly [4, 5], "f32">' is not assignable to parameter
 *   of type 'Tensor<readonly [4, 5], DType> & "matmul: inner dimensions differ: a is [2, 3], b is [4, 5] (3 vs 4)"'.
 *
 *   error TS2345: Argument of type 'Tensor<readonly [4], "f32">' is not assignable to parameter of
 *   type 'Tensor<readonly [4], "f32"> & "add: shapes [2, 3] and [4] do not broadcast"'.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { testBackends, useBackend } from "../../../test/support/backends.ts";
import {
  add, dim, fromArray, matmul, maximum, mul, ShapeError, sub, type Broadcast, type CheckBroadcast, type CheckMatmul,
  type MatmulShape, type Tensor, type Var,
} from "../src/index.ts";

// ---------------------------------------------------------------------------------------------
// type-level assertions
// ---------------------------------------------------------------------------------------------

/** True when X and Y are the same type (not merely mutually assignable). */
type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false;
/** Compiles only when T is `true`. */
type Expect<T extends true> = T;

type Seq = Var<"Seq">;
type Batch = Var<"Batch">;

// shapes of the rules themselves
export type RuleChecks = [
  Expect<Equal<Broadcast<[2, 3], [3]>, [2, 3]>>,
  Expect<Equal<Broadcast<[2, 1, 3], [4, 1]>, [2, 4, 3]>>,
  Expect<Equal<Broadcast<[], [5]>, [5]>>,
  Expect<Equal<Broadcast<[1], [2, 3]>, [2, 3]>>,
  Expect<Equal<Broadcast<[Batch, Seq, 4], [Seq, 1]>, [Batch, Seq, 4]>>,
  Expect<Equal<CheckBroadcast<"add", [2, 3], [3]>, unknown>>,
  Expect<Equal<CheckBroadcast<"add", [2, 3], [4]>, "add: shapes [2, 3] and [4] do not broadcast">>,
  Expect<Equal<CheckBroadcast<"add", [Seq, 4], [Batch, 4]>, "add: shapes [Seq, 4] and [Batch, 4] do not broadcast">>,
  Expect<Equal<CheckMatmul<[2, 3], [3, 5]>, unknown>>,
  Expect<Equal<CheckMatmul<[2, 3], [4, 5]>, "matmul: inner dimensions differ: a is [2, 3], b is [4, 5] (3 vs 4)">>,
  Expect<Equal<MatmulShape<[2, 3], [3, 5]>, [2, 5]>>,
  Expect<Equal<MatmulShape<[4, 1, 2, 3], [5, 3, 7]>, [4, 5, 2, 7]>>,
  // plain `number` is "unknown": it is compatible with everything (the run-time check catches it)
  Expect<Equal<CheckMatmul<[2, number], [4, 5]>, unknown>>,
  Expect<Equal<CheckBroadcast<"add", number[], [4]>, unknown>>,
];

/**
 * Never called: only type-checked. (Calling it would throw the run-time ShapeErrors that the
 * runtime tests below check.)
 */
export function compileTimeChecks(): void {
  // fromArray keeps a literal shape's literal type, with or without `as const`
  const a = fromArray(new Float32Array(6), [2, 3]);
  const b = fromArray(new Float32Array(15), [3, 5] as const);
  const c = fromArray(new Float32Array(20), [4, 5] as [4, 5]);
  const v = fromArray(new Float32Array(4), [4]);
  const idx = fromArray(new Int32Array(3), [3], "i32");
  type _fromArray = [
    Expect<Equal<typeof a, Tensor<readonly [2, 3], "f32">>>,
    Expect<Equal<typeof b, Tensor<readonly [3, 5], "f32">>>,
    Expect<Equal<typeof c, Tensor<[4, 5], "f32">>>,
    Expect<Equal<typeof idx, Tensor<readonly [3], "i32">>>,
  ];

  // ---- matmul: positive cases and their result shapes
  const ab = matmul(a, b);
  type _ab = Expect<Equal<typeof ab, Tensor<[2, 5]>>>;
  const xcT = matmul(fromArray(new Float32Array(10), [2, 5]), c, { transB: true }); // [2, 5]·[4, 5]ᵀ
  type _xcT = Expect<Equal<typeof xcT, Tensor<[2, 4]>>>;
  const aTa = matmul(a, a, { transA: true }); // aᵀ·a: [3, 2]·[2, 3]
  type _aTa = Expect<Equal<typeof aTa, Tensor<[3, 3]>>>;
  const aaT = matmul(a, a, { transB: true }); // a·aᵀ: [2, 3]·[3, 2]
  type _aaT = Expect<Equal<typeof aaT, Tensor<[2, 2]>>>;
  const batched = matmul(fromArray(new Float32Array(24), [4, 1, 2, 3]), fromArray(new Float32Array(105), [5, 3, 7]));
  type _batched = Expect<Equal<typeof batched, Tensor<[4, 5, 2, 7]>>>;

  // ---- matmul: mismatches
  // @ts-expect-error -- matmul: inner dimensions differ: a is [2, 3], b is [4, 5] (3 vs 4)
  matmul(a, c);
  // @ts-expect-error -- [3, 5]·[2, 3]: 5 vs 2
  matmul(b, a);
  // @ts-expect-error -- aᵀ is [3, 2], b is [3, 5]: 2 vs 3
  matmul(a, b, { transA: true });
  // a flag only known at run time is not checked at compile time (the run-time check stays)
  const flag: boolean = Math.random() < 2;
  matmul(a, b, { transA: flag });

  // ---- branded dimensions: Var<"Seq"> only equals itself
  const L = dim<"Seq">(4), N = dim<"Batch">(4);
  const xs = fromArray(new Float32Array(8), [2, L]);
  const ys = fromArray(new Float32Array(20), [L, 5]);
  const yb = fromArray(new Float32Array(20), [N, 5]);
  const xy = matmul(xs, ys);
  type _xy = Expect<Equal<typeof xy, Tensor<[2, 5]>>>;
  const seqMat = matmul(fromArray(new Float32Array(12), [L, 3]), b);
  type _seqMat = Expect<Equal<typeof seqMat, Tensor<[Seq, 5]>>>;
  // @ts-expect-error -- matmul: inner dimensions differ: a is [2, Seq], b is [Batch, 5] (Seq vs Batch)
  matmul(xs, yb);
  const bs = fromArray(new Float32Array(32), [N, L, 4]);
  const s4 = fromArray(new Float32Array(16), [L, 4]);
  const b4 = fromArray(new Float32Array(16), [N, 4]);
  const sum3 = add(bs, s4);
  type _sum3 = Expect<Equal<typeof sum3, Tensor<[Batch, Seq, 4]>>>;
  // @ts-expect-error -- add: shapes [Batch, Seq, 4] and [Batch, 4] do not broadcast
  add(bs, b4);
  // @ts-expect-error -- a Var<"Seq"> is not a Var<"Batch">
  const wrong: Var<"Batch"> = L;
  void wrong;
  // a plain number is not a branded size either (brand it with dim())
  // @ts-expect-error -- number is not Var<"Seq">
  const unbranded: Var<"Seq"> = 4;
  void unbranded;

  // ---- broadcasting binary ops: positive cases
  const av = add(a, fromArray(new Float32Array(3), [3]));
  type _av = Expect<Equal<typeof av, Tensor<[2, 3]>>>;
  const outer = mul(fromArray(new Float32Array(2), [2, 1]), fromArray(new Float32Array(3), [1, 3]));
  type _outer = Expect<Equal<typeof outer, Tensor<[2, 3]>>>;
  const withScalar = sub(a, 1);
  type _withScalar = Expect<Equal<typeof withScalar, Tensor<[2, 3]>>>;
  const scalarFirst = mul(2, a);
  type _scalarFirst = Expect<Equal<typeof scalarFirst, Tensor<[2, 3]>>>;

  // ---- broadcasting binary ops: mismatches (each message names the op)
  // @ts-expect-error -- add: shapes [2, 3] and [4] do not broadcast
  add(a, v);
  // @ts-expect-error -- mul: shapes [3, 5] and [2, 3] do not broadcast
  mul(b, a);
  // @ts-expect-error -- maximum: shapes [2, 3] and [4, 5] do not broadcast
  maximum(a, c);

  // ---- typed variables
  // @ts-expect-error -- a [2, 3] tensor is not a [3, 2] tensor
  const t32: Tensor<readonly [3, 2]> = a;
  void t32;
  // an unknown shape (number[]) still flows anywhere: run-time checks cover it
  const dyn = fromArray(new Float32Array(6), [2, 3] as number[]);
  matmul(dyn, c);
  add(a, dyn);
}

// ---------------------------------------------------------------------------------------------
// run time: the same mismatches are ShapeErrors when the types are bypassed
// ---------------------------------------------------------------------------------------------

function shapeErrorOf(f: () => unknown): ShapeError {
  try {
    f();
  } catch (e) {
    if (e instanceof ShapeError) return e;
    throw e;
  }
  throw new Error("expected a ShapeError, nothing was thrown");
}

describe("compile-time shape checks", () => {
  for (const be of testBackends()) {
    test(`[${be}] the mismatches rejected at compile time throw ShapeError at run time`, async () => {
      if (!(await useBackend(be))) return;
      const a = fromArray(new Float32Array(6), [2, 3]);
      const b = fromArray(new Float32Array(15), [3, 5]);
      const c = fromArray(new Float32Array(20), [4, 5]);
      const v = fromArray(new Float32Array(4), [4]);
      const L = dim<"Seq">(4), N = dim<"Batch">(3);
      const xs = fromArray(new Float32Array(8), [2, L]);
      const yb = fromArray(new Float32Array(15), [N, 5]);
      const bs = fromArray(new Float32Array(48), [N, L, 4]);
      const b4 = fromArray(new Float32Array(12), [N, 4]);
      const errs = [
        // @ts-expect-error -- inner dimensions 3 vs 4
        shapeErrorOf(() => matmul(a, c)),
        // @ts-expect-error -- inner dimensions 5 vs 2
        shapeErrorOf(() => matmul(b, a)),
        // @ts-expect-error -- aᵀ [3, 2] · [3, 5]
        shapeErrorOf(() => matmul(a, b, { transA: true })),
        // @ts-expect-error -- Seq vs Batch (4 vs 3 here)
        shapeErrorOf(() => matmul(xs, yb)),
        // @ts-expect-error -- [2, 3] and [4]
        shapeErrorOf(() => add(a, v)),
        // @ts-expect-error -- [3, 5] and [2, 3]
        shapeErrorOf(() => mul(b, a)),
        // @ts-expect-error -- [2, 3] and [4, 5]
        shapeErrorOf(() => maximum(a, c)),
        // @ts-expect-error -- [Batch, Seq, 4] and [Batch, 4]: 4 vs 3 on axis -2
        shapeErrorOf(() => add(bs, b4)),
      ];
      const want = [
        ["matmul", "[2, 3]", "[4, 5]"],
        ["matmul", "[3, 5]", "[2, 3]"],
        ["matmul", "[2, 3]ᵀ", "[3, 5]"],
        ["matmul", "[2, 4]", "[3, 5]"],
        ["add", "[2, 3]", "[4]"],
        ["mul", "[3, 5]", "[2, 3]"],
        ["max", "[2, 3]", "[4, 5]"],
        ["add", "[3, 4, 4]", "[3, 4]"],
      ];
      errs.forEach((e, i) => {
        for (const frag of want[i]) expect(e.message).toContain(frag);
      });
      // a literal shape is still a plain array at run time
      expect(a.shape).toEqual([2, 3]);
      expect(Array.isArray(a.shape)).toBe(true);
      for (const t of [a, b, c, v, xs, yb, bs, b4]) t.dispose();
    });
  }
});
