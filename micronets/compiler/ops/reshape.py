"""Layers that move no data at inference: Reshape/Flatten (Keras is row-major HWC, so a reshape
never reorders), Dropout and friends (identity at inference), ZeroPadding2D (absorbed into the
consuming conv/pool as padding, never materialised)."""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import UnsupportedModelError, converter


@converter("Reshape", "Flatten")
def convert_reshape(layer, inputs, ctx):
    shape = tuple(int(d) for d in layer.output.shape[1:])
    if int(np.prod(shape)) != inputs[0].size:
        raise UnsupportedModelError(f"layer '{layer.name}' reshapes {inputs[0].shape} to {shape}")
    return ctx.alias(inputs[0], shape, layer)


@converter("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianDropout", "GaussianNoise",
           "AlphaDropout", "ActivityRegularization", "Identity")
def convert_identity(layer, inputs, ctx):
    return ctx.alias(inputs[0], inputs[0].shape, layer)


@converter("ZeroPadding2D")
def convert_zero_padding(layer, inputs, ctx):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    (top, bottom), (left, right) = layer.padding
    return ctx.pad(inputs[0], (int(top), int(bottom), int(left), int(right)), layer)
