"""evo/results.py: one status vocabulary and the rules every part of a run applies."""

from __future__ import annotations

import json
import math

import pytest

from evo.results import CACHEABLE, SCORED, Result, Status, TrialStatus, cacheable, scored
from evo.search.store import STATUSES
from evo.workers.base import normalize_result


def test_statuses_are_the_strings_stores_hold():
    assert [s.value for s in Status] == ["ok", "hurdle", "nan", "timeout", "error"]
    assert STATUSES == tuple(s.value for s in TrialStatus)
    assert Status.OK == "ok" and json.dumps({"s": Status.HURDLE}) == '{"s": "hurdle"}'


@pytest.mark.parametrize("status", list(Status))
def test_which_fitness_counts_and_which_result_is_cached(status):
    result = Result.coerce({"status": status, "fitness": 0.7})
    assert result.scored == (status in ("ok", "hurdle")) == scored(status)
    assert result.cacheable == (status in ("ok", "hurdle", "nan")) == cacheable(status)
    assert result.counted_fitness == (0.7 if result.scored else 0.0)
    assert set(SCORED) <= set(CACHEABLE)


def test_a_number_is_an_ok_fitness_and_a_dict_keeps_its_fields_in_order():
    assert Result.coerce(3).to_dict() == {"status": "ok", "fitness": 3.0}
    data = {"fitness": 0.5, "scores": {"CartPole": 0.5}, "seconds": 1.0}
    result = Result.coerce(data)
    assert list(result) == ["fitness", "scores", "seconds", "status"]
    assert result["scores"] == {"CartPole": 0.5} and result == {**data, "status": "ok"}
    assert Result.coerce(result) == result  # idempotent


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), "0.5", True])
def test_a_scored_result_without_a_finite_fitness_becomes_an_error(bad):
    result = Result.coerce({"status": "ok", "fitness": bad})
    assert result.status == Status.ERROR and result.fitness == 0.0
    assert "a fitness must be a finite number" in result.reason
    assert result["evaluator_status"] == "ok"


def test_an_unscored_result_keeps_a_finite_fitness_only():
    assert Result.coerce({"status": "nan", "fitness": float("nan")}).fitness == 0.0
    assert Result.coerce({"status": "timeout", "fitness": 0.25}).fitness == 0.25


def test_anything_else_is_an_error_that_says_what_to_return():
    result = Result.coerce(object())
    assert result.status == "error" and "return a fitness" in result.reason
    assert math.isclose(result.counted_fitness, 0.0)


def test_workers_send_the_same_rules_as_plain_dicts():
    assert normalize_result(0.75) == {"status": "ok", "fitness": 0.75}
    assert type(normalize_result({"fitness": 1})) is dict
