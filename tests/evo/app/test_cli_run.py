"""`evo run|resume|status|export|plot`: the search from the command line, and its errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from evo.app.cli import main
from evo.search.store import RunStore
from evo.workers.base import LocalPool

REPO = Path(__file__).resolve().parents[3]

TINY = """
[run]
name = "cli-tiny"
trials = 6
seed = 2

[search]
population_size = 3
tournament_size = 2
extra_nodes = 2

[evaluator]
envs = ["CartPole"]
steps = 300
hurdle = false

[evaluator.agent]
hidden = [16, 16]
learning_starts = 100

[workers]
workers = 2
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert err.startswith("evo: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_run_status_export_plot_resume(capsys, tiny, tmp_path):
    store = tmp_path / "runs" / "tiny.db"
    code, out, _ = run(capsys, "run", tiny, "--store", store, "-q")
    assert code == 0 and "finished 6/6 trials" in out and f"evo status {store}" in out
    code, out, _ = run(capsys, "status", store)
    assert code == 0 and "6/6 trials finished" in out and "leaderboard" in out
    code, out, _ = run(capsys, "export", store, "--top", "2", "-o", tmp_path / "ds")
    assert code == 0 and "wrote" in out
    rows = (tmp_path / "ds" / "programs.jsonl").read_text().splitlines()
    assert 1 <= len(rows) <= 2 and json.loads(rows[0])["rank"] == 1
    code, out, _ = run(capsys, "plot", store)
    assert code == 0 and len(out.split()) == 5  # 4 PNGs and the lineage as DOT
    assert all(Path(p).stat().st_size > 0 for p in out.split())
    code, out, _ = run(capsys, "resume", store, "--trials", "8", "--workers", "1", "-q",
                       "--out", tmp_path / "results", "--baseline", "dqn")
    assert code == 0 and "finished 8/8 trials" in out
    assert "the best program found, next to dqn trained the same way" in out
    assert "0.5*(Q(s,a) - (r + γ*max_a' Qt(s',a')))^2" in out and "family line" in out
    assert "next to dqn" in (tmp_path / "results" / "summary.md").read_text()
    assert (tmp_path / "results" / "dataset" / "programs.parquet").exists()
    assert (tmp_path / "results" / "plots" / "histogram.png").exists()
    code, out, _ = run(capsys, "resume", store, "-q")  # finished: nothing to do
    assert code == 0 and "finished 8/8 trials" in out


def test_a_run_stopped_by_hours_says_so_and_how_to_go_on(capsys, tiny, tmp_path):
    # --hours ends a run early; the search then shrinks its target to what it ran, and
    # the closing line once read "finished 0/0 trials" for a run configured for 6
    store = tmp_path / "short.db"
    code, out, _ = run(capsys, "run", tiny, "--store", store, "-q", "--hours", "1e-9")
    assert code == 0, out
    assert "stopped at 0/6 trials" in out and f"continue with: evo resume {store}" in out
    assert "finished" not in out.splitlines()[0]


def test_run_without_store_uses_runs_name_timestamp(capsys, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "run", tiny, "--trials", "2", "-q")
    assert code == 0
    [store] = (tmp_path / "runs").glob("cli-tiny-*.db")
    assert f"store {Path('runs') / store.name}" in err
    s = RunStore.open(store, readonly=True)
    assert s.config["run"]["trials"] == 2 and s.finished() == 2
    s.close()


def test_ray_backend_flags_reach_the_ray_backend(capsys, tiny, tmp_path, monkeypatch):
    seen = {}

    class FakeRay(LocalPool):
        name = "ray"

        def __init__(self, evaluate, address, task_timeout=None, retries=1, threads=1):
            seen["address"] = address
            super().__init__(evaluate, 1, task_timeout, None, retries)

    fake = types.SimpleNamespace(RayBackend=FakeRay)
    monkeypatch.setitem(sys.modules, "evo.workers.ray_backend", fake)
    store = tmp_path / "ray.db"
    code, out, err = run(capsys, "run", tiny, "--store", store, "--backend", "ray",
                         "--address", "127.0.0.1:6379", "--trials", "2", "-q")
    assert code == 0, err
    assert seen["address"] == "127.0.0.1:6379"
    s = RunStore.open(store, readonly=True)
    assert s.config["workers"] == {"backend": "ray", "workers": 2, "address": "127.0.0.1:6379",
                                   "retries": 1, "threads_per_worker": 1}
    assert s.finished() == 2
    s.close()
    monkeypatch.setitem(sys.modules, "evo.workers.ray_backend", None)
    err = one_line_error(capsys, "run", tiny, "--store", tmp_path / "r2.db", "--backend", "ray")
    assert "needs Ray" in err and not (tmp_path / "r2.db").exists()


def test_print_config_validates_and_prints_toml(capsys, tmp_path):
    code, out, _ = run(capsys, "run", "--preset", "quick", "--trials", "7", "--print-config")
    assert code == 0
    path = tmp_path / "mine.toml"
    path.write_text(out)
    from evo.app.config import load_config, preset

    assert load_config(path) == preset("quick").replace(**{"run.trials": 7})


def test_missing_config(capsys, tmp_path):
    err = one_line_error(capsys, "run", tmp_path / "nope.toml")
    assert "nope.toml: no such config file" in err


def test_invalid_toml_names_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nname = 'x'\ntrials = = 3\n")
    err = one_line_error(capsys, "run", bad)
    assert "bad.toml: invalid TOML" in err and "line 3" in err


def test_bad_key_in_config(capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[search]\npopulation = 10\n")
    err = one_line_error(capsys, "run", path)
    assert "search.population" in err and "population_size" in err and "allowed keys" in err


def test_unknown_preset_suggests_close_matches(capsys):
    err = one_line_error(capsys, "run", "--preset", "dqn-seed")
    assert "unknown preset 'dqn-seed'" in err and "did you mean 'dqn-seeded'" in err


def test_existing_store_is_refused_before_running(capsys, tiny, tmp_path):
    store = tmp_path / "taken.db"
    store.write_text("")
    err = one_line_error(capsys, "run", tiny, "--store", store)
    assert "already exists" in err and f"evo resume {store}" in err


@pytest.mark.parametrize("argv, needle", [
    (["run"], "give a config file"),
    (["run", "x.toml", "--preset", "quick"], "not both"),
    (["run", "--preset", "quick", "--address", "auto", "--backend", "local"], "--address"),
    (["run", "--preset", "quick", "--address", "auto"], "add --backend ray"),
    (["run", "--preset", "quick", "--trials", "0"], "--trials 0"),
    (["run", "--preset", "quick", "--workers", "0"], "--workers 0"),
    (["resume", "missing.db"], "no such run store"),
    (["status", "missing.db"], "no such run store"),
    (["export", "missing.db"], "no such run store"),
    (["plot", "missing.db"], "no such run store"),
])
def test_usage_errors_are_one_line(capsys, argv, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert needle in one_line_error(capsys, *argv)


def test_not_a_store_is_one_line(capsys, tmp_path):
    path = tmp_path / "junk.db"
    path.write_text("this is not sqlite " * 100)
    assert "not an evo run store" in one_line_error(capsys, "status", path)


def test_eval_with_a_config_uses_its_evaluator(capsys, tiny):
    code, out, _ = run(capsys, "eval", "dqn", "--config", tiny)
    assert code == 0
    data = json.loads(out)
    assert data["steps"] == 300 and list(data["scores"]) == ["CartPole"]
    code, out, _ = run(capsys, "eval", "dqn", "--config", tiny, "--steps", "200")
    assert json.loads(out)["steps"] == 200
    assert "--env" in one_line_error(capsys, "eval", "dqn")


def _store_report(store: Path) -> str:
    """What a run store holds, for a failure message."""
    try:
        s = RunStore.open(store, readonly=True)
    except Exception as exc:  # noqa: BLE001 - a diagnosis, not a check
        return f"store unreadable: {exc!r}"
    try:
        return f"counts {s.counts()}, failures {s.failure_reasons(3)}"
    finally:
        s.close()


def test_ctrl_c_stops_cleanly_and_resume_finishes(tiny, tmp_path):
    """A real SIGINT to `evo run`: exit 130 with a hint, a consistent store, and
    `evo resume` finishes every trial exactly once."""
    config = tmp_path / "slow.toml"
    # A target no machine reaches while the test waits: the signal always finds the run
    # busy (it once finished 30 trials before the signal in CI). `evo resume --trials`
    # lowers the target afterwards.
    config.write_text(TINY.replace("trials = 6", "trials = 100000").replace(
        "steps = 300", "steps = 10000"))
    store = tmp_path / "slow.db"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    # A test run started in the background (as CI may start it) inherits SIGINT ignored,
    # and so would `evo run`: Python then installs no KeyboardInterrupt handler and the
    # signal does nothing. Give the run the default handling a terminal gives it.
    proc = subprocess.Popen([sys.executable, "-m", "evo", "run", str(config), "--store",
                             str(store), "-q"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 180
        finished = 0
        last_error = None
        while time.time() < deadline and finished < 2 and proc.poll() is None:
            time.sleep(0.2)
            if store.exists():
                try:
                    s = RunStore.open(store, readonly=True)
                    finished = s.finished()
                    s.close()
                except Exception as exc:  # not readable yet; reported if the test fails
                    last_error = repr(exc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:  # never leave the run behind (its target is out of reach)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    why = (f"rc {proc.returncode}, {finished} finished when signalled, last read error "
           f"{last_error}; {_store_report(store)}; stderr: {err[-800:]}")
    assert proc.returncode == 130, why
    assert f"evo resume {store}" in err and "Traceback" not in err, why
    s = RunStore.open(store, readonly=True)
    before = s.finished()
    s.close()
    assert before >= 2, why
    assert main(["resume", str(store), "--trials", str(before + 3), "-q"]) == 0
    s = RunStore.open(store, readonly=True)
    assert s.finished() >= before + 3 and s.counts()["proposed"] == s.counts()["running"] == 0
    s.close()
