"""Architecture searches through the same configs, run store, status and export as
loss-program searches (NB201 table + simulated Edge TPU latency; seconds each)."""

from __future__ import annotations

import json
import re

import pytest

from evo.app import runner
from evo.app.config import load_config, preset
from evo.app.export import export
from evo.errors import ConfigError
from evo.search.store import RunStore
from graphs.arch import nb201
from graphs.core.fileformat import from_dict


def test_nb201_preset_runs_and_exports_reloadable_rows(tmp_path, capsys, monkeypatch):
    config = preset("nb201-quick").replace(**{"run.trials": 60})
    p = runner.run(config, tmp_path / "run.db", workers=1, progress=False)
    assert p.trials == 60 and p.failed == 0
    text = runner.status(tmp_path / "run.db")
    assert "space nb201 (cifar10)" in text and "reward accuracy" in text
    export(tmp_path / "run.db", tmp_path / "out", top=5)
    lines = (tmp_path / "out" / "programs.jsonl").read_text().splitlines()
    assert len(lines) == 5
    card = (tmp_path / "out" / "README.md").read_text()
    assert "top 5 architectures" in card and "NAS-Bench-201" in card
    # the field table says what an architecture row holds, not what a loss row does
    assert "the NB201 arch string" in card and "the loss as a formula" not in card
    row = json.loads(lines[0])
    nb201.parse(row["formula"])  # the leaderboard shows NB201 cells as arch strings
    assert 0.0 < row["scores"]["test_accuracy"] <= 0.9437  # the 200-epoch figure is reported
    # Re-evaluating the exported program with the run's config gives the row's scores.
    evaluator = runner.make_evaluator(load_config(tmp_path / "out" / "config.toml"))
    result = evaluator(from_dict(row["program"]))
    assert result["fitness"] == row["fitness"] and result["scores"] == row["scores"]
    # ... and so does the card's own Python recipe
    [code] = re.findall(r"```python\n(.*?)```", card, re.S)
    monkeypatch.chdir(tmp_path / "out")
    exec(compile(code, "README.md", "exec"), {"__name__": "card"})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith(f"{row['fitness']} ")


def test_equivalent_cells_are_duplicates_in_the_store(tmp_path):
    config = preset("nb201-quick").replace(**{"run.trials": 120})
    runner.run(config, tmp_path / "run.db", workers=1, progress=False)
    store = RunStore.open(tmp_path / "run.db", readonly=True)
    space = runner.make_space(config)
    for row in store.db.execute("SELECT program, fingerprint, status FROM trials"):
        assert space.fingerprint(from_dict(json.loads(row["program"]))) == row["fingerprint"]
    dups = store.counts()["duplicate"]
    store.close()
    assert dups > 0  # RE on NB201 revisits cells; they reuse the cached score


def test_layernas_run_respects_the_latency_target(tmp_path):
    config = preset("nb201-edgetpu").replace(**{"run.trials": 80})
    runner.run(config, tmp_path / "run.db", workers=1, progress=False)
    store = RunStore.open(tmp_path / "run.db", readonly=True)
    lat = [json.loads(r[0])["scores"]["latency_ms"] for r in store.db.execute(
        "SELECT result FROM trials WHERE status='done'")]
    store.close()
    assert len(lat) > 20 and max(lat) <= 1.0  # LayerNAS proposes only candidates under it


def test_pareto_run(tmp_path):
    config = load_config({
        "run": {"trials": 60}, "space": {"kind": "nb201"},
        "search": {"algorithm": "pareto", "population_size": 10},
        "pareto": {"survival": "nsga2"},
        "evaluator": {"reward": "accuracy", "cost": "latency", "hardware": "edgetpu"},
        "workers": {"workers": 1},
    })
    p = runner.run(config, tmp_path / "run.db", progress=False)
    assert p.trials == 60 and p.failed == 0


@pytest.mark.parametrize("data, message", [
    ({"search": {"algorithm": "layernas"}}, 'set [space] kind = "nb201"'),
    ({"space": {"kind": "nb201"}, "evaluator": {"envs": ["CartPole"]}}, "evaluator.envs"),
    ({"space": {"kind": "nb201"}, "evaluator": {"reward": "mnasnet"}}, "mnasnet"),
    ({"space": {"kind": "nb201"}, "evaluator": {"hardware": "tpu-v9"}}, "tpu-v9"),
    ({"space": {"kind": "mobilenet"}}, "module:function"),
    ({"space": {"kind": "nb201"}, "fec": {"mode": "output"}}, "[fec]"),
    ({"space": {"kind": "nb201"}, "search": {"extra_nodes": 3}}, "search.extra_nodes"),
    ({"space": {"kind": "cells"}}, "space.kind"),
    ({"space": {"kind": "nb201"}, "layernas": {"buckets": 4}}, "[layernas]"),
])
def test_bad_architecture_configs_name_the_key(data, message):
    with pytest.raises(ConfigError) as err:
        load_config(data)
    assert message in str(err.value)
