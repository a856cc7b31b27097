"""int8 absolute value (TFLite ABS: keras.ops.abs, softsign's |x|) as a 256-entry table of the
references' arithmetic (TFLM's and TFLite's AbsEvalQuantized): |x - input zero point|, rescaled
by MultiplyByQuantizedMultiplier where the scales differ (QuantizeMultiplier of input scale /
output scale, the quotient in single precision), plus the output zero point, saturated."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import mbqm, quantize_multiplier


def abs_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """|x| requantised for the inputs -128..127, in order."""
    f32 = np.float32
    rescale = f32(in_scale) != f32(out_scale)
    mult, shift = quantize_multiplier(float(f32(in_scale) / f32(out_scale))) if rescale else (0, 0)
    out = []
    for v in range(-128, 128):
        value = abs(v - int(in_zero))
        y = mbqm(value, mult, shift) if rescale else value
        out.append(max(-128, min(127, y + int(out_zero))))
    return np.array(out, np.int8)


class Int8Abs(Int8TableOp):
    kind = "Abs"
    table_of = staticmethod(abs_table)
