"""The versioned JSON program file format (``"format": "evo-program"``, version 1).

A program file is one JSON object::

    {
      "format": "evo-program",
      "version": 1,
      "opset": "rl_loss",
      "inputs": [
        {"name": "Q", "type": "PARAM", "trainable": true},
        ...
      ],
      "nodes": [
        {"id": "n0", "op": "QValues", "args": ["Q", "s_t"], "type": "LIST"},
        ...
      ],
      "output": "n6"
    }

Arguments name inputs or earlier nodes. ``docs/program-format.md`` documents every
field and ``graphs/core/schema/program.schema.json`` is its JSON Schema. Every problem
with a file, from bad JSON to a type error, raises :class:`ProgramError` whose
``where`` names the offending field or node (e.g. ``nodes[3] (id 'n3').args[1]``).

The optional top-level fields ``"name"`` (a string) and ``"meta"`` (a JSON object)
are accepted and type-checked but ignored on load: a :class:`Program` has no slot
for them. Writers that want them (e.g. dataset exports) add them to the dict that
:func:`to_dict` returns.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphs.core.errors import ProgramError, did_you_mean, is_int
from graphs.core.op import Op
from graphs.core.opset import OpSet, get_opset
from graphs.core.program import Input, Node, Program

FORMAT = "evo-program"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
SCHEMA_PATH = Path(__file__).parent / "schema" / "program.schema.json"
MAX_NODES = 10_000
MAX_INPUTS = 1_000
MAX_FILE_BYTES = 16 * 1024 * 1024  # far above MAX_NODES nodes of any sensible id length
ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")  # used with fullmatch
ID_RULE = (
    "ids and input names must start with a letter or '_', continue with letters, digits, "
    "'_', '.' or '-', and be at most 64 characters"
)

TOP_FIELDS = ("format", "version", "name", "opset", "inputs", "nodes", "output", "meta")
TOP_REQUIRED = ("format", "version", "opset", "nodes", "output")
INPUT_FIELDS = ("name", "type", "trainable")
INPUT_REQUIRED = ("name", "type")
NODE_FIELDS = ("id", "op", "args", "type", "frozen")
NODE_REQUIRED = ("id", "op", "args")

__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "SCHEMA_PATH",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "dumps",
    "from_dict",
    "load",
    "loads",
    "read_regular_file",
    "save",
    "schema",
    "to_dict",
]


# -- writing ------------------------------------------------------------------------------
def to_dict(program: Program) -> dict[str, Any]:
    """The program as a version-1 file object (plain dicts, lists and scalars).

    Raises:
        ProgramError: if the program cannot be represented in a file: an id is
            duplicated or does not match :data:`ID_PATTERN`, or it has more than
            :data:`MAX_NODES` nodes.
    """
    _check_writable(program)
    ids, n_in = program.ids, program.n_inputs
    inputs: list[dict[str, Any]] = []
    for inp in program.inputs:
        entry: dict[str, Any] = {"name": inp.name, "type": inp.type.name}
        if inp.trainable:
            entry["trainable"] = True
        inputs.append(entry)
    nodes: list[dict[str, Any]] = []
    for i, node in enumerate(program.nodes):
        entry = {
            "id": ids[n_in + i],
            "op": node.op.name,
            "args": [ids[a] for a in node.args],
            "type": program.types[n_in + i].name,
        }
        if node.frozen:
            entry["frozen"] = True
        nodes.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "opset": program.opset.name,
        "inputs": inputs,
        "nodes": nodes,
        "output": ids[program.output],
    }


def dumps(program: Program, compact: bool = False) -> str:
    """The program as file text: deterministic, 2-space indented, one node per line;
    or, with ``compact``, the same JSON on one line (for machines: run stores, tasks).

    ``loads(dumps(p)) == p`` and ``dumps(loads(text)) == text`` for text from ``dumps``.
    """
    if compact:  # programs are immutable: serialize once
        return program.memo("file_text_compact", lambda: _compact(program))
    return program.memo("file_text", lambda: _format(to_dict(program)))


# Compact text is assembled from cached pieces: the head (format, op set, inputs) and
# one JSON object per node. Search children share their parent's ids and almost all
# of its nodes, so a run store serializes each new node once, not every whole program.
_HEADS: dict[tuple, str] = {}
_NODE_TEXT: dict[int, tuple[tuple[str, ...], dict[tuple, str]]] = {}  # by id(ids)


def _compact(program: Program) -> str:
    """``_ENCODE(to_dict(program))``, the same text, from cached pieces."""
    ids = program.ids
    known = _NODE_TEXT.get(id(ids))
    if known is None or known[0] is not ids or len(known[1]) > 50_000:
        _check_writable(program)
        if len(_NODE_TEXT) > 1_000:
            _NODE_TEXT.clear()
        known = _NODE_TEXT[id(ids)] = (ids, {})  # holding ids keeps its id from reuse
    texts = known[1]
    head_key = (program.opset.name, program.inputs)
    head = _HEADS.get(head_key)
    if head is None:
        whole = _ENCODE(to_dict(program))
        head = whole[: whole.index('"nodes": [') + len('"nodes": [')]
        if len(_HEADS) > 1_000:
            _HEADS.clear()
        _HEADS[head_key] = head
    n_in, types = program.n_inputs, program.types
    parts = []
    for i, node in enumerate(program.nodes, n_in):
        key = (i, node, types[i])
        text = texts.get(key)
        if text is None:
            entry: dict[str, Any] = {"id": ids[i], "op": node.op.name,
                                     "args": [ids[a] for a in node.args], "type": types[i].name}
            if node.frozen:
                entry["frozen"] = True
            text = texts[key] = _ENCODE(entry)
        parts.append(text)
    return f'{head}{", ".join(parts)}], "output": {_ENCODE(ids[program.output])}}}'


def save(program: Program, path: str | os.PathLike[str]) -> None:
    """Write ``program`` to ``path`` as UTF-8 (see :func:`dumps`)."""
    text = dumps(program)
    try:
        Path(path).write_bytes(text.encode("utf-8"))
    except (OSError, ValueError) as err:
        raise ProgramError(f"cannot write the file: {_os_reason(err)}", _path(path)) from None


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
_ENCODE_INDENTED = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=2).encode


def _format(data: dict[str, Any]) -> str:
    """Indent the top level by 2 and put each input and node object on one line."""

    def enc(value: Any, indent: int | None = None) -> str:
        return _ENCODE_INDENTED(value) if indent else _ENCODE(value)

    lines = ["{"]
    for k, (key, value) in enumerate(data.items()):
        comma = "," if k < len(data) - 1 else ""
        if key in ("inputs", "nodes") and value:
            lines.append(f"  {enc(key)}: [")
            lines.extend(
                f"    {enc(item)}{',' if j < len(value) - 1 else ''}"
                for j, item in enumerate(value)
            )
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {enc(key)}: {enc(value, 2).replace(chr(10), chr(10) + '  ')}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _check_writable(program: Program) -> None:
    if len(program.nodes) > MAX_NODES:
        raise ProgramError(
            f"the program has {len(program.nodes)} nodes; files hold at most {MAX_NODES}",
            "nodes",
        )
    seen: dict[str, int] = {}
    for idx, name in enumerate(program.ids):
        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
            raise ProgramError(
                f"{_show(name)} cannot be written to a file: {ID_RULE}", program.describe(idx)
            )
        if name in seen:
            raise ProgramError(
                f"the id {name!r} is also used by {program.describe(seen[name])}; "
                "every input and node needs a unique name to be written to a file",
                program.describe(idx),
            )
        seen[name] = idx


# -- reading ------------------------------------------------------------------------------
def load(path: str | os.PathLike[str], *, check: bool = True) -> Program:
    """Read a program file; errors are prefixed with the file name.

    Args:
        path: the file to read.
        check: also run :meth:`Program.check` (output type, gradient dependence).

    Raises:
        ProgramError: if the file is missing or unreadable, malformed, or (with
            ``check``) holds an invalid program.
    """
    where = _path(path)
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES, "program file")
    except FileNotFoundError:
        raise ProgramError("no such file; check the path", where) from None
    except (OSError, ValueError) as err:
        raise ProgramError(f"cannot read the file: {_os_reason(err)}", where) from None
    try:
        return loads(raw, check=check)
    except ProgramError as err:
        raise ProgramError(err.reason, f"{where}: {err.where}" if err.where else where) from None


def read_regular_file(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Named pipes, devices, sockets and directories are refused before they are
    opened (reading a pipe would wait for a writer; ``/dev/zero`` never ends), and
    at most ``limit + 1`` bytes are ever read.

    Raises:
        FileNotFoundError: if there is no such file.
        OSError: if it cannot be read, is not a regular file, or is too large
            (the message says which).
    """
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        kind = ("a directory" if stat.S_ISDIR(info.st_mode) else
                "a named pipe" if stat.S_ISFIFO(info.st_mode) else
                "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
        raise OSError(f"it is {kind}, not a regular {what}")
    too_big = OSError(f"it is larger than {limit:,} bytes, more than any valid {what}")
    if info.st_size > limit:
        raise too_big
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since the stat
            raise OSError(f"it is not a regular {what}")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise too_big
    return data


def loads(text: str | bytes, *, check: bool = True) -> Program:
    """Parse program file text (``bytes`` are decoded as UTF-8); see :func:`from_dict`."""
    if isinstance(text, bytes | bytearray | memoryview):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ProgramError(
                f"the file is not valid UTF-8 text (bad byte at offset {err.start}); "
                "save it as UTF-8"
            ) from None
    if not isinstance(text, str):
        raise ProgramError(f"expected program text (str or bytes), got {type(text).__name__}")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ProgramError:
        raise
    except json.JSONDecodeError as err:
        raise ProgramError(
            f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}; "
            "fix the syntax there (a program file is one JSON object)"
        ) from None
    except ValueError as err:  # e.g. an integer with too many digits
        raise ProgramError(f"not a usable JSON document: {err}") from None
    except RecursionError:
        raise ProgramError("the JSON is nested too deeply to be a program file") from None
    return from_dict(data, check=check)


