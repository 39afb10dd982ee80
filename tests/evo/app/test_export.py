"""The top-k dataset export: rows, formats, determinism and the re-evaluation round trip."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from evo.app import runner
from evo.app.cli import main
from evo.app.config import load_config
from evo.app.export import COLUMNS, ExportError, export, unique_programs
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.core.fileformat import from_dict, loads, to_dict
from graphs.core.render import formula
from graphs.rl_loss.library import builtin

TINY = """
[run]
name = "tiny-export"
trials = 6
seed = 5
[search]
population_size = 3
tournament_size = 2
extra_nodes = 2
[evaluator]
envs = ["CartPole"]
steps = 300
hurdle = false
[evaluator.agent]
hidden = [16, 16]
learning_starts = 100
[workers]
workers = 2
"""


def synthetic_store(path):
    """A store with known trials: dqn twice (a better re-run and a duplicate), ddqn
    (tied with dqn's best, later id), cql (failed) and dqnreg (hurdle cut)."""
    store = RunStore.create(path, load_config(TINY).to_dict())
    fec = FEC()

    def add(name, result, parent=None, generation=0, duplicate_of=None, fitness=None):
        program = builtin(name)
        tid = store.add_trial(program, fec(program), formula(program), parent, "seed",
                              generation, {"algorithm": {}}, duplicate_of=duplicate_of,
                              fitness=fitness)
        if result is not None:
            store.start(tid, "local-0")
            store.finish(tid, result, {"algorithm": {}}, "local-0")
        return tid

    ok = lambda f: {"status": "ok", "fitness": f, "scores": {"CartPole": f}}  # noqa: E731
    first = add("dqn", ok(0.5))
    add("dqn", None, duplicate_of=first, fitness=0.5)
    add("ddqn", ok(0.5), parent=first, generation=1)
    add("cql", {"status": "error", "fitness": 0.0, "reason": "boom"})
    add("dqnreg", {"status": "hurdle", "fitness": 0.0, "scores": {"CartPole": 0.1},
                   "hurdle": {"env": "CartPole", "passed": False}})
    store.close()
    return path


def test_unique_programs_rank_dedupe_and_exclude_failures(tmp_path):
    store = RunStore.open(synthetic_store(tmp_path / "s.db"), readonly=True)
    rows = unique_programs(store)
    store.close()
    assert [r["formula"] for r in rows] == [formula(builtin(n)) for n in ("dqn", "ddqn",
                                                                           "dqnreg")]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[0]["fitness"] == rows[1]["fitness"] == 0.5  # tie: the lower trial id first
    assert rows[0]["evaluations"] == 2 and rows[1]["evaluations"] == 1
    assert rows[1]["parent_fingerprint"] == rows[0]["fingerprint"]
    assert rows[1]["generation"] == 1 and rows[0]["parent_fingerprint"] is None
    assert rows[2]["status"] == "hurdle" and rows[2]["scores"] == {"CartPole": 0.1}
    assert from_dict(rows[0]["program"]) == builtin("dqn")


def test_export_writes_jsonl_parquet_and_a_card(tmp_path):
    path = synthetic_store(tmp_path / "s.db")
    paths = export(path, tmp_path / "out", top=2)
    lines = paths["jsonl"].read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 2 and all(list(r) == sorted(COLUMNS) for r in rows)
    assert [r["rank"] for r in rows] == [1, 2]
    assert isinstance(rows[0]["program"], dict) and rows[0]["scores"] == {"CartPole": 0.5}
    table = pq.read_table(paths["parquet"])
    assert table.column_names == list(COLUMNS)
    prows = table.to_pylist()
    for j, p in zip(rows, prows):
        assert dict(p["scores"]) == j["scores"]
        assert loads(p["program"]) == from_dict(j["program"])
        assert {k: p[k] for k in COLUMNS if k not in ("scores", "program")} == \
            {k: j[k] for k in COLUMNS if k not in ("scores", "program")}
    card = paths["card"].read_text()
    for needle in ("# evo dataset: tiny-export", "| `parent_fingerprint` |", "| `evaluations` |",
                   "evo eval program.json --config config.toml",
                   "from_dict(row[\"program\"])", "[evaluator.agent]",
                   "| unique evaluated programs | 3 |", "| failed (error, NaN, timeout) | 1 |",
                   "| rows in this dataset | 2 |"):
        assert needle in card, needle
    assert load_config(paths["config"]) == load_config(TINY)
    with pytest.raises(ExportError, match="--top 0"):
        export(path, tmp_path / "x", top=0)


def test_export_is_byte_identical_twice(tmp_path):
    path = synthetic_store(tmp_path / "s.db")
    a = export(path, tmp_path / "a")
    b = export(path, tmp_path / "b")
    for kind in a:
        assert a[kind].read_bytes() == b[kind].read_bytes(), kind


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "tiny.db"
    runner.run(load_config(TINY), path, progress=False)
    return path


def test_round_trip_reload_and_re_evaluate(real_run, tmp_path, capsys):
    """The issue's round trip: export a real run, reload a row's program from JSONL,
    re-evaluate it with the run's settings, and get the recorded fitness back."""
    paths = export(real_run, tmp_path / "ds", top=3)
    again = export(real_run, tmp_path / "ds2", top=3)
    assert all(paths[k].read_bytes() == again[k].read_bytes() for k in paths)
    row = json.loads(paths["jsonl"].read_text().splitlines()[0])
    program = from_dict(row["program"])
    assert formula(program) == row["formula"]
    assert FEC()(program) == row["fingerprint"]
    evaluator = runner.make_evaluator(load_config(paths["config"]))
    result = evaluator.evaluate(program, progress=False)
    assert result.fitness == pytest.approx(row["fitness"], abs=1e-9)
    assert result.scores == pytest.approx(row["scores"])
    # the CLI route that the dataset card documents
    program_file = tmp_path / "program.json"
    program_file.write_text(json.dumps(row["program"]))
    assert main(["eval", str(program_file), "--config", str(paths["config"])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fitness"] == pytest.approx(row["fitness"], abs=1e-9)
    # and from Parquet
    prow = pq.read_table(paths["parquet"]).to_pylist()[0]
    assert to_dict(loads(prow["program"])) == row["program"]


def _card_python(card: str) -> str:
    """The Python recipe of a dataset card (its one ```python block)."""
    [code] = re.findall(r"```python\n(.*?)```", card, re.S)
    return code


def test_the_cards_python_recipe_runs_and_reproduces_the_row(real_run, tmp_path, capsys,
                                                              monkeypatch):
    paths = export(real_run, tmp_path / "ds", top=2)
    code = _card_python(paths["card"].read_text())
    code = code.replace("steps=20_000, seeds=3", "steps=300, seeds=1")  # the second half, short
    monkeypatch.chdir(tmp_path / "ds")
    exec(compile(code, "README.md", "exec"), {"__name__": "card"})  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    row = json.loads(paths["jsonl"].read_text().splitlines()[0])
    assert float(printed[0].split()[0]) == pytest.approx(row["fitness"], abs=1e-9)
