/**
 * The wasm backend's kernels against the TypeScript reference kernels (src/cpu/kernels.ts), run
 * directly through Backend.run on the same inputs:
 *
 * - bit-identical where the C kernel follows the reference's arithmetic (every unary and binary op,
 *   compares, reductions over leading / middle axes, max, softmax / logsumexp / cross-entropy,
 *   the scans, conv1d, the selective scan's outputs and its per-channel gradients);
 * - within a stated tolerance where the order of a sum differs by design: trailing-axis sums of
 *   32+ values (8 partial sums: ≤ 2 ulp of the f32 result) and the selective scan's dB / dC
 *   (channel blocks summed in f64: ≤ 1e-5 relative to the sum of magnitudes); the matmul has its
 *   own file (wasm-matmul.test.ts);
 * - bit-identical across thread counts (1, 2, 3) for a fixed kernel choice, on sizes that split;
 * - with the "ts" choice, every primitive gives the reference's bits (the fallback path);
 * - no leaked buffers and no leaked heap bytes.
 *
 * The shared suite (ops, gradients, optim, ssm, random) also runs on "wasm" (test/support/backends.ts).
 */
import { describe, expect, runtime, test } from "../../../test/support/harness.ts";
import type { DType, HostArray, PrimName, PrimParams } from "../src/index.ts";
import { CpuBackend } from "../src/cpu/backend.ts";
import {
  expectSameBits, expectWithin, f, fingerprintKernels, iN, rand, randInt, runPrim, size, withSpecials, type In,
} from "./wasm-support.ts";
import * as T from "../src/index.ts";
import { createWasmBackend, type WasmBackend } from "../src/wasm/backend.ts";
import { ssmBackwardChunk } from "../src/wasm/kernels.ts";

const cpu = new CpuBackend();
let wasmP: Promise<WasmBackend> | null = null;
/** The backend under test: wasm kernels only (BLAS has its own file), threads as the machine has. */
const wasm = () => (wasmP ??= createWasmBackend({ kernels: "wasm", quiet: true }));

/** Runs on both and expects the same bits. */
async function same<K extends PrimName>(prim: K, ins: In[], outShape: number[], outDtype: DType, p: PrimParams[K], what = prim as string) {
  const w = runPrim(await wasm(), prim, ins, outShape, outDtype, p);
  const r = runPrim(cpu, prim, ins, outShape, outDtype, p);
  expectSameBits(w, r, what);
}

// ---------------------------------------------------------------------------------------------
// bit-identical kernels

