#!/bin/bash
# s10d: can the same-size Mamba learn the passkey at 2K with the loss on every byte (answer weighted 5x)?
cd "$(dirname "$0")/.."
source .gpu/enter.sh >/dev/null
python3 -c "import tarfile; tarfile.open('runs/sub/books.tar.xz').extractall('runs')"
D=runs/exp/pk-mamba-all; mkdir -p $D
timeout 450 node .gpu/train.mjs --backend webgpu --preset small --config packages/bench/gpu/passkey-small.json --model mamba \
  --filler runs/books --filler-split train --seq-len 2k --batch 8 --accum 1 --lr 1e-3 --warmup 100 --steps 100000 \
  --eval-every 500 --checkpoint-every 500 --max-minutes 6.8 --task-loss all --answer-weight 5 --out $D 2>&1 | grep -v ETA | tail -25
timeout 100 node .gpu/passkey.mjs --backend webgpu --checkpoint $D/checkpoint.safetensors --filler runs/books --filler-split validation \
  --lengths 1k,2k,4k,8k,16k,32k,64k --depths 0,0.25,0.5,0.75,1 --samples 2 --chunk 2048 --out $D/passkey 2>&1 | grep -v "ETA\|tok/s" | tail -25
tar czf $OUT/pk-mamba-all.tgz -C runs/exp pk-mamba-all/train.jsonl pk-mamba-all/loss.svg pk-mamba-all/passkey
