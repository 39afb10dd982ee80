"""`evo compare`: curves, a score table with intervals and raw returns, per environment."""

from __future__ import annotations

import json

import pytest

from evo.app.cli import main
from evo.errors import ConfigError
from evo.rl.compare import bootstrap_ci, join, score_row, seed_list


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


def test_compare_with_later_seeds_joins_an_earlier_run(tmp_path, capsys):
    """Seeds 0-1 now and seed 2 later join into the table of one run of seeds 0-2:
    each agent trains the same whichever seeds share its call."""
    runs = {}
    for name, argv in {"all": ["--seeds", "3"], "early": ["--seeds", "2"],
                       "late": ["--seeds", "1", "--first-seed", "2"]}.items():
        assert main(["compare", "dqn", "--env", "CartPole", "--steps", "400", "--trainer",
                     "numpy", *argv, "-o", str(tmp_path / name)]) == 0
        runs[name] = tuple(json.loads((tmp_path / name / f).read_text())
                           for f in ("scores.json", "returns.json"))
    assert runs["late"][0]["seed_ids"] == [2]
    joined, raw = join([runs["late"], runs["early"]])
    assert joined["envs"]["CartPole"]["programs"] == runs["all"][0]["envs"]["CartPole"]["programs"]
    assert raw == runs["all"][1]
    assert joined["seed_ids"] == [0, 1, 2]
    capsys.readouterr()
    assert main(["compare", "--join", str(tmp_path / "early"), "--join", str(tmp_path / "late"),
                 "-o", str(tmp_path / "joined")]) == 0
    assert capsys.readouterr().out == (tmp_path / "all" / "scores.md").read_text()
    assert json.loads((tmp_path / "joined" / "returns.json").read_text()) == runs["all"][1]
    assert main(["compare", "--join", str(tmp_path / "early"), "--join", str(tmp_path / "all"),
                 "-o", str(tmp_path / "twice")]) == 2
    err = capsys.readouterr().err
    assert "seed 0 on CartPole: trained in two parts" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["--join", "nowhere"], "not a finished `evo compare -o` directory"),
    (["dqn", "--join", "nowhere"], "give no programs or --env"),
    (["dqn"], "at least one --env"),
    (["dqn", "--env", "CartPole", "--first-seed", "-1"], "first seed >= 0"),
])
def test_compare_usage_errors_are_one_line(tmp_path, capsys, argv, needle):
    assert main(["compare", *argv, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evo: error:") and needle in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("seeds, needle", [(0, r"in \[1, 100\]"), ([], "at least one seed"),
                                           ([1, 1], "twice"), ([-1], "non-negative"),
                                           ("3", "count or a list"), (list(range(101)),
                                                                       "at most")])
def test_bad_seeds_are_named(seeds, needle):
    with pytest.raises(ConfigError, match=needle):
        seed_list(seeds)


def _part(program: str, steps: int = 100, returns: bool = True) -> tuple[dict, dict]:
    """A one-seed CartPole comparison of ``program`` as compare writes it (its returns
    left out when ``returns`` is False)."""
    row = score_row([0.5], ["ok"], [0])
    return ({"seeds": 1, "trainer": "population",
             "envs": {"CartPole": {"budget": {"steps": steps}, "programs": {program: row}}}},
            {"CartPole": {program: [[1.0]]} if returns else {}})


def test_parts_of_different_plans_do_not_join():
    part = _part("dqn")
    with pytest.raises(ConfigError, match="other environments or budgets"):
        join([part, _part("ddqn", steps=200)])
    with pytest.raises(ConfigError, match="numpy trainer"):
        join([part, ({**part[0], "trainer": "numpy"}, part[1])])


def test_a_part_whose_returns_miss_a_program_is_named():
    with pytest.raises(ConfigError, match="late: its scores and returns do not match"):
        join([_part("dqn"), _part("ddqn", returns=False)], ["early", "late"])
