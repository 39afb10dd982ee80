"""The JSON program file format: round trips, the schema, bad files and a fuzzer."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs.core import fileformat as ff
from graphs.core.errors import ProgramError
from graphs.core.program import Input, Node, Program
from graphs.rl_loss.library import BUILTINS, builtin
from graphs.rl_loss.ops import RL_LOSS

DOC = Path(__file__).resolve().parents[3] / "docs" / "program-format.md"
DQN = ff.to_dict(builtin("dqn"))
VALIDATOR = jsonschema.Draft202012Validator(ff.schema())


def dqn() -> dict:
    return copy.deepcopy(DQN)


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_round_trip_builtins(name: str, tmp_path: Path) -> None:
    program = builtin(name)
    text = ff.dumps(program)
    assert ff.loads(text) == program
    assert ff.dumps(ff.loads(text)) == text
    assert ff.loads(text.encode("utf-8")) == program
    assert ff.from_dict(ff.to_dict(program)) == program
    assert ff.to_dict(ff.from_dict(ff.to_dict(program))) == ff.to_dict(program)
    assert json.loads(text) == ff.to_dict(program)
    path = tmp_path / f"{name}.json"
    ff.save(program, path)
    assert path.read_text(encoding="utf-8") == text
    loaded = ff.load(path)
    assert loaded == program
    assert ff.load(str(path)) == program
    assert loaded.types == program.types
    assert [(i.symbol, i.doc) for i in loaded.inputs] == [
        (i.symbol, i.doc) for i in program.inputs
    ]


def test_dumps_layout() -> None:
    text = ff.dumps(builtin("skeleton"))
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text.startswith('{\n  "format": "evo-program",\n  "version": 1,\n  "opset": "rl_loss",')
    assert '    {"name": "Q", "type": "PARAM", "trainable": true},\n' in text
    assert '    {"name": "a_t", "type": "ACTION"},\n' in text  # trainable only when true
    assert (
        '    {"id": "n1", "op": "Select", "args": ["n0", "a_t"], "type": "FLOAT", '
        '"frozen": true},\n' in text
    )
    assert '"output": "n1"\n}\n' in text
    assert '"frozen"' not in ff.dumps(builtin("dqn"))


def test_custom_ids_inputs_and_output_round_trip() -> None:
    inputs = (*RL_LOSS.inputs, Input("unused", RL_LOSS.type("FLOAT")))
    n = len(inputs)
    nodes = [
        Node(RL_LOSS.op("QValues"), (0, 2)),
        Node(RL_LOSS.op("Select"), (n, 1), frozen=True),
        Node(RL_LOSS.op("Const0.5"), ()),
        Node(RL_LOSS.op("Mul"), (n + 2, n + 1)),
        Node(RL_LOSS.op("Square"), (n + 1,)),
    ]
    ids = ["q_all", "q.sa", "half", "scaled-q", "Sq_1"]
    program = Program(RL_LOSS, nodes, inputs, output=n + 3, ids=ids)
    text = ff.dumps(program)
    assert '"output": "scaled-q"' in text
    loaded = ff.loads(text)
    assert loaded == program and loaded.ids == program.ids and loaded.output == n + 3
    assert ff.dumps(loaded) == text


def test_optional_fields_on_load() -> None:
    data = dqn()
    del data["inputs"]
    for node in data["nodes"]:
        del node["type"]
        node["frozen"] = False
    data["name"] = "DQN"
    data["meta"] = {"fitness": 0.9, "tags": ["baseline"], "nested": {"a": None}}
    program = ff.from_dict(data)
    assert program == builtin("dqn")
    assert program.inputs == RL_LOSS.inputs  # including symbols and docs
    explicit = dqn()
    explicit["inputs"][1]["trainable"] = False
    assert ff.from_dict(explicit) == builtin("dqn")


def test_check_flag() -> None:
    data = dqn()
    data["output"] = "n0"  # a LIST: structurally fine, but not a valid loss
    with pytest.raises(ProgramError, match="output must be FLOAT"):
        ff.from_dict(data)
    program = ff.from_dict(data, check=False)
    assert program.output == len(RL_LOSS.inputs)
    assert ff.loads(ff.dumps(program), check=False) == program
    with pytest.raises(ProgramError, match="output must be FLOAT"):
        ff.loads(ff.dumps(program))


def test_custom_input_needs_check_false() -> None:
    data = dqn()
    data["inputs"][5]["name"] = "reward"
    data["nodes"][5]["args"] = ["reward", "n4"]
    with pytest.raises(ProgramError) as info:
        ff.from_dict(data)
    assert "inputs[5] (name 'reward')" in str(info.value) and "check=False" in str(info.value)
    program = ff.from_dict(data, check=False)
    assert program.ids[5] == "reward" and program.inputs[5].symbol == ""


def test_to_dict_rejects_unwritable_programs() -> None:
    nodes = [Node(RL_LOSS.op("Const0.5"), ()), Node(RL_LOSS.op("Const0.1"), ())]
    with pytest.raises(ProgramError, match="unique"):
        ff.to_dict(Program(RL_LOSS, nodes, ids=["c", "c"]))
    with pytest.raises(ProgramError, match="unique"):
        ff.to_dict(Program(RL_LOSS, nodes, ids=["c", "r_t"]))
    with pytest.raises(ProgramError, match="cannot be written"):
        ff.dumps(Program(RL_LOSS, nodes, ids=["c", "has space"]))


def test_load_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ProgramError, match="no such file") as info:
        ff.load(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ProgramError, match="cannot read") as info:
        ff.load(tmp_path)
    assert str(tmp_path) in str(info.value)
    bad = tmp_path / "bad.json"
    data = dqn()
    data["nodes"][3]["op"] = "Maxx"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProgramError) as info:
        ff.load(bad)
    assert str(info.value).startswith(f"{bad}: nodes[3] (id 'n3').op: unknown op 'Maxx'")
    invalid = tmp_path / "invalid.json"
    data = dqn()
    data["output"] = "n5"
    invalid.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProgramError, match="trainable") as info:
        ff.load(invalid)
    assert str(info.value).startswith(f"{invalid}: ")
    assert ff.load(invalid, check=False).output == len(RL_LOSS.inputs) + 5
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"{\n  \"format\": \xff\n}")
    with pytest.raises(ProgramError, match="UTF-8") as info:
        ff.load(garbage)
    assert str(garbage) in str(info.value)


def test_save_error(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="cannot write") as info:
        ff.save(builtin("dqn"), tmp_path / "no" / "such" / "dir.json")
    assert "dir.json" in str(info.value)


# -- the schema ------------------------------------------------------------------------------
def test_schema_is_valid() -> None:
    jsonschema.Draft202012Validator.check_schema(ff.schema())
    assert ff.schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_schema_accepts_builtins(name: str) -> None:
    VALIDATOR.validate(ff.to_dict(builtin(name)))


def _set(path: tuple, value: object):
    def mutate(d: dict) -> None:
        obj = d
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return mutate


def _drop(*path):
    def mutate(d: dict) -> None:
        obj = d
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _drop("output"),
        _drop("format"),
        _set(("version",), 2),
        _set(("extra",), 1),
        _set(("nodes",), []),
        _set(("nodes", 3, "frozen"), 1),
        _set(("nodes", 3, "id"), "3x"),
        _set(("nodes", 3, "args"), [3]),
        _set(("nodes", 3, "colour"), "red"),
        _drop("nodes", 3, "args"),
        _set(("inputs", 0, "trainable"), "yes"),
        _drop("inputs", 0, "type"),
        _set(("meta",), []),
    ],
)
def test_schema_rejects(mutate) -> None:
    data = dqn()
    mutate(data)
    assert not VALIDATOR.is_valid(data)
    with pytest.raises(ProgramError):
        ff.from_dict(data)


# -- the documentation -----------------------------------------------------------------------
def test_doc_example_and_op_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    examples = [b for b in blocks if '"format": "evo-program"' in b]
    assert examples, "the docs need a full example"
    assert ff.loads(examples[0]) == builtin("dqn")
    for op in RL_LOSS.ops:
        assert f"`{op.name}`" in text, f"op {op.name} is missing from the docs"
    for value_type in RL_LOSS.types:
        assert f"`{value_type.name}`" in text
    for inp in RL_LOSS.inputs:
        assert f"`{inp.name}`" in text


# -- hand-written bad files ---------------------------------------------------------------------
def _text(source: str):
    return lambda: source


def _mut(fn):
    def make() -> str:
        data = dqn()
        fn(data)
        return json.dumps(data)

    return make


def _cycle(d: dict) -> None:
    d["nodes"][3]["args"] = ["n4"]  # n3 = Max(n4), n4 = Mul(gamma, n3)


def _cycle_elsewhere(d: dict) -> None:
    d["nodes"][0]["args"] = ["Q", "n2"]  # a forward reference into the cycle n2 <-> n3
    d["nodes"][2]["args"] = ["Q_targ", "n3"]


def _long_cycle(d: dict) -> None:
    d["nodes"] += [{"id": f"c{i}", "op": "Square", "args": [f"c{i + 1}"]} for i in range(30)]
    d["nodes"][-1]["args"] = ["c0"]


def _many_nodes(d: dict) -> None:
    d["nodes"] = [{"id": f"c{i}", "op": "Const0.5", "args": []} for i in range(10_001)]
    d["output"] = "c0"


def _dup_key(d: dict) -> str:
    return json.dumps(d)[:-1] + ', "output": "n6"}'


BAD = [
    # (case id, make text, fragments the message must contain)
    ("not-json", _text('{"format": "evo-program",\n  "version": 1,,\n}'),
     ["not valid JSON", "line 2, column"]),
    ("empty", _text(""), ["not valid JSON", "line 1, column 1"]),
    ("top-level-array", _text("[1, 2]"), ["top level", "JSON object", "array"]),
    ("top-level-null", _text("null"), ["top level", "null"]),
    ("missing-format", _mut(lambda d: d.pop("format")), ["format", "missing"]),
    ("wrong-format", _mut(lambda d: d.update(format="evo-graph")),
     ["format", "evo-program", "evo-graph"]),
    ("version-2", _mut(lambda d: d.update(version=2)), ["version", "supports version(s) 1"]),
    ("version-string", _mut(lambda d: d.update(version="1")), ["version", "integer"]),
    ("version-bool", _mut(lambda d: d.update(version=True)), ["version", "integer"]),
    ("missing-version", _mut(lambda d: d.pop("version")), ["version", "missing"]),
    ("unknown-opset", _mut(lambda d: d.update(opset="rl_los")),
     ["opset", "unknown op set 'rl_los'", "did you mean rl_loss"]),
    ("opset-not-string", _mut(lambda d: d.update(opset=["rl_loss"])), ["opset", "array"]),
    ("unknown-top-key", _mut(lambda d: d.update(outputs="n6")),
     ["top level", "'outputs'", "did you mean 'output'", "allowed fields"]),
    ("missing-nodes", _mut(lambda d: d.pop("nodes")), ["nodes", "missing required"]),
    ("missing-output", _mut(lambda d: d.pop("output")), ["output", "missing required"]),
    ("nodes-not-array", _mut(lambda d: d.update(nodes={"n0": {}})), ["nodes", "array"]),
    ("nodes-empty", _mut(lambda d: d.update(nodes=[])), ["nodes", "at least one"]),
    ("too-many-nodes", _mut(_many_nodes), ["nodes", "at most 10000"]),
    ("node-not-object", _mut(lambda d: d["nodes"].__setitem__(2, "n2")),
     ["nodes[2]", "object"]),
    ("node-missing-id", _mut(lambda d: d["nodes"][3].pop("id")), ["nodes[3].id", "missing"]),
    ("node-id-int", _mut(lambda d: d["nodes"][3].update(id=3)), ["nodes[3].id", "integer"]),
    ("node-id-pattern", _mut(lambda d: d["nodes"][3].update(id="3x")),
     ["nodes[3].id", "'3x'", "must start with a letter"]),
    ("node-id-newline", _mut(lambda d: d["nodes"][3].update(id="n3\n")), ["nodes[3].id"]),
    ("duplicate-id", _mut(lambda d: d["nodes"][4].update(id="n3")),
     ["nodes[4] (id 'n3').id", "duplicate", "nodes[3]"]),
    ("id-is-input-name", _mut(lambda d: d["nodes"][0].update(id="Q")),
     ["nodes[0] (id 'Q').id", "input 'Q'"]),
    ("unknown-node-key", _mut(lambda d: d["nodes"][3].update(opp="Max")),
     ["nodes[3] (id 'n3')", "'opp'", "did you mean 'op'", "allowed fields"]),
    ("missing-op", _mut(lambda d: d["nodes"][3].pop("op")), ["nodes[3] (id 'n3').op"]),
    ("unknown-op", _mut(lambda d: d["nodes"][3].update(op="Maxx")),
     ["nodes[3] (id 'n3').op", "unknown op 'Maxx'", "did you mean Max"]),
    ("op-not-string", _mut(lambda d: d["nodes"][3].update(op=None)),
     ["nodes[3] (id 'n3').op", "null"]),
    ("args-not-array", _mut(lambda d: d["nodes"][3].update(args="n2")),
     ["nodes[3] (id 'n3').args", "array"]),
    ("arg-not-string", _mut(lambda d: d["nodes"][6]["args"].__setitem__(1, 5)),
     ["nodes[6] (id 'n6').args[1]", "got 5"]),
    ("undefined-arg", _mut(lambda d: d["nodes"][6]["args"].__setitem__(1, "n55")),
     ["nodes[6] (id 'n6').args[1]", "'n55'", "did you mean"]),
    ("self-reference", _mut(lambda d: d["nodes"][3].update(args=["n3"])),
     ["nodes[3] (id 'n3').args[0]", "itself"]),
    ("later-node", _mut(lambda d: d["nodes"][1]["args"].__setitem__(0, "n2")),
     ["nodes[1] (id 'n1').args[0]", "'n2'", "every argument comes before its use"]),
    ("cycle", _mut(_cycle),
     ["nodes[3] (id 'n3').args[0]", "cycle: n3 -> n4 -> n3", "before its use"]),
    ("cycle-elsewhere", _mut(_cycle_elsewhere),
     ["nodes[0] (id 'n0').args[1]", "'n2' is a later node", "cycle: n2 -> n3 -> n2"]),
    ("long-cycle", _mut(_long_cycle),
     ["nodes[7] (id 'c0').args[0]", "cycle: c0 -> c1 -> c2",
      "-> ... -> c28 -> c29 -> c0 (30 nodes)"]),
    ("arity", _mut(lambda d: d["nodes"][3].update(args=["n2", "n2"])),
     ["nodes[3] (id 'n3').args", "Max takes 1 argument(s), got 2"]),
    ("type-mismatch", _mut(lambda d: d["nodes"][1].update(args=["n0", "s_t"])),
     ["nodes[1] (id 'n1').args", "Select does not accept (LIST, STATE)"]),
    ("stated-type-mismatch", _mut(lambda d: d["nodes"][3].update(type="LIST")),
     ["nodes[3] (id 'n3').type", "LIST", "inferred type FLOAT of Max(n2)"]),
    ("stated-type-unknown", _mut(lambda d: d["nodes"][3].update(type="FLOT")),
     ["nodes[3] (id 'n3').type", "did you mean FLOAT"]),
    ("stated-type-null", _mut(lambda d: d["nodes"][3].update(type=None)),
     ["nodes[3] (id 'n3').type", "null"]),
    ("frozen-not-bool", _mut(lambda d: d["nodes"][2].update(frozen=1)),
     ["nodes[2] (id 'n2').frozen", "true or false"]),
    ("inputs-not-array", _mut(lambda d: d.update(inputs="standard")), ["inputs", "array"]),
    ("input-not-object", _mut(lambda d: d["inputs"].__setitem__(1, "a_t")),
     ["inputs[1]", "object"]),
    ("input-missing-type", _mut(lambda d: d["inputs"][1].pop("type")),
     ["inputs[1] (name 'a_t').type", "missing"]),
    ("input-unknown-type", _mut(lambda d: d["inputs"][1].update(type="ACTIONS")),
     ["inputs[1] (name 'a_t').type", "did you mean ACTION"]),
    ("input-bad-name", _mut(lambda d: d["inputs"][1].update(name="a t")),
     ["inputs[1].name", "'a t'"]),
    ("input-unknown-key", _mut(lambda d: d["inputs"][1].update(symbol="a")),
     ["inputs[1] (name 'a_t')", "'symbol'"]),
    ("duplicate-input", _mut(lambda d: d["inputs"][2].update(name="a_t")),
     ["inputs[2] (name 'a_t').name", "duplicate", "inputs[1]"]),
    ("trainable-not-bool", _mut(lambda d: d["inputs"][0].update(trainable="yes")),
     ["inputs[0] (name 'Q').trainable", "'yes'"]),
    ("output-unknown", _mut(lambda d: d.update(output="n66")),
     ["output", "'n66'", "did you mean n6"]),
    ("output-input", _mut(lambda d: d.update(output="r_t")), ["output", "'r_t' is an input"]),
    ("output-not-string", _mut(lambda d: d.update(output=6)), ["output", "got 6"]),
    ("output-type", _mut(lambda d: d.update(output="n0")),
     ["nodes[0] (id 'n0')", "output must be FLOAT, but it is LIST"]),
    ("output-no-gradient", _mut(lambda d: d.update(output="n5")),
     ["nodes[5] (id 'n5')", "output does not depend on the trainable input(s) Q"]),
    ("name-not-string", _mut(lambda d: d.update(name=7)), ["name", "string"]),
    ("meta-not-object", _mut(lambda d: d.update(meta="x")), ["meta", "object"]),
    ("duplicate-json-key", lambda: _dup_key(dqn()), ["duplicate key 'output'"]),
    ("nan", _mut(lambda d: d.update(meta={"x": float("nan")})), ["NaN"]),
    ("huge-int", _text('{"format": "evo-program", "version": 1' + "0" * 5000 + "}"),
     ["not a usable JSON document"]),
    ("deep-nesting", _text('{"meta": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     ["nested too deeply"]),
    ("custom-input-used", _mut(lambda d: (d["inputs"][5].update(name="reward"),
                                          d["nodes"][5].update(args=["reward", "n4"]))),
     ["inputs[5] (name 'reward')", "not a standard input"]),
]


@pytest.mark.parametrize(("make", "fragments"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_files(make, fragments: list[str]) -> None:
    text = make()
    with pytest.raises(ProgramError) as info:
        ff.loads(text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    with pytest.raises(ProgramError):
        ff.loads(text.encode("utf-8"))


def test_bad_table_is_large_and_valid_base_loads() -> None:
    assert len(BAD) >= 20
    assert ff.from_dict(dqn()) == builtin("dqn")


def test_from_dict_non_json_python_values() -> None:
    for data in (None, 3, "x", [DQN], {1: 2}, {10**5000: 1}, {"format": object()}):
        with pytest.raises(ProgramError):
            ff.from_dict(data)
    with pytest.raises(ProgramError, match="str or bytes"):
        ff.loads(12)  # type: ignore[arg-type]


# -- fuzzing ----------------------------------------------------------------------------------
FIELD_NAMES = sorted(
    set(ff.TOP_FIELDS) | set(ff.NODE_FIELDS) | set(ff.INPUT_FIELDS)
)
NAMES = sorted(
    {*(i.name for i in RL_LOSS.inputs), *(f"n{i}" for i in range(9)),
     *(op.name for op in RL_LOSS.ops), *(t.name for t in RL_LOSS.types),
     "rl_loss", "evo-program", ""}
)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats()
    | st.text(max_size=10) | st.sampled_from(NAMES)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), children, max_size=5),
    max_leaves=25,
)
FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _accepts(call) -> Program | None:
    """Call; a Program or a ProgramError are fine, anything else fails the test."""
    try:
        program = call()
    except ProgramError as err:
        assert str(err)
        return None
    assert isinstance(program, Program)
    return program


@FUZZ
@given(JSON_VALUES)
def test_fuzz_arbitrary_json(value) -> None:
    _accepts(lambda: ff.from_dict(value))
    _accepts(lambda: ff.loads(json.dumps(value)))
    header = {"format": "evo-program", "version": 1, "opset": "rl_loss"}
    if isinstance(value, dict):
        _accepts(lambda: ff.from_dict({**header, **value}))


def _slots(obj, out: list) -> list:
    """Every (container, key) position in a JSON value, depth first."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, child in list(items):
        out.append((obj, key))
        if isinstance(child, dict | list):
            _slots(child, out)
    return out


