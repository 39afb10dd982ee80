"""Random programs (reference.md section 1.3).

Nodes are appended one at a time, each drawn uniformly from all (op, arguments)
pairs that type-check, with the output on the last node; draws repeat until the
program is valid. The paper's seedings of the RL-loss search (a built-in program
followed by random nodes, or the frozen from-scratch skeleton plus free nodes) are
in :mod:`graphs.rl_loss.generation`.

One deliberate shortcut: the paper redraws the whole program until it is valid,
and only about 1% of uniform draws are (most never connect the output to Q). We
draw the *output* node uniformly among the choices that make the program
structurally valid (output type, and a gradient-carrying argument), redrawing only
prefixes that offer no such choice. Given its prefix the output node is therefore
distributed exactly as under full rejection; prefixes are weighted slightly
differently. This makes a fresh program ~50x cheaper.

When every node is drawn (no kept nodes), most prefixes hold no gradient-carrying
node at all; those are not drawn and rejected but excluded up front, exactly
(:mod:`graphs.core.prefix`), which makes such fresh programs another ~3x cheaper.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from graphs.core.errors import ProgramError
from graphs.core.op import Op
from graphs.core.prefix import prefix_sampler
from graphs.core.program import Node, Program
from graphs.core.sampling import ChoiceSampler, Pool, as_rng, shared_sampler

MAX_TRIES = 10_000
# Longest prefix drawn conditioned on a carrying node (the dynamic program's states
# grow with the cube of its length); longer ones are drawn by rejection.
MAX_CONDITIONED = 24


def fill(
    template: Program,
    free: Sequence[bool],
    rng: random.Random,
    sampler: ChoiceSampler,
    max_tries: int = MAX_TRIES,
) -> Program:
    """Redraw the nodes of ``template`` marked ``free`` until the program is valid.

    Kept nodes stay as they are; a free node that a kept node consumes keeps its
    type; the output node is drawn among structurally valid choices (see module doc).
    """
    opset = template.opset
    n_in = template.n_inputs
    trains = opset.trains
    pinned = {a for n, f in zip(template.nodes, free) if not f for a in n.args}
    trainable = [inp.trainable for inp in template.inputs]
    sample, try_sample = sampler.sample, sampler.try_sample
    positions = opset.type_positions
    n_nodes = len(template.nodes)
    # Kept nodes before the first free one are the same in every draw: the pool they
    # form is built once per template.
    lead = next((k for k, f in enumerate(free) if f), n_nodes)
    lead = min(lead, template.output - n_in)
    start, start_types = template.memo(("fill_start", lead), lambda: _start_pool(
        template, lead))
    edited = [n_in + k for k, f in enumerate(free) if f]
    # All nodes free, output last: draw the prefix conditioned on a carrying node
    # (exactly what rejecting prefixes without one gives, see graphs/core/prefix.py).
    conditioned = (trains and all(free) and template.output == n_in + n_nodes - 1
                   and n_nodes - 1 <= MAX_CONDITIONED)
    if conditioned:
        prefix = prefix_sampler(sampler, template.inputs)
        if prefix.p_none(n_nodes - 1, tuple(start.counts)) >= 1.0:
            conditioned = False  # no prefix can carry: the loop below reports it
    for _ in range(max_tries):
        pool = start.copy()
        flags, by_type, counts, carrying = pool.flags, pool.by_type, pool.counts, pool.carrying
        types = list(start_types)
        nodes: list[Node] = list(template.nodes[:lead])
        ok = True
        carried = not conditioned
        for k, old in enumerate(template.nodes[lead:], lead):
            idx = n_in + k
            if not free[k]:
                node, out = old, template.types[idx]
            elif idx == template.output:
                drawn = try_sample(pool, rng, opset.output_type, trains)
                if drawn is None:
                    ok = False
                    break
                node, out = drawn
            elif not carried:
                drawn_prefix = prefix.draw(pool, rng, n_nodes - 1 - k)
                if drawn_prefix is None:  # only through rounding: start over
                    ok = False
                    break
                node, out, carried = drawn_prefix
            else:
                node, out = sample(pool, rng, template.types[idx] if idx in pinned else None)
            nodes.append(node)
            types.append(out)
            op, args = node.op, node.args
            carries = False
            if op.kind == "apply":
                carries = args[0] < n_in and trainable[args[0]]
            else:
                for p in op.grad_positions:
                    if flags[args[p]]:
                        carries = True
                        break
            # pool.add(out, carries), inlined: this loop is the hot path of fresh draws
            group = by_type.get(out)
            if group is None:
                group = by_type[out] = []
            group.append(len(flags))
            counts[positions[out]] += 1
            if carries:
                carrying[positions[out]] += 1
            flags.append(carries)
        if not ok:
            continue
        child = template.derive(nodes, types, edited=edited)
        if child.is_valid():
            child.remember("valid", True)
            return child
    raise ProgramError(
        f"no valid program found in {max_tries} random draws; check that the allowed "
        "ops can connect the output to the trainable input"
    )


def _start_pool(template: Program, lead: int) -> tuple[Pool, tuple]:
    """The pool of the inputs and the first ``lead`` nodes, and their types."""
    pool = Pool(template.opset)
    for inp in template.inputs:
        pool.add(inp.type, False)  # only applications of a trainable input carry
    carries = template.carries_gradient
    n_in = template.n_inputs
    for i in range(n_in, n_in + lead):
        pool.add(template.types[i], carries[i])
    return pool, template.types[: n_in + lead]


def random_program(
    base: Program,
    n_nodes: int,
    seed: int | random.Random | None = None,
    ops: Sequence[Op | str] | None = None,
    sampler: ChoiceSampler | None = None,
) -> Program:
    """``base``'s nodes (kept) followed by ``n_nodes`` random nodes, output on the last.

    Raises:
        ProgramError: if ``n_nodes < 1`` or the allowed ``ops`` cannot form a valid
            program.
    """
    if not isinstance(n_nodes, int) or n_nodes < 1:
        raise ProgramError(f"n_nodes must be a positive integer, got {n_nodes!r}", "n_nodes")
    sampler = sampler or shared_sampler(base.opset, ops)
    template = append_slots(base, n_nodes)
    free = [False] * len(base.nodes) + [True] * n_nodes
    return fill(template, free, as_rng(seed), sampler)


def append_slots(base: Program, n_nodes: int) -> Program:
    """``base`` followed by ``n_nodes`` placeholder slots (copies of its last node, the
    output on the last) that :func:`fill` redraws."""
    n_in, n_base = base.n_inputs, len(base.nodes)
    ids = _unique_ids(base.ids[:n_in], list(base.ids[n_in:]) +
                      [f"n{n_base + k}" for k in range(n_nodes)])
    return base.derive(
        base.nodes + (base.nodes[-1],) * n_nodes,
        base.types + (base.types[-1],) * n_nodes,
        output=n_in + n_base + n_nodes - 1,
        ids=ids,
    )


def _unique_ids(input_names: Sequence[str], ids: list[str]) -> list[str]:
    taken = set(input_names)
    out = []
    for i in ids:
        while i in taken:
            i = i + "_"
        taken.add(i)
        out.append(i)
    return out


def resample_free_nodes(
    program: Program, seed: int | random.Random | None = None,
    sampler: ChoiceSampler | None = None,
) -> Program:
    """A brand-new random program of the same shape: frozen nodes stay, every other
    node is redrawn (keeping the type of any node a frozen node consumes)."""
    sampler = sampler or shared_sampler(program.opset)
    return fill(program, [not n.frozen for n in program.nodes], as_rng(seed), sampler)
