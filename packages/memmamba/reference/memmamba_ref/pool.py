"""The state pool over a sequence (pool.ts's selectNotes, tensor.causalSelect).

``causal_select(mask, score, k, mode)`` answers, for every position t, which earlier positions
j < t a pool of k notes holds just before t, given which positions write (mask) and their scores:

    "last" (FIFO)       the k most recent writes;
    "top"  (priority)   a full pool evicts its lowest score, the newcomer included; among equal
                        scores the oldest goes.

It returns i64 [B, L, k]: the held positions in increasing order, padded with −1 — exactly the
TS kernel's output (packages/tensor/src/cpu/select.ts). Selection has no gradient.

Vectorised, not a loop over time. The eviction rule of "top" is "drop the minimum of the held
notes and the newcomer" under the strict total order (score, position) (equal scores: the older,
smaller position, is smaller), so the pool before t always holds the k largest writes before t
under that order. Hence j is held at t iff j < t, j writes, and fewer than k writes i < t beat it,
where "i beats j" is: "last": i > j; "top": (s_i, i) > (s_j, j). The counts for every (t, j) are an
exclusive cumulative sum over i of the [B, L, L] matrix "i beats j": O(B·L²) memory, fine for the
reference and for training windows of a few thousand tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@torch.no_grad()
def causal_select(mask: torch.Tensor, score: torch.Tensor, k: int, mode: str = "last") -> torch.Tensor:
    if mode not in ("last", "top"):
        raise ValueError(f'causal_select: mode must be "last" or "top", got {mode!r}')
    if mask.dim() != 2 or score.shape != mask.shape:
        raise ValueError(f"causal_select: mask {tuple(mask.shape)} and score {tuple(score.shape)} must both be [B, L]")
    B, L = mask.shape
    dev = mask.device
    if k == 0:
        return torch.full((B, L, 0), -1, dtype=torch.long, device=dev)
    m = mask != 0
    pos = torch.arange(L, device=dev)
    later = pos[:, None] > pos[None, :]  # [i, j]: i > j
    if mode == "last":
        beats = m[:, :, None] & later
    else:
        si, sj = score[:, :, None], score[:, None, :]
        beats = m[:, :, None] & ((si > sj) | ((si == sj) & later))
    beats = beats.to(torch.int32)
    before = torch.cumsum(beats, 1) - beats  # [B, t, j]: Σ_{i<t} beats[i, j]
    held = m[:, None, :] & later[None] & (before < k)  # later[t, j]: j < t
    keyed = torch.where(held, pos.expand(B, L, L), torch.full_like(before, L, dtype=torch.long))
    first = torch.sort(keyed, dim=-1).values[..., :k]  # held positions first, increasing
    if first.shape[-1] < k:
        first = torch.cat([first, first.new_full((B, L, k - first.shape[-1]), L)], -1)
    return torch.where(first >= L, torch.full_like(first, -1), first)


@dataclass
class PoolRead:
    """What each position reads from a pool: notes [B, M, S] (the flat note table, per sequence)
    and the slots' positions into it, i64 [B, L, P] (−1: empty). pool.ts's PoolRead."""
    notes: torch.Tensor
    positions: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        return self.positions >= 0

    def slots(self, w: torch.Tensor) -> torch.Tensor:
        """The slots projected by w [S, S'] → [B, L, P, S'] (projects the table, then gathers;
        empty slots hold row 0 and are masked by the reader)."""
        table = self.notes @ w  # [B, M, S']
        B, M, Sp = table.shape
        offsets = (torch.arange(B, device=table.device) * M).view(B, 1, 1)
        index = torch.where(self.valid, self.positions + offsets, torch.zeros_like(self.positions))
        return table.reshape(B * M, Sp)[index]


def select_notes(write: torch.Tensor, score: torch.Tensor, note: torch.Tensor, pool_size: int, replacement: str) -> PoolRead:
    """Eq. 5/8 over a sequence: for each position the notes its layer's pool holds before it."""
    mode = "last" if replacement == "fifo" else "top"
    return PoolRead(notes=note, positions=causal_select(write, score, pool_size, mode))
