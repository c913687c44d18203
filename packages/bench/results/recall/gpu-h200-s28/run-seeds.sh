#!/usr/bin/env bash
# recall.ts on the GPU, the fine gap curriculum of run-curriculum.sh (32 → 64 → ... → 1024 filler
# letters, advancing at 0.9) for more seeds: MemMamba and Mamba (2 layers x 64) at K = 2 pairs of
# 8-letter keys, seeds RS_SEEDS (default 3 4 5 6), all processes sharing the GPU for RS_MIN minutes
# each; the JSON and logs come back under $OUT.
set -u
source .gpu/enter.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for s in ${RS_SEEDS:-3 4 5 6}; do
  for m in memmamba mamba; do
    node .gpu/recall.mjs --backend webgpu --kind $m --pairs 2 --key-len 8 --gap 32,64,96,128,192,256,384,512,768,1024 --seed $s \
      --steps 200000 --minutes ${RS_MIN:-8.4} --eval-every 250 --out $OUT/recall-$m-k2-key8-fine-seed$s.json > $OUT/log-$m-fine-seed$s.txt 2>&1 &
    pids="${pids:-} $!"
  done
done
(while sleep 30; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) > $OUT/smi.txt 2>&1 &
wait $pids
for f in $OUT/log-*.txt; do echo "== $f"; grep "passed at" $f | head -3; tail -1 $f; done
for f in $OUT/recall-*.json; do python3 -c "
import json,sys; r=json.load(open('$f')); s=r['stages']
print(r['options']['kind'], r['options']['seed'], r['steps'], 'first pass', s[0]['passedAt'], 'stages passed', sum(1 for x in s if x['passedAt']), 'finalByGap', r['finalByGap'])"; done
# (added after the session-28 run: the GPU machine returns at most 8 files from $OUT, so that run's
# eight JSON files did not come back, only its logs; one archive holds them all)
cd $OUT && tar czf recall-json.tgz recall-*.json && rm -f recall-*.json smi.txt
