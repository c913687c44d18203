#!/usr/bin/env bash
# The paper's experiments (issue #11) for the small MemMamba and the same-size Mamba, in phases
# with time budgets, so that the work spreads over several ≤10-minute GPU commands:
#
#   pk-train   train on passkey retrieval at 2K tokens, book filler (training split)   [--resume]
#   pk-eval    passkey accuracy at 1K … 128K × depths 0…1 (validation-split filler), one
#              length after another while the phase's time lasts
#   lm-train   train the byte-level LM on the books' training split                    [--resume]
#   lm-eval    perplexity by context length (validation split), docret, ETMF/ECLMF
#   collect    the JSON/SVG/logs in one tar, plus each final model as F16 weights, into $OUT
#   dr-train   (not in the default list) train on document retrieval: k = 1…6 noise paragraphs of the
#              training split, 4K-token rows, the id's digits scored                   [--resume]
#   dr-eval    (not in the default list) docret accuracy of the dr-train model at k = 2 … 200
#              (validation paragraphs)
#   prefill    (not in the default list) tokens/s of the evaluation's chunked prefill vs token steps
#
# On the GPU machine, from the repository root (the lead packs and carries; see the README):
#   source .gpu/enter.sh && bash packages/bench/gpu/experiments.sh --phases pk-train --train-minutes 4.2
#   source .gpu/enter.sh && bash packages/bench/gpu/experiments.sh --phases pk-eval,collect --eval-minutes 4
# Training resumes from runs/exp/<phase>-<model>/checkpoint.safetensors when it is there (the
# machine keeps runs/ while it stays warm). Here, at tiny size on the CPU (or lavapipe):
#   bash packages/bench/gpu/experiments.sh --local --tiny --backend cpu
set -euo pipefail

