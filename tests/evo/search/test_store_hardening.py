"""A run store that bad evaluators and bad files cannot break (issue 11, section 3).

- an evaluator's NaN/inf fitness is a failed trial with a reason, and a plain float is
  the fitness; status, export and resume keep working;
- a damaged store (junk pages, a truncated file, a junk header) gives one clean error
  that names the file;
- a store on a read-only path is read by status, export and plot;
- a second driver on a store that a live driver holds is refused.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from evo.algorithms.base import SeedSpace
from evo.algorithms.evolution import RegularizedEvolution
from evo.app import runner
from evo.app.cli import main
from evo.app.config import load_config
from evo.search.loop import Search
from evo.search.store import RunStore, StoreError, StoreInUse
from evo.workers.base import InProcess, LocalPool, normalize_result
from graphs.core.equivalence import FEC
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

ROOT = Path(__file__).resolve().parents[3]
DQN = builtin("dqn")
FP = FEC()


def config(trials: int) -> dict:
    return load_config({"run": {"name": "hardening", "trials": trials},
                        "search": {"population_size": 4, "tournament_size": 2}}).to_dict()


def kind(program) -> int:
    return int(hashlib.blake2b(formula(program).encode(), digest_size=4).hexdigest(), 16) % 4


def bad_evaluator(program):
    """NaN, inf, a plain float or a dict, by program."""
    k = kind(program)
    if k == 0:
        return float("nan")
    if k == 1:
        return {"status": "ok", "fitness": float("inf"), "scores": {"CartPole": float("nan")}}
    if k == 2:
        return 0.25 + sum(program.live) / 1000  # a plain float: the fitness
    return {"status": "ok", "fitness": 0.5, "scores": {"CartPole": 0.5}}


def search(path: Path, trials: int, backend) -> None:
    store = RunStore.open(path)
    algorithm = RegularizedEvolution(4, 2, 0.5, SeedSpace("dqn", 6), seed=1)
    try:
        Search(algorithm, store, backend, trials).run()
    finally:
        store.close()


@pytest.mark.parametrize("pool", ["local", "inprocess"])
def test_nan_and_inf_fitness_fail_with_a_reason_and_a_float_is_the_fitness(tmp_path, pool,
                                                                           capsys):
    path = tmp_path / "run.db"
    RunStore.create(path, config(30)).close()

    def backend():
        return (LocalPool(bad_evaluator, workers=1) if pool == "local"
                else InProcess(bad_evaluator))

    with backend() as first:
        search(path, 16, first)
    with backend() as again:  # resume and extend the run
        search(path, 30, again)

    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    rows = [dict(r) for r in db.execute("SELECT * FROM trials WHERE status IN "
                                        "('done','failed')")]
    assert db.execute("SELECT COUNT(*) FROM trials WHERE result IS NOT NULL AND "
                      "NOT json_valid(result)").fetchone()[0] == 0
    programs = RunStore.open(path, readonly=True)
    by_id = programs.programs([r["id"] for r in rows])
    programs.close()
    kinds = {kind(by_id[r["id"]]) for r in rows}
    assert {0, 2} <= kinds or {1, 2} <= kinds, "the search should meet both kinds"
    for r in rows:
        k = kind(by_id[r["id"]])
        assert r["fitness"] is not None
        if k in (0, 1):
            assert r["status"] == "failed" and r["fitness"] == 0.0
            assert "finite number" in r["reason"] and ("nan" in r["reason"]
                                                       or "inf" in r["reason"])
        else:
            assert r["status"] == "done", r["reason"]
        if k == 2:
            assert r["fitness"] == pytest.approx(0.25 + sum(by_id[r["id"]].live) / 1000)
    state = json.loads(db.execute("SELECT value FROM meta WHERE key='algorithm'").fetchone()[0])
    assert all(m[1] is not None for m in state["algorithm"]["population"])
    db.close()

    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "failed:" in out and "finite number" in out
    assert main(["export", str(path), "-o", str(tmp_path / "ds")]) == 0
    exported = [json.loads(line) for line in
                (tmp_path / "ds" / "programs.jsonl").read_text().splitlines()]
    assert exported and all(row["fitness"] is not None for row in exported)


def test_normalize_result_and_the_store_refuse_non_finite_fitness(tmp_path):
    assert normalize_result(0.75) == {"status": "ok", "fitness": 0.75}
    assert normalize_result(3) == {"status": "ok", "fitness": 3.0}
    for bad in (float("nan"), float("-inf"), {"fitness": float("nan")}, {"status": "ok"},
                {"status": "ok", "fitness": "high"}, True, None, [0.5]):
        out = normalize_result(bad)
        assert out["status"] == "error" and out["fitness"] == 0.0 and out["reason"], bad
    assert normalize_result({"status": "nan", "fitness": float("nan")}) == {
        "status": "nan", "fitness": 0.0}
    # A backend that bypasses run_task: the store itself records a failure, valid JSON.
    store = RunStore.create(tmp_path / "s.db", {})
    tid = store.add_trial(DQN, FP(DQN), "", None, "seed", 0, {"n": 1}, worker="w")
    store.finish(tid, {"status": "ok", "fitness": float("nan"),
                       "scores": {"CartPole": float("inf")}}, {"n": 2})
    row = store.trial(tid)
    assert row["status"] == "failed" and row["fitness"] == 0.0 and "finite" in row["reason"]
    assert json.loads(row["result"])["scores"] == {"CartPole": None}
    assert store.fec_lookup(FP(DQN)) is None  # an error is not cached
    store.close()


# -- damaged files ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sound_store(tmp_path_factory) -> Path:
    """A store with 300 finished trials (a few dozen pages)."""
    path = tmp_path_factory.mktemp("sound") / "run.db"
    store = RunStore.create(path, config(300))
    for i in range(300):
        tid = store.add_trial(DQN, f"fp{i}", "", None, "seed", 0, {"n": i}, worker="w")
        store.finish(tid, {"status": "ok", "fitness": i / 300, "scores": {"CartPole": 0.5}},
                     {"n": i})
    store.close()
    assert path.stat().st_size > 40 * 4096
    return path


def damage(src: Path, dst: Path, how: str) -> Path:
    shutil.copy(src, dst)
    size = dst.stat().st_size
    if how == "junk pages":
        with open(dst, "r+b") as f:
            f.seek(2 * 4096)
            f.write(os.urandom(size - 4 * 4096))
    elif how == "truncated":
        os.truncate(dst, size // 2)
    else:  # junk header
        with open(dst, "r+b") as f:
            f.write(os.urandom(100))
    return dst


@pytest.mark.parametrize("how", ["junk pages", "truncated", "junk header"])
@pytest.mark.parametrize("command", ["status", "export", "plot", "resume"])
def test_a_damaged_store_gives_a_clean_error_naming_the_file(sound_store, tmp_path, capsys,
                                                            how, command):
    path = damage(sound_store, tmp_path / "broken.db", how)
    args = [command, str(path)] + (["-o", str(tmp_path / "out")] if command in (
        "export", "plot") else ["-q"] if command == "resume" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"evo: error: {path}") and "damaged" in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not Path(f"{path}-lock").exists()  # resume released its lock


def test_the_python_api_reports_a_damaged_store_too(sound_store, tmp_path):
    path = damage(sound_store, tmp_path / "broken.db", "junk pages")
    with pytest.raises(StoreError, match="damaged"):
        runner.status(path)
    with pytest.raises(StoreError, match="damaged"):
        runner.resume(path, progress=False)


# -- read-only paths ---------------------------------------------------------------------------
def _without_write_override() -> None:
    """In the child: as root, give up the capabilities that ignore file permissions."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=_without_write_override, cwd=ROOT, **kw)


