"""`evo eval` and `evo envs`: JSON scores on stdout, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evo.app.cli import main
from graphs.core import fileformat
from graphs.rl_loss.library import builtin

REPO = Path(__file__).resolve().parents[3]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_builtin_prints_json_scores(capsys):
    code, out, _ = run(capsys, "eval", "dqn", "--env", "CartPole", "--steps", "1500")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "ok" and data["reason"] == ""
    assert data["program"] == "dqn" and "max_a'" in data["formula"]
    assert set(data["scores"]) == {"CartPole"}
    assert data["fitness"] == data["scores"]["CartPole"] > 0
    assert data["hurdle"] is None  # no hurdle unless asked for
    assert data["steps"] == 1500
    [env] = data["envs"]
    assert env["env"] == "CartPole" and env["steps"] == 1500 and len(env["seed_scores"]) == 1


def test_eval_program_file_several_envs_and_seeds(capsys, tmp_path):
    path = tmp_path / "ddqn.json"
    fileformat.save(builtin("ddqn"), path)
    code, out, _ = run(capsys, "eval", str(path), "--env", "CartPole", "--env",
                       "MiniGrid-Empty-5x5", "--steps", "1200", "--seeds", "2", "--seed", "4")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "ok" and data["program"] == str(path)
    assert "argmax" in data["formula"]
    assert list(data["scores"]) == ["CartPole", "MiniGrid-Empty-5x5"]
    assert data["fitness"] == pytest.approx(sum(data["scores"].values()))
    assert all(len(e["seed_scores"]) == 2 and e["steps"] == 2400 for e in data["envs"])


def test_eval_hurdle_failure_is_reported(capsys):
    code, out, _ = run(capsys, "eval", "dqn", "--env", "CartPole", "--env", "Acrobot",
                       "--steps", "1200", "--hurdle", "CartPole:0.9")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "hurdle" and data["fitness"] == 0.0
    assert data["hurdle"]["passed"] is False and data["hurdle"]["threshold"] == 0.9
    assert [e["env"] for e in data["envs"]] == ["CartPole"]


def test_eval_time_limit(capsys):
    code, out, _ = run(capsys, "eval", "dqn", "--env", "CartPole", "--steps", "200000",
                       "--time-limit", "0.3")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "timeout" and data["fitness"] == 0.0


@pytest.mark.parametrize("argv, needle", [
    (["--env", "CartPole", "--hurdle", "CartPole:abc"], "--hurdle"),
    (["--env", "CartPole", "--hurdle", "CartPole:1.5"], "threshold"),
    (["--env", "CartPole", "--hurdle", "CartPol:0.5"], "did you mean 'CartPole'"),
    (["--env", "CartPol"], "did you mean 'CartPole'"),
    (["--env", "CartPole", "--steps", "0"], "steps"),
    (["--env", "CartPole", "--seeds", "0"], "seeds"),
    (["--env", "CartPole", "--time-limit", "-1"], "--time-limit"),
    (["--env", "CartPole", "--steps", str(2**63 - 1)], "--steps"),
    (["--env", "CartPole", "--seeds", "100000"], "--seeds"),
])
def test_eval_bad_input_is_a_one_line_error(capsys, argv, needle):
    code, out, err = run(capsys, "eval", "dqn", *argv)
    assert code == 2 and out == ""
    assert err.startswith("evo: error:") and needle in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_eval_unknown_program_is_a_one_line_error(capsys):
    code, _, err = run(capsys, "eval", "dqnn", "--env", "CartPole")
    assert code == 2 and "neither a built-in program" in err
    assert len(err.strip().splitlines()) == 1


def test_envs_lists_the_registry(capsys):
    code, out, _ = run(capsys, "envs")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert "CartPole" in names and "MiniGrid-DoorKey-5x5" in names
    cartpole = next(line for line in out.splitlines() if line.startswith("CartPole "))
    assert "CartPole-v0" in cartpole and "(hurdle)" in cartpole and "[0, 200]" in cartpole


def test_python_m_evo_unknown_env_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "evo", "eval", "dqn", "--env", "CartPol"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "did you mean" in proc.stderr and "CartPole" in proc.stderr
    assert proc.stdout == ""
