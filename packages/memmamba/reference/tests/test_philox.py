"""The philox port against values the TS code gives (random.ts, data/rng.ts); the window sampler
against the TS WindowSampler is checked in packages/cli/test/distributed.test.ts."""
import unittest

from memmamba_ref.philox import HostRng, fold_in, key_at, key_from_seed, randint_array


class PhiloxTest(unittest.TestCase):
    def test_values_equal_the_ts_ones(self):
        f = fold_in(key_from_seed(123), 1)
        self.assertEqual(f, (3548136801, 4288362894))
        self.assertEqual(key_at(f, 7, 3), (3054082288, 2467682631))
        self.assertEqual(HostRng(f).below(1000), 352)
        self.assertEqual(HostRng(key_at(f, 5)).below(2 ** 40), 602543680383)  # the two-word path
        self.assertEqual(HostRng(key_at(f, 9)).below(3), 2)
        self.assertEqual(randint_array(key_from_seed(5), 6, 0, 2 ** 31),
                         [777506655, 1739639539, 1320104952, 239665797, 683386884, 1315514770])

    def test_key_checks(self):
        with self.assertRaises(TypeError):
            fold_in((2 ** 32, 0), 1)
        with self.assertRaises(ValueError):
            HostRng((0, 0)).below(0)


if __name__ == "__main__":
    unittest.main()
