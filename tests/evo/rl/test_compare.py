"""`evo compare`: curves, a score table with intervals and raw returns, per environment."""

from __future__ import annotations

import json

from evo.app.cli import main
from evo.rl.compare import bootstrap_ci


def test_compare_writes_curves_scores_and_returns(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "dqn", "dqnreg", "--env", "CartPole", "--env", "MountainCar",
                 "--seeds", "2", "--steps", "600", "--trainer", "numpy", "-o", str(out)])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores["envs"]) == {"CartPole", "MountainCar"}
    row = scores["envs"]["CartPole"]["programs"]["dqn"]
    assert len(row["per_seed"]) == 2 and row["ci95"][0] <= row["mean"] <= row["ci95"][1]
    raw = json.loads((out / "returns.json").read_text())
    assert len(raw["CartPole"]["dqnreg"]) == 2 and raw["CartPole"]["dqnreg"][0]
    assert (out / "CartPole.png").stat().st_size > 1000
    table = (out / "scores.md").read_text()
    assert "| dqn |" in table and "| dqnreg |" in table
    assert "| dqn |" in capsys.readouterr().out


def test_compare_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["compare", "dqn", "--env", "NoSuchEnv", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evo: error:") and "NoSuchEnv" in err
    assert main(["compare", "nosuch.json", "--env", "CartPole", "-o", str(tmp_path)]) == 2


def test_bootstrap_interval_brackets_the_mean():
    lo, hi = bootstrap_ci([0.1, 0.5, 0.9, 0.3])
    assert lo < 0.45 < hi
    assert bootstrap_ci([0.2]) == (0.2, 0.2)
