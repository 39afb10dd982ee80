"""Running searches from configs: build, run, interrupt, resume, extend, status."""

from __future__ import annotations

import io
import shutil
import sys
import types

import pytest

import evo.workers as workers_pkg
from evo.algorithms.evolution import RegularizedEvolution
from evo.algorithms.random_search import RandomSearch
from evo.app import runner
from evo.app.config import load_config
from evo.app.export import export
from evo.errors import ConfigError
from evo.rl.evaluator import RLEvaluator
from evo.search.loop import Progress
from evo.search.progressive import ProgressiveHurdles
from evo.search.store import RunStore, StoreError
from evo.workers.base import LocalPool

TINY = """
[run]
name = "tiny"
trials = 8
seed = 3

[search]
population_size = 4
tournament_size = 2
extra_nodes = 3

[evaluator]
envs = ["CartPole"]
steps = 300
time_limit = 60

[evaluator.hurdle]
env = "CartPole"
threshold = 0.1

[evaluator.agent]
hidden = [32, 32]
learning_starts = 100

[workers]
workers = 2
"""


def tiny(**changes):
    config = load_config(TINY)
    return config.replace(**changes) if changes else config


def finished_ids(path) -> list[int]:
    store = RunStore.open(path, readonly=True)
    try:
        rows = store.db.execute("SELECT id FROM trials WHERE status IN ('done','failed') OR "
                                "(status='duplicate' AND fitness IS NOT NULL) ORDER BY id")
        return [r["id"] for r in rows]
    finally:
        store.close()


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    """A finished tiny run (8 trials, 2 workers); copy it before changing it."""
    path = tmp_path_factory.mktemp("run") / "tiny.db"
    progress = runner.run(tiny(), path, progress=False)
    assert progress.trials == 8
    return path


def copy(store, tmp_path):
    dest = tmp_path / "copy.db"
    shutil.copy(store, dest)
    return dest


def test_build_makes_the_configured_parts():
    algorithm, evaluator, backend, hurdles, fec = runner.build(tiny())
    assert isinstance(algorithm, RegularizedEvolution)
    assert (algorithm.population_size, algorithm.tournament_size) == (4, 2)
    assert isinstance(evaluator, RLEvaluator) and evaluator.steps == 300
    assert evaluator.hurdle.threshold == 0.1 and evaluator.config.hidden == (32, 32)
    assert hurdles is None and fec.mode == "training" and callable(backend)
    built = runner.build(tiny(**{"search.algorithm": "random", "search.seed_program": "scratch",
                                 "hurdles.progressive": True, "fec.mode": "output"}))
    assert isinstance(built.algorithm, RandomSearch)
    assert built.algorithm.space.base is None and built.algorithm.space.extra_nodes == 3
    assert isinstance(built.hurdles, ProgressiveHurdles) and built.fec.mode == "output"


def test_per_environment_budgets_override_the_scaled_ones():
    config = load_config("[evaluator]\nenvs = ['Acrobot']\nbudget_scale = 0.1\n"
                         "[evaluator.budgets]\nCartPole = {episodes = 400}")
    evaluator = runner.make_evaluator(config)
    assert evaluator.budgets["CartPole"].episodes == 400  # the hurdle keeps its budget
    assert evaluator.budgets["Acrobot"].episodes == 40


def test_run_writes_a_store_with_the_config_and_finished_trials(finished_store):
    store = RunStore.open(finished_store, readonly=True)
    try:
        assert store.config == tiny().to_dict()
        counts = store.counts()
        assert counts["done"] + counts["failed"] >= 1
        assert counts["proposed"] == counts["running"] == 0
        assert store.finished() == 8
        workers = {r["worker"] for r in store.db.execute(
            "SELECT worker FROM trials WHERE status IN ('done','failed')")}
        assert workers <= {"local-0", "local-1"}
    finally:
        store.close()


def test_run_refuses_an_existing_store(finished_store):
    with pytest.raises(StoreError, match="already exists; use `evo resume"):
        runner.run(tiny(), finished_store, progress=False)


