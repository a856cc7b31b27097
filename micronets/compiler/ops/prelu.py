"""PReLU: out = x > 0 ? x : alpha * x with learned alphas (per channel, per element, or shared
along ``shared_axes``), tiled over the tensor like ScaleShift's constants. In place."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, converter, tile_period


class PReLU(Op):
    kind = "PReLU"
    template = "kernels/prelu.h.j2"

    def __init__(self, name, x, out, alpha):
        super().__init__(name, [x], out)
        self.alpha = np.asarray(alpha, np.float64).reshape(-1)

    @property
    def period(self) -> int:
        return int(self.alpha.size)

    def weights(self):
        return collections.OrderedDict(a=self.alpha)

    def describe(self):
        return "per-channel" if self.period == self.output.shape[-1] else f"{self.period} alphas"

    def inplace_gap(self, input_index):
        return 0


@converter("PReLU")
def convert_prelu(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    alpha = np.broadcast_to(np.asarray(layer.get_weights()[0], np.float64), x.shape).reshape(-1)
    period = tile_period(x.shape, alpha)
    out = ctx.new_tensor(layer.name, x.shape)
    return ctx.add(PReLU(layer.name, x, out, alpha[:period])).output