def test_status_export_and_plot_read_a_store_on_a_read_only_path(sound_store, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "run.db"
    shutil.copy(sound_store, path)
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, MPLCONFIGDIR=str(out / "mpl"))
    path.chmod(0o444)
    ro.chmod(0o555)
    try:
        try:
            probe = run_unprivileged("-c", f"open({str(ro / 'x')!r}, 'w')")
        except subprocess.SubprocessError:
            pytest.skip("cannot drop the capabilities that override file permissions")
        if probe.returncode == 0:
            pytest.skip("this user can write a read-only directory")
        status = run_unprivileged("-m", "evo", "status", str(path), env=env)
        assert status.returncode == 0, status.stderr
        assert "300/300 trials finished" in status.stdout
        export = run_unprivileged("-m", "evo", "export", str(path), "-o", str(out / "ds"),
                                  env=env)
        assert export.returncode == 0, export.stderr
        assert len((out / "ds" / "programs.jsonl").read_text().splitlines()) == 100
        plot = run_unprivileged("-m", "evo", "plot", str(path), "-o", str(out / "plots"),
                                env=env)
        assert plot.returncode == 0, plot.stderr
        assert (out / "plots" / "fitness.png").exists()
        resume = run_unprivileged("-m", "evo", "resume", str(path), env=env)
        assert resume.returncode == 2 and "Traceback" not in resume.stderr
        assert "can still read it" in resume.stderr
        assert sorted(p.name for p in ro.iterdir()) == ["run.db"]
    finally:
        ro.chmod(0o755)
        path.chmod(0o644)


