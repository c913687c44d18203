/**
 * @memmamba/memmamba — MemMamba ("MemMamba: Rethinking Memory Patterns in State Space Model") as
 * pure layers on @memmamba/tensor: `init(key, config) → params`, `apply(params, inputs, …)`, with
 * params plain object trees of tensors, so a user composes their own model from them.
 */
export {
  ConfigError, configJsonSchema, crossLayerSources, dims, editDistance, hasCrossLayer, ModelConfigSchema, MemorySchema, parseConfig, preset,
  presetNames, usesMemory, type ConfigOverrides, type Dims, type MemoryConfig, type ModelConfig, type ModelConfigInput, type PresetName,
} from "./config.ts";
export { initLinear, initRMSNorm, linear, rmsNorm, scoreLinear, scoreSigmoid, type Key, type Linear, type RMSNorm } from "./nn.ts";
export { initMamba, initMambaState, mambaBlock, type MambaOutput, type MambaParams, type MambaState } from "./mamba.ts";
export { poolSummary, type PoolingKind } from "./pooling.ts";
export { initNote, scoreNotes, stateSummary, takeNotes, tokenImportance, type NoteParams, type Notes, type ScoredNotes } from "./note.ts";
export { initPoolState, insertNote, insertNoteTraced, readPool, selectNotes, validOf, type InsertTrace, type PoolRead, type PoolState } from "./pool.ts";
export {
  crossLayerAttention, crossTokenAttention, crossTokenRead, crossTokenValues, initCrossLayer, initCrossToken, poolAttention, poolAttentionWeighted, stateImportance, type ReadValues,
  type CrossLayerParams, type CrossTokenParams, type CrossTokenParts, type CrossTokenRead,
} from "./attention.ts";
export { FUSION_CONV_K, fuseInto, fuseMemory, fusionTerm, initFusion, initFusionState, type FusionKind, type FusionParams } from "./fusion.ts";
export {
  initLayer, initLayerState, memMambaLayer, type LayerContext, type LayerCounts, type LayerParams, type LayerResult, type LayerState,
  type LayerTrace,
} from "./layer.ts";
export { initTransformerLayer, ropeTables, transformerLayer, transformerTuning, type Rope, type TransformerLayerParams } from "./transformer.ts";
export {
  apply, auxOf, forward, forwardFrom, initLM, loss, type ApplyOptions, type ForwardOptions, type ForwardResult, type LMAux, type LMOutput, type LMParams,
} from "./model.ts";
export { initState, stateElementCount, type LMState } from "./state.ts";
export { applyChunked, feed, step, type ChunkOptions, type StepOptions, type StepOutput } from "./stream.ts";
export { derived, StepCache, withStepCache } from "./derived.ts";
export { lm } from "./lm.ts";
export { HostRng, keyAt } from "./data/rng.ts";
export * from "./data/text.ts";
export * from "./tasks/passkey.ts";
export * from "./tasks/docret.ts";
export {
  crossLayerFidelity, ECLMF_GAPS, ECLMF_LAMBDA, eclmf, eclmfFromStates, ETMF_DISTANCES, etmf, etmfFromStates, layerRepresentations, metrics,
  tokenReconstruction, type EclmfOptions, type EclmfResult, type EtmfModelOptions, type EtmfOptions, type EtmfReconstruction, type EtmfResult,
} from "./metrics/index.ts";
