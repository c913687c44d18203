#!/bin/bash
cd /work/main
export PATH=/work/main/tools/node_modules/.bin:$PATH MEMMAMBA_CPU_THREADS=1
m=$1
nice -n 5 bun packages/bench/src/recall.ts --kind $m --pairs 2 --key-len 2 --gap 64 --steps 6000 --eval-every 250 --out /tmp/rg/recall-$m-k2-key2-gap64.json > /tmp/rg/log-$m-key2-gap64.txt 2>&1
echo done > /tmp/rg/done2-$m
