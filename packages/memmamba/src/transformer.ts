/**
 * The Transformer baseline: pre-norm causal multi-head attention with rotary positions and a
 * SiLU MLP (4× by default), the same width and depth as the Mamba models, sharing their byte
 * embedding, final norm and tied head (model.ts).
 *
 *   x = x + W_o · MHA(RMSNorm(x))          (causal, rotary on q and k)
 *   x = x + W_down · SiLU(W_up · RMSNorm(x))
 */
import {
  add, concat, exp, fromArray, ge, isRecording, log, matmul, mul, noGrad, random, reshape, sin, cos, silu, sliceAxis,
  softmax, sub, tidy, transpose, where, type Tensor,
} from "@memmamba/tensor";
import { checkConfig, type ModelConfig } from "./config.ts";
import { initLinear, initRMSNorm, rmsNorm, type Key, type Linear, type RMSNorm } from "./nn.ts";

/** The parameters of one pre-norm Transformer layer of the baseline (attention, then a SiLU MLP). */
export interface TransformerLayerParams {
  /** The attention's pre-norm. */
  norm1: RMSNorm;
  /** d → 3d (q, k, v), no bias. */
  qkv: Linear;
  /** d → d, no bias, scaled by 1/√n_layers (as Mamba's out_proj). */
  o: Linear;
  /** The MLP's pre-norm. */
  norm2: RMSNorm;
  /** d → mlpRatio·d, no bias. */
  up: Linear;
  /** mlpRatio·d → d, no bias, scaled by 1/√n_layers. */
  down: Linear;
}

/** One Transformer layer of the baseline, initialised like nn.Linear (output projections scaled by 1/√n_layers). */
export function initTransformerLayer(key: Key, config: ModelConfig): TransformerLayerParams {
  const cfg = checkConfig("initTransformerLayer", config);
  const d = cfg.dModel, hidden = cfg.transformer.mlpRatio * d;
  const [kq, ko, ku, kd] = random.split(key, 4);
  const scaled = (k: Key, i: number, o: number): Linear => {
    const w = initLinear(k, i, o, false).w;
    return { w: noGrad(() => mul(w, 1 / Math.sqrt(cfg.nLayers))) };
  };
  return noGrad(() =>
    tidy(() => ({
      norm1: initRMSNorm(d),
      qkv: initLinear(kq, d, 3 * d, false),
      o: scaled(ko, d, d),
      norm2: initRMSNorm(d),
      up: initLinear(ku, d, hidden, false),
      down: scaled(kd, hidden, d),
    }))
  );
}

/** Rotary tables for positions start … start + L − 1: cos and sin [L, hd/2]. */
export interface Rope {
  /** cos(position · frequency) [L, hd/2]. */
  cos: Tensor;
  /** sin(position · frequency) [L, hd/2]. */
  sin: Tensor;
}

/**
 * θ_i = base^(−2i/hd), angle = position · θ_i. Built with the library's exp/log/sin/cos (its
 * deterministic elementary functions), so the tables are bit-identical in every runtime.
 */
export function ropeTables(L: number, headDim: number, base: number, start = 0): Rope {
  return tidy(() => {
    const half = headDim / 2;
    const i = fromArray(Float32Array.from({ length: half }, (_, k) => k), [1, half]);
    const lnBase = log(fromArray([base], [1, 1]));
    const freq = exp(mul(mul(i, lnBase), -2 / headDim));
    const pos = fromArray(Float32Array.from({ length: L }, (_, t) => start + t), [L, 1]);
    const angle = mul(pos, freq);
    return { cos: cos(angle), sin: sin(angle) };
  });
}

/** Rotate-half rotary embedding of x [B, H, L, hd]. */
function applyRope(x: Tensor, rope: Rope): Tensor {
  const hd = x.shape[3], half = hd / 2;
  const x1 = sliceAxis(x, -1, 0, half), x2 = sliceAxis(x, -1, half, hd);
  return concat([sub(mul(x1, rope.cos), mul(x2, rope.sin)), add(mul(x2, rope.cos), mul(x1, rope.sin))], -1);
}

