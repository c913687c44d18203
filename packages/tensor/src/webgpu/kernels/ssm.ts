/**
 * The fused selective scan (ops/ssm.ts): forward (y or the last state) and backward.
 *   h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t,  y_t = h_t · C_t;  h ∈ R^{Di×N} per sequence.
 *
 * One thread per (b, i) keeps its N states in vec4 registers: the code is generated for the
 * shape class N (unrolled over ceil(N/4) vec4s, no function-scope arrays, as naga needs), and
 * walks L. y_t and the backward's dx, dΔ are sums over n inside the thread.
 *
 * Backward (selectiveScanGrad, packed output dx | dΔ | dA | dB | dC | dh0), in chunks of T steps
 * so that scratch stays bounded (the CPU keeps all L states of a sequence):
 *   1. a forward pass stores the state entering each chunk (checkpoints);
 *   2. for each chunk, last to first, one dispatch recomputes the chunk's states from its
 *      checkpoint into scratch, then runs the adjoint λ_t = gy_t C_t + a_{t+1} λ_{t+1} backward
 *      through it. dB_t, dC_t are sums over i: each workgroup (threads = consecutive i of one b)
 *      sums its part in workgroup memory per step; a small kernel adds the workgroups' parts;
 *   3. dA (summed over b) and dh0 (the final λ) are copied out.
 * All scratch lives in one buffer W (regions at param offsets), so no dispatch binds more than
 * 8 storage buffers (the WebGPU default limit).
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const FWD_WG = 64;

/** Tuning knobs: scratch budget of the backward (elements), or a forced chunk length (tests). */
export const ssmTuning = { scratchElems: 16 * 2 ** 20, forceChunk: 0 };

const XYZW = ["x", "y", "z", "w"];

/** A vec4 of arr[base + 4q .. 4q+3], zero past N (N is a compile-time constant). */
function ld(N: number, arr: string, base: string, q: number): string {
  const c = [0, 1, 2, 3].map((e) => (4 * q + e < N ? `${arr}[${base} + ${4 * q + e}u]` : "0.0f"));
  return `vec4<f32>(${c.join(", ")})`;
}
function st(N: number, arr: string, base: string, q: number, v: string): string {
  const s: string[] = [];
  for (let e = 0; e < 4 && 4 * q + e < N; e++) s.push(`${arr}[${base} + ${4 * q + e}u] = ${v}.${XYZW[e]};`);
  return s.join(" ");
}
const quads = (N: number) => Array.from({ length: Math.ceil(N / 4) }, (_, q) => q);
const VEXP = "fn vexp(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(m_exp(v.x), m_exp(v.y), m_exp(v.z), m_exp(v.w)); }\n";

/** The recurrence step at time t for thread (b, i): updates h0..h{N4-1}. */
function stepCode(N: number): string {
  const Q = quads(N);
  return [
    `let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;`,
    `let dt = delta[row]; let dtx = dt * x[row];`,
    ...Q.map((q) => `hs${q} = vexp(dt * A${q}) * hs${q} + dtx * ${ld(N, "Bm", "bn", q)};`),
  ].join("\n    ");
}

type FwdMode = "y" | "state" | "ck";

/** Forward. params: B·Di, L, Di, [ck: T, nC, ckOff]. */
function forwardWgsl(N: number, mode: FwdMode): string {
  const Q = quads(N);
  const bufs = [{ name: "out", type: "f32", write: true }, { name: "x", type: "f32" }, { name: "delta", type: "f32" }, { name: "A", type: "f32" }, { name: "Bm", type: "f32" }];
  if (mode === "y") bufs.push({ name: "C", type: "f32" });
  bufs.push({ name: "h0", type: "f32" });
  const ck = mode === "ck"
    ? `if (t % ${pu(3)} == 0u) { let cb = ${pu(5)} + ((b * ${pu(4)} + t / ${pu(3)}) * Di + i) * N; ${Q.map((q) => st(N, "out", "cb", q, `hs${q}`)).join(" ")} }`
    : "";
  const y = mode === "y" ? `var acc = 0.0f;\n    ${Q.map((q) => `acc += dot(hs${q}, ${ld(N, "C", "bn", q)});`).join(" ")}\n    out[row] = acc;` : "";
  return `${header(6, bufs)}${WGSL_MATH}${VEXP}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let g = wg * ${FWD_WG}u + lid;
  if (g >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let Di = ${pu(2)}; let N = ${N}u;
  let b = g / Di; let i = g % Di;
  ${Q.map((q) => `let A${q} = ${ld(N, "A", "i * N", q)};`).join("\n  ")}
  ${Q.map((q) => `var hs${q} = ${ld(N, "h0", "g * N", q)};`).join("\n  ")}
  for (var t = 0u; t < L; t++) {
    ${ck}
    ${stepCode(N)}
    ${y}
  }
  ${mode === "state" ? Q.map((q) => st(N, "out", "g * N", q, `hs${q}`)).join("\n  ") : ""}
}`;
}

