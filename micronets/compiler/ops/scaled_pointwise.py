"""Squeeze-excite's per-channel scale fused into the pointwise projection that reads it:
``conv1x1(x * s)`` computed as ``conv1x1_{W diag(s)}(x)``.

A squeeze-excite block ends with ``Multiply([x, s])`` (x an H x W x C map, s one value per
channel) whose only reader is a 1x1 projection. Scaling the projection's C x COUT weights by s
into a workspace costs C x COUT multiplies instead of the map's H x W x C, and the projection
then reads the unscaled map: the Multiply's pass over the map disappears. The workspace is
optional (``workspace_options``): the planner gives it only where the arena does not grow; without
it the kernel scales the map in place (x is read by nothing later) and runs the same pointwise
kernel, which is what the two ops apart do.

MACs are the projection's. Rounding: each term is ``(w * s) * x`` instead of ``w * (x * s)``
(one rounding of a product in another place). Applied by a graph rewrite when the Multiply's only
reader is the projection right after it; x owns its bytes, x and s are produced by ops, are no
model outputs and are read by no op after the Multiply; the projection does not widen (COUT <= C:
when it overwrites x, its one-pixel scratch is s's bytes, so the fused op never needs more arena
than the Multiply did); and the weights are not more than the map's pixels per channel
(COUT <= H x W), where scaling them is the cheaper pass.
"""

from __future__ import annotations

import collections

from micronets.compiler import activations
from micronets.compiler.graph import FLOAT_BYTES, Tensor
from micronets.compiler.ops.base import Op, rewrite
from micronets.compiler.ops.conv2d import Conv2D
from micronets.compiler.ops.elementwise import Binary, _strides, collapse


class ScaledPointwise(Op):
    kind = "Multiply+Conv2D"
    template = "kernels/scaled_pointwise.h.j2"
    requires = ("kernels/conv2d.h.j2", "kernels/elementwise.h.j2")  # conv1x1, and the in-place scale pass

    def __init__(self, mul: Binary, conv: Conv2D, x: Tensor, s: Tensor):
        super().__init__(f"{mul.name}+{conv.name}", [x, s], conv.output)
        self.mul, self.conv = mul, conv
        # the fallback's scale pass: x *= s, walked as the Multiply would walk x (operand a) and s
        self.dims, self.strides = collapse(x.shape, _strides(x.shape, x.shape), _strides(s.shape, x.shape))

    def macs(self):
        return self.conv.macs()

    def weights(self):
        return self.conv.weights()

    def activations(self):
        return [self.conv.act, activations.LINEAR]

    def label(self):
        return f"{self.mul.label()} -> {self.conv.label()}"

    def inplace_gap(self, input_index):
        return self.conv.inplace_gap(0) if input_index == 0 else None

    def scratch_bytes(self):
        """None of its own: when the projection overwrites x, its one-pixel scratch (COUT floats)
        is s's bytes (C >= COUT floats), which nothing reads once the first pass has."""
        return 0

    @property
    def workspace_options(self) -> "tuple[int, ...]":
        """The scaled weights' bytes; without them the map is scaled in place (``workspace_option``
        None)."""
        cin, cout = self.inputs[0].hwc[2], self.output.hwc[2]
        return (cin * cout * FLOAT_BYTES,)

    #: the workspace the planner gave (None: none, scale the map in place)
    workspace_option = None

    def workspace_bytes(self):
        return self.workspace_option or 0


def _se_operands(mul: Binary):
    """(x, s) of a Multiply of a map by one value per channel, else None."""
    if mul.function != "multiply" or not mul.act.is_linear or len(mul.inputs) != 2:
        return None
    for x, s in (mul.operands, mul.operands[::-1]):
        if not (isinstance(x, Tensor) and isinstance(s, Tensor)):
            return None
        c = x.shape[-1]
        if x.shape == mul.output.shape and s.size == c and s.shape[-1] == c and x.size > c:
            return x, s
    return None


@rewrite(stage=1)
def fuse_scaled_pointwise(ops, kept):
    """Replace each per-channel Multiply whose only reader is the 1x1 projection right after it
    by one op (see the module docstring)."""
    readers = collections.Counter(t.storage for op in ops for t in op.inputs)
    produced = {op.output.storage for op in ops}
    last_read = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            last_read[t.storage] = i
    out, i = [], 0
    while i < len(ops):
        a = ops[i]
        b = ops[i + 1] if i + 1 < len(ops) else None
        xs = _se_operands(a) if type(a) is Binary and b is not None else None
        if (xs is not None and type(b) is Conv2D and b.pointwise and b.inputs[0] is a.output
                and readers[a.output] == 1 and a.output not in kept):
            x, s = xs
            cout = b.output.hwc[2]
            h, w, _ = x.hwc
            if (x.base is None and x in produced and x not in kept and last_read.get(x) == i
                    and not s.is_slice and s.storage is not x and s.storage in produced and s.storage not in kept
                    and last_read.get(s.storage) == i and cout <= x.hwc[2] and cout <= h * w):
                out.append(ScaledPointwise(a, b, x, s))
                i += 2
                continue
        out.append(a)
        i += 1
    return out
