"""How well a cost model ranks measured costs: Kendall's tau-b (used by the latency
benchmarks and the calibration script)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def kendall_tau(x: Sequence[float], y: Sequence[float], block: int = 512) -> float:
    """Kendall's tau-b between two sequences (ties handled as tau-b does).

    Exact, O(n^2) pairs counted in vectorized blocks (n of a few thousand takes well
    under a second); ``nan`` when either sequence is constant.
    """
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-d sequences of equal length, got shapes "
                         f"{a.shape} and {b.shape}")
    n = len(a)
    concord = 0.0
    pairs_a = pairs_b = 0
    for start in range(0, n, block):
        da = np.sign(a[start:start + block, None] - a[None, :])
        db = np.sign(b[start:start + block, None] - b[None, :])
        # keep only pairs (i, j) with j > i
        idx = np.arange(start, min(start + block, n))[:, None] < np.arange(n)[None, :]
        concord += float((da * db)[idx].sum())
        pairs_a += int(np.count_nonzero(da[idx]))
        pairs_b += int(np.count_nonzero(db[idx]))
    if pairs_a == 0 or pairs_b == 0:
        return float("nan")
    return concord / math.sqrt(pairs_a * pairs_b)
