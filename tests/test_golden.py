"""Behaviour pinned across refactors: fingerprints and short runs match tests/data/golden.json.

A failure here means a change altered what evo computes. If that was the intent,
regenerate with ``python tests/helpers/golden.py`` in the same commit and say why.
"""

from __future__ import annotations

import json

import golden
import pytest

EXPECTED = json.loads(golden.GOLDEN.read_text())


def test_fingerprints_of_builtins_and_1000_random_programs_are_unchanged() -> None:
    got = golden.fingerprints()
    assert got["builtins"] == EXPECTED["fingerprints"]["builtins"]
    assert got["random_first"] == EXPECTED["fingerprints"]["random_first"]
    assert got["random_all"] == EXPECTED["fingerprints"]["random_all"]


@pytest.mark.parametrize("preset", ["quick", "nb201-quick"])
def test_short_run_store_is_unchanged(preset: str) -> None:
    trials = golden.QUICK_TRIALS if preset == "quick" else None
    got = golden.short_run(preset, trials)
    want = EXPECTED["runs"][preset]
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"trial {i + 1} of {preset} differs"
    assert len(got) == len(want)
