import { liveBuffers } from "@memmamba/tensor";
import { describe, expect, test } from "../../../test/support/harness.ts";
import { main } from "../../../examples/custom-model.ts";

describe("examples/custom-model.ts", () => {
  test("a Transformer with Note Blocks and cross-token reads learns its batch", async () => {
    const base = liveBuffers();
    const losses = await main({ steps: 20, log: false });
    expect(losses.length).toBe(20);
    expect(losses[19]).toBeLessThan(losses[0] - 1);
    for (let i = 5; i < 20; i += 5) expect(losses[i]).toBeLessThan(losses[i - 5]);
    expect(liveBuffers()).toBe(base);
  });
});
