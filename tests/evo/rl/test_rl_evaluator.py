"""RLEvaluator / evaluate(): fitness, hurdle, statuses, settings checks, serialization."""

from __future__ import annotations

import json
import math

import pytest

import envs
import evo.rl.dqn as dqn_module
from evo.errors import ConfigError
from evo.results import Status
from evo.rl.dqn import DQNConfig
from evo.rl.evaluator import EnvResult, Evaluation, RLEvaluator, evaluate
from graphs.core.program import Node, Program
from graphs.rl_loss.library import builtin, from_steps
from graphs.rl_loss.ops import RL_LOSS

DQN = builtin("dqn")
EMPTY = "MiniGrid-Empty-5x5"  # random exploration reaches the goal: a non-zero score
PASS = envs.Hurdle("CartPole", 0.0)
OVERFLOWS = from_steps(  # valid, but Q(s,a)·1e10 squared five times is inf
    [("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("Sub", "r_t", "r_t"), ("Div", 1, 2)]
    + [("Square", 3 + i) for i in range(5)])


def test_fitness_is_the_sum_of_the_environment_scores():
    result = RLEvaluator(["CartPole", EMPTY], hurdle=None, steps=1500).evaluate(DQN)
    assert isinstance(result, Evaluation)
    assert result.status == "ok" and result.reason == "" and result.hurdle is None
    assert list(result.scores) == ["CartPole", EMPTY]
    assert [r.env for r in result.envs] == ["CartPole", EMPTY]
    assert all(isinstance(r, EnvResult) and r.status == "ok" for r in result.envs)
    assert all(s > 0 for s in result.scores.values())
    assert result.fitness == pytest.approx(sum(result.scores.values()), abs=1e-12)
    for r in result.envs:
        assert result.scores[r.env] == r.score
        assert r.steps == 1500 and r.episodes > 0 and len(r.seed_scores) == 1
    cartpole = result.envs[0]
    assert cartpole.score == pytest.approx(envs.get("CartPole").normalize(cartpole.mean_return))
    assert result.steps == 3000 and result.seconds > 0


def test_scores_are_averaged_over_seeds_and_seed_offsets_them():
    result = RLEvaluator("CartPole", hurdle=None, seeds=(0, 1), steps=1200).evaluate(DQN)
    env = result.envs[0]
    assert len(env.seed_scores) == 2 and env.steps == 2400
    assert env.score == pytest.approx(sum(env.seed_scores) / 2)
    shifted = RLEvaluator("CartPole", hurdle=None, seeds=(0,), steps=1200)(DQN, seed=1)
    assert shifted.envs[0].seed_scores == [env.seed_scores[1]]


def test_the_hurdle_runs_first_and_counts_only_if_its_env_is_evaluated():
    result = RLEvaluator([EMPTY], hurdle=PASS, steps=1500).evaluate(DQN)
    assert result.status == "ok"
    assert [r.env for r in result.envs] == ["CartPole", EMPTY]
    assert list(result.scores) == [EMPTY]
    assert result.fitness == result.scores[EMPTY]
    assert result.hurdle == {"env": "CartPole", "threshold": 0.0,
                             "score": result.envs[0].score, "passed": True}

    both = RLEvaluator([EMPTY, "CartPole"], hurdle=PASS, steps=1500).evaluate(DQN)
    assert [r.env for r in both.envs] == ["CartPole", EMPTY]  # trained once, first
    assert set(both.scores) == {"CartPole", EMPTY}
    assert both.fitness == pytest.approx(sum(both.scores.values()))
    assert both.hurdle["passed"] is True


def test_failing_the_hurdle_stops_with_fitness_zero():
    evaluator = RLEvaluator(["CartPole", EMPTY], hurdle=envs.Hurdle("CartPole", 0.9), steps=1200)
    result = evaluator.evaluate(DQN)
    assert result.status == "hurdle" and result.fitness == 0.0
    assert len(result.envs) == 1 and result.envs[0].env == "CartPole"  # EMPTY never ran
    assert result.hurdle["passed"] is False and result.hurdle["threshold"] == 0.9
    assert result.hurdle["score"] == result.envs[0].score < 0.9
    assert "hurdle" in result.reason and "CartPole" in result.reason


def test_default_hurdle_is_cartpole_at_0_6_and_budgets_come_from_the_registry():
    evaluator = RLEvaluator()
    assert evaluator.hurdle == envs.DEFAULT_HURDLE
    assert (evaluator.hurdle.env, evaluator.hurdle.threshold) == ("CartPole", 0.6)
    assert evaluator.budgets == {"CartPole": envs.get("CartPole").budget}
    scaled = RLEvaluator(["Acrobot"], budget_scale=0.5)
    assert scaled.budgets["Acrobot"] == envs.Budget(episodes=200)
    assert scaled.budgets["CartPole"] == envs.Budget(episodes=200)
    assert RLEvaluator([EMPTY], steps=500).budgets[EMPTY] == envs.Budget(steps=500)
    assert "CartPole>=0.6" in repr(evaluator)


def test_a_program_that_goes_nan_gets_status_nan():
    OVERFLOWS.check()
    result = RLEvaluator(["CartPole", EMPTY], hurdle=None, steps=2000).evaluate(OVERFLOWS)
    assert result.status == "nan" and result.fitness == 0.0
    assert "CartPole" in result.reason and "inf" in result.reason
    assert len(result.envs) == 1 and result.envs[0].status == "nan"


def test_an_exception_in_training_becomes_status_error(monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("kaboom")

    monkeypatch.setattr(dqn_module, "forward", boom)
    evaluator = RLEvaluator("CartPole", hurdle=None, steps=200,
                            config=DQNConfig(learning_starts=20))
    result = evaluator.evaluate(DQN)  # must not raise
    assert result.status == "error" and result.fitness == 0.0
    assert "ZeroDivisionError" in result.reason and "kaboom" in result.reason


def test_time_limit_gives_status_timeout():
    evaluator = RLEvaluator(["CartPole", EMPTY], hurdle=None, steps=200_000, time_limit=0.3)
    result = evaluator.evaluate(DQN)
    assert result.status == "timeout" and result.fitness == 0.0
    assert "time limit" in result.reason
    assert len(result.envs) == 1 and result.envs[0].steps < 200_000
    assert result.seconds < 10


def test_an_invalid_program_is_an_error_not_a_crash():
    # The output is Q(s,·), a LIST: it type-checks as a graph but is no loss.
    program = Program(RL_LOSS, [Node(RL_LOSS.op("QValues"), (0, 2))])
    assert not program.is_valid()
    result = RLEvaluator("CartPole", hurdle=None, steps=500).evaluate(program)
    assert result.status == "error" and result.fitness == 0.0
    assert "invalid program" in result.reason and "FLOAT" in result.reason
    assert result.envs == []


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"envs": ["CartPol"]}, envs.EnvError, "did you mean 'CartPole'"),
    ({"envs": ["NoSuchEnv"]}, envs.EnvError, "unknown environment"),
    ({"envs": []}, ConfigError, "envs"),
    ({"seeds": ()}, ConfigError, "seeds"),
    ({"seeds": (-1,)}, ConfigError, "seeds"),
    ({"seeds": (1.5,)}, ConfigError, "seeds"),
    ({"steps": 0}, ConfigError, "steps"),
    ({"steps": -5}, ConfigError, "steps"),
    ({"steps": 2.5}, ConfigError, "steps"),
    ({"time_limit": 0}, ConfigError, "time_limit"),
    ({"time_limit": -1.0}, ConfigError, "time_limit"),
    ({"time_limit": math.nan}, ConfigError, "time_limit"),
    ({"budget_scale": 0}, envs.EnvError, "positive"),
])
def test_bad_settings_raise_at_construction(kwargs, error, needle):
    kwargs = {"envs": ["CartPole"], **kwargs}
    with pytest.raises(error) as info:
        RLEvaluator(**kwargs)
    message = str(info.value)
    assert needle in message and len(message.splitlines()) == 1


