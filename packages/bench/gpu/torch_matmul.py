"""cuBLAS fp32 matmul (TF32 off) and device-copy bandwidth, as the baselines of our WebGPU kernels.

Run on the GPU machine beside the WebGPU benchmark, in the same command, so both see the same card:
    python3 packages/bench/gpu/torch_matmul.py --sizes 1024,2048,4096 > $OUT/torch.json
Prints one JSON object: per size the median TFLOP/s of 9 timed runs (CUDA events), and the
bandwidth of a large device-to-device copy (GB/s, bytes read + written).
"""
import argparse
import json
import statistics
import sys

torch = None  # imported by main after the arguments are parsed (so --help works without it)


def time_ms(fn, runs=9, inner=10):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(runs):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        torch.cuda.synchronize()
        out.append(start.elapsed_time(end) / inner)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024,2048,4096")
    args = ap.parse_args()
    global torch
    try:
        import torch
    except ImportError as e:
        sys.exit(f"torch_matmul.py: PyTorch is needed ({e}); on the GPU machine it is installed for /usr/bin/python3")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "matmul": [], "copy": None}
    for n in [int(s) for s in args.sizes.split(",")]:
        a = torch.randn(n, n, device=dev)
        b = torch.randn(n, n, device=dev)
        c = torch.empty(n, n, device=dev)
        ms = time_ms(lambda: torch.matmul(a, b, out=c))
        res["matmul"].append({"n": n, "ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12})
    x = torch.empty(64 * 2**20, device=dev)  # 256 MiB
    y = torch.empty_like(x)
    ms = time_ms(lambda: y.copy_(x))
    res["copy"] = {"bytes": 2 * x.numel() * 4, "ms": ms, "GBps": 2 * x.numel() * 4 / (ms * 1e-3) / 1e9}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
