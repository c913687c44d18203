/**
 * The ablation suites of `bun run ablate` (the paper's §5.2 and appendix) as data, and the pure
 * pieces of their report: per-seed values → mean ± spread, the "real difference" rule, the
 * results JSON schema, the Markdown table and the SVG plot. The command that trains and
 * evaluates the variants is ./commands/ablate.ts (with the ./commands/ablate-*.ts modules it
 * builds on).
 *
 * A variant is a set of config overrides on top of the preset. Variants whose resolved configs are
 * equal share one training run (at the `small` preset, max pooling, weighted fusion, k = 50,
 * S = 64 and τ1 = τ2 = 0.5 are all the full MemMamba), so each distinct config is trained once per
 * seed, whichever suites list it.
 *
 * Spread and the rule. With values v_1 … v_n of a variant over n seeds, its spread is half their
 * range, (max − min) / 2, shown as "mean ± spread" (so the interval is [min, max]). A difference
 * from the reference (the full MemMamba) is called real only when it exceeds the spread of both,
 * |mean_v − mean_ref| > spread_v + spread_ref, i.e. their seed intervals do not overlap; with
 * fewer than two seeds on either side nothing is called real.
 */
import { z } from "zod";
import { ECLMF_GAPS, type ConfigOverrides, type ModelConfig } from "@memmamba/memmamba";
import { heatmap, linePlot } from "./plot.ts";

/** The suites, in the order `--suite all` runs them. */
export const SUITE_NAMES = ["core", "fidelity", "pooling", "fusion", "sensitivity"] as const;
/** One of {@link SUITE_NAMES}. */
export type SuiteName = (typeof SUITE_NAMES)[number];

/** What a suite measures on each of its runs. */
export type Phase = "ppl" | "metrics" | "val";

/** One variant of a suite: a name, a label and its config overrides. */
export interface VariantSpec {
  /** Stable name (the run directory's name when it does not share a run). */
  id: string;
  /** What the table calls it. */
  label: string;
  /** Config overrides on top of the preset (kind and memory only). */
  overrides: ConfigOverrides;
}

/** A suite: its variants, what it measures on them, and the paper's finding. */
export interface SuiteSpec {
  name: SuiteName;
  title: string;
  /** The paper's finding, quoted beside ours. */
  paper: string;
  phases: readonly Phase[];
  variants: readonly VariantSpec[];
}

const full: VariantSpec = { id: "full", label: "full MemMamba", overrides: {} };
const coreVariants: VariantSpec[] = [
  full,
  { id: "no-memory", label: "no Note Block / pool (plain Mamba)", overrides: { kind: "mamba" } },
  { id: "no-cross-token", label: "no cross-token attention", overrides: { memory: { crossToken: false } } },
  { id: "no-cross-layer", label: "no cross-layer attention", overrides: { memory: { crossLayer: { enabled: false } } } },
];

/** The sensitivity grid: pool size k, summary size S, and the thresholds τ1 (write) and τ2 (read). */
export const SENSITIVITY = Object.freeze({
  poolSize: [10, 25, 50, 100],
  summaryDim: [32, 64, 128],
  tau1: [0.25, 0.5, 0.75],
  tau2: [0.25, 0.5, 0.75],
});

