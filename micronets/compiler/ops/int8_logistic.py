"""int8 logistic (TFLite LOGISTIC; output scale 1/256, zero point -128) with TFLite's fixed-point
algorithm: the input multiplier from frexp of input_scale * 2^27 (no carry step, as TFLite) and
its input radius."""

from __future__ import annotations

import math

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import round_half_away, wrap32

INPUT_INTEGER_BITS = 4


class Int8Logistic(Int8Op):
    kind = "Sigmoid"
    template = "kernels/int8_logistic.h.j2"
    requires = ("kernels/int8_fixedpoint.h.j2",)

    def __init__(self, name, x, out):
        super().__init__(name, [x], out, 0)
        if out.quant.zero_point != -128 or out.quant.scale != 1.0 / 256:
            raise ValueError(f"logistic '{name}': output quantisation must be scale 1/256, zero point -128; got {out.quant}")
        real = float(x.quant.scale) * float(1 << (31 - INPUT_INTEGER_BITS))
        q, shift = math.frexp(real)
        self.mult = wrap32(round_half_away(q * (1 << 31)))
        self.shift = int(shift)
        self.radius = int(math.floor(((1 << INPUT_INTEGER_BITS) - 1) * (1 << (31 - INPUT_INTEGER_BITS)) / (2.0 ** self.shift)))
        self.zin = x.quant.zero_point

    def inplace_gap(self, input_index):
        return 0
