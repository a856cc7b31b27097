"""DepthwiseConv2D (depth_multiplier 1), HWC, with fused BatchNorm/activation.

MACs: Ho*Wo*C*k*k. SeparableConv2D is traced as this op followed by a pointwise Conv2D.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import (
    Op,
    UnsupportedModelError,
    converter,
    keras_activation_name,
    per_pixel_gap,
    spatial_detail,
)
from micronets.compiler.ops.conv2d import Conv2D, check_conv_layer, spatial_padding


class DepthwiseConv2D(Op):
    kind = "DepthwiseConv2D"
    template = "kernels/depthwise.h.j2"
    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias, strides, pads):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)[:, :, :, 0]  # (kh, kw, c)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.strides = tuple(strides)
        self.pads = tuple(pads)

    def fold_scale_shift(self, scale, shift):
        self.kernel = self.kernel * scale
        self.bias = (self.bias if self.bias is not None else 0.0) * scale + shift

    def macs(self):
        ho, wo, c = self.output.hwc
        kh, kw, _ = self.kernel.shape
        return ho * wo * c * kh * kw

    def weights(self):
        w = collections.OrderedDict(w=self.kernel.reshape(-1))
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def describe(self):
        return spatial_detail(self.kernel.shape[:2], self.strides, self.pads)

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads)

    def scratch_bytes(self):
        return self.output.hwc[2] * FLOAT_BYTES


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
