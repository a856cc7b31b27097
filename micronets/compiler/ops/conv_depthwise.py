"""Conv2D -> DepthwiseConv2D fused through a ring of rows: the conv's output (often the widest
tensor of a block, e.g. a MobileNet pointwise expansion or a PhiNet 1x1 expansion) is never
stored whole. The kernel computes the conv's output rows on demand into a ring of as many rows
as the depthwise kernel is tall, and the depthwise reads them from there.

Same arithmetic, in the same order, as the two ops run apart; MACs are the sum of both.
Applied by a graph rewrite when the conv's only reader is the depthwise that runs right after it
and the conv output has at least twice as many rows as the ring.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import Op, fuse_pairs, rewrite
from micronets.compiler.ops.conv2d import Conv2D
from micronets.compiler.ops.depthwise import DepthwiseConv2D


def ring_inplace_gap(op, itemsize: int, rows_per_pass: int = 1) -> int:
    """The in-place gap of a conv -> depthwise ring op (float or int8; ``itemsize`` bytes an
    element): output pixel q is stored once every conv row it needs is in the ring; after that
    the conv still reads input from the first row of its next conv row on. rows_per_pass: output
    rows stored together once the conv rows of the last of them are in the ring."""
    h, w, cin = op.inputs[0].hwc
    ht = op.mid.hwc[0]
    ho, wo, cout = op.output.hwc
    sd, pd, kd = op.dw.strides[0], op.dw.pads[0], op.ring_rows - (rows_per_pass - 1)  # (the ring: KD + rows_per_pass - 1 rows)
    sc, pc = op.conv.strides[0], op.conv.pads[0]
    oy = np.minimum(np.arange(ho) // rows_per_pass * rows_per_pass + rows_per_pass - 1, ho - 1)  # a pass's last output row
    last_row = np.minimum(oy * sd - pd + kd - 1, ht - 1)  # conv rows needed by output row (its pass)
    next_in = np.clip((last_row + 1) * sc - pc, 0, h) * w * cin * itemsize
    next_in = np.where(last_row >= ht - 1, np.iinfo(np.int64).max // 4, next_in)  # no more reads
    first_read_after = np.repeat(next_in, wo)[:-1]  # per output pixel q = 0 .. n-2
    out_end = np.arange(1, ho * wo) * cout * itemsize
    if out_end.size == 0:
        return -(h * w * cin + ho * wo * cout) * itemsize
    return int(np.max(out_end - first_read_after))


class ConvDepthwise(Op):
    kind = "Conv2D+DepthwiseConv2D"
    template = "kernels/conv_depthwise.h.j2"
    requires = ("kernels/conv2d.h.j2", "kernels/depthwise.h.j2")  # it calls their row kernels

    def __init__(self, conv: Conv2D, dw: DepthwiseConv2D):
        super().__init__(f"{conv.name}+{dw.name}", list(conv.inputs), dw.output)
        self.conv, self.dw = conv, dw
        self.mid = conv.output  # (HT, WT, CT): only ever held as a ring of rows

    def macs(self):
        return self.conv.macs() + self.dw.macs()

    def weights(self):
        w = collections.OrderedDict()
        for prefix, op in (("c", self.conv), ("d", self.dw)):
            for suffix, array in op.weights().items():
                w[prefix + suffix] = array
        return w

    def activations(self):
        return [self.conv.act, self.dw.act]

    def label(self):
        return f"{self.conv.label()} -> {self.dw.label()} (ring of {self.ring_rows} rows)"

    @property
    def ring_rows(self) -> int:
        return int(self.dw.kernel.shape[0])

    def workspace_bytes(self):
        ht, wt, ct = self.mid.hwc
        # the ring only: output pixels read nothing but the ring, so they are stored straight
        # into the output even in place (no one-pixel scratch)
        return self.ring_rows * wt * ct * FLOAT_BYTES

    def inplace_gap(self, input_index):
        return ring_inplace_gap(self, FLOAT_BYTES)

    def inplace_gap_reverse(self, input_index):
        """Walking output pixels last to first (conv rows computed bottom-up), output pixel q may
        be stored at or after the end of the input rows that earlier pixels still need:
        ``offset(input) - offset(output) <= max_gap``."""
        h, w, cin = self.inputs[0].hwc
        ho, wo, cout = self.output.hwc
        sd, pd = self.dw.strides[0], self.dw.pads[0]
        sc, pc, kc = self.conv.strides[0], self.conv.pads[0], int(self.conv.kernel.shape[0])
        first_row = np.maximum(np.arange(ho) * sd - pd, 0)  # lowest conv row output row y needs
        # after output row y is done, conv rows < first_row(y) remain: they read input up to this row
        last_in = np.minimum((first_row - 1) * sc - pc + kc - 1, h - 1)
        read_end = np.where(first_row > 0, (last_in + 1) * w * cin * FLOAT_BYTES, -np.iinfo(np.int64).max // 4)
        # pixel q (row-major index) is stored while later (lower) pixels still need read_end of its row
        q = np.arange(ho * wo)
        need = np.repeat(read_end, wo)
        return int(-np.max(need - q * cout * FLOAT_BYTES))


@rewrite(stage=1)
def fuse_conv_depthwise(ops, kept):
    """Replace each Conv2D whose only reader is the DepthwiseConv2D right after it by one op."""
    return fuse_pairs(ops, kept, lambda a, b: (type(a) is Conv2D and isinstance(b, DepthwiseConv2D) and not a.grouped
                                              and a.output.hwc[0] >= 2 * int(b.kernel.shape[0])), ConvDepthwise)
