/**
 * The WGSL generator of the tiled matmul kernel (matmul.ts plans and launches it; the tile
 * configs are in matmul-tile-config.ts), the classic register-blocked SGEMM: a workgroup of up to
 * 256 threads computes a BM x BN block of C, marching along K in steps of BK;
 * - each step stages a BK x BM slice of op(A) and a BK x BN slice of op(B) in workgroup memory,
 *   both stored k-major as vec4 along m / n, so the inner loop reads one vec4 per 4 rows / cols;
 * - each thread owns a TM x TN block (8x8 or 4x4) of C in vec4 registers (no function-scope
 *   arrays, which naga compiles badly: separate generated variables), and the specialised tiles
 *   unroll the BK steps of the inner loop;
 * - global loads for step k+1 are issued into registers before the math of step k (register
 *   prefetch), so their latency hides behind the FMAs;
 * - specialised tiles: loads are vec4 along whichever axis is contiguous in memory (k for A, n
 *   for B, or m / k when transposed) when that axis is a multiple of 4, else four guarded scalar
 *   loads, and bounds checks disappear when M, N, K are multiples of the tile ("full"); a
 *   generic tile (a config without `specialize`, or matmulTuning.runtimeTrans) takes transA /
 *   transB as uniforms (one pipeline for the four combinations).
 * Grid z walks the output batch from param q0 and each workgroup finds its A / B offsets through
 * the broadcast strides; the split-K variant walks slices × batches and writes partial C's; the
 * addMatmul variant stores C = acc (· S[row]) + D. One kernel per MatmulVariant.
 * Measured on an H100 (Dawn under Node, GPU-timed, packages/bench/src/webgpu-matmul.ts): 40.8
 * TFLOP/s at 4096², 40.3 at 2048², 30.3 at 1024²; cuBLAS fp32 (TF32 off): 50.8 / 47.9 / 27.8.
 */
import { header, pu } from "../context.ts";
import type { TileConfig } from "./matmul-tile-config.ts";

/** One kernel of the tiled matmul: its tile and what the generated code is specialised on. */
export interface MatmulVariant {
  t: TileConfig;
  /** null: a runtime flag (one pipeline for the four combinations). */
  transA: boolean | null;
  transB: boolean | null;
  vecA: boolean;
  vecB: boolean;
  vecC: boolean;
  full: boolean;
  batchRank: number;
  /** Unroll the BK steps of the inner loop (fast on GPUs; a much longer compile on lavapipe). */
  unroll: boolean;
  /**
   * Split-K: grid z walks slices × batches, K's slice bounds come from two more params and C is
   * the scratch of partials (false: the code is exactly the unsplit kernel's).
   */
  split?: boolean;
  /**
   * addMatmul's store (never with split): "add" C = acc + D, "scaleAdd" C = acc · S[row] + D, D a
   * buffer of C's shape and layout and S one f32 a row of C (false or absent: C = acc).
   */
  epi?: false | "add" | "scaleAdd";
}

const X = ["x", "y", "z", "w"];

