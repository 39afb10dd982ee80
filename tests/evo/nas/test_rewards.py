"""Reward formulas on hand-computed values (Q = 0.75, T = 75 ms)."""

from __future__ import annotations

import numpy as np
import pytest

from evo.errors import ConfigError
from evo.nas.rewards import REWARDS, make_reward

# 0.75 * (80/75)**-0.07 = 0.75 * exp(-0.07 * 0.0645385) = 0.75 * 0.9954925
OVER = 0.7466193697
# 0.75 * 0.8**-0.07 = 0.75 * exp(0.07 * 0.2231436) = 0.75 * 1.0157427
UNDER = 0.7618070094


def test_mnasnet_soft() -> None:
    r = make_reward("mnasnet_soft", 75.0)
    assert r(0.75, 80.0) == pytest.approx(OVER, abs=1e-9)
    assert r(0.75, 60.0) == pytest.approx(UNDER, abs=1e-9)
    assert r(0.75, 75.0) == pytest.approx(0.75)
    # separate exponents: 0.75 * (80/75)**-0.2 and 0.75 * 0.8**-0.03
    r = make_reward("mnasnet_soft", 75.0, alpha=-0.03, beta=-0.2)
    assert r(0.75, 80.0) == pytest.approx(0.7403814322, abs=1e-9)
    assert r(0.75, 60.0) == pytest.approx(0.7550375726, abs=1e-9)


def test_mnasnet_hard() -> None:
    r = make_reward("mnasnet_hard", 75.0)
    assert r(0.75, 60.0) == 0.75
    assert r(0.75, 75.0) == 0.75
    assert r(0.75, 150.0) == pytest.approx(0.375)  # 0.75 * (150/75)**-1


def test_tunas_rewards() -> None:
    mnas = make_reward("mnas", 75.0)
    assert mnas(0.75, 80.0) == pytest.approx(OVER, abs=1e-9)
    assert mnas(0.75, 60.0) == pytest.approx(UNDER, abs=1e-9)
    hard = make_reward("mnas_hard", 75.0)
    assert hard(0.75, 80.0) == pytest.approx(OVER, abs=1e-9)
    assert hard(0.75, 60.0) == 0.75  # min(1.0157, 1) = 1
    absolute = make_reward("abs", 75.0)
    assert absolute(0.75, 90.0) == pytest.approx(0.73)  # 0.75 - 0.1 * |1.2 - 1|
    assert absolute(0.75, 60.0) == pytest.approx(0.73)  # 0.75 - 0.1 * |0.8 - 1|
    assert absolute(0.75, 75.0) == 0.75
    assert make_reward("abs", 75.0, beta=-0.5)(0.75, 90.0) == pytest.approx(0.65)


def test_accuracy_reward_ignores_cost() -> None:
    r = make_reward("accuracy")
    assert r(0.9) == 0.9 and r(0.9, 1e9) == 0.9


def test_on_chip_bonus() -> None:
    mult = make_reward("mnasnet_hard", 75.0, bonus=0.1)
    assert mult(0.75, 60.0, fits_on_chip=True) == pytest.approx(0.825)
    assert mult(0.75, 60.0, fits_on_chip=False) == 0.75
    add = make_reward("abs", 75.0, bonus=0.02, bonus_mode="add")
    assert add(0.75, 90.0, fits_on_chip=True) == pytest.approx(0.75)
    assert add(0.75, 90.0, fits_on_chip=False) == pytest.approx(0.73)
    with pytest.raises(ValueError, match="fits_on_chip"):
        mult(0.75, 60.0)
    assert "on chip" in mult.formula() and "on chip" in add.formula()


def test_arrays_match_scalars() -> None:
    acc = np.array([0.5, 0.75, 0.9])
    cost = np.array([30.0, 80.0, 200.0])
    fits = np.array([True, False, True])
    for name in REWARDS:
        r = make_reward(name, None if name == "accuracy" else 75.0, bonus=0.05)
        out = r(acc, cost, fits)
        assert out.shape == (3,)
        assert out.tolist() == pytest.approx([r(a, c, f) for a, c, f in zip(acc, cost, fits)])


def test_target_ms_alias() -> None:
    assert make_reward("mnas", target_ms=75.0).target == 75.0


@pytest.mark.parametrize("args, params, words", [
    (("mnasnet",), {}, "did you mean 'mnasnet_soft'"),
    (("mnas",), {}, "needs a target"),
    (("mnas", 0.0), {}, "must be positive"),
    (("mnas", float("nan")), {}, "finite"),
    (("mnas", 75.0), {"alpha": -0.1}, "no parameter"),
    (("abs", 75.0), {"beta": 0.1}, "must be <= 0"),
    (("abs", 75.0), {"beta": "x"}, "finite number"),
    (("abs", 75.0), {"bonus": -1}, ">= 0"),
    (("abs", 75.0), {"bonus_mode": "times"}, "bonus_mode"),
    (("abs", 75.0), {"target_ms": 10.0}, "once"),
])
def test_bad_settings(args: tuple, params: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        make_reward(*args, **params)


def test_bad_cost() -> None:
    with pytest.raises(ValueError, match="positive"):
        make_reward("mnas", 75.0)(0.7, 0.0)
    with pytest.raises(ValueError, match="needs the model's cost"):
        make_reward("mnas", 75.0)(0.7)
