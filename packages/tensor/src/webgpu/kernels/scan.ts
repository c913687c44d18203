/**
 * The selective scan and its reverse, over a, x [B, L, S]:
 *   scan:        h_t = a_t h_{t-1} + x_t,      h_{-1} = h0 [B, S]
 *   scanReverse: λ_t = a_{t+1} λ_{t+1} + g_t,  λ_L = 0
 * Both are the same recurrence y = α y + β taken in "step" order (t ascending, or t descending
 * with α_t = a_{t+1}), so one generator serves both directions.
 *
 * Two algorithms, chosen by the available parallelism:
 * - direct: one thread per (b, s) walks L. Coalesced across s; best when B·S alone fills the GPU
 *   (or L is short).
 * - chunked (long L, small B·S): L is cut into nC chunks of T steps.
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
  /** Use chunks when B·S is below this and L is at least minChunkedL. */
  maxDirectParallel: 32768,
  minChunkedL: 64,
  /** Force this chunk length (0: choose). */
  forceChunk: 0,
};

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
  if (B * S >= scanTuning.maxDirectParallel || L < scanTuning.minChunkedL) return 1;
  const want = Math.min(ceilDiv(131072, B * S), Math.ceil(2 * Math.sqrt(L)));
  return Math.max(1, Math.min(want, ceilDiv(L, 8)));
}

/** The chunking runScan uses for a, x [B, L, S]: nC chunks of T steps (nC = 1: the direct scan). Benchmarks count bytes with it. */
export function scanPlan(B: number, L: number, S: number): { nC: number; T: number } {
  const T = ceilDiv(L, chunkCount(B, L, S));
  return { nC: L === 0 ? 1 : ceilDiv(L, T), T };
}

function runScan(ctx: GpuCtx, rev: boolean, a: KernelArg, x: KernelArg, h0: KernelArg | null, out: KernelArg): void {
  const [B, L, S] = a.shape;
  if (B * L * S === 0) return;
  const label = rev ? "scanReverse" : "scan";
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const ra = ctx.ref(a, label), rx = ctx.ref(x, label), ro = ctx.ref(out, label);
  const rh = h0 ? ctx.ref(h0, label) : rx; // the reverse scan has no h0: bind x (never read)
  const r = rev ? 1 : 0;
  const { nC, T } = scanPlan(B, L, S);
  if (nC <= 1) {
    ctx.dispatch({
      label, key: "scan:direct", wgsl: () => DIRECT,
      buffers: [ro, ra, rx, rh],
      params: new ParamWords().u(B * S).u(L).u(S).u(r).words(),
      groups: grid(ceilDiv(B * S, WG), maxDim),
    });
    return;
  }
  const n = B * nC * S;
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
