/**
 * attnRead's forward for pools that neighbouring positions share (attnReadTuning.forward
 * "shared"; "auto", the default, takes it on software adapters only): the model's positions read the pool held before
 * them, which changes only where a note enters, so runs of hundreds of positions read the same
 * rows. The lanes kernel (attention.ts) loads every row once per position; this one loads a row
 * once per workgroup of POS positions and uses it for each of them.
 *
 * Layout: 64 threads serve POS positions (attnReadTuning.sharedPositions, 16 by default; halved
 * where the arrays need it).
 * - Staging: the positions' q rows and index rows (an index outside [0, M) reads as empty, −1).
 * - Logits: thread s takes slot s (and s + 64, …). The row of position 0 at that slot is the
 *   reference: its vec4 j is loaded once and dotted with every position's q (from workgroup
 *   memory); a position whose slot holds another row loads that row's vec4 itself. The dot is
 *   summed in indexedDot's order (element by element), as the lanes kernel's "slots" layout.
 * - Softmax: 4 threads a position, each over slots sub, sub + 4, …; the max is exact in any
 *   order, the sum adds the 4 partials in order (f32 rounding apart from the lanes kernel).
 *   w = softmax ⊙ valid; a slot of weight exactly 0 leaves the weighted sum (as there).
 * - Weighted sum: thread (g, c) takes vec4 column c (c, c + 16, …) of the positions g, g + 4, …:
 *   the row of position g at each slot is loaded once for them, the others load their own where
 *   their slot differs. Slots are added in order, as the lanes kernel adds them.
 * So where the positions of a workgroup share their pool, each row is read once per POS
 * positions instead of POS times; where they share nothing, the kernel does the lanes kernel's
 * loads plus the reference's. Measured on a model-like read (61K positions, 50 slots, pools
 * changing every ~170 positions): on lavapipe about 2x faster than the lanes kernel; on an H200
 * 2.1x slower at 16 positions a workgroup, 1.2x at 8, equal at 4. A GPU hides the lanes
 * kernel's loads behind its many threads, and fewer, longer threads wait on theirs; the loads
 * saved were never what bound it there. Hence "auto".
 *
 * Needs vec4 rows (S a multiple of 4) of at most SQ_MAX vec4s and at most 128 slots; the lanes
 * kernel serves the rest, and the backward.
 */
import { ENTRY_ARGS, header, LINEAR_WG, pu } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

/** Threads of the shared-rows kernel. */
const WG = 64;
/** Threads a position in the softmax. */
const SOFT = 4;
/** Threads a column group in the weighted sum (vec4 columns c, c + COLS, …). */
const COLS = 16;
/** The widest row (in vec4s) the kernel stages. */
export const SQ_MAX = 32;
/** The most slots it holds. */
export const SHARED_MAX_SLOTS = 128;

/** Workgroup bytes of the shared-rows kernel for POS positions, CH slots and rows of SQ vec4s. */
export const sharedReadBytes = (POS: number, CH: number, SQ: number): number => 16 * POS * SQ + 8 * POS * CH + 4 * WG;

/**
 * The layout for P slots and S4 vec4s under `limit` bytes of workgroup memory (positions: at most
 * maxPositions, 4, 8 or 16, halved while the arrays do not fit), or null where the kernel does not apply.
 */
export function sharedReadLayout(P: number, S4: number, limit: number, maxPositions = 16): { POS: number; CH: number; SQ: number } | null {
  if (P > SHARED_MAX_SLOTS || S4 > SQ_MAX) return null;
  const CH = P <= 64 ? 64 : 128, SQ = S4 <= 16 ? 16 : 32;
  let POS = maxPositions;
  while (POS > 4 && sharedReadBytes(POS, CH, SQ) > limit) POS /= 2;
  return sharedReadBytes(POS, CH, SQ) <= limit ? { POS, CH, SQ } : null;
}