phases=pk-train,pk-eval,lm-train,lm-eval,collect
models=memmamba,mamba
backend=webgpu
preset=small
pk_config=packages/bench/gpu/passkey-small.json
data=runs/books
exp=runs/exp
out=${OUT:-runs/exp/out}
train_minutes=4
eval_minutes=4
total_minutes=9.6          # the whole command (one GPU command may run 10 minutes)
pk_seq=2k; pk_batch=8; pk_lr=1e-3; pk_warmup=100; pk_eval_every=100; pk_steps=100000
lm_seq=2k; lm_batch=8; lm_accum=1; lm_lr=1e-3; lm_warmup=100; lm_eval_every=200; lm_steps=100000
pk_lengths=1k,2k,4k,8k,16k,32k,64k,128k; pk_depths=0,0.25,0.5,0.75,1; pk_samples=2
ppl_lengths=1k,2k,4k,10k,20k,30k,40k,50k,60k; ppl_windows=2; ppl_align=0
docret_k=10,20,120,160,200; docret_samples=5; metrics_samples=4; metrics_len=2k
dr_seq=4k; dr_batch=8; dr_lr=1e-3; dr_warmup=100; dr_eval_every=100; dr_steps=100000; dr_train_k=1,2,3,4,5,6
dr_k=2,4,10,20,120,160,200; dr_samples=10; dr_query=sentence; dr_task_loss=answer; dr_answer_weight=1; dr_init=; dr_chars=
chunk=2048
weights_dir=               # evaluate <dir>/<model>-<preset>-{passkey,lm}.safetensors where runs/exp holds no checkpoint
local=0
seed=                      # train's --seed (the data order of every training phase); empty: train's default
runtime=${RUNTIME:-node}   # node | bun | deno: which packed runtime runs the bundles
bundles=${BUNDLES:-.gpu}   # where pack.sh put train.mjs, passkey.mjs, eval.mjs, export-weights.mjs (prefill-bench.mjs)

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; cat <<USAGE
Flags (defaults in brackets):
  --phases LIST        of pk-train,pk-eval,lm-train,lm-eval,dr-train,dr-eval,collect,prefill [$phases]
  --models LIST        memmamba,mamba [$models]
  --train-minutes M    per model and training phase [$train_minutes]
  --eval-minutes M     per model and evaluation phase [$eval_minutes]
  --total-minutes M    no phase starts or runs past this, counted from the script's start [$total_minutes]
  --backend B          webgpu | cpu [$backend]
  --preset P           model size [$preset]; --tiny = tiny model, short samples (a local check)
  --data DIR           the cut books (prep-books.ts) [$data]; made from runs/books.tar.xz if absent
  --exp DIR            run directories [$exp];   --out DIR  where collect writes [\$OUT or $out]
  --seed N             train's --seed for every training phase (initial weights unless --dr-init, and the data order: replicas that differ) [train's default]
  --pk-lengths LIST [$pk_lengths]  --pk-samples N [$pk_samples]  --ppl-lengths LIST [$ppl_lengths]
  --ppl-align          eval ppl --align: the same bytes scored at every length (windows of the longest)
  --ppl-windows N [$ppl_windows]  --chunk N [$chunk]  --pk-batch N [$pk_batch]  --lm-batch N [$lm_batch]
  --pk-lr X [$pk_lr]  --lm-lr X [$lm_lr]  --pk-seq N [$pk_seq]  --lm-seq N [$lm_seq]
  --pk-eval-every N    steps between the passkey training's held-out checks [$pk_eval_every]
  --pk-steps N  --lm-steps N  --dr-steps N   stop training at this step, the same budget for both models [$pk_steps: time-limited]
  --dr-train-k LIST [$dr_train_k]  --dr-k LIST [$dr_k]  --dr-samples N [$dr_samples]  --dr-query Q [$dr_query]
  --dr-seq N [$dr_seq]  --dr-batch N [$dr_batch]  --dr-lr X [$dr_lr]
  --dr-task-loss answer|all [$dr_task_loss]  --dr-answer-weight X [$dr_answer_weight]   (train's --task-loss, --answer-weight)
  --dr-init DIR        start the docret training from DIR/<model>-<preset>-passkey.safetensors (train's --init)
  --dr-chars MIN,MAX   the documents' lengths in characters, for dr-train and dr-eval (train's and eval's --docret-chars) [200,1000]
  --weights DIR        evaluate the weights files that collect wrote (carried back) where no checkpoint is in --exp
  --local              run the sources with tools/node_modules/.bin/bun instead of .gpu/*.mjs
  --pack-data          (here, not there) cut the books into runs/books and pack runs/books.tar.xz, then exit
USAGE
}

# a flag that takes a value, given none (or another flag): one line naming it, not bash's "$2: unbound variable"
need() { if [ $# -lt 2 ] || [[ $2 == --* ]]; then echo "experiments.sh: $1 needs a value (see --help)" >&2; exit 2; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --phases) need "$@"; phases=$2; shift ;;
    --models) need "$@"; models=$2; shift ;;
    --train-minutes) need "$@"; train_minutes=$2; shift ;;
    --eval-minutes) need "$@"; eval_minutes=$2; shift ;;
    --total-minutes) need "$@"; total_minutes=$2; shift ;;
    --backend) need "$@"; backend=$2; shift ;;
    --preset) need "$@"; preset=$2; shift ;;
    --data) need "$@"; data=$2; shift ;;
    --exp) need "$@"; exp=$2; shift ;;
    --seed) need "$@"; seed=$2; shift ;;
    --out) need "$@"; out=$2; shift ;;
    --pk-lengths) need "$@"; pk_lengths=$2; shift ;;
    --pk-samples) need "$@"; pk_samples=$2; shift ;;
    --ppl-lengths) need "$@"; ppl_lengths=$2; shift ;;
    --ppl-windows) need "$@"; ppl_windows=$2; shift ;;
    --ppl-align) ppl_align=1 ;;
    --chunk) need "$@"; chunk=$2; shift ;;
    --pk-batch) need "$@"; pk_batch=$2; shift ;;
    --lm-batch) need "$@"; lm_batch=$2; shift ;;
    --pk-lr) need "$@"; pk_lr=$2; shift ;;
    --pk-eval-every) need "$@"; pk_eval_every=$2; shift ;;
    --pk-steps) need "$@"; pk_steps=$2; shift ;;
    --lm-steps) need "$@"; lm_steps=$2; shift ;;
    --dr-steps) need "$@"; dr_steps=$2; shift ;;
    --dr-train-k) need "$@"; dr_train_k=$2; shift ;;
    --dr-k) need "$@"; dr_k=$2; shift ;;
    --dr-samples) need "$@"; dr_samples=$2; shift ;;
    --dr-query) need "$@"; dr_query=$2; shift ;;
    --dr-chars) need "$@"; dr_chars=$2; shift ;;
    --dr-seq) need "$@"; dr_seq=$2; shift ;;
    --dr-batch) need "$@"; dr_batch=$2; shift ;;
    --dr-lr) need "$@"; dr_lr=$2; shift ;;
    --dr-task-loss) need "$@"; dr_task_loss=$2; shift ;;
    --dr-answer-weight) need "$@"; dr_answer_weight=$2; shift ;;
    --dr-init) need "$@"; dr_init=$2; shift ;;
    --lm-lr) need "$@"; lm_lr=$2; shift ;;
    --pk-seq) need "$@"; pk_seq=$2; shift ;;
    --lm-seq) need "$@"; lm_seq=$2; shift ;;
    --weights) need "$@"; weights_dir=$2; shift ;;
    --local) local=1 ;;
    --tiny) preset=tiny; pk_seq=256; lm_seq=256; pk_batch=4; lm_batch=4; pk_eval_every=20; lm_eval_every=20
            pk_lengths=1k,2k; pk_samples=1; pk_depths=0,1; ppl_lengths=512,1k; ppl_windows=1
            docret_k=2,4; docret_samples=2; metrics_samples=1; metrics_len=256; chunk=512; pk_lr=5e-3; lm_lr=5e-3; pk_warmup=20; lm_warmup=20
            dr_seq=2k; dr_batch=2; dr_train_k=1,2; dr_k=1,2; dr_samples=2; dr_eval_every=20; dr_lr=5e-3; dr_warmup=20 ;;
    --pack-data)
      tools/node_modules/.bin/bun packages/bench/gpu/prep-books.ts --to runs/books
      python3 -c "import tarfile; t = tarfile.open('runs/books.tar.xz', 'w:xz'); t.add('runs/books', arcname='books'); t.close()"
      ls -la runs/books.tar.xz; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "experiments.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

t_start=$(date +%s)
mkdir -p "$out"
exec > >(tee -a "$out/experiments.log") 2>&1   # the whole log comes back with the results
if [ "$local" != 1 ] && ! command -v "$runtime" >/dev/null && [ -f "$bundles/enter.sh" ]; then
  source packages/bench/gpu/enter.sh; enter_gpu "$bundles"   # the GPU machine: unpack the runtime, Dawn and the Vulkan loader (locked)
fi
log() { echo "[experiments $(date -u +%H:%M:%S) +$(( $(date +%s) - t_start ))s] $*" >&2; }
# minutes left before --total-minutes, minus a margin for the files that a phase writes at its end
left_minutes() { python3 -c "print(max(0.0, $total_minutes - ($(date +%s) - $t_start) / 60 - 0.15))"; }
min_of() { python3 -c "print(min($1, $2))"; }
cmd_of() { # CMD = how to run the CLI entry $1 (train, passkey, eval, export-weights)
  if [ "$local" = 1 ]; then CMD=(tools/node_modules/.bin/bun "packages/cli/src/bin/$1.ts")
  elif [ "$runtime" = deno ]; then CMD=(deno run -A "$bundles/$1.mjs")
  else CMD=("$runtime" "$bundles/$1.mjs"); fi
}
cli() { local name=$1; shift; cmd_of "$name"; "${CMD[@]}" "$@"; }
# tcli SECONDS NAME args...: the same, killed after SECONDS (an evaluation has no budget of its own)
tcli() { local secs=$1 name=$2; shift 2; cmd_of "$name"; timeout --kill-after=10 "$secs" "${CMD[@]}" "$@"; }
secs_of() { python3 -c "print(max(1, int($1 * 60)))"; }
has() { case ",$phases," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ ! -d "$data" ]; then
  [ -f runs/books.tar.xz ] || { echo "experiments.sh: no $data and no runs/books.tar.xz (run --pack-data here and carry runs/books.tar.xz)" >&2; exit 1; }
  log "unpacking runs/books.tar.xz"
  python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
fi
mkdir -p "$exp" "$out"
IFS=, read -ra model_list <<< "$models"
common=(--backend "$backend" --preset "$preset")

train_phase() { # train_phase pk|lm|dr model
  local kind=$1 model=$2 dir="$exp/$1-$2" budget resume=() seeded=()
  [ -n "$seed" ] && seeded=(--seed "$seed")
  budget=$(min_of "$train_minutes" "$(left_minutes)")
  if python3 -c "import sys; sys.exit(0 if $budget < 0.2 else 1)"; then log "$kind-train $model: skipped, $budget min left"; return; fi
  [ -f "$dir/checkpoint.safetensors" ] && resume=(--resume)
  log "$kind-train $model: ${budget} min ${resume[*]:-(fresh)} -> $dir"
  if [ "$kind" = pk ]; then
    local cfg=(); [ "$preset" = tiny ] || cfg=(--config "$pk_config")
    cli train "${common[@]}" "${seeded[@]}" "${cfg[@]}" --model "$model" --filler "$data" --filler-split train --seq-len "$pk_seq" --batch "$pk_batch" --accum 1 \
      --lr "$pk_lr" --warmup "$pk_warmup" --steps "$pk_steps" --eval-every "$pk_eval_every" --checkpoint-every 100 \
      --max-minutes "$budget" --out "$dir" "${resume[@]}"
  elif [ "$kind" = dr ]; then
    local cfg=(); [ "$preset" = tiny ] || cfg=(--config "$pk_config")
    [ -n "$dr_init" ] && cfg+=(--init "$dr_init/$model-$preset-passkey.safetensors")
    [ -n "$dr_chars" ] && cfg+=(--docret-chars "$dr_chars")
    cli train "${common[@]}" "${seeded[@]}" "${cfg[@]}" --model "$model" --task docret --data "$data" --docret-k "$dr_train_k" --query "$dr_query" \
      --task-loss "$dr_task_loss" --answer-weight "$dr_answer_weight" \
      --seq-len "$dr_seq" --batch "$dr_batch" --accum 1 --lr "$dr_lr" --warmup "$dr_warmup" --steps "$dr_steps" --eval-every "$dr_eval_every" \
      --checkpoint-every 100 --max-minutes "$budget" --out "$dir" "${resume[@]}"
  else
    cli train "${common[@]}" "${seeded[@]}" --model "$model" --data "$data" --seq-len "$lm_seq" --batch "$lm_batch" --accum "$lm_accum" \
      --lr "$lm_lr" --warmup "$lm_warmup" --steps "$lm_steps" --eval-every "$lm_eval_every" --checkpoint-every 200 \
      --max-minutes "$budget" --out "$dir" "${resume[@]}"
  fi
}

# the model to evaluate: the run's checkpoint, else a weights file from --weights
task_name() { case $1 in pk) echo passkey ;; lm) echo lm ;; dr) echo docret ;; esac; }
model_file() { # model_file pk|lm|dr model
  local ck="$exp/$1-$2/checkpoint.safetensors" w="$weights_dir/$2-$preset-$(task_name "$1").safetensors"
  if [ -f "$ck" ]; then echo "$ck"; elif [ -n "$weights_dir" ] && [ -f "$w" ]; then echo "$w"; fi
}

pk_eval() { # one process per length, longest last, while the phase's time lasts
  local model=$1 dir="$exp/pk-$1" budget t0 last=0 len ck
  ck=$(model_file pk "$model")
  [ -n "$ck" ] || { log "pk-eval $model: no checkpoint in $dir${weights_dir:+ and no weights in $weights_dir}, skipped"; return; }
  budget=$(min_of "$eval_minutes" "$(left_minutes)")
  t0=$(date +%s)
  IFS=, read -ra lens <<< "$pk_lengths"
  for len in "${lens[@]}"; do
    # a length costs about twice the one before (and 20 s of start-up): skip what cannot finish
    local used=$(( $(date +%s) - t0 ))
    if python3 -c "import sys; sys.exit(0 if $used + 2 * $last + 20 > $budget * 60 else 1)"; then
      log "pk-eval $model: stopping before $len ($used s used of $budget min)"; break
    fi
    local ts=$(date +%s)
    log "pk-eval $model: length $len"
    tcli $(( $(secs_of "$budget") - used )) passkey --backend "$backend" --checkpoint "$ck" --filler "$data" --filler-split validation \
      --lengths "$len" --depths "$pk_depths" --samples "$pk_samples" --chunk "$chunk" --out "$dir/passkey/$len" \
      || { log "pk-eval $model: length $len stopped (time or error)"; break; }
    last=$(( $(date +%s) - ts ))
  done
  # one table of every length evaluated so far (also those of earlier commands)
  python3 - "$dir/passkey" "$model" <<'PY'
import json, os, sys
root, model = sys.argv[1], sys.argv[2]
rows = []
for d in os.listdir(root) if os.path.isdir(root) else []:
    p = os.path.join(root, d, "passkey.json")
    if os.path.isfile(p):
        r = json.load(open(p))
        for li, L in enumerate(r["lengths"]):
            acc = [r["accuracy"][di][li] for di in range(len(r["depths"]))]
            rows.append({"length": L, "depths": r["depths"], "accuracyByDepth": acc, "accuracy": sum(acc) / len(acc), "samples": r["samples"]})
rows.sort(key=lambda x: x["length"])
json.dump({"model": model, "rows": rows}, open(os.path.join(root, "summary.json"), "w"), indent=2)
for x in rows: print(f"passkey {model} {x['length']:>7}: {x['accuracy']:.2f}  by depth {' '.join(f'{a:.2f}' for a in x['accuracyByDepth'])}", file=sys.stderr)
PY
}

lm_eval() {
  local model=$1 dir="$exp/lm-$1" ck budget until
  ck=$(model_file lm "$model")
  [ -n "$ck" ] || { log "lm-eval $model: no checkpoint in $dir${weights_dir:+ and no weights in $weights_dir}, skipped"; return; }
  budget=$(min_of "$eval_minutes" "$(left_minutes)")
  until=$(( $(date +%s) + $(secs_of "$budget") ))
  local ev=(--backend "$backend" --checkpoint "$ck" --data "$data" --split validation --out "$dir/eval")
  log "lm-eval $model: ppl, docret, metrics in $budget min"
  tcli $(( until - $(date +%s) )) eval ppl "${ev[@]}" --chunk "$chunk" --lengths "$ppl_lengths" --windows "$ppl_windows" $([ "$ppl_align" = 1 ] && echo --align) || log "lm-eval $model: ppl stopped (time or error)"
  if [ $(( until - $(date +%s) )) -gt 15 ]; then
    tcli $(( until - $(date +%s) )) eval docret "${ev[@]}" --chunk "$chunk" --k "$docret_k" --samples "$docret_samples" || log "lm-eval $model: docret stopped (time or error)"
  fi
  if [ $(( until - $(date +%s) )) -gt 15 ]; then
    tcli $(( until - $(date +%s) )) eval metrics "${ev[@]}" --samples "$metrics_samples" --metrics-len "$metrics_len" || log "lm-eval $model: metrics stopped (time or error)"
  fi
}

dr_eval() { # docret accuracy of the docret-trained model, k after k in one process
  local model=$1 dir="$exp/dr-$1" ck budget
  ck=$(model_file dr "$model")
  [ -n "$ck" ] || { log "dr-eval $model: no checkpoint in $dir${weights_dir:+ and no weights in $weights_dir}, skipped"; return; }
  budget=$(min_of "$eval_minutes" "$(left_minutes)")
  log "dr-eval $model: docret at k = $dr_k in $budget min"
  tcli "$(secs_of "$budget")" eval docret --backend "$backend" --checkpoint "$ck" --data "$data" --split validation --chunk "$chunk" \
    --k "$dr_k" --samples "$dr_samples" --query "$dr_query" ${dr_chars:+--docret-chars "$dr_chars"} --out "$dir/eval" || log "dr-eval $model: stopped (time or error)"
}

collect() {
  log "collect -> $out"
  for m in "${model_list[@]}"; do
    for k in pk lm dr; do
      local ck="$exp/$k-$m/checkpoint.safetensors"
      [ -f "$ck" ] && cli export-weights --checkpoint "$ck" --out "$out/$m-$preset-$(task_name "$k").safetensors" --dtype F16 --overwrite
    done
  done
  # results: every JSON, SVG and training log (not the checkpoints: 12 bytes a parameter)
  (cd "$exp" && find . -path ./out -prune -o \( -name '*.json' -o -name '*.svg' -o -name '*.jsonl' \) -print | tar -czf - -T -) > "$out/results.tar.gz"
  ls -la "$out"
}

# a failing phase is reported and the next one still runs
if has prefill; then
  log "prefill: chunked prefill vs token steps ($preset on $backend)"
  if [ "$local" = 1 ]; then pb=(tools/node_modules/.bin/bun packages/bench/gpu/prefill-bench.ts); else pb=("$runtime" "$bundles/prefill-bench.mjs"); fi
  for m in "${model_list[@]}"; do
    timeout 240 "${pb[@]}" --backend "$backend" --preset "$preset" --model "$m" --length 32768 --chunk 512,2048,8192 --step-tokens 128 --json > "$exp/prefill-$m.json" \
      && cat "$exp/prefill-$m.json" || log "prefill $m FAILED"
  done
fi
for m in "${model_list[@]}"; do if has pk-train; then train_phase pk "$m" || log "pk-train $m FAILED"; fi; done
for m in "${model_list[@]}"; do if has pk-eval; then pk_eval "$m" || log "pk-eval $m FAILED"; fi; done
for m in "${model_list[@]}"; do if has lm-train; then train_phase lm "$m" || log "lm-train $m FAILED"; fi; done
for m in "${model_list[@]}"; do if has lm-eval; then lm_eval "$m" || log "lm-eval $m FAILED"; fi; done
for m in "${model_list[@]}"; do if has dr-train; then train_phase dr "$m" || log "dr-train $m FAILED"; fi; done
for m in "${model_list[@]}"; do if has dr-eval; then dr_eval "$m" || log "dr-eval $m FAILED"; fi; done
if has collect; then collect || log "collect FAILED"; fi
log "done"
