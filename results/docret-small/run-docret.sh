#!/usr/bin/env bash
# Docret training on the GPU: MemMamba and Mamba, for each query of DR_QUERIES and each start of
# DR_STARTS ("-": from scratch; a directory: --dr-init DIR, each model's passkey weights there),
# all processes sharing the GPU, the same step budget for all; then docret at the --dr-k list.
# DR_MODELS picks the models (default "memmamba mamba"; a --models in DR_EXTRA overrides every
# slot's, so each slot then trains that model: replicas). DR_KEEP=1 brings back the MemMamba
# runs' weights (exported F16) as well.
set -u
source .gpu/enter.sh
python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
c="--phases dr-train,dr-eval,collect --dr-steps ${DR_STEPS:-700} --train-minutes ${DR_MIN:-6.4} --eval-minutes ${DR_EVAL_MIN:-1.6} --total-minutes ${DR_TOTAL_MIN:-9.3} ${DR_EXTRA:-}"
for s in ${DR_STARTS:--}; do
  init=""; tag=""
  [ "$s" != "-" ] && init="--dr-init $s" && tag="-init"
  for q in ${DR_QUERIES:-sentence first-words}; do
    for m in ${DR_MODELS:-memmamba mamba}; do
      bash packages/bench/gpu/experiments.sh --models $m --dr-query $q $c $init --exp runs/exp-$q$tag-$m --out $OUT/$q$tag-$m > /dev/null 2>&1 &
      pids="${pids:-} $!"
    done
  done
done
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/smi.log 2>&1 &
wait $pids
for d in $OUT/*-*/; do n=$(basename $d); grep -E "train step [0-9]+/[0-9]+: |accuracy|^[0-9]+ +[0-9.]+ |dr-|stopped" $d/experiments.log | tail -40 | sed "s/^/$n: /"; done
cd $OUT && tar czf docret.tgz */results.tar.gz */experiments.log smi.log
for f in */*.safetensors; do
  case "$f" in *memmamba*/memmamba-*) [ "${DR_KEEP:-0}" = 1 ] && mv "$f" "${f%%/*}.safetensors" || rm -f "$f" ;; *) rm -f "$f" ;; esac
done
ls -la
