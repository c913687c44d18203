/**
 * Every backend test runs once per backend (TF.js's describeWithFlags(ALL_ENVS) pattern).
 *
 *   for (const b of testBackends()) test(`[${b}] add broadcasts`, async () => { await useBackend(b); ... });
 *
 * The list: "cpu" and "wasm" (the wasm/FFI CPU backend, src/wasm/backend.ts) always; "webgpu" too
 * unless MEMMAMBA_TEST_BACKENDS says otherwise (e.g. MEMMAMBA_TEST_BACKENDS=cpu). Where no WebGPU adapter exists, a webgpu test prints why and
 * returns — except under CI=true, where it fails: CI must run every backend.
 */
import { getBackend, liveBuffers, setBackend, type Backend } from "../../packages/tensor/src/index.ts";

export type BackendName = "cpu" | "webgpu" | "wasm";

function env(name: string): string | undefined {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  try {
    return g.process?.env?.[name] ?? g.Deno?.env?.get(name);
  } catch {
    return undefined;
  }
}

/** Every backend by default; "webgpu" runs on a GPU or, on a machine without one, on Mesa's lavapipe. */
const DEFAULT_BACKENDS: BackendName[] = ["cpu", "wasm", "webgpu"];

/** The backends tests run on. */
export function testBackends(): BackendName[] {
  const want = env("MEMMAMBA_TEST_BACKENDS");
  const all: BackendName[] = ["cpu", "webgpu", "wasm"];
  if (!want) return DEFAULT_BACKENDS;
  return all.filter((b) => want.split(",").map((s) => s.trim()).includes(b));
}

const instances = new Map<BackendName, Promise<Backend | string>>();

async function create(name: BackendName): Promise<Backend | string> {
  if (name === "cpu") return setBackend("cpu");
  if (name === "wasm") {
    try {
      const mod = await import("../../packages/tensor/src/wasm/backend.ts");
      return await mod.createWasmBackend();
    } catch (e) {
      return `no wasm backend: ${(e as Error).message}`;
    }
  }
  try {
    const mod = await import("../../packages/tensor/src/webgpu/backend.ts");
    return await mod.createWebGpuBackend();
  } catch (e) {
    return `no WebGPU backend: ${(e as Error).message}`;
  }
}

/**
 * Makes `name` the current backend. Returns false (after printing why) when the backend is
 * missing outside CI, so the test can return early; throws under CI=true.
 */
export async function useBackend(name: BackendName): Promise<boolean> {
  let p = instances.get(name);
  if (!p) {
    p = create(name);
    instances.set(name, p);
  }
  const b = await p;
  if (typeof b === "string") {
    if (env("CI") === "true") throw new Error(`${b} (CI must run the WebGPU tests)`);
    console.log(`skipping a ${name} test: ${b}`);
    return false;
  }
  setBackend(b);
  return true;
}

/** Asserts that `fn` leaves no buffer allocated on the current backend. */
export async function expectNoLeak(fn: () => unknown | Promise<unknown>): Promise<void> {
  const before = liveBuffers();
  await fn();
  const after = liveBuffers();
  if (after !== before) throw new Error(`leak on ${getBackend().name}: ${after - before} buffer(s) still live (before ${before}, after ${after})`);
}
