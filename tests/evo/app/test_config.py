"""Run configs: validation with key paths and allowed values, presets, round trips."""

from __future__ import annotations

import tomllib

import pytest

from evo.app.config import (
    PRESETS,
    RunConfig,
    dump_toml,
    from_dict,
    load_config,
    preset,
    preset_text,
)
from evo.errors import ConfigError
from evo.rl.dqn import DQNConfig


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(text)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    config = preset(name)
    assert config.run.name == name
    data = config.to_dict()
    assert from_dict(data) == config
    assert load_config(config.to_toml()) == config
    assert tomllib.loads(config.to_toml()) == data
    # every preset file's own keys are in the complete config unchanged
    raw = tomllib.loads(preset_text(name))
    for section, keys in raw.items():
        for key, value in keys.items():
            if not isinstance(value, dict):
                assert data[section][key] == value or list(data[section][key]) == value


def test_presets_follow_the_paper_structure():
    paper = preset("dqn-seeded-paper")
    assert (paper.search.population_size, paper.search.tournament_size) == (300, 25)
    assert paper.search.seed_program == "dqn" and paper.search.extra_nodes == 14
    assert paper.evaluator.hurdle.env == "CartPole" and paper.evaluator.hurdle.threshold == 0.6
    assert set(paper.evaluator.envs) == {"MiniGrid-KeyCorridorS3R1",
                                         "MiniGrid-Dynamic-Obstacles-6x6",
                                         "MiniGrid-DoorKey-5x5"}
    assert paper.workers.backend == "ray" and paper.evaluator.trainer == "population"
    scratch_paper = preset("from-scratch-paper")
    assert (scratch_paper.search.population_size, scratch_paper.search.tournament_size) == (
        300, 25)
    assert "LunarLander" in scratch_paper.evaluator.envs
    # the 2-hour versions keep the structure at a smaller scale
    for name in ("dqn-seeded", "from-scratch"):
        small = preset(name)
        assert small.search.algorithm == "regularized_evolution"
        assert small.search.mutation_p == 0.95
        assert small.evaluator.hurdle.env == "CartPole"
        assert small.evaluator.envs and small.evaluator.trainer == "population"
        assert small.workers.batch_size == 32
    assert preset("dqn-seeded").search.seed_program == "dqn"
    scratch = preset("from-scratch")
    assert scratch.search.seed_program == "scratch" and scratch.search.extra_nodes == 7
    assert scratch.evaluator.envs[0] == "CartPole"
    # two training seeds and a graded hurdle: what found TD (results/from-scratch-2seed)
    assert scratch.evaluator.seeds == (0, 1) and scratch.evaluator.hurdle.credit == 0.1
    quick = preset("quick")
    assert quick.search.algorithm == "regularized_evolution"
    assert quick.evaluator.envs == ("CartPole",) and quick.search.seed_program == "scratch"
    assert quick.evaluator.hurdle.credit > 0  # graded: selection can climb from scratch


def test_defaults_are_the_papers_and_fill_in():
    config = load_config("")
    assert config == RunConfig()
    assert config.search.population_size == 300 and config.search.tournament_size == 25
    assert config.evaluator.agent == DQNConfig()
    assert config.evaluator.hurdle.threshold == 0.6
    assert load_config('[search]\nseed_program = "scratch"').search.extra_nodes == 7
    assert load_config('[search]\nseed_program = "ddqn"').search.extra_nodes == 14
    assert load_config('[workers]\nbackend = "ray"').workers.address == "auto"
    assert load_config("[evaluator]\nhurdle = false").evaluator.hurdle is None


def test_round_trip_of_every_kind_of_value(tmp_path):
    text = """
[run]
name = "x.y-1"
trials = 7
[evaluator]
envs = ["cartpole", "MiniGrid-Empty-5x5-v0"]
seeds = [1, 2]
time_limit = 30
max_steps = 5000
[evaluator.hurdle]
env = "CartPole"
threshold = 0.25
[evaluator.agent]
hidden = [16]
learning_rate = 1e-3
epsilon_decay_steps = 500
[evaluator.budgets]
"MiniGrid-Empty-5x5" = {steps = 2000}
[hurdles]
progressive = true
increments = [0.5, 0.5]
batch = 3
[workers]
workers = 2
task_timeout = 60
memory_limit_mb = 2048
retries = 0
"""
    path = tmp_path / "run.toml"
    path.write_text(text)
    config = load_config(path)
    assert config.evaluator.envs == ("CartPole", "MiniGrid-Empty-5x5")  # canonical ids
    assert config.evaluator.agent.hidden == (16,)
    assert config.evaluator.budgets[0][0] == "MiniGrid-Empty-5x5"
    assert load_config(config.to_toml()) == config
    assert load_config(str(path)) == config
    assert config.to_dict()["evaluator"]["budgets"] == {"MiniGrid-Empty-5x5": {"steps": 2000}}


def test_unknown_key_names_it_and_lists_the_allowed_keys():
    message = error("[search]\npopulaton_size = 10")
    assert "search.populaton_size" in message
    assert "did you mean 'population_size'" in message
    for key in ("algorithm", "population_size", "tournament_size", "mutation_p",
                "seed_program", "extra_nodes"):
        assert key in message


