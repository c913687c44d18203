/**
 * WebGPU kernels of the fused pool read (ops/attention-fused.ts): attnRead (logits, masked
 * softmax and weighted sum of each position in one dispatch) and attnReadGrad (the logits and
 * softmax again, the cotangent of the value read, softmax's VJP, and dq, in one dispatch).
 *
 * Layout: a workgroup serves POS positions (4 by default: 64 threads; attnReadTuning) with
 * LANES = 16 threads each.
 * - Phase 1, the dot products (the logits; backward also the value reads' cotangents g·V), rows
 *   read as vec4s where S is a multiple of 4. By default (attnReadTuning.dots "lanes") G = 4
 *   lanes share a slot: lane jl of the four takes the row's elements jl, jl + 4, …, so one load
 *   instruction reads 64 contiguous bytes of each of 4 rows (the earlier layout read 16 bytes of
 *   each of 16 rows), and each lane holds 4 slots' loads in flight, the q (and g) element loaded
 *   once for the 4. The partial dots go to workgroup memory; after a barrier one lane a slot adds
 *   its G partials, and a second barrier frees the partials' space: 16 slots a round, 2 barriers
 *   a round (4 rounds for P = 50, 7 for 100) after one that publishes the rows. A dot's terms are
 *   added per lane (in order within the lane), then the lanes' sums in lane order: not indexedDot's
 *   order, which differs from it by f32 rounding (on lavapipe about as much as the fma contraction
 *   that already separated them). dots "slots" keeps the earlier layout for comparison: a lane
 *   computes whole dot products for slots p ≡ lane (mod 16), in indexedDot's order.
 *   The logits and cotangents go to workgroup memory, slot p of a position at p. Arrays indexed by
 *   a loop variable live there, never in function scope (Deno's wgpu/naga ran such kernels about
 *   16x slower).
 * - The softmax's max, sum and (backward) Σ dy·y: each lane reduces its own slots, then every
 *   lane adds the position's 16 partials from workgroup memory in lane order (the same result on
 *   every lane, no tree). The composite adds slots left to right instead: the sums differ by f32
 *   rounding only.
 * - The weighted sums (out forward, dq backward): lane j takes the row's vec4s j, j + 16, … (one
 *   coalesced 256-byte read per slot for S = 64), looping over the slots, 4 loads ahead of the
 *   adds. Slots whose weight is exactly 0 (masked, empty, or underflowed) are dropped before the
 *   loop: their row index in workgroup memory is set to −1.
 * - Barriers sit in uniform control flow: the threads of positions past the end (the last
 *   workgroup) run every phase with no slot and write nothing.
 *
 * Workgroup memory holds CH slots per position, CH = 128 for P ≤ 128 (the model: 50 or 100) and
 * 256 up to ATTN_READ_MAX_SLOTS (ops/attention-fused.ts; the shape rule refuses more), and a
 * scratch array per position (phase 1's partials, 256 bytes per dot product, later the
 * reductions' partials): with 4 positions, 5 KB forward and 8 KB backward at CH = 128 (14 KB
 * backward at 256, under WebGPU's 16 KB minimum; 16 positions of 128 slots fill 32 KB exactly).
 *
 * attnReadGrad binds 9 storage buffers. On a device that allows only 8 (WebGPU's default), it
 * runs as two dispatches instead: dq and dl (8 buffers), then the weights through attnRead's
 * shader in its "weights" mode.
 *
 * Index −1 is an empty slot; a shader cannot throw, so any other index outside [0, M) (an error
 * on the CPU) is treated as empty too, as indexedDot and indexedSum do.
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, ParamWords, prod, type GpuCtx, type StorageDecl } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";
import { attnReadPrologue, attnReadSharedWgsl, sharedReadLayout } from "./attention-shared.ts";
import { attnReadOnlineWgsl, ONLINE_SQ_MAX, ONLINE_WG } from "./attention-online.ts";

const LANES = 16;

/** The kernels' layout knobs, for benchmarks (the tests run each non-default value too). */
export const attnReadTuning: {
  /**
   * Positions per workgroup (1, 2, 4, 8 or 16; default 4, i.e. 64 threads). More positions share
   * one SM's L1 for the pool rows that neighbouring positions both read, at the cost of larger
   * workgroups; a launch whose workgroup arrays would exceed the device's workgroup storage uses
   * the largest count that fits (the tests also run 2, and 16, which lavapipe shrinks to 8 for 256 slots).
   */
  positions: number;
  /**
   * How phase 1 computes the dot products (the logits; backward also g·V). "lanes" (default):
   * `dotLanes` lanes share a slot's row, each lane a strided part of it, then one lane adds the
   * partials (coalesced reads). "slots": the earlier kernel, each lane a whole row per slot (slot
   * p on lane p mod 16; 16 rows a load instruction). Kept for comparison.
   */
  dots: "lanes" | "slots";
  /** Lanes per slot in "lanes" mode: 4 (default; 4 slots of a position a load, 64 bytes each), 8 or 16 (one row of 256 bytes). */
  dotLanes: number;
  /**
   * The forward read (attnRead): "online" runs one thread a position with an online softmax, so
   * a warp's neighbouring positions share each row load (attention-online.ts; vec4 rows of up to
   * 64 floats, else the lanes kernel); "shared" loads each row once per workgroup of positions
   * where neighbouring positions read the same rows (attention-shared.ts; vec4 rows of up to 128
   * floats, up to 128 slots, else the lanes kernel); "lanes" always takes the kernel above, with
   * the layout knobs above; "auto" (default) takes "online" on a GPU for reads of
   * ONLINE_AUTO_MIN_POSITIONS positions or more where it applies, "shared" on a software adapter
   * for reads of SHARED_AUTO_MIN_POSITIONS or more (lavapipe: about 2x faster than "lanes" on a
   * model-like read there), and "lanes" otherwise (on an H100/H200 the shared kernel with 16
   * positions a workgroup was 2x slower than "lanes", with 4 equal: its fewer threads wait on
   * their loads).
   */
  forward: "auto" | "online" | "shared" | "lanes";
  /** Positions per workgroup of the "shared" forward: 4, 8 or 16 (default; fewer where the workgroup memory needs it). */
  sharedPositions: number;
  /**
   * attnReadParts' threads a position: 1 (a thread a position, the online kernel), 4 or 8 (lanes
   * of a subgroup share a position and a dot product: where the device has subgroups at least that
   * wide and S is a multiple of 4 · lanes, else 1), or "auto" (default): 4 where it applies.
   */
  partsLanes: "auto" | 1 | 4 | 8;
  /** attnReadParts: where keys and values are one buffer, add the key row already in registers (default true), not a second load of it. */
  partsSharedRows: boolean;
} = { positions: 4, dots: "lanes", dotLanes: 4, forward: "auto", sharedPositions: 16, partsLanes: "auto", partsSharedRows: true };

