"""Conv2D -> MaxPool2D/AveragePooling2D fused through a ring of rows: the convolution's output
(the widest tensor of a classic Conv -> Pool -> ... network, e.g. 26x26x32 in Keras' MNIST
convnet) is never stored whole. The kernel computes the conv's output rows on demand into a ring
of as many rows as the pooling window is tall and pools from there.

Same arithmetic as the two ops run apart; MACs are the conv's. Applied by a graph rewrite when the
conv's only reader is the pool that runs right after it, the conv output has at least twice as
many rows as the ring, and fusing needs fewer bytes than the two ops apart each working in place
as far as they can (input and output of the fused op are kept apart, so a conv that could
overwrite its own input, e.g. a 1x1 that does not widen, is better left unfused).
"""

from __future__ import annotations

import collections

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import Op, fuse_pairs, rewrite
from micronets.compiler.planner import pair_span
from micronets.compiler.ops.conv2d import Conv2D
from micronets.compiler.ops.pool import Pool2D


class ConvPool(Op):
    template = "kernels/conv_pool.h.j2"
    requires = ("kernels/conv2d.h.j2", "kernels/pool.h.j2")  # it calls their row and pixel kernels

    def __init__(self, conv: Conv2D, pool: Pool2D):
        super().__init__(f"{conv.name}+{pool.name}", list(conv.inputs), pool.output)
        self.conv, self.pool = conv, pool
        self.mid = conv.output  # (HT, WT, CT): only ever held as a ring of rows
        self.kind = f"Conv2D+{pool.kind}"

    def macs(self):
        return self.conv.macs()

    def weights(self):
        return collections.OrderedDict(("c" + k, v) for k, v in self.conv.weights().items())

    def activations(self):
        return [self.conv.act]

    def label(self):
        return f"{self.conv.label()} -> {self.pool.label()} (ring of {self.ring_rows} rows)"

    @property
    def ring_rows(self) -> int:
        return int(self.pool.pool[0])

    def workspace_bytes(self):
        ht, wt, ct = self.mid.hwc
        return self.ring_rows * wt * ct * FLOAT_BYTES


def _saves_memory(conv: Conv2D, pool: Pool2D, produced) -> bool:
    """Fused: input + ring + output. Apart: the larger of the two ops' best in-place spans."""
    x = conv.inputs[0].storage
    in_bytes = x.nbytes if x in produced else 0  # the model input lives in the caller's buffer
    mid, out = conv.output.nbytes, pool.output.nbytes
    fused = in_bytes + ConvPool(conv, pool).workspace_bytes() + out
    conv_span = pair_span(in_bytes, mid, conv.inplace_gap(0)) + conv.scratch_bytes() if in_bytes else mid
    pool_span = pair_span(mid, out, pool.inplace_gap(0), max_gap=pool.inplace_gap_reverse(0)) + pool.scratch_bytes()
    return fused < max(conv_span, pool_span)


@rewrite(stage=1)
def fuse_conv_pool(ops, kept):
    """Replace each Conv2D whose only reader is the pooling right after it by one op, where that
    needs less memory."""
    produced = {op.output for op in ops}
    return fuse_pairs(ops, kept, lambda a, b: (type(a) is Conv2D and isinstance(b, Pool2D) and not a.grouped
                                              and a.output.hwc[0] >= 2 * b.pool[0] and _saves_memory(a, b, produced)),
                      ConvPool)
