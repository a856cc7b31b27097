"""PhiNets: a scalable MobileNetV2-style backbone for microcontrollers (Paissan, Ancilotto, Farella).

Reference: "PhiNets: a scalable backbone for low-power AI at the edge" (ACM TECS 2022,
https://doi.org/10.1145/3510832), and the authors' Keras implementation it mirrors layer for layer.

Layout (``L = num_layers``)::

    stem     correct-pad -> depthwise 3x3 / first_conv_stride -> pointwise to int(first_conv_filters*alpha)
             -> BN -> act
    block 0  depthwise 3x3 -> BN -> act -> 1x1 projection to int(b1*alpha) -> BN   (no expansion, no SE;
             + input when the stem width equals the b1 width, as in every block)
    block 1  stride 2, int(b1*alpha) filters
    block 2  stride 1, int(b1*alpha) filters
    block 3  stride 2, int(b2*alpha) filters
    block 4..L   stride 1, int(base*alpha) filters; base starts at b2 and doubles (with stride 2) at
             each id listed in ``downsampling_layers``; 5x5 depthwise where id/L > 1 - conv5_percent
    head     global average pool -> 1x1 conv to int(1280*alpha) -> 1x1 conv to classes -> softmax

Each block ``id >= 1`` is an inverted residual block: 1x1 expansion by ``t(id)`` (linear from
``t0`` at id 0 to ``t0*beta`` at id L) -> BN -> act -> depthwise -> BN -> act -> [squeeze-excite]
-> 1x1 projection -> BN -> [+ input when shapes match and residuals are on].

With 10 classes and the preset resolution the four published nets have 39,883 / 88,944 / 174,939 /
357,764 Keras parameters (BN moving statistics included) and 2.06M / 4.84M / 9.87M / 18.87M MACs.

Departures from the original, none of which changes the graph, weights or MACs: the stem's
SeparableConv2D is split into DepthwiseConv2D + Conv2D layers (same weights); hard-swish is Keras'
own ``hard_swish`` (the same x*relu6(x+3)/6); BatchNormalization uses momentum 0.9 instead of the
original's 0.999 (PyTorch's default, 0.1 in its convention): with 0.999 the moving statistics of a
net trained for a few hundred steps are still mostly their initial values and inference-mode accuracy
stays at chance; and an optional Dropout (``dropout`` > 0) before each depthwise conv, block 0's included.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np

from micronets.models.base import MicroNet

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9  # see the note in the module docstring
HEAD_WIDTH = 1280  # the head's 1x1 conv has int(HEAD_WIDTH * alpha) filters
SE_RATIO = 0.25  # squeeze-excite bottleneck: max(1, int(SE_RATIO * block input channels))

#: The four nets of the PhiNet paper / repository, found by architecture search for CIFAR-10
#: at 2, 5, 10 and 20 million MACs. Input is (resolution, resolution, 3); SE on, ReLU6,
#: stem stride 3, no downsampling after block 3.
PHINET_PRESETS: Dict[str, Dict[str, Any]] = {
    "2m": dict(resolution=68, num_layers=8, alpha=0.138, beta=0.4, t0=7,
               first_conv_filters=96, b1_filters=87, b2_filters=129, conv5_percent=0.468),
    "5m": dict(resolution=82, num_layers=10, alpha=0.138, beta=0.67, t0=6,
               first_conv_filters=61, b1_filters=107, b2_filters=179, conv5_percent=0.468),
    "10m": dict(resolution=96, num_layers=10, alpha=0.1973, beta=0.854, t0=6,
                first_conv_filters=61, b1_filters=60, b2_filters=178, conv5_percent=0.468),
    "20m": dict(resolution=89, num_layers=15, alpha=0.183, beta=1.656, t0=6,
                first_conv_filters=99, b1_filters=60, b2_filters=173, conv5_percent=0.577),
}


# --------------------------------------------------------------------------- plan (no Keras)
@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted residual block: id, stride, output width, expansion factor, depthwise kernel."""

    block_id: int
    stride: int
    filters: int
    expansion: float  # t(id); block 0 has no expansion conv (1.0)
    kernel: int