MUTATIONS = (
    "drop", "replace", "add_key", "arg", "node_field", "swap", "version", "op", "duplicate"
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_dqn(data) -> None:
    d = dqn()
    nodes = d["nodes"]
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(MUTATIONS))
        slots = _slots(d, [])
        if kind == "drop" and slots:
            obj, key = data.draw(st.sampled_from(slots))
            del obj[key]
        elif kind == "replace" and slots:
            obj, key = data.draw(st.sampled_from(slots))
            obj[key] = data.draw(JSON_VALUES)
        elif kind == "add_key":
            dicts = [d] + [v for o, k in slots if isinstance(v := o[k], dict)]
            target = data.draw(st.sampled_from(dicts))
            target[data.draw(st.sampled_from(FIELD_NAMES))] = data.draw(JSON_VALUES)
        elif not isinstance(nodes, list) or not nodes or nodes is not d.get("nodes"):
            continue
        elif kind == "arg":
            node = data.draw(st.sampled_from(nodes))
            if isinstance(node, dict) and isinstance(node.get("args"), list) and node["args"]:
                j = data.draw(st.integers(0, len(node["args"]) - 1))
                node["args"][j] = data.draw(
                    st.sampled_from(NAMES) | st.text(max_size=4) | JSON_VALUES
                )
        elif kind == "node_field":
            node = data.draw(st.sampled_from(nodes))
            if isinstance(node, dict):
                key = data.draw(st.sampled_from(ff.NODE_FIELDS))
                node[key] = data.draw(JSON_VALUES)
        elif kind == "swap":
            i = data.draw(st.integers(0, len(nodes) - 1))
            j = data.draw(st.integers(0, len(nodes) - 1))
            nodes[i], nodes[j] = nodes[j], nodes[i]
        elif kind == "version":
            d["version"] = data.draw(st.sampled_from([0, 1, 2, "1", 1.0, True, None, -1]))
        elif kind == "op":
            node = data.draw(st.sampled_from(nodes))
            if isinstance(node, dict):
                node["op"] = data.draw(st.sampled_from(NAMES))
        elif kind == "duplicate":
            nodes.insert(data.draw(st.integers(0, len(nodes))), copy.deepcopy(
                data.draw(st.sampled_from(nodes))))
    check = data.draw(st.booleans())
    program = _accepts(lambda: ff.from_dict(d, check=check))
    if program is not None:
        # Whatever the reader accepts, the schema accepts, and it round-trips.
        VALIDATOR.validate(d)
        assert ff.loads(ff.dumps(program), check=False) == program
    try:
        text = json.dumps(d, allow_nan=False)
    except ValueError:  # NaN cannot be JSON text; from_dict was still exercised
        return
    again = _accepts(lambda: ff.loads(text, check=check))
    assert (again is None) == (program is None)


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_random_text_and_bytes(text) -> None:
    _accepts(lambda: ff.loads(text))


DQN_TEXT = ff.dumps(builtin("dqn"))


@FUZZ
@given(
    st.integers(0, len(DQN_TEXT)),
    st.integers(0, 40),
    st.text(max_size=6) | st.sampled_from(['"', "{", "]", ",", "n9", "true", "\\"]),
)
def test_fuzz_corrupted_text(start: int, length: int, insert: str) -> None:
    text = DQN_TEXT[:start] + insert + DQN_TEXT[start + length:]
    _accepts(lambda: ff.loads(text))
    _accepts(lambda: ff.loads(text.encode("utf-8", "surrogatepass")))