def from_dict(data: object, *, check: bool = True) -> Program:
    """Build a program from a parsed file object (as returned by ``json.load``).

    Args:
        data: the file's top-level JSON object.
        check: also run :meth:`Program.check`, so an invalid program (wrong output
            type, no gradient path) is reported on load. Checking numerically needs
            every input the program uses to be one of its op set's standard inputs.

    Raises:
        ProgramError: for any malformed or invalid content; ``where`` names the field.
    """
    if not isinstance(data, dict):
        raise ProgramError(
            f"a program file must be a JSON object, got {_kind(data)}", "top level"
        )
    _read_header(data)
    _check_fields(data, TOP_FIELDS, TOP_REQUIRED, "top level", "")
    opset = _read_opset(data["opset"])
    if "name" in data and not isinstance(data["name"], str):
        raise ProgramError(f"must be a string, got {_kind(data['name'])}", "name")
    if "meta" in data and not isinstance(data["meta"], dict):
        raise ProgramError(
            f"must be a JSON object (free-form metadata), got {_kind(data['meta'])}", "meta"
        )
    inputs = _read_inputs(data["inputs"], opset) if "inputs" in data else opset.inputs
    raw_nodes = _read_node_fields(data["nodes"], opset, inputs)
    index = {inp.name: k for k, inp in enumerate(inputs)}
    for i, raw in enumerate(raw_nodes):
        index[raw.id] = len(inputs) + i
    nodes = _resolve(raw_nodes, index, len(inputs))
    output = _read_output(data["output"], index, inputs)
    wheres = {f"node '{raw.id}'": raw.where for raw in raw_nodes}
    try:
        program = Program(opset, nodes, inputs, output, [raw.id for raw in raw_nodes])
    except ProgramError as err:
        raise _relocate(err, wheres, ".args") from None
    for i, raw in enumerate(raw_nodes):
        inferred = program.types[len(inputs) + i]
        if raw.type is not None and raw.type != inferred.name:
            raise ProgramError(
                f"the stated type {raw.type} does not match the inferred type "
                f"{inferred.name} of {raw.op.name}({', '.join(raw.args)}); write "
                f'"type": "{inferred.name}" or remove the field',
                f"{raw.where}.type",
            )
    if check:
        _check_program(program, wheres)
    return program


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of version-1 program files."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# -- reading: the parts ---------------------------------------------------------------------
class _RawNode:
    """A node's fields after validation, before its arguments are resolved."""

    __slots__ = ("id", "op", "args", "type", "frozen", "where", "position")

    def __init__(self, position: int, where: str, node_id: str, op: Op, args: list[str],
                 type_name: str | None, frozen: bool) -> None:
        self.position, self.where, self.id, self.op = position, where, node_id, op
        self.args, self.type, self.frozen = args, type_name, frozen


