/**
 * The Mamba (S6) block, with the math of mamba_simple.py:
 *
 *   h = RMSNorm(x);  (u, z) = in_proj(h);  u = SiLU(conv1d(u) + b)
 *   (Δ̃, B, C) = x_proj(u);  Δ = softplus(dt_proj(Δ̃) + dt_bias);  A = −exp(A_log)
 *   y = selectiveScan(u, Δ, A, B, C) + D ⊙ u                          (Eq. 1, the state update)
 *   out = x + out_proj(y ⊙ SiLU(z))
 *
 * One function serves the parallel, chunked and recurrent modes: given a state it prepends the
 * carried conv inputs and starts the scan from the carried h, and returns the new state, so a
 * recurrent step is this block on a sequence of length 1.
 */
import {
  add, addMatmul, conv1dCausal, conv1dCausalSilu, exp, fromArray, full, isRecording, linearSoftplus, log, maximum, matmul, mul, neg, noGrad, random, selectiveScan, showShape, silu,
  sliceAxis, softplus, ssmGate, sub, tidy, zeros, type Tensor,
} from "@memmamba/tensor";
import { checkConfig, dims, type ModelConfig } from "./config.ts";
import { derived } from "./derived.ts";
import { carriedTail, initLinear, initRMSNorm, rmsNorm, type Key, type Linear, type RMSNorm } from "./nn.ts";

/** The parameters of one Mamba (S6) block. */
export interface MambaParams {
  /** The pre-norm (weight [d]). */
  norm: RMSNorm;
  /** d → 2·d_inner (x and the gate z), no bias. */
  inProj: Linear;
  /** Depthwise causal conv: w [d_inner, K], b [d_inner]. */
  conv: { w: Tensor; b: Tensor };
  /** d_inner → R + 2N (Δ̃, B, C), no bias. */
  xProj: Linear;
  /** R → d_inner, with the Δ bias. */
  dtProj: Linear;
  /** [d_inner, N]; A = −exp(A_log). */
  A_log: Tensor;
  /** [d_inner], the skip through the scan. */
  D: Tensor;
  /** d_inner → d, no bias. */
  outProj: Linear;
}

/** The recurrent state of one block: fixed size whatever the length. */
export interface MambaState {
  /** The last K − 1 conv inputs [B, K − 1, d_inner]. */
  conv: Tensor;
  /** The SSM state h [B, d_inner, N]. */
  ssm: Tensor;
}

/** What `mambaBlock` returns. */
export interface MambaOutput {
  /** The block output x + out_proj(…) [B, L, d]. */
  out: Tensor;
  /**
   * The scan readout y = C·h + D ⊙ u [B, L, d_inner] (what I_state may score), only where asked
   * for (`{ scan: true }`): otherwise the readout, its skip and the gate are one `ssmGate` pass.
   */
  scan?: Tensor;
  /** The state after the last position, when a state was given. */
  state?: MambaState;
}

/**
 * Mamba's initialisation: A_log = log(1..N) per channel, D = 1, Δ log-uniform in [dtMin, dtMax]
 * through the inverse softplus in dt_bias, dt_proj.w U(±R^−½), in/x_proj like nn.Linear,
 * the conv like nn.Conv1d (U(±1/√K)), out_proj like nn.Linear scaled by 1/√n_layers.
 */
export function initMamba(key: Key, config: ModelConfig): MambaParams {
  const cfg = checkConfig("initMamba", config);
  const { d, dInner, dtRank: R, N, K } = dims(cfg);
  const [kIn, kConvW, kConvB, kX, kDtW, kDt, kOut] = random.split(key, 7);
  return noGrad(() =>
    tidy(() => {
      const convBound = 1 / Math.sqrt(K); // nn.Conv1d, groups = channels: fan_in = K
      const dtBound = 1 / Math.sqrt(R);
      const u = random.uniform(kDt, [dInner]);
      // (logs on the device, not Math.log, whose last bit differs between engines)
      const logMin = log(full([1], cfg.dtMin)), logMax = log(full([1], cfg.dtMax));
      // Δ = exp(U(log dtMin, log dtMax)), floored at 1e-4 as mamba does; bias = softplus⁻¹(Δ)
      const dt = maximum(exp(add(mul(u, sub(logMax, logMin)), logMin)), 1e-4);
      const dtBias = add(dt, log(sub(1, exp(neg(dt)))));
      // 1..N are exact in f32; the log runs on the device (bit-identical across runtimes)
      const aLog = log(add(zeros([dInner, N]), fromArray(Float32Array.from({ length: N }, (_, i) => i + 1), [N])));
      const outProj = initLinear(kOut, dInner, d, false);
      return {
        norm: initRMSNorm(d),
        inProj: initLinear(kIn, d, 2 * dInner, false),
        conv: { w: random.uniform(kConvW, [dInner, K], { lo: -convBound, hi: convBound }), b: random.uniform(kConvB, [dInner], { lo: -convBound, hi: convBound }) },
        xProj: initLinear(kX, dInner, R + 2 * N, false),
        dtProj: { w: random.uniform(kDtW, [R, dInner], { lo: -dtBound, hi: dtBound }), b: dtBias },
        A_log: aLog,
        D: full([dInner], 1),
        outProj: { w: mul(outProj.w, 1 / Math.sqrt(cfg.nLayers)) },
      };
    })
  );
}

