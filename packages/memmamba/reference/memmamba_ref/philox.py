"""Philox4x32-10 keys and the host draws the data pipeline uses, bit for bit as the TypeScript side.

A port of ``packages/tensor/src/random/philox.ts`` (the block function, ``keyFromSeed``,
``foldIn``, ``randomBits``), ``random.ts`` (``randintArray``, with its rejection rule) and
``packages/memmamba/src/data/rng.ts`` (``HostRng.below``, ``keyAt``), in exact integer
arithmetic. Only what the window sampler needs; the float draws (normals, initialisation) are not
ported, so a fresh PyTorch run does not start from the same weights as a fresh TS run with the
same seed (it samples the same data windows).

    key = key_from_seed(123)            # (0, 123), as random.key(123)
    k = fold_in(key, 1)                 # random.foldIn
    HostRng(k).below(1000)              # the same integer as new HostRng(k).below(1000)
"""
from __future__ import annotations

from typing import List, Tuple

Key = Tuple[int, int]

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
MASK = 0xFFFFFFFF
TWO_32 = 1 << 32
TWO_31 = 1 << 31

TAG_BITS, TAG_NORMAL, TAG_TRUNC, TAG_SPLIT, TAG_FOLD = 0, 1, 2, 3, 4
RANDINT_RETRY = 0x72696E74  # "rint"


def philox4x32(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> Tuple[int, int, int, int]:
    """One Philox4x32-10 block: the counter (c0..c3) under the key (k0, k1) → 4 uint32 words."""
    for rnd in range(10):
        if rnd > 0:
            k0 = (k0 + W0) & MASK
            k1 = (k1 + W1) & MASK
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> 32, p0 & MASK
        hi1, lo1 = p1 >> 32, p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def _check_key(key: Key) -> None:
    if len(key) != 2 or not all(isinstance(k, int) and 0 <= k < TWO_32 for k in key):
        raise TypeError(f"philox: a key is two uint32 words, got {list(key)}")


def _block(key: Key, i: int, c2: int, tag: int) -> Tuple[int, int, int, int]:
    return philox4x32(i & MASK, i // TWO_32, c2, tag, key[0], key[1])


def key_from_seed(seed: int) -> Key:
    """random.key(seed): (floor(seed / 2^32), seed mod 2^32), seed in [0, 2^53)."""
    if not (isinstance(seed, int) and 0 <= seed < (1 << 53)):
        raise ValueError(f"philox: seed must be an integer in [0, 2^53), got {seed}")
    return (seed // TWO_32, seed & MASK)


def fold_in(key: Key, data: int) -> Key:
    """random.foldIn: words 0 and 1 of block (data mod 2^32, floor(data / 2^32), 0, 4)."""
    _check_key(key)
    if not (isinstance(data, int) and 0 <= data < (1 << 53)):
        raise ValueError(f"philox: data must be an integer in [0, 2^53), got {data}")
    b = _block(key, data, 0, TAG_FOLD)
    return (b[0], b[1])


def split_key(key: Key, n: int = 2) -> List[Key]:
    """random.split: child c = words 0 and 1 of block (c, 0, 0, 3)."""
    _check_key(key)
    return [tuple(_block(key, c, 0, TAG_SPLIT)[:2]) for c in range(n)]  # type: ignore[misc]


def key_at(key: Key, *path: int) -> Key:
    """data/rng.ts keyAt: fold_in applied along the path."""
    for p in path:
        key = fold_in(key, p)
    return key


def word_at(key: Key, i: int) -> int:
    """Word i of randomBits(key, ·): lane i mod 4 of block (floor(i / 4), 0, 0, 0)."""
    return _block(key, i // 4, 0, TAG_BITS)[i % 4]


def random_bits(key: Key, n: int) -> List[int]:
    _check_key(key)
    out: List[int] = []
    for b in range((n + 3) // 4):
        out.extend(_block(key, b, 0, TAG_BITS))
    return out[:n]


def randint_array(key: Key, n: int, lo: int, hi: int) -> List[int]:
    """random.randintArray: integers in [lo, hi), exactly unbiased, with the TS rejection rule."""
    if not (-TWO_31 <= lo < hi <= TWO_31):
        raise ValueError(f"randint: need integers -2^31 <= lo < hi <= 2^31, got [{lo}, {hi})")
    rng = hi - lo
    limit = TWO_32 - (TWO_32 % rng)
    bits = random_bits(key, n)
    retry_base = None
    out = []
    for i, w in enumerate(bits):
        r = 1
        while w >= limit:
            if r > 1000:
                raise RuntimeError("randint: too many rejections")
            if retry_base is None:
                retry_base = fold_in(key, RANDINT_RETRY)
            w = word_at(fold_in(retry_base, r), i)
            r += 1
        out.append(lo + w % rng)
    return out


class HostRng:
    """data/rng.ts HostRng: draw i uses the key fold_in(key, i)."""

    def __init__(self, key: Key):
        _check_key(key)
        self.key = key
        self.draws = 0

    def _next(self) -> Key:
        k = fold_in(self.key, self.draws)
        self.draws += 1
        return k

    def below(self, n: int) -> int:
        """A uniform integer in [0, n), n a positive integer <= 2^53."""
        if not (isinstance(n, int) and 1 <= n <= (1 << 53)):
            raise ValueError(f"HostRng.below: n must be a positive safe integer, got {n}")
        if n <= TWO_31:
            return randint_array(self._next(), 1, 0, n)[0]
        hi = -(-n // TWO_31)
        while True:
            a, b = randint_array(self._next(), 2, 0, TWO_31)
            v = (a % hi) * TWO_31 + b
            if a < hi * (TWO_31 // hi) and v < n:
                return v
