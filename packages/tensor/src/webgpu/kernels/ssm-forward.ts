/**
 * The fused selective scan's forward (y, or the last state), see ssm.ts's file comment:
 * ssmForwardPlan chooses the chunks along L; one thread per channel walks L (forwardWgsl, also
 * the backward's checkpoints), or the chunks run as three passes (fwdChunkWgsl, whose passes 1
 * and 2 also give the backward its carries) or as one look-back dispatch (fwdLookbackWgsl).
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type BufRef, type GpuCtx } from "../context.ts";
import { bc, bcAt, carryWalkCode, FWD_WG, ld, quads, ssmTuning, st, stepBlocking, stepCode, stepKey, stepLoop, vecBC, VEXP, XYZW, type StepBlocking } from "./ssm-common.ts";

/** Whether the forward binds B, C as vec4 (its own pipelines: the key says so). */
function fwdVec(N: number): boolean {
  return vecBC(ssmTuning.fwdVecBC, N);
}

/** The forward's chunking for x [B, L, Di]: nC chunks of T steps (nC = 1: one thread walks L). */
export function ssmForwardPlan(B: number, L: number, Di: number): { nC: number; T: number } {
  if (L === 0 || B * Di === 0) return { nC: 1, T: L };
  let nC = 1;
  if (ssmTuning.fwdForceT > 0) nC = ceilDiv(L, ssmTuning.fwdForceT);
  else {
    const threads = L >= ssmTuning.fwdLongL ? Math.max(ssmTuning.fwdThreads, ssmTuning.fwdThreadsLong) : ssmTuning.fwdThreads;
    nC = Math.max(1, Math.min(ceilDiv(threads, B * Di), Math.floor(L / ssmTuning.fwdMinT)));
  }
  const T = ceilDiv(L, nC);
  return { nC: ceilDiv(L, T), T };
}

/**
 * The chunked forward's three passes (see ssm.ts's file comment). params: B·Di, L, Di, N, mode (0: y,
 * 1: last state), T, nC. Buffers: out, W (vec4 scratch: E / entering states [B, nC, Di, N4] at
 * 0, ΣΔ [B, nC, Di] (in .x) after them), x, delta, A, Bm, C, h0: each pass declares (and is
 * bound) only those of FWD_CHUNK_BUFS[pass] (auto layouts drop unused bindings).
 */
export const FWD_CHUNK_BUFS = {
  1: ["W", "x", "delta", "A", "Bm"],
  2: ["out", "W", "A", "h0"],
  3: ["out", "W", "x", "delta", "A", "Bm", "C"],
} as const;
export function fwdChunkWgsl(N4: number, pass: 1 | 2 | 3, vec = false, blk: StepBlocking = { U: 1, bc: false }): string {
  const Q = quads(N4);
  const vecType = (name: string) => name === "W" || (vec && (name === "Bm" || name === "C"));
  const bufs = FWD_CHUNK_BUFS[pass].map((name) => ({ name, type: vecType(name) ? "vec4<f32>" : "f32", write: name === "W" || name === "out" }));
  const per = (f: (q: number) => string) => Q.map(f).join("\n  ");
  const head = `${header(8, bufs)}${VEXP}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let g = wg * ${FWD_WG}u + lid;
  let L = ${pu(1)}; let Di = ${pu(2)}; let N = ${pu(3)}; let mode = ${pu(4)}; let T = ${pu(5)}; let nC = ${pu(6)};
  let sOff = ${pu(0)} * nC * ${N4}u;`;
  if (pass === 2) {
    return `${head}
  if (g >= ${pu(0)}) { return; }
  let b = g / Di; let i = g % Di;
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`)}
  ${per((q) => `var hs${q} = ${ld("h0", "g * N", q)};`)}
  ${carryWalkCode(N4, "hs", (m) => `(b * nC + ${m}) * Di + i`, "")}
  if (mode == 1u) {
    ${Q.map((q) => st("out", "g * N", q, `hs${q}`)).join("\n    ")}
  }
}`;
  }
  return `${head}
  if (g >= ${pu(0)} * nC) { return; }
  let i = g % Di; let c = (g / Di) % nC; let b = g / (Di * nC);
  let t0 = c * T; let t1 = min(L, t0 + T);
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`)}
  ${pass === 1 ? per((q) => `var hs${q} = vec4<f32>(0.0f);`) + "\n  var sd = 0.0f;" : per((q) => `var hs${q} = W[g * ${N4}u + ${q}u];`)}
  ${stepLoop(N4, vec, blk, "t0", "t1", (j) => pass === 1 ? "sd += dt;" : `var acc = 0.0f;
    ${Q.map((q) => `acc += dot(hs${q}, ${bcAt("C", q, vec, N4, j, blk)});`).join("\n    ")}
    out[row] = acc;`, pass === 3 ? ["C"] : [])}
  ${pass === 1 ? `${per((q) => `W[g * ${N4}u + ${q}u] = hs${q};`)}
  W[sOff + g] = vec4<f32>(sd, 0.0f, 0.0f, 0.0f);` : ""}
}`;
}

