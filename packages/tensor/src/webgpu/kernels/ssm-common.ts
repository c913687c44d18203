/**
 * What the fused selective scan's kernels share (ssm-forward.ts: the forward; ssm-backward.ts and
 * ssm-chunk.ts: the parallel backward; ssm.ts: the sequential backward and the overview): the
 * tuning knobs (ssmTuning), the workgroup size and the WGSL builders for a thread's N states (vec4
 * loads and stores guarded by N, the decay's exp, B_t / C_t reads, the recurrence step and its
 * loop, blocked or not), the carry walk, and the strided sum both backwards use (gsum).
 */
import { readEnv } from "../../env.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";

/** $MEMMAMBA_SSM_STEP_BLOCK, read once when the module loads (see stepBlockFromEnv). */
const ENV_STEP_BLOCK = stepBlockFromEnv();

/** Threads per workgroup of the scan's kernels (the backward's workgroup sums assume 64). */
export const FWD_WG = 64;

/**
 * Tuning knobs: scratch budget of the backward (elements), or a forced chunk length (tests);
 * the forward's chunks along L: threads wanted for passes 1 and 3 (chunks are added until
 * B·Di·nC reaches it), the shortest chunk, or a forced chunk length (tests; 0: choose).
 */
export const ssmTuning = {
  scratchElems: 64 * 2 ** 20, forceChunk: 0, fwdThreads: 2 ** 17, fwdMinT: 32, fwdForceT: 0,
  /**
   * From L = fwdLongL on, the forward aims at fwdThreadsLong threads: on an H200, batch 1,
   * L 64K, Di 1024, 4× the chunks took 1.97 ms instead of 3.57, while at training sizes (L 2048)
   * more chunks were slower (webgpu-scan --ssm-fwd-threads, 2026-11-26).
   */
  fwdThreadsLong: 2 ** 19, fwdLongL: 16384,
  /** The backward parallel along L (else chunks in turn, parallel over B·Di only). */
  bwdParallel: true,
  /** Its scratch budget (elements; also at most one binding) and shortest chunk. */
  bwdScratchElems: 256 * 2 ** 20,
  bwdMinT: 32,
  /**
   * The scratch kernel's chunk when its chunks at bwdMinT need several groups (long sequences):
   * webgpu-scan --ssm-bwd-algo scratch,scratch:t64,scratch:t128,… on an H200 (2026-11-26), batch
   * 1, Di 1024: 128 steps took 2.59 / 5.15 / 10.2 ms at L 16K / 32K / 64K where 32 took 3.68 /
   * 7.37 / 14.9 (L 256K, Di 256: 14.0 vs 29.9; [2, 8192, 1536]: 3.63 vs 4.29).
   */
  bwdLongT: 128,
  /** At most this many chunks per group (0: as many as the scratch holds; tests force several groups). */
  bwdMaxGroup: 0,
  /** Sum the dB / dC terms over each workgroup's 64 channels in workgroup memory (when Di % 64 = 0, N ≤ 16). */
  bwdWgReduce: true,
  /**
   * The parallel backward's per-chunk kernel: "scratch" recomputes the chunk's states into
   * global scratch and reads them back (chunkParWgsl); "segments" keeps them on chip: states at
   * segment starts in workgroup memory, a segment's bwdSegSteps states in registers
   * (chunkSegWgsl). Same carries, reductions and outputs. "scratch" by default until measured.
   */
  bwdAlgo: "scratch" as "scratch" | "segments",
  /**
   * "segments": steps per segment (its states live in a chain of S + 1 vec4 register sets, so
   * registers grow with it; its chunks are at most S·(1 + the segment starts that fit workgroup
   * memory) steps).
   */
  bwdSegSteps: 4,
  /**
   * The forward reads B_t, C_t as vec4 when N % 4 == 0 (one load per 4 states instead of four
   * guarded scalar loads: the forward at batch 1 is bound by instructions, not bytes).
   */
  fwdVecBC: true,
  /**
   * The same for the parallel backward (its forward and adjoint chunk passes and the per-chunk
   * kernel, which reads B_t three times a step). On an H100 at [8, 2048, 512, 16] the scalar
   * loads' kernels took 0.92 ms (per-chunk), 0.37 (forward chunk pass) and 0.13 (adjoint chunk
   * pass) of the backward's 1.97 (webgpu-scan --profile, 2026-11-26).
   */
  bwdVecBC: true,
  /**
   * The chunked forward's algorithm (when it runs in chunks, nC > 1): "chunked", the three passes
   * of ssm.ts's file comment; "lookback", one dispatch (plus a clear of its status words) whose
   * workgroups publish each chunk's carry and look back over their predecessors' (see
   * fwdLookbackWgsl), for both y and the last state (the backward's carries keep the chunked
   * passes). Where its status words would exceed one binding, the chunked passes run instead.
   * On an H200 (webgpu-scan --ssm-fwd-algo chunked,lookback, 2026-11-26), batch 1, Di 1024: the
   * look-back took 0.120 / 0.382 / 1.28 ms at L 4K / 16K / 64K where the passes took 0.213 /
   * 1.15 / 1.91 (L 256K, Di 256: 1.37 vs 3.74); at training sizes within ±7% either way
   * ([8, 2048, 512] 0.197 vs 0.202 ms, [4, 2048, 1536] 0.270 vs 0.251).
   */
  fwdAlgo: "lookback" as "chunked" | "lookback",
  /**
   * Tests: the look-back forward ignores every inclusive state but chunk 0's, composing all the
   * aggregates back to it, so the composition runs whatever order the GPU ran workgroups in.
   */
  fwdLookbackAggOnly: false,
  /**
   * The forward's step loops (the look-back forward, the chunked forward's passes 1 and 3, and the
   * backward's forward chunk pass) in blocks of this many steps whose loads of Δ_t and x_t are all
   * issued before the block's first step; with stepBlockBC (vec4 B, C only) B_t and C_t too (1:
   * one step at a time, loads in the step; see stepLoop); with stepPrefetch each block's loads
   * are issued one block ahead, before the previous block's steps. Same operations in the same
   * order, so the same bits. The forward is not bound by its exponentials (a timing-only build
   * whose exp was an FMA ran as fast: 1.167 vs 1.147 ms at batch 1, L 64K, Di 1024; a polynomial
   * exp on the FMA units was 1–60% slower) but by its instruction count at low occupancy (a CUDA
   * mirror under Nsight Compute: issue slots 74% busy at 31% occupancy; results/gpu/issue5-s21/),
   * where the loads' latency shows at training shapes. On an H200 (webgpu-scan --ssm-fwd-algo
   * lookback:u4:bc,lookback:u8:pf,…, two processes in opposite orders, 2026-11-27), 8 steps
   * prefetched took 0.167 / 0.225 ms at [8, 2048, 512] / [4, 2048, 1536] where 4 with B, C ahead
   * took 0.190 / 0.261, 1.150 at batch 1, L 64K, Di 1024 (1.170), 1.274 at L 256K, Di 256
   * (1.254); B, C prefetched too (more registers) was slower everywhere. Session 20: 4 with B, C
   * took 1.143 ms at 64K where one step at a time took 1.273. $MEMMAMBA_SSM_STEP_BLOCK sets the
   * three (e.g. "1", "4bc", "8pf"), for A/Bs of whole programs.
   */
  stepBlock: ENV_STEP_BLOCK.block,
  stepBlockBC: ENV_STEP_BLOCK.bc,
  stepPrefetch: ENV_STEP_BLOCK.pf,
  /**
   * On a software adapter (ctx.software: lavapipe) the forward's step loops run one step at a
   * time whatever stepBlock says: llvmpipe compiled the 8-step prefetched loops about twice as
   * slowly (a look-back test on a fresh shader cache: 35 → 81 s), and a CPU has no GPU memory
   * latency for them to hide. Same bits either way. Off when $MEMMAMBA_SSM_STEP_BLOCK is set.
   */
  stepSoftwareOne: !ENV_STEP_BLOCK.set,
  /**
   * The same for the parallel backward's per-chunk kernel (its recompute and adjoint loops; the
   * adjoint loads gy_t with Δ_t and x_t). One step at a time: blocks of 4 (with B, C) made the
   * backward 1–3% slower on an H200 (webgpu-scan --ssm-bwd-algo
   * scratch:u1,scratch:u4:bc,scratch:u8:bc, both orders, 2026-11-27: 7.73 / 7.83 / 8.85 ms at
   * batch 1, L 64K, Di 1024; 0.995 / 1.02 / 1.06 at [8, 2048, 512]), and prefetched blocks
   * (scratch:u1:pf, scratch:u4:pf, session 21) 0.5–6% slower: the per-chunk kernel went 0.590 →
   * 0.634 ms at [8, 2048, 512] while its forward chunk pass went 0.109 → 0.087 (that pass now
   * takes the forward's stepBlock / stepPrefetch).
   */
  bwdStepBlock: 1,
  bwdStepBlockBC: false,
  bwdStepPrefetch: false,
};

