"""GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D: (H, W, C) or (L, C) -> (C,), or with
keepdims (1, 1, C) / (1, C)."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class GlobalPool(Op):
    template = "kernels/global_pool.h.j2"

    def __init__(self, name, x, out, mode, kind):
        super().__init__(name, [x], out)
        self.mode = mode
        self.kind = kind


@converter("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling1D")
def convert_global_pool(layer, inputs, ctx):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    cls = type(layer).__name__
    x = ctx.dense_input(inputs[0])
    rank = 2 if cls.endswith("1D") else 3
    if len(x.shape) != rank:
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) expects a rank-{rank} input per sample; got {x.shape}")
    c = x.shape[-1]
    shape = (1,) * (rank - 1) + (c,) if getattr(layer, "keepdims", False) else (c,)
    out = ctx.new_tensor(layer.name, shape)
    mode = "avg" if "Average" in cls else "max"
    return ctx.add(GlobalPool(layer.name, x, out, mode, cls)).output
