"""Layers: the shape-annotated primitive operations an architecture executes.

An architecture graph (a :class:`~graphs.core.program.Program` in the ``arch`` op set)
lowers to a list of :class:`Layer` values once shapes are inferred. Everything that
costs an architecture -- MAC, parameter and activation counts, and the accelerator
latency simulator -- works on this list, so it is the one interface between the
graph side and the hardware side.

Counting conventions (those of the MobileNet/EfficientNet papers):

* MACs are multiply-accumulates of convolutions and fully connected layers
  (squeeze-excite included, as its two 1x1 convolutions). Batch norm is folded
  into the preceding convolution, and pooling, activations and additions cost no
  MACs (they still take time on hardware, which the simulator models).
* Parameters are weights plus biases, with two per channel for every batch norm
  (its scale and shift, as ``torchvision`` counts trainable parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The layer kinds, and what each one computes.
KINDS = {
    "conv": "K x K convolution, `groups` groups (1: a regular conv; cin: depthwise)",
    "avgpool": "K x K average pooling",
    "maxpool": "K x K max pooling",
    "gap": "global average pooling to 1 x 1",
    "fc": "fully connected layer (cin -> cout)",
    "add": "elementwise sum of `cin`-channel tensors (residual or cell-node sum)",
    "se": "squeeze-excite: pool, 1x1 reduce to `mid` channels, act, 1x1 expand, gate",
    "act": "standalone activation (not fused into a convolution)",
    "bn": "standalone batch norm (not folded into a convolution)",
}

ACTIVATIONS = ("none", "relu", "relu6", "hswish", "swish", "sigmoid", "hsigmoid")


@dataclass(frozen=True)
class Layer:
    """One primitive operation with its input shape (``h x w x cin``).

    Attributes:
        kind: one of :data:`KINDS`.
        h, w: input height and width.
        cin, cout: input and output channels (equal for pooling, add, se, act, bn).
        k: kernel size (square); 1 for pointwise layers.
        stride: spatial stride.
        groups: convolution groups (1 regular, ``cin`` depthwise, else group conv).
        act: activation fused after the layer (one of :data:`ACTIVATIONS`).
        bn: a batch norm follows (folded into the conv for MACs; counts parameters).
        bias: the layer has a bias (fully connected layers, squeeze-excite).
        mid: squeeze-excite bottleneck channels.
        inputs: number of tensors summed by an ``add`` layer.
        name: where the layer comes from (e.g. ``stage2.block1.expand``).
    """

    kind: str
    h: int
    w: int
    cin: int
    cout: int
    k: int = 1
    stride: int = 1
    groups: int = 1
    act: str = "none"
    bn: bool = False
    bias: bool = False
    mid: int = 0
    inputs: int = 2
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}; expected one of {ACTIVATIONS}")
        if self.kind == "conv" and (self.cin % self.groups or self.cout % self.groups):
            raise ValueError(f"conv {self.name!r}: {self.groups} groups do not divide "
                             f"{self.cin} -> {self.cout} channels")

    # -- shapes ----------------------------------------------------------------------
    @property
    def oh(self) -> int:
        """Output height ("same" padding)."""
        if self.kind in ("gap", "fc"):
            return 1
        return -(-self.h // self.stride)

    @property
    def ow(self) -> int:
        """Output width ("same" padding)."""
        if self.kind in ("gap", "fc"):
            return 1
        return -(-self.w // self.stride)

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv" and self.groups == self.cin == self.cout and self.groups > 1

    # -- counts ----------------------------------------------------------------------
    @property
    def macs(self) -> int:
        """Multiply-accumulates (see the module docstring for the conventions): each weight
        is used once per output position of a convolution, once by fc and SE layers."""
        return self.weights * (self.oh * self.ow if self.kind == "conv" else 1)

    @property
    def weights(self) -> int:
        """Weight parameters only (no biases or batch norm): what an accelerator stores."""
        if self.kind == "conv":
            return self.k * self.k * (self.cin // self.groups) * self.cout
        if self.kind == "fc":
            return self.cin * self.cout
        if self.kind == "se":
            return 2 * self.cin * self.mid
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters: weights, biases and batch-norm scale and shift."""
        n = self.weights
        if self.bias:
            n += self.mid + self.cin if self.kind == "se" else self.cout
        if self.bn or self.kind == "bn":
            n += 2 * self.cout
        return n

    @property
    def input_elements(self) -> int:
        """Elements read from activations (all summed tensors for ``add``)."""
        n = self.h * self.w * self.cin
        return n * self.inputs if self.kind == "add" else n

    @property
    def output_elements(self) -> int:
        """Elements written."""
        return self.oh * self.ow * self.cout


def count_macs(layers: list[Layer]) -> int:
    """Total multiply-accumulates of a layer list."""
    return sum(layer.macs for layer in layers)


def count_params(layers: list[Layer]) -> int:
    """Total trainable parameters of a layer list."""
    return sum(layer.params for layer in layers)


def peak_activation_memory(layers: list[Layer]) -> int:
    """Largest input + output activation footprint of any single layer, in elements.

    A lower bound on the working memory a layer-by-layer executor needs.
    """
    return max((layer.input_elements + layer.output_elements for layer in layers), default=0)
