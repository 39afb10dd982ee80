"""Running a search from a config: build the pieces, run or resume, show progress.

::

    from evo.app.config import preset
    from evo.app import runner

    progress = runner.run(preset("quick"), "runs/quick.db", workers=2)
    runner.resume("runs/quick.db", trials=200)  # continue, or extend, a run
    print(runner.status("runs/quick.db"))       # progress and a leaderboard

:func:`build` turns a :class:`~evo.app.config.RunConfig` into the search's parts;
:func:`run` records the config in a new run store and searches; :func:`resume`
rebuilds everything from the store's config and continues (in-flight candidates
are re-issued by :class:`~evo.search.loop.Search`). A Ctrl-C stops cleanly: workers are
closed, the store stays consistent and ``evo resume`` continues.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from evo.algorithms.base import SearchAlgorithm
from evo.algorithms.registry import build_algorithm
from evo.app.config import RunConfig, from_dict, load_config
from evo.app.lineage import lineage, lineage_text
from evo.app.problems import LOSS
from evo.errors import ConfigError
from evo.problem import get_problem, problem_of
from evo.rl.problem import CandidateEvaluator
from evo.search.loop import Progress, Search, print_progress, store_progress
from evo.search.progressive import ProgressiveHurdles
from evo.search.store import RunStore, StoreError, store_error
from evo.workers.base import Backend
from evo.workers.registry import backend_factory


class Built(NamedTuple):
    """A config turned into objects (unpacks as a 5-tuple)."""

    algorithm: SearchAlgorithm
    evaluator: Any  # RLEvaluator, or ArchEvaluator for architecture runs
    backend: Callable[[], Backend]  # starts the workers when called
    hurdles: ProgressiveHurdles | None
    fec: Callable[[Any], str]  # FEC for loss programs, the space's fingerprint otherwise


# -- building -------------------------------------------------------------------------------
def make_evaluator(config: RunConfig) -> Any:
    """The evaluator that ``config``'s ``[evaluator]`` describes, made by its problem: an
    :class:`~evo.rl.evaluator.RLEvaluator` for loss programs, an
    :class:`~evo.nas.evaluator.ArchEvaluator` for architectures."""
    return get_problem(config.space.kind).evaluator(config)


def make_space(config: RunConfig) -> Any:
    """The search space of ``config``'s problem."""
    return get_problem(config.space.kind).space(config)


def make_algorithm(config: RunConfig, space: Any = None) -> SearchAlgorithm:
    """The search algorithm of ``config`` over ``space`` (default: :func:`make_space`),
    built by the entry that ``[search] algorithm`` names in the algorithm registry."""
    return build_algorithm(config, make_space(config) if space is None else space)


def make_backend_factory(config: RunConfig, evaluate: Callable[..., Any]
                         ) -> Callable[[], Backend]:
    """The factory of the worker backend that ``[workers] backend`` names (see
    :mod:`evo.workers.registry`); calling it starts the workers."""
    return backend_factory(config.workers, evaluate)


DEFAULT_BATCH = 16  # candidates per task for a batching evaluator (the population trainer)


def batch_size(config: RunConfig, evaluator: Any) -> int:
    """Candidates per worker task: ``[workers] batch_size``, else 16 for an evaluator
    that trains a batch in one call (the population trainer), else 1."""
    if config.workers.batch_size is not None:
        return config.workers.batch_size
    return DEFAULT_BATCH if getattr(evaluator, "trainer", "") == "population" else 1


def build(config: RunConfig) -> Built:
    """The algorithm, evaluator, backend factory, hurdles and FEC of ``config``.

    Nothing starts here: the factory starts the workers when called.
    """
    problem = get_problem(config.space.kind)
    evaluator = problem.evaluator(config)
    hurdles = (ProgressiveHurdles(config.hurdles.increments, config.hurdles.batch)
               if config.hurdles.progressive else None)
    space = problem.space(config)
    return Built(make_algorithm(config, space), evaluator,
                 make_backend_factory(config, problem.task_evaluator(evaluator)), hurdles,
                 problem.fingerprint(config, space))


