"""The architecture evaluator: NB201 tabular and user accuracy, latency/MAC costs, rewards."""

from __future__ import annotations

import math
import pickle
import sys

import pytest

from evo.errors import ConfigError
from evo.nas.evaluator import ArchEvaluator, load_function
from evo.nas.hardware import get_hardware
from evo.nas.latency import latency_ms, nb201_layers, simulate
from evo.nas.nb201_table import NB201Table
from evo.nas.rewards import make_reward
from evo.workers.base import Task, run_task
from graphs.arch import nb201
from graphs.arch.layers import count_macs, count_params
from graphs.arch.ops import ArchBuilder, to_layers
from graphs.core.fileformat import dumps

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
        "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
ALL3X3 = nb201.arch_string((3,) * 6)


def small_net(fc: int = 10) -> object:
    b = ArchBuilder(resolution=32)
    x = b.conv(b.image, k=3, c=16, s=2, act="relu", bn=True)
    x = b.dwconv(x, k=3, act="relu", bn=True)
    x = b.conv(x, k=1, c=32, bn=True)
    x = b.gap(x)
    b.fc(x, c=fc)
    return b.build()


def test_nb201_tabular_protocol() -> None:
    ev = ArchEvaluator("nb201", "cifar10", hardware="edgetpu")
    r = ev(nb201.to_program(ARCH, "cifar10"))
    table = NB201Table.load()
    assert r["status"] == "ok" and r["reason"] == ""
    # searches on the 12-epoch validation accuracy, reports the 200-epoch test accuracy
    # (CSV row 1: acc12ep_cifar10_val 82.8340, acc200ep_cifar10_test 93.6600)
    assert r["fitness"] == r["objectives"]["accuracy"] == 0.82834
    assert r["test_accuracy"] == 0.9366 == round(table.test200(ARCH, "cifar10") / 100, 6)
    assert r["arch"] == ARCH and r["nb201_index"] == 1  # row 1 of the CSV
    full = nb201.network_layers(ARCH)
    assert r["macs"] == count_macs(full) and r["params"] == count_params(full)
    hw = get_hardware("edgetpu")
    assert r["objectives"]["latency_ms"] == latency_ms(nb201_layers(ARCH), hw)
    assert r["fits_on_chip"] is True
    assert set(r["scores"]) == {"accuracy", "latency_ms", "macs_m", "params_m", "test_accuracy"}
    assert r["scores"]["test_accuracy"] == r["test_accuracy"]  # reported next to the search score


def test_published_macs_and_cell_level_programs() -> None:
    ev = ArchEvaluator("nb201", "cifar100", cost="macs", hardware=None)
    r = ev(nb201.to_program(ALL3X3, level="cell"))
    assert r["status"] == "ok" and "latency_ms" not in r["objectives"]
    assert abs(r["macs"] / 1e6 - 220.1) < 0.1  # the published NB201 maximum
    assert r["test_accuracy"] == round(NB201Table.load().test200(ALL3X3, "cifar100") / 100, 6)


def test_every_dataset_reads_its_own_columns() -> None:
    table = NB201Table.load()
    for dataset in ("cifar10", "cifar100", "imagenet16-120"):
        r = ArchEvaluator("nb201", dataset)(nb201.to_program(ARCH, dataset))
        assert r["objectives"]["accuracy"] == round(table.val12(ARCH, dataset) / 100, 6)


def test_rewards_use_the_chosen_cost() -> None:
    program = nb201.to_program(ARCH)
    base = ArchEvaluator("nb201", hardware="edgetpu")(program)
    acc, lat, macs = (base["objectives"][k] for k in ("accuracy", "latency_ms", "macs"))
    soft = ArchEvaluator("nb201", reward="mnasnet_soft", target=lat / 2)(program)
    assert soft["fitness"] == pytest.approx(acc * 2**-0.07)
    by_macs = ArchEvaluator("nb201", cost="macs", reward="mnasnet_hard", target=macs / 4)(program)
    assert by_macs["fitness"] == pytest.approx(acc / 4)
    reward = make_reward("abs", 0.5, beta=-0.2)
    assert ArchEvaluator("nb201", reward=reward)(program)["fitness"] == pytest.approx(
        reward(acc, lat))


