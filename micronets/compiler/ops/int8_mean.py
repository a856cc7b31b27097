"""int8 mean over the spatial axes (TFLite MEAN over axes 1, 2: global average pooling), as
QuantizedMeanOrSum: the division by the pixel count folded into the multiplier at compile time."""

from __future__ import annotations

from micronets.compiler.ops.int8_base import Int8Op, requant_mode
from micronets.compiler.quant import quantize_multiplier


def fold_count(mult: int, shift: int, n: int):
    """(multiplier, shift) with the division by ``n`` folded in, as TFLite's QuantizedMeanOrSum."""
    extra = min(n.bit_length() - 1, 32, 31 + shift)
    m = int((mult << extra) // n) if extra >= 0 else int((mult >> -extra) // n)
    return m, shift - extra


class Int8Mean(Int8Op):
    kind = "GlobalAveragePooling2D"
    template = "kernels/int8_mean.h.j2"

    def __init__(self, name, x, out):
        super().__init__(name, [x], out, 0)
        h, w, c = x.hwc
        self.pixels, self.channels = h * w, c
        if out.size != c:
            raise ValueError(f"mean '{name}': {x.shape} -> {out.shape} is not a mean over the spatial axes")
        mult, shift = quantize_multiplier(float(x.quant.scale) / float(out.quant.scale))
        n = self.pixels
        self.mult, self.shift = fold_count(mult, shift, n)
        self.zin_hw = x.quant.zero_point * n
        self.out_off = out.quant.zero_point

    @property
    def rq_mode(self) -> int:
        """The requantisation the kernel may use (``requant_mode``): |sum - zin * HW| <= 255 * HW."""
        return requant_mode(None, [self.pixels], [self.shift], -128, 127)

    def describe(self):
        return f"{self.pixels} pixels"

    close_kind = "mean"

    def closes_rows(self) -> bool:
        """A global average closes a row stream: per-channel sums of the rows (mn_mean_close)."""
        return True

    def transposed(self, x, out):
        """The same mean of ``x``, the map with rows and columns swapped (``Int8Windowed.transposed``)."""
        return self.evolve(inputs=[x], output=out)

    def inplace_gap(self, input_index):
        return 0
