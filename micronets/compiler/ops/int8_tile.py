"""int8 tile (TFLite TILE: what Keras' UpSampling1D / UpSampling2D become, a RESHAPE that opens a
unit axis beside the repeated one, TILE along it, and a RESHAPE that closes it): a copy, no
arithmetic (TFLite's kernel copies the values; the converter keeps the quantisation). Each axis
of D elements tiled M times is M copies of it, read with step 0 over the copies: a gather over
twice the axes, merged where the input stays contiguous (``collapse_gather``).

UpSampling2D tiles twice (rows, then columns): ``fuse_tiles`` makes the pair one gather from the
first tile's input to the second's output, so the map between them is never stored."""

from __future__ import annotations

import collections
from typing import List, Sequence

from micronets.compiler.ops.base import UnsupportedModelError
from micronets.compiler.ops.int8_base import Int8Op
from micronets.compiler.ops.int8_transpose import collapse_gather, fit_gather, gather_indices
from micronets.compiler.ops.rearrange import row_major


class Int8Tile(Int8Op):
    kind = "Tile"
    template = "kernels/int8_tile.h.j2"
    requires = ("kernels/int8_transpose.h.j2",)

    def __init__(self, name, x, out, multiples: Sequence[int]):
        """``multiples``: per input axis, batch excluded."""
        super().__init__(name, [x], out, 0)
        multiples = tuple(int(m) for m in multiples)
        if len(multiples) != len(x.shape) or min(multiples, default=1) < 1:
            raise UnsupportedModelError(f"tile '{name}' of {x.shape} by {list(multiples)}: one multiple >= 1 an axis expected")
        if tuple(d * m for d, m in zip(x.shape, multiples)) != tuple(out.shape):
            raise UnsupportedModelError(f"tile '{name}': {x.shape} tiled {list(multiples)} is not the {out.shape} it writes")
        if x.quant != out.quant or x.dtype != out.dtype:
            raise UnsupportedModelError(f"tile '{name}' changes the quantisation")
        dims, strides = [], []
        for d, m, s in zip(x.shape, multiples, row_major(x.shape)):
            dims += [m, d]
            strides += [0, s]
        self.dims, self.strides = collapse_gather(dims, strides, name)
        #: the multiples of each tile this op does, in order (more than one after ``fuse_tiles``)
        self.chain = (multiples,)

    def describe(self):
        tiles = " then ".join(",".join(map(str, m)) for m in self.chain)
        return f"{self.inputs[0].shape_str()} x {tiles} -> {self.output.shape_str()}"


def fuse_tiles(ops: List, kept) -> List:
    """``ops`` with each tile whose output only another tile reads (through a view, not one of
    ``kept``, the model outputs) merged into that one: a single gather from the first's input,
    where one of at most six axes walks it (always, for UpSampling's tiles)."""
    readers = collections.Counter(id(t.storage) for op in ops for t in op.inputs)
    made = {id(op.output): op for op in ops if isinstance(op, Int8Tile)}
    out, drop = [], set()
    for op in ops:
        first = made.get(id(op.inputs[0].storage)) if isinstance(op, Int8Tile) else None
        if first is not None and readers[id(first.output)] == 1 and first.output not in kept and id(first) not in drop:
            idx = gather_indices(first.dims, first.strides)[gather_indices(op.dims, op.strides)]
            fit = fit_gather(idx)
            if fit is not None:
                op = op.evolve(inputs=list(first.inputs), dims=fit[0], strides=fit[1], chain=first.chain + op.chain)
                drop.add(id(first))
                made[id(op.output)] = op
        out.append(op)
    return [op for op in out if id(op) not in drop]
