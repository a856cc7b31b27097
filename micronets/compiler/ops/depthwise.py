"""DepthwiseConv2D / DepthwiseConv1D, HWC, with fused BatchNorm/activation.

MACs: Ho*Wo*C*k*k. Depth multiplier 1 without dilation runs on the blocked depthwise kernel; a
depth multiplier M > 1 (or a dilation) is the grouped convolution with groups == C and C*M output
channels (output channel c*M + m, as Keras orders them), run by Conv2D's general kernel.
SeparableConv1D/2D are traced as a depthwise op followed by a pointwise Conv2D.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import converter, keras_activation
from micronets.compiler.ops.conv2d import (
    Conv2D,
    WindowedConv,
    as_2d,
    check_conv_layer,
    check_rank,
    out_shape,
    spatial_padding,
)


class DepthwiseConv2D(WindowedConv):
    kind = "DepthwiseConv2D"
    template = "kernels/depthwise.h.j2"
    grouped = False

    def __init__(self, name, x, out, kernel, bias, strides, pads):
        super().__init__(name, x, out, np.asarray(kernel)[:, :, :, 0], bias, strides, pads)  # (kh, kw, c)

    #: output pixels the in-place scratch holds: 4 (or 2) lets the kernel run as many neighbours
    #: at a time in place too; the planner keeps them only where the arena does not grow
    scratch_pixels = 1
    wide_scratch_pixels = (4, 2)

    def scratch_bytes(self):
        return self.scratch_pixels * super().scratch_bytes()

    def macs(self):
        ho, wo, c = self.output.hwc
        kh, kw, _ = self.kernel.shape
        return ho * wo * c * kh * kw

    def kernel_layout(self):
        return self.kernel.reshape(-1)  # [KH][KW][C]


def depthwise(layer, ctx, x, kernel, bias, name):
    """The op for a depthwise kernel (kh, kw, C, M) or (k, C, M) on ``x``."""
    check_rank(layer, x, 3 if kernel.ndim == 4 else 2)
    if kernel.ndim == 3:
        kernel = kernel[None]
    strides = as_2d(layer, x, layer.strides, 1)
    dilation = as_2d(layer, x, layer.dilation_rate, 1)
    src, pads, (ho, wo) = spatial_padding(layer, ctx, x, kernel.shape[:2], strides, dilation)
    kh, kw, c, m = kernel.shape
    out = ctx.new_tensor(name, out_shape(x, ho, wo, c * m))
    if m == 1 and dilation == (1, 1):
        return ctx.add(DepthwiseConv2D(name, src, out, kernel, bias, strides, pads))
    grouped = np.asarray(kernel).reshape(kh, kw, 1, c * m)
    return ctx.add(Conv2D(name, src, out, grouped, bias, strides, pads, dilation, groups=c))


@converter("DepthwiseConv2D", "DepthwiseConv1D")
def convert_depthwise(layer, inputs, ctx):
    check_conv_layer(layer)
    weights = layer.get_weights()
    op = depthwise(layer, ctx, inputs[0], weights[0], weights[1] if layer.use_bias else None, layer.name)
    return ctx.activation(op, keras_activation(layer.activation, layer), layer)


@converter("SeparableConv2D", "SeparableConv1D")
def convert_separable(layer, inputs, ctx):
    """Depthwise then pointwise: two ops, the intermediate tensor planned like any other."""
    check_conv_layer(layer)
    weights = layer.get_weights()
    dw = depthwise(layer, ctx, inputs[0], weights[0], None, f"{layer.name}_dw")
    x = dw.output
    pw_kernel = weights[1]
    if pw_kernel.ndim == 3:
        pw_kernel = pw_kernel[None]
    bias = weights[2] if layer.use_bias else None
    out = ctx.new_tensor(layer.name, x.shape[:-1] + (pw_kernel.shape[3],))
    op = ctx.add(Conv2D(f"{layer.name}_pw", x, out, pw_kernel, bias, (1, 1), (0, 0, 0, 0)))
    return ctx.activation(op, keras_activation(layer.activation, layer), layer)
