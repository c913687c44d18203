/**
 * The fast CPU backend against its peers, side by side in one run (issue 13):
 *
 *   for each runtime (Deno, Bun, Node 20 through an esbuild bundle) — one child process each —
 *   - the measured WASM SIMD peak: a register-only loop of 12 independent f32x4 multiply-adds
 *     (the same instruction as the matmul: relaxed_madd where the engine validates it), on every
 *     thread at once (8 tasks per thread from the matmul's job board: per thread, summed), and on
 *     one thread;
 *   - saxpy bandwidth: y = a·x + y on 64 MiB arrays, on one thread and on all;
 *   - fp32 matmul n × n (512, 1024, 2048), median GFLOP/s of several runs (each the median of 3
 *     back-to-back calls, as for the peak and saxpy), for: ours-wasm (the wasm
 *     backend's packed SIMD kernels, all threads), ours-ffi (the same backend's cblas_sgemm over
 *     FFI: Bun and Deno), jax-js (wasm device), tfjs-wasm, numpy (system OpenBLAS, all cores, in
 *     the runtime's environment; numpy-auto: with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset) and
 *     plain JS (i-k-j loop, one thread);
 *   - memory-bound kernels of the wasm backend (all threads): the linear scan (the scan primitive),
 *     an elementwise op (silu), a row reduction (sum over the last axis), and the selective scan
 *     forward and forward + backward (compute-bound: GFLOP/s);
 *   - one training step (loss + every gradient) of the "small" MemMamba on 4 × 128 tokens: tokens/s
 *     on the plain-TypeScript CPU backend, the wasm kernels and wasm + FFI; PyTorch (the reference
 *     port on Debian's python3-torch, all cores) once, by the parent, in the same run;
 *   - a summary with the ratios the goals name: wasmOfPeak (ours-wasm at 1024² / the peak),
 *     wasmOverBestPeer (/ the faster of jax-js and tfjs-wasm), ffiOverNumpy (ours-ffi / numpy at
 *     1024², both in the same environment), scanOfBandwidth (the scan's GB/s / saxpy's, all threads).
 *
 * Prints one table and writes packages/bench/results/cpu.json. Asserts nothing about time.
 *
 * This file parses the options and is the parent (one child process per runtime, then the combined
 * table and JSON); its parts: cpu-kernels-measure.ts (one runtime's run, the child's, and its
 * summary ratios), cpu-kernels-timers.ts (how the peak, saxpy, a kernel and the training step are
 * timed, round after round), cpu-kernels-results.ts (what a run gives, the goals, and the table).
 *
 *   bun packages/bench/src/cpu-kernels.ts [--runtimes deno,bun,node] [--sizes 512,1024,2048] [--runs 7]
 *                                         [--only matmul,memory,step] [--out packages/bench/results/cpu.json]
 * (one runtime only, printing its JSON: --child --json-out FILE)
 */
import {
  choice, detectRuntime, flagList, fromRoot, gitCommit, parseFlags, POSITIVE_INT, positiveInt, readJson, repoRoot, runMain, UsageError, writeJson,
} from "./runtime.ts";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BACK_TO_BACK, torchTrainStep } from "./cpu-peers.ts";
import { GOALS, SECTIONS, STEP_B, STEP_L, tableOf, type RuntimeResult, type Section, type StepRow } from "./cpu-kernels-results.ts";
import { measureRuntime } from "./cpu-kernels-measure.ts";

// what other files import from here (defined in cpu-kernels-results.ts and cpu-kernels-measure.ts)
export { GOALS, KERNELS, RATIO_N, SECTIONS, STEP_B, STEP_L, type KernelName, type RuntimeResult, type Section } from "./cpu-kernels-results.ts";
export { matmulRatios, type MatmulRatios } from "./cpu-kernels-measure.ts";

const HELP = `cpu-kernels: the wasm / FFI CPU kernels against jax-js, tfjs-wasm, numpy and plain JS

  --runtimes a,b,...  runtimes to run, each in its own process (default deno,bun,node)
  --sizes a,b,...     square matmul sizes (default 512,1024,2048)
  --runs N            timed runs per case; the median is reported (default 7; plain JS at 2048: 3).
                      Each run is the median of 3 back-to-back calls (threads awake)
  --warmup-ms MS      warm-up per case (default 400)
  --only a,b,...      sections to measure (default all): matmul (the matmul table, the peak's
                      ratios), memory (saxpy and the memory-bound kernels: scanOfBandwidth),
                      step (the training step, with PyTorch); the peak and saxpy are always
                      measured. For example --only memory to compare the scan with saxpy alone.
  --out FILE          the combined JSON (default packages/bench/results/cpu.json)
                      (the summary's matmul ratios are at 1024²: null unless --sizes has 1024)
  --child             measure this runtime only (used by the parent)
  --json-out FILE     where a child writes its JSON
  --help              this text`;

/** The runtimes --runtimes picks from (each runs in a child process of its own). */
export const RUNTIMES = ["deno", "bun", "node"] as const;

// ---------------------------------------------------------------------------------------------
// the parent: one child per runtime, then the combined table and JSON

const BIN = () => join(repoRoot(), "tools/node_modules/.bin");

