#!/usr/bin/env bash
# recall.ts on the GPU with a gap curriculum (--gap a list: train at each gap until the held-out
# rows there reach 0.9, then the next): MemMamba and Mamba (the tiny preset's settings, 2 layers x
# 64) at K = 2 pairs of 8-letter keys, two curricula (coarse, seed 1; fine, seed 2), four processes
# sharing the GPU for RC_MIN minutes each; the JSON and logs come back under $OUT.
set -u
source .gpu/enter.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
run() { # kind seed gaps tag
  node .gpu/recall.mjs --backend webgpu --kind $1 --pairs 2 --key-len 8 --gap $3 --seed $2 --steps 200000 --minutes ${RC_MIN:-8.4} \
    --eval-every 250 --out $OUT/recall-$1-k2-key8-$4.json > $OUT/log-$1-$4.txt 2>&1 &
  pids="${pids:-} $!"
}
for m in memmamba mamba; do
  run $m 1 64,128,256,512,1024 coarse-seed1
  run $m 2 32,64,96,128,192,256,384,512,768,1024 fine-seed2
done
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/smi.log 2>&1 &
wait $pids
for f in $OUT/log-*.txt; do echo "== $f"; head -1 $f; grep "passed at" $f; tail -14 $f; done
