"""The accelerator latency simulator: a layer list on a :class:`~evo.nas.hardware.Hardware`.

Every layer (:class:`graphs.arch.layers.Layer`) is mapped onto the unit its op class is
assigned to by the hardware's op-mapping table and costed from first principles:

* **array** (MAC engine). On a ``systolic`` hardware a convolution is mapped
  weight-stationary: ``k*k*cin/groups`` weights on the rows, ``cout/groups`` output
  channels on the columns. A group that is smaller than the array is packed
  block-diagonally with others (so a depthwise 3x3 fills 9 rows and 1 column per
  channel: 7 channels per 64x64 tile), a larger one is split into
  ``ceil(rows/R) * ceil(cols/C)`` tiles. Every tile streams all ``oh*ow`` output
  positions and pays ``R + C`` cycles to fill and drain the pipeline, so the
  utilization (MACs / (cycles * R * C)) comes from the tiling, the padding waste and
  the spatial size. On a ``cpu`` hardware, cycles = MACs / (MACs per cycle *
  efficiency of the op class).
* **vector**: elementwise work (pooling reads ``k*k`` inputs per output, an add reads
  every summand, activations cost :data:`evo.nas.hardware.ACT_OPS` per element, batch
  norm 2) at ``vector_ops_per_cycle``.
* **host** (fallback, for ops the compiler cannot place): the input and output cross
  the host link, the host computes, and a fixed synchronisation cost is paid.

A layer takes ``layer_overhead_us + max(compute, activation traffic, weight
streaming)``. Weights are cached on chip in layer order while they fit in
``sram_bytes``; the rest stream from the host every inference. Activations that
follow a layer are fused for free, run as an extra vector pass, or fall back to the
host, per the hardware's activation table.

:func:`simulate` gives a :class:`LatencyReport` with a per-layer breakdown;
:func:`latency_ms` is the fast path (per-layer costs are memoized per hardware, so
an architecture costs one cached lookup per layer). :func:`nb201_layers` lowers an
NB201 arch the way a graph compiler deploys it (ops that cannot reach the output are
removed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from evo.nas.hardware import ACT_OPS, Hardware
from graphs.arch import nb201
from graphs.arch.layers import Layer

BOUNDS = ("compute", "memory", "stream", "overhead", "fallback")


def op_class(layer: Layer) -> str:
    """The op-mapping class of a layer (a key of :data:`evo.nas.hardware.OP_CLASSES`)."""
    if layer.kind == "conv":
        if layer.groups == 1:
            return "conv" if layer.k > 1 else "pointwise"
        return "depthwise" if layer.groups == layer.cin == layer.cout else "group"
    return layer.kind


@dataclass(frozen=True)
class LayerCost:
    """The simulated cost of one layer (times in microseconds)."""

    name: str
    kind: str          # op class
    shape: str         # h x w x cin -> oh x ow x cout
    unit: str          # array, vector or host
    macs: int
    cycles: float      # device cycles of the work (0 on the host path)
    us: float          # total time of the layer, overhead included
    utilization: float  # achieved fraction of the unit's peak while working
    bound: str         # compute, memory, stream, overhead or fallback
    weight_bytes: int
    on_chip: bool      # weights read from on-chip memory (else streamed from the host)
    energy_pj: float

    @property
    def ms(self) -> float:
        return self.us / 1000.0


@dataclass
class LatencyReport:
    """What :func:`simulate` returns."""

    hardware: str
    latency_ms: float
    energy_mj: float
    macs: int
    params: int
    params_bytes: int
    params_fit_on_chip: bool
    sram_bytes: int
    invoke_us: float
    layers: list[LayerCost] = field(default_factory=list)

    def by_bound(self) -> dict[str, float]:
        """Milliseconds spent per bound."""
        out = dict.fromkeys(BOUNDS, 0.0)
        for c in self.layers:
            out[c.bound] += c.ms
        return out

    def format(self, top: int | None = None) -> str:
        """A readable table of the layers (the ``top`` slowest only, if given)."""
        rows = self.layers
        if top is not None:
            rows = sorted(rows, key=lambda c: -c.us)[:top]
        head = (f"{'layer':<34} {'kind':<9} {'shape':<25} {'unit':<6} {'MACs':>10} "
                f"{'cycles':>9} {'us':>8} {'util':>6} {'bound':<8}")
        lines = [head, "-" * len(head)]
        for c in rows:
            util = f"{100 * c.utilization:5.1f}%" if c.unit != "host" else "    - "
            lines.append(f"{c.name[:34]:<34} {c.kind:<9} {c.shape:<25} {c.unit:<6} "
                         f"{c.macs:>10,} {c.cycles:>9.0f} {c.us:>8.2f} {util:>6} {c.bound:<8}")
        bounds = ", ".join(f"{b} {ms:.3f}" for b, ms in self.by_bound().items() if ms)
        fit = "yes" if self.params_fit_on_chip else "NO (streamed from host)"
        lines += [
            "-" * len(head),
            f"hardware {self.hardware}: latency {self.latency_ms:.4f} ms "
            f"(layers {sum(c.us for c in self.layers) / 1000:.4f} + invoke/io "
            f"{self.invoke_us / 1000:.4f}); energy {self.energy_mj:.4f} mJ",
            f"{len(self.layers)} layers, {self.macs / 1e6:.2f}M MACs, {self.params / 1e6:.3f}M "
            f"params; weights {self.params_bytes / 2**20:.2f} MiB of "
            f"{self.sram_bytes / 2**20:.2f} MiB on chip: fit {fit}",
            f"ms by bound: {bounds}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (layers as a list of dicts)."""
        out = {k: getattr(self, k) for k in ("hardware", "latency_ms", "energy_mj", "macs",
                                             "params", "params_bytes", "params_fit_on_chip",
                                             "sram_bytes", "invoke_us")}
        out["ms_by_bound"] = self.by_bound()
        out["layers"] = [{**c.__dict__, "ms": c.ms} for c in self.layers]
        return out


