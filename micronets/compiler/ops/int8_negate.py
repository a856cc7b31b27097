"""int8 negation through float: what TFLite's converter leaves of LayerNormalization's -mean, a
DEQUANTIZE, a float NEG and a QUANTIZE back to int8 (it does not quantise NEG). The three run as
one 256-entry table, each entry the references' float arithmetic: the value dequantised (the
scale as a double times q - zero point, rounded to float), negated, then quantised (divided by
the output scale in single precision, rounded half away from zero, plus the zero point,
saturated). TFLM and TFLite's BUILTIN_REF share those steps."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import float_island_table


def negate_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """-x requantised for the inputs -128..127, in order, as DEQUANTIZE, NEG, QUANTIZE compute it."""
    return float_island_table(in_scale, in_zero, out_scale, out_zero, lambda x: -x)


class Int8Negate(Int8TableOp):
    kind = "Negate"
    table_of = staticmethod(negate_table)
