"""Weights-like test data."""

from __future__ import annotations

import numpy as np


def floats(n: int, dtype: str = "float32", seed: int = 0) -> bytes:
    """Weights-like data: N(0, 0.02) values, whose exponent bytes compress and mantissas do not."""
    v = np.random.default_rng(seed).normal(0, 0.02, n).astype(np.float32)
    if dtype == "bfloat16":  # the top half of each float32
        return v.view(np.uint32).__rshift__(16).astype(np.uint16).tobytes()
    return v.astype(dtype).tobytes()
