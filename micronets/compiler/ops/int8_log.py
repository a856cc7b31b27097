"""int8 natural logarithm (TFLite LOG: keras.ops.log, softplus' last step) as the 256-entry table
TFLite's kernel builds (``quant.lut_populate`` of the C library's logf). TFLM has no int8 LOG:
TFLite's interpreter (BUILTIN_REF) is the reference. An input range that reaches 0 or below
(where the table would hold log's -inf or NaN, which TFLite casts to an integer undefinedly) is
refused."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import libm_f32, lut_populate


def log_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """TFLite's int8 LOG for the inputs -128..127, in order."""
    return lut_populate(in_scale, in_zero, out_scale, out_zero, libm_f32("logf", np.log))


class Int8Log(Int8TableOp):
    kind = "Log"
    table_of = staticmethod(log_table)
