/**
 * The wasm kernels of the pool reads' indexed primitives (indexedDot, indexedSum, indexedOuter;
 * wasm/indexed.c) against the TypeScript reference kernels (src/cpu/indexed.ts), run directly
 * through Backend.run:
 *
 * - bit-identical to the reference, with empty slots (−1) anywhere in a row (the dot's four-slot
 *   blocks and its tail), slot counts that are and are not multiples of 4, odd row widths, special
 *   values (NaN, ±Inf, ±0, huge), zero weights (skipped by the outer sums), many entries on few
 *   rows (long sums in index order), a second pair, and sizes that run in parallel;
 * - bit-identical with 1, 2 and 3 threads;
 * - the wasm kernel ran (not the reference behind it), and an index out of range throws the
 *   reference's error (the kernel never sees it);
 * - where (wasm/elementwise.c, k_where) over full-size and one-value operands, f32 and i32
 *   conditions (NaN true, −0 false), i32 values, tails and a parallel size: the reference's bits;
 *   the broadcasting forms run the reference.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import type { HostArray, PrimName, PrimParams } from "../src/index.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/wasm/backend.ts";
import { wasmLaunchers } from "../src/wasm/kernels.ts";
import { expectSameBits, f, iN, rand, randInt, runPrim, withSpecials, type In } from "./wasm-support.ts";
import type { DType } from "../src/index.ts";

const cpu = new CpuBackend();
let wasmP: Promise<WasmBackend> | null = null;
const wasm = () => (wasmP ??= createWasmBackend({ kernels: "wasm", quiet: true }));

/** Slot indices [N, P] into M rows, about one in `emptyEvery` empty (−1). */
function slots(N: number, P: number, M: number, seed: number, emptyEvery = 5): Int32Array {
  const idx = randInt(N * P, seed, 0, M);
  const pick = randInt(N * P, seed + 1, 0, emptyEvery);
  for (let i = 0; i < idx.length; i++) if (pick[i] === 0) idx[i] = -1;
  return idx;
}

interface Case {
  N: number;
  P: number;
  S: number;
  M: number;
  seed: number;
  what: string;
  specials?: boolean;
}

const CASES: Case[] = [
  { N: 3, P: 4, S: 5, M: 6, seed: 1, what: "one block of four slots, odd width" },
  { N: 7, P: 7, S: 16, M: 9, seed: 2, what: "a block and a tail of three" },
  { N: 5, P: 1, S: 3, M: 2, seed: 3, what: "one slot" },
  { N: 11, P: 50, S: 64, M: 120, seed: 4, what: "the small model's pool", specials: true },
  { N: 1500, P: 50, S: 32, M: 1500, seed: 5, what: "parallel positions" },
  { N: 900, P: 13, S: 8, M: 4, seed: 6, what: "few rows: long outer sums" },
];

/** The three primitives' inputs for a case: dot's x, the weights of sum and outer, the table and x of the outer sums, a second pair. */
function inputs(c: Case) {
  const vals = (n: number, seed: number) => (c.specials ? withSpecials(rand(n, seed, -3, 3), 11) : rand(n, seed, -3, 3));
  const w = vals(c.N * c.P, c.seed + 10);
  // zero weights now and then: the outer sums skip them (an infinite x would turn 0 · x into NaN)
  for (let i = 0; i < w.length; i += 6) w[i] = 0;
  return {
    idx: iN(slots(c.N, c.P, c.M, c.seed), [c.N, c.P]),
    x: f(vals(c.N * c.S, c.seed + 11), [c.N, c.S]),
    table: f(vals(c.M * c.S, c.seed + 12), [c.M, c.S]),
    w: f(w, [c.N, c.P]),
    w2: f(vals(c.N * c.P, c.seed + 13), [c.N, c.P]),
    x2: f(vals(c.N * c.S, c.seed + 14), [c.N, c.S]),
  };
}

type Run = <K extends PrimName>(prim: K, ins: In[], outShape: number[], p: PrimParams[K]) => HostArray;

/** Every output of a case on one backend: dot, sum, outer, outer with a second pair. */
function outputs(c: Case, run: Run): HostArray[] {
  const i = inputs(c);
  return [
    run("indexedDot", [i.x, i.table, i.idx], [c.N, c.P], {}),
    run("indexedSum", [i.w, i.table, i.idx], [c.N, c.S], {}),
    run("indexedOuter", [i.w, i.x, i.idx], [c.M, c.S], { rows: c.M }),
    run("indexedOuter", [i.w, i.x, i.idx, i.w2, i.x2], [c.M, c.S], { rows: c.M }),
  ];
}

const on = (b: CpuBackend | WasmBackend): Run => (prim, ins, outShape, p) => runPrim(b, prim, ins, outShape, "f32", p);
const NAMES = ["indexedDot", "indexedSum", "indexedOuter", "indexedOuter (two pairs)"];

/** Counts the calls the wasm launchers of the three primitives handled (true) until restore(). */
function spyLaunchers(): { handled: Record<string, number>; restore: () => void } {
  const handled: Record<string, number> = {};
  const keys = ["indexedDot", "indexedSum", "indexedOuter"] as const;
  // deno-lint-ignore no-explicit-any
  const table = wasmLaunchers as Record<string, any>;
  const orig = keys.map((k) => table[k]);
  keys.forEach((k, n) => {
    table[k] = (...a: unknown[]) => {
      const r = orig[n](...a);
      if (r) handled[k] = (handled[k] ?? 0) + 1;
      return r;
    };
  });
  return { handled, restore: () => keys.forEach((k, n) => (table[k] = orig[n])) };
}