/**
 * A kernel's step loop (ssmTuning.stepBlock / stepBlockBC / stepPrefetch or bwdStepBlock /
 * bwdStepBlockBC / bwdStepPrefetch): U steps a block, B and C loaded ahead, loads one block ahead.
 */
export interface StepBlocking {
  U: number;
  bc: boolean;
  /** Each block's loads issued one block ahead, before the previous block's steps (stepLoop). */
  pf?: boolean;
}

/**
 * The forward's step loop, or with `bwd` the backward's (see ssmTuning.stepBlock, bwdStepBlock,
 * stepPrefetch), on a device whose `software` flag is given (ssmTuning.stepSoftwareOne).
 */
export function stepBlocking(bwd = false, software = false): StepBlocking {
  if (!bwd && software && ssmTuning.stepSoftwareOne) return { U: 1, bc: false, pf: false };
  const U = Math.max(1, Math.floor(bwd ? ssmTuning.bwdStepBlock : ssmTuning.stepBlock));
  const pf = bwd ? ssmTuning.bwdStepPrefetch : ssmTuning.stepPrefetch;
  return { U, bc: (U > 1 || pf) && (bwd ? ssmTuning.bwdStepBlockBC : ssmTuning.stepBlockBC), pf };
}

/** ssmTuning.stepBlock, stepBlockBC and stepPrefetch from $MEMMAMBA_SSM_STEP_BLOCK ("<steps>[bc][pf]", 1 to 32 steps), else 8 prefetched. */
function stepBlockFromEnv(): { block: number; bc: boolean; pf: boolean; set: boolean } {
  const v = readEnv("MEMMAMBA_SSM_STEP_BLOCK")?.trim();
  if (v === undefined || v === "") return { block: 8, bc: false, pf: true, set: false };
  const m = /^(\d+)(bc)?(pf)?$/.exec(v);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= 32)) throw new RangeError(`MEMMAMBA_SSM_STEP_BLOCK: expected the selective scan's steps a block, 1 to 32, optionally followed by "bc" and "pf" (e.g. 4bc, 8pf), got "${v}"`);
  return { block: n, bc: m?.[2] === "bc", pf: m?.[3] === "pf", set: true };
}