# -- two drivers -------------------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from evo.search.store import RunStore
    store = RunStore.open(sys.argv[1])
    print("holding", flush=True)
    time.sleep(120)
""")


def test_a_second_driver_is_refused_while_the_first_lives(sound_store, tmp_path, capsys):
    path = tmp_path / "run.db"
    shutil.copy(sound_store, path)
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT)))
    holder = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert main(["resume", str(path), "-q"]) == 2
        err = capsys.readouterr().err
        assert f"{path} is in use by another evo driver (pid {holder.pid} on" in err, err
        with pytest.raises(StoreInUse):
            RunStore.open(path)
        assert main(["status", str(path)]) == 0  # readers are welcome meanwhile
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    # The kernel dropped the dead driver's lock: the store opens again.
    RunStore.open(path).close()
    assert not Path(f"{path}-lock").exists()


def test_the_lock_is_the_driver_s_not_its_workers(tmp_path):
    """Forked local workers do not keep the lock once the driver lets go."""
    path = tmp_path / "run.db"
    store = RunStore.create(path, {})
    with pytest.raises(StoreInUse, match="in use by another evo driver"):
        RunStore.open(path)  # even from the same process
    with LocalPool(bad_evaluator, workers=2):
        store.close()
        again = RunStore.open(path)  # the workers still live
        again.close()


def test_two_searches_on_one_store_never_evaluate_the_same_trial(tmp_path):
    """The issue's race: the second driver stops at once; the first finishes cleanly."""
    path = tmp_path / "run.db"
    RunStore.create(path, {}).close()
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from evo.algorithms.base import SeedSpace
        from evo.algorithms.evolution import RegularizedEvolution
        from evo.search.loop import Search
        from evo.search.store import RunStore
        from evo.workers.base import LocalPool

        def slow(program):
            time.sleep(0.05)
            return 0.5

        store = RunStore.open(sys.argv[1])
        print("started", flush=True)
        with LocalPool(slow, workers=1) as pool:
            Search(RegularizedEvolution(4, 2, 0.5, SeedSpace("dqn", 6), seed=1), store, pool,
                   40).run()
        store.close()
        print("finished", flush=True)
    """))
    first = subprocess.Popen([sys.executable, str(driver), str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "started"
        second = subprocess.run([sys.executable, str(driver), str(path)], capture_output=True,
                                text=True, timeout=120)
        assert second.returncode != 0 and "in use by another evo driver" in second.stderr
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and "finished" in out, err
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM trials WHERE status IN ('done','failed') OR "
                      "(status='duplicate' AND fitness IS NOT NULL)").fetchone()[0] == 40
    db.close()