def test_unknown_section_and_nested_unknown_keys():
    message = error("[serch]\nx = 1")
    assert "[serch]" in message and "did you mean 'search'" in message
    assert "run, space, search, fec, evaluator, layernas, pareto, hurdles, workers" in message
    message = error("[evaluator.agent]\nlearning_rat = 0.1")
    assert "evaluator.agent.learning_rat" in message and "'learning_rate'" in message
    assert "batch_size" in message  # the allowed fields are listed
    message = error("[evaluator.hurdle]\nenv = 'CartPole'\nthreshhold = 0.5")
    assert "evaluator.hurdle.threshhold" in message and "env, threshold" in message
    assert "workers.adress" in error("[workers]\nadress = 'auto'")


@pytest.mark.parametrize("text, needles", [
    ("[search]\npopulation_size = 0", ["search.population_size = 0", ">= 1"]),
    ("[search]\npopulation_size = 2.5", ["search.population_size", "integer"]),
    ("[search]\nalgorithm = 'regularised_evolution'",
     ["search.algorithm", '"regularized_evolution", "random"', "did you mean"]),
    ("[search]\nmutation_p = 1.5", ["search.mutation_p = 1.5", "[0, 1]"]),
    ("[search]\nseed_program = 'dqnn'", ["search.seed_program", '"scratch"', '"dqn"']),
    ("[search]\npopulation_size = 10\ntournament_size = 20",
     ["search.tournament_size = 20", "at most search.population_size = 10"]),
    ("[search]\nextra_nodes = 0", ["search.extra_nodes", "[1, 100]"]),
    ("[run]\ntrials = true", ["run.trials = true", "integer"]),
    ("[run]\nname = 'a b'", ["run.name", "letters"]),
    ("[fec]\nmode = 'gradient'", ["fec.mode", '"training", "output"']),
    ("[evaluator]\nenvs = ['CartPol']", ["evaluator.envs[0]", "did you mean 'CartPole'"]),
    ("[evaluator]\nenvs = []", ["evaluator.envs", "list of environment ids"]),
    ("[evaluator]\nenvs = ['CartPole', 'cartpole']", ["evaluator.envs", "twice"]),
    ("[evaluator]\nseeds = [-1]", ["evaluator.seeds[0] = -1", ">= 0"]),
    ("[evaluator]\nsteps = 0", ["evaluator.steps = 0", ">= 1"]),
    ("[evaluator]\nbudget_scale = 0", ["evaluator.budget_scale = 0", "> 0"]),
    ("[evaluator]\nsteps = 100\nbudget_scale = 0.5", ["evaluator.budget_scale", "steps"]),
    ("[evaluator]\nhurdle = 'CartPole'", ["evaluator.hurdle", "false"]),
    ("[evaluator]\nloss_mode = 'fast'",
     ["evaluator.loss_mode", '"auto", "interpret", "trace"']),
    ("[evaluator.hurdle]\nthreshold = 2", ["evaluator.hurdle.threshold = 2", "[0, 1]"]),
    ("[evaluator.agent]\nlearning_rate = -1",
     ["evaluator.agent.learning_rate = -1", "positive"]),
    ("[evaluator.agent]\nhidden = [0]", ["evaluator.agent.hidden", "layer widths"]),
    ("[evaluator.budgets]\nAcrobot = {episodes = 5}",
     ["evaluator.budgets.Acrobot", "not one of this evaluator's environments"]),
    ("[evaluator.budgets]\nCartPole = {epsiodes = 5}",
     ["evaluator.budgets.CartPole.epsiodes", "episodes, steps"]),
    ("[hurdles]\nincrements = [0.5, -1]", ["hurdles.increments[1] = -1", "> 0"]),
    ("[hurdles]\nprogressive = 1", ["hurdles.progressive = 1", "true or false"]),
    ("[workers]\nbackend = 'slurm'", ["workers.backend", '"local", "ray"']),
    ("[workers]\nworkers = 0", ["workers.workers = 0", "[1, 4096]"]),
    ("[workers]\naddress = 'my host'", ["workers.address", "HOST:PORT"]),
    ("[workers]\ntask_timeout = 0", ["workers.task_timeout = 0", "> 0"]),
    ("search = 3", ["search = 3", "table"]),
])
def test_bad_values_name_the_key_and_the_allowed_values(text, needles):
    message = error(text)
    for needle in needles:
        assert needle in message, (needle, message)


def test_invalid_toml_and_missing_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\ntrials = 5\nname = \n")
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML: .*line 3"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    path = tmp_path / "wrong.toml"
    path.write_text("[search]\npopulation_size = -3\n")
    with pytest.raises(ConfigError, match=r"wrong.toml: search.population_size = -3"):
        load_config(path)


def test_unknown_preset_suggests_close_matches():
    with pytest.raises(ConfigError, match="did you mean 'quick'") as info:
        preset("quik")
    assert "quick, dqn-seeded, from-scratch" in str(info.value)


def test_replace_revalidates():
    config = preset("quick")
    changed = config.replace(**{"run.trials": 5, "workers.backend": "ray"})
    assert changed.run.trials == 5 and changed.workers.address == "auto"
    assert config.run.trials != 5  # frozen: the original is unchanged
    with pytest.raises(ConfigError, match="run.trials = 0"):
        config.replace(**{"run.trials": 0})


def test_dump_toml_quotes_keys_and_nests_tables():
    data = {"a": {"x y": 1, "b": {"c": [1.5, True, "s\"q"]}}}
    assert tomllib.loads(dump_toml(data)) == data