/** The vec4 components by index. */
export const XYZW = ["x", "y", "z", "w"];

/**
 * A vec4 of arr[base + 4q .. 4q+3], zero past N. N is a runtime value (`N` in the shader) and
 * the code is generated per N4 = ceil(N/4), so N = 13..16 share one pipeline.
 */
export function ld(arr: string, base: string, q: number): string {
  // the index stays in bounds even where the value is discarded (N = 0 included)
  const c = [0, 1, 2, 3].map((e) => `select(0.0f, ${arr}[${base} + min(${4 * q + e}u, max(N, 1u) - 1u)], ${4 * q + e}u < N)`);
  return `vec4<f32>(${c.join(", ")})`;
}
/** Stores vec4 `v` into arr[base + 4q .. 4q+3], lanes past N skipped (N as in ld). */
export function st(arr: string, base: string, q: number, v: string): string {
  return [0, 1, 2, 3].map((e) => `if (${4 * q + e}u < N) { ${arr}[${base} + ${4 * q + e}u] = ${v}.${XYZW[e]}; }`).join(" ");
}
/** The vec4 indices 0 .. N4 − 1. */
export const quads = (N4: number) => Array.from({ length: N4 }, (_, q) => q);
/**
 * WGSL's vexp, the decay exp(Δ·A) per vec4. It uses the builtin exp: its argument is bounded
 * (Δ > 0, A < 0, |ΔA| of a few tens at most), where WGSL's bound (3 + 2|x| ulp) is about 1e-6
 * relative; the m_exp of wgsl-math.ts, four per vec4, made these shaders several times slower
 * to compile on llvmpipe.
 */
