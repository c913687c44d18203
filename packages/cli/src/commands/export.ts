/**
 * `bun run export-weights`: writes a checkpoint's weights alone, in half precision, with the model
 * config in the metadata (see ../weights.ts) — the files shipped under weights/, which `passkey`
 * and `eval` load like a checkpoint.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand, flag, type ParseResult, UsageError } from "../args.ts";
import { type CommandIO, defaultIO, requirePath } from "./common.ts";
import { exportWeights } from "../weights.ts";

export const exportCommand = defineCommand({
  name: "export-weights",
  summary: "write a checkpoint's weights alone (F16 or BF16, config in the metadata) for shipping; passkey and eval load them",
  usage: "bun run export-weights --checkpoint <file> --out <file> [flags]      (deno task export-weights ...)",
  flags: {
    checkpoint: flag.path("the training checkpoint (or weights file) to read", { default: "runs/train/checkpoint.safetensors" }),
    out: flag.path("the weights file to write (e.g. weights/memmamba-small.safetensors)", { required: true }),
    overwrite: flag.bool("replace --out if it already exists (never the --checkpoint itself)"),
    dtype: flag.enum(["F16", "BF16", "F32"], "storage type of the weights (F16: 11-bit mantissa, range ±65504; BF16: 8-bit mantissa, f32's range)", { default: "F16" }),
  },
  epilog: `Example:
  bun run export-weights --checkpoint runs/exp/passkey-memmamba/checkpoint.safetensors --out weights/memmamba-small.safetensors
  deno task passkey --checkpoint weights/memmamba-small.safetensors --lengths 1k,2k,4k`,
});

export type ExportArgs = ParseResult<typeof exportCommand.spec.flags>;

/** Runs `export-weights`; returns what exportWeights reports. */
export function runExport(args: ExportArgs, io: CommandIO = defaultIO): ReturnType<typeof exportWeights> {
  const f = args.flags;
  requirePath("export-weights", "--checkpoint", f.checkpoint);
  if (!f.out) throw new UsageError("export-weights: --out is required");
  if (resolve(f.out) === resolve(f.checkpoint)) throw new UsageError(`export-weights: --out ${f.out} is the --checkpoint itself: write the weights to another file`);
  if (existsSync(f.out)) {
    if (statSync(f.out).isDirectory()) throw new UsageError(`export-weights: --out ${f.out} is a directory: give the file to write (e.g. ${f.out}/model.safetensors)`);
    if (!f.overwrite) throw new UsageError(`export-weights: --out ${f.out} already exists: choose another file, or pass --overwrite to replace it`);
  }
  const r = exportWeights(f.checkpoint, f.out, f.dtype);
  io.out(`export-weights: ${f.out}: ${r.parameters} parameters as ${f.dtype}, ${(r.bytes / 2 ** 20).toFixed(2)} MiB (a ${String(r.config.kind)} from step ${r.step} of ${f.checkpoint})\n`);
  return r;
}
