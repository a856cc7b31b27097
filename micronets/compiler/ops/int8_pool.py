"""int8 average / max pooling (TFLite AVERAGE_POOL_2D, MAX_POOL_2D): the window clipped to the
input, input and output with one quantisation, fused activation as a clamp. A max pooling may
also have a border that its taps read (``border``): the zero point of a PAD folded into it by the
importer, so the padded copy of the map is never made."""

from __future__ import annotations

from micronets.compiler.ops.base import per_pixel_gap, spatial_detail
from micronets.compiler.ops.int8_base import Int8Op


class Int8Pool(Int8Op):
    template = "kernels/int8_pool.h.j2"

    def __init__(self, name, x, out, kernel, strides, pads, average: bool, fused=0, border=None):
        super().__init__(name, [x], out, fused)
        if x.quant != out.quant:
            raise ValueError(f"pooling '{name}' changes the quantisation ({x.quant} -> {out.quant}); TFLite requires the same")
        if border is not None and (average or not -128 <= int(border) <= 127):
            raise ValueError(f"pooling '{name}': only a max pooling reads a border, of an int8 value (got {border})")
        #: None: taps outside the input are skipped (TFLite's pooling); else the int8 value they read
        #: (a folded PAD's zero point: TFLite's MAX_POOL_2D over the padded map)
        self.border = None if border is None else int(border)
        self.kernel = tuple(int(k) for k in kernel)
        self.strides = tuple(int(s) for s in strides)
        self.pads = tuple(int(p) for p in pads)
        self.average = bool(average)
        self.kind = "AveragePooling2D" if average else "MaxPooling2D"

    def describe(self):
        text = spatial_detail(self.kernel, self.strides, self.pads)
        return text if self.border is None else f"{text}, border {self.border}"

    @property
    def border_value(self) -> int:
        """The kernels' PV: the value taps outside the input read, -128 where they are skipped (a
        max never lies below -128, so that reading changes nothing)."""
        return -128 if self.border is None else self.border

    close_kind = "avg"

    def closes_rows(self) -> bool:
        """An average pooling whose one window is the whole map (a global average) closes a row
        stream: per-channel sums of the rows, divided as the kernel does (mn_pool_avg_close)."""
        return (self.average and self.output.hwc[:2] == (1, 1) and not any(self.pads)
                and self.kernel == self.inputs[0].hwc[:2])

    def transposed(self, x, out):
        """This pooling with rows and columns swapped (see ``Int8Windowed.transposed``)."""
        t, b, l, r = self.pads
        return self.evolve(inputs=[x], output=out, kernel=self.kernel[::-1], strides=self.strides[::-1], pads=(l, r, t, b))

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads, itemsize=1)

    def scratch_bytes(self):
        return self.output.hwc[2]
