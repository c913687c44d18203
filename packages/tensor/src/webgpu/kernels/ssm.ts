/**
 * The fused selective scan (ops/ssm.ts): forward (y or the last state) and backward.
 *   h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_t,  y_t = h_t · C_t;  h ∈ R^{Di×N} per sequence.
 *
 * One thread per (b, i) keeps its N states in vec4 registers and walks L: the code is generated
 * per N4 = ceil(N/4) (unrolled over the vec4s, no function-scope arrays, as naga needs; N itself
 * is a runtime value, so N = 13..16 share a pipeline). y_t and the backward's dx, dΔ are sums
 * over n inside the thread.
 *
 * Forward (y and the last state), chunked along L when B·Di alone cannot fill the GPU (batch-1
 * long sequences): L is cut into nC chunks of T steps, and
 *   1. a thread per (b, chunk, i) runs its chunk from h = 0, writing the chunk's end state E and
 *      ΣΔ over the chunk (the chunk's decay is then exp(A·ΣΔ), a product of the exp(Δ_t A));
 *   2. a thread per (b, i) walks the chunks in order, turning (E, ΣΔ) into the state entering
 *      each chunk (over E), and the last state;
 *   3. a thread per (b, chunk, i) re-runs its chunk from that state, writing y.
 *   Only one state per chunk and channel goes through memory (N/T of x's size), not the L
 *   states; x, Δ and B are read twice, C once.
 * Or (ssmTuning.fwdAlgo = "lookback") the same chunks in ONE dispatch with a decoupled look-back
 * (fwdLookbackWgsl): a workgroup of 64 channels of one (b, chunk) takes its chunk from a ticket
 * counter, runs the chunk from h = 0 (pass 1's E, ΣΔ), publishes them, composes its
 * predecessors' until one has published the state leaving it, publishes its own leaving state
 * and re-runs the chunk from the entering state writing y (pass 3). No serial walk over the
 * chunks (pass 2), and one dispatch instead of three.
 *
 * Backward (selectiveScanGrad, packed output dx | dΔ | dA | dB | dC | dh0), parallel along L
 * (gradParallel, the default): chunks of T steps (the shortest whose carries take at most half
 * the scratch budget);
 *   1. the forward's passes 1 and 2 give the state entering each chunk;
 *   2. the same two passes for the adjoint λ_{t−1} = a_t (λ_t + gy_t C_t), right to left: a
 *      thread per (b, chunk, i) runs its chunk from λ = 0, a thread per (b, i) turns those into
 *      the λ entering each chunk from the right (and the final λ, dh0);
 *   3. the chunks in groups of G (as many as the rest of the scratch holds), one dispatch of
 *      B·G·Di threads a group: each thread recomputes its chunk's states into scratch and runs
 *      the adjoint back through them (as the sequential chunk kernel below), dB_t / dC_t terms
 *      summed over i by the parallel reduction, dA terms per chunk summed at the end.
 *   Its scratch traffic is what bounds it, not the carries: each state is written and read once
 *   (h_{t−1} read for dA is kept for the next step's dC); the dB / dC terms are summed over the
 *   workgroup's 64 channels in workgroup memory when Di % 64 = 0 (else written per channel and
 *   read back by the reduction: 4 more vec4 accesses per state and step).
 *   Or (ssmTuning.bwdAlgo = "segments", chunkSegWgsl) step 3 keeps the states on chip: the
 *   chunk is cut into segments of S steps; a forward over the chunk keeps the state entering
 *   each segment in workgroup memory (so the chunk is at most S·(1 + what fits) steps), then
 *   segments last to first recompute their S states into registers and run the adjoint through
 *   them. No state scratch; each exp(Δ_t A) computed three times instead of twice.
 * Fallback (ssmTuning.bwdParallel off, or no group fits the scratch): parallel over B·Di only,
 * in chunks of T steps so that scratch stays bounded (the CPU keeps all L states of a sequence;
 * here T = L whenever B·L·Di·N fits the scratch budget):
 *   1. a forward pass stores the state entering each chunk (checkpoints);
 *   2. for each chunk, last to first, one dispatch recomputes the chunk's states from its
 *      checkpoint into scratch, then runs the adjoint λ_t = gy_t C_t + a_{t+1} λ_{t+1} backward
 *      through it, writing each thread's terms of dB_t and dC_t (sums over i) to scratch, which a
 *      strided-sum kernel (gsum) adds up;
 *   3. dA (summed over b) and dh0 (the final λ) are copied out.
 * All scratch lives in one buffer W (regions at param offsets), so no dispatch binds more than
 * 8 storage buffers (the WebGPU default limit).
 *
 * Files: ssm-common.ts holds ssmTuning and the WGSL builders both directions use (and the strided
 * sum gsum), ssm-forward.ts the forward, ssm-backward.ts the parallel backward (its plan, chunk
 * passes and encoding), ssm-chunk.ts its per-chunk kernels; this one the sequential backward and the backward's entry point,
 * and it re-exports the others' exported names that importers take from here.
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";
import { reduceGroups, type Group } from "./reduce.ts";
import { gradParallel } from "./ssm-backward.ts";
import { FWD_WG, gsum, ld, quads, ssmTuning, stepCode, VEXP } from "./ssm-common.ts";
import { runForward } from "./ssm-forward.ts";

export { ssmTuning } from "./ssm-common.ts";
export { ssmGradPlan, type SsmGradPlan } from "./ssm-backward.ts";
export { selectiveScanKernel, selectiveScanStateKernel, selectiveScanWithStateKernel, ssmForwardPlan } from "./ssm-forward.ts";

// ---------- backward ----------


/**
 * One chunk of the backward. params: B, L, Di, T, nC, c, ckOff, hcOff, lamOff, daOff, pbOff,
 * pcOff (scratch offsets in vec4s), oDx, oDd, N. Buffers: out, W (vec4s), x, delta, A, Bm, C,
 * gy. Scratch rows are padded to NP = 4·N4 floats (zeros past N), so they move as whole vec4s
 * without guards. Each thread writes its terms of dB_t and dC_t (sums over i) to scratch
 * [B, T, Di, NP]; a gsum adds them up: no workgroup memory, no barrier (cheap to compile).
 */
