"""Calibrate the latency simulator's presets on measured NB201 latencies; report fidelity.

For each preset (``edgetpu`` on the Edge TPU set, 870 archs; ``mobile-cpu`` on the
Pixel 3 set, 7,812 archs) a seeded random half of the archs is used to fit only a
handful of hardware constants (Nelder-Mead on their logarithms, minimizing the mean
squared log error of the simulated latency); Kendall's tau-b is then measured on the
other half for the simulator, the FLOPs (MAC) count and the parameter count.

Writes ``results/latency/fidelity.json`` (taus, the split, the fitted constants) and
puts the fitted constants into ``evo/nas/hw_presets/<preset>.toml``.

    OPENBLAS_NUM_THREADS=1 python bench/calibrate_latency.py [--no-write-presets]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fidelity import kendall_tau  # noqa: E402

from evo.nas import hardware  # noqa: E402
from evo.nas.latency import io_us, latency_ms, layer_cost, nb201_layers  # noqa: E402
from graphs.arch import nb201  # noqa: E402
from graphs.arch.layers import count_macs, count_params  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "latency"
SEED = 2024
SETS = {
    "edgetpu": ("nb201_edgetpu_calibration.csv",
                ["clock_mhz", "layer_overhead_us", "vector_ops_per_cycle",
                 "invoke_overhead_us"]),
    "mobile-cpu": ("nb201_pixel3_calibration.csv",
                   ["ops.conv.efficiency",
                    "ops.avgpool.efficiency", "vector_ops_per_cycle", "layer_overhead_us",
                    "invoke_overhead_us"]),
}


def load_set(filename: str) -> tuple[list[int], list[str], np.ndarray]:
    path = DATA / filename
    if not path.exists():
        sys.exit(f"calibrate_latency: {path} is missing (the measured latencies live in "
                 "../shared/data/latency/)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return ([int(r["nb201_index"]) for r in rows], [r["arch_str"] for r in rows],
            np.array([float(r["latency_ms"]) for r in rows]))


def split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random half (fit) and the rest (held out)."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def apply(hw: hardware.Hardware, names: list[str], values: np.ndarray) -> hardware.Hardware:
    """``hw`` with the named constants set (efficiencies capped at 1)."""
    changes: dict = {}
    ops = dict(hw.ops)
    for name, value in zip(names, values):
        if name.startswith("ops."):
            _, cls, _ = name.split(".")
            ops[cls] = hardware.OpMapping(ops[cls].unit, float(min(value, 1.0)))
        else:
            changes[name] = float(value)
    changes["ops"] = tuple(sorted(ops.items()))
    return hw.replace(**changes)


def get(hw: hardware.Hardware, name: str) -> float:
    if name.startswith("ops."):
        return hw.op_map[name.split(".")[1]].efficiency
    return float(getattr(hw, name))


class Design:
    """Archs as counts of unique layers (on chip / streamed): latency = A_on c_on + A_off c_off
    + io, exactly what :func:`evo.nas.latency.latency_ms` sums, but fast to re-cost."""

    def __init__(self, archs: list[str], hw: hardware.Hardware) -> None:
        self.layers = [nb201_layers(a) for a in archs]
        index: dict = {}
        rows_on, rows_off = [], []
        for layers in self.layers:
            on: dict[int, int] = {}
            off: dict[int, int] = {}
            used = 0
            for layer in layers:
                u = index.setdefault(layer, len(index))
                used += math.ceil(layer.weights * hw.bytes_per_element)
                target = on if used <= hw.sram_bytes else off
                target[u] = target.get(u, 0) + 1
            rows_on.append(on)
            rows_off.append(off)
        self.unique = list(index)
        self.a_on = np.zeros((len(archs), len(index)))
        self.a_off = np.zeros((len(archs), len(index)))
        for i, (on, off) in enumerate(zip(rows_on, rows_off)):
            for u, k in on.items():
                self.a_on[i, u] = k
            for u, k in off.items():
                self.a_off[i, u] = k

    def predict(self, hw: hardware.Hardware) -> np.ndarray:
        c_on = np.array([layer_cost(u, hw, True).us for u in self.unique])
        c_off = np.array([layer_cost(u, hw, False).us for u in self.unique])
        io = np.array([io_us(layers, hw) for layers in self.layers])
        return (self.a_on @ c_on + self.a_off @ c_off + io) / 1000.0


def nelder_mead(f, x0: np.ndarray, step: float = 0.5, iters: int = 600,
                tol: float = 1e-9) -> tuple[np.ndarray, float]:
    """Minimize ``f`` from ``x0`` (a plain Nelder-Mead simplex)."""
    n = len(x0)
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if abs(values[-1] - values[0]) < tol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        if fr < values[0]:
            xe = centroid + 2 * (centroid - simplex[-1])
            fe = f(xe)
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(xc)
            if fc < values[-1]:
                simplex[-1], values[-1] = xc, fc
            else:
                simplex = [simplex[0]] + [simplex[0] + 0.5 * (x - simplex[0])
                                          for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    best = int(np.argmin(values))
    return simplex[best], values[best]


def calibrate(name: str) -> dict:
    filename, names = SETS[name]
    indices, archs, measured = load_set(filename)
    fit, held = split(len(archs), SEED)
    base = hardware.preset(name)
    design = Design([archs[i] for i in fit], base)
    y = np.log(measured[fit])

    def loss(logx: np.ndarray) -> float:
        pred = design.predict(apply(base, names, np.exp(logx)))
        return float(np.mean((np.log(pred) - y) ** 2))

    x0 = np.log([get(base, k) for k in names])
    t0 = time.perf_counter()
    best, value = nelder_mead(loss, x0)
    for _ in range(2):  # restarts around the optimum
        best, value = nelder_mead(loss, best, step=0.2)
    fitted = apply(base, names, np.exp(best))
    seconds = time.perf_counter() - t0

    sim = np.array([latency_ms(nb201_layers(a), fitted) for a in archs])
    flops = np.array([count_macs(nb201.network_layers(a)) for a in archs], float)
    flops_live = np.array([sum(layer.macs for layer in nb201_layers(a)) for a in archs], float)
    params = np.array([count_params(nb201.network_layers(a)) for a in archs], float)
    check = design.predict(fitted)
    assert np.allclose(check, sim[fit]), "the fast design and the simulator disagree"

    def taus(idx: np.ndarray) -> dict:
        m = measured[idx]
        return {"simulator": kendall_tau(sim[idx], m), "flops": kendall_tau(flops[idx], m),
                "flops_live_ops": kendall_tau(flops_live[idx], m),
                "params": kendall_tau(params[idx], m)}

    out = {
        "measured": filename,
        "n": len(archs), "n_fit": len(fit), "n_held_out": len(held),
        "tau_held_out": taus(held),
        "tau_fit": taus(fit),
        "fit_loss_msle": value,
        "mape_held_out": float(np.mean(np.abs(sim[held] / measured[held] - 1))),
        "median_ratio_held_out": float(np.median(sim[held] / measured[held])),
        "fitted": {k: get(fitted, k) for k in names},
        "initial": {k: get(base, k) for k in names},
        "fit_seconds": round(seconds, 1),
        "split": {"seed": SEED, "fit_nb201_index": [indices[i] for i in fit],
                  "held_out_nb201_index": [indices[i] for i in held]},
    }
    print(f"{name}: held-out tau simulator {out['tau_held_out']['simulator']:.3f}, flops "
          f"{out['tau_held_out']['flops']:.3f}, params {out['tau_held_out']['params']:.3f}; "
          f"fitted {out['fitted']} ({seconds:.0f}s)")
    return out


def write_preset(name: str, fitted: dict[str, float]) -> None:
    """Replace the fitted constants' values in the preset TOML, keeping its comments."""
    path = ROOT / "evo" / "hw_presets" / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in fitted.items():
        shown = f"{value:.6g}"
        if "." not in shown and "e" not in shown:
            shown += ".0"
        if key.startswith("ops."):
            cls = key.split(".")[1]
            pattern = rf"(?m)^({cls} = \{{[^}}]*efficiency = )[0-9.eE+-]+"
        else:
            pattern = rf"(?m)^({key} = )[0-9.eE+-]+"
        text, n = re.subn(pattern, lambda m, s=shown: m.group(1) + s, text)
        if n != 1:
            raise SystemExit(f"{path}: cannot find the line of {key}")
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write-presets", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "results" / "latency" / "fidelity.json"))
    parser.add_argument("presets", nargs="*", default=list(SETS))
    args = parser.parse_args()
    results = {name: calibrate(name) for name in args.presets}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else {}
    old.update(results)
    old["command"] = "OPENBLAS_NUM_THREADS=1 python bench/calibrate_latency.py"
    out.write_text(json.dumps(old, indent=1) + "\n")
    if not args.no_write_presets:
        for name, res in results.items():
            write_preset(name, res["fitted"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
