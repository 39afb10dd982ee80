"""bench/generalization.py --merge: runs split by program join into one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from generalization import merge

from evo.rl.compare import score_row, write_report

ENV = "MiniGrid-SimpleCrossingS9N1"


def _part(root: Path, name: str, returns: list[list[float]], first_seed: int = 0,
          steps: int = 1000, agent: str = "paper.toml", dirname: str | None = None,
          program: str | None = None) -> Path:
    """A finished part as bench/generalization.py writes it, for one program trained
    with seeds ``first_seed, first_seed + 1, ...`` (one per list of returns)."""
    out = root / (dirname or name)
    (out / "programs").mkdir(parents=True)
    (out / "programs" / "00.json").write_text(json.dumps({"program": program or name}) + "\n")
    per_seed = [sum(r) / len(r) for r in returns]
    seeds = list(range(first_seed, first_seed + len(returns)))
    scores = {"seeds": len(seeds), "seed_ids": seeds, "trainer": "population",
              "envs": {ENV: {"budget": {"episodes": None, "steps": steps},
                             "programs": {name: score_row(per_seed, ["ok"] * len(returns),
                                                          seeds)},
                             "loss_mode": "trace"}},
              "wall_seconds": 10.0, "programs": {name: {"file": "programs/00.json",
                                                         "formula": name}},
              "command": f"python bench/generalization.py --env {ENV} --agent-from {agent} "
                         f"--reference {name} -o {out}"}
    write_report(scores, {ENV: {name: returns}}, out)
    (out / "scores.json").write_text(json.dumps(scores))  # with its command, as the script
    return out


def test_parts_of_one_plan_merge_into_one_table_with_every_program(tmp_path):
    a = _part(tmp_path, "dqnreg", [[0.1, 0.5, 0.6], [0.2, 0.4, 0.7]])
    b = _part(tmp_path, "dqn", [[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]])
    out = tmp_path / "all"
    merged = merge([a, b], out)
    assert list(merged["envs"][ENV]["programs"]) == ["dqnreg", "dqn"]
    assert merged["wall_seconds"] == 20.0
    assert set(merged["merged_from"]) == {str(a), str(b)}
    returns = json.loads((out / "returns.json").read_text())[ENV]
    assert returns["dqn"] == [[0.0, 0.1, 0.0], [0.1, 0.0, 0.0]]
    table = (out / "scores.md").read_text()
    assert "| dqnreg |" in table and "| dqn |" in table
    assert json.loads((out / "programs" / "01.json").read_text()) == {"program": "dqn"}
    assert merged["programs"]["dqn"]["file"] == "programs/01.json"
    assert (out / f"{ENV}.png").stat().st_size > 0


@pytest.mark.parametrize("other", [{"steps": 2000}, {"agent": "small.toml"}])
def test_parts_of_different_plans_do_not_merge(tmp_path, other):
    a = _part(tmp_path, "dqnreg", [[0.1], [0.2]])
    b = _part(tmp_path, "dqn", [[0.0], [0.1]], **other)
    with pytest.raises(SystemExit, match="only parts of one plan (merge|join)"):
        merge([a, b], tmp_path / "all")


def test_an_unfinished_or_foreign_part_is_named(tmp_path):
    a = _part(tmp_path, "dqnreg", [[0.1], [0.2]])
    (tmp_path / "dqn").mkdir()
    with pytest.raises(SystemExit, match="no finished run there"):
        merge([a, tmp_path / "dqn"], tmp_path / "all")
    b = _part(tmp_path, "ddqn", [[0.0], [0.1]])
    merge([a, b], tmp_path / "merged")
    with pytest.raises(SystemExit, match="not a run of this script"):
        merge([a, tmp_path / "merged"], tmp_path / "again")


def test_a_seed_trained_in_two_parts_is_refused(tmp_path):
    a = _part(tmp_path / "a", "dqn", [[0.1], [0.2]])
    b = _part(tmp_path / "b", "dqn", [[0.0], [0.1]], first_seed=1)
    with pytest.raises(SystemExit, match="'dqn' seed 1 .* trained in two parts"):
        merge([a, b], tmp_path / "all")


def test_parts_split_by_seed_join_each_programs_seeds_in_order(tmp_path):
    """DQNReg with seeds 0-1, more seeds 2-4 later, and DQN with seeds 0-1 only: one
    table, DQNReg over its five seeds (in seed order), each cell naming its count."""
    later = _part(tmp_path, "dqnreg", [[0.9], [0.7], [0.8]], first_seed=2, dirname="more")
    early = _part(tmp_path, "dqnreg", [[0.1], [0.3]])
    dqn = _part(tmp_path, "dqn", [[0.0], [0.2]])
    merged = merge([later, early, dqn], tmp_path / "all")
    row = merged["envs"][ENV]["programs"]["dqnreg"]
    assert row["seeds"] == [0, 1, 2, 3, 4]
    assert row["per_seed"] == pytest.approx([0.1, 0.3, 0.9, 0.7, 0.8])
    assert row["mean"] == pytest.approx(0.56) and row["ci95"][0] < 0.56 < row["ci95"][1]
    assert merged["envs"][ENV]["programs"]["dqn"]["seeds"] == [0, 1]
    returns = json.loads((tmp_path / "all" / "returns.json").read_text())[ENV]
    assert returns["dqnreg"] == [[0.1], [0.3], [0.9], [0.7], [0.8]]
    table = (tmp_path / "all" / "scores.md").read_text()
    assert "each program's seeds" in table and "(n=5)" in table and "(n=2)" in table
    assert list(merged["programs"]) == ["dqnreg", "dqn"]


def test_a_part_written_before_rows_named_their_seeds_counts_from_zero(tmp_path):
    old = _part(tmp_path, "dqn", [[0.1], [0.2]])
    scores = json.loads((old / "scores.json").read_text())
    del scores["seed_ids"], scores["envs"][ENV]["programs"]["dqn"]["seeds"]
    (old / "scores.json").write_text(json.dumps(scores))
    more = _part(tmp_path, "dqn", [[0.4]], first_seed=2, dirname="more")
    row = merge([old, more], tmp_path / "all")["envs"][ENV]["programs"]["dqn"]
    assert row["seeds"] == [0, 1, 2] and row["per_seed"] == pytest.approx([0.1, 0.2, 0.4])


def test_two_different_programs_under_one_name_are_refused(tmp_path):
    a = _part(tmp_path, "mine", [[0.1]])
    b = _part(tmp_path, "mine", [[0.2]], first_seed=1, dirname="b", program="other")
    with pytest.raises(SystemExit, match="'mine' differs"):
        merge([a, b], tmp_path / "all")
