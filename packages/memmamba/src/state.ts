/**
 * The recurrent state of a whole model: per layer, the conv buffer [B, K − 1, d_inner], the SSM
 * state [B, d_inner, N], the pool {notes [B, P, S], scores [B, P], valid [B, P]} and, for conv
 * fusion, the last projected reads [B, 2, d]. Nothing in it grows with the sequence: streaming a
 * million tokens holds as many numbers as streaming ten.
 */
import { forEachTensor, showShape, Tensor, zeros } from "@memmamba/tensor";
import { dims, hasCrossLayer, parseConfig, usesMemory, type ModelConfig, type ModelConfigInput } from "./config.ts";
import { FUSION_CONV_K } from "./fusion.ts";
import { initLayerState, type LayerState } from "./layer.ts";

/** The recurrent state of a whole model: fixed size, whatever the length streamed so far. */
export interface LMState {
  /** Sequences streamed side by side. */
  batch: number;
  /** One state per layer. */
  layers: LayerState[];
}

/** An empty state (zero conv buffers and SSM states, empty pools) for a batch. */
export function initState(config: ModelConfigInput | ModelConfig, batch: number): LMState {
  const cfg = parseConfig(config);
  if (cfg.kind === "transformer") throw new Error("initState: the transformer baseline has no fixed-size recurrent state");
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`initState: batch must be a positive integer, got ${batch}`);
  // one zero tensor a shape, and every layer's zeros of that shape a view of it: five fills
  // whatever the depth, not five a layer (tensors are never written in place, so the shared
  // storage is invisible; each view holds it until disposed)
  const base = new Map<string, Tensor>();
  const zerosOf = (shape: number[]): Tensor => {
    const key = shape.join(",");
    let z = base.get(key);
    if (!z) base.set(key, (z = zeros(shape)));
    return Tensor.view(z, shape);
  };
  try {
    return { batch, layers: Array.from({ length: cfg.nLayers }, (_, l) => initLayerState(cfg, l, batch, zerosOf)) };
  } finally {
    for (const z of base.values()) z.dispose();
  }
}

/**
 * Throws unless `state` fits a model of config `cfg`: its layer count and each layer's state
 * shapes (shapes only, no data read), so that a state of another config fails here, naming it,
 * not deep inside a kernel. `fn` names the caller in the error.
 */
export function checkState(fn: string, cfg: ModelConfig, state: LMState): void {
  if (cfg.kind === "transformer") throw new Error(`${fn}: the transformer baseline has no recurrent state (use lm.apply)`);
  const bad = stateMismatch(cfg, state);
  if (bad) throw new Error(`${fn}: the state was built for another config: ${bad}`);
}

function sameShape(t: Tensor | undefined, shape: number[] | undefined): boolean {
  if (!t || !shape) return !t && !shape;
  return t.shape.length === shape.length && t.shape.every((n, i) => n === shape[i]);
}

/** What in `state` does not fit `cfg` (undefined: all of it fits). */
function stateMismatch(cfg: ModelConfig, state: LMState): string | undefined {
  const layers = state?.layers;
  if (!Array.isArray(layers) || layers.length !== cfg.nLayers) {
    return `it has ${Array.isArray(layers) ? layers.length : "no"} layers, the params' config has nLayers ${cfg.nLayers}`;
  }
  const { d, dInner, N, K } = dims(cfg);
  const B = state.batch, m = cfg.memory, mem = usesMemory(cfg);
  const conv = (on: boolean) => (on && m.fusion === "conv1d" ? [B, FUSION_CONV_K - 1, d] : undefined);
  for (let l = 0; l < layers.length; l++) {
    const s = layers[l];
    const want: [string, Tensor | undefined, number[] | undefined][] = [
      ["mamba.conv", s.mamba?.conv, [B, K - 1, dInner]],
      ["mamba.ssm", s.mamba?.ssm, [B, dInner, N]],
      ["pool.notes", s.pool?.notes, mem ? [B, m.poolSize, m.summaryDim] : undefined],
      ["fuseTok", s.fuseTok, conv(mem && m.crossToken)],
      ["fuseLay", s.fuseLay, conv(mem && hasCrossLayer(cfg, l))],
    ];
    for (const [name, t, shape] of want) {
      if (sameShape(t, shape)) continue;
      const of = `kind ${cfg.kind}, dModel ${cfg.dModel}, expand ${cfg.expand}, dState ${cfg.dState}, dConv ${cfg.dConv}` +
        (mem ? `, memory.poolSize ${m.poolSize}, memory.summaryDim ${m.summaryDim}, memory.fusion ${m.fusion}` : ", no memory");
      return `layers[${l}].${name} is ${t ? showShape(t.shape) : "absent"}, the params' config (${of}) needs ${shape ? showShape(shape) : "none"}`;
    }
  }
  return undefined;
}

/** The number of elements a state holds (constant while streaming: the tests assert it). */
export function stateElementCount(state: LMState): number {
  let n = 0;
  forEachTensor(state, (t: Tensor) => (n += t.size));
  return n;
}
