/**
 * Finds a WebGPU device in whichever runtime we are in.
 *
 * Two ways in:
 * - `navigator.gpu`: browsers, and Deno (wgpu/naga inside; present by default in Deno 2.9, older
 *   versions needed `--unstable-webgpu`).
 * - Dawn, through the `webgpu` npm package (dawn.node): Node, Bun, and Deno as a Node-API addon.
 *
 * `MEMMAMBA_WEBGPU=dawn|navigator` picks one and disables the fallback to the other; unset, we
 * try `navigator.gpu` first when it exists and fall back to Dawn when it finds no adapter.
 * `MEMMAMBA_DAWN_FLAGS` passes space-separated options to Dawn's `create()` (for experiments,
 * e.g. "enable-dawn-features=disable_robustness"; see the `webgpu` package's README).
 * `MEMMAMBA_DAWN_POLL` sets how a wait for Dawn polls (./dawn-poll.ts: backoff by default).
 * On a machine without a GPU both run on Mesa's lavapipe (software Vulkan), which Dawn only
 * accepts from Mesa 25.x (Debian: mesa-vulkan-drivers from bookworm-backports).
 */
// deno-lint-ignore-file no-explicit-any
import { readEnv } from "../env.ts";
import { dawnPollFromEnv, defaultSpinMs, installDawnPollBackoff } from "./dawn-poll.ts";

export type GpuVia = "dawn" | "navigator.gpu";

export interface AcquiredGpu {
  device: GPUDevice;
  /** One line: vendor, architecture, device, description, and whether it is a fallback (software) adapter. */
  adapterInfo: string;
  via: GpuVia;
  /**
   * Must stay reachable for as long as `device` lives: under Bun, a garbage-collected Dawn
   * `GPU` object (from `create()`) crashes Dawn's event polling (segfault, mutex assertion).
   * Store it next to the device. (We also pin it on the device itself as a second guard.)
   */
  keepAlive: unknown;
  /**
   * The adapter's smallest subgroup size where the device has the "subgroups" feature (asked for
   * in `features`; WebGPU's subgroups have at least 4 invocations), else 0 or absent: no subgroup
   * operations.
   */
  subgroupMinSize?: number;
}

/** The limits we ask for at the adapter's maximum, and the least we accept (WebGPU's defaults). */
export const REQUESTED_LIMITS = {
  maxStorageBufferBindingSize: 128 * 2 ** 20,
  maxBufferSize: 256 * 2 ** 20,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
} as const;
export type RequestedLimit = keyof typeof REQUESTED_LIMITS;

export interface AcquireOptions {
  /** Overrides MEMMAMBA_WEBGPU. */
  via?: GpuVia;
  /** Raises the least acceptable value of some limits (defaults: REQUESTED_LIMITS). */
  minLimits?: Partial<Record<RequestedLimit, number>>;
  /** Optional features to enable where the adapter has them (e.g. "timestamp-query"); others are skipped. */
  features?: GPUFeatureName[];
}

const KEEP_ALIVE = Symbol.for("memmamba.webgpu.keepAlive");

function chosenVia(opt?: GpuVia): GpuVia | undefined {
  if (opt) return opt;
  const v = readEnv("MEMMAMBA_WEBGPU")?.trim().toLowerCase();
  if (!v || v === "auto") return undefined;
  if (v === "dawn") return "dawn";
  if (v === "navigator" || v === "navigator.gpu") return "navigator.gpu";
  throw new Error(`MEMMAMBA_WEBGPU=${v}: expected "dawn", "navigator" or "auto"`);
}

function isFallback(adapter: GPUAdapter): boolean {
  return Boolean((adapter as any).info?.isFallbackAdapter ?? (adapter as any).isFallbackAdapter);
}

function describeAdapter(adapter: GPUAdapter): string {
  const info: any = (adapter as any).info ?? {};
  const parts = [info.vendor, info.architecture, info.device, info.description]
    .map((s) => (s === undefined || s === null ? "" : String(s).trim()))
    .filter((s) => s !== "");
  return (parts.length ? parts.join(" | ") : "(no adapter info)") + (isFallback(adapter) ? " [fallback adapter]" : "");
}

const NO_ADAPTER_HINT =
  "likely no Vulkan driver: on Linux without a GPU install Mesa's lavapipe, 25.x " +
  "(Debian 12: `apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1`; " +
  "bookworm's Mesa 22 lacks a feature Dawn requires), then check `vulkaninfo --summary`";

