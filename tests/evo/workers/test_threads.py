"""Every evaluation process caps its BLAS/OpenMP threads (issue 11, section 1).

A worker forked from a driver whose OpenBLAS runs several threads must run one (or
``threads_per_worker``); so must `evo eval`, the in-process backend and Ray tasks.
Each test raises the driver's own limit first, so that it fails where a worker
merely inherits the driver's pools.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np  # noqa: F401  (loads OpenBLAS, whose pool threadpoolctl reports)
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from evo.app import cli
from evo.app.config import load_config
from evo.errors import ConfigError
from evo.workers import base as workers_mod
from evo.workers.base import (
    THREAD_VARS,
    XLA_ONE_THREAD,
    InProcess,
    LocalPool,
    Task,
    limit_threads,
    thread_env,
)
from graphs.core.fileformat import dumps
from graphs.rl_loss.library import builtin

DQN = dumps(builtin("dqn"))
MANY = 4  # the driver's limit in these tests: more than a worker may use


def blas_threads() -> int:
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert pools, "numpy's BLAS should be loaded"
    return max(p["num_threads"] for p in pools)


def report(program) -> dict:
    """An evaluator that reports the threads its process may use."""
    return {"status": "ok", "fitness": 1.0, "blas_threads": blas_threads(),
            "env": {k: os.environ.get(k) for k in (*THREAD_VARS, "XLA_FLAGS")}}


def driver_can_use_many() -> None:
    if blas_threads() != MANY:
        pytest.skip("this BLAS does not take a thread count above the core count")


@pytest.fixture
def restore_env(monkeypatch):
    """limit_threads writes os.environ: restore it after the test."""
    for key in (*THREAD_VARS, "XLA_FLAGS"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)
    with threadpool_limits(limits=MANY):
        yield


def one_outcome(backend) -> dict:
    backend.submit(Task(1, DQN))
    deadline = time.monotonic() + 60
    while True:
        out = backend.poll(timeout=0.5)
        if out:
            return out[0].result
        assert time.monotonic() < deadline


@pytest.mark.parametrize("threads", [1, 2])
def test_local_pool_workers_run_threads_per_worker_blas_threads(restore_env, threads):
    driver_can_use_many()
    with LocalPool(report, workers=1, threads=threads) as pool:
        result = one_outcome(pool)
    assert result["blas_threads"] == threads
    assert all(result["env"][k] == str(threads) for k in THREAD_VARS)
    if threads == 1:  # JAX, if an evaluator imports it, gets a single-threaded XLA
        assert all(f in result["env"]["XLA_FLAGS"].split() for f in XLA_ONE_THREAD)
    assert blas_threads() == MANY  # the driver is left alone


XLA_PROBE = """
import os
import jax.numpy as jnp
(jnp.ones((64, 64)) @ jnp.ones((64, 64))).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read() for t in os.listdir("/proc/self/task")]
print(sum("XLAEigen" in n for n in names))
"""


def xla_pool(program) -> dict:
    """An evaluator that runs JAX and reports the threads of XLA's CPU pool."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(XLA_PROBE, {})  # the probe the test also runs in a plain process
    return {"status": "ok", "fitness": 1.0, "xla_pool_threads": int(printed.getvalue())}


@functools.cache
def _uncapped_pool_threads() -> int:
    """The control: XLA's pool threads in a fresh process without PJRT_NPROC (run once)."""
    base = {k: v for k, v in os.environ.items() if k != "PJRT_NPROC"}
    return int(subprocess.run([sys.executable, "-c", XLA_PROBE], env=base, text=True,
                              capture_output=True, check=True).stdout)


def probe_xla_pool(code: str = XLA_PROBE, **env: str) -> int:
    """XLA's CPU pool threads in a fresh process, with ``env`` and no PJRT_NPROC
    otherwise; skips where the machine cannot tell one pool thread from several."""
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2+ usable cores: with one, XLA's pool has one thread anyway")
    base = {k: v for k, v in os.environ.items() if k != "PJRT_NPROC"}
    uncapped = _uncapped_pool_threads()
    if uncapped < 2:
        pytest.skip(f"XLA's CPU pool threads are not visible by name here ({uncapped})")
    return int(subprocess.run([sys.executable, "-c", code], env={**base, **env}, text=True,
                              capture_output=True, check=True).stdout)


def test_importing_evo_rl_gives_jax_one_cpu_thread_unless_told_otherwise():
    """evo.rl sets PJRT_NPROC=1 before JAX starts (one trainer alone ran 1.39x faster on
    46% less CPU than with a pool thread per core); a user's own setting stands."""
    assert probe_xla_pool("import evo.rl\n" + XLA_PROBE) == 1
    assert probe_xla_pool("import evo.rl\n" + XLA_PROBE, PJRT_NPROC="2") == 2


def test_local_pool_workers_run_one_xla_thread_each(restore_env):
    """JAX's CPU client sizes its thread pool by the cores a process may use, not by the
    BLAS variables: two workers with two pool threads each ran the population trainer at
    0.61x the speed on 2 cores (bench/bench_threads.py --section xla). A worker gets one."""
    probe_xla_pool()  # skips where the pool cannot be seen
    with LocalPool(xla_pool, workers=1, threads=1) as pool:
        result = one_outcome(pool)
    assert result["xla_pool_threads"] == 1, result
    with LocalPool(xla_pool, workers=1, threads=2) as pool:
        assert one_outcome(pool)["xla_pool_threads"] == 2


