"""MaxPooling1D/2D and AveragePooling1D/2D over windows, HWC (sequences as 1 x L maps). No MACs
counted (comparisons/adds only).

Keras 'same' padding leaves padded cells out of the max/average; a ZeroPadding absorbed in
front of a 'valid' pool makes them count as zeros, exactly as the materialised padding would,
including windows that lie entirely in the padding. ``ops.pad(x, ..., constant_values=-inf)``
in front of a 'valid' max pool (keras-hub's ResNetV2 and CSPNet stems) is its padding, left out
as 'same' leaves it.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import (
    Op,
    UnsupportedModelError,
    conv_output,
    converter,
    per_pixel_gap,
    per_pixel_gap_reverse,
    same_pads,
)
from micronets.compiler.ops.conv2d import as_2d, out_shape


class Pool2D(Op):
    template = "kernels/pool.h.j2"

    def __init__(self, name, x, out, mode, pool, strides, pads, zero_pads):
        super().__init__(name, [x], out)
        self.mode = mode  # "max" or "avg"
        self.kind = "MaxPool2D" if mode == "max" else "AveragePooling2D"
        self.pool = tuple(pool)
        self.strides = tuple(strides)
        self.pads = tuple(pads)
        self.zero_pads = bool(zero_pads)

    def describe(self):
        s = f"{self.pool[0]}x{self.pool[1]}"
        if self.strides != (1, 1):
            s += f" /{self.strides[0]}" if self.strides[0] == self.strides[1] else f" /{self.strides}"
        if any(self.pads):
            s += (" zero-pad " if self.zero_pads else " pad ") + ",".join(map(str, self.pads))
        return s

    def inplace_gap(self, input_index):
        return per_pixel_gap(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads)

    def inplace_gap_reverse(self, input_index):
        """Walking pixels last to first, the output may also sit over the input's far end."""
        return per_pixel_gap_reverse(self.inputs[0].hwc, self.output.hwc, self.strides, self.pads, self.pool)

    def scratch_bytes(self):
        return self.output.hwc[2] * FLOAT_BYTES


@converter("MaxPooling2D", "AveragePooling2D", "MaxPooling1D", "AveragePooling1D", "op:MaxPool", "op:AveragePool")
def convert_pool(layer, inputs, ctx):
    """The pooling layers, and keras.ops max_pool / average_pool (keras-hub MobileNetV5's
    multi-scale fusion pools so) of a map or a sequence."""
    import keras

    cls = type(layer).__name__
    if (getattr(layer, "data_format", None) or keras.config.image_data_format()) != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    mode = "max" if cls.startswith("Max") else "avg"
    x = inputs[0]
    rank = 2 if cls.endswith("1D") else 3 if cls.endswith("2D") else len(x.shape)
    if len(x.shape) != rank or rank not in (2, 3):
        raise UnsupportedModelError(f"layer '{layer.name}' ({cls}) pools a sample of shape {x.shape}; a map (H, W, C) or "
                                    f"a sequence (L, C) is supported")
    each = lambda v: (int(v),) * (rank - 1) if isinstance(v, (int, np.integer)) else tuple(int(d) for d in v)  # noqa: E731
    pool = as_2d(layer, x, each(layer.pool_size), 1)
    strides = as_2d(layer, x, each(layer.strides if layer.strides is not None else layer.pool_size), 1)
    padding = str(layer.padding).lower()
    left_out = ctx.padding_fill(x) == -np.inf and mode == "max" and padding == "valid"
    if left_out:  # ops.pad(-inf) then MaxPooling: its padding, left out of the windows as 'same' leaves it
        src, pads = ctx.unpad(x, fill=-np.inf)
        if pads[0] >= pool[0] or pads[1] >= pool[0] or pads[2] >= pool[1] or pads[3] >= pool[1]:
            raise UnsupportedModelError(f"layer '{layer.name}' reads {pads} cells of -inf around its input with a "
                                        f"{pool[0]}x{pool[1]} window: a window of padding alone (-inf) is not supported")
        h, w, c = src.hwc
    else:
        if padding == "same":
            x = ctx.dense_input(x)  # padded cells are left out of a 'same' window; absorbed zeros are not
        src, zp = ctx.unpad(x)
        h, w, c = src.hwc
        if padding == "same":
            pads = same_pads(h, pool[0], strides[0]) + same_pads(w, pool[1], strides[1])
        else:
            pads = tuple(zp)
    ho = conv_output(h, pool[0], strides[0], pads[0], pads[1])
    wo = conv_output(w, pool[1], strides[1], pads[2], pads[3])
    if ho < 1 or wo < 1:
        raise UnsupportedModelError(f"layer '{layer.name}' gets a {h}x{w} input, too small for its {pool[0]}x{pool[1]} window")
    out = ctx.new_tensor(layer.name, out_shape(src, ho, wo, c))
    zero_pads = not left_out and padding == "valid" and any(pads)
    return ctx.add(Pool2D(layer.name, src, out, mode, pool, strides, pads, zero_pads=zero_pads)).output
