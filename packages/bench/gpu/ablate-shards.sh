#!/usr/bin/env bash
# Issue 12 on the GPU machine: `ablate --suite all` split into N shards that share the one GPU
# (a single process leaves the GPU idle while its host thread records the next step, and the
# evaluation streams at batch 1), each with its own time budget, then one pass without --shard
# that writes the suites' tables once every run is done. Resumable across GPU commands: carry
# runs/ablate back (pruned runs hold only JSON) and the same command continues.
#
#   here:   RUNTIME=node GPU_BUNDLE_MINIFY=1 scripts/gpu-bundle.sh packages/cli/src/bin/ablate.ts
#           bash packages/bench/gpu/experiments.sh --pack-data          # runs/books.tar.xz
#   there:  source .gpu/enter.sh && bash packages/bench/gpu/ablate-shards.sh [--shards N] [--minutes M] [-- ablate flags]
#
# Writes $OUT/ablate.tgz (runs/ablate without the runs that the budget cut short: those start
# again from scratch next time) and one log per shard.
set -euo pipefail
shards=auto
minutes=8.3
out=${OUT:-runs/ablate-out}
# a flag that takes a value, given none (or another flag): one line naming it, not bash's "$2: unbound variable"
need() { if [ $# -lt 2 ] || [[ $2 == --* ]]; then echo "ablate-shards.sh: $1 needs a value (see --help)" >&2; exit 2; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) need "$@"; shards=$2; shift ;;
    --minutes) need "$@"; minutes=$2; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ablate-shards.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
[ -f .gpu/ablate.mjs ] || { [ -f .gpu/bundles.tar.xz ] && tar xJf .gpu/bundles.tar.xz -C .gpu; }
[ -d runs/books ] || python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
[ -f runs/ablate.tgz ] && [ ! -d runs/ablate ] && tar xzf runs/ablate.tgz
if [ "$shards" = auto ]; then
  # about 20 GiB per shard at the small preset, batch 4 × 2048 (the MemMamba step's high-water mark)
  mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  shards=$(( mib / 24000 )); [ "$shards" -gt 5 ] && shards=5; [ "$shards" -lt 1 ] && shards=1
fi
echo "ablate-shards: $shards shards, $minutes minutes each"
flags=(--suite all --backend webgpu --preset small --prune --data runs/books --chunk 8192 --out runs/ablate "$@")
pids=()
for i in $(seq 1 "$shards"); do
  node .gpu/ablate.mjs "${flags[@]}" --max-minutes "$minutes" --shard "$i/$shards" > "$out/shard-$i.log" 2>&1 &
  pids+=($!)
done
( while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done ) > "$out/smi.log" 2>&1 &
mon=$!
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
kill "$mon" 2>/dev/null || true
# the tables (a run without --shard skips every finished run; it trains nothing when given no time)
node .gpu/ablate.mjs "${flags[@]}" --max-minutes 0.01 > "$out/tables.log" 2>&1 || true
tail -n 5 "$out"/shard-*.log
tail -n 3 "$out/tables.log"
# a run cut short (no train.json yet, or a checkpoint that --prune has not removed because a phase
# is still to evaluate) starts again from scratch next time: its checkpoint is too big to carry back
for d in runs/ablate/runs/*/seed-*; do
  [ -d "$d" ] || continue
  if [ ! -f "$d/train.json" ] || [ -f "$d/checkpoint.safetensors" ]; then echo "ablate-shards: dropping unfinished $d"; rm -rf "$d"; fi
done
tar czf "$out/ablate.tgz" runs/ablate
ls -la "$out"
exit $fail
