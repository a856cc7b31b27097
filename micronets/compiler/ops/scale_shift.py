"""BatchNormalization: folded into the producing conv/dense when it is that op's only reader,
otherwise a per-channel ``x * scale + shift`` op (elementwise, in place)."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class ScaleShift(Op):
    kind = "ScaleShift"
    template = "kernels/scale_shift.h.j2"
    fuses_activation = True

    def __init__(self, name, x, out, scale, shift):
        super().__init__(name, [x], out)
        self.scale = np.asarray(scale, np.float64)
        self.shift = np.asarray(shift, np.float64)

    def fold_scale_shift(self, scale, shift):
        self.scale = self.scale * scale
        self.shift = self.shift * scale + shift

    def weights(self):
        return collections.OrderedDict(s=self.scale, t=self.shift)

    def describe(self):
        return "per-channel"

    def inplace_gap(self, input_index):
        return 0


def batchnorm_scale_shift(layer):
    """(scale, shift) with ``bn(x) == x * scale + shift`` at inference, computed in float64."""
    cfg_axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0] if len(layer.axis) == 1 else None
    if cfg_axis not in (-1, 3, 1):
        raise UnsupportedModelError(f"layer '{layer.name}' (BatchNormalization) must normalise the last axis; axis={layer.axis}")
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    mean, var = weights["moving_mean"], weights["moving_variance"]
    gamma = weights.get("gamma", np.ones_like(mean))
    beta = weights.get("beta", np.zeros_like(mean))
    scale = gamma / np.sqrt(var + float(layer.epsilon))
    return scale, beta - mean * scale


@converter("BatchNormalization")
def convert_batchnorm(layer, inputs, ctx):
    scale, shift = batchnorm_scale_shift(layer)
    x = inputs[0]
    if ctx.can_fuse(x) and hasattr(x.producer, "fold_scale_shift"):
        x.producer.fold_scale_shift(scale, shift)
        return x
    x = ctx.dense_input(x, layer)
    if x.hwc[2] != scale.size:
        raise UnsupportedModelError(f"layer '{layer.name}' (BatchNormalization) has {scale.size} channels for input {x.shape}")
    out = ctx.new_tensor(layer.name, x.shape)
    return ctx.add(ScaleShift(layer.name, x, out, scale, shift)).output
