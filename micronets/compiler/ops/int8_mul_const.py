"""int8 multiplication by a constant (TFLite MUL with one constant operand, scalar or broadcast:
MobileNetV3's hard-sigmoid ``* 1/6``, a Rescaling layer's ``* scale``): the constant's
``c - zero point`` values are stored once (int16, in [-255, 255]); each output is TFLite's
integer Mul of the two operands, one fixed-point multiplier input_scale * const_scale /
output_scale, as TFLM and TFLite's reference kernels compute it."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.elementwise import _strides, collapse
from micronets.compiler.ops.int8_base import Int8Op, requant_mode
from micronets.compiler.quant import quantize_multiplier


def broadcast_constant(name, x, const, out):
    """(dims, (x strides, constant strides)) walking ``out`` (batch axis included in the
    constant's shape as TFLite stores it) over at most three collapsed axes. Either operand may
    be broadcast (numpy rules: a (1, 1, C) activation times an (H, W, 1) constant walks both)."""
    full = (1,) + tuple(out.shape)
    const = np.asarray(const)
    xs = (1,) + tuple(x.shape)
    try:
        if tuple(np.broadcast_shapes(const.shape, xs)) != full:
            raise ValueError
    except ValueError:
        raise UnsupportedModelError(f"'{name}': {list(xs)} and constant {list(const.shape)} do not broadcast to {list(full)}") from None
    return collapse(full, _strides(xs, full), _strides(const.shape, full))


class Int8ConstOperand(Int8Op):
    """An elementwise op of one activation and one stored constant (``k``, broadcast over it)."""

    symbol = "?"

    def describe(self):
        return f"{self.inputs[0].shape_str()} {self.symbol} constant {'x'.join(map(str, self.const_shape)) or 'scalar'}"

    def typed_weights(self):
        return collections.OrderedDict(k=self.k)

    def params(self):
        return int(self.k.size)

    def inplace_gap(self, input_index):
        # each output reads only the input element at its own index, unless the activation is
        # broadcast (then an input element is read again after outputs overwrote it)
        return 0 if self.inputs[0].size == self.output.size else None


class Int8MulConst(Int8ConstOperand):
    kind = "MultiplyConstant"
    symbol = "x"
    template = "kernels/int8_mul_const.h.j2"

    def __init__(self, name, x, const, const_quant, out, fused=0):
        super().__init__(name, [x], out, fused)
        const = np.asarray(const)
        self.dims, (self.x_strides, self.k_strides) = broadcast_constant(name, x, const, out)
        self.k = (const.astype(np.int32) - int(const_quant.zero_point)).reshape(-1).astype(np.int16)
        self.const_shape = tuple(int(d) for d in const.shape)
        self.mult, self.shift = quantize_multiplier(float(x.quant.scale) * float(const_quant.scale) / float(out.quant.scale))
        self.x_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``): |x - zx| <= 255 and
        |k| <= 255, so |product| <= 255 * 255."""
        return requant_mode(None, [int(np.abs(self.k.astype(np.int32)).max(initial=0))], [self.shift], self.act_min, self.act_max)
