"""The run store: one SQLite file (WAL mode) holding everything a run produced.

Every proposed candidate is a row of ``trials`` from the moment it is proposed:
program JSON, fingerprint, lineage, status (``proposed``/``running``/``done``/
``failed``/``duplicate``), scores, hurdle outcome, failure reason, timings and
worker. ``meta`` holds the run's config and the algorithm state; ``fec`` the
equivalence cache (fingerprint -> fitness).

Durability: each state change is one transaction, and a finished evaluation is
committed together with the algorithm state it leads to, so a killed driver
resumes with every finished trial recorded exactly once. Other processes can read
the store while a run writes it (WAL readers never block the writer).

One writer at a time: a writable store holds an exclusive lock (``flock`` on
``<store>-lock``) until it is closed, so a second ``evo run``/``evo resume`` on a
store that a live driver holds is refused (:class:`StoreInUse`); the kernel drops the
lock when the driver dies, even by SIGKILL. Readers (``readonly=True``: status,
export, plots) take no lock and also work on a read-only file or directory. A store
that SQLite finds damaged raises a :class:`StoreError` naming the file.
"""

from __future__ import annotations

import fcntl
import json
import math
import numbers
import os
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.results import Result, TrialStatus
from graphs.core.fileformat import dumps, loads
from graphs.core.program import Program

SCHEMA_VERSION = 1
STATUSES = tuple(s.value for s in TrialStatus)  # the trials table's status column

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('proposed','running','done','failed','duplicate')),
    program TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    formula TEXT NOT NULL,  -- '' until rendered: readers render it from the program
    parent INTEGER,
    mutation TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    fitness REAL,
    scores TEXT,
    hurdle TEXT,
    reason TEXT,
    result TEXT,
    level INTEGER NOT NULL DEFAULT 0,
    duplicate_of INTEGER,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    proposed_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    seconds REAL
);
CREATE INDEX IF NOT EXISTS trials_status ON trials(status);
CREATE INDEX IF NOT EXISTS trials_fingerprint ON trials(fingerprint);
CREATE INDEX IF NOT EXISTS trials_duplicate_of ON trials(duplicate_of);
CREATE TABLE IF NOT EXISTS fec (
    fingerprint TEXT PRIMARY KEY,
    fitness REAL NOT NULL,
    trial INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""


# An upsert updates the row in place; INSERT OR REPLACE would delete and re-insert it,
# writing the key index too (one more page in every commit).
_SET_META = ("INSERT INTO meta(key, value) VALUES (?, ?) "
             "ON CONFLICT(key) DO UPDATE SET value = excluded.value")


class Encoded(str):
    """A value already encoded as JSON text (saved as is)."""


class StoreError(EvoError):
    """The store file is missing, not a run store, damaged, or from an incompatible
    version."""


class StoreInUse(StoreError):
    """Another live driver holds the store."""


# SQLite's primary result codes (the low byte of ``sqlite3.Error.sqlite_errorcode``).
_SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 8, 11, 14, 26


def _code(err: BaseException) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def store_error(path: str | os.PathLike[str], err: sqlite3.Error) -> StoreError:
    """A clear :class:`StoreError` for an SQLite error met while using the store at
    ``path`` (damaged file, not a database, or another SQLite failure)."""
    code = _code(err)
    if code == _SQLITE_CORRUPT or "malformed" in str(err):
        return StoreError(f"{path}: the run store is damaged (SQLite: {err}); restore it "
                          f"from a backup, or salvage what is readable with `sqlite3 {path} "
                          ".recover | sqlite3 recovered.db`")
    if code == _SQLITE_NOTADB:
        return StoreError(f"{path} is damaged or is not an evo run store (SQLite: {err})")
    return StoreError(f"{path}: cannot use the run store (SQLite: {err})")


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, numbers.Real) and math.isfinite(value) else None


def _uri(path: Path, **params: str) -> str:
    return f"file:{urllib.parse.quote(str(path))}?{urllib.parse.urlencode(params)}"


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return str(value)


def _result_json(result: Mapping[str, Any]) -> str:
    """Strict JSON (no NaN: SQLite's JSON functions reject it) of an evaluation."""
    try:
        return json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_json_safe(result), allow_nan=False)


# Lock files of this process's writable stores: closed in forked children (local
# workers), so that only the driver holds a store's lock.
_lock_fds: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_lock_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    _lock_fds.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


