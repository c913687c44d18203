#!/usr/bin/env bash
# Runs the CPU matmul/scan benchmark under Bun, Deno and Node (Node through an esbuild bundle:
# Node 20 cannot run .ts), one after the other on the same machine, then combines the three JSON
# files into packages/bench/results/cpu-matmul.json (one row per runtime / kernel / impl / size)
# and prints a side-by-side table. Extra arguments go to every run, e.g.
#   bash packages/bench/run-all.sh --runs 3 --sizes 256,512
# Then (unless CPU_KERNELS=0) the issue-13 comparison, which writes packages/bench/results/cpu.json:
# the wasm / FFI kernels against the WASM SIMD peak, saxpy, jax-js, tfjs-wasm, numpy, plain JS and
# PyTorch, under Deno, Bun and Node (src/cpu-kernels.ts, its default sizes and runs).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$PWD/tools/node_modules/.bin"
RES=packages/bench/results
mkdir -p "$RES" out/bench

echo "== bun =="
"$BIN/bun" packages/bench/src/cpu-matmul.ts --out "$RES/cpu-bun.json" "$@"
echo "== deno =="
"$BIN/deno" run -A packages/bench/src/cpu-matmul.ts --out "$RES/cpu-deno.json" "$@"
echo "== node =="
node_modules/.bin/esbuild packages/bench/src/cpu-matmul.ts --bundle --platform=node --format=esm \
  --conditions=@memmamba/source --target=node20 --outfile=out/bench/cpu-matmul.mjs --log-level=warning
node out/bench/cpu-matmul.mjs --out "$RES/cpu-node.json" "$@"

echo "== combined =="
"$BIN/bun" -e '
import { formatTable, readJson, writeJson } from "./packages/bench/src/runtime.ts";
const res = "packages/bench/results";
const runs = ["bun", "deno", "node"].map((r) => readJson(`${res}/cpu-${r}.json`));
const rows = runs.flatMap((r) => r.rows);
writeJson(`${res}/cpu-matmul.json`, {
  benchmark: "cpu-matmul",
  date: new Date().toISOString(),
  machine: runs[0].machine,
  runtimes: runs.map((r) => ({ ...r.runtime, date: r.date, options: r.options })),
  notes: runs[0].notes,
  rows,
});
// one line per kernel / impl / size, one column per runtime
const key = (r) => `${r.kernel}|${r.impl}|${r.size}`;
const keys = [...new Set(rows.map(key))];
const names = runs.map((r) => r.runtime.name);
const cell = (k, name, f) => { const r = rows.find((x) => key(x) === k && x.runtime === name); return r ? f(r) : null; };
const mm = keys.filter((k) => k.startsWith("matmul|"));
const sc = keys.filter((k) => !k.startsWith("matmul|"));
console.log(`${runs[0].machine.cpuModel}, ${runs[0].machine.cores} cores; ` + runs.map((r) => `${r.runtime.name} ${r.runtime.version}`).join(", "));
console.log("\nmatmul f32, GFLOP/s (2n^3 / median time)");
console.log(formatTable(["kernel", "impl", "n", ...names], mm.map((k) => [...k.split("|"), ...names.map((n) => cell(k, n, (r) => r.gflops))])));
console.log("\nscan, Melem/s (B*L*S / median time) and GB/s (kernel bytes read + written / median time)");
console.log(formatTable(["kernel", "impl", "BxLxS", ...names.map((n) => `${n} Melem/s`), ...names.map((n) => `${n} GB/s`)],
  sc.map((k) => [...k.split("|"), ...names.map((n) => cell(k, n, (r) => r.elementsPerSec / 1e6)), ...names.map((n) => cell(k, n, (r) => r.gbPerSec))])));
console.log(`\nwrote ${res}/cpu-matmul.json (${rows.length} rows)`);
'

if [ "${CPU_KERNELS:-1}" != "0" ]; then
  echo "== cpu-kernels (writes $RES/cpu.json) =="
  "$BIN/bun" packages/bench/src/cpu-kernels.ts
fi
