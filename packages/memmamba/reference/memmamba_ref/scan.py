"""The selective scan of Mamba's S6 core, in parallel form.

Same function and argument order as packages/tensor's fused ``selectiveScan`` (the truth):

    h_t = exp(Δ_t ⊙ A) ⊙ h_{t−1} + (Δ_t ⊙ u_t) ⊗ B_t        h_t ∈ R^{Di×N}, h_{−1} = h0
    y_t = h_t · C_t                                          y_t ∈ R^{Di}

u, delta [b, L, Di]; A [Di, N]; B, C [b, L, N]; h0 [b, Di, N] (zeros when None). Returns y
[b, L, Di] and, with ``return_state``, h_{L−1} [b, Di, N] (the state a chunked or recurrent run
carries on with).

Algorithm: an inclusive Hillis–Steele scan over the affine maps h ↦ a_t h + b_t, with
a_t = exp(Δ_t A) and b_t = Δ_t u_t B_t. Composing two maps (earlier one first) gives
(a, b) ∘ (a', b') = (a·a', a·b' + b), an associative operation, so ⌈log2 L⌉ rounds of
"combine with the element 2^k positions back" give every prefix at once; then h_t = b_t + a_t h0.
No Python loop over time: the loop runs over ⌈log2 L⌉ rounds, each one elementwise over
[b, L, Di, N]. Work O(L log L · Di · N), memory O(L · Di · N) per round (autograd keeps the
rounds' products for the backward pass, which PyTorch derives itself).

Why not the cumulative-sum-of-logs form (h_t = Σ_s exp(S_t − S_s) b_s with S_t = Σ Δ A): it needs
either exp(S_t) and exp(−S_s) separately, which over- and underflow as soon as |S| passes ~88 in
f32 (a few hundred tokens with a fast-decaying channel), or the [L, L] matrix of differences
S_t − S_s, O(L²) and still a difference of two large sums (cancellation). The affine scan only
multiplies numbers in (0, 1] (Δ > 0 and A < 0) and adds, so it is stable for any length; its
rounding error grows like log L, and it agrees with the sequential recurrence to ~1e-7 relative
in f32 (``selective_scan_sequential``, the loop, is kept as the readable definition and for tests).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def affine_scan(a: torch.Tensor, b: torch.Tensor, dim: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Inclusive scan of h_t = a_t h_{t−1} + b_t along ``dim`` from h_{−1} = 0: returns
    (Π_{s≤t} a_s, h_t) for every t (Hillis–Steele, ⌈log2 L⌉ rounds)."""
    L = a.shape[dim]
    off = 1
    while off < L:
        head_a = torch.ones_like(a.narrow(dim, 0, off))
        head_b = torch.zeros_like(b.narrow(dim, 0, off))
        a_prev = torch.cat([head_a, a.narrow(dim, 0, L - off)], dim)  # a_{t−off} (identity before 0)
        b_prev = torch.cat([head_b, b.narrow(dim, 0, L - off)], dim)
        b = a * b_prev + b  # both from the previous round's a, b
        a = a * a_prev
        off *= 2
    return a, b


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   h0: Optional[torch.Tensor] = None, return_state: bool = False):
    """The selective scan (module docstring), parallel over time. Returns y, or (y, h_last)."""
    dA = torch.exp(delta.unsqueeze(-1) * A)  # [b, L, Di, N]
    dBu = (delta * u).unsqueeze(-1) * B.unsqueeze(2)  # [b, L, Di, N]
    decay, h = affine_scan(dA, dBu, dim=1)
    if h0 is not None:
        h = h + decay * h0.unsqueeze(1)
    y = (h * C.unsqueeze(2)).sum(-1)
    if return_state:
        return y, h[:, -1]
    return y


def selective_scan_sequential(u, delta, A, B, C, h0=None, return_state=False):
    """The recurrence as written, one step per position (the definition; slow, for tests)."""
    b, L, Di = u.shape
    h = h0 if h0 is not None else u.new_zeros(b, Di, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1)
    return (y, h) if return_state else y
