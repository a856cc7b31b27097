"""int8 concatenation along any axis (TFLite CONCATENATION) of inputs that share the output's scale
and zero point, which TFLite's converter arranges: a copy, no arithmetic, row by row. A row is
everything from the axis on (the channels of a pixel for the last axis; for axis k of an HxWxC map,
k = 0 joins whole maps, k = 1 rows of pixels), so there are prod(shape[:axis]) rows, each the
inputs' rows in turn, each copied first byte first, so that an input may lie inside the output's
bytes (``inplace_gap``)."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op


class Int8Concat(Int8Op):
    kind = "Concatenate"
    template = "kernels/int8_concat.h.j2"

    def __init__(self, name, parts, out, axis: int = -1):
        """``parts``: in order, tensors and constants (int8 arrays of one sample, already in the
        output's quantisation: a class token the model concatenates before its patches)."""
        super().__init__(name, [t for t in parts if not isinstance(t, np.ndarray)], out, 0)
        rank = len(out.shape)
        self.axis = axis % rank if rank else 0
        a = self.axis
        self.constants = tuple(np.ascontiguousarray(t, np.int8) for t in parts if isinstance(t, np.ndarray))
        #: per part: ("in", input index) or ("c", constant index)
        self.sources, k, c = [], 0, 0
        for t in parts:
            if isinstance(t, np.ndarray):
                self.sources.append(("c", c))
                c += 1
            elif t.quant != out.quant:
                raise UnsupportedModelError(f"concatenation '{name}': input '{t.name}' has quantisation {t.quant}, "
                                            f"the output {out.quant}; only inputs sharing the output's are supported")
            else:
                self.sources.append(("in", k))
                k += 1
            if len(t.shape) != rank or t.shape[:a] != out.shape[:a] or t.shape[a + 1:] != out.shape[a + 1:]:
                raise UnsupportedModelError(f"concatenation '{name}' joins {t.shape} into {out.shape} along axis {a}: "
                                            "the other axes must match")
        self.part_shapes = [tuple(t.shape) for t in parts]
        self.widths = [int(np.prod(t.shape[a:])) for t in parts]
        self.offsets = [int(v) for v in np.cumsum([0] + self.widths[:-1])]
        self.total = int(np.prod(out.shape[a:]))
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
        part = self.sources.index(("in", input_index))
        w, o = self.widths[part], self.offsets[part]
        return (self.total - w) * (self.outer - 1) + o

    def typed_weights(self):
        return collections.OrderedDict((f"c{k}", c.reshape(-1)) for k, c in enumerate(self.constants))

    def part_ptr(self, part, p) -> str:
        kind, k = self.sources[part]
        return p.ptr(self.inputs[k]) if kind == "in" else self.wname(f"c{k}")

    def describe(self):
        if self.axis == len(self.output.shape) - 1:
            return " + ".join(str(w) for w in self.widths) + " channels"
        return " + ".join(str(s[self.axis]) for s in self.part_shapes) + f" along axis {self.axis}"
