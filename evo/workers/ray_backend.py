"""Evaluations on a Ray cluster: the same semantics as the local pool, on many machines.

The driver (the search loop, with the run store) stays on the machine that runs
``evo run``; every evaluation is a Ray task running :func:`evo.workers.base.run_task` on
some worker of the cluster. Start a cluster with ``ray start --head`` (see
``docs/cluster.md``) and point a run at it with ``--backend ray --address
HOST:PORT`` (or ``--address auto`` on the head node).

Failures behave as with :class:`~evo.workers.base.LocalPool`:

* an exception inside the evaluation is caught on the worker and comes back as an
  ``"error"`` result with the exception's text;
* a worker process that dies mid-evaluation (segfault, SIGKILL, the node's memory
  monitor) costs only that evaluation: Ray re-issues the task up to ``retries``
  times, and only then is it recorded as failed (``"ray: WorkerCrashedError: ..."``);
* a task that runs longer than ``task_timeout`` is cancelled (its worker process is
  killed) and recorded as ``"timeout"``.

Each task caps its worker's BLAS/OpenMP (and XLA) threads at ``threads`` (see
:func:`evo.workers.base.limit_threads`) and reserves as many CPUs, so Ray's one task per
CPU never oversubscribes a node.

Every node needs the same evo (and Ray and Python) version as the driver: tasks and
the evaluator travel between them as pickles that refer to evo's modules.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import ray  # at import time, so that `import evo.workers.ray_backend` fails early without Ray

from evo.errors import ConfigError
from evo.workers import base as _workers
from evo.workers.base import Backend, Outcome, Task

_CONNECT_TIMEOUT = 5.0  # seconds to reach the cluster's head before giving up
_RESOURCES_TTL = 5.0  # seconds between refreshes of the cluster's CPU count
_START_HINT = ("start one with `ray start --head --port=6379` (and `ray start "
               "--address=HEAD:6379` on the other nodes), or use --backend local")


def ray_task(evaluate: Callable[[Any], Any], task: Task,
             threads: int = 1) -> tuple[dict[str, Any], str, int]:
    """The Ray task: evaluate ``task`` on a worker (its process title is ``ray::ray_task``)
    with at most ``threads`` BLAS/OpenMP threads.

    Returns the evaluation (exceptions already turned into ``"error"`` results by
    :func:`evo.workers.base.run_task`), a worker label ``ray:<node ip>:<pid>`` and the
    attempt number (0 on the first try, n after n retries by Ray)."""
    _workers.limit_threads(threads)
    result = _workers.run_task(evaluate, task)
    try:
        node = ray.util.get_node_ip_address()
    except Exception:  # pragma: no cover - labels are cosmetic
        node = "ray"
    try:  # not public API; only used to report how often Ray re-issued the task
        attempt = int(ray._private.worker.global_worker.core_worker
                      .get_current_task_attempt_number())
    except Exception:  # pragma: no cover
        attempt = 0
    return result, f"ray:{node}:{os.getpid()}", attempt


def _short(err: BaseException, limit: int = 300) -> str:
    """``<type>: <first line of the message>`` of a Ray error, unwrapping task errors."""
    cause = getattr(err, "cause", None)
    shown = cause if isinstance(cause, BaseException) else err
    lines = [ln.strip() for ln in str(shown).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    name = type(err).__name__
    if shown is not err:
        name = f"{name} ({type(shown).__name__})"
    return f"{name}: {text}" if text else name


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_reachable(address: str) -> None:
    """Fail fast (ConfigError) when nothing listens where Ray would connect.

    ``ray.init`` retries an unreachable head for many minutes; a plain TCP connect
    tells within seconds. The address is resolved as Ray resolves it: ``auto`` reads
    ``RAY_ADDRESS`` or the address of the last ``ray start`` on this machine, and Ray
    replaces ``127.0.0.1``/``localhost`` by this machine's network address unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set."""
    from ray._private import services

    try:
        if address.startswith("ray://"):
            target = address[len("ray://"):]
        else:
            target = services.canonicalize_bootstrap_address_or_die(address)
    except (ConnectionError, ValueError) as err:
        raise ConfigError(f"cannot connect to a Ray cluster at {address!r} ({err}): "
                          f"{_START_HINT}") from None
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as err:
        where = address if target == address else f"{address} (resolved to {target})"
        given = address.rpartition(":")[0].strip("[]")
        hint = ""
        if _is_loopback(given) and not _is_loopback(host):
            hint = (" (Ray replaced the loopback address by this machine's address; for a "
                    "cluster started on loopback only, set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "
                    "in the environment of both `ray start` and the run.)")
        raise ConfigError(f"cannot connect to a Ray cluster at {where}: {err}; "
                          f"{_START_HINT}.{hint}") from None


_open_backends = 0  # RayBackends not yet closed, in this process
_we_connected = False  # whether a RayBackend (not the user) called ray.init


