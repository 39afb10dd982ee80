"""Rewards that trade accuracy against a cost (latency in ms, or MACs).

With ``Q`` the accuracy, ``C`` the cost and ``T`` the target cost:

==================  ==========================================================  ===================
name                reward                                                      source
==================  ==========================================================  ===================
``accuracy``        ``Q`` (the cost is ignored; no target needed)
``mnasnet_soft``    ``Q * (C/T)**w``, ``w = alpha`` if ``C <= T`` else ``beta``    MnasNet, soft
                    (``alpha = beta = -0.07``)
``mnasnet_hard``    ``Q`` if ``C <= T`` else ``Q * (C/T)**-1``                     MnasNet, hard
``mnas``            ``Q * (C/T)**beta`` (``beta = -0.07``)                           TuNAS
``mnas_hard``       ``Q * min((C/T)**beta, 1)`` (``beta = -0.07``)                   TuNAS
``abs``             ``Q + beta * |C/T - 1|`` (``beta = -0.1``)                       TuNAS
==================  ==========================================================  ===================

Accuracies are fractions in [0, 1] (the TuNAS ``abs`` penalty is on that scale).

**On-chip bonus** (EfficientNet-EdgeTPU rewards models whose parameters fit in the
accelerator's on-chip memory): with ``bonus = b > 0``, a model that fits gets
``reward * (1 + b)`` (``bonus_mode = "multiply"``, the default) or ``reward + b``
(``bonus_mode = "add"``); a model that does not fit is unchanged.

``make_reward("mnasnet_soft", 75.0)`` builds one from a config; bad names or
values raise :class:`~evo.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from evo.errors import ConfigError
from graphs.core.errors import did_you_mean

# name -> (parameters it takes, with their defaults)
REWARDS: dict[str, dict[str, float]] = {
    "accuracy": {},
    "mnasnet_soft": {"alpha": -0.07, "beta": -0.07},
    "mnasnet_hard": {},
    "mnas": {"beta": -0.07},
    "mnas_hard": {"beta": -0.07},
    "abs": {"beta": -0.1},
}
BONUS_MODES = ("multiply", "add")


@dataclass(frozen=True)
class Reward:
    """A reward function ``reward(accuracy, cost, fits_on_chip=None)``.

    Build one with :func:`make_reward`, which checks the values. Arrays work too:
    every argument may be a numpy array (element-wise rewards).
    """

    name: str
    target: float | None = None
    alpha: float = -0.07
    beta: float = -0.07
    bonus: float = 0.0
    bonus_mode: str = "multiply"

    @property
    def uses_cost(self) -> bool:
        return self.name != "accuracy"

    def __call__(self, accuracy: Any, cost: Any = None, fits_on_chip: Any = None) -> Any:
        """The reward of ``accuracy`` (a fraction) at ``cost`` (same unit as the target).

        Raises:
            ValueError: a cost that is not a positive number, or a bonus without
                ``fits_on_chip``.
        """
        q = np.asarray(accuracy, dtype=np.float64)
        if self.uses_cost:
            if cost is None:
                raise ValueError(f"reward {self.name!r} needs the model's cost")
            c = np.asarray(cost, dtype=np.float64)
            if not np.all(c > 0):
                raise ValueError(f"reward {self.name!r}: cost {cost!r} must be positive")
            ratio = c / self.target
        if self.name == "accuracy":
            r = q
        elif self.name == "mnasnet_soft":
            r = q * ratio ** np.where(ratio <= 1.0, self.alpha, self.beta)
        elif self.name == "mnasnet_hard":
            r = np.where(ratio <= 1.0, q, q / ratio)
        elif self.name == "mnas":
            r = q * ratio**self.beta
        elif self.name == "mnas_hard":
            r = q * np.minimum(ratio**self.beta, 1.0)
        else:  # abs
            r = q + self.beta * np.abs(ratio - 1.0)
        if self.bonus:
            if fits_on_chip is None:
                raise ValueError(f"reward {self.name!r} has an on-chip bonus but no "
                                 "fits_on_chip was given (it needs a hardware model)")
            fits = np.asarray(fits_on_chip, dtype=bool)
            r = np.where(fits, r * (1.0 + self.bonus) if self.bonus_mode == "multiply"
                         else r + self.bonus, r)
        return float(r) if np.ndim(r) == 0 else r

    def formula(self) -> str:
        """The reward as a readable formula with its values, e.g. for run summaries."""
        t = f"{self.target:g}" if self.target is not None else "T"
        text = {
            "accuracy": "Q",
            "mnasnet_soft": f"Q*(C/{t})^({self.alpha:g} if C<={t} else {self.beta:g})",
            "mnasnet_hard": f"Q*(C/{t})^(0 if C<={t} else -1)",
            "mnas": f"Q*(C/{t})^{self.beta:g}",
            "mnas_hard": f"Q*min((C/{t})^{self.beta:g}, 1)",
            "abs": f"Q{self.beta:+g}*|C/{t}-1|",
        }[self.name]
        if self.bonus:
            text = (f"({text})*{1 + self.bonus:g} if on chip" if self.bonus_mode == "multiply"
                    else f"{text} + {self.bonus:g} if on chip")
        return text


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"reward.{name} = {value!r}: must be a finite number")
    return float(value)


def make_reward(name: str, target: float | None = None, **params: Any) -> Reward:
    """The reward ``name`` with target cost ``target`` and its parameters.

    Args:
        name: one of :data:`REWARDS`.
        target: the target cost T (ms for latency, MACs for a MAC cost); every
            reward but ``accuracy`` needs it. ``target_ms=`` is accepted as well.
        params: ``alpha``/``beta`` where the reward has them (both must be <= 0:
            a positive exponent would reward slower models), ``bonus`` (>= 0) and
            ``bonus_mode`` (``"multiply"`` or ``"add"``).

    Raises:
        ConfigError: unknown name or parameter, missing target, bad value.
    """
    if name not in REWARDS:
        hint = did_you_mean(str(name), REWARDS, 1)
        raise ConfigError(f"unknown reward {name!r}{hint} (rewards: {', '.join(REWARDS)})")
    if "target_ms" in params:
        if target is not None:
            raise ConfigError("reward: give the target once (target or target_ms)")
        target = params.pop("target_ms")
    allowed = {**REWARDS[name], "bonus": 0.0, "bonus_mode": "multiply"}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"reward {name!r} has no parameter(s) {', '.join(unknown)} "
                          f"(it takes: {', '.join(allowed)})")
    values = {**allowed, **params}
    for key in REWARDS[name]:
        values[key] = _number(key, values[key])
        if values[key] > 0:
            raise ConfigError(f"reward.{key} = {values[key]:g}: must be <= 0 (a positive "
                              "exponent or weight would reward a higher cost)")
    values["bonus"] = _number("bonus", values["bonus"])
    if values["bonus"] < 0:
        raise ConfigError(f"reward.bonus = {values['bonus']:g}: must be >= 0")
    if values["bonus_mode"] not in BONUS_MODES:
        raise ConfigError(f"reward.bonus_mode = {values['bonus_mode']!r}: must be one of "
                          f"{', '.join(BONUS_MODES)}")
    if name == "accuracy":
        target = None if target is None else _positive_target(target)
    elif target is None:
        raise ConfigError(f"reward {name!r} needs a target cost (e.g. target = 75.0 ms)")
    else:
        target = _positive_target(target)
    return Reward(name, target, **values)


def _positive_target(target: Any) -> float:
    value = _number("target", target)
    if value <= 0:
        raise ConfigError(f"reward.target = {value:g}: must be positive")
    return value