/**
 * "auto" takes the shared-rows forward from this many positions on: below it the read is small
 * anyway, and a software adapter compiles the shared kernel's unrolled code slowly (Chromium's
 * SwiftShader spent most of a minute on it where a recurrent step reads one position).
 */
const SHARED_AUTO_MIN_POSITIONS = 4096;
/** "auto" takes the online forward from this many positions on (a recurrent step's few keep the lanes kernel). */
const ONLINE_AUTO_MIN_POSITIONS = 64;

/** Slots each lane takes per round of "lanes" phase 1 (its loads in flight at once). */
const ROUND_SLOTS = 4;
/** Phase 1's partial sums: one array of LANES · ROUND_SLOTS words per position and dot product. */
const PART = LANES * ROUND_SLOTS;
/**
 * Words per position of the scratch array: the reductions' partials (16 words each: 2 forward,
 * 3 backward) and, in "lanes" mode, phase 1's partial dots, which the reductions overwrite
 * once phase 1 is done (backward 128 words: 16 positions of 128 slots still fit 32 KB).
 */
const scratchWords = (grad: boolean, lanes: boolean) => (lanes ? (grad ? 2 : 1) * PART : (grad ? 3 : 2) * LANES);
/** Workgroup-memory bytes of a shader: its slot arrays and its scratch array. */
const sharedBytes = (grad: boolean, lanes: boolean, POS: number, CH: number) => (grad ? 12 : 8) * POS * CH + 4 * scratchWords(grad, lanes) * POS;
/** Slot capacities of the workgroup arrays (one pipeline each). */
const CAPACITIES = [128, 256];
/** Storage buffers of the one-dispatch attnReadGrad. */
const GRAD_BUFFERS = 9;

