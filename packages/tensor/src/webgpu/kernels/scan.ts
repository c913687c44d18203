/**
 * The selective scan and its reverse, over a, x [B, L, S]:
 *   scan:        h_t = a_t h_{t-1} + x_t,      h_{-1} = h0 [B, S]
 *   scanReverse: λ_t = a_{t+1} λ_{t+1} + g_t,  λ_L = 0
 * Both are the same recurrence y = α y + β taken in "step" order (t ascending, or t descending
 * with α_t = a_{t+1}), so one generator serves both directions.
 *
 * Four algorithms:
 * - direct: one thread per (b, s) walks L. Coalesced across s; for short L.
 * - look-back (`scanTuning.algo = "lookback"`, from L ≥ 2T): a single pass with decoupled look-back. A thread per
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
 * - tile (the default from L ≥ 2; shape `scanTuning.tile`): the same single pass, but a
 *   workgroup owns a tile of (CW·V channels × R·T steps): each thread loads its T steps of V
 *   channels (vec4 along S when S % 4 == 0) with every load unconditional (indices clamped,
 *   steps past the end made the identity by `select`), so all of a thread's loads are in flight
 *   at once, where the per-step `if` blocks of look-back may issue them one branch at a time;
 *   the R rows' maps are composed in workgroup memory, row 0 publishes the tile's map and looks
 *   back ONCE for the whole tile (R× fewer look-backs and status words than look-back), and
 *   every row rebuilds its entering y from the tile's carry. Same ticket order, status encoding
 *   and deadlock-freedom argument as look-back (see tileWgsl). As with look-back, a carry is
 *   composed from whichever predecessors had published when it looked, so the last bits of the
 *   result may vary from run to run (within the tests' tolerance), not the values' meaning.
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
import { ceilDiv, grid, ParamWords, type GpuCtx } from "../context.ts";
import { CARRY, chunkWgsl, CLEAR, DIRECT, lookbackWgsl, tileWgsl, WG } from "./scan-wgsl.ts";

/** Tuning knobs (tests force the chunked path on small problems). */
export const scanTuning = {
  /**
   * "lookback" (single pass, a look-back per thread chunk), "tile" (single pass, a look-back per
   * workgroup tile: see tileWgsl) or "chunked" (three passes) for long sequences.
   */
  // "tile" v4t8r8c32 moved 78–93% of an H200's copy bandwidth at L = 4K–64K (64% at 256K, S =
  // 256), the per-thread look-back 26–31% (webgpu-scan, 2026-11-26)
  algo: "tile" as "lookback" | "tile" | "chunked",
  /** Look-back: steps per chunk (a constant of the generated code: registers per thread). */
  lookbackT: 32,
  /** Tile look-back: the tile shape (see ScanTile; each distinct one is its own pipeline). */
  tile: { v: 4, t: 8, r: 8, cw: 32 } as ScanTile,
  /**
   * The tile when B·S ≤ fewChannels: few channel tiles side by side, so the chain of look-backs
   * along L is the bottleneck and longer time tiles pay (L 256K, S 256 on an H200: v4t16r16c16
   * 77.5% of copy bandwidth, v4t8r8c32 63.3%).
   */
  tileFew: { v: 4, t: 16, r: 16, cw: 16 } as ScanTile,
  fewChannels: 512,
  /** Chunked: use chunks when B·S is below this and L is at least minChunkedL. */
  maxDirectParallel: 32768,
  minChunkedL: 64,
  /** Force this chunk length, for either algorithm (0: choose). */
  forceChunk: 0,
};

/**
 * Tile look-back config: a workgroup of R × CW threads owns a tile of CW·V channels × R·T steps.
 * V: channels per thread (4: vec4 loads along S, used when S % 4 == 0; else V = 1 and T·4 steps);
 * T: steps per thread (held in registers: 2·T·V floats); R: thread rows along time; CW: threads
 * along channels (consecutive threads of a row read consecutive V-float groups of one time row:
 * coalesced, CW·V floats a row).
 */
