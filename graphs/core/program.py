"""A program: a typed DAG of inputs, operator nodes and one output.

Nodes are stored in topological order; every argument refers to an input or to an
earlier node by its *index*: inputs come first, then operator nodes. A
:class:`Program` type-checks on construction and is immutable and hashable, so it
can be used as a dictionary key and shared between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from graphs.core.errors import ProgramError
from graphs.core.op import Op
from graphs.core.types import ValueType

if TYPE_CHECKING:
    from graphs.core.opset import OpSet

_T = TypeVar("_T")


@dataclass(frozen=True)
class Input:
    """A typed input of a program.

    ``trainable`` marks a parameter input (e.g. the online Q-network) whose outputs
    the loss must be differentiable with respect to.
    """

    name: str
    type: ValueType
    trainable: bool = False
    symbol: str = ""
    doc: str = ""

    @property
    def label(self) -> str:
        """How the input appears in formulas."""
        return self.symbol or self.name


class Node(NamedTuple):
    """An operator node: ``op`` applied to earlier nodes ``args`` (indices).

    ``frozen`` nodes are never changed by mutation.
    """

    op: Op
    args: tuple[int, ...]
    frozen: bool = False


class Program:
    """An immutable, type-checked program graph.

    Args:
        opset: the op set the program is written in.
        nodes: operator nodes in topological order.
        inputs: the program's inputs (defaults to the op set's standard inputs).
        output: index of the output node (defaults to the last node).
        ids: names of the operator nodes (defaults to ``n0, n1, ...``).

    Raises:
        ProgramError: if a node refers to itself or a later node, has the wrong
            number of arguments, or no signature of its op accepts its argument types.

    Anything computed from a program (its formula, probe values, file text) can be
    memoized on it, as it never changes: see :meth:`memo`.
    """

    __slots__ = ("opset", "inputs", "nodes", "output", "ids", "types", "_key", "_memo")

    def __init__(
        self,
        opset: OpSet,
        nodes: Iterable[Node],
        inputs: Sequence[Input] | None = None,
        output: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        self.opset = opset
        self.inputs: tuple[Input, ...] = tuple(opset.inputs if inputs is None else inputs)
        self.nodes: tuple[Node, ...] = tuple(nodes)
        n_in = len(self.inputs)
        total = n_in + len(self.nodes)
        if not self.nodes:
            raise ProgramError("a program needs at least one operator node", "nodes")
        self.output: int = total - 1 if output is None else output
        if ids is None:
            ids = [f"n{i}" for i in range(len(self.nodes))]
        self.ids: tuple[str, ...] = tuple(i.name for i in self.inputs) + tuple(ids)
        if len(self.ids) != total:
            raise ProgramError(f"expected {len(self.nodes)} node ids, got {len(ids)}", "ids")
        if len(set(self.ids)) != total:
            seen: set[str] = set()
            dup = next(i for i in self.ids if i in seen or seen.add(i))
            raise ProgramError(f"the name {dup!r} is used twice (ids must be unique and must "
                               "not repeat an input name)", "ids")
        if not n_in <= self.output < total:
            raise ProgramError(f"output index {self.output} is not an operator node", "output")
        self.types: tuple[ValueType, ...] = self._infer_types()
        self._key: tuple | None = None
        self._memo: dict[Hashable, Any] = {}

    # -- structure -----------------------------------------------------------------
    def _infer_types(self) -> tuple[ValueType, ...]:
        types = [i.type for i in self.inputs]
        table = self.opset.signature_table
        for node in self.nodes:
            idx = len(types)
            op = node.op
            if len(node.args) != op.arity:
                raise ProgramError(
                    f"{op.name} takes {op.arity} argument(s), got {len(node.args)}",
                    self.describe(idx),
                )
            for a in node.args:
                if not 0 <= a < idx:
                    what = "itself" if a == idx else f"index {a}"
                    raise ProgramError(
                        f"argument refers to {what}; arguments must be inputs or earlier "
                        "nodes (programs are acyclic and listed in topological order)",
                        self.describe(idx),
                    )
            argtypes = tuple(types[a] for a in node.args)
            out = table.get((op.name, argtypes))
            if out is None:
                accepted = ", ".join(repr(s) for s in op.signatures)
                got = ", ".join(t.name for t in argtypes)
                raise ProgramError(
                    f"{op.name} does not accept ({got}); it accepts {accepted}",
                    self.describe(idx),
                )
            types.append(out)
        return tuple(types)

    def describe(self, index: int) -> str:
        """A human-readable name for the node or input at ``index``."""
        n_in = len(self.inputs)
        if index < n_in:
            return f"input '{self.inputs[index].name}'"
        node_id = self.ids[index] if len(self.ids) > index else f"n{index - n_in}"
        return f"node '{node_id}'"

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def __len__(self) -> int:
        """Total number of graph vertices: inputs plus operator nodes."""
        return len(self.inputs) + len(self.nodes)

    def node(self, index: int) -> Node:
        """The operator node at combined ``index`` (inputs come first)."""
        return self.nodes[index - len(self.inputs)]

    def index(self, name: str) -> int:
        """Combined index of the input or node called ``name``."""
        try:
            return self.ids.index(name)
        except ValueError:
            raise ProgramError(f"no input or node named {name!r}") from None

    @property
    def key(self) -> tuple:
        """A structural identity: equal keys mean equal programs."""
        if self._key is None:
            self._key = (
                self.opset.name,
                tuple((i.name, i.type.name, i.trainable) for i in self.inputs),
                tuple((n.op.name, n.args, n.frozen) for n in self.nodes),
                self.output,
                self.ids,
            )
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        from graphs.core.render import formula

        return f"Program({formula(self)})"

    # -- memo ------------------------------------------------------------------------
    def memo(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        """The result memoized under ``key``; on first use, ``compute()`` is called and
        its result stored (a None result is not remembered: it is computed again).

        Keys are strings or tuples named after what they hold, e.g. ``"formula"`` or
        ``("probe", 0)``; each module that memoizes on programs keeps to its own.
        """
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = compute()
        return value

    def recall(self, key: Hashable, default: Any = None) -> Any:
        """The result memoized under ``key``, or ``default`` if there is none."""
        return self._memo.get(key, default)

    def remember(self, key: Hashable, value: _T) -> _T:
        """Memoize ``value`` under ``key`` (replacing any earlier one); returns it."""
        self._memo[key] = value
        return value

    def memos(self) -> Mapping[Hashable, Any]:
        """A read-only view of everything memoized on the program."""
        return MappingProxyType(self._memo)

    @property
    def live(self) -> tuple[bool, ...]:
        """For every index, whether the output depends on it."""
        value = self._memo.get("live")  # inlined memo: hot in mutation
        if value is None:
            value = self._memo["live"] = self._compute_live()
        return value

    def _compute_live(self) -> tuple[bool, ...]:
        live = [False] * len(self)
        live[self.output] = True
        n_in = len(self.inputs)
        for idx in range(self.output, n_in - 1, -1):
            if live[idx]:
                for a in self.nodes[idx - n_in].args:
                    live[a] = True
        return tuple(live)

    @property
    def plan(self) -> tuple[tuple[int, Op, tuple[int, ...]], ...]:
        """The live operator nodes, in execution order, as ``(index, op, args)``."""
        value = self._memo.get("plan")  # inlined memo: hot in mutation
        if value is None:
            value = self._memo["plan"] = self._compute_plan()
        return value

    def _compute_plan(self) -> tuple[tuple[int, Op, tuple[int, ...]], ...]:
        n_in = len(self.inputs)
        live = self.live
        return tuple(
            (n_in + i, n.op, n.args) for i, n in enumerate(self.nodes) if live[n_in + i]
        )

    @property
    def carries_gradient(self) -> tuple[bool, ...]:
        """For every index, whether a gradient path links it to a trainable input.

        This is the structural half of the differentiability check: a path through an
        op argument that carries no gradient (e.g. ArgMax) does not count.
        """
        value = self._memo.get("carries")  # inlined memo: hot in mutation
        if value is None:
            value = self._memo["carries"] = self._compute_carries()
        return value

    def _compute_carries(self) -> tuple[bool, ...]:
        n_in = len(self.inputs)
        known = self._memo.pop("carries_before", None)
        start = n_in if known is None else len(known)
        carries = [False] * len(self) if known is None else (
            list(known) + [False] * (len(self) - start))
        for i, (op, args, _) in enumerate(self.nodes[start - n_in:], start):
            if op.kind == "apply":
                carries[i] = args[0] < n_in and self.inputs[args[0]].trainable
            else:
                for p in op.grad_positions:
                    if carries[args[p]]:
                        carries[i] = True
                        break
        return tuple(carries)

    @property
    def param_calls(self) -> tuple[tuple[str, str], ...]:
        """Distinct live ``(parameter, argument)`` applications, e.g. ``("Q", "s_t")``."""
        return self.memo("calls", lambda: self._calls(require_gradient=False))

    @property
    def gradient_calls(self) -> tuple[tuple[str, str], ...]:
        """The live applications of trainable parameters that the loss differentiates."""
        return self.memo("gcalls", lambda: self._calls(require_gradient=True))

    def _calls(self, require_gradient: bool) -> tuple[tuple[str, str], ...]:
        carries, reach = self.carries_gradient, self._reaches_output()
        calls: dict[tuple[str, str], None] = {}
        for idx, op, args in self.plan:
            if op.kind == "apply" and (not require_gradient or (carries[idx] and reach[idx])):
                calls[(self.ids[args[0]], self.ids[args[1]])] = None
        return tuple(calls)

    def _reaches_output(self) -> tuple[bool, ...]:
        """Whether a gradient from the output reaches each index."""
        return self.memo("reach", self._compute_reach)

    def _compute_reach(self) -> tuple[bool, ...]:
        n_in = len(self.inputs)
        reach = [False] * len(self)
        reach[self.output] = True
        for idx in range(self.output, n_in - 1, -1):
            if reach[idx]:
                node = self.nodes[idx - n_in]
                for g, a in zip(node.op.grad_args, node.args):
                    if g:
                        reach[a] = True
        return tuple(reach)

    @property
    def gradient_provably_nonzero(self) -> bool:
        """A cheap sufficient condition for a gradient that is not identically zero.

        True when some application of a trainable input, with no live twin applying
        the same parameter to the same argument, reaches the output along a single
        path whose every step is through a *faithful* argument (see ``Op.faithful``):
        the gradient is then a product of local Jacobians none of which can vanish.
        Otherwise (several paths could cancel, or a step could annihilate) the
        numeric check decides.
        """
        value = self._memo.get("provable")  # inlined memo: hot in mutation
        if value is None:
            value = self._memo["provable"] = self._compute_provable()
        return value

    def _compute_provable(self) -> bool:
        n_in, inputs, output = len(self.inputs), self.inputs, self.output
        uses = [0] * len(self)
        user: list[Any] = [None] * len(self)  # (consumer, position) of the last use
        apps: dict[tuple[int, ...], int] = {}
        for idx, op, args in self.plan:
            for pos, a in enumerate(args):
                uses[a] += 1
                user[a] = (idx, pos)
            if op.kind == "apply" and args[0] < n_in and inputs[args[0]].trainable:
                apps[args] = idx if args not in apps else -1  # -1: has a live twin
        nodes = self.nodes
        for cur in apps.values():
            if cur < 0:
                continue
            while cur != output and uses[cur] == 1:
                nxt, pos = user[cur]
                if not nodes[nxt - n_in].op.faithful[pos]:
                    break
                cur = nxt
            if cur == output:
                return True
        return False

    @property
    def rowwise(self) -> bool:
        """Whether each sample's output depends on that sample alone (no live op mixes
        batch rows, and no random draws), so independent batches can be stacked."""
        return self.memo("rowwise", lambda: all(
            not op.mixes_rows and op.kind != "random" for _, op, _ in self.plan))

    # -- validation ------------------------------------------------------------------
    def check(self, numeric: bool = True) -> None:
        """Raise :class:`ProgramError` with the reason if the program is invalid.

        Checks the output type and, for op sets that train something, that the output
        really depends on a trainable input: structurally (a path that carries a
        gradient) and, with ``numeric``, that the gradient is not identically zero on
        the op set's probe inputs.
        """
        self.opset.check(self, numeric=numeric)

    def is_valid(self, numeric: bool = True) -> bool:
        """Whether :meth:`check` passes."""
        try:
            self.check(numeric=numeric)
        except ProgramError:
            return False
        return True

    # -- editing -----------------------------------------------------------------------
    def derive(
        self,
        nodes: Sequence[Node],
        types: Sequence[ValueType],
        output: int | None = None,
        ids: Sequence[str] | None = None,
        edited: int | Sequence[int] | None = None,
    ) -> Program:
        """A program with the same inputs (and ids, unless given) but new ``nodes``
        whose output ``types`` the caller has already inferred. Skips type inference:
        for generators and mutators, which only ever build type-valid nodes.

        ``edited`` marks an edit: only the node(s) at that index (or those indices)
        differ, and the output is the same. Per-node results of this program (probe
        values, node hashes) are then reused for the child's nodes that the edit
        cannot affect.
        """
        child = object.__new__(Program)
        child.opset, child.inputs = self.opset, self.inputs
        child.ids = self.ids if ids is None else self.ids[: self.n_inputs] + tuple(ids)
        child.nodes, child.types = tuple(nodes), tuple(types)
        child.output = self.output if output is None else output
        child._key, child._memo = None, {}
        if child.types is self.types and "type_groups" in self._memo:
            child._memo["type_groups"] = self._memo["type_groups"]  # depends on types only
        if edited is not None:
            reuse = self._memo.get("reuse")
            if reuse is None:
                reuse = self._memo["reuse"] = {}
            # The parent's per-node lists only, never the parent: no ancestor chains.
            child._memo["edit"] = (edited, reuse)
            carries = self._memo.get("carries")
            if carries is not None:  # unchanged before the first edited node
                first = edited if isinstance(edited, int) else min(edited, default=len(self))
                child._memo["carries_before"] = carries[:first]
        return child

    @property
    def edited(self) -> int | Sequence[int] | None:
        """The node index (or indices) that differ from the parent whose per-node
        results this program reuses (see :meth:`derive`); None when it was not derived
        by an edit, or shares every result with its parent."""
        edit = self._memo.get("edit")
        return None if edit is None else edit[0]

    def shares_function_with(self, parent: Program) -> None:
        """Declare that this program differs from ``parent`` only in dead nodes: the
        live nodes, and so every per-node result, are the same and are shared."""
        reuse = parent._memo.get("reuse")
        if reuse is None:
            reuse = parent._memo["reuse"] = {}
        self._memo["reuse"] = reuse
        self._memo.pop("edit", None)

    def per_node(self, name: Any, compute: Any) -> list[Any]:
        """A per-node result list (e.g. probe values), cached under ``name``.

        ``compute(known)`` builds it; ``known`` is None, or (after an edit, see
        :meth:`derive`) a list holding the parent's entry for every index that the
        edit cannot affect and None elsewhere. Random-draw nodes always count as
        affected, so results that depend on the order of draws stay exact.
        """
        reuse = self._memo.get("reuse")
        if reuse is None:
            reuse = self._memo["reuse"] = {}
        result = reuse.get(name)
        if result is None:
            known = None
            edit = self._memo.get("edit")
            if edit is not None:
                old = edit[1].get(name)
                if old is not None:
                    keep = self._unaffected(edit[0])
                    known = [v if k else None for v, k in zip(old, keep)]
            result = reuse[name] = compute(known)
        return result

    def _unaffected(self, edited: int | Sequence[int]) -> list[bool]:
        """For every index, whether it is a live node whose value cannot depend on
        the ``edited`` node(s) (inputs count as affected: they are cheap to redo)."""
        keep = self._memo.get("unaffected")
        if keep is None:
            n_in = len(self.inputs)
            affected = [False] * len(self)
            for e in (edited,) if isinstance(edited, int) else edited:
                affected[e] = True
            keep = [False] * len(self)
            for idx, op, args in self.plan:
                if affected[idx] or op.kind == "random":
                    affected[idx] = True
                    continue
                for a in args:
                    if affected[a]:
                        affected[idx] = True
                        break
                else:
                    keep[idx] = idx >= n_in
            self._memo["unaffected"] = keep
        return keep

    def replace_node(self, index: int, node: Node) -> Program:
        """A copy with the node at combined ``index`` replaced (same id)."""
        n_in = len(self.inputs)
        nodes = list(self.nodes)
        nodes[index - n_in] = node
        return Program(self.opset, nodes, self.inputs, self.output, self.ids[n_in:])

    def with_output(self, index: int) -> Program:
        """A copy whose output is the node at combined ``index``."""
        return Program(self.opset, self.nodes, self.inputs, index, self.ids[len(self.inputs):])