/** What a shader computes: the read (out), the weights only (w), or the VJP with or without writing w. */
type Mode = "out" | "w" | "grad" | "gradNoW";

/** The statements of one phase for the lane's slots p = lane, lane + 16, … < P (live positions only). */
const mySlots = (body: string) => `if (live) {
    for (var p = lane; p < P; p += ${LANES}u) {
      let e = eo + p;
      let sp = base + p;
      ${body}
    }
  }`;

/**
 * params: positions N, slots P, S (in vec4s where vec), rows M, scale (f32 bits).
 * G: lanes per slot of phase 1 ("lanes" mode), or 0 for "slots" mode.
 */
function wgsl(mode: Mode, vec: boolean, CH: number, POS: number, G: number): string {
  const WG = LANES * POS;
  const T = vec ? "vec4<f32>" : "f32";
  const grad = mode === "grad" || mode === "gradNoW";
  const W = scratchWords(grad, G > 0);
  // reduction i's word k of this position (i = 0 max, 1 sum, 2 Σ dy·y)
  const red = (i: number, k: string) => `scr[pos * ${W}u + ${i * LANES}u + ${k}]`;
  const bufs: StorageDecl[] = [];
  if (mode === "out") bufs.push({ name: "out", type: T, write: true });
  if (mode === "w") bufs.push({ name: "wo", type: "f32", write: true });
  if (grad) {
    bufs.push({ name: "dq", type: T, write: true });
    if (mode === "grad") bufs.push({ name: "wo", type: "f32", write: true });
    bufs.push({ name: "dlo", type: "f32", write: true });
  }
  bufs.push({ name: "q", type: T }, { name: "keys", type: T });
  if (mode !== "w") bufs.push({ name: "vals", type: T });
  bufs.push({ name: "idx", type: "i32" }, { name: "valid", type: "f32" });
  if (grad) bufs.push({ name: "g", type: T });
  // one term of a row dot product, in indexedDot's order
  const dotTerm = (acc: string, a: string, b: string) =>
    vec ? `${acc} = ${acc} + ${a}.x * ${b}.x; ${acc} = ${acc} + ${a}.y * ${b}.y; ${acc} = ${acc} + ${a}.z * ${b}.z; ${acc} = ${acc} + ${a}.w * ${b}.w;` : `${acc} = ${acc} + ${a} * ${b};`;
  // the weighted sum of table rows over all slots of the position, lane j on elements j, j + 16, …
  const weightedSum = (dst: string, wsh: string, tab: string) => `if (live) {
    for (var j = lane; j < S; j += ${LANES}u) {
      var acc = ${T}(0.0f);
      var p = 0u;
      for (; p + 4u <= P; p += 4u) {
        ${[0, 1, 2, 3].map((k) => `let r${k} = rsh[base + p + ${k}u];`).join(" ")}
        ${[0, 1, 2, 3].map((k) => `let v${k} = ${tab}[u32(max(r${k}, 0i)) * S + j];`).join(" ")}
        ${[0, 1, 2, 3].map((k) => `if (r${k} >= 0i) { acc = acc + ${wsh}[base + p + ${k}u] * v${k}; }`).join(" ")}
      }
      for (; p < P; p++) {
        let r = rsh[base + p];
        if (r >= 0i) { acc = acc + ${wsh}[base + p] * ${tab}[u32(r) * S + j]; }
      }
      ${dst}[row + j] = acc;
    }
  }`;
  // phase 1, "slots" mode: each lane its slots' whole dot products (slot p on lane p mod 16), in indexedDot's order
  const phaseSlots = mySlots(`let r = idx[e];
      let ok = r >= 0i && u32(r) < rows;
      var d = 0.0f;
      ${grad ? "var dg = 0.0f;" : ""}
      if (ok) {
        let to = u32(r) * S;
        for (var j = 0u; j < S; j++) {
          let a = q[row + j]; let b = keys[to + j];
          ${dotTerm("d", "a", "b")}
          ${grad ? `let c = g[row + j]; let u = vals[to + j];
          ${dotTerm("dg", "c", "u")}` : ""}
        }
      }
      var z = -1e9f;
      if (valid[e] != 0.0f) { z = d * scale; }
      zsh[sp] = z;
      ${grad ? "dsh[sp] = dg;" : ""}
      rsh[sp] = select(-1i, r, ok);
      if (z > mx) { mx = z; }`);
  // phase 1, "lanes" mode, in rounds of B slots: lane (grp, jl) of a position takes the round's
  // slots grp, grp + 16/G, … (ROUND_SLOTS of them, their loads in flight together) and of each row
  // the elements jl, jl + G, …, so G lanes read G adjacent elements of one row a load (64
  // contiguous bytes at G = 4) and one q (and g) element serves ROUND_SLOTS rows. The partials go
  // to scr ([jl][slot of the round]); after a barrier lane t adds slot t's G partials in jl order,
  // and a second barrier frees scr for the next round. Empty rows read row 0 (in range, as the
  // weighted sums do) and leave a partial 0.
  const NG = LANES / Math.max(G, 1), B = ROUND_SLOTS * NG, ks = [...Array(ROUND_SLOTS).keys()];
  const part = (k: number, which: number) => `scr[pb + ${which * PART}u + jl * ${B}u + ${k * NG}u + grp]`;
  const phaseLanes = `${mySlots("let r = idx[e]; rsh[sp] = select(-1i, r, r >= 0i && u32(r) < rows);")}
  workgroupBarrier();
  let grp = lane / ${G}u;
  let jl = lane % ${G}u;
  let pb = pos * ${W}u;
  for (var blk = 0u; blk < P; blk += ${B}u) {
    ${ks.map((k) => `let s${k} = blk + ${k * NG}u + grp; let r${k} = select(-1i, rsh[base + s${k}], live && s${k} < P); let o${k} = u32(max(r${k}, 0i)) * S;`).join("\n    ")}
    ${ks.map((k) => `var d${k} = 0.0f;${grad ? ` var c${k} = 0.0f;` : ""}`).join(" ")}
    if (live) {
      for (var j = jl; j < S; j += ${G}u) {
        let a = q[row + j];${grad ? " let c = g[row + j];" : ""}
        ${ks.map((k) => `let k${k} = keys[o${k} + j];${grad ? ` let v${k} = vals[o${k} + j];` : ""}`).join("\n        ")}
        ${ks.map((k) => dotTerm(`d${k}`, "a", `k${k}`) + (grad ? " " + dotTerm(`c${k}`, "c", `v${k}`) : "")).join("\n        ")}
      }
    }
    ${ks.map((k) => `${part(k, 0)} = select(0.0f, d${k}, r${k} >= 0i);` + (grad ? ` ${part(k, 1)} = select(0.0f, c${k}, r${k} >= 0i);` : "")).join("\n    ")}
    workgroupBarrier();
    let p = blk + lane;
    if (live && lane < ${B}u && p < P) {
      let e = eo + p;
      let sp = base + p;
      var d = 0.0f;${grad ? " var dg = 0.0f;" : ""}
      for (var k = 0u; k < ${G}u; k++) { d += scr[pb + k * ${B}u + lane];${grad ? ` dg += scr[pb + ${PART}u + k * ${B}u + lane];` : ""} }
      var z = -1e9f;
      if (valid[e] != 0.0f) { z = d * scale; }
      zsh[sp] = z;
      ${grad ? "dsh[sp] = dg;" : ""}
      if (z > mx) { mx = z; }
    }
    workgroupBarrier();
  }`;
  return `${header(5, bufs)}
${WGSL_MATH}
var<workgroup> zsh: array<f32, ${POS * CH}>;
var<workgroup> rsh: array<i32, ${POS * CH}>;
${grad ? `var<workgroup> dsh: array<f32, ${POS * CH}>;` : ""}
var<workgroup> scr: array<f32, ${POS * W}>;
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${attnReadPrologue()}
  let pos = lid / ${LANES}u;
  let lane = lid % ${LANES}u;
  let n = wg * ${POS}u + pos;
  let live = n < N;
  let base = pos * ${CH}u;
  let eo = n * P;
  let row = n * S;
  // 1. the logits (scale · q·K, −1e9 where masked)${grad ? " and the value reads' cotangents g·V" : ""}; their max
  var mx = -m_inf();
  ${G > 0 ? phaseLanes : phaseSlots}
  ${red(0, "lane")} = mx;
  workgroupBarrier();
  var m = -m_inf();
  for (var k = 0u; k < ${LANES}u; k++) { let v = ${red(0, "k")}; if (v > m) { m = v; } }
  // as the GPU softmax: no finite max (every logit ±∞ or NaN) → subtract 0
  if (!m_isfinite(m)) { m = 0.0f; }
  // 2. the exponentials and their sum
  var s = 0.0f;
  ${mySlots("let x = m_exp(zsh[sp] - m); zsh[sp] = x; s += x;")}
  ${red(1, "lane")} = s;
  workgroupBarrier();
  var ssum = 0.0f;
  for (var k = 0u; k < ${LANES}u; k++) { ssum += ${red(1, "k")}; }
  let inv = 1.0f / ssum;
  ${grad ? `// 3. y = softmax, dy = (g·V) ⊙ valid, t = Σ dy·y
  var t = 0.0f;
  ${mySlots("let y = zsh[sp] * inv; let dy = dsh[sp] * valid[e]; zsh[sp] = y; dsh[sp] = dy; t += dy * y;")}
  ${red(2, "lane")} = t;
  workgroupBarrier();
  var tsum = 0.0f;
  for (var k = 0u; k < ${LANES}u; k++) { tsum += ${red(2, "k")}; }
  // 4. dl = scale · where(valid, y ⊙ (dy − t), 0)${mode === "grad" ? ", w = y ⊙ valid" : ""}; slots of dl 0 leave dq's sum
  ${mySlots(`let y = zsh[sp];
      let vl = valid[e];
      var dx = 0.0f;
      if (vl != 0.0f) { dx = y * (dsh[sp] - tsum); }
      let dl = dx * scale;
      ${mode === "grad" ? "wo[e] = y * vl;" : ""}
      dlo[e] = dl;
      dsh[sp] = dl;
      if (dl == 0.0f) { rsh[sp] = -1i; }`)}
  workgroupBarrier();
  // 5. dq = Σ_p dl[p] · K[idx[p]]
  ${weightedSum("dq", "dsh", "keys")}` : `// 3. the weights w = softmax ⊙ valid; slots of weight 0 leave the sum
  ${mySlots(`let w = (zsh[sp] * inv) * valid[e];
      zsh[sp] = w;
      ${mode === "w" ? "wo[e] = w;" : ""}
      if (w == 0.0f) { rsh[sp] = -1i; }`)}
  ${mode === "out" ? `workgroupBarrier();
  // 4. out = Σ_p w[p] · V[idx[p]]
  ${weightedSum("out", "zsh", "vals")}` : ""}`}
}`;
}

