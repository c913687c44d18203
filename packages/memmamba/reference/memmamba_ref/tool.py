"""Small commands the cross-language tests (and users) call:

    python -m memmamba_ref.tool logits --checkpoint ck.safetensors --out logits.safetensors [--tokens-from f]
        loads a checkpoint (TS or PyTorch) into the model its config describes (strictly: every
        tensor, names and shapes) and writes the logits of the fixed input (train.fixed_input), or
        of the "tokens" tensor of another file
    python -m memmamba_ref.tool check --checkpoint ck.safetensors [--config cfg.json]
        validates a checkpoint for resuming (metadata, weights, AdamW moments, config); exit 2 and
        the message on failure
    python -m memmamba_ref.tool origins --data DIR --seq-len L --seed S --index-rows 0:0,0:1,...
        the training windows (document, start) the sampler draws, as JSON (parity with TS)
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from . import checkpoint as ckpt
from . import safetensors_io
from .config import ConfigError, load_config, parse_config
from .data import WindowSampler, load_texts, split_texts
from .model import LM
from .philox import fold_in, key_from_seed
from .train import fixed_input


def model_from_checkpoint(path: str, dtype=torch.float32) -> LM:
    ck = ckpt.load(path)
    try:
        cfg = parse_config(ck.config)
    except ConfigError as e:
        raise ckpt.CheckpointError(path, f"holds an invalid model config: {e}") from None
    lm = LM(cfg).to(dtype)
    ckpt.restore_model(ck, lm)
    if ck.optim_step is not None:
        ckpt.check_optim(ck, {k: tuple(t.shape) for k, t in lm.state_dict().items()})
    return lm


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memmamba_ref.tool")
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits")
    lg.add_argument("--checkpoint", required=True)
    lg.add_argument("--out", required=True)
    lg.add_argument("--tokens-from")
    ch = sub.add_parser("check")
    ch.add_argument("--checkpoint", required=True)
    ch.add_argument("--config")
    og = sub.add_parser("origins")
    og.add_argument("--data", required=True)
    og.add_argument("--seq-len", type=int, required=True)
    og.add_argument("--seed", type=int, default=123)
    og.add_argument("--index-rows", required=True)
    a = p.parse_args(argv)
    try:
        if a.cmd == "logits":
            lm = model_from_checkpoint(a.checkpoint).eval()
            tokens = safetensors_io.load(a.tokens_from)[0]["tokens"].long() if a.tokens_from else fixed_input(lm.config)
            with torch.no_grad():
                logits = lm(tokens)
            safetensors_io.save(a.out, {"tokens": tokens.to(torch.int32), "logits": logits.to(torch.float32)})
        elif a.cmd == "check":
            lm = model_from_checkpoint(a.checkpoint)
            ck = ckpt.load(a.checkpoint)
            if a.config:
                ckpt.check_config(ck, load_config(a.config))
            if ck.optim_step is None:
                raise ckpt.CheckpointError(a.checkpoint, "holds no optimizer state, so training cannot resume from it exactly")
            print(json.dumps({"ok": True, "step": ck.step, "optimStep": ck.optim_step, "tensors": len(lm.state_dict())}))
        elif a.cmd == "origins":
            split = split_texts(load_texts(a.data))
            s = WindowSampler(split.train, a.seq_len, fold_in(key_from_seed(a.seed), 1))
            pairs = [tuple(int(v) for v in x.split(":")) for x in a.index_rows.split(",")]
            print(json.dumps({"windows": s.windows, "origins": [list(s.origin(i, r)) for i, r in pairs]}))
    except (ckpt.CheckpointError, ConfigError, safetensors_io.SafetensorsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
