#!/usr/bin/env bash
# A/B of MEMMAMBA_DAWN_POLL (spin: Dawn's own polling; backoff: the new default), alternated.
set -u
source .gpu/enter.sh
nvidia-smi --query-gpu=name --format=csv,noheader
mkdir -p $OUT/r
for i in 1 2; do
  for m in spin backoff; do
    echo "== train $m $i"
    ( time MEMMAMBA_DAWN_POLL=$m timeout 150 node .gpu/train-throughput.mjs --kinds memmamba,mamba --steps 10 --warmup 8 --pipelined 10 --out $OUT/r/tt-$m-$i.json ) 2>&1 | grep -E "^(memmamba|mamba) |real|user|sys|ratio|step /"
  done
done
for m in spin backoff; do
  echo "== decode $m"
  ( time MEMMAMBA_DAWN_POLL=$m timeout 120 node .gpu/decode.mjs --backend webgpu --steps 128 --out $OUT/r/dec-$m.json ) 2>&1 | tail -8
done
cd $OUT && tar czf poll.tgz r && rm -rf r