/** Every suite by name. Every suite lists a variant of the full config, the reference of its comparisons. */
export const SUITES: Readonly<Record<SuiteName, SuiteSpec>> = Object.freeze({
  core: {
    name: "core",
    title: "Core mechanisms (paper Fig. 3): perplexity by context length",
    paper: "each mechanism helps: removing the Note Block and pool, cross-token attention or cross-layer attention raises perplexity, most at long contexts",
    phases: ["ppl", "val"],
    variants: coreVariants,
  },
  fidelity: {
    name: "fidelity",
    title: "Memory fidelity across variants (paper Fig. 4): ETMF and ECLMF",
    paper: "the full MemMamba keeps the highest token (ETMF) and cross-layer (ECLMF) fidelity; plain Mamba the lowest",
    phases: ["metrics"],
    variants: coreVariants,
  },
  pooling: {
    name: "pooling",
    title: "Pooling of the note summary (paper Fig. 6, §A.3.1): perplexity by context length",
    paper: "plain max pooling is best",
    phases: ["ppl", "val"],
    variants: [
      { id: "pool-max", label: "max", overrides: { memory: { pooling: "max" } } },
      { id: "pool-mean", label: "mean", overrides: { memory: { pooling: "mean" } } },
      { id: "pool-tmaxavg", label: "T-Max-Avg", overrides: { memory: { pooling: "tmaxavg" } } },
      { id: "pool-s3pool", label: "S3Pool", overrides: { memory: { pooling: "s3pool" } } },
    ],
  },
  fusion: {
    name: "fusion",
    title: "Fusion of the attention reads (paper Table 4): perplexity by context length",
    paper: "residual and weighted fusion are best on long contexts; 1-D convolution is worst",
    phases: ["ppl", "val"],
    variants: [
      { id: "fusion-weighted", label: "weighted", overrides: { memory: { fusion: "weighted" } } },
      { id: "fusion-gated", label: "gated", overrides: { memory: { fusion: "gated" } } },
      { id: "fusion-residual", label: "residual", overrides: { memory: { fusion: "residual" } } },
      { id: "fusion-product", label: "elementwise product", overrides: { memory: { fusion: "product" } } },
      { id: "fusion-conv1d", label: "1-D convolution", overrides: { memory: { fusion: "conv1d" } } },
    ],
  },
  sensitivity: {
    name: "sensitivity",
    title: "Sensitivity (paper appendix): pool size k, summary size S, thresholds τ1 and τ2",
    paper: "performance is stable over a range of k, S and thresholds (the paper uses k = 50, S = 64)",
    phases: ["ppl", "val"],
    variants: [
      full,
      ...SENSITIVITY.poolSize.map((k) => ({ id: `k-${k}`, label: `pool size k = ${k}`, overrides: { memory: { poolSize: k } } })),
      ...SENSITIVITY.summaryDim.map((s) => ({ id: `summary-${s}`, label: `summary size S = ${s}`, overrides: { memory: { summaryDim: s } } })),
      ...SENSITIVITY.tau1.map((t) => ({ id: `tau1-${t}`, label: `τ1 = ${t} (write)`, overrides: { memory: { tau1: t } } })),
      ...SENSITIVITY.tau2.map((t) => ({ id: `tau2-${t}`, label: `τ2 = ${t} (read)`, overrides: { memory: { tau2: t } } })),
    ],
  },
});

/** The suites that `--suite` names (`all`: every one, in order). */
export function suitesOf(name: SuiteName | "all"): SuiteSpec[] {
  return name === "all" ? SUITE_NAMES.map((n) => SUITES[n]) : [SUITES[name]];
}

/** A key that is equal for equal configs (the config with its keys sorted). */
export function configKey(c: ModelConfig): string {
  const sort = (v: unknown): unknown =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]))
      : v;
  return JSON.stringify(sort(c));
}

// ---------- statistics ----------

/** A column's values over the seeds of one variant. */
export interface Stat {
  mean: number | null;
  /** Half the range over seeds: the interval mean ± spread is [min, max]-wide. */
  spread: number | null;
  min: number | null;
  max: number | null;
  /** Seeds with a finite value. */
  n: number;
}

/** Mean, spread (half the range), min and max of the finite values. */
export function summarize(values: readonly (number | null)[]): Stat {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { mean: null, spread: null, min: null, max: null, n: 0 };
  const min = Math.min(...v), max = Math.max(...v);
  return { mean: v.reduce((a, b) => a + b, 0) / v.length, spread: (max - min) / 2, min, max, n: v.length };
}

/**
 * The rule: a difference between two variants is real only when it exceeds the spread between
 * seeds of both (their seed intervals do not overlap), and each has at least two seeds.
 */
export function isRealDifference(a: Stat, b: Stat): boolean {
  if (a.n < 2 || b.n < 2 || a.mean === null || b.mean === null) return false;
  return Math.abs(a.mean - b.mean) > a.spread! + b.spread!;
}

// ---------- the results JSON ----------

const num = z.number().nullable();
const StatSchema = z.object({ mean: num, spread: num, min: num, max: num, n: z.number().int().min(0) });

/** One column of a suite's table: a key into each seed's values. */
export const ColumnSchema = z.object({
  key: z.string(),
  label: z.string(),
  /** Which direction is better (for the reader; the rule does not depend on it). */
  better: z.enum(["lower", "higher", "neither"]),
});
/** See {@link ColumnSchema}. */
export type Column = z.infer<typeof ColumnSchema>;

/** One seed of a variant: its status, its values by column key, and its training record. */
export const SeedResultSchema = z.object({
  seed: z.number().int(),
  /** done: trained and evaluated; diverged: training stopped on non-finite steps (no values); missing: not run yet. */
  status: z.enum(["done", "diverged", "missing"]),
  values: z.record(z.string(), num),
  train: z.object({ steps: z.number().int(), tokens: z.number(), seconds: z.number(), tokensPerSecond: num, finalLoss: num }).nullable(),
});
/** See {@link SeedResultSchema}. */
export type SeedResult = z.infer<typeof SeedResultSchema>;

