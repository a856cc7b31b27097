"""int8 transpose (TFLite TRANSPOSE with the batch axis kept first: ShuffleNet's channel shuffle,
Reshape (H, W, g, C/g) -> Permute -> Reshape): a copy in the output's order, no arithmetic (TFLite
requires the output to keep the input's quantisation). The permuted axes are collapsed where the
input stays contiguous, to at most six."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.rearrange import row_major

MAX_AXES = 6


def collapse_gather(dims: Sequence[int], strides: Sequence[int], name: str,
                    max_axes: int = MAX_AXES) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Output axes ``dims`` reading the input at element ``strides``: unit axes dropped, adjacent
    axes merged where one steps over the other exactly; padded in front to ``max_axes`` (the
    kernel's loops: int8_gather's six by default)."""
    pairs = [(int(d), int(s)) for d, s in zip(dims, strides) if d > 1]
    out: List[List[int]] = []
    for d, s in pairs:
        if out and out[-1][1] == s * d:
            out[-1] = [out[-1][0] * d, s]
        else:
            out.append([d, s])
    if len(out) > max_axes:
        raise UnsupportedModelError(f"'{name}' needs {len(out)} axes after merging; at most {max_axes} are supported")
    pad = max_axes - len(out)
    return tuple([1] * pad + [d for d, _ in out]), tuple([0] * pad + [s for _, s in out])


def gather_indices(dims: Sequence[int], strides: Sequence[int]) -> np.ndarray:
    """The input element each output element of a gather reads, in output order."""
    idx = np.zeros(1, np.int64)
    for d, s in zip(dims, strides):
        idx = (idx[:, None] + np.arange(d, dtype=np.int64)[None, :] * s).reshape(-1)
    return idx


def fit_gather(idx: np.ndarray) -> Optional[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """(dims, strides) of a gather from element 0 that reads ``idx`` (input element per output
    element, in order), with at most MAX_AXES axes padded in front; None when no such gather
    does. From the innermost axis out, each axis is the longest run that repeats the same step
    across the whole walk."""
    idx = np.asarray(idx, np.int64).reshape(-1)
    n = idx.size
    if n == 0 or idx[0] != 0:
        return None
    axes, period = [], 1
    while period < n:
        step = int(idx[period] - idx[0])
        rest = n // period
        found = None
        for d in sorted((d for d in range(2, rest + 1) if rest % d == 0), reverse=True):
            blocks = idx.reshape(-1, d, period)
            if np.array_equal(blocks, blocks[:, :1, :] + np.arange(d, dtype=np.int64)[None, :, None] * step):
                found = d
                break
        if found is None:
            return None
        axes.append((found, step))
        period *= found
    if len(axes) > MAX_AXES:
        return None
    axes = [(1, 0)] * (MAX_AXES - len(axes)) + axes[::-1]
    return tuple(d for d, _ in axes), tuple(s for _, s in axes)


class Int8Transpose(Int8Op):
    kind = "Transpose"
    template = "kernels/int8_transpose.h.j2"

    def __init__(self, name, x, out, perm, full_shape=None):
        """``perm`` over ``full_shape``, x's shape as the .tflite has it: by default a batch axis of
        1 in front of ours, or x's own where its first axis holds parts of a sample (Swin's
        windows, a stack of q, k, v). Any permutation: the output's first axis, which may then be
        such parts too, is ``out``'s (its shape is the permuted one, without a leading 1)."""
        super().__init__(name, [x], out, 0)
        perm = [int(p) for p in perm]
        full = (1,) + tuple(x.shape) if full_shape is None else tuple(int(d) for d in full_shape)
        if sorted(perm) != list(range(len(full))) or int(np.prod(full)) != x.size:
            raise UnsupportedModelError(f"transpose '{name}' permutes {list(perm)} over {list(full)}")
        if x.quant != out.quant:
            raise UnsupportedModelError(f"transpose '{name}' changes the quantisation")
        shape = tuple(full[p] for p in perm)
        if shape not in (tuple(out.shape), (1,) + tuple(out.shape)):
            raise UnsupportedModelError(f"transpose '{name}': {list(full)} permuted by {list(perm)} is {shape}, not {out.shape}")
        self.perm = tuple(perm)
        in_strides = row_major(full)
        self.dims, self.strides = collapse_gather(shape, [in_strides[p] for p in perm], name)

    def describe(self):
        perm = self.perm[1:] if self.perm[0] == 0 else self.perm  # (past the batch axis where it stays first)
        return f"{self.inputs[0].shape_str()} -> {self.output.shape_str()} perm {','.join(map(str, perm))}"
