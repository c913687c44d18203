"""Training checkpoints in the layout of ``packages/cli/src/checkpoint-format.ts``, both ways.

One safetensors file:
  <path>           a weight under its TS parameter path (F32; F16 / BF16 files are read too)
  optim.m.<path>   AdamW first moment (F32)      optim.v.<path>   AdamW second moment (F32)
  __metadata__     format "memmamba-checkpoint", format_version "1", step, key (JSON [k0, k1]),
                   data_position (JSON: micro-batches consumed = step · accum), config (JSON, the
                   full camelCase model config), weight_dtype, optim_step (iff optim.* present),
                   x.<name> extras (the TS trainer writes x.task, x.seqLen; we add x.runtime).

Loading validates like the TS side and names what is wrong: the metadata field, or the tensor
(missing, unexpected, wrong shape, moments without a weight). Saving is atomic (a temporary file
in the same directory, fsync, rename).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import safetensors_io
from .config import ConfigError, ModelConfig, parse_config

FORMAT = "memmamba-checkpoint"
VERSION = "1"


class CheckpointError(ValueError):
    """A problem with a checkpoint; the message starts with the file's path and names the tensor or field."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass
class Checkpoint:
    path: str
    weights: Dict[str, torch.Tensor]
    m: Dict[str, torch.Tensor]
    v: Dict[str, torch.Tensor]
    optim_step: Optional[int]
    step: int
    key: Tuple[int, int]
    data_position: Any
    config: Dict[str, Any]
    weight_dtype: str
    extra: Dict[str, str] = field(default_factory=dict)


_INT = re.compile(r"^\d+$")
_EXPECTS = {
    "format": f'"{FORMAT}"',
    "format_version": f'"{VERSION}" (this program reads version {VERSION} checkpoints)',
    "step": "a non-negative integer",
    "key": "a JSON array of two uint32 [k0, k1]",
    "data_position": "JSON",
    "config": "a JSON object",
    "weight_dtype": "one of F32, F16, BF16",
    "optim_step": "a non-negative integer",
}


def _meta_error(path: str, md: Dict[str, str], name: str) -> CheckpointError:
    got = f"got {json.dumps(md[name] if len(md[name]) <= 80 else md[name][:77] + '...')}" if name in md else "it is missing"
    hint = " (is this a checkpoint written by this program?)" if name == "format" and name not in md else ""
    return CheckpointError(path, f'metadata "{name}" must be {_EXPECTS[name]}, {got}{hint}')


def load(path: str) -> Checkpoint:
    """Reads and validates a checkpoint file (errors name the path and the field or tensor)."""
    if os.path.isdir(path):
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    if not os.path.exists(path):
        raise CheckpointError(path, "checkpoint not found (no such file)")
    try:
        tensors, md = safetensors_io.load(path)
    except (safetensors_io.SafetensorsError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        msg = str(e)
        raise CheckpointError(path, f"not a valid checkpoint: {msg[len(path) + 2:] if msg.startswith(path + ': ') else msg}") from None
    if md.get("format") != FORMAT:
        raise _meta_error(path, md, "format")
    if md.get("format_version") != VERSION:
        raise _meta_error(path, md, "format_version")
    if not _INT.match(md.get("step", "")):
        raise _meta_error(path, md, "step")
    try:
        key = json.loads(md["key"])
        assert isinstance(key, list) and len(key) == 2 and all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 2**32 for k in key)
    except Exception:
        raise _meta_error(path, md, "key") from None
    try:
        data_position = json.loads(md["data_position"])
    except Exception:
        raise _meta_error(path, md, "data_position") from None
    try:
        config = json.loads(md["config"])
        assert isinstance(config, dict)
    except Exception:
        raise _meta_error(path, md, "config") from None
    if md.get("weight_dtype") not in ("F32", "F16", "BF16"):
        raise _meta_error(path, md, "weight_dtype")
    if "optim_step" in md and not _INT.match(md["optim_step"]):
        raise _meta_error(path, md, "optim_step")
    weights: Dict[str, torch.Tensor] = {}
    m: Dict[str, torch.Tensor] = {}
    v: Dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if t.dtype == torch.int64:
            raise CheckpointError(path, f'tensor "{name}" is I64, which checkpoints never hold')
        if t.is_floating_point():
            t = t.to(torch.float32)
        if name.startswith("optim.m."):
            m[name[8:]] = t
        elif name.startswith("optim.v."):
            v[name[8:]] = t
        elif name.startswith("optim."):
            raise CheckpointError(path, f'tensor "{name}" is neither optim.m.* nor optim.v.*')
        else:
            weights[name] = t
    has_optim = bool(m or v)
    if has_optim != ("optim_step" in md):
        raise CheckpointError(path, 'metadata "optim_step" is missing but the file holds optimizer tensors' if has_optim
                              else 'metadata "optim_step" is set but the file holds no optim.* tensors')
    for what, ts in (("m", m), ("v", v)):
        for p, h in ts.items():
            if p not in weights:
                raise CheckpointError(path, f'tensor "optim.{what}.{p}" has no weight "{p}"')
            if tuple(h.shape) != tuple(weights[p].shape):
                raise CheckpointError(path, f'tensor "optim.{what}.{p}" has shape {list(h.shape)} but weight "{p}" has {list(weights[p].shape)}')
    extra = {k[2:]: val for k, val in md.items() if k.startswith("x.")}
    return Checkpoint(path, weights, m, v, int(md["optim_step"]) if has_optim else None, int(md["step"]), (key[0], key[1]),
                      data_position, config, md["weight_dtype"], extra)


