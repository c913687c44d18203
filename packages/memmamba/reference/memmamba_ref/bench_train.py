"""Training throughput of the PyTorch port: tokens/s per GPU and peak memory per GPU, one JSON line
per configuration (from rank 0). Needs nothing but torch.

    python -m memmamba_ref.bench_train                                   # 1 GPU: DDP world size 1
    torchrun --nproc_per_node 2 -m memmamba_ref.bench_train --parallel ddp,fsdp --sizes small,large

A step = forward + backward of one micro-batch of --batch rows × --seq-len per GPU (weak scaling:
the global batch grows with the world size), global-norm clipping at 1.0 and an AdamW step, as
in train.py. Random tokens (the data pipeline is not measured). --warmup steps (compilation
included) are not timed; then --steps steps are, between CUDA synchronisations.
tokens/s per GPU = batch · seq_len · steps / seconds; scaling efficiency at W GPUs = (tokens/s
per GPU at W) / (tokens/s at W = 1).

Sizes: ``small`` = the TS preset (d 256, 8 layers, dState 16, summaryDim 64, pool 50); ``large`` =
d 768, 12 layers (13.5× the small one's layer weights). Kinds: memmamba, mamba (memory off),
transformer. If a configuration runs out of memory it is retried with activation checkpointing
(one layer's activations at a time), then with half the batch; the line says which ran
("actCkpt", "batch"). Without a launcher it starts a one-process group itself (DDP world size 1).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any, Dict

import torch
import torch.distributed as dist

from .config import preset
from .model import LM

SIZES: Dict[str, Dict[str, Any]] = {
    "small": {},
    "large": {"dModel": 768, "nLayers": 12},
}


def _init_dist(device: str):
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), torch.device("cuda", local) if device == "cuda" else torch.device("cpu")


def _wrap(model, parallel: str, dev: torch.device):
    if parallel == "fsdp":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        from .model import MemMambaLayer, TransformerLayer
        kw: Dict[str, Any] = {"auto_wrap_policy": ModuleWrapPolicy({MemMambaLayer, TransformerLayer}), "use_orig_params": True}
        if dev.type == "cuda":
            kw["device_id"] = dev
        return FSDP(model, **kw)
    from torch.nn.parallel import DistributedDataParallel as DDP
    return DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)


def run_one(kind: str, size: str, parallel: str, mode: str, batch: int, seq_len: int, steps: int, warmup: int,
            act_ckpt: bool, dev: torch.device, world: int, amp: str) -> Dict[str, Any]:
    overrides = dict(SIZES[size])
    overrides["kind"] = kind
    cfg = preset("small", overrides)
    torch.manual_seed(0)
    lm = LM(cfg).to(dev)
    lm.activation_checkpointing = act_ckpt
    n_params = sum(p.numel() for p in lm.parameters())
    model = _wrap(lm, parallel, dev)
    fwd = torch.compile(model) if mode == "compile" else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    g = torch.Generator(device="cpu").manual_seed(1 + dist.get_rank())
    x = torch.randint(0, cfg.vocab, (batch, seq_len), generator=g).to(dev)
    y = torch.randint(0, cfg.vocab, (batch, seq_len), generator=g).to(dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp == "bf16" and dev.type == "cuda" else None

    def step() -> float:
        if autocast is not None:
            with autocast:
                loss = fwd(x, targets=y)
        else:
            loss = fwd(x, targets=y)
        loss.backward()
        if parallel == "fsdp":
            model.clip_grad_norm_(1.0)
        else:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_c = time.perf_counter()
    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    warm_s = time.perf_counter() - t_c
    dist.barrier()
    t0 = time.perf_counter()
    loss = None
    for _ in range(steps):
        loss = step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    secs = time.perf_counter() - t0
    tps = batch * seq_len * steps / secs
    stats = torch.tensor([tps, torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0.0], dtype=torch.float64, device=dev)
    lo = stats.clone()
    hi = stats.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    return {
        "kind": kind, "size": size, "dModel": cfg.d_model, "nLayers": cfg.n_layers, "params": n_params,
        "parallel": parallel, "mode": mode, "world": world, "batchPerGpu": batch, "seqLen": seq_len, "amp": amp,
        "actCkpt": act_ckpt, "steps": steps, "warmupSec": round(warm_s, 2), "msPerStep": round(secs / steps * 1000, 2),
        "tokensPerSecPerGpu": round(float(lo[0]), 1), "tokensPerSecPerGpuMax": round(float(hi[0]), 1),
        "tokensPerSecTotal": round(float(lo[0]) * world, 1),
        "peakMemGiBPerGpu": round(float(hi[1]) / 2**30, 3), "loss": round(float(loss), 4),
        "torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
    }


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) if hasattr(torch.cuda, "OutOfMemoryError") else "out of memory" in str(e)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memmamba_ref.bench_train", description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="memmamba,mamba", help="comma list of memmamba, mamba, transformer")
    p.add_argument("--sizes", default="small", help="comma list of small, large")
    p.add_argument("--parallel", default="ddp", help="comma list of ddp, fsdp")
    p.add_argument("--modes", default="eager,compile", help="comma list of eager, compile")
    p.add_argument("--batch", type=int, default=8, help="rows per GPU")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--act-ckpt", choices=["auto", "on", "off"], default="auto", help="activation checkpointing (auto: only after an OOM)")
    p.add_argument("--amp", choices=["none", "bf16"], default="none", help="bf16 autocast (default: float32, as the TS trainer)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 as the TS trainer (no TF32 rounding)
        torch.backends.cudnn.allow_tf32 = False
    rank, world, dev = _init_dist(a.device)
    try:
        for size in a.sizes.split(","):
            for kind in a.kinds.split(","):
                for parallel in a.parallel.split(","):
                    for mode in a.modes.split(","):
                        batch, ck = a.batch, a.act_ckpt == "on"
                        while True:
                            try:
                                rec = run_one(kind, size, parallel, mode, batch, a.seq_len, a.steps, a.warmup, ck, dev, world, a.amp)
                                break
                            except Exception as e:  # noqa: BLE001 — OOM: retry smaller; anything else: report
                                if dev.type == "cuda":
                                    torch.cuda.empty_cache()
                                if _is_oom(e) and a.act_ckpt == "auto" and not ck:
                                    ck = True
                                    continue
                                if _is_oom(e) and batch > 1:
                                    batch //= 2
                                    continue
                                rec = {"kind": kind, "size": size, "parallel": parallel, "mode": mode, "world": world,
                                       "error": f"{type(e).__name__}: {str(e)[:300]}"}
                                break
                        if rank == 0:
                            print(json.dumps(rec), flush=True)
                        if dev.type == "cuda":
                            torch.cuda.empty_cache()
                        if mode == "compile" and hasattr(torch, "_dynamo"):
                            torch._dynamo.reset()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
