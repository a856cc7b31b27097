"""int8 softmax over the last axis (TFLite SOFTMAX; output scale 1/256, zero point -128), TFLite's
reference fixed-point algorithm with its beta * input-scale multiplier and input radius.

Each value's exp depends only on its distance below its row's maximum, 0..255: where a layer
evaluates many exps (an attention's scores: ``TABLE_FROM`` values or more), they are a table
computed at compile time with the kernel's own fixed-point arithmetic (``quant.exp_neg``), one
int32 per distance the input radius reaches, read instead of two exps a value (keras.io's
timeseries transformer: its softmaxes took most of its instructions). Fewer values (a
classifier's head) keep the exps at run time and their flash."""

from __future__ import annotations

import collections
import math

import numpy as np

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import exp_neg, quantize_multiplier, srdhm, wrap32

SCALED_DIFF_INTEGER_BITS = 5
#: values of a softmax from which its exps are a table (each value evaluates two exps of some
#: 100 instructions each; a table of up to 256 int32 costs at most 1 KB of flash)
TABLE_FROM = 256


def exp_table(mult: int, left_shift: int, diff_min: int) -> np.ndarray:
    """The kernel's exp (Q0.31) of each difference -d to the row maximum, d = 0 .. min(255,
    -diff_min): exp of (-d << left_shift) times ``mult``, in Q5.26, as the kernel computes it."""
    return np.array([exp_neg(srdhm(wrap32(-d << left_shift), mult), SCALED_DIFF_INTEGER_BITS)
                     for d in range(min(255, -diff_min) + 1)], np.int32)


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
        self.exps = exp_table(self.mult, self.left_shift, self.diff_min) if x.size >= TABLE_FROM else None

    def typed_weights(self):
        return collections.OrderedDict() if self.exps is None else collections.OrderedDict(e=self.exps)

    def params(self):
        return 0  # (the exps are computed from the quantisation, as Int8TableOp's: no parameter)

    def inplace_gap(self, input_index):
        return 0
