"""The architectures micronets builds by name (``pico`` ... ``base``, ``phinet-2m`` ... ``phinet-20m``)."""

from __future__ import annotations

from typing import Optional, Tuple

MOBILENET_ARCHS = ("pico", "nano", "micro", "milli", "base")
PHINET_ARCHS = ("phinet-2m", "phinet-5m", "phinet-10m", "phinet-20m")
ARCHS = MOBILENET_ARCHS + PHINET_ARCHS


def arch_class(arch: str):
    """The MicroNet subclass an architecture name builds."""
    arch = arch.lower()
    if arch in MOBILENET_ARCHS:
        from micronets.models.mobilenet import MOBILENETS

        return MOBILENETS[arch]
    if arch in PHINET_ARCHS:
        from micronets.models.phinet import PhiNet

        return PhiNet
    raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")


def make_net(arch: str, num_classes: Optional[int] = None, input_shape=None, batch_norm: Optional[bool] = None):
    """An (unbuilt) net by architecture name; ``None`` arguments take the architecture's defaults
    (10 classes; 96x96x1 for the MobileNets, the preset's resolution for PhiNet; no BatchNorm for
    the MobileNets, which ``micronets train`` turns on)."""
    arch = arch.lower()
    cls = arch_class(arch)
    classes = 10 if num_classes is None else num_classes
    if arch in MOBILENET_ARCHS:
        return cls(num_classes=classes, input_shape=input_shape, batch_norm=bool(batch_norm))
    preset = arch.split("-", 1)[1]
    net = cls.preset(preset, num_classes=classes)
    if input_shape is not None and tuple(input_shape) != tuple(net.input_shape):
        hp = dict(net.hyperparameters())
        hp["input_shape"] = tuple(input_shape)
        net = cls(**hp)
    return net


def default_input_shape(arch: str) -> Tuple[int, int, int]:
    """The input shape an architecture name builds with by default (no Keras needed)."""
    arch = arch.lower()
    if arch in MOBILENET_ARCHS:
        return tuple(arch_class(arch).default_input_shape)
    from micronets.models.phinet import PHINET_PRESETS

    res = PHINET_PRESETS[arch.split("-", 1)[1]]["resolution"]
    return (res, res, 3)
