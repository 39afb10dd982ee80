"""The run store: schema, WAL, trial transitions, duplicates, readers, clear errors."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from evo.results import CACHEABLE
from evo.search.store import SCHEMA_VERSION, STATUSES, RunStore, StoreError
from graphs.core.equivalence import FEC
from graphs.core.fileformat import loads
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

DQN = builtin("dqn")
DDQN = builtin("ddqn")
FP = FEC()


def new_store(tmp_path, name="run.evo"):
    return RunStore.create(tmp_path / name, {"algorithm": "re", "population": 10})


def add(store, program=DQN, state=None, **kw):
    return store.add_trial(program, FP(program), formula(program), kw.pop("parent", None),
                           kw.pop("mutation", "seed"), kw.pop("generation", 0),
                           state if state is not None else {"step": 1}, **kw)


def test_schema_wal_config_and_statuses(tmp_path):
    store = new_store(tmp_path)
    tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "trials", "fec"} <= tables
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.get("schema_version") == SCHEMA_VERSION
    assert store.config == {"algorithm": "re", "population": 10}
    assert STATUSES == ("proposed", "running", "done", "failed", "duplicate")
    assert store.counts() == dict.fromkeys(STATUSES, 0)
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO trials(status, program, fingerprint, formula, "
                         "proposed_at) VALUES ('weird', '', '', '', 0)")
    store.close()
    # The WAL mode is persistent: a reader sees it too.
    ro = RunStore.open(tmp_path / "run.evo", readonly=True)
    assert ro.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_trial_lifecycle_proposed_running_done(tmp_path):
    store = new_store(tmp_path)
    tid = add(store, parent=None, state={"population": [], "n": 1})
    row = store.trial(tid)
    assert row["status"] == "proposed" and row["fitness"] is None and row["attempts"] == 0
    assert loads(row["program"]) == DQN and row["fingerprint"] == FP(DQN)
    assert row["formula"] == formula(DQN) and row["mutation"] == "seed"
    assert store.get("algorithm") == {"population": [], "n": 1}
    assert [r["id"] for r in store.in_flight()] == [tid]
    assert store.pending_duplicate(FP(DQN)) == tid

    store.start(tid, "local")
    row = store.trial(tid)
    assert row["status"] == "running" and row["worker"] == "local" and row["attempts"] == 1
    store.start(tid, "local")  # re-issued after a resume or a dead worker
    assert store.trial(tid)["attempts"] == 2

    resolved = store.finish(tid, {"status": "ok", "fitness": 0.75, "scores": {"CartPole": 0.75},
                                  "hurdle": {"env": "CartPole", "passed": True},
                                  "seconds": 1.5}, {"n": 2}, worker="local-1")
    assert resolved == []
    row = store.trial(tid)
    assert row["status"] == "done" and row["fitness"] == 0.75 and row["worker"] == "local-1"
    assert row["seconds"] == 1.5 and row["finished_at"] >= row["started_at"]
    assert '"CartPole": 0.75' in row["scores"] and '"passed": true' in row["hurdle"]
    assert store.get("algorithm") == {"n": 2}
    assert store.fec_lookup(FP(DQN)) == (0.75, tid)
    assert store.in_flight() == [] and store.pending_duplicate(FP(DQN)) is None
    assert store.finished() == 1
    assert store.counts()["done"] == 1

    store.start(tid, "elsewhere")  # a finished trial is never restarted
    assert store.trial(tid)["status"] == "done"


def test_finish_twice_raises(tmp_path):
    store = new_store(tmp_path)
    tid = add(store)
    store.start(tid, "local")
    store.finish(tid, {"status": "ok", "fitness": 1.0}, {})
    with pytest.raises(StoreError, match=f"trial {tid} is not in flight.*done"):
        store.finish(tid, {"status": "ok", "fitness": 2.0}, {"bad": True})
    assert store.trial(tid)["fitness"] == 1.0  # the failed call changed nothing
    assert store.get("algorithm") == {}
    with pytest.raises(StoreError, match="missing"):
        store.finish(999, {"status": "ok", "fitness": 1.0}, {})


def test_failed_evaluation_is_recorded_with_its_reason(tmp_path):
    store = new_store(tmp_path)
    tid = add(store)
    store.start(tid, "local")
    store.finish(tid, {"status": "timeout", "fitness": 0.5,
                       "reason": "exceeded the per-candidate timeout of 3 s"}, {})
    row = store.trial(tid)
    assert row["status"] == "failed" and row["fitness"] == 0.0
    assert row["reason"] == "exceeded the per-candidate timeout of 3 s"
    assert store.counts()["failed"] == 1 and store.finished() == 1
    # A timeout or an error may be the machine's fault: not cached for equivalent programs.
    assert store.fec_lookup(FP(DQN)) is None
    again = add(store)
    store.start(again, "local")
    store.finish(again, {"status": "error", "reason": "boom"}, {})
    assert store.fec_lookup(FP(DQN)) is None
    # A result that belongs to the program is cached, even when it is a failure.
    nan = add(store, DDQN)
    store.start(nan, "local")
    store.finish(nan, {"status": "nan", "reason": "loss became NaN"}, {})
    assert store.trial(nan)["status"] == "failed"
    assert store.fec_lookup(FP(DDQN)) == (0.0, nan)
    assert set(CACHEABLE) == {"ok", "hurdle", "nan"}


def test_pending_duplicates_are_resolved_when_their_original_finishes(tmp_path):
    store = new_store(tmp_path)
    original = add(store)
    store.start(original, "local")
    dups = [add(store, duplicate_of=original) for _ in range(3)]
    for d in dups:
        row = store.trial(d)
        assert row["status"] == "duplicate" and row["fitness"] is None
        assert row["duplicate_of"] == original
    assert store.finished() == 0
    assert [r["id"] for r in store.in_flight()] == [original]  # duplicates wait, not run
    other = add(store, DDQN)
    store.start(other, "local")

    resolved = store.finish(original, {"status": "ok", "fitness": 3.0}, {"s": 1})
    assert sorted(resolved) == dups
    assert [store.trial(d)["fitness"] for d in dups] == [3.0, 3.0, 3.0]
    assert all(store.trial(d)["finished_at"] is not None for d in dups)
    hits = store.db.execute("SELECT hits FROM fec WHERE fingerprint=?", (FP(DQN),)).fetchone()[0]
    assert hits == 3
    assert store.finished() == 4
    assert store.trial(other)["fitness"] is None  # unrelated trial untouched

    # A cached duplicate arrives with its fitness and counts one more hit.
    state_seen = []
    cached = add(store, duplicate_of=original, fitness=3.0,
                 state=lambda tid: state_seen.append(tid) or {"after": tid})
    assert state_seen == [cached] and store.get("algorithm") == {"after": cached}
    assert store.trial(cached)["fitness"] == 3.0
    hits = store.db.execute("SELECT hits FROM fec WHERE fingerprint=?", (FP(DQN),)).fetchone()[0]
    assert hits == 4
    assert store.counts() == {"proposed": 0, "running": 1, "done": 1, "failed": 0,
                              "duplicate": 4}
    assert store.finished() == 5


def test_programs_round_trip_by_id(tmp_path):
    store = new_store(tmp_path)
    ids = [add(store, p) for p in (DQN, DDQN)]
    assert store.programs(ids) == {ids[0]: DQN, ids[1]: DDQN}
    assert store.programs([]) == {}


def test_a_rolled_back_transaction_leaves_no_trace(tmp_path):
    store = new_store(tmp_path)

    def explode(tid):
        raise RuntimeError("algorithm state failed")

    with pytest.raises(RuntimeError):
        add(store, state=explode)
    assert store.counts() == dict.fromkeys(STATUSES, 0)
    assert add(store) == 1  # and the store keeps working


def test_deferred_commits_write_the_last_state_and_the_hits_at_commit(tmp_path):
    """With deferred commits (the search loop), the algorithm state and the cache hits
    are written once, at commit, in the same transaction as the trials."""
    store = new_store(tmp_path)
    store.defer_commits = True
    tid = add(store, state={"step": 1})
    store.start(tid, "local")
    store.finish(tid, {"status": "ok", "fitness": 2.0}, {"step": 2})
    store.commit()
    for step in (3, 4):
        add(store, duplicate_of=tid, fitness=2.0, state={"step": step})
    assert store.get("algorithm") == {"step": 4}  # this connection sees its own writes
    reader = RunStore.open(store.path, readonly=True)
    assert reader.get("algorithm") == {"step": 2}  # others see the last commit
    assert reader.finished() == 1
    store.commit()
    assert reader.get("algorithm") == {"step": 4}
    assert reader.finished() == 3
    hits = reader.db.execute("SELECT hits FROM fec WHERE fingerprint=?", (FP(DQN),)).fetchone()
    assert hits[0] == 2
    assert reader.fec_lookup(FP(DQN)) == (2.0, tid)

    def explode(tid):
        raise RuntimeError("algorithm state failed")

    add(store, duplicate_of=tid, fitness=2.0, state={"step": 5})
    with pytest.raises(RuntimeError):
        add(store, state=explode)
    store.commit()  # the rollback dropped the pending state and hits with it
    assert reader.get("algorithm") == {"step": 4}
    assert reader.finished() == 3
    assert store.fec_lookup(FP(DQN)) == (2.0, tid)  # re-read after the rollback
    reader.close()
    store.close()


def test_concurrent_reader_while_a_writer_commits(tmp_path):
    path = tmp_path / "run.evo"
    new_store(tmp_path).close()
    n = 150
    errors: list[BaseException] = []
    started = threading.Event()

    def writer():
        try:
            store = RunStore.open(path)  # sqlite connections belong to their thread
            started.set()
            for i in range(n):
                tid = add(store, state={"i": i})
                store.start(tid, "local")
                store.finish(tid, {"status": "ok", "fitness": float(i)}, {"i": i})
            store.close()
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)
            started.set()

    reader = RunStore.open(path, readonly=True)
    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(10)
    # A long read transaction sees one consistent snapshot and never blocks the writer.
    reader.db.execute("BEGIN")
    snapshot = reader.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
        assert reader.db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == snapshot
    thread.join(1)
    assert not thread.is_alive(), "the writer was blocked by a reader"
    assert not errors, errors
    reader.db.execute("COMMIT")
    seen = []
    assert reader.finished() == n
    # Fresh reads during a second writer burst: progress only grows, rows are whole.
    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        done = reader.db.execute("SELECT COUNT(*) FROM trials WHERE status='done'").fetchone()[0]
        seen.append(done)
        bad = reader.db.execute("SELECT COUNT(*) FROM trials WHERE status='done' AND "
                                "fitness IS NULL").fetchone()[0]
        assert bad == 0
    thread.join()
    assert not errors, errors
    assert seen == sorted(seen) and reader.finished() == 2 * n
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM trials")


def test_create_on_an_existing_path_points_to_resume(tmp_path):
    new_store(tmp_path).close()
    with pytest.raises(StoreError, match=r"already exists; use `evo resume .*run.evo`"):
        new_store(tmp_path)
    (tmp_path / "other.txt").write_text("hello")
    with pytest.raises(StoreError, match="evo resume"):
        RunStore.create(tmp_path / "other.txt", {})
    assert (tmp_path / "other.txt").read_text() == "hello"  # left untouched


def test_open_missing_path(tmp_path):
    with pytest.raises(StoreError, match="no such run store"):
        RunStore.open(tmp_path / "nope.evo")


def test_open_a_sqlite_file_that_is_not_a_store(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE x(a)")
    db.commit()
    db.close()
    for readonly in (True, False):
        with pytest.raises(StoreError, match="is not an evo run store"):
            RunStore.open(path, readonly=readonly)


def test_open_a_non_sqlite_file_readonly(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="is not an evo run store"):
        RunStore.open(path, readonly=True)


def test_open_a_non_sqlite_file_for_writing(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="is not an evo run store|not a database"):
        RunStore.open(path)


def test_wrong_schema_version(tmp_path):
    store = new_store(tmp_path)
    store.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    store.close()
    with pytest.raises(StoreError, match=rf"schema version 99; this evo reads version "
                                         rf"{SCHEMA_VERSION}"):
        RunStore.open(tmp_path / "run.evo")


def _finish_steps(tmp_path, name: str, other_duplicates: int) -> int:
    """SQLite VM steps (in units of 100) that finish() takes with that many unrelated,
    already resolved duplicate rows in the store."""
    store = new_store(tmp_path, name)
    first = add(store)
    store.start(first, "local")
    store.finish(first, {"status": "ok", "fitness": 1.0}, {})
    with store.transaction():
        store.db.executemany(
            "INSERT INTO trials(status, program, fingerprint, formula, duplicate_of, fitness, "
            "proposed_at) VALUES ('duplicate', '{}', 'fp', 'f', ?, 1.0, 0)",
            [(first,)] * other_duplicates)
    tid = add(store, DDQN)
    store.start(tid, "local")
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store.db.set_progress_handler(count, 100)
    store.finish(tid, {"status": "ok", "fitness": 2.0}, {})
    store.db.set_progress_handler(None, 0)
    store.close()
    return steps[0]


def test_finish_cost_does_not_grow_with_unrelated_duplicates(tmp_path):
    small = _finish_steps(tmp_path, "small.evo", 10)
    large = _finish_steps(tmp_path, "large.evo", 5000)
    assert large <= 2 * small + 5, (small, large)
