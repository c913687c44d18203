/**
 * WebGPU kernels of the fused pool read (ops/attention-fused.ts): attnRead (logits, masked
 * softmax and weighted sum of each position in one dispatch) and attnReadGrad (the logits and
 * softmax again, the cotangent of the value read, softmax's VJP, and dq, in one dispatch).
 *
 * Layout: a workgroup serves POS positions (4 by default: 64 threads; attnReadTuning) with
 * LANES = 16 threads each.
 * - Slots are spread over a position's lanes (slot p on lane p mod 16). A lane computes its slots'
 *   dot products whole, reading the table row as vec4s where S is a multiple of 4, the terms
 *   added in indexedDot's order (so a logit has indexedDot's bits wherever the compiler does not
 *   contract differently); the logits, and backward the value-read cotangents, go to workgroup
 *   memory. Arrays indexed by a loop variable live there, never in function scope (Deno's
 *   wgpu/naga ran such kernels about 16x slower).
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
 * 256 up to ATTN_READ_MAX_SLOTS (ops/attention-fused.ts; the shape rule refuses more): with 4
 * positions, about 4.5 KB forward and 6.9 KB backward at CH = 128 (12.8 KB backward at 256, under
 * WebGPU's 16 KB minimum).
 *
 * attnReadGrad binds 9 storage buffers. On a device that allows only 8 (WebGPU's default), it
 * runs as two dispatches instead: dq and dl (8 buffers), then the weights through attnRead's
 * shader in its "weights" mode.
 *
 * Index −1 is an empty slot; a shader cannot throw, so any other index outside [0, M) (an error
 * on the CPU) is treated as empty too, as indexedDot and indexedSum do.
 */
import type { KernelArg, MultiPrimParams, PrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx, type StorageDecl } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";

const LANES = 16;

/**
 * Positions per workgroup (1, 2, 4, 8 or 16; default 4, i.e. 64 threads). More positions share
 * one SM's L1 for the pool rows that neighbouring positions both read, at the cost of larger
 * workgroups; a launch whose workgroup arrays would exceed the device's workgroup storage uses
 * the largest count that fits. A knob for benchmarks (the tests also run 2, and 16, which lavapipe shrinks to 8 for 256 slots).
 */
export const attnReadTuning = { positions: 4 };

/** Workgroup-memory bytes of a shader: its slot arrays and its reduction arrays. */
const sharedBytes = (grad: boolean, POS: number, CH: number) => (grad ? 12 : 8) * POS * CH + (grad ? 3 : 2) * 4 * LANES * POS;
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
 */
function wgsl(mode: Mode, vec: boolean, CH: number, POS: number): string {
  const WG = LANES * POS;
  const T = vec ? "vec4<f32>" : "f32";
  const grad = mode === "grad" || mode === "gradNoW";
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
  return `${header(5, bufs)}
${WGSL_MATH}
var<workgroup> zsh: array<f32, ${POS * CH}>;
var<workgroup> rsh: array<i32, ${POS * CH}>;
${grad ? `var<workgroup> dsh: array<f32, ${POS * CH}>;` : ""}
var<workgroup> red0: array<f32, ${WG}>;
var<workgroup> red1: array<f32, ${WG}>;
${grad ? `var<workgroup> red2: array<f32, ${WG}>;` : ""}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let N = ${pu(0)};
  let P = ${pu(1)};
  let S = ${pu(2)};
  let rows = ${pu(3)};
  let scale = bitcast<f32>(${pu(4)});
  let pos = lid / ${LANES}u;
  let lane = lid % ${LANES}u;
  let n = wg * ${POS}u + pos;
  let live = n < N;
  let base = pos * ${CH}u;
  let eo = n * P;
  let row = n * S;
  // 1. the logits of my slots (scale · q·K, −1e9 where masked)${grad ? " and the value reads' cotangents g·V" : ""}; their max
  var mx = -m_inf();
  ${mySlots(`let r = idx[e];
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
      if (z > mx) { mx = z; }`)}
  red0[lid] = mx;
  workgroupBarrier();
  var m = -m_inf();
  for (var k = 0u; k < ${LANES}u; k++) { let v = red0[pos * ${LANES}u + k]; if (v > m) { m = v; } }
  // as the GPU softmax: no finite max (every logit ±∞ or NaN) → subtract 0
  if (!m_isfinite(m)) { m = 0.0f; }
  // 2. the exponentials and their sum
  var s = 0.0f;
  ${mySlots("let x = m_exp(zsh[sp] - m); zsh[sp] = x; s += x;")}
  red1[lid] = s;
  workgroupBarrier();
  var ssum = 0.0f;
  for (var k = 0u; k < ${LANES}u; k++) { ssum += red1[pos * ${LANES}u + k]; }
  let inv = 1.0f / ssum;
  ${grad ? `// 3. y = softmax, dy = (g·V) ⊙ valid, t = Σ dy·y
  var t = 0.0f;
  ${mySlots("let y = zsh[sp] * inv; let dy = dsh[sp] * valid[e]; zsh[sp] = y; dsh[sp] = dy; t += dy * y;")}
  red2[lid] = t;
  workgroupBarrier();
  var tsum = 0.0f;
  for (var k = 0u; k < ${LANES}u; k++) { tsum += red2[pos * ${LANES}u + k]; }
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
  while (POS > 1 && sharedBytes(grad, POS, CH) > ctx.limits.maxComputeWorkgroupStorageSize) POS /= 2;
  const tables = mode === "w" ? [q, keys] : [q, keys, values];
  const buffers = [...outs, ...tables, idx, valid, ...(g ? [g] : [])].map((a) => ctx.ref(a, op));
  ctx.dispatch({
    label: op, key: `attnRead:${mode}:${vec ? "vec4" : "f32"}:${CH}:${POS}`, wgsl: () => wgsl(mode, vec, CH, POS),
    buffers,
    params: new ParamWords().u(N).u(P).u(vec ? S / 4 : S).u(M).f(scale).words(),
    groups: grid(ceilDiv(N, POS), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}

/** attnRead: inputs [q, keys, values, idx, valid] → out [...N, S]. */
export function attnReadKernel(ctx: GpuCtx, ins: readonly KernelArg[], out: KernelArg, { scale }: PrimParams["attnRead"]): void {
  if (prod(out.shape) === 0) return;
  launch(ctx, "attnRead", "out", ins, [out], scale);
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
