#!/usr/bin/env bash
# Session 28, this 2-vCPU machine: two byte-level LMs (the tiny preset widened to d 64, 2 layers;
# MemMamba with the tiny preset's memory: pool 8, summary 16, τ1 = τ2 = 0.5, weighted fusion),
# trained side by side for 12 minutes each on one thread on the books' training split at 512-byte
# windows, then `eval ppl` on the validation split with and without --align.
set -eu
export PATH=$PWD/tools/node_modules/.bin:$PATH
mkdir -p runs/cpu-ppl && echo '{"dModel": 64, "nLayers": 2}' > runs/cpu-ppl/config.json
for m in memmamba mamba; do
  MEMMAMBA_CPU_THREADS=1 bun run train --data ../shared/data/books --preset tiny --config runs/cpu-ppl/config.json --model $m \
    --seq-len 512 --batch 8 --accum 1 --lr 2e-3 --warmup 100 --steps 100000 --max-minutes 12 --eval-every 500 --checkpoint-every 500 \
    --out runs/cpu-ppl/$m --overwrite > runs/cpu-ppl/$m.log 2>&1 &
done
wait
L=512,1k,2k,4k,8k,16k,32k,60k
for m in memmamba mamba; do
  ( MEMMAMBA_CPU_THREADS=1 bun run eval ppl --checkpoint runs/cpu-ppl/$m/checkpoint.safetensors --data ../shared/data/books --lengths $L \
      --windows 2 --align --chunk 2048 --out runs/cpu-ppl/$m/eval-aligned
    MEMMAMBA_CPU_THREADS=1 bun run eval ppl --checkpoint runs/cpu-ppl/$m/checkpoint.safetensors --data ../shared/data/books --lengths $L \
      --windows 2 --chunk 2048 --out runs/cpu-ppl/$m/eval-own ) &
done
wait
# Then (the same session, after the first two): MemMamba with FIFO eviction (config-fifo.json), and
# MemMamba with the default priority eviction at --seed 2, trained and evaluated (--align) the same way.
echo '{"dModel": 64, "nLayers": 2, "memory": {"replacement": "fifo"}}' > runs/cpu-ppl/config-fifo.json
MEMMAMBA_CPU_THREADS=1 bun run train --data ../shared/data/books --preset tiny --config runs/cpu-ppl/config-fifo.json --model memmamba \
  --seq-len 512 --batch 8 --accum 1 --lr 2e-3 --warmup 100 --steps 100000 --max-minutes 12 --eval-every 500 --checkpoint-every 500 \
  --out runs/cpu-ppl/memmamba-fifo --overwrite > runs/cpu-ppl/memmamba-fifo.log 2>&1 &
MEMMAMBA_CPU_THREADS=1 bun run train --data ../shared/data/books --preset tiny --config runs/cpu-ppl/config.json --model memmamba --seed 2 \
  --seq-len 512 --batch 8 --accum 1 --lr 2e-3 --warmup 100 --steps 100000 --max-minutes 12 --eval-every 500 --checkpoint-every 500 \
  --out runs/cpu-ppl/memmamba-seed2 --overwrite > runs/cpu-ppl/memmamba-seed2.log 2>&1 &
wait
for m in memmamba-fifo memmamba-seed2; do
  MEMMAMBA_CPU_THREADS=1 bun run eval ppl --checkpoint runs/cpu-ppl/$m/checkpoint.safetensors --data ../shared/data/books --lengths $L \
    --windows 2 --align --chunk 2048 --out runs/cpu-ppl/$m/eval-aligned &
done
wait
# Then: the same two models trained at 2,048-byte windows (batch 2: the same 4,096 tokens a step).
for m in memmamba mamba; do
  MEMMAMBA_CPU_THREADS=1 bun run train --data ../shared/data/books --preset tiny --config runs/cpu-ppl/config.json --model $m \
    --seq-len 2048 --batch 2 --accum 1 --lr 2e-3 --warmup 100 --steps 100000 --max-minutes 12 --eval-every 500 --checkpoint-every 500 \
    --out runs/cpu-ppl/$m-2k --overwrite > runs/cpu-ppl/$m-2k.log 2>&1 &
done
wait
for m in memmamba-2k mamba-2k; do
  MEMMAMBA_CPU_THREADS=1 bun run eval ppl --checkpoint runs/cpu-ppl/$m/checkpoint.safetensors --data ../shared/data/books --lengths $L \
    --windows 2 --align --chunk 2048 --out runs/cpu-ppl/$m/eval-aligned &
done
wait
