"""int8 spatial zero padding (TFLite PAD of an HWC map): the border holds the zero point. A PAD
read only by a convolution is folded into that convolution's padding by the importer instead."""

from __future__ import annotations

from micronets.compiler.ops.int8_base import Int8Op


class Int8Pad(Int8Op):
    kind = "ZeroPadding2D"
    template = "kernels/int8_pad.h.j2"

    def __init__(self, name, x, out, pads, value):
        super().__init__(name, [x], out, 0)
        self.pads = tuple(int(p) for p in pads)
        self.value = int(value)

    def describe(self):
        return "pad " + ",".join(map(str, self.pads))
