import { describe, expect, test } from "../../../test/support/harness.ts";
import { ConfigError, configJsonSchema, crossLayerSources, dims, hasCrossLayer, parseConfig, preset, presetNames } from "../src/index.ts";

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