def _read_header(data: dict) -> None:
    if "format" not in data:
        raise ProgramError(
            f'missing; a program file starts with "format": "{FORMAT}"', "format"
        )
    if data["format"] != FORMAT:
        raise ProgramError(
            f'expected "{FORMAT}", got {_show(data["format"])}; this is not a program file '
            "or it was written by another tool",
            "format",
        )
    supported = ", ".join(map(str, SUPPORTED_VERSIONS))
    if "version" not in data:
        raise ProgramError(
            f'missing; add "version": {VERSION} (supported versions: {supported})', "version"
        )
    version = data["version"]
    if not is_int(version):
        raise ProgramError(
            f"must be an integer, got {_show(version)} (supported versions: {supported})",
            "version",
        )
    if version not in SUPPORTED_VERSIONS:
        raise ProgramError(
            f"unsupported version {_show(version)}; this reader supports version(s) "
            f"{supported} (a newer file needs a newer reader)",
            "version",
        )


def _check_fields(
    obj: dict, allowed: Sequence[str], required: Sequence[str], where: str, sep: str = "."
) -> None:
    for key in obj:
        if key not in allowed:
            hint = did_you_mean(key if isinstance(key, str) else "", allowed, n=1)
            raise ProgramError(
                f"unknown field {_show(key)}{hint} (allowed fields: {', '.join(allowed)})",
                where,
            )
    for key in required:
        if key not in obj:
            raise ProgramError(
                f"missing required field {key!r} (required: {', '.join(required)})",
                f"{where}{sep}{key}" if sep else key,
            )


