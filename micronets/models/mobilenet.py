"""The MobileNetV1 size family squeezed for microcontrollers: Pico, Nano, Micro, Milli, Base.

Each net is a stem convolution, a stack of depthwise-separable blocks and a max-pool + 1x1 conv
head; the sizes differ only in the stem stride and the block list. With the defaults (96x96x1
input, 10 classes) the parameter counts are the published ones: 844, 1,636, 4,264, 11,704, 30,040.
"""

from __future__ import annotations

from typing import ClassVar, Sequence, Tuple

from micronets.models.base import MicroNet

#: BatchNormalization momentum. Keras' default (0.99) lets the moving statistics trail the weights
#: for hundreds of steps: on a small dataset (3 classes x 140 training images, ~15 steps per epoch)
#: training accuracy reached 0.93 while inference-mode accuracy stayed at chance for every epoch.
#: With 0.9 they follow within ~20 steps (the PhiNet family uses the same value).
BN_MOMENTUM = 0.9

# (filters, stride) of each depthwise-separable block
Block = Tuple[int, int]


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + pad - kernel) // stride + 1


def mobilenet_v1(
    input_shape: Tuple[int, int, int],
    num_classes: int,
    stem_stride: int,
    blocks: Sequence[Block],
    batch_norm: bool = False,
    dropout: float = 0.1,
    name: str = "mobilenet",
    bn_momentum: float = BN_MOMENTUM,
):
    """Build the Keras model of one size of the family (a plain function of its hyperparameters)."""
    import keras
    from keras import layers

    h, w, _ = input_shape
    if h < 3 or w < 3:
        raise ValueError(f"{name} needs inputs of at least 3x3 pixels (its stem is a 3x3 'valid' conv); got {h}x{w}")

    def bn_relu6(x, prefix, act=True):
        if batch_norm:
            x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn")(x)
        if act:
            x = layers.ReLU(6.0, name=f"{prefix}_relu6")(x)
        return x

    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(3, 3, strides=stem_stride, padding="valid", use_bias=False, name="stem_conv")(inputs)
    x = bn_relu6(x, "stem", act=False)
    for i, (filters, stride) in enumerate(blocks, start=1):
        x = depthwise_separable_block(x, filters, stride, f"block{i}", batch_norm, bn_momentum)
    # Head: max-pool over whatever map is left, so any input size works.
    pool = (int(x.shape[1]), int(x.shape[2]))
    x = layers.MaxPooling2D(pool_size=pool, name="head_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Conv2D(num_classes, 1, use_bias=True, name="head_conv")(x)
    x = layers.Reshape((num_classes,), name="head_reshape")(x)
    outputs = layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def depthwise_separable_block(x, filters: int, stride: int, prefix: str, batch_norm: bool = False,
                              bn_momentum: float = BN_MOMENTUM):
    """Zero-pad 1 -> depthwise 3x3 (stride 1 or 2, no bias) -> ReLU6 -> pointwise 1x1 -> ReLU6."""
    from keras import layers

    x = layers.ZeroPadding2D(1, name=f"{prefix}_pad")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="valid", use_bias=False, name=f"{prefix}_dw")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{prefix}_dw_relu6")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}_pw")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_pw_bn")(x)
    x = layers.ReLU(6.0, name=f"{prefix}_pw_relu6")(x)
    return x


class _MobileNetV1(MicroNet):
    stem_stride: ClassVar[int] = 2
    blocks: ClassVar[Sequence[Block]] = ()

    def __init__(self, num_classes: int = 10, input_shape=None, batch_norm: bool = False, dropout: float = 0.1,
                 bn_momentum: float = BN_MOMENTUM):
        super().__init__(num_classes, input_shape)
        if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, (int, float)) or not 0 <= bn_momentum < 1:
            raise ValueError(f"bn_momentum must be a number in [0, 1), got {bn_momentum!r}")
        self.batch_norm = bool(batch_norm)
        self.dropout = float(dropout)
        self.bn_momentum = float(bn_momentum)
        self.check_input_size()

    def check_input_size(self):
        h, w, _ = self.input_shape
        if h < 3 or w < 3:
            raise ValueError(
                f"{self.arch_name} needs inputs of at least 3x3 pixels (its stem is a 3x3 'valid' conv); got {h}x{w}"
            )

    def feature_map_size(self) -> Tuple[int, int]:
        """Spatial size of the map the head pools over."""
        h, w, _ = self.input_shape
        h, w = _conv_out(h, 3, self.stem_stride, 0), _conv_out(w, 3, self.stem_stride, 0)
        for _, stride in self.blocks:
            h, w = _conv_out(h, 3, stride, 2), _conv_out(w, 3, stride, 2)
        return h, w

    def hyperparameters(self):
        hp = super().hyperparameters()
        hp.update(batch_norm=self.batch_norm, dropout=self.dropout, bn_momentum=self.bn_momentum)
        return hp

    def _build_model(self):
        return mobilenet_v1(self.input_shape, self.num_classes, self.stem_stride, self.blocks,
                            batch_norm=self.batch_norm, dropout=self.dropout, name=self.arch_name,
                            bn_momentum=self.bn_momentum)