/** The slot capacity of the workgroup arrays for P slots. */
function capacity(op: string, P: number): number {
  const CH = CAPACITIES.find((c) => P <= c);
  if (CH === undefined) throw new RangeError(`webgpu.${op}: ${P} slots, more than the kernel's ${CAPACITIES[CAPACITIES.length - 1]}`);
  return CH;
}

/** One dispatch of the shader for `mode` over every position. */
function launch(ctx: GpuCtx, op: string, mode: Mode, ins: readonly KernelArg[], outs: readonly KernelArg[], scale: number): void {
  const [q, keys, values, idx, valid, g] = ins;
  const S = keys.shape[1], M = keys.shape[0], P = idx.shape[idx.shape.length - 1];
  const N = prod(idx.shape) / P;
  const vec = S % 4 === 0, CH = capacity(op, P);
  const grad = mode === "grad" || mode === "gradNoW";
  let POS = attnReadTuning.positions;
  if (![1, 2, 4, 8, 16].includes(POS)) throw new RangeError(`webgpu.${op}: attnReadTuning.positions must be 1, 2, 4, 8 or 16, got ${POS}`);
  const { dots, dotLanes } = attnReadTuning;
  if (dots !== "lanes" && dots !== "slots") throw new RangeError(`webgpu.${op}: attnReadTuning.dots must be "lanes" or "slots", got ${JSON.stringify(dots)}`);
  if (![4, 8, 16].includes(dotLanes)) throw new RangeError(`webgpu.${op}: attnReadTuning.dotLanes must be 4, 8 or 16, got ${dotLanes}`);
  const G = dots === "lanes" ? dotLanes : 0;
  const { forward } = attnReadTuning;
  if (forward !== "auto" && forward !== "online" && forward !== "shared" && forward !== "lanes") throw new RangeError(`webgpu.${op}: attnReadTuning.forward must be "auto", "online", "shared" or "lanes", got ${JSON.stringify(forward)}`);
  const { sharedPositions } = attnReadTuning;
  if (![4, 8, 16].includes(sharedPositions)) throw new RangeError(`webgpu.${op}: attnReadTuning.sharedPositions must be 4, 8 or 16, got ${sharedPositions}`);
  // the kernels take the same buffers (the online and shared ones: mode "out" only) and the same params
  const tables = mode === "w" ? [q, keys] : [q, keys, values];
  const buffers = [...outs, ...tables, idx, valid, ...(g ? [g] : [])].map((a) => ctx.ref(a, op));
  const params = new ParamWords().u(N).u(P).u(vec ? S / 4 : S).u(M).f(scale).words();
  const maxDim = ctx.limits.maxComputeWorkgroupsPerDimension;
  const limit = ctx.limits.maxComputeWorkgroupStorageSize;
  const useOnline = forward === "online" || (forward === "auto" && ctx.software !== true && N >= ONLINE_AUTO_MIN_POSITIONS);
  if (mode === "out" && vec && P > 0 && S / 4 <= ONLINE_SQ_MAX && useOnline) {
    const S4 = S / 4;
    ctx.dispatch({ label: op, key: `attnRead:online:${S4}`, wgsl: () => attnReadOnlineWgsl(S4), buffers, params, groups: grid(ceilDiv(N, ONLINE_WG), maxDim) });
    return;
  }
  const useShared = forward === "shared" || (forward === "auto" && ctx.software === true && N >= SHARED_AUTO_MIN_POSITIONS);
  const shared = mode === "out" && vec && useShared ? sharedReadLayout(P, S / 4, limit, sharedPositions) : null;
  if (shared) {
    const { POS: SP, CH: SC, SQ } = shared;
    ctx.dispatch({
      label: op, key: `attnRead:shared:${SC}:${SP}:${SQ}`, wgsl: () => attnReadSharedWgsl(SP, SC, SQ), buffers, params, groups: grid(ceilDiv(N, SP), maxDim),
    });
    return;
  }
  while (POS > 1 && sharedBytes(grad, G > 0, POS, CH) > limit) POS /= 2;
  // the default layout keeps the short key; the others name themselves
  const variant = G === 4 ? "" : G === 0 ? ":slots" : `:lanes${G}`;
  ctx.dispatch({
    label: op, key: `attnRead:${mode}:${vec ? "vec4" : "f32"}:${CH}:${POS}${variant}`, wgsl: () => wgsl(mode, vec, CH, POS, G),
    buffers, params, groups: grid(ceilDiv(N, POS), maxDim),
  });
}

