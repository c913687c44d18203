/**
 * The model configuration: one zod schema (validation, defaults, and the exported JSON Schema),
 * the derived sizes, and the presets.
 *
 * Names are camelCase versions of the Mamba reference's (d_model → dModel, d_state → dState…).
 * Parsing never guesses: a bad field is an error that names its path, e.g.
 * `config.memory.poolSize: expected a positive integer (got 0)`, and a key the schema does not
 * know is an error too (`config: unknown key "nlayers" (did you mean "nLayers"?)`), not a field
 * silently dropped.
 */
import { z } from "zod";

const int = (what: string): z.ZodNumber => z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` });
const posInt: z.ZodNumber = int("a positive integer").positive({ error: "expected a positive integer" });
const unit: z.ZodNumber = z.number({ error: "expected a number in [0, 1]" }).min(0).max(1);
const posNum = (): z.ZodNumber => z.number({ error: "expected a positive number" }).positive({ error: "expected a positive number" });

/** The closest of `known` to `name` (edit distance, case-insensitive), where it is close enough to be a guess. */
function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) && bestD < name.length ? best : undefined;
}

/** Levenshtein distance of two strings (the "did you mean" of unknown keys here and of unknown flags in @memmamba/cli). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** `unknown key "nlayers" (did you mean "nLayers"?)`, or the known keys where none is close. */
function unknownKey(key: string, known: readonly string[]): string {
  const guess = closestName(key, known);
  return `unknown key ${JSON.stringify(key)} ${guess ? `(did you mean ${JSON.stringify(guess)}?)` : `(expected one of ${known.join(", ")})`}`;
}

/** A zod object that rejects the keys it does not know, each answered with the closest known one. */
function strictObject<S extends z.core.$ZodLooseShape>(shape: S): z.ZodObject<S, z.core.$strict> {
  const known = Object.keys(shape);
  return z.strictObject(shape, { error: (iss) => (iss.code === "unrecognized_keys" ? iss.keys.map((k) => unknownKey(k, known)).join("; ") : undefined) });
}

// The zod types of the schemas below, written out: JSR's "no slow types" rule and deno doc want
// exported constants to carry explicit types. tsc checks that they match the schemas. (The objects
// are strict, but their types say $strip: zod's $strict and $strip are the same type, and the API
// docs' lint, scripts/docs-lint.mjs, accepts references to $strip only.)
/** @internal The zod shape of CrossLayerSchema. */
type CrossLayerShape = { enabled: z.ZodDefault<z.ZodBoolean>; every: z.ZodDefault<z.ZodNumber>; group: z.ZodDefault<z.ZodNumber> };
/** @internal The zod shape of MemorySchema. */
type MemoryShape = {
  enabled: z.ZodDefault<z.ZodBoolean>;
  summaryDim: z.ZodDefault<z.ZodNumber>;
  poolSize: z.ZodDefault<z.ZodNumber>;
  tau1: z.ZodDefault<z.ZodNumber>;
  tau2: z.ZodDefault<z.ZodNumber>;
  pooling: z.ZodDefault<z.ZodEnum<{ max: "max"; mean: "mean"; s3pool: "s3pool"; tmaxavg: "tmaxavg" }>>;
  summaryWindow: z.ZodDefault<z.ZodNumber>;
  tmaxavgThreshold: z.ZodDefault<z.ZodNumber>;
  replacement: z.ZodDefault<z.ZodEnum<{ fifo: "fifo"; priority: "priority" }>>;
  stateScore: z.ZodDefault<z.ZodEnum<{ output: "output"; scan: "scan" }>>;
  crossToken: z.ZodDefault<z.ZodBoolean>;
  crossLayer: z.ZodPrefault<z.ZodObject<CrossLayerShape, z.core.$strip>>;
  fusion: z.ZodDefault<z.ZodEnum<{ conv1d: "conv1d"; gated: "gated"; product: "product"; residual: "residual"; weighted: "weighted" }>>;
};
/** @internal The zod shape of TransformerSchema. */
type TransformerShape = {
  nHeads: z.ZodDefault<z.ZodNumber>;
  rotary: z.ZodDefault<z.ZodBoolean>;
  ropeBase: z.ZodDefault<z.ZodNumber>;
  mlpRatio: z.ZodDefault<z.ZodNumber>;
};
/** @internal The zod shape of ModelConfigSchema. */
type ModelConfigShape = {
  kind: z.ZodDefault<z.ZodEnum<{ mamba: "mamba"; memmamba: "memmamba"; transformer: "transformer" }>>;
  dModel: z.ZodDefault<z.ZodNumber>;
  nLayers: z.ZodDefault<z.ZodNumber>;
  vocab: z.ZodDefault<z.ZodNumber>;
  dState: z.ZodDefault<z.ZodNumber>;
  expand: z.ZodDefault<z.ZodNumber>;
  dConv: z.ZodDefault<z.ZodNumber>;
  dtRank: z.ZodDefault<z.ZodUnion<readonly [z.ZodLiteral<"auto">, z.ZodNumber]>>;
  dtMin: z.ZodDefault<z.ZodNumber>;
  dtMax: z.ZodDefault<z.ZodNumber>;
  normEps: z.ZodDefault<z.ZodNumber>;
  memory: z.ZodPrefault<z.ZodObject<MemoryShape, z.core.$strip>>;
  transformer: z.ZodPrefault<z.ZodObject<TransformerShape, z.core.$strip>>;
};

/** Eq. 7/11: every `every` layers, attend over the pools of the `group` layers before. */
export const CrossLayerSchema: z.ZodObject<CrossLayerShape, z.core.$strip> = strictObject({
  enabled: z.boolean().default(true),
  /** Layer l attends across layers when (l + 1) % every == 0 and l ≥ 1 (the paper's p). */
  every: posInt.default(2),
  /** How many earlier layers' pools it reads (the paper's g), l − g … l − 1 (clamped at 0). */
  group: posInt.default(2),
});

/**
 * The memory part of the config (the Note Block, the pool, cross-token and cross-layer attention, the fusion), with defaults.
 */
export const MemorySchema: z.ZodObject<MemoryShape, z.core.$strip> = strictObject({
  /** Off: a plain Mamba with the same backbone. */
  enabled: z.boolean().default(true),
  /** S, the width of a note (the paper's summary dimension). */
  summaryDim: posInt.default(64),
  /** P, the notes each layer's pool holds. */
  poolSize: posInt.default(50),
  /** τ1: a token is written to the pool when I_token > τ1 (Eq. 8). */
  tau1: unit.default(0.5),
  /** τ2: a token reads the pool when I_state > τ2 (Eq. 10). */
  tau2: unit.default(0.5),
  /** Pool_r of the summary: max (the paper's best), mean, T-Max-Avg, S3Pool (see pooling.ts). */
  pooling: z.enum(["max", "mean", "tmaxavg", "s3pool"]).default("max"),
  /** r: each summary feature pools a group of r projected features. */
  summaryWindow: posInt.default(4),
  /** T of T-Max-Avg pooling: a group whose max exceeds T gives its max, else its mean. */
  tmaxavgThreshold: z.number({ error: "expected a number" }).default(0),
  /** When a pool is full: drop the oldest note (fifo) or the lowest-scoring one (priority). */
  replacement: z.enum(["fifo", "priority"]).default("priority"),
  /** What I_state scores: the block output x_l ("output") or the scan readout C·h + D·x ("scan"). */
  stateScore: z.enum(["output", "scan"]).default("output"),
  /** Eq. 6/10: each token attends over its own layer's pool. */
  crossToken: z.boolean().default(true),
  crossLayer: CrossLayerSchema.prefault({}),
  /** Eq. 12: how an attention read is merged into the residual stream. */
  fusion: z.enum(["weighted", "gated", "residual", "product", "conv1d"]).default("weighted"),
});

export const TransformerSchema: z.ZodObject<TransformerShape, z.core.$strip> = strictObject({
  nHeads: posInt.default(4),
  /** Rotary position embeddings on q and k (else the model has no position information). */
  rotary: z.boolean().default(true),
  ropeBase: posNum().default(10000),
  /** Hidden width of the SiLU MLP, as a multiple of dModel. */
  mlpRatio: posInt.default(4),
});

/** The model config: its zod schema (validation, defaults, the JSON Schema of config files). */
export const ModelConfigSchema: z.ZodObject<ModelConfigShape, z.core.$strip> = strictObject({
    /** memmamba: Mamba + notes; mamba: the same backbone without memory; transformer: the baseline. */
    kind: z.enum(["memmamba", "mamba", "transformer"]).default("memmamba"),
    dModel: posInt.default(256),
    nLayers: posInt.default(8),
    /** Byte-level by default. */
    vocab: posInt.default(256),
    /** N, the SSM state size per channel. */
    dState: posInt.default(16),
    /** d_inner = expand · dModel. */
    expand: posInt.default(2),
    /** Kernel of the causal depthwise conv. */
    dConv: posInt.default(4),
    /** R, the rank of Δ's projection: "auto" = ⌈dModel / 16⌉. */
    dtRank: z.union([z.literal("auto"), posInt], { error: `expected "auto" or a positive integer` }).default("auto"),
    /** Δ is initialised log-uniform in [dtMin, dtMax]. */
    dtMin: posNum().default(1e-3),
    dtMax: posNum().default(0.1),
    normEps: posNum().default(1e-5),
    memory: MemorySchema.prefault({}),
    transformer: TransformerSchema.prefault({}),
  }).superRefine((c, ctx) => {
    if (c.dtMin > c.dtMax) ctx.addIssue({ code: "custom", path: ["dtMin"], message: `dtMin (${c.dtMin}) must not exceed dtMax (${c.dtMax})` });
    if (c.kind === "transformer" && c.dModel % c.transformer.nHeads !== 0) {
      ctx.addIssue({ code: "custom", path: ["transformer", "nHeads"], message: `nHeads (${c.transformer.nHeads}) must divide dModel (${c.dModel})` });
    }
    if (c.kind === "transformer" && c.transformer.rotary && (c.dModel / c.transformer.nHeads) % 2 !== 0) {
      ctx.addIssue({ code: "custom", path: ["transformer", "rotary"], message: `rotary needs an even head size, got ${c.dModel / c.transformer.nHeads}` });
    }
  });

/** A validated model config, every default filled in. */
export type ModelConfig = z.output<typeof ModelConfigSchema>;
/** A model config as a user writes it: every field optional. */
export type ModelConfigInput = z.input<typeof ModelConfigSchema>;
/** The memory part of a validated config. */
export type MemoryConfig = ModelConfig["memory"];

/** A config error: the message lists every bad field by its path. */
export class ConfigError extends Error {
  /** The error's name. */
  override name = "ConfigError";
}

/**
 * Validates a config (filling defaults). Throws a ConfigError naming each bad field, and each key
 * the schema does not know (with the closest known name).
 */
export function parseConfig(input: unknown): ModelConfig {
  const r = ModelConfigSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => {
      if (i.code === "unrecognized_keys") return `${["config", ...i.path.map(String)].join(".")}: ${i.message}`;
      const got = valueAt(input, i.path);
      const where = `config.${i.path.map(String).join(".") || "(root)"}`;
      // NaN and ±Infinity: JSON.stringify would print them as null
      if (typeof got === "number" && !Number.isFinite(got)) return `${where}: ${i.message}; the value must be finite (got ${got})`;
      return `${where}: ${i.message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`;
    });
    throw new ConfigError(`invalid model config:\n  ${lines.join("\n  ")}`);
  }
  return r.data;
}

/**
 * parseConfig for a function that takes a config (a layer's initialiser): the error names it,
 * e.g. `initMamba: invalid model config: config.dModel: expected a positive integer (got -3)`.
 */
export function checkConfig(fn: string, config: unknown): ModelConfig {
  try {
    return parseConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${fn}: ${e.message}`);
    throw e;
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const k of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** The JSON Schema of the config's input (what a user may write in a JSON file). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ModelConfigSchema, { io: "input" }) as Record<string, unknown>;
}

