#!/usr/bin/env bash
# recall.ts on the GPU: MemMamba and Mamba (the tiny preset's settings, 2 layers x 64) at K = 2 pairs
# of 8-letter keys, with RG_GAPS filler letters before each pair, all processes sharing the GPU for
# RG_MIN minutes each; the JSON and logs come back under $OUT.
set -u
source .gpu/enter.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for g in ${RG_GAPS:-64 256}; do
  for m in memmamba mamba; do
    node .gpu/recall.mjs --backend webgpu --kind $m --pairs 2 --key-len 8 --gap $g --steps 100000 --minutes ${RG_MIN:-8.3} --eval-every 500 \
      --out $OUT/recall-$m-k2-key8-gap$g.json > $OUT/log-$m-key8-gap$g.txt 2>&1 &
    pids="${pids:-} $!"
  done
done
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/smi.log 2>&1 &
wait $pids
for f in $OUT/log-*.txt; do echo "== $f"; head -1 $f; tail -4 $f; done
