#!/usr/bin/env bash
# Perplexity by context length on the same bytes (issue #11's PPL goal, after session 28's CPU
# finding): three small byte-level LMs trained side by side on the books' training split at
# 2,048-byte windows (batch 8, lr 1e-3, the lm-train phase of experiments.sh) for LM_MIN minutes:
# MemMamba with the default priority eviction, MemMamba with FIFO eviction
# (memory.replacement "fifo"), and the plain Mamba of the same size; then `eval ppl --align` (the
# last 100 bytes of each window of the longest length scored at every length) at LM_LENGTHS on the
# validation split, and the unaligned figures (each length's own windows) while time is left.
# On the CPU machine, the d 64 LMs of session 28 showed Mamba flat and MemMamba 16-17% worse at 60K
# with priority eviction, flat with FIFO: does the small model on the GPU do the same?
#
# Here: RUNTIME=node GPU_BUNDLE_SPLIT=1 GPU_BUNDLE_MINIFY=1 scripts/gpu-bundle.sh packages/cli/src/bin/{train,eval}.ts
# There (carrying .gpu and runs/books.tar.xz; $OUT set): bash packages/bench/gpu/run-lm-align.sh
# CHECK=1: the same here on the CPU with the tiny preset, 2 steps, short lengths (a script check).
# Env: LM_MIN (6), LM_EVAL_MIN (2.5: both evaluations of a model together), LM_VARIANTS
# ("memmamba memmamba-fifo mamba"), LM_LENGTHS (1k,2k,4k,8k,16k,32k,60k), LM_SEED (1).
# Files in $OUT: lm-align.tgz (each run's log, train.jsonl, loss.svg, eval JSON/SVG), lm-summary.txt.
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:?set OUT to the folder whose files come back}
CHECK=${CHECK:-0}
variants=${LM_VARIANTS:-memmamba memmamba-fifo mamba}
lengths=${LM_LENGTHS:-1k,2k,4k,8k,16k,32k,60k}
seed=${LM_SEED:-1}
eval_secs=$(python3 -c "print(int(${LM_EVAL_MIN:-2.5} * 60))")
if [ "$CHECK" = 1 ]; then
  cmd_of() { CMD=(tools/node_modules/.bin/bun "packages/cli/src/bin/$1.ts"); }
  backend=cpu; preset=tiny; budget=(--steps 2 --batch 1 --seq-len 256 --eval-every 0); lengths=${LM_LENGTHS:-256,512}; data=${LM_DATA:-../shared/data/books}
else
  source packages/bench/gpu/enter.sh; enter_gpu .gpu
  cmd_of() { CMD=(node ".gpu/$1.mjs"); }
  backend=webgpu; preset=small; budget=(--steps 100000 --max-minutes "${LM_MIN:-6}" --batch 8 --seq-len 2k --eval-every 200); data=runs/books
  [ -d runs/books ] || python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
fi
runner() { cmd_of "$1"; "${CMD[@]}" "${@:2}"; }
mkdir -p runs/lm-align
echo '{"memory": {"replacement": "fifo"}}' > runs/lm-align/fifo.json
one() { # one variant: train, then the aligned and the unaligned evaluation within eval_secs
  local v=$1 dir=runs/lm-align/$1 model=${1%-fifo} cfg=() until
  [ "$v" != "$model" ] && cfg=(--config runs/lm-align/fifo.json)
  runner train --backend $backend --preset $preset "${cfg[@]}" --model "$model" --data "$data" --accum 1 --lr 1e-3 --warmup 100 \
    --checkpoint-every 200 --seed "$seed" "${budget[@]}" --out "$dir" --overwrite || return 1
  until=$(( $(date +%s) + eval_secs ))
  cmd_of eval
  timeout --kill-after=10 $(( until - $(date +%s) )) "${CMD[@]}" ppl --backend $backend --checkpoint "$dir/checkpoint.safetensors" --data "$data" --split validation \
    --lengths "$lengths" --windows 2 --align --chunk 2048 --out "$dir/eval-aligned" || return 1
  [ $(( until - $(date +%s) )) -gt 20 ] && timeout --kill-after=10 $(( until - $(date +%s) )) "${CMD[@]}" ppl --backend $backend --checkpoint "$dir/checkpoint.safetensors" \
    --data "$data" --split validation --lengths "$lengths" --windows 2 --chunk 2048 --out "$dir/eval-own"
  return 0
}
pids=(); status=0
for v in $variants; do one "$v" > "runs/lm-align/$v.txt" 2>&1 & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || status=1; done
(cd runs/lm-align && tar czf "$OUT/lm-align.tgz" ./*.txt ./*.json ./*/train.jsonl ./*/loss.svg ./*/eval-* 2>/dev/null)
for v in $variants; do
  { echo "== lm $v"; grep -E "done at|stopped|rror|^train step [0-9]+/[0-9]+: valLoss" "runs/lm-align/$v.txt" | tail -4
    grep -E -A 12 "^perplexity by context length" "runs/lm-align/$v.txt"; } >> "$OUT/lm-summary.txt"
done
cat "$OUT/lm-summary.txt"
exit $status
