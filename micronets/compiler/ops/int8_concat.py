"""int8 concatenation along the last axis (TFLite CONCATENATION) of inputs that share the output's
scale and zero point, which TFLite's converter arranges: a copy, no arithmetic, row by row (each
output row the inputs' rows in turn, each copied first byte first), so that an input may lie
inside the output's bytes (``inplace_gap``)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op


class Int8Concat(Int8Op):
    kind = "Concatenate"
    template = "kernels/int8_concat.h.j2"

    def __init__(self, name, inputs, out):
        super().__init__(name, list(inputs), out, 0)
        for t in inputs:
            if t.quant != out.quant:
                raise UnsupportedModelError(f"concatenation '{name}': input '{t.name}' has quantisation {t.quant}, "
                                            f"the output {out.quant}; only inputs sharing the output's are supported")
            if t.shape[:-1] != out.shape[:-1]:
                raise UnsupportedModelError(f"concatenation '{name}' joins {t.shape} into {out.shape}: only the last axis is supported")
        self.widths = [int(t.shape[-1]) for t in inputs]
        self.offsets = [int(v) for v in np.cumsum([0] + self.widths[:-1])]
        self.total = int(out.shape[-1])
        if sum(self.widths) != self.total:
            raise UnsupportedModelError(f"concatenation '{name}': widths {self.widths} do not add up to {self.total}")
        self.outer = out.size // self.total

    def inplace_gap(self, input_index):
        """Input i (width w at channel o of C) read in place: row r's w bytes are read once the
        output's first C r + o bytes are written (rows before, inputs before i in row r), then
        copied first byte first to C r + o, which is at or below where they are read. Row r of
        the input starts at gap + w r, so it is intact where gap + w r >= C r + o for every row,
        the last one hardest: gap >= (C - w)(rows - 1) + o. The input then ends at or before the
        output does: the planner may put the whole of it inside the output."""
        w, o = self.widths[input_index], self.offsets[input_index]
        return (self.total - w) * (self.outer - 1) + o

    def describe(self):
        return " + ".join(str(w) for w in self.widths) + " channels"
