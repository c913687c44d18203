#!/usr/bin/env bash
# Docret with short documents (session 28): MemMamba and Mamba from their passkey weights
# (weights/), echo queries, documents of DS_CHARS characters (default 40,160: ~100 on average, so
# the ids lie close together), k = 1…3 noise documents, 512-token rows, both processes sharing the
# GPU for DS_MIN minutes of training each; then eval docret at k = 1, 2, 3, 10 on short documents
# (as trained) and on the default 200-1,000-character ones (--docret-chars 200,1000).
set -u
source .gpu/enter.sh
python3 -c "import tarfile; tarfile.open('runs/books.tar.xz').extractall('runs')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for m in memmamba mamba; do
  ( bash packages/bench/gpu/experiments.sh --models $m --dr-query echo --dr-chars ${DS_CHARS:-40,160} --dr-train-k 1,2,3 --dr-seq 512 \
      --dr-init weights --phases dr-train,dr-eval --dr-k 1,2,3,10 --dr-samples 20 --train-minutes ${DS_MIN:-6.2} --eval-minutes 0.8 \
      --total-minutes 7.2 --exp runs/exp-short-$m
    timeout 100 node .gpu/eval.mjs docret --backend webgpu --checkpoint runs/exp-short-$m/dr-$m/checkpoint.safetensors --data runs/books \
      --split validation --k 1,2,3,10 --samples 20 --docret-chars 200,1000 --chunk 2048 --out runs/exp-short-$m/dr-$m/eval-long
  ) > $OUT/log-$m.txt 2>&1 &
  pids="${pids:-} $!"
done
wait $pids
tar czf $OUT/docret-short.tgz runs/exp-short-*/dr-*/train.jsonl runs/exp-short-*/dr-*/loss.svg runs/exp-short-*/dr-*/eval runs/exp-short-*/dr-*/eval-long
for m in memmamba mamba; do
  echo "== $m"; grep -E "train: docret|dr-train|dr-eval|stopped|done at|time budget" $OUT/log-$m.txt | head -12
  grep -E "^\{" runs/exp-short-$m/dr-$m/train.jsonl | tail -2
  grep -E -A 7 "^document retrieval accuracy" $OUT/log-$m.txt
done
