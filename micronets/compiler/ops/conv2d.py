"""Conv2D: k x k convolution (any kernel, stride, padding), HWC, with fused BatchNorm/activation.

MACs: Ho*Wo*Cout*k*k*Cin. A 1x1, stride-1, unpadded conv uses the pointwise kernel.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import (
    Op,
    merged_kernel,
    UnsupportedModelError,
    conv_output,
    converter,
    keras_activation,
    per_pixel_gap,
    spatial_detail,
)


class WindowedConv(Op):
    """What Conv2D and DepthwiseConv2D share: a kernel sliding over an HWC map with strides,
    dilation and (absorbed) padding, an optional bias, BatchNorm folding, one-pixel-scratch
    in-place execution. Sequences (L, C) are 1 x L x C maps."""

    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias, strides, pads, dilation=(1, 1)):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)
        self.bias = None if bias is None else np.asarray(bias, np.float64)
        self.strides = tuple(int(s) for s in strides)
        self.pads = tuple(int(p) for p in pads)  # top, bottom, left, right
        self.dilation = tuple(int(d) for d in dilation)
        kh, kw = self.kernel.shape[:2]
        reach = ((kh - 1) * self.dilation[0] + 1, (kw - 1) * self.dilation[1] + 1)
        if self.bias is None and (max(self.pads[:2]) >= reach[0] or max(self.pads[2:]) >= reach[1]):
            # absorbed zero padding holds whole windows: their outputs are the bias alone, which
            # the kernels start from; without one, they would start from a first tap there is not
            self.bias = np.zeros(out.hwc[2])

    def folded(self, scale, shift) -> "WindowedConv":
        """This op with a per-output-channel ``y * scale + shift`` (BatchNorm) folded in."""
        bias = (self.bias if self.bias is not None else 0.0) * scale + shift
        return self.evolve(kernel=self.kernel * scale, bias=np.asarray(bias, np.float64))

    def kernel_layout(self) -> np.ndarray:
        """The kernel flattened in the order the C++ kernel reads it."""
        raise NotImplementedError

    def weights(self):
        w = collections.OrderedDict(w=self.kernel_layout())
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def describe(self):
        text = spatial_detail(self.kernel.shape[:2], self.strides, self.pads)
        if self.dilation != (1, 1):
            text += f" dilation {self.dilation[0]},{self.dilation[1]}"
        return text

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads)

    def scratch_bytes(self):
        return self.output.hwc[2] * FLOAT_BYTES


class Conv2D(WindowedConv):
    """Convolution, HWC; ``groups`` > 1 splits channels into independent groups (a depthwise
    convolution with a channel multiplier is the case groups == input channels)."""

    kind = "Conv2D"
    template = "kernels/conv2d.h.j2"

    def __init__(self, name, x, out, kernel, bias, strides, pads, dilation=(1, 1), groups=1):
        super().__init__(name, x, out, kernel, bias, strides, pads, dilation)
        self.groups = int(groups)

    #: output pixels the in-place scratch holds (see ``wide_scratch_pixels``)
    scratch_pixels = 1

    @property
    def wide_scratch_pixels(self):
        """The pointwise kernel runs four pixels at a time (then two), in place too with a four- or
        two-pixel scratch; the planner gives it one only where the arena does not grow."""
        pixels = self.output.hwc[0] * self.output.hwc[1]
        return tuple(n for n in (4, 2) if n <= pixels) if self.pointwise else ()

    def scratch_bytes(self):
        return self.scratch_pixels * super().scratch_bytes()

    @property
    def grouped(self) -> bool:
        """Runs on the general kernel (groups or dilation), not the blocked fast one."""
        return self.groups != 1 or self.dilation != (1, 1)

    @property
    def pointwise(self) -> bool:
        kh, kw = self.kernel.shape[:2]
        return (kh, kw) == (1, 1) and self.strides == (1, 1) and not any(self.pads) and not self.grouped

    def macs(self):
        ho, wo, cout = self.output.hwc
        kh, kw, cin_per_group, _ = self.kernel.shape
        return ho * wo * cout * kh * kw * cin_per_group

    def describe(self):
        text = super().describe()
        return text + (f" groups {self.groups}" if self.groups != 1 else "")

    def kernel_layout(self):
        return np.transpose(self.kernel, (3, 0, 1, 2)).reshape(-1)  # [COUT][KH][KW][CIN/G]


def spatial_padding(layer, ctx, x, kernel, strides, dilation=(1, 1)):
    """Resolve padding of a spatial layer: its own ('valid'/'same'/'causal') plus any ZeroPadding
    absorbed from its input. Returns (source tensor, pads (t, b, l, r), output (ho, wo))."""
    from micronets.compiler.ops.base import same_pads

    src, zp = ctx.unpad(x)
    h, w, _ = src.hwc
    hp, wp = h + zp[0] + zp[1], w + zp[2] + zp[3]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    padding = getattr(layer, "padding", "valid")
    if padding == "same":
        pt, pb = same_pads(hp, eff[0], strides[0])
        pl, pr = same_pads(wp, eff[1], strides[1])
    elif padding == "valid":
        pt = pb = pl = pr = 0
    elif padding == "causal":
        pt = pb = pr = 0
        pl = eff[1] - 1
    else:
        raise UnsupportedModelError(f"layer '{layer.name}' uses padding '{padding}'; supported: valid, same, causal")
    pads = (zp[0] + pt, zp[1] + pb, zp[2] + pl, zp[3] + pr)
    ho = conv_output(h, eff[0], strides[0], pads[0], pads[1])
    wo = conv_output(w, eff[1], strides[1], pads[2], pads[3])
    if ho < 1 or wo < 1:
        raise UnsupportedModelError(f"layer '{layer.name}' gets a {h}x{w} input, too small for its {kernel[0]}x{kernel[1]} kernel")
    return src, pads, (ho, wo)


def check_conv_layer(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")


def as_2d(layer, x, value, one):
    """A 1-D layer's per-axis setting (kernel size, stride, dilation) as the 2-D (1, value)."""
    return (one, int(value[0] if isinstance(value, (tuple, list)) else value)) if len(x.shape) == 2 else tuple(int(v) for v in value)


def out_shape(x, ho, wo, channels):
    """The op's output shape in the input's rank: (L, C) for sequences, (H, W, C) for maps."""
    return (wo, channels) if len(x.shape) == 2 else (ho, wo, channels)


def check_rank(layer, x, rank):
    if len(x.shape) != rank:
        raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}) expects a rank-{rank} input per sample; got {x.shape}")


@converter("Conv2D", "Conv1D")
def convert_conv(layer, inputs, ctx):
    check_conv_layer(layer)
    x = inputs[0]
    check_rank(layer, x, 3 if type(layer).__name__ == "Conv2D" else 2)
    kernel = merged_kernel(layer)
    if kernel.ndim == 3:
        kernel = kernel[None]  # (1, k, cin/g, cout)
    bias = layer.get_weights()[1] if layer.use_bias else None
    strides = as_2d(layer, x, layer.strides, 1)
    dilation = as_2d(layer, x, layer.dilation_rate, 1)
    src, pads, (ho, wo) = spatial_padding(layer, ctx, x, kernel.shape[:2], strides, dilation)
    out = ctx.new_tensor(layer.name, out_shape(x, ho, wo, kernel.shape[3]))
    op = ctx.add(Conv2D(layer.name, src, out, kernel, bias, strides, pads, dilation, getattr(layer, "groups", 1)))
    return ctx.activation(op, keras_activation(layer.activation, layer), layer)
