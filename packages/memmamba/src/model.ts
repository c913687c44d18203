/**
 * The language model: byte embedding → the stack of layers → final RMSNorm → the tied head
 * (logits = RMSNorm(x) @ Eᵀ). One forward serves the three kinds (memmamba, mamba, transformer)
 * and the three modes (parallel, chunked, recurrent: see stream.ts).
 *
 * The parameter tree carries its config as plain data (`params.config`): mapTree, valueAndGrad
 * and the optimizers pass non-tensor leaves through untouched, and it lets `apply(params, tokens)`
 * need nothing else. Only tensor leaves are trained or saved.
 */
import { crossEntropy, gather, matmul, mean, random, showShape, stack, Tensor, tidy } from "@memmamba/tensor";
import { parseConfig, type ModelConfig, type ModelConfigInput } from "./config.ts";
import { initLayer, memMambaLayer, type LayerCounts, type LayerParams, type LayerState, type LayerTrace } from "./layer.ts";
import { initRMSNorm, rmsNorm, type Key, type RMSNorm } from "./nn.ts";
import type { PoolRead } from "./pool.ts";
import { initTransformerLayer, ropeTables, transformerLayer, type TransformerLayerParams } from "./transformer.ts";

/** The parameters of a whole language model (MemMamba, Mamba or Transformer by `config.kind`). */
export interface LMParams {
  /** The validated config (plain data, not trained). */
  config: ModelConfig;
  /** Byte embedding [vocab, d], also the output head. */
  embed: Tensor;
  /** One entry per layer: MemMamba/Mamba layers, or Transformer layers for the baseline. */
  layers: (LayerParams | TransformerLayerParams)[];
  /** The final norm before the output head. */
  norm: RMSNorm;
}

/** Builds a model's parameters. Accepts a raw config (validated here) or a parsed one. */
export function initLM(key: Key, config: ModelConfigInput | ModelConfig): LMParams {
  const cfg = parseConfig(config);
  const keys = random.split(key, cfg.nLayers + 1);
  const layers = Array.from({ length: cfg.nLayers }, (_, l) =>
    cfg.kind === "transformer" ? initTransformerLayer(keys[l + 1], cfg) : initLayer(keys[l + 1], cfg, l)
  );
  // GPT-2 / Mamba: embeddings N(0, 0.02²)
  return { config: cfg, embed: random.normal(keys[0], [cfg.vocab, cfg.dModel], { std: 0.02 }), layers, norm: initRMSNorm(cfg.dModel) };
}

/** Options of `apply` and `loss`. */
export interface ApplyOptions {
  /** Training randomness (S3Pool samples with it; without a key it averages). Use a fresh key per step (e.g. random.foldIn(key, step)). */
  key?: Key;
  /** Also return per-layer, per-position signals (token and state scores, write and read masks). */
  trace?: boolean;
  /**
   * `apply`: also count the notes written and the pool reads per layer (aux.notesWritten,
   * aux.poolReads; default true). false saves the counting ops (about five launches a layer)
   * where only the logits are used.
   */
  counts?: boolean;
}

/** Side outputs of `apply`: memory statistics and, when asked for, per-layer signals. */
export interface LMAux {
  /** Notes written, per layer [n_layers] (memmamba only). */
  notesWritten?: Tensor;
  /** Tokens that read a non-empty pool, per layer [n_layers] (memmamba with cross-token only). */
  poolReads?: Tensor;
  /** Per-layer signals, when asked for. */
  trace?: LayerTrace[];
}

/** What `apply` returns. */
export interface LMOutput {
  /** [B, L, vocab]. */
  logits: Tensor;
  /** Memory statistics and traces. */
  aux: LMAux;
}

/** What the shared forward needs beyond params and tokens. */
export interface ForwardOptions extends ApplyOptions {
  /** Per-layer carried states (chunked and recurrent modes). */
  states?: readonly LayerState[];
  /** With `states`: also build and return the states after the last position (default true; false: the logits only). */
  nextStates?: boolean;
  /** Recurrent mode: tokens are [B, 1] and pools are read from the states. */
  step?: boolean;
  /** Also return the residual stream after the embedding and after each layer (metrics/). */
  hidden?: boolean;
}

/** What the shared forward pass returns. */
export interface ForwardResult {
  /** [B, L, vocab]. */
  logits: Tensor;
  /** Per-layer states after the last position, when states were given. */
  states?: LayerState[];
  /** Per-layer counts, when asked for. */
  counts?: LayerCounts[];
  /** Per-layer signals, when asked for. */
  trace?: LayerTrace[];
  /** With `hidden`: [x_0 (the embedded input, a view without gradient), x_1 … x_n (after each layer)], each [B, L, d]. */
  hidden?: Tensor[];
}

