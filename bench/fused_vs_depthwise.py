"""Fused-IBN vs depthwise-IBN block latency on each preset, by network stage.

A depthwise-IBN block is 1x1 expand + KxK depthwise + 1x1 project; a fused-IBN block
replaces the expand and depthwise by one KxK regular conv. Both are built as Layer
lists at MobileNetV2-like stage shapes; the plot shows the simulated latency of
both (and their MAC ratio) per stage, for ``edgetpu`` and ``mobile-cpu``.

    python bench/fused_vs_depthwise.py    # writes results/latency/fused_vs_depthwise.{png,json}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evo.nas.hardware import PRESETS, get_hardware  # noqa: E402
from evo.nas.latency import latency_ms  # noqa: E402
from graphs.arch.layers import Layer, count_macs  # noqa: E402

# (resolution, input channels, output channels): MobileNetV2-like stage shapes.
STAGES = [(112, 16, 24), (56, 24, 32), (28, 32, 64), (14, 64, 96), (14, 96, 160),
          (7, 160, 320)]


def depthwise_ibn(hw: int, cin: int, cout: int, k: int = 3, expand: int = 6) -> list[Layer]:
    mid = cin * expand
    return [Layer("conv", hw, hw, cin, mid, k=1, act="relu6", bn=True, name="expand"),
            Layer("conv", hw, hw, mid, mid, k=k, groups=mid, act="relu6", bn=True,
                  name="depthwise"),
            Layer("conv", hw, hw, mid, cout, k=1, bn=True, name="project")]


def fused_ibn(hw: int, cin: int, cout: int, k: int = 3, expand: int = 6) -> list[Layer]:
    mid = cin * expand
    return [Layer("conv", hw, hw, cin, mid, k=k, act="relu6", bn=True, name="fused"),
            Layer("conv", hw, hw, mid, cout, k=1, bn=True, name="project")]


def block_latency_ms(layers: list[Layer], hardware) -> float:
    """Latency of a block alone (the per-inference invocation cost removed)."""
    return latency_ms(layers, hardware) - latency_ms([], hardware)


def table() -> dict:
    out: dict = {}
    for name in PRESETS:
        hw = get_hardware(name)
        rows = []
        for res, cin, cout in STAGES:
            dw, fu = depthwise_ibn(res, cin, cout), fused_ibn(res, cin, cout)
            rows.append({"resolution": res, "cin": cin, "cout": cout,
                         "dw_ms": block_latency_ms(dw, hw), "fused_ms": block_latency_ms(fu, hw),
                         "dw_macs": count_macs(dw), "fused_macs": count_macs(fu)})
        out[name] = rows
    return out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table()
    outdir = ROOT / "results" / "latency"
    outdir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(data), figsize=(6 * len(data), 4.2))
    for ax, (name, rows) in zip(axes, data.items()):
        x = range(len(rows))
        ax.plot(x, [r["dw_ms"] for r in rows], "o-", label="depthwise-IBN (1x1, dw 3x3, 1x1)")
        ax.plot(x, [r["fused_ms"] for r in rows], "s-", label="fused-IBN (3x3, 1x1)")
        ax.set_xticks(list(x), [f"{r['resolution']}x{r['resolution']}\n{r['cin']}->{r['cout']}"
                                f"\nMACs x{r['fused_macs'] / r['dw_macs']:.1f}" for r in rows],
                      fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("block latency (ms)")
        ax.set_title(f"{name}: expansion 6, K=3")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Simulated block latency by stage (fused MACs / depthwise MACs below)")
    fig.tight_layout()
    fig.savefig(outdir / "fused_vs_depthwise.png", dpi=120)
    (outdir / "fused_vs_depthwise.json").write_text(json.dumps(
        {"command": "python bench/fused_vs_depthwise.py", "stages": data}, indent=1) + "\n")
    for name, rows in data.items():
        for r in rows:
            print(f"{name:<11} {r['resolution']:>3}x{r['resolution']:<3} {r['cin']:>3}->"
                  f"{r['cout']:<3} dw {r['dw_ms']:.4f} ms ({r['dw_macs'] / 1e6:.1f}M MACs)  "
                  f"fused {r['fused_ms']:.4f} ms ({r['fused_macs'] / 1e6:.1f}M MACs)  "
                  f"{'fused' if r['fused_ms'] < r['dw_ms'] else 'dw'} faster")


if __name__ == "__main__":
    main()
