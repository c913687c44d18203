"""Batch-1 forward latency of the PyTorch reference port (packages/memmamba/reference) at long
lengths, for packages/bench/src/long-context.ts to compare against (--reference). Eager, float32
(TF32 off, as bench_train.py), under torch.no_grad: the whole sequence in one parallel forward
(the reference's scan materialises [1, L, d_inner, N] per round, so it may run out of memory; that
is reported, not hidden).

    cd packages/memmamba/reference && python ../../bench/gpu/ref_long_context.py --out ref-long.json

Writes {"rows": [{kind, L, seconds, samples, peakMemGiB} or {kind, L, error}], ...} after every
configuration, so a run cut off by a time limit keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def import_torch():
    """torch, imported after the arguments are parsed (so --help works without it), or one line and exit 1."""
    try:
        import torch
    except ImportError as e:
        sys.exit(f"ref_long_context.py: PyTorch is needed ({e}); on the GPU machine it is installed for /usr/bin/python3")
    return torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="mamba,memmamba")
    p.add_argument("--lengths", default="61440,262144")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--cap-s", type=float, default=60.0, help="skip the remaining runs of a configuration after this many seconds")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda where available)")
    a = p.parse_args(argv)
    torch = import_torch()
    sys.path.insert(0, os.getcwd())  # run from packages/memmamba/reference: memmamba_ref importable
    from memmamba_ref.config import preset
    from memmamba_ref.model import LM

    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    rows = []
    meta = {"torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "mode": "eager, no_grad, float32"}

    def save():
        with open(a.out, "w") as f:
            json.dump({"benchmark": "ref-long-context", **meta, "rows": rows}, f, indent=1)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for kind in a.kinds.split(","):
        torch.manual_seed(0)
        model = LM(preset("small", {"kind": kind})).to(dev).eval()
        for L in [int(s) for s in a.lengths.split(",")]:
            print(f"ref_long_context: {kind} L={L} …", file=sys.stderr, flush=True)
            x = torch.randint(0, 256, (1, L), device=dev)
            try:
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                samples = []
                with torch.no_grad():
                    t_start = time.perf_counter()
                    for i in range(a.runs + 1):  # the first run warms up (allocator, kernels)
                        sync()
                        t = time.perf_counter()
                        y = model(x)
                        sync()
                        if i > 0:
                            samples.append(time.perf_counter() - t)
                        del y
                        if time.perf_counter() - t_start > a.cap_s and (samples or i > 0):
                            break
                if not samples:  # one (warm-up) run only: report it, marked
                    samples = [time.perf_counter() - t]
                samples.sort()
                rows.append({"kind": kind, "L": L, "seconds": samples[len(samples) // 2], "samples": samples,
                             "peakMemGiB": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None})
            except Exception as e:  # noqa: BLE001 — out of memory above all: report it
                rows.append({"kind": kind, "L": L, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            finally:
                del x
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            save()
        del model
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
