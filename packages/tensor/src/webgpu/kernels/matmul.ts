/**
 * Batched matmul C[b] = op(A[b]) · op(B[b]) with transA / transB and broadcast batch dims.
 *
 * Structure (the classic register-blocked SGEMM):
 * - a workgroup of 256 threads computes a BM x BN block of C (128x128 for big problems, 64x64
 *   for small ones), marching along K in steps of BK = 16;
 * - each step stages a BK x BM slice of op(A) and a BK x BN slice of op(B) in workgroup memory,
 *   both stored k-major as vec4 along m / n, so the inner loop reads one vec4 per 4 rows / cols;
 * - each thread owns a TM x TN block (8x8 or 4x4) of C in vec4 registers (no function-scope
 *   arrays: the code is generated fully unrolled, which naga and Tint both compile well);
 * - global loads for step k+1 are issued into registers before the math of step k (register
 *   prefetch), so their latency hides behind the FMAs;
 * - loads are vec4 along whichever axis is contiguous in memory (k for A, n for B, or m / k
 *   when transposed) when that axis is a multiple of 4, else four guarded scalar loads; bounds
 *   checks disappear entirely when M, N, K are multiples of the tile ("full" variant).
 * Batch: when B has no batch and A is not transposed, A's batch folds into M (one big GEMM).
 * Otherwise grid z walks the output batch (chunks of 65535) and each workgroup finds its A / B
 * offsets through the broadcast strides.
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import { broadcastStrides, ceilDiv, coalesce, header, ParamWords, pu, prod, strides, type GpuCtx } from "../context.ts";

export interface TileConfig {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}
export const BIG_TILE: TileConfig = { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8 };
export const SMALL_TILE: TileConfig = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };

/** Tuning knob for benchmarks: force one tile config (null: choose by problem size). */
export const matmulTuning: { force: TileConfig | null; bigTileMinBlocks: number } = { force: null, bigTileMinBlocks: 192 };

interface MatmulVariant {
  t: TileConfig;
  transA: boolean;
  transB: boolean;
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
  full: boolean;
  batchRank: number;
}

const X = ["x", "y", "z", "w"];

