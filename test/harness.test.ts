import { expect, runtime, test } from "./support/harness.ts";
test("the harness knows its runtime", () => {
  expect(["bun", "deno"]).toContain(runtime);
});
