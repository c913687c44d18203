/**
 * Where the examples get a model: a file named on the command line (a training checkpoint or a
 * shipped weights file), else the first *.safetensors under the repository's weights/ folder
 * (shipped trained weights, when present), else nothing (the example then makes its own).
 * Shared by finetune.ts and stream-stdin.ts.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LMParams } from "@memmamba/memmamba";
// loadModelFile opens both of the CLI's file kinds (checkpoint and weights file), by path
import { loadModelFile } from "../packages/cli/src/weights.ts";

/** The repository's weights/ folder. */
export const WEIGHTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "weights");

/** The first *.safetensors (by name) directly under `dir`, or undefined. */
export function shippedWeightsFile(dir = WEIGHTS_DIR): string | undefined {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  const name = readdirSync(dir).filter((n) => n.endsWith(".safetensors")).sort()[0];
  return name ? join(dir, name) : undefined;
}

/** A loaded model and a line saying where it came from. */
export interface ModelSource {
  params: LMParams;
  source: string;
}

/**
 * The model at `path` if given (errors name the path), else the shipped weights if any, else
 * undefined. `weightsDir` overrides where shipped weights are looked for (tests).
 */
export function loadModelSource(path?: string, weightsDir = WEIGHTS_DIR): ModelSource | undefined {
  const file = path ?? shippedWeightsFile(weightsDir);
  if (!file) return undefined;
  const m = loadModelFile(file);
  return { params: m.params, source: `${file} (${m.config.kind}, d=${m.config.dModel}, ${m.config.nLayers} layers, step ${m.checkpoint.step})` };
}
