/**
 * The README's TypeScript examples are run as written: each ```ts block of the API section is
 * written to a module inside the repository (so @memmamba/* resolve) and imported.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { liveBuffers } from "@memmamba/tensor";
import { expect, runtime, test } from "./support/harness.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(`${root}README.md`, "utf8");
const api = readme.slice(readme.indexOf("## The API"), readme.indexOf("\n## ", readme.indexOf("## The API") + 5));
const blocks = [...api.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

test("the README has API examples", () => {
  expect(blocks.length).toBeGreaterThanOrEqual(3);
});

blocks.forEach((code, i) => {
  test(`README example ${i + 1} runs and frees what it allocates`, async () => {
    const dir = `${root}out/readme-${runtime}`;
    mkdirSync(dir, { recursive: true });
    const file = `${dir}/example-${i + 1}.ts`;
    writeFileSync(file, code);
    const before = liveBuffers();
    const log = console.log;
    const printed: unknown[][] = [];
    console.log = (...a: unknown[]) => void printed.push(a);
    try {
      await import(file);
    } finally {
      console.log = log;
      rmSync(file, { force: true });
    }
    expect(printed.length).toBeGreaterThan(0);
    expect(liveBuffers()).toBe(before);
  });
});
