/**
 * @memmamba/bench — measurement helpers shared by the benchmark programs: runtime and machine
 * detection, timing (warm-up, then the median of N samples), flag parsing (every value checked
 * with zod), tables and JSON. The programs themselves (cpu-matmul.ts, ...) run when executed and
 * are not exported.
 */
export {
  choice, detectRuntime, flagList, flagValue, fmt, formatTable, fromRoot, gitCommit, machineInfo, median, NON_NEGATIVE_INT, nonNegativeInt, now,
  numberFlag, oneOf, parseFlags, parseList, POSITIVE_INT, POSITIVE_NUMBER, positiveInt, positiveNumber, programArgs, readJson, repoRoot, runMain,
  timeIt, UsageError, writeJson,
  type Cell, type FlagType, type MachineInfo, type RuntimeInfo, type RuntimeName, type Timing, type TimingOptions,
} from "./runtime.ts";
