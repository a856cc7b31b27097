"""Layers that move no data at inference.

- Reshape/Flatten (and keras.ops reshape, expand_dims, squeeze): views (Keras is row-major, so a
  reshape never reorders bytes): a new tensor of the new shape over the same bytes; the producer
  keeps the shape it computes.
- Dropout, noise, regularisation and the random augmentation layers: identity at inference
  (Keras runs them only with training=True), so they vanish. A layer that acts at inference (a
  crop or a resize) is computed by its own op or refused, never dropped: RandomCrop to a size other
  than its input's (at inference Keras returns the input uncropped but declares the cropped shape)
  and AutoContrast are refused; RandomCrop to the input's own size (as Keras' CCT example
  augments) is the identity at inference, and declared so, and vanishes.
- ZeroPadding1D/2D: absorbed into the consuming conv/pool as padding, materialised only for a
  consumer that cannot absorb it.
"""

from __future__ import annotations

import numpy as np

from micronets.compiler.ops.base import IntoParts, UnsupportedModelError, converter

#: identity at inference (checked against Keras by the tests, one by one)
INFERENCE_IDENTITY = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
    "AlphaDropout", "ActivityRegularization", "Identity",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "RandomColorDegeneration", "RandomColorJitter", "RandomErasing", "RandomGaussianBlur", "RandomGrayscale",
    "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomSaturation", "RandomSharpness",
    "RandomShear", "RandomElasticTransform", "Solarization", "MixUp", "CutMix", "AugMix", "RandAugment",
)


@converter("Reshape", "Flatten", "op:Reshape", "op:ExpandDims", "op:Squeeze", parts=True)
def convert_reshape(layer, inputs, ctx):
    """A view of Keras' output shape. Within a call traced on a batch of one (a user's layer), a
    reshape that moves parts of the sample into the batch axis (a window partition) is a view too:
    the tracer hands it Keras' whole shapes (``ctx.lead`` 0)."""
    x = inputs[0]
    s = 1 - ctx.lead  # the sample's first axis
    if type(layer).__name__ == "Flatten" and getattr(layer, "data_format", None) == "channels_first" and \
            len(x.shape) > 1 + s:  # Keras moves the first axis of a sample last, then flattens
        from micronets.compiler.ops.rearrange import permute

        perm = tuple(range(s)) + tuple(range(s + 1, len(x.shape))) + (s,)
        x = permute(ctx, ctx.dense_input(x), perm, f"{layer.name}/channels_last")
    if type(layer).__name__ == "ExpandDims" and ctx.lead:
        axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if any(int(a) in (0, -len(x.shape) - 1 - len(axes)) for a in axes):
            raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops expand_dims) inserts an axis before the "
                                        f"batch axis; only after it")
    shape = list(ctx.output_shape)
    if shape.count(None) == 1:
        known = int(np.prod([d for d in shape if d is not None]))
        shape[shape.index(None)] = x.size // known if known else 0
    if None in shape or int(np.prod(shape)) != x.size:
        what = "layer" if type(layer).__name__ in ("Reshape", "Flatten") else "operation"
        size = None if None in shape else int(np.prod(shape))
        if ctx.lead and size and size < x.size and x.size % size == 0 and ctx.output_shape == tuple(shape):
            raise IntoParts()  # (-1 in front: windows into the batch axis, a view of Keras' whole shapes)
        raise UnsupportedModelError(f"{what} '{layer.name}' reshapes {x.shape} to {tuple(shape)}")
    return ctx.view(x, tuple(shape), layer)


@converter(*INFERENCE_IDENTITY, parts=True)
def convert_identity(layer, inputs, ctx):
    return inputs[0]


@converter("op:ConvertToTensor", "op:Cast", parts=True)
def convert_to_float(layer, inputs, ctx):
    """``keras.ops.convert_to_tensor`` (a functional model's call converts its inputs with it) or
    ``keras.ops.cast`` of a model value to a float dtype: the value itself, as the header computes
    every float in float32. A cast to bool is x != 0, as 1.0 / 0.0 (how the header holds the
    booleans comparisons make: MultiHeadAttention casts its attention_mask so)."""
    import keras

    if layer.dtype is not None and keras.backend.standardize_dtype(layer.dtype) == "bool":
        from micronets.compiler.ops.elementwise import binary

        return binary(ctx, inputs[0], 0.0, "not_equal", layer.name)
    if layer.dtype is not None and not keras.backend.is_float_dtype(layer.dtype):
        raise UnsupportedModelError(f"operation '{layer.name}' converts a model value to {layer.dtype}; only to a float "
                                    f"dtype is supported")
    if layer.dtype is not None and keras.backend.standardize_dtype(layer.dtype) in ("float16", "bfloat16"):
        raise UnsupportedModelError(f"operation '{layer.name}' rounds a model value to {layer.dtype}, which the header's "
                                    f"float32 arithmetic would not do; cast to float32 (or leave the value as it is)")
    return inputs[0]


@converter("RandomCrop")
def convert_random_crop(layer, inputs, ctx):
    x = inputs[0]
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 3 or shape[:2] != (int(layer.height), int(layer.width)):
        raise UnsupportedModelError(
            f"layer '{layer.name}' (RandomCrop) crops {'x'.join(map(str, shape))} to {layer.height}x{layer.width}: at "
            f"inference Keras returns its input uncropped while declaring the cropped shape, so the model's shapes do "
            f"not hold; only a RandomCrop to its input's own height and width (the identity at inference) is supported")
    return x


@converter("ZeroPadding2D", "ZeroPadding1D")
def convert_zero_padding(layer, inputs, ctx):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise UnsupportedModelError(f"layer '{layer.name}' uses data_format={layer.data_format}; only channels_last is supported")
    x = inputs[0]
    if type(layer).__name__ == "ZeroPadding1D":
        if len(getattr(x, "shape", ())) != 2:
            raise UnsupportedModelError(f"layer '{layer.name}' (ZeroPadding1D) expects a sequence (L, C)")
        left, right = layer.padding
        return ctx.pad(x, (0, 0, int(left), int(right)), layer)
    if len(getattr(x, "shape", ())) != 3:
        raise UnsupportedModelError(f"layer '{layer.name}' (ZeroPadding2D) expects a map (H, W, C)")
    (top, bottom), (left, right) = layer.padding
    return ctx.pad(x, (int(top), int(bottom), int(left), int(right)), layer)
