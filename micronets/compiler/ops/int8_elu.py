"""int8 ELU through float: TFLite's converter does not quantise ELU (Keras ELU with alpha 1, or
the 'elu' activation); it leaves a DEQUANTIZE, a float ELU and a QUANTIZE back to int8. The three
run as one 256-entry table, each entry the references' float steps: the value dequantised (the
scale as a double times q - zero point, rounded to float), x < 0 ? expm1f(x) : x (the C library's,
as TFLM's std::expm1 of a float), then quantised (divided by the output scale in single precision,
rounded half away from zero, plus the zero point, saturated). TFLM and TFLite's default kernels
agree; TFLite's BUILTIN_REF has no ELU kernel."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import float_island_table, libm_f32


def elu_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """ELU requantised for the inputs -128..127, in order, as DEQUANTIZE, ELU, QUANTIZE compute it."""
    expm1 = libm_f32("expm1f", np.expm1)
    return float_island_table(in_scale, in_zero, out_scale, out_zero, lambda x: expm1(x) if x < 0 else x)


class Int8Elu(Int8TableOp):
    kind = "ELU"
    table_of = staticmethod(elu_table)
