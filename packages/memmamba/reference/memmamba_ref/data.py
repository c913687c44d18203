"""Byte-level text data as in ``packages/memmamba/src/data/text.ts``: the same loading (the
Gutenberg cut), the same train / validation split, and the same training windows, bit for bit.

``WindowSampler(docs, L, key).row(index, r)`` is row r of TS ``WindowSampler.batch(index, B)``
(for every B > r): a uniformly random window of L + 1 bytes over all windows of all training
documents, drawn by ``HostRng(key_at(key, index, r)).below(windows)``. The trainer's data key is
``fold_in(key_from_seed(seed), 1)`` (trainer.ts), and micro-batch ``index`` of step s is
``(s − 1)·accum + j``; so the same (seed, step) gives the same windows on both sides.
"""
from __future__ import annotations

import bisect
import math
import os
import re
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from .philox import HostRng, Key, key_at

VOCAB_SIZE = 256
SUGGESTED_VALIDATION = ("10700.txt", "11080.txt", "10343.txt", "10351.txt", "10064.txt", "10114.txt")
_START = re.compile(rb"\*\*\* ?START OF")
_END = re.compile(rb"\*\*\* ?END OF")


@dataclass
class TextDoc:
    name: str
    data: bytes


def cut_gutenberg(b: bytes) -> bytes:
    """text.ts cutGutenberg: from the line after `*** START OF` to the end of the line before `*** END OF`."""
    begin = 0
    s = _START.search(b)
    if s:
        nl = b.find(b"\n", s.start())
        begin = len(b) if nl < 0 else nl + 1
    end = len(b)
    e = _END.search(b, begin)
    if e:
        line_start = -1 if e.start() == 0 else b.rfind(b"\n", 0, e.start())
        end = max(begin, line_start + 1)
    return b[begin:end]


def load_texts(path: str, cut: bool = True) -> List[TextDoc]:
    """One file, or every *.txt of a directory sorted by name (byte order of the names, as JS sort)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory (expected a .txt file or a directory of them)")
    if os.path.isdir(path):
        names = sorted((n for n in os.listdir(path) if n.endswith(".txt")), key=lambda n: n.encode("utf-16-be"))
        files = [os.path.join(path, n) for n in names]
        if not files:
            raise ValueError(f"{path}: the directory holds no .txt files")
    else:
        files = [path]
    out = []
    for f in files:
        with open(f, "rb") as fh:
            raw = fh.read()
        out.append(TextDoc(os.path.basename(f), cut_gutenberg(raw) if cut else raw))
    return out


@dataclass
class Split:
    train: List[TextDoc]
    validation: List[TextDoc]
    rule: str


def split_texts(docs: Sequence[TextDoc]) -> Split:
    """text.ts splitTexts: the suggested six books; else the ⌈n/10⌉ longest; else the last 10%."""
    if not docs:
        raise ValueError("split_texts: no documents")
    names = {d.name for d in docs}
    if all(n in names for n in SUGGESTED_VALIDATION):
        val = set(SUGGESTED_VALIDATION)
        return Split([d for d in docs if d.name not in val], [d for d in docs if d.name in val],
                     "the data README's suggested split (the six longest books held out)")
    if len(docs) >= 2:
        k = math.ceil(len(docs) / 10)
        by_len = sorted(docs, key=lambda d: (-len(d.data), d.name.encode("utf-16-be")))
        val = {d.name for d in by_len[:k]}
        return Split([d for d in docs if d.name not in val], [d for d in docs if d.name in val],
                     f"the {k} longest of {len(docs)} documents held out")
    d = docs[0]
    cut = math.floor(len(d.data) * 0.9)
    return Split([TextDoc(d.name, d.data[:cut])], [TextDoc(d.name + "#validation", d.data[cut:])],
                 "one document: its last 10% held out")


class WindowSampler:
    """text.ts WindowSampler: random training windows, a pure function of (key, index, row)."""

    def __init__(self, docs: Sequence[TextDoc], seq_len: int, key: Key):
        if seq_len < 1:
            raise ValueError(f"WindowSampler: seqLen must be a positive integer, got {seq_len}")
        self.seq_len, self.key = seq_len, key
        self._usable: List[TextDoc] = []
        self._cum: List[int] = []
        total = 0
        for d in docs:
            n = len(d.data) - seq_len
            if n <= 0:
                continue
            total += n
            self._usable.append(d)
            self._cum.append(total)
        if total == 0:
            longest = max([0] + [len(d.data) for d in docs])
            raise ValueError(f"WindowSampler: no document is longer than seqLen + 1 = {seq_len + 1} bytes (the longest has {longest})")
        self.windows = total

    def locate(self, g: int) -> Tuple[TextDoc, int]:
        i = bisect.bisect_right(self._cum, g)
        return self._usable[i], g - (self._cum[i - 1] if i else 0)

    def origin(self, index: int, r: int) -> Tuple[str, int]:
        doc, start = self.locate(HostRng(key_at(self.key, index, r)).below(self.windows))
        return doc.name, start

    def row(self, index: int, r: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(inputs [L], targets [L]) int64 of row r of micro-batch `index`."""
        doc, start = self.locate(HostRng(key_at(self.key, index, r)).below(self.windows))
        w = torch.tensor(list(doc.data[start:start + self.seq_len + 1]), dtype=torch.long)
        return w[:-1], w[1:]

    def batch(self, index: int, batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """TS WindowSampler.batch(index, batch): (inputs, targets) [batch, L] int64."""
        rows = [self.row(index, r) for r in range(batch)]
        return torch.stack([a for a, _ in rows]), torch.stack([b for _, b in rows])

    def rows(self, pairs: Sequence[Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The rows (index, r) stacked: the rank-local share of a global batch."""
        rows = [self.row(i, r) for i, r in pairs]
        return torch.stack([a for a, _ in rows]), torch.stack([b for _, b in rows])
