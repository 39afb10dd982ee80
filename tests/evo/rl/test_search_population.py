"""`evo run` with the population trainer: a generation trains in one batched call,
and every trial is still recorded on its own."""

from __future__ import annotations

import json
import re

from evo.app import runner
from evo.app.config import from_dict
from evo.app.export import export
from evo.search.store import RunStore


def test_a_search_trains_its_candidates_in_batches_with_the_population_trainer(tmp_path):
    config = from_dict({
        "run": {"name": "pop", "trials": 12, "seed": 0},
        "search": {"algorithm": "regularized_evolution", "population_size": 6,
                   "tournament_size": 3, "seed_program": "dqn", "extra_nodes": 3},
        "evaluator": {"envs": ["CartPole"], "steps": 1500, "trainer": "population",
                      "hurdle": {"env": "CartPole", "threshold": 0.05},
                      "agent": {"hidden": [16, 16], "learning_rate": 0.001,
                                "learning_starts": 200}},
        "workers": {"workers": 1, "batch_size": 6},
    })
    store_path = tmp_path / "run.db"
    progress = runner.run(config, store_path, progress=False)
    assert progress.trials == 12
    store = RunStore.open(store_path)
    try:
        rows = store.db.execute("SELECT status, result, worker FROM trials WHERE status IN "
                                "('done', 'failed')").fetchall()
        assert rows
        results = [json.loads(r["result"]) for r in rows]
        assert all(r["trainer"].startswith("population trainer (JAX") for r in results)
        assert all(r["status"] in ("ok", "hurdle") for r in results), results
        # DQN's variants learn something in 1,500 steps: not every score is the same
        scores = {round(r["envs"][0]["score"], 6) for r in results}
        assert len(scores) > 1
        assert store.trainers()
        # each evaluation carries its share of the batch's compile time, and the run sums
        # them: the worker process traced the trainer at least once, within the run's time
        compiled, evaluating = store.compile_time()
        assert 0 < compiled < evaluating
        assert all(0 <= r["compile_seconds"] <= r["seconds"] for r in results)
    finally:
        store.close()
    text = runner.status(store_path)
    assert "trainer:    population trainer (JAX" in text
    assert "was tracing and compiling" in text
    export(store_path, tmp_path / "dataset")
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert re.search(r"\| tracing and compiling \(JAX\) \| [0-9.]+ of [0-9.]+ minutes", card)