const FWD_MODES = { y: 0, state: 1, ck: 2 } as const;
type FwdMode = keyof typeof FWD_MODES;

/**
 * Forward, the three uses in one shader (mode: 0 writes y, 1 the last state, 2 checkpoints into
 * scratch for the backward). params: B·Di, L, Di, N, mode, T, nC, ckOff.
 */
function forwardWgsl(N4: number, vec = false): string {
  const Q = quads(N4);
  const bufs = ["x", "delta", "A", "Bm", "C", "h0"].map((name) => ({ name, type: vec && (name === "Bm" || name === "C") ? "vec4<f32>" : "f32" }));
  return `${header(8, [{ name: "out", type: "f32", write: true }, ...bufs])}${VEXP}
@compute @workgroup_size(${FWD_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let g = wg * ${FWD_WG}u + lid;
  if (g >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let Di = ${pu(2)}; let N = ${pu(3)}; let mode = ${pu(4)};
  let b = g / Di; let i = g % Di;
  ${Q.map((q) => `let A${q} = ${ld("A", "i * N", q)};`).join("\n  ")}
  ${Q.map((q) => `var hs${q} = ${ld("h0", "g * N", q)};`).join("\n  ")}
  for (var t = 0u; t < L; t++) {
    if (mode == 2u && t % ${pu(5)} == 0u) {
      // checkpoint into scratch rows padded to ${4 * N4} floats
      let cb = ${pu(7)} + ((b * ${pu(6)} + t / ${pu(5)}) * Di + i) * ${4 * N4}u;
      ${Q.map((q) => [0, 1, 2, 3].map((e) => `out[cb + ${4 * q + e}u] = hs${q}.${XYZW[e]};`).join(" ")).join("\n      ")}
    }
    ${stepCode(N4, vec)}
    if (mode == 0u) {
      var acc = 0.0f;
      ${Q.map((q) => `acc += dot(hs${q}, ${bc("C", q, vec, N4)});`).join("\n      ")}
      out[row] = acc;
    }
  }
  if (mode == 1u) {
    ${Q.map((q) => st("out", "g * N", q, `hs${q}`)).join("\n    ")}
  }
}`;
}

/** f32 → a nonzero status word (bits + 1; 0: not yet published), as kernels/scan-wgsl.ts encodes them. */
const ENC = `fn enc(v: f32) -> u32 { let u = bitcast<u32>(v); return select(u, 0x7fffffffu, u == 0xffffffffu) + 1u; }
fn dec4(u: vec4<u32>) -> vec4<f32> { return bitcast<vec4<f32>>(u - vec4<u32>(1u)); }
`;

/**
 * The last state out of the look-back's status words: state[(b·Di + i)·N + n] = the inclusive
 * state word (lane n) of chunk nC − 1 of (b, i), decoded. params: B·Di·N, Di, N, nC, the
 * inclusive region's first word, NP (the padded lanes a chunk unit).
 */
const LB_STATE = `${header(6, [{ name: "state", type: "f32", write: true }, { name: "st", type: "u32" }])}
@compute @workgroup_size(256)
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * 256u + lid;
  if (e >= ${pu(0)}) { return; }
  let Di = ${pu(1)}; let N = ${pu(2)}; let nC = ${pu(3)};
  let n = e % N; let bi = e / N; let i = bi % Di; let b = bi / Di;
  state[e] = bitcast<f32>(st[${pu(4)} + ((b * nC + nC - 1u) * ${pu(5)} + n) * Di + i] - 1u);
}
`;

/** Zeroes vec4 words [0, n4) of a buffer. params: n4. */
const CLEAR4 = `${header(1, [{ name: "d", type: "vec4<u32>", write: true }])}
@compute @workgroup_size(256)
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * 256u + lid;
  if (e < ${pu(0)}) { d[e] = vec4<u32>(0u); }
}`;

