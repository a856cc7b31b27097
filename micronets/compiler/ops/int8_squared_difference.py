"""int8 squared difference (TFLite SQUARED_DIFFERENCE: LayerNormalization's (x - mean)^2), with
numpy broadcasting. Both references prepare it as SUB's relative with 7 bits of headroom: each
operand minus its zero point, shifted up 7 bits, rescaled to twice the larger input scale; their
difference squared (below 2^31: |difference| <= 255 x 2^7); that rescaled to the output scale,
(2 max scale)^2 / (2^14 output scale), plus the output's zero point, saturated. TFLM quantises
that output multiplier with QuantizeMultiplier and applies it with MultiplyByQuantizedMultiplier;
TFLite's BUILTIN_REF with their smaller-than-one variants: the same integers below one. The
converter does choose output scales that make it 1 or more (a LayerNormalization of inputs that
vary little: 1.27 and 1.28 in random models); TFLM runs those, TFLite's interpreter aborts on
them, so a header built for BUILTIN_REF refuses them."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_add import operand_multipliers
from micronets.compiler.ops.int8_base import Int8Op, broadcast_walk, rq8_mode
from micronets.compiler.quant import quantize_multiplier

LEFT_SHIFT = 7


class Int8SquaredDifference(Int8Op):
    kind = "SquaredDifference"
    template = "kernels/int8_squared_difference.h.j2"

    def __init__(self, name, a, b, out, reference="tflm"):
        super().__init__(name, [a, b], out, 0)
        self.dims, self.strides = broadcast_walk(f"squared difference '{name}'", out.shape, a.shape, b.shape)
        twice_max, (self.a_mult, self.a_shift), (self.b_mult, self.b_shift) = operand_multipliers(a.quant.scale,
                                                                                                  b.quant.scale)
        real_out = twice_max * twice_max / float(np.float32((1 << 2 * LEFT_SHIFT) * np.float32(out.quant.scale)))
        if real_out >= 1.0 and reference == "tflite-ref":
            raise UnsupportedModelError(f"squared difference '{name}': output multiplier {real_out:.3g} is not below one, "
                                        f"which TFLite's interpreter does not run (it aborts); TFLM does (reference='tflm')")
        self.out_mult, self.out_shift = quantize_multiplier(real_out)
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def rq_modes(self):
        """mn_mbqm_rq's RQ for each operand ((x - z) 2^7: at most 255 x 2^7) and mn_rq8's for the
        square (each rescaled operand at most half that, their multipliers being at most 1/2, plus
        rounding: the difference at most 255 x 2^7 + 2)."""
        top = 255 << LEFT_SHIFT
        return rq8_mode(top, self.a_shift), rq8_mode(top, self.b_shift), rq8_mode((top + 2) ** 2, self.out_shift)

    def describe(self):
        return " vs ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand
