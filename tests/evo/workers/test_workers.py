"""The local worker pool: results, and every way an evaluation can go wrong."""

from __future__ import annotations

import ctypes
import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from evo.errors import ConfigError
from evo.workers.base import LocalPool, Outcome, Task, run_task
from graphs.core.fileformat import dumps
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

ROOT = Path(__file__).resolve().parents[3]
PROGRAMS = {name: builtin(name) for name in ("dqn", "ddqn", "dqnreg", "cql")}
JSON = {name: dumps(p) for name, p in PROGRAMS.items()}
NAMES = {formula(p): name for name, p in PROGRAMS.items()}


def name_of(program) -> str:
    return NAMES[formula(program)]


def drain(pool: LocalPool, n: int, timeout: float = 60.0) -> list[Outcome]:
    """Poll until ``n`` outcomes arrived."""
    out: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, f"only {len(out)} of {n} outcomes: {out}"
        out.extend(pool.poll(timeout=0.5))
    return out


def pids(pool: LocalPool) -> list[int]:
    return [s["proc"].pid for s in pool._slots]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def evaluate(program, budget_scale: float = 1.0):
    """dqn: ok; ddqn: raises; dqnreg: slow; cql: segfault."""
    name = name_of(program)
    if name == "ddqn":
        raise ValueError("the loss exploded")
    if name == "dqnreg":
        time.sleep(30)
    if name == "cql":
        faulthandler.disable()  # pytest's handler would dump its stack into the output
        ctypes.string_at(0)  # segmentation fault
    return {"status": "ok", "fitness": float(len(program.nodes)) * budget_scale,
            "pid": os.getpid()}


@pytest.fixture
def pool_factory():
    pools: list[LocalPool] = []

    def make(evaluate_fn=evaluate, **kw) -> LocalPool:
        pool = LocalPool(evaluate_fn, **kw)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_results_in_any_order_with_worker_names(pool_factory):
    pool = pool_factory(workers=2)
    assert pool.capacity == 2 and pool.running == 0 and pool.poll(0.1) == []
    for i in range(6):
        pool.submit(Task(i, JSON["dqn"], budget_scale=0.5 if i % 2 else 1.0))
    assert pool.running == 6  # two running, four queued
    outcomes = drain(pool, 6)
    assert sorted(o.trial_id for o in outcomes) == list(range(6))
    n = len(PROGRAMS["dqn"].nodes)
    for o in outcomes:
        assert o.result["status"] == "ok" and o.retried == 0
        assert o.result["fitness"] == n * (0.5 if o.trial_id % 2 else 1.0)
        assert o.result["seconds"] >= 0 and o.worker in ("local-0", "local-1")
    assert {o.result["pid"] for o in outcomes} <= set(pids(pool))
    assert pool.running == 0


def test_exception_becomes_an_error_outcome_with_its_text(pool_factory):
    pool = pool_factory(workers=1)
    before = pids(pool)
    pool.submit(Task(1, JSON["ddqn"]))
    pool.submit(Task(2, JSON["dqn"]))
    by_id = {o.trial_id: o for o in drain(pool, 2)}
    err = by_id[1].result
    assert err["status"] == "error" and err["fitness"] == 0.0
    assert "ValueError: the loss exploded" in err["reason"]
    assert "test_workers.py" in err["reason"]  # where it happened
    assert by_id[2].result["status"] == "ok"
    assert pids(pool) == before  # an exception does not cost the worker


def test_run_task_in_process_handles_bad_program_json():
    out = run_task(evaluate, Task(1, '{"format": "nope"}'))
    assert out["status"] == "error" and out["reason"] and "seconds" in out


