"""Multiply: elementwise of equal shapes, or a (H, W, C) map by a (1, 1, C) channel gate
(squeeze-excite). In place over the map."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class Multiply(Op):
    kind = "Multiply"
    template = "kernels/multiply.h.j2"
    fuses_activation = True

    @property
    def broadcast(self) -> bool:
        return self.inputs[1].size != self.inputs[0].size

    def describe(self):
        return "by channel" if self.broadcast else "elementwise"

    def inplace_gap(self, input_index):
        return 0 if input_index == 0 else None  # the gate is read for every pixel


@converter("Multiply")
def convert_multiply(layer, inputs, ctx):
    if len(inputs) != 2:
        raise UnsupportedModelError(f"layer '{layer.name}' (Multiply) has {len(inputs)} inputs; only 2 are supported")
    a, b = (ctx.dense_input(t, layer) for t in inputs)
    if a.size < b.size:
        a, b = b, a
    if a.shape != b.shape and not (len(a.shape) == 3 and b.hwc[:2] == (1, 1) and b.hwc[2] == a.shape[2]):
        raise UnsupportedModelError(
            f"layer '{layer.name}' (Multiply) of shapes {a.shape} and {b.shape}: supported are equal shapes or (H, W, C) by (1, 1, C)"
        )
    out = ctx.new_tensor(layer.name, a.shape)
    return ctx.add(Multiply(layer.name, [a, b], out)).output
