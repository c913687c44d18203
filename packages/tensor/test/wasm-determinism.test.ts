/**
 * The "wasm-simd" kernel choice (no fused multiply-add anywhere) gives the same bits under Bun
 * (JavaScriptCore) and Deno (V8): each runtime computes the fingerprint of a set of large kernels
 * in-process and runs the other runtime on the same set (wasm-fingerprint.ts). The relaxed build's
 * matmul may differ between the two (relaxed_madd fuses on V8, not on JavaScriptCore), so tests
 * that pin cross-runtime bits choose "wasm-simd".
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, runtime, test } from "../../../test/support/harness.ts";
import { createWasmBackend } from "../src/wasm/backend.ts";
import { fingerprintKernels, hashArrays } from "./wasm-support.ts";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const script = fileURLToPath(new URL("./wasm-fingerprint.ts", import.meta.url));

test('"wasm-simd" kernels give the same bits under Bun and Deno', async () => {
  const b = await createWasmBackend({ kernels: "wasm-simd", quiet: true });
  let here: string;
  try {
    here = hashArrays(fingerprintKernels(b));
  } finally {
    b.dispose();
  }
  const other = runtime === "bun" ? "deno" : "bun";
  const bin = `${root}/tools/node_modules/.bin/${other}`;
  const args = other === "deno" ? ["run", "--allow-all", script, "wasm-simd"] : [script, "wasm-simd"];
  const r = spawnSync(bin, args, { encoding: "utf8", cwd: root });
  if (r.status !== 0) throw new Error(`${other} failed (${r.status}): ${r.stderr}`);
  expect(r.stdout.trim().split("\n").pop()).toBe(here);
}, 120_000);
