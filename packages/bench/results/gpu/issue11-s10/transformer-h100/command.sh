#!/bin/bash
# s10g: the Transformer baseline with blocked inference attention, forward at 1K..60K, beside MemMamba and Mamba
cd "$(dirname "$0")/.."
source .gpu/enter.sh >/dev/null
R=/tmp/g; mkdir -p $R
timeout 300 node .gpu/B/scaling.mjs --backend webgpu --preset small --kinds memmamba,mamba,transformer --modes forward \
  --lengths 1K,4K,16K,60K --chunk 65536 --parallel-max 4K --transformer-max 60K --runs 3 --warmup 1 --cap-s 20 \
  --out $R/scaling-transformer.json 2>&1 | grep -vE "…$" | tail -30
tar czf $OUT/s10g.tgz -C /tmp g
