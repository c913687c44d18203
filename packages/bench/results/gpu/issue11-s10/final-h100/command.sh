#!/bin/bash
# s10e: batch-1 scaling forward at the final commit (apply's counts off in the bench's parallel forward), twice
cd "$(dirname "$0")/.."
source .gpu/enter.sh >/dev/null
R=/tmp/e; mkdir -p $R
S=.gpu/B/scaling.mjs; T=.gpu/B/train-throughput.mjs
timeout 60 node $T --backend webgpu --preset small --batch 8 --seq 2048 --kinds memmamba --steps 5 --warmup 2 --out $R/settle.json 2>&1 | grep -E "^memmamba "
for i in 1 2; do
  timeout 100 node $S --backend webgpu --preset small --kinds memmamba,mamba --modes forward --lengths 1K,4K,16K,60K,256K \
    --chunk 65536 --parallel-max 4K --runs 3 --warmup 1 --cap-s 8 --out $R/scaling-$i.json 2>&1 | grep -E "^(memmamba|mamba) |MemMamba / Mamba|µs/token at"
done
timeout 60 node $T --backend webgpu --preset small --batch 8 --seq 2048 --kinds memmamba,mamba --steps 7 --warmup 2 --out $R/tt.json 2>&1 | grep -E "^(memmamba|mamba) |Mamba step"
tar czf $OUT/s10e.tgz -C /tmp e