async function loadDawn(): Promise<GPU> {
  const specifier = "webgpu"; // a variable, so bundlers and Deno's graph don't pull dawn.node in eagerly
  let mod: any;
  try {
    mod = await import(specifier);
  } catch (e) {
    // A bundle run from outside the project (`node /tmp/bench.mjs`) cannot resolve the bare
    // name from its own folder: resolve the package from the working directory instead.
    const cwd: string | undefined = (globalThis as any).process?.cwd?.() ?? (globalThis as any).Deno?.cwd?.();
    if (!cwd) throw e;
    const [nodeModule, nodeUrl] = ["node:module", "node:url"];
    const { createRequire } = await import(nodeModule);
    const { pathToFileURL } = await import(nodeUrl);
    let path: string;
    try {
      path = createRequire(`${cwd}/`).resolve(specifier);
    } catch {
      throw e;
    }
    mod = await import(pathToFileURL(path).href);
  }
  Object.assign(globalThis, mod.globals); // GPUBufferUsage, GPUMapMode, ... as in a browser
  return mod.create(readEnv("MEMMAMBA_DAWN_FLAGS")?.split(" ").filter((s: string) => s) ?? []) as GPU;
}

/** Finds an adapter, requests a device with the adapter's maximum for REQUESTED_LIMITS. */
export async function acquireGpu(options: AcquireOptions = {}): Promise<AcquiredGpu> {
  const forced = chosenVia(options.via);
  const nav: GPU | undefined = (globalThis as any).navigator?.gpu;
  const tried: string[] = [];
  let adapter: GPUAdapter | null = null;
  let via: GpuVia | undefined;
  let gpu: GPU | undefined;
  const poll = dawnPollFromEnv(); // a bad value is the caller's error, not a missing Dawn

  const order: GpuVia[] = forced ? [forced] : ["navigator.gpu", "dawn"];
  for (const candidate of order) {
    if (candidate === "navigator.gpu") {
      if (!nav) {
        tried.push("navigator.gpu: not present (Node and Bun have none; older Deno needs --unstable-webgpu)");
        continue;
      }
      gpu = nav;
    } else {
      try {
        gpu = await loadDawn();
      } catch (e) {
        tried.push(`Dawn (npm package "webgpu"): import or create() failed: ${(e as Error)?.message ?? e}`);
        continue;
      }
    }
    try {
      adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
    } catch (e) {
      tried.push(`${candidate}: requestAdapter() threw: ${(e as Error)?.message ?? e}`);
      continue;
    }
    if (adapter) {
      via = candidate;
      break;
    }
    tried.push(`${candidate}: requestAdapter() returned null (${NO_ADAPTER_HINT})`);
  }
  if (!adapter || !via || !gpu) {
    throw new Error(`No WebGPU adapter${forced ? ` (MEMMAMBA_WEBGPU forced ${forced})` : ""}. Tried:\n  - ${tried.join("\n  - ")}`);
  }

  const adapterInfo = describeAdapter(adapter);
  if (via === "dawn" && poll) installDawnPollBackoff({ ...poll, spinMs: poll.spinMs ?? defaultSpinMs(isFallback(adapter)) });
  const requiredLimits: Record<string, number> = {};
  const tooSmall: string[] = [];
  for (const name of Object.keys(REQUESTED_LIMITS) as RequestedLimit[]) {
    const have = (adapter.limits as any)[name] as number;
    const need = options.minLimits?.[name] ?? REQUESTED_LIMITS[name];
    if (!(have >= need)) tooSmall.push(`${name}: adapter has ${have}, need at least ${need}`);
    requiredLimits[name] = have;
  }
  if (tooSmall.length) {
    throw new Error(`WebGPU adapter "${adapterInfo}" via ${via}: limits too small:\n  - ${tooSmall.join("\n  - ")}`);
  }

  const have = adapter.features;
  const requiredFeatures = (options.features ?? []).filter((f) => have.has(f));
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: "memmamba" });
  } catch (e) {
    throw new Error(
      `WebGPU adapter "${adapterInfo}" via ${via}: requestDevice(${JSON.stringify(requiredLimits)}) failed: ${(e as Error)?.message ?? e}`,
    );
  }
  device.lost.then((info) => {
    if (info.reason !== "destroyed") console.error(`WebGPU device lost (${via}, ${adapterInfo}): ${info.reason} ${info.message}`);
  });
  const keepAlive = { gpu, adapter };
  try {
    Object.defineProperty(device, KEEP_ALIVE, { value: keepAlive });
  } catch { /* a non-extensible device object: the caller's reference has to do */ }
  // (an adapter that reports no size still has subgroups of at least 4, WebGPU's least)
  const subgroupMinSize = device.features.has("subgroups") ? Math.max(4, Number((adapter.info as any)?.subgroupMinSize) || 4) : 0;
  return { device, adapterInfo, via, keepAlive, subgroupMinSize };
}