function matmulWgsl(v: MatmulVariant): string {
  const { BM, BN, BK, TM, TN } = v.t;
  const TXn = BN / TN, TYn = BM / TM; // threads along n and m
  const NT = TXn * TYn;
  const GM = TM / 4, GN = TN / 4;
  const LA = (BK * BM) / 4 / NT, LB = (BK * BN) / 4 / NT; // vec4 loads per thread per step
  const br = v.batchRank;
  const nWords = 4 + 3 * br;
  const code: string[] = [];
  const decl = [
    { name: "C", type: v.vecC ? "vec4<f32>" : "f32", write: true },
    { name: "A", type: v.vecA ? "vec4<f32>" : "f32" },
    { name: "B", type: v.vecB ? "vec4<f32>" : "f32" },
  ];
  code.push(header(nWords, decl));
  code.push(`var<workgroup> As: array<vec4<f32>, ${(BK * BM) / 4}>;`);
  code.push(`var<workgroup> Bs: array<vec4<f32>, ${(BK * BN) / 4}>;`);
  code.push(`@compute @workgroup_size(${NT})`);
  code.push(`fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {`);
  code.push(`let M = ${pu(0)}; let N = ${pu(1)}; let K = ${pu(2)};`);
  code.push(`let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;`);
  code.push(`let tx = lid % ${TXn}u; let ty = lid / ${TXn}u;`);
  // batch offsets (in elements)
  code.push(`var aBase = 0u; var bBase = 0u; let q = wid.z + ${pu(3)};`);
  if (br > 0) {
    code.push(`var rem = q;`);
    for (let d = br - 1; d >= 0; d--) {
      const size = pu(4 + d), sa = pu(4 + br + d), sb = pu(4 + 2 * br + d);
      code.push(d === 0 ? `{ let c = rem;` : `{ let c = rem % ${size}; rem = rem / ${size};`);
      code.push(`aBase += c * ${sa}; bBase += c * ${sb}; }`);
    }
  }
  code.push(`let cBase = q * M * N;`);
  const g = !v.full;
  // ---- per-thread load coordinates (constant over k) ----
  const loads = (which: "A" | "B", L: number, trans: boolean, vec: boolean, BX: number) => {
    // "contiguous along k" is A not transposed or B transposed
    const alongK = which === "A" ? !trans : trans;
    const rows = which === "A" ? "M" : "N"; // the non-k extent
    const base = which === "A" ? "aBase" : "bBase";
    const pre: string[] = [];
    const body: string[] = [];
    const store: string[] = [];
    const smem = which === "A" ? "As" : "Bs";
    const x0 = which === "A" ? "m0" : "n0";
    for (let j = 0; j < L; j++) {
      const r = `r${which}${j}`;
      if (alongK) {
        // l -> (row, k4): row of op(X) in the tile, 4 consecutive k
        pre.push(`let ${r}row = (lid + ${j * NT}u) / ${BK / 4}u; let ${r}k = ((lid + ${j * NT}u) % ${BK / 4}u) * 4u;`);
        pre.push(`let ${r}g = ${x0} + ${r}row; let ${r}ok = ${r}g < ${rows};`);
        const idx = `${base} + ${r}g * K + k0 + ${r}k`;
        if (vec) {
          const cond = g ? `${r}ok && k0 + ${r}k < K` : "true";
          body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
        } else {
          const comps = [0, 1, 2, 3].map((e) => {
            const cond = g ? `${r}ok && k0 + ${r}k + ${e}u < K` : "true";
            return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
          });
          body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
        }
        for (let e = 0; e < 4; e++) store.push(`${smem}[(${r}k + ${e}u) * ${BX / 4}u + ${r}row / 4u][${r}row % 4u] = ${r}.${X[e]};`);
      } else {
        // l -> (k, x4): one k row, 4 consecutive m (or n)
        pre.push(`let ${r}kk = (lid + ${j * NT}u) / ${BX / 4}u; let ${r}x4 = (lid + ${j * NT}u) % ${BX / 4}u;`);
        pre.push(`let ${r}g = ${x0} + ${r}x4 * 4u;`);
        const lead = which === "A" ? "M" : "N";
        const idx = `${base} + (k0 + ${r}kk) * ${lead} + ${r}g`;
        if (vec) {
          const cond = g ? `${r}g < ${rows} && k0 + ${r}kk < K` : "true";
          body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
        } else {
          const comps = [0, 1, 2, 3].map((e) => {
            const cond = g ? `${r}g + ${e}u < ${rows} && k0 + ${r}kk < K` : "true";
            return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
          });
          body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
        }
        store.push(`${smem}[${r}kk * ${BX / 4}u + ${r}x4] = ${r};`);
      }
      pre.push(`var ${r} = vec4<f32>(0.0f);`);
    }
    return { pre, body, store };
  };
  const la = loads("A", LA, v.transA, v.vecA, BM);
  const lb = loads("B", LB, v.transB, v.vecB, BN);
  code.push(...la.pre, ...lb.pre);
  for (let r = 0; r < TM; r++) for (let gn = 0; gn < GN; gn++) code.push(`var acc${r}_${gn} = vec4<f32>(0.0f);`);
  code.push(`let nK = (K + ${BK - 1}u) / ${BK}u;`);
  code.push(`var k0 = 0u;`);
  code.push(...la.body, ...lb.body);
  code.push(`for (var kt = 0u; kt < nK; kt++) {`);
  code.push(...la.store, ...lb.store);
  code.push(`workgroupBarrier();`);
  code.push(`k0 = k0 + ${BK}u;`);
  code.push(`if (kt + 1u < nK) {`, ...la.body, ...lb.body, `}`);
  for (let kk = 0; kk < BK; kk++) {
    for (let gm = 0; gm < GM; gm++) code.push(`let a${gm}_${kk} = As[${kk * (BM / 4)}u + ${gm * TYn}u + ty];`);
    for (let gn = 0; gn < GN; gn++) code.push(`let b${gn}_${kk} = Bs[${kk * (BN / 4)}u + ${gn * TXn}u + tx];`);
    for (let gm = 0; gm < GM; gm++) {
      for (let i = 0; i < 4; i++) {
        for (let gn = 0; gn < GN; gn++) code.push(`acc${gm * 4 + i}_${gn} += a${gm}_${kk}.${X[i]} * b${gn}_${kk};`);
      }
    }
  }
  code.push(`workgroupBarrier();`);
  code.push(`}`);
  // ---- store ----
  for (let gm = 0; gm < GM; gm++) {
    for (let i = 0; i < 4; i++) {
      const r = gm * 4 + i;
      code.push(`{ let m = m0 + (${gm * TYn}u + ty) * 4u + ${i}u;`);
      if (g) code.push(`if (m < M) {`);
      for (let gn = 0; gn < GN; gn++) {
        code.push(`{ let n = n0 + (${gn * TXn}u + tx) * 4u; let o = cBase + m * N + n;`);
        if (v.vecC) code.push(g ? `if (n < N) { C[o / 4u] = acc${r}_${gn}; }` : `C[o / 4u] = acc${r}_${gn};`);
        else for (let e = 0; e < 4; e++) code.push(g ? `if (n + ${e}u < N) { C[o + ${e}u] = acc${r}_${gn}.${X[e]}; }` : `C[o + ${e}u] = acc${r}_${gn}.${X[e]};`);
        code.push(`}`);
      }
      if (g) code.push(`}`);
      code.push(`}`);
    }
  }
  code.push(`}`);
  return code.join("\n");
}

