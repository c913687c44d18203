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
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

const WG = 256;

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

/**
 * Tile look-back: one workgroup per tile of (CW·V channels × R·T steps), tiles in ticket order
 * (time tile outermost). params: L, Su = S / V, B·Su, nCT (channel tiles), nLT (time tiles), rev,
 * W = nLT·B·S (status words per region). Buffers: out, st (status: [0] the ticket counter, then
 * the tiles' E, P and inclusive y as [nLT, B·Su, V] regions, cleared to 0), a, x, h0 (as VT).
 *
 * Why it should move more bytes than `lookbackWgsl`: every load is unconditional (indices clamped
 * into range, out-of-range steps turned into the identity map by `select`), so all 2·T loads of a
 * thread are in flight together instead of one branch at a time; vec4 loads move 4 channels per
 * instruction; the workgroup combines its R rows in shared memory and looks back ONCE per tile
 * (R·T steps) instead of once per T steps, so status traffic and look-back hops fall by R.
 * Deadlock-freedom as in `lookbackWgsl`: a workgroup takes its tile from an atomic ticket, and
 * the only tile it waits for is (time tile − 1, same channels), whose ticket is lower, so that
 * workgroup already runs and never waits on a later one.
 */
function tileWgsl(V: 1 | 4, T: number, R: number, CW: number): string {
  const VT = V === 1 ? "f32" : "vec4<f32>";
  const J = Array.from({ length: T }, (_, j) => j);
  const K = Array.from({ length: V }, (_, k) => k);
  const lane = (e: string, k: number) => (V === 1 ? e : `${e}[${k}]`);
  const vec = (xs: string[]) => (V === 1 ? xs[0] : `vec4<f32>(${xs.join(", ")})`);
  // status word of region `reg` (0 E, 1 P, 2 inclusive) for tile-unit q, lane k
  const sw = (reg: number, q: string, k: number) => `st[1u + ${reg}u * W + ${q} * ${V}u + ${k}u]`;
  const loadAll = (reg: number, q: string, nm: string) =>
    `${K.map((k) => `let ${nm}${k} = atomicLoad(&${sw(reg, q, k)});`).join(" ")} let ${nm}Ok = ${K.map((k) => `${nm}${k} != 0u`).join(" && ")};`;
  const decAll = (nm: string) => vec(K.map((k) => `dec(${nm}${k})`));
  const publish = (reg: number, v: string) => K.map((k) => `atomicStore(&${sw(reg, "q0", k)}, enc(${lane(v, k)}));`).join(" ");
  return `${header(7, [
    { name: "out", type: VT, write: true }, { name: "st", type: "atomic<u32>", write: true },
    { name: "a", type: VT }, { name: "x", type: VT }, { name: "h0", type: VT },
  ])}${ENC}
var<workgroup> wgId: u32;
${R > 1 ? `var<workgroup> shP: array<${VT}, ${R * CW}>;\nvar<workgroup> shE: array<${VT}, ${R * CW}>;` : ""}
var<workgroup> shC: array<${VT}, ${CW}>;
@compute @workgroup_size(${R * CW})
fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { wgId = atomicAdd(&st[0], 1u); }
  let w = workgroupUniformLoad(&wgId);
  let L = ${pu(0)}; let Su = ${pu(1)}; let BSu = ${pu(2)}; let nCT = ${pu(3)}; let nLT = ${pu(4)}; let rev = ${pu(5)} != 0u; let W = ${pu(6)};
  let lt = w / nCT; let ct = w % nCT;
  let r = lid / ${CW}u; let cl = lid % ${CW}u;
  let u = ct * ${CW}u + cl;
  let valid = lt < nLT && u < BSu;
  let uc = min(u, BSu - 1u); // clamped: threads past the channels load real data and write nothing
  let base = (uc / Su) * L; let su = uc % Su;
  let st0 = lt * ${R * T}u + r * ${T}u;
  // every load unconditional (clamped index), all in flight before the first use
  ${J.map((j) => `let s${j} = st0 + ${j}u; let in${j} = s${j} < L; let sc${j} = min(s${j}, L - 1u);
  let t${j} = select(sc${j}, L - 1u - sc${j}, rev);
  let o${j} = (base + t${j}) * Su + su;
  let ra${j} = a[(base + select(t${j}, min(t${j} + 1u, L - 1u), rev)) * Su + su];
  let rx${j} = x[o${j}];`).join("\n  ")}
  // α, β of each step (steps past L: the identity map; reversed, α_t = a_{t+1}, 0 at t = L − 1)
  var P = ${VT}(1.0f); var E = ${VT}(0.0f);
  ${J.map((j) => `let al${j} = select(${VT}(1.0f), select(ra${j}, ${VT}(0.0f), rev && t${j} + 1u >= L), in${j});
  let be${j} = select(${VT}(0.0f), rx${j}, in${j});
  E = al${j} * E + be${j}; P = P * al${j};`).join("\n  ")}
  ${R > 1 ? "shP[lid] = P; shE[lid] = E;\n  workgroupBarrier();" : ""}
  if (r == 0u) {
    // the tile's map: the rows composed in time order
    var tP = P; var tE = E;
    ${R > 1 ? `for (var k = 1u; k < ${R}u; k++) { let pk = shP[k * ${CW}u + cl]; tE = pk * tE + shE[k * ${CW}u + cl]; tP = pk * tP; }` : ""}
    var carry = ${VT}(0.0f);
    if (valid) {
      var init = ${VT}(0.0f);
      if (!rev) { init = h0[uc]; }
      carry = init;
      let q0 = lt * BSu + u;
      ${publish(0, "tE")} ${publish(1, "tP")}
      if (lt > 0u) {
        // the map from the y entering tile k + 1 to the y entering this tile
        var k = lt - 1u; var mP = ${VT}(1.0f); var mE = ${VT}(0.0f); var spins = 0u;
        loop {
          let q = k * BSu + u;
          ${loadAll(2, "q", "i")}
          if (iOk) { carry = mP * ${decAll("i")} + mE; break; }
          ${loadAll(0, "q", "e")} ${loadAll(1, "q", "p")}
          if (eOk && pOk) {
            mE = mP * ${decAll("e")} + mE; mP = mP * ${decAll("p")};
            if (k == 0u) { carry = mP * init + mE; break; }
            k = k - 1u;
          }
          // a safety net against a hang (a bug, or a GPU without forward progress): NaN, not a lockup
          spins = spins + 1u;
          if (spins > ${2 ** 24}u) { carry = ${VT}(bitcast<f32>(spins | 0x7fc00000u)); break; }
        }
      }
      let inc = tP * carry + tE;
      ${publish(2, "inc")}
    }
    shC[cl] = carry;
  }
  workgroupBarrier();
  // the y entering this thread's row: the tile's carry through the rows before it
  var y = shC[cl];
  ${R > 1 ? `for (var k = 0u; k < r; k++) { y = shP[k * ${CW}u + cl] * y + shE[k * ${CW}u + cl]; }` : ""}
  ${J.map((j) => `y = al${j} * y + be${j}; if (valid && in${j}) { out[o${j}] = y; }`).join("\n  ")}
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