def test_segfault_is_retried_then_fails_with_sigsegv(pool_factory):
    pool = pool_factory(workers=2, retries=1)
    pool.submit(Task(7, JSON["cql"]))
    pool.submit(Task(8, JSON["dqn"]))
    by_id = {o.trial_id: o for o in drain(pool, 2)}
    bad = by_id[7]
    assert bad.result["status"] == "error"
    assert "SIGSEGV" in bad.result["reason"] and "attempt 2" in bad.result["reason"]
    assert bad.retried == 1
    assert by_id[8].result["status"] == "ok"
    # The dead workers were replaced; the pool keeps working.
    pool.submit(Task(9, JSON["dqn"]))
    pool.submit(Task(10, JSON["dqn"]))
    assert all(o.result["status"] == "ok" for o in drain(pool, 2))
    assert all(s["proc"].is_alive() for s in pool._slots)


def test_segfault_without_retries_fails_at_once(pool_factory):
    pool = pool_factory(workers=1, retries=0)
    pool.submit(Task(1, JSON["cql"]))
    (o,) = drain(pool, 1)
    assert "SIGSEGV" in o.result["reason"] and "attempt 1" in o.result["reason"]
    assert o.retried == 0


def test_timeout_kills_and_replaces_the_worker(pool_factory):
    pool = pool_factory(workers=2, task_timeout=1.0)
    before = pids(pool)
    start = time.monotonic()
    pool.submit(Task(1, JSON["dqnreg"]))  # sleeps 30 s
    pool.submit(Task(2, JSON["dqn"]))
    by_id = {o.trial_id: o for o in drain(pool, 2, timeout=20)}
    assert time.monotonic() - start < 10
    slow = by_id[1].result
    assert slow["status"] == "timeout" and slow["fitness"] == 0.0
    assert "timeout of 1 s" in slow["reason"] and slow["seconds"] >= 1.0
    after = pids(pool)
    replaced = [p for p in before if p not in after]
    assert len(replaced) == 1 and wait_dead(replaced[0])
    # The pool keeps working at full capacity afterwards.
    for i in range(4):
        pool.submit(Task(10 + i, JSON["dqn"]))
    outcomes = drain(pool, 4)
    assert all(o.result["status"] == "ok" for o in outcomes)
    assert {o.result["pid"] for o in outcomes} <= set(after)


def hog(program, budget_scale: float = 1.0):
    blocks = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GiB
    return {"status": "ok", "fitness": float(len(blocks))}


def vm_size_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmSize")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs RLIMIT_AS and /proc")
def test_memory_blow_up_fails_with_a_memory_error(pool_factory):
    # The limit is on the worker's address space: a forked worker starts as a copy of
    # ours; a spawned one (when this process has loaded JAX, which reserves a large
    # address space) starts fresh, well below 2 GiB.
    limit = 2048 if "jax" in sys.modules else vm_size_mb() + 512
    pool = pool_factory(hog, workers=1, memory_limit_mb=limit)
    pool.submit(Task(1, JSON["dqn"]))
    (o,) = drain(pool, 1)
    assert o.result["status"] == "error" and o.result["reason"].startswith("memory")
    assert pool._slots[0]["proc"].is_alive()


def sleeper(pid_file: str):
    def evaluate_slowly(program, budget_scale: float = 1.0):
        with open(pid_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"status": "ok", "fitness": 1.0, "pid": os.getpid()}

    return evaluate_slowly


