/**
 * The wasm kernels of softplus (a vector exp + log1p), gather and scatterAdd against the
 * TypeScript reference kernels (src/cpu), run directly through Backend.run:
 *
 * - bit-identical to the reference, on values that take every branch of softplus (x > 0 and not,
 *   x >= 40, e^-|x| on both sides of log1p's 0.414 threshold, ±0, NaN, ±Inf, exp's underflow),
 *   on gathers and scatters with repeated indices, odd row widths and sizes that run in parallel;
 * - bit-identical with 1, 2 and 3 threads (scatterAdd sums every element in index order whatever
 *   the split);
 * - an index out of range throws the reference's error (the kernels never see it).
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import type { DType, HostArray, PrimName, PrimParams } from "../src/index.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { createWasmBackend, type WasmBackend } from "../src/wasm/backend.ts";
import { expectSameBits, f, iN, rand, randInt, runPrim, withSpecials, type In } from "./wasm-support.ts";

const cpu = new CpuBackend();
let wasmP: Promise<WasmBackend> | null = null;
const wasm = () => (wasmP ??= createWasmBackend({ kernels: "wasm", quiet: true }));

async function same<K extends PrimName>(prim: K, ins: In[], outShape: number[], outDtype: DType, p: PrimParams[K], what: string) {
  const w = runPrim(await wasm(), prim, ins, outShape, outDtype, p);
  const r = runPrim(cpu, prim, ins, outShape, outDtype, p);
  expectSameBits(w, r, what);
}

/** softplus inputs: random values plus every branch's edges (log1p's threshold: |x| = ln(1 / 0.41421356…) ≈ 0.88137). */
function softplusInputs(n: number, seed: number): Float32Array {
  const x = withSpecials(rand(n, seed, -50, 50), 13);
  const t = 0.881373587019543;
  const edges = [0, -0, t, -t, Math.fround(t * (1 + 2 ** -23)), -Math.fround(t * (1 + 2 ** -23)), Math.fround(t * (1 - 2 ** -23)), 40, Math.fround(40 - 2 ** -19), 39.5, 1e-30, -1e-30, -700, -709.5, -745, -760, 1e30, -1e30, 20, -20];
  for (let i = 0; i < edges.length; i++) x[5 + 11 * i] = edges[i];
  // a dense sweep through log1p's threshold and both sides of 0
  for (let i = 0; i < 256; i++) x[n - 256 + i] = (i - 128) * (2 * t / 128);
  return x;
}

/** Rows of a table picked by indices with repeats, and the reference's zero-row-count case. */
function gatherCases(): { table: In; idx: In; out: number[]; what: string }[] {
  return [
    { table: f(rand(50 * 37, 60), [50, 37]), idx: iN(randInt(23, 61, 0, 50), [23]), out: [23, 37], what: "odd row width" },
    { table: f(rand(7, 62), [7]), idx: iN([6, 0, 6, 3], [2, 2]), out: [2, 2], what: "rank-1 table, 2-D indices" },
    { table: iN(randInt(30 * 8, 63, -1e9, 1e9), [30, 2, 4]), idx: iN(randInt(40, 64, 0, 30), [5, 8]), out: [5, 8, 2, 4], what: "i32 table" },
    { table: f(rand(1000 * 300, 65), [1000, 300]), idx: iN(randInt(900, 66, 0, 1000), [900]), out: [900, 300], what: "parallel rows" },
    { table: f(rand(6 * 9000, 67), [6, 9000]), idx: iN([5, 1, 5, 0, 2, 2, 4, 3], [8]), out: [8, 9000], what: "parallel columns" },
  ];
}

