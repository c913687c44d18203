/**
 * The wasm launchers of the selective scan (wasm/ssm.c): forward, final state, both at once, and
 * the backward pass with its dB/dC block reduction.
 */
import type { KernelArg } from "../backend.ts";
import { K } from "./kernel-ids.ts";
import { ceilDiv, type Launcher, type MultiLauncher, PARALLEL_MIN_WORK, roundUp, size, type WasmCtx } from "./launcher.ts";

function ssmForward(ctx: WasmCtx, ins: readonly KernelArg[], y: number, hL: number): void {
  const [B, L, Di] = ins[0].shape, N = ins[2].shape[1];
  const parallel = B * L * Di * N >= PARALLEL_MIN_WORK;
  const chunk = parallel ? roundUp(Math.max(2, Math.min(16, ceilDiv(B * Di, ctx.threads * 4))), 2) : roundUp(Di, 2);
  const w2 = roundUp(Math.min(chunk, Di), 2);
  const stride = roundUp((2 * N * w2 + 3 * w2) * 8, 64);
  const scratch = ctx.temp(stride * (parallel ? ctx.threads : 1));
  ctx.launch(K.SSM_FWD, [...ins.slice(0, 6).map((a) => ctx.ptr(a)), y, hL, B, L, Di, N, chunk, scratch, stride, ctx.expLockstep ? 1 : 0], B * ceilDiv(Di, chunk), parallel);
}

export const selectiveScan: Launcher<"selectiveScan"> = (ctx, ins, out) => {
  if (size(out.shape) === 0) return false;
  ssmForward(ctx, ins, ctx.ptr(out), 0);
  return true;
};

export const selectiveScanState: Launcher<"selectiveScanState"> = (ctx, ins, out) => {
  if (size(out.shape) === 0 || ins[0].shape[1] === 0) return false;
  ssmForward(ctx, ins, 0, ctx.ptr(out));
  return true;
};

/** selectiveScanWithState: y and the last state from one forward, [y, state] = outs. */
export const selectiveScanWithState: MultiLauncher<"selectiveScanWithState"> = (ctx, ins, [y, state]) => {
  if (size(y.shape) === 0 || size(state.shape) === 0) return false;
  ssmForward(ctx, ins, ctx.ptr(y), ctx.ptr(state));
  return true;
};

/** Channels per block of the backward pass: depends on Di alone (it sets dB/dC's roundings). */
export function ssmBackwardChunk(Di: number): number {
  return 2 * ceilDiv(Di, 32);
}

export const selectiveScanGrad: Launcher<"selectiveScanGrad"> = (ctx, ins, out) => {
  const [B, L, Di] = ins[0].shape, N = ins[2].shape[1];
  if (B * L * Di * N === 0) return false;
  const chunk = ssmBackwardChunk(Di);
  const nblocks = ceilDiv(Di, chunk);
  const S = N * chunk;
  const stride = roundUp(((2 * L + 1) * S + 3 * S + 4 * chunk) * 8, 64); // hs, as, At, lam, dA, 4 rows
  const parallel = B * L * Di * N >= PARALLEL_MIN_WORK && nblocks > 1;
  const T = parallel ? Math.min(ctx.threads, nblocks) : 1;
  const scratch = ctx.temp(stride * (parallel ? ctx.threads : 1));
  const BLN = B * L * N;
  const dBp = ctx.temp(nblocks * BLN * 8), dCp = ctx.temp(nblocks * BLN * 8);
  void T;
  ctx.launch(K.SSM_BWD, [...ins.slice(0, 8).map((a) => ctx.ptr(a)), ctx.ptr(out), B, L, Di, N, chunk, scratch, stride, dBp, dCp, ctx.expLockstep ? 1 : 0], nblocks, parallel);
  const per = parallel ? Math.max(256, ceilDiv(BLN, ctx.threads * 4)) : BLN;
  ctx.launch(K.SSM_BWD_REDUCE, [dBp, dCp, ctx.ptr(out), B, L, Di, N, nblocks, per], ceilDiv(BLN, per), parallel && BLN * nblocks >= PARALLEL_MIN_WORK);
  return true;
};
