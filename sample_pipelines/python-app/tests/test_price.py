import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bakeshop import price  # noqa: E402


class PriceTest(unittest.TestCase):
    def test_single(self) -> None:
        self.assertEqual(price("sponge"), 12.5)

    def test_baker_dozen(self) -> None:
        time.sleep(1.5)  # a slow test, so the demo shows two actions running side by side
        self.assertEqual(price("croissant", 12), 24.2)

    def test_negative(self) -> None:
        with self.assertRaises(ValueError):
            price("sponge", -1)


if __name__ == "__main__":
    unittest.main()