/**
 * The forward's status words for B·nC·Di threads (b, chunk, i) and NP = 4·N4 padded states:
 * [0] the ticket counter, then the regions (each word indexed so that consecutive channels i
 * are consecutive words: stores and look-back loads coalesce)
 *   aggregate E  [B, nC, NP, Di]  the chunk run from h = 0 (chunks 1..nC−1);
 *   aggregate ΣΔ [B, nC, Di]      the Δ summed over the chunk (its decay is exp(A·ΣΔ));
 *   inclusive    [B, nC, NP, Di]  the state leaving the chunk.
 */
function lookbackWords(B: number, nC: number, Di: number, N4: number): number {
  return 1 + B * nC * Di * (8 * N4 + 1);
}

/**
 * The look-back forward (ssmTuning.fwdAlgo = "lookback"): one dispatch of nC·B·ceil(Di/64)
 * workgroups, each 64 consecutive channels of one (b, chunk c). params: B, L, Di, N, mode
 * (0: y, 1: the last state), T, nC, nWi = ceil(Di/64), aggOnly (ssmTuning.fwdLookbackAggOnly).
 * Buffers: out, st (status words, see lookbackWords, all cleared to 0 before the dispatch), x,
 * delta, A, Bm, C, h0 (B, C as vec4 when `vec`).
 *
 * Workgroups take (c, b, channel block) from an atomic ticket, chunk outermost, so the
 * workgroup owning chunk c − 1 of the same channels has a lower ticket: it has started and
 * waits only on lower tickets itself, so every wait ends whatever order (and however few at
 * once) the GPU runs workgroups in. A thread
 *   1. runs its chunk from h = 0 (chunk 0: from h0), keeping the end state E (vec4s in
 *      registers) and ΣΔ;
 *   2. publishes E and ΣΔ, the chunk's map h_out = exp(A·ΣΔ) ⊙ h_in + E ("aggregate"; chunk 0
 *      publishes its end state as "inclusive" at once);
 *   3. walks back over chunks k = c − 1, c − 2, …: if k's inclusive state is out, it is the
 *      state entering k + 1 and ends the walk; else k's aggregate, once out, is composed into
 *      the map from the state entering k + 1 to the state entering c (decays as one exp of
 *      the summed ΣΔ);
 *   4. publishes its own inclusive state exp(A·ΣΔ) ⊙ h_in + E, then (mode 0) re-runs the chunk
 *      from h_in writing y, or (mode 1) the last chunk writes its inclusive state.
 * Each status word is an atomic holding f32 bits + 1 (scan.ts's scheme): no ordering between
 * words is needed, since a reader uses a value only from a word that says it is there, and a
 * vec4 only once all its words are. Which predecessors had published when a thread looked
 * decides how its carry was composed, so the last bits of y may differ from the chunked passes
 * (and from run to run), within the parity tests' tolerance.
 */
