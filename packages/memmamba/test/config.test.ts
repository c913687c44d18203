import { existsSync, readdirSync, readFileSync } from "node:fs";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { ConfigError, configJsonSchema, crossLayerSources, dims, hasCrossLayer, parseConfig, preset, presetNames } from "../src/index.ts";

/** parseConfig's (or `f`'s) error message; fails when it does not throw a ConfigError. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  test("presets parse with the documented sizes", () => {
    expect(presetNames).toEqual(["tiny", "small", "paper"]);
    const tiny = preset("tiny");
    expect([tiny.dModel, tiny.nLayers, tiny.dState, tiny.memory.summaryDim, tiny.memory.poolSize]).toEqual([32, 2, 8, 16, 8]);
    const small = preset("small");
    expect([small.dModel, small.nLayers, small.dState, small.memory.summaryDim, small.memory.poolSize]).toEqual([256, 8, 16, 64, 50]);
    expect([small.memory.crossLayer.every, small.memory.crossLayer.group]).toEqual([2, 2]);
    const paper = preset("paper");
    expect([paper.dModel, paper.nLayers, paper.memory.summaryDim, paper.memory.poolSize]).toEqual([768, 24, 64, 50]);
    expect(dims(paper)).toEqual({ d: 768, dInner: 1536, dtRank: 48, N: 16, K: 4 });
  });

  test("defaults fill in, nested overrides merge", () => {
    const c = parseConfig({});
    expect(c.kind).toBe("memmamba");
    expect(c.vocab).toBe(256);
    expect(c.memory.pooling).toBe("max");
    expect(c.memory.fusion).toBe("weighted");
    expect(c.memory.summaryWindow).toBe(4);
    const o = preset("tiny", { memory: { replacement: "fifo", crossLayer: { group: 1 } } });
    expect(o.memory.replacement).toBe("fifo");
    expect(o.memory.crossLayer.group).toBe(1);
    expect(o.memory.crossLayer.every).toBe(2); // kept from the preset
    expect(o.memory.poolSize).toBe(8);
    expect(parseConfig(o)).toEqual(o); // parsing is idempotent
  });

  test("errors name the bad field", () => {
    const msg = (input: unknown) => {
      try {
        parseConfig(input);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("expected an error");
    };
    expect(msg({ memory: { poolSize: 0 } })).toContain("config.memory.poolSize");
    expect(msg({ memory: { pooling: "median" } })).toContain("config.memory.pooling");
    expect(msg({ dModel: 2.5 })).toContain("config.dModel");
    expect(msg({ memory: { tau1: 2 } })).toContain("config.memory.tau1");
    expect(msg({ kind: "transformer", dModel: 30, transformer: { nHeads: 4 } })).toContain("config.transformer.nHeads");
    expect(() => preset("huge" as "tiny")).toThrow(/unknown preset "huge"/);
  });

  test("a key the schema does not know is an error at every level, with the closest known name", () => {
    expect(configError(() => parseConfig({ dModel: 32, nlayers: 3 }))).toBe('invalid model config:\n  config: unknown key "nlayers" (did you mean "nLayers"?)');
    expect(configError(() => parseConfig({ dModl: 32 }))).toContain('config: unknown key "dModl" (did you mean "dModel"?)');
    expect(configError(() => preset("tiny", { memory: { poolsize: 3 } } as never))).toContain('config.memory: unknown key "poolsize" (did you mean "poolSize"?)');
    expect(configError(() => preset("tiny", { memory: { crossLayer: { evry: 3 } } } as never))).toContain('config.memory.crossLayer: unknown key "evry" (did you mean "every"?)');
    expect(configError(() => parseConfig({ transformer: { heads: 2 } }))).toContain('config.transformer: unknown key "heads" (did you mean "nHeads"?)');
    // nothing close: the known keys are listed
    expect(configError(() => parseConfig({ memory: { colour: "red" } }))).toMatch(/config\.memory: unknown key "colour" \(expected one of enabled, summaryDim, poolSize, .*fusion\)/);
    // the JSON Schema says so too
    const s = configJsonSchema() as { additionalProperties?: unknown; properties: Record<string, { additionalProperties?: unknown }> };
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.memory.additionalProperties).toBe(false);
  });

  test("NaN and ±Infinity are named as such (not null), and must be finite", () => {
    const m = configError(() => parseConfig({ dModel: NaN, dtMin: Infinity, dtRank: NaN, memory: { tau1: NaN, tmaxavgThreshold: -Infinity }, transformer: { ropeBase: Infinity } }));
    expect(m).toContain("config.dModel: expected a positive integer; the value must be finite (got NaN)");
    expect(m).toContain("config.dtMin: expected a positive number; the value must be finite (got Infinity)");
    expect(m).toContain('config.dtRank: expected "auto" or a positive integer; the value must be finite (got NaN)');
    expect(m).toContain("config.memory.tau1: expected a number in [0, 1]; the value must be finite (got NaN)");
    expect(m).toContain("config.memory.tmaxavgThreshold: expected a number; the value must be finite (got -Infinity)");
    expect(m).toContain("config.transformer.ropeBase: expected a positive number; the value must be finite (got Infinity)");
    expect(m).not.toContain("null");
    expect(m).not.toContain("Invalid input");
  });

  test("the configs the shipped weights and checkpoints carry still validate", () => {
    const root = new URL("../../../", import.meta.url);
    const files = ["weights/", "packages/cli/test/fixtures/h100-ddp2/"].flatMap((d) => {
      const dir = new URL(d, root);
      return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".safetensors")).map((n) => new URL(n, dir)) : [];
    });
    let checked = 0;
    for (const f of files) {
      const bytes = readFileSync(f);
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      const config = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))).__metadata__?.config;
      if (config === undefined) continue;
      expect(parseConfig(JSON.parse(config)).dModel).toBeGreaterThan(0);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(1); // the h100-ddp2 checkpoint at least
  });

  test("cross-layer schedule: every p layers from l ≥ 1, over the g layers before", () => {
    const c = preset("small");
    const layers = Array.from({ length: 8 }, (_, l) => l).filter((l) => hasCrossLayer(c, l));
    expect(layers).toEqual([1, 3, 5, 7]);
    expect(crossLayerSources(c, 1)).toEqual([0]);
    expect(crossLayerSources(c, 5)).toEqual([3, 4]);
    expect(hasCrossLayer(preset("small", { kind: "mamba" }), 1)).toBe(false);
  });

  test("exports a JSON Schema of the input", () => {
    const s = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    expect(Object.keys(s.properties)).toContain("memory");
    expect(Object.keys(s.properties.memory.properties!)).toContain("replacement");
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });
});
