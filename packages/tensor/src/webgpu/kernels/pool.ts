/**
 * poolInsert on the GPU (ops/pool.ts; the CPU reference is cpu/select.ts): two launches, a
 * workgroup a pool, in place of the composite's ~40. Both work out the row's numbers from its
 * scores and valid flags (P reads each, P being a pool's few dozen slots): count (an f32 sum of
 * the 0/1 flags: exact), full, the lowest score's first slot ("priority"), the slot that leaves,
 * whether the note is accepted and the newcomer's slot. Then
 * - launch 1 (8 storage buffers) writes scores', valid', accepted and evicted;
 * - launch 2 (7) copies the notes: slot i takes old slot take(i), or the newcomer.
 * Every output is a copy of an input or one of those exact small numbers, so the results equal
 * the reference's bit for bit (scores with NaN aside: WGSL does not define NaN comparisons).
 */
import type { KernelArg, MultiPrimParams } from "../../backend.ts";
import { ENTRY_ARGS, grid, header, LINEAR_WG, ParamWords, pu, type GpuCtx } from "../context.ts";

const POOL_WG = 64;

/** The row's numbers (WGSL statements; params: B, P, S, priority): leaving, accept, last, full and the source slot function. */
const ROW = `
  let B = ${pu(0)}; let P = ${pu(1)}; let S = ${pu(2)}; let priority = ${pu(3)} != 0u;
  if (wg >= B) { return; }
  let b = wg;
  let r = b * P;
  var count = 0.0f;
  for (var i = 0u; i < P; i++) { count += valid[r + i]; }
  let full = count >= f32(P);
  let s = score[b];
  let w = write[b];
  var leaving = select(count, 0.0f, full);
  var accept = w;
  if (priority) {
    var lowest = scores[r];
    for (var i = 1u; i < P; i++) { lowest = min(lowest, scores[r + i]); }
    var first = P;
    for (var i = 0u; i < P; i++) { if (scores[r + i] == lowest) { first = i; break; } }
    leaving = select(count, f32(first), full);
    accept = w * select(1.0f, select(0.0f, 1.0f, lowest <= s), full);
  }
  let last = min(count + 1.0f, f32(P)) - 1.0f;
`;

/** The old slot that slot i of the new pool takes, or P for the newcomer. */
const TAKE = `
fn take(i: u32, P: u32, accept: f32, leaving: f32, last: f32) -> u32 {
  let fi = f32(i);
  if (accept == 0.0f || fi < leaving) { return i; }
  if (fi < last) { return min(i + 1u, P - 1u); }
  if (fi == last) { return P; }
  return i;
}
`;

function rowsWgsl(): string {
  return `${header(4, [
    { name: "scores", type: "f32" }, { name: "valid", type: "f32" }, { name: "score", type: "f32" }, { name: "write", type: "f32" },
    { name: "oScores", type: "f32", write: true }, { name: "oValid", type: "f32", write: true },
    { name: "oAccepted", type: "f32", write: true }, { name: "oEvicted", type: "f32", write: true },
  ])}${TAKE}
@compute @workgroup_size(${POOL_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}${ROW}
  for (var i = lid; i < P; i += ${POOL_WG}u) {
    let j = take(i, P, accept, leaving, last);
    if (j == P) {
      oScores[r + i] = s;
      oValid[r + i] = 1.0f;
    } else {
      oScores[r + i] = scores[r + j];
      oValid[r + i] = valid[r + j];
    }
  }
  if (lid == 0u) {
    oAccepted[b] = accept;
    oEvicted[b] = select(-1.0f, leaving, accept * select(0.0f, 1.0f, full) != 0.0f);
  }
}
`;
}

function notesWgsl(): string {
  return `${header(4, [
    { name: "notes", type: "f32" }, { name: "note", type: "f32" }, { name: "scores", type: "f32" }, { name: "valid", type: "f32" },
    { name: "score", type: "f32" }, { name: "write", type: "f32" }, { name: "oNotes", type: "f32", write: true },
  ])}${TAKE}
@compute @workgroup_size(${POOL_WG})
fn main(${ENTRY_ARGS}) {
  ${LINEAR_WG}${ROW}
  for (var e = lid; e < P * S; e += ${POOL_WG}u) {
    let i = e / S;
    let c = e % S;
    let j = take(i, P, accept, leaving, last);
    oNotes[r * S + e] = select(notes[(r + j) * S + c], note[b * S + c], j == P);
  }
}
`;
}

/** poolInsert: inputs [notes, scores, valid, note, score, write], outputs [notes', scores', valid', accepted, evicted]. */
export function poolInsertKernel(ctx: GpuCtx, [notes, scores, valid, note, score, write]: readonly KernelArg[], [oNotes, oScores, oValid, oAccepted, oEvicted]: readonly KernelArg[], p: MultiPrimParams["poolInsert"]): void {
  const [B, P, S] = notes.shape;
  if (B === 0) return;
  const label = "poolInsert";
  const params = new ParamWords().u(B).u(P).u(S).u(p.priority ? 1 : 0).words();
  const groups = grid(B, ctx.limits.maxComputeWorkgroupsPerDimension);
  const ref = (a: KernelArg) => ctx.ref(a, label);
  ctx.dispatch({
    label, key: "poolInsert:rows", wgsl: rowsWgsl, params, groups,
    buffers: [ref(scores), ref(valid), ref(score), ref(write), ref(oScores), ref(oValid), ref(oAccepted), ref(oEvicted)],
  });
  if (S > 0) {
    ctx.dispatch({
      label, key: "poolInsert:notes", wgsl: notesWgsl, params, groups,
      buffers: [ref(notes), ref(note), ref(scores), ref(valid), ref(score), ref(write), ref(oNotes)],
    });
  }
}