function fwdLookbackWgsl(N4: number, vec: boolean, blk: StepBlocking): string {
  const Q = quads(N4), NP = 4 * N4;
  const vt = (name: string) => (vec && (name === "Bm" || name === "C") ? "vec4<f32>" : "f32");
  const bufs = [
    { name: "out", type: "f32", write: true }, { name: "st", type: "atomic<u32>", write: true },
    ...["x", "delta", "A", "Bm", "C", "h0"].map((name) => ({ name, type: vt(name) })),
  ];
  const per = (f: (q: number) => string, sep = "\n  ") => Q.map(f).join(sep);
  // the status word of state lane 4q + e of chunk unit u = b·nC + c in region `reg`
  const word = (reg: string, u: string, q: number, e: number) => `st[${reg} + (${u} * ${NP}u + ${4 * q + e}u) * Di + i]`;
  const publish = (reg: string, u: string, v: string) =>
    per((q) => [0, 1, 2, 3].map((e) => `atomicStore(&${word(reg, u, q, e)}, enc(${v}${q}.${XYZW[e]}));`).join(" "), "\n    ");
  const load = (reg: string, u: string, nm: string) =>
    per((q) => `let ${nm}${q} = vec4<u32>(${[0, 1, 2, 3].map((e) => `atomicLoad(&${word(reg, u, q, e)})`).join(", ")});`, "\n        ") +
    `\n        let ${nm}Ok = ${Q.map((q) => `all(${nm}${q} != vec4<u32>(0u))`).join(" && ")};`;
  return `${header(9, bufs)}${VEXP}${ENC}
var<workgroup> wgId: u32;
@compute @workgroup_size(${FWD_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { wgId = atomicAdd(&st[0], 1u); }
  let w = workgroupUniformLoad(&wgId);
  let B = ${pu(0)}; let L = ${pu(1)}; let Di = ${pu(2)}; let N = ${pu(3)}; let mode = ${pu(4)}; let T = ${pu(5)}; let nC = ${pu(6)}; let nWi = ${pu(7)};
  let aggOnly = ${pu(8)} != 0u;
  let c = w / (B * nWi); let r = w % (B * nWi);
  let b = r / nWi; let i = (r % nWi) * ${FWD_WG}u + lid;
  if (c >= nC || i >= Di) { return; }
  let R = B * nC * Di; // threads: the size of each region
  let sBase = 1u + R * ${NP}u; let iBase = sBase + R;
  let own = b * nC + c;
  let t0 = c * T; let t1 = min(L, t0 + T);
  ${per((q) => `let A${q} = ${ld("A", "i * N", q)};`)}
  // the state entering the chunk (chunk 0: h0; else found by the look-back)
  ${per((q) => `var cr${q} = vec4<f32>(0.0f);`)}
  if (c == 0u) {
    ${per((q) => `cr${q} = ${ld("h0", "(b * Di + i) * N", q)};`, "\n    ")}
  }
  ${per((q) => `var hs${q} = cr${q};`)}
  var sd = 0.0f;
  ${stepLoop(N4, vec, blk, "t0", "t1", () => "sd += dt;")}
  if (c == 0u) {
    ${publish("iBase", "own", "hs")}
  } else {
    ${publish("1u", "own", "hs")}
    atomicStore(&st[sBase + own * Di + i], enc(sd));
    // the map from the state entering chunk k + 1 to the state entering c: exp(A·mS) ⊙ h + mE
    var k = c - 1u; var mS = 0.0f; var spins = 0u;
    ${per((q) => `var mE${q} = vec4<f32>(0.0f);`, "\n    ")}
    loop {
      let u = b * nC + k;
      ${load("iBase", "u", "ic")}
      if (icOk && (k == 0u || !aggOnly)) {
        ${per((q) => `cr${q} = vexp(mS * A${q}) * dec4(ic${q}) + mE${q};`, "\n        ")}
        break;
      }
      // chunk 0 publishes no aggregate, so k stops at 0 until its inclusive state is out
      ${load("1u", "u", "ag")}
      let sw = atomicLoad(&st[sBase + u * Di + i]);
      if (agOk && sw != 0u) {
        ${per((q) => `mE${q} = vexp(mS * A${q}) * dec4(ag${q}) + mE${q};`, "\n        ")}
        mS += bitcast<f32>(sw - 1u);
        k = k - 1u;
      }
      // a safety net against a hang (a bug, or a GPU without forward progress): NaN, not a lockup
      spins = spins + 1u;
      if (spins > ${2 ** 24}u) {
        ${per((q) => `cr${q} = vec4<f32>(bitcast<f32>(spins | 0x7fc00000u));`, "\n        ")}
        break;
      }
    }
    ${per((q) => `hs${q} = vexp(sd * A${q}) * cr${q} + hs${q};`, "\n    ")}
    ${publish("iBase", "own", "hs")}
  }
  if (mode == 1u) {
    if (c == nC - 1u) {
      ${Q.map((q) => st("out", "(b * Di + i) * N", q, `hs${q}`)).join("\n      ")}
    }
    return;
  }
  ${per((q) => `hs${q} = cr${q};`)}
  ${stepLoop(N4, vec, blk, "t0", "t1", (j) => `var acc = 0.0f;
    ${Q.map((q) => `acc += dot(hs${q}, ${bcAt("C", q, vec, N4, j, blk)});`).join("\n    ")}
    out[row] = acc;`, ["C"])}
}`;
}

/**
 * Encodes the forward of ins = [x, delta, A, Bm, C, h0] into out: y (mode "y"), the last state
 * ("state"), or for the sequential backward the state entering each chunk into its scratch
 * ("ck", ck = [T, nC, ckOff]: always one thread per channel walking L).
 */