def test_a_bad_hurdle_env_raises():
    with pytest.raises(envs.EnvError, match="did you mean"):
        RLEvaluator(["CartPole"], hurdle=envs.Hurdle("Acrobat", 0.5))


def test_evaluate_is_one_call():
    result = evaluate(DQN, "CartPole", steps=1500)
    assert result.status == "ok" and result.hurdle is None
    assert list(result.scores) == ["CartPole"] and result.fitness == result.scores["CartPole"]
    two = evaluate(DQN, ["CartPole"], seed=0, seeds=2, steps=1500)
    assert two.envs[0].seed_scores[0] == result.envs[0].seed_scores[0]
    assert len(two.envs[0].seed_scores) == 2 and two.steps == 3000
    failed = evaluate(DQN, "CartPole", steps=1200, hurdle=envs.Hurdle("CartPole", 0.95))
    assert failed.status == "hurdle" and failed.fitness == 0.0


def test_to_dict_is_json_serializable():
    ok = evaluate(DQN, ["CartPole"], steps=1200, hurdle=PASS)
    hurdled = evaluate(DQN, "CartPole", steps=1200, hurdle=envs.Hurdle("CartPole", 0.95))
    nan = evaluate(OVERFLOWS, "CartPole", steps=1500)
    for result in (ok, hurdled, nan):
        assert result.status in tuple(Status)
        data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert data["fitness"] == result.fitness and data["status"] == result.status
        assert data["scores"] == result.scores
        assert [e["env"] for e in data["envs"]] == [e.env for e in result.envs]
    assert json.loads(json.dumps(hurdled.to_dict()))["hurdle"]["passed"] is False


def test_progress_bar_when_asked(capsys):
    evaluate(DQN, "CartPole", steps=2500, progress=True)
    err = capsys.readouterr().err
    assert "step" in err and "training" in err


@pytest.mark.parametrize("progress", [None, False])
def test_no_progress_bar_off_a_terminal(capsys, progress):
    import sys

    assert not sys.stderr.isatty()
    evaluate(DQN, "CartPole", steps=2500, progress=progress)
    assert "step" not in capsys.readouterr().err


def test_hurdle_credit_gives_a_cut_candidate_a_graded_fitness():
    config = DQNConfig(hidden=(16,), learning_starts=50)
    kwargs = dict(envs=["CartPole"], hurdle=envs.Hurdle("CartPole", 0.99), seeds=(0,),
                  config=config, steps=300)
    plain = RLEvaluator(**kwargs).evaluate(builtin("dqn"))
    graded = RLEvaluator(**kwargs, hurdle_credit=0.1).evaluate(builtin("dqn"))
    assert plain.status == graded.status == "hurdle"
    assert plain.fitness == 0.0
    assert graded.fitness == pytest.approx(0.1 * graded.hurdle["score"]) and graded.fitness > 0
    with pytest.raises(ConfigError, match="hurdle_credit"):
        RLEvaluator(**kwargs, hurdle_credit=2.0)
