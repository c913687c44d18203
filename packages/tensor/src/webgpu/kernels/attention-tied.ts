/**
 * attnRead's forward where the keys and the values are one table (the model's pool reads: the
 * notes serve as both, W_k folded into the query and W_v into the fusion; attention.ts's
 * ReadValues "notes"). The two-phase kernel (attention.ts) reads every slot's row twice: for the
 * logit, then again for the weighted sum. Here each row is read once and used for both, with the
 * softmax kept online (a running max and sum per lane group, rescaled as larger logits arrive, as
 * flash attention does): on an H100 the read of a 60K-token chunk moves ~1.6 GB of rows from L2 a
 * call, which bounds it.
 *
 * Layout (as the two-phase kernel's "lanes" phase 1, G = 4): a workgroup serves POS positions,
 * 16 lanes each; lane (grp, jl) takes, in rounds of 16 slots, the slots grp, grp + 4, grp + 8,
 * grp + 12 of the round and of each row the vec4s jl, jl + 4, … (F = S / 16 of them, kept in
 * registers). The partial dots meet in workgroup memory; after a barrier every lane of a group
 * adds its slots' 4 partials (in jl order: the two-phase kernel's logits, bit for bit), updates
 * its group's running max m, sum l and weighted row sums, and a second barrier frees the
 * partials. At the end the 4 groups of a position are merged: out = Σ_g acc_g·e^(m_g − M) /
 * Σ_g l_g·e^(m_g − M), M the largest m_g.
 *
 * Semantics are the two-phase kernel's: logit scale · q·row where valid ≠ 0, else −1e9; empty or
 * out-of-range rows have a dot of 0 and add nothing to the sum of rows; weights softmax ⊙ valid; a
 * position with no slot reads 0. The sums are reassociated (online), so results differ from the
 * two-phase kernel by f32 rounding; where the logits are not finite the two differ (NaN either way
 * where a logit is ±∞).
 */
import { ENTRY_ARGS, header } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";
import { attnReadPrologue } from "./attention-shared.ts";

const LANES = 16;
/** Lanes per slot (one group), and slot groups per position. */
const G = 4;
const NG = LANES / G;
/** Slots a lane takes per round (their row loads in flight together). */
const ROUND_SLOTS = 4;
/** Slots a round, per position. */
const B = ROUND_SLOTS * NG;

/** Row width in vec4s that the tied kernel takes: a multiple of G, at most 8 vec4s a lane (S ≤ 128 floats). */
export function tiedRowOk(sv: number): boolean {
  return sv > 0 && sv % G === 0 && sv / G <= 8;
}

/** Workgroup-memory bytes of the tied kernel: rows per slot, the round's partial dots, the groups' m, l and row sums. */
export function tiedSharedBytes(POS: number, CH: number, SV: number): number {
  return 4 * POS * CH + 4 * POS * B * G + 16 * POS * NG * SV + 8 * POS * NG;
}

/** params: positions N, slots P, S (vec4s), rows M, scale (f32 bits); SV = S in vec4s (one pipeline each). */
export function attnReadTiedWgsl(POS: number, CH: number, SV: number): string {
  const F = SV / G;
  const fs = [...Array(F).keys()], ks = [...Array(ROUND_SLOTS).keys()];
  const dot = (acc: string, a: string, b: string) => `${acc} = ${acc} + ${a}.x * ${b}.x; ${acc} = ${acc} + ${a}.y * ${b}.y; ${acc} = ${acc} + ${a}.z * ${b}.z; ${acc} = ${acc} + ${a}.w * ${b}.w;`;
  return `${header(5, [{ name: "out", type: "vec4<f32>", write: true }, { name: "q", type: "vec4<f32>" }, { name: "tab", type: "vec4<f32>" }, { name: "idx", type: "i32" }, { name: "valid", type: "f32" }])}
${WGSL_MATH}
var<workgroup> rsh: array<i32, ${POS * CH}>;
var<workgroup> scr: array<f32, ${POS * B * G}>;
var<workgroup> accsh: array<vec4<f32>, ${POS * NG * SV}>;
var<workgroup> msh: array<f32, ${POS * NG}>;
var<workgroup> lsh: array<f32, ${POS * NG}>;
@compute @workgroup_size(${POS * LANES})
fn main(${ENTRY_ARGS}) {
  ${attnReadPrologue()}
  let pos = lid / ${LANES}u;
  let lane = lid % ${LANES}u;
  let n = wg * ${POS}u + pos;
  let live = n < N;
  let base = pos * ${CH}u;
  let eo = n * P;
  let row = select(0u, n * S, live);
  if (live) {
    for (var p = lane; p < P; p += ${LANES}u) {
      let r = idx[eo + p];
      rsh[base + p] = select(-1i, r, r >= 0i && u32(r) < rows);
    }
  }
  workgroupBarrier();
  let grp = lane / ${G}u;
  let jl = lane % ${G}u;
  let pb = pos * ${B * G}u;
  ${fs.map((f) => `let q${f} = q[row + jl + ${f * G}u];`).join(" ")}
  var mrun = -m_inf();
  var lrun = 0.0f;
  ${fs.map((f) => `var a${f} = vec4<f32>(0.0f);`).join(" ")}
  for (var blk = 0u; blk < P; blk += ${B}u) {
    ${ks.map((k) => `let s${k} = blk + ${k * NG}u + grp; let in${k} = live && s${k} < P; let r${k} = select(-1i, rsh[base + select(0u, s${k}, in${k})], in${k}); let o${k} = u32(max(r${k}, 0i)) * S + jl;`).join("\n    ")}
    ${ks.map((k) => fs.map((f) => `let x${k}_${f} = tab[o${k} + ${f * G}u];`).join(" ")).join("\n    ")}
    ${ks.map((k) => `var d${k} = 0.0f; ${fs.map((f) => dot(`d${k}`, `q${f}`, `x${k}_${f}`)).join(" ")}`).join("\n    ")}
    ${ks.map((k) => `scr[pb + jl * ${B}u + ${k * NG}u + grp] = select(0.0f, d${k}, r${k} >= 0i);`).join("\n    ")}
    workgroupBarrier();
    // this lane's slots' logits (every lane of the group the same), −∞ where the group has no slot
    ${ks.map((k) => `var z${k} = -m_inf(); var w${k} = 0.0f;
    if (in${k}) {
      var d = 0.0f;
      for (var i = 0u; i < ${G}u; i++) { d += scr[pb + i * ${B}u + ${k * NG}u + grp]; }
      let vl = valid[eo + s${k}];
      z${k} = select(-1e9f, d * scale, vl != 0.0f);
      w${k} = select(0.0f, vl, r${k} >= 0i);
    }`).join("\n    ")}
    workgroupBarrier();
    if (in0) {
      var zm = z0;
      ${ks.slice(1).map((k) => `if (z${k} > zm) { zm = z${k}; }`).join(" ")}
      var mn = max(mrun, zm);
      if (!m_isfinite(mn)) { mn = 0.0f; }
      let al = m_exp(mrun - mn);
      lrun = lrun * al;
      ${fs.map((f) => `a${f} = a${f} * al;`).join(" ")}
      ${ks.map((k) => `if (in${k}) {
        let ex = m_exp(z${k} - mn);
        lrun += ex;
        let c = ex * w${k};
        if (c != 0.0f) { ${fs.map((f) => `a${f} = a${f} + c * x${k}_${f};`).join(" ")} }
      }`).join("\n      ")}
      mrun = mn;
    }
  }
  // merge the position's slot groups
  let gi = pos * ${NG}u + grp;
  if (jl == 0u) { msh[gi] = mrun; lsh[gi] = lrun; }
  ${fs.map((f) => `accsh[gi * ${SV}u + jl + ${f * G}u] = a${f};`).join(" ")}
  workgroupBarrier();
  if (live) {
    var mx = -m_inf();
    for (var g = 0u; g < ${NG}u; g++) { mx = max(mx, msh[pos * ${NG}u + g]); }
    for (var j = lane; j < ${SV}u; j += ${LANES}u) {
      var l = 0.0f;
      var o = vec4<f32>(0.0f);
      if (m_isfinite(mx)) {
        for (var g = 0u; g < ${NG}u; g++) {
          let c = m_exp(msh[pos * ${NG}u + g] - mx);
          l += lsh[pos * ${NG}u + g] * c;
          o = o + accsh[(pos * ${NG}u + g) * ${SV}u + j] * c;
        }
      }
      out[row + j] = select(vec4<f32>(0.0f), o * (1.0f / l), l > 0.0f);
    }
  }
}`;
}
