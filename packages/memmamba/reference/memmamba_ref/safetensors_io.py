"""A small safetensors reader/writer (json + struct + torch.frombuffer), no `safetensors` package.

Format: [u64 little-endian N][N bytes of JSON header][data]; header = {"__metadata__"?: {str: str},
name: {"dtype", "shape", "data_offsets": [begin, end]}}, offsets relative to the data. Like the
Rust crate and packages/tensor/src/io/safetensors.ts, the writer sorts tensors by name and pads
the header with spaces so the data starts 8-byte aligned. Little-endian hosts only.
"""
from __future__ import annotations

import ctypes
import json
import struct
import sys
from typing import Dict, Optional, Tuple

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}


class SafetensorsError(ValueError):
    pass


def load(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Reads a file: ({name: tensor (CPU, its stored dtype)}, metadata)."""
    assert sys.byteorder == "little", "safetensors_io: little-endian hosts only"
    with open(path, "rb") as f:
        raw = bytearray(f.read())  # writable, so torch.frombuffer does not warn
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise SafetensorsError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n:]
    out: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r}: unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        dtype, shape = DTYPES[info["dtype"]], [int(d) for d in info["shape"]]
        count = 1
        for d in shape:
            count *= d
        if not 0 <= begin <= end <= len(data) or end - begin != count * torch.empty(0, dtype=dtype).element_size():
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets {info['data_offsets']} do not fit shape {shape}")
        flat = torch.frombuffer(data[begin:end], dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(shape).clone()
    return out, dict(meta)


def save(path: str, tensors: Dict[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors (any supported dtype, kept as they are) and string metadata."""
    assert sys.byteorder == "little", "safetensors_io: little-endian hosts only"
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors, key=lambda s: s.encode("utf-8")):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in NAMES:
            raise SafetensorsError(f"tensor {name!r}: unsupported dtype {t.dtype}")
        b = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    js = json.dumps(header, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + b"".join(blobs))
