"""Checkpoints: round trip, and refusal of corrupted or mismatched files, naming the tensor or field."""
import json
import os
import struct
import tempfile
import unittest

import torch

from memmamba_ref import LM, preset, safetensors_io
from memmamba_ref import checkpoint as ckpt
from memmamba_ref.tool import model_from_checkpoint


def write(path, model, **kw):
    named = list(model.named_parameters())
    m = {n: torch.full_like(p, 0.01) for n, p in named}
    v = {n: torch.full_like(p, 0.02) for n, p in named}
    args = dict(step=3, key=(0, 123), data_position=12, config=model.config.to_json(), m=m, v=v, optim_step=3)
    args.update(kw)
    ckpt.save(path, dict(model.state_dict()), **args)


class CheckpointTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.dir = tempfile.mkdtemp()
        self.model = LM(preset("tiny"))
        self.path = os.path.join(self.dir, "ck.safetensors")
        write(self.path, self.model)

    def mutate(self, fn, meta_fn=None):
        tensors, meta = safetensors_io.load(self.path)
        fn(tensors)
        if meta_fn:
            meta_fn(meta)
        out = os.path.join(self.dir, "bad.safetensors")
        safetensors_io.save(out, tensors, meta)
        return out

    def refused(self, path, *needles):
        with self.assertRaises((ckpt.CheckpointError, safetensors_io.SafetensorsError)) as cm:
            model_from_checkpoint(path)
        for n in needles:
            self.assertIn(n, str(cm.exception))
        return str(cm.exception)

    def test_round_trip(self):
        ck = ckpt.load(self.path)
        self.assertEqual((ck.step, ck.key, ck.data_position, ck.optim_step, ck.weight_dtype), (3, (0, 123), 12, 3, "F32"))
        m2 = model_from_checkpoint(self.path)
        for (n, a), (_, b) in zip(self.model.state_dict().items(), m2.state_dict().items()):
            self.assertTrue(torch.equal(a, b), n)
        self.assertEqual(sorted(ck.m), sorted(self.model.state_dict()))
        self.assertFalse(any(f.startswith("ck.safetensors.tmp") for f in os.listdir(self.dir)))

    def test_missing_tensor(self):
        def f(t):
            for k in ("", "optim.m.", "optim.v."):
                t.pop(k + "layers.1.mamba.outProj.w")
        self.refused(self.mutate(f), '"layers.1.mamba.outProj.w"', "missing")
        # only the weight gone: its moments are orphans, named too
        self.refused(self.mutate(lambda t: t.pop("layers.1.mamba.outProj.w")), '"optim.m.layers.1.mamba.outProj.w" has no weight')

    def test_wrong_shape(self):
        def f(t):
            t["layers.0.mamba.A_log"] = torch.zeros(3, 3)
            t["optim.m.layers.0.mamba.A_log"] = torch.zeros(3, 3)
            t["optim.v.layers.0.mamba.A_log"] = torch.zeros(3, 3)
        self.refused(self.mutate(f), '"layers.0.mamba.A_log"', "[3, 3]")

    def test_moment_of_another_shape(self):
        self.refused(self.mutate(lambda t: t.__setitem__("optim.v.embed", torch.zeros(2))), '"optim.v.embed"')

    def test_missing_moment(self):
        self.refused(self.mutate(lambda t: t.pop("optim.m.norm.weight")), '"optim.m.norm.weight"', "missing")

    def test_unexpected_tensor(self):
        self.refused(self.mutate(lambda t: t.__setitem__("layers.9.extra", torch.zeros(2))), '"layers.9.extra"', "not a parameter")

    def test_another_config(self):
        def meta(md):
            c = json.loads(md["config"])
            c["memory"]["poolSize"] = 9
            md["config"] = json.dumps(c)
        bad = self.mutate(lambda t: None, meta)
        with self.assertRaises(ckpt.CheckpointError) as cm:
            ckpt.check_config(ckpt.load(bad), self.model.config)
        self.assertIn("memory.poolSize: 9 in the checkpoint, 8 now", str(cm.exception))

    def test_bad_metadata(self):
        bad = self.mutate(lambda t: None, lambda md: md.__setitem__("format_version", "2"))
        with self.assertRaises(ckpt.CheckpointError) as cm:
            ckpt.load(bad)
        self.assertIn('metadata "format_version"', str(cm.exception))

    def test_truncated_and_corrupted(self):
        with open(self.path, "rb") as f:
            raw = f.read()
        cut = os.path.join(self.dir, "cut.safetensors")
        with open(cut, "wb") as f:
            f.write(raw[: len(raw) - 100])
        msg = self.refused(cut)
        self.assertIn("cut.safetensors", msg)
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        header["embed"]["data_offsets"][1] += 4  # one tensor's bytes no longer fit its shape
        js = json.dumps(header).encode()
        js += b" " * (-len(js) % 8)
        bad = os.path.join(self.dir, "corrupt.safetensors")
        with open(bad, "wb") as f:
            f.write(struct.pack("<Q", len(js)) + js + raw[8 + n:])
        self.refused(bad, "'embed'")


if __name__ == "__main__":
    unittest.main()
