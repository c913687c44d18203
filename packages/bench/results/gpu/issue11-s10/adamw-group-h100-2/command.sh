#!/bin/bash
# s10f: (1) the grouped AdamW A/B again, 5 alternations after 2 untimed runs; (2) the scans' bandwidth (issue 5) at ac94810
cd "$(dirname "$0")/.."
source .gpu/enter.sh >/dev/null
R=/tmp/f; mkdir -p $R
T=.gpu/B/train-throughput.mjs
C="--backend webgpu --preset small --batch 8 --seq 2048"
for i in 1 2; do timeout 60 node $T $C --kinds memmamba --steps 5 --warmup 2 --out $R/settle-$i.json 2>&1 | grep -E "^memmamba "; done
for i in 1 2 3 4 5; do for g in off auto; do
  echo "== $i $g"
  timeout 60 node $T $C --kinds memmamba,mamba --steps 7 --warmup 2 --adamw-group $g --out $R/tt-$g-$i.json 2>&1 | grep -E "^(memmamba|mamba) |Mamba step"
done; done
timeout 240 node .gpu/B/webgpu-scan.mjs --scan-algo lookback,tile --runs 5 --out $R/webgpu-scan.json > $R/webgpu-scan.log 2>&1
tail -40 $R/webgpu-scan.log
tar czf $OUT/s10f.tgz -C /tmp f
