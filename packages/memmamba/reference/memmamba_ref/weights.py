"""Weights in the TS layout and names, both ways (the tensors of packages/cli's checkpoints, without
the optimizer state and metadata handling that issue 14 adds).

A model's state_dict keys are the TS parameter paths and its tensors have the TS shapes, so loading
is a strict name-and-shape check then a copy (into the model's dtype and device). Every mismatch
is reported by tensor name: missing, unexpected, or of another shape.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch

from . import safetensors_io


class WeightsError(ValueError):
    pass


def check_and_load(model: torch.nn.Module, tensors: Dict[str, torch.Tensor], source: str = "weights") -> None:
    own = model.state_dict()
    problems = []
    for name, p in own.items():
        if name not in tensors:
            problems.append(f'tensor "{name}" (shape {list(p.shape)}) expected by the model is missing')
        elif tuple(tensors[name].shape) != tuple(p.shape):
            problems.append(f'tensor "{name}" has shape {list(tensors[name].shape)} in the file but the model expects {list(p.shape)}')
    for name in tensors:
        if name not in own:
            problems.append(f'tensor "{name}" in the file is not a parameter of the model')
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(tensors[name].to(dtype=p.dtype, device=p.device))


def load_weights(model: torch.nn.Module, path: str, prefix: str = "") -> Dict[str, str]:
    """Loads a safetensors file of TS weights (names = TS paths; with ``prefix``, only the tensors
    under it, e.g. none for a weights file). Returns the file's metadata."""
    tensors, meta = safetensors_io.load(path)
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    else:  # a checkpoint's optimizer moments are not weights
        tensors = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    check_and_load(model, tensors, path)
    return meta


def save_weights(model: torch.nn.Module, path: str, metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes the model's parameters as F32 safetensors under their TS names."""
    safetensors_io.save(path, {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}, metadata)
