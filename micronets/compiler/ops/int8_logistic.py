"""int8 logistic (TFLite LOGISTIC; output scale 1/256, zero point -128) as a 256-entry table: the
output depends on the input value alone, so the compiler runs TFLite's reference integer algorithm
(``quant.logistic_int8``: the input multiplier from frexp of input_scale * 2^27 with no carry step,
as TFLite, its input radius, then gemmlowp's fixed-point exp and Newton-Raphson reciprocal) for
each of the 256 inputs, and the kernel looks the result up (about 5 instructions per value on a
Cortex-M4 instead of some 330 for the fixed-point evaluation; 256 bytes of flash per layer)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import libm_f32, logistic_int8, q4_input_params, round_half_away


def logistic_table(in_scale: float, in_zero: int) -> np.ndarray:
    """TFLite's int8 Logistic for the inputs -128..127, in order."""
    mult, shift, radius = q4_input_params(in_scale)
    return np.array([logistic_int8(v, int(in_zero), radius, mult, int(shift)) for v in range(-128, 128)], np.int8)


def logistic_table_float(in_scale: float, in_zero: int) -> np.ndarray:
    """TFLite's BUILTIN_REF int8 Logistic for the inputs -128..127: a table its kernel fills at
    Prepare in single precision (x = scale * (v - zero point); 1 / (1 + expf(-x)); times 256,
    rounded half away from zero; plus the -128 zero point; clamped). It differs from the integer
    algorithm TFLM runs (``logistic_table``) by 1 on a few inputs."""
    f32, expf = np.float32, libm_f32("expf", np.exp)
    out = []
    for v in range(-128, 128):
        t = f32(1) / (f32(1) + expf(-(f32(in_scale) * f32(v - int(in_zero)))))
        # roundf of t * 256 >= 0: half away from zero is floor(. + 0.5), exact in float32 here
        out.append(min(127, int(np.floor(t * f32(256) + f32(0.5))) - 128))
    return np.array(out, np.int8)


class Int8Logistic(Int8TableOp):
    kind = "Sigmoid"

    def __init__(self, name, x, out, reference: str = "tflm"):
        super().__init__(name, x, out)
        if out.quant.zero_point != -128 or out.quant.scale != 1.0 / 256:
            raise ValueError(f"logistic '{name}': output quantisation must be scale 1/256, zero point -128; got {out.quant}")
        # TFLM runs the integer algorithm; TFLite's BUILTIN_REF a table of single-precision values
        table = logistic_table_float if reference == "tflite-ref" else logistic_table
        self.table = table(x.quant.scale, x.quant.zero_point)
