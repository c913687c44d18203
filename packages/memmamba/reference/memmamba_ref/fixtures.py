"""Step 2 of the parity fixtures (regen-fixtures.sh runs both): computes the expected outputs.

For every fixture directory that export-fixture-weights.ts wrote (config.json, weights.safetensors,
inputs.safetensors), loads the TS weights into the reference model, runs it in float64 and writes

  expected.safetensors   logits F32 [B, L, vocab]; loss F32 []; grad.<TS path> F32 for every
                         parameter (d mean cross-entropy / d parameter); per layer of a memmamba
                         model trace.<l>.write and trace.<l>.readGate F32 [B, L] (the threshold
                         decisions) and trace.<l>.selected I32 [B, L, P] (the pool's positions);
                         metadata: torch version, dtype, decision margins

and manifest.json (the fixture list, with margins and the float32 noise floor) beside them.

Why float64: the fixture is then the exact answer of the same math, and the TS test measures its
float32 error against it (the torch float32 run's distance to it, reported as ``f32_vs_f64``, is
the noise floor that error should be compared with).

Why margins: the model is piecewise (I_token > τ1, I_state > τ2, the priority pool's ordering of
scores, max pooling's argmax). A decision within float32 rounding of its threshold could go the
other way in TS, and the fixture would then test nothing but luck. Every fixture must keep each
decision at least MIN_MARGIN away from flipping, else this script fails (change the seed).

Before the fixtures, it checks its own pieces: the parallel scan against the sequential recurrence,
and causal_select against a line-by-line port of the TS kernel (with ties).

Usage (from packages/memmamba/reference):  /usr/bin/python3 -m memmamba_ref.fixtures [--dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List

import torch

from . import safetensors_io
from .config import load_config, parse_config, preset
from .model import LM
from .pool import causal_select
from .scan import selective_scan, selective_scan_sequential
from .weights import check_and_load

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "test", "fixtures", "reference"))
MIN_MARGIN = 1e-5


# ------------------------------------------------------------------------------------------------
# self-checks
# ------------------------------------------------------------------------------------------------

def causal_select_loop(mask, score, k, mode):
    """packages/tensor/src/cpu/select.ts, line by line (the definition causal_select must equal)."""
    B, L = mask.shape
    out = torch.full((B, L, k), -1, dtype=torch.long)
    for b in range(B):
        held: List[int] = []
        for t in range(L):
            for i, j in enumerate(held):
                out[b, t, i] = j
            if mask[b, t] == 0 or k == 0:
                continue
            if len(held) < k:
                held.append(t)
            elif mode == "last":
                held.pop(0)
                held.append(t)
            else:
                worst, ws = -1, score[b, t].item()
                for i, j in enumerate(held):
                    v = score[b, j].item()
                    if v < ws or (v == ws and worst == -1):
                        ws, worst = v, i
                if worst >= 0:
                    held.pop(worst)
                    held.append(t)
    return out


def self_check() -> None:
    g = torch.Generator().manual_seed(0)
    for L in (1, 2, 7, 33):
        b, Di, N = 2, 3, 4
        u, B, C = (torch.randn(b, L, n, generator=g, dtype=torch.float64) for n in (Di, N, N))
        delta = torch.rand(b, L, Di, generator=g, dtype=torch.float64)
        A = -torch.rand(Di, N, generator=g, dtype=torch.float64) * 3
        h0 = torch.randn(b, Di, N, generator=g, dtype=torch.float64)
        y1, s1 = selective_scan(u, delta, A, B, C, h0, True)
        y2, s2 = selective_scan_sequential(u, delta, A, B, C, h0, True)
        err = max((y1 - y2).abs().max().item(), (s1 - s2).abs().max().item())
        assert err < 1e-12, f"self-check: parallel scan differs from the recurrence by {err} at L = {L}"
    for trial in range(60):
        B, L = 2, int(torch.randint(1, 30, (1,), generator=g))
        k = int(torch.randint(0, 6, (1,), generator=g))
        mask = (torch.rand(B, L, generator=g) < 0.6).float()
        score = torch.randint(0, 4, (B, L), generator=g).double() / 4  # many ties
        for mode in ("last", "top"):
            got, want = causal_select(mask, score, k, mode), causal_select_loop(mask, score, k, mode)
            assert torch.equal(got, want), f"self-check: causal_select({mode}, k={k}) differs from the TS kernel's definition"


def check_ts_config(directory: str) -> None:
    path = os.path.join(directory, "ts-config.json")
    with open(path, encoding="utf-8") as f:
        ts = json.load(f)
    mine = parse_config({}).to_json()
    if mine != ts["defaults"]:
        raise SystemExit(f"{path}: the Python config defaults differ from TS's:\n  python {mine}\n  ts     {ts['defaults']}")
    for name, want in ts["presets"].items():
        got = preset(name).to_json()
        if got != want:
            raise SystemExit(f"{path}: preset {name!r} differs between Python and TS:\n  python {got}\n  ts     {want}")


# ------------------------------------------------------------------------------------------------
# one fixture
# ------------------------------------------------------------------------------------------------

def margins(model: LM, trace: List[dict]) -> Dict[str, float]:
    """How far each piecewise decision is from flipping (min over positions; inf when absent)."""
    m = model.config.memory
    out = {"tau1": float("inf"), "tau2": float("inf"), "priorityOrder": float("inf"), "maxPooling": float("inf"), "tmaxavgThreshold": float("inf")}
    for t in trace:
        if "tokenScore" not in t:
            continue  # no memory in this layer
        out["tau1"] = min(out["tau1"], (t["tokenScore"] - m.tau1).abs().min().item())
        if "stateScore" in t:
            out["tau2"] = min(out["tau2"], (t["stateScore"] - m.tau2).abs().min().item())
        if m.replacement == "priority":
            for b in range(t["write"].shape[0]):
                s = t["tokenScore"][b][t["write"][b] > 0].sort().values
                if s.numel() > 1:
                    out["priorityOrder"] = min(out["priorityOrder"], (s[1:] - s[:-1]).min().item())
        if m.pooling in ("max", "tmaxavg") and m.summary_window > 1:
            g = t["summaryPre"].reshape(*t["summaryPre"].shape[:-1], m.summary_dim, m.summary_window)
            top2 = g.topk(2, -1).values
            out["maxPooling"] = min(out["maxPooling"], (top2[..., 0] - top2[..., 1]).min().item())
        if m.pooling == "tmaxavg":
            g = t["summaryPre"].reshape(*t["summaryPre"].shape[:-1], m.summary_dim, m.summary_window)
            out["tmaxavgThreshold"] = min(out["tmaxavgThreshold"], (g.amax(-1) - m.tmaxavg_threshold).abs().min().item())
    return {k: v for k, v in out.items() if v != float("inf")}  # only the decisions this model takes


def run(model: LM, tokens, targets, dtype):
    model = model.to(dtype)
    model.zero_grad(set_to_none=True)
    trace: List[dict] = []
    logits = model(tokens, trace=trace)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    # a parameter the loss does not reach (the last layer's note scorer when nothing reads its pool) has a zero gradient
    grads = {k: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for k, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads, [{k: v.detach() for k, v in t.items()} for t in trace]


def make_fixture(directory: str, name: str) -> dict:
    here = os.path.join(directory, name)
    cfg = load_config(os.path.join(here, "config.json"), complete=True)  # TS wrote every field
    weights, wmeta = safetensors_io.load(os.path.join(here, "weights.safetensors"))
    inputs, _ = safetensors_io.load(os.path.join(here, "inputs.safetensors"))
    tokens, targets = inputs["tokens"].long(), inputs["targets"].long()
    model = LM(cfg)
    check_and_load(model, weights, os.path.join(here, "weights.safetensors"))

    logits, loss, grads, trace = run(model, tokens, targets, torch.float64)
    model_f32 = LM(cfg)
    check_and_load(model_f32, weights)
    l32, loss32, g32, trace32 = run(model_f32, tokens, targets, torch.float32)

    mg = margins(model, trace)
    low = {k: v for k, v in mg.items() if v < MIN_MARGIN}
    if low:
        raise SystemExit(f"{name}: decisions too close to their thresholds ({low}); pick another seed in export-fixture-weights.ts")
    for l, (a, b) in enumerate(zip(trace, trace32)):
        for key in ("write", "readGate", "selected"):
            if key in a and not torch.equal(a[key].to(b[key].dtype), b[key]):
                raise SystemExit(f"{name}: layer {l}: {key} differs between float64 and float32 in torch")

    out: Dict[str, torch.Tensor] = {"logits": logits.float(), "loss": loss.float().reshape(())}
    for k, g in grads.items():
        out[f"grad.{k}"] = g.float()
    for l, t in enumerate(trace):
        if "write" not in t:
            continue
        out[f"trace.{l}.write"] = t["write"].float()
        if "readGate" in t:
            out[f"trace.{l}.readGate"] = t["readGate"].float()
        out[f"trace.{l}.selected"] = t["selected"].to(torch.int32)
    f32_noise = {
        "logits": (l32.double() - logits).abs().max().item(),
        "grads": max(((g32[k].double() - g).abs().max() / g.abs().max().clamp_min(1e-30)).item() for k, g in grads.items()),
    }
    writes = [int(t["write"].sum().item()) for t in trace if "write" in t]
    reads = [int(t["readGate"].sum().item()) for t in trace if "readGate" in t]
    meta = {
        "format": "memmamba-reference-expected", "fixture": name, "torch": torch.__version__, "dtype": "float64",
        "margins": json.dumps(mg), "f32_vs_f64": json.dumps(f32_noise), "weights_seed": wmeta.get("seed", ""),
    }
    safetensors_io.save(os.path.join(here, "expected.safetensors"), out, meta)
    return {"name": name, "kind": cfg.kind, "batch": tokens.shape[0], "length": tokens.shape[1], "loss": loss.item(),
            "notesWritten": writes, "poolReads": reads, "margins": mg, "f32_vs_f64": f32_noise}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=DEFAULT_DIR, help="the fixtures directory (default: %(default)s)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.time()
    self_check()
    check_ts_config(args.dir)
    names = sorted(n for n in os.listdir(args.dir) if os.path.isfile(os.path.join(args.dir, n, "weights.safetensors")))
    if not names:
        raise SystemExit(f"{args.dir}: no fixtures (run export-fixture-weights.ts first)")
    entries = []
    for name in names:
        e = make_fixture(args.dir, name)
        entries.append(e)
        print(f"{name}: loss {e['loss']:.6f}, notes written per layer {e['notesWritten']}, reads {e['poolReads']}, "
              f"torch f32 vs f64: logits {e['f32_vs_f64']['logits']:.2e}, grads (rel) {e['f32_vs_f64']['grads']:.2e}")
    manifest = {"format": "memmamba-reference-manifest", "torch": torch.__version__, "dtype": "float64",
                "minMargin": MIN_MARGIN, "fixtures": entries}
    with open(os.path.join(args.dir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"{len(entries)} fixtures in {args.dir} ({time.time() - t0:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
