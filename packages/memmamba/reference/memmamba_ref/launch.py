"""A minimal one-machine stand-in for ``torchrun --nproc_per_node N -m MODULE ARGS``.

    python -m memmamba_ref.launch --nproc 2 memmamba_ref.train --data books/ ...

Starts N copies of ``python -m MODULE ARGS`` with the torchrun environment (RANK, LOCAL_RANK,
WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and waits for them; if one fails, the
others are stopped and its exit status is returned. Why: Debian's torch 1.13 ``torchrun`` fails at
start-up under Python 3.11 (``AttributeError: 'NoneType' object has no attribute 'get'`` in
``elastic/multiprocessing/api.py``: its Std enum lookup returns None), so the CPU tests use this;
on PyTorch 2.x use torchrun (and for several machines, always).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m memmamba_ref.launch")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("module")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    port = a.port or free_port()
    procs = []
    for rank in range(a.nproc):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(a.nproc), LOCAL_WORLD_SIZE=str(a.nproc),
                   GROUP_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        procs.append(subprocess.Popen([sys.executable, "-m", a.module, *a.args], env=env))
    rc = 0
    try:
        while procs:
            for pr in list(procs):
                r = pr.poll()
                if r is None:
                    continue
                procs.remove(pr)
                if r != 0 and rc == 0:
                    rc = r
                    for other in procs:
                        other.terminate()
            time.sleep(0.05)
    finally:
        for pr in procs:
            pr.kill()
    return rc


if __name__ == "__main__":
    sys.exit(main())
