/**
 * A suite's report from its runs' phase files: each seed's values for the suite's columns, and
 * <out>/<suite>/results.json, results.md and results.svg (the pure pieces: ../ablation.ts).
 */
import { join } from "node:path";
import { preset } from "@memmamba/memmamba";
import {
  type AblationSettings, buildSuiteResult, markdownTable, type SeedResult, suiteColumns, suitePlot, type SuiteResult, SuiteResultSchema,
  type SuiteSpec, type VariantSpec,
} from "../ablation.ts";
import { writeSvg } from "../plot.ts";
import { writeJson } from "./common.ts";
import { type Context, runDir } from "./ablate-args.ts";
import { MetricsFileSchema, PplFileSchema, readPhase, TrainDoneSchema, ValFileSchema } from "./ablate-phases.ts";

/** One seed's values for a suite's columns, from the run's phase files. */
function seedResult(c: Context, run: string, seed: number): SeedResult {
  const dir = runDir(c, run, seed);
  const trained = readPhase(join(dir, "train.json"), TrainDoneSchema);
  const base = { seed, train: trained ? { steps: trained.steps, tokens: trained.tokens, seconds: trained.seconds, tokensPerSecond: trained.tokensPerSecond, finalLoss: trained.finalLoss } : null };
  if (trained?.status === "diverged") return { ...base, status: "diverged", values: {} };
  if (!trained || trained.steps !== c.steps) return { ...base, status: "missing", values: {} };
  const values: Record<string, number | null> = {};
  const step = trained.steps;
  const ppl = readPhase(join(dir, "eval-ppl.json"), PplFileSchema);
  let missing = false;
  if (ppl && ppl.settings.step === step) for (const r of ppl.rows) values[`ppl@${r.length}`] = r.ppl;
  const m = readPhase(join(dir, "eval-metrics.json"), MetricsFileSchema);
  if (m && m.settings.step === step) {
    values.etmf = m.etmf;
    for (const g of m.eclmf) values[`eclmf@${g.gap}`] = g.value;
  }
  const v = readPhase(join(dir, "eval-val.json"), ValFileSchema);
  if (v && v.settings.step === step) Object.assign(values, { valLoss: v.valLoss, notesRate: v.notesRate, readsRate: v.readsRate });
  if (!ppl && !m && !v) missing = true;
  return { ...base, status: missing ? "missing" : "done", values };
}

export function writeSuite(c: Context, suite: SuiteSpec, runOf: Map<string, string>, reference: string, settings: AblationSettings): SuiteResult {
  const columns = suiteColumns(suite, { lengths: c.lengths, nLayers: preset(c.presetName).nLayers });
  const variants = suite.variants.map((spec: VariantSpec) => {
    const run = runOf.get(spec.id)!;
    const seeds = c.f.seeds.map((s) => {
      const r = seedResult(c, run, s);
      // a seed is complete for this suite only when every column has been evaluated
      if (r.status === "done" && columns.some((col) => !(col.key in r.values))) return { ...r, status: "missing" as const };
      return r;
    });
    return { spec, run, seeds };
  });
  const result = SuiteResultSchema.parse(buildSuiteResult(suite, settings, columns, variants, reference));
  const dir = join(c.f.out, suite.name);
  writeJson(join(dir, "results.json"), result);
  writeSvg(join(dir, "results.md"), markdownTable(result));
  writeSvg(join(dir, "results.svg"), suitePlot(result));
  return result;
}