def _read_opset(name: object) -> OpSet:
    if not isinstance(name, str):
        raise ProgramError(f"must be an op set name (a string), got {_kind(name)}", "opset")
    try:
        return get_opset(name)
    except ProgramError as err:
        raise ProgramError(err.reason, "opset") from None


def _read_inputs(items: object, opset: OpSet) -> tuple[Input, ...]:
    if not isinstance(items, list | tuple):
        raise ProgramError(
            f"must be an array of input objects, got {_kind(items)}; omit the field to "
            f"use the standard inputs of op set {opset.name!r}",
            "inputs",
        )
    if len(items) > MAX_INPUTS:
        raise ProgramError(f"{len(items)} inputs; at most {MAX_INPUTS} are allowed", "inputs")
    standard = {inp.name: inp for inp in opset.inputs}
    seen: dict[str, int] = {}
    inputs: list[Input] = []
    for k, item in enumerate(items):
        name, where = _named_entry(item, f"inputs[{k}]", "name", INPUT_FIELDS, INPUT_REQUIRED,
                                   '{"name": "r_t", "type": "FLOAT"}', "input name")
        if name in seen:
            raise ProgramError(
                f"duplicate input name {name!r} (also inputs[{seen[name]}]); "
                "give every input a unique name",
                f"{where}.name",
            )
        seen[name] = k
        type_name = item["type"]
        if not isinstance(type_name, str):
            raise ProgramError(
                f"must be a type name (a string), got {_kind(type_name)}", f"{where}.type"
            )
        try:
            value_type = opset.type(type_name)
        except ProgramError as err:
            raise ProgramError(err.reason, f"{where}.type") from None
        trainable = _read_bool(item, "trainable", where)
        std = standard.get(name)
        inputs.append(
            Input(
                name,
                value_type,
                trainable,
                symbol=std.symbol if std else "",
                doc=std.doc if std else "",
            )
        )
    return tuple(inputs)


def _named_entry(item: object, where: str, key: str, fields: Sequence[str],
                 required: Sequence[str], example: str, label: str) -> tuple[str, str]:
    """Check an input or node object and its name field; return the name and a
    ``where`` that includes it (e.g. ``nodes[3] (id 'n3')``)."""
    if not isinstance(item, dict):
        raise ProgramError(f"must be an object like {example}, got {_kind(item)}", where)
    name = item.get(key)
    if isinstance(name, str) and ID_PATTERN.fullmatch(name):
        where = f"{where} ({key} {name!r})"
    _check_fields(item, fields, required, where)
    if not isinstance(name, str):
        raise ProgramError(f"must be a string, got {_kind(name)}", f"{where}.{key}")
    if not ID_PATTERN.fullmatch(name):
        raise ProgramError(f"invalid {label} {_show(name)}: {ID_RULE}", f"{where}.{key}")
    return name, where


