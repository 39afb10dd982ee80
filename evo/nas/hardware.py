"""Hardware descriptions for the latency simulator: presets and user TOML files.

A :class:`Hardware` is a frozen description of one accelerator (or CPU core) that
:mod:`evo.nas.latency` simulates. Two execution models share it:

* ``systolic``: a weight-stationary ``array_rows x array_cols`` MAC array. A
  convolution puts ``k*k*cin/groups`` weights on the rows and ``cout/groups``
  output channels on the columns, needs ``ceil(rows/R) * ceil(cols/C)`` tiles
  (small groups are packed block-diagonally), and streams the output positions
  through every tile; utilization follows from the tiling and its padding waste.
* ``cpu``: a core with ``macs_per_pe`` MACs per cycle (``array_rows`` and
  ``array_cols`` are 1) whose latency tracks MACs, scaled per op class by the
  efficiency factors of the op-mapping table.

Both have a vector unit for elementwise work (pooling, additions, activations,
batch norm), on-chip memory (parameters stay on chip when they fit and are
streamed from the host every inference otherwise), a per-layer overhead, energy
costs, and an op-mapping table saying which unit runs each op class and which ops
fall back to the slow host path. The keys are documented in ``docs/hardware.md``.

:func:`get_hardware` returns a preset (:data:`PRESETS`, files in
``evo/nas/hw_presets/``) or loads a TOML file; unknown keys and bad values raise
:class:`~evo.errors.ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from evo.errors import ConfigError
from graphs.core.errors import did_you_mean

MODELS = ("systolic", "cpu")
UNITS = ("array", "vector", "host")
PLACEMENTS = ("fused", "vector", "host")

# Op classes of the mapping table, derived from a Layer (see op_class), and the units
# each may map to.
OP_CLASSES: dict[str, tuple[str, ...]] = {
    "conv": ("array", "host"),        # regular K x K convolution (K > 1)
    "pointwise": ("array", "host"),   # regular 1 x 1 convolution
    "depthwise": ("array", "host"),   # one input channel per output channel
    "group": ("array", "host"),       # 1 < groups < channels
    "fc": ("array", "host"),
    "se": ("array", "host"),          # pool + two small fc + gate + multiply
    "avgpool": ("vector", "array", "host"),  # array: as a depthwise conv, constant weights
    "maxpool": ("vector", "host"),
    "gap": ("vector", "host"),
    "add": ("vector", "host"),
    "act": ("vector", "host"),
    "bn": ("vector", "host"),
}
ACTIVATIONS = ("none", "relu", "relu6", "hswish", "swish", "sigmoid", "hsigmoid")

# Elementwise operations per element of each activation on a vector unit (structural).
ACT_OPS = {"none": 0.0, "relu": 1.0, "relu6": 2.0, "hswish": 4.0, "swish": 5.0,
           "sigmoid": 4.0, "hsigmoid": 3.0}

_PRESET_DIR = "hw_presets"
PRESETS = ("edgetpu", "mobile-cpu")


@dataclass(frozen=True)
class OpMapping:
    """Where one op class runs and at what efficiency (a multiplier on the unit's rate)."""

    unit: str
    efficiency: float = 1.0


@dataclass(frozen=True)
class Hardware:
    """One accelerator or CPU core. Times in microseconds, bandwidths in GB/s."""

    name: str
    model: str = "systolic"
    description: str = ""
    clock_mhz: float = 480.0
    array_rows: int = 64
    array_cols: int = 64
    macs_per_pe: float = 1.0
    sram_bytes: int = 8 * 2**20
    act_bandwidth_gbs: float = 32.0
    host_bandwidth_gbs: float = 0.3
    layer_overhead_us: float = 1.0
    invoke_overhead_us: float = 0.0
    bytes_per_element: float = 1.0
    vector_ops_per_cycle: float = 64.0
    host_gops: float = 2.0
    fallback_overhead_us: float = 50.0
    static_power_mw: float = 0.0
    energy_pj_per_mac: float = 0.2
    energy_pj_per_sram_byte: float = 1.0
    energy_pj_per_dram_byte: float = 100.0
    ops: tuple[tuple[str, OpMapping], ...] = ()
    activations: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def op_map(self) -> dict[str, OpMapping]:
        """The op-mapping table as a dict (every class present)."""
        return dict(self.ops)

    @property
    def act_map(self) -> dict[str, str]:
        """Where each activation runs when it follows a layer: fused, vector or host."""
        return dict(self.activations)

    @property
    def peak_macs_per_us(self) -> float:
        return self.array_rows * self.array_cols * self.macs_per_pe * self.clock_mhz

    def replace(self, **changes: Any) -> Hardware:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped dict of this hardware (loads back to an equal Hardware)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("ops", "activations"):
                continue
            out[f.name] = getattr(self, f.name)
        out["ops"] = {k: {"unit": m.unit, "efficiency": m.efficiency} for k, m in self.ops}
        out["activations"] = dict(self.activations)
        return out


# -- defaults of the mapping table -----------------------------------------------------------
_DEFAULT_OPS = {
    "conv": "array", "pointwise": "array", "depthwise": "array", "group": "array",
    "fc": "array", "se": "array", "avgpool": "vector", "maxpool": "vector", "gap": "vector",
    "add": "vector", "act": "vector", "bn": "vector",
}
_DEFAULT_ACTS = {"none": "fused", "relu": "fused", "relu6": "fused", "hswish": "vector",
                 "swish": "vector", "sigmoid": "vector", "hsigmoid": "vector"}

_FIELDS = {f.name: f for f in dataclasses.fields(Hardware)}
_POSITIVE = ("clock_mhz", "macs_per_pe", "act_bandwidth_gbs", "host_bandwidth_gbs",
             "bytes_per_element", "vector_ops_per_cycle", "host_gops")
_NONNEGATIVE = ("layer_overhead_us", "invoke_overhead_us", "fallback_overhead_us",
                "static_power_mw", "energy_pj_per_mac", "energy_pj_per_sram_byte",
                "energy_pj_per_dram_byte")


def _bad(key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"hardware key {key} = {value!r}: {why}")


def _unknown(key: str, allowed: Any, where: str) -> ConfigError:
    allowed = sorted(allowed)
    hint = did_you_mean(key, allowed, 1)
    return ConfigError(f"unknown {where} {key!r}{hint} (allowed: {', '.join(allowed)})")


def _validate(hw: Hardware) -> None:
    if not isinstance(hw.name, str) or not hw.name:
        raise _bad("name", hw.name, "must be a non-empty string")
    if hw.model not in MODELS:
        raise _bad("model", hw.model, f"must be one of {', '.join(MODELS)}")
    for key in ("array_rows", "array_cols"):
        value = getattr(hw, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _bad(key, value, "must be an integer >= 1")
    if hw.model == "cpu" and (hw.array_rows, hw.array_cols) != (1, 1):
        raise _bad("array_rows", hw.array_rows, "a cpu model has array_rows = array_cols = 1 "
                   "(give its MACs per cycle as macs_per_pe)")
    sram = hw.sram_bytes
    if isinstance(sram, bool) or not isinstance(sram, int) or sram < 0:
        raise _bad("sram_bytes", sram, "must be an integer >= 0")
    for key in _POSITIVE + _NONNEGATIVE:
        value = getattr(hw, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value):
            raise _bad(key, value, "must be a number")
        if key in _POSITIVE and value <= 0:
            raise _bad(key, value, "must be > 0")
        if value < 0:
            raise _bad(key, value, "must be >= 0")
    ops = dict(hw.ops)
    if set(ops) != set(OP_CLASSES):
        missing = sorted(set(OP_CLASSES) - set(ops))
        raise ConfigError(f"hardware {hw.name!r}: op table lacks {', '.join(missing)}")
    for cls, mapping in ops.items():
        if mapping.unit not in OP_CLASSES[cls]:
            raise _bad(f"ops.{cls}.unit", mapping.unit,
                       f"must be one of {', '.join(OP_CLASSES[cls])}")
        eff = mapping.efficiency
        if isinstance(eff, bool) or not isinstance(eff, int | float) or not 0 < eff <= 1:
            raise _bad(f"ops.{cls}.efficiency", eff, "must be a number in (0, 1]")
    acts = dict(hw.activations)
    if set(acts) != set(ACTIVATIONS):
        missing = sorted(set(ACTIVATIONS) - set(acts))
        raise ConfigError(f"hardware {hw.name!r}: activation table lacks {', '.join(missing)}")
    for act, where in acts.items():
        if where not in PLACEMENTS:
            raise _bad(f"activations.{act}", where, f"must be one of {', '.join(PLACEMENTS)}")


# -- loading ---------------------------------------------------------------------------------
def from_dict(data: Mapping[str, Any], where: str = "hardware") -> Hardware:
    """A :class:`Hardware` from a TOML-shaped dict (defaults fill missing keys)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a hardware description is a table, got "
                          f"{type(data).__name__}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            raise _unknown(key, _FIELDS, f"hardware key in {where}:")
        if key in ("ops", "activations"):
            continue
        kwargs[key] = value
    ops_in = data.get("ops", {})
    if not isinstance(ops_in, Mapping):
        raise _bad("ops", ops_in, "must be a table of op classes")
    ops: dict[str, OpMapping] = {k: OpMapping(v) for k, v in _DEFAULT_OPS.items()}
    for cls, spec in ops_in.items():
        if cls not in OP_CLASSES:
            raise _unknown(cls, OP_CLASSES, f"op class in {where}: ops.")
        if isinstance(spec, str):
            spec = {"unit": spec}
        if not isinstance(spec, Mapping):
            raise _bad(f"ops.{cls}", spec, "must be a unit name or {unit = ..., efficiency = ...}")
        for k in spec:
            if k not in ("unit", "efficiency"):
                raise _unknown(k, ("unit", "efficiency"), f"key in {where}: ops.{cls}.")
        ops[cls] = OpMapping(spec.get("unit", ops[cls].unit),
                             spec.get("efficiency", ops[cls].efficiency))
    acts_in = data.get("activations", {})
    if not isinstance(acts_in, Mapping):
        raise _bad("activations", acts_in, "must be a table of activation placements")
    acts = dict(_DEFAULT_ACTS)
    for act, where_ in acts_in.items():
        if act not in ACTIVATIONS:
            raise _unknown(act, ACTIVATIONS, f"activation in {where}: activations.")
        acts[act] = where_
    kwargs["ops"] = tuple(sorted(ops.items()))
    kwargs["activations"] = tuple(sorted(acts.items()))
    kwargs.setdefault("name", Path(where).stem if where != "hardware" else "custom")
    try:
        return Hardware(**kwargs)
    except TypeError as err:  # pragma: no cover - keys were checked above
        raise ConfigError(f"{where}: {err}") from None


def loads(text: str, where: str = "hardware") -> Hardware:
    """Parse hardware TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{where}: invalid TOML: {err}") from None
    return from_dict(data, where)


def load(path: str | Path) -> Hardware:
    """Load a hardware TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such hardware file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the hardware file ({err})") from None
    return loads(text, str(path))


_CACHE: dict[str, Hardware] = {}


def preset(name: str) -> Hardware:
    """A built-in preset (:data:`PRESETS`)."""
    if name not in PRESETS:
        hint = did_you_mean(str(name), PRESETS, 1)
        raise ConfigError(f"unknown hardware preset {name!r}{hint} (presets: "
                          f"{', '.join(PRESETS)}; or give a .toml file)")
    if name not in _CACHE:
        text = resources.files("evo.nas").joinpath(_PRESET_DIR, f"{name}.toml").read_text("utf-8")
        _CACHE[name] = loads(text, f"preset {name}")
    return _CACHE[name]


def get_hardware(name_or_path: str | Path | Hardware) -> Hardware:
    """A preset name (``edgetpu``, ``mobile-cpu``), a TOML file path, or a Hardware as is."""
    if isinstance(name_or_path, Hardware):
        return name_or_path
    text = str(name_or_path)
    if text in PRESETS:
        return preset(text)
    if text.endswith(".toml") or Path(text).exists():
        return load(text)
    return preset(text)  # raises, naming the presets
