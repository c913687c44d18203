#!/usr/bin/env bash
set -u
source .gpu/enter.sh
mkdir -p $OUT/r
for i in 1 2 3 4; do
  for m in spin backoff; do
    echo "== train $m $i"
    ( time MEMMAMBA_DAWN_POLL=$m timeout 150 node .gpu/train-throughput.mjs --kinds memmamba,mamba --steps 20 --warmup 8 --pipelined 20 --out $OUT/r/tt-$m-$i.json ) 2>&1 | grep -E "^(memmamba|mamba) |real|user|ratio|step /"
    echo "== decode $m $i"
    ( time MEMMAMBA_DAWN_POLL=$m timeout 120 node .gpu/decode.mjs --backend webgpu --steps 256 --out $OUT/r/dec-$m-$i.json ) 2>&1 | grep -E "^(memmamba|mamba) |real|user"
  done
done
cd $OUT && tar czf poll2.tgz r && rm -rf r