function checkTokens(tokens: Tensor): void {
  if (tokens.dtype !== "i32" || tokens.rank !== 2) {
    throw new Error(`lm: tokens must be i32 [B, L], got ${tokens.dtype} ${showShape(tokens.shape)}`);
  }
  if (tokens.shape[1] === 0) throw new Error("lm: tokens must hold at least one position");
}

/** The shared forward of every kind and mode. */
export function forward(params: LMParams, tokens: Tensor, opts: ForwardOptions = {}): ForwardResult {
  checkTokens(tokens);
  return tidy(() => forwardFrom(params, gather(params.embed, tokens), opts));
}

/**
 * The same forward from input vectors x [B, L, d] in place of the embedded tokens (the metrics
 * and the property tests feed their own: bounded inputs, an input to differentiate).
 */
export function forwardFrom(params: LMParams, input: Tensor, opts: ForwardOptions = {}): ForwardResult {
  const cfg = params.config;
  if (input.dtype !== "f32" || input.rank !== 3 || input.shape[2] !== cfg.dModel || input.shape[1] === 0) {
    throw new Error(`lm: inputs must be f32 [B, L ≥ 1, ${cfg.dModel}], got ${input.dtype} ${showShape(input.shape)}`);
  }
  return tidy(() => {
    let x = input;
    const extra: Omit<ForwardResult, "logits"> = {};
    // (a view of the input, not the input itself: the caller keeps ownership of what it passed)
    const hidden: Tensor[] | undefined = opts.hidden ? [Tensor.view(input, input.shape)] : undefined;
    if (cfg.kind === "transformer") {
      if (opts.states || opts.step) throw new Error("lm: the transformer baseline has no fixed-size recurrent state; use apply");
      const hd = cfg.dModel / cfg.transformer.nHeads;
      const rope = cfg.transformer.rotary ? ropeTables(x.shape[1], hd, cfg.transformer.ropeBase) : undefined;
      for (const p of params.layers) {
        x = transformerLayer(p as TransformerLayerParams, x, cfg, rope);
        hidden?.push(x);
      }
    } else {
      const reads: (PoolRead | undefined)[] = [];
      const states: LayerState[] = [];
      const counts: LayerCounts[] = [];
      const trace: LayerTrace[] = [];
      params.layers.forEach((p, l) => {
        const r = memMambaLayer(p as LayerParams, x, cfg, l, {
          reads,
          state: opts.states?.[l],
          next: opts.nextStates,
          step: opts.step,
          key: opts.key ? random.foldIn(opts.key, l) : undefined,
          trace: opts.trace,
          counts: opts.counts,
        });
        x = r.x;
        hidden?.push(x);
        reads.push(r.read);
        if (r.state) states.push(r.state);
        if (r.counts) counts.push(r.counts);
        if (r.trace) trace.push(r.trace);
      });
      if (opts.states && opts.nextStates !== false) extra.states = states;
      if (counts.length) extra.counts = counts;
      if (opts.trace) extra.trace = trace;
    }
    if (hidden) extra.hidden = hidden;
    return { logits: matmul(rmsNorm(params.norm, x, cfg.normEps), params.embed, { transB: true }), ...extra };
  });
}

/** Stacks per-layer counts into the aux tensors. */
export function auxOf(r: ForwardResult): LMAux {
  const aux: LMAux = {};
  if (r.counts) {
    aux.notesWritten = stack(r.counts.map((c) => c.written));
    aux.poolReads = stack(r.counts.map((c) => c.reads));
  }
  if (r.trace) aux.trace = r.trace;
  return aux;
}

/** The parallel mode: logits for every position of tokens i32 [B, L], and counts for reporting. */
export function apply(params: LMParams, tokens: Tensor, opts: ApplyOptions = {}): LMOutput {
  return tidy(() => {
    const r = forward(params, tokens, { ...opts, counts: opts.counts ?? true });
    return { logits: r.logits, aux: auxOf(r) };
  });
}

/** Mean next-token cross-entropy of tokens [B, L] against targets [B, L] (nats). */
export function loss(params: LMParams, tokens: Tensor, targets: Tensor, opts: ApplyOptions = {}): Tensor {
  return tidy(() => mean(crossEntropy(forward(params, tokens, opts).logits, targets)));
}