/** One variant of a suite's results: its seeds, their summary per column, and the comparison with the reference. */
export const VariantResultSchema = z.object({
  id: z.string(),
  label: z.string(),
  /** The run directory it was trained in (shared by variants of equal config). */
  run: z.string(),
  overrides: z.record(z.string(), z.unknown()),
  seeds: z.array(SeedResultSchema),
  summary: z.record(z.string(), StatSchema),
  /** Against the reference: difference of means and whether it is real (see the rule). */
  vsReference: z.record(z.string(), z.object({ diff: num, real: z.boolean() })),
});
/** See {@link VariantResultSchema}. */
export type VariantResult = z.infer<typeof VariantResultSchema>;

/** The budget and evaluation settings a suite's results were made with. */
export const AblationSettingsSchema = z.object({
  preset: z.string(),
  backend: z.string(),
  steps: z.number().int(),
  seqLen: z.number().int(),
  batch: z.number().int(),
  accum: z.number().int(),
  lr: z.number(),
  warmup: z.number().int(),
  /** Training tokens per variant and seed: steps × batch × accum × seqLen (the same for every variant). */
  tokensPerRun: z.number().int(),
  seeds: z.array(z.number().int()),
  data: z.string(),
  split: z.string(),
  lengths: z.array(z.number().int()),
  windowsPerBook: z.number().int(),
  scoredTokens: z.number().int(),
  metricsLen: z.number().int(),
  metricsSamples: z.number().int(),
});
/** See {@link AblationSettingsSchema}. */
export type AblationSettings = z.infer<typeof AblationSettingsSchema>;

/** A suite's results.json (`format` "memmamba-ablation", version 1). */
export const SuiteResultSchema = z.object({
  format: z.literal("memmamba-ablation"),
  version: z.literal(1),
  suite: z.enum(SUITE_NAMES),
  title: z.string(),
  paper: z.string(),
  /** Every variant has a value for every seed (no run missing). */
  complete: z.boolean(),
  settings: AblationSettingsSchema,
  /** The variant every other is compared with. */
  reference: z.string(),
  columns: z.array(ColumnSchema),
  variants: z.array(VariantResultSchema),
});
/** See {@link SuiteResultSchema}. */
export type SuiteResult = z.infer<typeof SuiteResultSchema>;

/** "1K" for 1024, "60K" for 61440, "1000" otherwise. */
function lengthLabel(n: number): string {
  return n % 1024 === 0 ? `${n / 1024}K` : String(n);
}

/** The columns a suite reports (the keys of each seed's values). */
export function suiteColumns(suite: SuiteSpec, s: { lengths: readonly number[]; nLayers: number }): Column[] {
  if (suite.name === "fidelity") {
    return [
      { key: "etmf", label: "ETMF", better: "higher" },
      ...ECLMF_GAPS.filter((g) => g <= s.nLayers).map((g): Column => ({ key: `eclmf@${g}`, label: `ECLMF G=${g}`, better: "higher" })),
    ];
  }
  const cols: Column[] = [
    { key: "valLoss", label: "val loss", better: "lower" },
    ...s.lengths.map((L): Column => ({ key: `ppl@${L}`, label: `PPL ${lengthLabel(L)}`, better: "lower" })),
  ];
  if (suite.name === "sensitivity") {
    cols.push({ key: "notesRate", label: "notes taken", better: "neither" }, { key: "readsRate", label: "pool read", better: "neither" });
  }
  return cols;
}

/** Per-variant summaries and the comparison with the reference (the first variant of equal config to `full`, else the first). */
export function buildSuiteResult(
  suite: SuiteSpec,
  settings: AblationSettings,
  columns: Column[],
  variants: { spec: VariantSpec; run: string; seeds: SeedResult[] }[],
  referenceRun: string,
): SuiteResult {
  const stats = variants.map((v) => Object.fromEntries(columns.map((c) => [c.key, summarize(v.seeds.map((s) => s.values[c.key] ?? null))])));
  let ref = variants.findIndex((v) => v.run === referenceRun);
  if (ref < 0) ref = 0;
  const results: VariantResult[] = variants.map((v, i) => ({
    id: v.spec.id,
    label: v.spec.label,
    run: v.run,
    overrides: v.spec.overrides as Record<string, unknown>,
    seeds: v.seeds,
    summary: stats[i],
    vsReference: Object.fromEntries(columns.map((c) => {
      const a = stats[i][c.key], b = stats[ref][c.key];
      const diff = a.mean !== null && b.mean !== null ? a.mean - b.mean : null;
      return [c.key, { diff, real: i !== ref && isRealDifference(a, b) }];
    })),
  }));
  return {
    format: "memmamba-ablation",
    version: 1,
    suite: suite.name,
    title: suite.title,
    paper: suite.paper,
    complete: variants.every((v) => v.seeds.every((s) => s.status !== "missing")),
    settings,
    reference: variants[ref]?.spec.id ?? "",
    columns,
    variants: results,
  };
}

// ---------- rendering ----------

function fmt(v: number | null, digits: number): string {
  return v === null ? "–" : v.toFixed(digits);
}
function digitsOf(key: string): number {
  return key.startsWith("ppl@") || key === "valLoss" ? 3 : 4;
}