def test_resume_of_a_finished_run_does_nothing(finished_store, tmp_path, monkeypatch):
    path = copy(finished_store, tmp_path)
    before = finished_ids(path)
    started = []
    monkeypatch.setattr(workers_pkg, "LocalPool", lambda *a, **k: started.append(1))
    progress = runner.resume(path, progress=False)
    assert progress.trials == 8 and progress.target == 8 and not started
    assert finished_ids(path) == before


def test_resume_extends_a_run(finished_store, tmp_path):
    path = copy(finished_store, tmp_path)
    before = finished_ids(path)
    updates = []
    progress = runner.resume(path, trials=11, workers=1, progress=updates.append)
    assert progress.trials == 11 and updates and updates[-1].trials == 11
    after = finished_ids(path)
    assert after[:len(before)] == before and len(after) == 11
    store = RunStore.open(path, readonly=True)
    assert store.config["run"]["trials"] == 11  # the new target is recorded
    assert store.config["workers"]["workers"] == 2  # session overrides are not
    store.close()
    with pytest.raises(ConfigError, match="already finished 11"):
        runner.resume(path, trials=5, progress=False)


def test_interrupted_run_stops_cleanly_and_resumes(tmp_path):
    """Ctrl-C in the middle: workers are closed, nothing finished is lost, resume
    re-issues what was in flight and finishes every trial exactly once."""
    path = tmp_path / "int.db"
    pools = []
    real_pool = workers_pkg.LocalPool

    def pool(*args, **kwargs):
        pools.append(real_pool(*args, **kwargs))
        return pools[-1]

    def interrupt(p: Progress) -> None:
        if p.trials >= 3:
            raise KeyboardInterrupt

    workers_pkg.LocalPool = pool  # what the "local" backend starts
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.run(tiny(), path, progress=interrupt)
    finally:
        workers_pkg.LocalPool = real_pool
    assert pools and pools[0]._slots == []  # closed: no worker left running
    done_before = finished_ids(path)
    assert 3 <= len(done_before) < 8
    progress = runner.resume(path, progress=False)
    assert progress.trials == 8
    after = finished_ids(path)
    # nothing finished is lost (workers finish out of order, so compare as sets)
    assert set(done_before) <= set(after) and len(after) == len(set(after)) == 8
    store = RunStore.open(path, readonly=True)
    assert store.counts()["proposed"] == store.counts()["running"] == 0
    store.close()


def test_status_reports_progress_rates_and_a_leaderboard(finished_store):
    text = runner.status(finished_store)
    for needle in ("run:        tiny", "progress:   8/8 trials finished (100.0%)",
                   "status:     proposed 0, running 0, done", "best:", "duplicates:",
                   "hurdle cut:", "failed:", "leaderboard (top 10 unique programs):",
                   "CartPole", "Q(s,a)"):
        assert needle in text, needle
    top1 = runner.status(finished_store, top=1)
    board = top1.split("leaderboard")[1].split("lineage of the best program")[0]
    assert len(board.strip().splitlines()) <= 4  # title, header, one row, its formula
    assert "lineage of the best program (trial" in top1 and "mutations from the seed" in top1


def test_status_reads_while_a_run_holds_the_store_open(finished_store, tmp_path):
    path = copy(finished_store, tmp_path)
    writer = RunStore.open(path)
    with writer.transaction():  # a writer mid-transaction does not block readers
        writer.db.execute("UPDATE trials SET worker='x' WHERE id=1")
        assert "8/8 trials" in runner.status(path)
        paths = export(path, tmp_path / "ds", top=3)
        assert paths["jsonl"].read_text().count("\n") >= 1
    writer.close()


