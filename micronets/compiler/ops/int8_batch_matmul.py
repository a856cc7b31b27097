"""int8 batched matrix product of two activations (TFLite BATCH_MATMUL: attention's Q K^T and
softmax(.) V), out[b][i][j] = sum_k (L[b][i][k] - zL) (R[b][k][j] - zR) requantised. Either
operand may be stored transposed (``adj_x``, ``adj_y``: the kernel walks it by strides, no copy)
and batch axes broadcast (a stride of 0). Both references: one per-tensor multiplier, the input
scales multiplied in single precision then divided by the output scale in double
(GetQuantizedConvolutionMultipler), applied with MultiplyByQuantizedMultiplier; no fused
activation (the int8 range).

The converter wraps attention's products in TRANSPOSEs (of K before Q K^T, of V, of the scores
after it); ``fuse_transposes`` folds each into the product's strides, so a transposed operand is
read where it lies and transposed scores are written where they go: neither is stored."""

from __future__ import annotations

import collections
from typing import List, Optional, Sequence, Tuple

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op, rq8_mode
from micronets.compiler.ops.int8_transpose import Int8Transpose, gather_indices
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
        #: where output element (b0, b1, i, j) goes: row-major unless a transpose was folded in
        self.out_strides = tuple(row_major(self.batch + (self.m, self.n)))
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

    @property
    def rq_mode(self) -> int:
        """mn_rq8's RQ: an accumulator is a sum of K products of two operands minus their zero
        points, each at most 255 * 255 in magnitude."""
        return rq8_mode(self.k * 255 * 255, self.shift)

    @property
    def walk(self) -> int:
        """The kernel's walk for two int8 operands, from the strides (the caller's uint8 / float
        input always takes the plain loop): 1 both read along k (Q K^T), 2 L along k and R along
        its rows (softmax(.) V), 3 R along k and L along its rows, 0 none of these."""
        lm, lk = self.lhs_strides[-2:]
        rk, rn = self.rhs_strides[-2:]
        return 1 if lk == 1 and rk == 1 else 2 if lk == 1 and rn == 1 else 3 if rk == 1 and lm == 1 else 0

    def describe(self):
        return f"{self.inputs[0].shape_str()} x {self.inputs[1].shape_str()}"

    def macs(self):
        return int(np.prod(self.batch)) * self.m * self.n * self.k


def _refit(dims: Sequence[int], strides: Sequence[int], index: np.ndarray) -> Optional[Tuple[int, ...]]:
    """Strides over ``dims`` that reach ``index[p]`` wherever ``strides`` reached element p (a
    walk through a transpose's element map): None where that is no strided walk from 0."""
    at = index[gather_indices(dims, strides)]
    unit = [int(np.prod(dims[k + 1:])) for k in range(len(dims))]
    new = tuple(int(at[u] - at[0]) if d > 1 else 0 for d, u in zip(dims, unit))
    return new if at[0] == 0 and np.array_equal(at, gather_indices(dims, new)) else None


def fuse_transposes(ops: List, kept) -> List:
    """``ops`` with each transpose that only feeds a batch matmul (an operand) or only reads one
    (its output; neither one of ``kept``, the model outputs) folded into that product's strides."""
    readers = collections.Counter(id(t.storage) for op in ops for t in op.inputs)
    made = {id(op.output.storage): op for op in ops}
    out = list(ops)
    for k, op in enumerate(out):
        if not isinstance(op, Int8BatchMatMul):
            continue
        for slot, attr, dims in ((0, "lhs_strides", op.batch + (op.m, op.k)), (1, "rhs_strides", op.batch + (op.k, op.n))):
            t = made.get(id(op.inputs[slot].storage))
            if (isinstance(t, Int8Transpose) and readers[id(t.output.storage)] == 1 and t.output.storage not in kept
                    and t.output.storage is op.inputs[slot].storage):
                new = _refit(dims, getattr(op, attr), gather_indices(t.dims, t.strides))
                if new is not None:
                    inputs = list(op.inputs)
                    inputs[slot] = t.inputs[0]
                    op = out[k] = op.evolve(inputs=inputs, **{attr: new})
                    out[next(j for j, o in enumerate(out) if o is t)] = None
        readers_of_out = [r for r in out if r is not None and any(x.storage is op.output.storage for x in r.inputs)]
        if (len(readers_of_out) == 1 and isinstance(readers_of_out[0], Int8Transpose) and op.output.storage not in kept
                and readers_of_out[0].inputs[0] is op.output):
            t = readers_of_out[0]
            dims = op.batch + (op.m, op.n)
            position = np.argsort(gather_indices(t.dims, t.strides))  # where each of the product's elements goes
            new = _refit(dims, op.out_strides, position)
            if new is not None:
                out[k] = op.evolve(output=t.output, out_strides=new)
                out[next(j for j, o in enumerate(out) if o is t)] = None
    return [op for op in out if op is not None]
