/**
 * The selective scan and its reverse, over a, x [B, L, S]:
 *   scan:        h_t = a_t h_{t-1} + x_t,      h_{-1} = h0 [B, S]
 *   scanReverse: λ_t = a_{t+1} λ_{t+1} + g_t,  λ_L = 0
 * Both are the same recurrence y = α y + β taken in "step" order (t ascending, or t descending
 * with α_t = a_{t+1}), so one generator serves both directions.
 *
 * Three algorithms:
 * - direct: one thread per (b, s) walks L. Coalesced across s; for short L.
 * - look-back (the default from L ≥ 2T): a single pass with decoupled look-back. A thread per
 *   (b, chunk of T steps, s) loads its chunk's α, β into registers (T is a constant of the
 *   generated code: unrolled variables, no function-scope arrays), publishes the chunk's affine
 *   map y_out = P y_in + E, then walks back over its predecessors' published results until one
 *   has published the y leaving it (its "inclusive" value; chunk 0 needs none: h0), composing
 *   the maps of those that have only published P, E; it publishes its own leaving y and
 *   recomputes its T outputs from registers. So α, β are read once and y written once: 12 bytes
 *   per element plus about 1 byte per element of status (clear, publish, look-back).
 *   Workgroups take their index from an atomic counter, so a chunk's predecessors belong to
 *   workgroups that started earlier and can always finish (no deadlock whatever the order in
 *   which the GPU launches workgroups). Each status word is one atomic holding f32 bits + 1 (0:
 *   not yet published; the NaN 0xffffffff is stored as the NaN 0x7fffffff), so it needs no
 *   ordering between words: a reader uses a value only from the word that says it is there.
 * - chunked (`scanTuning.algo = "chunked"`): L is cut into nC chunks of T steps.
 *     pass 1, a thread per (b, chunk, s): the chunk's affine map y_out = P y_in + E, by running the
 *       recurrence from y_in = 0 (E) while multiplying the α's (P);
 *     pass 2, a thread per (b, s): walks the chunks in step order, turning (P, E) into the y
 *       entering each chunk (stored over E);
 *     pass 3, a thread per (b, chunk, s): re-runs the recurrence over its chunk from that carry,
 *       writing every y. Each output is then computed with exactly the sequential formula from
 *       the exact carry, so the rounding differs from the direct scan only in the carries.
 *   Reads 4·B·L·S values instead of 2, for B·S·nC-way parallelism instead of B·S.
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

const WG = 256;

/** Tuning knobs (tests force the chunked path on small problems). */
export const scanTuning = {
  /** "lookback" (single pass) or "chunked" (three passes) for long sequences. */
  algo: "lookback" as "lookback" | "chunked",
  /** Look-back: steps per chunk (a constant of the generated code: registers per thread). */
  lookbackT: 32,
  /** Chunked: use chunks when B·S is below this and L is at least minChunkedL. */
  maxDirectParallel: 32768,
  minChunkedL: 64,
  /** Force this chunk length, for either algorithm (0: choose). */
  forceChunk: 0,
};

/** f32 → a nonzero status word (bits + 1; the one NaN whose bits + 1 would wrap becomes another NaN). */
const ENC = `fn enc(v: f32) -> u32 { let u = bitcast<u32>(v); return select(u, 0x7fffffffu, u == 0xffffffffu) + 1u; }
fn dec(u: u32) -> f32 { return bitcast<f32>(u - 1u); }
`;

/**
 * Look-back, thread per (c, b, s) (c outermost, so predecessors have lower indices): params n =
 * nC·B·S, L, S, nC, rev, B·S. Buffers: out, st (status: [0] the workgroup counter, then E, P,
 * inclusive y as [nC, B, S] regions, all cleared to 0 before the dispatch), a, x, h0.
 */
