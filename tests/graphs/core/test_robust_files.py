"""Programs and files that used to break the tools (issue 11, section 4).

A valid program whose formula expands shared subexpressions exponentially, chains
deep enough to defeat recursion, and files that are not regular files.
"""

from __future__ import annotations

import json
import os
import threading

import networkx as nx
import pytest

from evo.app.cli import main
from evo.app.config import load_config
from evo.errors import ConfigError
from graphs.core import fileformat
from graphs.core.errors import ProgramError
from graphs.core.fileformat import dumps, load, loads
from graphs.core.render import MAX_FORMULA, formula, node_table, to_dot, to_networkx
from graphs.rl_loss.library import builtin


def chain(kind: str, n: int) -> dict:
    """Q(s,a) followed by ``n - 2`` nodes: ``x + x`` (doubling), ``x^2`` or ``x + r``."""
    nodes = [{"id": "n0", "op": "QValues", "args": ["Q", "s_t"]},
             {"id": "n1", "op": "Select", "args": ["n0", "a_t"]}]
    prev = "n1"
    for i in range(2, n):
        args = {"double": [prev, prev], "square": [prev], "chain": [prev, "r_t"]}[kind]
        op = {"double": "Add", "square": "Square", "chain": "Add"}[kind]
        nodes.append({"id": f"n{i}", "op": op, "args": args})
        prev = f"n{i}"
    return {"format": "evo-program", "version": 1, "opset": "rl_loss", "nodes": nodes,
            "output": prev}


def write(tmp_path, data: dict, name: str = "p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# -- shared subexpressions -------------------------------------------------------------------
def test_doubling_chain_renders_each_shared_node_once():
    # 2^58 copies of Q(s,a) when expanded: this raised MemoryError
    program = fileformat.from_dict(chain("double", 60))
    text = formula(program)
    assert len(text) < MAX_FORMULA + 100
    assert "where" in text and "{n57}" in text
    assert text.startswith("{n57} + {n57} + {n57} + {n57}  where {n3} = ")
    table = node_table(program)
    assert len(table.splitlines()) == len(program)
    assert all(len(line) < 300 for line in table.splitlines())
    assert to_networkx(program).graph["name"] == text
    assert "where" in to_dot(program)


def test_small_programs_still_expand_in_full():
    assert formula(builtin("dqnreg")) == (
        "0.1*Q(s,a) + (Q(s,a) - (r + γ*max_a' Qt(s',a')))^2")
    program = fileformat.from_dict(chain("double", 5))
    assert formula(program) == "Q(s,a) + Q(s,a) + Q(s,a) + Q(s,a) + Q(s,a) + Q(s,a) + " \
        "Q(s,a) + Q(s,a)"


def test_formula_is_capped():
    program = fileformat.from_dict(chain("chain", 3000))
    text = formula(program)
    assert len(text) < MAX_FORMULA + 100 and "more characters" in text
    assert len(formula(program, max_length=None)) > MAX_FORMULA


def test_program_show_and_eval_of_a_doubling_chain(tmp_path, capsys):
    path = write(tmp_path, chain("double", 60))
    assert main(["program", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "formula: {n57} + {n57}" in out and "valid:   yes" in out
    assert main(["eval", str(path), "--env", "CartPole", "--steps", "50"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["formula"].startswith("{n57} + {n57}")


# -- deep chains -----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [500, 10_000])
def test_deep_chains_never_recurse(n):
    data = chain("chain", n)
    program = fileformat.from_dict(data)
    program.check()
    assert loads(dumps(program)) == program
    assert len(formula(program)) <= MAX_FORMULA + 100
    assert len(node_table(program).splitlines()) == n + len(program.inputs)
    assert nx.is_directed_acyclic_graph(to_networkx(program))
    assert to_dot(program).count("->") == 2 * n


def test_deep_chain_cycle_message_does_not_recurse():
    data = chain("chain", 600)
    data["nodes"][1]["args"] = ["n599", "a_t"]  # a forward reference closing a long cycle
    with pytest.raises(ProgramError, match="cycle"):
        fileformat.from_dict(data)


def test_program_show_of_a_500_node_chain(tmp_path, capsys):
    path = write(tmp_path, chain("chain", 500))
    assert main(["program", "show", str(path)]) == 0
    assert "valid:   yes" in capsys.readouterr().out


# -- files that aren't regular ---------------------------------------------------------------
def finishes(fn, seconds: float = 10.0):
    """Run ``fn`` in a thread; return its result or exception (fail if it hangs)."""
    box: list = []

    def target():
        try:
            box.append(fn())
        except BaseException as err:  # noqa: BLE001 - reported to the test
            box.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return box[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_is_refused_without_hanging(tmp_path, capsys):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    err = finishes(lambda: load(fifo))
    assert isinstance(err, ProgramError) and "named pipe" in str(err)
    assert finishes(lambda: main(["program", "check", str(fifo)])) == 1
    assert "named pipe" in capsys.readouterr().out
    err = finishes(lambda: load_config(fifo))
    assert isinstance(err, ConfigError) and "named pipe" in str(err)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused(capsys):
    err = finishes(lambda: load("/dev/zero"))
    assert isinstance(err, ProgramError) and "device" in str(err)
    assert finishes(lambda: main(["program", "check", "/dev/zero"])) == 1
    assert "device" in capsys.readouterr().out
    assert isinstance(finishes(lambda: load_config("/dev/zero")), ConfigError)


def test_directory_and_oversized_files_are_refused(tmp_path, monkeypatch):
    with pytest.raises(ProgramError, match="directory"):
        load(tmp_path)
    path = write(tmp_path, fileformat.to_dict(builtin("dqn")))
    monkeypatch.setattr(fileformat, "MAX_FILE_BYTES", 100)
    with pytest.raises(ProgramError, match="larger than 100 bytes"):
        load(path)
