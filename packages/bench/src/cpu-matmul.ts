/**
 * CPU backend throughput: f32 matmul at n × n (GFLOP/s = 2n³ / t) and the selective-scan
 * primitive, forward alone and forward + backward through valueAndGrad (elements/s and GB/s of
 * the bytes the kernels move, as the library's own work counters count them: every input and
 * output of every kernel launched). Plain-JS loops at the same sizes give the scale: an i-k-j
 * matmul and a forward scan with no dispatch, no blocking and no allocation beyond the output.
 *
 * Prints a table and writes JSON; asserts nothing about time. Runs under Bun, Deno and Node
 * (bundled by esbuild; see ../run-all.sh).
 *
 *   bun packages/bench/src/cpu-matmul.ts [--runs 5] [--sizes 256,512,1024] [--scan 1x4096x256,...]
 *                                        [--json] [--out packages/bench/results/cpu-<runtime>.json]
 */
// runtime.ts first: it polyfills Symbol.dispose on Node 20 before the tensor library loads.
import {
  detectRuntime, flagList, formatTable, fromRoot, gitCommit, machineInfo, parseFlags, POSITIVE_INT, positiveInt, runMain, timeIt, writeJson,
  type Cell, type FlagType, type Timing,
} from "./runtime.ts";
import { z } from "zod";
import {
  disposeTree, fromArray, getBackend, liveBuffers, matmul, readCounters, resetCounters, scan, sum, valueAndGrad,
  type Tensor,
} from "@memmamba/tensor";
// the plain-JS matmul is the one the peers benchmark times (cpu-peers.ts loads its peers lazily)
import { plainMatmul } from "./cpu-peers.ts";

const HELP = `cpu-matmul: CPU backend matmul and scan throughput

  --runs N          timed samples per case; the median is reported (default 5)
  --sizes a,b,...   square matmul sizes (default 256,512,1024)
  --scan BxLxS,...  scan sizes (default 1x4096x256,4x4096x256,4x8192x512)
  --warmup-ms MS    warm-up time per case before timing (default 300)
  --json            print the JSON result on stdout instead of the table
  --out FILE        where to write the JSON (default packages/bench/results/cpu-<runtime>.json
                    under the repo root)
  --help            this text`;

export interface BenchRow {
  runtime: string;
  kernel: "matmul" | "scan-fwd" | "scan-fwd+bwd";
  impl: "tensor" | "plain-js";
  /** "256" for an n × n matmul, "BxLxS" for a scan. */
  size: string;
  shape: number[];
  medianMs: number;
  minMs: number;
  samplesMs: number[];
  repsPerSample: number;
  warmupCalls: number;
  /** Floating-point operations of one call (2n³ for matmul; the counters' count for the scan). */
  flops: number;
  /** Bytes read + written by the kernels of one call (f32 = 4 bytes). */
  bytes: number;
  /** Kernel launches of one call (1 for plain JS). */
  launches: number;
  gflops: number;
  /** Elements per second: output elements of the scan (B·L·S); n² for matmul. */
  elementsPerSec: number;
  gbPerSec: number;
  /** Largest |difference| from the plain-JS result (tensor rows that have a plain twin). */
  maxAbsDiffVsPlain?: number;
}

// ---------- data and plain-JS references ----------

