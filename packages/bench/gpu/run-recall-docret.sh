#!/usr/bin/env bash
# Recall first, then documents (issue #11's docret, the next experiment after session 28): each
# small model starts from its passkey weights (weights/<model>-small-passkey.safetensors), learns
# byte-level associative recall with a gap curriculum (packages/bench/src/recall.ts: 8-letter keys,
# K = 2, filler letters growing to 1,024, advancing at 0.9 held-out; batch 32, lr 1e-3 as the
# passkey training) for RD_RECALL_MIN minutes, one run per seed of RD_SEEDS, and saves itself; the
# run that passed the most stages (then the best mean accuracy over the gaps) becomes
# runs/rd-<model>/recall.safetensors; then `train --task docret --init` that file (echo queries,
# k = 1…3, 2K-byte rows) for RD_DOCRET_MIN minutes, and `eval docret` at k = 1, 2, 3, 10, 20. Every
# (model, seed) runs side by side, one process each. The recall runs of session 28 showed that a
# model which has once made the key match keeps it at every distance tried; this asks whether that
# skill carries to documents.
#
# Here, first:   bash packages/bench/gpu/experiments.sh --pack-data      (runs/books.tar.xz)
#                RUNTIME=node GPU_BUNDLE_SPLIT=1 GPU_BUNDLE_MINIFY=1 scripts/gpu-bundle.sh \
#                  packages/bench/src/recall.ts packages/cli/src/bin/{train,eval,export-weights}.ts
# On the GPU machine, carrying .gpu and runs/books.tar.xz, with $OUT set:
#                bash packages/bench/gpu/run-recall-docret.sh
# The phases can run as separate GPU commands: RD_PHASES=recall, then RD_PHASES=docret (on a machine
# still warm, runs/rd-<model>/recall.safetensors is there; on a fresh one, carry the F16 copies that
# the recall phase wrote to $OUT and name their folder in RD_INIT_DIR).
# CHECK=1 runs the same chain here at 2 steps a phase on the CPU backend, from the sources (bun),
# to check the script before a GPU run (about 3 minutes on 2 cores).
# Env: RD_PHASES (recall,docret), RD_MODELS ("memmamba mamba"), RD_SEEDS (1), RD_RECALL_MIN (4.5),
# RD_DOCRET_MIN (3.6), RD_RESUME (0; 1: the docret training resumes its checkpoint), RD_EVAL_MIN (2: the docret evaluation's limit), RD_GAPS (32,64,96,128,192,256,384,512,768,1024), RD_SEED (1: train's data
# order), RD_INIT_DIR (where <model>-recall.safetensors lies when runs/rd-<model> has none).
# Files in $OUT (at most 8 come back from a GPU command): recall.tgz (each recall run's JSON and
# log), <model>-recall.safetensors (the chosen recall model, F16), docret.tgz (each docret run's
# log, train.jsonl, loss.svg and eval JSON), summary.txt.
set -uo pipefail
cd "$(dirname "$0")/../../.."
OUT=${OUT:?set OUT to the folder whose files come back}
CHECK=${CHECK:-0}
phases=,${RD_PHASES:-recall,docret},
models=${RD_MODELS:-memmamba mamba}
seeds=${RD_SEEDS:-1}
gaps=${RD_GAPS:-32,64,96,128,192,256,384,512,768,1024}
[ "$CHECK" = 1 ] && gaps=${RD_GAPS:-4,8}   # short rows: the held-out checks run the small model on the CPU
seed=${RD_SEED:-1}
init_dir=${RD_INIT_DIR:-}
docret_mode=(--overwrite); [ "${RD_RESUME:-0}" = 1 ] && docret_mode=(--resume)   # RD_RESUME=1: go on with an earlier docret phase's run
eval_secs=$(python3 -c "print(int(${RD_EVAL_MIN:-2} * 60))")
if [ "$CHECK" = 1 ]; then
  cmd_of() { case $1 in recall) CMD=(tools/node_modules/.bin/bun packages/bench/src/recall.ts) ;; *) CMD=(tools/node_modules/.bin/bun "packages/cli/src/bin/$1.ts") ;; esac; }
  backend=cpu; recall_budget=(--steps 2 --batch 2); docret_budget=(--steps 2 --batch 1 --eval-every 0); eval_k=1; samples=1; data=${RD_DATA:-../shared/data/books}
  recall_kill=600
else
  source packages/bench/gpu/enter.sh; enter_gpu .gpu
  cmd_of() { CMD=(node ".gpu/$1.mjs"); }
  backend=webgpu; recall_budget=(--steps 200000 --minutes "${RD_RECALL_MIN:-4.5}"); docret_budget=(--steps 100000 --max-minutes "${RD_DOCRET_MIN:-3.6}" --batch 8 --eval-every 100)
  recall_kill=$(python3 -c "print(int(${RD_RECALL_MIN:-4.5} * 60 + 75))")   # the final checks at every gap and the save fit in 75 s
  eval_k=1,2,3,10,20; samples=20; data=runs/books
  [ -d runs/books ] || python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
