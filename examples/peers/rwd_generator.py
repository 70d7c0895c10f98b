"""examples/peers/rwd_generator.py — rwd::Generator's integer draws in Python, so that a peer can repeat
the C++ example's shuffles and splits exactly (charrnn_torch.py, words_torch.py)."""
import numpy as np


class RwdGenerator:
    """rwd::Generator's integer(n): MT19937 seeded as std::mt19937(seed), whose 32-bit outputs are
    NumPy's RandomState(seed).randint(0, 2**32, dtype=uint32); integer(n) masks a draw to the bits
    of n - 1 and redraws until it is below n (core/random.cpp). uniform() takes two draws."""

    def __init__(self, seed):
        self.rs = np.random.RandomState(seed)
        self.buf, self.i = [], 0

    def u32(self):
        if self.i == len(self.buf):
            self.buf, self.i = self.rs.randint(0, 2**32, size=4096, dtype=np.uint32).tolist(), 0
        self.i += 1
        return self.buf[self.i - 1]

    def skip(self, n):
        """Draws n values and drops them (what the C++ side spent on other things first)."""
        for _ in range(n):
            self.u32()

    def integer(self, n):
        if n <= 1:
            return 0
        mask = (1 << (n - 1).bit_length()) - 1
        while True:
            v = self.u32() & mask
            if v < n:
                return v

    def shuffle(self, v):
        """Fisher–Yates from the back, as the C++ examples shuffle."""
        for i in range(len(v), 1, -1):
            j = self.integer(i)
            v[i - 1], v[j] = v[j], v[i - 1]