def _read_bool(item: dict, key: str, where: str) -> bool:
    value = item.get(key, False)
    if not isinstance(value, bool):
        raise ProgramError(
            f"must be true or false, got {_show(value)}; omit it to mean false",
            f"{where}.{key}",
        )
    return value


def _read_node_fields(
    items: object, opset: OpSet, inputs: Sequence[Input]
) -> list[_RawNode]:
    if not isinstance(items, list | tuple):
        raise ProgramError(f"must be an array of node objects, got {_kind(items)}", "nodes")
    if not items:
        raise ProgramError("a program needs at least one operator node", "nodes")
    if len(items) > MAX_NODES:
        raise ProgramError(
            f"{len(items)} nodes; a program file holds at most {MAX_NODES}", "nodes"
        )
    owner = {inp.name: f"input {inp.name!r}" for inp in inputs}
    raw_nodes: list[_RawNode] = []
    for i, item in enumerate(items):
        node_id, where = _named_entry(item, f"nodes[{i}]", "id", NODE_FIELDS, NODE_REQUIRED,
                                      '{"id": "n0", "op": "QValues", "args": ["Q", "s_t"]}', "id")
        if node_id in owner:
            raise ProgramError(
                f"duplicate id {node_id!r}: already used by {owner[node_id]}; "
                "give every node a unique id that is not an input name",
                f"{where}.id",
            )
        owner[node_id] = f"nodes[{i}]"
        op_name = item["op"]
        if not isinstance(op_name, str):
            raise ProgramError(
                f"must be an op name (a string), got {_kind(op_name)}", f"{where}.op"
            )
        try:
            op = opset.op(op_name)
        except ProgramError as err:
            raise ProgramError(err.reason, f"{where}.op") from None
        args = item["args"]
        if not isinstance(args, list | tuple):
            raise ProgramError(
                f"must be an array of input names or node ids, got {_kind(args)}",
                f"{where}.args",
            )
        for j, arg in enumerate(args):
            if not isinstance(arg, str):
                raise ProgramError(
                    f"must be an input name or node id (a string), got {_show(arg)}",
                    f"{where}.args[{j}]",
                )
        if len(args) != op.arity:
            raise ProgramError(
                f"{op.name} takes {op.arity} argument(s), got {len(args)}; its signatures "
                f"are {', '.join(repr(s) for s in op.signatures)}",
                f"{where}.args",
            )
        type_name = item.get("type")
        if type_name is not None or "type" in item:
            if not isinstance(type_name, str):
                raise ProgramError(
                    f"must be a type name (a string), got {_kind(type_name)}; "
                    "omit it to let the reader infer it",
                    f"{where}.type",
                )
            try:
                opset.type(type_name)
            except ProgramError as err:
                raise ProgramError(err.reason, f"{where}.type") from None
        frozen = _read_bool(item, "frozen", where)
        raw_nodes.append(_RawNode(i, where, node_id, op, list(args), type_name, frozen))
    return raw_nodes


def _resolve(raw_nodes: list[_RawNode], index: dict[str, int], n_in: int) -> list[Node]:
    """Turn argument names into indices; reject undefined, self and forward references."""
    nodes: list[Node] = []
    for raw in raw_nodes:
        idx = n_in + raw.position
        resolved: list[int] = []
        for j, arg in enumerate(raw.args):
            where = f"{raw.where}.args[{j}]"
            target = index.get(arg)
            if target is None:
                hint = did_you_mean(arg, index, quote=False)
                raise ProgramError(
                    f"{_show(arg)} is not an input name or node id{hint} (arguments name "
                    "an input or an earlier node)",
                    where,
                )
            if target == idx:
                raise ProgramError(
                    f"the node uses itself ({arg!r}) as an argument; a program is acyclic, "
                    "so use an input or an earlier node",
                    where,
                )
            if target > idx:
                raise ProgramError(_forward_reference(raw_nodes, raw, arg, n_in, index), where)
            resolved.append(target)
        nodes.append(Node(raw.op, tuple(resolved), raw.frozen))
    return nodes


