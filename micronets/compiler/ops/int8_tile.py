"""int8 tile (TFLite TILE: what Keras' UpSampling1D / UpSampling2D become, a RESHAPE that opens a
unit axis beside the repeated one, TILE along it, and a RESHAPE that closes it): a copy, no
arithmetic (TFLite's kernel copies the values; the converter keeps the quantisation). Each axis
of D elements tiled M times is M copies of it, read with step 0 over the copies: a gather over
twice the axes, merged where the input stays contiguous (``collapse_gather``)."""

from __future__ import annotations

from typing import Sequence

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_transpose import collapse_gather


class Int8Tile(Int8Op):
    kind = "Tile"
    template = "kernels/int8_tile.h.j2"
    requires = ("kernels/int8_transpose.h.j2",)

    def __init__(self, name, x, out, multiples: Sequence[int]):
        """``multiples``: per input axis, batch excluded."""
        super().__init__(name, [x], out, 0)
        self.multiples = tuple(int(m) for m in multiples)
        if len(self.multiples) != len(x.shape) or min(self.multiples, default=1) < 1:
            raise UnsupportedModelError(f"tile '{name}' of {x.shape} by {list(self.multiples)}: one multiple >= 1 an axis expected")
        if tuple(d * m for d, m in zip(x.shape, self.multiples)) != tuple(out.shape):
            raise UnsupportedModelError(f"tile '{name}': {x.shape} tiled {list(self.multiples)} is not the {out.shape} it writes")
        if x.quant != out.quant or x.dtype != out.dtype:
            raise UnsupportedModelError(f"tile '{name}' changes the quantisation")
        in_strides, step = [], 1
        for d in reversed(x.shape):
            in_strides.append(step)
            step *= d
        dims, strides = [], []
        for d, m, s in zip(x.shape, self.multiples, reversed(in_strides)):
            dims += [m, d]
            strides += [0, s]
        self.dims, self.strides = collapse_gather(dims, strides, name)

    def describe(self):
        return f"{self.inputs[0].shape_str()} x {','.join(map(str, self.multiples))} -> {self.output.shape_str()}"
