/**
 * WebGPU kernel of rmsNormScores (ops/linear-fused.ts): h = rmsNorm(x, gain) and two gated
 * scorers of h in one pass over the rows. MemMamba's Note Block normalised each layer's output in
 * one launch and read the result twice more, once per scorer (a [61440, 256] pass of ~30 µs each
 * on an H200).
 *
 * Layout: 16 threads a row, 4 rows a workgroup of 64; thread l of a row holds the row's vec4s l,
 * l + 16, … (at most NORM_SCORES_MAX_VEC4 / 16 of them) in registers. Σ x² from the 16 partials in
 * lane order (every thread of the row the same sum), then each thread writes its part of h =
 * (x · r) · gain, as rmsNorm's kernel rounds it, and adds its partial dots h · w1, h · w2; lane 0
 * adds the 16 partials of each in lane order and stores σ(dot + b) as the scorers' sigmoid, the
 * gate s1 > tau1 and the gated m2 · s2. The sums run in another order than rmsNorm's and the
 * row-dot kernel's: f32 rounding apart from the three launches.
 *
 * Rows that are no whole vec4s, rows of more than NORM_SCORES_MAX_VEC4 vec4s, and devices with
 * fewer than 10 storage buffers a stage run the three kernels instead (rmsNorm's row pass, then
 * linearSigmoidGate's row dot twice, its unused outputs in scratch buffers).
 */
import type { KernelArg, MultiPrimParams } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";
import { rowDotSigmoidInto } from "./matmul-untiled.ts";
import { rmsNormKernel } from "./nn.ts";

/** Threads a row, rows a workgroup. */
const LANES = 16, ROWS = 4;
/** The widest row (in vec4s) the fused shader holds: 8 vec4s a thread. */
export const NORM_SCORES_MAX_VEC4 = 8 * LANES;
/** Storage buffers the fused shader binds. */
const BUFFERS = 10;

function wgsl(U: number): string {
  const V = "vec4<f32>";
  const us = [...Array(U).keys()];
  const dot = (acc: string, x: string, y: string) => `${acc} += ${x}.x * ${y}.x; ${acc} += ${x}.y * ${y}.y; ${acc} += ${x}.z * ${y}.z; ${acc} += ${x}.w * ${y}.w;`;
  const bufs = [
    { name: "h", type: V, write: true }, { name: "s1", type: "f32", write: true }, { name: "m1", type: "f32", write: true }, { name: "g2", type: "f32", write: true },
    { name: "x", type: V }, { name: "gain", type: V }, { name: "w1", type: V }, { name: "b1", type: "f32" }, { name: "w2", type: V }, { name: "b2", type: "f32" },
  ];
  return `${header(5, bufs)}
${WGSL_MATH}
var<workgroup> ps: array<f32, ${LANES * ROWS}>;
var<workgroup> p1: array<f32, ${LANES * ROWS}>;
var<workgroup> p2: array<f32, ${LANES * ROWS}>;
@compute @workgroup_size(${LANES * ROWS})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let M = ${pu(0)}; let n4 = ${pu(1)}; let eps = bitcast<f32>(${pu(2)});
  let rr = lid / ${LANES}u;
  let l = lid % ${LANES}u;
  let row = wg * ${ROWS}u + rr;
  let live = row < M;
  let base = min(row, M - 1u) * n4;
  var s = 0.0f;
  ${us.map((u) => `let j${u} = l + ${u * LANES}u; let ok${u} = j${u} < n4;
  var a${u} = ${V}(0.0f);
  if (ok${u}) { a${u} = x[base + j${u}]; ${dot("s", `a${u}`, `a${u}`)} }`).join("\n  ")}
  ps[lid] = s;
  workgroupBarrier();
  var ss = 0.0f;
  for (var k = 0u; k < ${LANES}u; k++) { ss += ps[rr * ${LANES}u + k]; }
  let r = 1.0f / sqrt(ss / f32(n4 * 4u) + eps);
  var d1 = 0.0f; var d2 = 0.0f;
  ${us.map((u) => `if (ok${u}) {
    let hv = (a${u} * r) * gain[j${u}];
    if (live) { h[base + j${u}] = hv; }
    let wa = w1[j${u}]; let wb = w2[j${u}];
    ${dot("d1", "hv", "wa")}
    ${dot("d2", "hv", "wb")}
  }`).join("\n  ")}
  p1[lid] = d1; p2[lid] = d2;
  workgroupBarrier();
  if (l == 0u && live) {
    var e1 = 0.0f; var e2 = 0.0f;
    for (var k = 0u; k < ${LANES}u; k++) { e1 += p1[lid + k]; e2 += p2[lid + k]; }
    let sv1 = m_sigmoid(e1 + b1[0]);
    s1[row] = sv1;
    m1[row] = select(0.0f, 1.0f, sv1 > bitcast<f32>(${pu(3)}));
    let sv2 = m_sigmoid(e2 + b2[0]);
    g2[row] = select(0.0f, 1.0f, sv2 > bitcast<f32>(${pu(4)})) * sv2;
  }
}`;
}

const gens: (() => string)[] = [];

/** rmsNormScores: inputs [x, gain, w1, b1, w2, b2] → [h, s1, m1, m2 · s2] (one launch, or the three kernels). */
export function rmsNormScoresKernel(ctx: GpuCtx, ins: readonly KernelArg[], outs: readonly KernelArg[], p: MultiPrimParams["rmsNormScores"]): void {
  const [x, gain, w1, b1, w2, b2] = ins;
  const [h, s1, m1, g2] = outs;
  const n = x.shape[x.shape.length - 1];
  const M = prod(s1.shape);
  if (M === 0) return;
  const label = "rmsNormScores";
  if (n % 4 !== 0 || n === 0 || n / 4 > NORM_SCORES_MAX_VEC4 || ctx.limits.maxStorageBuffersPerShaderStage < BUFFERS) {
    rmsNormKernel(ctx, [x, gain], h, { eps: p.eps });
    // linearSigmoidGate's row dot on h, its unused outputs in scratch
    const scratch = [ctx.temp(4 * M), ctx.temp(4 * M), ctx.temp(4 * M)];
    rowDotSigmoidInto(ctx, "linearSigmoidGate", h, w1, b1, [ctx.ref(s1, label), ctx.ref(m1, label), scratch[0]], M, p.tau1);
    rowDotSigmoidInto(ctx, "linearSigmoidGate", h, w2, b2, [scratch[1], scratch[2], ctx.ref(g2, label)], M, p.tau2);
    for (const t of scratch) ctx.releaseTemp(t);
    return;
  }
  const U = Math.ceil(n / 4 / LANES);
  ctx.dispatch({
    label, key: `rmsNormScores:v4x${U}`, wgsl: (gens[U] ??= () => wgsl(U)),
    buffers: [h, s1, m1, g2, x, gain, w1, b1, w2, b2].map((a) => ctx.ref(a, label)),
    params: new ParamWords().u(M).u(n / 4).f(p.eps).f(p.tau1).f(p.tau2).words(), groups: grid(ceilDiv(M, ROWS), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
