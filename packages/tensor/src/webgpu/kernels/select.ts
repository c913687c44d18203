/**
 * causalSelect: mask, score [B, L] → out [B, L, k] (i32), the positions j < t a bounded memory
 * of k slots holds at t ("last": FIFO; "top": evicts the lowest score, the oldest among equals),
 * increasing, −1 in unused slots. See cpu/select.ts for the reference.
 *
 * The memory's history is sequential, so one thread walks each row b along L. The held list
 * lives in the output itself: row t is row t−1 updated with position t−1, read back by the same
 * thread. Parallel over B only (a gap for B = 1 with long L; the "last" mode could be made
 * parallel with a prefix count, "top" cannot easily).
 */
import type { KernelArg, PrimParams } from "../../backend.ts";
import type { DType } from "../../dtype.ts";
import { ceilDiv, ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

const WG = 64;

/** params: B, L, k, mode (0 last, 1 top): one shader for both modes. */
function selectWgsl(maskType: DType, scoreType: DType): string {
  const set = maskType === "f32" ? "(bitcast<u32>(mask[j]) & 0x7fffffffu) != 0u" : "mask[j] != 0i";
  const update = `if (${pu(3)} == 0u) {
        for (var q = 1u; q < k; q++) { out[o + q - 1u] = out[p + q]; }
        out[o + k - 1u] = i32(t - 1u);
      } else {
        var worst = -1i;
        var ws = score[j];
        for (var q = 0u; q < k; q++) {
          let v = score[b * L + u32(out[p + q])];
          if (v < ws || (v == ws && worst == -1i)) { ws = v; worst = i32(q); }
        }
        if (worst < 0i) {
          for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
        } else {
          var w = 0u;
          for (var q = 0u; q < k; q++) { if (i32(q) != worst) { out[o + w] = out[p + q]; w++; } }
          out[o + k - 1u] = i32(t - 1u);
        }
      }`;
  return `${header(4, [{ name: "out", type: "i32", write: true }, { name: "mask", type: maskType }, { name: "score", type: scoreType }])}
@compute @workgroup_size(${WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}
  let b = wg * ${WG}u + lid;
  let B = ${pu(0)}; let L = ${pu(1)}; let k = ${pu(2)};
  if (b >= B) { return; }
  for (var q = 0u; q < k; q++) { out[b * L * k + q] = -1i; }
  var cnt = 0u;
  for (var t = 1u; t < L; t++) {
    let o = (b * L + t) * k;
    let p = o - k;
    let j = b * L + t - 1u;
    if (!(${set})) {
      for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
    } else if (cnt < k) {
      for (var q = 0u; q < k; q++) { out[o + q] = out[p + q]; }
      out[o + cnt] = i32(t - 1u);
      cnt++;
    } else {
      ${update}
    }
  }
}`;
}

export function causalSelectKernel(ctx: GpuCtx, [mask, score]: readonly KernelArg[], out: KernelArg, p: PrimParams["causalSelect"]): void {
  const [B, L] = mask.shape;
  if (B * L * p.k === 0) return;
  ctx.dispatch({
    label: "causalSelect", key: `causalSelect:${mask.dtype}${score.dtype}`,
    wgsl: () => selectWgsl(mask.dtype, score.dtype),
    buffers: [ctx.ref(out, "causalSelect"), ctx.ref(mask, "causalSelect"), ctx.ref(score, "causalSelect")],
    params: new ParamWords().u(B).u(L).u(p.k).u(p.mode === "last" ? 0 : 1).words(),
    groups: grid(ceilDiv(B, WG), ctx.limits.maxComputeWorkgroupsPerDimension),
  });
}
