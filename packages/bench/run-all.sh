#!/usr/bin/env bash
# Runs the CPU matmul/scan benchmark under Bun, Deno and Node (Node through an esbuild bundle:
# Node 20 cannot run .ts), one after the other on the same machine, then combines the three JSON
# files into packages/bench/results/cpu-matmul.json (one row per runtime / kernel / impl / size)
# and prints a side-by-side table. Extra arguments go to every run, e.g.
#   bash packages/bench/run-all.sh --runs 3 --sizes 256,512
# Then (unless CPU_KERNELS=0) the issue-13 comparison, which writes packages/bench/results/cpu.json:
# the wasm / FFI kernels against the WASM SIMD peak, saxpy, jax-js, tfjs-wasm, numpy, plain JS and
# PyTorch, under Deno, Bun and Node (src/cpu-kernels.ts, its default sizes and runs).
# --results DIR writes every one of those files into DIR instead (the committed ones stay as they are).
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: bash packages/bench/run-all.sh [--results DIR] [cpu-matmul flags, e.g. --runs 3 --sizes 256,512]

Runs src/cpu-matmul.ts under Bun, Deno and Node (an esbuild bundle), writing DIR/cpu-bun.json,
DIR/cpu-deno.json and DIR/cpu-node.json, combines them into DIR/cpu-matmul.json, then (unless
CPU_KERNELS=0) runs src/cpu-kernels.ts, which writes DIR/cpu.json. DIR defaults to
packages/bench/results (the committed measurements: they are overwritten).

  --results DIR   the folder of every file above (default packages/bench/results)
  -h, --help      this text
--out is refused: the three runtimes would write one file; use --results.
USAGE
}
# the options first, before anything runs or is written
RES=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --results) [ $# -ge 2 ] && [[ $2 != --* ]] || { echo "run-all.sh: --results needs a folder" >&2; exit 2; }; RES=$(realpath -m -- "$2"); shift ;;
    --results=*) RES=$(realpath -m -- "${1#--results=}") ;;
    --out|--out=*) echo "run-all.sh: --out is not supported (Bun, Deno and Node would each write that one file); use --results DIR" >&2; exit 2 ;;
    *) args+=("$1") ;;
  esac
  shift
done
cd "$(dirname "$0")/../.."
BIN="$PWD/tools/node_modules/.bin"
RES=${RES:-packages/bench/results}
mkdir -p "$RES" out/bench

echo "== bun =="
"$BIN/bun" packages/bench/src/cpu-matmul.ts --out "$RES/cpu-bun.json" ${args[@]+"${args[@]}"}
echo "== deno =="
"$BIN/deno" run -A packages/bench/src/cpu-matmul.ts --out "$RES/cpu-deno.json" ${args[@]+"${args[@]}"}
echo "== node =="
node_modules/.bin/esbuild packages/bench/src/cpu-matmul.ts --bundle --platform=node --format=esm \
  --conditions=@memmamba/source --target=node20 --outfile=out/bench/cpu-matmul.mjs --log-level=warning
node out/bench/cpu-matmul.mjs --out "$RES/cpu-node.json" ${args[@]+"${args[@]}"}

echo "== combined =="
RES="$RES" "$BIN/bun" -e '
import { formatTable, readJson, writeJson } from "./packages/bench/src/runtime.ts";
const res = process.env.RES;
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
  "$BIN/bun" packages/bench/src/cpu-kernels.ts --out "$RES/cpu.json"
fi
