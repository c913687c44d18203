"""A 2-process gloo run (DDP on the CPU) against a 1-process run with the same global batch, and
exact resume. Launches with memmamba_ref.launch (Debian's torch 1.13 torchrun fails under
Python 3.11; see launch.py). About 20 s on 2 cores."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def make_data(d):
    rnd = random.Random(1)
    words = "the quick brown fox jumps over a lazy dog and then some more text follows here".split()
    for name, n in (("a.txt", 3000), ("b.txt", 1500), ("c.txt", 900)):
        with open(os.path.join(d, name), "w") as f:
            f.write(" ".join(rnd.choice(words) for _ in range(n)))


def run(args, nproc=1):
    cmd = [sys.executable, "-m", "memmamba_ref.launch", "--nproc", str(nproc), "memmamba_ref.train"] if nproc > 1 else [sys.executable, "-m", "memmamba_ref.train"]
    r = subprocess.run(cmd + args + ["--quiet"], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd + args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")


def losses(out):
    with open(os.path.join(out, "train.jsonl")) as f:
        return [json.loads(l)["loss"] for l in f if l.strip()]


class DistributedTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.data = os.path.join(cls.dir, "data")
        os.mkdir(cls.data)
        make_data(cls.data)
        cls.common = ["--data", cls.data, "--seq-len", "32", "--batch", "2", "--accum", "4", "--eval-every", "0", "--seed", "7"]

    def test_two_processes_equal_one(self):
        one, two = os.path.join(self.dir, "one"), os.path.join(self.dir, "two")
        run(self.common + ["--steps", "4", "--out", one])
        run(self.common + ["--steps", "4", "--out", two, "--backend", "gloo", "--device", "cpu"], nproc=2)
        a, b = losses(one), losses(two)
        self.assertEqual(len(a), 4)
        for x, y in zip(a, b):
            self.assertLess(abs(x - y), 1e-5, (a, b))
        self.assertLess(a[-1], a[0])

    def test_resume_continues_exactly(self):
        full, part = os.path.join(self.dir, "full"), os.path.join(self.dir, "part")
        run(self.common + ["--steps", "4", "--out", full, "--dtype", "float64"])
        run(self.common + ["--steps", "2", "--out", part, "--dtype", "float64"])
        run(self.common + ["--steps", "4", "--out", part, "--resume", "--dtype", "float64"], nproc=2)
        a, b = losses(full), losses(part)
        self.assertEqual(len(b), 4)
        for x, y in zip(a, b):
            self.assertLess(abs(x - y), 1e-5, (a, b))


if __name__ == "__main__":
    unittest.main()
