"""`evo plot`: PNGs of fitness, duplicate rate, the hurdle histogram and the lineage."""

from __future__ import annotations

import random

import pytest

from evo.app.config import load_config
from evo.app.plots import PlotError, default_plot_dir, plot
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.render import formula
from graphs.rl_loss.generation import seeded_program

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(path, n=40):
    """A store of ``n`` trials with made-up results (no training)."""
    store = RunStore.create(path, load_config("[run]\nname = 'fake'").to_dict())
    fec, rng = FEC(), random.Random(0)
    seen: dict[str, tuple[float, int]] = {}
    for _ in range(n):
        program = seeded_program("dqn", 2, rng)
        fp = fec(program)
        if fp in seen:
            store.add_trial(program, fp, formula(program), None, "seed", 0, {},
                            duplicate_of=seen[fp][1], fitness=seen[fp][0])
            continue
        tid = store.add_trial(program, fp, formula(program), None, "seed", 0, {})
        store.start(tid, "local-0")
        roll = rng.random()
        if roll < 0.1:
            result = {"status": "error", "fitness": 0.0, "reason": "boom"}
        elif roll < 0.5:
            result = {"status": "hurdle", "fitness": 0.0, "scores": {"CartPole": 0.1}}
        else:
            f = rng.random()
            result = {"status": "ok", "fitness": f, "scores": {"CartPole": f}}
        store.finish(tid, result, {}, "local-0")
        seen[fp] = (result["fitness"] if result["status"] != "error" else 0.0, tid)
    store.close()
    return path


def test_plot_writes_four_non_empty_pngs_and_the_lineage_dot(tmp_path):
    path = fake_run(tmp_path / "fake.db")
    paths = plot(path, tmp_path / "plots")
    assert [p.name for p in paths] == ["fitness.png", "duplicates.png", "histogram.png",
                                       "lineage.png", "lineage.dot"]
    for p in paths[:-1]:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    assert paths[-1].read_text().startswith('digraph "fake"')


def test_plot_defaults_beside_the_store(tmp_path):
    path = fake_run(tmp_path / "fake.db", n=5)
    paths = plot(path)
    assert paths[0].parent == default_plot_dir(path) == tmp_path / "fake-plots"


def test_plot_of_an_empty_run_is_an_error(tmp_path):
    store = RunStore.create(tmp_path / "empty.db", {"run": {"name": "empty"}})
    store.close()
    with pytest.raises(PlotError, match="no finished trials"):
        plot(tmp_path / "empty.db", tmp_path / "p")
