/**
 * The parallel backward's per-chunk kernels (ssm-backward.ts encodes them; ssm.ts's file comment
 * has the scheme): "scratch" (chunkParWgsl: the chunk's states recomputed into global scratch and
 * read back by the adjoint) and "segments" (chunkSegWgsl: states kept on chip), with what they
 * share: bindings and position (bwdChunkParts), the adjoint step's terms (adjointTerms) and the
 * adjoint's loop over steps (adjointLoop).
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";
import { bc, FWD_WG, ld, quads, stepCode, stepLoop, VEXP, type StepBlocking } from "./ssm-common.ts";

/**
 * What the parallel backward's two per-chunk kernels share: bindings, the thread's position
 * (b, cg, i), and the dB_t / dC_t terms (to scratch per thread, or summed over the workgroup's 64
 * channels first when wgr; the latter needs `tl`, the step within the chunk, where it is used).
 */
function bwdChunkParts(N4: number, wgr: boolean) {
  const R = 2 * N4; // vec4 terms a thread adds to dB_t and dC_t per step
  const bufs = [
    { name: "out", type: "f32", write: true }, { name: "W", type: "vec4<f32>", write: true }, { name: "x", type: "f32" },
    { name: "delta", type: "f32" }, { name: "A", type: "f32" }, { name: "Bm", type: "f32" }, { name: "C", type: "f32" },
    { name: "gy", type: "f32" },
  ];
  const P = (k: number) => pu(k);
  // wgr: the workgroup's 64 threads share (b, chunk) (Di % 64 = 0), so the position comes from
  // the workgroup index alone (uniform: barriers in the step loop are allowed)
  const pos = wgr
    ? `let base = wg * ${FWD_WG}u;
  if (base >= B * G * Di) { return; }
  let i = base % Di + lid; let cg = (base / Di) % G; let b = base / (Di * G);`
    : `let g0 = wg * ${FWD_WG}u + lid;
  if (g0 >= B * G * Di) { return; }
  let i = g0 % Di; let cg = (g0 / Di) % G; let b = g0 / (Di * G);`;
  // the dB_t / dC_t terms: to scratch per thread, or summed over the workgroup's 64 i first
  // (two barriers a step; 64x less scratch traffic): red[r·64 + lid] → 8 partial sums of 8
  // per term (red2) → one sum per term, to scratch [B, G·T, Di/64, N4] vec4s. Partial sum p of
  // term r adds channels p, p + 8, …, p + 56: eight neighbouring threads read eight neighbouring
  // vec4s. (Channels 8p .. 8p + 7, as before session 20, made eight threads a warp read vec4s
  // 128 bytes apart, the same banks: on an H200 the per-chunk kernel then spent ~30% of its time
  // in this sum; the backward at [8, 2048, 512, 16] took 1.25-1.31 ms, now 1.05.)
  const term = (q: number, v: string, dC: boolean) => (wgr ? `red[${(dC ? N4 + q : q) * FWD_WG}u + lid] = ${v};` : `W[${dC ? "cco" : "cbo"} + ${q}u] = ${v};`);
  const reduceStep = !wgr ? "" : `workgroupBarrier();
    {
      let o = lid / 8u; let part = lid % 8u;
      if (o < ${R}u) {
        let r0 = o * ${FWD_WG}u + part;
        red2[o * 8u + part] = ${Array.from({ length: 8 }, (_, e) => `red[r0 + ${8 * e}u]`).join(" + ")};
      }
    }
    workgroupBarrier();
    if (lid < ${R}u) {
      let sum = ${Array.from({ length: 8 }, (_, e) => `red2[lid * 8u + ${e}u]`).join(" + ")};
      let at = (((b * G + cg) * T + tl) * (Di / ${FWD_WG}u) + (i - lid) % Di / ${FWD_WG}u) * ${N4}u;
      if (lid < ${N4}u) { W[${P(11)} + at + lid] = sum; } else { W[${P(12)} + at + lid - ${N4}u] = sum; }
    }`;
  const decls = wgr ? `var<workgroup> red: array<vec4<f32>, ${R * FWD_WG}>;
var<workgroup> red2: array<vec4<f32>, ${R * 8}>;
` : "";
  // the params, the thread's (b, cg, i) and its chunk c's first step t0 and length Tc (both kernels)
  const prelude = `let B = ${P(0)}; let L = ${P(1)}; let Di = ${P(2)}; let T = ${P(3)}; let nC = ${P(4)}; let c0 = ${P(5)}; let G = ${P(6)};
  let N = ${P(15)};
  ${pos}
  let c = c0 + cg;
  if (c >= nC) { return; }
  let t0 = c * T; let Tc = min(L, t0 + T) - t0;`;
  return { bufs, term, reduceStep, decls, prelude };
}

