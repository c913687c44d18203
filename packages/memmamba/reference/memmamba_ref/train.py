"""Trains MemMamba / Mamba / Transformer in PyTorch, one process or many (torch.distributed):
the same config, data, split, windows, optimizer and checkpoints as ``bun run train``.

    python -m memmamba_ref.train --data books/ --preset small --seq-len 2048 --steps 1000 --out runs/x
    python -m memmamba_ref.train --task passkey --filler books/ --preset small --seq-len 2048 --out runs/pk
    torchrun --nproc_per_node 2 -m memmamba_ref.train --data books/ --preset small ...      # DDP
    torchrun --nproc_per_node 8 -m memmamba_ref.train ... --fsdp                          # FSDP

Semantics, as packages/cli (trainer.ts, commands/train.ts):
- config: ``--preset`` (default tiny) with ``--config`` JSON merged over it and ``--model`` (an
  explicit --model wins over the file's kind): the same fields give the same model;
- data: ``--data`` (file or directory of .txt), Gutenberg cut, the TS split, training windows from
  the philox WindowSampler port with data key ``fold_in(key(seed), 1)``: micro-batch ``index`` =
  (step − 1)·accum + j, row r of it = the TS row (data.py);
- ``--task passkey`` (no --data): the TS passkey task (passkey.py, the same rows byte for byte):
  ``--filler`` books (their ``--filler-split``, default train) or the classic filler, the loss the
  masked mean over the 5 answer digits (``--task-loss all``: every byte, answer × --answer-weight);
  every --eval-every steps evalLoss / digitAcc / exactMatch on 64 held-out rows (the TS eval key);
- ``--max-minutes``: stop at a step boundary when the next step would end later, save, exit 0;
- step: ``accum`` micro-batches of ``batch`` rows (the global batch), mean loss, gradients
  averaged, clipped at global norm ``clip`` (torch's clip_grad_norm_ = TS clipByGlobalNorm),
  AdamW(lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0.1 on **every** parameter, as the
  TS trainer, which passes no decay mask), constant lr; a step with a non-finite loss or gradient
  norm is skipped (5 in a row stop the run).

Distributed mapping (so the global batch equals the 1-process run's): the step's accum × batch
rows are numbered g = j·batch + r (micro-batch j, row r); rank k of W takes rows
[k·R, (k+1)·R), R = accum·batch / W (must divide), in local micro-batches of ``--micro`` rows
(default min(batch, R)). Each rank averages its local micro-batch losses, DDP / FSDP average over
ranks: the mean over all accum·batch rows, as one process. E.g. accum 4, batch 8, 2 ranks: rank 0
takes micro-batches 0, 1 and rank 1 takes 2, 3; 8 ranks: each takes half a micro-batch.
Gradient accumulation runs under ``no_sync()`` on all but the last local micro-batch.

Outputs (rank 0): ``<out>/checkpoint.safetensors`` (the TS layout: checkpoint.py) every
``--checkpoint-every`` steps and at the end; ``<out>/train.jsonl`` (the TS record fields plus
tokensPerSec and world).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .config import ConfigError, ModelConfig, PRESETS, preset
from . import passkey
from .data import WindowSampler, load_texts, split_texts
from .model import LM, MemMambaLayer, TransformerLayer
from .philox import fold_in, key_from_seed

EVAL_KEY_DATA = 0x65766131  # "eva1", commands/train.ts


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m memmamba_ref.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="text task: a .txt file or a directory of them")
    p.add_argument("--task", choices=["text", "passkey"], default="text", help="the byte-level LM on --data, or passkey retrieval (as `bun run train` without --data)")
    p.add_argument("--filler", help="passkey: filler text from this file or directory (default: the classic filler)")
    p.add_argument("--filler-split", choices=["train", "validation", "all"], default="train", help="passkey: which books of --filler")
    p.add_argument("--task-loss", choices=["answer", "all"], default="answer", help="passkey: score the 5 answer digits, or every next byte")
    p.add_argument("--answer-weight", type=float, default=1.0, help="passkey with --task-loss all: weight of the answer digits")
    p.add_argument("--warmup", type=int, default=0, help="steps of linear learning-rate warmup from 0 (as TS schedule.linearWarmup), then constant")
    p.add_argument("--max-minutes", type=float, default=None, help="stop cleanly at a step boundary after this many minutes from the start, checkpoint written, exit 0 (continue with --resume)")
    p.add_argument("--model", choices=["memmamba", "mamba", "transformer"], default=None, help="architecture (default memmamba, or the config file's kind)")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny")
    p.add_argument("--config", help="JSON file of config fields, merged over the preset")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch", type=int, default=4, help="rows per micro-batch (as TS --batch)")
    p.add_argument("--accum", type=int, default=4, help="micro-batches per optimizer step, over all ranks (as TS --accum)")
    p.add_argument("--micro", type=int, default=None, help="rows per local forward/backward (default min(batch, rows per rank))")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping (0: off)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", default="runs/torch")
    p.add_argument("--resume", nargs="?", const=True, default=False, help="resume <out>/checkpoint.safetensors, or the given file (a TS checkpoint too)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=50, help="validation loss every N steps (0: never)")
    p.add_argument("--max-bad-steps", type=int, default=5)
    p.add_argument("--backend", choices=["nccl", "gloo"], default=None, help="torch.distributed backend (default nccl on CUDA, gloo on CPU)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    p.add_argument("--fsdp", action="store_true", help="FullyShardedDataParallel (one unit per layer) instead of DDP")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2.x)")
    p.add_argument("--activation-checkpointing", action="store_true", help="recompute each layer in the backward pass (less memory)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="parameter dtype (float64 for tests)")
    p.add_argument("--save-logits", help="after training, write logits of a fixed input to this safetensors file (tests)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.task == "text" and not a.data:
        p.error("--data is required for --task text (or use --task passkey)")
    if a.task == "passkey" and a.data:
        p.error("--data is for --task text; the passkey task takes --filler")
    if a.max_minutes is not None and not a.max_minutes > 0:
        p.error("--max-minutes must be a positive number")
    for name in ("steps", "seq_len", "batch", "accum", "checkpoint_every", "max_bad_steps"):
        if getattr(a, name) < (0 if name == "steps" else 1):
            p.error(f"--{name.replace('_', '-')} must be a {'non-negative' if name == 'steps' else 'positive'} integer")
    return a


def resolve_config(a: argparse.Namespace) -> ModelConfig:
    """commands/train.ts resolveConfig: preset, then the file, then --model."""
    file: Dict[str, Any] = {}
    if a.config:
        with open(a.config, "r", encoding="utf-8") as f:
            file = json.load(f)
        if not isinstance(file, dict):
            raise ConfigError(f"--config {a.config}: expected a JSON object")
    kind = a.model if a.model is not None or "kind" not in file else file["kind"]
    try:
        return preset(a.preset, {**file, "kind": kind or "memmamba"})
    except ConfigError as e:
        raise ConfigError(f"{'--config ' + a.config + ': ' if a.config else ''}{e}") from None


class Dist:
    """The process group (or a stand-in for one process)."""

    def __init__(self, backend: Optional[str], device: str):
        self.on = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device == "cuda":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.on:
            backend = backend or ("nccl" if device == "cuda" else "gloo")
            if device == "cuda" and backend == "nccl":
                try:
                    dist.init_process_group(backend, device_id=self.device)
                except TypeError:  # torch < 2.3
                    dist.init_process_group(backend)
            else:
                dist.init_process_group(backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            self.backend = backend
        else:
            self.rank, self.world, self.backend = 0, 1, None

    def all_sum(self, values: List[float]) -> List[float]:
        if not self.on:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.on:
            dist.barrier()

    def close(self) -> None:
        if self.on:
            dist.destroy_process_group()


def wrap_model(model: LM, d: Dist, fsdp: bool):
    """DDP (any world size once torchrun started us), FSDP with one unit per layer, or the bare model."""
    if not d.on:
        if fsdp:
            raise SystemExit("train: --fsdp needs torch.distributed (launch with torchrun)")
        return model
    if fsdp:
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        except Exception as e:  # Debian's torch 1.13 under Python 3.11 cannot even import it
            raise SystemExit(f"train: --fsdp needs PyTorch 2.x (importing FSDP failed: {e})")
        try:
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy
            policy = ModuleWrapPolicy({MemMambaLayer, TransformerLayer})
        except ImportError:  # torch 1.13
            import functools
            from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
            policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={MemMambaLayer, TransformerLayer})
        kw: Dict[str, Any] = {"auto_wrap_policy": policy}
        if d.device.type == "cuda":
            kw["device_id"] = d.device
        try:
            return FSDP(model, use_orig_params=True, **kw)
        except TypeError:
            return FSDP(model, **kw)
    from torch.nn.parallel import DistributedDataParallel as DDP
    return DDP(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def inner(model) -> LM:
    return model.module if hasattr(model, "module") and isinstance(model.module, LM) else model


# ------------------------------------------------------------------------------------------------
# state: gather for saving, scatter for loading (DDP / single: plain; FSDP: full state dicts)
# ------------------------------------------------------------------------------------------------

def _clean(name: str) -> str:
    for junk in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.", "module."):
        name = name.replace(junk, "")
    return name


def gather_state(model, optimizer, fsdp: bool) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], Dict[str, torch.Tensor], int]:
    """(weights, m, v, adam step) on every rank for DDP; on rank 0 for FSDP (others get empties)."""
    if not fsdp:
        lm = inner(model)
        named = list(lm.named_parameters())
        m, v, step = ckpt.adamw_state_of(optimizer, named)
        return {k: t.detach() for k, t in lm.state_dict().items()}, m, v, step
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
    msd, osd = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    weights = {_clean(k): t for k, t in msd.items()}
    m, v, step = {}, {}, 0
    for k, st in osd.get("state", {}).items():
        name = _clean(k)
        m[name], v[name] = st["exp_avg"], st["exp_avg_sq"]
        step = int(float(st["step"]))
    for name, t in weights.items():  # a parameter never stepped (or FSDP rank ≠ 0: weights is empty)
        if name not in m:
            m[name], v[name] = torch.zeros_like(t), torch.zeros_like(t)
    return weights, m, v, step


def load_optimizer_state(model, optimizer, fsdp: bool, ck: ckpt.Checkpoint) -> None:
    if not fsdp:
        ckpt.set_adamw_state(optimizer, list(inner(model).named_parameters()), ck.m, ck.v, ck.optim_step or 0)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict, get_state_dict
    # the optimizer's own layout (FQNs, param groups), filled with the checkpoint's full tensors
    _, osd = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True))
    groups = osd["param_groups"]
    names = [n for g in groups for n in g["params"]]
    state = {n: {"step": torch.tensor(float(ck.optim_step or 0)), "exp_avg": ck.m[_clean(n)].clone(), "exp_avg_sq": ck.v[_clean(n)].clone()} for n in names}
    set_state_dict(model, optimizer, model_state_dict={}, optim_state_dict={"state": state, "param_groups": groups},
                   options=StateDictOptions(full_state_dict=True, strict=False))


# ------------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------------

def local_rows(step: int, accum: int, batch: int, rank: int, world: int) -> List[Tuple[int, int]]:
    """The (micro-batch index, row) pairs rank `rank` trains on at `step` (see the module note)."""
    R = accum * batch // world
    return [((step - 1) * accum + g // batch, g % batch) for g in range(rank * R, (rank + 1) * R)]


def main(argv: Optional[List[str]] = None) -> int:
    a = parse_args(argv)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    d = Dist(a.backend, device)
    try:
        return _run(a, d)
    finally:
        d.close()


def _log(a, d: Dist, msg: str) -> None:
    if d.rank == 0 and not a.quiet:
        print(msg, file=sys.stderr, flush=True)


def _run(a: argparse.Namespace, d: Dist) -> int:
    cfg = resolve_config(a)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    rows = a.accum * a.batch
    if rows % d.world:
        raise SystemExit(f"train: the global batch of accum × batch = {a.accum} × {a.batch} = {rows} rows must divide among {d.world} processes")
    R = rows // d.world
    micro = a.micro or min(a.batch, R)
    if R % micro:
        raise SystemExit(f"train: --micro {micro} must divide the {R} rows each process takes per step")
    local_accum = R // micro

    out = a.out
    ck_path = os.path.join(out, "checkpoint.safetensors")
    log_path = os.path.join(out, "train.jsonl")
    resume_path = a.resume if isinstance(a.resume, str) else (ck_path if a.resume else None)
    if resume_path is None and not a.overwrite and os.path.exists(ck_path):
        raise ckpt.CheckpointError(ck_path, "a checkpoint is already here: resume it (--resume), or choose another --out, or pass --overwrite to start afresh")
    ck = ckpt.load(resume_path) if resume_path else None
    if ck is not None:
        ckpt.check_config(ck, cfg)
        if ck.optim_step is None:
            raise ckpt.CheckpointError(ck.path, "holds no optimizer state, so training cannot resume from it exactly")
        if ck.data_position != ck.step * a.accum:
            raise ckpt.CheckpointError(ck.path, f"data position {json.dumps(ck.data_position)} does not match step {ck.step} × accum {a.accum} = {ck.step * a.accum} (was it written with another --accum?)")

    root_key = ck.key if ck is not None else key_from_seed(a.seed)
    eval_key = fold_in(key_from_seed(a.seed), EVAL_KEY_DATA)
    val_batches = []
    pk: Optional[PasskeyData] = None
    if a.task == "passkey":
        pk = PasskeyData(a, fold_in(root_key, 1), eval_key)
        _log(a, d, f"train: passkey task, {pk.describe}; world {d.world}, "
                   f"{'FSDP' if a.fsdp else 'DDP' if d.on else 'one process'}, {local_accum} local micro-batch(es) of {micro} rows per rank")
    else:
        docs = load_texts(a.data)
        split = split_texts(docs)
        _log(a, d, f"train: {len(split.train)} training and {len(split.validation)} validation documents ({split.rule}); world {d.world}, "
                   f"{'FSDP' if a.fsdp else 'DDP' if d.on else 'one process'}, {local_accum} local micro-batch(es) of {micro} rows per rank")
        sampler = WindowSampler(split.train, a.seq_len, fold_in(root_key, 1))
        if a.eval_every > 0:
            try:
                vs = WindowSampler(split.validation, a.seq_len, eval_key)
                val_batches = [vs.batch(i, a.batch) for i in (0, 1)]
            except ValueError as e:
                _log(a, d, f"train: no validation loss ({e})")

    torch.manual_seed(a.seed)  # torch's RNG (not the TS stream): every rank draws the same initial weights
    lm = LM(cfg).to(dtype)
    lm.activation_checkpointing = a.activation_checkpointing
    if ck is not None:
        ckpt.restore_model(ck, lm)
        ckpt.check_optim(ck, {k: tuple(t.shape) for k, t in lm.state_dict().items()})
    lm = lm.to(d.device)
    model = wrap_model(lm, d, a.fsdp)
    fwd = model
    if a.compile:
        fwd = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
    if ck is not None:
        load_optimizer_state(model, optimizer, a.fsdp, ck)
    start = ck.step if ck is not None else 0
    opt_steps = ck.optim_step or 0 if ck is not None else 0  # updates applied: the warmup schedule's step, as TS
    deadline = time.time() + a.max_minutes * 60 if a.max_minutes is not None else None
    last_iter = 0.0

    if d.rank == 0:
        os.makedirs(out, exist_ok=True)
        _truncate_log(log_path, start)
    extra = {"task": a.task, "seqLen": str(a.seq_len), "runtime": f"torch {torch.__version__}, world {d.world}, {'fsdp' if a.fsdp else 'ddp' if d.on else 'single'}"}

    def save(step: int) -> None:
        weights, m, v, adam_step = gather_state(model, optimizer, a.fsdp)
        if d.rank == 0:
            ckpt.save(ck_path, weights, step=step, key=root_key, data_position=step * a.accum, config=cfg.to_json(),
                      m=m, v=v, optim_step=adam_step, extra=extra)
        d.barrier()

    def val_loss() -> Optional[float]:
        if pk is not None:
            return None
        if not val_batches:
            return None
        with torch.no_grad():
            s = 0.0
            for x, y in val_batches:
                s += float(fwd(x.to(d.device), targets=y.to(d.device)))
        return s / len(val_batches)

    bad, status, last_saved = 0, "done", start
    clip = a.clip if a.clip > 0 and math.isfinite(a.clip) else sys.float_info.max
    log = open(log_path, "a", encoding="utf-8") if d.rank == 0 else None
    step = start
    try:
        for step in range(start + 1, a.steps + 1):
            if deadline is not None and time.time() + last_iter > deadline:
                status = "timeout"
                step -= 1
                break
            t_iter = time.perf_counter()
            sync = d.device.type == "cuda"
            if sync:
                torch.cuda.synchronize(d.device)
            t0 = time.perf_counter()
            pairs = local_rows(step, a.accum, a.batch, d.rank, d.world)
            lr_now = a.lr if a.warmup <= 0 or opt_steps >= a.warmup else a.lr * opt_steps / a.warmup
            loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)
            for k in range(local_accum):
                if pk is not None:
                    x, y, mask = pk.rows(pairs[k * micro:(k + 1) * micro])
                    mask = mask.to(d.device, non_blocking=True)
                else:
                    (x, y), mask = sampler.rows(pairs[k * micro:(k + 1) * micro]), None
                x, y = x.to(d.device, non_blocking=True), y.to(d.device, non_blocking=True)
                ctx = model.no_sync() if d.on and k < local_accum - 1 else contextlib.nullcontext()
                with ctx:
                    loss = fwd(x, targets=y) if mask is None else masked_loss(fwd(x), y, mask)
                    (loss / local_accum).backward()
                loss_sum += loss.detach().to(torch.float64)
            if a.fsdp:
                norm = model.clip_grad_norm_(clip)
            else:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            total, = d.all_sum([float(loss_sum)])
            mean_loss = total / (local_accum * d.world)
            grad_norm = float(norm)
            reason = None
            if not math.isfinite(mean_loss):
                reason = f"loss is {mean_loss}"
            elif not math.isfinite(grad_norm):
                reason = f"gradient norm is {grad_norm}"
            else:
                for g in optimizer.param_groups:
                    g["lr"] = lr_now
                optimizer.step()
                opt_steps += 1
            optimizer.zero_grad(set_to_none=True)
            if sync:
                torch.cuda.synchronize(d.device)
            ms = (time.perf_counter() - t0) * 1000
            tokens = rows * a.seq_len
            rec: Dict[str, Any] = {"step": step, "loss": mean_loss, "gradNorm": grad_norm, "lr": lr_now, "tokens": tokens,
                                   "skipped": reason is not None, "ms": ms, "tokensPerSec": tokens / (ms / 1000), "world": d.world}
            if reason is not None:
                rec["reason"] = reason
                bad += 1
                _log(a, d, f"train: step {step} skipped: {reason} ({bad} in a row; stopping at {a.max_bad_steps})")
            else:
                bad = 0
            if a.eval_every > 0 and (step % a.eval_every == 0 or step == a.steps):
                if pk is not None:
                    rec.update(pk.scores(fwd, d.device))
                vl = val_loss()
                if vl is not None:
                    rec["valLoss"] = vl
            if log is not None:
                log.write(json.dumps({k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}) + "\n")
                log.flush()
            _log(a, d, f"train: step {step}/{a.steps} loss {mean_loss:.4f} grad norm {grad_norm:.3f} "
                       f"{rec['tokensPerSec']:.0f} tokens/s ({rec['tokensPerSec'] / d.world:.0f} per process)"
                       + (f" val {rec['valLoss']:.4f}" if "valLoss" in rec else "")
                       + (f" evalLoss {rec['evalLoss']:.4f} digitAcc {rec['digitAcc']:.3f} exactMatch {rec['exactMatch']:.3f}" if "evalLoss" in rec else ""))
            if bad >= a.max_bad_steps:
                status = "diverged"
                break
            if bad == 0 and (step % a.checkpoint_every == 0 or step == a.steps):
                save(step)
                last_saved = step
            last_iter = time.perf_counter() - t_iter
        if status != "diverged" and step > start and last_saved != min(step, a.steps):
            save(min(step, a.steps))
    finally:
        if log is not None:
            log.close()
    if a.save_logits:
        save_fixed_logits(fwd if not a.fsdp else model, cfg, d, a.save_logits)
    if status == "timeout":
        _log(a, d, f"train: stopped by --max-minutes {a.max_minutes} at step {step} of {a.steps}; checkpoint {ck_path}; continue with the same flags and --resume")
    else:
        _log(a, d, f"train: {status} at step {step}; checkpoint {ck_path}")
    return 1 if status == "diverged" else 0


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """adapters.ts lmTrainable with a mask: Σ mask·CE / Σ mask over the micro-batch."""
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), reduction="none")
    m = mask.reshape(-1).to(ce.dtype)
    return (ce * m).sum() / m.sum()


class PasskeyData:
    """The passkey task's rows and held-out scores (commands/train.ts without --data)."""

    EVAL_ROWS = 64

    def __init__(self, a: argparse.Namespace, data_key, eval_key):
        self.seq_len, self.key = a.seq_len, data_key
        if a.seq_len < passkey.FIXED_BYTES + passkey.PASSKEY_DIGITS - 1:
            raise ValueError(f"--seq-len {a.seq_len} is too short for the passkey task (it needs at least {passkey.FIXED_BYTES + passkey.PASSKEY_DIGITS - 1})")
        if a.filler:
            part = split_part(load_texts(a.filler), a.filler_split)
            self.filler = passkey.Filler("text", part[0])
            what = f"{len(part[0])} documents of {a.filler} ({part[1]})"
        else:
            self.filler, what = passkey.Filler("classic"), "the classic filler"
        self.weights = (a.answer_weight, 1.0) if a.task_loss == "all" else (1.0, 0.0)
        self.describe = f"{a.seq_len}-byte rows, {what}, " + ("every byte scored" if a.task_loss == "all" else "the 5 answer digits scored")
        self.held = passkey.passkey_training_batch(eval_key, 0, self.EVAL_ROWS, a.seq_len, self.filler)

    def rows(self, pairs):
        """(inputs, targets, mask) of the rows (micro-batch index, row) — the TS rows, byte for byte."""
        parts = [passkey.passkey_training_batch(self.key, i, r + 1, self.seq_len, self.filler, answer_weight=self.weights[0],
                                                other_weight=self.weights[1], rows=[r]) for i, r in pairs]
        return torch.cat([b.inputs for b in parts]), torch.cat([b.targets for b in parts]), torch.cat([b.mask for b in parts])

    @torch.no_grad()
    def scores(self, fwd, device) -> Dict[str, float]:
        """train.ts passkeyScores: answer-digit loss, digit accuracy, exact match (teacher-forced)."""
        n = passkey.PASSKEY_DIGITS
        logits = fwd(self.held.inputs.to(device))[:, -n:].float()
        tg = self.held.targets[:, -n:].to(device)
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tg.reshape(-1))
        right = logits.argmax(-1) == tg
        return {"evalLoss": float(nll), "digitAcc": float(right.float().mean()), "exactMatch": float(right.all(-1).float().mean())}


