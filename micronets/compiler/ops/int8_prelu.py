"""int8 parametric ReLU (TFLite PRELU, Keras PReLU): the slopes are a stored int8 constant
broadcast over the activation (one per channel with ``shared_axes=[1, 2]``, one per element by
default). As TFLM's reference (BroadcastPrelu4DSlow): v = x - zero point; v >= 0 gives
MBQM(v, input_scale / output_scale); below zero MBQM(v * (alpha - alpha zero point),
input_scale * alpha_scale / output_scale) (both multipliers from double products); plus the output
zero point, saturated. The slopes minus their zero point are stored once as int16."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import rq8_mode
from micronets.compiler.ops.int8_mul_const import Int8ConstOperand, broadcast_constant
from micronets.compiler.quant import quantize_multiplier


class Int8Prelu(Int8ConstOperand):
    kind = "PReLU"
    symbol = "prelu"
    template = "kernels/int8_prelu.h.j2"

    def __init__(self, name, x, alpha, alpha_quant, out):
        super().__init__(name, [x], out, 0)
        alpha = np.asarray(alpha)
        self.dims, (self.x_strides, self.k_strides) = broadcast_constant(name, x, alpha, out)
        self.k = (alpha.astype(np.int32) - int(alpha_quant.zero_point)).reshape(-1).astype(np.int16)
        self.const_shape = tuple(int(d) for d in alpha.shape)
        sx, sa, so = float(x.quant.scale), float(alpha_quant.scale), float(out.quant.scale)
        self.mult_pos, self.shift_pos = quantize_multiplier(sx / so)
        self.mult_neg, self.shift_neg = quantize_multiplier(sx * sa / so)
        self.x_off = -x.quant.zero_point
        self.out_off = out.quant.zero_point

    @property
    def rq_modes(self):
        """mn_rq8's RQ for the positive and the negative branch (|v| <= 255, |v k| <= 255 max |k|)."""
        top = int(np.abs(self.k.astype(np.int64)).max()) if self.k.size else 0
        return rq8_mode(255, self.shift_pos), rq8_mode(255 * top, self.shift_neg)

    def describe(self):
        return f"{self.inputs[0].shape_str()}, slopes {'x'.join(map(str, self.const_shape)) or 'scalar'}"
