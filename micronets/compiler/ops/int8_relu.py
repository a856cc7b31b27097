"""int8 ReLU and ReLU6 as separate ops (TFLite RELU / RELU6, e.g. a ReLU after a concatenation or
a pooling, where the converter has nothing to fuse it into).

RELU, as TFLM and TFLite's reference kernels: out = clamp(zout + MBQM(x - zin, mult, shift),
max(-128, zout), 127), mult / shift from input_scale / output_scale (a float32 division).
RELU6 differs between the two: TFLM clamps the int8 input to [zin, zin + round(6 / sin)] and
never requantises (its kernel assumes the output shares the input's quantisation, as the
converter makes it); TFLite's reference requantises like RELU, clamped to [zout, zout +
round(6 / sout)]. With equal quantisations the two agree; ``reference`` picks which to follow."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8Op, rq8_mode
from micronets.compiler.quant import quantize_multiplier, round_half_away


class Int8Relu(Int8Op):
    kind = "ReLU"
    template = "kernels/int8_relu.h.j2"

    def __init__(self, name, x, out, six: bool = False, reference: str = "tflm"):
        super().__init__(name, [x], out, 0)
        self.six = bool(six)
        qi, qo = x.quant, out.quant
        if self.six and reference == "tflm":
            self.mult, self.shift = 1 << 30, 1  # exactly x - zin
            self.in_off, self.out_off = 0, 0
            self.lo = max(-128, qi.zero_point)
            self.hi = min(127, qi.zero_point + round_half_away(float(np.float32(6.0) / np.float32(qi.scale))))
        else:
            self.mult, self.shift = quantize_multiplier(float(np.float32(qi.scale) / np.float32(qo.scale)))
            self.in_off, self.out_off = -qi.zero_point, qo.zero_point
            self.lo = max(-128, qo.zero_point)
            self.hi = 127 if not self.six else min(127, qo.zero_point + round_half_away(float(np.float32(6.0) / np.float32(qo.scale))))
        if self.six:
            self.kind = "ReLU6"

    @property
    def rq_mode(self) -> int:
        """mn_mbqm_rq's RQ (an input minus its zero point is at most 255 in magnitude)."""
        return rq8_mode(255, self.shift)

    def describe(self):
        return f"[{self.lo}, {self.hi}]"

    def inplace_gap(self, input_index):
        return 0
