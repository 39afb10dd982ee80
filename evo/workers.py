"""Where evaluations run: a local process pool (the default) or a Ray cluster.

A backend takes :class:`Task` s and hands back :class:`Outcome` s as they finish,
in any order. Nothing that happens inside an evaluation stops the run: an
exception, a per-candidate timeout, a memory blow-up or a dying worker process
(e.g. a segfault) all come back as an outcome with ``status`` ``"error"`` or
``"timeout"`` and a reason. A worker that dies is replaced, and its task is
retried ``retries`` times before it is recorded as failed.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evo.errors import ConfigError


@dataclass
class Task:
    """One evaluation to run: a trial id and its program (as program-file JSON)."""

    trial_id: int
    program: str
    budget_scale: float = 1.0  # Progressive Dynamic Hurdles: cumulative budget fraction
    attempts: int = 0


@dataclass
class Outcome:
    """A finished task: the evaluation as a dict (``status``, ``fitness``, ...)."""

    trial_id: int
    result: dict[str, Any]
    worker: str = ""
    retried: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def run_task(evaluate: Callable[[Any], Any], task: Task) -> dict[str, Any]:
    """Evaluate a task in the current process; exceptions become error results."""
    from graphs.fileformat import loads

    start = time.perf_counter()
    try:
        program = loads(task.program)
        if task.budget_scale != 1.0:
            result = evaluate(program, budget_scale=task.budget_scale)
        else:
            result = evaluate(program)
        out = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    except MemoryError:
        out = {"status": "error", "fitness": 0.0, "reason": "memory: the evaluation ran out "
               "of memory (MemoryError)"}
    except Exception as err:  # the candidate's problem, not the run's
        where = traceback.extract_tb(err.__traceback__)[-1]
        out = {"status": "error", "fitness": 0.0,
               "reason": f"{type(err).__name__}: {err} ({os.path.basename(where.filename)}:"
                         f"{where.lineno})"}
    out.setdefault("seconds", time.perf_counter() - start)
    return out


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


def _worker_main(conn: Any, evaluate: Callable[[Any], Any], memory_limit_mb: int | None,
                 driver_pid: int, inherited: list[Any]) -> None:
    """A local worker: evaluate tasks from the pipe until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C
    _die_with_parent()
    if os.getppid() != driver_pid:  # the driver died before we got here
        return
    for other in inherited:  # the driver's pipe ends, forked into us: keep EOF detectable
        other.close()
    if memory_limit_mb:
        import resource

        limit = int(memory_limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
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
    """

    name = "local"

    def __init__(self, evaluate: Callable[[Any], Any], workers: int | None = None,
                 task_timeout: float | None = None, memory_limit_mb: int | None = None,
                 retries: int = 1) -> None:
        import multiprocess

        workers = workers or os.cpu_count() or 1
        if not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers = {workers!r}: must be a positive integer")
        if task_timeout is not None and not task_timeout > 0:
            raise ConfigError(f"task_timeout = {task_timeout!r}: must be positive seconds")
        self._mp = multiprocess.get_context("fork")
        self.evaluate = evaluate
        self.task_timeout = task_timeout
        self.memory_limit_mb = memory_limit_mb
        self.retries = retries
        self._slots: list[dict[str, Any]] = []
        self._queue: list[Task] = []
        for i in range(workers):
            self._slots.append(self._spawn(i))

    def _spawn(self, index: int) -> dict[str, Any]:
        parent, child = self._mp.Pipe()
        inherited = [parent] + [s["conn"] for s in self._slots if s["index"] != index]
        proc = self._mp.Process(target=_worker_main, daemon=True,
                                args=(child, self.evaluate, self.memory_limit_mb, os.getpid(),
                                      inherited),
                                name=f"evo-worker-{index}")
        proc.start()
        child.close()
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
