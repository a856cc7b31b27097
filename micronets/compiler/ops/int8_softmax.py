"""int8 softmax over the last axis (TFLite SOFTMAX; output scale 1/256, zero point -128), TFLite's
reference fixed-point algorithm with its beta * input-scale multiplier and input radius."""

from __future__ import annotations

import math

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import quantize_multiplier

SCALED_DIFF_INTEGER_BITS = 5


class Int8Softmax(Int8Op):
    kind = "Softmax"
    template = "kernels/int8_softmax.h.j2"
    requires = ("kernels/int8_reciprocal.h.j2", "kernels/int8_fixedpoint.h.j2")

    def __init__(self, name, x, out, beta=1.0):
        super().__init__(name, [x], out, 0)
        if out.quant.zero_point != -128 or out.quant.scale != 1.0 / 256:
            raise ValueError(f"softmax '{name}': output quantisation must be scale 1/256, zero point -128 (TFLite's); got {out.quant}")
        self.beta = float(beta)
        real = min(float(beta) * float(x.quant.scale) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
        self.mult, self.left_shift = quantize_multiplier(real)
        if self.left_shift < 0:
            raise ValueError(f"softmax '{name}': input scale {x.quant.scale} too small for TFLite's int8 softmax")
        radius = math.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << self.left_shift))
        self.diff_min = -int(radius)
        self.row = int(x.shape[-1])
        self.rows = x.size // self.row

    def inplace_gap(self, input_index):
        return 0
