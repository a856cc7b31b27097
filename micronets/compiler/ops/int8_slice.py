"""int8 strided slice (TFLite STRIDED_SLICE / SLICE: ShuffleNet's channel split ``x[..., :c]``):
a copy of the selected elements, no arithmetic (both TFLite kernels copy the int8 values as
they are). Begin/end/stride masks and shrink axes are resolved at compile time, Python-slice
style; the ellipsis and new-axis masks and the ``offset`` form are refused."""

from __future__ import annotations

from typing import Sequence

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_transpose import collapse_gather
from micronets.compiler.ops.rearrange import row_major


class Int8Slice(Int8Op):
    kind = "Slice"
    template = "kernels/int8_slice.h.j2"
    requires = ("kernels/int8_transpose.h.j2",)

    def __init__(self, name, x, out, starts: Sequence[int], steps: Sequence[int], counts: Sequence[int]):
        """Per input axis (batch excluded): first element, step and number of elements taken."""
        super().__init__(name, [x], out, 0)
        if len(starts) != len(x.shape):
            raise UnsupportedModelError(f"slice '{name}' of {x.shape} has {len(starts)} axes")
        self.starts, self.steps, self.counts = (tuple(int(v) for v in a) for a in (starts, steps, counts))
        size = 1
        for c in self.counts:
            size *= c
        if size != out.size:
            raise UnsupportedModelError(f"slice '{name}' takes {self.counts} of {x.shape}, not the {out.shape} it writes")
        in_strides = row_major(x.shape)
        self.offset = sum(s * st for s, st in zip(self.starts, in_strides))
        self.dims, self.strides = collapse_gather(self.counts, [st * s for st, s in zip(in_strides, self.steps)], name)

    def describe(self):
        parts = [f"{s}:{s + c * st}:{st}" if (c, st) != (1, 1) else str(s) for s, c, st in zip(self.starts, self.counts, self.steps)]
        return f"{self.inputs[0].shape_str()} [{', '.join(parts)}]"
