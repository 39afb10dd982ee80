"""Plots of a run (``evo plot STORE``): PNG files drawn with matplotlib's Agg backend.

* ``fitness.png``: every trial's fitness, the best so far and a rolling mean, against
  finished trials (evaluations and duplicates, in the order they finished);
* ``duplicates.png``: the duplicate rate (rolling and cumulative) and the hurdle-cut
  rate of evaluations, against finished trials;
* ``histogram.png``: the fitness distribution of evaluated programs.

Safe while a run is writing the store (it only reads).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.store import RunStore


class PlotError(EvoError):
    """The plots cannot be drawn or written."""


def _series(store: RunStore) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT id, status, fitness, result FROM trials WHERE fitness IS NOT NULL "
        "AND status IN ('done','failed','duplicate') ORDER BY finished_at, id").fetchall()
    out = []
    for r in rows:
        kind = r["status"]
        if kind == "done" and r["result"] and json.loads(r["result"]).get("status") == "hurdle":
            kind = "hurdle"
        out.append({"id": r["id"], "kind": kind, "fitness": float(r["fitness"])})
    return out


def _rolling(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot(store_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
         ) -> list[Path]:
    """Draw the run's plots into ``out_dir`` (default: ``<store>-plots`` beside the
    store) and return the PNG paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    store = RunStore.open(store_path, readonly=True)
    try:
        series = _series(store)
        name = store.config.get("run", {}).get("name", Path(store_path).stem)
    finally:
        store.close()
    if not series:
        raise PlotError(f"{store_path}: no finished trials to plot yet")
    out = Path(out_dir) if out_dir is not None else default_plot_dir(store_path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PlotError(f"{out}: cannot create the output directory ({err})") from None

    n = len(series)
    x = list(range(1, n + 1))
    fitness = [s["fitness"] for s in series]
    window = max(5, min(50, n // 10))
    best, top = [], float("-inf")
    for f in fitness:
        top = max(top, f)
        best.append(top)
    colors = {"done": "tab:blue", "hurdle": "tab:orange", "failed": "tab:red",
              "duplicate": "tab:gray"}
    cut = any(s["kind"] == "hurdle" for s in series)
    labels = {"done": "evaluated, passed the hurdle" if cut else "evaluated",
              "hurdle": "cut by the hurdle", "failed": "failed",
              "duplicate": "duplicate (cached fitness)"}
    paths = []

    def save(fig: Figure, filename: str) -> None:
        path = out / filename
        FigureCanvasAgg(fig)
        try:
            fig.savefig(path, dpi=110, metadata={"Software": None})
        except OSError as err:
            raise PlotError(f"{path}: cannot write ({err})") from None
        paths.append(path)

    # 1. fitness against finished trials
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for kind, color in colors.items():
        pts = [(i, s["fitness"]) for i, s in zip(x, series) if s["kind"] == kind]
        if pts:
            ax.scatter(*zip(*pts), s=16, alpha=0.6, color=color, label=labels[kind],
                       linewidths=0)
    ax.plot(x, best, color="black", lw=2, label="best so far", drawstyle="steps-post")
    ax.plot(x, _rolling(fitness, window), color="tab:green", lw=1.5,
            label=f"mean of the last {window}")
    ax.set(xlabel="finished trials (evaluations and duplicates)", ylabel="fitness",
           title=f"{name}: fitness")
    ax.set_ylim(bottom=min(0.0, min(fitness)) - 0.02 * max(1e-9, max(fitness)))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    save(fig, "fitness.png")

    # 2. duplicate and hurdle-cut rates
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    dup = [1.0 if s["kind"] == "duplicate" else 0.0 for s in series]
    cumulative, total = [], 0.0
    for i, d in enumerate(dup, 1):
        total += d
        cumulative.append(total / i)
    ax.plot(x, _rolling(dup, window), color="tab:gray", lw=1.5,
            label=f"duplicates, last {window} trials")
    ax.plot(x, cumulative, color="black", lw=2, label="duplicates, cumulative")
    evaluated = [(i, 1.0 if s["kind"] == "hurdle" else 0.0) for i, s in zip(x, series)
                 if s["kind"] != "duplicate"]
    if evaluated:
        ex, ey = zip(*evaluated)
        ax.plot(ex, _rolling(list(ey), window), color="tab:orange", lw=1.5,
                label=f"hurdle cut, last {window} evaluations")
    ax.set(xlabel="finished trials", ylabel="rate", ylim=(-0.02, 1.02),
           title=f"{name}: duplicate and hurdle-cut rates")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    save(fig, "duplicates.png")

    # 3. fitness histogram of evaluated programs
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    groups = [(k, [s["fitness"] for s in series if s["kind"] == k])
              for k in ("done", "hurdle", "failed")]
    groups = [(k, v) for k, v in groups if v]
    hi = max(max(fitness), 1e-9)
    ax.hist([v for _, v in groups], bins=30, range=(0.0, hi), stacked=True,
            color=[colors[k] for k, _ in groups],
            label=[f"{labels[k]} ({len(v)})" for k, v in groups])
    ax.set(xlabel="fitness", ylabel="evaluated trials", title=f"{name}: fitness histogram")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "histogram.png")
    return paths


def default_plot_dir(store_path: str | os.PathLike[str]) -> Path:
    path = Path(store_path)
    return path.with_name(path.stem + "-plots")
