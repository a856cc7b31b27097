"""DepthwiseConv2D (depth_multiplier 1), HWC, with fused BatchNorm/activation.

MACs: Ho*Wo*C*k*k. SeparableConv2D is traced as this op followed by a pointwise Conv2D.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError, converter, keras_activation_name
from micronets.compiler.ops.conv2d import Conv2D, WindowedConv, check_conv_layer, spatial_padding


class DepthwiseConv2D(WindowedConv):
    kind = "DepthwiseConv2D"
    template = "kernels/depthwise.h.j2"

    def __init__(self, name, x, out, kernel, bias, strides, pads):
        super().__init__(name, x, out, np.asarray(kernel)[:, :, :, 0], bias, strides, pads)  # (kh, kw, c)

    def macs(self):
        ho, wo, c = self.output.hwc
        kh, kw, _ = self.kernel.shape
        return ho * wo * c * kh * kw

    def kernel_layout(self):
        return self.kernel.reshape(-1)  # [KH][KW][C]


def _depthwise(layer, ctx, x, kernel, bias, name):
    if kernel.shape[3] != 1:
        raise UnsupportedModelError(f"layer '{layer.name}' uses depth_multiplier={kernel.shape[3]}; only 1 is supported")
    strides = tuple(layer.strides)
    src, pads, (ho, wo) = spatial_padding(layer, ctx, x, kernel.shape[:2], strides)
    out = ctx.new_tensor(name, (ho, wo, kernel.shape[2]))
    return ctx.add(DepthwiseConv2D(name, src, out, kernel, bias, strides, pads))


@converter("DepthwiseConv2D")
def convert_depthwise(layer, inputs, ctx):
    check_conv_layer(layer)
    weights = layer.get_weights()
    op = _depthwise(layer, ctx, inputs[0], weights[0], weights[1] if layer.use_bias else None, layer.name)
    return ctx.activation(op, keras_activation_name(layer.activation, layer), layer)


@converter("SeparableConv2D")
def convert_separable(layer, inputs, ctx):
    """Depthwise then pointwise: two ops, the intermediate tensor planned like any other."""
    check_conv_layer(layer)
    weights = layer.get_weights()
    dw = _depthwise(layer, ctx, inputs[0], weights[0], None, f"{layer.name}_dw")
    x = dw.output
    pw_kernel = weights[1]
    bias = weights[2] if layer.use_bias else None
    h, w, _ = x.hwc
    out = ctx.new_tensor(layer.name, (h, w, pw_kernel.shape[3]))
    op = ctx.add(Conv2D(f"{layer.name}_pw", x, out, pw_kernel, bias, (1, 1), (0, 0, 0, 0)))
    return ctx.activation(op, keras_activation_name(layer.activation, layer), layer)