# -- mapping ----------------------------------------------------------------------------------
def _array_cycles(hw: Hardware, cls: str, positions: int, k: int, cin: int, cout: int,
                  groups: int, macs: int) -> tuple[float, float]:
    """Cycles and utilization of a (grouped) convolution / fc on the MAC engine."""
    eff = hw.op_map[cls].efficiency
    if hw.model == "cpu":
        cycles = macs / (hw.macs_per_pe * eff)
        return cycles, eff
    rows, cols = hw.array_rows, hw.array_cols
    kg, ng = k * k * (cin // groups), cout // groups
    if kg <= rows and ng <= cols:
        per_tile = min(rows // kg, cols // ng)
        tiles = math.ceil(groups / per_tile)
    else:
        tiles = groups * math.ceil(kg / rows) * math.ceil(ng / cols)
    cycles = tiles * (positions / hw.macs_per_pe + rows + cols) / eff
    util = macs / (cycles * rows * cols * hw.macs_per_pe) if cycles else 0.0
    return cycles, util


def _act_extra(hw: Hardware, act: str, elements: int) -> tuple[float, bool, float]:
    """Extra microseconds for an activation after a layer; (us, fell_back, energy_pj)."""
    where = hw.act_map[act]
    if where == "fused" or act == "none":
        return 0.0, False, 0.0
    ops = ACT_OPS[act] * elements
    if where == "vector":
        us = hw.layer_overhead_us + ops / (hw.vector_ops_per_cycle * hw.clock_mhz)
        return us, False, elements * hw.bytes_per_element * 2 * hw.energy_pj_per_sram_byte
    nbytes = 2 * elements * hw.bytes_per_element
    us = hw.fallback_overhead_us + nbytes / (hw.host_bandwidth_gbs * 1e3) + ops / (
        hw.host_gops * 1e3)
    return us, True, nbytes * hw.energy_pj_per_dram_byte


def _shape(layer: Layer) -> str:
    return f"{layer.h}x{layer.w}x{layer.cin} -> {layer.oh}x{layer.ow}x{layer.cout}"


def layer_cost(layer: Layer, hw: Hardware, on_chip: bool = True) -> LayerCost:
    """The cost of one layer; ``on_chip`` False streams its weights from the host."""
    cls = op_class(layer)
    mapping = hw.op_map[cls]
    bpe = hw.bytes_per_element
    wbytes = int(math.ceil(layer.weights * bpe))
    act_bytes = (layer.input_elements + layer.output_elements) * bpe
    macs = layer.macs
    mem_us = (act_bytes + (wbytes if on_chip else 0)) / (hw.act_bandwidth_gbs * 1e3)
    stream_us = 0.0 if on_chip else wbytes / (hw.host_bandwidth_gbs * 1e3)
    energy = macs * hw.energy_pj_per_mac + act_bytes * hw.energy_pj_per_sram_byte
    energy += wbytes * (hw.energy_pj_per_sram_byte if on_chip else hw.energy_pj_per_dram_byte)
    extra_us, fell_back, extra_pj = _act_extra(hw, layer.act, layer.output_elements) \
        if cls not in ("se", "act") else (0.0, False, 0.0)
    energy += extra_pj
    overhead = hw.layer_overhead_us
    unit = mapping.unit

    if unit == "host":
        ops = 2 * macs + _vector_work(layer)
        nbytes = act_bytes + wbytes
        us = hw.fallback_overhead_us + nbytes / (hw.host_bandwidth_gbs * 1e3) + ops / (
            hw.host_gops * 1e3) + extra_us
        energy += nbytes * hw.energy_pj_per_dram_byte
        return LayerCost(layer.name, cls, _shape(layer), unit, macs, 0.0, us, 0.0, "fallback",
                         wbytes, on_chip, energy)

    if cls == "se":
        cycles, us, fell_back, util = _se_cost(layer, hw)
        work_us = cycles / hw.clock_mhz
    elif unit == "array":
        if cls == "avgpool":  # a depthwise conv with constant weights
            c = layer.cin
            cycles, util = _array_cycles(hw, cls, layer.oh * layer.ow, layer.k, c, c, c,
                                         layer.oh * layer.ow * c * layer.k * layer.k)
        else:
            positions = layer.oh * layer.ow
            cycles, util = _array_cycles(hw, cls, positions, layer.k, layer.cin, layer.cout,
                                         layer.groups, macs)
        work_us = cycles / hw.clock_mhz
        us = 0.0
    else:  # vector
        cycles = _vector_work(layer) / (hw.vector_ops_per_cycle * mapping.efficiency)
        work_us = cycles / hw.clock_mhz
        util = mapping.efficiency
        # A sum of n tensors runs as n - 1 binary adds, each its own op.
        us = (layer.inputs - 2) * overhead if cls == "add" else 0.0
    body = max(work_us, mem_us, stream_us)
    if fell_back:
        bound = "fallback"
    elif overhead > body:
        bound = "overhead"
    elif body == work_us:
        bound = "compute"
    elif body == stream_us:
        bound = "stream"
    else:
        bound = "memory"
    us += overhead + body + extra_us
    return LayerCost(layer.name, cls, _shape(layer), unit, macs, cycles, us, util, bound,
                     wbytes, on_chip, energy)


def _vector_work(layer: Layer) -> float:
    """Elementwise operations of a layer on a vector unit (0 for MAC layers)."""
    kind = layer.kind
    if kind in ("avgpool", "maxpool"):
        return layer.k * layer.k * layer.output_elements
    if kind == "gap":
        return layer.input_elements
    if kind == "add":  # n - 1 binary adds, each reading two tensors
        return 2 * (layer.inputs - 1) * layer.output_elements
    if kind == "act":
        return ACT_OPS[layer.act] * layer.input_elements
    if kind == "bn":
        return 2 * layer.input_elements
    return 0.0


def _se_cost(layer: Layer, hw: Hardware) -> tuple[float, float, bool, float]:
    """Squeeze-excite as pool, fc, act, fc, gate and multiply: (cycles, extra us, fell
    back, utilization). The gate is a sigmoid after swish, else a hard sigmoid."""
    c, mid, hw_elems = layer.cin, layer.mid, layer.h * layer.w * layer.cin
    vec = hw.vector_ops_per_cycle
    cycles = hw_elems / vec + 2 * hw_elems / vec  # global pool, then the gating multiply
    fc1, _ = _array_cycles(hw, "se", 1, 1, c, mid, 1, c * mid)
    fc2, _ = _array_cycles(hw, "se", 1, 1, mid, c, 1, c * mid)
    cycles += fc1 + fc2
    gate = "sigmoid" if layer.act == "swish" else "hsigmoid"
    us1, fb1, _ = _act_extra(hw, layer.act, mid)
    us2, fb2, _ = _act_extra(hw, gate, c)
    # Four ops on the device (pool, two fc, multiply); the layer's own overhead is one.
    us = 3 * hw.layer_overhead_us + us1 + us2
    util = layer.macs / (cycles * hw.array_rows * hw.array_cols * hw.macs_per_pe)
    return cycles, us, fb1 or fb2, util


def io_us(layers: Sequence[Layer], hw: Hardware) -> float:
    """Per-inference fixed cost: invocation plus the input and output over the host link."""
    if not layers:
        return hw.invoke_overhead_us
    nbytes = (layers[0].input_elements + layers[-1].output_elements) * hw.bytes_per_element
    return hw.invoke_overhead_us + nbytes / (hw.host_bandwidth_gbs * 1e3)


# -- the simulator ----------------------------------------------------------------------------
def simulate(layers: Sequence[Layer], hw: Hardware) -> LatencyReport:
    """Simulate one inference (batch 1) of ``layers`` on ``hw``."""
    costs: list[LayerCost] = []
    used = 0
    for layer in layers:
        wbytes = int(math.ceil(layer.weights * hw.bytes_per_element))
        used += wbytes
        costs.append(layer_cost(layer, hw, on_chip=used <= hw.sram_bytes))
    io = io_us(layers, hw)
    latency_us = sum(c.us for c in costs) + io
    energy_pj = sum(c.energy_pj for c in costs)
    energy_mj = energy_pj * 1e-9 + hw.static_power_mw * latency_us * 1e-6
    return LatencyReport(
        hardware=hw.name, latency_ms=latency_us / 1000.0, energy_mj=energy_mj,
        macs=sum(layer.macs for layer in layers), params=sum(layer.params for layer in layers),
        params_bytes=used, params_fit_on_chip=used <= hw.sram_bytes, sram_bytes=hw.sram_bytes,
        invoke_us=io, layers=costs,
    )


# Per-hardware memo: id(layer) -> (layer, us on chip, us streamed, weight bytes), with the
# layer kept to make the id check safe, and a value-keyed table shared by equal layers.
_TABLES: dict[int, tuple[Hardware, dict[int, tuple], dict[Layer, tuple]]] = {}
_MAX_ENTRIES = 500_000


def _tables(hw: Hardware) -> tuple[dict[int, tuple], dict[Layer, tuple]]:
    entry = _TABLES.get(id(hw))
    if entry is None or entry[0] is not hw:
        if len(_TABLES) > 64:
            _TABLES.clear()
        entry = (hw, {}, {})
        _TABLES[id(hw)] = entry
    return entry[1], entry[2]


def _memo(layer: Layer, hw: Hardware, by_id: dict, by_value: dict) -> tuple:
    costs = by_value.get(layer)
    if costs is None:
        on = layer_cost(layer, hw, True)
        off = layer_cost(layer, hw, False)
        costs = (on.us, off.us, on.weight_bytes)
        by_value[layer] = costs
    if len(by_id) > _MAX_ENTRIES:
        by_id.clear()
    entry = (layer, *costs)
    by_id[id(layer)] = entry
    return entry


def latency_ms(layers: Sequence[Layer], hw: Hardware) -> float:
    """The simulated latency in ms (the same number as ``simulate(...).latency_ms``)."""
    by_id, by_value = _tables(hw)
    sram = hw.sram_bytes
    total = 0.0
    used = 0
    for layer in layers:
        e = by_id.get(id(layer))
        if e is None or e[0] is not layer:
            e = _memo(layer, hw, by_id, by_value)
        used += e[3]
        total += e[1] if used <= sram else e[2]
    return (total + io_us(layers, hw)) / 1000.0


# -- NB201 as deployed -------------------------------------------------------------------------
@lru_cache(maxsize=65536)
def _nb201_layers(code: tuple[int, ...], dataset: str) -> tuple[Layer, ...]:
    live = nb201.live_code(code)
    if not any(live):  # the output does not depend on the input: everything folds away
        nb201.network_layers(code, dataset)  # still check the dataset name
        return ()
    # Equal layers at the same place are one object across archs (a few hundred in all),
    # which keeps the per-layer cost memo of latency_ms small and its lookups by identity.
    return tuple(_INTERNED.setdefault((layer, layer.name), layer)
                 for layer in nb201.network_layers(live, dataset))


_INTERNED: dict[tuple[Layer, str], Layer] = {}


def nb201_layers(arch: Sequence[int] | str, dataset: str = "cifar10") -> list[Layer]:
    """The layers of an NB201 network as deployed (dead ops removed, see
    :func:`graphs.arch.nb201.live_code`; none at all when no cell edge reaches the
    output, as the output is then a constant)."""
    code = nb201.parse(arch) if isinstance(arch, str) else tuple(arch)
    return list(_nb201_layers(code, dataset))
