"""GroupNormalization (channels split into G groups, each normalised over all its positions and
its channels together; G = 1 normalises the whole map, G = C each channel apart: instance norm)
and UnitNormalization (each row of the last axis scaled to unit L2 norm), as Keras computes them.

GroupNormalization: per group, the mean and the (biased) variance over its P x C/G values,
inv = gamma / sqrt(var + epsilon), out = x * inv + (beta - mean * inv), by the same corrected
two-pass algorithm as LayerNormalization. UnitNormalization: x * min(1 / sqrt(sum x^2), 1e12)
(Keras' ``normalize`` with its epsilon 1e-12: an all-zero row stays zero). Both in place: a group
(a row) is read whole before any of it is written.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter
from micronets.compiler.ops.layer_norm import Normalisation


def _last_axis_only(layer, x, axis):
    rank = len(x.shape)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if sorted(a + rank + 1 if a < 0 else a for a in axes) != [rank]:
        raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}) normalises axis {axis} of a {x.shape} "
                                    f"tensor; only the last axis is supported")


class GroupNorm(Normalisation):
    kind = "GroupNorm"
    template = "kernels/group_norm.h.j2"

    def __init__(self, name, x, out, groups, gamma, beta, epsilon):
        super().__init__(name, x, out, gamma, beta, epsilon)
        c = int(out.shape[-1])
        if groups < 1 or c % groups:
            raise ValueError(f"'{name}': {groups} groups of {c} channels")
        self.groups = int(groups)

    def describe(self):
        c = int(self.output.shape[-1])
        return f"{self.groups} groups of {c // self.groups} channels x {self.output.size // c} positions"


class UnitNorm(Op):
    kind = "UnitNorm"
    template = "kernels/group_norm.h.j2"
    fuses_activation = False

    @property
    def row(self) -> int:
        return int(self.output.shape[-1])

    def macs(self) -> int:
        return 2 * int(self.output.size)

    def describe(self):
        return f"over {self.row} values"

    def inplace_gap(self, input_index):
        return 0


@converter("GroupNormalization")
def convert_group_norm(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    _last_axis_only(layer, x, layer.axis)
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    out = ctx.new_tensor(layer.name, x.shape)
    op = GroupNorm(layer.name, x, out, layer.groups, weights.get("gamma"), weights.get("beta"), layer.epsilon)
    return ctx.add(op).output


@converter("UnitNormalization")
def convert_unit_norm(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    _last_axis_only(layer, x, layer.axis)
    out = ctx.new_tensor(layer.name, x.shape)
    return ctx.add(UnitNorm(layer.name, [x], out)).output
