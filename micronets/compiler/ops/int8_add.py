"""int8 addition of two same-shape tensors (TFLite ADD), TFLite's rescaling: both inputs to twice
the larger input scale with 20 bits of headroom, the sum to the output scale."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.quant import quantize_multiplier


class Int8Add(Int8Op):
    kind = "Add"
    template = "kernels/int8_add.h.j2"

    def __init__(self, name, a, b, out, fused=0):
        super().__init__(name, [a, b], out, fused)
        if a.size != out.size or b.size != out.size:
            raise ValueError(f"add '{name}': {a.shape} + {b.shape} -> {out.shape} needs broadcasting, which is not supported")
        twice_max = 2.0 * float(max(np.float32(a.quant.scale), np.float32(b.quant.scale)))
        self.a_mult, self.a_shift = quantize_multiplier(float(a.quant.scale) / twice_max)
        self.b_mult, self.b_shift = quantize_multiplier(float(b.quant.scale) / twice_max)
        self.out_mult, self.out_shift = quantize_multiplier(twice_max / ((1 << 20) * float(out.quant.scale)))
        self.a_off, self.b_off = -a.quant.zero_point, -b.quant.zero_point
        self.out_off = out.quant.zero_point

    def inplace_gap(self, input_index):
        return 0
