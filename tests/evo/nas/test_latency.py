"""The latency simulator: hardware loading, mapping, memo, fused-vs-depthwise, fidelity."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import pytest
from fidelity import kendall_tau

from evo.errors import ConfigError
from evo.nas import hardware
from evo.nas.hardware import get_hardware
from evo.nas.latency import (
    latency_ms,
    layer_cost,
    nb201_layers,
    simulate,
)
from graphs.arch import nb201
from graphs.arch.layers import Layer
from graphs.arch.nb201 import live_code

EDGETPU = get_hardware("edgetpu")
CPU = get_hardware("mobile-cpu")
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "latency"


# -- hardware -------------------------------------------------------------------------------
def test_presets_load_and_round_trip():
    for name in hardware.PRESETS:
        hw = get_hardware(name)
        assert hw.name == name
        assert hardware.from_dict(hw.to_dict()) == hw
    assert EDGETPU.array_rows == EDGETPU.array_cols == 64
    assert EDGETPU.sram_bytes == 8 * 2**20


def test_unknown_preset_names_the_presets():
    with pytest.raises(ConfigError, match="edgetpu.*mobile-cpu"):
        get_hardware("edge-tpu")


def test_toml_errors_name_the_key(tmp_path):
    bad = tmp_path / "hw.toml"
    bad.write_text('name = "x"\nclock_mz = 100\n')
    with pytest.raises(ConfigError, match=r"clock_mz.*did you mean 'clock_mhz'"):
        get_hardware(bad)
    with pytest.raises(ConfigError, match=r"ops.conv.unit.*array, host"):
        hardware.loads('[ops]\nconv = "gpu"\n')
    with pytest.raises(ConfigError, match=r"activations.swish.*fused, vector, host"):
        hardware.loads('[activations]\nswish = "cpu"\n')
    with pytest.raises(ConfigError, match=r"clock_mhz.*> 0"):
        hardware.loads("clock_mhz = 0\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        hardware.loads("clock_mhz = \n")
    with pytest.raises(ConfigError, match="unknown op class"):
        hardware.loads("[ops]\nmatmul = 'array'\n")


def test_user_toml_file(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\narray_rows = 128\narray_cols = 128\n')
    hw = get_hardware(str(path))
    assert (hw.name, hw.array_rows) == ("big", 128)
    layers = nb201_layers("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                          "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    small = hw.replace(array_rows=32, array_cols=32)
    assert latency_ms(layers, small) > latency_ms(layers, hw)


# -- mapping ----------------------------------------------------------------------------------
def test_systolic_tiling_gives_the_utilization():
    hw = EDGETPU
    conv = Layer("conv", 56, 56, 64, 64, k=3)
    cost = layer_cost(conv, hw)
    tiles = math.ceil(9 * 64 / 64) * math.ceil(64 / 64)
    assert cost.cycles == pytest.approx(tiles * (56 * 56 + 128))
    assert cost.utilization == pytest.approx(conv.macs / (cost.cycles * 64 * 64))
    # 96 output channels need two column tiles: the second is half empty.
    wide = layer_cost(Layer("conv", 56, 56, 64, 96, k=3), hw)
    assert wide.cycles == pytest.approx(2 * cost.cycles)
    assert wide.utilization < cost.utilization
    # depthwise: 7 channels (9 rows each) per 64x64 tile, so the array is poorly used
    dw = layer_cost(Layer("conv", 56, 56, 64, 64, k=3, groups=64), hw)
    assert dw.cycles == pytest.approx(math.ceil(64 / 7) * (56 * 56 + 128))
    assert dw.utilization < 0.02 < 0.5 < cost.utilization
    # group conv sits in between
    gc = layer_cost(Layer("conv", 56, 56, 64, 64, k=3, groups=4), hw)
    assert dw.utilization < gc.utilization < cost.utilization


def test_vector_ops_and_fallback():
    add3 = layer_cost(Layer("add", 32, 32, 16, 16, inputs=3), EDGETPU)
    add2 = layer_cost(Layer("add", 32, 32, 16, 16, inputs=2), EDGETPU)
    assert add3.unit == "vector" and add3.macs == 0
    assert add3.us > add2.us
    relu = layer_cost(Layer("conv", 28, 28, 32, 32, k=1, act="relu"), EDGETPU)
    swish = layer_cost(Layer("conv", 28, 28, 32, 32, k=1, act="swish"), EDGETPU)
    hsw = layer_cost(Layer("conv", 28, 28, 32, 32, k=1, act="hswish"), EDGETPU)
    assert swish.bound == "fallback" and relu.bound != "fallback"
    assert relu.us < hsw.us < swish.us
    # on the CPU swish is just vector work
    assert layer_cost(Layer("conv", 28, 28, 32, 32, k=1, act="swish"), CPU).bound != "fallback"
    se = layer_cost(Layer("se", 14, 14, 96, 96, mid=24, act="relu", bias=True), EDGETPU)
    assert se.us > 4 * EDGETPU.layer_overhead_us  # pool, two fc and a multiply


def test_weights_stream_when_they_do_not_fit():
    layers = [Layer("conv", 7, 7, 512, 512, k=3, name=f"c{i}") for i in range(6)]
    report = simulate(layers, EDGETPU)
    assert not report.params_fit_on_chip
    assert report.params_bytes == 6 * 9 * 512 * 512
    on = [c.on_chip for c in report.layers]
    assert on[0] and not on[-1]  # cached in layer order until SRAM is full
    assert any(c.bound == "stream" for c in report.layers)
    assert report.latency_ms > simulate(layers[:3], EDGETPU).latency_ms * 2
    assert latency_ms(layers, EDGETPU) == pytest.approx(report.latency_ms)


def test_fast_path_equals_simulate():
    rng = random.Random(3)
    for _ in range(50):
        code = tuple(rng.randrange(5) for _ in range(6))
        for hw in (EDGETPU, CPU):
            layers = nb201_layers(code)
            report = simulate(layers, hw)
            assert latency_ms(layers, hw) == pytest.approx(report.latency_ms, rel=1e-12)
            assert report.energy_mj > 0
    text = simulate(nb201_layers((3,) * 6), EDGETPU).format()
    assert "stage0.cell0.edge1<-0.nor_conv_3x3" in text and "latency" in text


def test_live_code_removes_ops_that_cannot_reach_the_output():
    # node 2 feeds nothing: its incoming edges are dead
    code = nb201.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+"
                       "|skip_connect~0|nor_conv_1x1~1|none~2|")
    assert live_code(code) == (3, 0, 0, 1, 2, 0)
    # the output takes nothing: the whole network folds to a constant
    dead = nb201.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")
    assert nb201_layers(dead) == []
    full = (3,) * 6
    assert live_code(full) == full
    assert nb201_layers(full) == nb201.network_layers(full)


# -- the key observation ----------------------------------------------------------------------
def _dw_ibn(r, cin, cout, e=6, k=3):
    m = cin * e
    return [Layer("conv", r, r, cin, m, k=1, act="relu6", bn=True),
            Layer("conv", r, r, m, m, k=k, groups=m, act="relu6", bn=True),
            Layer("conv", r, r, m, cout, k=1, bn=True)]


def _fused_ibn(r, cin, cout, e=6, k=3):
    m = cin * e
    return [Layer("conv", r, r, cin, m, k=k, act="relu6", bn=True),
            Layer("conv", r, r, m, cout, k=1, bn=True)]


@pytest.mark.parametrize("shape", [(112, 16, 24), (56, 24, 32)])
def test_fused_ibn_wins_early_on_edgetpu(shape):
    dw, fused = _dw_ibn(*shape), _fused_ibn(*shape)
    assert sum(x.macs for x in fused) > 3 * sum(x.macs for x in dw)
    assert latency_ms(fused, EDGETPU) < latency_ms(dw, EDGETPU)
    assert latency_ms(dw, CPU) < latency_ms(fused, CPU)


@pytest.mark.parametrize("shape", [(14, 160, 160), (7, 160, 320)])
def test_depthwise_ibn_wins_late_on_edgetpu(shape):
    dw, fused = _dw_ibn(*shape), _fused_ibn(*shape)
    assert latency_ms(dw, EDGETPU) < latency_ms(fused, EDGETPU)
    assert latency_ms(dw, CPU) < latency_ms(fused, CPU)


# -- fidelity ---------------------------------------------------------------------------------
def test_edgetpu_ranks_measured_latencies():
    path = DATA / "nb201_edgetpu_calibration.csv"
    if not path.exists():
        pytest.skip(f"measured latencies not available ({path})")
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    sim = [latency_ms(nb201_layers(r["arch_str"]), EDGETPU) for r in rows]
    measured = [float(r["latency_ms"]) for r in rows]
    flops = [sum(x.macs for x in nb201.network_layers(r["arch_str"])) for r in rows]
    tau = kendall_tau(sim, measured)
    assert tau >= 0.75
    assert tau > kendall_tau(flops, measured) + 0.3
