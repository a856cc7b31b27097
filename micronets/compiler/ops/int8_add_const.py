"""int8 addition of a constant (TFLite ADD with one constant operand, scalar or broadcast: a
Rescaling layer's offset, ``x + 3`` before a ReLU6): TFLite's integer Add with the constant's
operand rescaled at compile time (``MBQM((c - zc) << 20)`` to twice the larger input scale, exactly
the integer the kernel would compute), so each output costs one rescale of x, one add and the
output rescale, as in TFLM and TFLite's reference kernels."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_add import add_rq_mode, folded_zero, rescale_e, rescaled_max
from micronets.compiler.ops.int8_mul_const import Int8ConstOperand, broadcast_constant
from micronets.compiler.quant import mbqm, quantize_multiplier


class Int8AddConst(Int8ConstOperand):
    kind = "AddConstant"
    symbol = "+"
    template = "kernels/int8_add_const.h.j2"
    requires = ("kernels/int8_add.h.j2",)  # mn_add_rescale

    def __init__(self, name, x, const, const_quant, out, fused=0):
        super().__init__(name, [x], out, fused)
        const = np.asarray(const)
        self.dims, (self.x_strides, self.k_strides) = broadcast_constant(name, x, const, out)
        twice_max = 2.0 * float(max(np.float32(x.quant.scale), np.float32(const_quant.scale)))
        self.x_mult, self.x_shift = quantize_multiplier(float(x.quant.scale) / twice_max)
        c_mult, c_shift = quantize_multiplier(float(const_quant.scale) / twice_max)
        self.out_mult, self.out_shift = quantize_multiplier(twice_max / ((1 << 20) * float(out.quant.scale)))
        self.k = np.array([mbqm((int(c) - int(const_quant.zero_point)) * (1 << 20), c_mult, c_shift)
                           for c in const.reshape(-1).tolist()], np.int32)
        self.const_shape = tuple(int(d) for d in const.shape)
        self.x_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point
        self.x_e = rescale_e(self.x_mult, self.x_shift)
        self.sum_max = rescaled_max(self.x_mult, self.x_shift) + int(np.abs(self.k.astype(np.int64)).max(initial=0))

    @property
    def rq_mode(self) -> int:
        return add_rq_mode(self.sum_max, self.out_mult, self.out_shift, self.act_min, self.act_max)

    @property
    def zs(self) -> int:
        return folded_zero(self.rq_mode, self.out_off, self.out_shift)
