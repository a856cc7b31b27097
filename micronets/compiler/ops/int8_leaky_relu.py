"""int8 leaky ReLU (TFLite LEAKY_RELU, Keras LeakyReLU) as a 256-entry table of the references'
QuantizeLeakyRelu: x - zero point >= 0 rescaled by input_scale / output_scale, below zero by
input_scale * alpha / output_scale (both products and quotients in single precision, as TFLM and
TFLite form them, then QuantizeMultiplier), MultiplyByQuantizedMultiplier, plus the output zero
point, saturated. A negative alpha (possible in an imported .tflite; Keras refuses one) is
applied as TFLM does: the magnitude's multiplier, the product negated."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8TableOp
from micronets.compiler.quant import mbqm, quantize_multiplier


def leaky_relu_table(in_scale: float, in_zero: int, out_scale: float, out_zero: int, alpha: float) -> np.ndarray:
    """The references' int8 LeakyRelu for the inputs -128..127, in order."""
    f32 = np.float32
    m_id, s_id = quantize_multiplier(float(f32(in_scale) / f32(out_scale)))
    m_alpha, s_alpha = quantize_multiplier(float(f32(in_scale) * f32(alpha) / f32(out_scale)))
    sign, m_alpha = (-1, -m_alpha) if m_alpha < 0 else (1, m_alpha)
    out = []
    for v in range(-128, 128):
        x = v - int(in_zero)
        y = mbqm(x, m_id, s_id) if x >= 0 else sign * mbqm(x, m_alpha, s_alpha)
        out.append(max(-128, min(127, y + int(out_zero))))
    return np.array(out, np.int8)


class Int8LeakyRelu(Int8TableOp):
    kind = "LeakyReLU"

    def __init__(self, name, x, out, alpha: float):
        super().__init__(name, x, out)
        self.alpha = float(np.float32(alpha))
        self.table = leaky_relu_table(x.quant.scale, x.quant.zero_point, out.quant.scale, out.quant.zero_point, self.alpha)

    def describe(self):
        return f"alpha {self.alpha:.9g}"
