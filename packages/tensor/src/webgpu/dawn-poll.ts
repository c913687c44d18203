/**
 * How the JavaScript thread waits for Dawn (Node, Bun, and Deno with dawn.node).
 *
 * dawn.node has no thread of its own that resolves its promises: while any of them is pending
 * (`mapAsync`, `onSubmittedWorkDone`, ...) it polls, each poll a native callback that processes
 * Dawn's events and schedules the next poll through the global `setImmediate`, looked up at every
 * poll. So a thread that awaits the GPU runs at 100% for the whole wait, and makes garbage (a new
 * native function a poll) that the collector then clears, during the wait and after it. Measured
 * (2026-11-28, the 2-vCPU CI machine, lavapipe, `train-throughput --kinds memmamba --batch 1
 * --seq 64`): of the main thread's time, 24% in those polls and 25% in the garbage collector;
 * on a software adapter the spinning thread takes a core from the adapter's own threads.
 *
 * `installDawnPollBackoff` wraps `globalThis.setImmediate`: a native callback (what dawn.node
 * passes; JavaScript callbacks are scheduled as before) runs at once during the first `spinMs`
 * of a wait, as Dawn's own polling does (short waits stay short), and after that with
 * `setTimeout(·, sleepMs)`: one poll a millisecond instead of hundreds. A wait starts when our
 * backend starts one (`dawnWaitStarts`) or when no native poll came for `gapMs`.
 *
 * The spin window (`defaultSpinMs`): 2 ms on a software adapter, whose threads need the core
 * (lavapipe, the small preset's training step at 1 × 64 tokens: MemMamba 3231 → 1821 ms, Mamba
 * 1485 → 796 under Node, alike under Bun); 25 ms on a GPU, so that a training step's wait for its
 * loss still spins (on an H100, alternated runs: Mamba's per-step-synced step 35.5 → 36.1 ms with
 * a 2 ms window, the timer's millisecond granularity), and only longer waits back off.
 *
 * `MEMMAMBA_DAWN_POLL`: `backoff` (default), `backoff:S` (spinMs S), or `spin` (Dawn's own
 * polling, nothing wrapped).
 */
// deno-lint-ignore-file no-explicit-any
import { readEnv } from "../env.ts";

/** The spin window of a wait: on a software adapter (see the module note), on a GPU. */
export function defaultSpinMs(softwareAdapter: boolean): number {
  return softwareAdapter ? 2 : 25;
}

/** The backoff's timing. */
export interface DawnPollOptions {
  /** Milliseconds of a wait during which polls run at once (default 2; the backend sets `defaultSpinMs`). */
  spinMs: number;
  /** The delay of each later poll, in milliseconds (default 1: the shortest timer). */
  sleepMs: number;
  /** A native poll this long after the last one starts a new wait (default 4). */
  gapMs: number;
}

/** What the backoff has done since it was installed. */
export interface DawnPollStats {
  /** True once the wrapper is in place. */
  installed: boolean;
  /** The options in force (undefined when not installed). */
  options?: DawnPollOptions;
  /** Native polls seen. */
  polls: number;
  /** Of those, the polls deferred by a timer. */
  deferred: number;
}

const DEFAULTS: DawnPollOptions = { spinMs: 2, sleepMs: 1, gapMs: 4 };
const INSTALLED = Symbol.for("memmamba.dawnPollBackoff");
const nativeText = /\{\s*\[native code\]\s*\}\s*$/;

let state: { options: DawnPollOptions; polls: number; deferred: number; waitStart: number; last: number } | undefined;

function isNative(fn: unknown): boolean {
  return typeof fn === "function" && nativeText.test(Function.prototype.toString.call(fn));
}

/**
 * The backoff's options from `MEMMAMBA_DAWN_POLL` (see the module note): {} for the default, a
 * spinMs for `backoff:S`, undefined for `spin`; a bad value is an error that names the variable
 * and the values it takes.
 */
export function dawnPollFromEnv(value = readEnv("MEMMAMBA_DAWN_POLL")): Partial<DawnPollOptions> | undefined {
  const v = value?.trim().toLowerCase();
  if (!v || v === "backoff") return {};
  if (v === "spin") return undefined;
  const m = /^backoff:(\d+(?:\.\d+)?)$/.exec(v);
  if (m) return { spinMs: Number(m[1]) };
  throw new Error(`MEMMAMBA_DAWN_POLL=${value}: expected "backoff" (the default), "backoff:<spin ms>" or "spin"`);
}

/**
 * Wraps `globalThis.setImmediate` (see the module note), once: a later call only sets the
 * options (the defaults, then `options`). Does nothing where the global has no `setImmediate`.
 */
export function installDawnPollBackoff(options: Partial<DawnPollOptions> = {}): void {
  const g = globalThis as any;
  const original = g.setImmediate;
  if (state) {
    state.options = { ...DEFAULTS, ...options };
    return;
  }
  if (typeof original !== "function" || original[INSTALLED]) return;
  state = { options: { ...DEFAULTS, ...options }, polls: 0, deferred: 0, waitStart: 0, last: -Infinity };
  const s = state;
  const wrapped = function (this: unknown, fn: unknown, ...args: unknown[]) {
    if (!isNative(fn)) return original.call(this, fn, ...args);
    const now = performance.now();
    if (now - s.last > s.options.gapMs) s.waitStart = now;
    s.last = now;
    s.polls++;
    if (now - s.waitStart < s.options.spinMs) return original.call(this, fn, ...args);
    s.deferred++;
    return setTimeout(fn as (...a: unknown[]) => void, s.options.sleepMs, ...args);
  };
  Object.defineProperty(wrapped, INSTALLED, { value: true });
  if (original.__promisify__) (wrapped as any).__promisify__ = original.__promisify__; // node:util's promisify(setImmediate)
  g.setImmediate = wrapped;
}

/** Our backend is about to await Dawn: the polls of this wait spin first. */
export function dawnWaitStarts(): void {
  if (state) {
    state.waitStart = performance.now();
    state.last = state.waitStart;
  }
}

/** Counters of the backoff (for benchmarks and tests). */
export function dawnPollStats(): DawnPollStats {
  return state
    ? { installed: true, options: { ...state.options }, polls: state.polls, deferred: state.deferred }
    : { installed: false, polls: 0, deferred: 0 };
}
