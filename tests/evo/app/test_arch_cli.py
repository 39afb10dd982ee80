"""`evo arch latency`: single architectures, JSON, CSV mode with bad rows, errors."""

from __future__ import annotations

import csv
import json

import pytest

from evo.app.cli import main
from graphs.arch.layers import count_macs
from graphs.arch.nb201 import network_layers

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
        "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def test_nb201_breakdown(capsys):
    assert main(["arch", "latency", ARCH, "--hardware", "edgetpu"]) == 0
    out = capsys.readouterr().out
    assert "stage0.cell0.edge1<-0.nor_conv_3x3" in out
    assert "hardware edgetpu: latency" in out and "fit yes" in out


def test_json_output(capsys):
    assert main(["arch", "latency", ARCH, "--hardware", "mobile-cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["hardware"] == "mobile-cpu" and data["source"] == "nb201"
    assert data["latency_ms"] > 0
    assert data["macs"] == count_macs(network_layers(ARCH))
    assert len(data["layers"]) > 50
    assert data["latency_ms"] == pytest.approx(
        sum(x["ms"] for x in data["layers"]) + data["invoke_us"] / 1000)


def test_builtin_architecture(capsys):
    assert main(["arch", "latency", "mobilenetv2", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "(builtin)" in out and "depthwise" in out


def test_unknown_preset_and_bad_toml(tmp_path, capsys):
    assert main(["arch", "latency", ARCH, "--hardware", "tpu9"]) == 2
    assert "unknown hardware preset 'tpu9'" in capsys.readouterr().err
    bad = tmp_path / "hw.toml"
    bad.write_text('name = "mine"\nsram_mb = 4\n')
    assert main(["arch", "latency", ARCH, "--hardware", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sram_mb" in err and "sram_bytes" in err and "Traceback" not in err
    assert main(["arch", "latency", "not-an-arch"]) == 2
    assert "neither an NB201 arch string" in capsys.readouterr().err


def test_csv_mode_keeps_going_past_bad_rows(tmp_path, capsys):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("id,arch_str\n"
                   f"1,{ARCH}\n"
                   "2,|nor_conv_3x3~0|+|bogus~0|none~1|+|none~0|none~1|none~2|\n"
                   "3,|skip_connect~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|nor_conv_3x3~2|\n")
    rc = main(["arch", "latency", "--csv", str(src), "--column", "arch_str", "-o", str(dst),
               "--hardware", "edgetpu"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{src}:3: bad row" in err and "bogus" in err
    with dst.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["sim_latency_ms"]) > 0 and int(rows[0]["macs"]) > 0
    assert int(rows[0]["params"]) > 0 and float(rows[0]["sim_energy_mj"]) > 0
    assert rows[1]["sim_latency_ms"] == "" and float(rows[2]["sim_latency_ms"]) > 0


def test_csv_mode_errors(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("arch\nx\n")
    assert main(["arch", "latency", "--csv", str(src), "-o", str(tmp_path / "o.csv")]) == 2
    assert "--column 'arch_str' is not a column" in capsys.readouterr().err
    assert main(["arch", "latency", "--csv", str(src)]) == 2
    assert "-o OUT.csv" in capsys.readouterr().err