/** The pool-read kernels' first lines: the workgroup index, then N, P, S, rows and scale from the param words (both kernels' params). */
export function attnReadPrologue(): string {
  return `${LINEAR_WG}
  let N = ${pu(0)};
  let P = ${pu(1)};
  let S = ${pu(2)};
  let rows = ${pu(3)};
  let scale = bitcast<f32>(${pu(4)});`;
}

/** params: positions N, slots P, S (vec4s), rows M, scale (f32 bits). */
export function attnReadSharedWgsl(POS: number, CH: number, SQ: number): string {
  const ps = [...Array(POS).keys()];
  const NP = POS / 4; // positions per column group
  const gs = [...Array(NP).keys()];
  const U = [0, 1, 2, 3];
  // one vec4 term of a dot product, element by element (indexedDot's order)
  const dot = (acc: string, a: string, b: string) => `{ let a = ${a}; ${acc} = ${acc} + a.x * ${b}.x; ${acc} = ${acc} + a.y * ${b}.y; ${acc} = ${acc} + a.z * ${b}.z; ${acc} = ${acc} + a.w * ${b}.w; }`;
  return `${header(5, [{ name: "out", type: "vec4<f32>", write: true }, { name: "q", type: "vec4<f32>" }, { name: "keys", type: "vec4<f32>" }, { name: "vals", type: "vec4<f32>" }, { name: "idx", type: "i32" }, { name: "valid", type: "f32" }])}
${WGSL_MATH}
var<workgroup> qsh: array<vec4<f32>, ${POS * SQ}>;
var<workgroup> zsh: array<f32, ${POS * CH}>;
var<workgroup> rsh: array<i32, ${POS * CH}>;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${attnReadPrologue()}
  let n0 = wg * ${POS}u;
  // 0. the positions' q rows and index rows (past the end: zeros and empty slots)
  for (var i = lid; i < ${POS}u * S; i += ${WG}u) {
    let p = i / S;
    var v = vec4<f32>(0.0f);
    if (n0 + p < N) { v = q[n0 * S + i]; }
    qsh[p * ${SQ}u + i % S] = v;
  }
  for (var i = lid; i < ${POS}u * P; i += ${WG}u) {
    let p = i / P;
    var r = -1i;
    if (n0 + p < N) {
      let x = idx[n0 * P + i];
      if (x >= 0i && u32(x) < rows) { r = x; }
    }
    rsh[p * ${CH}u + i % P] = r;
  }
  workgroupBarrier();
  // 1. the logits (scale · q·K, −1e9 where masked); position 0's row at each slot loaded once
  for (var s = lid; s < P; s += ${WG}u) {
    let rf = rsh[s];
    let ofs = u32(max(rf, 0i)) * S;
    ${ps.map((p) => `let r${p} = rsh[${p * CH}u + s]; let own${p} = r${p} >= 0i && r${p} != rf; let o${p} = u32(max(r${p}, 0i)) * S; var d${p} = 0.0f;`).join("\n    ")}
    // four vec4s of the reference row in flight, then each position's terms in element order
    var j = 0u;
    for (; j + 4u <= S; j += 4u) {
      ${U.map((u) => `let kf${u} = keys[ofs + j + ${u}u];`).join(" ")}
      ${ps.map((p) => `if (own${p}) { ${U.map((u) => `let k${u} = keys[o${p} + j + ${u}u];`).join(" ")} ${U.map((u) => `${dot(`d${p}`, `qsh[${p * SQ}u + j + ${u}u]`, `k${u}`)}`).join(" ")} } else { ${U.map((u) => `${dot(`d${p}`, `qsh[${p * SQ}u + j + ${u}u]`, `kf${u}`)}`).join(" ")} }`).join("\n      ")}
    }
    for (; j < S; j++) {
      let kf = keys[ofs + j];
      ${ps.map((p) => `{ var k = kf; if (own${p}) { k = keys[o${p} + j]; } ${dot(`d${p}`, `qsh[${p * SQ}u + j]`, "k")} }`).join("\n      ")}
    }
    ${ps.map((p) => `if (n0 + ${p}u < N) { var z = -1e9f; if (valid[(n0 + ${p}u) * P + s] != 0.0f) { z = select(0.0f, d${p}, r${p} >= 0i) * scale; } zsh[${p * CH}u + s] = z; }`).join("\n    ")}
  }
  workgroupBarrier();
  // 2. softmax over the slots, ${SOFT} threads a position; w = softmax ⊙ valid, slots of weight 0 leave the sum
  let sp = lid / ${SOFT}u;
  let sub = lid % ${SOFT}u;
  let live = sp < ${POS}u && n0 + sp < N;
  let zb = sp * ${CH}u;
  var mx = -m_inf();
  if (live) {
    for (var s = sub; s < P; s += ${SOFT}u) { let z = zsh[zb + s]; if (z > mx) { mx = z; } }
  }
  red[lid] = mx;
  workgroupBarrier();
  let rb = sp * ${SOFT}u;
  var m = -m_inf();
  for (var t = 0u; t < ${SOFT}u; t++) { let v = red[min(rb + t, ${WG - 1}u)]; if (v > m) { m = v; } }
  // as the GPU softmax: no finite max (every logit ±∞ or NaN) → subtract 0
  if (!m_isfinite(m)) { m = 0.0f; }
  workgroupBarrier();
  var sum = 0.0f;
  if (live) {
    for (var s = sub; s < P; s += ${SOFT}u) { let x = m_exp(zsh[zb + s] - m); zsh[zb + s] = x; sum += x; }
  }
  red[lid] = sum;
  workgroupBarrier();
  var ssum = 0.0f;
  for (var t = 0u; t < ${SOFT}u; t++) { ssum += red[min(rb + t, ${WG - 1}u)]; }
  let inv = 1.0f / ssum;
  if (live) {
    for (var s = sub; s < P; s += ${SOFT}u) {
      let w = (zsh[zb + s] * inv) * valid[(n0 + sp) * P + s];
      zsh[zb + s] = w;
      if (w == 0.0f) { rsh[zb + s] = -1i; }
    }
  }
  workgroupBarrier();
  // 3. out = Σ_p w[p] · V[idx[p]]: column group g's reference row at each slot loaded once
  let g = lid / ${COLS}u;
  for (var c = lid % ${COLS}u; c < S; c += ${COLS}u) {
    ${gs.map((i) => `var acc${i} = vec4<f32>(0.0f);`).join(" ")}
    // four slots' rows in flight, then their terms in slot order
    var s = 0u;
    for (; s + 4u <= P; s += 4u) {
      ${U.map((u) => `let rr${u} = rsh[g * ${CH}u + s + ${u}u]; let v${u} = vals[u32(max(rr${u}, 0i)) * S + c];`).join("\n      ")}
      ${gs.map((i) => U.map((u) => `{ let b = (g + ${4 * i}u) * ${CH}u + s + ${u}u; let r = rsh[b]; if (r >= 0i) { var x = v${u}; if (r != rr${u}) { x = vals[u32(r) * S + c]; } acc${i} = acc${i} + zsh[b] * x; } }`).join(" ")).join("\n      ")}
    }
    for (; s < P; s++) {
      let rr = rsh[g * ${CH}u + s];
      let v = vals[u32(max(rr, 0i)) * S + c];
      ${gs.map((i) => `{ let b = (g + ${4 * i}u) * ${CH}u + s; let r = rsh[b]; if (r >= 0i) { var x = v; if (r != rr) { x = vals[u32(r) * S + c]; } acc${i} = acc${i} + zsh[b] * x; } }`).join("\n      ")}
    }
    ${gs.map((i) => `if (n0 + g + ${4 * i}u < N) { out[(n0 + g + ${4 * i}u) * S + c] = acc${i}; }`).join("\n    ")}
  }
}
`;
}
