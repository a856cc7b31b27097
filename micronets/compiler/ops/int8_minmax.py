"""int8 elementwise maximum / minimum (TFLite MAXIMUM, MINIMUM; Keras Maximum / Minimum merges,
``keras.ops.maximum``): out = max(a, b) or min(a, b) on the raw int8 values, any broadcasting
(both references compare the stored values without requantising; the converter gives operands
and output one quantisation, and an op whose operands differ from its output is refused, since
comparing values of two scales would not be a maximum). An operand may be an int8 constant."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import Tensor
from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op, broadcast_walk


class Int8MinMax(Int8Op):
    template = "kernels/int8_minmax.h.j2"

    def __init__(self, name, operands, out, maximum: bool):
        """``operands``: two, each a Tensor or (int8 array, Quant) for a constant."""
        tensors = [o for o in operands if isinstance(o, Tensor)]
        super().__init__(name, tensors, out, 0)
        self.maximum = bool(maximum)
        self.kind = "Maximum" if maximum else "Minimum"
        quants = [o.quant if isinstance(o, Tensor) else o[1] for o in operands]
        if any(q != out.quant for q in quants):
            raise UnsupportedModelError(f"{self.kind.lower()} '{name}' has operands quantised unlike its output "
                                        f"({', '.join(str(q) for q in quants)} -> {out.quant}); the references compare "
                                        "raw values, which is only a maximum / minimum with one quantisation")
        self.operands = [o if isinstance(o, Tensor) else np.asarray(o[0], np.int8) for o in operands]
        self.dims, self.strides = broadcast_walk(f"{self.kind.lower()} '{name}'", out.shape, *(o.shape for o in self.operands))

    def describe(self):
        return ", ".join(o.shape_str() if isinstance(o, Tensor) else f"const {tuple(o.shape)}" for o in self.operands)

    def typed_weights(self):
        w = collections.OrderedDict()
        for k, o in enumerate(self.operands):
            if not isinstance(o, Tensor):
                w["ab"[k]] = o.reshape(-1)
        return w

    def params(self):
        return int(sum(o.size for o in self.operands if not isinstance(o, Tensor)))

    def inplace_gap(self, input_index):
        return 0 if self.inputs[input_index].size == self.output.size else None  # not over a broadcast operand

    def operand_ptr(self, k, p):
        o = self.operands[k]
        return p.ptr(o) if isinstance(o, Tensor) else self.wname("ab"[k])
