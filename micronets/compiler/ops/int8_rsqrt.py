"""int8 reciprocal square root (TFLite RSQRT: LayerNormalization's 1 / sqrt(variance + epsilon)) as
a 256-entry table. TFLM and TFLite's BUILTIN_REF run the same integer algorithm: the input minus
its zero point through GetInvSqrtQuantizedMultiplierExp (``quant.inv_sqrt_multiplier_exp``), that
multiplier applied to 1 with 20 bits of headroom, then the output multiplier 1 / (sqrt(input
scale) * output scale) (sqrt and product in single precision, the reciprocal in double), both
with MultiplyByQuantizedMultiplier. An input at the zero point gives 127. Below it both references
stop with an error ("only defined for positive values"); the table gives 127 there too."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import inv_sqrt_multiplier_exp, mbqm, quantize_multiplier

HEADROOM = 20


def rsqrt_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int) -> np.ndarray:
    """The references' int8 RSQRT for the inputs -128..127, in order."""
    f32 = np.float32
    mult, shift = quantize_multiplier(1.0 / float(f32(np.sqrt(f32(in_scale))) * f32(out_scale)))
    out = []
    for v in range(-128, 128):
        x = v - int(in_zero)
        if x <= 0:
            out.append(127)
            continue
        m, s = inv_sqrt_multiplier_exp(x)
        data = mbqm(1, m, s + HEADROOM)
        out.append(max(-128, min(127, mbqm(data, mult, shift - HEADROOM) + int(out_zero))))
    return np.array(out, np.int8)


class Int8Rsqrt(Int8TableOp):
    kind = "Rsqrt"
    table_of = staticmethod(rsqrt_table)
