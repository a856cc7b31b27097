"""int8 square root (TFLite SQRT: keras.ops.sqrt, squareplus, a standard deviation) as a 256-entry
table of TFLite's int8 kernel, which computes in float: the input dequantised (the scale times
q - zero point, in single precision), std::sqrt of that float, divided by the output scale in
single precision and truncated toward zero (a cast, not a rounding), plus the output zero point,
saturated. TFLM has no int8 SQRT: TFLite's interpreter (BUILTIN_REF) is the reference. Below the
zero point (a negative input, which the converter's calibrated ranges never produce for the
squares and sums that feed a square root) TFLite stops with an error; the table gives sqrt(0)
there."""

from __future__ import annotations

import math

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp


def sqrt_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """TFLite's int8 SQRT for the inputs -128..127, in order."""
    f32 = np.float32
    out = []
    for v in range(-128, 128):
        x = f32(f32(in_scale) * f32(v - int(in_zero)))
        y = float(f32(np.sqrt(max(x, f32(0.0))) / f32(out_scale)))
        truncated = math.trunc(y) if y < 2.0 ** 31 else 127
        out.append(max(-128, min(127, truncated + int(out_zero))))
    return np.array(out, np.int8)


class Int8Sqrt(Int8TableOp):
    kind = "Sqrt"
    table_of = staticmethod(sqrt_table)
