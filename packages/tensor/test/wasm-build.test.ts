/**
 * The committed wasm kernels (src/wasm/kernels-wasm.ts) match their C sources: rebuilds them with
 * packages/tensor/wasm/build.sh and compares the bytes. Needs clang-19 and wasm-ld-19 (Debian:
 * apt-get install clang-19 lld-19); where they are missing the test prints why and passes. It runs
 * under Bun only (the bytes do not depend on the runtime; this saves the second build's seconds).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, runtime, test } from "../../../test/support/harness.ts";
import { wasmBytes } from "../src/wasm/module.ts";

const script = fileURLToPath(new URL("../wasm/build.sh", import.meta.url));

test("src/wasm/kernels-wasm.ts is what packages/tensor/wasm/build.sh builds from the C sources", () => {
  if (runtime !== "bun") {
    console.log("the wasm rebuild check runs under Bun (the build does not depend on the runtime)");
    return;
  }
  const probe = spawnSync("clang-19", ["--version"], { encoding: "utf8" });
  const ld = spawnSync("wasm-ld-19", ["--version"], { encoding: "utf8" });
  if (probe.status !== 0 || ld.status !== 0) {
    console.log("skipping the wasm rebuild check: clang-19 / wasm-ld-19 not found (apt-get install clang-19 lld-19)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "memmamba-wasm-"));
  try {
    const r = spawnSync("bash", [script, "--out", dir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`build.sh failed (${r.status}): ${r.stderr}`);
    for (const v of ["simd", "relaxed"] as const) {
      const built = new Uint8Array(readFileSync(join(dir, `kernels-${v}.wasm`)));
      const committed = wasmBytes(v);
      if (built.length !== committed.length || built.some((x, i) => x !== committed[i])) {
        throw new Error(`kernels-${v}.wasm differs from the committed build (${built.length} vs ${committed.length} bytes): run 'bash packages/tensor/wasm/build.sh'`);
      }
      expect(built.length).toBeGreaterThan(1000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
