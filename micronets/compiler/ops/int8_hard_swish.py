"""int8 hard-swish (TFLite HARD_SWISH: x * relu6(x + 3) / 6) as a 256-entry table: the output of
an int8 elementwise function depends on the input value alone, so the compiler runs TFLite's
reference integer algorithm (int16 fixed point: the input on a 2^-7 finer scale, a "reluish"
factor, a doubling high multiply, rounding shifts) for each of the 256 inputs and the kernel
looks the result up.

TFLM and TFLite's BUILTIN_REF run the same integer algorithm but not quite the same multipliers:
BUILTIN_REF divides the scales in single precision, TFLM (measured against the tflite-micro
wheel: 30 of 30 scale pairs where the two differ) in double, which moves the output multiplier's
low bits and, rarely, an output by 1. The table follows the reference the header is built for."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import quantize_multiplier

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def _wrap16(x: int) -> int:
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16."""
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    v = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    q = abs(v) >> 15
    return _wrap16(q if v >= 0 else -q)


def _sdhm16(a: int, b: int) -> int:
    """TFLite's SaturatingDoublingHighMul (no rounding) on int16."""
    if a == b == INT16_MIN:
        return INT16_MAX
    ab = a * b
    q = abs(ab) >> 15
    return _wrap16(q if ab >= 0 else -q)


def _sat_shl16(x: int, amount: int) -> int:
    return max(INT16_MIN, min(INT16_MAX, x * (1 << amount)))


def _rdbpot(x: int, exponent: int) -> int:
    mask = (1 << exponent) - 1
    return (x >> exponent) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def _to_int16_multiplier(m32: int) -> int:
    """DownScaleInt32ToInt16Multiplier: round to the top 16 bits, saturating."""
    if m32 >= (1 << 31) - 1 - (1 << 15):
        return INT16_MAX
    return (m32 + (1 << 15)) >> 16


def hard_swish_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int, reference: str = "tflm") -> np.ndarray:
    """The 256 outputs, as TFLM (``reference`` 'tflm') or BUILTIN_REF ('tflite-ref') computes them."""
    f32 = np.float32
    hires_scale = f32(1.0 / 128.0) * f32(in_scale)
    reluish_scale = f32(3.0) / f32(32768.0)

    def ratio(a, b) -> float:
        return float(np.float64(a) / np.float64(b)) if reference == "tflm" else float(f32(a / b))

    out_m32, out_exp = quantize_multiplier(ratio(hires_scale, f32(out_scale)))
    if out_exp > 0:
        raise ValueError("hard-swish output scale too small for TFLite's int8 kernel")
    relu_m32, relu_exp = quantize_multiplier(ratio(hires_scale, reluish_scale))
    out_m16, relu_m16 = _to_int16_multiplier(out_m32), _to_int16_multiplier(relu_m32)
    table = []
    for q in range(-128, 128):
        value = _wrap16(q - in_zero)
        hires = _wrap16(value * 128)
        preshift_scale = _srdhm16(hires, out_m16)
        reluish = hires
        if relu_exp > 0:
            reluish = _sat_shl16(reluish, relu_exp - 1)
        reluish = _srdhm16(reluish, relu_m16)
        if relu_exp > 0:
            reluish = _sat_shl16(reluish, 1)
        if relu_exp < 0:
            reluish = _rdbpot(reluish, -relu_exp)
        reluish = _wrap16((reluish + (1 << 15)) >> 1)
        out = _rdbpot(_sdhm16(reluish, preshift_scale), -out_exp)
        out = _wrap16(out + out_zero)
        table.append(max(-128, min(127, out)))
    return np.array(table, np.int8)


class Int8HardSwish(Int8TableOp):
    kind = "HardSwish"

    def __init__(self, name, x, out, reference: str = "tflm"):
        super().__init__(name, x, out)
        self.table = hard_swish_table(x.quant.scale, x.quant.zero_point, out.quant.scale, out.quant.zero_point, reference)
