"""int8 addition of a constant (TFLite ADD with one constant operand, scalar or broadcast: a
Rescaling layer's offset, ``x + 3`` before a ReLU6): TFLite's integer Add with the constant's
operand rescaled at compile time (``MBQM((c - zc) << 20)`` to twice the larger input scale, exactly
the integer the kernel would compute), so each output costs one rescale of x, one add and the
output rescale, as in TFLM and TFLite's reference kernels."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_add import AddRequant, add_multipliers, rescale_e, rescaled_max
from micronets.compiler.ops.int8_mul_const import Int8ConstOperand, broadcast_constant
from micronets.compiler.quant import mbqm


class Int8AddConst(AddRequant, Int8ConstOperand):
    kind = "AddConstant"
    symbol = "+"
    template = "kernels/int8_add_const.h.j2"
    requires = ("kernels/int8_add.h.j2",)  # mn_add_rescale

    def __init__(self, name, x, const, const_quant, out, fused=0):
        super().__init__(name, [x], out, fused)
        const = np.asarray(const)
        self.dims, (self.x_strides, self.k_strides) = broadcast_constant(name, x, const, out)
        (self.x_mult, self.x_shift), (c_mult, c_shift), (self.out_mult, self.out_shift) = add_multipliers(
            x.quant.scale, const_quant.scale, out.quant.scale)
        self.k = np.array([self.rescaled_constant((int(c) - int(const_quant.zero_point)) * (1 << 20), c_mult, c_shift)
                           for c in const.reshape(-1).tolist()], np.int32)
        self.const_shape = tuple(int(d) for d in const.shape)
        self.x_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point
        self.x_e = rescale_e(self.x_mult, self.x_shift)
        self.sum_max = rescaled_max(self.x_mult, self.x_shift) + int(np.abs(self.k.astype(np.int64)).max(initial=0))

    def rescaled_constant(self, shifted: int, mult: int, shift: int) -> int:
        """The constant's term of the sum, from (c - zc) << 20: TFLite's MBQM with its multiplier."""
        return mbqm(shifted, mult, shift)