/**
 * The adjoint step's terms for states vec4 q, shared by both per-chunk kernels: C_t, B_t, l = λ +
 * gy_t C_t, the decay a = exp(Δ_t A), the step's dΔ and dx sums, and its dB_t / dC_t terms
 * (through `term`; h_t is `ht`). Lines joined by `nl` (the caller's indentation).
 */
function adjointTerms(q: number, vec: boolean, N4: number, term: (q: number, v: string, dC: boolean) => string, ht: string, nl: string): string {
  return [
    `let C${q} = ${bc("C", q, vec, N4)}; let B${q} = ${bc("Bm", q, vec, N4)};`,
    `let l${q} = lam${q} + g * C${q};`,
    `let a${q} = vexp(dt * A${q});`,
    `ddt += dot(l${q} * xv, B${q}); dx += dot(l${q} * dt, B${q});`,
    term(q, `l${q} * (dt * xv)`, false),
    term(q, `g * ${ht}`, true),
  ].join(nl);
}

/**
 * The per-chunk kernel's adjoint loop over the chunk's steps, last to first: `body` for each step
 * with tl (the step within the chunk), t, row, bn, dt, xv, g (gy_t) in scope. With U > 1
 * (ssmTuning.bwdStepBlock), in blocks of U steps whose Δ_t, x_t and gy_t are loaded first
 * (indices clamped to the chunk's first step, steps past it skipped; a block's guard is uniform
 * over the workgroup, as the reduction's barriers need). Same operations, same bits.
 */
function adjointLoop(body: string, U: number): string {
  const head = (tl: string) => `let tl = ${tl}; let t = t0 + tl;
    let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;`;
  if (U === 1) return `for (var tr = 0u; tr < Tc; tr++) {
    ${head("Tc - 1u - tr")}
    let dt = delta[row]; let xv = x[row]; let g = gy[row];
    ${body}
  }`;
  const J = Array.from({ length: U }, (_, j) => j);
  const loads = J.map((j) => `let r${j} = (b * L + t0 + Tc - 1u - ${j === 0 ? "trb" : `min(trb + ${j}u, Tc - 1u)`}) * Di + i; let dt${j} = delta[r${j}]; let xv${j} = x[r${j}]; let g${j} = gy[r${j}];`);
  const step = (j: number) => {
    const inner = `${head(`Tc - 1u - trb - ${j}u`)}
      let dt = dt${j}; let xv = xv${j}; let g = g${j};
      ${body.replace(/\n/g, "\n  ")}`;
    return j === 0 ? `{\n      ${inner}\n    }` : `if (trb + ${j}u < Tc) {\n      ${inner}\n    }`;
  };
  return `for (var trb = 0u; trb < Tc; trb += ${U}u) {
    ${loads.join("\n    ")}
    ${J.map(step).join("\n    ")}
  }`;
}

/**
 * One group of chunks of the parallel backward, thread per (b, cg, i) for chunk c = c0 + cg:
 * as chunkWgsl, but the state entering the chunk and the λ entering it from the right come from
 * the carry passes, and the chunk's dA terms go to their own slot (summed over b and c later).
 * params: B, L, Di, T, nC, c0, G, hOff, lamOff, daOff, hcOff, pbOff, pcOff (vec4s), oDx, oDd, N.
 */
