#!/usr/bin/env bash
# Recall first, then documents (issue #11's docret, the next experiment after session 28): each
# small model starts from its passkey weights (weights/<model>-small-passkey.safetensors), learns
# byte-level associative recall with a gap curriculum (packages/bench/src/recall.ts: 8-letter keys,
# K = 2, filler letters growing to 1,024, advancing at 0.9 held-out; batch 32, lr 1e-3 as the
# passkey training) for RD_RECALL_MIN minutes and
# saves itself; then `train --task docret --init` that file (echo queries, k = 1…3, 2K-byte rows)
# for RD_DOCRET_MIN minutes, and `eval docret` at k = 1, 2, 3, 10, 20. The models run side by side,
# one process chain each. The recall runs of session 28 showed that a model which has once made
# the key match keeps it at every distance tried; this asks whether that skill carries to documents.
#
# Here, first:   bash packages/bench/gpu/experiments.sh --pack-data      (runs/books.tar.xz)
#                RUNTIME=node GPU_BUNDLE_SPLIT=1 GPU_BUNDLE_MINIFY=1 scripts/gpu-bundle.sh \
#                  packages/bench/src/recall.ts packages/cli/src/bin/{train,eval}.ts
# On the GPU machine, carrying .gpu and runs/books.tar.xz, with $OUT set:
#                bash packages/bench/gpu/run-recall-docret.sh
# CHECK=1 runs the same chain here at 2 steps a phase on the CPU backend, from the sources (bun),
# to check the script before a GPU run (about 3 minutes on 2 cores).
# Env: RD_MODELS (default "memmamba mamba"), RD_RECALL_MIN (4.5), RD_DOCRET_MIN (3.6), RD_GAPS
# (32,64,96,128,192,256,384,512,768,1024), RD_SEED (1: recall's rows and train's data order).
# Files in $OUT: recall-<model>.json, log-<model>.txt, recall-docret.tgz (each docret run's
# train.jsonl, loss.svg and eval JSON); at most 8 come back from a GPU command.
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:?set OUT to the folder whose files come back}
CHECK=${CHECK:-0}
models=${RD_MODELS:-memmamba mamba}
gaps=${RD_GAPS:-32,64,96,128,192,256,384,512,768,1024}
[ "$CHECK" = 1 ] && gaps=${RD_GAPS:-4,8}   # short rows: the held-out checks run the small model on the CPU
seed=${RD_SEED:-1}
if [ "$CHECK" = 1 ]; then
  runner() { case $1 in recall) tools/node_modules/.bin/bun packages/bench/src/recall.ts "${@:2}" ;; *) tools/node_modules/.bin/bun "packages/cli/src/bin/$1.ts" "${@:2}" ;; esac; }
  backend=cpu; recall_budget=(--steps 2 --batch 2); docret_budget=(--steps 2 --batch 1 --eval-every 0); eval_k=1; samples=1; data=${RD_DATA:-../shared/data/books}
else
  source .gpu/enter.sh
  runner() { node ".gpu/$1.mjs" "${@:2}"; }
  backend=webgpu; recall_budget=(--steps 200000 --minutes "${RD_RECALL_MIN:-4.5}"); docret_budget=(--steps 100000 --max-minutes "${RD_DOCRET_MIN:-3.6}" --batch 8 --eval-every 100)
  eval_k=1,2,3,10,20; samples=20; data=runs/books
  [ -d runs/books ] || python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
chain() { # chain model: recall from the passkey weights, then docret from the recall model, then eval
  local m=$1 dir=runs/rd-$1
  mkdir -p "$dir"
  runner recall --backend $backend --init "weights/$m-small-passkey.safetensors" --pairs 2 --key-len 8 --gap "$gaps" --seed "$seed" --lr 1e-3 \
    "${recall_budget[@]}" --eval-every 250 --save "$dir/recall.safetensors" --out "$OUT/recall-$m.json" || return 1
  runner train --task docret --backend $backend --preset small --config packages/bench/gpu/passkey-small.json --model "$m" --data "$data" \
    --docret-k 1,2,3 --query echo --seq-len 2k --lr 1e-3 --warmup 100 --checkpoint-every 100 --seed "$seed" \
    "${docret_budget[@]}" --init "$dir/recall.safetensors" --out "$dir/docret" --overwrite || return 1
  runner eval docret --backend $backend --checkpoint "$dir/docret/checkpoint.safetensors" --data "$data" --split validation \
    --k $eval_k --samples $samples --chunk 2048 --out "$dir/docret/eval"
}
pids=()
for m in $models; do
  chain "$m" > "$OUT/log-$m.txt" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
tar czf "$OUT/recall-docret.tgz" runs/rd-*/docret/train.jsonl runs/rd-*/docret/loss.svg runs/rd-*/docret/eval 2>/dev/null
for m in $models; do
  echo "== $m"; grep -E "passed at|^recall|saved the model|train: docret: [0-9]|stopped|done at" "$OUT/log-$m.txt" | head -20
  grep -E -A 8 "^document retrieval accuracy" "$OUT/log-$m.txt"
done
exit $status
