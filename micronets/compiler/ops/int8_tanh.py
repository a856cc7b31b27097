"""int8 tanh (TFLite TANH; output scale 1/128, zero point 0) as a 256-entry table. The two
references differ, and each header follows its own: TFLM runs the integer algorithm
(``quant.tanh_int8``: the input multiplier from frexp of input_scale * 2^27 with no carry step,
the input radius, gemmlowp's fixed-point tanh, rounded to 2^-7); TFLite's BUILTIN_REF fills a
table at Prepare in single precision (x = scale * (v - zero point), tanhf(x) * 128 rounded half
away from zero, clamped). The kernel looks the value up (about 5 M4 instructions per value)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import libm_f32, q4_input_params, round_half_away, tanh_int8


def tanh_table(in_scale: float, in_zero: int) -> np.ndarray:
    """TFLM's int8 Tanh for the inputs -128..127, in order."""
    mult, shift, radius = q4_input_params(in_scale)
    return np.array([tanh_int8(v, int(in_zero), radius, mult, int(shift)) for v in range(-128, 128)], np.int8)


def tanh_table_float(in_scale: float, in_zero: int) -> np.ndarray:
    """TFLite's BUILTIN_REF int8 Tanh for the inputs -128..127: its single-precision table."""
    f32, tanhf = np.float32, libm_f32("tanhf", np.tanh)
    out = []
    for v in range(-128, 128):
        t = tanhf(f32(in_scale) * f32(v - int(in_zero)))
        out.append(max(-128, min(127, round_half_away(float(f32(t * f32(128)))))))
    return np.array(out, np.int8)


class Int8Tanh(Int8TableOp):
    kind = "Tanh"

    def __init__(self, name, x, out, reference: str = "tflm"):
        super().__init__(name, x, out)
        if out.quant.zero_point != 0 or out.quant.scale != 1.0 / 128:
            raise ValueError(f"tanh '{name}': output quantisation must be scale 1/128, zero point 0; got {out.quant}")
        self.table = (tanh_table_float if reference == "tflite-ref" else tanh_table)(x.quant.scale, x.quant.zero_point)
