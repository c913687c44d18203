#!/bin/bash
# queue for one model: runs in order, one thread
cd /work/main
export PATH=/work/main/tools/node_modules/.bin:$PATH MEMMAMBA_CPU_THREADS=1
m=$1
for spec in "2 32" "2 0" "8 0"; do
  set -- $spec
  bun packages/bench/src/recall.ts --kind $m --pairs 2 --key-len $1 --gap $2 --steps 6000 --eval-every 250 --out /tmp/rg/recall-$m-k2-key$1-gap$2.json > /tmp/rg/log-$m-key$1-gap$2.txt 2>&1
done
echo done > /tmp/rg/done-$m