def _forward_reference(
    raw_nodes: list[_RawNode], raw: _RawNode, arg: str, n_in: int, index: dict[str, int]
) -> str:
    import networkx as nx

    msg = (
        f"{arg!r} is a later node (nodes[{index[arg] - n_in}]); nodes must be listed so "
        "every argument comes before its use"
    )
    graph = nx.DiGraph()
    node_ids = {r.id for r in raw_nodes}
    for r in raw_nodes:
        graph.add_node(r.id)
        graph.add_edges_from((r.id, a) for a in r.args if a in node_ids)
    try:
        path = nx.shortest_path(graph, arg, raw.id)
        cycle = [raw.id, *path]
    except nx.NetworkXNoPath:
        try:
            edges = nx.find_cycle(graph, source=arg)
        except nx.NetworkXNoCycle:
            return f"{msg}: move node {arg!r} (and what it uses) before {raw.id!r}"
        cycle = [u for u, _ in edges] + [edges[0][0]]
    shown = " -> ".join(cycle)
    if len(cycle) > 12:
        shown = (
            f"{' -> '.join(cycle[:6])} -> ... -> {' -> '.join(cycle[-3:])} "
            f"({len(cycle) - 1} nodes)"
        )
    return (
        f"{msg}, but these references form a cycle: {shown} (each node uses the next); "
        "a program must be acyclic, so break the cycle"
    )


def _read_output(name: object, index: dict[str, int], inputs: Sequence[Input]) -> int:
    if not isinstance(name, str):
        raise ProgramError(f"must be a node id (a string), got {_show(name)}", "output")
    target = index.get(name)
    if target is None:
        node_ids = [k for k, v in index.items() if v >= len(inputs)]
        hint = did_you_mean(name, node_ids, quote=False)
        raise ProgramError(
            f"{_show(name)} is not a node id{hint}; set it to the id of the node whose "
            "value is the program's result",
            "output",
        )
    if target < len(inputs):
        raise ProgramError(
            f"{name!r} is an input; the output must be an operator node id", "output"
        )
    return target


def _check_program(program: Program, wheres: dict[str, str]) -> None:
    """Run ``program.check()``; the numeric part only if the probes can feed it."""
    try:
        program.check(numeric=False)
        opset = program.opset
        if opset.trains:
            standard = {inp.name: inp.type for inp in opset.inputs}
            for k, inp in enumerate(program.inputs):
                if program.live[k] and standard.get(inp.name) != inp.type:
                    names = ", ".join(f"{i.name}: {i.type.name}" for i in opset.inputs)
                    raise ProgramError(
                        f"the program uses input {inp.name!r} of type {inp.type.name}, which "
                        f"is not a standard input of op set {opset.name!r} ({names}), so it "
                        "cannot be checked or run; use the standard inputs, or load with "
                        "check=False to skip validation",
                        f"inputs[{k}] (name {inp.name!r})",
                    )
            program.check(numeric=True)
    except ProgramError as err:
        raise _relocate(err, wheres, "") from None


def _relocate(err: ProgramError, wheres: dict[str, str], suffix: str) -> ProgramError:
    """Rewrite a ``node 'x'`` location into the file position ``nodes[i] (id 'x')``."""
    where = wheres.get(err.where or "")
    if where is None:
        return ProgramError(err.reason, err.where)
    return ProgramError(err.reason, where + suffix)


# -- JSON helpers --------------------------------------------------------------------------
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ProgramError(
                f"duplicate key {_show(key)} in a JSON object; each key may appear only once"
            )
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ProgramError(f"{name} is not valid JSON (only finite numbers are allowed)")


def _kind(value: object) -> str:
    """The JSON type name of a parsed value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    """A short, safe rendering of a scalar value (containers by their kind)."""
    if isinstance(value, str):
        return repr(value[:40] + "...") if len(value) > 40 else repr(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    return _kind(value)


def _path(path: object) -> str:
    try:
        return os.fsdecode(path)  # type: ignore[arg-type]
    except TypeError:
        return repr(path)


def _os_reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)