export function chunkParWgsl(N4: number, wgr: boolean, vec: boolean, blk: StepBlocking): string {
  const Q = quads(N4);
  const parts = bwdChunkParts(N4, wgr);
  const { term, reduceStep, decls, prelude } = parts;
  const bufs = parts.bufs.map((d) => (vec && (d.name === "Bm" || d.name === "C") ? { ...d, type: "vec4<f32>" } : d));
  const P = (k: number) => pu(k);
  const per = (f: (q: number) => string) => Q.map(f).join("\n    ");
  return `${header(16, bufs)}${VEXP}${decls}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  ${prelude}
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`)}
  let k = (b * nC + c) * Di + i;
  let ckb = ${P(7)} + k * ${N4}u;
  let hc0 = ${P(10)} + (b * G + cg) * T * Di * ${N4}u;
  ${per((q) => `var hs${q} = W[ckb + ${q}u];`)}
  ${stepLoop(N4, vec, blk, "t0", "t0 + Tc", () => `let hb = hc0 + ((t - t0) * Di + i) * ${N4}u;
    ${per((q) => `W[hb + ${q}u] = hs${q};`)}`)}
  ${per((q) => `var lam${q} = W[${P(8)} + k * ${N4}u + ${q}u];`)}
  ${per((q) => `var dA${q} = vec4<f32>(0.0f);`)}
  // h_t of the step being processed (the last one's still in registers); h_{t−1} is read once
  // per step and becomes the next step's h_t
  ${per((q) => `var hn${q} = hs${q};`)}
  ${adjointLoop(`let hb = hc0 + (tl * Di + i) * ${N4}u;
    var pb = ckb;
    if (tl > 0u) { pb = hb - Di * ${N4}u; }
    let cbo = hb - ${P(10)} + ${P(11)};
    let cco = hb - ${P(10)} + ${P(12)};
    var ddt = 0.0f; var dx = 0.0f;
    ${per((q) => `${adjointTerms(q, vec, N4, term, `hn${q}`, "\n    ")}
    let hp${q} = W[pb + ${q}u];
    let da${q} = l${q} * hp${q} * a${q};
    hn${q} = hp${q};
    ddt += dot(da${q}, A${q}); dA${q} += da${q} * dt; lam${q} = l${q} * a${q};`)}
    out[${P(13)} + row] = dx; out[${P(14)} + row] = ddt;
    ${reduceStep}`, blk.U)}
  ${per((q) => `W[${P(9)} + k * ${N4}u + ${q}u] = dA${q};`)}
}`;
}

/**
 * One group of chunks of the parallel backward without state scratch (ssmTuning.bwdAlgo =
 * "segments"): thread per (b, cg, i) for chunk c = c0 + cg, params and outputs as chunkParWgsl.
 * The chunk is cut into segments of S steps (S compile-time: a segment's states live in a chain
 * of S + 1 vec4 register sets h{j}_{q}, no function-scope arrays);
 *   1. from the entering state (the forward carry), run the chunk forward, keeping only the
 *      state entering each segment but the first: nCk of them (compile-time, the plan makes
 *      the chunk at most S·(nCk + 1) steps) in workgroup memory, ck[(seg·N4 + q)·64 + lid],
 *      each thread its own slots (no barrier; consecutive lanes, consecutive vec4s);
 *   2. segments last to first: recompute the segment's states from its entering state, each
 *      pushed onto the chain (h{S} the newest), then run the adjoint back over them exactly as
 *      chunkParWgsl's step with h_t = h{S} and h_(t−1) = h{S − 1}, shifting the chain back by
 *      one after each step (dx, dΔ written per step, dA per thread, dB_t / dC_t terms by the
 *      same reduction). Both are loops of S iterations, a step in each (guarded: the chunk's
 *      last segment may be shorter), not S unrolled steps: on llvmpipe an unrolled segment with
 *      the reduction's barriers took 30 s to compile (the loops, 10 s); with a constant trip
 *      count a GPU compiler is free to unroll them and rename the shifts away (not checked).
 * So no state goes through global memory: each a_t = exp(Δ_t A) is computed three times
 * (forward to the checkpoints, recompute, adjoint) instead of the states written and read back
 * (2·16·N4 bytes a step and channel), and x, Δ, B are read three times instead of twice (they
 * are shared by the 64 channels of a (b, t) row or small, and cached). `vec`: B and C bound as
 * vec4 (N % 4 == 0), one load per 4 states instead of four guarded ones.
 */
export function chunkSegWgsl(N4: number, wgr: boolean, S: number, nCk: number, vec: boolean): string {
  const Q = quads(N4);
  const parts = bwdChunkParts(N4, wgr);
  const { term, reduceStep, decls, prelude } = parts;
  const bufs = parts.bufs.map((d) => (vec && (d.name === "Bm" || d.name === "C") ? { ...d, type: "vec4<f32>" } : d));
  const P = (k: number) => pu(k);
  const per = (f: (q: number) => string, sep = "\n    ") => Q.map(f).join(sep);
  const ck = (seg: string, q: number) => `ck[(${seg} * ${N4}u + ${q}u) * ${FWD_WG}u + lid]`;
  // the segment's states: a chain of S + 1 register sets, h{S} the newest
  const chain = Array.from({ length: S + 1 }, (_, j) => j);
  const shiftDown = (q: number) => chain.slice(0, S).map((j) => `h${j}_${q} = h${j + 1}_${q};`).join(" ");
  const shiftUp = (q: number) => chain.slice(1).reverse().map((j) => `h${j}_${q} = h${j - 1}_${q};`).join(" ");
  const checkpoints = nCk === 0 ? "" : `
  // 1. the states entering segments 1 .. nS − 1 (at most nCk of them)
  {
    ${per((q) => `var hs${q} = W[ckb + ${q}u];`)}
    for (var tl = 0u; tl < (nS - 1u) * ${S}u; tl++) {
      let t = t0 + tl;
      ${stepCode(N4, vec)}
      if ((tl + 1u) % ${S}u == 0u) {
        let sk = (tl + 1u) / ${S}u - 1u;
        ${per((q) => `${ck("sk", q)} = hs${q};`, "\n        ")}
      }
    }
  }`;
  return `${header(16, bufs)}${VEXP}${decls}${nCk > 0 ? `var<workgroup> ck: array<vec4<f32>, ${nCk * N4 * FWD_WG}>;\n` : ""}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  ${prelude}
  let nS = (Tc + ${S - 1}u) / ${S}u;
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`, "\n  ")}
  let k = (b * nC + c) * Di + i;
  let ckb = ${P(7)} + k * ${N4}u;${checkpoints}
  // 2. segments last to first
  ${per((q) => `var lam${q} = W[${P(8)} + k * ${N4}u + ${q}u];`, "\n  ")}
  ${per((q) => `var dA${q} = vec4<f32>(0.0f);`, "\n  ")}
  ${chain.map((j) => per((q) => `var h${j}_${q} = vec4<f32>(0.0f);`, " ")).join("\n  ")}
  for (var sr = 0u; sr < nS; sr++) {
    let sg = nS - 1u - sr;
    let tl0 = sg * ${S}u; let ts = t0 + tl0;
    let n = min(${S}u, Tc - tl0); // uniform over the workgroup when wgr (barriers below)
    // the state entering the segment (the chunk's carry, or from workgroup memory) at the top
    // of the chain, then its n states pushed in: h{S} = h_(n−1), h{S − 1} = h_(n−2), …
    if (sg == 0u) {
      ${per((q) => `h${S}_${q} = W[ckb + ${q}u];`, " ")}
    }${nCk === 0 ? "" : ` else {
      ${per((q) => `h${S}_${q} = ${ck("(sg - 1u)", q)};`, "\n      ")}
    }`}
    for (var j = 0u; j < ${S}u; j++) {
      if (j < n) {
        let t = ts + j;
        let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;
        let dt = delta[row]; let dtx = dt * x[row];
        ${per((q) => `let nh${q} = vexp(dt * A${q}) * h${S}_${q} + dtx * ${bc("Bm", q, vec, N4)};`, "\n        ")}
        ${per((q) => `${shiftDown(q)} h${S}_${q} = nh${q};`, "\n        ")}
      }
    }
    // the adjoint over the segment's steps, last to first: h_t = h{S}, h_(t−1) = h{S − 1}, then
    // the chain shifts back by one
    for (var jr = 0u; jr < ${S}u; jr++) {
      if (jr < n) {
        let tl = tl0 + n - 1u - jr; let t = t0 + tl;
        let row = (b * L + t) * Di + i; let bn = (b * L + t) * N;
        let dt = delta[row]; let xv = x[row]; let g = gy[row];${wgr ? "" : `
        let cbo = ${P(11)} + (((b * G + cg) * T + tl) * Di + i) * ${N4}u; let cco = cbo - ${P(11)} + ${P(12)};`}
        var ddt = 0.0f; var dx = 0.0f;
        ${per((q) => `${adjointTerms(q, vec, N4, term, `h${S}_${q}`, "\n        ")}
        let da${q} = l${q} * h${S - 1}_${q} * a${q};
        ddt += dot(da${q}, A${q}); dA${q} += da${q} * dt; lam${q} = l${q} * a${q};
        ${shiftUp(q)}`, "\n        ")}
        out[${P(13)} + row] = dx; out[${P(14)} + row] = ddt;
        ${reduceStep.replace(/\n/g, "\n    ")}
      }
    }
  }
  ${per((q) => `W[${P(9)} + k * ${N4}u + ${q}u] = dA${q};`, "\n  ")}
}`;
}