def test_on_chip_bonus_follows_the_simulator() -> None:
    hw = get_hardware("edgetpu")
    calls = []

    def accuracy(program: object) -> float:
        calls.append(program)
        return 0.5

    ev = ArchEvaluator(accuracy, reward="accuracy", bonus=0.1)
    small = ev(small_net())
    big_program = small_net(fc=hw.sram_bytes // 32 + 1)  # 32 x fc weights: over the SRAM
    big = ev(big_program)
    from graphs.arch.ops import to_layers

    assert small["fits_on_chip"] == simulate(to_layers(small_net()), hw).params_fit_on_chip
    assert big["fits_on_chip"] == simulate(to_layers(big_program), hw).params_fit_on_chip
    assert (small["fits_on_chip"], big["fits_on_chip"]) == (True, False)
    assert small["fitness"] == pytest.approx(0.55) and big["fitness"] == 0.5
    assert len(calls) == 2


def test_user_function_by_reference(tmp_path, monkeypatch) -> None:
    module = tmp_path / "my_acc.py"
    module.write_text(
        "from graphs.arch.ops import summary\n"
        "def accuracy(program, budget_scale=1.0):\n"
        "    return min(1.0, summary(program)['params'] / 1e5) * budget_scale\n"
        "def broken(program):\n"
        "    raise RuntimeError('out of data')\n"
        "def percent(program):\n"
        "    return 93.5\n"
        "def nan(program):\n"
        "    return float('nan')\n"
        "def text(program):\n"
        "    return 'good'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from graphs.arch.ops import summary

    expected = min(1.0, summary(small_net())["params"] / 1e5)
    for ref in ("my_acc:accuracy", f"{module}:accuracy"):
        ev = ArchEvaluator(ref, cost="macs", hardware=None)
        r = ev(small_net())
        assert r["status"] == "ok" and r["fitness"] == pytest.approx(expected)
        assert "test_accuracy" not in r and "arch" not in r
        assert ev(small_net(), budget_scale=0.5)["fitness"] == pytest.approx(expected / 2)
        clone = pickle.loads(pickle.dumps(ev))  # what process workers receive
        assert clone._accuracy_fn is None and clone(small_net())["fitness"] == r["fitness"]
    outcomes = {name: ArchEvaluator(f"my_acc:{name}")(small_net())
                for name in ("broken", "percent", "nan", "text")}
    assert outcomes["broken"]["status"] == "error"
    assert "RuntimeError: out of data (my_acc.py:5)" in outcomes["broken"]["reason"]
    assert outcomes["percent"]["status"] == "error"
    assert "a percentage?" in outcomes["percent"]["reason"]
    assert outcomes["nan"]["status"] == "nan" and "NaN" in outcomes["nan"]["reason"]
    assert "'good', not a number" in outcomes["text"]["reason"]
    for r in outcomes.values():
        assert r["fitness"] == 0.0 and "objectives" not in r
        assert r["macs"] == count_macs(to_layers(small_net()))
    sys.modules.pop("my_acc", None)


def test_programs_the_source_cannot_score() -> None:
    r = ArchEvaluator("nb201")(small_net())
    assert r["status"] == "error" and "NB201 programs only" in r["reason"]
    r = ArchEvaluator("nb201", "imagenet16-120")(nb201.to_program(ARCH, "cifar10"))
    assert r["status"] == "error" and "dataset is imagenet16-120" in r["reason"]
    from graphs.rl_loss.library import builtin

    r = ArchEvaluator(lambda p: 0.5)(builtin("dqn"))  # a loss program
    assert r["status"] == "error" and "not a valid architecture" in r["reason"]


def test_through_a_worker_task() -> None:
    ev = ArchEvaluator("nb201", reward="mnasnet_soft", target=1.0)
    program = nb201.to_program(ALL3X3)
    out = run_task(ev, Task(7, dumps(program, compact=True)))
    assert out["status"] == "ok" and out["fitness"] == ev(program)["fitness"]
    assert out["test_accuracy"] == round(NB201Table.load().test200(ALL3X3) / 100, 6)


@pytest.mark.parametrize("kwargs, words", [
    ({"dataset": "cifar-10"}, "did you mean 'cifar10'"),
    ({"cost": "flops"}, "cost"),
    ({"reward": "mnas"}, "needs a target"),
    ({"hardware": None}, "needs a hardware"),
    ({"hardware": None, "cost": "macs", "reward": "abs", "target": 1e8, "bonus": 0.1},
     "bonus"),
    ({"hardware": "tpu9"}, "unknown hardware"),
    ({"accuracy": "nb2O1"}, "'package.module:function'"),
    ({"accuracy": "no_such_module_xyz:acc"}, "importing no_such_module_xyz failed"),
    ({"accuracy": "math:sqrtt"}, "did you mean 'sqrt'"),
    ({"accuracy": "math:pi"}, "not a function"),
    ({"accuracy": "/nowhere/acc.py:f"}, "no file"),
    ({"accuracy": 3}, "give 'nb201'"),
])
def test_bad_settings(kwargs: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        ArchEvaluator(**kwargs)


def test_from_config() -> None:
    ev = ArchEvaluator.from_config({"accuracy": "nb201", "dataset": "cifar100",
                                    "reward": "mnasnet_soft", "target": 0.8, "alpha": -0.1,
                                    "bonus": 0.05, "hardware": "mobile-cpu"})
    assert (ev.dataset, ev.reward.alpha, ev.reward.bonus, ev.hardware.name) == (
        "cifar100", -0.1, 0.05, "mobile-cpu")
    assert "reward=(Q*(C/0.8)^(-0.1 if C<=0.8 else -0.07))*1.05 if on chip" in repr(ev)
    with pytest.raises(ConfigError, match="did you mean 'target'"):
        ArchEvaluator.from_config({"targett": 1.0})
    assert math.isclose(load_function("math:sqrt")(4.0), 2.0)


def test_pareto_search_on_simulated_latency_beats_random_sampling() -> None:
    """Multi-objective mode end to end: NB201Space, this evaluator, ParetoEvolution."""
    import random

    from evo.algorithms.pareto import ParetoEvolution, hypervolume

    space = nb201.NB201Space("cifar10")
    ev = ArchEvaluator("nb201", "cifar10", hardware="edgetpu")
    ref = (0.8, 1.5)  # 80% validation accuracy, 1.5 ms on the edgetpu preset
    for seed in (0, 1):
        algo = ParetoEvolution(space, population_size=30, seed=seed)
        evolved, sampled = [], []
        rng = random.Random(100 + seed)
        for tid in range(300):
            cand = algo.propose()
            r = ev(cand.program)
            algo.observe(tid, cand, r["fitness"], r)
            evolved.append((r["objectives"]["accuracy"], r["objectives"]["latency_ms"]))
            r = ev(space.sample(rng))
            sampled.append((r["objectives"]["accuracy"], r["objectives"]["latency_ms"]))
        assert hypervolume(*zip(*evolved), ref) > 1.05 * hypervolume(*zip(*sampled), ref)
        # the population's front: faster members are less accurate (duplicates aside)
        front = sorted({(cost, acc) for _, acc, cost in algo.front()})
        assert len(front) > 3
        assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(front, front[1:]))
