"""bench/fidelity.py: Kendall's tau-b as the latency benchmarks use it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fidelity import kendall_tau


def test_kendall_tau_b_matches_the_definition():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, 80)
    y = x + rng.integers(0, 4, 80)
    num = na = nb = 0
    for i in range(80):
        for j in range(i + 1, 80):
            num += np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            na += x[i] != x[j]
            nb += y[i] != y[j]
    assert kendall_tau(x, y, block=7) == pytest.approx(num / math.sqrt(na * nb))
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