/** The tiled kernel of variant `v` (params as matmul.ts's planLaunches writes them). */
export function matmulWgsl(v: MatmulVariant): string {
  const { BM, BN, BK, TM, TN } = v.t;
  const TXn = BN / TN, TYn = BM / TM; // threads along n and m
  const NT = TXn * TYn;
  const GM = TM / 4, GN = TN / 4;
  const LA = (BK * BM) / 4 / NT, LB = (BK * BN) / 4 / NT; // vec4 loads per thread per step
  const db = !!v.t.dbuf;
  const KS = db ? 2 * BK : BK; // k rows of workgroup memory (two k-tiles when double-buffered)
  const br = v.batchRank;
  const sp = !!v.split;
  const nWords = (sp ? 8 : 6) + 3 * br;
  // where the k loop ends: K itself, or the end of this workgroup's slice
  const KE = sp ? "kEnd" : "K";
  const code: string[] = [];
  const decl = [
    { name: "C", type: v.vecC ? "vec4<f32>" : "f32", write: true },
    { name: "A", type: v.vecA ? "vec4<f32>" : "f32" },
    { name: "B", type: v.vecB ? "vec4<f32>" : "f32" },
    ...(v.epi ? [{ name: "D", type: v.vecC ? "vec4<f32>" : "f32" }] : []),
    ...(v.epi === "scaleAdd" ? [{ name: "S", type: "f32" }] : []),
  ];
  code.push(header(nWords, decl));
  // k-major tiles as 2-D arrays: in the inner loop the k index is a constant (unrolled) and the
  // other is loop-invariant, so the index clamps that robustness (Tint, naga) adds to dynamic
  // indices can be hoisted out of the loop, which one flat index kk·stride + j would prevent
  const pad = v.t.cf && !v.t.xs ? 1 : 0; // vec4s of padding per tile row (bank-conflict-free stores)
  // :xs: the vec4 column of tile row kk (a number: a constant; else a WGSL expression)
  const col = (c: string, kk: string | number) => (!v.t.xs ? c : typeof kk === "number" ? (kk & 4 ? `(${c}) ^ 4u` : c) : `(${c}) ^ (${kk} & 4u)`);
  code.push(`var<workgroup> As: array<array<vec4<f32>, ${BM / 4 + pad}>, ${KS}>;`);
  code.push(`var<workgroup> Bs: array<array<vec4<f32>, ${BN / 4 + pad}>, ${KS}>;`);
  code.push(`@compute @workgroup_size(${NT})`);
  code.push(`fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {`);
  code.push(`let M = ${pu(0)}; let N = ${pu(1)}; let K = ${pu(2)};`);
  if (v.t.sw) {
    // bands of H (8) block rows: within a band, block columns one after another, rows fastest
    const H = `${v.t.swBand ?? 8}u`;
    code.push(`let lin = wid.y * nwg.x + wid.x; let band = lin / (${H} * nwg.x); let rows = min(nwg.y - band * ${H}, ${H});`);
    code.push(`let inb = lin % (${H} * nwg.x); let m0 = (band * ${H} + inb % rows) * ${BM}u; let n0 = (inb / rows) * ${BN}u;`);
  } else {
    code.push(`let m0 = wid.y * ${BM}u; let n0 = wid.x * ${BN}u;`);
  }
  if (v.t.wl) {
    code.push(`let lane = lid % 32u; let wp = lid / 32u;`);
    code.push(`let tx = lane % 8u + 8u * (wp % ${TXn / 8}u); let ty = lane / 8u + 4u * (wp / ${TXn / 8}u);`);
  } else {
    code.push(`let tx = lid % ${TXn}u; let ty = lid / ${TXn}u;`);
  }
  // batch offsets (in elements)
  if (sp) {
    // zz = slice · batches + batch; the partial C of (slice, batch) is block zz of the scratch
    code.push(`let zz = wid.z + ${pu(3)}; let NB = ${pu(7 + 3 * br)}; let q = zz % NB;`);
    code.push(`let kBeg = (zz / NB) * ${pu(6 + 3 * br)}; let kEnd = min(K, kBeg + ${pu(6 + 3 * br)});`);
    code.push(`var aBase = 0u; var bBase = 0u;`);
  } else {
    code.push(`var aBase = 0u; var bBase = 0u; let q = wid.z + ${pu(3)};`);
  }
  if (br > 0) {
    code.push(`var rem = q;`);
    for (let d = br - 1; d >= 0; d--) {
      const size = pu(4 + d), sa = pu(4 + br + d), sb = pu(4 + 2 * br + d);
      code.push(d === 0 ? `{ let c = rem;` : `{ let c = rem % ${size}; rem = rem / ${size};`);
      code.push(`aBase += c * ${sa}; bBase += c * ${sb}; }`);
    }
  }
  code.push(sp ? `let cBase = zz * M * N;` : `let cBase = q * M * N;`);
  const g = !v.full;
  // ---- per-thread load coordinates (constant over k) ----
  // One load slot j of a tile: `alongK` when k is the contiguous axis in memory (A not
  // transposed, B transposed): 4 consecutive k of one row, scattered into the k-major tile;
  // else 4 consecutive m (n) of one k row, stored as one vec4.
  const slot = (which: "A" | "B", j: number, alongK: boolean, vec: boolean, BX: number) => {
    const rows = which === "A" ? "M" : "N"; // the non-k extent
    const base = which === "A" ? "aBase" : "bBase";
    const smem = which === "A" ? "As" : "Bs";
    const x0 = which === "A" ? "m0" : "n0";
    const r = `r${which}${j}`;
    const pre: string[] = [], body: string[] = [], store: ((off: number) => string)[] = [];
    const l = `(lid + ${j * NT}u)`;
    if (alongK && v.t.cf) {
      // lanes 2j, 2j+1 of each 32 take 8 consecutive k of row j (of 16): see TileConfig.cf
      pre.push(`let ${r}lo = ${l} % 32u; let ${r}hi = ${l} / 32u;`);
      pre.push(`let ${r}row = (${r}hi / ${BK / 8}u) * 16u + ${r}lo / 2u; let ${r}k = ((${r}hi % ${BK / 8}u) * 2u + ${r}lo % 2u) * 4u;`);
    } else if (alongK) {
      pre.push(`let ${r}row = ${l} / ${BK / 4}u; let ${r}k = (${l} % ${BK / 4}u) * 4u;`);
    }
    if (alongK) {
      pre.push(`let ${r}g = ${x0} + ${r}row; let ${r}ok = ${r}g < ${rows};`);
      const idx = `${base} + ${r}g * K + k0 + ${r}k`;
      if (vec) {
        const cond = g ? `${r}ok && k0 + ${r}k < ${KE}` : "true";
        body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
      } else {
        const comps = [0, 1, 2, 3].map((e) => {
          const cond = g ? `${r}ok && k0 + ${r}k + ${e}u < ${KE}` : "true";
          return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
        });
        body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
      }
      // the XOR key of rows rk + e + off is rk & 4 (e < 4, off a multiple of 8 under :cf)
      const c = col(`${r}row / 4u`, `${r}k`);
      for (let e = 0; e < 4; e++) store.push((off) => `${smem}[${r}k + ${e + off}u][${c}][${r}row % 4u] = ${r}.${X[e]};`);
    } else {
      pre.push(`let ${r}kk = ${l} / ${BX / 4}u; let ${r}x4 = ${l} % ${BX / 4}u;`);
      pre.push(`let ${r}h = ${x0} + ${r}x4 * 4u;`);
      const idx = `${base} + (k0 + ${r}kk) * ${rows} + ${r}h`;
      if (vec) {
        const cond = g ? `${r}h < ${rows} && k0 + ${r}kk < ${KE}` : "true";
        body.push(g ? `${r} = select(vec4<f32>(0.0f), ${which}[select(0u, (${idx}) / 4u, ${cond})], ${cond});` : `${r} = ${which}[(${idx}) / 4u];`);
      } else {
        const comps = [0, 1, 2, 3].map((e) => {
          const cond = g ? `${r}h + ${e}u < ${rows} && k0 + ${r}kk < ${KE}` : "true";
          return g ? `select(0.0f, ${which}[select(0u, ${idx} + ${e}u, ${cond})], ${cond})` : `${which}[${idx} + ${e}u]`;
        });
        body.push(`${r} = vec4<f32>(${comps.join(", ")});`);
      }
      const c = col(`${r}x4`, `${r}kk`);
      store.push((off) => (off ? `${smem}[${r}kk + ${off}u][${c}] = ${r};` : `${smem}[${r}kk][${c}] = ${r};`));
    }
    return { pre, body, store };
  };
  // trans: a constant (specialised: the other branch is never generated) or a runtime flag
  // (both generated, a uniform branch picks one)
  const loads = (which: "A" | "B", L: number, trans: boolean | null, vec: boolean, BX: number) => {
    const pre: string[] = [], body: string[] = [], store: ((off: number) => string)[] = [];
    const flag = which === "A" ? "TA" : "TB";
    for (let j = 0; j < L; j++) {
      pre.push(`var r${which}${j} = vec4<f32>(0.0f);`);
      if (trans !== null) {
        // A not transposed and B transposed are contiguous along k
        const s1 = slot(which, j, which === "A" ? !trans : trans, vec, BX);
        pre.push(...s1.pre);
        body.push(...s1.body);
        store.push(...s1.store);
      } else {
        const sk = slot(which, j, true, false, BX), sx = slot(which, j, false, false, BX);
        pre.push(...sk.pre, ...sx.pre);
        // A: transposed means contiguous along m (sx); B: transposed means along k (sk)
        const [yes, no] = which === "A" ? [sx, sk] : [sk, sx];
        body.push(`if (${flag}) {`, ...yes.body, `} else {`, ...no.body, `}`);
        store.push(() => `if (${flag}) {`, ...yes.store, () => `} else {`, ...no.store, () => `}`);
      }
    }
    return { pre, body, store };
  };
  const la = loads("A", LA, v.transA, v.vecA, BM);
  const lb = loads("B", LB, v.transB, v.vecB, BN);
  if (v.transA === null || v.transB === null) code.push(`let TA = ${pu(4 + 3 * br)} != 0u; let TB = ${pu(5 + 3 * br)} != 0u;`);
  code.push(...la.pre, ...lb.pre);
  for (let r = 0; r < TM; r++) for (let gn = 0; gn < GN; gn++) code.push(`var acc${r}_${gn} = vec4<f32>(0.0f);`);
  if (sp) {
    code.push(`let nK = (kEnd - kBeg + ${BK - 1}u) / ${BK}u;`);
    code.push(`var k0 = kBeg;`);
  } else {
    code.push(`let nK = (K + ${BK - 1}u) / ${BK}u;`);
    code.push(`var k0 = 0u;`);
  }
  code.push(...la.body, ...lb.body);
  // one k step: read the fragments of tile row kk (a number: a constant index), then the FMAs
  const frags = (kk: string | number, sfx: string, decl = "let") => {
    const k = typeof kk === "number" ? `${kk}u` : kk;
    for (let gm = 0; gm < GM; gm++) code.push(`${decl} a${gm}${sfx} = As[${k}][${col(`${gm * TYn}u + ty`, kk)}];`);
    for (let gn = 0; gn < GN; gn++) code.push(`${decl} b${gn}${sfx} = Bs[${k}][${col(`${gn * TXn}u + tx`, kk)}];`);
  };
  const fmas = (sfx: string) => {
    for (let gm = 0; gm < GM; gm++) {
      for (let i = 0; i < 4; i++) {
        for (let gn = 0; gn < GN; gn++) code.push(`acc${gm * 4 + i}_${gn} += a${gm}${sfx}.${X[i]} * b${gn}${sfx};`);
      }
    }
  };
  const kStep = (kk: string | number, sfx: string) => {
    frags(kk, sfx);
    fmas(sfx);
  };
  // store the tile, barrier, issue the next tile's global loads (their latency hides behind the
  // math), compute, barrier. (A ping-pong pair of tiles with one barrier per step, k-tiles of 8
  // or 16, 128x64 blocks, padded or lane-per-row tile stores: all measured slower on an H100.)
  const stores = (off: number) => [...la.store, ...lb.store].map((f) => f(off));
  const compute = (off: number) => {
    code.push(`{`); // a scope per k-tile: the double-buffered loop body holds two
    if (v.t.rf && v.unroll) {
      // :rf: step kk + 1's fragments are read before step kk's FMAs
      frags(off, "_0");
      for (let kk = 0; kk < BK; kk++) {
        if (kk + 1 < BK) frags(kk + 1 + off, `_${kk + 1}`);
        fmas(`_${kk}`);
      }
    } else if (v.t.rf) {
      // the same in a loop: the fragments in hand (c) are swapped for the next (n) each step
      frags(off, "c", "var");
      code.push(`for (var kk = ${off}u; kk < ${off + BK - 1}u; kk++) {`);
      frags("(kk + 1u)", "n");
      fmas("c");
      for (let gm = 0; gm < GM; gm++) code.push(`a${gm}c = a${gm}n;`);
      for (let gn = 0; gn < GN; gn++) code.push(`b${gn}c = b${gn}n;`);
      code.push(`}`);
      fmas("c");
    } else if (v.unroll) {
      for (let kk = 0; kk < BK; kk++) kStep(kk + off, `_${kk}`);
    } else {
      code.push(`for (var kk = ${off}u; kk < ${off + BK}u; kk++) {`);
      kStep("kk", "");
      code.push(`}`);
    }
    code.push(`}`);
  };
  if (!db) {
    code.push(`for (var kt = 0u; kt < nK; kt++) {`);
    code.push(...stores(0));
    code.push(`workgroupBarrier();`);
    code.push(`k0 = k0 + ${BK}u;`);
    code.push(`if (kt + 1u < nK) {`, ...la.body, ...lb.body, `}`);
    compute(0);
    code.push(`workgroupBarrier();`);
    code.push(`}`);
  } else {
    // two halves per iteration, so each reads a fixed buffer (constant indices): compute from
    // one buffer while storing the next k-tile (already in registers) into the other, then one
    // barrier. A buffer is overwritten only after the barrier that ends the reads of it.
    code.push(...stores(0));
    code.push(`workgroupBarrier();`);
    code.push(`for (var kt = 0u; kt < nK; kt += 2u) {`);
    for (const [cur, nxt, ahead] of [[0, BK, 1], [BK, 0, 2]]) {
      if (ahead === 2) code.push(`if (kt + 1u >= nK) { break; }`);
      code.push(`let more${ahead} = kt + ${ahead}u < nK;`);
      code.push(`if (more${ahead}) {`, `k0 = k0 + ${BK}u;`, ...la.body, ...lb.body, `}`);
      compute(cur);
      code.push(`if (more${ahead}) {`, ...stores(nxt), `}`);
      code.push(`workgroupBarrier();`);
    }
    code.push(`}`);
  }
  // ---- store ----
  for (let gm = 0; gm < GM; gm++) {
    for (let i = 0; i < 4; i++) {
      const r = gm * 4 + i;
      code.push(`{ let m = m0 + (${gm * TYn}u + ty) * 4u + ${i}u;`);
      if (g) code.push(`if (m < M) {`);
      if (v.epi === "scaleAdd") code.push(`let sm = S[m];`);
      // the value stored at C[at] from the accumulator's part `x` (addMatmul's epilogue, if any)
      const val = (x: string, at: string) => (v.epi === "scaleAdd" ? `${x} * sm + D[${at}]` : v.epi === "add" ? `${x} + D[${at}]` : x);
      for (let gn = 0; gn < GN; gn++) {
        code.push(`{ let n = n0 + (${gn * TXn}u + tx) * 4u; let o = cBase + m * N + n;`);
        const acc = `acc${r}_${gn}`;
        if (v.vecC) code.push(g ? `if (n < N) { C[o / 4u] = ${val(acc, "o / 4u")}; }` : `C[o / 4u] = ${val(acc, "o / 4u")};`);
        else {
          for (let e = 0; e < 4; e++) {
            const at = `o + ${e}u`;
            code.push(g ? `if (n + ${e}u < N) { C[${at}] = ${val(`${acc}.${X[e]}`, at)}; }` : `C[${at}] = ${val(`${acc}.${X[e]}`, at)};`);
          }
        }
        code.push(`}`);
      }
      if (g) code.push(`}`);
      code.push(`}`);
    }
  }
  code.push(`}`);
  return code.join("\n");
}
