/**
 * Global engine state: the current backend, the stack of memory scopes, the autodiff tape and the
 * work counters. Kept in one small module so that tensor.ts, dispatch.ts and autodiff.ts share it
 * without import cycles.
 */
import type { Backend } from "./backend.ts";
import type { Tensor } from "./tensor.ts";
import type { TapeNode } from "./dispatch.ts";

/** Work done since the last `resetCounters()`: a count, not a clock. */
export interface WorkCounters {
  /** Floating-point operations the primitives report (their cost rule). */
  flops: number;
  /** Bytes read and written by kernels (inputs + output). */
  bytes: number;
  /** Kernel launches. */
  launches: number;
}

interface EngineState {
  backend: Backend | null;
  scopes: Set<Tensor>[];
  tape: TapeNode[] | null;
  noGradDepth: number;
  counters: WorkCounters;
  nextTensorId: number;
}

export const engine: EngineState = {
  backend: null,
  scopes: [],
  tape: null,
  noGradDepth: 0,
  counters: { flops: 0, bytes: 0, launches: 0 },
  nextTensorId: 1,
};

const backendFactories = new Map<string, () => Backend>();

/** Makes a backend available under a name (the CPU backend registers itself on import). */
export function registerBackend(name: string, factory: () => Backend): void {
  backendFactories.set(name, factory);
}

/** Selects the backend that new tensors are created on. */
export function setBackend(backend: Backend | string): Backend {
  if (typeof backend === "string") {
    const f = backendFactories.get(backend);
    if (!f) throw new Error(`setBackend: no backend named "${backend}" (registered: ${[...backendFactories.keys()].join(", ") || "none"})`);
    engine.backend = f();
  } else engine.backend = backend;
  return engine.backend;
}

/** The current backend (the CPU backend unless `setBackend` chose another). */
export function getBackend(): Backend {
  if (engine.backend) return engine.backend;
  const cpu = backendFactories.get("cpu");
  if (!cpu) throw new Error("no backend: import @memmamba/tensor (which registers the CPU backend) or call setBackend");
  engine.backend = cpu();
  return engine.backend;
}

/** A copy of the work counters, for measuring what a computation does (a count, not a clock). */
export function readCounters(): WorkCounters {
  return { ...engine.counters };
}
/** Sets the work counters back to zero. */
export function resetCounters(): void {
  engine.counters = { flops: 0, bytes: 0, launches: 0 };
}
