/**
 * @memmamba/bench — measurement helpers shared by the benchmark programs: runtime and machine
 * detection, timing (warm-up, then the median of N samples), flag parsing, tables and JSON.
 * The programs themselves (cpu-matmul.ts, ...) run when executed and are not exported.
 */
export {
  detectRuntime, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, nonNegativeInt, now, parseFlags, positiveInt, programArgs,
  readJson, repoRoot, runMain, timeIt, UsageError, writeJson,
  type Cell, type MachineInfo, type RuntimeInfo, type RuntimeName, type Timing, type TimingOptions,
} from "./runtime.ts";