/** Sizes derived from a config. */
export interface Dims {
  /** The model width d (dModel). */
  d: number;
  /** The inner width d_inner = expand · d. */
  dInner: number;
  /** R, the rank of Δ's projection. */
  dtRank: number;
  /** The SSM state size per channel. */
  N: number;
  /** The causal conv's kernel size. */
  K: number;
}
/** The sizes a config implies (dtRank "auto" resolved). */
export function dims(c: ModelConfig): Dims {
  return {
    d: c.dModel,
    dInner: c.expand * c.dModel,
    dtRank: c.dtRank === "auto" ? Math.ceil(c.dModel / 16) : c.dtRank,
    N: c.dState,
    K: c.dConv,
  };
}

/** True when the model takes notes (kind memmamba with memory enabled). */
export function usesMemory(c: ModelConfig): boolean {
  return c.kind === "memmamba" && c.memory.enabled;
}

/** True when layer l (0-based) runs cross-layer attention (Eq. 7/11). */
export function hasCrossLayer(c: ModelConfig, l: number): boolean {
  const cl = c.memory.crossLayer;
  return usesMemory(c) && cl.enabled && l >= 1 && (l + 1) % cl.every === 0;
}

/** The earlier layers whose pools layer l reads across layers: l − g … l − 1, clamped at 0. */
export function crossLayerSources(c: ModelConfig, l: number): number[] {
  const out: number[] = [];
  for (let j = Math.max(0, l - c.memory.crossLayer.group); j < l; j++) out.push(j);
  return out;
}