function chunkWgsl(N4: number): string {
  const Q = quads(N4);
  const bufs = [
    { name: "out", type: "f32", write: true }, { name: "W", type: "vec4<f32>", write: true }, { name: "x", type: "f32" },
    { name: "delta", type: "f32" }, { name: "A", type: "f32" }, { name: "Bm", type: "f32" }, { name: "C", type: "f32" },
    { name: "gy", type: "f32" },
  ];
  const P = (k: number) => pu(k);
  const per = (f: (q: number) => string) => Q.map(f).join("\n    ");
  return `${header(15, bufs)}${VEXP}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let B = ${P(0)}; let L = ${P(1)}; let Di = ${P(2)}; let T = ${P(3)}; let nC = ${P(4)}; let c = ${P(5)};
  let N = ${P(14)};
  let g0 = wg * ${FWD_WG}u + lid;
  if (g0 >= B * Di) { return; }
  let b = g0 / Di; let i = g0 % Di;
  let t0 = c * T; let Tc = min(L, t0 + T) - t0;
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`)}
  let ckb = ${P(6)} + ((b * nC + c) * Di + i) * ${N4}u;
  ${per((q) => `var hs${q} = W[ckb + ${q}u];`)}
  for (var tl = 0u; tl < Tc; tl++) {
    let t = t0 + tl;
    ${stepCode(N4)}
    let hb = ${P(7)} + ((b * T + tl) * Di + i) * ${N4}u;
    ${per((q) => `W[hb + ${q}u] = hs${q};`)}
  }
  let lb = ${P(8)} + (b * Di + i) * ${N4}u;
  let db = ${P(9)} + (b * Di + i) * ${N4}u;
  ${per((q) => `var lam${q} = W[lb + ${q}u];`)}
  ${per((q) => `var dA${q} = W[db + ${q}u];`)}
  for (var tr = 0u; tr < Tc; tr++) {
    let tl = Tc - 1u - tr;
    let t = t0 + tl;
    let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;
    let dt = delta[row]; let xv = x[row]; let g = gy[row];
    let hb = ${P(7)} + ((b * T + tl) * Di + i) * ${N4}u;
    var pb = ckb;
    if (tl > 0u) { pb = hb - Di * ${N4}u; }
    let cbo = ${P(10)} + ((b * T + tl) * Di + i) * ${N4}u;
    let cco = ${P(11)} + ((b * T + tl) * Di + i) * ${N4}u;
    var ddt = 0.0f; var dx = 0.0f;
    ${per((q) => `let C${q} = ${ld("C", "bn", q)}; let B${q} = ${ld("Bm", "bn", q)};
    let l${q} = lam${q} + g * C${q};
    let a${q} = vexp(dt * A${q});
    ddt += dot(l${q} * xv, B${q}); dx += dot(l${q} * dt, B${q});
    W[cbo + ${q}u] = l${q} * (dt * xv);
    W[cco + ${q}u] = g * W[hb + ${q}u];
    let da${q} = l${q} * W[pb + ${q}u] * a${q};
    ddt += dot(da${q}, A${q}); dA${q} += da${q} * dt; lam${q} = l${q} * a${q};`)}
    out[${P(12)} + row] = dx; out[${P(13)} + row] = ddt;
  }
  ${per((q) => `W[lb + ${q}u] = lam${q}; W[db + ${q}u] = dA${q};`)}
}`;
}


export function selectiveScanGradKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  if (gradParallel(ctx, ins, out)) return;
  const [x, delta, A, Bm, C, h0, gy, ghL] = ins;
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  const label = "selectiveScanGrad";
  const N4 = Math.max(1, Math.ceil(N / 4)), NP = 4 * N4;
  const S = B * Di * NP; // one padded state per (b, i)
  const oDx = 0, oDd = B * L * Di, oDA = 2 * B * L * Di, oDB = oDA + Di * N, oDC = oDB + B * L * N, oDh0 = oDC + B * L * N;
  // chunk length: the largest whose scratch fits the budget and one binding
  const limit = Math.min(ssmTuning.scratchElems, Math.floor(ctx.limits.maxStorageBufferBindingSize / 4));
  const scratch = (T: number) => B * ceilDiv(L, T) * Di * NP + 3 * B * T * Di * NP + 2 * S;
  let T = ssmTuning.forceChunk > 0 ? Math.min(ssmTuning.forceChunk, Math.max(1, L)) : Math.max(1, L);
  while (T > 1 && scratch(T) > limit) T = ceilDiv(T, 2);
  const nC = L === 0 ? 0 : ceilDiv(L, T);
  // scratch regions (floats; all multiples of 4): checkpoints, chunk states, λ, dA, dB / dC terms
  const ckOff = 0, hcOff = ckOff + B * nC * Di * NP, lamOff = hcOff + B * T * Di * NP, daOff = lamOff + S;
  const pbOff = daOff + S, pcOff = pbOff + B * T * Di * NP;
  const total = pcOff + B * T * Di * NP;
  if (total * 4 > ctx.limits.maxStorageBufferBindingSize) {
    throw new RangeError(`webgpu.${label}: scratch of ${total * 4} bytes for x ${JSON.stringify(x.shape)}, N = ${N} exceeds maxStorageBufferBindingSize`);
  }
  const W = ctx.temp(total * 4);
  const sums = ctx.temp(B * T * NP * 4);
  const ro = ctx.ref(out, label), rx = ctx.ref(x, label);
  // λ ← ghL (padded with zeros), dA partials ← 0, checkpoints
  gsum(ctx, W, rx, { O: 1, J: 2 * S, Mid: 0, dS: 0, sS: 0, sOff: 0, dOff: lamOff });
  gsum(ctx, W, ctx.ref(ghL, label), { O: B * Di, J: N, Mid: 1, dS: NP, sS: N, sOff: 0, dOff: lamOff });
  if (nC > 0) runForward(ctx, [x, delta, A, Bm, C, h0], W, "ck", [T, nC, ckOff]);
  const bufs = [ro, W, rx, ctx.ref(delta, label), ctx.ref(A, label), ctx.ref(Bm, label), ctx.ref(C, label), ctx.ref(gy, label)];
  for (let c = nC - 1; c >= 0; c--) {
    const w = new ParamWords().u(B).u(L).u(Di).u(T).u(nC).u(c);
    for (const off of [ckOff, hcOff, lamOff, daOff, pbOff, pcOff]) w.u(off / 4);
    w.u(oDx).u(oDd).u(N);
    if (B * Di > 0) {
      ctx.dispatch({
        label, key: `ssm:bwd:q${N4}`, wgsl: () => chunkWgsl(N4), buffers: bufs, params: w.words(),
        groups: grid(ceilDiv(B * Di, FWD_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
      });
    }
    // dB_t, dC_t over the chunk: sums over i of the terms ([B, Tc, Di, NP] → [B, Tc, NP] by the
    // parallel reduction, then copied into place without the padding)
    const Tc = Math.min(L, (c + 1) * T) - c * T;
    for (const [sOff, dOff] of [[pbOff, oDB], [pcOff, oDC]]) {
      const groups: Group[] = [
        { size: B, stride: T * Di * NP, reduced: false }, { size: Tc, stride: Di * NP, reduced: false },
        { size: Di, stride: NP, reduced: true }, { size: NP, stride: 1, reduced: false },
      ];
      reduceGroups(ctx, "sum", W, sums, groups, sOff);
      gsum(ctx, ro, sums, { O: B * Tc, q: Tc, J: N, Mid: 1, dS: L * N, dT: N, dOff: dOff + c * T * N, sS: Tc * NP, sT: NP, sOff: 0 });
    }
  }
  gsum(ctx, ro, W, { O: Di, J: N, Mid: B, dS: N, sS: NP, sM: Di * NP, sOff: daOff, dOff: oDA });
  gsum(ctx, ro, W, { O: B * Di, J: N, Mid: 1, dS: N, sS: NP, sOff: lamOff, dOff: oDh0 });
  ctx.releaseTemp(W);
  ctx.releaseTemp(sums);
}
