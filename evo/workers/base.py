"""Where evaluations run: a local process pool (the default) or a Ray cluster.

A backend takes :class:`Task` s and hands back :class:`Outcome` s as they finish,
in any order. Nothing that happens inside an evaluation stops the run: an
exception, a per-candidate timeout, a memory blow-up or a dying worker process
(e.g. a segfault) all come back as an outcome with ``status`` ``"error"`` or
``"timeout"`` and a reason. A worker that dies is replaced, and its task is
retried ``retries`` times before it is recorded as failed.

Every evaluation process caps its BLAS and OpenMP thread pools (and XLA's, if JAX is
imported there) at ``threads`` (``[workers] threads_per_worker``, default 1), so that
one worker per core never oversubscribes the CPU: see :func:`limit_threads`.

An evaluator returns a dict (``status``, ``fitness``, ...), an object with
``to_dict()``, or a plain number (the fitness). :func:`normalize_result` turns each
into a result dict; a fitness that is not a finite number makes a failed trial
(status ``"error"``) with a reason, never a stored NaN.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evo.errors import ConfigError
from evo.results import Result


@dataclass
class Task:
    """One evaluation to run: a trial id and its program (as program-file JSON).

    A batch task carries several candidates in ``batch`` (``(trial_id, program)``
    pairs, the first being ``trial_id``/``program``): an evaluator with
    ``evaluate_batch`` trains them together, any other evaluates them in turn. Its
    result is ``{"batch": [result, ...]}`` in the members' order.
    """

    trial_id: int
    program: str
    budget_scale: float = 1.0  # Progressive Dynamic Hurdles: cumulative budget fraction
    attempts: int = 0
    batch: list[tuple[int, str]] | None = None


@dataclass
class Outcome:
    """A finished task: the evaluation as a dict (``status``, ``fitness``, ...)."""

    trial_id: int
    result: dict[str, Any]
    worker: str = ""
    retried: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# -- threads ---------------------------------------------------------------------------------
# Read by OpenBLAS, OpenMP (GNU/LLVM/Intel), MKL, BLIS, Accelerate and numexpr when they load,
# and (PJRT_NPROC) by JAX's CPU client, which sizes its one thread pool per process by it
# when the backend starts; unset, that pool has one thread per core the process may use.
# Two unpinned workers with two threads each ran the population trainer at 0.61x the speed on
# 2 cores (bench/bench_threads.py, section "xla"): the pools' threads spin and preempt each other.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
               "PJRT_NPROC")
# XLA's Eigen matmuls single-threaded as well (the flag of XLA's older CPU runtime).
XLA_ONE_THREAD = ("--xla_cpu_multi_thread_eigen=false",)


def thread_env(threads: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that cap BLAS/OpenMP threads at ``threads`` (and, for one
    thread, XLA's), merged into ``environ``'s ``XLA_FLAGS``; for a child process's env."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads_per_worker = {threads!r}: must be a positive integer")
    env = dict.fromkeys(THREAD_VARS, str(threads))
    if threads == 1:
        flags = (os.environ if environ is None else environ).get("XLA_FLAGS", "").split()
        flags += [f for f in XLA_ONE_THREAD if f not in flags]
        env["XLA_FLAGS"] = " ".join(flags)
    return env


def limit_threads(threads: int = 1) -> None:
    """Cap this process's BLAS and OpenMP thread pools at ``threads``.

    Sets the variables of :func:`thread_env` (for libraries that load later, JAX's XLA
    included, and for child processes) and, through ``threadpoolctl``, the pools of
    the libraries already loaded (numpy's OpenBLAS in a forked worker)."""
    os.environ.update(thread_env(threads))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a declared dependency; the variables still help
        pass
    else:
        threadpool_limits(limits=threads)


# -- results ---------------------------------------------------------------------------------
def normalize_result(result: Any) -> dict[str, Any]:
    """An evaluator's return value as a checked result dict (see
    :meth:`evo.results.Result.coerce`, which holds the rules)."""
    return Result.coerce(result).to_dict()


def _error(err: BaseException) -> dict[str, Any]:
    if isinstance(err, MemoryError):
        return {"status": "error", "fitness": 0.0,
                "reason": "memory: the evaluation ran out of memory (MemoryError)"}
    where = traceback.extract_tb(err.__traceback__)[-1]
    return {"status": "error", "fitness": 0.0,
            "reason": f"{type(err).__name__}: {err} ({os.path.basename(where.filename)}:"
                      f"{where.lineno})"}


def _evaluate_one(evaluate: Callable[[Any], Any], text: str, budget_scale: float
                  ) -> dict[str, Any]:
    from graphs.core.fileformat import loads

    start = time.perf_counter()
    try:
        program = loads(text)
        if budget_scale != 1.0:
            result = evaluate(program, budget_scale=budget_scale)
        else:
            result = evaluate(program)
        out = normalize_result(result)
    except Exception as err:  # the candidate's problem, not the run's
        out = _error(err)
    out.setdefault("seconds", time.perf_counter() - start)
    return out


def _evaluate_batch(evaluate: Callable[[Any], Any], task: Task) -> dict[str, Any]:
    from graphs.core.fileformat import loads

    start = time.perf_counter()
    members = task.batch or []
    batched = getattr(evaluate, "evaluate_batch", None)
    if batched is None:  # a plain evaluator: one candidate after another
        return {"batch": [_evaluate_one(evaluate, text, task.budget_scale)
                          for _, text in members]}
    out: list[dict[str, Any] | None] = [None] * len(members)
    programs = []
    for j, (_, text) in enumerate(members):
        try:
            programs.append((j, loads(text)))
        except Exception as err:  # this member's file is bad; the others go on
            out[j] = _error(err)
    try:
        kwargs = {"budget_scale": task.budget_scale} if task.budget_scale != 1.0 else {}
        results = batched([p for _, p in programs], **kwargs)
        if len(results) != len(programs):
            raise RuntimeError(f"evaluate_batch returned {len(results)} results for "
                               f"{len(programs)} programs")
        for (j, _), result in zip(programs, results):
            out[j] = normalize_result(result)
    except Exception as err:
        for j, _ in programs:
            out[j] = _error(err)
    share = (time.perf_counter() - start) / max(1, len(members))
    for result in out:
        result.setdefault("seconds", share)
    return {"batch": out}


def run_task(evaluate: Callable[[Any], Any], task: Task) -> dict[str, Any]:
    """Evaluate a task in the current process; exceptions become error results."""
    if task.batch is not None:
        return _evaluate_batch(evaluate, task)
    return _evaluate_one(evaluate, task.program, task.budget_scale)


class Backend(ABC):
    """Runs tasks; the search loop only uses this interface."""

    name = "backend"

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many tasks can run at once."""

    @abstractmethod
    def submit(self, task: Task) -> None: ...

    @abstractmethod
    def poll(self, timeout: float) -> list[Outcome]:
        """Outcomes finished so far, waiting up to ``timeout`` seconds for the first."""

    @property
    @abstractmethod
    def running(self) -> int: ...

    def close(self) -> None:
        """Stop the workers."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe_death(exitcode: int | None) -> str:
    if exitcode is None:
        return "the worker process disappeared"
    if exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {"SIGSEGV": " (segmentation fault)", "SIGKILL": " (killed, e.g. out of memory)",
                "SIGBUS": " (bus error)", "SIGABRT": " (aborted)"}.get(name, "")
        return f"the worker process died from {name}{hint}"
    return f"the worker process exited with code {exitcode}"


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the driver dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers still exit when their pipe closes


def _worker_main(conn: Any, evaluate: Callable[[Any], Any] | None, memory_limit_mb: int | None,
                 driver_pid: int, inherited: list[Any], threads: int = 1) -> None:
    """A local worker: evaluate tasks from the pipe until told to stop. A spawned worker
    gets ``evaluate`` as the pipe's first message (``None`` here)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C
    limit_threads(threads)  # numpy is loaded already (forked): threadpoolctl caps it
    _die_with_parent()
    if os.getppid() != driver_pid:  # the driver died before we got here
        return
    for other in inherited:  # the driver's pipe ends, forked into us: keep EOF detectable
        other.close()
    if memory_limit_mb:
        import resource

        limit = int(memory_limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if evaluate is None:
        try:
            evaluate = conn.recv()
        except (EOFError, OSError):
            return
        except Exception as err:  # the evaluator cannot be rebuilt in this process
            conn.send(("error", f"{type(err).__name__}: {err}"))
            return
    conn.send("ready")  # started: a task's timeout counts from here
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(run_task(evaluate, task))


class LocalPool(Backend):
    """A pool of local worker processes (``multiprocess``), one task each at a time.

    Args:
        evaluate: called with a Program in the worker, returns an evaluation.
        workers: number of processes (default: every core).
        task_timeout: seconds after which a task's worker is killed and the task
            recorded as ``"timeout"``.
        memory_limit_mb: address-space limit per worker; exceeding it makes the
            evaluation fail with a memory error instead of taking the machine down.
        retries: how often a task whose worker died is re-issued before it fails.
        threads: BLAS/OpenMP threads per worker (:func:`limit_threads`); the default
            number of workers is the cores divided by this.
    """

    name = "local"

    def __init__(self, evaluate: Callable[[Any], Any], workers: int | None = None,
                 task_timeout: float | None = None, memory_limit_mb: int | None = None,
                 retries: int = 1, threads: int = 1) -> None:
        import multiprocess

        thread_env(threads)  # validates
        workers = workers or max(1, (os.cpu_count() or 1) // threads)
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers = {workers!r}: must be a positive integer")
        if task_timeout is not None and not task_timeout > 0:
            raise ConfigError(f"task_timeout = {task_timeout!r}: must be positive seconds")
        # Fork is fast and works with any evaluator, but a process that has loaded JAX
        # runs XLA threads whose locks a forked child inherits held: its first JAX
        # call would hang. Such a parent (e.g. a notebook that used the population
        # trainer) starts its workers fresh instead.
        self.start_method = "spawn" if "jax" in sys.modules else "fork"
        self._mp = multiprocess.get_context(self.start_method)
        self.evaluate = evaluate
        self.task_timeout = task_timeout
        self.memory_limit_mb = memory_limit_mb
        self.retries = retries
        self.threads = threads
        self._slots: list[dict[str, Any]] = []
        self._queue: list[Task] = []
        try:
            for i in range(workers):
                self._slots.append(self._spawn(i))
        except BaseException:
            self.close()
            raise

    def _spawn(self, index: int) -> dict[str, Any]:
        parent, child = self._mp.Pipe()
        inherited = [parent] + [s["conn"] for s in self._slots if s["index"] != index] if (
            self.start_method == "fork") else []  # a spawned child inherits no pipe ends
        # A spawned worker gets the evaluator through the pipe once it runs: in the
        # start-up payload, a large one (pickled by value) would deadlock the start if
        # the child died before reading it all (the parent blocks writing a full pipe).
        spawned = self.start_method == "spawn"
        proc = self._mp.Process(target=_worker_main, daemon=True,
                                args=(child, None if spawned else self.evaluate,
                                      self.memory_limit_mb, os.getpid(), inherited,
                                      self.threads),
                                name=f"evo-worker-{index}")
        proc.start()
        child.close()
        ready = None
        try:
            if spawned:
                parent.send(self.evaluate)
            # Wait until the worker is up (a spawned one imports everything afresh), so
            # that its start-up never counts against a task's timeout.
            if parent.poll(120):
                ready = parent.recv()
        except (EOFError, OSError):
            pass  # it died starting: poll() notices and replaces it
        if isinstance(ready, tuple) and ready[:1] == ("error",):
            proc.join(5)
            parent.close()
            raise ConfigError(
                f"the evaluator {self.evaluate!r} cannot be loaded in a worker process "
                f"({ready[1]}); define it at module level in an importable module (not "
                "in a notebook cell or an exec'd string)")
        return {"index": index, "proc": proc, "conn": parent, "task": None, "since": 0.0}

    @property
    def capacity(self) -> int:
        return len(self._slots)

    @property
    def running(self) -> int:
        return sum(s["task"] is not None for s in self._slots) + len(self._queue)

    def submit(self, task: Task) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        for slot in self._slots:
            if not self._queue:
                return
            if slot["task"] is None:
                task = self._queue.pop(0)
                task.attempts += 1
                slot["task"], slot["since"] = task, time.monotonic()
                try:
                    slot["conn"].send(task)
                except (BrokenPipeError, OSError):
                    pass  # the death is noticed in poll()

    def poll(self, timeout: float) -> list[Outcome]:
        from multiprocess.connection import wait

        busy = [s for s in self._slots if s["task"] is not None]
        if not busy:
            return []
        waitables = [s["conn"] for s in busy] + [s["proc"].sentinel for s in busy]
        if self.task_timeout is not None:
            now = time.monotonic()
            first_deadline = min(s["since"] + self.task_timeout for s in busy)
            timeout = max(0.0, min(timeout, first_deadline - now))
        wait(waitables, timeout)
        outcomes: list[Outcome] = []
        for i, slot in enumerate(self._slots):
            task = slot["task"]
            if task is None:
                continue
            worker = f"local-{slot['index']}"
            result = None
            try:
                if slot["conn"].poll():
                    result = slot["conn"].recv()
            except (EOFError, OSError):
                result = None
            if result is not None:
                slot["task"] = None
                outcomes.append(Outcome(task.trial_id, result, worker, task.attempts - 1))
                continue
            elapsed = time.monotonic() - slot["since"]
            if not slot["proc"].is_alive():
                reason = _describe_death(slot["proc"].exitcode)
                self._replace(i)
                if task.attempts <= self.retries:
                    self._queue.insert(0, task)
                else:
                    outcomes.append(Outcome(task.trial_id, {
                        "status": "error", "fitness": 0.0, "seconds": elapsed,
                        "reason": f"{reason} on attempt {task.attempts}"}, worker,
                        task.attempts - 1))
            elif self.task_timeout is not None and elapsed > self.task_timeout:
                self._replace(i)
                outcomes.append(Outcome(task.trial_id, {
                    "status": "timeout", "fitness": 0.0, "seconds": elapsed,
                    "reason": f"exceeded the per-candidate timeout of {self.task_timeout:g} s"},
                    worker, task.attempts - 1))
        self._dispatch()
        return outcomes

    def _replace(self, i: int) -> None:
        slot = self._slots[i]
        if slot["proc"].is_alive():
            slot["proc"].kill()
        slot["proc"].join(5)
        slot["conn"].close()
        self._slots[i] = self._spawn(slot["index"])

    def close(self) -> None:
        for slot in self._slots:
            try:
                slot["conn"].send(None)
            except (BrokenPipeError, OSError):
                pass
        for slot in self._slots:
            slot["proc"].join(2)
            if slot["proc"].is_alive():
                slot["proc"].kill()
                slot["proc"].join(2)
            slot["conn"].close()
        self._slots = []


class InProcess(Backend):
    """Evaluates each task in the calling process when polled, one at a time.

    For debugging and small searches from Python (no worker processes, no timeouts,
    a crash takes the caller down). The BLAS/OpenMP pools are capped at ``threads``
    during each evaluation and restored afterwards."""

    name = "inprocess"

    def __init__(self, evaluate: Callable[[Any], Any], threads: int = 1) -> None:
        thread_env(threads)  # validates
        self.evaluate = evaluate
        self.threads = threads
        self._queue: list[Task] = []

    @property
    def capacity(self) -> int:
        return 1

    @property
    def running(self) -> int:
        return len(self._queue)

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def poll(self, timeout: float) -> list[Outcome]:
        if not self._queue:
            return []
        task = self._queue.pop(0)
        task.attempts += 1
        saved = {k: os.environ.get(k) for k in (*THREAD_VARS, "XLA_FLAGS")}
        os.environ.update(thread_env(self.threads))
        try:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover
                result = run_task(self.evaluate, task)
            else:
                with threadpool_limits(limits=self.threads):
                    result = run_task(self.evaluate, task)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return [Outcome(task.trial_id, result, "inprocess", task.attempts - 1)]