def expansion_factor(t0: float, beta: float, block_id: int, num_layers: int) -> float:
    """t(id): linear from ``t0`` (id 0) to ``t0 * beta`` (id ``num_layers``)."""
    return t0 * beta * block_id / num_layers + t0 * (num_layers - block_id) / num_layers


def correct_pad(size: int) -> Tuple[int, int]:
    """Zero padding (before, after) ahead of a strided 'valid' conv, as in the original PhiNet /
    Keras MobileNetV2: an even size gets (0, 1), an odd size (1, 1). (The original always derives it
    for a 3x3 kernel, even in front of a 5x5 depthwise; so do we.)"""
    return (size % 2, 1)


def _valid_out(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1 if size >= kernel else 0


def phinet_blocks(num_layers: int, alpha: float, beta: float, t0: float, b1_filters: int,
                  b2_filters: int, conv5_percent: float = 0.0,
                  downsampling_layers: Sequence[int] = ()) -> List[BlockSpec]:
    """The block list of a PhiNet (ids 0..num_layers), exactly as the original builds it."""
    t = lambda i: expansion_factor(t0, beta, i, num_layers)  # noqa: E731
    b1, b2 = int(b1_filters * alpha), int(b2_filters * alpha)
    blocks = [
        BlockSpec(0, 1, b1, 1.0, 3),
        BlockSpec(1, 2, b1, t(1), 3),
        BlockSpec(2, 1, b1, t(2), 3),
        BlockSpec(3, 2, b2, t(3), 3),
    ]
    base = b2_filters
    for i in range(4, num_layers + 1):
        down = i in downsampling_layers
        if down:
            base *= 2
        kernel = 5 if i / num_layers > 1 - conv5_percent else 3
        blocks.append(BlockSpec(i, 2 if down else 1, int(base * alpha), t(i), kernel))
    return blocks


def _spatial_trace(size: int, first_conv_stride: int, blocks: Sequence[BlockSpec]) -> List[int]:
    """Map size along one axis after the stem and after each block (0 = the net cannot run)."""
    size = _valid_out(size + sum(correct_pad(size)), 3, first_conv_stride)
    sizes = [size]
    for b in blocks:
        if size <= 0:
            break
        if b.stride != 1:
            size = _valid_out(size + sum(correct_pad(size)), b.kernel, b.stride)
        sizes.append(size)
    return sizes


def min_input_size(first_conv_stride: int, blocks: Sequence[BlockSpec]) -> int:
    """Smallest height (or width) the net accepts: every strided 'valid' conv must fit its kernel."""
    size = 1
    while min(_spatial_trace(size, first_conv_stride, blocks)) <= 0:
        size += 1
    return size


# --------------------------------------------------------------------------- Keras graph
def _activation(x, name: str, h_swish: bool):
    from keras import layers

    if h_swish:
        return layers.Activation("hard_swish", name=f"{name}_hswish")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x)


def _bn(x, name: str):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def _pad_for_stride(x, name: str):
    from keras import layers

    h, w = int(x.shape[1]), int(x.shape[2])
    return layers.ZeroPadding2D((correct_pad(h), correct_pad(w)), name=name)(x)


def separable_stem(x, filters: int, stride: int, h_swish: bool):
    """Correct-pad -> depthwise 3x3 (stride, 'valid', no bias) -> pointwise 1x1 -> BN -> act.

    The original uses one SeparableConv2D; two layers hold the same weights and MACs."""
    from keras import layers

    x = _pad_for_stride(x, "stem_pad")
    x = layers.DepthwiseConv2D(3, strides=stride, padding="valid", use_bias=False, name="stem_dw")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name="stem_pw")(x)
    x = _bn(x, "stem_bn")
    return _activation(x, "stem", h_swish)