function runChild(rt: string, args: string[], out: string): RuntimeResult {
  const self = fileURLToPath(import.meta.url);
  const root = repoRoot();
  let cmd: string, argv: string[];
  if (rt === "bun") [cmd, argv] = [join(BIN(), "bun"), [self]];
  else if (rt === "deno") [cmd, argv] = [join(BIN(), "deno"), ["run", "-A", self]];
  else if (rt === "node") {
    mkdirSync(join(root, "out/bench"), { recursive: true });
    const bundle = join(root, "out/bench/cpu-kernels.mjs");
    const b = spawnSync(join(root, "node_modules/.bin/esbuild"), [
      self, "--bundle", "--platform=node", "--format=esm", "--target=node20", `--outfile=${bundle}`, "--log-level=warning",
      "--conditions=@memmamba/source", // the packages' sources, not their npm build (dist/)
      "--external:@jax-js/jax", "--external:@tensorflow/*",
    ], { stdio: "inherit", cwd: root });
    if (b.status !== 0) throw new Error("esbuild failed for the Node bundle");
    // relaxed SIMD is behind a flag in Node 20 (on by default in Bun and Deno)
    [cmd, argv] = ["node", ["--experimental-wasm-relaxed-simd", bundle]];
  } else throw new UsageError(`--runtimes: unknown runtime "${rt}" (${RUNTIMES.join(", ")})`);
  console.log(`== ${rt} ==`);
  const r = spawnSync(cmd, [...argv, "--child", "--json-out", out, ...args], { stdio: "inherit", cwd: root, timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`${rt} run failed (status ${r.status})`);
  return readJson<RuntimeResult>(out);
}

export interface Options {
  runtimes: string[];
  sizes: number[];
  runs: number;
  warmupMs: number;
  out: string;
  child: boolean;
  jsonOut: string | undefined;
  only: Section[];
}

/** The options from the command line, null for --help; a bad flag or value throws a UsageError naming it. */
export function parseOptions(argv: string[]): Options | null {
  const flags = parseFlags(argv, {
    runtimes: "string", sizes: "string", runs: "string", "warmup-ms": "string", out: "string", child: "boolean", "json-out": "string", only: "string", help: "boolean",
  });
  if (flags.help) return null;
  return {
    runtimes: flagList("runtimes", flags.runtimes, choice(RUNTIMES), RUNTIMES),
    sizes: flagList("sizes", flags.sizes, POSITIVE_INT, [512, 1024, 2048]),
    runs: positiveInt("runs", flags.runs, 7),
    warmupMs: positiveInt("warmup-ms", flags["warmup-ms"], 400),
    out: typeof flags.out === "string" ? flags.out : fromRoot("packages", "bench", "results", "cpu.json"),
    child: flags.child === true,
    jsonOut: typeof flags["json-out"] === "string" ? flags["json-out"] : undefined,
    only: flagList("only", flags.only, choice(SECTIONS), SECTIONS),
  };
}

async function main(argv: string[]): Promise<void> {
  const opts = parseOptions(argv); // a bad flag: a UsageError, one line and status 2 (runMain)
  if (!opts) {
    console.log(HELP);
    return;
  }
  const pass = ["--sizes", opts.sizes.join(","), "--runs", String(opts.runs), "--warmup-ms", String(opts.warmupMs), "--only", opts.only.join(",")];
  if (opts.child) {
    const r = await measureRuntime(opts.sizes, opts.runs, opts.warmupMs, opts.only);
    console.log(tableOf([r], opts.only.includes("matmul") ? opts.sizes : []));
    if (opts.jsonOut) writeJson(opts.jsonOut, r);
    process.exit(0); // the peers' worker threads would keep some runtimes alive
  }
  const tmp = join(repoRoot(), "out/bench");
  if (!existsSync(tmp)) mkdirSync(tmp, { recursive: true });
  const results = opts.runtimes.map((rt) => runChild(rt, pass, join(tmp, `cpu-kernels-${rt}.json`)));
  if (opts.only.includes("step")) console.log("== torch (the PyTorch reference port, one training step) ==");
  // 3 timed steps (after one warm-up): the median then ignores one step slowed by the machine's load
  const tt = opts.only.includes("step") ? torchTrainStep(repoRoot(), STEP_B, STEP_L, 3, results[0].threads) : "not measured (--only)";
  const torch: StepRow = typeof tt === "string"
    ? { backend: "torch", tokensPerSec: null, medianMs: null, samplesMs: [], detail: tt }
    : { backend: "torch", tokensPerSec: (STEP_B * STEP_L) / (tt.medianMs / 1000), medianMs: tt.medianMs, samplesMs: tt.samplesMs, detail: tt.detail };
  const table = tableOf(results, opts.only.includes("matmul") ? opts.sizes : [], torch);
  console.log(`\n== all runtimes: ${results[0].machine.cpuModel}, ${results[0].machine.cores} logical cores; load average ` +
    results.map((r) => `${r.runtime.name} ${r.loadAverage.before.toFixed(1)}→${r.loadAverage.after.toFixed(1)}`).join(", ") + " ==");
  console.log(table);
  const self = detectRuntime();
  writeJson(opts.out, {
    benchmark: "cpu-kernels",
    commit: gitCommit(),
    // the runtime that ran this parent (each child's is under runtimes) and its script and arguments
    command: [self.name, relative(repoRoot(), fileURLToPath(import.meta.url)), ...argv].join(" "),
    parent: { runtime: self, argv },
    date: new Date().toISOString(),
    machine: results[0].machine,
    goals: GOALS,
    sizes: opts.sizes,
    sections: opts.only,
    runs: opts.runs,
    /** Each sample of a kernel (matmul, peak, saxpy, the memory-bound kernels) is the median of this many back-to-back calls; the training step's is one call. */
    callsPerSample: BACK_TO_BACK,
    trainStepTorch: torch,
    runtimes: Object.fromEntries(results.map((r) => [r.runtime.name, r])),
  });
  console.log(`\nwrote ${opts.out}`);
}

if (import.meta.main ?? true) runMain("cpu-kernels", main);
