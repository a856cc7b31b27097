"""GlobalAveragePooling2D / GlobalMaxPooling2D: (H, W, C) -> (C,) or (1, 1, C) with keepdims."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class GlobalPool(Op):
    template = "kernels/global_pool.h.j2"

    def __init__(self, name, x, out, mode):
        super().__init__(name, [x], out)
        self.mode = mode
        self.kind = "GlobalAveragePooling2D" if mode == "avg" else "GlobalMaxPooling2D"


@converter("GlobalAveragePooling2D", "GlobalMaxPooling2D")
def convert_global_pool(layer, inputs, ctx):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    x = ctx.dense_input(inputs[0], layer)
    c = x.hwc[2]
    shape = (1, 1, c) if getattr(layer, "keepdims", False) else (c,)
    out = ctx.new_tensor(layer.name, shape)
    mode = "avg" if type(layer).__name__ == "GlobalAveragePooling2D" else "max"
    return ctx.add(GlobalPool(layer.name, x, out, mode)).output
