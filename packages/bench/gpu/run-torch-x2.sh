#!/usr/bin/env bash
# On the 2-GPU machine (nvidia-h100-x2), from the repo root, with $OUT set by the device tool:
# the PyTorch port's training throughput at world size 1 and 2 (DDP and FSDP, issue 15), its
# one-GPU eager / torch.compile figures (issue 14), and a 2-GPU DDP checkpoint for the TS logits check.
set -uo pipefail
OUT=${OUT:?set OUT to the folder whose files come back}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0   # NVLink multicast off (device notes)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpus.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpus.txt"
cd packages/memmamba/reference
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.err"; echo "rc=$?"; tail -n 3 "$OUT/$name.err"; cat "$OUT/$name.jsonl"; }
B=${B:-4}; L=${L:-1024}
run ddp-fsdp-w1 150 torchrun --nproc_per_node 1 -m memmamba_ref.bench_train --kinds memmamba --sizes small,large --parallel ddp,fsdp --modes eager --batch $B --seq-len $L --steps 6 --warmup 2
run ddp-fsdp-w2 150 torchrun --nproc_per_node 2 -m memmamba_ref.bench_train --kinds memmamba --sizes small,large --parallel ddp,fsdp --modes eager --batch $B --seq-len $L --steps 6 --warmup 2
# a 2-GPU DDP run of the tiny config on text (the repo's own sources), checkpoint + logits for TS
find ../../.. -path '*/node_modules' -prune -o -name '*.ts' -print | head -200 | xargs cat > /tmp/text.txt
run ckpt-ddp2 60 torchrun --nproc_per_node 2 -m memmamba_ref.train --data /tmp/text.txt --preset tiny --seq-len 128 --batch 4 --accum 4 --steps 10 --eval-every 0 --overwrite --out "$OUT/ddp2" --save-logits "$OUT/ddp2/logits.safetensors" --quiet
run one-gpu 170 python3 -m memmamba_ref.bench_train --kinds memmamba,mamba --sizes small --modes eager,compile --batch 8 --seq-len 2048 --steps 6 --warmup 2
ls -la "$OUT" "$OUT/ddp2"
