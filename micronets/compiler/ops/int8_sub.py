"""int8 subtraction (TFLite SUB; a Normalization layer's ``x - mean``, ``a - b`` in a graph, ``1 - x``).

Both references prepare SUB as ADD (both operands rescaled to twice the larger input scale with 20
bits of headroom, the result to the output scale) and subtract the second rescaled operand from
the first. (TFLite's source once ran its integer Add with the second multiplier negated, which
rounds ties of a negative product the other way; TensorFlow 2.21's BUILTIN_REF subtracts as TFLM
does, at every tie tests/test_int8.py puts it on.)

With a constant second operand (``x - c``) the rescaled constant is an integer computed here, so
the op is an addition of a constant (Int8AddConst's kernel) with that integer negated. A scalar
constant first (``c - x``: ``1 - x``, the negative part of a leaky ReLU with a threshold) leaves a
function of the int8 input alone: a 256-entry table of the references' integer steps
(Int8ConstMinus). Two activations use the portable kernel of int8_sub.h.j2."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_add import add_multipliers
from micronets.compiler.ops.int8_add_const import Int8AddConst
from micronets.compiler.ops.int8_base import Int8Op, Int8TableOp, broadcast_walk, rq8_mode
from micronets.compiler.quant import mbqm


class Int8SubConst(Int8AddConst):
    kind = "SubtractConstant"
    symbol = "-"

    def rescaled_constant(self, shifted: int, mult: int, shift: int) -> int:
        """The constant's term of the sum: -MBQM((c - zc) << 20)."""
        return -mbqm(shifted, mult, shift)


def const_minus_table(c: int, c_quant, x_quant, out_quant, act_min: int, act_max: int) -> np.ndarray:
    """TFLite SUB of a scalar constant ``c`` (raw int8) minus an int8 input, for the inputs
    -128..127 in order: both operands (minus their zero points, shifted up 20 bits) rescaled to
    twice the larger input scale, the input's term subtracted, the difference rescaled to the
    output, clamped to the fused activation's range."""
    (c_mult, c_shift), (x_mult, x_shift), (out_mult, out_shift) = add_multipliers(
        c_quant.scale, x_quant.scale, out_quant.scale)
    k = mbqm((int(c) - c_quant.zero_point) * (1 << 20), c_mult, c_shift)
    out = []
    for v in range(-128, 128):
        term = mbqm((v - x_quant.zero_point) * (1 << 20), x_mult, x_shift)
        out.append(max(act_min, min(act_max, mbqm(k - term, out_mult, out_shift) + out_quant.zero_point)))
    return np.array(out, np.int8)


class Int8ConstMinus(Int8TableOp):
    """c - x for a scalar constant c: a table (kernels/int8_lookup.h.j2), the fused activation's
    clamp included."""
    kind = "ConstantMinus"

    def __init__(self, name, const, const_quant, x, out, fused=0):
        Int8Op.__init__(self, name, [x], out, fused)
        values = np.asarray(const).reshape(-1)
        if values.size != 1:
            raise ValueError(f"sub '{name}': a constant of shape {tuple(np.shape(const))} minus an activation; "
                             "only a scalar constant is supported (c - x)")
        self.const = float((int(values[0]) - const_quant.zero_point) * const_quant.scale)
        self.table = const_minus_table(int(values[0]), const_quant, x.quant, out.quant, self.act_min, self.act_max)

    def describe(self):
        return f"{self.const:.6g} - {self.inputs[0].shape_str()}"


class Int8Sub(Int8Op):
    kind = "Subtract"
    template = "kernels/int8_sub.h.j2"

    def __init__(self, name, a, b, out, fused=0):
        super().__init__(name, [a, b], out, fused)
        self.dims, self.strides = broadcast_walk(f"sub '{name}'", out.shape, a.shape, b.shape)
        (self.a_mult, self.a_shift), (self.b_mult, self.b_shift), (self.out_mult, self.out_shift) = add_multipliers(
            a.quant.scale, b.quant.scale, out.quant.scale)
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def rq_modes(self):
        """mn_mbqm_rq's RQ for each operand ((x - z) 2^20: at most 255 x 2^20) and for their
        difference (each rescaled operand at most half that, their multipliers being at most 1/2,
        plus rounding)."""
        top = 255 << 20
        return rq8_mode(top, self.a_shift), rq8_mode(top, self.b_shift), rq8_mode(top + 2, self.out_shift)

    def describe(self):
        return " - ".join(t.shape_str() for t in self.inputs)

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand
