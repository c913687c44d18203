/**
 * attnRead's forward as one thread a position with an online softmax, loads issued ahead
 * (attnReadTuning.forward "online"; "auto" takes it on a GPU for reads of
 * ONLINE_AUTO_MIN_POSITIONS positions or more).
 *
 * The model's positions read the pool held before them, which changes only where a note enters,
 * so neighbouring positions read the same row at the same slot (or, after a pool dropped a note,
 * its neighbour). Here the 32 threads of a warp take 32 neighbouring positions at the same slot,
 * so one load instruction fetches one row's 16 bytes for all of them (the lanes kernel,
 * attention.ts, spends a load per position). Nothing is compared: the cache does the sharing, so
 * any index is served and only the speed depends on how much the positions share.
 *
 * Each thread holds its q and its running sum in registers and walks its slots in order, its key
 * row loaded one slot ahead (an H200 spent most of the kernel waiting on that load when each slot
 * loaded its own): the logit z = q·K[row] (summed element by element, as indexedDot does) ·
 * scale (0 for a valid empty slot), then the online softmax: where z raises the running max m,
 * the running sum and the denominator are scaled by exp(m − z), and the row's value enters with
 * weight exp(z − m); out = sum / denominator.
 *
 * Measured on an H200 (packages/bench/src/webgpu-attn-read.ts: 61440 positions, rows of 64
 * floats, pools changing every ~170 positions; GPU time a call): 50 slots 114 µs, the lanes kernel
 * 170; 100 slots 201 against 300. Tried there and slower (scratch programs, 50 slots, 124 µs for
 * this kernel): the slots of a position split over 2 or 4 threads (151 and 184 µs: more warps,
 * each loading more index rows), the index and valid rows staged through workgroup memory 8 or 16
 * slots at a time (170-174 µs), the key row not loaded ahead (182-199 µs), and a kernel that staged
 * each workgroup's pool rows in workgroup memory (3.4x slower than the lanes kernel: 26-35 KB a
 * workgroup of 16 positions).
 *
 * Masked slots (valid 0) stay out of the loop and are counted: the composite gives them the logit
 * −1e9, so at the end the denominator takes count · exp(−1e9 − M) with M = max(m, −1e9) (0 wherever
 * a valid logit is above −1e9 + 104; where all valid logits are below −1e9 the masked slots carry
 * the softmax, as in the composite, and the read is ~0; a position with no valid slot reads 0). A
 * slot of weight exactly 0 adds nothing (as in the lanes kernel: a 0 weight never meets an infinite
 * value). f32 rounding apart from the lanes kernel, which divides each weight before it adds.
 *
 * Needs vec4 rows of at most ONLINE_SQ_MAX vec4s (registers); the lanes kernel serves the rest,
 * and the backward.
 *
 * attnReadParts (indexedAttentionParts) runs the same loop over one or two reads, one after the
 * other with the same running max, sum and denominator, each from its own table and index (no
 * joined copy), a slot masked iff its index is negative (no valid buffer to read); rows of up to
 * 64 floats, as vec4s or as floats.
 */
import { ENTRY_ARGS, header, pu } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";
import { attnReadPrologue } from "./attention-shared.ts";

/** Threads (positions) of a workgroup (32, 128 and 256 measured the same or up to 3% slower on an H200). */
export const ONLINE_WG = 64;
/** The widest row (in vec4s) a thread holds. */
export const ONLINE_SQ_MAX = 16;

/**
 * The kernel over one read with its valid mask (attnRead: `parts` 0), or over 1..2 reads whose
 * slots are valid iff their index is not −1 (attnReadParts: `parts` reads, walked one after the
 * other with one running max, sum and denominator). Rows of `n` vec4s (`vec`), or of `n` floats.
 * With `lanes` 4 or 8 (attnReadParts, vec4 rows whose n they divide; the device's subgroups at
 * least that wide), that many neighbouring threads of a subgroup share a position: lane r holds
 * the row's vec4s r, r + lanes, … of q, of the key row and of the sum (a quarter or an eighth of
 * the registers, so more warps in flight to wait on the loads), and the lanes' partial dot
 * products meet by subgroupShuffleXor, the pairs added symmetrically so that every lane holds the
 * same logit (the same bits) and takes the same branches. The lanes of a position are assumed to
 * be neighbouring invocations of one subgroup (1-D workgroups of a multiple of the subgroup size:
 * NVIDIA, AMD, Intel and llvmpipe lay them out so); the tests and the attn-read benchmark compare
 * the results with the CPU's. With `kv` (attnReadParts where each read's keys and values are one
 * buffer, as MemMamba's notes are) the key row in registers is added as the value row: each row is
 * loaded once, into a second set of registers a slot ahead.
 *
 * Measured on an H200 (webgpu-attn-read, 61440 positions, rows of 64 floats, µs a call, pools
 * changing every ~170 positions): 50 slots, this kernel (attnRead) 124.8; attnReadParts a thread a
 * position 110.6, 4 lanes 91.7, with kv 82.9 (8 lanes 127: each lane's 2 vec4s cost less than
 * the third shuffle); 100 slots 214.3, 172.9, 155.3. Loading the index two slots ahead gained 5%
 * without kv and nothing with it (not kept).
 * params: positions N, slots P, n, rows M, scale (f32 bits); attnReadParts adds P and M of each
 * further read.
 */