def with_overrides(config: RunConfig, backend: str | None = None, address: str | None = None,
                   workers: int | None = None, trials: int | None = None) -> RunConfig:
    """``config`` with command-line overrides applied (and validated)."""
    changes: dict[str, Any] = {}
    if backend is not None:
        changes["workers.backend"] = backend
        if backend == "local":
            changes["workers.address"] = None
    if address is not None:
        changes["workers.address"] = address
    if workers is not None:
        changes["workers.workers"] = workers
    if trials is not None:
        changes["run.trials"] = trials
    if address is not None and (backend or config.workers.backend) != "ray":
        raise ConfigError(f"--address {address}: is a Ray cluster's address; add --backend ray")
    if not changes:
        return config
    try:
        return config.replace(**changes)
    except ConfigError as err:
        flags = {"workers.backend": "--backend", "workers.address": "--address",
                 "workers.workers": "--workers", "run.trials": "--trials"}
        text = str(err)
        for key, flag in flags.items():
            if text.startswith(key + " "):
                text = flag + text[len(key):]
        raise ConfigError(text) from None


# -- running --------------------------------------------------------------------------------
ProgressArg = Callable[[Progress], None] | bool | None


def run(config: RunConfig | str | os.PathLike[str], store_path: str | os.PathLike[str], *,
        backend: str | None = None, address: str | None = None, workers: int | None = None,
        trials: int | None = None, progress: ProgressArg = None,
        hours: float | None = None) -> Progress:
    """Start a new run: record the config in a new store at ``store_path`` and search.

    ``hours``: stop proposing after this many hours, finish what is in flight and
    return; the run stays resumable (``evo resume``) up to its ``trials``.

    ``progress``: None shows a progress bar when stderr is a terminal and a line every
    few trials otherwise; False shows nothing; a callable gets every update.
    Raises :class:`~evo.search.store.StoreError` if the store already exists.
    """
    if not isinstance(config, RunConfig):
        config = load_config(config)
    config = with_overrides(config, backend, address, workers, trials)
    store_path = Path(store_path)
    if store_path.exists():
        raise StoreError(f"{store_path} already exists; use `evo resume {store_path}` to "
                         "continue that run, or choose another store path")
    built = build(config)  # every setting is checked before the store is created
    backend = built.backend()
    try:
        store = RunStore.create(store_path, config.to_dict())
    except BaseException:
        backend.close()
        raise
    return _search(store, config, built, progress, backend, hours)


def resume(store_path: str | os.PathLike[str], *, backend: str | None = None,
           address: str | None = None, workers: int | None = None, trials: int | None = None,
           progress: ProgressArg = None, hours: float | None = None) -> Progress:
    """Continue a run from its store (its config is read from the store).

    ``trials`` raises (or lowers, down to the trials already finished) the run's target;
    the new target is recorded in the store's config. Backend overrides apply to this
    session only.
    """
    store = RunStore.open(store_path)  # refused while another live driver holds it
    try:
        config = stored_config(store)
        if trials is not None:
            finished = store.finished()
            if trials < finished:
                raise ConfigError(f"--trials {trials}: the run has already finished {finished} "
                                  "trials; give at least that many")
            config = with_overrides(config, trials=trials)
        session = with_overrides(config, backend, address, workers)
        built = build(session)
        if trials is not None:  # the new target becomes part of the run's config
            store.set_config(config.to_dict())
    except sqlite3.DatabaseError as err:
        _close_quietly(store)
        raise store_error(store.path, err) from None
    except BaseException:
        store.close()
        raise
    return _search(store, session, built, progress, hours=hours)


def _close_quietly(store: RunStore) -> None:
    """Close a store that SQLite found damaged (closing may fail the same way)."""
    try:
        store.close()
    except sqlite3.DatabaseError:
        store.db.close()
        store._unlock()


def stored_config(store: RunStore) -> RunConfig:
    data = store.config
    if not data:
        raise StoreError(f"{store.path}: the store records no run config")
    try:
        return from_dict(data)
    except ConfigError as err:
        raise StoreError(f"{store.path}: the recorded config is not valid here: {err}") from None


def _search(store: RunStore, config: RunConfig, built: Built, progress: ProgressArg,
            backend: Backend | None = None, hours: float | None = None) -> Progress:
    reporter = None
    try:
        start = store_progress(store, config.run.trials)
        if start.trials >= start.target and not store.in_flight():
            return start  # nothing to do: don't start workers
        reporter = _reporter(progress, start, config.run.name)
        if backend is None:
            backend = built.backend()
        search = Search(built.algorithm, store, backend, config.run.trials, built.fec,
                        built.hurdles, on_progress=reporter,
                        batch_size=batch_size(config, built.evaluator), hours=hours)
        return search.run()
    except sqlite3.DatabaseError as err:
        raise store_error(store.path, err) from None
    finally:
        if reporter is not None and hasattr(reporter, "close"):
            reporter.close()
        if backend is not None:
            backend.close()
        _close_quietly(store)