fi
runner() { cmd_of "$1"; "${CMD[@]}" "${@:2}"; }
mkdir -p runs/rd-log
recall_run() { # recall_run model seed: from the passkey weights, the gap curriculum, saved
  local m=$1 s=$2
  cmd_of recall
  timeout --kill-after=10 "$recall_kill" "${CMD[@]}" --backend $backend --init "weights/$m-small-passkey.safetensors" --pairs 2 --key-len 8 \
    --gap "$gaps" --seed "$s" --lr 1e-3 "${recall_budget[@]}" --eval-every 250 --save "runs/rd-$m/recall-s$s.safetensors" --out "runs/rd-log/recall-$m-s$s.json"
}
# the best recall run of a model: most stages passed, then the best mean final accuracy over the gaps
best_seed() {
  python3 - "$1" $seeds <<'PY'
import json, os, sys
m, best, key = sys.argv[1], None, None
for s in sys.argv[2:]:
    p = f"runs/rd-log/recall-{m}-s{s}.json"
    if not (os.path.isfile(p) and os.path.isfile(f"runs/rd-{m}/recall-s{s}.safetensors")): continue
    r = json.load(open(p))
    fin = r.get("finalByGap") or {"": r["finalAccuracy"]}
    k = (sum(1 for st in r["stages"] if st["passedAt"] is not None), sum(fin.values()) / len(fin))
    if key is None or k > key: best, key = s, k
print(best or "")
PY
}
status=0
if [[ $phases == *,recall,* ]]; then
  pids=()
  for m in $models; do
    mkdir -p "runs/rd-$m"
    for s in $seeds; do recall_run "$m" "$s" > "runs/rd-log/recall-$m-s$s.txt" 2>&1 & pids+=($!); done
  done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  for m in $models; do
    b=$(best_seed "$m")
    if [ -z "$b" ]; then echo "recall $m: no run saved a model" | tee -a "$OUT/summary.txt"; status=1; continue; fi
    cp "runs/rd-$m/recall-s$b.safetensors" "runs/rd-$m/recall.safetensors"
    echo "recall $m: seed $b chosen" | tee -a "$OUT/summary.txt"
    runner export-weights --checkpoint "runs/rd-$m/recall.safetensors" --out "$OUT/$m-recall.safetensors" --dtype F16 --overwrite || status=1
  done
  tar czf "$OUT/recall.tgz" runs/rd-log/recall-* 2>/dev/null
  for m in $models; do for s in $seeds; do
    echo "== recall $m seed $s" >> "$OUT/summary.txt"
    grep -E "passed at|^saved|stopped|the loss is" "runs/rd-log/recall-$m-s$s.txt" | head -12 >> "$OUT/summary.txt"
    sed -n '/^gap /,$p' "runs/rd-log/recall-$m-s$s.txt" | head -14 >> "$OUT/summary.txt"
  done; done
fi
docret() { # docret model: from the chosen recall model, then eval
  local m=$1 dir=runs/rd-$1 init=runs/rd-$1/recall.safetensors
  [ -f "$init" ] || init=${init_dir:+$init_dir/$m-recall.safetensors}
  [ -n "$init" ] && [ -f "$init" ] || { echo "docret $m: no recall model (runs/rd-$m/recall.safetensors, or RD_INIT_DIR/$m-recall.safetensors)"; return 1; }
  runner train --task docret --backend $backend --preset small --config packages/bench/gpu/passkey-small.json --model "$m" --data "$data" \
    --docret-k 1,2,3 --query echo --seq-len 2k --lr 1e-3 --warmup 100 --checkpoint-every 100 --seed "$seed" \
    "${docret_budget[@]}" --init "$init" --out "$dir/docret" "${docret_mode[@]}" || return 1
  cmd_of eval
  timeout --kill-after=10 "$eval_secs" "${CMD[@]}" docret --backend $backend --checkpoint "$dir/docret/checkpoint.safetensors" --data "$data" --split validation \
    --k $eval_k --samples $samples --chunk 2048 --out "$dir/docret/eval"
}
if [[ $phases == *,docret,* ]]; then
  pids=()
  for m in $models; do docret "$m" >> "runs/rd-log/docret-$m.txt" 2>&1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || status=1; done
  tar czf "$OUT/docret.tgz" runs/rd-log/docret-* runs/rd-*/docret/train.jsonl runs/rd-*/docret/loss.svg runs/rd-*/docret/eval 2>/dev/null
  for m in $models; do
    { echo "== docret $m"; grep -E "train: docret: [0-9]|stopped|done at|no recall model|rror" "runs/rd-log/docret-$m.txt" | head -20
      grep -E -A 8 "^document retrieval accuracy" "runs/rd-log/docret-$m.txt"; } >> "$OUT/summary.txt"
  done
fi
cat "$OUT/summary.txt"
exit $status
