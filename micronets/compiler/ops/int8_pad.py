"""int8 spatial padding of an HWC map (or a sequence, a 1 x L map): TFLite's PAD, whose border
holds the output's zero point, and MIRROR_PAD, whose border mirrors the map: 'reflect' leaves the
edge out of the mirror (d c b | a b c d | c b a), 'symmetric' repeats it (b a | a b c d | d c).
Both copy the int8 values as they are, as TFLite's kernels do. A PAD read only by a convolution
is folded into that convolution's padding by the importer instead."""

from __future__ import annotations

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op

#: the border each mode writes
MODES = ("zero", "reflect", "symmetric")


class Int8Pad(Int8Op):
    kind = "ZeroPadding2D"
    template = "kernels/int8_pad.h.j2"

    def __init__(self, name, x, out, pads, value=0, mode: str = "zero"):
        """``pads``: (top, bottom, left, right); ``value``: the border of mode 'zero'."""
        super().__init__(name, [x], out, 0)
        if mode not in MODES:
            raise ValueError(f"pad mode {mode!r}; one of {MODES} expected")
        self.pads = tuple(int(p) for p in pads)
        self.value = int(value)
        self.mode = mode
        if mode != "zero":
            self.kind = "ReflectPadding2D" if mode == "reflect" else "SymmetricPadding2D"
            h, w, _ = x.hwc
            limit = (h - 1, w - 1) if mode == "reflect" else (h, w)
            top, bottom, left, right = self.pads
            if max(top, bottom) > limit[0] or max(left, right) > limit[1]:
                raise UnsupportedModelError(f"mirrors {list(self.pads)} around a {h}x{w} map: at most {limit[0]} rows "
                                            f"and {limit[1]} columns a side in mode '{mode}'")

    def describe(self):
        return ("pad " if self.mode == "zero" else f"{self.mode} pad ") + ",".join(map(str, self.pads))