export interface ScanTile {
  v: 1 | 4;
  t: number;
  r: number;
  cw: number;
}

/** "v4t8r4c64" → a ScanTile (a clear error naming the spec otherwise). */
export function parseScanTile(spec: string): ScanTile {
  const m = /^v(1|4)t(\d+)r(\d+)c(\d+)$/.exec(spec);
  if (!m) throw new Error(`scan tile: expected v{1|4}t{steps}r{rows}c{channel threads} such as v4t8r4c64, got "${spec}"`);
  const tile: ScanTile = { v: Number(m[1]) as 1 | 4, t: Number(m[2]), r: Number(m[3]), cw: Number(m[4]) };
  checkScanTile(tile, spec);
  return tile;
}

/** A ScanTile as its spec ("v4t8r4c64"; parseScanTile reads it back): pipeline keys, bench rows. */
export function scanTileName(c: ScanTile): string {
  return `v${c.v}t${c.t}r${c.r}c${c.cw}`;
}

function checkScanTile(c: ScanTile, what: string): void {
  const ok = (c.v === 1 || c.v === 4) && Number.isInteger(c.t) && c.t >= 1 && c.t * c.v <= 64 &&
    Number.isInteger(c.r) && c.r >= 1 && Number.isInteger(c.cw) && c.cw >= 1 && c.r * c.cw <= 256;
  if (!ok) throw new Error(`scan tile ${what}: need v 1 or 4, 1 ≤ t with t·v ≤ 64 (registers), r, cw ≥ 1 with r·cw ≤ 256 (workgroup size)`);
}

/** The tile actually used for channel count S: vec4 only when S % 4 == 0 (else V = 1, 4× the steps). */
function tileFor(B: number, S: number): ScanTile {
  const c = B * S <= scanTuning.fewChannels ? scanTuning.tileFew : scanTuning.tile;
  checkScanTile(c, scanTileName(c));
  return c.v === 4 && S % 4 !== 0 ? { v: 1, t: Math.min(64, c.t * 4), r: c.r, cw: c.cw } : c;
}

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
export function scanPlan(B: number, L: number, S: number): { nC: number; T: number; algo: "direct" | "lookback" | "tile" | "chunked"; tile?: ScanTile } {
  if (scanTuning.algo === "tile") {
    // any L ≥ 2 (one time tile needs no look-back); T: steps per tile
    if (L < 2) return { nC: 1, T: Math.max(L, 1), algo: "direct" };
    const tile = tileFor(B, S);
    return { nC: ceilDiv(L, tile.r * tile.t), T: tile.r * tile.t, algo: "tile", tile };
  }
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
  const { nC, T, algo, tile } = scanPlan(B, L, S);
  if (algo === "direct") {
    ctx.dispatch({
      label, key: "scan:direct", wgsl: () => DIRECT,
      buffers: [ro, ra, rx, rh],
      params: new ParamWords().u(B * S).u(L).u(S).u(r).words(),
      groups: grid(ceilDiv(B * S, WG), maxDim),
    });
    return;
  }
  if (algo === "tile" && tile) {
    const { v, t, r: R, cw } = tile;
    const Su = S / v, nCT = ceilDiv(B * Su, cw), W = nC * B * S;
    const words = 1 + 3 * W;
    const st = ctx.temp(words * 4);
    ctx.dispatch({ label, key: "scan:clear", wgsl: () => CLEAR, buffers: [st], params: new ParamWords().u(words).words(), groups: grid(ceilDiv(words, WG), maxDim) });
    ctx.dispatch({
      label, key: `scan:tile:${scanTileName(tile)}`, wgsl: () => tileWgsl(v, t, R, cw), buffers: [ro, st, ra, rx, rh],
      params: new ParamWords().u(L).u(Su).u(B * Su).u(nCT).u(nC).u(r).u(W).words(),
      groups: grid(nC * nCT, maxDim),
    });
    ctx.releaseTemp(st);
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
