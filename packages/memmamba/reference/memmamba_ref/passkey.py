"""Passkey retrieval data, as ``packages/memmamba/src/tasks/passkey.ts`` (the DeciMamba protocol
on byte tokens), for training in PyTorch: the same needle and question text, the same fillers
(classic, random sentences, book text with digits replaced by ``#``), the same needle placement
at the nearest sentence boundary, and the same training rows and loss mask.

Every draw goes through the ``HostRng`` port (philox.py), so a batch here is the TS batch of the
same (key, step, row), byte for byte: ``packages/memmamba/reference/tests`` checks that against
fixtures written by TS. A sample of N bytes is

    filler[0, p) ‖ NEEDLE ‖ filler[p, F) ‖ QUESTION          NEEDLE = "The pass key is 12345. Remember it. 12345 is the pass key. "
                                                          QUESTION = " What is the pass key? The pass key is "

and a training row is a sample of seqLen − 4 bytes followed by the 5 answer digits (inputs =
bytes[0, L), targets = bytes[1, L + 1)); ``mask`` weighs the last 5 targets (the digits) by
``answer_weight`` and the others by ``other_weight`` (default 0: the answer only).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from .data import TextDoc
from .philox import HostRng, Key, key_at

PASSKEY_DIGITS = 5
QUESTION = " What is the pass key? The pass key is "
CLASSIC_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
TWO_31 = 1 << 31


def needle_text(passkey: str) -> str:
    return f"The pass key is {passkey}. Remember it. {passkey} is the pass key. "


FIXED_BYTES = len(needle_text("00000")) + len(QUESTION)

# the random-sentence grammar of passkey.ts (no digits)
SUBJECTS = ["The old man", "A small bird", "The river", "My neighbour", "The quiet child", "A tired horse", "The baker", "The north wind",
            "A young sailor", "The garden", "The teacher", "A grey cat", "The traveller", "The farmer", "An old clock", "The lighthouse keeper"]
VERBS = ["walked past", "looked at", "waited by", "sang about", "remembered", "carried", "painted", "forgot", "followed", "watched",
         "cleaned", "found", "admired", "avoided", "dreamed of", "spoke about"]
OBJECTS = ["the green hill", "a wooden bridge", "the empty market", "the tall trees", "an open window", "the winding road",
           "a blue door", "the stone wall", "the evening sky", "a quiet harbour", "the red barn", "the frozen lake", "a small boat",
           "the busy square", "the distant mountains", "a broken fence"]
ENDINGS = [".", ".", ".", " in the morning.", " after dinner.", " once again.", " without a word.", " for a long time.", " in the rain."]

_CLASSIC = CLASSIC_FILLER.encode()
_CLASSIC_STARTS = [m.end() for m in re.finditer(r"(^|\. )(?=[A-Z])", CLASSIC_FILLER)]


def _int(rng: HostRng, lo: int, hi: int) -> int:
    return lo + rng.below(hi - lo + 1)


def _float(rng: HostRng) -> float:
    return rng.below(TWO_31) / TWO_31


def _pick(rng: HostRng, items):
    return items[rng.below(len(items))]


@dataclass
class Filler:
    """``kind``: "classic", "random" or "text" (with ``docs``, e.g. a split's books)."""
    kind: str = "classic"
    docs: Optional[Sequence[TextDoc]] = None


def make_filler(spec: Filler, rng: HostRng, n: int) -> bytes:
    """passkey.ts makeFiller: n filler bytes of the given kind, from the rng's draws."""
    if n < 0:
        raise ValueError(f"make_filler: n must be a non-negative integer, got {n}")
    if spec.kind == "classic":
        off = _pick(rng, _CLASSIC_STARTS)
        return bytes(_CLASSIC[(off + i) % len(_CLASSIC)] for i in range(n))
    if spec.kind == "random":
        out = bytearray()
        while len(out) < n:
            out += f"{_pick(rng, SUBJECTS)} {_pick(rng, VERBS)} {_pick(rng, OBJECTS)}{_pick(rng, ENDINGS)} ".encode()
        return bytes(out[:n])
    if spec.kind == "text":
        docs = [d for d in (spec.docs or []) if len(d.data) > 0]
        total = sum(len(d.data) for d in docs)
        if total == 0:
            raise ValueError("make_filler: the filler documents are empty")
        g = rng.below(total)
        di = 0
        while g >= len(docs[di].data):
            g -= len(docs[di].data)
            di += 1
        out = bytearray()
        off = g
        while len(out) < n:
            src = docs[di].data
            out += src[off:off + (n - len(out))]
            off = 0
            di = (di + 1) % len(docs)
        return bytes(out).translate(_DIGITS_TO_HASH)
    raise ValueError(f"make_filler: unknown filler kind {spec.kind!r} (classic, random or text)")


_DIGITS_TO_HASH = bytes.maketrans(b"0123456789", b"##########")


def _is_boundary(f: bytes, p: int) -> bool:
    if p == 0:
        return True
    a = f[p - 1]
    if a == 0x0A:
        return True
    if a != 0x20 or p < 2:
        return False
    return f[p - 2] in (0x2E, 0x3F, 0x21)


def _js_round(x: float) -> int:
    """Math.round: halves go up."""
    import math
    return math.floor(x + 0.5)


def needle_position(filler: bytes, depth: float, window: int = 256) -> int:
    """The sentence boundary nearest to depth·F (within `window` bytes), else depth·F itself."""
    F = len(filler)
    target = _js_round(depth * F)
    for r in range(window + 1):
        if target - r >= 0 and _is_boundary(filler, target - r):
            return target - r
        if target + r <= F and _is_boundary(filler, target + r):
            return target + r
    return target


@dataclass
class PasskeySample:
    prompt: bytes
    passkey: str
    depth: float
    needle_start: int


def passkey_sample(key: Key, length: int, depth: float, filler: Optional[Filler] = None) -> PasskeySample:
    """passkey.ts passkeySample: one prompt of exactly `length` bytes, ending with the question."""
    if length < FIXED_BYTES:
        raise ValueError(f"passkey_sample: length must be an integer >= {FIXED_BYTES} (needle + question), got {length}")
    if not 0 <= depth <= 1:
        raise ValueError(f"passkey_sample: depth must be in [0, 1], got {depth}")
    rng = HostRng(key)
    passkey = str(_int(rng, 10000, 99999))
    needle = needle_text(passkey).encode()
    F = length - len(needle) - len(QUESTION)
    fill = make_filler(filler or Filler(), rng, F)
    p = needle_position(fill, depth)
    prompt = fill[:p] + needle + fill[p:] + QUESTION.encode()
    return PasskeySample(prompt, passkey, depth, p)


@dataclass
class PasskeyBatch:
    inputs: torch.Tensor   # [B, L] int64
    targets: torch.Tensor  # [B, L] int64
    mask: torch.Tensor     # [B, L] float32
    passkeys: List[str]
    depths: List[float]


def passkey_training_batch(key: Key, step: int, batch: int, seq_len: int, filler: Optional[Filler] = None,
                           depth_range: Tuple[float, float] = (0.0, 1.0), answer_weight: float = 1.0,
                           other_weight: float = 0.0, rows: Optional[Sequence[int]] = None) -> PasskeyBatch:
    """passkey.ts passkeyTrainingBatch: row r of batch `step` from key_at(key, step, r). `rows`
    picks some rows of it (a rank's share); default all `batch` rows."""
    prompt_len = seq_len + 1 - PASSKEY_DIGITS
    if prompt_len < FIXED_BYTES:
        raise ValueError(f"passkey_training_batch: seqLen must be an integer >= {FIXED_BYTES + PASSKEY_DIGITS - 1}, got {seq_len}")
    d0, d1 = depth_range
    ins, tgs, keys, depths = [], [], [], []
    for r in (range(batch) if rows is None else rows):
        row_key = key_at(key, step, r)
        depth = d0 + (d1 - d0) * _float(HostRng(key_at(row_key, 0)))
        s = passkey_sample(key_at(row_key, 1), prompt_len, depth, filler)
        seq = s.prompt + s.passkey.encode()
        t = torch.tensor(list(seq), dtype=torch.long)
        ins.append(t[:-1])
        tgs.append(t[1:])
        keys.append(s.passkey)
        depths.append(depth)
    mask = torch.full((len(ins), seq_len), float(other_weight))
    mask[:, seq_len - PASSKEY_DIGITS:] = float(answer_weight)
    return PasskeyBatch(torch.stack(ins), torch.stack(tgs), mask, keys, depths)
