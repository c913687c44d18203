"""The model configuration, read from the same JSON as the TypeScript side (camelCase fields).

Mirrors ``packages/memmamba/src/config.ts`` (its zod schema): the same fields, defaults, ranges
and cross-field rules. A missing field takes the TS default; a bad one is an error naming its
path, e.g. ``config.memory.poolSize: expected a positive integer (got 0)``. As on the TS side
(whose zod objects are strict), an unknown key is an error here by default (``strict=True``),
since a misspelt field would otherwise fall back to its default without a word.

Python attributes are snake_case (``d_model``); ``to_json()`` gives the camelCase object back,
so a config round-trips between the two sides. ``fixtures.py`` checks at regeneration time that
these defaults and presets still equal the TS ones (``ts-config.json``, written by the TS side).
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union


class ConfigError(ValueError):
    """A config error: the message lists every bad field by its path."""


# --------------------------------------------------------------------------------------------
# validators: (value) -> (ok, normalised value, message)
# --------------------------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pos_int(v: Any):
    if _is_number(v) and float(v).is_integer() and v > 0:
        return True, int(v), ""
    return False, None, "expected a positive integer"


def _unit(v: Any):
    if _is_number(v) and 0 <= v <= 1:
        return True, float(v), ""
    return False, None, "expected a number in [0, 1]"


def _positive(v: Any):
    if _is_number(v) and v > 0:
        return True, float(v), ""
    return False, None, "expected a positive number"


def _number(v: Any):
    if _is_number(v):
        return True, float(v), ""
    return False, None, "expected a number"


def _bool(v: Any):
    if isinstance(v, bool):
        return True, v, ""
    return False, None, "expected a boolean"


def _enum(*options: str):
    def check(v: Any):
        if isinstance(v, str) and v in options:
            return True, v, ""
        return False, None, "expected one of " + ", ".join(json.dumps(o) for o in options)
    return check


def _dt_rank(v: Any):
    if v == "auto":
        return True, "auto", ""
    ok, n, _ = _pos_int(v)
    return (True, n, "") if ok else (False, None, 'expected "auto" or a positive integer')


Validator = Callable[[Any], Tuple[bool, Any, str]]
# (camelCase name, snake_case attribute, validator, default) — the defaults of config.ts
_Spec = Tuple[str, str, Validator, Any]

CROSS_LAYER_FIELDS: List[_Spec] = [
    ("enabled", "enabled", _bool, True),
    ("every", "every", _pos_int, 2),
    ("group", "group", _pos_int, 2),
]
MEMORY_FIELDS: List[_Spec] = [
    ("enabled", "enabled", _bool, True),
    ("summaryDim", "summary_dim", _pos_int, 64),
    ("poolSize", "pool_size", _pos_int, 50),
    ("tau1", "tau1", _unit, 0.5),
    ("tau2", "tau2", _unit, 0.5),
    ("pooling", "pooling", _enum("max", "mean", "tmaxavg", "s3pool"), "max"),
    ("summaryWindow", "summary_window", _pos_int, 4),
    ("tmaxavgThreshold", "tmaxavg_threshold", _number, 0.0),
    ("replacement", "replacement", _enum("fifo", "priority"), "priority"),
    ("stateScore", "state_score", _enum("output", "scan"), "output"),
    ("crossToken", "cross_token", _bool, True),
    # crossLayer: nested, below
    ("fusion", "fusion", _enum("weighted", "gated", "residual", "product", "conv1d"), "weighted"),
]
TRANSFORMER_FIELDS: List[_Spec] = [
    ("nHeads", "n_heads", _pos_int, 4),
    ("rotary", "rotary", _bool, True),
    ("ropeBase", "rope_base", _positive, 10000.0),
    ("mlpRatio", "mlp_ratio", _pos_int, 4),
]
MODEL_FIELDS: List[_Spec] = [
    ("kind", "kind", _enum("memmamba", "mamba", "transformer"), "memmamba"),
    ("dModel", "d_model", _pos_int, 256),
    ("nLayers", "n_layers", _pos_int, 8),
    ("vocab", "vocab", _pos_int, 256),
    ("dState", "d_state", _pos_int, 16),
    ("expand", "expand", _pos_int, 2),
    ("dConv", "d_conv", _pos_int, 4),
    ("dtRank", "dt_rank", _dt_rank, "auto"),
    ("dtMin", "dt_min", _positive, 1e-3),
    ("dtMax", "dt_max", _positive, 0.1),
    ("normEps", "norm_eps", _positive, 1e-5),
    # memory, transformer: nested, below
]


@dataclass
class CrossLayerConfig:
    """Eq. 7/11: every ``every`` layers, attend over the pools of the ``group`` layers before."""
    enabled: bool = True
    every: int = 2
    group: int = 2


@dataclass
class MemoryConfig:
    enabled: bool = True
    summary_dim: int = 64
    pool_size: int = 50
    tau1: float = 0.5
    tau2: float = 0.5
    pooling: str = "max"
    summary_window: int = 4
    tmaxavg_threshold: float = 0.0
    replacement: str = "priority"
    state_score: str = "output"
    cross_token: bool = True
    cross_layer: CrossLayerConfig = field(default_factory=CrossLayerConfig)
    fusion: str = "weighted"


@dataclass
class TransformerConfig:
    n_heads: int = 4
    rotary: bool = True
    rope_base: float = 10000.0
    mlp_ratio: int = 4


@dataclass
class Dims:
    d: int
    d_inner: int
    dt_rank: int
    N: int
    K: int


@dataclass
class ModelConfig:
    kind: str = "memmamba"
    d_model: int = 256
    n_layers: int = 8
    vocab: int = 256
    d_state: int = 16
    expand: int = 2
    d_conv: int = 4
    dt_rank: Union[str, int] = "auto"
    dt_min: float = 1e-3
    dt_max: float = 0.1
    norm_eps: float = 1e-5
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    # ---- derived sizes and layer roles (config.ts: dims, usesMemory, hasCrossLayer, …) ----

    def dims(self) -> Dims:
        R = math.ceil(self.d_model / 16) if self.dt_rank == "auto" else int(self.dt_rank)
        return Dims(d=self.d_model, d_inner=self.expand * self.d_model, dt_rank=R, N=self.d_state, K=self.d_conv)

    def uses_memory(self) -> bool:
        """True when the model takes notes (kind memmamba with memory enabled)."""
        return self.kind == "memmamba" and self.memory.enabled

    def has_cross_layer(self, l: int) -> bool:
        """True when layer l (0-based) runs cross-layer attention: l ≥ 1 and (l + 1) % every == 0."""
        cl = self.memory.cross_layer
        return self.uses_memory() and cl.enabled and l >= 1 and (l + 1) % cl.every == 0

    def cross_layer_sources(self, l: int) -> List[int]:
        """The earlier layers whose pools layer l reads across layers: l − g … l − 1, clamped at 0."""
        return list(range(max(0, l - self.memory.cross_layer.group), l))

    def to_json(self) -> Dict[str, Any]:
        """The camelCase object (what config.ts's parseConfig returns)."""
        def dump(obj: Any, specs: List[_Spec]) -> Dict[str, Any]:
            return {camel: getattr(obj, snake) for camel, snake, _, _ in specs}
        out = dump(self, MODEL_FIELDS)
        mem = dump(self.memory, MEMORY_FIELDS)
        mem["crossLayer"] = dump(self.memory.cross_layer, CROSS_LAYER_FIELDS)
        out["memory"] = mem
        out["transformer"] = dump(self.transformer, TRANSFORMER_FIELDS)
        return out


def _read_fields(obj: Any, specs: List[_Spec], nested: Dict[str, Any], path: str, errors: List[str], strict: bool,
                 complete: bool) -> Dict[str, Any]:
    """Validates one object level; returns {snake: value} (defaults filled)."""
    out: Dict[str, Any] = {}
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        errors.append(f"config{'.' + path if path else ''}: expected an object (got {json.dumps(obj)})")
        return {snake: copy.deepcopy(default) for _, snake, _, default in specs}
    known = {camel for camel, _, _, _ in specs} | set(nested)
    if complete:
        for k in nested:
            if k not in obj:
                errors.append(f"config.{path + '.' if path else ''}{k}: required (a complete config states every field), missing")
    if strict:
        for k in obj:
            if k not in known:
                errors.append(f"config.{path + '.' if path else ''}{k}: unknown field (known: {', '.join(sorted(known))})")
    for camel, snake, check, default in specs:
        where = f"config.{path + '.' if path else ''}{camel}"
        if camel not in obj:
            if complete:
                errors.append(f"{where}: required (a complete config states every field), missing")
            out[snake] = copy.deepcopy(default)
            continue
        ok, value, message = check(obj[camel])
        if ok:
            out[snake] = value
        else:
            errors.append(f"{where}: {message} (got {json.dumps(obj[camel])})")
            out[snake] = copy.deepcopy(default)
    return out


def parse_config(raw: Any, strict: bool = True, complete: bool = False) -> ModelConfig:
    """Validates a config object (camelCase, as in JSON), filling defaults. Raises ConfigError.

    strict: an unknown field is an error (as in TS's parseConfig). complete: every field is required —
    for configs written by parseConfig on the TS side (fixtures, checkpoints), which state every
    field; then a field renamed or added on one side only cannot pass silently as a default."""
    errors: List[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid model config:\n  config: expected an object (got {json.dumps(raw)})")
    top = _read_fields(raw, MODEL_FIELDS, {"memory": None, "transformer": None}, "", errors, strict, complete)
    mem_raw = raw.get("memory", {})
    mem = _read_fields(mem_raw, MEMORY_FIELDS, {"crossLayer": None}, "memory", errors, strict, complete)
    if isinstance(mem_raw, dict) and "crossLayer" in mem_raw:
        cl = _read_fields(mem_raw["crossLayer"], CROSS_LAYER_FIELDS, {}, "memory.crossLayer", errors, strict, complete)
    else:  # absent (reported above when complete) or memory is not an object (reported above)
        cl = _read_fields({}, CROSS_LAYER_FIELDS, {}, "memory.crossLayer", [], strict, False)
    tr = _read_fields(raw.get("transformer", {}), TRANSFORMER_FIELDS, {}, "transformer", errors, strict, complete)
    cfg = ModelConfig(**top, memory=MemoryConfig(**mem, cross_layer=CrossLayerConfig(**cl)), transformer=TransformerConfig(**tr))
    if not errors:  # the cross-field rules of config.ts's superRefine
        if cfg.dt_min > cfg.dt_max:
            errors.append(f"config.dtMin: dtMin ({cfg.dt_min}) must not exceed dtMax ({cfg.dt_max})")
        if cfg.kind == "transformer" and cfg.d_model % cfg.transformer.n_heads != 0:
            errors.append(f"config.transformer.nHeads: nHeads ({cfg.transformer.n_heads}) must divide dModel ({cfg.d_model})")
        elif cfg.kind == "transformer" and cfg.transformer.rotary and (cfg.d_model // cfg.transformer.n_heads) % 2 != 0:
            errors.append(f"config.transformer.rotary: rotary needs an even head size, got {cfg.d_model // cfg.transformer.n_heads}")
    if errors:
        raise ConfigError("invalid model config:\n  " + "\n  ".join(errors))
    return cfg


def load_config(path: str, strict: bool = True, complete: bool = False) -> ModelConfig:
    """Reads and validates a config JSON file; errors name the file."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config: {e}") from e
    try:
        return parse_config(raw, strict=strict, complete=complete)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ---- presets (config.ts presetInputs), deep-merged with overrides then validated ----

PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": {"dModel": 32, "nLayers": 2, "dState": 8, "memory": {"summaryDim": 16, "poolSize": 8, "crossLayer": {"every": 2, "group": 2}}},
    "small": {"dModel": 256, "nLayers": 8, "dState": 16, "memory": {"summaryDim": 64, "poolSize": 50, "crossLayer": {"every": 2, "group": 2}}},
    "paper": {"dModel": 768, "nLayers": 24, "dState": 16, "memory": {"summaryDim": 64, "poolSize": 50}},
}


def _deep_merge(a: Any, b: Any) -> Any:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return a if b is None else b
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(a.get(k), v)
    return out


def preset(name: str, overrides: Optional[Dict[str, Any]] = None) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f'unknown preset "{name}" (known: {", ".join(PRESETS)})')
    return parse_config(_deep_merge(PRESETS[name], overrides or {}))


# ---- the TS schema (config.schema.json, exported from the zod schema) checked against ours ----

_VALIDATOR_TYPES = {_pos_int: ("integer", {"exclusiveMinimum": 0}), _unit: ("number", {"minimum": 0, "maximum": 1}),
                    _positive: ("number", {"exclusiveMinimum": 0}), _number: ("number", {}), _bool: ("boolean", {})}


def schema_mismatches(schema: Dict[str, Any]) -> List[str]:
    """Differences between these field specs and the TS config's JSON Schema: field names, types,
    bounds, enums, defaults, at every level. [] when the two sides agree."""
    out: List[str] = []

    def level(props: Dict[str, Any], specs: List[_Spec], nested: Dict[str, Any], path: str) -> None:
        ours = {c for c, _, _, _ in specs} | set(nested)
        for k in sorted(set(props) - ours):
            out.append(f"{path}{k}: in the TS schema, not in the Python config")
        for k in sorted(ours - set(props)):
            out.append(f"{path}{k}: in the Python config, not in the TS schema")
        for camel, _, check, default in specs:
            if camel not in props:
                continue
            p = props[camel]
            if p.get("default") != default or isinstance(default, bool) != isinstance(p.get("default"), bool):
                out.append(f"{path}{camel}: default {json.dumps(p.get('default'))} in TS, {json.dumps(default)} here")
            if check in _VALIDATOR_TYPES:
                typ, bounds = _VALIDATOR_TYPES[check]
                if p.get("type") != typ:
                    out.append(f"{path}{camel}: type {p.get('type')} in TS, {typ} here")
                for b in ("minimum", "maximum", "exclusiveMinimum"):
                    theirs = p.get(b)
                    if b == "maximum" and theirs == 9007199254740991:
                        theirs = None  # zod's safe-integer bound
                    if theirs != bounds.get(b):
                        out.append(f"{path}{camel}: {b} {theirs} in TS, {bounds.get(b)} here")
            elif check is _dt_rank:
                if "anyOf" not in p:
                    out.append(f"{path}{camel}: expected anyOf ['auto', positive integer] in TS")
            else:  # an enum
                ok, _, msg = check(object())
                want = sorted(json.loads("[" + msg[len("expected one of "):] + "]"))
                if sorted(p.get("enum", [])) != want:
                    out.append(f"{path}{camel}: enum {p.get('enum')} in TS, {want} here")
        for k, (sub_specs, sub_nested) in nested.items():
            if k in props:
                level(props[k].get("properties", {}), sub_specs, sub_nested, f"{path}{k}.")

    level(schema.get("properties", {}), MODEL_FIELDS,
          {"memory": (MEMORY_FIELDS, {"crossLayer": (CROSS_LAYER_FIELDS, {})}), "transformer": (TRANSFORMER_FIELDS, {})}, "")
    return out
