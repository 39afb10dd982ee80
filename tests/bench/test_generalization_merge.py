"""bench/generalization.py --merge: runs split by program join into one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from generalization import merge

from evo.rl.compare import write_report

ENV = "MiniGrid-SimpleCrossingS9N1"


def _part(root: Path, name: str, returns: list[list[float]], seeds: int = 2,
          steps: int = 1000, agent: str = "paper.toml") -> Path:
    """A finished part as bench/generalization.py writes it, for one program."""
    out = root / name
    (out / "programs").mkdir(parents=True)
    (out / "programs" / "00.json").write_text(json.dumps({"program": name}) + "\n")
    per_seed = [sum(r) / len(r) for r in returns]
    scores = {"seeds": seeds, "trainer": "population",
              "envs": {ENV: {"budget": {"episodes": None, "steps": steps},
                             "programs": {name: {"mean": sum(per_seed) / len(per_seed),
                                                 "ci95": [min(per_seed), max(per_seed)],
                                                 "per_seed": per_seed,
                                                 "status": ["ok"] * len(returns)}},
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


@pytest.mark.parametrize("other", [{"seeds": 3}, {"steps": 2000}, {"agent": "small.toml"}])
def test_parts_of_different_plans_do_not_merge(tmp_path, other):
    a = _part(tmp_path, "dqnreg", [[0.1], [0.2]])
    b = _part(tmp_path, "dqn", [[0.0], [0.1]], **other)
    with pytest.raises(SystemExit, match="only parts of one plan merge"):
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


def test_a_program_in_two_parts_is_refused(tmp_path):
    a = _part(tmp_path / "a", "dqn", [[0.1], [0.2]])
    b = _part(tmp_path / "b", "dqn", [[0.0], [0.1]])
    with pytest.raises(SystemExit, match="'dqn' is in an earlier part"):
        merge([a, b], tmp_path / "all")
