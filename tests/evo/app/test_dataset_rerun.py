"""Every row of an exported dataset re-runs with the command its card gives and
reproduces its fitness (a sample, with small budgets, through the population
trainer that the discovery runs use)."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from evo.app.cli import main

pytest.importorskip("jax", reason="the discovery runs' trainer (JAX) is not installed")

CONFIG = """
[run]
name = "rerun"
trials = 12
seed = 4

[search]
population_size = 4
tournament_size = 2
seed_program = "dqn"
extra_nodes = 3

[evaluator]
envs = ["CartPole"]
seeds = [0, 1]
trainer = "population"

[evaluator.budgets]
CartPole = {steps = 800}

[evaluator.hurdle]
env = "CartPole"
threshold = 0.05
credit = 0.1

[evaluator.agent]
hidden = [16, 16]
learning_rate = 0.001
learning_starts = 100

[workers]
workers = 1
batch_size = 4
"""


def test_dataset_rows_rerun_with_the_cards_command(tmp_path, capsys, monkeypatch):
    config = tmp_path / "search.toml"
    config.write_text(CONFIG)
    store, out = tmp_path / "run.db", tmp_path / "out"
    assert main(["run", str(config), "--store", str(store), "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    dataset = out / "dataset"
    card = (dataset / "README.md").read_text()
    rows = [json.loads(line) for line in (dataset / "programs.jsonl").read_text().splitlines()]
    assert len(rows) >= 2
    # The card's own recipe: save the row's program, then its first `evo eval` line.
    recipe = card[card.index("## Reload"):]
    command = next(line for line in recipe.splitlines() if line.startswith("evo eval"))
    argv = shlex.split(command.split("#")[0])[1:]
    assert argv[:2] == ["eval", "program.json"] and "--config" in argv
    monkeypatch.chdir(dataset)
    exact = 0
    for row in rows[:3]:
        (dataset / "program.json").write_text(json.dumps(row["program"]))
        assert main(argv) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["status"] == row["status"], (row["formula"], result["reason"])
        # Within the noise of training seeds: the spread of this program's own seeds.
        # Training is deterministic, so most rows match to float rounding; a loss whose
        # updates are driven by rounding noise (e.g. a zero gradient rescaled by Adam)
        # can differ between the search's batch and a lone re-run by up to that spread.
        noise = sum(max(e["seed_scores"]) - min(e["seed_scores"]) for e in result["envs"])
        delta = abs(result["fitness"] - row["fitness"])
        assert delta <= noise + 1e-6, (row["formula"], result["fitness"], row["fitness"])
        exact += delta <= 1e-6
    assert exact >= 1  # and reproducible rows do reproduce exactly
    assert re.search(r"evo eval program\.json --config config\.toml", card)
