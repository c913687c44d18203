#!/bin/bash
cd /work/main
export PATH=/work/main/tools/node_modules/.bin:$PATH MEMMAMBA_CPU_THREADS=1
m=$1
nice -n 19 bun packages/bench/src/recall.ts --kind $m --pairs 2 --key-len 2 --gap 64 --steps 12000 --eval-every 250 --out /tmp/rg/long/recall-$m-k2-key2-gap64-12000.json > /tmp/rg/long/log-$m-key2-gap64-12000.txt 2>&1
echo done > /tmp/rg/long/done-$m
