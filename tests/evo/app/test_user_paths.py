"""What a new user hit (issue 11, sections 4 and 5): unbounded settings, CSV columns,
help texts, the README, stores made from Python, the dataset card, ranks, output."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

import envs
from evo.algorithms.base import SeedSpace
from evo.algorithms.evolution import RegularizedEvolution
from evo.algorithms.random_search import RandomSearch
from evo.app import cli
from evo.app.cli import build_parser, main
from evo.app.config import (
    DEFAULT_TIME_LIMIT,
    PRESETS,
    EvaluatorSection,
    config_from_objects,
    from_dict,
    load_config,
    preset,
)
from evo.app.export import export, unique_programs
from evo.app.runner import make_evaluator, resume, status
from evo.errors import ConfigError
from evo.rl.dqn import DQNConfig
from evo.rl.evaluator import Evaluation, RLEvaluator
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "skip_connect~2|")


# -- unbounded settings ------------------------------------------------------------------------
@pytest.mark.parametrize("data, needle", [
    ({"evaluator": {"steps": 2**63 - 1}}, "evaluator.steps"),
    ({"evaluator": {"max_steps": 2**40}}, "evaluator.max_steps"),
    ({"evaluator": {"seeds": list(range(1000))}}, "evaluator.seeds"),
    ({"evaluator": {"time_limit": 1e12}}, "evaluator.time_limit"),
    ({"evaluator": {"agent": {"hidden": [1_000_000]}}}, "evaluator.agent.hidden"),
    ({"evaluator": {"agent": {"hidden": [8] * 50}}}, "evaluator.agent.hidden"),
    ({"evaluator": {"agent": {"buffer_size": 10**12}}}, "evaluator.agent.buffer_size"),
    ({"evaluator": {"agent": {"batch_size": 10**9}}}, "evaluator.agent.batch_size"),
    ({"evaluator": {"budgets": {"CartPole": {"episodes": 10**12}}}}, "budgets.CartPole"),
    ({"search": {"population_size": 10**9, "tournament_size": 5}}, "search.population_size"),
    ({"run": {"trials": 10**15}}, "run.trials"),
])
def test_sizes_have_upper_bounds(data, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as info:
        from_dict(data)
    assert "at most" in str(info.value) or "604800]" in str(info.value)


def test_evaluations_have_a_default_time_limit(monkeypatch, capsys):
    assert EvaluatorSection().time_limit == DEFAULT_TIME_LIMIT
    assert make_evaluator(from_dict({})).time_limit == DEFAULT_TIME_LIMIT
    seen = {}

    def fake(self, program, *a, **k):
        seen["limit"] = self.time_limit
        return Evaluation(fitness=0.5, scores={"CartPole": 0.5})

    monkeypatch.setattr(RLEvaluator, "evaluate", fake)
    assert main(["eval", "dqn", "--env", "CartPole"]) == 0
    assert seen["limit"] == DEFAULT_TIME_LIMIT
    capsys.readouterr()


# -- CSV columns -------------------------------------------------------------------------------
def test_latency_csv_keeps_the_users_columns(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f"arch_str,latency_ms\n{ARCH},12.5\n")
    assert main(["arch", "latency", "--csv", str(src), "-o", str(dst)]) == 0
    (row,) = list(csv.DictReader(dst.open()))
    assert row["latency_ms"] == "12.5"  # the measured value survives
    assert float(row["sim_latency_ms"]) > 0 and float(row["sim_energy_mj"]) > 0
    assert int(row["macs"]) > 0 and int(row["params"]) > 0
    capsys.readouterr()


def test_latency_csv_refuses_to_overwrite_without_the_flag(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(f"arch_str,macs\n{ARCH},measured\n")
    assert main(["arch", "latency", "--csv", str(src), "-o", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "macs" in err and "--overwrite" in err and not dst.exists()
    assert main(["arch", "latency", "--csv", str(src), "-o", str(dst), "--overwrite"]) == 0
    (row,) = list(csv.DictReader(dst.open()))
    assert int(row["macs"]) > 0
    capsys.readouterr()


# -- help and README ---------------------------------------------------------------------------
def _help(*argv: str) -> str:
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[argv[0]]
    return " ".join(sub.format_help().split())


def test_run_help_lists_every_preset():
    text = _help("run")
    assert all(name in text for name in PRESETS)


def test_eval_help_is_consistent():
    text = _help("eval")
    hurdle = text[text.rindex("--hurdle ENV"):text.rindex("--time-limit SECONDS")]
    assert not ("default 0.6" in hurdle and "default none" in hurdle)
    after = text[text.rindex("--time-limit SECONDS") + len("--time-limit SECONDS"):]
    assert "wall-clock" in after.split("--")[0]


def test_readme_says_how_to_reach_evo():
    assert ".venv/bin/activate" in README and ".venv/bin/evo" in README


def test_readme_minigrid_count_matches_evo_envs():
    n = sum(1 for spec in envs.list_envs() if spec.id.startswith("MiniGrid"))
    counts = re.findall(r"(\d+) MiniGrid tasks", README)
    assert counts and all(int(c) == n for c in counts)


def _readme_api_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    return next(b for b in blocks if "Search(" in b)


def test_readme_api_example_runs_and_prints_formulas(tmp_path, monkeypatch, capsys):
    code = _readme_api_example()
    assert "DQNConfig(" in code and "config=agent" in code  # runs in minutes, not hours
    # The same example, shrunk to seconds.
    small = (code.replace("trials=100", "trials=4").replace("steps=10_000", "steps=200")
             .replace("population_size=20, tournament_size=5",
                      "population_size=2, tournament_size=2"))
    monkeypatch.chdir(tmp_path)
    exec(compile(small, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines and all(len(line.split("  ", 1)) == 2 and line.split("  ", 1)[1].strip()
                         for line in lines)
    # a store made from Python is as complete as one made by `evo run`
    db = tmp_path / "runs" / "my-search.db"
    text = status(db)
    assert "?" not in text.split("leaderboard")[0] and "None" not in text
    assert "progress:   4/4" in text
    paths = export(db, tmp_path / "ds", top=3)
    card = paths["card"].read_text()
    assert "population 2" in card and "None" not in card.split("## Fields")[0]
    assert make_evaluator(load_config(paths["config"])).config.hidden == (64, 64)
    resume(db, trials=5, progress=False)
    assert "progress:   5/5" in status(db)


# -- stores made from Python -------------------------------------------------------------------
def test_config_from_objects_reproduces_the_evaluator():
    algorithm = RegularizedEvolution(population_size=8, tournament_size=3, mutation_p=0.9,
                                     space=SeedSpace("ddqn", 5), seed=3)
    agent = DQNConfig(hidden=(32,), learning_rate=3e-4)
    evaluator = RLEvaluator(["CartPole", "Acrobot"], hurdle=envs.Hurdle("CartPole", 0.4),
                            seeds=(1, 2), config=agent, budget_scale=0.5, time_limit=60,
                            budgets={"Acrobot": envs.Budget(steps=1234)})
    config = config_from_objects(algorithm, evaluator, trials=50, name="py")
    again = make_evaluator(config)
    assert again.budgets == evaluator.budgets and again.config == agent
    assert again.seeds == (1, 2) and again.time_limit == 60
    assert again.hurdle == evaluator.hurdle
    assert config.search.population_size == 8 and config.search.seed_program == "ddqn"
    assert config.run.seed == 3 and config.run.trials == 50
    scratch = config_from_objects(RandomSearch(SeedSpace(None, 7)), evaluator, trials=5)
    assert scratch.search.algorithm == "random" and scratch.search.seed_program == "scratch"
    with pytest.raises(ConfigError, match="evaluator"):
        config_from_objects(algorithm, lambda p: {"fitness": 1.0}, trials=5)


def _store_with(path, config, trials):
    """A store whose trials are given as (builtin, result) pairs, finished in order."""
    store = RunStore.create(path, config)
    fec = FEC()
    for name, result in trials:
        program = builtin(name)
        tid = store.add_trial(program, fec(program), "", None, "seed", 0, {"algorithm": {}})
        store.start(tid, "w")
        store.finish(tid, result, {"algorithm": {}}, "w")
    store.close()
    return path


def cut(score):
    return {"status": "hurdle", "fitness": 0.0, "scores": {"CartPole": score},
            "hurdle": {"env": "CartPole", "threshold": 0.6, "score": score, "passed": False}}


def test_formulas_are_never_empty_and_cut_rows_rank_by_score(tmp_path):
    # the store's formula column is '' (rendered lazily), as the search writes it
    path = _store_with(tmp_path / "s.db", preset("quick").to_dict(), [
        ("dqn", cut(0.1)), ("ddqn", cut(0.5)), ("dqnreg", cut(0.3)),
        ("cql", {"status": "ok", "fitness": 0.7, "scores": {"CartPole": 0.7}})])
    store = RunStore.open(path, readonly=True)
    rows = unique_programs(store)
    store.close()
    assert [r["formula"] for r in rows] == [formula(builtin(n)) for n in
                                            ("cql", "ddqn", "dqnreg", "dqn")]
    paths = export(path, tmp_path / "ds")
    for line in paths["jsonl"].read_text().splitlines():
        assert json.loads(line)["formula"]


def test_card_for_a_store_without_a_run_config_says_so(tmp_path):
    path = _store_with(tmp_path / "s.db", {"note": "first try"},
                       [("dqn", {"status": "ok", "fitness": 0.5, "scores": {"CartPole": 0.5}})])
    card = export(path, tmp_path / "ds")["card"].read_text()
    assert "population None" not in card and "not recorded" in card


# -- the dataset card's recipe -----------------------------------------------------------------
def test_card_recipes_keep_the_runs_agent(tmp_path):
    config = preset("quick")  # a 64-64 agent at lr 1e-3, not the default 256-256 at 1e-4
    path = _store_with(tmp_path / "s.db", config.to_dict(),
                       [("dqn", {"status": "ok", "fitness": 0.8, "scores": {"CartPole": 0.8}})])
    card = export(path, tmp_path / "ds")["card"].read_text()
    recipe = card[card.index("## Reload"):card.index("## Run config")]
    evals = [line for line in recipe.splitlines() if line.startswith("evo eval")]
    assert len(evals) == 2 and all("--config config.toml" in line for line in evals)
    assert "hidden (64, 64) instead of (256, 256)" in recipe
    assert "learning_rate 0.001 instead of 0.0001" in recipe
    assert "config=run.evaluator.agent" in recipe
    args = build_parser().parse_args(evals[1].split("#")[0].split()[1:] + [])
    assert args.config == "config.toml" and args.env == ["CartPole"]


# -- output ------------------------------------------------------------------------------------
def test_eval_prints_scores_without_float_noise(monkeypatch, capsys):
    noisy = 0.8112999999999999
    assert repr(noisy) != "0.8113"

    def fake(self, program, *a, **k):
        return Evaluation(fitness=noisy, scores={"CartPole": noisy})

    monkeypatch.setattr(RLEvaluator, "evaluate", fake)
    assert main(["eval", "dqn", "--env", "CartPole"]) == 0
    out = capsys.readouterr().out
    assert "0.8113" in out and "0.81129999" not in out
    assert cli.rounded(noisy) == 0.8113