export const VEXP = "fn vexp(v: vec4<f32>) -> vec4<f32> { return exp(v); }\n";

/**
 * Whether a kernel binds B and C as vec4 (one load per 4 states), given its knob
 * (ssmTuning.fwdVecBC / bwdVecBC): only where N is a positive multiple of 4.
 */
export function vecBC(on: boolean, N: number): boolean {
  return on && N > 0 && N % 4 === 0;
}

/** B_t or C_t's vec4 q: from a vec4 binding (vec: N = 4·N4, row (b·L + t)·N4), or as ld reads it. */
export function bc(arr: string, q: number, vec: boolean, N4: number): string {
  return vec ? `${arr}[(b * L + t) * ${N4}u + ${q}u]` : ld(arr, "bn", q);
}

/** The recurrence step at time t for thread (b, i): updates hs0..hs{N4-1} (vec: B bound as vec4). */
export function stepCode(N4: number, vec = false): string {
  return [
    `let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;`,
    `let dt = delta[row]; let dtx = dt * x[row];`,
    ...quads(N4).map((q) => hsUpdate(q, bc("Bm", q, vec, N4))),
  ].join("\n    ");
}

/** The recurrence's update of state vec4 q at a step (dt, dtx in scope), B_t's row q given. */
function hsUpdate(q: number, bRow: string): string {
  return `hs${q} = vexp(dt * A${q}) * hs${q} + dtx * ${bRow};`;
}

/**
 * The recurrence's loop over steps t = from .. to − 1 of thread (b, i), as stepCode's loop: `body`
 * after each step's update of hs (in scope: t, row, bn, dt, dtx). With blk.U > 1, in blocks of U
 * steps whose Δ_t and x_t (and with blk.bc and vec, B_t and `extra`'s vec4 rows, e.g. C_t:
 * named ${name}${j}_${q}, read in `body` through bcAt) are loaded first,
 * indices clamped to the last step, steps past it skipped. Same operations in the same order,
 * so the same bits either way.
 */