FMA_PROBE = """
import jax.numpy as jnp
from jax import jit
a = jnp.full((64,), 1 + 2**-12, jnp.float32)
r = float(jit(lambda a, c: a * a + c)(a, jnp.full((64,), -1.0, jnp.float32))[0])
print("fma" if r != 2**-11 else "no fma")  # a fused a*a + c keeps the 2**-24 term
"""


@pytest.mark.parametrize("order", ["evo.rl, then the thread cap", "the thread cap, then evo.rl"])
def test_the_thread_cap_leaves_the_trainers_fma_flag_working(order):
    """XLA stops reading XLA_FLAGS at a word that is not a flag: evo's thread cap once
    added `intra_op_parallelism_threads=1`, and a process that capped its threads before
    importing evo.rl (`evo eval`, Ray tasks, bench/bench_population.py) compiled with
    fused multiply-adds, batch-dependent in the last bit (evo/rl/xla_flags.py)."""
    steps = ["import evo.rl", "from evo.workers.base import limit_threads; limit_threads(1)"]
    if order.startswith("the thread cap"):
        steps.reverse()
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "EVO_XLA_FMA")}
    env["EVO_JAX_CACHE"] = "off"
    out = subprocess.run([sys.executable, "-c", "\n".join(steps) + FMA_PROBE], env=env,
                         text=True, capture_output=True, check=True).stdout.strip()
    assert out == "no fma"
    env["XLA_FLAGS"] = ""  # the probe can fail: XLA's default fuses
    plain = subprocess.run([sys.executable, "-c", FMA_PROBE], env=env, text=True,
                           capture_output=True, check=True).stdout.strip()
    if plain != "fma":
        pytest.skip("this CPU or XLA does not fuse a*b + c, so FMA cannot be told apart")
    assert all(flag.startswith("--") for flag in XLA_ONE_THREAD)


def test_local_pool_default_workers_share_the_cores(restore_env):
    cores = os.cpu_count() or 1
    with LocalPool(report, threads=1) as pool:
        assert pool.capacity == cores
    if cores >= 2:
        with LocalPool(report, threads=2) as pool:
            assert pool.capacity == cores // 2


def test_in_process_backend_caps_threads_during_an_evaluation_only(restore_env):
    driver_can_use_many()
    backend = InProcess(report)
    result = one_outcome(backend)
    assert result["blas_threads"] == 1 and result["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert blas_threads() == MANY  # restored afterwards
    assert backend.running == 0


def test_limit_threads_sets_the_variables_and_the_loaded_pools(restore_env, monkeypatch):
    driver_can_use_many()
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    limit_threads(1)
    assert blas_threads() == 1
    assert all(os.environ[k] == "1" for k in THREAD_VARS)
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *XLA_ONE_THREAD]
    limit_threads(1)  # idempotent: the XLA flags are not repeated
    assert os.environ["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", *XLA_ONE_THREAD]
    limit_threads(3)
    assert blas_threads() == 3 and os.environ["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_thread_counts_are_validated(bad):
    with pytest.raises(ConfigError, match="threads_per_worker"):
        thread_env(bad)
    with pytest.raises(ConfigError, match="threads_per_worker"):
        LocalPool(report, workers=1, threads=bad)


def test_config_threads_per_worker_defaults_to_one_and_reaches_the_pool():
    assert load_config({}).workers.threads_per_worker == 1
    config = load_config("[workers]\nworkers = 1\nthreads_per_worker = 2\n")
    assert config.workers.threads_per_worker == 2
    assert load_config(config.to_dict()) == config
    from evo.app.runner import make_backend_factory

    pool = make_backend_factory(config, report)()
    try:
        assert pool.threads == 2
    finally:
        pool.close()
    with pytest.raises(ConfigError, match=r"workers\.threads_per_worker = 0"):
        load_config("[workers]\nthreads_per_worker = 0\n")


def test_evo_eval_limits_its_threads(restore_env, monkeypatch, capsys):
    driver_can_use_many()
    seen = {}

    class Evaluator:
        def evaluate(self, program):
            seen["blas_threads"] = blas_threads()
            seen["env"] = os.environ["OPENBLAS_NUM_THREADS"]
            return SimpleNamespace(fitness=1.0, scores={}, status="ok", reason="", hurdle=None,
                                   seconds=0.0, steps=0, envs=[])

    monkeypatch.setattr(cli, "_eval_evaluator", lambda args: Evaluator())
    assert cli.main(["eval", "dqn", "--env", "CartPole"]) == 0
    assert seen == {"blas_threads": 1, "env": "1"}
    assert json.loads(capsys.readouterr().out)["fitness"] == 1.0
    with threadpool_limits(limits=MANY):
        assert cli.main(["eval", "dqn", "--env", "CartPole", "--threads", "2"]) == 0
        assert seen == {"blas_threads": 2, "env": "2"}
    assert cli.main(["eval", "dqn", "--threads", "0"]) == 2
    assert "--threads 0" in capsys.readouterr().err


def test_ray_task_limits_its_threads(restore_env):
    """The Ray task body (run here, as a worker would) caps its threads first."""
    driver_can_use_many()
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'evo-search[ray]')")
    from evo.workers import ray_backend
    result, _worker, _attempt = ray_backend.ray_task(report, Task(1, DQN), 1)
    assert result["blas_threads"] == 1 and result["env"]["OMP_NUM_THREADS"] == "1"
    assert workers_mod.thread_env(2)["OPENBLAS_NUM_THREADS"] == "2"
