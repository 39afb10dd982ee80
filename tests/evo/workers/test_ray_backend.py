"""The Ray backend against a real local Ray cluster (2 CPUs, loopback only).

The module starts its own cluster with ``ray start --head --block`` and stops it by
signalling that process (and, as a fallback, its descendants by pid): nothing else
running on the machine is touched, unlike ``ray stop``, which stops every Ray
process of the user.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# Loopback only: without this Ray replaces 127.0.0.1 by the machine's network address
# (in `ray start` and in the driver). It is read when Ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: `pip install 'ray>=2.40'` to test the Ray backend")
if ray._private.ray_constants.ENABLE_RAY_CLUSTER:  # Ray was imported before this module
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False

from evo.algorithms.base import SeedSpace  # noqa: E402
from evo.algorithms.evolution import RegularizedEvolution  # noqa: E402
from evo.errors import ConfigError  # noqa: E402
from evo.search.loop import Search  # noqa: E402
from evo.search.store import RunStore  # noqa: E402
from evo.workers.base import LocalPool, Outcome, Task  # noqa: E402
from evo.workers.ray_backend import RayBackend  # noqa: E402
from graphs.core.fileformat import dumps  # noqa: E402
from graphs.rl_loss.library import builtin  # noqa: E402

# The evaluators below live in this test module, which Ray's workers cannot import:
# ship them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

HEAD_START_TIMEOUT = 90.0


# -- evaluators ------------------------------------------------------------------------------
def fitness_of(program) -> dict:
    return {"status": "ok", "fitness": float(len(program.nodes)) / 10.0}


def explode(program) -> dict:
    raise ValueError(f"no good: {len(program.nodes)} nodes")


def sleep_long(program) -> dict:
    time.sleep(60)
    return {"status": "ok", "fitness": 1.0}


def sleep_one_second(program) -> dict:
    time.sleep(1.0)
    return fitness_of(program)


# -- the cluster -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the blocking `ray start` (it shuts its cluster down), then SIGKILL any
    leftover process of that cluster, by pid."""
    family = _descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [p for p in family if Path(f"/proc/{p}").exists() and _title(p)]
        if not alive:
            return
        time.sleep(0.2)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray head on 127.0.0.1; yields ``(address, pid of ray start)``."""
    port = _free_port()
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    ray_cli = Path(sys.executable).parent / "ray"
    cmd = [str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
           "--node-ip-address=127.0.0.1", "--include-dashboard=false",
           "--disable-usage-stats", "--object-store-memory=100000000", "--block"]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT
        while b"Ray runtime started" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`ray start --head` did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(proc)


@pytest.fixture
def address(cluster) -> str:
    return cluster[0]


PROGRAM = dumps(builtin("dqn"))


def _drain(backend, limit: float = 60.0) -> list[Outcome]:
    out: list[Outcome] = []
    deadline = time.monotonic() + limit
    while backend.running:
        assert time.monotonic() < deadline, "tasks did not come back"
        out += backend.poll(1.0)
    return sorted(out, key=lambda o: o.trial_id)


def _without_seconds(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "seconds"}


# -- the tests -------------------------------------------------------------------------------
def test_results_match_the_local_pool(address):
    programs = [dumps(builtin(name)) for name in ("dqn", "ddqn", "dqnreg", "cql")]
    with RayBackend(fitness_of, address) as backend:
        for i, program in enumerate(programs):
            backend.submit(Task(i, program))
        assert backend.running == len(programs)
        remote = _drain(backend)
        assert backend.running == 0
        assert backend.poll(0.1) == []
    with LocalPool(fitness_of, workers=1) as pool:
        for i, program in enumerate(programs):
            pool.submit(Task(i, program))
        local = _drain(pool)
    assert [o.trial_id for o in remote] == [0, 1, 2, 3]
    assert [_without_seconds(o.result) for o in remote] == \
        [_without_seconds(o.result) for o in local]
    assert all(o.result["seconds"] >= 0 and o.retried == 0 for o in remote)
    assert all(o.worker.startswith("ray:127.0.0.1:") for o in remote)


def test_capacity_is_the_cluster_cpus(address):
    with RayBackend(fitness_of, address) as backend:
        assert backend.capacity == 2
    with RayBackend(fitness_of, address, num_cpus_per_task=2) as backend:
        assert backend.capacity == 1


def test_exception_in_the_evaluator_is_an_error_outcome(address):
    with RayBackend(explode, address) as backend:
        backend.submit(Task(7, PROGRAM))
        (outcome,) = _drain(backend)
    assert outcome.trial_id == 7
    assert outcome.result["status"] == "error"
    assert outcome.result["fitness"] == 0.0
    assert "ValueError: no good: 7 nodes" in outcome.result["reason"]
    assert outcome.retried == 0  # the candidate's failure, not Ray's: never retried


def test_task_timeout(address):
    with RayBackend(sleep_long, address, task_timeout=1.5) as backend:
        start = time.monotonic()
        backend.submit(Task(1, PROGRAM))
        (outcome,) = _drain(backend, limit=30)
        assert time.monotonic() - start < 20
        assert outcome.result["status"] == "timeout"
        assert "1.5 s" in outcome.result["reason"]
        assert backend.running == 0


def test_close_cancels_what_is_still_running(address):
    backend = RayBackend(sleep_long, address)
    backend.submit(Task(1, PROGRAM))
    backend.submit(Task(2, PROGRAM))
    assert backend.poll(0.5) == []
    start = time.monotonic()
    backend.close()
    assert time.monotonic() - start < 10
    assert backend.running == 0
    assert not ray.is_initialized()  # the backend connected, so it disconnected


def test_an_evaluator_that_does_not_pickle_is_a_config_error(address):
    lock = threading.Lock()
    with pytest.raises(ConfigError, match="cannot be sent to Ray workers"):
        RayBackend(lambda program: {"status": "ok", "fitness": float(lock.locked())}, address)
    assert not ray.is_initialized()


def test_unreachable_address_is_a_config_error(monkeypatch):
    assert not ray.is_initialized()
    closed = _free_port()  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot connect to a Ray cluster at 127.0.0.1:{closed}"):
        RayBackend(fitness_of, f"127.0.0.1:{closed}")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed}")
    with pytest.raises(ConfigError, match="ray start --head"):
        RayBackend(fitness_of, "auto")
    assert time.monotonic() - start < 15
    assert not ray.is_initialized()


def test_bad_settings():
    with pytest.raises(ConfigError, match="task_timeout"):
        RayBackend(fitness_of, "auto", task_timeout=0)
    with pytest.raises(ConfigError, match="num_cpus_per_task"):
        RayBackend(fitness_of, "auto", num_cpus_per_task=0)
    with pytest.raises(ConfigError, match="retries"):
        RayBackend(fitness_of, "auto", retries=-1)


def _check_store(store: RunStore, trials: int) -> None:
    rows = store.db.execute("SELECT id, status, fitness FROM trials ORDER BY id").fetchall()
    assert [r["id"] for r in rows] == list(range(1, trials + 1))  # each trial exactly once
    assert store.finished() == trials
    counts = store.counts()
    assert counts["proposed"] == counts["running"] == counts["failed"] == 0
    assert counts["done"] + counts["duplicate"] == trials
    assert all(r["fitness"] is not None for r in rows)


def test_a_full_search_on_ray(address, tmp_path):
    trials = 40
    algorithm = RegularizedEvolution(population_size=8, tournament_size=3,
                                     space=SeedSpace("dqn", 4), seed=1)
    store = RunStore.create(tmp_path / "run.sqlite", {"test": "ray"})
    with RayBackend(fitness_of, address) as backend:
        progress = Search(algorithm, store, backend, trials).run()
    assert progress.trials == trials and progress.failed == 0
    _check_store(store, trials)
    workers = {r[0] for r in store.db.execute("SELECT worker FROM trials WHERE status='done'")}
    assert workers and all(w.startswith("ray:127.0.0.1:") for w in workers)
    store.close()


def test_a_worker_killed_mid_evaluation_costs_only_that_evaluation(cluster, tmp_path):
    """SIGKILL a Ray worker process while it evaluates: Ray re-issues the task, the run
    finishes with every trial recorded exactly once and none failed."""
    address, head_pid = cluster
    trials = 10
    algorithm = RegularizedEvolution(population_size=4, tournament_size=2,
                                     space=SeedSpace("dqn", 4), seed=2)
    store = RunStore.create(tmp_path / "run.sqlite", {"test": "ray-kill"})
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        # A worker that is executing our task has the process title `ray::ray_task`
        # (idle ones show `ray::IDLE`); only this module's cluster is searched.
        time.sleep(1.5)  # let the run get going
        while not stop.is_set() and not killed:
            busy = [p for p in _descendants(head_pid) if _title(p) == "ray::ray_task"]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    outcomes: list[Outcome] = []
    with RayBackend(sleep_one_second, address, retries=2) as backend:
        poll = backend.poll

        def recording_poll(timeout: float) -> list[Outcome]:
            got = poll(timeout)
            outcomes.extend(got)
            return got

        backend.poll = recording_poll  # type: ignore[method-assign]
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            progress = Search(algorithm, store, backend, trials).run()
        finally:
            stop.set()
            thread.join(5)
    assert killed, "no Ray worker was seen executing a task"
    assert progress.trials == trials and progress.failed == 0
    _check_store(store, trials)
    assert all(o.result["status"] == "ok" for o in outcomes)
    assert len({o.trial_id for o in outcomes}) == len(outcomes)  # each reported once
    retried = [o for o in outcomes if o.retried]
    assert len(retried) == 1 and retried[0].retried == 1  # the killed evaluation, re-issued
    assert str(killed[0]) not in retried[0].worker  # ... on another worker process
    store.close()
