"""Softmax over the last axis of a vector (the classifier's output)."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Softmax(Op):
    kind = "Softmax"
    template = "kernels/softmax.h.j2"


def softmax(ctx, x, name):
    x = ctx.dense_input(x, None)
    out = ctx.new_tensor(name, x.shape)
    return ctx.add(Softmax(name, [x], out)).output


@converter("Softmax")
def convert_softmax(layer, inputs, ctx):
    axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
    shape = inputs[0].shape
    if axis not in (-1, len(shape)) and not (len(shape) == 3 and shape[:2] == (1, 1)) and len(shape) != 1:
        raise UnsupportedModelError(f"layer '{layer.name}' (Softmax) must act on the last axis of a vector")
    if len(shape) == 3 and shape[:2] != (1, 1):
        raise UnsupportedModelError(f"layer '{layer.name}' (Softmax) over a {shape} map is not supported; apply it to the class vector")
    return softmax(ctx, inputs[0], layer.name)
