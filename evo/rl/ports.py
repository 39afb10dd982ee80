"""Compiled ports of registered environments: gymnax's JAX classic control.

A port is used only where it is proven equivalent to the gymnasium environment the
registry builds (``tests/evo/rl/test_ports.py`` steps both from the same state with
the same actions and compares observations, rewards, termination and truncation).
Anything else, LunarLander and users' own environments included, is stepped on the
host by the same trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from envs import EnvSpec


@dataclass(frozen=True, eq=False)
class Port:
    """A gymnax environment standing in for one registered gymnasium id.

    Compared and hashed by identity (one object per id, see :func:`port_for`): the
    compiled trainer takes it as a static argument, and some gymnax parameters hold
    arrays, which cannot be hashed."""

    env: Any
    params: Any
    max_steps: int


def _cartpole(max_steps: int) -> Port:
    from gymnax.environments.classic_control import cartpole

    env = cartpole.CartPole()
    return Port(env, env.default_params.replace(max_steps_in_episode=max_steps), max_steps)


def _acrobot() -> Port:
    from gymnax.environments.classic_control import acrobot

    env = acrobot.Acrobot()
    return Port(env, env.default_params, 500)


def _mountain_car() -> Port:
    from gymnax.environments.classic_control import mountain_car

    env = mountain_car.MountainCar()
    return Port(env, env.default_params, 200)


PORTS = {
    "CartPole-v0": lambda: _cartpole(200),
    "CartPole-v1": lambda: _cartpole(500),
    "Acrobot-v1": _acrobot,
    "MountainCar-v0": _mountain_car,
}


def port_for(spec: EnvSpec) -> Port | None:
    """The compiled port of ``spec``, or None when it must be stepped on the host."""
    if spec.entry_point is not None or spec.wrappers or spec.make_kwargs:
        return None
    return _port(spec.gym_id) if spec.gym_id in PORTS else None


@cache
def _port(gym_id: str) -> Port:
    # One object per id: compiled functions are cached by the identity of the port.
    return PORTS[gym_id]()
