/**
 * The recurrent state of a whole model: per layer, the conv buffer [B, K − 1, d_inner], the SSM
 * state [B, d_inner, N], the pool {notes [B, P, S], scores [B, P], valid [B, P]} and, for conv
 * fusion, the last projected reads [B, 2, d]. Nothing in it grows with the sequence: streaming a
 * million tokens holds as many numbers as streaming ten.
 */
import { forEachTensor, Tensor, zeros } from "@memmamba/tensor";
import { parseConfig, type ModelConfig, type ModelConfigInput } from "./config.ts";
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

/** The number of elements a state holds (constant while streaming: the tests assert it). */
export function stateElementCount(state: LMState): number {
  let n = 0;
  forEachTensor(state, (t: Tensor) => (n += t.size));
  return n;
}
