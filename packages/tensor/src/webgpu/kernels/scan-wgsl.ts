/**
 * The WGSL of the selective scan's kernels, generated per algorithm (scan.ts's module comment
 * describes the four): look-back (lookbackWgsl), tile look-back (tileWgsl) with its status-buffer
 * clear (CLEAR), direct (DIRECT) and chunked passes 1, 3 (chunkWgsl) and 2 (CARRY). Moved from
 * scan.ts, which keeps the tuning, the planning and the dispatch.
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";

export const WG = 256;

/** f32 → a nonzero status word (bits + 1; the one NaN whose bits + 1 would wrap becomes another NaN). */
const ENC = `fn enc(v: f32) -> u32 { let u = bitcast<u32>(v); return select(u, 0x7fffffffu, u == 0xffffffffu) + 1u; }
fn dec(u: u32) -> f32 { return bitcast<f32>(u - 1u); }
`;

/**
 * Look-back, thread per (c, b, s) (c outermost, so predecessors have lower indices): params n =
 * nC·B·S, L, S, nC, rev, B·S. Buffers: out, st (status: [0] the workgroup counter, then E, P,
 * inclusive y as [nC, B, S] regions, all cleared to 0 before the dispatch), a, x, h0.
 */
export function lookbackWgsl(T: number): string {
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
export function tileWgsl(V: 1 | 4, T: number, R: number, CW: number): string {
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
export const CLEAR = `${header(1, [{ name: "d", type: "u32", write: true }])}
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
export const DIRECT = `${header(4, [{ name: "out", type: "f32", write: true }, { name: "a", type: "f32" }, { name: "x", type: "f32" }, { name: "h0", type: "f32" }])}
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
export function chunkWgsl(pass: 1 | 3): string {
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
export const CARRY = `${header(4, [{ name: "E", type: "f32", write: true }, { name: "P", type: "f32" }, { name: "h0", type: "f32" }])}
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
