"""Plots of a run (``evo plot STORE``): PNG files drawn with matplotlib's Agg backend.

Each answers one question a researcher asks of a run:

* ``fitness.png``: *is the search still improving, and where is the best program?*
  The best fitness so far, every evaluated candidate (those cut by the hurdle drawn
  small and faint), a rolling median of the candidates past the hurdle, the best
  program as a star, and the path of its ancestors through the run;
* ``duplicates.png``: *what did the FEC and the hurdle save?* The duplicate rate
  (rolling and cumulative) and the hurdle-cut rate of evaluations;
* ``histogram.png``: *what did the hurdle cut?* The distribution of hurdle scores
  against the threshold (for a run without a hurdle: of fitness), on a log scale;
* ``lineage.png`` and ``lineage.dot``: *where did the best program come from?* Its
  family line from the seed, each mutation that changed the fitness with its gain
  (:mod:`evo.app.lineage`).

Safe while a run is writing the store (it only reads).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from evo.app.lineage import best_trial, draw_lineage, lineage, lineage_dot
from evo.errors import EvoError
from evo.search.store import RunStore

COLORS = {"done": "tab:blue", "hurdle": "tab:orange", "failed": "tab:red",
          "duplicate": "tab:gray"}


class PlotError(EvoError):
    """The plots cannot be drawn or written."""


def _series(store: RunStore) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT id, status, fitness, result, hurdle FROM trials WHERE fitness IS NOT NULL "
        "AND status IN ('done','failed','duplicate') ORDER BY finished_at, id").fetchall()
    out = []
    for r in rows:
        kind = r["status"]
        if kind == "done" and r["result"] and json.loads(r["result"]).get("status") == "hurdle":
            kind = "hurdle"
        hurdle = json.loads(r["hurdle"]) if r["hurdle"] else None
        out.append({"id": r["id"], "kind": kind, "fitness": float(r["fitness"]),
                    "hurdle": hurdle if isinstance(hurdle, dict) else None})
    return out


def _rolling(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _rolling_median(values: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = sorted(values[max(0, i - window + 1):i + 1])
        m = len(chunk)
        out.append((chunk[(m - 1) // 2] + chunk[m // 2]) / 2)
    return out


def plot(store_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
         ) -> list[Path]:
    """Draw the run's plots into ``out_dir`` (default: ``<store>-plots`` beside the
    store) and return the paths (PNGs, then the lineage's DOT file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    store = RunStore.open(store_path, readonly=True)
    try:
        series = _series(store)
        name = store.config.get("run", {}).get("name", Path(store_path).stem)
        best_id = best_trial(store)
        path = lineage(store, best_id) if best_id is not None else []
    finally:
        store.close()
    if not series:
        raise PlotError(f"{store_path}: no finished trials to plot yet")
    out = Path(out_dir) if out_dir is not None else default_plot_dir(store_path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PlotError(f"{out}: cannot create the output directory ({err})") from None

    paths: list[Path] = []

    def save(fig: Figure, filename: str) -> None:
        target = out / filename
        FigureCanvasAgg(fig)
        try:
            fig.savefig(target, dpi=110, metadata={"Software": None})
        except OSError as err:
            raise PlotError(f"{target}: cannot write ({err})") from None
        paths.append(target)

    save(_fitness_figure(Figure, series, path, name), "fitness.png")
    save(_rates_figure(Figure, series, name), "duplicates.png")
    save(_histogram_figure(Figure, series, name), "histogram.png")
    if path:
        save(draw_lineage(path, f"{name}: the family line of the best program "
                                f"(trial {path[-1].trial})"), "lineage.png")
        dot = out / "lineage.dot"
        try:
            dot.write_text(lineage_dot(path, name), encoding="utf-8")
        except OSError as err:
            raise PlotError(f"{dot}: cannot write ({err})") from None
        paths.append(dot)
    return paths


def _legend_below(ax: Any, ncol: int = 3) -> None:
    """A legend under the axes, where it cannot cover a line."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=ncol, fontsize=8,
              frameon=False)


def _fitness_figure(Figure: Any, series: list[dict[str, Any]], path: list[Any],
                    name: str) -> Any:
    n = len(series)
    x = list(range(1, n + 1))
    position = {s["id"]: i for i, s in zip(x, series)}
    best, top = [], float("-inf")
    for s in series:
        top = max(top, s["fitness"])
        best.append(top)
    fig = Figure(figsize=(9, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, best, color="black", lw=1.5, label="best so far", drawstyle="steps-post",
            zorder=1)
    counts = {k: sum(1 for s in series if s["kind"] == k) for k in COLORS}
    style = {"done": (18, 0.7, "passed the hurdle" if counts["hurdle"] else "evaluated"),
             "hurdle": (6, 0.35, "cut by the hurdle"), "failed": (14, 0.8, "failed")}
    for kind, (size, alpha, label) in style.items():
        pts = [(i, s["fitness"]) for i, s in zip(x, series) if s["kind"] == kind]
        if pts:
            ax.scatter(*zip(*pts), s=size, alpha=alpha, color=COLORS[kind], linewidths=0,
                       label=f"{label} ({len(pts)})", zorder=2)
    passed = [(i, s["fitness"]) for i, s in zip(x, series) if s["kind"] == "done"]
    if len(passed) >= 5:
        window = max(5, min(50, len(passed) // 10))
        px = [i for i, _ in passed]
        ax.plot(px, _rolling_median([f for _, f in passed], window), color="tab:green",
                lw=1.5, label=f"median of the last {window} that passed", zorder=3)
    line = [(position[a.trial], a.fitness) for a in path
            if a.trial in position and a.fitness is not None]
    if len(line) > 1:
        ax.plot(*zip(*line), color="tab:purple", lw=1, ls="--", marker=".", ms=5,
                label="ancestors of the best", zorder=4)
    if path and path[-1].trial in position:
        bx, by = position[path[-1].trial], path[-1].fitness
        ax.scatter([bx], [by], marker="*", s=260, color="gold", edgecolors="black",
                   linewidths=0.8, zorder=6, label=f"best: trial {path[-1].trial}")
        ax.annotate(f"best {by:.3f}\n(trial {path[-1].trial})", (bx, by),
                    xytext=(-12, -26), textcoords="offset points", ha="right", fontsize=8,
                    zorder=6)
    if counts["duplicate"]:
        ax.plot([], [], " ", label=f"duplicates not drawn ({counts['duplicate']}, "
                                   "fitness reused)")
    ax.set(xlabel="finished trials (evaluations and duplicates, in finishing order)",
           ylabel="fitness", title=f"{name}: is the search still improving?")
    hi = max(s["fitness"] for s in series)
    lo = min(0.0, min(s["fitness"] for s in series))
    ax.set_ylim(lo - 0.04 * max(1e-9, hi - lo), hi + 0.12 * max(1e-9, hi - lo))
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return fig


def _rates_figure(Figure: Any, series: list[dict[str, Any]], name: str) -> Any:
    n = len(series)
    x = list(range(1, n + 1))
    window = max(5, min(50, n // 10))
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    dup = [1.0 if s["kind"] == "duplicate" else 0.0 for s in series]
    cumulative, total = [], 0.0
    for i, d in enumerate(dup, 1):
        total += d
        cumulative.append(total / i)
    ax.plot(x, _rolling(dup, window), color="tab:gray", lw=1.2,
            label=f"duplicates, last {window} trials")
    ax.plot(x, cumulative, color="black", lw=2,
            label=f"duplicates, cumulative ({cumulative[-1]:.0%} at the end)")
    evaluated = [(i, 1.0 if s["kind"] == "hurdle" else 0.0) for i, s in zip(x, series)
                 if s["kind"] != "duplicate"]
    if evaluated and any(v for _, v in evaluated):
        ex, ey = zip(*evaluated)
        share = sum(ey) / len(ey)
        ax.plot(ex, _rolling(list(ey), window), color="tab:orange", lw=1.5,
                label=f"cut by the hurdle, last {window} evaluations ({share:.0%} overall)")
    ax.set(xlabel="finished trials", ylabel="rate", ylim=(-0.02, 1.02),
           title=f"{name}: what did the FEC and the hurdle save?")
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    _legend_below(ax, ncol=2)
    return fig


def _histogram_figure(Figure: Any, series: list[dict[str, Any]], name: str) -> Any:
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    hurdled = [s for s in series if s["kind"] in ("done", "hurdle") and s["hurdle"]
               and isinstance(s["hurdle"].get("score"), (int, float))]
    if hurdled:
        info = hurdled[0]["hurdle"]
        threshold = float(info.get("threshold", 0.0))
        groups = [("done", "passed", [s["hurdle"]["score"] for s in hurdled
                                      if s["kind"] == "done"]),
                  ("hurdle", "cut", [s["hurdle"]["score"] for s in hurdled
                                     if s["kind"] == "hurdle"])]
        groups = [g for g in groups if g[2]]
        hi = max(1.0, max(v for g in groups for v in g[2]))
        ax.hist([g[2] for g in groups], bins=40, range=(0.0, hi), stacked=True,
                color=[COLORS[g[0]] for g in groups],
                label=[f"{g[1]} ({len(g[2])})" for g in groups])
        ax.axvline(threshold, color="black", ls="--", lw=1.2,
                   label=f"threshold {threshold:g}")
        ax.set(xlabel=f"{info.get('env', 'hurdle')} score (normalized) of evaluated "
                      "candidates", ylabel="candidates (log scale)",
               title=f"{name}: what did the hurdle cut?")
    else:
        values = [s["fitness"] for s in series if s["kind"] in ("done", "hurdle", "failed")]
        hi = max(max(values), 1e-9) if values else 1.0
        ax.hist(values, bins=40, range=(min(0.0, min(values, default=0.0)), hi),
                color=COLORS["done"], label=f"evaluated ({len(values)})")
        ax.set(xlabel="fitness", ylabel="evaluated candidates (log scale)",
               title=f"{name}: fitness of evaluated candidates (no hurdle)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    return fig


def default_plot_dir(store_path: str | os.PathLike[str]) -> Path:
    path = Path(store_path)
    return path.with_name(path.stem + "-plots")
