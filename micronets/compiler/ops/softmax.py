"""Softmax and log-softmax over one axis: each row along that axis independently (a class vector
is one row; a per-pixel softmax over channels is H*W rows; over the steps of an (L, C) sequence,
C rows of L values, C apart)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Softmax(Op):
    template = "kernels/softmax.h.j2"

    def __init__(self, name, x, out, log=False, axis=-1):
        super().__init__(name, [x], out)
        self.log = bool(log)
        self.kind = "LogSoftmax" if log else "Softmax"
        rank = len(out.shape)
        if not -rank <= axis < rank:
            raise ValueError(f"softmax axis {axis} of a rank-{rank} tensor")
        #: the axis the rows run along (of the per-sample shape)
        self.axis = axis % rank

    def describe(self):
        return "" if self.axis == len(self.output.shape) - 1 else f"over axis {self.axis + 1}"

    @property
    def row(self) -> int:
        """Values in a row."""
        return int(self.output.shape[self.axis])

    @property
    def inner(self) -> int:
        """Elements from one value of a row to the next (1 along the last axis)."""
        return int(np.prod(self.output.shape[self.axis + 1:], dtype=np.int64))

    def inplace_gap(self, input_index):
        return 0  # each value is read before it is overwritten


def row_activation(ctx, x, name, op_name, axis=-1):
    """softmax / log_softmax of ``x`` over ``axis`` (Keras' numbering: 0 is the batch axis, -1 the
    last), or over a list of axes of which at most one is longer than 1."""
    x = ctx.dense_input(x)
    if axis is None:  # numpy's meaning, which Keras follows: over every value of the batch
        raise UnsupportedModelError(f"'{op_name}': {name} with axis=None runs over every axis, the batch axis too; "
                                    f"give the sample's axis")
    axes = list(np.ravel(axis)) if isinstance(axis, (list, tuple, np.ndarray)) else [axis]
    rank = len(x.shape)
    norm = sorted({int(a) + rank if int(a) < 0 else int(a) - ctx.lead for a in axes})
    long = [a for a in norm if 0 <= a < rank and x.shape[a] != 1]
    if not norm or any(a < 0 or a >= rank for a in norm) or len(long) > 1:
        raise UnsupportedModelError(f"'{op_name}': {name} over axis {axis} of a {x.shape} tensor is not supported; "
                                    f"only over one axis (not the batch axis)")
    out = ctx.new_tensor(op_name, x.shape)
    return ctx.add(Softmax(op_name, x, out, log=(name == "log_softmax"), axis=(long or norm)[-1])).output


@converter("Softmax", "op:Softmax", "op:LogSoftmax", masks=True, parts=True)
def convert_softmax(layer, inputs, ctx):
    name = "log_softmax" if type(layer).__name__ == "LogSoftmax" else "softmax"
    axis = getattr(layer, "axis", -1)
    import keras

    is_layer = isinstance(layer, keras.layers.Layer)  # (keras.ops' operation is also a class named Softmax)
    mask = ctx.call_kwargs.get("mask", ctx.call_args[1] if len(ctx.call_args) > 1 else None) if is_layer else None
    if mask is None:
        return row_activation(ctx, inputs[0], name, layer.name, axis=axis)
    return masked_softmax(ctx, ctx.call_args[0] if ctx.call_args else inputs[0], mask, axis, layer.name)


def masked_softmax(ctx, x, mask, axis, name):
    """Keras' Softmax layer called with a mask (MultiHeadAttention's masked softmax, which a
    subclass overriding its attention reaches), with Keras' own where()s: the input -1e9 where the
    mask is false (not > 0.5 for numbers), the output 0 there. A constant mask is a constant
    condition; a model value's is computed per inference."""
    import keras

    from micronets.compiler.ops.elementwise import binary, select

    if ctx.is_value(mask):
        keep = binary(ctx, mask, 0.5, "greater", f"{name}_keep")
    else:
        value = np.asarray(keras.ops.convert_to_numpy(mask))
        keep = (value if value.dtype == bool else value > 0.5).astype(np.float32)
    x = select(ctx, keep, x, -1e9, f"{name}_masked")
    return select(ctx, keep, row_activation(ctx, x, "softmax", f"{name}_softmax", axis=axis), 0.0, name)
