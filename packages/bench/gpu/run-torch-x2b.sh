#!/usr/bin/env bash
# Second x2 run: the 2-GPU DDP checkpoint (tiny config) whose logits TS checks, and torch.compile
# of the small config without activation checkpointing.
set -uo pipefail
OUT=${OUT:?set OUT to the folder whose files come back}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
root=$PWD
python3 - <<'PY'
import pathlib
parts = [p.read_text(errors="ignore") for p in sorted(pathlib.Path("packages").rglob("*.ts")) if "node_modules" not in p.parts]
pathlib.Path("/tmp/text.txt").write_text("\n".join(parts))
print("text bytes", sum(len(p) for p in parts))
PY
cd packages/memmamba/reference
run() { local name=$1 limit=$2; shift 2; echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.err"; echo "rc=$?"; tail -n 3 "$OUT/$name.err"; cat "$OUT/$name.jsonl"; }
run ckpt-ddp2 90 torchrun --nproc_per_node 2 -m memmamba_ref.train --data /tmp/text.txt --preset tiny --seq-len 128 --batch 4 --accum 4 --steps 10 --eval-every 0 --overwrite --out "$OUT/ddp2" --save-logits "$OUT/ddp2/logits.safetensors" --quiet
run compile 200 python3 -m memmamba_ref.bench_train --kinds mamba,memmamba --sizes small --modes compile --act-ckpt off --batch 4 --seq-len 1024 --steps 6 --warmup 2
ls -la "$OUT/ddp2"
