"""Progressive Dynamic Hurdles: budgets, when hurdles are set, who passes, state."""

from __future__ import annotations

import json

import pytest

from evo.errors import ConfigError
from evo.search.progressive import ProgressiveHurdles


def test_budget_scale_is_cumulative():
    h = ProgressiveHurdles(increments=(0.25, 0.25, 0.5), batch=3)
    assert h.levels == 3
    assert [h.budget_scale(level) for level in range(3)] == [0.25, 0.5, 1.0]
    assert h.hurdles == [None, None]  # one hurdle between consecutive levels


def test_no_hurdle_before_the_first_batch():
    h = ProgressiveHurdles(increments=(0.5, 0.5), batch=3)
    population = [(100.0, 0), (200.0, 0)]
    # Even a great child does not train on while no hurdle exists yet.
    assert h.after(0, 1e9, population) is False
    assert h.after(0, 1e9, population) is False
    assert h.hurdles == [None]
    assert h.finished_at == [2, 0]


def test_hurdle_is_set_every_batch_to_the_mean_of_members_at_or_above_the_level():
    h = ProgressiveHurdles(increments=(0.25, 0.25, 0.5), batch=2)
    pop = [(1.0, 0), (3.0, 1), (8.0, 2)]
    assert h.after(0, 0.0, pop) is False
    # The batch-th level-0 result sets h_0 = mean(1, 3, 8) = 4 and is judged by it.
    assert h.after(0, 4.5, pop) is True
    assert h.hurdles[0] == pytest.approx(4.0)
    # Between batches the hurdle stays put even if the population changes.
    pop2 = [(10.0, 0), (10.0, 0)]
    assert h.after(0, 4.5, pop2) is True
    assert h.hurdles[0] == pytest.approx(4.0)
    # The next batch boundary recomputes it from the population of that moment.
    assert h.after(0, 4.5, pop2) is False
    assert h.hurdles[0] == pytest.approx(10.0)
    # Level 1 counts only members that reached level >= 1: mean(3, 8) = 5.5.
    assert h.after(1, 0.0, pop) is False
    assert h.after(1, 5.0, pop) is False
    assert h.hurdles[1] == pytest.approx(5.5)
    assert h.after(1, 5.6, pop) is True
    assert h.finished_at == [4, 3, 0]


def test_after_is_true_only_strictly_above_the_hurdle():
    h = ProgressiveHurdles(increments=(0.5, 0.5), batch=1)
    pop = [(2.0, 0), (4.0, 0)]
    assert h.after(0, 3.0, pop) is False  # equal to the mean: not above
    assert h.after(0, 3.0000001, pop) is True
    assert h.after(0, 2.9, pop) is False


def test_last_level_never_trains_on_and_has_no_hurdle():
    h = ProgressiveHurdles(increments=(0.5, 0.5), batch=1)
    pop = [(0.0, 1)]
    for _ in range(3):
        assert h.after(1, 1e9, pop) is False
    assert h.hurdles == [None]
    assert h.finished_at == [0, 3]


def test_empty_level_keeps_the_previous_hurdle():
    h = ProgressiveHurdles(increments=(0.5, 0.25, 0.25), batch=1)
    assert h.after(1, 5.0, [(1.0, 0)]) is False  # nobody at level >= 1: no hurdle
    assert h.hurdles == [None, None]
    assert h.after(1, 5.0, [(4.0, 1)]) is True
    assert h.after(1, 5.0, [(1.0, 0)]) is True  # still 4.0
    assert h.hurdles[1] == pytest.approx(4.0)


def test_state_round_trip_through_json_continues_identically():
    a = ProgressiveHurdles(increments=(0.25, 0.25, 0.5), batch=3)
    pop = [(float(i), i % 3) for i in range(9)]
    for i in range(7):
        a.after(i % 2, float(i), pop)
    saved = json.loads(json.dumps(a.state()))
    b = ProgressiveHurdles(increments=(0.25, 0.25, 0.5), batch=3)
    b.restore(saved)
    assert b.state() == a.state()
    for i in range(20):
        level, fit = i % 2, (i * 7) % 10 * 0.9
        assert a.after(level, fit, pop) == b.after(level, fit, pop)
    assert b.state() == a.state()


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"increments": ()}, "increments"),
    ({"increments": (0.5, 0.0)}, "increments"),
    ({"increments": (0.5, -0.5)}, "increments"),
    ({"batch": 0}, "batch"),
    ({"batch": 2.5}, "batch"),
])
def test_validation_names_the_setting(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        ProgressiveHurdles(**kwargs)