export function attnReadOnlineWgsl(n: number, parts = 0, vec = true, lanes = 1, kv = false): string {
  if (lanes !== 1 && (!vec || parts === 0 || n % lanes !== 0 || (lanes !== 4 && lanes !== 8))) {
    throw new RangeError(`attnReadOnlineWgsl: ${lanes} lanes a position need attnReadParts' vec4 rows of a multiple of ${lanes} vec4s (got ${n}${vec ? "" : " floats"})`);
  }
  const T = vec ? "vec4<f32>" : "f32";
  const js = [...Array(n / lanes).keys()];
  const each = (f: (j: number) => string) => js.map(f).join(" ");
  // a thread's element j: the row's element r + lanes·j (r folded into the row offsets)
  const el = (j: number) => `${lanes * j}u`;
  const terms = (j: number) => (vec ? ["x", "y", "z", "w"].map((c) => `d = d + q${j}.${c} * k${j}.${c};`).join(" ") : `d = d + q${j} * k${j};`);
  const reads = parts === 0 ? [""] : [...Array(parts).keys()].map((g) => String(g));
  const bufs = [{ name: "out", type: T, write: true }, { name: "q", type: T }];
  for (const g of reads) bufs.push({ name: `keys${g}`, type: T }, { name: `vals${g}`, type: T }, { name: `idx${g}`, type: "i32" });
  if (parts === 0) bufs.push({ name: "valid", type: "f32" });
  const extra = reads.slice(1).map((g, i) => `let P${g} = ${pu(5 + 2 * i)}; let rows${g} = ${pu(6 + 2 * i)};`).join(" ");
  const lane = lanes > 1 ? " + r" : "";
  // the lanes' partial sums, pairwise: (d0 + d1) + (d2 + d3) on every lane
  const meet = [1, 2, 4].filter((x) => x < lanes).map((x) => `d = d + subgroupShuffleXor(d, ${x}u);`).join(" ");
  // one read's slots: the row of slot 0, then each slot: the logit from the row loaded a slot ago,
  // the next slot's row, the softmax step
  const walk = (g: string) => {
    const P = g === "" || g === "0" ? "P" : `P${g}`, rows = g === "" || g === "0" ? "rows" : `rows${g}`;
    const isValid = parts === 0 ? `valid[eo${g} + s] != 0.0f` : "vc";
    return `{
    let eo${g} = pos * ${P};
    let x0 = idx${g}[eo${g}];
    var okc = x0 >= 0i && u32(x0) < ${rows};${parts === 0 ? "" : `
    var vc = x0 >= 0i;`}
    var oc = u32(select(0i, x0, okc)) * ${n}u${lane};
    ${each((j) => `k${j} = keys${g}[oc + ${el(j)}];`)}
    for (var s = 0u; s < ${P}; s++) {
      let x1 = idx${g}[eo${g} + min(s + 1u, ${P} - 1u)];
      let ok1 = s + 1u < ${P} && x1 >= 0i && u32(x1) < ${rows};
      let o1 = u32(select(0i, x1, ok1)) * ${n}u${lane};
      let ok = ${isValid};
      var d = 0.0f;
      ${each(terms)}
      ${meet}
      ${each((j) => kv ? `let kn${j} = keys${g}[o1 + ${el(j)}];` : `k${j} = keys${g}[o1 + ${el(j)}];`)}
      if (!ok) {
        masked = masked + 1.0f;
      } else {
        let z = select(0.0f, d, okc) * scale;
        if (z > m) {
          let c = m_exp(m - z);
          l = l * c;
          ${each((j) => `a${j} = a${j} * c;`)}
          m = z;
        }
        let p = m_exp(z - m);
        l = l + p;
        if (okc && p != 0.0f) {
          ${each((j) => kv ? `a${j} = a${j} + p * k${j};` : `a${j} = a${j} + p * vals${g}[oc + ${el(j)}];`)}
        }
      }
      ${kv ? each((j) => `k${j} = kn${j};`) : ""}
      okc = ok1;${parts === 0 ? "" : `
      vc = x1 >= 0i;`}
      oc = o1;
    }
  }`;
  };
  // a thread a position, or `lanes` threads a position (threads past the end run the last
  // position with their lanes, so a subgroup's shuffles see every lane, and store nothing)
  const position = lanes === 1
    ? `let pos = wg * ${ONLINE_WG}u + lid;
  if (pos >= N) { return; }`
    : `let t = wg * ${ONLINE_WG}u + lid;
  let r = t % ${lanes}u;
  let live = t / ${lanes}u < N;
  let pos = min(t / ${lanes}u, N - 1u);`;
  const store = each((j) => `out[qo + ${el(j)}] = a${j} * inv;`);
  return `${lanes > 1 ? "enable subgroups;\n" : ""}${header(5 + 2 * Math.max(0, parts - 1), bufs)}
${WGSL_MATH}
@compute @workgroup_size(${ONLINE_WG})
fn main(${ENTRY_ARGS}) {
  ${attnReadPrologue()}
  ${extra}
  ${position}
  let qo = pos * ${n}u${lane};
  ${each((j) => `let q${j} = q[qo + ${el(j)}];`)}
  ${each((j) => `var a${j} = ${T}(0.0f);`)}
  ${each((j) => `var k${j} = ${T}(0.0f);`)}
  var m = -m_inf();
  var l = 0.0f;
  var masked = 0.0f;
  ${reads.map(walk).join("\n  ")}
  if (masked > 0.0f && m < -1e9f + 104.0f) {
    // the masked slots' logits of −1e9 (see above)
    let mm = max(m, -1e9f);
    let c = m_exp(m - mm);
    l = l * c + masked * m_exp(-1e9f - mm);
    ${each((j) => `a${j} = a${j} * c;`)}
  }
  var inv = 0.0f;
  if (l != 0.0f) { inv = 1.0f / l; }
  ${lanes === 1 ? store : `if (live) { ${store} }`}
}
`;
}
