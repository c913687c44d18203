/**
 * The fused selective scan's backward parallel along L (the default; ssm.ts's file comment has
 * the whole scheme): its plan (ssmGradPlan), the adjoint's chunk passes and gradParallel, which
 * encodes them with the per-chunk kernels of ssm-chunk.ts (chunkParWgsl, chunkSegWgsl).
 * ssm.ts keeps the sequential fallback and the primitive's entry point.
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";
import { reduceGroups, type Group } from "./reduce.ts";
import { carryWalkCode, FWD_WG, gsum, ld, quads, ssmTuning, stepBlocking, stepKey, vecBC, VEXP } from "./ssm-common.ts";
import { chunkParWgsl, chunkSegWgsl } from "./ssm-chunk.ts";
import { FWD_CHUNK_BUFS, fwdChunkWgsl } from "./ssm-forward.ts";

/**
 * The adjoint's chunk carries (parallel backward). Pass 1, thread per (b, c, i): the λ leaving
 * chunk c leftwards when λ entering it from the right is 0 (run t from the chunk's end down:
 * l = λ + gy_t C_t, λ = a_t l), over LAM. Pass 2, thread per (b, i): from ghL, walks the chunks
 * right to left, turning those into the λ entering each chunk from the right (over LAM; the
 * chunk's decay is exp(A·ΣΔ), ΣΔ from the forward's chunk pass), and the final λ (dh0) into LF.
 * params: B·Di, L, Di, N, 0, T, nC, lamOff, lfOff (vec4s). Buffers: LAM_BUFS[pass].
 */
const LAM_BUFS = { 1: ["W", "delta", "A", "C", "gy"], 2: ["W", "A", "ghL"] } as const;
function lamChunkWgsl(N4: number, pass: 1 | 2, vec = false): string {
  const Q = quads(N4);
  const bufs = LAM_BUFS[pass].map((name) => ({ name, type: name === "W" || (vec && name === "C") ? "vec4<f32>" : "f32", write: name === "W" }));
  const per = (f: (q: number) => string) => Q.map(f).join("\n  ");
  const head = `${header(9, bufs)}${VEXP}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let g = wg * ${FWD_WG}u + lid;
  let L = ${pu(1)}; let Di = ${pu(2)}; let N = ${pu(3)}; let T = ${pu(5)}; let nC = ${pu(6)};
  let lamOff = ${pu(7)}; let lfOff = ${pu(8)};
  let sOff = ${pu(0)} * nC * ${N4}u;
  ${per((q) => `let A${q} = ${ld("A", "(g % Di) * N", q)};`)}`;
  if (pass === 1) {
    return `${head}
  if (g >= ${pu(0)} * nC) { return; }
  let i = g % Di; let c = (g / Di) % nC; let b = g / (Di * nC);
  let t0 = c * T; let t1 = min(L, t0 + T);
  ${per((q) => `var lam${q} = vec4<f32>(0.0f);`)}
  for (var t = t1; t > t0; t--) {
    let row = (b * L + t - 1u) * Di + i; let bn = (b * L + t - 1u) * N;
    let dt = delta[row]; let gv = gy[row];
    ${Q.map((q) => `lam${q} = vexp(dt * A${q}) * (lam${q} + gv * ${vec ? `C[(b * L + t - 1u) * ${N4}u + ${q}u]` : ld("C", "bn", q)});`).join("\n    ")}
  }
  ${per((q) => `W[lamOff + g * ${N4}u + ${q}u] = lam${q};`)}
}`;
  }
  return `${head}
  if (g >= ${pu(0)}) { return; }
  let b = g / Di; let i = g % Di;
  ${per((q) => `var lam${q} = ${ld("ghL", "g * N", q)};`)}
  ${carryWalkCode(N4, "lam", (m) => `(b * nC + nC - 1u - ${m}) * Di + i`, "lamOff + ")}
  ${per((q) => `W[lfOff + g * ${N4}u + ${q}u] = lam${q};`)}
}`;
}

/**
 * The parallel backward's plan for x [B, L, Di], N states, on a device whose storage bindings
 * hold `maxBinding` bytes and whose workgroups get `wgStorage` bytes of workgroup memory: nC
 * chunks of T steps, G chunks a group, the per-chunk kernel (algo, see ssmTuning.bwdAlgo; for
 * "segments", S steps a segment and nCk segment-start states kept in workgroup memory). null:
 * it does not fit, or ssmTuning.bwdParallel is off; the sequential backward runs.
 */
