/**
 * The wasm backend's matmul (wasm/gemm.c) against the TypeScript reference and against itself:
 *
 * - within a stated tolerance of the reference (packed 6x8 tiles, fused multiply-add where the
 *   engine fuses: |Δ| ≤ 2⁻²⁰ · Σ|a·b|), every transpose, edge tiles, broadcast batches, k = 0;
 * - the same bits from the 4-row and 6-row register tiles (the tile is picked per engine);
 * - a row of C the same bits whichever kernel computed it: the unpacked kernel for 1-3 rows
 *   (batched, or split into column blocks over the threads) against the packed product's rows.
 */
import { describe, expect, test } from "../../../test/support/harness.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import { checkMatmul, expectSameBits, f, rand, runPrim } from "./wasm-support.ts";
import { createWasmBackend } from "../src/wasm/backend.ts";

const cpu = new CpuBackend();

describe("wasm matmul", () => {
  test("matmul (packed 6x8 tiles): all transposes, edge tiles, batches with broadcasting, k = 0", async () => {
    const b = await createWasmBackend({ kernels: "wasm", quiet: true });
    try {
      await checkMatmul(b, "wasm matmul");
    } finally {
      b.dispose();
    }
  });

  test("the matmul's 4-row and 6-row register tiles give the same bits (the tile is picked per engine)", async () => {
    const cases: [number, number, number, boolean, boolean][] = [[301, 517, 290, false, false], [37, 300, 29, true, true], [130, 70, 9, false, true]];
    const out: Float32Array[][] = [];
    for (const gemmTile of [4, 6] as const) {
      const b = await createWasmBackend({ kernels: "wasm", gemmTile, quiet: true });
      try {
        out.push(cases.map(([m, k, n, ta, tb]) =>
          runPrim(b, "matmul", [f(rand(m * k, 70), ta ? [k, m] : [m, k]), f(rand(k * n, 71), tb ? [n, k] : [k, n])], [m, n], "f32", { transA: ta, transB: tb }) as Float32Array
        ));
      } finally {
        b.dispose();
      }
    }
    out[1].forEach((r, i) => expectSameBits(r, out[0][i], `case ${i}: 6-row tile vs 4-row`));
  });

  test("a matmul row has the same bits alone (unpacked kernel) as inside a larger product (packed tiles)", async () => {
    const b = await createWasmBackend({ kernels: "wasm", quiet: true });
    try {
      // k = 300: two KC slabs; n = 37: a partial 8-column panel and a partial 4-lane vector; n = 53:
      // the unpacked kernel's 16-column groups, a 4-lane vector and one column
      for (const [m, k, n] of [[13, 300, 37], [10, 40, 9], [7, 40, 53]]) {
        for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
          const a = rand(m * k, 90), bv = rand(k * n, 91);
          const full = runPrim(b, "matmul", [f(a, ta ? [k, m] : [m, k]), f(bv, tb ? [n, k] : [k, n])], [m, n], "f32", { transA: ta, transB: tb }) as Float32Array;
          for (const i of [0, 5, m - 1]) {
            const row = Float32Array.from({ length: k }, (_, p) => (ta ? a[p * m + i] : a[i * k + p]));
            const one = runPrim(b, "matmul", [f(row, ta ? [k, 1] : [1, k]), f(bv, tb ? [n, k] : [k, n])], [1, n], "f32", { transA: ta, transB: tb }) as Float32Array;
            expectSameBits(one, full.subarray(i * n, (i + 1) * n), `row ${i} of ${m}x${k}x${n} ta=${ta} tb=${tb}`);
          }
        }
      }
      // one or two rows of a long product (a recurrent step's [1, 256]·[256, 1024]): the unpacked
      // kernel split into column blocks over the threads, 16 columns a chain group, a ragged end
      {
        const [m, k, n] = [13, 300, 1000];
        const a = rand(m * k, 94), bv = rand(k * n, 95);
        const full = runPrim(b, "matmul", [f(a, [m, k]), f(bv, [k, n])], [m, n], "f32", { transA: false, transB: false }) as Float32Array;
        for (const rows of [1, 2]) {
          const one = runPrim(b, "matmul", [f(a.subarray(0, rows * k), [rows, k]), f(bv, [k, n])], [rows, n], "f32", { transA: false, transB: false }) as Float32Array;
          expectSameBits(one, full.subarray(0, rows * n), `${rows} rows of ${m}x${k}x${n}, column blocks`);
        }
      }
      // batched one-row products (many batches: the unpacked kernel on every thread) against the reference
      const [B, k, n] = [256, 24, 50];
      const q = rand(B * k, 92), pool = rand(B * n * k, 93);
      const got = runPrim(b, "matmul", [f(q, [B, 1, k]), f(pool, [B, n, k])], [B, 1, n], "f32", { transA: false, transB: true }) as Float32Array;
      const want = runPrim(cpu, "matmul", [f(q, [B, 1, k]), f(pool, [B, n, k])], [B, 1, n], "f32", { transA: false, transB: true }) as Float32Array;
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want[i])));
    } finally {
      b.dispose();
    }
  });

});