/** attnRead: inputs [q, keys, values, idx, valid] → out [...N, S]. */
export function attnReadKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, { scale }: PrimParams["attnRead"]): void {
  if (prod(out.shape) === 0) return;
  launch(ctx, "attnRead", "out", ins, [out], scale);
}

/**
 * attnReadParts: inputs [q, (keys, values, idx) per read] → out, the online kernel over the reads
 * one after the other (attention-online.ts; rows as vec4s where S is a multiple of 4, else as
 * floats; the op keeps S ≤ 64 and at most 2 reads, so 8 buffers), with 4 lanes of a subgroup a
 * position where the device has subgroups (attnReadTuning.partsLanes).
 */
export function attnReadPartsKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, { scale }: PrimParams["attnReadParts"]): void {
  if (prod(out.shape) === 0) return;
  const op = "attnReadParts";
  const S = ins[0].shape[ins[0].shape.length - 1], G = (ins.length - 1) / 3, N = prod(out.shape) / S;
  const vec = S % 4 === 0, n = vec ? S / 4 : S;
  const asked = attnReadTuning.partsLanes;
  if (asked !== "auto" && asked !== 1 && asked !== 4 && asked !== 8) throw new RangeError(`webgpu.${op}: attnReadTuning.partsLanes must be "auto", 1, 4 or 8, got ${JSON.stringify(asked)}`);
  const want = asked === "auto" ? 4 : asked;
  const lanes = want > 1 && vec && n % want === 0 && (ctx.subgroupMinSize ?? 0) >= want ? want : 1;
  // every read's keys and values one table (MemMamba reads its notes so): the key row in registers is
  // the value row too, no second load
  const kv = attnReadTuning.partsSharedRows && [...Array(G).keys()].every((g) => ins[1 + 3 * g].buf === ins[2 + 3 * g].buf);
  const slots = (g: number) => ins[3 + 3 * g].shape[ins[3 + 3 * g].shape.length - 1];
  const words = new ParamWords().u(N).u(slots(0)).u(n).u(ins[1].shape[0]).f(scale);
  for (let g = 1; g < G; g++) words.u(slots(g)).u(ins[1 + 3 * g].shape[0]);
  ctx.dispatch({
    label: op, key: `attnReadParts:${G}:${vec ? "v" : "s"}${n}${lanes > 1 ? `:sg${lanes}` : ""}${kv ? ":kv" : ""}`, wgsl: () => attnReadOnlineWgsl(n, G, vec, lanes, kv),
    buffers: [out, ...ins].map((a) => ctx.ref(a, op)), params: words.words(), groups: grid(ceilDiv(N * lanes, ONLINE_WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** attnReadGrad: inputs [q, keys, values, idx, valid, g] → [dq, w, dl]; one dispatch, or two on an 8-buffer device. */
export function attnReadGradKernel(ctx: GpuCtx, ins: readonly KernelArg[], [dq, w, dl]: readonly KernelArg[], { scale }: MultiPrimParams["attnReadGrad"]): void {
  if (prod(w.shape) === 0) return;
  if (ctx.limits.maxStorageBuffersPerShaderStage >= GRAD_BUFFERS) {
    launch(ctx, "attnReadGrad", "grad", ins, [dq, w, dl], scale);
  } else {
    launch(ctx, "attnReadGrad", "gradNoW", ins, [dq, dl], scale);
    launch(ctx, "attnReadGrad", "w", ins.slice(0, 5), [w], scale);
  }
}