const UNARY: PrimParams["unary"]["op"][] = ["neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "silu", "softplus", "abs", "relu", "sin", "cos", "square", "reciprocal", "sign"];

describe("wasm kernels equal the TypeScript reference bit for bit", () => {
  test("unary: every op, special values, vector bodies and scalar tails, and a parallel size", async () => {
    const x = withSpecials(rand(1037, 1, -30, 30));
    const pos = withSpecials(rand(1037, 2, 0, 1e4));
    for (const op of UNARY) {
      await same("unary", [f(x, [1037])], [1037], "f32", { op }, `unary ${op}`);
      await same("unary", [f(pos, [1037])], [1037], "f32", { op }, `unary ${op} (positive)`);
    }
    const big = withSpecials(rand(200_003, 3, -12, 12), 101);
    for (const op of ["exp", "sigmoid", "silu", "tanh", "relu", "rsqrt"] as const) await same("unary", [f(big, [200_003])], [200_003], "f32", { op }, `unary ${op} (large)`);
  });

  test("exp, sigmoid, silu, softplus in lockstep blocks: every tail length, and a special value in each lane of a block", async () => {
    // the kernels take 16 values a block (8 lane pairs in lockstep, wasm/elementwise.c), then pairs,
    // then one; a block with a lane outside exp's fast range recomputes that lane alone
    const edges = [NaN, Infinity, -Infinity, -0, 1e-40, 3e38, -3e38, 709, -708, 709.5, -708.5, 710, -746, -720, 88.8, -104, 40, -40];
    const ops = ["exp", "sigmoid", "silu", "softplus"] as const;
    for (const op of ops) {
      for (let n = 1; n <= 40; n++) await same("unary", [f(rand(n, 90 + n, -50, 50), [n])], [n], "f32", { op }, `unary ${op}, ${n} values`);
      // block b holds one special value, in lane b % 16 (every lane of a block, every special)
      const blocks = 16 * Math.ceil(edges.length / 16) * 16;
      const x = rand(16 * blocks, 91, -30, 30);
      for (let b = 0; b < blocks; b++) x[16 * b + (b % 16)] = edges[Math.floor(b / 16) % edges.length];
      await same("unary", [f(x, [x.length])], [x.length], "f32", { op }, `unary ${op}, one special lane per block`);
    }
  });

  test("binary and compare: same shapes, broadcasts, scalars, i32, collapsed 5-D and a fallback", async () => {
    const ops: PrimParams["binary"]["op"][] = ["add", "sub", "mul", "div", "pow", "max", "min"];
    const cmps: PrimParams["compare"]["op"][] = ["eq", "ne", "lt", "le", "gt", "ge"];
    const cases: [number[], number[], number[]][] = [
      [[3, 5, 7], [3, 5, 7], [3, 5, 7]],
      [[3, 1, 7], [5, 1], [3, 5, 7]],
      [[4, 1], [1, 6], [4, 6]],
      [[], [9, 13], [9, 13]],
      [[9, 13], [], [9, 13]],
      [[2, 1, 3, 1, 5], [2, 4, 1, 6, 5], [2, 4, 3, 6, 5]], // does not collapse to 4 axes: the reference runs
      [[2, 3, 4, 5, 6], [6], [2, 3, 4, 5, 6]], // collapses
      [[600, 1], [1, 700], [600, 700]], // parallel, column broadcast
    ];
    for (const [sa, sb, so] of cases) {
      const a = withSpecials(rand(size(sa), 5, -3, 3), 11), b = withSpecials(rand(size(sb), 6, -3, 3), 13);
      for (let i = 0; i < b.length; i += 17) b[i] = a[i % a.length]; // ties for eq / max / min
      for (const op of ops) await same("binary", [f(a, sa), f(b, sb)], so, "f32", { op }, `binary ${op} ${sa}|${sb}`);
      for (const op of cmps) await same("compare", [f(a, sa), f(b, sb)], so, "f32", { op }, `compare ${op} ${sa}|${sb}`);
      const ia = randInt(size(sa), 7, -(2 ** 31), 2 ** 31 - 1), ib = randInt(size(sb), 8, -5, 5);
      for (const op of ["add", "sub", "mul", "max", "min", "div"] as const) {
        await same("binary", [iN(ia, sa), iN(ib, sb)], so, "i32", { op }, `i32 ${op} ${sa}|${sb}`);
      }
      for (const op of cmps) await same("compare", [iN(ia, sa), iN(ib, sb)], so, "f32", { op }, `i32 compare ${op}`);
    }
    // pow: negative bases with integer exponents, zero bases, the fast exponents
    const base = f([-2, -2, -0.5, 0, 0, 3, -1, 2, NaN, 4], [10]), ex = f([3, 2, -3, 2, -1, 0.5, 0.5, 1, 0, 2.5], [10]);
    await same("binary", [base, ex], [10], "f32", { op: "pow" }, "pow special");
  });

  test("reductions: leading, middle and short trailing sums are exact; max is exact everywhere", async () => {
    const x = rand(6 * 7 * 300, 9, -5, 5);
    const s = [6, 7, 300];
    for (const axes of [[0], [1], [0, 1], [1, 2], [0, 1, 2]]) {
      const out = s.map((d, i) => (axes.includes(i) ? 1 : d)); // the primitive keeps reduced axes as 1
      await same("reduce", [f(x, s)], out, "f32", { op: "max", axes }, `max ${axes}`);
      if (!axes.includes(2)) await same("reduce", [f(x, s)], out, "f32", { op: "sum", axes }, `sum ${axes}`);
    }
    const short = rand(50 * 31, 10, -9, 9);
    await same("reduce", [f(short, [50, 31])], [50, 1], "f32", { op: "sum", axes: [1] }, "sum of 31 (sequential)");
    const withNaN = rand(64 * 33, 11);
    withNaN[100] = NaN;
    withNaN[200] = -Infinity;
    await same("reduce", [f(withNaN, [64, 33])], [64, 1], "f32", { op: "max", axes: [1] }, "max with NaN");
    await same("reduce", [f(withNaN, [64, 33])], [1, 33], "f32", { op: "max", axes: [0] }, "max axis 0 with NaN");
    const big = rand(4096 * 300, 12);
    await same("reduce", [f(big, [4096, 300])], [1, 300], "f32", { op: "sum", axes: [0] }, "sum axis 0 (parallel)");
    await same("reduce", [f(big, [16, 256, 300])], [16, 1, 300], "f32", { op: "sum", axes: [1] }, "sum axis 1 (parallel)");
  });

  test("softmax, logsumexp and cross-entropy rows: ±1000, −Inf, NaN rows, and a parallel size", async () => {
    const rows = 37, n = 129;
    const x = rand(rows * n, 13, -20, 20);
    x.fill(1000, 0, n);
    x.fill(-Infinity, n, 2 * n);
    x[2 * n + 3] = NaN;
    x[3 * n + 5] = Infinity;
    x.fill(-1000, 4 * n, 5 * n);
    x[4 * n + 7] = -Infinity;
    await same("softmax", [f(x, [rows, n])], [rows, n], "f32", {});
    await same("logsumexp", [f(x, [rows, n])], [rows], "f32", {});
    const t = randInt(rows, 14, 0, n);
    await same("crossEntropy", [f(x, [rows, n]), iN(t, [rows])], [rows], "f32", {});
    // rows of blocks of 16 exps in lockstep, then pairs, then one (wasm/nn.c, exp_row)
    for (const m of [15, 16, 17, 35, 50]) {
      const y = rand(6 * m, 16 + m, -60, 20);
      y[m + 3] = -Infinity;
      y[2 * m + (m >> 1)] = NaN;
      await same("softmax", [f(y, [6, m])], [6, m], "f32", {}, `softmax rows of ${m}`);
      await same("logsumexp", [f(y, [6, m])], [6], "f32", {}, `logsumexp rows of ${m}`);
    }
    const big = rand(512 * 2048, 15, -10, 10);
    await same("softmax", [f(big, [512, 2048])], [512, 2048], "f32", {}, "softmax (parallel)");
    await same("crossEntropy", [f(big, [512, 2048]), iN(randInt(512, 16, 0, 2048), [512])], [512], "f32", {}, "crossEntropy (parallel)");
  });

  test("cross-entropy with a target out of range throws the reference's RangeError", async () => {
    const b = await wasm();
    expect(() => runPrim(b, "crossEntropy", [f([0, 0, 0, 0], [2, 2]), iN([1, 2], [2])], [2], "f32", {})).toThrow(/crossEntropy: target 2 at position 1/);
  });

  test("scan, scanReverse and the causal conv1d (forward, dx, dw)", async () => {
    for (const [B, L, S] of [[3, 17, 37], [4, 300, 512]]) {
      const a = rand(B * L * S, 17, 0.5, 1.05), x = rand(B * L * S, 18), h0 = rand(B * S, 19);
      await same("scan", [f(a, [B, L, S]), f(x, [B, L, S]), f(h0, [B, S])], [B, L, S], "f32", {}, `scan ${B}x${L}x${S}`);
      await same("scanReverse", [f(a, [B, L, S]), f(x, [B, L, S])], [B, L, S], "f32", {}, `scanReverse ${B}x${L}x${S}`);
    }
    for (const [B, L, C, K] of [[2, 33, 37, 4], [1, 3, 5, 6], [4, 700, 256, 4]]) {
      const x = rand(B * L * C, 20), w = rand(C * K, 21), g = rand(B * L * C, 22);
      await same("conv1dCausal", [f(x, [B, L, C]), f(w, [C, K])], [B, L, C], "f32", {}, `conv1d ${B}x${L}x${C}x${K}`);
      await same("conv1dCausalGradX", [f(g, [B, L, C]), f(w, [C, K])], [B, L, C], "f32", {}, `conv1d dx ${B}x${L}x${C}`);
      await same("conv1dCausalGradW", [f(g, [B, L, C]), f(x, [B, L, C])], [C, K], "f32", { k: K }, `conv1d dw ${B}x${L}x${C}`);
      const pre = rand(B * (K - 1) * C, 23);
      await same("conv1dCausal", [f(x, [B, L, C]), f(w, [C, K]), f(pre, [B, K - 1, C])], [B, L, C], "f32", {}, `conv1d with a prefix ${B}x${L}x${C}x${K}`);
    }
  });

  test("selective scan: y, h_L and every per-channel gradient exact; dB, dC within 1e-5 of the sum of magnitudes", async () => {
    for (const [B, L, Di, N] of [[2, 13, 7, 5], [1, 1, 1, 1], [2, 48, 96, 16]]) {
      const ins = [
        f(rand(B * L * Di, 23), [B, L, Di]), f(rand(B * L * Di, 24, 0.01, 0.5), [B, L, Di]), f(rand(Di * N, 25, -3, -0.2), [Di, N]),
        f(rand(B * L * N, 26), [B, L, N]), f(rand(B * L * N, 27), [B, L, N]), f(rand(B * Di * N, 28, -0.5, 0.5), [B, Di, N]),
      ];
      await same("selectiveScan", ins, [B, L, Di], "f32", {}, `selectiveScan ${B}x${L}x${Di}x${N}`);
      await same("selectiveScanState", ins, [B, Di, N], "f32", {}, `selectiveScanState ${B}x${L}x${Di}x${N}`);
      const gIns = [...ins, f(rand(B * L * Di, 29), [B, L, Di]), f(rand(B * Di * N, 30), [B, Di, N])];
      const total = 2 * B * L * Di + Di * N + 2 * B * L * N + B * Di * N;
      const w = runPrim(await wasm(), "selectiveScanGrad", gIns, [total], "f32", {});
      const r = runPrim(cpu, "selectiveScanGrad", gIns, [total], "f32", {});
      const oDB = 2 * B * L * Di + Di * N, oDh0 = oDB + 2 * B * L * N;
      expectSameBits(w.subarray(0, oDB), r.subarray(0, oDB), "dx, ddelta, dA");
      expectSameBits(w.subarray(oDh0), r.subarray(oDh0), "dh0");
      // dB/dC sum over Di channels: bound by 1e-5 of the largest magnitude in the output (cheap and ample)
      let scale = 0;
      for (let i = oDB; i < oDh0; i++) scale = Math.max(scale, Math.abs(r[i]));
      expectWithin(w.subarray(oDB, oDh0), r.subarray(oDB, oDh0), () => 1e-5 * scale * (Di / ssmBackwardChunk(Di) + 1), "dB, dC");
    }
  });
});

// ---------------------------------------------------------------------------------------------
// tolerance kernels

describe("wasm kernels within tolerance of the reference", () => {
  test("trailing-axis sums of 32+ values: within 2 ulp of the f32 result", async () => {
    const x = rand(300 * 1000, 33, -1, 1);
    const w = runPrim(await wasm(), "reduce", [f(x, [300, 1000])], [300, 1], "f32", { op: "sum", axes: [1] });
    const r = runPrim(cpu, "reduce", [f(x, [300, 1000])], [300, 1], "f32", { op: "sum", axes: [1] });
    expectWithin(w, r, (i) => 2 * Math.abs(r[i]) * 2 ** -23 + 1e-45, "sum axis 1");
  });
});

// ---------------------------------------------------------------------------------------------
// determinism across thread counts

describe("wasm determinism", () => {
  test("bit-identical results with 1, 2 and 3 threads (relaxed and plain SIMD builds)", async () => {
    for (const kernels of ["wasm", "wasm-simd"] as const) {
      let first: HostArray[] | null = null;
      for (const threads of [1, 2, 3]) {
        const b = await createWasmBackend({ threads, kernels, quiet: true });
        try {
          expect(b.kernelInfo().threads).toBe(b.threadError ? 1 : threads);
          const got = fingerprintKernels(b);
          if (!first) first = got;
          else got.forEach((g, i) => expectSameBits(g, first![i], `${kernels}: kernel #${i} with ${threads} threads vs 1`));
        } finally {
          b.dispose();
        }
      }
    }
  }, 120_000);

  test("the selective scan's lockstep exps give the same bits as one at a time (an option, to compare)", async () => {
    const out: Float32Array[][] = [];
    for (const expLockstep of [false, true]) {
      const b = await createWasmBackend({ kernels: "wasm", expLockstep, quiet: true });
      try {
        const got: Float32Array[] = [];
        // N = 16: two blocks of eight in lockstep; 11: one block, then three one at a time; 7: none
        for (const [B, L, Di, N] of [[2, 33, 21, 16], [1, 17, 7, 11], [1, 20, 9, 7]]) {
          const ins = [
            f(rand(B * L * Di, 80), [B, L, Di]), f(rand(B * L * Di, 81, 0.01, 0.5), [B, L, Di]), f(rand(Di * N, 82, -3, -0.2), [Di, N]),
            f(rand(B * L * N, 83), [B, L, N]), f(rand(B * L * N, 84), [B, L, N]), f(rand(B * Di * N, 85), [B, Di, N]),
            f(rand(B * L * Di, 86), [B, L, Di]), f(rand(B * Di * N, 87), [B, Di, N]),
          ];
          got.push(runPrim(b, "selectiveScan", ins.slice(0, 6), [B, L, Di], "f32", {}) as Float32Array);
          got.push(runPrim(b, "selectiveScanGrad", ins, [2 * B * L * Di + Di * N + 2 * B * L * N + B * Di * N], "f32", {}) as Float32Array);
        }
        out.push(got);
      } finally {
        b.dispose();
      }
    }
    out[1].forEach((r, i) => expectSameBits(r, out[0][i], `case ${i}: lockstep exps vs one at a time`));
  });

  test("the scan's touch-ahead (a software prefetch of inputs and output) changes no bit, and the scans equal the reference with it", async () => {
    // 2 x 40 x 700: every lane is over TOUCH_MIN values, so the touches run (some clamped at the
    // sequence's end); 1 x 48 x 3000 is split over S between threads (lanes of 1504 columns with 2
    // threads), so each lane touches the output ahead in its own columns only
    for (const [B, L, S] of [[2, 40, 700], [1, 48, 3000]]) {
      const ins = [f(rand(B * L * S, 88, 0.5, 1.05), [B, L, S]), f(rand(B * L * S, 89), [B, L, S]), f(rand(B * S, 90), [B, S])];
      const want = runPrim(cpu, "scan", ins, [B, L, S], "f32", {});
      for (const touchAhead of [false, true]) {
        const b = await createWasmBackend({ kernels: "wasm", touchAhead, quiet: true });
        try {
          expect(b.kernelInfo().touchAhead).toBe(touchAhead);
          expectSameBits(runPrim(b, "scan", ins, [B, L, S], "f32", {}), want, `scan ${B}x${L}x${S}, touchAhead ${touchAhead}`);
          expectSameBits(runPrim(b, "scanReverse", ins.slice(0, 2), [B, L, S], "f32", {}), runPrim(cpu, "scanReverse", ins.slice(0, 2), [B, L, S], "f32", {}), "scanReverse");
        } finally {
          b.dispose();
        }
      }
    }
  });

  test("the scans' lanes and chunks (claimed by whichever thread is free) give the reference's bits with 1, 2 and 3 threads", async () => {
    // 4 x 1500 x 384: 4 lanes of 5 chunks (342 rows); 1 x 600 x 1000: fewer sequences than
    // threads, so lanes are column blocks (2 or 3) of several chunks; 2 x 1 x 70000: one row per
    // lane; 3 x 17 x 37: small, on the calling thread
    const cases = [[4, 1500, 384], [1, 600, 1000], [2, 1, 70000], [3, 17, 37]];
    const ins = cases.map(([B, L, S], i) => [f(rand(B * L * S, 60 + i, 0.5, 1.05), [B, L, S]), f(rand(B * L * S, 70 + i), [B, L, S]), f(rand(B * S, 80 + i), [B, S])]);
    const want = cases.map((sh, i) => [runPrim(cpu, "scan", ins[i], sh, "f32", {}), runPrim(cpu, "scanReverse", ins[i].slice(0, 2), sh, "f32", {})]);
    for (const threads of [1, 2, 3]) {
      const b = await createWasmBackend({ kernels: "wasm", threads, quiet: true });
      try {
        cases.forEach((sh, i) => {
          expectSameBits(runPrim(b, "scan", ins[i], sh, "f32", {}), want[i][0], `scan ${sh.join("x")}, ${threads} threads`);
          expectSameBits(runPrim(b, "scanReverse", ins[i].slice(0, 2), sh, "f32", {}), want[i][1], `scanReverse ${sh.join("x")}, ${threads} threads`);
        });
        expect(b.liveBuffers()).toBe(0);
      } finally {
        b.dispose();
      }
    }
  }, 60_000);

  test('the "ts" choice runs the reference for every primitive: the same bits as the CPU backend', async () => {
    const b = await createWasmBackend({ kernels: "ts", quiet: true });
    try {
      expect(b.kernelInfo().matmul).toBe("ts");
      const got = fingerprintKernels(b), want = fingerprintKernels(cpu);
      got.forEach((g, i) => expectSameBits(g, want[i], `ts kernel #${i}`));
    } finally {
      b.dispose();
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// memory

describe("wasm memory", () => {
  test("a training step through the ops leaks no buffer and no heap byte; freed blocks are reused", async () => {
    const b = await wasm();
    const before = T.getBackend();
    T.setBackend(b);
    try {
    const step = () => {
      const w = T.fromArray(rand(64 * 32, 60), [64, 32]);
      const x = T.fromArray(rand(16 * 64, 61), [16, 64]);
      const { value, grads } = T.valueAndGrad((p: { w: T.Tensor }) => T.mean(T.square(T.silu(T.matmul(x, p.w)))))({ w });
      value.dispose();
      T.disposeTree([grads, w, x]);
    };
    step();
    const live = b.liveBuffers(), heap = b.heap.stats();
    for (let i = 0; i < 5; i++) step();
    expect(b.liveBuffers()).toBe(live);
    expect(b.heap.stats().inUseBytes).toBe(heap.inUseBytes);
    expect(b.heap.stats().topBytes).toBe(heap.topBytes); // the same sizes come back from the free lists
    } finally {
      T.setBackend(before);
    }
  });

  test("the memory grows past its initial size; buffers written before stay intact", async () => {
    const b = await createWasmBackend({ threads: 2, kernels: "wasm", initialMemoryMiB: 2, quiet: true });
    try {
      const first = b.alloc(1000, "f32");
      b.write(first, rand(1000, 62));
      const big = b.alloc(3_000_000, "f32"); // 12 MB > 2 MiB
      b.write(big, rand(3_000_000, 63));
      expect(b.heap.stats().memoryBytes).toBeGreaterThan(12_000_000);
      expectSameBits(b.readSync(first), rand(1000, 62), "first buffer after growth");
      const out = b.alloc(3_000_000, "f32");
      b.run("unary", [{ buf: big, shape: [3_000_000], dtype: "f32" }], { buf: out, shape: [3_000_000], dtype: "f32" }, { op: "exp" });
      expectSameBits(b.readSync(out), runPrim(cpu, "unary", [f(rand(3_000_000, 63), [3_000_000])], [3_000_000], "f32", { op: "exp" }), "exp after growth");
      for (const x of [first, big, out]) b.free(x);
      expect(b.liveBuffers()).toBe(0);
      expect(() => b.free(first)).toThrow(/freed twice/);
    } finally {
      b.dispose();
    }
  });

  test("kernelInfo names the kernels; a bad choice is refused with the list", async () => {
    const info = (await wasm()).kernelInfo();
    expect(info.matmul).toMatch(/^wasm-(relaxed|simd)$/);
    expect(info.choice).toBe("wasm");
    // the speed-only choices per engine (wasm/gemm.c, wasm/ssm.c): Deno's V8 bounds-checks loads
    expect(info.gemmTile).toBe(runtime === "deno" ? 4 : 6);
    expect(info.expLockstep).toBe(true); // the selective scan's pinned lockstep exps help every engine (wasm/ssm.c)
    expect(info.touchAhead).toBe(true); // the scan's software prefetch helps every engine (wasm/common.h)
    await expect(createWasmBackend({ kernels: "fast" as never })).rejects.toThrow(/unknown kernel choice "fast".*auto, wasm, wasm-simd, ts/);
    await expect(createWasmBackend({ gemmTile: 5 as never, quiet: true })).rejects.toThrow(/gemmTile must be 4 or 6, got 5/);
  });

  test("MEMMAMBA_CPU_THREADS: a bad value is an error that names it (was: silently the machine's cores)", async () => {
    // deno-lint-ignore no-explicit-any
    const env = (globalThis as any).process.env as Record<string, string | undefined>;
    const before = env.MEMMAMBA_CPU_THREADS;
    try {
      for (const bad of ["abc", "0", "1.5"]) {
        env.MEMMAMBA_CPU_THREADS = bad;
        await expect(createWasmBackend({ kernels: "wasm", quiet: true })).rejects.toThrow(`MEMMAMBA_CPU_THREADS: expected the number of threads (a whole number from 1), got "${bad}"`);
        // initBackend too: an error, not a fall-back to the TypeScript kernels (was: one line on stderr, then slower)
        await expect(T.initBackend("cpu", { cpuKernels: "wasm" })).rejects.toThrow(`MEMMAMBA_CPU_THREADS: expected the number of threads (a whole number from 1), got "${bad}"`);
      }
      env.MEMMAMBA_CPU_THREADS = "1";
      const one = await createWasmBackend({ kernels: "wasm", quiet: true });
      expect(one.kernelInfo().threads).toBe(1);
      one.dispose();
    } finally {
      if (before === undefined) delete env.MEMMAMBA_CPU_THREADS;
      else env.MEMMAMBA_CPU_THREADS = before;
    }
  });
});

describe("wasm heap above 2 GiB", () => {
  test("tensors past the 2 GiB mark give the bits of tensors below it (the launchers index the memory with unsigned offsets)", async () => {
    /** A few ops whose launchers index the heap from JavaScript: each result's values. */
    const run = async (): Promise<number[][]> => {
      const x = T.fromArray([0.5, -1, 2, 0.25, 3, -0.5, 1.5, -2, 0.75, 1, -0.25, 2.5], [2, 3, 2]);
      const w = T.fromArray([0.2, -0.4, 0.6, 0.1], [2, 2]);
      const prefix = T.fromArray([1, -1, 0.5, 2], [2, 1, 2]);
      const table = T.fromArray([1, 2, -1, 0.5, 3, -2], [3, 2]);
      const idx = T.fromArray([2, 0, 1, 2, 1, 0], [2, 3, 1], "i32");
      const targets = T.fromArray([1, 0, 1, 1, 0, 0], [2, 3], "i32");
      const outs = [
        T.matmul(x, T.fromArray([1, 2, 3, 4, 5, 6], [2, 3])), // batched rows
        T.matmul(T.zeros([2, 3, 0]), T.zeros([0, 4])), // k = 0: the output zero-filled from JavaScript
        T.crossEntropy(x, targets),
        T.scan(T.mul(T.sigmoid(x), 0.9), x, T.fromArray([0.1, -0.1, 0.2, 0.3], [2, 2])),
        T.conv1dCausal(x, w, prefix),
        T.gather(table, T.fromArray([2, 0, 1], [3], "i32")),
        T.bind("indexedDot", [T.reshape(x, [2, 3, 2]), table, idx], {}),
        T.linearSigmoid(x, T.fromArray([0.5, -0.5], [2, 1]), T.fromArray([0.1], [1])),
      ];
      const vals: number[][] = [];
      for (const o of outs) vals.push(Array.from(await o.data()));
      T.disposeTree([x, w, prefix, table, idx, targets, outs]);
      return vals;
    };
    const before = T.getBackend();
    const low = await createWasmBackend({ kernels: "wasm", quiet: true });
    const high = await createWasmBackend({ kernels: "wasm", quiet: true });
    const blocks: ReturnType<WasmBackend["alloc"]>[] = [];
    try {
      T.setBackend(low);
      const want = await run();
      T.setBackend(high);
      // 64 MiB blocks, never written (the memory grows, its pages stay untouched), until a small
      // allocation lands past 2 GiB
      const ptrOf = (h: unknown) => (h as { ptr: number }).ptr;
      for (;;) {
        const probe = high.alloc(16, "f32"); // kept: freed, it would come back at the next probe
        blocks.push(probe);
        if (ptrOf(probe) > 2 ** 31) break;
        try {
          blocks.push(high.alloc(16 << 20, "f32"));
        } catch (e) {
          console.log(`skipping: this engine grants no 4 GiB wasm memory (${(e as Error).message})`);
          return;
        }
      }
      const probe = T.fromArray([1], [1]);
      expect(ptrOf((probe as unknown as { storage: { buf: unknown } }).storage.buf)).toBeGreaterThan(2 ** 31);
      probe.dispose();
      expect(await run()).toEqual(want);
    } finally {
      for (const h of blocks) high.free(h);
      T.setBackend(before);
      low.dispose();
      high.dispose();
    }
  });
});
