"""int8 exponential (TFLite EXP: keras.ops.exp, the 'exponential' activation, softplus' and mish's
first step) as the 256-entry table TFLite's kernel builds (``quant.lut_populate`` of the C
library's expf). TFLM has no int8 EXP: TFLite's interpreter (BUILTIN_REF) is the reference."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import libm_f32, lut_populate


def exp_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """TFLite's int8 EXP for the inputs -128..127, in order."""
    return lut_populate(in_scale, in_zero, out_scale, out_zero, libm_f32("expf", np.exp))


class Int8Exp(Int8TableOp):
    kind = "Exp"
    table_of = staticmethod(exp_table)