/** The Markdown table of a suite (values as mean ± spread, † on real differences from the reference). */
export function markdownTable(r: SuiteResult): string {
  const s = r.settings;
  const ref = r.variants.find((v) => v.id === r.reference);
  const lines: string[] = [];
  lines.push(`### ${r.title}`, "");
  lines.push(
    `${s.preset} preset, ${s.backend}; every variant trained for ${s.tokensPerRun.toLocaleString("en-US")} tokens ` +
      `(${s.steps} steps × batch ${s.batch} × accumulation ${s.accum} × ${s.seqLen} bytes, lr ${s.lr}` +
      `${s.warmup > 0 ? ` after ${s.warmup} warmup steps` : ""}); seeds ${s.seeds.join(", ")}. ` +
      (r.suite === "fidelity"
        ? `ETMF / ECLMF on ${s.metricsSamples} validation windows of ${s.metricsLen} bytes.`
        : `PPL on the validation split (${s.split}), ${s.windowsPerBook} window(s) per book, the last ${s.scoredTokens} bytes of each scored; val loss on windows of the training length.`),
    "",
  );
  lines.push(`| variant | ${r.columns.map((c) => c.label).join(" | ")} |`);
  lines.push(`|---|${r.columns.map(() => "---:").join("|")}|`);
  for (const v of r.variants) {
    const name = v.id === r.reference ? `${v.label} (reference)` : v.run !== v.id && v.run === ref?.run ? `${v.label} (= reference)` : v.label;
    const diverged = v.seeds.filter((x) => x.status === "diverged").length;
    const missing = v.seeds.filter((x) => x.status === "missing").length;
    const note = [diverged ? `${diverged} seed(s) diverged` : "", missing ? `${missing} seed(s) not run` : ""].filter(Boolean).join(", ");
    const cells = r.columns.map((c) => {
      const st = v.summary[c.key];
      if (st.mean === null) return "–";
      const d = digitsOf(c.key);
      const mark = v.vsReference[c.key]?.real ? " †" : "";
      return st.n >= 2 ? `${fmt(st.mean, d)} ± ${fmt(st.spread, d)}${mark}` : `${fmt(st.mean, d)}${mark}`;
    });
    lines.push(`| ${name}${note ? ` (${note})` : ""} | ${cells.join(" | ")} |`);
  }
  lines.push("");
  lines.push(
    `mean ± half the range over the seeds. † marks a difference from the reference larger than the spread of both ` +
      `(their seed ranges do not overlap): only those are called real; unmarked differences are within seed noise.` +
      (r.variants.some((v) => v.summary[r.columns[0]?.key ?? ""]?.n < 2) ? " With fewer than two seeds nothing is called real." : ""),
  );
  if (r.suite === "sensitivity") {
    lines.push("", "notes taken: notes written per token and layer; pool read: tokens whose read gate opened on a non-empty pool, per token and layer (validation windows of the training length).");
  }
  lines.push("", `Paper: ${r.paper}.`);
  if (!r.complete) lines.push("", "**Incomplete:** some runs are missing; rerun the same command to finish them.");
  return lines.join("\n") + "\n";
}

/** The SVG of a suite: PPL by length per variant (line plot), or a heatmap for fidelity and sensitivity. */
export function suitePlot(r: SuiteResult): string {
  const pplCols = r.columns.filter((c) => c.key.startsWith("ppl@"));
  if (r.suite === "fidelity" || r.suite === "sensitivity") {
    const cols = r.suite === "fidelity" ? r.columns : pplCols;
    const values = r.variants.map((v) => cols.map((c) => v.summary[c.key]?.mean ?? null));
    const finite = values.flat().filter((x): x is number => x !== null && Number.isFinite(x));
    const lo = finite.length ? Math.min(...finite) : 0, hi = finite.length ? Math.max(...finite) : 1;
    return heatmap({
      // (short: the title is centred over the grid, which may be narrow)
      title: r.suite === "fidelity" ? "fidelity (seed mean)" : "perplexity (seed mean)",
      rowLabels: r.variants.map((v) => v.label),
      colLabels: cols.map((c) => c.label),
      values,
      min: lo,
      max: hi > lo ? hi : lo + 1,
      format: (v) => v.toFixed(r.suite === "fidelity" ? 3 : 2),
      xLabel: r.suite === "fidelity" ? "metric" : "context length",
    });
  }
  return linePlot(
    r.variants.map((v) => ({
      name: v.label,
      points: pplCols.map((c) => [Number(c.key.slice(4)), v.summary[c.key]?.mean ?? NaN] as const),
    })),
    { title: `${r.suite}: perplexity by context length (mean over seeds)`, xLabel: "context length (tokens)", yLabel: "perplexity (bytes)" },
  );
}
