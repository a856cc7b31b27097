"""GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D: (H, W, C) or (L, C) -> (C,), or with
keepdims (1, 1, C) / (1, C). With data_format="channels_first" Keras reads the first axis as the
channels (the Keras timeseries transformer example pools (L, C) that way: one value per time
step): (H, W, C) -> (H,), (L, C) -> (L,), keepdims (H, 1, 1) / (L, 1), each first-axis row
pooled over its contiguous values."""

from __future__ import annotations

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter


class GlobalPool(Op):
    template = "kernels/global_pool.h.j2"

    def __init__(self, name, x, out, mode, kind, channels_first=False):
        super().__init__(name, [x], out)
        self.mode = mode
        self.kind = kind
        self.channels_first = bool(channels_first)

    def describe(self):
        return "per first-axis row (channels_first)" if self.channels_first else ""


@converter("GlobalAveragePooling2D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling1D")
def convert_global_pool(layer, inputs, ctx):
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format not in ("channels_last", "channels_first"):
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={data_format}; not supported")
    cls = type(layer).__name__
    x = ctx.dense_input(inputs[0])
    rank = 2 if cls.endswith("1D") else 3
    if len(x.shape) != rank:
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) expects a rank-{rank} input per sample; got {x.shape}")
    first = data_format == "channels_first"
    keep = getattr(layer, "keepdims", False)
    if first:
        c = x.shape[0]
        shape = (c,) + (1,) * (rank - 1) if keep else (c,)
    else:
        c = x.shape[-1]
        shape = (1,) * (rank - 1) + (c,) if keep else (c,)
    out = ctx.new_tensor(layer.name, shape)
    mode = "avg" if "Average" in cls else "max"
    return ctx.add(GlobalPool(layer.name, x, out, mode, cls, first)).output