function runForward(ctx: GpuCtx, ins: readonly KernelArg[], out: BufRef, mode: FwdMode, extra: number[] = []): void {
  const [x, delta, A, Bm, C, h0] = ins;
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  if (B * Di === 0) return;
  const label = mode === "y" ? "selectiveScan" : "selectiveScanState";
  const bufs = [out, ctx.ref(x, label), ctx.ref(delta, label), ctx.ref(A, label), ctx.ref(Bm, label)];
  if (mode === "y") bufs.push(ctx.ref(C, label));
  bufs.push(ctx.ref(h0, label));
  const w = new ParamWords().u(B * Di).u(L).u(Di);
  for (const e of extra) w.u(e);
  ctx.dispatch({
    label, key: `ssm:fwd:${mode}:N${N}`, wgsl: () => forwardWgsl(N, mode), buffers: bufs, params: w.words(),
    groups: grid(ceilDiv(B * Di, FWD_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

export function selectiveScanKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  runForward(ctx, ins, ctx.ref(out, "selectiveScan"), "y");
}

export function selectiveScanStateKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  runForward(ctx, ins, ctx.ref(out, "selectiveScanState"), "state");
}

// ---------- backward ----------

/** dst[dOff + ob·dS + ot·J + j] = Σ_{m<Mid} src[sOff + ob·sS + (ot·Mid + m)·J + j], o = ob·q + ot. */
const GSUM = `${header(9, [{ name: "dst", type: "f32", write: true }, { name: "src", type: "f32" }])}
@compute @workgroup_size(256)
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * 256u + lid;
  let O = ${pu(0)}; let J = ${pu(1)}; let Mid = ${pu(2)}; let q = ${pu(3)};
  if (e >= O * J) { return; }
  let o = e / J; let j = e % J; let ob = o / q; let ot = o % q;
  let s0 = ${pu(7)} + ob * ${pu(6)} + ot * Mid * J + j;
  var acc = 0.0f;
  for (var m = 0u; m < Mid; m++) { acc += src[s0 + m * J]; }
  dst[${pu(8)} + ob * ${pu(5)} + ot * J + j] = acc;
}`;

interface GSum { O: number; J: number; Mid: number; q: number; dS: number; sS: number; sOff: number; dOff: number }

function gsum(ctx: GpuCtx, dst: BufRef, src: BufRef, g: GSum): void {
  if (g.O * g.J === 0) return;
  ctx.dispatch({
    label: "selectiveScanGrad", key: "ssm:gsum", wgsl: () => GSUM, buffers: [dst, src],
    params: new ParamWords().u(g.O).u(g.J).u(g.Mid).u(g.q).u(0).u(g.dS).u(g.sS).u(g.sOff).u(g.dOff).words(),
    groups: grid(ceilDiv(g.O * g.J, 256), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/**
 * One chunk of the backward. params: B, L, Di, T, nC, c, nIB, ckOff, hcOff, lamOff, daOff,
 * pbOff, pcOff, oDx, oDd. Buffers: out, W, x, delta, A, Bm, C, gy.
 */
function chunkWgsl(N: number, WG: number): string {
  const Q = quads(N);
  const bufs = [
    { name: "out", type: "f32", write: true }, { name: "W", type: "f32", write: true }, { name: "x", type: "f32" },
    { name: "delta", type: "f32" }, { name: "A", type: "f32" }, { name: "Bm", type: "f32" }, { name: "C", type: "f32" },
    { name: "gy", type: "f32" },
  ];
  const P = (k: number) => pu(k);
  const per = (f: (q: number) => string) => Q.map(f).join("\n    ");
  const shStores = Q.map((q) => [0, 1, 2, 3].filter((e) => 4 * q + e < N).map((e) =>
    `sh[${4 * q + e}u * ${WG}u + lid] = cb${q}.${XYZW[e]}; sh[${N + 4 * q + e}u * ${WG}u + lid] = cc${q}.${XYZW[e]};`
  ).join(" ")).join("\n    ");
  return `${header(15, bufs)}${WGSL_MATH}${VEXP}
var<workgroup> sh: array<f32, ${Math.max(1, 2 * N * WG)}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${P(0)}; let L = ${P(1)}; let Di = ${P(2)}; let T = ${P(3)}; let nC = ${P(4)}; let c = ${P(5)}; let nIB = ${P(6)};
  let N = ${N}u;
  let b = wg / nIB;
  if (b >= B) { return; }
  let ib = wg % nIB;
  let iRaw = ib * ${WG}u + lid;
  let live = iRaw < Di;
  let i = min(iRaw, Di - 1u);
  let t0 = c * T; let Tc = min(L, t0 + T) - t0;
  ${per((q) => `let A${q} = ${ld(N, "A", "i * N", q)};`)}
  let ckb = ${P(7)} + ((b * nC + c) * Di + i) * N;
  ${per((q) => `var hs${q} = ${ld(N, "W", "ckb", q)};`)}
  for (var tl = 0u; tl < Tc; tl++) {
    let t = t0 + tl;
    ${stepCode(N)}
    if (live) { let hb = ${P(8)} + ((b * T + tl) * Di + i) * N; ${Q.map((q) => st(N, "W", "hb", q, `hs${q}`)).join(" ")} }
  }
  let lb = ${P(9)} + (b * Di + i) * N;
  let db = ${P(10)} + (b * Di + i) * N;
  ${per((q) => `var lam${q} = ${ld(N, "W", "lb", q)};`)}
  ${per((q) => `var dA${q} = ${ld(N, "W", "db", q)};`)}
  for (var tr = 0u; tr < Tc; tr++) {
    let tl = Tc - 1u - tr;
    let t = t0 + tl;
    let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;
    let dt = delta[row]; let xv = x[row]; let g = gy[row];
    let hb = ${P(8)} + ((b * T + tl) * Di + i) * N;
    var pb = ckb;
    if (tl > 0u) { pb = hb - Di * N; }
    var ddt = 0.0f; var dx = 0.0f;
    ${per((q) => `let C${q} = ${ld(N, "C", "bn", q)}; let B${q} = ${ld(N, "Bm", "bn", q)};
    let l${q} = lam${q} + g * C${q};
    let a${q} = vexp(dt * A${q});
    ddt += dot(l${q} * xv, B${q}); dx += dot(l${q} * dt, B${q});
    let cb${q} = select(vec4<f32>(0.0f), l${q} * (dt * xv), live);
    let cc${q} = select(vec4<f32>(0.0f), g * ${ld(N, "W", "hb", q)}, live);
    let da${q} = l${q} * ${ld(N, "W", "pb", q)} * a${q};
    ddt += dot(da${q}, A${q}); dA${q} += da${q} * dt; lam${q} = l${q} * a${q};`)}
    if (live) { out[${P(13)} + row] = dx; out[${P(14)} + row] = ddt; }
    ${shStores}
    workgroupBarrier();
    for (var j = lid; j < 2u * N; j += ${WG}u) {
      var s = 0.0f;
      for (var k = 0u; k < ${WG}u; k++) { s += sh[j * ${WG}u + k]; }
      let n = j % N;
      let base = select(${P(11)}, ${P(12)}, j >= N);
      W[base + ((b * T + tl) * nIB + ib) * N + n] = s;
    }
    workgroupBarrier();
  }
  if (live) {
    ${Q.map((q) => st(N, "W", "lb", q, `lam${q}`) + " " + st(N, "W", "db", q, `dA${q}`)).join("\n    ")}
  }
}`;
}

export function selectiveScanGradKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  const [x, delta, A, Bm, C, h0, gy, ghL] = ins;
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  const label = "selectiveScanGrad";
  const S = B * Di * N;
  const oDx = 0, oDd = B * L * Di, oDA = 2 * B * L * Di, oDB = oDA + Di * N, oDC = oDB + B * L * N, oDh0 = oDC + B * L * N;
  const WG = Math.max(1, Math.min(64, 2 ** Math.floor(Math.log2(2048 / Math.max(1, N)))));
  const nIB = Math.max(1, ceilDiv(Di, WG));
  // chunk length: the largest whose scratch fits the budget and one binding
  const limit = Math.min(ssmTuning.scratchElems, Math.floor(ctx.limits.maxStorageBufferBindingSize / 4));
  const scratch = (T: number) => B * ceilDiv(L, T) * Di * N + B * T * Di * N + 2 * S + 2 * B * T * nIB * N;
  let T = ssmTuning.forceChunk > 0 ? ssmTuning.forceChunk : Math.max(1, L);
  while (T > 1 && scratch(T) > limit) T = ceilDiv(T, 2);
  const nC = L === 0 ? 0 : ceilDiv(L, T);
  const ckOff = 0, hcOff = ckOff + B * nC * Di * N, lamOff = hcOff + B * T * Di * N, daOff = lamOff + S;
  const pbOff = daOff + S, pcOff = pbOff + B * T * nIB * N;
  const total = pcOff + B * T * nIB * N;
  if (total * 4 > ctx.limits.maxStorageBufferBindingSize) {
    throw new RangeError(`webgpu.${label}: scratch of ${total * 4} bytes for x ${JSON.stringify(x.shape)}, N = ${N} exceeds maxStorageBufferBindingSize`);
  }
  const W = ctx.temp(total * 4);
  const ro = ctx.ref(out, label), rx = ctx.ref(x, label);
  // λ ← ghL, dA partials ← 0, checkpoints
  gsum(ctx, W, ctx.ref(ghL, label), { O: 1, J: S, Mid: 1, q: 1, dS: 0, sS: 0, sOff: 0, dOff: lamOff });
  gsum(ctx, W, rx, { O: 1, J: S, Mid: 0, q: 1, dS: 0, sS: 0, sOff: 0, dOff: daOff });
  if (nC > 0) runForward(ctx, [x, delta, A, Bm, C, h0], W, "ck", [T, nC, ckOff]);
  const bufs = [ro, W, rx, ctx.ref(delta, label), ctx.ref(A, label), ctx.ref(Bm, label), ctx.ref(C, label), ctx.ref(gy, label)];
  for (let c = nC - 1; c >= 0; c--) {
    const w = new ParamWords().u(B).u(L).u(Di).u(T).u(nC).u(c).u(nIB)
      .u(ckOff).u(hcOff).u(lamOff).u(daOff).u(pbOff).u(pcOff).u(oDx).u(oDd);
    if (B * Di > 0) {
      ctx.dispatch({
        label, key: `ssm:bwd:N${N}:wg${WG}`, wgsl: () => chunkWgsl(N, WG), buffers: bufs, params: w.words(),
        groups: grid(B * nIB, ctx.limits.maxComputeWorkgroupsPerDimension),
      });
    }
    const Tc = Math.min(L, (c + 1) * T) - c * T;
    for (const [sOff, dOff] of [[pbOff, oDB], [pcOff, oDC]]) {
      gsum(ctx, ro, W, { O: B * Tc, J: N, Mid: nIB, q: Tc, dS: L * N, sS: T * nIB * N, sOff, dOff: dOff + c * T * N });
    }
  }
  gsum(ctx, ro, W, { O: 1, J: Di * N, Mid: B, q: 1, dS: 0, sS: 0, sOff: daOff, dOff: oDA });
  gsum(ctx, ro, W, { O: 1, J: S, Mid: 1, q: 1, dS: 0, sS: 0, sOff: lamOff, dOff: oDh0 });
  ctx.releaseTemp(W);
}
