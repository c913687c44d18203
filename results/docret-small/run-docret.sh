#!/usr/bin/env bash
# Docret training on the GPU: MemMamba and Mamba, each with the sentence and the first-words query,
# four processes sharing the GPU, the same step budget for all; then docret at k = 2 … 200.
set -u
source .gpu/enter.sh
python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
c="--phases dr-train,dr-eval,collect --dr-steps ${DR_STEPS:-700} --train-minutes ${DR_MIN:-6.4} --eval-minutes 1.6 --total-minutes 9.3 ${DR_EXTRA:-}"
for q in ${DR_QUERIES:-sentence first-words}; do
  for m in memmamba mamba; do
    bash packages/bench/gpu/experiments.sh --models $m --dr-query $q $c --exp runs/exp-$q-$m --out $OUT/$q-$m > /dev/null 2>&1 &
    pids="${pids:-} $!"
  done
done
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/smi.log 2>&1 &
wait $pids
for d in $OUT/*-*/; do n=$(basename $d); grep -E "train step [0-9]+/[0-9]+: |accuracy|^[0-9]+ +[0-9.]+ |dr-|stopped" $d/experiments.log | tail -40 | sed "s/^/$n: /"; done
cd $OUT && tar czf docret.tgz */results.tar.gz */experiments.log smi.log && rm -f */*.safetensors && ls -la