def wait_for_lines(path: Path, n: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= n:
                return [int(x) for x in lines]
        time.sleep(0.02)
    raise AssertionError(f"{path}: fewer than {n} lines")


def test_worker_killed_externally_is_replaced_and_its_task_reissued(pool_factory, tmp_path):
    pid_file = tmp_path / "pids"
    pool = pool_factory(sleeper(str(pid_file)), workers=1, retries=1)
    pool.submit(Task(5, JSON["dqn"]))
    (first,) = wait_for_lines(pid_file, 1)
    os.kill(first, signal.SIGKILL)
    (o,) = drain(pool, 1, timeout=30)
    assert o.trial_id == 5 and o.result["status"] == "ok" and o.retried == 1
    second = wait_for_lines(pid_file, 2)[1]
    assert second != first and o.result["pid"] == second == pids(pool)[0]


def test_worker_killed_externally_without_retries_reports_sigkill(pool_factory, tmp_path):
    pid_file = tmp_path / "pids"
    pool = pool_factory(sleeper(str(pid_file)), workers=1, retries=0)
    pool.submit(Task(5, JSON["dqn"]))
    (first,) = wait_for_lines(pid_file, 1)
    os.kill(first, signal.SIGKILL)
    (o,) = drain(pool, 1, timeout=30)
    assert o.result["status"] == "error" and "SIGKILL" in o.result["reason"]


def test_close_stops_the_workers():
    pool = LocalPool(evaluate, workers=2)
    before = pids(pool)
    pool.close()
    assert all(wait_dead(p) for p in before)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"workers": -1}, "workers"),
    ({"workers": 1.5}, "workers"),
    ({"task_timeout": 0}, "task_timeout"),
])
def test_invalid_settings_name_the_parameter(kwargs, name):
    with pytest.raises(ConfigError, match=name):
        LocalPool(evaluate, **kwargs)


DRIVER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from evo.workers.base import LocalPool, Task
    from graphs.core.fileformat import dumps
    from graphs.rl_loss.library import builtin

    def evaluate(program):
        time.sleep(0.3)
        return {{"status": "ok", "fitness": 1.0}}

    pool = LocalPool(evaluate, workers=2)
    print(*[s["proc"].pid for s in pool._slots], flush=True)
    pool.submit(Task(1, dumps(builtin("dqn"))))
    time.sleep(600)
""")


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    workers: list[int] = []
    try:
        workers = [int(x) for x in proc.stdout.readline().split()]
        assert len(workers) == 2
        time.sleep(0.1)
        proc.kill()  # the driver only, as a crash or the OOM killer would
        proc.wait(10)
        assert all(wait_dead(p, timeout=3.0) for p in workers)
    finally:
        proc.stdout.close()
        for p in workers:  # clean up what the driver left behind
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


_BY_VALUE = '''
class Big:
    """Defined outside any importable module: pickled by value, with 4 MB of state."""

    def __init__(self):
        self.blob = bytes(4_000_000)

    def __call__(self, program):
        return {"status": "ok", "fitness": float(len(self.blob))}
'''


class _NotInWorkers:
    """Pickles fine in the driver, but cannot be rebuilt in another process."""

    def __call__(self, program):
        return 1.0

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    if os.environ.get("EVO_TEST_DRIVER_PID") != str(os.getpid()):
        raise RuntimeError("this evaluator only lives in the driver")
    return _NotInWorkers()


@pytest.fixture
def spawned(monkeypatch):
    """Workers start fresh (spawn), as they do once the driver has loaded JAX."""
    monkeypatch.setitem(sys.modules, "jax", sys.modules.get("jax") or object())


def test_a_spawned_pool_takes_a_large_evaluator_pickled_by_value(spawned):
    namespace: dict = {"__name__": "not_a_module"}
    exec(_BY_VALUE, namespace)  # noqa: S102
    with LocalPool(namespace["Big"](), workers=1, task_timeout=120) as pool:
        assert pool.start_method == "spawn"
        pool.submit(Task(1, dumps(builtin("dqn"), compact=True)))
        [outcome] = drain(pool, 1)
    assert outcome.result["fitness"] == 4_000_000.0


def test_an_evaluator_that_workers_cannot_load_is_a_clear_error(spawned, monkeypatch):
    monkeypatch.setenv("EVO_TEST_DRIVER_PID", str(os.getpid()))
    started = time.monotonic()
    with pytest.raises(ConfigError, match="cannot be loaded in a worker process .*only lives"):
        LocalPool(_NotInWorkers(), workers=2)
    assert time.monotonic() - started < 120  # an error, not a hang