function lookbackWgsl(T: number): string {
  const J = Array.from({ length: T }, (_, j) => j);
  // the step's time index and the offset of α (a[o + S] when reversed) and β
  const at = (j: number) => `let st${j} = c * ${T}u + ${j}u; var t${j} = st${j}; if (rev) { t${j} = L - 1u - st${j}; }
      let o${j} = (b * L + t${j}) * S + s;`;
  return `${header(6, [
    { name: "out", type: "f32", write: true }, { name: "st", type: "atomic<u32>", write: true },
    { name: "a", type: "f32" }, { name: "x", type: "f32" }, { name: "h0", type: "f32" },
  ])}${ENC}
var<workgroup> wgId: u32;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { wgId = atomicAdd(&st[0], 1u); }
  let w = workgroupUniformLoad(&wgId);
  let n = ${pu(0)}; let L = ${pu(1)}; let S = ${pu(2)}; let rev = ${pu(4)} != 0u; let BS = ${pu(5)};
  let id = w * ${WG}u + lid;
  let valid = id < n;
  let c = id / max(BS, 1u); let bs = id % max(BS, 1u); let b = bs / max(S, 1u); let s = bs % max(S, 1u);
  // the chunk into registers (steps past L: the identity map), and its map y_out = P y_in + E
  var P = 1.0f; var E = 0.0f;
  ${J.map((j) => `var al${j} = 1.0f; var be${j} = 0.0f;
  if (valid && c * ${T}u + ${j}u < L) {
      ${at(j)}
      if (rev) { al${j} = 0.0f; if (t${j} + 1u < L) { al${j} = a[o${j} + S]; } } else { al${j} = a[o${j}]; }
      be${j} = x[o${j}];
  }
  E = al${j} * E + be${j}; P = P * al${j};`).join("\n  ")}
  if (valid) { atomicStore(&st[1u + id], enc(E)); atomicStore(&st[1u + n + id], enc(P)); }
  workgroupBarrier(); // the maps of this workgroup's own chunks are out before anyone looks back
  if (valid) {
    var init = 0.0f;
    if (!rev) { init = h0[bs]; }
    var carry = init;
    if (c > 0u) {
      // the map from the y entering chunk k + 1 to the y entering chunk c
      var k = c - 1u; var mP = 1.0f; var mE = 0.0f; var spins = 0u;
      loop {
        let q = k * BS + bs;
        let inc = atomicLoad(&st[1u + 2u * n + q]);
        if (inc != 0u) { carry = mP * dec(inc) + mE; break; }
        let e = atomicLoad(&st[1u + q]); let p = atomicLoad(&st[1u + n + q]);
        if (e != 0u && p != 0u) {
          mE = mP * dec(e) + mE; mP = mP * dec(p);
          if (k == 0u) { carry = mP * init + mE; break; }
          k = k - 1u;
        }
        // a safety net against a hang (a bug, or a GPU without forward progress): NaN, not a lockup
        spins = spins + 1u;
        if (spins > ${2 ** 24}u) { carry = bitcast<f32>(spins | 0x7fc00000u); break; } // NaN: built at run time (a NaN constant is a WGSL error)
      }
    }
    atomicStore(&st[1u + 2u * n + id], enc(P * carry + E));
    var y = carry;
    ${J.map((j) => `if (c * ${T}u + ${j}u < L) {
      ${at(j)}
      y = al${j} * y + be${j}; out[o${j}] = y;
    }`).join("\n    ")}
  }
}`;
}

/** Zeroes words [0, n) of a u32 buffer. params: n. */
const CLEAR = `${header(1, [{ name: "d", type: "u32", write: true }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let e = wg * ${WG}u + lid;
  if (e < ${pu(0)}) { d[e] = 0u; }
}`;

/** WGSL for step index `st` (0-based in step order) → time index t, and α / β read at t. */
const STEP = `var t = st; if (rev) { t = L - 1u - st; }
    let o = (b * L + t) * S + s;
    var al = 0.0f;
    if (rev) { if (t + 1u < L) { al = a[o + S]; } } else { al = a[o]; }
    let be = x[o];`;

/**
 * The direction is a runtime flag (a uniform branch), so both scans share each pipeline.
 * Direct: thread per (b, s). params: B·S, L, S, rev. Buffers: out, a, x, h0 (x again when rev).
 */
