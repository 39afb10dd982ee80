"""Hurdles: the cheap first environment a program must pass."""

from __future__ import annotations

import dataclasses

import pytest

import envs
from envs import DEFAULT_HURDLE, EnvError, Hurdle


def test_the_default_hurdle_is_the_papers_cartpole_at_0_6():
    assert (DEFAULT_HURDLE.env, DEFAULT_HURDLE.threshold) == ("CartPole", 0.6)
    assert DEFAULT_HURDLE == Hurdle()
    assert envs.get(DEFAULT_HURDLE.env).hurdle


def test_reaching_the_threshold_passes():
    hurdle = Hurdle(threshold=0.6)
    assert hurdle.passed(0.6)
    assert hurdle.passed(1.0)
    assert not hurdle.passed(0.5999)
    assert not hurdle.passed(float("nan"))
    assert Hurdle(threshold=0).passed(0.0)


def test_the_env_is_resolved_to_its_short_id():
    assert Hurdle("cartpole-v0") == DEFAULT_HURDLE
    assert Hurdle("minigrid-empty-5x5", 0.5).env == "MiniGrid-Empty-5x5"


def test_an_unknown_env_is_rejected():
    with pytest.raises(EnvError, match="did you mean 'CartPole'"):
        Hurdle("CartPol")


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.6", True, None])
def test_a_threshold_outside_0_1_is_rejected(threshold):
    with pytest.raises(EnvError, match=r"\[0, 1\]") as info:
        Hurdle(threshold=threshold)
    assert info.value.where == "threshold"


def test_hurdles_are_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_HURDLE.threshold = 0.1
    assert hash(Hurdle()) == hash(DEFAULT_HURDLE)
