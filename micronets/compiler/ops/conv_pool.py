"""Conv2D -> MaxPool2D/AveragePooling2D fused through a ring of rows: the convolution's output
(the widest tensor of a classic Conv -> Pool -> ... network, e.g. 26x26x32 in Keras' MNIST
convnet) is never stored whole. The kernel computes the conv's output rows on demand into a ring
of as many rows as the pooling window is tall and pools from there.

Same arithmetic as the two ops run apart; MACs are the conv's. Applied by a graph rewrite when the
conv's only reader is the pool that runs right after it and the conv output has at least twice
as many rows as the ring. Input and output are kept apart (no in-place walk).
"""

from __future__ import annotations

import collections

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import Op, rewrite
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


@rewrite(stage=1)
def fuse_conv_pool(ops, kept):
    """Replace each Conv2D whose only reader is the pooling right after it by one op."""
    readers = collections.Counter(t.storage for op in ops for t in op.inputs)
    out, i = [], 0
    while i < len(ops):
        op = ops[i]
        nxt = ops[i + 1] if i + 1 < len(ops) else None
        if (type(op) is Conv2D and isinstance(nxt, Pool2D) and nxt.inputs[0] is op.output
                and readers[op.output] == 1 and op.output not in kept and not op.grouped
                and op.output.hwc[0] >= 2 * nxt.pool[0]):
            out.append(ConvPool(op, nxt))
            i += 2
        else:
            out.append(op)
            i += 1
    return out