/** An all-zero state for a batch (`zerosOf` makes the zero tensors: initState shares their storage). */
export function initMambaState(config: ModelConfig, batch: number, zerosOf: (shape: number[]) => Tensor = zeros): MambaState {
  const { dInner, N, K } = dims(checkConfig("initMambaState", config));
  return { conv: zerosOf([batch, K - 1, dInner]), ssm: zerosOf([batch, dInner, N]) };
}

/**
 * The Mamba block over x [B, L, d]; with a state, continues from it and returns the next one
 * (unless `opts.next` is false: then the scan's final h and the conv tail are not computed).
 * `opts.scan`: also return the scan readout (MambaOutput.scan).
 */
export function mambaBlock(p: MambaParams, x: Tensor, cfg: ModelConfig, state?: MambaState, opts: { scan?: boolean; next?: boolean } = {}): MambaOutput {
  checkBlockInputs(p, x, cfg, state);
  return tidy(() => mambaBlockInner(p, x, cfg, state, opts.scan === true, opts.next !== false));
}

/** x [B, L, d], the block's weights and the state of the config's sizes: else an error naming what differs (shapes only). */
function checkBlockInputs(p: MambaParams, x: Tensor, cfg: ModelConfig, state: MambaState | undefined): void {
  const { d, dInner, N, K } = dims(cfg);
  if (x.rank !== 3 || x.shape[2] !== d) throw new Error(`mambaBlock: x must be [B, L, D] with D = config.dModel = ${d}, got ${showShape(x.shape)}`);
  const w = p.inProj.w.shape;
  if (w.length !== 2 || w[0] !== d || w[1] !== 2 * dInner) {
    throw new Error(`mambaBlock: the block was built for another config: inProj.w is ${showShape(w)}, the config (dModel ${d}, expand ${cfg.expand}) needs [${d}, ${2 * dInner}]`);
  }
  if (!state) return;
  const B = x.shape[0];
  for (const [name, t, want] of [["conv", state.conv, [B, K - 1, dInner]], ["ssm", state.ssm, [B, dInner, N]]] as const) {
    if (t.rank !== 3 || t.shape.some((n, i) => n !== want[i])) {
      throw new Error(`mambaBlock: state.${name} is ${showShape(t.shape)}, x ${showShape(x.shape)} and the config (dModel ${d}, expand ${cfg.expand}, dState ${N}, dConv ${K}) need ${showShape(want)}`);
    }
  }
}

function mambaBlockInner(p: MambaParams, x: Tensor, cfg: ModelConfig, state: MambaState | undefined, wantScan: boolean, wantNext: boolean): MambaOutput {
  const { dInner, dtRank: R, N } = dims(cfg);
  const B = x.shape[0];
  const h = rmsNorm(p.norm, x, cfg.normEps);
  // outside a gradient, fused launches where a recorded step keeps the ops (their VJPs would
  // recompute the intermediates the ops keep)
  const fused = !isRecording();
  // in_proj's two halves: outside a gradient as two products (the weight's halves are small
  // copies; the [B, L, 2·d_inner] product's two slices were two full-size copies), else one
  // product and its slices (their VJP is one matmul's). With fewer rows than the weight has (a
  // recurrent step: B rows), the product's slices are the smaller copies, and one launch fewer:
  // one product then too. Each column is the same sum either way.
  let xIn: Tensor, z: Tensor;
  if (!fused || B * x.shape[1] < p.inProj.w.shape[0]) {
    const xz = matmul(h, p.inProj.w);
    xIn = sliceAxis(xz, -1, 0, dInner);
    z = sliceAxis(xz, -1, dInner, 2 * dInner);
  } else {
    const w = p.inProj.w;
    xIn = matmul(h, derived("inProj.x", [w], () => sliceAxis(w, -1, 0, dInner)));
    z = matmul(h, derived("inProj.z", [w], () => sliceAxis(w, -1, dInner, 2 * dInner)));
  }

  // causal conv: the carried K − 1 inputs stand before the sequence, as in the recurrent step
  // (the conv reads them as its prefix: no [B, L + K − 1, d_inner] copy in and out)
  // (with its bias and silu in one launch outside a gradient, as Δ below)
  const u = fused ? conv1dCausalSilu(xIn, p.conv.w, p.conv.b, state?.conv) : silu(add(conv1dCausal(xIn, p.conv.w, state?.conv), p.conv.b));

  const dbc = matmul(u, p.xProj.w);
  const dtLow = sliceAxis(dbc, -1, 0, R);
  const Bm = sliceAxis(dbc, -1, R, R + N);
  const C = sliceAxis(dbc, -1, R + N, R + 2 * N);
  // Δ in one launch (fused)
  const delta = fused ? linearSoftplus(dtLow, p.dtProj.w, p.dtProj.b!) : softplus(add(matmul(dtLow, p.dtProj.w), p.dtProj.b!));
  const A = derived("A", [p.A_log], () => neg(exp(p.A_log)));
  const h0 = state ? state.ssm : zeros([B, dInner, N]);
  const { y, state: hL } = selectiveScan(u, delta, A, Bm, C, h0, state !== undefined && wantNext);
  // (y + D ⊙ u) ⊙ SiLU(z): one pass unless the readout itself is wanted
  const scan = wantScan ? add(y, mul(u, p.D)) : undefined;
  const gated = scan ? mul(scan, silu(z)) : ssmGate(y, u, p.D, z);
  // the residual add in out_proj's store (addMatmul: the same bits as the add after the product)
  const out = addMatmul(x, gated, p.outProj.w);
  if (!state || !wantNext) return { out, scan };
  const next: MambaState = { conv: carriedTail(state.conv, xIn), ssm: hL! };
  return { out, scan, state: next };
}