def test_progress_reporters():
    start = Progress(trials=2, target=10, evaluated=2, best_fitness=0.5, best_trial=1)
    stream = io.StringIO()
    lines = runner.ProgressLines(start, every=3, stream=stream)
    for n in range(3, 11):
        lines(Progress(trials=n, target=10, evaluated=n, best_fitness=0.7, best_trial=3))
    printed = stream.getvalue().splitlines()
    assert [line.split()[0] for line in printed] == ["5/10", "8/10", "10/10"]
    assert "best 0.700 (trial 3)" in printed[-1]
    stream = io.StringIO()
    bar = runner.ProgressBar(start, "tiny", stream=stream)
    bar(Progress(trials=4, target=10, evaluated=4, duplicates=1, best_fitness=0.75,
                 best_trial=4))
    bar.close()
    out = stream.getvalue()
    assert "tiny" in out and "4/10" in out and "best 0.750" in out and "eval/min" in out
    assert "dup 25%" in out and "hurdle 0%" in out


def test_ray_backend_is_wired_lazily(monkeypatch):
    calls = {}

    class FakeRay:
        def __init__(self, evaluate, address, task_timeout=None, retries=1, threads=1):
            calls.update(evaluate=evaluate, address=address, timeout=task_timeout,
                         retries=retries, threads=threads)

    fake = types.SimpleNamespace(RayBackend=FakeRay)
    monkeypatch.setitem(sys.modules, "evo.workers.ray_backend", fake)
    config = runner.with_overrides(tiny(**{"workers.task_timeout": 30}), backend="ray",
                                   address="127.0.0.1:6379")
    runner.build(config).backend()
    assert calls["address"] == "127.0.0.1:6379" and calls["timeout"] == 30.0
    assert calls["threads"] == 1  # [workers] threads_per_worker reaches the Ray tasks
    assert isinstance(calls["evaluate"], runner.CandidateEvaluator)
    runner.build(runner.with_overrides(tiny(), backend="ray")).backend()
    assert calls["address"] == "auto"
    monkeypatch.setitem(sys.modules, "evo.workers.ray_backend", None)  # not importable
    with pytest.raises(ConfigError, match="needs Ray"):
        runner.build(config)
    local = runner.build(runner.with_overrides(config, backend="local")).backend
    assert local.__name__ == "local"
    with pytest.raises(ConfigError, match="--workers = 0"):
        runner.with_overrides(tiny(), workers=0)


def test_candidate_evaluator_never_draws_a_progress_bar(monkeypatch):
    seen = {}

    class Spy:
        def evaluate(self, program, progress=None, budget_scale=1.0):
            seen.update(progress=progress, scale=budget_scale)
            return {"status": "ok", "fitness": 1.0}

    runner.CandidateEvaluator(Spy())(None, budget_scale=0.5)
    assert seen == {"progress": False, "scale": 0.5}
    assert LocalPool is workers_pkg.LocalPool


@pytest.mark.parametrize("mode", ["training", "output"])
def test_first_twin_finds_the_first_program_that_trains_like_td(tmp_path, mode):
    from graphs.core.equivalence import FEC
    from graphs.rl_loss.library import builtin, from_steps

    # TD written another way: 0.5·(γ·max Qt(s′,·) − (Q(s,a) − r))², as search seed 7 found it
    td = from_steps([("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("Sub", 1, "r_t"),
                     ("QValues", "Q_targ", "s_tp1"), ("Max", 3), ("Mul", "gamma", 4),
                     ("SqDist", 5, 2)])
    other = builtin("dqnreg")
    fec = FEC(mode)
    config = tiny().to_dict()
    config["fec"]["mode"] = mode
    store = RunStore.create(tmp_path / "run.db", config)
    try:
        ids = [store.add_trial(p, fec(p), "", None, "seed", g, None)
               for g, p in enumerate([other, other, td, builtin("dqn")])]
    finally:
        store.close()
    twin = runner.first_twin(tmp_path / "run.db", builtin("dqn"))
    assert twin is not None and twin.trial == ids[2] and twin.generation == 2
    assert "max_a' Qt(s',a')" in twin.formula and twin.minutes >= 0
    assert runner.first_twin(tmp_path / "run.db", builtin("ddqn")) is None
    assert "TD (DQN's loss) rediscovered: trial" in "\n".join(runner._twin_lines(twin, "dqn"))
    # evo status shows it where the stored fingerprints are training-mode ones
    text = runner.status(tmp_path / "run.db")
    assert (f"TD:         trial {ids[2]} (generation 2)" in text) == (mode == "training")
