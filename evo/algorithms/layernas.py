"""LayerNAS (Fan et al., 2023): layer-by-layer search with cost buckets.

An architecture space is a product of decisions ("layers"); LayerNAS searches
them one at a time. For layer ``i`` it extends every candidate kept for layer
``i - 1`` with every option of layer ``i`` (layers not searched yet keep the
choice of a *base* architecture), scores the children, sorts them by cost into
``H`` equal-width buckets over ``[cheapest cost, target]`` and keeps the best
child of each bucket (the memo table). Children over the cost target are never
proposed, so every evaluated architecture meets the target. A pass over all
layers costs at most ``H * |S| * L`` evaluations instead of ``|S| ** L``; it
assumes later layers do not change which earlier choice is best.

When a pass ends, the next one starts from the best architecture found (a pass
that evaluated nothing new restarts from a random architecture under the target),
so a budget larger than one pass keeps searching rather than idling.

The algorithm works on the codes of an :class:`~graphs.arch.ops.ArchSpace`
(``choices``, ``encode``, ``decode``, ``sample``) and is asynchronous:
:meth:`LayerNAS.propose` returns ``None`` while the children of the current layer
are still being evaluated. Architectures it has scored, and by default ones equivalent
to them (equal ``space.fingerprint``), are never proposed again.
:func:`run_offline` drives any :class:`~evo.algorithms.base.SearchAlgorithm` in a tight
loop without a store (for benchmarks on tabular scores).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evo.algorithms.base import Candidate, SearchAlgorithm
from evo.checks import boolean, choice, integer, real
from evo.errors import ConfigError
from graphs.core.errors import ProgramError
from graphs.core.program import Program

Code = tuple[int, ...]
# A pass that proposes nothing new starts again from a random architecture; after
# this many such passes in a row the space (under the target) counts as exhausted.
_MAX_STALE_PASSES = 20
_RESTART_DRAWS = 200  # random draws tried to find a restart point under the target


def macs_cost(space: Any) -> Callable[[Program], float]:
    """The cost "multiply-accumulates of the whole network" for an arch space."""
    def cost(program: Program) -> float:
        return float(sum(layer.macs for layer in space.layers(program)))
    return cost


class LayerNAS(SearchAlgorithm):
    """Layer-by-layer search with the best candidate per cost bucket.

    Args:
        space: an architecture space (``choices``, ``encode``, ``decode``, ``sample``).
        cost: the cost of a program (MACs, simulated latency, ...); memoized per code.
            Defaults to MACs from ``space.layers``.
        target: only architectures with cost at or under it are proposed (``None``:
            no constraint; the buckets then span the cheapest to the costliest).
        buckets: ``H``, the number of cost buckets (candidates kept per layer).
        base: the choices of layers not searched yet in the first pass: ``"cheapest"``
            (per-layer cheapest options, found by coordinate descent on ``cost``;
            with an additive cost no completion is cheaper, so pruning children over
            the target loses nothing), ``"costliest"``, ``"random"`` (a per-seed draw
            under the target), or a code.
        order: the order in which decisions are searched: a permutation, ``"random"``
            (per seed) or ``None`` (as in ``choices``).
        passes: stop proposing after this many passes (``None``: keep going).
        dedupe: treat architectures with equal ``space.fingerprint`` as one: a child
            equivalent to a scored architecture takes its score without being proposed
            (as the engine's equivalence cache would give it), and equivalent children
            of one layer are proposed once.
        seed: for the random restarts.
    """

    name = "layernas"

    def __init__(self, space: Any, cost: Callable[[Program], float] | None = None,
                 target: float | None = None, buckets: int = 8,
                 base: str | Sequence[int] = "cheapest",
                 order: str | Sequence[int] | None = None,
                 passes: int | None = None, dedupe: bool = True, seed: int = 0) -> None:
        super().__init__(seed)
        for attr in ("choices", "encode", "decode", "sample"):
            if not hasattr(space, attr):
                raise ConfigError(f"LayerNAS needs an architecture space with {attr!r} "
                                  f"(the graphs.arch.ops.ArchSpace protocol); got {space!r}")
        self.space = space
        self.sizes = tuple(len(options) for options in space.choices)
        if not self.sizes or min(self.sizes) < 1:
            raise ConfigError(f"space {getattr(space, 'name', space)!r} has a decision with no "
                              f"options (choices sizes {self.sizes})")
        if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
            raise ConfigError(f"buckets = {buckets!r}: must be a positive integer")
        if target is not None and not (isinstance(target, int | float)
                                       and math.isfinite(target)):
            raise ConfigError(f"target = {target!r}: must be a finite number or None")
        if passes is not None and (not isinstance(passes, int) or passes < 1):
            raise ConfigError(f"passes = {passes!r}: must be a positive integer or None")
        n = len(self.sizes)
        if order == "random":  # a per-seed order
            order = list(range(n))
            random.Random(f"{seed}:order").shuffle(order)
        order = tuple(range(n)) if order is None else tuple(order)
        if sorted(order) != list(range(n)):
            raise ConfigError(f"order = {order!r}: must be 'random' or a permutation of "
                              f"0..{n - 1}")
        if isinstance(base, str):
            if base not in ("cheapest", "costliest", "random"):
                raise ConfigError(f"base = {base!r}: must be 'cheapest', 'costliest', 'random' "
                                  "or a code")
        else:
            base = self._check_code(base, "base")
        self.cost_fn = cost if cost is not None else macs_cost(space)
        self.target = None if target is None else float(target)
        self.buckets = buckets
        self.order = order
        self.passes = passes
        self._base_spec = base
        self._costs: dict[Code, float] = {}
        fingerprint = getattr(space, "fingerprint", None) if dedupe else None
        self._fingerprint = fingerprint if callable(fingerprint) else None
        self._fps: dict[Code, str] = {}
        self._canon: dict[Code, Code] = {}  # code -> the code its program encodes to
        self._decoded: dict[Code, Program] = {}  # programs of the current layer's children
        self.by_fp: dict[str, tuple[float, int]] = {}  # fingerprint -> (fitness, trial id)
        self.scores: dict[Code, tuple[float, int]] = {}  # code -> (fitness, trial id)
        self._saved_scores: list[list] = []  # the same, as state() gives it (kept up to date)
        self._range: tuple[float, float] | None = None  # bucket span (low, high)
        # Progress through the search (all of it is in state()).
        self.pass_no = 0
        self.step = 0  # index into order
        self.base: Code | None = None
        self.parents: list[Code] = []
        self.layer_codes: list[Code] | None = None  # every feasible child of this layer
        self.children: list[Code] = []  # those to propose (not scored before)
        self.layer_start = 0  # proposals made before this layer's first child
        self.pass_new = 0  # children proposed in this pass
        self.stale = 0  # passes in a row that proposed nothing new
        self.exhausted = False

    def __repr__(self) -> str:
        return (f"LayerNAS(H={self.buckets}, target={self.target}, "
                f"space={getattr(self.space, 'name', self.space)!r})")

    # -- codes and costs ---------------------------------------------------------------------
    def _check_code(self, code: Sequence[int], what: str) -> Code:
        code = tuple(code)
        if len(code) != len(self.sizes) or not all(
                isinstance(c, int) and 0 <= c < s for c, s in zip(code, self.sizes)):
            raise ConfigError(f"{what} {code!r}: must be {len(self.sizes)} option indices "
                              f"below {self.sizes}")
        return code

    def cost(self, code: Sequence[int]) -> float:
        """The (memoized) cost of a code; ``inf`` if the space cannot build it."""
        code = tuple(code)
        value = self._costs.get(code)
        if value is None:
            try:
                program = self.space.decode(code)
                value = float(self.cost_fn(program))
                if self._fingerprint is not None:
                    self._fps[code] = self._fingerprint(program)
            except ProgramError:
                value = math.inf
            if math.isnan(value):
                raise ConfigError(f"the cost function returned NaN for {code!r}")
            self._costs[code] = value
        return value

    def feasible(self, code: Sequence[int]) -> bool:
        """Whether a code's cost is finite and at or under the target."""
        c = self.cost(code)
        return math.isfinite(c) and (self.target is None or c <= self.target)

    def _extreme(self, sign: int) -> Code:
        """Per-layer cheapest (sign 1) or costliest (-1) code with a finite cost, by
        coordinate descent from the all-zero code."""
        def key(code: list[int], option: int) -> tuple[float, int]:
            c = self.cost(code[:i] + [option] + code[i + 1:])
            return (sign * c if math.isfinite(c) else math.inf, option)

        code = [0] * len(self.sizes)
        for _ in range(3):
            changed = False
            for i in self.order:
                best = min(range(self.sizes[i]), key=lambda o: key(code, o))
                if best != code[i]:
                    code[i], changed = best, True
            if not changed:
                break
        return tuple(code)

    def _setup(self) -> None:
        """The first base and the bucket span (kept for the whole run)."""
        name = getattr(self.space, "name", "the space")
        cheapest = self._extreme(1)
        if isinstance(self._base_spec, tuple):
            base = self._base_spec
        elif self._base_spec == "random":
            base = self._random_point("base")
        else:
            base = cheapest if self._base_spec == "cheapest" else self._extreme(-1)
        finite = [c for c in (self.cost(cheapest), self.cost(base)) if math.isfinite(c)]
        if not finite:
            raise ConfigError(f"no architecture of {name} that LayerNAS could find has a "
                              f"finite cost (tried {cheapest!r} and {base!r})")
        low = min(finite)
        if self.target is not None and low > self.target:
            raise ConfigError(f"target = {self.target:g} is below the cheapest architecture "
                              f"of {name} (cost {low:g})")
        if not self.feasible(base):
            over = "" if self.target is None else f", over the target {self.target:g}"
            raise ConfigError(f"the base architecture {base!r} has cost "
                              f"{self.cost(base):g}{over}")
        if self.target is not None:
            high = self.target
        else:
            high = max(c for c in (self.cost(self._extreme(-1)), self.cost(base), low)
                       if math.isfinite(c))
        self._range = (low, high)
        self.base = base
        self.parents = [base]

    def bucket(self, cost: float) -> int:
        """The bucket of a cost: ``H`` equal-width buckets over the cost span."""
        if self._range is None:
            self._setup()
        low, high = self._range
        if high <= low:
            return 0
        return min(self.buckets - 1, max(0, int((cost - low) / (high - low) * self.buckets)))

    # -- the search --------------------------------------------------------------------------
    def _fitness(self, code: Code) -> float:
        return self.scores[code][0]

    def _start_layer(self) -> None:
        layer = self.order[self.step]
        codes: list[Code] = []
        seen: set[Code] = set()
        for parent in self.parents:
            for option in range(self.sizes[layer]):
                child = self._canonical(parent[:layer] + (option,) + parent[layer + 1:])
                if child not in seen and self.feasible(child):
                    seen.add(child)
                    codes.append(child)
        self.layer_codes = codes
        self.children = []
        fresh: set[str] = set()
        for c in codes:
            if c in self.scores:
                continue
            fp = self._fp(c)
            if fp is not None:
                if fp in self.by_fp:  # equivalent to a scored architecture
                    self._score(c, self.by_fp[fp])
                    continue
                if fp in fresh:  # an equivalent child is proposed already
                    continue
                fresh.add(fp)
            self.children.append(c)

    def _canonical(self, code: Code) -> Code:
        """The code as the space encodes its program: spaces whose decisions can be
        inactive (e.g. the blocks of an unused layer slot) encode those as one value,
        and observations arrive encoded, so children are kept in that form."""
        known = self._canon.get(code)
        if known is None:
            program = self.space.decode(code)
            known = self._canon[code] = self._check_code(self.space.encode(program),
                                                         "encoded code")
            self._decoded.setdefault(known, program)
        return known

    def _decode(self, code: Code) -> Program:
        """The program of a code (decoded once per layer)."""
        program = self._decoded.get(code)
        if program is None:
            program = self._decoded[code] = self.space.decode(code)
        return program

    def _score(self, code: Code, value: tuple[float, int]) -> None:
        self.scores[code] = value
        f, tid = value
        self._saved_scores.append([list(code), None if f == -math.inf else f, tid])

    def _fp(self, code: Code) -> str | None:
        """The fingerprint of a code (None without deduplication)."""
        if self._fingerprint is None:
            return None
        fp = self._fps.get(code)
        if fp is None:
            fp = self._fps[code] = self._fingerprint(self._decode(code))
        return fp

    def _finish_layer(self) -> None:
        best: dict[int, Code] = {}
        for code in self.layer_codes or ():
            if code not in self.scores:  # an equivalent child was proposed in its place
                self._score(code, self.by_fp[self._fp(code)])
            b = self.bucket(self.cost(code))
            kept = best.get(b)
            if kept is None or self._better(code, kept):
                best[b] = code
        if best:
            self.parents = [best[b] for b in sorted(best)]
        # The next layer's first proposal is number layer_start + len(children), even if a
        # resumed run has already proposed (and still evaluates) some of its children.
        self.layer_start += len(self.children)
        self.layer_codes, self.children = None, []
        self._decoded.clear()
        self.step += 1
        if self.step == len(self.order):
            self._next_pass()

    def _better(self, a: Code, b: Code) -> bool:
        """Higher fitness, then lower cost, then the smaller code."""
        return ((-self._fitness(a), self.cost(a), a) < (-self._fitness(b), self.cost(b), b))

    def _next_pass(self) -> None:
        self.stale = 0 if self.pass_new else self.stale + 1
        self.pass_no += 1
        self.step, self.pass_new = 0, 0
        if (self.passes is not None and self.pass_no >= self.passes) or \
                self.stale >= _MAX_STALE_PASSES:
            self.exhausted = True
            return
        best = self.best()
        start = best[0] if best is not None else self.base
        if self.stale or start == self.base:
            start = self._random_point(f"restart:{self.pass_no}")
        self.base = start
        self.parents = [start]

    def _random_point(self, why: str) -> Code:
        """A random code under the target (drawn from ``space.sample``; else the cheapest)."""
        rng = random.Random(f"{self.seed}:{why}")
        for _ in range(_RESTART_DRAWS):
            code = self._check_code(self.space.encode(self.space.sample(rng)), "sampled code")
            if self.feasible(code):
                return code
        return self._extreme(1)

    def propose(self) -> Candidate | None:
        """The next child of the current layer; ``None`` while its children are scored."""
        if self.base is None:
            self._setup()
        while not self.exhausted:
            if self.layer_codes is None:
                self._start_layer()
            issued = self.proposed - self.layer_start
            if issued < len(self.children):
                return self._candidate(self.children[issued])
            if any(code not in self.scores for code in self.children):
                return None
            self._finish_layer()
        return None

    def _candidate(self, code: Code) -> Candidate:
        self._next()
        self.pass_new += 1
        layer = self.order[self.step]
        parent = next((p for p in self.parents if p[:layer] + p[layer + 1:]
                       == code[:layer] + code[layer + 1:]), None)
        parent_tid = self.scores[parent][1] if parent in self.scores else None
        label = self.space.choices[layer][code[layer]]
        return Candidate(self._decode(code), parent_tid,
                         f"layernas pass {self.pass_no} layer {layer} = {label}",
                         self.pass_no * len(self.order) + self.step + 1)

    def observe(self, trial_id: int, candidate: Candidate, fitness: float,
                result: Mapping[str, Any] | None = None) -> None:
        code = self._check_code(self.space.encode(candidate.program), "observed code")
        fitness = float(fitness)
        if math.isnan(fitness):
            fitness = -math.inf
        if code not in self.scores:
            self._score(code, (fitness, int(trial_id)))
        if self._fingerprint is not None:
            fp = self._fps.get(code)
            if fp is None:
                fp = self._fps[code] = self._fingerprint(candidate.program)
            self.by_fp.setdefault(fp, self.scores[code])

    def best(self) -> tuple[Code, float, float] | None:
        """The best scored architecture under the target: (code, fitness, cost)."""
        top: Code | None = None
        for code in self.scores:
            if self.feasible(code) and (top is None or self._better(code, top)):
                top = code
        return None if top is None else (top, self._fitness(top), self.cost(top))

    def memo(self) -> list[tuple[Code, float, float]]:
        """The kept candidates (best per bucket) that the current layer extends."""
        return [(c, self.scores[c][0] if c in self.scores else math.nan, self.cost(c))
                for c in self.parents]

    # -- persistence -------------------------------------------------------------------------
    def state(self) -> dict:
        state = super().state()
        state.update({
            "pass": self.pass_no, "step": self.step,
            "base": None if self.base is None else list(self.base),
            "range": None if self._range is None else list(self._range),
            "parents": [list(c) for c in self.parents],
            "layer_codes": None if self.layer_codes is None else
            [list(c) for c in self.layer_codes],
            "children": [list(c) for c in self.children],
            "layer_start": self.layer_start, "pass_new": self.pass_new,
            "stale": self.stale, "exhausted": self.exhausted,
            "scores": list(self._saved_scores),  # entries are never changed in place
        })
        return state

    def restore(self, state: Mapping, programs: Mapping[int, Program]) -> None:
        """Continue from ``state`` (codes are stored in it; ``programs`` is not needed)."""
        super().restore(state, programs)
        try:
            def code(c: Sequence[int]) -> Code:
                return self._check_code(c, "saved code")
            self.pass_no, self.step = int(state["pass"]), int(state["step"])
            self.base = None if state["base"] is None else code(state["base"])
            span = state["range"]
            self._range = None if span is None else (float(span[0]), float(span[1]))
            self.parents = [code(c) for c in state["parents"]]
            saved = state["layer_codes"]
            self.layer_codes = None if saved is None else [code(c) for c in saved]
            self.children = [code(c) for c in state["children"]]
            self.layer_start = int(state["layer_start"])
            self.pass_new, self.stale = int(state["pass_new"]), int(state["stale"])
            self.exhausted = bool(state["exhausted"])
            self.scores, self._saved_scores = {}, []
            for c, f, tid in state["scores"]:
                self._score(code(c), (-math.inf if f is None else float(f), int(tid)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"not a LayerNAS state for this space: {err}") from None
        self.by_fp = {}
        if self._fingerprint is not None:
            for c, value in self.scores.items():
                self.by_fp.setdefault(self._fp(c), value)
        if not 0 <= self.step < len(self.order) and not self.exhausted:
            raise ConfigError(f"saved LayerNAS step {self.step} outside the "
                              f"{len(self.order)} searched decisions")


def run_offline(algorithm: SearchAlgorithm, score: Callable[[Program], float], budget: int,
                parallel: int = 1) -> list[tuple[Candidate, float]]:
    """Drive ``algorithm`` for ``budget`` proposals without a store or workers.

    ``score(program)`` gives the fitness at once. ``parallel`` evaluations are kept
    in flight and finish first-in first-out, which exercises the asynchronous
    interface (a ``None`` proposal waits for the oldest evaluation). Stops early when
    the algorithm has nothing more to propose. Returns (candidate, fitness) in
    proposal order; trial ids are the positions in that list.
    """
    if not isinstance(budget, int) or budget < 0:
        raise ConfigError(f"budget = {budget!r}: must be a non-negative integer")
    if not isinstance(parallel, int) or parallel < 1:
        raise ConfigError(f"parallel = {parallel!r}: must be a positive integer")
    trials: list[tuple[Candidate, float]] = []
    flight: deque[int] = deque()
    while len(trials) < budget or flight:
        cand = None
        if len(trials) < budget and len(flight) < parallel:
            cand = algorithm.propose()
        if cand is not None:
            flight.append(len(trials))
            trials.append((cand, float(score(cand.program))))
            continue
        if not flight:
            break
        tid = flight.popleft()
        algorithm.observe(tid, *trials[tid])
    return trials


@dataclass(frozen=True)
class LayerNASOptions:
    """The ``[layernas]`` section of a run config."""

    buckets: int = 8
    target: float | None = None  # default: the evaluator's target
    cost: str | None = None  # "latency" or "macs"; default: the evaluator's cost
    base: str = "cheapest"
    passes: int | None = None
    order: str = "given"  # "given" (the space's decision order) or "random" (per seed)
    dedupe: bool = True  # never propose an architecture equivalent to one already scored


OPTION_CHECKS = {
    "buckets": integer(1, 10_000),
    "target": real(0.0, open_lo=True),
    "cost": choice(("latency", "macs")),
    "base": choice(("cheapest", "costliest", "random")),
    "passes": integer(1),
    "order": choice(("given", "random")),
    "dedupe": boolean,
}
