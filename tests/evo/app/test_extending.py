"""docs/extending.md: its three examples (an algorithm, a backend, a problem) run as
written, with no edit to evo, and unknown names fail with the registered ones listed."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

import evo
from evo.algorithms import ALGORITHMS
from evo.app.problems import PROBLEMS
from evo.errors import ConfigError
from evo.workers import BACKENDS

DOC = Path(__file__).resolve().parents[3] / "docs" / "extending.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture
def registries():
    """Undo the examples' registrations after each test."""
    saved = [(r, r.names()) for r in (ALGORITHMS, BACKENDS, PROBLEMS)]
    yield
    for registry, names in saved:
        for name in set(registry.names()) - set(names):
            registry.unregister(name)


def _register(code: str, monkeypatch) -> None:
    """Import an example as a module: its classes and registrations, not its run."""
    module = types.ModuleType("example")
    monkeypatch.setitem(sys.modules, "example", module)
    exec(compile(code, str(DOC), "exec"), module.__dict__)  # noqa: S102


def _script(tmp_path: Path, name: str, code: str, edits: dict[str, str]) -> Path:
    """An example as the user's script, with the run shortened."""
    for old, new in edits.items():
        assert old in code, old
        code = code.replace(old, new)
    path = tmp_path / f"{name}.py"
    path.write_text(code, encoding="utf-8")
    return path


def _python(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _trials(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT status, mutation, fitness FROM trials ORDER BY id").fetchall()
    finally:
        db.close()


def test_the_docs_have_the_three_examples():
    assert len(_blocks()) == 3


def test_a_registered_algorithm_runs_from_a_config_and_resumes(tmp_path, registries,
                                                                monkeypatch):
    code = _blocks()[0]
    script = _script(tmp_path, "hill", code, {'"hill_climb.warmup": 20}': (
        '"hill_climb.warmup": 20, "run.trials": 40, "workers.workers": 1}')})
    _python(tmp_path, str(script))
    rows = _trials(tmp_path / "runs" / "hill.db")
    assert len(rows) >= 40
    assert sum(1 for r in rows if r[1] == "seed") == 20  # [hill_climb] warmup, then mutations
    # the same script, imported, registers the algorithm for a resume
    _python(tmp_path, "-c", "import evo, hill; "
            "evo.resume('runs/hill.db', trials=60, workers=1, progress=False)")
    assert len(_trials(tmp_path / "runs" / "hill.db")) >= 60
    _register(code, monkeypatch)
    with pytest.raises(ConfigError, match="searches architectures"):
        evo.preset("quick").replace(**{"search.algorithm": "hill_climb"})
    nb201 = evo.preset("nb201-quick")
    with pytest.raises(ConfigError, match="hill_climb.warmup = 0: must be an integer >= 1"):
        nb201.replace(**{"search.algorithm": "hill_climb", "hill_climb.warmup": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        nb201.replace(**{"search.algorithm": "hill_climb", "hill_climb.warm": 3})
    assert nb201.replace(**{"search.algorithm": "hill_climb"}).hill_climb.warmup == 10


def test_a_registered_backend_is_used_by_the_loop(tmp_path, registries):
    script = _script(tmp_path, "logged", _blocks()[1], {
        '.replace(**{"workers.backend": "logged"})':
        '.replace(**{"workers.backend": "logged", "run.trials": 12})'})
    out = _python(tmp_path, str(script)).stdout
    assert out.count("evaluating trial") >= 12
    assert len(_trials(tmp_path / "runs" / "logged.db")) >= 12


def test_a_registered_problem_is_searched_scored_and_exported(tmp_path, registries,
                                                               monkeypatch):
    code = _blocks()[2]
    script = _script(tmp_path, "params", code, {
        "trials = 50": "trials = 30",
        "    tournament_size = 3\n": "    tournament_size = 3\n    [workers]\n    workers = 1\n"})
    _python(tmp_path, str(script))
    store = tmp_path / "runs" / "params.db"
    rows = _trials(store)
    assert len(rows) >= 30 and all(r[0] in ("done", "duplicate") for r in rows)
    assert max(r[2] for r in rows) > min(r[2] for r in rows)  # it found smaller networks
    _register(code, monkeypatch)  # reading the store needs the problem, as running it did
    assert "space nb201-params" in evo.status(store)
    paths = evo.export(store, tmp_path / "top", top=5)
    assert "architectures" in Path(paths["card"]).read_text()


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ConfigError, match="did you mean 'nb201'"):
        evo.get_problem("nb20")
    with pytest.raises(ConfigError, match='must be one of "regularized_evolution"'):
        evo.load_config('[search]\nalgorithm = "regularised_evolution"\n')
    with pytest.raises(ConfigError, match='did you mean "ray"'):
        evo.load_config('[workers]\nbackend = "rey"\n')