def squeeze_excite(x, reduced: int, prefix: str, h_swish: bool):
    """Global average -> 1x1 conv to ``reduced`` -> act -> 1x1 conv back -> sigmoid -> scale ``x``."""
    from keras import layers

    channels = int(x.shape[-1])
    s = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_se_pool")(x)
    s = layers.Conv2D(reduced, 1, use_bias=True, name=f"{prefix}_se_reduce")(s)
    s = _activation(s, f"{prefix}_se", h_swish)
    s = layers.Conv2D(channels, 1, use_bias=True, name=f"{prefix}_se_expand")(s)
    s = layers.Activation("sigmoid", name=f"{prefix}_se_sigmoid")(s)
    return layers.Multiply(name=f"{prefix}_se_scale")([x, s])


def inverted_residual_block(inputs, spec: BlockSpec, squeeze_excite_on: bool, h_swish: bool,
                            residuals: bool, dropout: float = 0.0):
    """PhiNet block: [1x1 expand -> BN -> act] -> depthwise -> BN -> act -> [SE] -> 1x1 project -> BN
    [-> + inputs]. Block 0 has no expansion and no SE."""
    from keras import layers

    prefix = f"block{spec.block_id}"
    in_channels = int(inputs.shape[-1])
    x = inputs
    if spec.block_id > 0:
        x = layers.Conv2D(int(spec.expansion * in_channels), 1, use_bias=False, name=f"{prefix}_expand")(x)
        x = _bn(x, f"{prefix}_expand_bn")
        x = _activation(x, f"{prefix}_expand", h_swish)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
    if spec.stride != 1:
        x = _pad_for_stride(x, f"{prefix}_pad")
    x = layers.DepthwiseConv2D(spec.kernel, strides=spec.stride, padding="same" if spec.stride == 1 else "valid",
                               use_bias=False, name=f"{prefix}_dw")(x)
    x = _bn(x, f"{prefix}_dw_bn")
    x = _activation(x, f"{prefix}_dw", h_swish)
    if squeeze_excite_on and spec.block_id > 0:
        # the original sizes the bottleneck from the block's *input* width, not the expanded one
        x = squeeze_excite(x, max(1, int(in_channels * SE_RATIO)), prefix, h_swish)
    x = layers.Conv2D(spec.filters, 1, use_bias=False, name=f"{prefix}_project")(x)
    x = _bn(x, f"{prefix}_project_bn")
    if residuals and in_channels == spec.filters and spec.stride == 1:
        x = layers.Add(name=f"{prefix}_add")([inputs, x])
    return x