export function matmulKernel(ctx: GpuCtx, [a, b]: readonly KernelArg[], out: KernelArg, p: PrimParams["matmul"]): void {
  const ar = a.shape.length, brk = b.shape.length, or = out.shape.length;
  const M = out.shape[or - 2], N = out.shape[or - 1];
  const K = p.transA ? a.shape[ar - 2] : a.shape[ar - 1];
  const outBatch = out.shape.slice(0, or - 2);
  let batches = prod(outBatch);
  if (batches === 0 || M === 0 || N === 0) return;
  let m = M;
  let batchShape: number[] = [], aStr: number[] = [], bStr: number[] = [];
  const bBatched = prod(b.shape.slice(0, brk - 2)) > 1;
  if (!bBatched && !p.transA) {
    m = M * batches; // A's batch folds into its rows
    batches = 1;
  } else {
    const aB = a.shape.slice(0, ar - 2), bB = b.shape.slice(0, brk - 2);
    const mk = a.shape[ar - 2] * a.shape[ar - 1], kn = b.shape[brk - 2] * b.shape[brk - 1];
    const c = coalesce(outBatch, [
      strides(outBatch),
      broadcastStrides(aB, outBatch).map((s) => s * mk),
      broadcastStrides(bB, outBatch).map((s) => s * kn),
    ]);
    batchShape = c.shape;
    aStr = c.strides[1];
    bStr = c.strides[2];
  }
  const t = matmulTuning.force ??
    (ceilDiv(m, 128) * ceilDiv(N, 128) * batches >= matmulTuning.bigTileMinBlocks ? BIG_TILE : SMALL_TILE);
  const v: MatmulVariant = {
    t,
    transA: p.transA,
    transB: p.transB,
    vecA: (p.transA ? M : K) % 4 === 0,
    vecB: (p.transB ? K : N) % 4 === 0,
    vecC: N % 4 === 0,
    full: m % t.BM === 0 && N % t.BN === 0 && K % t.BK === 0,
    batchRank: batchShape.length,
  };
  const key = `matmul:${t.BM}x${t.BN}x${t.BK}/${t.TM}x${t.TN}:${+v.transA}${+v.transB}:${+v.vecA}${+v.vecB}${+v.vecC}:${+v.full}:b${v.batchRank}`;
  const bufs = [ctx.ref(out, "matmul"), ctx.ref(a, "matmul"), ctx.ref(b, "matmul")];
  const gx = ceilDiv(N, t.BN), gy = ceilDiv(m, t.BM);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (gx > maxDim || gy > maxDim) throw new RangeError(`webgpu matmul: [${m}, ${N}] needs ${gy}x${gx} workgroups, over the limit ${maxDim}`);
  for (let q0 = 0; q0 < batches; q0 += maxDim) {
    const w = new ParamWords().u(m).u(N).u(K).u(q0);
    for (const d of batchShape) w.u(d);
    for (const s of aStr) w.u(s);
    for (const s of bStr) w.u(s);
    ctx.dispatch({
      label: "matmul", key, wgsl: () => matmulWgsl(v), buffers: bufs, params: w.words(),
      groups: [gx, gy, Math.min(maxDim, batches - q0)],
    });
  }
}
