"""int8 multiplication with broadcasting (TFLite MUL: squeeze-excite's channel scaling, gating):
one fixed-point multiplier input1_scale * input2_scale / output_scale, as TFLM and TFLite's
reference integer Mul."""

from __future__ import annotations

from micronets.compiler.ops.elementwise import _strides, collapse
from micronets.compiler.ops.int8_add import folded_mode, folded_zero
from micronets.compiler.ops.int8_base import Int8Op, requant_mode
from micronets.compiler.quant import quantize_multiplier


class Int8Mul(Int8Op):
    kind = "Multiply"
    template = "kernels/int8_mul.h.j2"
    requires = ("kernels/int8_add.h.j2",)  # mn_rq2

    def __init__(self, name, a, b, out, fused=0):
        super().__init__(name, [a, b], out, fused)
        self.dims, self.strides = collapse(out.shape, _strides(a.shape, out.shape), _strides(b.shape, out.shape))
        self.mult, self.shift = quantize_multiplier(float(a.quant.scale) * float(b.quant.scale) / float(out.quant.scale))
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point
        self.offs = (self.a_off, self.b_off)
        # (full operand, vector operand) when the output is P pixels x C channels and one operand
        # is a per-channel vector (squeeze-excite): int8_mul_vec, channel by channel
        self.vec = None
        d0, p, c = self.dims
        vector = (0, 0, 1)
        if d0 == 1 and p > 1:
            for i in (0, 1):
                if tuple(self.strides[i]) == (0, c, 1) and tuple(self.strides[1 - i]) == vector:
                    self.vec = (i, 1 - i)
                    break

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``): a product of two operands
        minus their zero points is at most 255 * 255 in magnitude."""
        return requant_mode(None, [255], [self.shift], self.act_min, self.act_max)

    @property
    def vec_rq_mode(self) -> int:
        """mn_rq2's RQ for int8_mul_vec (products of at most 255 * 255)."""
        return folded_mode(self.rq_mode, 255 * 255, self.mult, self.shift)

    @property
    def vec_zs(self) -> int:
        return folded_zero(self.vec_rq_mode, self.out_off, self.shift)

    def describe(self):
        return " x ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        # the output is walked in order; an operand of the output's full shape is read at the
        # element being written
        return 0 if self.inputs[input_index].shape == self.output.shape else None
