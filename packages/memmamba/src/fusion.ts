/**
 * Fusion (Eq. 12): x̄_l = x_l + F_tok(c_tok) + F_lay(c_lay). Each F first projects its read
 * S → d (u = c W_F, no bias), then:
 *
 *   weighted  α ⊙ u, α a learned per-channel weight [d] (the paper's best; our default). α starts
 *             at 0.1 (LayerScale-style) so an untrained MemMamba starts close to its backbone.
 *   gated     σ([x, u] W_g + b_g) ⊙ u: the token decides, channel by channel, how much to take.
 *   residual  u, a plain add.
 *   product   x ⊙ u: the read rescales the stream (multiplicative interaction).
 *   conv1d    a causal depthwise conv (kernel 3, no bias) over the sequence of u: the read is
 *             smoothed over the last 3 positions (a recurrent step carries the last 2 u's).
 *
 * No F has a bias, so F(0) = 0: a token that reads nothing (closed gate, empty pool) leaves the
 * stream as the backbone made it. (A bias would add the same vector to every token, and at
 * nn.Linear's init scale it would swamp the 0.02-scale embeddings.)
 */
import { add, addMatmul, addN, concat, conv1dCausal, foldWeight, full, matmul, mul, noGrad, random, sigmoid, zeros, type Tensor } from "@memmamba/tensor";
import { checkConfig, type MemoryConfig, type ModelConfig } from "./config.ts";
import { derived } from "./derived.ts";
import { carriedTail, initLinear, linear, scaleRows, type Key, type Linear } from "./nn.ts";

/** How a memory read joins the residual stream (Eq. 12): weighted, gated, residual, product or conv. */
export type FusionKind = MemoryConfig["fusion"];

/** The conv fusion's kernel size. */
export const FUSION_CONV_K = 3;

/** The parameters of one fusion F (Eq. 12); which optional ones exist depends on the FusionKind. */
export interface FusionParams {
  /** S → d, no bias. */
  proj: Linear;
  /** weighted: α [d]. */
  scale?: Tensor;
  /** gated: [2d] → d. */
  gate?: Linear;
  /** conv1d: w [d, 3]. */
  conv?: { w: Tensor };
}

/** A fusion of the kind `cfg.memory.fusion`: the projection S → d plus that kind's own parameters. */
export function initFusion(key: Key, config: ModelConfig): FusionParams {
  const cfg = checkConfig("initFusion", config);
  const d = cfg.dModel;
  const [kp, kg, kw] = random.split(key, 3);
  const p: FusionParams = { proj: initLinear(kp, cfg.memory.summaryDim, d, false) };
  switch (cfg.memory.fusion) {
    case "weighted":
      p.scale = noGrad(() => full([d], 0.1));
      break;
    case "gated":
      p.gate = initLinear(kg, 2 * d, d);
      break;
    case "conv1d": {
      const bound = 1 / Math.sqrt(FUSION_CONV_K); // nn.Conv1d default, depthwise
      p.conv = { w: random.uniform(kw, [d, FUSION_CONV_K], { lo: -bound, hi: bound }) };
      break;
    }
  }
  return p;
}

/** The carried inputs of a conv fusion [B, K − 1, d] (absent for the other kinds). */
export function initFusionState(config: ModelConfig, batch: number, zerosOf: (shape: number[]) => Tensor = zeros): Tensor | undefined {
  const cfg = checkConfig("initFusionState", config);
  return cfg.memory.fusion === "conv1d" ? zerosOf([batch, FUSION_CONV_K - 1, cfg.dModel]) : undefined;
}

/**
 * One term F(c) of Eq. 12 for a read c [B, L, S] at the stream x [B, L, d]. With a conv state
 * (chunked and recurrent modes) the conv continues from it and the next state is returned.
 * `pre` [S', S]: c [B, L, S'] comes before a linear map that the projection absorbs (its weight
 * becomes pre·W): the layer passes W_v with a read of the notes (attention.ts, ReadValues), so
 * (c·W_v)·W is computed as c·(W_v·W), with no [B, L, S]·[S, S] matmul. Equal up to f32 rounding.
 */
export function fusionTerm(p: FusionParams, kind: FusionKind, x: Tensor, c: Tensor, convState?: Tensor, pre?: Tensor): { term: Tensor; state?: Tensor } {
  // weighted: (c·W) ⊙ α as c·(W ⊙ α), the same product with α folded into the [S, d] weight: no
  // [B, L, d] multiply forward, nor its two full-size passes backward (α's gradient then comes
  // from the small weight gradient). Equal up to f32 rounding.
  if (kind === "weighted" && !p.proj.b) return { term: matmul(c, weightedFold(p, pre)) };
  const w = pre ? derived("fold", [pre, p.proj.w], () => foldWeight(pre, p.proj.w)) : p.proj.w;
  const u = linear({ w, b: p.proj.b }, c);
  switch (kind) {
    case "weighted":
      return { term: mul(u, p.scale!) };
    case "gated":
      return { term: mul(sigmoid(linear(p.gate!, concat([x, u], -1))), u) };
    case "residual":
      return { term: u };
    case "product":
      return { term: mul(x, u) };
    case "conv1d": {
      const y = conv1dCausal(u, p.conv!.w, convState);
      // the last K − 1 projected reads carry to the next chunk
      return convState ? { term: y, state: carriedTail(convState, u) } : { term: y };
    }
  }
}

/** The weighted fusion's folded weight (pre·W) ⊙ α (W ⊙ α without pre): one foldWeight launch each way. */
function weightedFold(p: FusionParams, pre?: Tensor): Tensor {
  return pre
    ? derived("foldScaled", [pre, p.proj.w, p.scale!], () => foldWeight(pre, p.proj.w, p.scale!))
    : derived("scaled", [p.proj.w, p.scale!], () => mul(p.proj.w, p.scale!));
}

/** Eq. 12: x̄ = x + Σ F(c), the memory terms added to the residual stream (one addN: the same bits as the adds in order). */
export function fuseMemory(x: Tensor, terms: readonly Tensor[]): Tensor {
  return addN([x, ...terms]);
}

/**
 * acc + F(c ⊙ scale[..., None]): one term of Eq. 12 added to a running sum (the stream x first),
 * the read c [B, L, S'] scaled per position by `scale` [B, L] where given (the read gate), with
 * fusionTerm's `convState` and `pre`. The weighted fusion without a bias is one addMatmul: c's
 * product with the folded weight, its rows scaled and added to acc in the product's store (no
 * [B, L, S] scaling, no [B, L, d] term written and read back). The other kinds scale c, then add
 * fusionTerm's term. Equal to acc + fusionTerm(…, c ⊙ scale, …).term up to f32 rounding (bit for
 * bit where nothing is folded: the same ops in the same order).
 */
export function fuseInto(
  acc: Tensor, p: FusionParams, kind: FusionKind, x: Tensor, c: Tensor,
  opts: { scale?: Tensor; convState?: Tensor; pre?: Tensor } = {},
): { out: Tensor; state?: Tensor } {
  const { scale, convState, pre } = opts;
  if (kind === "weighted" && !p.proj.b) return { out: addMatmul(acc, c, weightedFold(p, pre), scale) };
  const f = fusionTerm(p, kind, x, scale ? scaleRows(c, scale) : c, convState, pre);
  return { out: add(acc, f.term), state: f.state };
}
