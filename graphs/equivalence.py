"""Functional equivalence: canonical structure and fingerprints (FEC).

Two steps, cheapest first:

1. **Structural canonicalization.** Dead nodes are pruned, identical
   subexpressions merged, and the arguments of commutative ops ordered, giving a
   structural hash (and, for people, a canonical :class:`Program`). Programs with
   equal structural hashes compute the same function, so their fingerprint is
   memoized by it.
2. **Fingerprint** on the op set's fixed probe inputs (for RL losses: 10 samples,
   4-d states, 4 actions, FLOATs in U(-100,100), two different random MLPs):

   * ``"output"`` mode, as in the paper: round the per-sample outputs to 4
     decimals and hash the whole vector.
   * ``"training"`` mode (the default): hash the gradient of the mean loss with
     respect to every trainable network output (Q(s,.) and, where used, Q(s',.)),
     divided by its L2 norm and rounded to 6 decimals. Adam is invariant to a
     positive rescaling of the loss, and a term that does not depend on the online
     network leaves every update unchanged, so losses that agree here train
     identically: DQN and DQN + log|Y|, or δ² and 0.5·δ², share a fingerprint.
     It is the default because such duplicates are common in search (any dangling
     target-only term) and training them again only buys evaluation noise.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from graphs.errors import ProgramError
from graphs.opset import ZERO_GRADIENT_TOL
from graphs.program import Node, Program

MODES = ("training", "output")
DEFAULT_DECIMALS = {"output": 4, "training": 6}


# -- structure ---------------------------------------------------------------------------
def node_hashes(program: Program) -> list[int | None]:
    """A content hash for every live index (None for dead ones).

    Hashes are built from op positions in the op set and input positions only, so
    they are stable across processes. Random-draw ops keep their identity (two N(0,1)
    nodes are two different draws). Cached on the program (and, after a point edit,
    reused from the parent for the nodes the edit cannot affect).
    """
    return program.per_node("hashes", lambda known: _node_hashes(program, known))


def _node_hashes(program: Program, known: list[int | None] | None) -> list[int | None]:
    n_in = program.n_inputs
    op_pos = _op_positions(program)
    types = program.types
    hashes: list[int | None] = [None] * len(program) if known is None else known
    for i in range(n_in):
        hashes[i] = hash((-1, i))
    draws = 0
    for idx, op, args in program.plan:
        if op.kind == "random":
            draws += 1
            hashes[idx] = hash((op_pos[op.name], -1 - draws))  # never -1: hash(-1) == hash(-2)
            continue
        if known is not None and hashes[idx] is not None:
            continue
        children = [hashes[a] for a in args]
        if op.commutative and len(args) > 1 and len({types[a] for a in args}) == 1:
            children.sort()
        hashes[idx] = hash((op_pos[op.name], *children))
    return hashes


def _op_positions(program: Program) -> dict[str, int]:
    opset = program.opset
    pos = getattr(opset, "_op_positions", None)
    if pos is None:
        pos = {op.name: i for i, op in enumerate(opset.ops)}
        opset._op_positions = pos
    return pos


def structural_hash(program: Program) -> int:
    """Equal for programs with the same canonical structure."""
    return node_hashes(program)[program.output]


def canonicalize(program: Program) -> Program:
    """The canonical form: live nodes only, shared subexpressions merged,
    commutative arguments ordered, nodes in a structure-determined order and named
    ``n0, n1, ...``. Frozen flags are kept."""
    hashes = node_hashes(program)
    n_in = program.n_inputs
    new_index: dict[int, int] = {i: i for i in range(n_in)}  # by content hash
    by_hash: dict[int, int] = {hashes[i]: i for i in range(n_in)}
    nodes: list[Node] = []

    def visit(idx: int) -> int:
        h = hashes[idx]
        if h in by_hash:
            return by_hash[h]
        node = program.node(idx)
        args = list(node.args)
        if node.op.commutative and len({program.types[a] for a in args}) == 1:
            args.sort(key=lambda a: hashes[a])
        mapped = tuple(visit(a) for a in args)
        nodes.append(Node(node.op, mapped, node.frozen))
        by_hash[h] = n_in + len(nodes) - 1
        return by_hash[h]

    del new_index
    out = visit(program.output)
    return Program(program.opset, nodes, program.inputs, output=out)


# -- fingerprints --------------------------------------------------------------------------
class FEC:
    """Fingerprints programs for the functional-equivalence check.

    Args:
        mode: ``"training"`` (default) or ``"output"``; see the module docstring.
        decimals: rounding before hashing (default 6 for training, 4 for output).
        memo_size: fingerprints remembered by structural hash (LRU).
    """

    def __init__(self, mode: str = "training", decimals: int | None = None,
                 memo_size: int = 100_000) -> None:
        if mode not in MODES:
            raise ProgramError(f"unknown FEC mode {mode!r}; choose one of {', '.join(MODES)}",
                               "mode")
        self.mode = mode
        self.decimals = DEFAULT_DECIMALS[mode] if decimals is None else decimals
        self.memo_size = memo_size
        self._memo: OrderedDict[tuple[str, int], str] = OrderedDict()

    def __repr__(self) -> str:
        return f"FEC(mode={self.mode!r}, decimals={self.decimals})"

    def __call__(self, program: Program) -> str:
        return self.fingerprint(program)

    def fingerprint(self, program: Program) -> str:
        """A hex fingerprint; equal fingerprints mean equivalent programs."""
        key = (program.opset.name, structural_hash(program))
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit
        fp = self._compute(program)
        self._memo[key] = fp
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return fp

    def _compute(self, program: Program) -> str:
        with np.errstate(all="ignore"):  # once for the whole digest
            return self._digest(program)

    def _digest(self, program: Program) -> str:
        from graphs.execute import _probe_gradients, _probe_values

        probe = program.opset.probes()[0]
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{program.opset.name}|{self.mode}|{self.decimals}".encode())
        if self.mode == "output":
            out = _probe_values(program, 0)[program.output]
            n = max(len(v) for v in probe.feed.values() if isinstance(v, np.ndarray))
            _update(h, _rounded(np.broadcast_to(out, (n, 1)), self.decimals))
            return "o" + h.hexdigest()
        grads = _probe_gradients(program, 0)
        keys = sorted(grads)
        norm = float(np.sqrt(sum(float(np.square(grads[k]).sum()) for k in keys)))
        if not norm > ZERO_GRADIENT_TOL:
            # No gradient on this probe (only rounding noise): the direction means
            # nothing, so tell such programs apart by their outputs instead.
            h.update(b"no-gradient")
            out = _probe_values(program, 0)[program.output]
            n = max(len(v) for v in probe.feed.values() if isinstance(v, np.ndarray))
            _update(h, _rounded(np.broadcast_to(out, (n, 1)), DEFAULT_DECIMALS["output"]))
            return "t" + h.hexdigest()
        scale = norm if np.isfinite(norm) else 1.0
        for k in keys:
            r = _rounded(grads[k] / scale, self.decimals)
            if not r.any():
                continue  # an all-zero block is the same as no gradient there
            h.update(repr(k).encode())
            _update(h, r)
        return "t" + h.hexdigest()


def _rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    """Rounded, with -0.0 as 0.0 and one NaN bit pattern (the caller ignores numpy's
    floating-point warnings)."""
    r = np.round(np.asarray(values, dtype=np.float64), decimals) + 0.0
    nan = np.isnan(r)
    return np.where(nan, np.nan, r) if nan.any() else r


def _update(h: hashlib._Hash, r: np.ndarray) -> None:
    h.update(str(r.shape).encode())
    h.update(np.ascontiguousarray(r).tobytes())


def equivalent(a: Program, b: Program, mode: str = "training") -> bool:
    """Whether two programs share a fingerprint in ``mode``."""
    fec = FEC(mode)
    return fec(a) == fec(b)