class RayBackend(Backend):
    """Runs evaluations as Ray tasks on a running Ray cluster.

    Args:
        evaluate: called with a Program on a worker, returns an evaluation (a dict or
            an object with ``to_dict()``); pickled once into the object store.
        address: ``"auto"`` (the cluster this machine belongs to) or ``"HOST:PORT"``
            of the head node's GCS (``ray start --head --port=PORT``).
        task_timeout: seconds after which a task (counted from its submission) is
            cancelled, its worker process killed, and the task recorded as
            ``"timeout"``.
        retries: how often Ray re-issues a task whose worker process died before the
            task is recorded as failed. Exceptions inside the evaluation are never
            retried: they are the candidate's result.
        num_cpus_per_task: CPUs Ray reserves per evaluation (default: ``threads``);
            the backend's capacity is the cluster's CPUs divided by this.
        threads: BLAS/OpenMP threads per evaluation (``[workers] threads_per_worker``).
    """

    name = "ray"

    def __init__(self, evaluate: Callable[[Any], Any], address: str = "auto",
                 task_timeout: float | None = None, retries: int = 2,
                 num_cpus_per_task: float | None = None, threads: int = 1) -> None:
        _workers.thread_env(threads)  # validates
        if num_cpus_per_task is None:
            num_cpus_per_task = float(threads)
        if not isinstance(address, str) or not address:
            raise ConfigError(f"address = {address!r}: must be \"auto\" or \"HOST:PORT\" of "
                              "a Ray cluster's head node")
        if task_timeout is not None and not task_timeout > 0:
            raise ConfigError(f"task_timeout = {task_timeout!r}: must be positive seconds")
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise ConfigError(f"retries = {retries!r}: must be a non-negative integer")
        if not isinstance(num_cpus_per_task, int | float) or not num_cpus_per_task > 0:
            raise ConfigError(f"num_cpus_per_task = {num_cpus_per_task!r}: must be a "
                              "positive number of CPUs")
        self.address = address
        self.task_timeout = task_timeout
        self.retries = retries
        self.num_cpus_per_task = float(num_cpus_per_task)
        self.threads = threads
        global _open_backends, _we_connected
        if not ray.is_initialized():  # else: use the connection the process already has
            _check_reachable(address)
            kwargs: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            if not address.startswith("ray://"):  # Ray Client takes fewer options
                kwargs.update(ignore_reinit_error=True, include_dashboard=False)
            try:
                ray.init(address=address, **kwargs)
            except Exception as err:
                raise ConfigError(f"cannot connect to a Ray cluster at {address!r}: "
                                  f"{_short(err)}; {_START_HINT}") from None
            _we_connected = True
        try:
            self._evaluate = ray.put(evaluate)  # pickled once, shared by every task
        except Exception as err:
            if _open_backends == 0 and _we_connected:
                _we_connected = False
                ray.shutdown()
            raise ConfigError(f"the evaluator {evaluate!r} cannot be sent to Ray workers "
                              f"(it does not pickle: {_short(err)})") from None
        _open_backends += 1
        self._remote = ray.remote(max_retries=retries, retry_exceptions=False,
                                  num_cpus=self.num_cpus_per_task)(ray_task)
        self._refs: dict[Any, tuple[Task, float]] = {}  # ObjectRef -> (task, submitted at)
        self._capacity = 1
        self._capacity_at = float("-inf")
        self._closed = False

    def __repr__(self) -> str:
        return (f"RayBackend(address={self.address!r}, capacity={self.capacity}, "
                f"running={self.running})")

    # -- Backend ---------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        """The cluster's CPUs / ``num_cpus_per_task`` (at least 1), refreshed every 5 s so
        that nodes joining or leaving a running search are used."""
        now = time.monotonic()
        if now - self._capacity_at > _RESOURCES_TTL and not self._closed:
            try:
                cpus = float(ray.cluster_resources().get("CPU", 0.0))
                self._capacity = max(1, int(cpus / self.num_cpus_per_task + 1e-9))
            except Exception:  # keep the last known value if the GCS hiccups
                pass
            self._capacity_at = now
        return self._capacity

    @property
    def running(self) -> int:
        return len(self._refs)

    def submit(self, task: Task) -> None:
        if self._closed:
            raise RuntimeError("this RayBackend is closed")
        task.attempts += 1
        ref = self._remote.remote(self._evaluate, task, self.threads)
        self._refs[ref] = (task, time.monotonic())

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._refs:
            return []
        timeout = max(0.0, timeout)
        if self.task_timeout is not None:
            first_deadline = min(t0 for _, t0 in self._refs.values()) + self.task_timeout
            timeout = max(0.0, min(timeout, first_deadline - time.monotonic()))
        refs = list(self._refs)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        outcomes = [self._collect(ref) for ref in ready]
        if self.task_timeout is not None:
            outcomes += self._expire()
        return outcomes

    def _collect(self, ref: Any) -> Outcome:
        task, t0 = self._refs.pop(ref)
        try:
            result, worker, attempt = ray.get(ref)
        except Exception as err:  # the task failed in Ray itself, after Ray's retries
            from ray.exceptions import RayTaskError, TaskCancelledError

            retried = 0 if isinstance(err, RayTaskError | TaskCancelledError) else self.retries
            return Outcome(task.trial_id, {
                "status": "error", "fitness": 0.0, "seconds": time.monotonic() - t0,
                "reason": f"ray: {_short(err)}"}, "ray", retried,
                {"error_type": type(err).__name__})
        return Outcome(task.trial_id, result, worker, attempt, {"attempt": attempt})

    def _expire(self) -> list[Outcome]:
        now = time.monotonic()
        late = [ref for ref, (_, t0) in self._refs.items()
                if now - t0 > self.task_timeout]  # type: ignore[operator]
        outcomes = []
        for ref in late:
            task, t0 = self._refs.pop(ref)
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or gone: nothing left to stop
                pass
            outcomes.append(Outcome(task.trial_id, {
                "status": "timeout", "fitness": 0.0, "seconds": now - t0,
                "reason": f"exceeded the per-candidate timeout of {self.task_timeout:g} s"},
                "ray", 0))
        return outcomes

    def close(self) -> None:
        """Cancel what is still running and disconnect (only if this backend connected)."""
        if self._closed:
            return
        self._closed = True
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        self._refs.clear()
        self._evaluate = None
        global _open_backends, _we_connected
        _open_backends -= 1
        if _open_backends == 0 and _we_connected:  # the last one out disconnects
            _we_connected = False
            if ray.is_initialized():
                ray.shutdown()