export interface SsmGradPlan {
  T: number; nC: number; G: number; wgr: boolean;
  algo: "scratch" | "segments"; S: number; nCk: number;
}
export function ssmGradPlan(B: number, L: number, Di: number, N: number, maxBinding: number, wgStorage = 16384): SsmGradPlan | null {
  if (!ssmTuning.bwdParallel || B * Di * L === 0) return null;
  const N4 = Math.max(1, Math.ceil(N / 4));
  const limit = Math.min(ssmTuning.bwdScratchElems, Math.floor(maxBinding / 4)) / 4; // vec4s
  // fixed regions per chunk (vec4s): states and λ entering it, ΣΔ, dA terms
  const fixed = (nC: number) => B * nC * Di * (3 * N4 + 1) + B * Di * N4;
  let T = ssmTuning.forceChunk > 0 ? ssmTuning.forceChunk : ssmTuning.bwdMinT;
  while (T < L && fixed(ceilDiv(L, T)) > limit / 2) T *= 2;
  const wgr = ssmWgReduce(Di, N4);
  const terms = (T: number) => 2 * B * T * (wgr ? Di / FWD_WG : Di) * N4; // a chunk's dB / dC terms
  const group = (nC: number, perChunk: number) =>
    Math.min(nC, Math.floor((limit - fixed(nC)) / perChunk), ssmTuning.bwdMaxGroup > 0 ? ssmTuning.bwdMaxGroup : Infinity);
  if (ssmTuning.bwdAlgo === "segments") {
    // the chunk is at most S·(nCk + 1) steps: segment 0 starts from the carry (global memory),
    // each later one from a state in workgroup memory, which holds those of the 64 threads
    // (16·N4 bytes each) next to the reduction's buffers (wgr); a forced chunk length too
    // (WebGPU's default 16 KiB, N = 16, wgr: chunks of 8 steps; 48 KiB: 40)
    const S = Math.max(1, Math.floor(ssmTuning.bwdSegSteps));
    const redBytes = wgr ? 72 * 2 * N4 * 16 : 0; // red and red2: (64 + 8)·R vec4s, R = 2·N4
    const maxCk = Math.max(0, Math.floor((wgStorage - redBytes) / (FWD_WG * N4 * 16)));
    const Ts = Math.min(T, S * (maxCk + 1));
    const nC = ceilDiv(L, Ts);
    const G = group(nC, terms(Ts));
    // (no state region: the carries may take more than half the scratch)
    if (G >= 1) return { T: Ts, nC, G, wgr, algo: "segments", S, nCk: ceilDiv(Math.min(Ts, L), S) - 1 };
    // the carries of chunks that short do not fit: the scratch kernel's longer chunks
  }
  const scratchPlan = (T: number): SsmGradPlan | null => {
    const nC = ceilDiv(L, T);
    const G = group(nC, B * T * Di * N4 + terms(T)); // its states and dB / dC terms
    return G >= 1 ? { T, nC, G, wgr, algo: "scratch", S: 0, nCk: 0 } : null;
  };
  const plan = scratchPlan(T);
  // when the chunks take several groups (dispatches in turn), longer chunks: fewer carries and
  // groups, for the same scratch traffic (H200, batch 1, Di 1024: 64-step chunks → 128 cut the
  // backward by 30% at L 16K–64K; at training sizes, one group, 32 stays fastest)
  if (plan && ssmTuning.forceChunk === 0 && ssmTuning.bwdMaxGroup === 0 && plan.G < plan.nC && T < ssmTuning.bwdLongT) {
    const longer = scratchPlan(Math.min(ssmTuning.bwdLongT, Math.max(T, L)));
    if (longer) return longer;
  }
  return plan;
}

/** Whether the parallel backward sums the dB / dC terms over each workgroup's 64 channels first. */
function ssmWgReduce(Di: number, N4: number): boolean {
  return ssmTuning.bwdWgReduce && Di % FWD_WG === 0 && N4 <= 4;
}

/**
 * The backward parallel along L (see ssm.ts's file comment): nC chunks of
 * T steps; forward carries (state entering each chunk) and adjoint carries (λ entering each
 * chunk from the right) by chunk passes, then the chunks in groups of G, each group one
 * dispatch of B·G·Di threads recomputing its chunks' states into scratch and running the
 * adjoint through them. Returns false (nothing encoded) when the scratch cannot fit.
 */
