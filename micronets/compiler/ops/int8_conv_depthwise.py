"""int8 Conv2D -> DepthwiseConv2D fused through a ring of rows (as the float path's
ConvDepthwise): the conv's output, often the widest tensor of a block (a MobileNet stem or
pointwise expansion, a PhiNet 1x1 expansion), is never stored whole; the kernel computes its rows
on demand into a ring as tall as the depthwise kernel. Each part keeps its own requantisation, so
the result is the two ops' bit for bit. MACs are the sum of both.
"""

from __future__ import annotations

import collections

from micronets.compiler.ops.base import fuse_pairs
from micronets.compiler.ops.conv_depthwise import ring_inplace_gap
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D


class Int8ConvDepthwise(Int8Op):
    kind = "Conv2D+DepthwiseConv2D"
    template = "kernels/int8_conv_depthwise.h.j2"
    # it calls int8_conv_px / int8_pw_px for the conv rows and int8_dw_px for the depthwise pixels
    requires = ("kernels/int8_params.h.j2", "kernels/int8_conv2d.h.j2", "kernels/int8_pointwise.h.j2",
                "kernels/int8_depthwise.h.j2")

    def __init__(self, conv: Int8Conv2D, dw: Int8DepthwiseConv2D):
        super().__init__(f"{conv.name}+{dw.name}", list(conv.inputs), dw.output, dw.fused)
        self.conv, self.dw = conv, dw
        self.mid = conv.output  # (HT, WT, CT): only ever held as a ring of rows

    def macs(self):
        return self.conv.macs() + self.dw.macs()

    def weights_bytes_bound(self):
        return self.conv.weights_bytes_bound() + self.dw.weights_bytes_bound()

    def params(self):
        return self.conv.params() + self.dw.params()

    def typed_weights(self):
        w = collections.OrderedDict()
        for prefix, arrays in (("c", self.conv.typed_weights()),
                               ("d", self.dw.dsp_weights() if self.dw.dsp_layout else self.dw.typed_weights())):
            for suffix, array in arrays.items():
                w[prefix + suffix] = array
        return w

    def label(self):
        return f"{self.conv.label()} -> {self.dw.label()} (ring of {self.ring_rows} rows)"

    def scales(self):
        return f"{self.conv.scales()}; {self.dw.scales()}"

    @property
    def ring_rows(self) -> int:
        return self.dw.kh

    def ring_bytes(self) -> int:
        _, wt, ct = self.mid.hwc
        return self.ring_rows * wt * ct

    def workspace_bytes(self):
        # the ring only: output pixels read nothing but the ring, so they are stored straight into
        # the output even in place (ring_inplace_gap: a whole output row is stored before the conv
        # reads any more input)
        return self.ring_bytes()

    def ring_ptr(self, placed) -> str:
        return f"arena_s8 + {placed.plan.workspace[self]}"

    def inplace_gap(self, input_index):
        return ring_inplace_gap(self, 1)


def fuse_conv_depthwise(ops, kept):
    """Each int8 Conv2D whose only reader is the depthwise conv right after it (dilation 1, at
    least twice as many conv rows as the ring) becomes one fused op."""
    return fuse_pairs(ops, kept, lambda a, b: (type(a) is Int8Conv2D and type(b) is Int8DepthwiseConv2D
                                              and b.dilation == (1, 1) and a.output.hwc[0] >= 2 * b.kh),
                      Int8ConvDepthwise)
