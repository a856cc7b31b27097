"""Add of two tensors of the same shape (residual connections), elementwise and in place."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Add(Op):
    kind = "Add"
    template = "kernels/add.h.j2"
    fuses_activation = True

    def inplace_gap(self, input_index):
        return 0


@converter("Add")
def convert_add(layer, inputs, ctx):
    if len(inputs) != 2:
        raise UnsupportedModelError(f"layer '{layer.name}' (Add) has {len(inputs)} inputs; only 2 are supported")
    a, b = (ctx.dense_input(t, layer) for t in inputs)
    if a.shape != b.shape:
        raise UnsupportedModelError(f"layer '{layer.name}' (Add) adds mismatched shapes {a.shape} and {b.shape}")
    out = ctx.new_tensor(layer.name, a.shape)
    return ctx.add(Add(layer.name, [a, b], out)).output