export function stepLoop(N4: number, vec: boolean, blk: StepBlocking, from: string, to: string, body: (j: number) => string, extra: readonly string[] = []): string {
  const U = blk.U, pf = blk.pf === true;
  if (U === 1 && !pf) return `for (var t = ${from}; t < ${to}; t++) {
    ${stepCode(N4, vec)}
    ${body(0)}
  }`;
  const Q = quads(N4), J = Array.from({ length: U }, (_, j) => j);
  const ahead = bcAhead(blk, vec);
  const names = ahead ? ["Bm", ...extra] : [];
  // step j of the block starting at tb, clamped to the last step (last: the range's last step, never below 0)
  const tAt = (tb: string, j: number, last = `${to} - 1u`) => (j === 0 && tb === "tb" ? "tb" : `min(${tb} + ${j}u, ${last})`);
  const rowOf = (t: string) => `(b * L + ${t}) * Di + i`;
  // block step j's loads at step t: Δ_t, x_t (and B_t, `extra`'s rows) into dt{j}, xv{j}, … with
  // the given declaration ("let ", "var " or "" to assign) and name prefix
  const loadsAt = (j: number, t: string, decl: string, pre: string) =>
    `${decl}${pre}dt${j} = delta[${rowOf(t)}]; ${decl}${pre}xv${j} = x[${rowOf(t)}];` +
    names.map((a) => Q.map((q) => ` ${decl}${pre}${a}${j}_${q} = ${a}[(b * L + ${t}) * ${N4}u + ${q}u];`).join("")).join("");
  // blocked: the block's loads first; prefetched (blk.pf): the block's values come from the
  // registers the previous block filled, and the next block's loads are issued before its steps
  const loads = J.map((j) => `let r${j} = ${rowOf(tAt("tb", j))}; ` + (pf
    ? `let dt${j} = pdt${j}; let xv${j} = pxv${j};${names.map((a) => Q.map((q) => ` let ${a}${j}_${q} = p${a}${j}_${q};`).join("")).join("")}`
    : loadsAt(j, tAt("tb", j), "let ", ""))).concat(pf ? J.map((j) => loadsAt(j, tAt("tn", j), "", "p")) : []);
  const first = `max(${to}, 1u) - 1u`;
  const prelude = pf ? J.map((j) => loadsAt(j, tAt(from, j, first), "var ", "p")).join("\n  ") + "\n  " : "";
  const step = (j: number) => {
    const inner = `let t = tb + ${j}u; let row = r${j}; let bn = (b * L + t) * N; let dt = dt${j}; let dtx = dt * xv${j};
      ${Q.map((q) => hsUpdate(q, ahead ? `Bm${j}_${q}` : bc("Bm", q, vec, N4))).join("\n      ")}
      ${body(j)}`;
    return j === 0 ? `{\n      ${inner}\n    }` : `if (tb + ${j}u < ${to}) {\n      ${inner}\n    }`;
  };
  const loop = `for (var tb = ${from}; tb < ${to}; tb += ${U}u) {${pf ? `\n    let tn = tb + ${U}u;` : ""}
    ${loads.join("\n    ")}
    ${J.map(step).join("\n    ")}
  }`;
  // prefetched: in a block of its own (a kernel may run two loops)
  return pf ? `{\n  ${prelude}${loop}\n  }` : loop;
}

/** The pipeline-key suffix of a kernel built with stepLoop (or the backward's adjointLoop) under blk. */
export function stepKey(blk: StepBlocking): string {
  return blk.U > 1 || blk.pf ? `:u${blk.U}${blk.bc ? "bc" : ""}${blk.pf ? "pf" : ""}` : "";
}

/** Row q of B_t or C_t (`arr`) inside stepLoop's body for block step j: preloaded when stepLoop loaded it, else bc's read. */
export function bcAt(arr: string, q: number, vec: boolean, N4: number, j: number, blk: StepBlocking): string {
  return bcAhead(blk, vec) ? `${arr}${j}_${q}` : bc(arr, q, vec, N4);
}

/** Whether stepLoop loads B_t (and its `extra` rows) with a block's Δ_t and x_t: blocks of several steps, blk.bc, vec4 bindings. */
function bcAhead(blk: StepBlocking, vec: boolean): boolean {
  return (blk.U > 1 || blk.pf === true) && blk.bc && vec;
}

/** Chunks a carry walk (carryWalkCode) loads at once. */
export const WALK_BLOCK = 4;

