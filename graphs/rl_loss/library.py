"""Built-in loss programs, reachable by name (reference.md section 1.2).

With Y = r + γ·max_a Qt(s', a) and δ = Q(s, a) − Y:
``dqn`` is the reference code's 0.5·δ² (7 nodes, trains exactly like δ²), ``ddqn``
takes the target action from the online net, ``dqnreg`` is 0.1·Q(s,a) + δ²,
``dqnclipped`` and ``cql`` are as in the paper, and ``skeleton`` holds the four
frozen nodes of the from-scratch search with Q(s, a) as its output.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from graphs.core.errors import ProgramError, unknown_name
from graphs.core.opset import OpSet
from graphs.core.program import Node, Program
from graphs.rl_loss.ops import RL_LOSS


def from_steps(
    steps: Sequence[tuple],
    output: int | None = None,
    ids: Sequence[str] | None = None,
    frozen: Collection[int] = (),
    base: Program | None = None,
    opset: OpSet = RL_LOSS,
) -> Program:
    """A program written as ``(op_name, *args)`` steps, appended to ``base``'s nodes.

    A ``str`` argument names an input; an ``int`` k refers to node k (counting
    ``base``'s nodes first). ``output`` and ``frozen`` are node numbers; the output
    defaults to the last node. Example, 0.5·(Q(s,a) − r)²::

        from_steps([("QValues", "Q", "s_t"), ("Select", 0, "a_t"), ("SqDist", 1, "r_t")])
    """
    n_in = len(opset.inputs)
    index = {inp.name: i for i, inp in enumerate(opset.inputs)}
    nodes = list(base.nodes) if base is not None else []
    for op, *args in steps:
        try:
            refs = tuple(index[a] if isinstance(a, str) else n_in + a for a in args)
        except KeyError as err:
            raise ProgramError(f"unknown input {err.args[0]!r} in step {op}{tuple(args)}") from None
        nodes.append(Node(opset.op(op), refs, len(nodes) in frozen))
    return Program(opset, nodes, output=None if output is None else n_in + output, ids=ids)


class _Builder:
    """Append nodes by op name and input/node references; returns indices."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.index = {inp.name: i for i, inp in enumerate(RL_LOSS.inputs)}

    def __call__(self, op: str, *args: int | str, frozen: bool = False) -> int:
        idx = [self.index[a] if isinstance(a, str) else a for a in args]
        self.nodes.append(Node(RL_LOSS.op(op), tuple(idx), frozen))
        return len(RL_LOSS.inputs) + len(self.nodes) - 1

    def program(self, output: int | None = None) -> Program:
        return Program(RL_LOSS, self.nodes, output=output)


def _td_parts(b: _Builder, double: bool = False, frozen: bool = False) -> tuple[int, int]:
    """Add Q(s,a) and the TD target Y; return their indices."""
    q_sa = b("Select", b("QValues", "Q", "s_t", frozen=frozen), "a_t", frozen=frozen)
    q_next = b("QValues", "Q_targ", "s_tp1", frozen=frozen)
    if double:
        a_star = b("ArgMax", b("QValues", "Q", "s_tp1"))
        bootstrap = b("Select", q_next, a_star)
    else:
        bootstrap = b("Max", q_next, frozen=frozen)
    y = b("Add", "r_t", b("Mul", "gamma", bootstrap))
    return q_sa, y


def dqn() -> Program:
    """0.5·(Q(s,a) − (r + γ·max_a' Qt(s',a')))², as in the reference code."""
    b = _Builder()
    q_sa, y = _td_parts(b)
    b("SqDist", q_sa, y)
    return b.program()


def ddqn() -> Program:
    """Double DQN: the target action is argmax_a' Q(s', a') from the online net."""
    b = _Builder()
    q_sa, y = _td_parts(b, double=True)
    b("SqDist", q_sa, y)
    return b.program()


def dqnreg() -> Program:
    """DQNReg: 0.1·Q(s,a) + δ²."""
    b = _Builder()
    q_sa, y = _td_parts(b)
    sq = b("Square", b("Sub", q_sa, y))
    b("Add", b("Tenth", q_sa), sq)
    return b.program()


def dqnclipped() -> Program:
    """DQNClipped: max[Q(s,a), δ² + Y] + max[Q(s,a) − Y, γ·(max_a Qt(s',a))²]."""
    b = _Builder()
    q_sa = b("Select", b("QValues", "Q", "s_t"), "a_t")
    m = b("Max", b("QValues", "Q_targ", "s_tp1"))
    y = b("Add", "r_t", b("Mul", "gamma", m))
    delta = b("Sub", q_sa, y)
    left = b("Max2", q_sa, b("Add", b("Square", delta), y))
    right = b("Max2", delta, b("Mul", "gamma", b("Square", m)))
    b("Add", left, right)
    return b.program()


def cql() -> Program:
    """CQL-style: δ² + 0.1·(logsumexp_a Q(s,a) − Q(s,a))."""
    b = _Builder()
    q_all = b("QValues", "Q", "s_t")
    q_sa = b("Select", q_all, "a_t")
    m = b("Max", b("QValues", "Q_targ", "s_tp1"))
    y = b("Add", "r_t", b("Mul", "gamma", m))
    sq = b("Square", b("Sub", q_sa, y))
    gap = b("Sub", b("LogSumExp", q_all), q_sa)
    b("Add", sq, b("Tenth", gap))
    return b.program()


def skeleton() -> Program:
    """The from-scratch skeleton: Q(s,·), Q(s,a), Qt(s',·), max Qt(s',·), all frozen.

    Its output is Q(s,a); a search appends free nodes after the frozen ones.
    """
    b = _Builder()
    q_sa = b("Select", b("QValues", "Q", "s_t", frozen=True), "a_t", frozen=True)
    b("Max", b("QValues", "Q_targ", "s_tp1", frozen=True), frozen=True)
    return b.program(output=q_sa)


BUILTINS: dict[str, Callable[[], Program]] = {
    "dqn": dqn,
    "ddqn": ddqn,
    "dqnreg": dqnreg,
    "dqnclipped": dqnclipped,
    "cql": cql,
    "skeleton": skeleton,
}


def builtin(name: str) -> Program:
    """The built-in program called ``name`` (``dqn``, ``ddqn``, ``dqnreg``, ...)."""
    try:
        make = BUILTINS[name.lower()]
    except (KeyError, AttributeError):
        raise ProgramError(unknown_name("built-in program", name, BUILTINS)) from None
    return make()
