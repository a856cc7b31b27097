"""int8 transpose (TFLite TRANSPOSE with the batch axis kept first: ShuffleNet's channel shuffle,
Reshape (H, W, g, C/g) -> Permute -> Reshape): a copy in the output's order, no arithmetic (TFLite
requires the output to keep the input's quantisation). The permuted axes are collapsed where the
input stays contiguous, to at most four."""

from __future__ import annotations

from typing import List, Sequence, Tuple

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op

MAX_AXES = 4


def collapse_gather(dims: Sequence[int], strides: Sequence[int], name: str) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Output axes ``dims`` reading the input at element ``strides``: unit axes dropped, adjacent
    axes merged where one steps over the other exactly; padded in front to MAX_AXES."""
    pairs = [(int(d), int(s)) for d, s in zip(dims, strides) if d > 1]
    out: List[List[int]] = []
    for d, s in pairs:
        if out and out[-1][1] == s * d:
            out[-1] = [out[-1][0] * d, s]
        else:
            out.append([d, s])
    if len(out) > MAX_AXES:
        raise UnsupportedModelError(f"'{name}' needs {len(out)} axes after merging; at most {MAX_AXES} are supported")
    pad = MAX_AXES - len(out)
    return tuple([1] * pad + [d for d, _ in out]), tuple([0] * pad + [s for _, s in out])


class Int8Transpose(Int8Op):
    kind = "Transpose"
    template = "kernels/int8_transpose.h.j2"

    def __init__(self, name, x, out, perm):
        super().__init__(name, [x], out, 0)
        perm = [int(p) for p in perm]
        rank = len(x.shape) + 1
        if sorted(perm) != list(range(rank)) or perm[0] != 0:
            raise UnsupportedModelError(f"transpose '{name}' permutes {list(perm)} over rank {rank}: the batch axis must stay first")
        if x.quant != out.quant:
            raise UnsupportedModelError(f"transpose '{name}' changes the quantisation")
        self.perm = tuple(p - 1 for p in perm[1:])
        shape = tuple(x.shape[p] for p in self.perm)
        if shape != tuple(out.shape):
            raise UnsupportedModelError(f"transpose '{name}': {x.shape} permuted by {list(perm)} is {shape}, not {out.shape}")
        in_strides, step = [], 1
        for d in reversed(x.shape):
            in_strides.append(step)
            step *= d
        in_strides = in_strides[::-1]
        self.dims, self.strides = collapse_gather(shape, [in_strides[p] for p in self.perm], name)

    def describe(self):
        return f"{self.inputs[0].shape_str()} -> {self.output.shape_str()} perm {','.join(str(p + 1) for p in self.perm)}"
