/**
 * WebGPU kernel of linearSoftplus (ops/linear-fused.ts): out = softplus(x·w + b) for x [M, r],
 * w [r, c], b [c], with few inputs r (Mamba's Δ projection: r = dt_rank, 16 for the small model).
 * No tiling: a thread per output (four adjacent columns as a vec4 where c is a multiple of 4) walks
 * k in order; x[row, k] is one address for all the threads of a row (a broadcast read) and w[k, ·]
 * a coalesced run that stays in cache. Where r is a multiple of 4 up to 64 the k loop is unrolled
 * and x read as vec4s (its own pipeline for each r). The bias is added and the softplus taken (the
 * elementwise kernel's softplus, unaryExpr) before the one store: the composite's matmul, add and
 * softplus each wrote and re-read the [M, c] output (at M = 61440, c = 512: 126 MB a pass).
 *
 * The sums run in k order from 0, as the tiled matmul's; a shader compiler may contract a
 * multiply-add differently in the two kernels, so the numbers equal the composite's up to that.
 * params: M·c4 (threads), r, c4 (columns in vec4s, or in floats on the scalar path).
 */
import type { KernelArg } from "../../backend.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, prod, pu, type GpuCtx } from "../context.ts";
import { WGSL_MATH } from "../wgsl-math.ts";
import { unaryExpr, unaryExprVec4 } from "./elementwise.ts";

const WG = 256;

/**
 * The shader; `R4` > 0: r = 4·R4 inputs as R4 vec4s of x, the k loop unrolled (the same sums in the
 * same order), else r a runtime count read a float at a time.
 */
function wgsl(vec: boolean, R4 = 0): string {
  const T = vec ? "vec4<f32>" : "f32";
  const act = vec ? unaryExprVec4("softplus", "v") : unaryExpr("softplus", "v");
  const sum = R4
    ? [...Array(R4).keys()].map((j) => `let x${j} = x[row * ${R4}u + ${j}u];\n  ${["x", "y", "z", "w"].map((e, q) => `acc = acc + x${j}.${e} * w[${4 * j + q}u * c + col];`).join(" ")}`).join("\n  ")
    : `for (var k = 0u; k < r; k++) { acc = acc + x[row * r + k] * w[k * c + col]; }`;
  return `${header(3, [{ name: "out", type: T, write: true }, { name: "x", type: R4 ? "vec4<f32>" : "f32" }, { name: "w", type: T }, { name: "b", type: T }])}
${WGSL_MATH}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let i = wg * ${WG}u + lid;
  if (i >= ${pu(0)}) { return; }
  let r = ${pu(1)}; let c = ${pu(2)};
  let row = i / c; let col = i % c;
  var acc = ${T}(0.0f);
  ${sum}
  let v = acc + b[col];
  out[i] = ${act};
}`;
}

const gens = [() => wgsl(false), () => wgsl(true)];
/** The unrolled shaders by R4 and vec (r = 4, 8, …, UNROLL_MAX). */
const unrolled = new Map<string, () => string>();
/** The most inputs the unrolled shader takes (Mamba's dt_rank: 16 for the small model, ⌈d / 16⌉ in general). */
const UNROLL_MAX = 64;

/** linearSoftplus: inputs [x [..., r], w [r, c], b [c]] → out [..., c]. */
export function linearSoftplusKernel(ctx: GpuCtx, [x, w, b]: readonly KernelArg[], out: KernelArg): void {
  const r = w.shape[0], c = w.shape[1];
  const M = c === 0 ? 0 : prod(out.shape) / c;
  if (M === 0) return;
  const vec = c % 4 === 0;
  const cols = vec ? c / 4 : c;
  const label = "linearSoftplus";
  const R4 = r % 4 === 0 && r > 0 && r <= UNROLL_MAX ? r / 4 : 0;
  const key = `${vec ? "linearSoftplus:v4" : "linearSoftplus"}${R4 ? `:r${r}` : ""}`;
  let gen = R4 ? unrolled.get(key) : gens[vec ? 1 : 0];
  if (!gen) unrolled.set(key, (gen = () => wgsl(vec, R4)));
  ctx.dispatch({
    label, key, wgsl: gen,
    buffers: [ctx.ref(out, label), ctx.ref(x, label), ctx.ref(w, label), ctx.ref(b, label)],
    params: new ParamWords().u(M * cols).u(r).u(cols).words(), groups: grid(ceilDiv(M * cols, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