def split_part(docs, part: str):
    """text.ts splitPart: (documents, rule) of the train / validation split, or all."""
    if part == "all":
        return list(docs), "all documents"
    s = split_texts(docs)
    return (s.train if part == "train" else s.validation), f"{part} split: {s.rule}"


def fixed_input(cfg: ModelConfig, B: int = 2, L: int = 24) -> torch.Tensor:
    """A fixed token input the tests compare logits on: (7·i + 3·b) mod vocab."""
    return torch.tensor([[(7 * i + 3 * b + 1) % cfg.vocab for i in range(L)] for b in range(B)], dtype=torch.long)


def save_fixed_logits(model, cfg: ModelConfig, d: Dist, path: str) -> None:
    from . import safetensors_io
    tokens = fixed_input(cfg)
    with torch.no_grad():
        logits = model(tokens.to(d.device))
    if d.rank == 0:
        safetensors_io.save(path, {"tokens": tokens.to(torch.int32), "logits": logits.detach().to("cpu", torch.float32)})


def _truncate_log(path: str, start: int) -> None:
    """A fresh run starts a fresh log; a resumed one drops the records after its checkpoint (log.ts)."""
    if not os.path.exists(path):
        return
    keep = []
    if start > 0:
        with open(path, "r", encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(r.get("step"), int) and r["step"] <= start:
                    keep.append(line if line.endswith("\n") else line + "\n")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(keep)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ckpt.CheckpointError, ConfigError, FileNotFoundError, ValueError) as e:
        print(f"train: {e}", file=sys.stderr)
        sys.exit(2)
