"""Softmax and log-softmax over the last axis: each row of the last axis independently (a class
vector is one row; a per-pixel softmax over channels is H*W rows)."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Softmax(Op):
    template = "kernels/softmax.h.j2"

    def __init__(self, name, x, out, log=False):
        super().__init__(name, [x], out)
        self.log = bool(log)
        self.kind = "LogSoftmax" if log else "Softmax"

    @property
    def row(self) -> int:
        return int(self.output.shape[-1])

    def inplace_gap(self, input_index):
        return 0  # each value is read before it is overwritten


def row_activation(ctx, x, name, op_name, axis=-1):
    """softmax / log_softmax of ``x`` over ``axis``, which must be the last non-trivial axis."""
    x = ctx.dense_input(x)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    rank = len(x.shape)
    norm = sorted(a + rank if a < 0 else a - 1 for a in axes)
    # Keras counts the batch axis in layer axes (-1 is always the last); accept the last axis, or
    # an axis list whose other members have size 1.
    if any(a < 0 or a >= rank for a in norm) or norm[-1] != rank - 1 or any(x.shape[a] != 1 for a in norm[:-1]):
        raise UnsupportedModelError(f"'{op_name}': {name} over axis {axis} of a {x.shape} tensor is not supported; "
                                    f"only the last axis")
    out = ctx.new_tensor(op_name, x.shape)
    return ctx.add(Softmax(op_name, x, out, log=(name == "log_softmax"))).output


@converter("Softmax", "op:Softmax", "op:LogSoftmax")
def convert_softmax(layer, inputs, ctx):
    name = "log_softmax" if type(layer).__name__ == "LogSoftmax" else "softmax"
    axis = getattr(layer, "axis", -1)
    return row_activation(ctx, inputs[0], name, layer.name, axis=axis)
