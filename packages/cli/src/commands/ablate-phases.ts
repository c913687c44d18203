/**
 * The phase files of an `ablate` run (./ablate.ts's module note): the schemas of train.json,
 * eval-ppl.json, eval-metrics.json and eval-val.json (and of settings.json, the training
 * settings), reading one back, and the comparisons that decide whether a phase is done.
 */
import { existsSync, readFileSync } from "node:fs";
import { z } from "zod";

export const TrainSettingsSchema = z.object({
  preset: z.string(),
  config: z.record(z.string(), z.unknown()),
  seqLen: z.number().int(),
  batch: z.number().int(),
  accum: z.number().int(),
  lr: z.number(),
  warmup: z.number().int(),
  seed: z.number().int(),
  split: z.string(),
});
export type TrainSettings = z.infer<typeof TrainSettingsSchema>;

export const TrainDoneSchema = z.object({
  settings: TrainSettingsSchema,
  status: z.enum(["done", "diverged"]),
  steps: z.number().int(),
  tokens: z.number(),
  seconds: z.number(),
  tokensPerSecond: z.number().nullable(),
  finalLoss: z.number().nullable(),
});
export type TrainDone = z.infer<typeof TrainDoneSchema>;

export const PplFileSchema = z.object({
  settings: z.object({ step: z.number().int(), lengths: z.array(z.number().int()), windows: z.number().int(), scored: z.number().int() }),
  rows: z.array(z.object({ length: z.number().int(), ppl: z.number().nullable(), bitsPerByte: z.number().nullable(), windows: z.number().int(), tokens: z.number().int(), booksSkipped: z.array(z.string()) })),
  seconds: z.number(),
});
export const MetricsFileSchema = z.object({
  settings: z.object({ step: z.number().int(), metricsLen: z.number().int(), samples: z.number().int() }),
  windows: z.number().int(),
  etmf: z.number().nullable(),
  eclmf: z.array(z.object({ gap: z.number().int(), value: z.number().nullable() })),
  seconds: z.number(),
});
export const ValFileSchema = z.object({
  settings: z.object({ step: z.number().int(), seqLen: z.number().int(), batch: z.number().int(), batches: z.number().int() }),
  valLoss: z.number().nullable(),
  notesRate: z.number().nullable(),
  readsRate: z.number().nullable(),
  seconds: z.number(),
});

/** A phase file's content when it parses, else undefined (a torn or foreign file is redone). */
export function readPhase<S extends z.ZodType>(path: string, schema: S): z.infer<S> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const r = schema.safeParse(JSON.parse(readFileSync(path, "utf8")));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

export const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);
export const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The first field where two flat settings objects differ, for the message. */
export function firstDiff(a: Record<string, unknown>, b: Record<string, unknown>): string {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!sameJson(a[k], b[k])) return `${k}: ${JSON.stringify(a[k])} there, ${JSON.stringify(b[k])} now`;
  }
  return "(none)";
}
