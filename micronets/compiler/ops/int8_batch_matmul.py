"""int8 batched matrix product of two activations (TFLite BATCH_MATMUL: attention's Q K^T and
softmax(.) V), out[b][i][j] = sum_k (L[b][i][k] - zL) (R[b][k][j] - zR) requantised. Either
operand may be stored transposed (``adj_x``, ``adj_y``: the kernel walks it by strides, no copy)
and batch axes broadcast (a stride of 0). Both references: one per-tensor multiplier, the input
scales multiplied in single precision then divided by the output scale in double
(GetQuantizedConvolutionMultipler), applied with MultiplyByQuantizedMultiplier; no fused
activation (the int8 range)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.rearrange import row_major
from micronets.compiler.quant import quantize_multiplier

#: batch axes the kernel walks (after the model's batch axis)
MAX_BATCH_AXES = 2


class Int8BatchMatMul(Int8Op):
    kind = "BatchMatMul"
    template = "kernels/int8_batch_matmul.h.j2"

    def __init__(self, name, lhs, rhs, out, adj_x=False, adj_y=False):
        super().__init__(name, [lhs, rhs], out, 0)
        ls, rs, os_ = tuple(lhs.shape), tuple(rhs.shape), tuple(out.shape)
        if len(ls) < 2 or len(rs) < 2:
            raise UnsupportedModelError(f"batch matmul '{name}': operands {ls} and {rs} are not matrices")
        self.m, self.k = (ls[-1], ls[-2]) if adj_x else (ls[-2], ls[-1])
        k_r, self.n = (rs[-1], rs[-2]) if adj_y else (rs[-2], rs[-1])
        batch = os_[:-2]
        if k_r != self.k or os_[-2:] != (self.m, self.n) or len(batch) > MAX_BATCH_AXES:
            raise UnsupportedModelError(f"batch matmul '{name}': {ls} x {rs} -> {os_} (adj {adj_x}, {adj_y}) "
                                        f"is not a product over at most {MAX_BATCH_AXES} batch axes")
        lst, rst = row_major(ls), row_major(rs)
        # per operand: strides of (batch axes padded to MAX_BATCH_AXES, rows / k, k / cols)
        self.lhs_strides = self._batch_strides(name, ls, lst, batch) + ((lst[-1], lst[-2]) if adj_x else (lst[-2], lst[-1]))
        self.rhs_strides = self._batch_strides(name, rs, rst, batch) + ((rst[-1], rst[-2]) if adj_y else (rst[-2], rst[-1]))
        self.batch = (1,) * (MAX_BATCH_AXES - len(batch)) + tuple(batch)
        real = float(np.float32(np.float32(lhs.quant.scale) * np.float32(rhs.quant.scale))) / float(np.float32(out.quant.scale))
        self.mult, self.shift = quantize_multiplier(real)
        self.l_off, self.r_off, self.out_off = -lhs.quant.zero_point, -rhs.quant.zero_point, out.quant.zero_point

    @staticmethod
    def _batch_strides(name, shape, strides, batch):
        b = shape[:-2]
        if len(b) > len(batch):
            raise UnsupportedModelError(f"batch matmul '{name}': operand {shape} has more batch axes than the output")
        b = (1,) * (len(batch) - len(b)) + tuple(b)
        st = (0,) * (len(batch) - len(shape[:-2])) + tuple(strides[:-2])
        out = []
        for d, s, o in zip(b, st, batch):
            if d not in (1, o):
                raise UnsupportedModelError(f"batch matmul '{name}': batch axis of {d} does not broadcast to {o}")
            out.append(0 if d == 1 else s)
        return (0,) * (MAX_BATCH_AXES - len(batch)) + tuple(out)

    def describe(self):
        return f"{self.inputs[0].shape_str()} x {self.inputs[1].shape_str()}"

    def macs(self):
        return int(np.prod(self.batch)) * self.m * self.n * self.k