/**
 * Rows s … e − 1 of the additive causal mask over e keys, [e − s, e]: 0 where the key is at or
 * before the query, −1e9 after. Built on the device from two index vectors (an [L, L] array made
 * and uploaded by the host cost the one-shot forward tens of ms at 1K tokens).
 */
function causalMask(s: number, e: number): Tensor {
  return tidy(() => {
    const rows = fromArray(Float32Array.from({ length: e - s }, (_, i) => s + i), [e - s, 1]);
    const cols = fromArray(Float32Array.from({ length: e }, (_, j) => j), [1, e]);
    return where(ge(rows, cols), 0, -1e9);
  });
}

/**
 * Where no gradient is recorded and L exceeds `attnBlock`, the attention runs over blocks of
 * `attnBlock` queries (each block against the keys up to its end, its causal mask built on the
 * device): the same function, with memory of attnBlock · L scores per head instead of L² (at 60K
 * tokens the full [B, H, L, L] scores are 60 GB; a block of 1,024 queries, 1 GB). Training keeps
 * the one-shot form.
 */
export const transformerTuning = { attnBlock: 1024 };

/** Causal attention of q, k, v [B, H, L, hd], in one shot or by query blocks (transformerTuning). */
function causalAttention(q: Tensor, k: Tensor, v: Tensor, hd: number): Tensor {
  const L = q.shape[2], Q = transformerTuning.attnBlock;
  if (!Number.isInteger(Q) || Q < 1) throw new RangeError(`transformerTuning.attnBlock must be a positive integer, got ${Q}`);
  const scale = 1 / Math.sqrt(hd);
  if (isRecording() || L <= Q) return matmul(softmax(add(mul(matmul(q, k, { transB: true }), scale), causalMask(0, L))), v);
  // the last block first: its scores are the largest, and the pool can hand each smaller block's
  // temporaries a buffer a larger one freed (ascending, every block asked for a new size)
  const blocks: Tensor[] = [];
  for (let s = Math.floor((L - 1) / Q) * Q; s >= 0; s -= Q) {
    const e = Math.min(L, s + Q);
    blocks.push(tidy(() => {
      const scores = add(mul(matmul(sliceAxis(q, 2, s, e), sliceAxis(k, 2, 0, e), { transB: true }), scale), causalMask(s, e));
      return matmul(softmax(scores), sliceAxis(v, 2, 0, e));
    }));
  }
  return concat(blocks.reverse(), 2);
}

/** One pre-norm Transformer layer over x [B, L, d]. */
export function transformerLayer(p: TransformerLayerParams, x: Tensor, cfg: ModelConfig, rope?: Rope): Tensor {
  return tidy(() => transformerLayerInner(p, x, cfg, rope));
}

function transformerLayerInner(p: TransformerLayerParams, x: Tensor, cfg: ModelConfig, rope?: Rope): Tensor {
  const [B, L, d] = x.shape;
  const H = cfg.transformer.nHeads, hd = d / H;
  const h = rmsNorm(p.norm1, x, cfg.normEps);
  const qkv = matmul(h, p.qkv.w);
  const heads = (i: number) => transpose(reshape(sliceAxis(qkv, -1, i * d, (i + 1) * d), [B, L, H, hd]), [0, 2, 1, 3]);
  let q = heads(0), k = heads(1);
  const v = heads(2);
  if (rope) {
    q = applyRope(q, rope);
    k = applyRope(k, rope);
  }
  const attn = causalAttention(q, k, v, hd); // [B, H, L, hd]
  const merged = reshape(transpose(attn, [0, 2, 1, 3]), [B, L, d]);
  const x1 = add(x, matmul(merged, p.o.w));
  const h2 = rmsNorm(p.norm2, x1, cfg.normEps);
  return add(x1, matmul(silu(matmul(h2, p.up.w)), p.down.w));
}
