"""int8 GELU (TFLite GELU, exact or tanh-approximate) as a 256-entry table, as TFLite's kernel
builds it at Prepare (LUTPopulate): for each int8 input v, x = input_scale * (v - zero point) and
the transform in single precision (exact: 0.5 x erfc(-x / sqrt 2); approximate: 0.5 x (1 +
tanh(sqrt(2 / pi) (x + 0.044715 x^3)))), times 1 / output_scale, rounded half away from zero,
plus the output zero point, clamped. The C library's erfcf / tanhf, as TFLite's std::erfc / tanh
of a float. TFLM has no GELU kernel: TFLite's interpreter is the reference."""

from __future__ import annotations

import math

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import libm_f32, lut_populate

#: TFLite's constants, as float32: -M_SQRT1_2 and sqrt(2 / pi) (M_2_SQRTPI * M_SQRT1_2 in double)
_NEG_SQRT1_2 = np.float32(-math.sqrt(0.5))
_SQRT_2_PI = np.float32((2.0 / math.sqrt(math.pi)) * math.sqrt(0.5))


def gelu_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int, approximate: bool) -> np.ndarray:
    """TFLite's int8 GELU for the inputs -128..127, in order."""
    f32 = np.float32
    erfc, tanh = libm_f32("erfcf", math.erfc), libm_f32("tanhf", np.tanh)
    if approximate:
        return lut_populate(in_scale, in_zero, out_scale, out_zero,
                            lambda x: f32(0.5) * x * (f32(1) + tanh(_SQRT_2_PI * (x + f32(0.044715) * x * x * x))))
    return lut_populate(in_scale, in_zero, out_scale, out_zero, lambda x: f32(0.5) * x * erfc(x * _NEG_SQRT1_2))


class Int8Gelu(Int8TableOp):
    kind = "GELU"

    def __init__(self, name, x, out, approximate: bool):
        super().__init__(name, x, out)
        self.approximate = bool(approximate)
        self.table = gelu_table(x.quant.scale, x.quant.zero_point, out.quant.scale, out.quant.zero_point,
                                self.approximate)

    def describe(self):
        return "tanh approximation" if self.approximate else ""
