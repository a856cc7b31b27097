"""Requantisation of an int8 tensor to another integer type/scale (TFLite QUANTIZE between integer
types, e.g. the uint8 output of a model whose graph is int8)."""

from __future__ import annotations

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import RANGES, quantize_multiplier


class Int8Requantize(Int8Op):
    kind = "Quantize"
    template = "kernels/int8_requantize.h.j2"

    def __init__(self, name, x, out):
        super().__init__(name, [x], out, 0)
        self.mult, self.shift = quantize_multiplier(float(x.quant.scale) / float(out.quant.scale))
        self.zin, self.zout = x.quant.zero_point, out.quant.zero_point
        self.lo, self.hi = RANGES[out.dtype]

    def describe(self):
        return f"{self.inputs[0].dtype} -> {self.output.dtype}"

    def inplace_gap(self, input_index):
        return 0
