/**
 * Prints the fingerprint (FNV-1a of the exact bits) of the wasm kernels' outputs on the cross-runtime
 * fingerprint set (wasm-support.ts), for a kernel choice given as the first argument (default
 * "wasm-simd"). wasm-determinism.test.ts runs it under the other runtime and compares.
 */
import { createWasmBackend, type CpuKernelChoice } from "../src/wasm/backend.ts";
import { fingerprintKernels, hashArrays } from "./wasm-support.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const arg = (g.Deno?.args ?? g.process?.argv?.slice(2) ?? [])[0] as CpuKernelChoice | undefined;
const b = await createWasmBackend({ kernels: arg ?? "wasm-simd", quiet: true });
console.log(hashArrays(fingerprintKernels(b)));
b.dispose();