def _reporter(progress: ProgressArg, start: Progress, name: str
              ) -> Callable[[Progress], None] | None:
    if progress is False:
        return None
    if callable(progress):
        return progress
    if progress is True or sys.stderr.isatty():
        return ProgressBar(start, name)
    return ProgressLines(start)


class ProgressBar:
    """A tqdm bar on stderr: trials, ETA, evaluations per minute, best fitness,
    duplicate and hurdle-cut rates."""

    def __init__(self, start: Progress, name: str = "evo", stream: Any = None) -> None:
        from tqdm import tqdm

        self.start = start
        self.t0 = time.monotonic()
        self.bar = tqdm(total=start.target, initial=start.trials, unit="trial", desc=name,
                        dynamic_ncols=True, file=stream or sys.stderr, smoothing=0.1)
        self.bar.set_postfix_str(self._postfix(start), refresh=True)

    def _postfix(self, p: Progress) -> str:
        minutes = max(time.monotonic() - self.t0, 1e-9) / 60.0
        rate = (p.evaluated - self.start.evaluated) / minutes
        best = f"{p.best_fitness:.3f}" if p.best_trial is not None else "-"
        return (f"best {best}, {rate:.1f} eval/min, dup {p.duplicate_rate:.0%}, "
                f"hurdle {p.hurdle_rate:.0%}, failed {p.failed}")

    def __call__(self, p: Progress) -> None:
        self.bar.set_postfix_str(self._postfix(p), refresh=False)
        self.bar.update(p.trials - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class ProgressLines:
    """Without a terminal: a :func:`~evo.search.loop.print_progress` line every ``every``
    trials (default: 20 lines per run) and at the end."""

    def __init__(self, start: Progress, every: int | None = None, stream: Any = None) -> None:
        self.every = every or max(1, start.target // 20)
        self.stream = stream
        self.last = start.trials

    def __call__(self, p: Progress) -> None:
        if p.trials - self.last >= self.every or p.trials >= p.target:
            self.last = p.trials
            print_progress(p, self.stream or sys.stderr)


# -- reading a store ------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def planned_trials(store_path: str | os.PathLike[str]) -> int:
    """The number of trials the run in ``store_path`` is configured for."""
    store = RunStore.open(store_path, readonly=True)
    try:
        return store_progress(store).target
    finally:
        store.close()


def summary_line(p: Progress) -> str:
    best = f"{p.best_fitness:.4f} (trial {p.best_trial})" if p.best_trial is not None else "-"
    return (f"{p.trials}/{p.target} trials: best {best}, duplicates {p.duplicate_rate:.1%}, "
            f"hurdle cut {p.hurdle_rate:.1%}, failed {p.failed}")


def status(store_path: str | os.PathLike[str], top: int = 10) -> str:
    """A text report of a run (safe while the run is writing the store)."""
    from evo.app.export import unique_programs

    store = RunStore.open(store_path, readonly=True)
    try:
        return _status_text(store, top, unique_programs)
    except sqlite3.DatabaseError as err:
        raise store_error(store.path, err) from None
    finally:
        _close_quietly(store)


def _status_text(store: RunStore, top: int, unique_programs: Callable) -> str:
    config = store.config
    p = store_progress(store)
    counts = store.counts()
    times = store.time_span()
    run = config.get("run", {})
    lines = [f"run:        {run.get('name', '?')} ({Path(store.path).name})"]
    lines += problem_of(config).status_lines(config, store.trainers())
    return _status_body(store, top, unique_programs, p, counts, times, lines,
                        _td_line(store, config))


def _td_line(store: RunStore, config: dict) -> list[str]:
    """For a loss run whose stored fingerprints are training-mode ones (one indexed
    lookup): the first proposed program that trains exactly like DQN's loss."""
    fec = config.get("fec") or {}
    if problem_of(config) is not LOSS or fec.get("mode", "training") != "training":
        return []
    from graphs.rl_loss.library import builtin

    twin = _first_twin(store, builtin("dqn"), True)
    td = ("not proposed yet (no program trains exactly like DQN's loss)" if twin is None
          else f"trial {twin.trial} (generation {twin.generation}), proposed "
               f"{twin.minutes:.1f} min into the run after {twin.trainings} trainings, "
               "trains exactly like DQN's loss")
    return [f"TD:         {td}"]


def baseline_report(store_path: str | os.PathLike[str], baseline: str = "dqn") -> str:
    """The run's best program next to a built-in loss (``dqn``, ``ddqn``, ...) trained
    by the run's own evaluator (same environments, budgets, hurdle and seeds), with
    the family line of the best: what a discovery run found, and against what.

    Trains the baseline once in this process (seconds to minutes, like one candidate).
    """
    from evo.app.export import unique_programs
    from graphs.core.render import describe
    from graphs.rl_loss.library import BUILTINS, builtin

    if baseline not in BUILTINS:
        raise ConfigError(f"--baseline {baseline!r}: not a built-in loss; choose one of "
                          f"{', '.join(BUILTINS)}")
    store = RunStore.open(store_path, readonly=True)
    try:
        config = stored_config(store)
        if config.space.kind != LOSS.name:
            raise ConfigError("--baseline compares loss programs; this run searched "
                              f"{get_problem(config.space.kind).noun}")
        rows = unique_programs(store, 1)
        path = lineage(store, rows[0]["trial_id"]) if rows else []
        program = builtin(baseline)
        twin = _first_twin(store, program, config.fec.mode == "training") if rows else None
    except sqlite3.DatabaseError as err:
        raise store_error(store.path, err) from None
    finally:
        _close_quietly(store)
    if not rows:
        return "no evaluated program yet: nothing to compare"
    result = make_evaluator(config).evaluate(program)
    best = rows[0]
    seeds = ", ".join(str(s) for s in config.evaluator.seeds)
    envs = ", ".join(config.evaluator.envs)

    def scores(values: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in values.items()) or "-"

    status = "" if result.status == "ok" else f" ({result.status}: {result.reason})"
    lines = [f"the best program found, next to {baseline} trained the same way "
             f"({envs}; seeds {seeds}):",
             f"  found    fitness {best['fitness']:.4f}  [{scores(best['scores'])}]  "
             f"trial {best['trial_id']}, generation {best['generation']}",
             f"           {best['formula']}",
             f"  {baseline:<8} fitness {result.fitness:.4f}  [{scores(result.scores)}]{status}",
             f"           {describe(program)}",
             "",
             *_twin_lines(twin, baseline),
             "",
             f"its family line (trial {best['trial_id']}), from its seed:",
             *lineage_text(path)]
    return "\n".join(lines)


class Twin(NamedTuple):
    """The first trial of a run that trains exactly like a given program."""

    trial: int
    minutes: float  # wall-clock minutes from the run's first proposal to its proposal
    trainings: int  # candidates trained before it was proposed (its cost to find)
    generation: int
    formula: str


def first_twin(store_path: str | os.PathLike[str], program: Any) -> Twin | None:
    """The first trial (in proposal order) whose training-mode fingerprint equals
    ``program``'s: the moment a run rediscovered it, e.g. TD for ``builtin("dqn")``.

    Reads the stored fingerprints when the run's FEC ran in training mode; otherwise
    fingerprints each distinct stored program (once per stored fingerprint)."""
    store = RunStore.open(store_path, readonly=True)
    try:
        return _first_twin(store, program, stored_config(store).fec.mode == "training")
    except sqlite3.DatabaseError as err:
        raise store_error(store.path, err) from None
    finally:
        _close_quietly(store)


def _first_twin(store: RunStore, program: Any, stored_training: bool) -> Twin | None:
    from graphs.core.equivalence import FEC
    from graphs.core.fileformat import loads
    from graphs.core.render import formula

    fec = FEC("training")
    target = fec(program)
    db = store.db
    if stored_training:  # the stored fingerprints are training-mode ones
        row = db.execute("SELECT id, program, generation, proposed_at FROM trials "
                         "WHERE fingerprint = ? ORDER BY id LIMIT 1", (target,)).fetchone()
    else:
        row, seen = None, set()
        for r in db.execute("SELECT id, program, generation, proposed_at, fingerprint "
                            "FROM trials ORDER BY id"):
            if r["fingerprint"] in seen:
                continue
            seen.add(r["fingerprint"])
            if fec(loads(r["program"])) == target:
                row = r
                break
    if row is None:
        return None
    t0 = db.execute("SELECT MIN(proposed_at) FROM trials").fetchone()[0]
    trained = db.execute("SELECT COUNT(*) FROM trials WHERE id < ? AND status IN "
                         "('done', 'failed')", (row["id"],)).fetchone()[0]
    return Twin(row["id"], (row["proposed_at"] - t0) / 60, trained, row["generation"],
                formula(loads(row["program"])))


def _twin_lines(twin: Twin | None, baseline: str) -> list[str]:
    what = "TD (DQN's loss)" if baseline == "dqn" else baseline
    if twin is None:
        return [f"{what} not rediscovered: no proposed program trains exactly like it "
                "(same training-mode fingerprint)"]
    return [f"{what} rediscovered: trial {twin.trial} (generation {twin.generation}) trains "
            f"exactly like it (same training-mode fingerprint), proposed "
            f"{twin.minutes:.1f} min into the run, after {twin.trainings} trainings:",
            f"           {twin.formula}"]


def _status_body(store: RunStore, top: int, unique_programs: Callable, p: Progress,
                 counts: dict[str, int], times: Any, lines: list[str],
                 after_best: Sequence[str] = ()) -> str:
    waiting = len(store.waiting_duplicates())
    share = f" ({p.trials / p.target:.1%})" if p.target else ""
    lines.append(f"progress:   {p.trials}/{p.target} trials finished{share}")
    parts = [f"{k} {v}" for k, v in counts.items()]
    if waiting:
        parts.append(f"({waiting} duplicates waiting for an evaluation)")
    lines.append(f"status:     {', '.join(parts)}")
    if times[0] is not None and times[1] is not None:
        span = max(times[1] - times[0], 1e-9)
        lines.append(f"time:       {_duration(span)} from first proposal to last finish; "
                     f"{p.evaluated / span * 60:.1f} evaluations/min")
    compiled = store.compile_time()
    if compiled is not None:
        lines.append(f"compile:    {_duration(compiled[0])} of {_duration(compiled[1])} spent "
                     f"evaluating ({compiled[0] / compiled[1]:.1%}) was tracing and compiling")
    best = (f"{p.best_fitness:.4f} (trial {p.best_trial})" if p.best_trial is not None
            else "none yet")
    lines.append(f"best:       {best}")
    lines.extend(after_best)
    lines.append(f"duplicates: {p.duplicate_rate:.1%} ({p.duplicates} of {p.trials} finished "
                 "trials reused a cached fitness)")
    lines.append(f"hurdle cut: {p.hurdle_rate:.1%} ({p.hurdle_cut} of {p.evaluated} evaluated)")
    lines.append(f"failed:     {p.failed}")
    for reason, n in store.failure_reasons(3):
        lines.append(f"            {n} x {reason[:100]}")
    rows = unique_programs(store, top)
    lines.append("")
    lines.append(f"leaderboard (top {top} unique programs):")
    if not rows:
        lines.append("  (no evaluated programs yet)")
    else:
        lines.append(f"  {'rank':>4}  {'fitness':>8}  {'trial':>6}  {'evals':>5}  scores / formula")
        for r in rows:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in r["scores"].items()) or "-"
            cut = " (hurdle cut)" if r["status"] == "hurdle" else ""
            lines.append(f"  {r['rank']:>4}  {r['fitness']:>8.4f}  {r['trial_id']:>6}  "
                         f"{r['evaluations']:>5}  {scores}{cut}")
            lines.append(f"  {'':>4}  {'':>8}  {'':>6}  {'':>5}  {r['formula']}")
        lines.append("")
        lines.append(f"lineage of the best program (trial {rows[0]['trial_id']}), from its seed:")
        lines.extend(lineage_text(lineage(store, rows[0]["trial_id"])))
    return "\n".join(lines)


__all__ = [
    "Built",
    "CandidateEvaluator",
    "ProgressBar",
    "ProgressLines",
    "Twin",
    "baseline_report",
    "build",
    "first_twin",
    "make_evaluator",
    "resume",
    "run",
    "status",
    "store_progress",
    "summary_line",
    "with_overrides",
]
