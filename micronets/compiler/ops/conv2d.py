"""Conv2D: k x k convolution (any kernel, stride, padding), HWC, with fused BatchNorm/activation.

MACs: Ho*Wo*Cout*k*k*Cin. A 1x1, stride-1, unpadded conv uses the pointwise kernel.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import (
    Op,
    UnsupportedModelError,
    conv_output,
    converter,
    keras_activation_name,
    per_pixel_gap,
    spatial_detail,
)


class WindowedConv(Op):
    """What Conv2D and DepthwiseConv2D share: a kernel sliding over an HWC map with strides and
    (absorbed) padding, an optional bias, BatchNorm folding, one-pixel-scratch in-place execution."""

    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias, strides, pads):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.strides = tuple(strides)
        self.pads = tuple(pads)  # top, bottom, left, right

    def fold_scale_shift(self, scale, shift):
        """Fold a per-output-channel ``y * scale + shift`` (BatchNorm) into kernel and bias."""
        self.kernel = self.kernel * scale
        self.bias = (self.bias if self.bias is not None else 0.0) * scale + shift

    def kernel_layout(self) -> np.ndarray:
        """The kernel flattened in the order the C++ kernel reads it."""
        raise NotImplementedError

    def weights(self):
        w = collections.OrderedDict(w=self.kernel_layout())
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def describe(self):
        return spatial_detail(self.kernel.shape[:2], self.strides, self.pads)

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads)

    def scratch_bytes(self):
        return self.output.hwc[2] * FLOAT_BYTES


class Conv2D(WindowedConv):
    kind = "Conv2D"
    template = "kernels/conv2d.h.j2"

    @property
    def pointwise(self) -> bool:
        kh, kw = self.kernel.shape[:2]
        return (kh, kw) == (1, 1) and self.strides == (1, 1) and not any(self.pads)

    def macs(self):
        ho, wo, cout = self.output.hwc
        kh, kw, cin, _ = self.kernel.shape
        return ho * wo * cout * kh * kw * cin

    def kernel_layout(self):
        return np.transpose(self.kernel, (3, 0, 1, 2)).reshape(-1)  # [COUT][KH][KW][CIN]


def spatial_padding(layer, ctx, x, kernel, strides):
    """Resolve padding of a spatial layer: its own ('valid'/'same') plus any ZeroPadding2D absorbed
    from its input. Returns (source tensor, pads (t, b, l, r), output (ho, wo))."""
    from micronets.compiler.ops.base import same_pads

    src, zp = ctx.unpad(x)
    h, w, _ = src.hwc
    hp, wp = h + zp[0] + zp[1], w + zp[2] + zp[3]
    padding = getattr(layer, "padding", "valid")
    if padding == "same":
        pt, pb = same_pads(hp, kernel[0], strides[0])
        pl, pr = same_pads(wp, kernel[1], strides[1])
    elif padding == "valid":
        pt = pb = pl = pr = 0
    else:
        raise UnsupportedModelError(f"layer '{layer.name}' uses padding '{padding}'; supported: valid, same")
    pads = (zp[0] + pt, zp[1] + pb, zp[2] + pl, zp[3] + pr)
    ho = conv_output(h, kernel[0], strides[0], pads[0], pads[1])
    wo = conv_output(w, kernel[1], strides[1], pads[2], pads[3])
    if ho < 1 or wo < 1:
        raise UnsupportedModelError(f"layer '{layer.name}' gets a {h}x{w} input, too small for its {kernel[0]}x{kernel[1]} kernel")
    return src, pads, (ho, wo)


def check_conv_layer(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    if tuple(getattr(layer, "dilation_rate", (1, 1))) != (1, 1):
        raise UnsupportedModelError(f"layer '{layer.name}' uses dilation_rate={layer.dilation_rate}; only 1 is supported")
    if getattr(layer, "groups", 1) != 1:
        raise UnsupportedModelError(f"layer '{layer.name}' uses groups={layer.groups}; only 1 is supported")


@converter("Conv2D")
def convert_conv2d(layer, inputs, ctx):
    check_conv_layer(layer)
    kernel = layer.get_weights()[0]
    bias = layer.get_weights()[1] if layer.use_bias else None
    strides = tuple(layer.strides)
    src, pads, (ho, wo) = spatial_padding(layer, ctx, inputs[0], kernel.shape[:2], strides)
    out = ctx.new_tensor(layer.name, (ho, wo, kernel.shape[3]))
    op = ctx.add(Conv2D(layer.name, src, out, kernel, bias, strides, pads))
    return ctx.activation(op, keras_activation_name(layer.activation, layer), layer)
