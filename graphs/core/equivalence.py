"""Functional equivalence: canonical structure and fingerprints (FEC).

Two steps, cheapest first:

1. **Structural canonicalization.** Dead nodes are pruned, identical
   subexpressions merged, and the arguments of commutative ops ordered, giving a
   structural hash (and, for people, a canonical :class:`Program`). Programs with
   equal structural hashes compute the same function, so their fingerprint is
   memoized by it.
2. **Fingerprint** on the op set's probe set, several fixed batches evaluated
   together (for RL losses, three batches of 10 samples with their own random
   networks and random-draw seeds: all rewards 1 and no terminal; rewards in
   {0, ±1}, mostly negative, with terminal transitions; generic rewards and
   discounts; see ``graphs.rl_loss.ops.probe_set`` and ``docs/fec.md``):

   * ``"output"`` mode, as in the paper: round the per-sample outputs on every
     probe to 4 decimals and hash the whole vector.
   * ``"training"`` mode (the default): hash the gradient of each batch's mean
     loss with respect to every trainable network output (Q(s,.) and, where used,
     Q(s',.)), on every probe, as ONE vector divided by ONE scale (its L2 norm)
     and rounded to 6 decimals.

   **The rule of training mode:** two losses are merged when their gradients
   with respect to the online network's outputs agree, up to one positive factor,
   over the whole probe set. Adam is invariant to a positive rescaling of the
   loss, and a term that does not depend on the online network leaves every
   update unchanged, so such losses train identically: DQN and DQN + log|r|,
   δ² and 0.5·δ², Square(δ) and δ·δ share a fingerprint. A factor that is
   constant within a batch but depends on the data (a batch statistic such as
   StdBatch(r), or a random draw) is *not* a rescaling: it changes from batch to
   batch, which the probes expose (one batch of equal rewards, one of mostly
   negative rewards, one with terminal transitions, a draw per batch from its
   own seed), and one scale for the whole set keeps it from being normalized
   away. The probes sit at the magnitudes training sees (rewards in {0, ±1},
   Q-values of order 1), so a max/min between terms is decided as it would be
   in training. Training mode is the default because target-only terms and
   rescalings are common in search and training them again only buys noise.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np

from graphs.core.errors import ProgramError
from graphs.core.execute import ZERO_GRADIENT_TOL, probe_set_gradients, probe_set_outputs
from graphs.core.program import Node, Program

MODES = ("training", "output")
DEFAULT_DECIMALS = {"output": 4, "training": 6}
# Hashed into every fingerprint: fingerprints from another probe scheme never match.
PROBE_SCHEME = "probe-set-2"


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
    types = program.types
    n_in = program.n_inputs
    by_hash: dict[int, int] = {hashes[i]: i for i in range(n_in)}  # new index by content
    nodes: list[Node] = []

    def ordered_args(idx: int) -> list[int]:
        node = program.node(idx)
        args = list(node.args)
        if node.op.commutative and len({types[a] for a in args}) == 1:
            args.sort(key=lambda a: hashes[a])
        return args

    # A depth-first post-order walk from the output, arguments in (canonical) order,
    # each distinct content emitted once. Iterative: chains of any depth.
    out = by_hash.get(hashes[program.output])
    stack: list[tuple[int, list[int], list[int]]] = []  # (index, arguments, mapped so far)
    if out is None:
        stack.append((program.output, ordered_args(program.output), []))
    while stack:
        idx, args, mapped = stack[-1]
        if len(mapped) < len(args):
            a = args[len(mapped)]
            known = by_hash.get(hashes[a])
            if known is None:
                stack.append((a, ordered_args(a), []))
            else:
                mapped.append(known)
            continue
        stack.pop()
        node = program.node(idx)
        nodes.append(Node(node.op, tuple(mapped), node.frozen))
        new = by_hash[hashes[idx]] = n_in + len(nodes) - 1
        if stack:
            stack[-1][2].append(new)
        else:
            out = new
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
        self._headers: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"FEC(mode={self.mode!r}, decimals={self.decimals})"

    def _header(self, opset_name: str) -> bytes:
        header = self._headers.get(opset_name)
        if header is None:
            header = self._headers[opset_name] = (
                f"{opset_name}|{self.mode}|{self.decimals}|{PROBE_SCHEME}".encode())
        return header

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
        h = hashlib.blake2b(digest_size=16)
        h.update(self._header(program.opset.name))
        if self.mode == "output":
            _update(h, _rounded(probe_set_outputs(program), self.decimals))
            return "o" + h.hexdigest()
        # One vector for the whole probe set (every probe's batch, and Q(s,.) and
        # Q(s',.) alike), normalized by ONE scale: a factor that differs between
        # probes (a batch statistic, a random draw) is not a positive rescaling.
        grads = probe_set_gradients(program)
        keys = sorted(grads) if len(grads) > 1 else list(grads)
        norm = math.sqrt(sum(float(np.vdot(grads[k], grads[k])) for k in keys))
        if not norm > ZERO_GRADIENT_TOL:
            # No gradient on any probe (only rounding noise): the direction means
            # nothing, so tell such programs apart by their outputs instead.
            h.update(b"no-gradient")
            _update(h, _rounded(probe_set_outputs(program), DEFAULT_DECIMALS["output"]))
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
    r = np.asarray(values, dtype=np.float64).round(decimals) + 0.0
    total = r.sum()
    if total == total:  # no NaN (a NaN, or inf - inf, makes the sum NaN)
        return r
    nan = np.isnan(r)
    return np.where(nan, np.nan, r) if nan.any() else r


def _update(h: hashlib._Hash, r: np.ndarray) -> None:
    h.update(str(r.shape).encode())
    h.update(np.ascontiguousarray(r).tobytes())


def equivalent(a: Program, b: Program, mode: str = "training") -> bool:
    """Whether two programs share a fingerprint in ``mode``."""
    fec = FEC(mode)
    return fec(a) == fec(b)