/**
 * WGSL of a thread's walk over the chunks' carries (the chunked passes' pass 2, forward and
 * adjoint): for m = 0 .. nC − 1 in turn, at index k = kOf(m): e = W[base + k·N4 + q] (the chunk's
 * own carry), W[…] = v (the value entering the chunk), v = exp(W[sOff + k].x · A) ⊙ v + e, for
 * the vec4s v0 .. v{N4−1} (`v` is their name's prefix).
 *
 * The loads of WALK_BLOCK chunks are issued together before their stores and their steps of the
 * chain (an index past the last chunk is clamped to it, read and not used): a walk of one load,
 * one store and one step a chunk waited a whole memory latency a chunk (the compiler may not move
 * a load of W above the store to W before it), and with only B·Di threads these walks were 15–22%
 * of the backward on an H100 (webgpu-scan --profile). Same operations in the same order: same bits.
 */
export function carryWalkCode(N4: number, v: string, kOf: (m: string) => string, base: string): string {
  const Q = quads(N4);
  const J = Array.from({ length: WALK_BLOCK }, (_, j) => j);
  const at = (j: number, q: number) => `W[${base}k${j} * ${N4}u + ${q}u]`;
  const step = (j: number) => Q.map((q) => `${at(j, q)} = ${v}${q}; ${v}${q} = vexp(sd${j} * A${q}) * ${v}${q} + e${j}_${q};`).join(" ");
  return `for (var m0 = 0u; m0 < nC; m0 += ${WALK_BLOCK}u) {
    ${J.map((j) => `let k${j} = ${kOf(j === 0 ? "m0" : `min(m0 + ${j}u, nC - 1u)`)};`).join(" ")}
    ${J.map((j) => `let sd${j} = W[sOff + k${j}].x;`).join(" ")}
    ${J.map((j) => Q.map((q) => `let e${j}_${q} = ${at(j, q)};`).join(" ")).join("\n    ")}
    ${J.map((j) => (j === 0 ? step(0) : `if (m0 + ${j}u < nC) { ${step(j)} }`)).join("\n    ")}
  }`;
}

// ---------- the strided sum of both backwards ----------

/**
 * A strided sum: dst[dOff + ob·dS + ot·dT + j] = Σ_{m<Mid} src[sOff + ob·sS + ot·sT + m·sM + j]
 * for o = ob·q + ot < O, j < J (Mid = 0 writes zeros). Copies, zero fills and the sums over i
 * and b of the backward.
 */
const GSUM = `${header(13, [{ name: "dst", type: "f32", write: true }, { name: "src", type: "f32" }])}
@compute @workgroup_size(256)
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * 256u + lid;
  let O = ${pu(0)}; let J = ${pu(1)}; let Mid = ${pu(2)}; let q = ${pu(3)};
  if (e >= O * J) { return; }
  let o = e / J; let j = e % J; let ob = o / q; let ot = o % q;
  let s0 = ${pu(9)} + ob * ${pu(6)} + ot * ${pu(7)} + j;
  var acc = 0.0f;
  for (var m = 0u; m < Mid; m++) { acc += src[s0 + m * ${pu(8)}]; }
  dst[${pu(10)} + ob * ${pu(4)} + ot * ${pu(5)} + j] = acc;
}`;

interface GSum {
  O: number; J: number; Mid: number; q?: number;
  dS: number; dT?: number; sS: number; sT?: number; sM?: number; sOff: number; dOff: number;
}

export function gsum(ctx: GpuCtx, dst: BufRef, src: BufRef, g: GSum): void {
  if (g.O * g.J === 0) return;
  ctx.dispatch({
    label: "selectiveScanGrad", key: "ssm:gsum", wgsl: () => GSUM, buffers: [dst, src],
    params: new ParamWords().u(g.O).u(g.J).u(g.Mid).u(g.q ?? 1).u(g.dS).u(g.dT ?? 0).u(g.sS).u(g.sT ?? 0).u(g.sM ?? 0)
      .u(g.sOff).u(g.dOff).words(),
    groups: grid(ceilDiv(g.O * g.J, 256), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
