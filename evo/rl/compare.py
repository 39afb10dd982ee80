"""Compare loss programs: train each on several environments and seeds, batched, and
write learning curves, a score table with confidence intervals and the raw returns.

::

    from evo.rl.compare import compare
    compare({"dqn": builtin("dqn"), "mine": load("mine.json")}, ["CartPole", "Acrobot"],
            seeds=10, out="cmp/")

Per environment all (program, seed) agents train in one population-trainer call
(the numpy trainer, one program at a time, where JAX is missing). The score of one
agent is the environment's normalized score of its last 50 episodes (as in a
search); the table gives the mean over seeds with a 95% bootstrap interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import envs as envlib
from evo.errors import ConfigError
from evo.rl.dqn import DQNConfig, train
from evo.rl.evaluator import resolve_trainer
from graphs.core.program import Program

CONFIDENCE = 0.95


def bootstrap_ci(values: Sequence[float], reps: int = 10_000, seed: int = 0
                 ) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the mean (the values themselves when
    there is only one)."""
    x = np.asarray(values, float)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    means = np.random.default_rng(seed).choice(x, (reps, len(x))).mean(axis=1)
    lo, hi = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(lo), float(hi)


def _train_env(programs: Mapping[str, Program], spec: envlib.EnvSpec, seeds: int,
               config: DQNConfig, budget: envlib.Budget, trainer: str) -> dict[str, list]:
    names = list(programs)
    if trainer == "population":
        from evo.rl.population import train_population

        runs = train_population([programs[n] for n in names for _ in range(seeds)], spec,
                                list(range(seeds)) * len(names), config, budget)
        return {n: runs[i * seeds:(i + 1) * seeds] for i, n in enumerate(names)}
    return {n: train(programs[n], spec, list(range(seeds)), config, budget) for n in names}


def compare(programs: Mapping[str, Program], env_ids: Sequence[str], seeds: int,
            out: str | Path, config: DQNConfig | None = None, steps: int | None = None,
            budgets: Mapping[str, envlib.Budget] | None = None,
            trainer: str = "auto") -> dict[str, Any]:
    """Train every program on every environment with ``seeds`` seeds; write
    ``scores.md``, ``scores.json``, ``returns.json`` and one ``<env>.png`` per
    environment into ``out``; return the scores."""
    if not programs:
        raise ConfigError("compare: give at least one program")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds = {seeds!r}: must be a positive integer")
    for program in programs.values():
        program.check()
    specs = [envlib.get(e) for e in env_ids]
    config = config or DQNConfig()
    trainer = resolve_trainer(trainer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scores: dict[str, Any] = {"seeds": seeds, "trainer": trainer, "envs": {}}
    raw: dict[str, Any] = {}
    for spec in specs:
        budget = envlib.Budget(steps=steps) if steps else (budgets or {}).get(spec.id,
                                                                              spec.budget)
        runs = _train_env(programs, spec, seeds, config, budget, trainer)
        table = {}
        for name, agent_runs in runs.items():
            per_seed = [spec.score(r.episode_returns, config.score_window) for r in agent_runs]
            lo, hi = bootstrap_ci(per_seed)
            table[name] = {"mean": float(np.mean(per_seed)), "ci95": [lo, hi],
                           "per_seed": per_seed, "status": [r.status for r in agent_runs]}
        scores["envs"][spec.id] = {"budget": {"episodes": budget.episodes,
                                              "steps": budget.steps}, "programs": table}
        if trainer == "population":  # how the losses ran (docs/population.md)
            from evo.rl.population import episode_steps, loss_mode_for

            scores["envs"][spec.id]["loss_mode"] = loss_mode_for(budget, "auto",
                                                                 episode_steps(spec))
        raw[spec.id] = {name: [list(map(float, r.episode_returns)) for r in agent_runs]
                        for name, agent_runs in runs.items()}
    write_report(scores, raw, out)
    return scores


def write_report(scores: Mapping[str, Any], raw: Mapping[str, Any], out: str | Path) -> None:
    """Write what :func:`compare` returns and trained into ``out``: ``scores.json``,
    ``returns.json`` (each environment's per-seed returns by program), ``scores.md``
    and one ``<env>.png`` of learning curves per environment."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for env_id, curves in raw.items():
        _plot(env_id, curves, out / f"{_safe(env_id)}.png")
    (out / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False) + "\n")
    (out / "returns.json").write_text(json.dumps(raw) + "\n")
    (out / "scores.md").write_text(markdown(scores))


def markdown(scores: Mapping[str, Any]) -> str:
    """The score table: one row per program, one column per environment."""
    env_ids = list(scores["envs"])
    names = list(next(iter(scores["envs"].values()))["programs"]) if env_ids else []
    lines = [f"Normalized score of the last 50 training episodes: mean over "
             f"{scores['seeds']} seeds [95% bootstrap interval] ({scores['trainer']} trainer).",
             "", "| program | " + " | ".join(env_ids) + " |",
             "|---|" + "---|" * len(env_ids)]
    for name in names:
        cells = []
        for env in env_ids:
            row = scores["envs"][env]["programs"][name]
            bad = sum(s != "ok" for s in row["status"])
            note = f" ({bad} failed)" if bad else ""
            cells.append(f"{row['mean']:.3f} [{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]{note}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _plot(env_id: str, curves: Mapping[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, per_seed in curves.items():
        n = min((len(c) for c in per_seed), default=0)
        if n == 0:
            continue
        arr = np.array([c[:n] for c in per_seed])
        k = max(1, min(10, n // 5))
        smooth = np.array([np.convolve(c, np.ones(k) / k, mode="valid") for c in arr])
        x = np.arange(smooth.shape[1]) + k
        mean, sd = smooth.mean(0), smooth.std(0)
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_title(f"{env_id}: mean ± sd over seeds")
    ax.set_xlabel("episode")
    ax.set_ylabel(f"return ({10}-episode mean)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
