/**
 * @memmamba/cli — the user's commands (`train`, `passkey`, `eval`) and the pieces they are built
 * from, usable on their own: declarative flags, progress, JSONL logs, SVG plots, atomic
 * safetensors checkpoints and a generic training loop.
 */
export {
  defineCommand, editDistance, flag, helpText, HelpRequested, kebab, parseSizeSuffix, runCli, UsageError,
  type CliIO, type Command, type CommandSpec, type FlagDef, type FlagDefs, type ParsedFlags, type ParseResult, type PositionalDef,
} from "./args.ts";
export { formatCount, formatDuration, Progress, type ProgressOptions, type ProgressStream, type ProgressUpdate } from "./progress.ts";
export { JsonlLogger, readJsonl, toJsonLine, truncateFromStep, type LogRecord } from "./log.ts";
export {
  colorScale, downsample, escapeXml, heatmap, linePlot, logTicks, niceTicks, tickLabel, writeSvg,
  type HeatmapOptions, type LinePlotOptions, type Point, type Series,
} from "./plot.ts";
export {
  CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, decodeCheckpoint, encodeCheckpoint, hostToTree, loadCheckpoint,
  removeStaleTemps, restoreState, saveCheckpoint, treeToHost, writeFileAtomic,
  type AtomicWriteOptions, type CheckpointData, type CheckpointState, type HostTensor, type LoadedCheckpoint, type SaveOptions,
  type AtomicWriteStage, type Key, type WeightDType,
} from "./checkpoint.ts";
export {
  plotLoss, runFiles, train, TRAIN_DEFAULTS,
  type BatchSource, type DataArg, type StepRecord, type TrainableModel, type TrainOptions, type TrainResult,
} from "./trainer.ts";
export { lmTrainable, tokenSource, type HostTokenBatch, type LanguageModel, type LmBatch } from "./adapters.ts";
export { greedyDecode, windowNll, type LoadedModel } from "./inference.ts";
// loadModel (training checkpoints) and loadModelFile (checkpoints and shipped weights files)
export { loadModel, loadModelFile } from "./weights.ts";
export { runTrain, trainCommand, type TrainArgs } from "./commands/train.ts";
export { passkeyCommand, runPasskey, type PasskeyArgs, type PasskeyReport } from "./commands/passkey.ts";
export { evalCommand, runEval, type EvalArgs } from "./commands/eval.ts";
export type { CommandIO } from "./commands/common.ts";