export function runForward(ctx: GpuCtx, ins: readonly KernelArg[], out: BufRef, mode: FwdMode, ck: number[] = [0, 0, 0], state: BufRef | null = null): boolean {
  const [x, delta, A, Bm, C, h0] = ins;
  const [B, L, Di] = x.shape;
  const N = A.shape[1];
  if (B * Di === 0) return false;
  const label = state ? "selectiveScanWithState" : mode === "y" ? "selectiveScan" : mode === "state" ? "selectiveScanState" : "selectiveScanGrad";
  const N4 = Math.max(1, Math.ceil(N / 4));
  const { nC, T } = ssmForwardPlan(B, L, Di);
  // L = 0: B and C are empty bindings (4 bytes), too small for one vec4
  const vec = L > 0 && fwdVec(N), vk = vec ? ":v" : "";
  const blk = stepBlocking(false, ctx.software === true);
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const words4 = ceilDiv(lookbackWords(B, nC, Di, N4), 4);
  if (mode !== "ck" && nC > 1 && ssmTuning.fwdAlgo === "lookback" && words4 * 16 <= ctx.limits.maxStorageBufferBindingSize) {
    const st = ctx.temp(words4 * 16);
    ctx.dispatch({ label, key: "ssm:clear4", wgsl: () => CLEAR4, buffers: [st], params: new ParamWords().u(words4).words(), groups: grid(ceilDiv(words4, 256), maxDim) });
    const nWi = ceilDiv(Di, FWD_WG);
    ctx.dispatch({
      label, key: `ssm:flb:q${N4}${vk}${stepKey(blk)}`, wgsl: () => fwdLookbackWgsl(N4, vec, blk),
      buffers: [out, st, ...[x, delta, A, Bm, C, h0].map((a) => ctx.ref(a, label))],
      params: new ParamWords().u(B).u(L).u(Di).u(N).u(FWD_MODES[mode]).u(T).u(nC).u(nWi).u(+ssmTuning.fwdLookbackAggOnly).words(),
      groups: grid(nC * B * nWi, maxDim),
    });
    if (state && mode === "y") {
      // the last chunk's inclusive state is the last state: copied out of the status words
      const R = B * nC * Di, n = B * Di * N;
      ctx.dispatch({
        label, key: "ssm:lbstate", wgsl: () => LB_STATE, buffers: [state, st],
        params: new ParamWords().u(n).u(Di).u(N).u(nC).u(1 + R * 4 * N4 + R).u(4 * N4).words(), groups: grid(ceilDiv(n, 256), maxDim),
      });
    }
    ctx.releaseTemp(st);
    return state !== null && mode === "y";
  }
  if (mode !== "ck" && nC > 1) {
    const W = ctx.temp(B * nC * Di * (N4 + 1) * 16);
    const w = new ParamWords().u(B * Di).u(L).u(Di).u(N).u(FWD_MODES[mode]).u(T).u(nC).words();
    const r = (a: KernelArg) => ctx.ref(a, label);
    const refs: Record<string, BufRef> = { out, W, x: r(x), delta: r(delta), A: r(A), Bm: r(Bm), C: r(C), h0: r(h0) };
    const pass = (p: 1 | 2 | 3, threads: number) =>
      ctx.dispatch({
        label, key: `ssm:fc${p}:q${N4}${vk}${p === 2 ? "" : stepKey(blk)}`, wgsl: () => fwdChunkWgsl(N4, p, vec, blk), buffers: FWD_CHUNK_BUFS[p].map((n) => refs[n]), params: w,
        groups: grid(ceilDiv(threads, FWD_WG), maxDim),
      });
    pass(1, B * nC * Di);
    pass(2, B * Di);
    if (mode === "y") pass(3, B * nC * Di);
    ctx.releaseTemp(W);
    return false;
  }
  const w = new ParamWords().u(B * Di).u(L).u(Di).u(N).u(FWD_MODES[mode]);
  for (const e of ck) w.u(e);
  ctx.dispatch({
    label, key: `ssm:fwd:q${N4}${vk}`, wgsl: () => forwardWgsl(N4, vec),
    buffers: [out, ...[x, delta, A, Bm, C, h0].map((a) => ctx.ref(a, label))], params: w.words(),
    groups: grid(ceilDiv(B * Di, FWD_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
  return false;
}

export function selectiveScanKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  runForward(ctx, ins, ctx.ref(out, "selectiveScan"), "y");
}

export function selectiveScanStateKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg): void {
  runForward(ctx, ins, ctx.ref(out, "selectiveScanState"), "state");
}

/**
 * selectiveScanWithState (Backend.runMulti): y and the last state. The look-back forward has the
 * last state among its status words (one small copy kernel); the other algorithms run the
 * state's own forward after y's.
 */
export function selectiveScanWithStateKernel(ctx: GpuCtx, ins: readonly KernelArg[], [y, state]: readonly KernelArg[]): void {
  const label = "selectiveScanWithState";
  if (state.shape.includes(0)) {
    runForward(ctx, ins, ctx.ref(y, label), "y");
    return;
  }
  const sRef = ctx.ref(state, label);
  if (ins[0].shape[1] > 0 && runForward(ctx, ins, ctx.ref(y, label), "y", undefined, sRef)) return;
  runForward(ctx, ins, sRef, "state");
}
