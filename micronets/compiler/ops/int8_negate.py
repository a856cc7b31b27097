"""int8 negation through float: what TFLite's converter leaves of LayerNormalization's -mean, a
DEQUANTIZE, a float NEG and a QUANTIZE back to int8 (it does not quantise NEG). The three run as
one 256-entry table, each entry the references' float arithmetic: the value dequantised (the
scale as a double times q - zero point, rounded to float), negated, then quantised (divided by
the output scale in single precision, rounded half away from zero, plus the zero point,
saturated). TFLM and TFLite's BUILTIN_REF share those steps."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import round_half_away


def negate_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """-x requantised for the inputs -128..127, in order, as DEQUANTIZE, NEG, QUANTIZE compute it."""
    f32 = np.float32
    out = []
    for v in range(-128, 128):
        real = -f32(float(f32(in_scale)) * (v - int(in_zero)))
        out.append(max(-128, min(127, round_half_away(float(real / f32(out_scale))) + int(out_zero))))
    return np.array(out, np.int8)


class Int8Negate(Int8TableOp):
    kind = "Negate"
    table_of = staticmethod(negate_table)
