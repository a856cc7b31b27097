"""int8 Conv2D -> DepthwiseConv2D fused through a ring of rows (as the float path's
ConvDepthwise): the conv's output, often the widest tensor of a block (a MobileNet stem or
pointwise expansion, a PhiNet 1x1 expansion), is never stored whole; the kernel computes its rows
on demand into a ring as tall as the depthwise kernel. Each part keeps its own requantisation, so
the result is the two ops' bit for bit. MACs are the sum of both.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import fuse_pairs
from micronets.compiler.ops.conv_depthwise import ring_inplace_gap
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_conv import Int8Conv2D
from micronets.compiler.ops.int8_depthwise import Int8DepthwiseConv2D


class Int8ConvDepthwise(Int8Op):
    kind = "Conv2D+DepthwiseConv2D"
    template = "kernels/int8_conv_depthwise.h.j2"
    # it calls int8_pointwise / int8_conv_px for the conv rows and the depthwise kernels for its rows
    requires = ("kernels/int8_params.h.j2", "kernels/int8_pointwise.h.j2", "kernels/int8_conv2d.h.j2",
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
        for prefix, arrays in (("c", self.conv.typed_weights()), ("d", self.dw.typed_weights())):
            for suffix, array in arrays.items():
                w[prefix + suffix] = array
        return w

    def label(self):
        return f"{self.conv.label()} -> {self.dw.label()} (ring of {self.ring_rows} rows)"

    def scales(self):
        return f"{self.conv.scales()}; {self.dw.scales()}"

    @property
    def ring_rows(self) -> int:
        return self.dw.kh + (1 if self.two_rows else 0)

    @property
    def ring_pads(self) -> "tuple[int, int]":
        """Columns the depthwise windows reach left and right of the conv's rows."""
        _, wt, _ = self.mid.hwc
        wo = self.output.hwc[1]
        left = self.dw.pads[2]
        return left, max(0, (wo - 1) * self.dw.strides[1] - left + self.dw.kw - wt)

    def ring_bytes(self, padded: bool = False) -> int:
        """The ring of conv rows; padded: each row with the columns the windows reach outside
        it, held at the depthwise input's zero point (then a row outside the map is a ring slot
        filled with it), plus 3 bytes so the DSP kernel's word loads of a last group of fewer
        than four channels stay inside."""
        _, wt, ct = self.mid.hwc
        if not padded:
            return self.ring_rows * wt * ct
        return self.ring_rows * (wt + sum(self.ring_pads)) * ct + 3

    def table_bytes(self, padded: bool) -> int:
        """The depthwise's weights and parameters unpacked for the DSP kernel (2 KH KW + 16 words
        a group of four channels, the last C % 4 a group too where the ring is padded and they are
        two or three, or one of the flat pattern's P), word aligned."""
        c = self.dw.output.hwc[2]
        # the last C % 4 channels: a group of their own from a padded ring (two or three), else
        # TFLite's layout (mn_dw_rows_q's TG)
        groups = self._flat(padded) or ((c + 3) // 4 if padded and c % 4 >= 2 else c // 4)
        return groups * (2 * self.dw.kh * self.dw.kw + 16) * 4 + 3

    @property
    def workspace_options(self) -> "tuple[tuple[bool, bool, bool], ...]":
        """(padded ring, unpacked table, two rows) settings, best first: the padded ring lets the
        DSP layout's depthwise read every tap without a border test; the table saves unpacking
        each group's weights and parameters for every output row; without one, two rows (stride
        1: a ring of KD + 1 rows) have two output rows computed a pass, each group unpacked once
        for both. The planner keeps the best that costs no arena; the plain ring is always
        possible."""
        if not self.dw.dsp_layout:
            return ()
        two = self.dw.strides[0] == 1 and self.output.hwc[0] >= 2
        return tuple(o for o in ((True, True, False), (True, False, True), (True, False, False), (False, True, False),
                                 (False, False, True), (False, False, False)) if two or not o[2])

    #: the planner's choice among ``workspace_options`` (None: the last one, the plain ring)
    workspace_option = None
    workspace_needed = True

    @property
    def padded_ring(self) -> bool:
        return bool(self.workspace_option and self.workspace_option[0])

    @property
    def dw_table(self) -> bool:
        return bool(self.workspace_option and self.workspace_option[1])

    @property
    def two_rows(self) -> bool:
        """Two depthwise output rows a pass (the ring a row taller)."""
        return bool(self.workspace_option and self.workspace_option[2])

    def _flat(self, padded: bool) -> int:
        c = self.dw.output.hwc[2]
        if c % 4 == 0 or self.dw.strides[1] != 1 or (self.dw.kh, self.dw.kw) != (3, 3) or not self.dw.dsp_layout or not padded:
            return 0
        p = int(np.lcm(4, c)) // 4
        return p if p <= 4 else 0

    @property
    def dw_flat(self) -> int:
        """With a channel count not a multiple of 4 (a thin stem, say), stride 1 along rows and
        the padded ring, the depthwise reads each row as one run of bytes, 4 at a time whatever
        pixel they belong to: lane l of byte group g is channel (4 g + l) % C, a pattern of P =
        lcm(4, C) / 4 groups (returned where it is at most 4; 0: channel groups of four)."""
        return self._flat(self.padded_ring)

    def workspace_bytes(self):
        # the ring only: output pixels read nothing but the ring, so they are stored straight into
        # the output even in place (ring_inplace_gap: a whole output row is stored before the conv
        # reads any more input)
        return self.ring_bytes(self.padded_ring) + (self.table_bytes(self.padded_ring) if self.dw_table else 0)

    def ring_ptr(self, placed) -> str:
        return f"arena_s8 + {placed.workspace_offset()}"

    def inplace_gap(self, input_index):
        return ring_inplace_gap(self, 1, 2 if self.two_rows else 1)


def fuse_conv_depthwise(ops, kept):
    """Each int8 Conv2D whose only reader is the depthwise conv right after it (dilation 1, at
    least twice as many conv rows as the ring) becomes one fused op."""
    return fuse_pairs(ops, kept, lambda a, b: (type(a) is Int8Conv2D and type(b) is Int8DepthwiseConv2D
                                              and b.dilation == (1, 1) and a.output.hwc[0] >= 2 * b.kh),
                      Int8ConvDepthwise)
