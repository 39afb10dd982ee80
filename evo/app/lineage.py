"""The lineage of a program: its ancestors back to the seed, each mutation and its gain.

Every trial of a run store records its parent and the mutation that made it, so the
path from an initial (seed) program to the best one can be read back. Most steps of a
path are neutral (a mutation of a dead node, or a duplicate whose fitness was reused);
the steps that changed the fitness are the ones a researcher reads first.

* :func:`lineage`: the path, seed first, as :class:`Ancestor` records;
* :func:`lineage_text`: the table ``evo status`` prints;
* :func:`lineage_dot`: the path as a Graphviz DOT family tree;
* :func:`draw_lineage`: the same as a matplotlib figure (``evo plot`` writes ``lineage.png``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from evo.search.store import RunStore
from graphs.core.fileformat import loads
from graphs.core.render import describe

NEUTRAL = 1e-9  # a fitness change at most this large is no change
MAX_BOXES = 24  # programs drawn in lineage.png (the DOT file has every key step)


@dataclass(frozen=True)
class Ancestor:
    """One program on the path from a seed to a descendant."""

    trial: int
    generation: int
    status: str  # done, hurdle (cut by the hurdle), duplicate, failed, or not finished
    fitness: float | None
    gain: float | None  # fitness minus the parent's; None for the seed or a missing value
    mutation: str  # how it was made from its parent ("seed" for an initial program)
    formula: str

    @property
    def changed(self) -> bool:
        """True if this step changed the fitness (or is the seed)."""
        return self.gain is None or abs(self.gain) > NEUTRAL


def best_trial(store: RunStore) -> int | None:
    """The id of the best evaluated trial (the leaderboard's first row), or None."""
    from evo.app.export import unique_programs

    rows = unique_programs(store, 1)
    return int(rows[0]["trial_id"]) if rows else None


def lineage(store: RunStore, trial: int | None = None) -> list[Ancestor]:
    """The ancestors of ``trial`` (default: the best trial), seed first, ending with it.

    Raises :class:`ValueError` if the trial does not exist; returns ``[]`` for a run
    with no evaluated trial yet.
    """
    if trial is None:
        trial = best_trial(store)
        if trial is None:
            return []
    chain: list[Any] = []
    seen: set[int] = set()
    current: int | None = trial
    while current is not None and current not in seen:
        seen.add(current)
        row = store.db.execute(
            "SELECT id, parent, mutation, generation, status, fitness, result, program, "
            "formula FROM trials WHERE id=?", (current,)).fetchone()
        if row is None:
            if not chain:
                raise ValueError(f"trial {trial} is not in {store.path}")
            break  # a parent outside the store (should not happen): stop the path there
        chain.append(row)
        current = row["parent"]
    chain.reverse()
    out: list[Ancestor] = []
    previous: float | None = None
    for row in chain:
        fitness = None if row["fitness"] is None else float(row["fitness"])
        gain = None if (fitness is None or previous is None or not out) else fitness - previous
        out.append(Ancestor(
            trial=int(row["id"]), generation=int(row["generation"]), status=_status(row),
            fitness=fitness, gain=gain, mutation=row["mutation"] or "seed",
            formula=row["formula"] or describe(loads(row["program"], check=False))))
        previous = fitness
    return out


def _status(row: Any) -> str:
    status = row["status"]
    if status == "done" and row["result"]:
        try:
            if json.loads(row["result"]).get("status") == "hurdle":
                return "hurdle"
        except ValueError:
            pass
    return status


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def lineage_text(path: list[Ancestor], width: int = 110, full: bool = False) -> list[str]:
    """Lines for ``evo status``: the steps that changed the fitness, each with its
    mutation (cut to ``width``), gain and whole formula; runs of neutral steps are
    folded into one line unless ``full``."""
    if not path:
        return ["  (no evaluated programs yet)"]
    changed = sum(1 for a in path[1:] if a.changed)
    lines = [f"  {len(path) - 1} mutations from the seed (trial {path[0].trial}); "
             f"{changed} changed the fitness, {len(path) - 1 - changed} were neutral",
             f"  {'gen':>4}  {'trial':>6}  {'fitness':>8}  {'gain':>8}  mutation / formula"]
    shown = path if full else [a for a, _ in _key_steps(path)]
    folded = {a.trial: n for a, n in _key_steps(path)}
    for a in shown:
        if not full and folded.get(a.trial):
            lines.append(f"  {'':>4}  {'':>6}  {'':>8}  {'':>8}  ... {folded[a.trial]} neutral "
                         "steps (duplicates or mutations of unused nodes)")
        note = " (duplicate: fitness reused)" if a.status == "duplicate" else (
            " (cut by the hurdle)" if a.status == "hurdle" else "")
        lines.append(f"  {a.generation:>4}  {a.trial:>6}  {_fmt(a.fitness):>8}  "
                     f"{_fmt(a.gain, sign=True):>8}  {a.mutation[:width - 36]}{note}")
        if a.changed or a is path[-1]:
            lines.append(f"  {'':>4}  {'':>6}  {'':>8}  {'':>8}  = {a.formula}")
    return lines


def _key_steps(path: list[Ancestor]) -> list[tuple[Ancestor, int]]:
    """The seed, every step that changed the fitness and the last program, each with
    the number of neutral steps folded into the edge that leads to it."""
    out: list[tuple[Ancestor, int]] = []
    skipped = 0
    for i, a in enumerate(path):
        if i == 0 or a.changed or i == len(path) - 1:
            out.append((a, skipped))
            skipped = 0
        else:
            skipped += 1
    return out


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def lineage_dot(path: list[Ancestor], name: str = "lineage") -> str:
    """A Graphviz DOT family tree of the path's key steps (neutral steps folded)."""
    lines = [f'digraph "{_dot_escape(name)}" {{', "  rankdir=TB;",
             '  node [shape=box, fontname="Helvetica", fontsize=10];']
    steps = _key_steps(path)
    for a, _ in steps:
        label = (f"trial {a.trial} (generation {a.generation})\\nfitness {_fmt(a.fitness)}"
                 f"\\n{_dot_escape(a.formula)}")
        style = ', style=filled, fillcolor="#ffe9a8"' if a is path[-1] else ""
        lines.append(f'  t{a.trial} [label="{label}"{style}];')
    for (parent, _), (child, skipped) in zip(steps, steps[1:]):
        gain = _fmt(child.gain, sign=True)
        extra = f"\\n(+{skipped} neutral steps)" if skipped else ""
        lines.append(f'  t{parent.trial} -> t{child.trial} '
                     f'[label="{_dot_escape(child.mutation)}\\ngain {gain}{extra}", '
                     'fontsize=9];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_lineage(path: list[Ancestor], title: str) -> Any:
    """A matplotlib figure of the path's key steps: one box per program, top to bottom,
    each edge labelled with the mutation and the fitness gain."""
    from matplotlib.figure import Figure

    steps = _key_steps(path)
    if len(steps) > MAX_BOXES:  # a long line: the seed, then the most recent changes
        hidden = len(steps) - MAX_BOXES
        steps = steps[:1] + steps[-(MAX_BOXES - 1):]
        title += f" ({hidden} earlier fitness changes not drawn; lineage.dot has all)"
    n = len(steps)
    fig = Figure(figsize=(10, 1.0 + 1.25 * n), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, n - 0.5)
    ax.invert_yaxis()
    for i, (a, skipped) in enumerate(steps):
        last = a is path[-1]
        text = (f"trial {a.trial}, generation {a.generation}: fitness {_fmt(a.fitness)}\n"
                f"{a.formula}")
        ax.text(0.5, i, text, ha="center", va="center", fontsize=8, wrap=True,
                bbox={"boxstyle": "round,pad=0.4", "fc": "#ffe9a8" if last else "#eef3fb",
                      "ec": "black" if last else "#6c8ebf"})
        if i:
            ax.annotate("", xy=(0.5, i - 0.3), xytext=(0.5, i - 0.7),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})
            fold = f"  (after {skipped} neutral steps)" if skipped else ""
            ax.text(0.52, i - 0.5, f"{a.mutation}   gain {_fmt(a.gain, sign=True)}{fold}",
                    ha="left", va="center", fontsize=7, color="0.25")
    ax.set_title(title, fontsize=10)
    return fig


__all__ = ["Ancestor", "best_trial", "draw_lineage", "lineage", "lineage_dot", "lineage_text"]