/** Deterministic values in [lo, hi): a multiplicative hash of the index (no PRNG needed here). */
function fill(n: number, salt: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca77);
    out[i] = lo + ((Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** h[b,t,s] = a[b,t,s] h[b,t-1,s] + x[b,t,s] from h0[b,s], as plain loops. */
function plainScan(A: Float32Array, X: Float32Array, H0: Float32Array, B: number, L: number, S: number): Float32Array {
  const H = new Float32Array(B * L * S);
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < S; s++) H[b * L * S + s] = Math.fround(A[b * L * S + s] * H0[b * S + s]) + X[b * L * S + s];
    for (let t = 1; t < L; t++) {
      const o = (b * L + t) * S, p = o - S;
      for (let s = 0; s < S; s++) H[o + s] = Math.fround(A[o + s] * H[p + s]) + X[o + s];
    }
  }
  return H;
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

/** The live array behind a CPU tensor (no copy; the CPU backend's buffers are plain arrays). */
function readNow(t: Tensor): Float32Array {
  const backend = getBackend() as unknown as { array(b: unknown): Float32Array };
  return backend.array(t.buf);
}

// ---------- the cases ----------

function row(
  runtime: string, kernel: BenchRow["kernel"], impl: BenchRow["impl"], size: string, shape: number[],
  t: Timing, work: { flops: number; bytes: number; launches: number; elements: number },
): BenchRow {
  const s = t.medianMs / 1000;
  return {
    runtime, kernel, impl, size, shape,
    medianMs: t.medianMs, minMs: t.minMs, samplesMs: t.samplesMs, repsPerSample: t.reps, warmupCalls: t.warmupCalls,
    flops: work.flops, bytes: work.bytes, launches: work.launches,
    gflops: work.flops / s / 1e9, elementsPerSec: work.elements / s, gbPerSec: work.bytes / s / 1e9,
  };
}

/** The counters' view of one call: flops, bytes and launches. */
function countWork(fn: () => void): { flops: number; bytes: number; launches: number } {
  resetCounters();
  fn();
  const c = readCounters();
  resetCounters();
  return c;
}

function benchMatmul(runtime: string, n: number, runs: number, warmupMs: number): BenchRow[] {
  const A = fill(n * n, 1), B = fill(n * n, 2);
  const a = fromArray(A, [n, n]), b = fromArray(B, [n, n]);
  const elements = n * n;
  const flops = 2 * n * n * n;
  try {
    const lib = () => {
      // The CPU kernel runs synchronously inside the call and writes a reachable array.
      matmul(a, b).dispose();
    };
    const plain = () => {
      plainMatmul(A, B, n);
    };
    const c = matmul(a, b);
    const diff = maxAbsDiff(readNow(c), plainMatmul(A, B, n));
    c.dispose();
    const work = countWork(lib);
    const libRow = row(runtime, "matmul", "tensor", String(n), [n, n, n], timeIt(lib, { runs, warmupMs }), { ...work, flops, elements });
    libRow.maxAbsDiffVsPlain = diff;
    const plainRow = row(runtime, "matmul", "plain-js", String(n), [n, n, n], timeIt(plain, { runs, warmupMs }), {
      flops, bytes: 3 * n * n * 4, launches: 1, elements,
    });
    return [libRow, plainRow];
  } finally {
    a.dispose();
    b.dispose();
  }
}

function benchScan(runtime: string, [B, L, S]: [number, number, number], runs: number, warmupMs: number): BenchRow[] {
  const n = B * L * S;
  const size = `${B}x${L}x${S}`;
  const Ah = fill(n, 3, 0.9, 1), Xh = fill(n, 4), H0h = fill(B * S, 5);
  const params = { a: fromArray(Ah, [B, L, S]), b: fromArray(Xh, [B, L, S]), h0: fromArray(H0h, [B, S]) };
  try {
    const fwd = () => {
      scan(params.a, params.b, params.h0).dispose();
    };
    const vg = valueAndGrad((p: typeof params) => sum(scan(p.a, p.b, p.h0)));
    const fwdBwd = () => {
      const { value, grads } = vg(params);
      value.dispose();
      disposeTree(grads);
    };
    const plain = () => {
      plainScan(Ah, Xh, H0h, B, L, S);
    };
    const h = scan(params.a, params.b, params.h0);
    const diff = maxAbsDiff(readNow(h), plainScan(Ah, Xh, H0h, B, L, S));
    h.dispose();

    const before = liveBuffers();
    const fw = countWork(fwd), fb = countWork(fwdBwd);
    const shape = [B, L, S];
    const fRow = row(runtime, "scan-fwd", "tensor", size, shape, timeIt(fwd, { runs, warmupMs }), { ...fw, elements: n });
    fRow.maxAbsDiffVsPlain = diff;
    const pRow = row(runtime, "scan-fwd", "plain-js", size, shape, timeIt(plain, { runs, warmupMs }), {
      flops: 2 * n, bytes: (3 * n + B * S) * 4, launches: 1, elements: n,
    });
    const bRow = row(runtime, "scan-fwd+bwd", "tensor", size, shape, timeIt(fwdBwd, { runs, warmupMs }), { ...fb, elements: n });
    const leaked = liveBuffers() - before;
    if (leaked !== 0) console.error(`warning: scan ${size}: ${leaked} buffers still live after timing`);
    return [fRow, pRow, bRow];
  } finally {
    disposeTree(params);
  }
}

// ---------- the program ----------

/** An item of --scan: BxLxS, three positive integers. */
const dim = z.number().int().min(1);
const SCAN_SIZE: FlagType<[number, number, number]> = {
  schema: z.string().transform((s) => s.split("x").map((d) => (d.trim() === "" ? NaN : Number(d)))).pipe(z.tuple([dim, dim, dim])),
  expects: "BxLxS with positive integers (e.g. 4x4096x256)",
};

function tableOf(rows: readonly BenchRow[]): string {
  const body: Cell[][] = rows.map((r) => [
    r.kernel, r.impl, r.size, r.medianMs, r.minMs,
    r.kernel === "matmul" ? r.gflops : null,
    r.kernel === "matmul" ? null : r.elementsPerSec / 1e6,
    r.kernel === "matmul" ? null : r.gbPerSec,
  ]);
  return formatTable(["kernel", "impl", "size", "median ms", "min ms", "GFLOP/s", "Melem/s", "GB/s"], body);
}

interface Options {
  runs: number;
  warmupMs: number;
  sizes: number[];
  scans: [number, number, number][];
  json: boolean;
  out: string | undefined;
}

/** The options from the command line, null for --help; a bad flag throws an error naming it. */
function parseOptions(argv: string[]): Options | null {
  const flags = parseFlags(argv, {
    runs: "string", sizes: "string", scan: "string", "warmup-ms": "string", json: "boolean", out: "string", help: "boolean",
  });
  if (flags.help) return null;
  return {
    runs: positiveInt("runs", flags.runs, 5),
    warmupMs: positiveInt("warmup-ms", flags["warmup-ms"], 300),
    sizes: flagList("sizes", flags.sizes, POSITIVE_INT, [256, 512, 1024]),
    scans: flagList("scan", flags.scan, SCAN_SIZE, [[1, 4096, 256], [4, 4096, 256], [4, 8192, 512]]),
    json: flags.json === true,
    out: typeof flags.out === "string" ? flags.out : undefined,
  };
}

/** Runs the benchmark on these arguments (--help: prints the help and runs nothing). */
function main(argv: string[]): void {
  const opts = parseOptions(argv); // a bad flag or size: a UsageError, one line and status 2 (runMain)
  if (!opts) {
    console.log(HELP);
    return;
  }
  const { runs, warmupMs, sizes, scans } = opts;
  const runtime = detectRuntime();
  const machine = machineInfo();
  const log = opts.json ? (s: string) => console.error(s) : (s: string) => console.log(s);
  log(`cpu-matmul on ${runtime.name} ${runtime.version}, ${machine.cpuModel} (${machine.cores} cores), median of ${runs}`);

  const rows: BenchRow[] = [];
  for (const n of sizes) {
    rows.push(...benchMatmul(runtime.name, n, runs, warmupMs));
    log(`  matmul ${n} done`);
  }
  for (const s of scans) {
    rows.push(...benchScan(runtime.name, s, runs, warmupMs));
    log(`  scan ${s.join("x")} done`);
  }
  const result = {
    benchmark: "cpu-matmul",
    commit: gitCommit(),
    date: new Date().toISOString(),
    runtime,
    machine,
    options: { runs, warmupMs, sizes, scan: scans.map((s) => s.join("x")) },
    notes: [
      "matmul GFLOP/s = 2n^3 / median time; plain-js is an unblocked i-k-j loop on Float32Array",
      "scan bytes = every input and output of every kernel launched (the library's work counters); " +
        "scan-fwd+bwd is valueAndGrad of sum(scan(a, b, h0)) with respect to a, b and h0",
      "elementsPerSec: n^2 outputs for matmul, B*L*S for scan",
    ],
    rows,
  };
  const out = opts.out ?? fromRoot("packages", "bench", "results", `cpu-${runtime.name}.json`);
  writeJson(out, result);
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(tableOf(rows));
    console.log(`wrote ${out}`);
  }
}

if (import.meta.main ?? true) runMain("cpu-matmul", main);