export function gradParallel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): boolean {
  const [x, delta, A, Bm, C, h0, gy, ghL] = ins;
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  const label = "selectiveScanGrad";
  const N4 = Math.max(1, Math.ceil(N / 4)), NP = 4 * N4;
  const plan = ssmGradPlan(B, L, Di, N, ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxComputeWorkgroupStorageSize);
  if (!plan) return false;
  const { T, nC, G, wgr, algo, S, nCk } = plan;
  const seg = algo === "segments";
  const Dg = wgr ? Di / FWD_WG : Di; // the dB / dC terms per (b, step): per channel or per 64
  const K = B * nC * Di;
  const hOff = 0, sdOff = K * N4, lamOff = sdOff + K, lfOff = lamOff + K * N4, daOff = lfOff + B * Di * N4;
  // the chunks' states (scratch kernel only), then the dB / dC terms
  const hcOff = daOff + K * N4, pbOff = hcOff + (seg ? 0 : G * B * T * Di * N4), pcOff = pbOff + G * B * T * Dg * N4;
  const total = pcOff + G * B * T * Dg * N4;
  const W = ctx.temp(total * 16);
  // the dB / dC sums of a group, then dA's
  const sums = ctx.temp(Math.max(B * G * T, Di) * NP * 4);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const r = (a: KernelArg) => ctx.ref(a, label);
  const ro = r(out);
  const refs: Record<string, BufRef> = { out: ro, W, x: r(x), delta: r(delta), A: r(A), Bm: r(Bm), C: r(C), h0: r(h0), gy: r(gy), ghL: r(ghL) };
  const w = new ParamWords().u(B * Di).u(L).u(Di).u(N).u(0).u(T).u(nC).u(lamOff).u(lfOff).words();
  const go = (key: string, wgsl: () => string, names: readonly string[], params: Uint32Array, threads: number) =>
    ctx.dispatch({ label, key, wgsl, buffers: names.map((n) => refs[n]), params, groups: grid(ceilDiv(threads, FWD_WG), maxDim) });
  // B, C as vec4 when N % 4 == 0 (one load per 4 states instead of four guarded scalar loads;
  // ssmTuning.bwdVecBC): the chunk passes that read them and the per-chunk kernel
  const vec = vecBC(ssmTuning.bwdVecBC, N), vk = vec ? ":v" : "";
  const blk = stepBlocking(true);
  // forward carries (the forward's chunk passes 1 and 2, mode 0: nothing written to out; pass 1
  // with the forward's step loop)
  const fblk = stepBlocking(false, ctx.software === true);
  go(`ssm:fc1:q${N4}${vk}${stepKey(fblk)}`, () => fwdChunkWgsl(N4, 1, vec, fblk), FWD_CHUNK_BUFS[1], w, K);
  go(`ssm:fc2:q${N4}`, () => fwdChunkWgsl(N4, 2), FWD_CHUNK_BUFS[2], w, B * Di);
  go(`ssm:bl1:q${N4}${vk}`, () => lamChunkWgsl(N4, 1, vec), LAM_BUFS[1], w, K);
  go(`ssm:bl2:q${N4}`, () => lamChunkWgsl(N4, 2), LAM_BUFS[2], w, B * Di);
  const oDx = 0, oDd = B * L * Di, oDA = 2 * B * L * Di, oDB = oDA + Di * N, oDC = oDB + B * L * N, oDh0 = oDC + B * L * N;
  for (let c0 = 0; c0 < nC; c0 += G) {
    const pw = new ParamWords().u(B).u(L).u(Di).u(T).u(nC).u(c0).u(G);
    for (const off of [hOff, lamOff, daOff, hcOff, pbOff, pcOff]) pw.u(off);
    pw.u(oDx).u(oDd).u(N);
    const chunkBufs = ["out", "W", "x", "delta", "A", "Bm", "C", "gy"];
    if (seg) go(`ssm:bwds:q${N4}:w${+wgr}:s${S}:k${nCk}${vk}`, () => chunkSegWgsl(N4, wgr, S, nCk, vec), chunkBufs, pw.words(), B * G * Di);
    else go(`ssm:bwdp:q${N4}:w${+wgr}${vk}${stepKey(blk)}`, () => chunkParWgsl(N4, wgr, vec, blk), chunkBufs, pw.words(), B * G * Di);
    // dB_t, dC_t over the group's steps: sums of the terms over i (or over the per-64 partial
    // sums) ([B, G·T, Dg, NP] → [B, Lg, NP])
    const Lg = Math.min(L, (c0 + G) * T) - c0 * T;
    for (const [sOff, dOff] of [[pbOff, oDB], [pcOff, oDC]]) {
      const groups: Group[] = [
        { size: B, stride: G * T * Dg * NP, reduced: false }, { size: Lg, stride: Dg * NP, reduced: false },
        { size: Dg, stride: NP, reduced: true }, { size: NP, stride: 1, reduced: false },
      ];
      reduceGroups(ctx, "sum", W, sums, groups, sOff * 4);
      gsum(ctx, ro, sums, { O: B * Lg, q: Lg, J: N, Mid: 1, dS: L * N, dT: N, dOff: dOff + c0 * T * N, sS: Lg * NP, sT: NP, sOff: 0 });
    }
  }
  // dA: the per-(b, chunk) terms [B·nC, Di, NP] summed over (b, chunk) by the parallel reduction
  // (a thread per (i, n) adding B·nC terms in turn took ~0.2 ms at [8, 2048, 512, 16] on an H100)
  reduceGroups(ctx, "sum", W, sums, [{ size: B * nC, stride: Di * NP, reduced: true }, { size: Di * NP, stride: 1, reduced: false }], daOff * 4);
  gsum(ctx, ro, sums, { O: Di, J: N, Mid: 1, dS: N, sS: NP, sOff: 0, dOff: oDA });
  gsum(ctx, ro, W, { O: B * Di, J: N, Mid: 1, dS: N, sS: NP, sOff: lfOff * 4, dOff: oDh0 });
  ctx.releaseTemp(W);
  ctx.releaseTemp(sums);
  return true;
}