describe("wasm indexedDot, indexedSum and indexedOuter equal the TypeScript reference bit for bit", () => {
  test("empty slots, blocks and tails, odd widths, specials, zero weights, long sums, a second pair, parallel sizes; the wasm kernels ran", async () => {
    const b = await wasm();
    const spy = spyLaunchers();
    try {
      for (const c of CASES) {
        const got = outputs(c, on(b)), want = outputs(c, on(cpu));
        got.forEach((g, k) => expectSameBits(g, want[k], `${NAMES[k]} ${c.what}`));
      }
    } finally {
      spy.restore();
    }
    expect(spy.handled).toEqual({ indexedDot: CASES.length, indexedSum: CASES.length, indexedOuter: 2 * CASES.length });
  });

  test("an index out of range throws the reference's error", async () => {
    const b = await wasm();
    const table = f([1, 2, 3, 4], [2, 2]), x = f([1, 1], [1, 2]);
    expect(() => runPrim(b, "indexedDot", [x, table, iN([0, 2], [1, 2])], [1, 2], "f32", {})).toThrow(/indexedDot: index 2 at position 1/);
    expect(() => runPrim(b, "indexedSum", [f([1, 1], [1, 2]), table, iN([-2, 0], [1, 2])], [1, 2], "f32", {})).toThrow(/indexedSum: index -2 at position 0/);
    expect(() => runPrim(b, "indexedOuter", [f([1, 1], [1, 2]), x, iN([0, 5], [1, 2])], [2, 2], "f32", { rows: 2 })).toThrow(/indexedOuter: index 5 at position 1/);
    // at a size that runs on every thread, one bad index far into the list (the kernels raise a
    // flag; the launcher then lets the reference throw)
    const c = CASES[4], i = inputs(c);
    const idx = Int32Array.from(i.idx.data as Int32Array);
    idx[idx.length - 7] = c.M + 3;
    const bad = iN(idx, [c.N, c.P]), at = `index ${c.M + 3} at position ${idx.length - 7}`;
    expect(() => runPrim(b, "indexedDot", [i.x, i.table, bad], [c.N, c.P], "f32", {})).toThrow(`indexedDot: ${at}`);
    expect(() => runPrim(b, "indexedSum", [i.w, i.table, bad], [c.N, c.S], "f32", {})).toThrow(`indexedSum: ${at}`);
    expect(() => runPrim(b, "indexedOuter", [i.w, i.x, bad, i.w2, i.x2], [c.M, c.S], "f32", { rows: c.M })).toThrow(`indexedOuter: ${at}`);
  });
});

describe("wasm indexed primitives' determinism", () => {
  test("bit-identical with 1, 2 and 3 threads", async () => {
    let first: HostArray[] | null = null;
    for (const threads of [1, 2, 3]) {
      const b = await createWasmBackend({ threads, kernels: "wasm", quiet: true });
      try {
        const got = CASES.flatMap((c) => outputs(c, on(b)));
        if (!first) first = got;
        else got.forEach((v, i) => expectSameBits(v, first![i], `output #${i} with ${threads} threads vs 1`));
      } finally {
        b.dispose();
      }
    }
  }, 60_000);
});

describe("wasm where equals the TypeScript reference bit for bit", () => {
  test("full-size and one-value operands, f32 and i32 conditions and values, tails, a parallel size; broadcasting runs the reference", async () => {
    const b = await wasm();
    const cond = (n: number, seed: number) => {
      const c = rand(n, seed, -1, 1).map((v) => (v < 0 ? 0 : v));
      for (let i = 0; i < n; i += 9) c[i] = NaN;
      for (let i = 4; i < n; i += 11) c[i] = -0;
      return c;
    };
    const cases: { ins: In[]; out: number[]; dtype: DType; flat: boolean; what: string }[] = [];
    for (const n of [1, 3, 4, 37, 200_003]) {
      const c = f(cond(n, n), [n]), a = f(withSpecials(rand(n, n + 1), 5), [n]), bb = f(rand(n, n + 2), [n]);
      const one = (v: number) => f([v], [1]);
      cases.push(
        { ins: [c, a, bb], out: [n], dtype: "f32", flat: true, what: `n ${n} all full` },
        { ins: [c, a, one(-1e9)], out: [n], dtype: "f32", flat: true, what: `n ${n} b one value` },
        { ins: [c, one(7), bb], out: [n], dtype: "f32", flat: true, what: `n ${n} a one value` },
        { ins: [f([NaN], [1]), a, bb], out: [n], dtype: "f32", flat: true, what: `n ${n} c one value` },
        { ins: [iN(randInt(n, n + 3, -2, 3), [n]), iN(randInt(n, n + 4, -9, 9), [n]), iN([-1], [1])], out: [n], dtype: "i32", flat: true, what: `n ${n} i32` },
      );
    }
    cases.push({ ins: [f(cond(6, 1), [2, 3]), f([1, 2, 3], [3]), f([4, 5], [2, 1])], out: [2, 3], dtype: "f32", flat: false, what: "broadcasting" });
    // deno-lint-ignore no-explicit-any
    const table = wasmLaunchers as Record<string, any>, orig = table.where;
    let handled = 0;
    table.where = (...a: unknown[]) => (orig(...a) ? (handled++, true) : false);
    try {
      for (const c of cases) expectSameBits(runPrim(b, "where", c.ins, c.out, c.dtype, {}), runPrim(cpu, "where", c.ins, c.out, c.dtype, {}), `where ${c.what}`);
    } finally {
      table.where = orig;
    }
    expect(handled).toBe(cases.filter((c) => c.flat).length);
  });
});
