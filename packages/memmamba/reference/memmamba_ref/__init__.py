"""memmamba_ref: the PyTorch reference (and port) of packages/memmamba's models.

    from memmamba_ref import LM, load_config, load_weights
    cfg = load_config("config.json")                  # the TS config JSON (camelCase)
    model = LM(cfg)
    load_weights(model, "weights.safetensors")        # TS safetensors, names = TS parameter paths
    logits = model(tokens)                            # [B, L, vocab]

Parameters are stored as in TS (dense weights [in, out]); ``model.state_dict()`` keys are the TS
parameter paths, so weights travel both ways without renaming or transposing.
"""
from .config import ConfigError, ModelConfig, load_config, parse_config, preset
from .model import LM, Linear, Mamba, MemMambaLayer, TransformerLayer, pool_summary, rms_normalize
from .pool import PoolRead, causal_select
from .scan import affine_scan, selective_scan, selective_scan_sequential
from .weights import WeightsError, load_weights, save_weights

__all__ = [
    "ConfigError", "ModelConfig", "load_config", "parse_config", "preset",
    "LM", "Linear", "Mamba", "MemMambaLayer", "TransformerLayer", "pool_summary", "rms_normalize",
    "PoolRead", "causal_select", "affine_scan", "selective_scan", "selective_scan_sequential",
    "WeightsError", "load_weights", "save_weights",
]
