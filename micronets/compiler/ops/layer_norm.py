"""LayerNormalization over the last axis (ConvNeXt's and the transformers' normalisation): each
row of the last axis independently (per pixel over its channels, per token over its features), as
Keras computes it: inv = gamma / sqrt(var + epsilon), out = x * inv + (beta - mean * inv), the mean
and the (biased) variance over the row."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.activations import c_float
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Normalisation(Op):
    """What LayerNormalization and GroupNormalization share: per-channel gamma and beta (either
    optional), epsilon, a fused activation, and in-place execution (the values a mean and variance
    cover are read whole before any of them is written)."""

    fuses_activation = True

    def __init__(self, name, x, out, gamma, beta, epsilon):
        super().__init__(name, [x], out)
        n = int(out.shape[-1])
        self.gamma = None if gamma is None else np.asarray(gamma, np.float64).reshape(n)
        self.beta = None if beta is None else np.asarray(beta, np.float64).reshape(n)
        self.epsilon = float(epsilon)

    @property
    def epsilon_c(self) -> str:
        return c_float(self.epsilon)

    def macs(self) -> int:
        return int(self.output.size) * (2 if self.gamma is not None else 1)

    def weights(self):
        w = collections.OrderedDict()
        if self.gamma is not None:
            w["g"] = self.gamma
        if self.beta is not None:
            w["b"] = self.beta
        return w

    def inplace_gap(self, input_index):
        return 0


class LayerNorm(Normalisation):
    kind = "LayerNorm"
    template = "kernels/layer_norm.h.j2"

    @property
    def row(self) -> int:
        return int(self.output.shape[-1])

    def describe(self):
        return f"over {self.row} values"


@converter("LayerNormalization", parts=True)
def convert_layer_norm(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    rank = len(x.shape)
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    if [ctx.axis(a, rank) for a in axes] != [rank - 1]:  # (Keras' axes count the batch axis)
        raise UnsupportedModelError(f"layer '{layer.name}' (LayerNormalization) normalises axis {layer.axis} of a "
                                    f"{x.shape} tensor; only the last axis is supported")
    if getattr(layer, "rms_scaling", False):
        raise UnsupportedModelError(f"layer '{layer.name}' (LayerNormalization) uses rms_scaling=True; not supported")
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    out = ctx.new_tensor(layer.name, x.shape)
    return ctx.add(LayerNorm(layer.name, x, out, weights.get("gamma"), weights.get("beta"), layer.epsilon)).output