// ---------- presets ----------

/** @internal Every field optional, recursively. */
type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };
/** Overrides on top of a preset: any subset of the config's fields, nested. */
export type ConfigOverrides = DeepPartial<ModelConfigInput>;

/** @internal The presets as config inputs (validated by `preset`). */
const presetInputs = {
  /** For tests: runs in milliseconds on a CPU. */
  tiny: { dModel: 32, nLayers: 2, dState: 8, memory: { summaryDim: 16, poolSize: 8, crossLayer: { every: 2, group: 2 } } },
  /** Our experiments. */
  small: { dModel: 256, nLayers: 8, dState: 16, memory: { summaryDim: 64, poolSize: 50, crossLayer: { every: 2, group: 2 } } },
  /** The paper's size (Mamba-130M backbone). */
  paper: { dModel: 768, nLayers: 24, dState: 16, memory: { summaryDim: 64, poolSize: 50 } },
} satisfies Record<PresetName, ModelConfigInput>;

/** The name of a preset: "tiny" (tests), "small" (our experiments) or "paper" (Mamba-130M size). */
export type PresetName = "tiny" | "small" | "paper";
/** Every preset's name. */
export const presetNames = Object.keys(presetInputs) as PresetName[];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function deepMerge(a: unknown, b: unknown): unknown {
  if (!isPlainObject(a) || !isPlainObject(b)) return b === undefined ? a : b;
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = deepMerge(a[k], v);
  return out;
}

/** A preset's config, with optional overrides (deep-merged, then validated). */
export function preset(name: PresetName, overrides: ConfigOverrides = {}): ModelConfig {
  const base = presetInputs[name];
  if (!base) throw new ConfigError(`unknown preset "${String(name)}" (known: ${presetNames.join(", ")})`);
  return parseConfig(deepMerge(base, overrides));
}