function scatterCases(): { idx: In; upd: In; rows: number; out: number[]; what: string }[] {
  const rep = randInt(2000, 70, 0, 5); // few rows, many repeats: long sums in index order
  return [
    { idx: iN([0, 2, 0], [3]), upd: f([1, 1, 2, 2, 3, 3], [3, 2]), rows: 3, out: [3, 2], what: "small" },
    { idx: iN(randInt(23, 71, 0, 50), [23]), upd: f(withSpecials(rand(23 * 37, 72, -1e3, 1e3), 29), [23, 37]), rows: 50, out: [50, 37], what: "odd width, specials" },
    { idx: iN(rep, [2000]), upd: f(rand(2000 * 70, 73, -1, 1), [2000, 70]), rows: 5, out: [5, 70], what: "long sums, 5 rows" },
    { idx: iN(randInt(4 * 300, 74, 0, 2000), [4, 300]), upd: f(rand(1200 * 64, 75), [4, 300, 64]), rows: 2000, out: [2000, 64], what: "embedding gradient (parallel rows)" },
    { idx: iN(randInt(16, 76, 0, 3), [16]), upd: f(rand(16 * 5000, 77), [16, 5000]), rows: 3, out: [3, 5000], what: "parallel columns" },
    { idx: iN([1, 1], [2]), upd: f([-0, -0], [2, 1]), rows: 3, out: [3, 1], what: "signed zeros" },
  ];
}

describe("wasm softplus, gather and scatterAdd equal the TypeScript reference bit for bit", () => {
  test("softplus: every branch, special values, vector bodies and scalar tails, and a parallel size", async () => {
    for (const n of [1, 7, 8, 1037]) {
      const x = softplusInputs(Math.max(n, 300), 80).subarray(0, n);
      await same("unary", [f(x, [n])], [n], "f32", { op: "softplus" }, `softplus n=${n}`);
    }
    const big = softplusInputs(200_003, 81);
    await same("unary", [f(big, [200_003])], [200_003], "f32", { op: "softplus" }, "softplus (parallel)");
  });

  test("gather: odd widths, repeats, i32 tables, parallel over rows and over columns", async () => {
    for (const c of gatherCases()) await same("gather", [c.table, c.idx], c.out, c.table.data instanceof Int32Array ? "i32" : "f32", {}, `gather ${c.what}`);
  });

  test("scatterAdd: repeated indices summed in index order, signed zeros, parallel over rows and over columns", async () => {
    for (const c of scatterCases()) await same("scatterAdd", [c.idx, c.upd], c.out, "f32", { rows: c.rows }, `scatterAdd ${c.what}`);
  });

  test("an index out of range throws the reference's error", async () => {
    const b = await wasm();
    expect(() => runPrim(b, "gather", [f([1, 2, 3, 4], [2, 2]), iN([1, 2], [2])], [2, 2], "f32", {})).toThrow(/gather: index 2 at position 1/);
    expect(() => runPrim(b, "scatterAdd", [iN([0, -1], [2]), f([1, 2], [2, 1])], [3, 1], "f32", { rows: 3 })).toThrow(/scatterAdd: index -1 at position 1/);
  });
});

describe("wasm softplus, gather and scatterAdd determinism", () => {
  test("bit-identical with 1, 2 and 3 threads", async () => {
    const x = softplusInputs(200_003, 82);
    const g = gatherCases(), s = scatterCases();
    let first: HostArray[] | null = null;
    for (const threads of [1, 2, 3]) {
      const b = await createWasmBackend({ threads, kernels: "wasm", quiet: true });
      try {
        const got = [
          runPrim(b, "unary", [f(x, [x.length])], [x.length], "f32", { op: "softplus" }),
          ...g.map((c) => runPrim(b, "gather", [c.table, c.idx], c.out, c.table.data instanceof Int32Array ? "i32" : "f32", {})),
          ...s.map((c) => runPrim(b, "scatterAdd", [c.idx, c.upd], c.out, "f32", { rows: c.rows })),
        ];
        if (!first) first = got;
        else got.forEach((v, i) => expectSameBits(v, first![i], `output #${i} with ${threads} threads vs 1`));
      } finally {
        b.dispose();
      }
    }
  }, 60_000);
});
