"""The lineage of the best program: ancestors back to the seed, mutations and gains."""

from __future__ import annotations

import random

import pytest

from evo.app.config import load_config
from evo.app.lineage import best_trial, lineage, lineage_dot, lineage_text
from evo.app.runner import status
from evo.search.store import RunStore
from graphs.core.equivalence import FEC
from graphs.rl_loss.generation import seeded_program


def family_run(path):
    """Two seeds; a line of 6 descendants of seed 1 (one a duplicate, one cut by the
    hurdle) and an unrelated child of seed 2. Returns the store path and the ids."""
    store = RunStore.create(path, load_config("[run]\nname = 'family'").to_dict())
    fec, rng = FEC(), random.Random(0)

    def add(program, parent, mutation, gen, fitness, status="ok", duplicate_of=None):
        fp = fec(program) if duplicate_of is None else store.db.execute(
            "SELECT fingerprint FROM trials WHERE id=?", (duplicate_of,)).fetchone()[0]
        if duplicate_of is not None:
            return store.add_trial(program, fp, "", parent, mutation, gen, {},
                                   duplicate_of=duplicate_of, fitness=fitness)
        tid = store.add_trial(program, fp + str(gen) + str(parent), "", parent, mutation,
                              gen, {})
        store.start(tid, "local-0")
        store.finish(tid, {"status": status, "fitness": fitness,
                           "scores": {"CartPole": fitness}}, {}, "local-0")
        return tid

    p0 = seeded_program("dqn", 3, rng)
    s1 = add(p0, None, None, 0, 0.2)
    s2 = add(seeded_program("dqn", 3, rng), None, None, 0, 0.1)
    ids, parent, program = [s1], s1, p0
    for gen, fitness in enumerate([0.2, 0.5, 0.1, 0.5, 0.9, 1.4], 1):
        program = seeded_program("dqn", 3, rng)  # stands in for a mutation
        if gen == 1:  # a duplicate of its parent: same fitness, reused
            tid = add(program, parent, "point n9: dup", gen, fitness, duplicate_of=s1)
        else:
            tid = add(program, parent, f"point n{gen}: step {gen}", gen, fitness,
                      status="hurdle" if gen == 3 else "ok")
        ids.append(tid)
        parent = tid
    add(seeded_program("dqn", 3, rng), s2, "point n1: other", 1, 0.3)
    store.close()
    return path, ids


def test_lineage_walks_back_to_the_seed_with_mutations_and_gains(tmp_path):
    path, ids = family_run(tmp_path / "run.db")
    store = RunStore.open(path, readonly=True)
    try:
        assert best_trial(store) == ids[-1]
        line = lineage(store)
        assert [a.trial for a in line] == ids
        assert line[0].mutation == "seed" and line[0].gain is None
        assert [a.status for a in line][1:4] == ["duplicate", "done", "hurdle"]
        gains = [round(a.gain, 6) for a in line[1:]]
        assert gains == [0.0, 0.3, -0.4, 0.4, 0.4, 0.5]
        assert [a.changed for a in line] == [True, False, True, True, True, True, True]
        assert all(a.formula for a in line)
        assert [a.trial for a in lineage(store, ids[3])] == ids[:4]
        with pytest.raises(ValueError, match="trial 999 is not in"):
            lineage(store, 999)
    finally:
        store.close()
    text = "\n".join(lineage_text(line))
    assert "6 mutations from the seed" in text and "5 changed the fitness, 1 were neutral" in text
    assert "... 1 neutral steps" in text and "point n6: step 6" in text
    dot = lineage_dot(line, "family")
    assert dot.count(" -> ") == 5  # the neutral duplicate is folded into the next edge
    assert "(+1 neutral steps)" in dot


def test_status_shows_the_lineage_of_the_best(tmp_path):
    path, ids = family_run(tmp_path / "run.db")
    text = status(path)
    assert f"lineage of the best program (trial {ids[-1]}), from its seed:" in text
    assert "point n6: step 6" in text


def test_lineage_of_an_empty_run_is_empty(tmp_path):
    store = RunStore.create(tmp_path / "e.db", {"run": {"name": "e"}})
    try:
        assert lineage(store) == []
        assert lineage_text([]) == ["  (no evaluated programs yet)"]
    finally:
        store.close()


def test_a_long_line_draws_the_seed_and_the_latest_changes():
    from evo.app.lineage import MAX_BOXES, Ancestor, draw_lineage

    path = [Ancestor(i, i, "done", float(i), None if i == 0 else 1.0, f"step {i}", f"f{i}")
            for i in range(40)]
    fig = draw_lineage(path, "long")
    texts = [t.get_text() for t in fig.axes[0].texts]
    boxes = [t for t in texts if t.startswith("trial ")]
    assert len(boxes) == MAX_BOXES and boxes[0].startswith("trial 0,")
    assert boxes[-1].startswith("trial 39,")
    assert "16 earlier fitness changes not drawn" in fig.axes[0].get_title()