def check_tensors(path: str, want: Dict[str, Tuple[int, ...]], have: Dict[str, torch.Tensor], what: str = "") -> None:
    """Every wanted tensor present with its shape, nothing else (TS hostToTree's rule and messages)."""
    for name, shape in want.items():
        if name not in have:
            raise CheckpointError(path, f'tensor "{what}{name}" (shape {list(shape)}) expected by the model is missing from the checkpoint')
        if tuple(have[name].shape) != tuple(shape):
            raise CheckpointError(path, f'tensor "{what}{name}" has shape {list(have[name].shape)} in the checkpoint but the model expects {list(shape)}')
    for name in have:
        if name not in want:
            raise CheckpointError(path, f'tensor "{what}{name}" in the checkpoint is not a parameter of the model')


def first_difference(a: Any, b: Any, path: str = "") -> Optional[str]:
    """trainer-resume.ts firstDifference: the first config field that differs, in words."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(dict.fromkeys(list(a) + list(b))):
            d = first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}.{i}" if path else str(i))
            if d:
                return d
        return None
    same = (a is b) if isinstance(a, bool) or isinstance(b, bool) else (a == b)
    return None if same else f"{path or '(root)'}: {json.dumps(a)} in the checkpoint, {json.dumps(b)} now"


def check_config(ck: Checkpoint, cfg: ModelConfig) -> None:
    """Refuses a checkpoint written for another model config (names the first differing field)."""
    try:
        theirs = parse_config(ck.config, strict=True).to_json()
    except ConfigError as e:
        raise CheckpointError(ck.path, f"holds an invalid model config: {e}") from None
    diff = first_difference(theirs, cfg.to_json())
    if diff:
        raise CheckpointError(ck.path, f"was written for another model config ({diff})")


def save(path: str, weights: Dict[str, torch.Tensor], *, step: int, key: Tuple[int, int], data_position: Any,
         config: Dict[str, Any], m: Optional[Dict[str, torch.Tensor]] = None, v: Optional[Dict[str, torch.Tensor]] = None,
         optim_step: Optional[int] = None, extra: Optional[Dict[str, str]] = None) -> None:
    """Writes a checkpoint atomically (F32 weights and moments, TS names and metadata)."""
    tensors: Dict[str, torch.Tensor] = {}
    for name, t in weights.items():
        if name.startswith("optim."):
            raise ValueError(f'checkpoint: a parameter may not be named "{name}" (the prefix "optim." is reserved)')
        tensors[name] = t.detach().to("cpu", torch.float32)
    meta = {
        "format": FORMAT, "format_version": VERSION, "step": str(int(step)), "key": json.dumps([int(key[0]), int(key[1])]),
        "data_position": json.dumps(data_position), "config": json.dumps(config, separators=(",", ":")), "weight_dtype": "F32",
    }
    if m is not None:
        assert v is not None and optim_step is not None
        for name, t in m.items():
            tensors["optim.m." + name] = t.detach().to("cpu", torch.float32)
        for name, t in v.items():
            tensors["optim.v." + name] = t.detach().to("cpu", torch.float32)
        meta["optim_step"] = str(int(optim_step))
    for k, val in (extra or {}).items():
        meta["x." + k] = str(val)
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        safetensors_io.save(tmp, tensors, meta)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def restore_model(ck: Checkpoint, model: torch.nn.Module) -> None:
    """Copies the checkpoint's weights into the model (strict names and shapes)."""
    own = model.state_dict()
    check_tensors(ck.path, {k: tuple(t.shape) for k, t in own.items()}, ck.weights)
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(ck.weights[name].to(dtype=p.dtype, device=p.device))


def check_optim(ck: Checkpoint, shapes: Dict[str, Tuple[int, ...]]) -> None:
    if ck.optim_step is None:
        raise CheckpointError(ck.path, "holds no optimizer state, so training cannot resume from it exactly")
    check_tensors(ck.path, shapes, ck.m, "optim.m.")
    check_tensors(ck.path, shapes, ck.v, "optim.v.")


def adamw_state_of(optimizer: torch.optim.Optimizer, named: List[Tuple[str, torch.nn.Parameter]]):
    """(m, v, step) of a torch AdamW, by parameter name; zeros for a parameter not stepped yet."""
    m, v, step = {}, {}, 0
    for name, p in named:
        st = optimizer.state.get(p, {})
        if "exp_avg" in st:
            m[name], v[name] = st["exp_avg"], st["exp_avg_sq"]
            step = int(float(st["step"]))
        else:
            m[name], v[name] = torch.zeros_like(p), torch.zeros_like(p)
    return m, v, step


def set_adamw_state(optimizer: torch.optim.Optimizer, named: List[Tuple[str, torch.nn.Parameter]],
                    m: Dict[str, torch.Tensor], v: Dict[str, torch.Tensor], step: int) -> None:
    """Loads AdamW moments and the step count into a torch AdamW (state['step'] as a float tensor)."""
    for name, p in named:
        optimizer.state[p] = {
            "step": torch.tensor(float(step)),
            "exp_avg": m[name].to(device=p.device, dtype=p.dtype).clone().reshape(p.shape),
            "exp_avg_sq": v[name].to(device=p.device, dtype=p.dtype).clone().reshape(p.shape),
        }
