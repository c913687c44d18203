/**
 * Where the examples get a model: a file named on the command line (a training checkpoint or a
 * shipped weights file), else a MemMamba among the *.safetensors under the repository's weights/
 * folder (shipped trained weights, when present; the first by name whose config is kind
 * "memmamba", else the first by name), else nothing (the example then makes its own).
 * Shared by finetune.ts and stream-stdin.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeSafetensors } from "@memmamba/tensor";
import { type LMParams, parseConfig } from "@memmamba/memmamba";
// loadModelFile opens both of the CLI's file kinds (checkpoint and weights file), by path
import { loadModelFile } from "@memmamba/cli";

/** The repository's weights/ folder. */
export const WEIGHTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "weights");

/**
 * The model kind of a safetensors file's metadata config ("memmamba", "mamba", "transformer"; the
 * config's default where it leaves the kind out), or undefined where the file holds no valid one.
 */
export function modelKindOf(path: string): string | undefined {
  try {
    const config = decodeSafetensors(new Uint8Array(readFileSync(path)), { source: path }).metadata.config;
    return config === undefined ? undefined : parseConfig(JSON.parse(config)).kind;
  } catch {
    return undefined;
  }
}

/**
 * The shipped model directly under `dir`: of its *.safetensors (by name), the first MemMamba
 * (config kind "memmamba"; weights/ also ships the Mamba baseline, whose name sorts first), else
 * the first; undefined when there is none.
 */
export function shippedWeightsFile(dir = WEIGHTS_DIR): string | undefined {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return undefined;
  const files = readdirSync(dir).filter((n) => n.endsWith(".safetensors")).sort().map((n) => join(dir, n));
  return files.find((f) => modelKindOf(f) === "memmamba") ?? files[0];
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
