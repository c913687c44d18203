/**
 * One test file, two runtimes: under Bun this re-exports `bun:test`; under Deno it maps
 * `test`/`describe` onto `Deno.test` and takes `expect` from the npm `expect` package.
 * Each test is registered exactly once, so both runners report the same count.
 */
// deno-lint-ignore-file no-explicit-any
type TestFn = () => void | Promise<void>;
interface Harness {
  test: (name: string, fn: TestFn, timeoutMs?: number) => void;
  describe: (name: string, fn: () => void) => void;
  expect: any;
}

const isBun = typeof (globalThis as any).Bun !== "undefined";
let harness: Harness;
if (isBun) {
  const specifier = "bun:test"; // a variable, so Deno's module graph never sees the bun: scheme
  const bun: any = await import(specifier);
  // 300 s unless a test says otherwise: a WebGPU test on lavapipe compiles its shaders with LLVM,
  // and on a fresh machine (an empty shader cache) a few take minutes (Deno sets no limit)
  harness = { test: (n, f, t) => bun.test(n, f, t ?? 300_000), describe: bun.describe, expect: bun.expect };
} else {
  const { expect } = await import("expect");
  const prefix: string[] = [];
  harness = {
    test: (name, fn) =>
      (globalThis as any).Deno.test({ name: [...prefix, name].join(" > "), fn, sanitizeOps: false, sanitizeResources: false }),
    describe: (name, fn) => {
      prefix.push(name);
      try {
        fn();
      } finally {
        prefix.pop();
      }
    },
    expect,
  };
}

export const test = harness.test;
export const describe = harness.describe;
export const expect = harness.expect;
/** Which runtime runs this file: "bun" or "deno". */
export const runtime: "bun" | "deno" = isBun ? "bun" : "deno";
