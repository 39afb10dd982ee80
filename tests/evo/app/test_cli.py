"""The `evo` command line: program commands, help, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from evo.app.cli import main
from graphs.core import fileformat
from graphs.core.equivalence import FEC
from graphs.rl_loss.library import builtin


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_builtin_prints_formula_nodes_and_fingerprints(capsys):
    code, out, _ = run(capsys, "program", "show", "dqnreg")
    assert code == 0
    assert "formula: 0.1*Q(s,a) + (Q(s,a) - (r + γ*max_a' Qt(s',a')))^2" in out
    assert "valid:   yes" in out
    assert FEC("training")(builtin("dqnreg")) in out
    for node in ("n0", "QValues(Q, s_t)", "Add(n8, n7) [output]"):
        assert node in out


def test_show_file_and_canonical(capsys, tmp_path):
    path = tmp_path / "ddqn.json"
    fileformat.save(builtin("ddqn"), path)
    code, out, _ = run(capsys, "program", "show", str(path), "--canonical")
    assert code == 0 and "argmax_a' Q(s',a')" in out and "canonical:" in out


def test_hash_matches_fec_and_equal_files_share_fingerprints(capsys, tmp_path):
    path = tmp_path / "dqn.json"
    fileformat.save(builtin("dqn"), path)
    code, out, _ = run(capsys, "program", "hash", "dqn", str(path), "ddqn")
    assert code == 0
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][0] == lines[1][0] == FEC("training")(builtin("dqn"))
    assert lines[2][0] != lines[0][0]
    code, out, _ = run(capsys, "program", "hash", "--mode", "output", "dqn")
    assert out.split()[0] == FEC("output")(builtin("dqn"))


def test_check_reports_each_file_and_fails_on_invalid(capsys, tmp_path):
    good = tmp_path / "good.json"
    fileformat.save(builtin("cql"), good)
    bad = tmp_path / "bad.json"
    data = fileformat.to_dict(builtin("dqn"))
    data["output"] = "n2"  # a LIST: not a valid loss output
    bad.write_text(json.dumps(data))
    code, out, _ = run(capsys, "program", "check", str(good), str(bad))
    assert code == 1
    assert f"ok       {good}" in out
    assert "invalid" in out and "FLOAT" in out


def test_random_and_mutate_write_valid_programs(capsys, tmp_path):
    path = tmp_path / "seed.json"
    code, _, err = run(capsys, "program", "random", "--seed", "3", "-o", str(path))
    assert code == 0 and "wrote" in err
    program = fileformat.load(path)
    assert len(program.nodes) == 21
    code, out, err = run(capsys, "program", "mutate", str(path), "--seed", "1")
    assert code == 0 and "mutation:" in err
    child = fileformat.loads(out)
    assert child != program and len(child.nodes) == 21
    code, out, _ = run(capsys, "program", "random", "--from-scratch", "--seed", "2")
    scratch = fileformat.loads(out)
    assert [n.frozen for n in scratch.nodes[:4]] == [True] * 4


def test_random_is_deterministic_given_a_seed(capsys):
    _, a, _ = run(capsys, "program", "random", "--seed", "11")
    _, b, _ = run(capsys, "program", "random", "--seed", "11")
    assert a == b


def test_dot_output(capsys):
    code, out, _ = run(capsys, "program", "dot", "dqn")
    assert code == 0 and out.startswith("digraph program {") and out.rstrip().endswith("}")


@pytest.mark.parametrize("argv, needle", [
    (["program", "show", "dqnn"], "neither a built-in program"),
    (["program", "show", "missing.json"], "missing.json"),
    (["program", "hash", "nope"], "neither a built-in program"),
])
def test_unknown_programs_give_one_line_errors(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("evo: error:") and needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_malformed_file_names_the_node_without_traceback(tmp_path):
    path = tmp_path / "bad.json"
    data = fileformat.to_dict(builtin("dqn"))
    data["nodes"][3]["op"] = "Maxx"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "evo", "program", "show", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "n3" in proc.stderr and "Maxx" in proc.stderr and "Max" in proc.stderr


def test_help_lists_every_preset(capsys):
    from evo.app.config import PRESETS

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