def _acquire_lock(path: Path) -> int:
    """Take the exclusive driver lock of the store at ``path``; returns its fd."""
    lock = Path(f"{path}-lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise StoreError(f"{path}: cannot open the store for writing: cannot create its "
                             f"lock file {lock} ({err.strerror}); `evo status`, `evo export` "
                             "and `evo plot` can still read it") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 200).decode(errors="replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            who = f" ({holder})" if holder else ""
            raise StoreInUse(f"{path} is in use by another evo driver{who}; wait for it to "
                             "finish or stop it before running `evo resume` on this store "
                             "(`evo status` reads it meanwhile)") from None
        except OSError as err:  # e.g. a file system without locks
            os.close(fd)
            raise StoreError(f"{path}: cannot lock the store ({err.strerror})") from None
        try:  # the file we locked may have been removed by the holder that just closed
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
    _lock_fds.add(fd)
    return fd


def _release_lock(path: Path, fd: int) -> None:
    if fd not in _lock_fds:
        return
    _lock_fds.discard(fd)
    try:
        os.unlink(f"{path}-lock")  # while still held: a waiting opener re-checks the inode
    except OSError:
        pass
    os.close(fd)


class RunStore:
    """A run's SQLite store. Use :meth:`create` for a new run, :meth:`open` otherwise.

    A writable store holds the store's driver lock until :meth:`close`; ``readonly``
    opens it with SQLite's read-only mode (for files or directories the user cannot
    write, without a lock)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock: int | None = None if readonly else _acquire_lock(self.path)
        try:
            self.db = self._connect()
        except BaseException:
            self._unlock()
            raise
        self.db.row_factory = sqlite3.Row
        # With deferred commits, writes join one open transaction until commit(): the
        # search loop commits every finished evaluation at once and lets proposals
        # (which it can re-derive after a crash) ride along with the next commit.
        self.defer_commits = False
        self._open_since: float | None = None
        # Written at commit, in the same transaction: with deferred commits only the
        # last value of a meta key (e.g. the algorithm state) before a commit matters.
        self._pending_meta: dict[str, str] = {}
        self._pending_hits: dict[str, int] = {}  # fec hits by fingerprint
        self._fec: dict[str, tuple[float, int]] | None = None  # the fec table, once read
        if not readonly:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as err:
                self.db.close()
                self._unlock()
                if _code(err) == _SQLITE_READONLY:
                    raise StoreError(f"{self.path}: cannot write the run store ({err}); "
                                     "`evo status`, `evo export` and `evo plot` can still "
                                     "read it") from None
                if _code(err) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                    raise store_error(self.path, err) from None
                raise StoreError(f"{self.path} is not an evo run store ({err})") from None

    def _connect(self) -> sqlite3.Connection:
        def connect(uri: str) -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)

        try:
            if not self.readonly:
                return connect(_uri(self.path))
            db = connect(_uri(self.path, mode="ro"))
            try:
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the WAL
                return db
            except sqlite3.DatabaseError as err:
                db.close()
                if _code(err) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                    raise store_error(self.path, err) from None
                if _code(err) not in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
                    raise
                # A read-only directory: SQLite cannot create the WAL's index beside the
                # file. With no log pending, the file alone is the store: read it as an
                # immutable file (no locks, no index).
                wal = Path(f"{self.path}-wal")
                if wal.exists() and wal.stat().st_size > 0:
                    raise StoreError(
                        f"{self.path}: cannot read the run store read-only: its write-ahead "
                        f"log {wal.name} holds changes that only a process that can write "
                        f"the directory can read ({err}); copy the store with its "
                        f"{wal.name} file to a writable place") from None
                return connect(_uri(self.path, mode="ro", immutable="1"))
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: cannot open the run store ({err})") from None

    def _unlock(self) -> None:
        if self._lock is not None:
            _release_lock(self.path, self._lock)
            self._lock = None

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: Mapping[str, Any]) -> RunStore:
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists; use `evo resume {path}` to continue "
                             "that run, or choose another store path")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        store.db.executescript(_SCHEMA)
        with store.transaction():
            store._set("schema_version", SCHEMA_VERSION)
            store._set("config", dict(config))
            store._set("created_at", time.time())
        return store

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> RunStore:
        path = Path(path)
        if not path.exists():
            raise StoreError(f"{path}: no such run store")
        store = cls(path, readonly=readonly)
        try:
            version = store.get("schema_version")
        except sqlite3.DatabaseError as err:
            store.close()
            if _code(err) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise store_error(path, err) from None
            raise StoreError(f"{path} is not an evo run store ({err})") from None
        if version != SCHEMA_VERSION:
            raise StoreError(f"{path}: store schema version {version}; this evo reads "
                             f"version {SCHEMA_VERSION}")
        return store

    def close(self) -> None:
        """Commit, close the database and release the driver lock."""
        try:
            try:
                self.commit()
            finally:
                self.db.close()
        finally:
            self._unlock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._open_since is None:
            self.db.execute("BEGIN IMMEDIATE")
            self._open_since = time.monotonic()
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            self._open_since = None
            self._pending_meta.clear()
            self._pending_hits.clear()
            self._fec = None  # may hold rolled-back entries: read it again
            raise
        if not self.defer_commits:
            self.commit()

    def commit(self) -> None:
        """Commit the open (deferred) transaction, if any."""
        if self._open_since is not None:
            if self._pending_meta:
                self.db.executemany(_SET_META, list(self._pending_meta.items()))
                self._pending_meta.clear()
            if self._pending_hits:
                self.db.executemany("UPDATE fec SET hits = hits + ? WHERE fingerprint = ?",
                                    [(n, fp) for fp, n in self._pending_hits.items()])
                self._pending_hits.clear()
            self.db.execute("COMMIT")
            self._open_since = None

    @property
    def uncommitted_for(self) -> float:
        """Seconds since the open deferred transaction began (0 if none is open)."""
        return 0.0 if self._open_since is None else time.monotonic() - self._open_since

    # -- meta ------------------------------------------------------------------------------
    def _set(self, key: str, value: Any) -> None:
        text = value if isinstance(value, Encoded) else json.dumps(value)
        if self.defer_commits:
            self._pending_meta[key] = text  # written by commit(), in this transaction
        else:
            self.db.execute(_SET_META, (key, text))

    def trainers(self) -> dict[str, int]:
        """How many evaluations each trainer produced (the ``trainer`` of the results)."""
        rows = self.db.execute(
            "SELECT json_extract(result, '$.trainer') AS t, COUNT(*) FROM trials WHERE "
            "status IN ('done', 'failed') AND json_valid(result) GROUP BY t").fetchall()
        return {str(t): int(n) for t, n in rows if t}

    def get(self, key: str, default: Any = None) -> Any:
        pending = self._pending_meta.get(key)
        if pending is not None:
            return json.loads(pending)
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    @property
    def config(self) -> dict:
        return self.get("config", {})

    # -- writes ----------------------------------------------------------------------------
    def add_trial(self, program: Program, fingerprint: str, formula: str, parent: int | None,
                  mutation: str, generation: int,
                  algorithm_state: Mapping | Callable[[int], Mapping] | None,
                  duplicate_of: int | None = None, fitness: float | None = None,
                  worker: str | None = None) -> int:
        """Record a proposed candidate (or a duplicate, with its cached fitness) and the
        algorithm state after proposing it, in one transaction; returns the trial id.
        ``algorithm_state`` may be a function of the new trial id (called inside the
        transaction), e.g. to let the algorithm observe a cached duplicate first, or
        None when proposing changed nothing but the proposal count (the number of
        trial rows). With ``worker``, the trial is recorded as already running there."""
        status = "duplicate" if duplicate_of is not None else (
            "running" if worker is not None else "proposed")
        now = time.time()
        with self.transaction():
            cur = self.db.execute(
                "INSERT INTO trials(status, program, fingerprint, formula, parent, mutation, "
                "generation, fitness, duplicate_of, proposed_at, finished_at, worker, "
                "started_at, attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (status, dumps(program, compact=True), fingerprint, formula, parent, mutation,
                 generation, fitness, duplicate_of, now,
                 now if fitness is not None else None, worker,
                 now if status == "running" else None, 1 if status == "running" else 0))
            tid = int(cur.lastrowid)
            if algorithm_state is not None:
                self._set("algorithm", algorithm_state(tid) if callable(algorithm_state)
                          else algorithm_state)
            if duplicate_of is not None and fitness is not None:
                self._hit(fingerprint, 1)
        return tid

    def _hit(self, fingerprint: str, n: int) -> None:
        if self.defer_commits:
            self._pending_hits[fingerprint] = self._pending_hits.get(fingerprint, 0) + n
        else:
            self.db.execute("UPDATE fec SET hits = hits + ? WHERE fingerprint = ?",
                            (n, fingerprint))

    def start(self, trial_id: int, worker: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE trials SET status='running', worker=?, started_at=?, "
                "attempts = attempts + 1 WHERE id=? AND status IN ('proposed','running')",
                (worker, time.time(), trial_id))

    def finish(self, trial_id: int, result: Mapping[str, Any], algorithm_state: Mapping | str,
               worker: str | None = None, waiting: list[int] | None = None) -> list[int]:
        """Record a finished evaluation, cache its fitness by fingerprint, resolve the
        duplicates that waited for it, and save the algorithm state, atomically.
        Returns the ids of the resolved duplicates. ``waiting`` (those ids, if the
        caller tracks them) saves looking them up. A successful result whose fitness is
        not a finite number is recorded as failed (status ``"error"``), with a reason."""
        result = Result.coerce(result)
        ok, fitness = result.scored, result.counted_fitness
        now = time.time()
        with self.transaction():
            row = self.db.execute(
                "UPDATE trials SET status=?, fitness=?, scores=?, hurdle=?, reason=?, "
                "result=?, level=?, worker=COALESCE(?, worker), finished_at=?, seconds=? "
                "WHERE id=? AND status NOT IN ('done','failed') RETURNING fingerprint",
                ("done" if ok else "failed", fitness,
                 _result_json(result.get("scores", {})), _result_json(result.get("hurdle")),
                 str(result.get("reason", "")), _result_json(result.to_dict()),
                 int(result.get("level", 0)), worker, now, _seconds(result.get("seconds")),
                 trial_id)).fetchall()  # all: the statement ends
            row = row[0] if row else None
            if row is None:
                old = self.db.execute("SELECT status FROM trials WHERE id=?",
                                      (trial_id,)).fetchone()
                raise StoreError(f"trial {trial_id} is not in flight (status "
                                 f"{old['status'] if old else 'missing'})")
            if result.cacheable:
                self.db.execute(
                    "INSERT OR IGNORE INTO fec(fingerprint, fitness, trial) VALUES (?,?,?)",
                    (row["fingerprint"], fitness, trial_id))
                if self._fec is not None:
                    self._fec.setdefault(row["fingerprint"], (fitness, trial_id))
            if not result.cacheable:
                waiting = []
            elif waiting is None:
                waiting = [r["id"] for r in self.db.execute(
                    "SELECT id FROM trials WHERE status='duplicate' AND duplicate_of=? "
                    "AND fitness IS NULL ORDER BY id", (trial_id,))]
            if waiting:
                self.db.executemany(
                    "UPDATE trials SET fitness=?, finished_at=? WHERE id=?",
                    [(fitness, now, i) for i in waiting])
                self._hit(row["fingerprint"], len(waiting))
            self._set("algorithm", algorithm_state)
        return waiting

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Replace the recorded config (e.g. when a resumed run extends its target)."""
        with self.transaction():
            self._set("config", dict(config))

    def reissue_waiting(self, trial_id: int) -> int | None:
        """After ``trial_id`` failed for a reason that may not be the program's (an
        error or timeout), the duplicates that waited for it need an evaluation of their
        own: the first becomes a proposed trial, the others wait for it. Returns the
        first's id, if any."""
        with self.transaction():
            ids = [r["id"] for r in self.db.execute(
                "SELECT id FROM trials WHERE status='duplicate' AND duplicate_of=? AND "
                "fitness IS NULL ORDER BY id", (trial_id,))]
            if not ids:
                return None
            self.db.execute("UPDATE trials SET status='proposed', duplicate_of=NULL "
                            "WHERE id=?", (ids[0],))
            self.db.executemany("UPDATE trials SET duplicate_of=? WHERE id=?",
                                [(ids[0], i) for i in ids[1:]])
            return ids[0]

    def promote(self, trial_id: int, level: int, algorithm_state: Mapping) -> None:
        """Record that a trial goes on to a higher hurdle level (it stays in flight)."""
        with self.transaction():
            self.db.execute("UPDATE trials SET level=? WHERE id=?", (level, trial_id))
            self._set("algorithm", algorithm_state)

    def save_state(self, algorithm_state: Mapping) -> None:
        with self.transaction():
            self._set("algorithm", algorithm_state)

    # -- reads -----------------------------------------------------------------------------
    def fec_lookup(self, fingerprint: str) -> tuple[float, int] | None:
        """The cached (fitness, trial) of an evaluated equivalent program, if any.

        The table is read once and then kept in memory: this store is its only writer.
        """
        if self._fec is None:
            self._fec = {r[0]: (r[1], r[2]) for r in self.db.execute(
                "SELECT fingerprint, fitness, trial FROM fec")}
        return self._fec.get(fingerprint)

    def in_flight(self) -> list[sqlite3.Row]:
        """Trials proposed or running when the run stopped, in proposal order."""
        return self.db.execute("SELECT * FROM trials WHERE status IN ('proposed','running') "
                               "ORDER BY id").fetchall()

    def pending_duplicate(self, fingerprint: str) -> int | None:
        """The in-flight trial with this fingerprint, if any."""
        row = self.db.execute("SELECT id FROM trials WHERE fingerprint=? AND status IN "
                              "('proposed','running') ORDER BY id LIMIT 1",
                              (fingerprint,)).fetchone()
        return row["id"] if row else None

    def programs(self, ids: list[int]) -> dict[int, Program]:
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT id, program FROM trials WHERE id IN ({marks})",
                                       chunk):
                out[row["id"]] = loads(row["program"], check=False)
        return out

    def trial(self, trial_id: int) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM trials WHERE id=?", (trial_id,)).fetchone()

    def result(self, trial_id: int) -> dict | None:
        """The evaluator's result dict of a finished trial (``None`` if it has none)."""
        row = self.db.execute("SELECT result FROM trials WHERE id=?", (trial_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def proposals(self) -> int:
        """How many candidates were ever proposed (one trial row each)."""
        return self.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.db.execute("SELECT status, COUNT(*) n FROM trials GROUP BY status"):
            counts[row["status"]] = row["n"]
        return counts

    def finished(self) -> int:
        """Trials with a fitness: evaluated (done or failed) or resolved duplicates."""
        return self.db.execute("SELECT COUNT(*) FROM trials WHERE status IN ('done','failed') "
                               "OR (status='duplicate' AND fitness IS NOT NULL)").fetchone()[0]

    def statistics(self) -> dict[str, Any]:
        """What a progress report counts: finished trials, resolved duplicates, evaluated,
        failed and hurdle-cut trials, the best (fitness, id) and the first proposal time."""
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        best = self.db.execute("SELECT id, fitness FROM trials WHERE fitness IS NOT NULL "
                               "ORDER BY fitness DESC, id LIMIT 1").fetchone()
        return {
            "finished": self.finished(),
            "duplicates": one("SELECT COUNT(*) FROM trials WHERE status='duplicate' "
                              "AND fitness IS NOT NULL"),
            "evaluated": one("SELECT COUNT(*) FROM trials WHERE status IN ('done','failed')"),
            "failed": one("SELECT COUNT(*) FROM trials WHERE status='failed'"),
            # CASE: an old store's result may hold invalid JSON (NaN)
            "hurdle_cut": one("SELECT COUNT(*) FROM trials WHERE status='done' AND CASE WHEN "
                              "json_valid(result) THEN json_extract(result, '$.status') END "
                              "= 'hurdle'"),
            "best": (best["fitness"], best["id"]) if best else None,
            "started": one("SELECT MIN(proposed_at) FROM trials") or 0.0,
        }

    def waiting_duplicates(self) -> list[tuple[int, int]]:
        """(duplicate trial, trial it waits for) for duplicates still without a fitness."""
        return [(row["id"], row["duplicate_of"]) for row in self.db.execute(
            "SELECT id, duplicate_of FROM trials WHERE status='duplicate' AND "
            "fitness IS NULL ORDER BY id")]

    def levels(self, ids: list[int]) -> dict[int, int]:
        """The hurdle level each of the trials ``ids`` has reached."""
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(
            f"SELECT id, level FROM trials WHERE id IN ({marks})", ids).fetchall())

    def time_span(self) -> tuple[float | None, float | None]:
        """The first proposal time and the last finish time (None in an empty store)."""
        row = self.db.execute("SELECT MIN(proposed_at), MAX(finished_at) FROM trials").fetchone()
        return row[0], row[1]

    def compile_time(self) -> tuple[float, float] | None:
        """Seconds spent compiling (the evaluations' ``compile_seconds``) and seconds
        spent evaluating, summed over the evaluations that report their compile time;
        None when none does (e.g. the numpy trainer)."""
        row = self.db.execute(
            "SELECT SUM(json_extract(result, '$.compile_seconds')), SUM(seconds) FROM trials "
            "WHERE status IN ('done', 'failed') AND json_valid(result) AND "
            "json_type(result, '$.compile_seconds') IN ('real', 'integer')").fetchone()
        if row[0] is None or not row[1]:
            return None
        return float(row[0]), float(row[1])

    def failure_reasons(self, limit: int = 3) -> list[tuple[str, int]]:
        """The most common reasons of failed trials, with their counts."""
        return [(r["reason"], r["n"]) for r in self.db.execute(
            "SELECT reason, COUNT(*) n FROM trials WHERE status='failed' GROUP BY reason "
            "ORDER BY n DESC, reason LIMIT ?", (limit,))]