class PicoMobileNet(_MobileNetV1):
    """844 parameters at 96x96x1 / 10 classes; stride-3 stem, 3 blocks."""

    arch_name = "PicoMobileNet"
    stem_stride = 3
    blocks = ((6, 2), (12, 2), (24, 2))


class NanoMobileNet(_MobileNetV1):
    """1,636 parameters at 96x96x1 / 10 classes; 4 stride-2 blocks."""

    arch_name = "NanoMobileNet"
    blocks = ((6, 2), (12, 2), (24, 2), (24, 2))


class MicroMobileNet(_MobileNetV1):
    """4,264 parameters at 96x96x1 / 10 classes; 8 blocks."""

    arch_name = "MicroMobileNet"
    blocks = ((6, 1), (12, 2), (12, 1), (24, 2), (24, 1), (24, 2), (24, 1), (24, 2))


class MilliMobileNet(_MobileNetV1):
    """11,704 parameters at 96x96x1 / 10 classes; 9 blocks up to 48 filters."""

    arch_name = "MilliMobileNet"
    blocks = ((6, 1), (12, 2), (12, 1), (24, 2), (24, 1), (48, 2), (48, 1), (48, 2), (48, 1))


class BaseMobileNet(_MobileNetV1):
    """30,040 parameters at 96x96x1 / 10 classes; 12 blocks up to 96 filters."""

    arch_name = "BaseMobileNet"
    blocks = ((6, 1), (12, 2), (12, 1), (24, 2), (24, 1), (48, 2), (48, 1), (48, 1), (48, 1), (48, 1), (96, 2), (96, 1))


MOBILENETS = {
    "pico": PicoMobileNet,
    "nano": NanoMobileNet,
    "micro": MicroMobileNet,
    "milli": MilliMobileNet,
    "base": BaseMobileNet,
}


class MobileNetV1(_MobileNetV1):
    """One of the five block lists (``depth``: pico ... base) at any width and stem stride: the
    family's MobileNet width multiplier, for architecture search (:mod:`micronets.search`).

    Block ``i`` gets ``max(1, round(filters_i * width))`` filters; ``stem_stride`` defaults to the
    size's own (3 for pico, 2 otherwise). At ``width=1`` and the default stride it builds exactly
    the named size (same layers, weights and MACs), under the architecture name ``name``.
    """

    arch_name = "MobileNetV1"

    def __init__(self, num_classes: int = 10, input_shape=None, depth: str = "pico", width: float = 1.0,
                 stem_stride: int = None, batch_norm: bool = False, dropout: float = 0.1,
                 bn_momentum: float = BN_MOMENTUM, name: str = None):
        key = str(depth).lower()
        if key not in MOBILENETS:
            raise ValueError(f"depth must be one of {', '.join(MOBILENETS)}, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 16:
            raise ValueError(f"width (multiplier) must be a number in (0, 16], got {width!r}")
        size = MOBILENETS[key]
        stride = size.stem_stride if stem_stride is None else stem_stride
        if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= 4:
            raise ValueError(f"stem_stride must be an integer in 1..4, got {stem_stride!r}")
        if name is not None:
            if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
                raise ValueError(f"name must be a valid C++ identifier (it names the exported class), got {name!r}")
            self.arch_name = name
        self.depth = key
        self.width = float(width)
        self.stem_stride = int(stride)  # instance attribute shadows the class default
        self.blocks = tuple((max(1, int(round(f * self.width))), s) for f, s in size.blocks)
        self._name = name
        super().__init__(num_classes, input_shape, batch_norm, dropout, bn_momentum)

    def hyperparameters(self):
        hp = super().hyperparameters()
        hp.update(depth=self.depth, width=self.width, stem_stride=self.stem_stride, name=self._name)
        return hp