const DIRECT = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "x", type: "f32" }, { name: "h0", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let id = wg * ${WG}u + lid;
  if (id >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let S = ${pu(2)}; let rev = ${pu(3)} != 0u;
  let b = id / S; let s = id % S;
  var y = 0.0f;
  if (!rev) { y = h0[id]; }
  for (var st = 0u; st < L; st++) {
    ${STEP}
    y = al * y + be;
    out[o] = y;
  }
}`;

/**
 * Chunk passes 1 and 3: thread per (b, c, s). params: B·nC·S, L, S, T, nC, rev.
 * Pass 1 writes P, E [B, nC, S]; pass 3 reads the carry from E and writes out.
 */
function chunkWgsl(pass: 1 | 3): string {
  const bufs = pass === 1
    ? [{ name: "P", type: "f32", write: true }, { name: "E", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "x", type: "f32" }]
    : [{ name: "out", type: "f32", write: true }, { name: "E", type: "f32" }, { name: "a", type: "f32" }, { name: "x", type: "f32" }];
  return `${header(6, bufs)}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let id = wg * ${WG}u + lid;
  if (id >= ${pu(0)}) { return; }
  let L = ${pu(1)}; let S = ${pu(2)}; let T = ${pu(3)}; let nC = ${pu(4)}; let rev = ${pu(5)} != 0u;
  let s = id % S; let c = (id / S) % nC; let b = id / (S * nC);
  ${pass === 1 ? "var y = 0.0f; var p = 1.0f;" : "var y = E[id];"}
  let st1 = min(L, (c + 1u) * T);
  for (var st = c * T; st < st1; st++) {
    ${STEP}
    y = al * y + be;
    ${pass === 1 ? "p = p * al;" : "out[o] = y;"}
  }
  ${pass === 1 ? "P[id] = p; E[id] = y;" : ""}
}`;
}

/** Pass 2: thread per (b, s): E[b, c, s] ← the y entering chunk c. params: B·S, S, nC, rev. */
const CARRY = `${header(4, [{ name: "E", type: "f32", write: true }, { name: "P", type: "f32" }, { name: "h0", type: "f32" }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let id = wg * ${WG}u + lid;
  if (id >= ${pu(0)}) { return; }
  let S = ${pu(1)}; let nC = ${pu(2)}; let rev = ${pu(3)} != 0u;
  let b = id / S; let s = id % S;
  var y = 0.0f;
  if (!rev) { y = h0[id]; }
  for (var c = 0u; c < nC; c++) {
    let k = (b * nC + c) * S + s;
    let e = E[k];
    E[k] = y;
    y = P[k] * y + e;
  }
}`;

function chunkCount(B: number, L: number, S: number): number {
  if (scanTuning.forceChunk > 0) return ceilDiv(L, scanTuning.forceChunk);
  if (scanTuning.algo === "lookback") return L >= 2 * scanTuning.lookbackT ? ceilDiv(L, scanTuning.lookbackT) : 1;
  if (B * S >= scanTuning.maxDirectParallel || L < scanTuning.minChunkedL) return 1;
  const want = Math.min(ceilDiv(131072, B * S), Math.ceil(2 * Math.sqrt(L)));
  return Math.max(1, Math.min(want, ceilDiv(L, 8)));
}

/**
 * What runScan does for a, x [B, L, S]: nC chunks of T steps by `algo` (nC = 1: the direct
 * scan). Benchmarks count bytes with it.
 */
export function scanPlan(B: number, L: number, S: number): { nC: number; T: number; algo: "direct" | "lookback" | "chunked" } {
  const nC0 = chunkCount(B, L, S);
  // look-back chunks have exactly T steps (T is compiled in); chunked ones T = ceil(L / nC)
  const T = scanTuning.algo === "lookback" ? (scanTuning.forceChunk > 0 ? scanTuning.forceChunk : scanTuning.lookbackT) : ceilDiv(L, nC0);
  const nC = L === 0 ? 1 : ceilDiv(L, T);
  return { nC, T, algo: nC <= 1 ? "direct" : scanTuning.algo };
}

function runScan(ctx: GpuCtx, rev: boolean, a: KernelArg, x: KernelArg, h0: KernelArg | null, out: KernelArg): void {
  const [B, L, S] = a.shape;
  if (B * L * S === 0) return;
  const label = rev ? "scanReverse" : "scan";
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const ra = ctx.ref(a, label), rx = ctx.ref(x, label), ro = ctx.ref(out, label);
  const rh = h0 ? ctx.ref(h0, label) : rx; // the reverse scan has no h0: bind x (never read)
  const r = rev ? 1 : 0;
  const { nC, T, algo } = scanPlan(B, L, S);
  if (algo === "direct") {
    ctx.dispatch({
      label, key: "scan:direct", wgsl: () => DIRECT,
      buffers: [ro, ra, rx, rh],
      params: new ParamWords().u(B * S).u(L).u(S).u(r).words(),
      groups: grid(ceilDiv(B * S, WG), maxDim),
    });
    return;
  }
  const n = B * nC * S;
  if (algo === "lookback") {
    const words = 1 + 3 * n;
    const st = ctx.temp(words * 4);
    ctx.dispatch({ label, key: "scan:clear", wgsl: () => CLEAR, buffers: [st], params: new ParamWords().u(words).words(), groups: grid(ceilDiv(words, WG), maxDim) });
    ctx.dispatch({
      label, key: `scan:lookback:${T}`, wgsl: () => lookbackWgsl(T), buffers: [ro, st, ra, rx, rh],
      params: new ParamWords().u(n).u(L).u(S).u(nC).u(r).u(B * S).words(),
      groups: grid(ceilDiv(n, WG), maxDim),
    });
    ctx.releaseTemp(st);
    return;
  }
  const P = ctx.temp(n * 4), E = ctx.temp(n * 4);
  const chunkParams = new ParamWords().u(n).u(L).u(S).u(T).u(nC).u(r).words();
  const groups = grid(ceilDiv(n, WG), maxDim);
  ctx.dispatch({ label, key: "scan:p1", wgsl: () => chunkWgsl(1), buffers: [P, E, ra, rx], params: chunkParams, groups });
  ctx.dispatch({
    label, key: "scan:p2", wgsl: () => CARRY,
    buffers: [E, P, rh],
    params: new ParamWords().u(B * S).u(S).u(nC).u(r).words(),
    groups: grid(ceilDiv(B * S, WG), maxDim),
  });
  ctx.dispatch({ label, key: "scan:p3", wgsl: () => chunkWgsl(3), buffers: [ro, E, ra, rx], params: chunkParams, groups });
  ctx.releaseTemp(P);
  ctx.releaseTemp(E);
}

export function scanKernel(ctx: GpuCtx, [a, x, h0]: readonly KernelArg[], out: KernelArg): void {
  runScan(ctx, false, a, x, h0, out);
}

export function scanReverseKernel(ctx: GpuCtx, [a, g]: readonly KernelArg[], out: KernelArg): void {
  runScan(ctx, true, a, g, null, out);
}
