"""The models of packages/memmamba (MemMamba, plain Mamba, the Transformer baseline) as torch
nn.Modules, in the parallel mode (a whole sequence at once).

Parameter names and layouts are the TS parameter tree's, 1:1: ``model.state_dict()`` keys are the
dotted TS paths (``layers.0.mamba.inProj.w``, ``layers.1.fuseTok.scale``, ``norm.weight``, …) and
every tensor has the TS shape. In particular a dense weight is stored **[in, out]** as in TS and
applied as ``x @ w + b`` (our ``Linear``, not ``torch.nn.Linear``, whose weight is [out, in]), so
loading TS weights is a plain ``load_state_dict`` with no transposes, and a checkpoint goes back
to TS unchanged. The conv weights are [channels, K] (TS conv1dCausal), applied with F.conv1d.

The math follows the TS code choice by choice (module docstrings name the TS file); where the
paper is vague the TS file documents the choice and this port copies it:
- RMSNorm x / √(mean(x²) + eps) ⊙ weight with eps = normEps;
- Mamba: causal depthwise conv + bias, SiLU; Δ = softplus(dt_proj(Δ̃) + b); A = −exp(A_log);
  the selective scan (scan.py, parallel form); y + D ⊙ u gated by SiLU(z); out_proj; residual;
- memory: the Note Block and the readers see h = RMSNorm_note(x_l); I_token = σ(h·w + b);
  write = I_token > τ1 (a comparison, no gradient); note = Pool_r(h W_n) ⊙ I_token; the pool is
  causal (pool.causal_select, FIFO "last" or priority "top" with the TS tie rule);
  c_tok = 1[I_state > τ2] ⊙ I_state ⊙ Attn over the own pool; c_lay = Attn over the pools of
  layers l − g … l − 1, one softmax over all their slots; empty slots masked (a position with no
  note reads 0); x̄ = x_l + F_tok(c_tok) + F_lay(c_lay) with the five fusions;
- the LM: embedding, the stack, final RMSNorm, tied head logits = RMSNorm(x) @ Eᵀ;
- the Transformer: pre-norm causal MHA with rotate-half RoPE (tables from exp/log as in TS),
  additive −1e9 causal mask, SiLU MLP.

Not ported (yet): the chunked and recurrent modes (carried states) and S3Pool's TS random stream
(with a ``generator`` S3Pool samples with torch's RNG; without one it takes the mean, as TS does
without a key).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig, MemoryConfig, parse_config
from .pool import PoolRead, select_notes
from .scan import selective_scan

FUSION_CONV_K = 3  # fusion.ts FUSION_CONV_K


# ------------------------------------------------------------------------------------------------
# building blocks (nn.ts)
# ------------------------------------------------------------------------------------------------

class Linear(nn.Module):
    """A dense layer with the TS layout: w [in, out], optional b [out]; y = x @ w + b."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.w = nn.Parameter(torch.empty(in_dim, out_dim))
        if bias:
            self.b = nn.Parameter(torch.empty(out_dim))
        else:
            self.register_parameter("b", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.w
        return y + self.b if self.b is not None else y

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """nn.Linear's law: U(±1/√in) for w and b."""
        bound = 1 / math.sqrt(self.in_dim)
        self.w.uniform_(-bound, bound, generator=generator)
        if self.b is not None:
            self.b.uniform_(-bound, bound, generator=generator)


class Scorer(Linear):
    """An importance scorer d → 1 (nn.ts initScorer): w like nn.Linear, b = 0. Returns [...]."""

    def __init__(self, in_dim: int):
        super().__init__(in_dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).squeeze(-1)

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        super().reset_parameters(generator)
        self.b.zero_()


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / √(mean(x²) + eps) over the last axis."""
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_normalize(x, self.eps) * self.weight

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        self.weight.fill_(1)


class DepthwiseConv(nn.Module):
    """Causal depthwise conv over the sequence (tensor conv1dCausal): w [C, K], optional b [C];
    y[b, t, c] = Σ_k w[c, k] · x[b, t − K + 1 + k, c] (+ b[c]), zeros before the start."""

    def __init__(self, channels: int, K: int, bias: bool):
        super().__init__()
        self.channels, self.K = channels, K
        self.w = nn.Parameter(torch.empty(channels, K))
        if bias:
            self.b = nn.Parameter(torch.empty(channels))
        else:
            self.register_parameter("b", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, L, C]
        L = x.shape[1]
        y = F.conv1d(x.transpose(1, 2), self.w.unsqueeze(1), None, padding=self.K - 1, groups=self.channels)
        y = y[..., :L].transpose(1, 2)
        return y + self.b if self.b is not None else y

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        bound = 1 / math.sqrt(self.K)  # nn.Conv1d, groups = channels: fan_in = K
        self.w.uniform_(-bound, bound, generator=generator)
        if self.b is not None:
            self.b.uniform_(-bound, bound, generator=generator)


# ------------------------------------------------------------------------------------------------
# Mamba (mamba.ts)
# ------------------------------------------------------------------------------------------------

class Mamba(nn.Module):
    """The S6 block: h = RMSNorm(x); (u, z) = in_proj(h); u = SiLU(conv(u) + b);
    (Δ̃, B, C) = x_proj(u); Δ = softplus(dt_proj(Δ̃) + b); A = −exp(A_log);
    y = scan(u, Δ, A, B, C) + D ⊙ u; out = x + out_proj(y ⊙ SiLU(z)).
    Returns (out, scan readout y + D ⊙ u)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dm = cfg.dims()
        self.cfg, self.dm = cfg, dm
        self.norm = RMSNorm(dm.d, cfg.norm_eps)
        self.inProj = Linear(dm.d, 2 * dm.d_inner, bias=False)
        self.conv = DepthwiseConv(dm.d_inner, dm.K, bias=True)
        self.xProj = Linear(dm.d_inner, dm.dt_rank + 2 * dm.N, bias=False)
        self.dtProj = Linear(dm.dt_rank, dm.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(dm.d_inner, dm.N))
        self.D = nn.Parameter(torch.ones(dm.d_inner))
        self.outProj = Linear(dm.d_inner, dm.d, bias=False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        Di, R, N = self.dm.d_inner, self.dm.dt_rank, self.dm.N
        xz = self.inProj(self.norm(x))
        x_in, z = xz[..., :Di], xz[..., Di:]
        u = F.silu(self.conv(x_in))
        dbc = self.xProj(u)
        dt_low, Bm, C = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
        delta = F.softplus(self.dtProj(dt_low))
        A = -torch.exp(self.A_log)
        scan = selective_scan(u, delta, A, Bm, C) + u * self.D
        out = x + self.outProj(scan * F.silu(z))
        return out, scan

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """mamba.ts initMamba's law (not its random stream)."""
        cfg, dm = self.cfg, self.dm
        self.norm.reset_parameters(generator)
        self.inProj.reset_parameters(generator)
        self.conv.reset_parameters(generator)
        self.xProj.reset_parameters(generator)
        bound = 1 / math.sqrt(dm.dt_rank)
        self.dtProj.w.uniform_(-bound, bound, generator=generator)
        u = torch.rand(dm.d_inner, generator=generator, dtype=self.dtProj.b.dtype)
        lo, hi = math.log(cfg.dt_min), math.log(cfg.dt_max)
        dt = torch.exp(u * (hi - lo) + lo).clamp(min=1e-4)
        self.dtProj.b.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(Δ)
        self.A_log.copy_(torch.log(torch.arange(1, dm.N + 1, dtype=self.A_log.dtype)).expand(dm.d_inner, dm.N))
        self.D.fill_(1)
        self.outProj.reset_parameters(generator)
        self.outProj.w.mul_(1 / math.sqrt(cfg.n_layers))


# ------------------------------------------------------------------------------------------------
# the Note Block (note.ts, pooling.ts)
# ------------------------------------------------------------------------------------------------

def pool_summary(u: torch.Tensor, r: int, kind: str, threshold: float = 0.0,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Pool_r (Eq. 9): u [..., S·r] in S contiguous groups of r → [..., S]."""
    if u.shape[-1] % r != 0:
        raise ValueError(f"pool_summary: the last axis ({u.shape[-1]}) is not a multiple of the window r = {r}")
    g = u.reshape(*u.shape[:-1], u.shape[-1] // r, r)
    if kind == "max":
        return g.amax(-1)  # the gradient splits evenly between ties, as in TS
    if kind == "mean":
        return g.mean(-1)
    if kind == "tmaxavg":
        m = g.amax(-1)
        return torch.where(m > threshold, m, g.mean(-1))
    if kind == "s3pool":
        if generator is None:
            return g.mean(-1)
        pick = torch.randint(0, r, g.shape[:-1], generator=generator, device=g.device)
        return torch.gather(g, -1, pick.unsqueeze(-1)).squeeze(-1)
    raise ValueError(f"pool_summary: unknown pooling {kind!r}")


class NoteBlock(nn.Module):
    """Eq. 5/8/9 on h = RMSNorm(x_l): I_token = σ(h·w + b); s = Pool_r(h W_n);
    write = I_token > τ1 (no gradient); note = s ⊙ I_token."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m = cfg.memory
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.token = Scorer(cfg.d_model)
        self.summary = Linear(cfg.d_model, m.summary_dim * m.summary_window, bias=False)

    def forward(self, h: torch.Tensor, m: MemoryConfig, generator=None) -> Dict[str, torch.Tensor]:
        score = torch.sigmoid(self.token(h))
        write = (score > m.tau1).to(h.dtype)
        pre = self.summary(h)
        s = pool_summary(pre, m.summary_window, m.pooling, m.tmaxavg_threshold, generator)
        return {"score": score, "write": write, "note": s * score.unsqueeze(-1), "pre": pre}

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        for mod in (self.norm, self.token, self.summary):
            mod.reset_parameters(generator)


# ------------------------------------------------------------------------------------------------
# reading the pools (attention.ts)
# ------------------------------------------------------------------------------------------------

def pool_attention(q: torch.Tensor, keys: List[torch.Tensor], values: List[torch.Tensor], valid: List[torch.Tensor]) -> torch.Tensor:
    """softmax(q·Kᵀ/√S) V over the valid slots of one or more groups (one softmax over all):
    q [B, L, S]; keys, values [B, L, P_g, S]; valid [B, L, P_g]. No valid slot → 0."""
    S = q.shape[-1]
    mask = torch.cat(valid, 2)
    logits = torch.cat([torch.einsum("blps,bls->blp", k, q) for k in keys], 2)
    weights = torch.softmax((logits * (1 / math.sqrt(S))).masked_fill(~mask, -1e9), -1) * mask.to(q.dtype)
    out, off = None, 0
    for v in values:
        P = v.shape[2]
        part = torch.einsum("blp,blps->bls", weights[..., off:off + P], v)
        out = part if out is None else out + part
        off += P
    return out


class CrossToken(nn.Module):
    """Eq. 6/10: c_tok = 1[I_state > τ2] ⊙ I_state ⊙ Attn(h W_q, notes W_k, notes W_v) over the
    layer's own pool; I_state = σ(src·w + b), src = h or RMSNormalize(scan) (stateScore)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, S = cfg.d_model, cfg.memory.summary_dim
        self.state = Scorer(cfg.expand * d if cfg.memory.state_score == "scan" else d)
        self.q, self.k, self.v = Linear(d, S, bias=False), Linear(S, S, bias=False), Linear(S, S, bias=False)

    def forward(self, h, state_src, read: PoolRead, m: MemoryConfig):
        score = torch.sigmoid(self.state(state_src))
        gate = (score > m.tau2).to(h.dtype)
        attn = pool_attention(self.q(h), [read.slots(self.k.w)], [read.slots(self.v.w)], [read.valid])
        return attn * (gate * score).unsqueeze(-1), score, gate

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        for mod in (self.state, self.q, self.k, self.v):
            mod.reset_parameters(generator)


class CrossLayer(nn.Module):
    """Eq. 7/11: c_lay = Attn(h W_q, notes W_k, notes W_v) over the pools of layers l − g … l − 1."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, S = cfg.d_model, cfg.memory.summary_dim
        self.q, self.k, self.v = Linear(d, S, bias=False), Linear(S, S, bias=False), Linear(S, S, bias=False)

    def forward(self, h, reads: List[PoolRead]):
        return pool_attention(self.q(h), [r.slots(self.k.w) for r in reads], [r.slots(self.v.w) for r in reads],
                              [r.valid for r in reads])

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        for mod in (self.q, self.k, self.v):
            mod.reset_parameters(generator)


# ------------------------------------------------------------------------------------------------
# fusion (fusion.ts)
# ------------------------------------------------------------------------------------------------

class Fusion(nn.Module):
    """One term F(c) of Eq. 12: u = c W_F (no bias), then weighted α ⊙ u, gated σ([x, u] W_g + b_g) ⊙ u,
    residual u, product x ⊙ u, or conv1d (causal depthwise, kernel 3, no bias) over u."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.kind = cfg.memory.fusion
        self.proj = Linear(cfg.memory.summary_dim, d, bias=False)
        if self.kind == "weighted":
            self.scale = nn.Parameter(torch.full((d,), 0.1))
        elif self.kind == "gated":
            self.gate = Linear(2 * d, d, bias=True)
        elif self.kind == "conv1d":
            self.conv = DepthwiseConv(d, FUSION_CONV_K, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        u = self.proj(c)
        if self.kind == "weighted":
            return u * self.scale
        if self.kind == "gated":
            return torch.sigmoid(self.gate(torch.cat([x, u], -1))) * u
        if self.kind == "residual":
            return u
        if self.kind == "product":
            return x * u
        if self.kind == "conv1d":
            return self.conv(u)
        raise ValueError(f"unknown fusion {self.kind!r}")

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        self.proj.reset_parameters(generator)
        if self.kind == "weighted":
            self.scale.fill_(0.1)
        elif self.kind == "gated":
            self.gate.reset_parameters(generator)
        elif self.kind == "conv1d":
            self.conv.reset_parameters(generator)


# ------------------------------------------------------------------------------------------------
# one layer (layer.ts)
# ------------------------------------------------------------------------------------------------

class MemMambaLayer(nn.Module):
    """x_l = Mamba(x); h = RMSNorm(x_l); notes → pool; c_tok, c_lay; x̄ = x_l + F_tok + F_lay.
    A plain Mamba layer when memory is off (then only ``mamba`` exists, as in TS)."""

    def __init__(self, cfg: ModelConfig, l: int):
        super().__init__()
        self.cfg, self.l = cfg, l
        self.mamba = Mamba(cfg)
        mem = cfg.uses_memory()
        self.note = NoteBlock(cfg) if mem else None
        self.crossToken = CrossToken(cfg) if mem and cfg.memory.cross_token else None
        self.fuseTok = Fusion(cfg) if self.crossToken is not None else None
        self.crossLayer = CrossLayer(cfg) if cfg.has_cross_layer(l) else None
        self.fuseLay = Fusion(cfg) if self.crossLayer is not None else None

    def forward(self, x: torch.Tensor, reads: List[Optional[PoolRead]], generator=None, trace: Optional[dict] = None):
        cfg, m = self.cfg, self.cfg.memory
        y, scan = self.mamba(x)
        if self.note is None:
            return y, None
        h = self.note.norm(y)
        notes = self.note(h, m, generator)
        read = select_notes(notes["write"], notes["score"], notes["note"], m.pool_size, m.replacement)
        out = y
        if trace is not None:
            trace.update(tokenScore=notes["score"], write=notes["write"], selected=read.positions, summaryPre=notes["pre"])
        if self.crossToken is not None:
            src = rms_normalize(scan, cfg.norm_eps) if m.state_score == "scan" else h
            c, score, gate = self.crossToken(h, src, read, m)
            out = out + self.fuseTok(y, c)
            if trace is not None:
                trace.update(stateScore=score, readGate=gate)
        if self.crossLayer is not None:
            sources = []
            for j in cfg.cross_layer_sources(self.l):
                if reads[j] is None:
                    raise ValueError(f"layer {self.l} reads the pool of layer {j}, which was not given")
                sources.append(reads[j])
            out = out + self.fuseLay(y, self.crossLayer(h, sources))
        return out, read

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        for mod in (self.mamba, self.note, self.crossToken, self.fuseTok, self.crossLayer, self.fuseLay):
            if mod is not None:
                mod.reset_parameters(generator)


# ------------------------------------------------------------------------------------------------
# the Transformer baseline (transformer.ts)
# ------------------------------------------------------------------------------------------------

def rope_tables(L: int, head_dim: int, base: float, dtype=torch.float32, device=None, start: int = 0):
    """θ_i = base^(−2i/hd) computed as exp(i · ln(base) · (−2/hd)); angle = position · θ_i → cos, sin [L, hd/2]."""
    half = head_dim // 2
    i = torch.arange(half, dtype=dtype, device=device)
    freq = torch.exp(i * math.log(base) * (-2 / head_dim))
    angle = torch.arange(start, start + L, dtype=dtype, device=device)[:, None] * freq
    return torch.cos(angle), torch.sin(angle)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE of x [B, H, L, hd]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class TransformerLayer(nn.Module):
    """x = x + W_o·MHA(RMSNorm(x)) (causal, RoPE); x = x + W_down·SiLU(W_up·RMSNorm(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, hidden = cfg.d_model, cfg.transformer.mlp_ratio * cfg.d_model
        self.cfg = cfg
        self.norm1 = RMSNorm(d, cfg.norm_eps)
        self.qkv = Linear(d, 3 * d, bias=False)
        self.o = Linear(d, d, bias=False)
        self.norm2 = RMSNorm(d, cfg.norm_eps)
        self.up = Linear(d, hidden, bias=False)
        self.down = Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        B, L, d = x.shape
        H = self.cfg.transformer.n_heads
        hd = d // H
        qkv = self.qkv(self.norm1(x))
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(B, L, H, hd).transpose(1, 2) for i in range(3))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        mask = torch.triu(torch.full((L, L), -1e9, dtype=x.dtype, device=x.device), diagonal=1)
        scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(hd)) + mask
        attn = torch.softmax(scores, -1) @ v
        x1 = x + self.o(attn.transpose(1, 2).reshape(B, L, d))
        return x1 + self.down(F.silu(self.up(self.norm2(x1))))

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        for mod in (self.norm1, self.qkv, self.o, self.norm2, self.up, self.down):
            mod.reset_parameters(generator)
        self.o.w.mul_(1 / math.sqrt(self.cfg.n_layers))
        self.down.w.mul_(1 / math.sqrt(self.cfg.n_layers))


# ------------------------------------------------------------------------------------------------
# the language model (model.ts)
# ------------------------------------------------------------------------------------------------

class LM(nn.Module):
    """Byte embedding → the stack (MemMamba / Mamba / Transformer layers) → RMSNorm → tied head."""

    def __init__(self, config):
        super().__init__()
        cfg = config if isinstance(config, ModelConfig) else parse_config(config)
        self.config = cfg
        self.embed = nn.Parameter(torch.empty(cfg.vocab, cfg.d_model))
        if cfg.kind == "transformer":
            self.layers = nn.ModuleList([TransformerLayer(cfg) for _ in range(cfg.n_layers)])
        else:
            self.layers = nn.ModuleList([MemMambaLayer(cfg, l) for l in range(cfg.n_layers)])
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        # recompute each layer in the backward pass (torch.utils.checkpoint): one layer's
        # activations in memory at a time (bench_train.py turns it on after an out-of-memory)
        self.activation_checkpointing = False
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """The TS initialisation's laws (model.ts initLM and the layers' init), drawn from torch's RNG."""
        self.embed.normal_(0, 0.02, generator=generator)
        for layer in self.layers:
            layer.reset_parameters(generator)
        self.norm.reset_parameters(generator)

    def forward(self, tokens: torch.Tensor, generator: Optional[torch.Generator] = None,
                trace: Optional[List[dict]] = None, targets: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Logits [B, L, vocab] of tokens (integers) [B, L]. With ``trace`` (a list), appends one
        dict of per-position signals per layer (scores, write masks, read gates, pool positions).
        With ``targets`` [B, L], the mean next-token cross-entropy instead (what DDP / FSDP wrap:
        the loss is computed inside forward)."""
        if targets is not None:
            logits = self(tokens, generator, trace)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long())
        if tokens.dim() != 2 or tokens.shape[1] == 0:
            raise ValueError(f"LM: tokens must be [B, L] with L ≥ 1, got {tuple(tokens.shape)}")
        cfg = self.config
        x = self.embed[tokens.long()]
        if cfg.kind == "transformer":
            hd = cfg.d_model // cfg.transformer.n_heads
            rope = rope_tables(tokens.shape[1], hd, cfg.transformer.rope_base, x.dtype, x.device) if cfg.transformer.rotary else None
            for layer in self.layers:
                x = self._ckpt(layer, x, rope) if self.activation_checkpointing and self.training else layer(x, rope)
        else:
            reads: List[Optional[PoolRead]] = []
            for layer in self.layers:
                t = {} if trace is not None else None
                if self.activation_checkpointing and self.training and trace is None:
                    x, read = self._ckpt(layer, x, list(reads), generator, None)
                else:
                    x, read = layer(x, reads, generator, t)
                reads.append(read)
                if trace is not None:
                    trace.append(t)
        return self.norm(x) @ self.embed.t()

    @staticmethod
    def _ckpt(layer, *args):
        from torch.utils.checkpoint import checkpoint
        return checkpoint(layer, *args, use_reentrant=False)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor, generator=None) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) of tokens [B, L] against targets [B, L]."""
        logits = self(tokens, generator)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1).long())