def phinet(
    num_classes: int = 10,
    input_shape: Tuple[int, int, int] = (32, 32, 3),
    alpha: float = 0.5,
    beta: float = 1.0,
    t0: float = 6,
    num_layers: int = 7,
    first_conv_filters: int = 48,
    b1_filters: int = 24,
    b2_filters: int = 48,
    conv5_percent: float = 0.0,
    first_conv_stride: int = 3,
    downsampling_layers: Sequence[int] = (),
    squeeze_excite: bool = True,
    h_swish: bool = False,
    residuals: bool = True,
    include_top: bool = True,
    dropout: float = 0.0,
    name: str = "phinet",
):
    """Build the Keras model of a PhiNet (a plain function of its hyperparameters).

    Without the top the model ends at the last block's feature map."""
    import keras
    from keras import layers

    _check_arguments(num_classes, input_shape, alpha, beta, t0, num_layers, first_conv_filters, b1_filters,
                     b2_filters, conv5_percent, first_conv_stride, downsampling_layers, dropout)
    blocks = phinet_blocks(num_layers, alpha, beta, t0, b1_filters, b2_filters, conv5_percent,
                           downsampling_layers)
    inputs = keras.Input(shape=tuple(input_shape), name="input")
    x = separable_stem(inputs, int(first_conv_filters * alpha), first_conv_stride, h_swish)
    for spec in blocks:
        x = inverted_residual_block(x, spec, squeeze_excite, h_swish, residuals, dropout)
    if include_top:
        # no activation between the two 1x1 convs, as in the original
        x = layers.GlobalAveragePooling2D(keepdims=True, name="head_pool")(x)
        x = layers.Conv2D(int(HEAD_WIDTH * alpha), 1, use_bias=True, name="head_conv")(x)
        x = layers.Conv2D(num_classes, 1, use_bias=True, name="head_classifier")(x)
        x = layers.Flatten(name="head_flatten")(x)
        x = layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, x, name=name)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _check_arguments(num_classes, input_shape, alpha, beta, t0, num_layers, first_conv_filters, b1_filters,
                     b2_filters, conv5_percent, first_conv_stride, downsampling_layers, dropout):
    if not _is_int(num_classes) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if len(tuple(input_shape)) != 3 or not all(_is_int(d) and d > 0 for d in input_shape):
        raise ValueError(f"input_shape must be (height, width, channels) of positive integers, got {input_shape!r}")
    if not _is_num(alpha) or alpha <= 0:
        raise ValueError(f"alpha (width multiplier) must be a number > 0, got {alpha!r}")
    if not _is_num(beta) or beta < 0:
        raise ValueError(f"beta (expansion shape factor) must be a number >= 0, got {beta!r}")
    if not _is_num(t0) or t0 <= 0:
        raise ValueError(f"t0 (base expansion factor) must be a number > 0, got {t0!r}")
    if not _is_int(num_layers) or num_layers < 3:
        raise ValueError(f"num_layers must be an integer >= 3 (blocks 1-3 always exist), got {num_layers!r}")
    for key, value in (("first_conv_filters", first_conv_filters), ("b1_filters", b1_filters),
                       ("b2_filters", b2_filters)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if int(value * alpha) < 1:
            raise ValueError(f"{key}={value} times alpha={alpha} leaves no filters (int({value}*{alpha}) = 0)")
    if not _is_num(conv5_percent) or not 0 <= conv5_percent <= 1:
        raise ValueError(f"conv5_percent must be in [0, 1], got {conv5_percent!r}")
    if not _is_int(first_conv_stride) or first_conv_stride < 1:
        raise ValueError(f"first_conv_stride must be a positive integer, got {first_conv_stride!r}")
    ids = list(downsampling_layers)
    if not all(_is_int(i) and 4 <= i <= num_layers for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(
            f"downsampling_layers must list distinct block ids in 4..num_layers={num_layers} "
            f"(blocks 1 and 3 always downsample), got {downsampling_layers!r}"
        )
    if not _is_num(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")

    blocks = phinet_blocks(num_layers, alpha, beta, t0, b1_filters, b2_filters, conv5_percent, ids)
    channels = blocks[0].filters  # block 0 maps the stem to b1 without expanding
    for b in blocks[1:]:
        if int(b.expansion * channels) < 1:
            raise ValueError(
                f"block {b.block_id} would expand {channels} channels by t={b.expansion:g} to "
                f"int({b.expansion:g}*{channels}) = 0 channels; raise t0, beta or the widths"
            )
        channels = b.filters
    h, w = int(input_shape[0]), int(input_shape[1])
    need = min_input_size(first_conv_stride, blocks)
    if h < need or w < need:
        raise ValueError(
            f"input {h}x{w} is too small for this PhiNet's strides (stem stride {first_conv_stride}, "
            f"{sum(b.stride == 2 for b in blocks)} stride-2 blocks): it needs at least {need}x{need}"
        )


# --------------------------------------------------------------------------- MicroNet wrapper
def _is_identifier(name: str) -> bool:
    return isinstance(name, str) and name.isidentifier() and name.isascii()


class PhiNet(MicroNet):
    """A PhiNet (see the module docstring); ``PhiNet.preset("2m")`` etc. give the published nets.

    ``name`` sets the architecture name (default C++ class name on export); presets use e.g.
    ``"PhiNet2M"``. It is saved with the other hyperparameters so :func:`micronets.load` keeps it.
    """

    arch_name: ClassVar[str] = "PhiNet"
    default_input_shape: ClassVar[Tuple[int, int, int]] = (32, 32, 3)

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: Tuple[int, int, int] = (32, 32, 3),
        alpha: float = 0.5,
        beta: float = 1.0,
        t0: float = 6,
        num_layers: int = 7,
        first_conv_filters: int = 48,
        b1_filters: int = 24,
        b2_filters: int = 48,
        conv5_percent: float = 0.0,
        first_conv_stride: int = 3,
        downsampling_layers: Sequence[int] = (),
        squeeze_excite: bool = True,
        h_swish: bool = False,
        residuals: bool = True,
        include_top: bool = True,
        dropout: float = 0.0,
        name: Optional[str] = None,
    ):
        super().__init__(num_classes, input_shape)
        if isinstance(downsampling_layers, (str, bytes)) or not hasattr(downsampling_layers, "__iter__"):
            raise ValueError(f"downsampling_layers must be a list of block ids, got {downsampling_layers!r}")
        downsampling_layers = list(downsampling_layers)
        _check_arguments(self.num_classes, self.input_shape, alpha, beta, t0, num_layers, first_conv_filters,
                         b1_filters, b2_filters, conv5_percent, first_conv_stride, downsampling_layers, dropout)
        if name is not None:
            if not _is_identifier(name):
                raise ValueError(f"name must be a valid C++ identifier (it names the exported class), got {name!r}")
            self.arch_name = name  # instance attribute shadows the class default
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.t0 = t0.item() if isinstance(t0, np.generic) else t0
        self.num_layers = int(num_layers)
        self.first_conv_filters = int(first_conv_filters)
        self.b1_filters = int(b1_filters)
        self.b2_filters = int(b2_filters)
        self.conv5_percent = float(conv5_percent)
        self.first_conv_stride = int(first_conv_stride)
        self.downsampling_layers = [int(i) for i in downsampling_layers]
        self.squeeze_excite = bool(squeeze_excite)
        self.h_swish = bool(h_swish)
        self.residuals = bool(residuals)
        self.include_top = bool(include_top)
        self.dropout = float(dropout)
        self._name = name

    @classmethod
    def preset(cls, name: str, num_classes: int = 10) -> "PhiNet":
        """One of the published nets: ``"2m"``, ``"5m"``, ``"10m"`` or ``"20m"`` (case-insensitive)."""
        key = str(name).strip().lower()
        if key not in PHINET_PRESETS:
            raise ValueError(f"unknown PhiNet preset {name!r}; choose one of {', '.join(PHINET_PRESETS)}")
        hp = dict(PHINET_PRESETS[key])
        res = hp.pop("resolution")
        return cls(num_classes=num_classes, input_shape=(res, res, 3), squeeze_excite=True, h_swish=False,
                   first_conv_stride=3, downsampling_layers=(), name=f"PhiNet{key.upper()}", **hp)

    def blocks(self) -> List[BlockSpec]:
        """The block list (id, stride, filters, expansion, kernel) this net builds."""
        return phinet_blocks(self.num_layers, self.alpha, self.beta, self.t0, self.b1_filters, self.b2_filters,
                             self.conv5_percent, self.downsampling_layers)

    def min_input_size(self) -> int:
        return min_input_size(self.first_conv_stride, self.blocks())

    def hyperparameters(self) -> Dict[str, Any]:
        hp = super().hyperparameters()
        hp.update(
            alpha=self.alpha, beta=self.beta, t0=self.t0, num_layers=self.num_layers,
            first_conv_filters=self.first_conv_filters, b1_filters=self.b1_filters, b2_filters=self.b2_filters,
            conv5_percent=self.conv5_percent, first_conv_stride=self.first_conv_stride,
            downsampling_layers=list(self.downsampling_layers), squeeze_excite=self.squeeze_excite,
            h_swish=self.h_swish, residuals=self.residuals, include_top=self.include_top, dropout=self.dropout,
            name=self._name,
        )
        return hp

    def _build_model(self):
        hp = self.hyperparameters()
        hp.pop("name")
        return phinet(**dict(hp, input_shape=tuple(hp["input_shape"])), name=self.arch_name)
