"""The int8 path: headers bit-identical to TFLite's reference kernels and to TFLM, the .tflite
import path, the three ways in, and every error path."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import micronets
from micronets import host
from micronets.compiler import UnsupportedModelError
from micronets.compiler.int8 import MIN_CALIBRATION_SAMPLES, compile_tflite
from micronets.compiler.quant import quantize_float
from int8_reference import (as_version, convert, op_names, repack, run_header_int8, share_quantisation, spread_weights,
                            tflite_reference, tflm_reference)

keras = pytest.importorskip("keras")
L = keras.layers


# ------------------------------------------------------------------------------ models
def windowed_model():
    """Every windowed op: convs (same/valid, strides, ReLU/ReLU6), depthwise (multiplier 2, a
    folded ZeroPadding), average and max pooling, global average pooling (MEAN), dense, softmax."""
    i = keras.Input((12, 12, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu6")(i)
    x = L.Conv2D(12, 3, strides=2, padding="valid", activation="relu")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.DepthwiseConv2D(3, strides=2, activation="relu")(x)
    x = L.Conv2D(16, 1)(x)
    x = L.AveragePooling2D(2, padding="same")(x)
    x = L.MaxPooling2D(2, strides=1, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(20, activation="relu")(x)
    x = L.Dense(7)(x)
    x = L.Softmax()(x)
    return keras.Model(i, x, name="windowed")


def branch_model():
    """A residual ADD, a CONCATENATION, a PAD folded into the max pooling that reads it (the
    pooling's border: Int8Pool.border), Flatten (RESHAPE) and a dense output with no softmax."""
    i = keras.Input((10, 10, 4))
    a = L.Conv2D(6, 3, padding="same", activation="relu")(i)
    b = L.Conv2D(6, 1)(a)
    x = L.Add()([a, b])
    x = L.ReLU()(x)
    x = L.Concatenate()([x, L.Conv2D(3, 1, activation="relu")(x)])
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(5)(x)
    return keras.Model(i, x, name="branch")


def gated_model():
    """HARD_SWISH, squeeze-excite as PhiNet builds it (MEAN with keep_dims, 1x1 convs, LOGISTIC,
    broadcast MUL) and a sigmoid gate (elementwise MUL)."""
    i = keras.Input((8, 8, 6))
    x = L.Conv2D(8, 3, padding="same", activation="hard_swish")(i)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(4, 1, activation="relu")(s)
    s = L.Conv2D(8, 1, activation="sigmoid")(s)
    x = L.Multiply()([x, s])
    g = L.Activation("sigmoid")(x)
    x = L.Multiply()([x, g])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(6)(x)
    return keras.Model(i, x, name="gated")


def layout_model():
    """TRANSPOSE (ShuffleNet's 5-D channel shuffle, a 4-D Permute), STRIDED_SLICE (a channel split,
    a strided crop), RELU and RELU6 as separate ops (after a concatenation and a slice: nothing
    to fuse them into; the RELU6 output's scale differs from its input's)."""
    i = keras.Input((8, 8, 6))
    x = L.Conv2D(8, 3, padding="same")(i)
    x = L.Reshape((8, 8, 2, 4))(x)
    x = L.Permute((1, 2, 4, 3))(x)
    x = L.Reshape((8, 8, 8))(x)
    left, right = x[..., :4], x[..., 4:]
    right = L.Conv2D(4, 1)(right)
    x = L.Concatenate()([left, right])
    x = L.ReLU()(x)
    x = x[:, ::2, 1:, :]
    x = L.Permute((2, 1, 3))(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.Conv2D(6, 1)(x)
    x = L.Flatten()(x)
    x = L.Dense(8)(x)
    return keras.Model(i, x, name="layout")


def resize_model():
    """RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR as Keras' Resizing makes them (half-pixel
    centres; down at inexact ratios and by exactly 2, where the rounding meets ties of both signs,
    up, a crop to the aspect ratio first, of the input and of a computed map) and as TF1's resize
    makes them (corner-aligned, and the legacy neither). The crops (of the input, of maps in the
    arena) are read in place."""
    import tensorflow as tf

    def v1(fn, **options):
        return L.Lambda(lambda t: fn(t, (6, 7), **options))

    i = keras.Input((13, 17, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu")(i)
    halves = L.Cropping2D(((1, 0), (1, 2)))  # 12 x 14: halving it puts every sample between two pixels (ties)
    maps = [L.Resizing(6, 7)(i), L.Resizing(6, 7)(halves(i)), L.Resizing(6, 7)(x), L.Resizing(6, 7, interpolation="nearest")(x),
            L.Resizing(6, 7, crop_to_aspect_ratio=True)(x),
            L.Resizing(6, 7, interpolation="nearest")(L.Resizing(27, 31)(x)),
            L.Resizing(6, 7)(L.Resizing(20, 40, interpolation="nearest")(x)),
            v1(tf.compat.v1.image.resize_bilinear, align_corners=True)(x),
            v1(tf.compat.v1.image.resize_nearest_neighbor, align_corners=True)(x),
            v1(tf.compat.v1.image.resize_bilinear)(x), v1(tf.compat.v1.image.resize_nearest_neighbor)(x),
            L.Resizing(6, 7, interpolation="nearest", crop_to_aspect_ratio=True)(L.Resizing(20, 40, interpolation="nearest")(x))]
    x = L.Add()([L.Conv2D(8, 1)(L.Concatenate()(maps[:6])), L.Conv2D(8, 1)(L.Concatenate()(maps[6:]))])  # TFLM: <= 10 a concatenation
    return keras.Model(i, L.Dense(6)(L.Flatten()(x)), name="resize")


def transpose_conv_model():
    """TRANSPOSE_CONV as Conv2DTranspose makes it: 'same' (fused ReLU) and 'valid' with an
    output_padding, no bias, a kernel smaller than the stride (ReLU6), then strides 3 with a
    'same' crop over a map computed in the arena, and Conv1DTranspose on a sequence."""
    i = keras.Input((5, 7, 3))
    a = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(i)
    b = L.Cropping2D(((1, 1), (1, 1)))(L.Conv2DTranspose(4, (4, 3), strides=2, output_padding=(0, 1), use_bias=False)(i))
    c = L.Conv2DTranspose(4, 2, strides=2, activation="relu6")(i)
    x = L.Conv2DTranspose(6, 5, strides=3, padding="same")(L.Concatenate()([a, b, c]))
    x = L.Conv2D(4, 3, strides=3)(x)
    s = L.Conv1DTranspose(3, 3, strides=2, padding="same")(L.Reshape((35, 3))(i))
    x = L.Concatenate()([L.Flatten()(x), L.Flatten()(s)])
    return keras.Model(i, L.Dense(6)(x), name="transpose_conv")


def constant_model():
    """MUL and ADD with a constant operand (a per-channel vector, scalars, the constant first),
    MEAN over one spatial axis, over the channels and over everything, a broadcast MUL of two
    means."""
    i = keras.Input((6, 6, 4))
    x = L.Conv2D(8, 3, padding="same")(i)
    x = L.Concatenate()([x, L.Conv2D(8, 1)(i)])
    x = x * np.linspace(-1.5, 2.0, 16).astype(np.float32)
    x = 0.75 + x
    x = L.Activation("hard_swish")(x)
    x = x * 0.3
    a = L.Flatten()(keras.ops.mean(x, axis=1))
    b = keras.ops.mean(x, axis=-1, keepdims=True) * keras.ops.mean(x, axis=(1, 2, 3), keepdims=True)
    x = L.Concatenate()([a, L.Flatten()(b)])
    x = L.Dense(6)(x)
    return keras.Model(i, x, name="constants")


def subtract_swish_model():
    """A Normalization layer (SUB and MUL by constants), SUB of two activations (plain, and with a
    ReLU operand), swish activations (LOGISTIC then MUL of its input: one table op after import)
    and a sigmoid read twice (MUL and ADD: not a swish, stays two ops)."""
    i = keras.Input((6, 5, 3))
    n = L.Normalization(mean=[0.3, 0.5, 0.2], variance=[0.04, 0.09, 0.01])(i)
    a = L.Conv2D(8, 3, padding="same", activation="swish")(n)
    b = L.Conv2D(8, 1)(n)
    d = L.Subtract()([L.ReLU()(L.Subtract()([a, b])), b])
    y = L.Activation("swish")(L.DepthwiseConv2D(3, padding="same")(d))
    s = L.Activation("sigmoid")(y)
    w = L.Add()([L.Multiply()([y, s]), s])
    return keras.Model(i, L.Dense(6)(L.Flatten()(w)), name="subtract_swish")


def means_model():
    """MEAN over the channels (keep dims) and over the pixels (no keep dims), read by nothing that
    needs their quantisation (so it can be set to their inputs'); REDUCE_MAX over the channels
    (keras.ops.max)."""
    i = keras.Input((6, 6, 4))
    x = L.Conv2D(8, 3, padding="same")(i)
    a = L.Dense(5)(L.Flatten()(keras.ops.mean(x, axis=-1, keepdims=True)))
    b = L.GlobalAveragePooling2D()(L.Conv2D(5, 1)(x))
    d = L.Dense(5)(L.Flatten()(keras.ops.max(x, axis=-1)))
    return keras.Model(i, L.Add()([a, b, d]), name="means")


def sums_model():
    """SUM (keras.ops.sum) over a map's rows and over a sequence's steps."""
    i = keras.Input((6, 6, 4))
    x = L.Conv2D(8, 3, padding="same")(i)
    c = L.Dense(5)(L.Flatten()(keras.ops.sum(x, axis=1)))
    s = L.Reshape((36, 8))(x)
    return keras.Model(i, L.Add()([c, L.Dense(5)(keras.ops.sum(s, axis=1))]), name="sums")


def minmax_model():
    """MAXIMUM (two maps; one map and a constant), MINIMUM broadcasting a (1, 1, C) operand,
    REDUCE_MAX (GlobalMaxPooling2D, with and without keepdims); grouped convolutions (one input
    channel a group: a depthwise; three: slices, convolutions, concatenation)."""
    i = keras.Input((7, 5, 3))
    a = L.Conv2D(6, 3, padding="same", groups=3)(L.Minimum()([i, L.Conv2D(3, 1)(i)]))  # the input as an operand
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(i)
    x = L.Maximum()([a, b])
    x = L.Minimum()([x, L.GlobalMaxPooling2D(keepdims=True)(L.Conv2D(6, 1)(b))])
    x = keras.ops.maximum(x, -0.25)
    x = L.Conv2D(5, 1)(L.Conv2D(4, (3, 1), groups=2, activation="relu")(x))
    return keras.Model(i, L.Concatenate()([L.GlobalMaxPooling2D()(x), L.GlobalAveragePooling2D()(x)]), name="minmax")


def sequence_model():
    """A sequence (L, C): PAD of the steps (ZeroPadding1D), Conv1D, REDUCE_MAX over the steps
    (GlobalMaxPooling1D)."""
    i = keras.Input((12, 3))
    x = L.Conv1D(8, 3, activation="relu")(L.ZeroPadding1D((2, 1))(i))
    x = L.Maximum()([x, L.Conv1D(8, 1)(x)])
    return keras.Model(i, L.Dense(4)(L.GlobalMaxPooling1D()(x)), name="sequence")


def broadcast_model():
    """ADD and SUB of two activations with broadcasting: a map and its pooled (1, 1, C) channels
    (either order), a map and a one-channel map (H, W, 1), a sequence and a vector; MUL and ADD
    broadcasting both the activation and the constant ((1, 1, C) pooled channels x an (H, W, 1)
    constant)."""
    i = keras.Input((6, 5, 4))
    x = L.Conv2D(4, 3, padding="same")(i)
    g = L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(4, 1)(i))
    ramp = np.linspace(-1.5, 2.0, 30, dtype="float32").reshape(1, 6, 5, 1)
    x = L.Add()([x, g])
    x = L.Add()([x, keras.ops.multiply(g, ramp), keras.ops.add(g, ramp[:, ::-1])])
    x = L.Subtract()([g, L.Conv2D(4, 1, activation="relu")(x)])
    x = L.Subtract()([x, L.Conv2D(1, 1)(x)])
    x = L.Add()([L.Conv2D(1, 3, padding="same")(x), x])
    s = L.Reshape((30, 4))(x)
    v = L.Dense(4)(L.GlobalAveragePooling1D()(s))
    s = L.Add()([s, L.Reshape((1, 4))(v)])
    return keras.Model(i, L.Dense(5)(L.Flatten()(s)), name="broadcast")


def activations_model():
    """TANH, LEAKY_RELU and PRELU (Keras PReLU: one slope per element by default, one per channel
    with shared axes, a vector's) on maps and vectors, a tanh read twice (ADD)."""
    i = keras.Input((12, 12, 3))
    x = L.PReLU()(L.Conv2D(8, 3, padding="same")(i))
    y = L.PReLU(shared_axes=[1, 2])(L.Conv2D(8, 3, padding="same")(x))
    z = L.LeakyReLU(0.2)(L.DepthwiseConv2D(3, padding="same")(y))
    t = L.Activation("tanh")(L.Conv2D(8, 1)(z))
    h = L.Dense(16)(L.GlobalAveragePooling2D()(L.Add()([t, y])))
    h = L.Activation("tanh")(L.PReLU()(h))
    return keras.Model(i, L.Dense(5)(L.LeakyReLU(0.05)(h)), name="activations")


def axis_concat_model():
    """CONCATENATION along the rows and the columns of maps and along a sequence's steps (a row:
    everything from the joined axis on), a conv reading each; and PACK: TimeDistributed(Dense),
    which the converter unrolls into a STRIDED_SLICE and a FULLY_CONNECTED per step of a
    time-major [T, 1, C] tensor, stacked back."""
    i = keras.Input((6, 5, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(i)
    x = L.Concatenate(axis=1)([a, L.Conv2D(4, 1)(a), L.Conv2D(4, (2, 1), strides=(2, 1))(a)])  # 6 + 6 + 3 rows
    x = L.Concatenate(axis=2)([L.Conv2D(4, (1, 2))(x), x])  # 4 + 5 columns
    s = L.Reshape((8 * 5, 4))(L.Conv2D(4, 3, strides=2, padding="same")(x))
    s = L.Concatenate(axis=1)([L.Conv1D(4, 3, strides=2)(s), s])
    steps = L.TimeDistributed(L.Dense(3, activation="relu"))(L.Conv1D(4, 3, strides=8)(s))
    pooled = L.GlobalAveragePooling1D()(L.Conv1D(6, 3)(s))
    return keras.Model(i, L.Dense(5)(L.Concatenate()([pooled, L.Flatten()(steps)])), name="axis_concats")


def depth_space_model():
    """DEPTH_TO_SPACE and SPACE_TO_DEPTH as ``tf.nn.depth_to_space`` / ``space_to_depth`` make them
    (keras.io's EDSR upscales so; YOLOv2's passthrough folds 2x2 blocks into channels), blocks of
    2 and 3, of the input and of computed maps."""
    import tensorflow as tf

    i = keras.Input((6, 6, 4))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
    up = L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)                      # 12 x 12 x 2
    up = L.Conv2D(9, 3, padding="same")(up)
    up3 = L.Lambda(lambda t: tf.nn.depth_to_space(t, 3))(up)                    # 36 x 36 x 1
    back = L.Lambda(lambda t: tf.nn.space_to_depth(t, 6))(up3)                  # 6 x 6 x 36
    fold = L.Lambda(lambda t: tf.nn.space_to_depth(t, 3))(i)                    # 2 x 2 x 36
    x = L.Concatenate()([L.Conv2D(6, 3, strides=3)(back), L.Conv2D(6, 1)(fold)])
    x = L.Flatten()(x)
    x = L.Dense(8)(x)
    return keras.Model(i, x, name="depth_space")


def mirror_split_model():
    """MIRROR_PAD ('reflect' as CycleGAN's ReflectionPadding2D, 'symmetric', and along a
    sequence), SPLIT (equal parts, as keras.io's ShiftViT divides its channels) and SPLIT_V
    (unequal parts), of the input and of computed tensors. (Every part is read: TFLite's converter
    leaves a SPLIT with an unread part in float in about half its runs, measured.)"""
    import keras.ops as K

    i = keras.Input((7, 6, 4))
    x = L.Lambda(lambda t: K.pad(t, [[0, 0], [2, 1], [1, 3], [0, 0]], mode="reflect"))(i)          # 10 x 10 x 4
    x = L.Conv2D(9, 3, activation="relu")(x)                                                         # 8 x 8 x 9
    a, b, c = L.Lambda(lambda t: K.split(t, 3, axis=-1))(x)
    y = L.Lambda(lambda t: K.pad(t, [[0, 0], [3, 0], [1, 2], [0, 0]], mode="symmetric"))(L.Add()([a, c]))  # 11 x 11 x 3
    y = L.Conv2D(6, 3, strides=2)(y)                                                                 # 5 x 5 x 6
    top, rest = L.Lambda(lambda t: K.split(t, [2], axis=1))(b)                                      # rows 2 + 6
    s = L.Reshape((8 * 8, 3))(L.Concatenate(axis=1)([rest, top]))
    s = L.Lambda(lambda t: K.pad(t, [[0, 0], [2, 2], [0, 0]], mode="reflect"))(s)                  # 68 x 3
    s = L.GlobalAveragePooling1D()(L.Conv1D(5, 5, strides=4)(s))
    return keras.Model(i, L.Dense(5)(L.Concatenate()([L.Flatten()(y), s])), name="mirror_split")


def small_model():
    i = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, activation="relu")(i)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(3)(x)
    x = L.Softmax()(x)
    return keras.Model(i, x, name="small")


def calibration(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n,) + tuple(model.input_shape[1:])).astype(np.float32)


def int8_inputs(shape, n=24, seed=5):
    return np.random.default_rng(seed).integers(-128, 128, (n,) + tuple(shape)).astype(np.int8)


@pytest.fixture(scope="module")
def converted():
    """name -> (model bytes, int8 test inputs, keras model), converted once for the module."""
    out = {}
    for k, fn in enumerate((windowed_model, branch_model, gated_model)):
        model = spread_weights(fn(), seed=10 + k)
        data = convert(model, calibration(model, seed=k))
        out[model.name] = (data, int8_inputs(model.input_shape[1:], seed=k), model)
    pico = micronets.PicoMobileNet(num_classes=6, input_shape=(32, 32, 1))
    pico.build()
    spread_weights(pico.model, seed=7)
    out["pico"] = (convert(pico.model, calibration(pico.model, n=48, seed=3)), int8_inputs((32, 32, 1), n=16, seed=9), pico.model)
    from micronets.models import make_net

    phi = make_net("phinet-2m", num_classes=5, input_shape=(32, 32, 3))
    phi.build()
    spread_weights(phi.model, seed=8)
    out["phinet"] = (convert(phi.model, calibration(phi.model, n=32, seed=4)), int8_inputs((32, 32, 3), n=8, seed=2), phi.model)
    import public_models  # MLPerf Tiny's keyword-spotting DS-CNN at its published size (49x10x1, 12 classes)

    kws = spread_weights(public_models.ds_cnn(), seed=11)
    head = kws.layers[-1] if kws.layers[-1].get_weights() else kws.layers[-2]  # the classifier Dense
    w, b = head.get_weights()
    head.set_weights([w * 0.02, b * 0.02])  # logits a few units apart: the softmax is not one-hot
    out["mlperf_kws"] = (convert(kws, calibration(kws, n=32, seed=6)), int8_inputs((49, 10, 1), n=8, seed=6), kws)
    return out


@pytest.fixture(scope="module")
def tflm(converted):
    return tflm_reference({name: (v[0], v[1]) for name, v in converted.items()})


@pytest.fixture(scope="module")
def layout_ops():
    """Models for the layout, constant-operand, MEAN, SUB and swish ops (name -> (bytes, int8
    inputs)), and three public architectures that need them: keras.applications MobileNetV3Small
    (hard-swish, squeeze-excite with a constant MUL, rank-1 reshapes), the ShuffleNet V2 stage
    (TRANSPOSE, STRIDED_SLICE), EfficientNet (swish, squeeze-excite gates), LeNet-5 (TANH),
    MobileFaceNet (per-channel PRELU) and Keras' ESPCN example (its own DepthToSpace layer: 6-D
    RESHAPE and TRANSPOSE) from tests/public_models.py, at their smallest inputs."""
    import public_models

    out = {}
    for k, fn in enumerate((layout_model, constant_model, means_model, subtract_swish_model, minmax_model, sequence_model,
                            broadcast_model, resize_model, transpose_conv_model, activations_model, axis_concat_model,
                            depth_space_model, mirror_split_model)):
        model = spread_weights(fn(), seed=20 + k)
        out[model.name] = (convert(model, calibration(model, seed=k)), int8_inputs(model.input_shape[1:], n=12, seed=k))
    # the converter never makes it: a MEAN whose output shares its input's scale and zero point
    out["means_same"] = (share_quantisation(out["means"][0], "MEAN"), out["means"][1])
    # nor this: PReLU slopes with a zero point (it quantises them symmetrically)
    out["activations_slope_zero"] = (slopes_with_zero_point(out["activations"][0]), out["activations"][1])
    for name in ("keras_mobilenet_v3_small", "shufflenet_v2_stage", "keras_efficientnet_tiny", "lenet5", "mobilefacenet",
                 "tf_simple_audio", "keras_example_espcn"):
        model, options = public_models.build(name)
        spread_weights(model, seed=1)
        head = [layer for layer in model.layers if layer.get_weights()][-1]
        # logits a few units apart: not one-hot (EfficientNet's pooled features vary less)
        # (LeNet's tanh features saturate: its logits need no damping)
        # (ESPCN's output is pixels, not logits: left as it is)
        damp = 0.2 if "efficientnet" in name else 1.0 if name in ("lenet5", "keras_example_espcn") else 0.02
        head.set_weights([w * damp for w in head.get_weights()])
        top = options.get("input_range", 1.0)  # EfficientNet rescales [0, 255] pixels itself
        cal = np.random.default_rng(0).uniform(0, top, (32,) + tuple(model.input_shape[1:])).astype(np.float32)
        out[name] = (convert(model, cal), int8_inputs(model.input_shape[1:], n=6, seed=3))
    return out


def slopes_with_zero_point(data: bytes) -> bytes:
    """The model with every PRELU's slopes given zero point 3 (their stored values kept)."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    r = _Reader(data, "model")
    slopes = {int(op.inputs[1]) for op in r.sg.operators if r.op_name(op) == "PRELU"}
    return requantise_tensors(data, {t: (float(r.quant(t)[0][0]), 3) for t in slopes})


def compiled_outputs(data, xs, tmp_path, classname, entry="int8", reference="tflm"):
    compiled = compile_tflite(data, classname=classname, reference=reference)
    path = tmp_path / f"{classname}.h"
    path.write_text(compiled.header)
    raw, out = run_header_int8(str(path), classname, xs, entry=entry)
    return compiled, raw, out


def strict_program_output(tmp_path, stem: str, source: str) -> bytes:
    """stdout of a C++ program (``source``, which includes a generated header to call its helpers)
    built on the host as strictly as a header must build (C++98, -pedantic, warnings as errors)."""
    src, exe = tmp_path / f"{stem}.cpp", tmp_path / stem
    src.write_text(source)
    subprocess.run(["g++", "-O2", "-std=c++98", "-pedantic", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(src)],
                   check=True)
    return subprocess.run([str(exe)], capture_output=True, check=True).stdout


# ------------------------------------------------------------------------------ bit-exactness
@pytest.mark.parametrize("name", ["windowed", "branch", "gated", "pico", "phinet", "mlperf_kws"])
def test_bit_identical_to_tflm_and_tflite(name, converted, tflm, tmp_path):
    """Default build: 0 LSB against TFLM (fixed-point requantisation everywhere);
    reference="tflite-ref": 0 LSB against TFLite's BUILTIN_REF kernels, whose FULLY_CONNECTED
    requantises in double precision. (TFLite's default optimized kernels are neither: XNNPACK and
    the LUT softmax differ from both by a few LSB.)"""
    data, xs, _ = converted[name]
    compiled, raw, out = compiled_outputs(data, xs, tmp_path, f"M_{name}")
    assert np.array_equal(raw, tflm[name]), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm[name]).max()}"
    # the test can fail: outputs vary across inputs and take many values
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) > len(xs) // 2
    # dequantised outputs are TFLite's DEQUANTIZE of the raw values
    q = compiled.graph.output.quant
    assert np.array_equal(out, (np.float64(q.scale) * (raw.astype(np.int64) - q.zero_point)).astype(np.float32))

    ref = tflite_reference(data, xs)
    compiled = compile_tflite(data, classname=f"R_{name}", reference="tflite-ref")
    path = tmp_path / f"R_{name}.h"
    path.write_text(compiled.header)
    raw_ref, _ = run_header_int8(str(path), f"R_{name}", xs)
    assert np.array_equal(raw_ref, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw_ref.astype(int) - ref).max()}"


@pytest.mark.parametrize("name", ["phinet", "mlperf_kws"])
def test_int8_headers_run_clean_under_sanitizers(name, converted, tflm, tmp_path):
    """ASan + UBSan builds (host g++, the portable kernels): no out-of-bounds read or write (rings,
    padded rows, in-place layers, word-sized loads), no signed overflow or other undefined
    behaviour, from the int8 and the uint8 entry, and still TFLM's outputs."""
    data, xs, _ = converted[name]
    path = tmp_path / "San.h"
    path.write_text(compile_tflite(data, classname="San").header)
    exe = host.build(str(path), "San", out_dir=str(tmp_path), opt="-O0", sanitize=True)
    raw, _ = host.run_int8(exe, str(path), xs, entry="int8")
    assert np.array_equal(raw, tflm[name])
    pixels = np.random.default_rng(5).integers(0, 256, (3,) + xs.shape[1:]).astype(np.uint8)
    host.run_int8(exe, str(path), pixels, entry="uint8")


@pytest.mark.parametrize("name", ["layout", "constants", "means", "means_same", "subtract_swish", "minmax", "sequence", "broadcast",
                                  "resize", "transpose_conv", "activations", "activations_slope_zero", "axis_concats",
                                  "mirror_split", "keras_mobilenet_v3_small",
                                  "shufflenet_v2_stage", "keras_efficientnet_tiny", "lenet5", "mobilefacenet",
                                  "tf_simple_audio"])
@pytest.mark.xdist_group("layout_ops")  # one worker converts the module fixture (12 s), not both
def test_layout_constant_and_mean_ops_bit_identical(name, layout_ops, tmp_path):
    """TRANSPOSE, STRIDED_SLICE, RELU, RELU6, MUL / ADD / SUB by constants, SUB, swish (LOGISTIC +
    MUL fused into a table), TANH, LEAKY_RELU, PRELU, CONCATENATION along other axes than the
    last, PACK (TimeDistributed), MEAN and REDUCE_MAX over any axes (MEAN also with the output sharing the input's
    quantisation), and MobileNetV3Small and ShuffleNet built on them: 0 LSB against TFLM (default
    build) and TFLite's BUILTIN_REF (reference='tflite-ref')."""
    data, xs = layout_ops[name]
    tflm = tflm_reference({name: (data, xs)})[name]
    _, raw, _ = compiled_outputs(data, xs, tmp_path, f"M_{name}")
    assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) > len(xs) // 2
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, f"R_{name}", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw_ref, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw_ref.astype(int) - ref).max()}"
    if name == "layout":  # RELU6 with a rescale: TFLM clamps in the input's domain, BUILTIN_REF requantises
        assert not np.array_equal(raw, raw_ref)


@pytest.mark.xdist_group("layout_ops")  # one worker converts the module fixture (12 s), not both
def test_espcn_pixel_shuffle_bit_identical_where_tflm_cannot_run_it(layout_ops, tmp_path):
    """Keras' ESPCN example (super-resolution): its own DepthToSpace layer converts to a 6-D
    RESHAPE and TRANSPOSE between the convolutions. Both builds equal TFLite's BUILTIN_REF at 0 LSB
    on every output pixel. TFLM (this wheel) fails to allocate tensors for the same file; were it
    to run it, it would have to agree too."""
    data, xs = layout_ops["keras_example_espcn"]
    assert sorted(set(op_names(data))) == ["CONV_2D", "RESHAPE", "TRANSPOSE"]
    ref = tflite_reference(data, xs)
    for name, options in (("Espcn", {}), ("EspcnRef", {"reference": "tflite-ref"})):
        _, raw, _ = compiled_outputs(data, xs, tmp_path, name, **options)
        assert np.array_equal(raw, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw.astype(int) - ref).max()}"
    assert raw.shape == (len(xs), 36 * 36) and len(np.unique(raw)) > 64
    tflm_agrees_or_cannot_load(data, xs, raw, tmp_path / "espcn.tflite", "TFLM failed to allocate tensors")


def tflm_agrees_or_cannot_load(data, xs, raw, path, reason):
    """TFLM's outputs for ``xs`` equal ``raw`` where this wheel loads the model; where it cannot,
    its error says ``reason`` (so a wheel that learns the op makes the test compare again)."""
    path.write_bytes(data)
    load = subprocess.run([sys.executable, "-c", "import sys; from tflite_micro import runtime; "
                           "runtime.Interpreter.from_file(sys.argv[1], arena_size=1 << 22)", str(path)],
                          capture_output=True, text=True, timeout=120)
    if load.returncode == 0:
        assert np.array_equal(raw, tflm_reference({"m": (data, xs)})["m"])
    else:
        assert reason in load.stderr, load.stderr[-2000:]

@pytest.mark.xdist_group("layout_ops")
def test_depth_to_space_and_back_bit_identical_where_tflm_cannot_run_them(layout_ops, tmp_path):
    """DEPTH_TO_SPACE and SPACE_TO_DEPTH (``tf.nn.depth_to_space`` / ``space_to_depth``: keras.io's
    EDSR was refused naming DEPTH_TO_SPACE), blocks of 2, 3 and 6: both builds equal TFLite's
    BUILTIN_REF at 0 LSB. Neither reference loads the converter's file as it is: BUILTIN_REF
    registers both ops at version 1 only (their reference kernels take int8; relabelled version 1,
    it runs them), and TFLM (this wheel) has no kernel for the int8 DEPTH_TO_SPACE; were it to
    load the file, it would have to agree too."""
    data, xs = layout_ops["depth_space"]
    assert {"DEPTH_TO_SPACE", "SPACE_TO_DEPTH"} <= set(op_names(data))
    with pytest.raises(ValueError, match="DEPTH_TO_SPACE"):
        tflite_reference(data, xs)  # when this fails, BUILTIN_REF runs the file itself: drop as_version
    ref = tflite_reference(as_version(data, ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")), xs)
    for name, options in (("D2s", {}), ("D2sRef", {"reference": "tflite-ref"})):
        _, raw, _ = compiled_outputs(data, xs, tmp_path, name, **options)
        assert np.array_equal(raw, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw.astype(int) - ref).max()}"
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) == len(xs)
    tflm_agrees_or_cannot_load(data, xs, raw, tmp_path / "d2s.tflite", "DEPTH_TO_SPACE")


def dense_sequence_model():
    """Dense layers over a sequence's steps and an Attention layer: converted for a dynamic batch,
    each Dense reshapes its input to rows through GATHER, REDUCE_PROD and CONCATENATION of its
    SHAPE, and the tensors between store placeholder shapes ([1, 1])."""
    i = keras.Input((10, 4))
    q, v = L.Dense(6, activation="relu")(i), L.Dense(6)(i)
    x = L.Attention()([q, v])
    return keras.Model(i, L.Dense(5)(L.Flatten()(x)), name="dense_sequence")


@pytest.fixture(scope="module")
def keras_converted():
    """name -> (bytes as from_keras_model converts, int8 inputs, bytes converted for a batch of 1
    (without the shape arithmetic))."""
    import public_models

    out = {}
    for k, name in enumerate(("keras_example_mnist_convnet", "conv1d_accelerometer", "dense_sequence")):
        model = dense_sequence_model() if name == "dense_sequence" else public_models.build(name)[0]
        spread_weights(model, seed=30 + k)
        if name == "keras_example_mnist_convnet":
            head = model.layers[-1]
            head.set_weights([w * 0.05 for w in head.get_weights()])  # logits a few units apart, not one-hot
        cal = np.random.default_rng(k).uniform(0, 1, (32,) + tuple(model.input_shape[1:])).astype(np.float32)
        out[name] = (convert(model, cal, dynamic_batch=True), int8_inputs(model.input_shape[1:], n=8, seed=k),
                     convert(model, cal))
        if k == 0:  # float input and output, as a converter without inference types leaves them
            out["float_edges"] = (convert(model, cal, io_type="float", dynamic_batch=True),
                                  np.random.default_rng(k).uniform(0, 1, (8,) + tuple(model.input_shape[1:])).astype(np.float32),
                                  None)
    return out


@pytest.mark.parametrize("name,ops", [("keras_example_mnist_convnet", {"SHAPE", "STRIDED_SLICE", "PACK"}),
                                      ("conv1d_accelerometer", {"EXPAND_DIMS"}),
                                      ("dense_sequence", {"SHAPE", "GATHER", "REDUCE_PROD", "CONCATENATION"})])
def test_tflite_converted_for_a_dynamic_batch(name, ops, keras_converted, tmp_path):
    """A .tflite made as tutorials make it (TFLiteConverter.from_keras_model: the batch axis
    unknown, shapes computed at run time, placeholders stored for them) compiles: 0 LSB against
    BUILTIN_REF and TFLM on that file (TFLM has no REDUCE_PROD, so the Dense-over-a-sequence
    model is checked against BUILTIN_REF only)."""
    data, xs, static = keras_converted[name]
    assert ops <= set(op_names(data)) and not ops & set(op_names(static)) - {"EXPAND_DIMS"}
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "DynRef", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw_ref, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw_ref.astype(int) - ref).max()}"
    assert len(np.unique(raw_ref)) > 8
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Dyn")
    if "REDUCE_PROD" not in op_names(data):
        tflm = tflm_reference({name: (data, xs)})[name]
        assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"


def test_tflite_converted_for_a_dynamic_batch_with_float_edges(keras_converted, tmp_path):
    """The same MNIST convnet with float input and output (QUANTIZE, the shape arithmetic,
    DEQUANTIZE): predict(const float*) gives BUILTIN_REF's floats exactly."""
    data, floats, _ = keras_converted["float_edges"]
    assert {"SHAPE", "PACK"} <= set(op_names(data)) and op_names(data)[-1] == "DEQUANTIZE"
    _, _, out = compiled_outputs(data, floats, tmp_path, "DynF32", entry="float", reference="tflite-ref")
    ref = tflite_reference(data, floats)
    assert np.array_equal(out, ref) and len(np.unique(out)) > 8


def test_constant_anchors_tiled_by_the_batch_size_fold_as_in_ssd_detectors(tmp_path):
    """ST's SSD MobileNet detectors (stm32ai-modelzoo) output their anchor boxes: int8 constants
    TILEd by the batch size (SHAPE, STRIDED_SLICE, PACK), RESHAPEd and concatenated, beside the
    boxes the convolutions compute. The rearranged constants fold at import into the
    concatenation's constant parts (it was refused: a TILE of a constant); every output equals
    BUILTIN_REF's (with TILE relabelled to a version it registers: TFLM has no TILE)."""
    import keras.ops as K

    rng = np.random.default_rng(40)
    tables = [rng.uniform(0, 1, (1, 4, 4, 3, 4)).astype(np.float32), rng.uniform(0, 1, (1, 2, 2, 3, 4)).astype(np.float32)]

    class Anchors(L.Layer):
        def __init__(self, table, **kwargs):
            super().__init__(**kwargs)
            self.table = table

        def call(self, x):
            return K.tile(K.convert_to_tensor(self.table), [K.shape(x)[0], 1, 1, 1, 1])

    i = keras.Input((8, 8, 3))
    f1 = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(i)
    f2 = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(f1)
    boxes = L.Concatenate(axis=1)([L.Reshape((-1, 4))(L.Conv2D(12, 1)(f)) for f in (f1, f2)])
    anchors = L.Concatenate(axis=1)([L.Reshape((-1, 4))(Anchors(t)(f)) for t, f in zip(tables, (f1, f2))])
    model = spread_weights(keras.Model(i, [boxes, anchors]), seed=40)
    data = convert(model, rng.uniform(0, 1, (32, 8, 8, 3)).astype(np.float32), io_type="float", dynamic_batch=True)
    assert op_names(data).count("TILE") == 2 and {"SHAPE", "PACK"} <= set(op_names(data))
    xs = rng.uniform(0, 1, (6, 8, 8, 3)).astype(np.float32)
    compiled, _, out = compiled_outputs(data, xs, tmp_path, "Anchors", entry="float", reference="tflite-ref")
    assert [op.kind for op in compiled.graph.ops].count("Concatenate") == 2
    assert "Tile" not in [op.kind for op in compiled.graph.ops]
    assert np.array_equal(out, tflite_reference(as_version(data, ("TILE",)), xs))
    # (the converter lists the outputs in its own order: the anchors are the one that is constant)
    halves = [out[:, :240], out[:, 240:]]
    a = next(k for k, h in enumerate(halves) if np.array_equal(h, np.broadcast_to(h[0], h.shape)))
    boxes_out, anchors_out = halves[1 - a], halves[a]
    assert len(np.unique(boxes_out)) > 40 and len({tuple(r) for r in boxes_out}) == len(xs)
    scale = compiled.graph.outputs[a].quant.scale
    assert np.abs(anchors_out[0] - np.concatenate([t.reshape(-1) for t in tables])).max() <= scale


def test_tflite_shape_arithmetic_not_evaluated_is_refused(keras_converted, monkeypatch):
    """Shape arithmetic micronets does not evaluate is refused naming the op and saying how to
    convert instead (never compiled with the placeholder shapes)."""
    from micronets.compiler import shape_fold

    monkeypatch.setattr(shape_fold, "FOLDABLE", tuple(op for op in shape_fold.FOLDABLE if op != "REDUCE_PROD"))
    with pytest.raises(UnsupportedModelError, match=r"\(REDUCE_PROD, .* computes a shape at run time: .*batch of 1"):
        compile_tflite(keras_converted["dense_sequence"][0])


def test_requantisation_overflow_as_the_references(tmp_path):
    """A multiplier far above 1 (an output scale 10^9 times finer than the layer's) takes
    requantised values past int32. TFLM shifts the accumulator by x * (1 << shift), which wraps
    (undefined behaviour in C++ that every target compiler wraps; GCC's UBSan does not see it);
    BUILTIN_REF's double-precision product converts to INT32_MIN on x86, and its zero point is
    added wrapping. The headers do each in defined arithmetic: 0 LSB against TFLM and BUILTIN_REF,
    where outputs saturated by the accumulators' signs would differ from both."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    i = keras.Input((16,))
    model = keras.Model(i, L.Dense(8)(i))
    spread_weights(model, seed=3)
    data = convert(model, calibration(model, seed=3))
    r = _Reader(data, "model")
    (fc,) = [op for op in r.sg.operators if r.op_name(op) == "FULLY_CONNECTED"]
    x_index, w_index, b_index, out_index = (int(t) for t in (*fc.inputs, fc.outputs[0]))
    scale, zero, _ = r.quant(out_index)
    data = requantise_tensors(data, {out_index: (float(scale[0]) / 1e9, int(zero[0]))})
    xs = int8_inputs((16,), n=24, seed=3)
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Wrap")
    tflm = tflm_reference({"wrap": (data, xs)})["wrap"]
    assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "WrapRef", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw_ref, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw_ref.astype(int) - ref).max()}"
    acc = (xs.astype(np.int64) - int(r.quant(x_index)[1][0])) @ r.constant(w_index).astype(np.int64).T + r.constant(b_index)
    by_sign = np.where(acc > 0, 127, -128)
    assert (raw != by_sign).mean() > 0.1 and (raw_ref != by_sign).mean() > 0.1, "nothing overflowed: the test checks nothing"


def test_padv2_writes_its_own_border_value(tmp_path):
    """PADV2 (``keras.ops.pad`` with a constant value: Seeed's published YOLOv5 pads so before its
    max poolings; it was refused) writes the constant's raw value, as TFLite's kernel does: 0 LSB
    against TFLM and BUILTIN_REF, the border not the zero point, as a padded copy (not folded into
    the pooling, whose border is the zero point)."""
    import keras
    import keras.ops as K
    from keras import layers as L

    i = keras.Input((7, 7, 3))
    x = L.Conv2D(6, 3, padding="same")(i)
    x = L.Lambda(lambda t: K.pad(t, [[0, 0], [1, 2], [2, 1], [0, 0]], constant_values=-0.7))(x)     # 10 x 10
    x = L.MaxPooling2D(2)(x)
    x = L.Lambda(lambda t: K.pad(t, [[0, 0], [1, 1], [0, 0], [0, 0]], constant_values=0.9))(x)      # 7 x 5
    model = spread_weights(keras.Model(i, L.Dense(4)(L.Flatten()(L.Conv2D(5, 3)(x)))), seed=2)
    data = convert(model, calibration(model))
    assert op_names(data).count("PADV2") == 2
    xs = int8_inputs((7, 7, 3), n=12)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "PadV2")
    assert np.array_equal(raw, tflm_reference({"m": (data, xs)})["m"]) and len(np.unique(raw)) > 8
    pads = [op for op in compiled.graph.ops if op.kind == "ZeroPadding2D"]
    assert len(pads) == 2 and all(op.value != op.output.quant.zero_point for op in pads)
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "PadV2R", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs))


def test_slice_bit_identical_as_shiftvit_shifts(tmp_path):
    """SLICE (begin and size: ``keras.ops.slice``, and ``keras.ops.image.crop_images`` as keras.io's
    ShiftViT shifts its channel groups, then pad_images; it was refused): a copy of the window,
    sizes of -1 to the end; 0 LSB against TFLM and BUILTIN_REF."""
    import keras
    import keras.ops as K
    from keras import layers as L

    i = keras.Input((8, 8, 4))
    x = L.Conv2D(4, 1)(i)
    a = L.Lambda(lambda t: K.image.pad_images(K.image.crop_images(t, top_cropping=0, left_cropping=1, target_height=8,
                                                                  target_width=7),
                                              top_padding=0, left_padding=0, target_height=8, target_width=8))(x)
    c = L.Lambda(lambda t: K.slice(t, [0, 2, 1, 1], [1, 5, 6, 3]))(x)
    h = L.Concatenate()([L.Flatten()(L.Conv2D(3, 1)(a)), L.Flatten()(c)])
    model = spread_weights(keras.Model(i, L.Dense(6)(h)), seed=1)
    data = convert(model, calibration(model))
    assert op_names(data).count("SLICE") == 2, op_names(data)
    xs = int8_inputs((8, 8, 4), n=12)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Slices")
    assert np.array_equal(raw, tflm_reference({"m": (data, xs)})["m"]) and len(np.unique(raw)) > 8
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "SlicesR", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs))
    slices = sorted(op.describe() for op in compiled.graph.ops if op.kind == "Slice")
    assert slices == ["8x8x4 [0:8:1, 1:8:1, 0:4:1]", "8x8x4 [2:7:1, 1:7:1, 1:4:1]"], slices


def test_reshape_to_another_quantisation_copies_the_bytes_as_tflm(tmp_path):
    """A RESHAPE whose output has another scale and zero point than its input (MIT's published
    MCUNet 320KB ImageNet ends so; it was refused): TFLite's kernels copy the bytes, and the
    readers, or the model's output, take them at the new scale. Inside the graph and as the output:
    0 LSB against TFLM, the dequantised output at the reshape's scale; each is one copy."""
    import keras
    from keras import layers as L

    from int8_reference import requantise_tensors
    from micronets.compiler.tflite import _Reader

    i = keras.Input((5, 5, 3))
    x = L.Flatten()(L.Conv2D(4, 3, activation="relu")(i))
    model = spread_weights(keras.Model(i, L.Reshape((2, 3))(L.Dense(6)(x))), seed=3)
    data = convert(model, calibration(model))
    r = _Reader(data, "m")
    ops = list(r.sg.operators)
    reshapes = [int(op.outputs[0]) for op in ops if r.op_name(op) == "RESHAPE"]
    assert len(reshapes) == 2 and int(r.sg.outputs[0]) == reshapes[-1]
    quants = {t: (float(r.quant(t)[0][0]) * 1.37, int(r.quant(t)[1][0]) + 9) for t in reshapes}
    data = requantise_tensors(data, quants)
    xs = int8_inputs((5, 5, 3), n=16)
    compiled, raw, out = compiled_outputs(data, xs, tmp_path, "Requant")
    assert [op.kind for op in compiled.graph.ops].count("Slice") == 2
    tflm = tflm_reference({"m": (data, xs)})["m"]
    assert np.array_equal(raw, tflm) and len(np.unique(raw)) > 8
    scale, zero = quants[reshapes[-1]]
    assert np.array_equal(out, (np.float64(np.float32(scale)) * (raw.astype(np.int64) - zero)).astype(np.float32))


def test_folded_bias_may_be_int32_min_and_no_lower():
    """A bias with the input offset folded in may be exactly -2^31 (an int32: Seeed's published
    FOMO EfficientNet has squeeze-excite channels of bias INT32_MIN and weights summing to 0,
    refused before); one below, or 2^31, is refused naming the layer, channel and terms."""
    from micronets.compiler.ops.int8_base import fold_input_offset

    folded = fold_input_offset("se", [-2 ** 31, 5, 2 ** 31 - 1], 128, [0, -3, 0], 3)
    assert folded.dtype == np.int32 and folded.tolist() == [-2 ** 31, 5 - 384, 2 ** 31 - 1]
    with pytest.raises(UnsupportedModelError, match="'se': channel 1's bias -2147483521 plus the input offset 128 x "
                                                    "its weights' sum -1 is -2147483649, outside the int32"):
        fold_input_offset("se", [0, -2 ** 31 + 127, 0], 128, [0, -1, 0], 3)
    with pytest.raises(UnsupportedModelError, match="channel 0's bias 2147483647 plus the input offset -1 x its weights' "
                                                    "sum -1 is 2147483648, outside the int32"):
        fold_input_offset("se", [2 ** 31 - 1], -1, [-1], 1)


def test_shape_fold_rules():
    from micronets.compiler.shape_fold import reshape_target, slice_ranges

    assert reshape_target([-1, 144], 144) == (1, 144)
    assert reshape_target([1, -1], 36) == (1, 36)
    assert reshape_target([-1, -1], 4) is None and reshape_target([5, -1], 12) is None and reshape_target([2, 3], 5) is None
    # x[1:, ::2, -1] of a 4 x 5 x 6 tensor (the last axis shrunk), masks open the first axis' end
    ranges = slice_ranges((4, 5, 6), [1, 0, -1], [0, 5, 0], [1, 2, 1], begin_mask=0, end_mask=1, shrink_mask=4)
    assert ranges == [range(1, 4), range(0, 5, 2), range(5, 6)]
    with pytest.raises(ValueError, match="zero stride"):
        slice_ranges((4,), [0], [4], [0], 0, 0, 0)


def test_sum_bit_identical_with_tflm_and_refused_for_builtin_ref(tmp_path):
    """SUM over any axes is TFLM's QuantizedMeanOrSum without the 1/n: 0 LSB against TFLM.
    TensorFlow 2.21's BUILTIN_REF SUM agrees neither with TFLM nor with TFLite's default kernel
    (which is 1 LSB from TFLM), so reference='tflite-ref' refuses it naming the op."""
    model = spread_weights(sums_model(), seed=40)
    data = convert(model, calibration(model, seed=4))
    assert "SUM" in op_names(data)
    xs = int8_inputs(model.input_shape[1:], n=12, seed=4)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "M_sums")
    assert sorted(op.label() for op in compiled.graph.ops if op.kind == "Sum") == [
        "Sum 36x8 over axes 1 (36 values)", "Sum 6x6x8 over axes 1 (6 values)"]
    tflm = tflm_reference({"sums": (data, xs)})["sums"]
    assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) > len(xs) // 2
    with pytest.raises(UnsupportedModelError, match=r"SUM.*no sound reference in TFLite's BUILTIN_REF"):
        compile_tflite(data, reference="tflite-ref")


def layer_norm_model():
    """LayerNormalization over a map's channels (ConvNeXt's) and over a sequence's features after
    a residual ADD (a transformer's)."""
    i = keras.Input((6, 5, 3))
    x = L.LayerNormalization(epsilon=1e-6)(L.Conv2D(8, 3, padding="same")(i))
    s = L.Reshape((30, 4))(L.Conv2D(4, 1)(x))
    s = L.LayerNormalization()(L.Add()([s, L.Dense(4)(s)]))
    return keras.Model(i, L.Dense(3)(L.Flatten()(s)), name="layer_norms")


def test_time_major_steps_of_one_unpacked_and_packed(tmp_path):
    """Ambiq's RNNoise unpacks its time-major input of one step ([1, 1, 24] along axis 0) and packs
    its one step's output back ([1, 16] into [1, 1, 16]): the sample itself both times, once
    refused as unpacking and stacking the batch axis. The converter turns Keras' pack into a
    RESHAPE, so the file is edited to hold a PACK there (as RNNoise's does); 0 LSB vs TFLM, and
    (reference='tflite-ref') vs BUILTIN_REF."""
    import keras.ops as K

    from micronets.compiler.tflite import _Reader

    i = keras.Input((1, 24))
    step = K.unstack(K.transpose(L.Dense(24)(i), (1, 0, 2)))[0]  # UNPACK of [1, 1, 24] along axis 0
    y = L.Dense(16, activation="tanh")(step)
    model = spread_weights(keras.Model(i, [L.Dense(4)(y), K.stack([L.Dense(8)(y)])]), seed=2)
    r = _Reader(convert(model, calibration(model)), "model")
    codes, schema = r.model.operatorCodes, r.schema
    pack = schema.OperatorCodeT()
    pack.builtinCode = pack.deprecatedBuiltinCode = schema.BuiltinOperator.PACK
    pack.version = 2
    codes.append(pack)
    reshapes = [op for op in r.sg.operators if r.op_name(op) == "RESHAPE"]
    assert len(reshapes) == 1 and [len(r.shape(int(t))) for t in (reshapes[0].inputs[0], reshapes[0].outputs[0])] == [2, 3]
    options = schema.PackOptionsT()
    options.valuesCount, options.axis = 1, 0
    reshapes[0].opcodeIndex, reshapes[0].inputs = len(codes) - 1, np.asarray(reshapes[0].inputs[:1], np.int32)
    reshapes[0].builtinOptionsType, reshapes[0].builtinOptions = schema.BuiltinOptions.PackOptions, options
    data = repack(r.model)
    assert sorted(op_names(data)) == ["FULLY_CONNECTED"] * 4 + ["PACK", "TANH", "UNPACK"]
    xs = int8_inputs((1, 24), n=8)
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Steps")
    assert np.array_equal(raw, tflm_reference({"steps": (data, xs)})["steps"]) and len(np.unique(raw)) > 16
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "StepsRef", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs))


def test_shifted_window_attention_bit_identical_to_builtin_ref(tmp_path):
    """Swin's (shifted) window attention as keras-hub writes it, with ViTDet's products of
    constant tables and GCViT's split of q, k, v: the converter puts the windows, then the stacked
    q, k, v, in the batch axis ([4, 16, 48], [3, 4, 2, 16, 8]). Those tensors keep their first axis (parts of the one sample)
    through the ops that index no axis from the front; the mask of the shifted windows, computed
    from constants (DYNAMIC_UPDATE_SLICE, NOT_EQUAL, CAST, QUANTIZE, MUL), folds at import; a
    constant factor of a BATCH_MATMUL is copied into the arena. All were refused (keras-hub's Swin
    and ViTDet). 0 LSB vs BUILTIN_REF (TFLM cannot run the file)."""
    import keras.ops as K

    class WindowAttention(L.Layer):
        """8x8 map of 16 channels, 4x4 windows, 2 heads; shifted by ``shift``."""

        def __init__(self, shift, seed, **kwargs):
            super().__init__(**kwargs)
            self.shift = shift
            rng = np.random.default_rng(seed)
            self.qkv, self.proj = L.Dense(48), L.Dense(16)
            self.bias = rng.normal(0, 1, (2, 16, 16)).astype(np.float32)  # relative position bias, gathered
            self.table = rng.normal(0, 0.3, (8, 16)).astype(np.float32)  # ViTDet's relative positions
            self.rows = rng.normal(0, 0.3, (16, 8)).astype(np.float32)  # a constant times the keys

        def call(self, x):
            s = self.shift
            if s:
                x = K.roll(x, (-s, -s), axis=(1, 2))
            w = K.reshape(K.transpose(K.reshape(x, (-1, 2, 4, 2, 4, 16)), (0, 1, 3, 2, 4, 5)), (-1, 16, 16))
            qkv = K.transpose(K.reshape(self.qkv(w), (-1, 16, 3, 2, 8)), (2, 0, 3, 1, 4))
            # (keras-hub's Swin unstacks q, k, v; keras.io's GCViT splits them)
            q, k, v = [K.squeeze(t, 0) for t in K.split(qkv, 3)] if s else K.unstack(qkv)
            attn = (K.matmul(q * 0.35, K.swapaxes(k, -1, -2)) + self.bias + K.matmul(q, K.convert_to_tensor(self.table))
                    + K.matmul(K.convert_to_tensor(self.rows), K.swapaxes(k, -1, -2)))
            if s:  # the rolled map's regions, numbered; pairs from two regions masked
                img = K.zeros((1, 8, 8, 1), "int32")
                img = K.slice_update(img, (0, 4, 0, 0), K.ones((1, 4, 8, 1), "int32"))
                img = K.slice_update(img, (0, 0, 6, 0), K.full((1, 8, 2, 1), 2, "int32"))
                ids = K.reshape(K.transpose(K.reshape(img, (1, 2, 4, 2, 4)), (0, 1, 3, 2, 4)), (4, 16))
                mask = K.cast(K.not_equal(ids[:, None, :], ids[:, :, None]), "float32") * -100.0
                attn = K.reshape(K.reshape(attn, (-1, 4, 2, 16, 16)) + mask[None, :, None], (-1, 2, 16, 16))
            out = K.reshape(K.transpose(K.matmul(K.softmax(attn), v), (0, 2, 1, 3)), (-1, 16, 16))
            y = K.reshape(K.transpose(K.reshape(self.proj(out), (-1, 2, 2, 4, 4, 16)), (0, 1, 3, 2, 4, 5)), (-1, 8, 8, 16))
            return K.roll(y, (s, s), axis=(1, 2)) if s else y

    i = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 1)(i)
    x = x + WindowAttention(0, 1)(x)
    x = x + WindowAttention(2, 2)(x)
    model = spread_weights(keras.Model(i, L.Dense(5)(L.GlobalAveragePooling2D()(x)), name="swin_windows"), seed=3)
    data = convert(model, calibration(model))
    ops = op_names(data)
    assert {"UNPACK", "SPLIT", "DYNAMIC_UPDATE_SLICE", "NOT_EQUAL", "CAST"} <= set(ops) and ops.count("BATCH_MATMUL") == 6
    xs = int8_inputs((8, 8, 3), n=8)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Swin", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw.astype(int) - ref).max()}"
    assert len(np.unique(raw)) > 16 and len({tuple(r) for r in raw}) == len(xs)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("BatchMatMul") == 6
    copies = [op for op in compiled.graph.ops if op.kind == "Concatenate" and not op.inputs]
    assert len(copies) == 2  # the constant factors, copied from flash
    assert any(op.output.shape[0] == 4 and len(op.output.shape) == 4 for op in compiled.graph.ops)  # windows first
    # an op that indexes axes from the front (a convolution over each window) is refused by name
    windows = L.Lambda(lambda t: K.reshape(K.transpose(K.reshape(t, (-1, 2, 4, 2, 4, 16)), (0, 1, 3, 2, 4, 5)),
                                           (-1, 4, 4, 16)))(L.Conv2D(16, 1)(i))
    per_window = spread_weights(keras.Model(i, L.Conv2D(4, 3)(windows)), seed=4)
    with pytest.raises(UnsupportedModelError, match=r"\(CONV_2D\) reads '[^']+' of shape \[4, 4, 4, 16\], whose first "
                                                    r"axis holds parts of a sample"):
        compile_tflite(convert(per_window, calibration(per_window)))


@pytest.mark.parametrize("name", ["layer_norms", "keras_example_timeseries_transformer", "keras_convnext_tiny",
                                  "keras_example_shiftvit"])
def test_layer_norm_and_attention_bit_identical(name, tmp_path):
    """LayerNormalization as TFLite's converter lowers it (MEAN; -mean as DEQUANTIZE, a float NEG,
    QUANTIZE: one table here; SQUARED_DIFFERENCE; MEAN; ADD of epsilon; RSQRT, a table; MULs and
    ADDs) and attention (BATCH_MATMUL of Q and K^T, and of the softmax and V, the converter's
    TRANSPOSEs of K, V and the scores folded into their strides; the scores' softmax exps a table):
    the Keras example
    "Timeseries classification with a Transformer model" as published and keras.applications
    ConvNeXt (reduced; tests/public_models.py), weights livened. 0 LSB against TFLM (default
    build; not ConvNeXt: TFLM has no GELU) and TFLite's BUILTIN_REF (reference='tflite-ref'),
    which disagree with each other on the transformer. Also keras.io's ShiftViT (its layers are
    classes of its own, so its weights are spread; pixels in [0, 255]): LayerNormalization, GELU,
    SPLIT, and SLICE and PAD shifting channel groups; against BUILTIN_REF only (GELU)."""
    import public_models
    from netutil import liven

    keras.utils.set_random_seed(3)  # the weights liven leaves as initialised (attention's) depend on it
    model = layer_norm_model() if name == "layer_norms" else public_models.build(name)[0]
    top = 255.0 if "shiftvit" in name else 1.0
    cal = np.random.default_rng(3).uniform(0, top, (64,) + tuple(model.input_shape[1:])).astype(np.float32)
    if "shiftvit" in name:
        spread_weights(model, seed=3)
    else:
        liven(model, cal, seed=3)
    data = convert(model, cal)
    xs = int8_inputs(model.input_shape[1:], n=16, seed=3)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Tr")
    kinds = [op.kind for op in compiled.graph.ops]
    assert {"FloatIsland", "SquaredDifference", "Rsqrt"} <= set(kinds), kinds
    assert kinds.count("BatchMatMul") == (4 if "transformer" in name else 0), kinds
    assert "Transpose" not in kinds, kinds  # K's, V's and the scores' transposes: read and written in place
    if "transformer" in name:  # the attention's scores (2 heads x 48 x 48): exps from a table; the head's: not
        assert [op.exps is not None for op in compiled.graph.ops if op.kind == "Softmax"] == [True, True, False]
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) > len(xs) // 2
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "TrRef", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw_ref, ref), f"max LSB difference vs BUILTIN_REF: {np.abs(raw_ref.astype(int) - ref).max()}"
    if "shiftvit" in name:  # 4 of 4, 8 and 16 channel groups shifted: a crop (SLICE) and a PAD each
        assert kinds.count("Slice") >= 12 and kinds.count("ZeroPadding2D") == 12 and "GELU" in kinds, kinds
    if "convnext" in name or "shiftvit" in name:
        return
    tflm = tflm_reference({name: (data, xs)})[name]
    assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"
    if "transformer" in name:  # the two references differ here, so matching each is two results
        assert not np.array_equal(tflm, ref)  # (on layer_norms they agree or not with the weights)

def test_squared_difference_multiplier_of_one_or_more_runs_as_tflm_and_is_refused_for_builtin_ref(tmp_path):
    """The converter sometimes gives SQUARED_DIFFERENCE an output scale that makes its multiplier
    1 or more (random LayerNorm models: 1.27, 1.28). TFLM runs it (QuantizeMultiplier, a left
    shift); TFLite's interpreter aborts the process. Here the layer-norm model's first one is
    requantised to a multiplier of about 1.3: the default header gives TFLM's outputs, and a
    header for BUILTIN_REF is refused, the reason named."""
    from micronets.compiler.ops.int8_squared_difference import Int8SquaredDifference
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    model = spread_weights(layer_norm_model(), seed=5)
    data = convert(model, calibration(model, seed=5))
    r = _Reader(data, "model")
    k = op_names(data).index("SQUARED_DIFFERENCE")
    op = r.sg.operators[k]
    s = max(float(r.quant(int(i))[0][0]) for i in op.inputs)
    data = requantise_tensors(data, {int(op.outputs[0]): ((2 * s) ** 2 / (1 << 14) / 1.3, -128)})
    xs = int8_inputs(model.input_shape[1:], n=16, seed=5)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Sq")
    sq = [o for o in compiled.graph.ops if isinstance(o, Int8SquaredDifference)]
    assert sq[0].out_shift > 0, (sq[0].out_mult, sq[0].out_shift)  # a left shift: the multiplier is above one
    assert np.array_equal(raw, tflm_reference({"sq": (data, xs)})["sq"]) and len(np.unique(raw)) > 8
    with pytest.raises(UnsupportedModelError, match="SQUARED_DIFFERENCE.*not below one.*aborts"):
        compile_tflite(data, reference="tflite-ref")

@pytest.mark.xdist_group("layout_ops")  # one worker converts the module fixture (12 s), not both
def test_layout_and_constant_op_kinds_are_covered(layout_ops):
    seen = set()
    for data, _ in layout_ops.values():
        seen.update(op_names(data))
    for op in ("TRANSPOSE", "STRIDED_SLICE", "RELU", "RELU6", "MEAN", "MUL", "ADD", "SUB", "RESHAPE", "HARD_SWISH",
               "LOGISTIC", "MAXIMUM", "MINIMUM", "REDUCE_MAX", "PAD", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
               "TRANSPOSE_CONV", "TANH", "LEAKY_RELU", "PRELU", "PACK", "MIRROR_PAD", "SPLIT", "SPLIT_V"):
        assert op in seen, op
    pads = [op.describe() for op in compile_tflite(layout_ops["mirror_split"][0]).graph.ops if "Padding" in op.kind]
    assert sorted(pads) == ["reflect pad 0,0,2,2", "reflect pad 2,1,1,3", "symmetric pad 3,0,1,2"], pads
    parts = [op.describe() for op in compile_tflite(layout_ops["mirror_split"][0]).graph.ops if op.kind == "Slice"]
    assert sorted(parts) == ["8x8x3 [0:2:1, 0:8:1, 0:3:1]", "8x8x3 [2:8:1, 0:8:1, 0:3:1]",  # SPLIT_V: rows 2 + 6
                             "8x8x9 [0:8:1, 0:8:1, 0:3:1]", "8x8x9 [0:8:1, 0:8:1, 3:6:1]",
                             "8x8x9 [0:8:1, 0:8:1, 6:9:1]"], parts  # SPLIT: three parts
    reductions = [op.label() for op in compile_tflite(layout_ops["means"][0]).graph.ops if op.kind == "ReduceMax"]
    assert reductions == ["ReduceMax 6x6x8 over axes 3 (8 values)"], reductions
    slopes = [op.const_shape for op in compile_tflite(layout_ops["activations"][0]).graph.ops if op.kind == "PReLU"]
    assert sorted(slopes) == [(1, 1, 8), (12, 12, 8), (16,)], slopes  # per channel, per element, a vector's
    joins = [op.describe() for op in compile_tflite(layout_ops["axis_concats"][0]).graph.ops if op.kind == "Concatenate"]
    assert sorted(joins) == ["1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 along axis 0",  # PACK: 8 time steps
                             "19 + 40 along axis 0", "4 + 5 along axis 1", "6 + 24 channels", "6 + 6 + 3 along axis 0"], joins
    upconvs = [op.label() for op in compile_tflite(layout_ops["transpose_conv"][0]).graph.ops if op.kind == "Conv2DTranspose"]
    assert sorted(upconvs) == sorted(["Conv2DTranspose 3x3 x2 + ReLU", "Conv2DTranspose 4x3 x2",
                                      "Conv2DTranspose 2x2 x2 + ReLU6", "Conv2DTranspose 5x5 x3 crop 1,1",
                                      "Conv2DTranspose 1x3 x(1, 2)"]), upconvs
    resizes = [op.describe() for op in compile_tflite(layout_ops["resize"][0]).graph.ops if op.kind == "Resize"]
    assert "Slice" not in [op.kind for op in compile_tflite(layout_ops["resize"][0]).graph.ops]  # crops read in place
    for how in ("bilinear 13x17 -> 6x7", "nearest 13x17 -> 6x7", "bilinear 13x17 -> crop 12x14 at 1,1 -> 6x7",
                "bilinear 13x17 -> crop 13x15 at 0,1 -> 6x7", "nearest 20x40 -> crop 20x23 at 0,8 -> 6x7",
                "bilinear 13x17 -> 27x31", "nearest 13x17 -> 20x40", "bilinear 13x17 -> 6x7, align corners",
                "nearest 13x17 -> 6x7, align corners", "bilinear 13x17 -> 6x7, corner pixels",
                "nearest 13x17 -> 6x7, corner pixels"):
        assert how in resizes, (how, resizes)
    minmax = [op.kind for op in compile_tflite(layout_ops["minmax"][0]).graph.ops]
    assert minmax.count("Maximum") == 2 and minmax.count("Minimum") == 2 and minmax.count("MaxPooling2D") == 2, minmax
    g = compile_tflite(layout_ops["minmax"][0]).graph
    assert any(op.kind == "Minimum" and g.input in op.inputs for op in g.ops)  # the input as an operand
    assert minmax.count("DepthwiseConv2D") == 2 and minmax.count("Slice") == 2 and minmax.count("Concatenate") >= 1, minmax
    assert [op.kind for op in compile_tflite(layout_ops["sequence"][0]).graph.ops][:2] == ["ZeroPadding2D", "Conv2D"]
    walks = [op for op in compile_tflite(layout_ops["broadcast"][0]).graph.ops
             if op.kind in ("Add", "Subtract") and len({t.size for t in op.inputs}) > 1]
    assert len(walks) >= 5, [op.label() for op in walks]
    spread = [op.kind for op in compile_tflite(layout_ops["broadcast"][0]).graph.ops
              if op.kind in ("MultiplyConstant", "AddConstant") and op.inputs[0].size < op.output.size]
    assert sorted(spread) == ["AddConstant", "MultiplyConstant"], spread  # the activation broadcast too
    ops = [op for name in ("layout", "constants", "subtract_swish") for op in compile_tflite(layout_ops[name][0]).graph.ops]
    kinds = {op.kind for op in ops}
    assert {"Transpose", "Slice", "ReLU", "ReLU6", "MultiplyConstant", "AddConstant", "Mean", "Subtract",
            "SubtractConstant", "Swish"} <= kinds, kinds
    # the two swishes are one table op each; the sigmoid read twice stays a LOGISTIC, its MUL a MUL
    assert [op.kind for op in ops].count("Swish") == 2 and [op.kind for op in ops].count("Sigmoid") == 1
    # EfficientNet: every swish a table (its squeeze-excite gates stay a LOGISTIC and a broadcast
    # MUL, on maps of 16 pixels or more inside the projection that reads it), so no map of
    # sigmoids is stored: the int8 arena is below the float header's
    eff = compile_tflite(layout_ops["keras_efficientnet_tiny"][0])
    kinds = [op.kind for op in eff.graph.ops]
    assert kinds.count("Swish") > 10 and kinds.count("MultiplyConv2D") == 2
    assert kinds.count("Sigmoid") == kinds.count("Multiply") + kinds.count("MultiplyConv2D")
    import public_models

    from micronets.compiler import compile_model

    model, _ = public_models.build("keras_efficientnet_tiny")
    assert eff.summary()["arena_bytes"] < compile_model(model).summary()["arena_bytes"]
    # MobileNetV3's squeeze-excite scales by a scalar constant; the converter's rank-1 reshapes import
    v3 = compile_tflite(layout_ops["keras_mobilenet_v3_small"][0])
    assert any(op.kind == "MultiplyConstant" and op.k.size == 1 for op in v3.graph.ops)
    assert any(op.kind == "Add" and any(len(t.shape) == 1 for t in op.inputs) for op in v3.graph.ops)  # 1x1xC + (C,)


def test_every_op_kind_is_covered(converted):
    seen = set()
    for data, _, _ in converted.values():
        seen.update(op_names(data))
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "ADD",
               "RESHAPE", "SOFTMAX", "PAD", "MUL", "LOGISTIC", "CONCATENATION", "HARD_SWISH"):
        assert op in seen, op


def test_one_pixel_1x1_convs_run_as_fully_connected(converted):
    """Squeeze-excite's 1x1 convolutions of one pixel run through the fully connected kernels
    (per-channel scales, fixed-point requantisation in both references; bit-exact in
    test_bit_identical_to_tflm_and_tflite and on QEMU in the DSP test); wider maps stay convs."""
    compiled = compile_tflite(converted["gated"][0])
    fc = [op for op in compiled.graph.ops if getattr(op, "from_conv", False)]
    assert [(op.kind, op.depth, op.units) for op in fc] == [("Dense", 8, 4), ("Dense", 4, 8)]
    assert not any(op.double_requant for op in fc)
    assert compiled.header.count("(CONV_2D 1x1 of one pixel)") >= 2
    assert any(op.kind == "Conv2D" for op in compiled.graph.ops)

def test_weights_span_the_int8_range(converted):
    compiled = compile_tflite(converted["windowed"][0])
    for op in compiled.graph.ops:
        w = getattr(op, "filt", getattr(op, "w", None))
        if w is not None:
            assert len(np.unique(w)) > 40 and (w.max() == 127 or w.min() == -127), op.name


def test_uint8_and_float_entries(converted, tmp_path):
    """predict(uint8) quantises p / 255 as it reads (no copy); predict(float) quantises like
    TFLite's QUANTIZE; both equal predict(int8) on the quantised values."""
    data, _, model = converted["windowed"]
    compiled = compile_tflite(data, classname="Entries")
    path = tmp_path / "entries.h"
    path.write_text(compiled.header)
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (10,) + tuple(model.input_shape[1:])).astype(np.uint8)
    floats = rng.uniform(-1.2, 1.2, (10,) + tuple(model.input_shape[1:])).astype(np.float32)
    floats[0, 0, 0, :] = [0.5 * compiled.graph.input.quant.scale, -2.5 * compiled.graph.input.quant.scale, 1e9]
    q = compiled.graph.input.quant
    raw_u8, _ = run_header_int8(str(path), "Entries", pixels, entry="uint8")
    raw_f, _ = run_header_int8(str(path), "Entries", floats, entry="float")
    expect_u8, _ = run_header_int8(str(path), "Entries", quantize_float((pixels.astype(np.float64) / 255.0).astype(np.float32), q))
    expect_f, _ = run_header_int8(str(path), "Entries", quantize_float(floats, q))
    assert not np.array_equal(expect_u8[0], expect_f[0])
    assert np.array_equal(raw_u8, expect_u8)
    assert np.array_equal(raw_f, expect_f)


def test_uint8_entry_without_a_table_when_it_is_p_minus_128(converted, tmp_path):
    """Calibrated over [0, 1] (as images p / 255 are), the input quantises to exactly p - 128:
    predict(uint8) then subtracts 128 instead of reading a 256-byte table (256 fewer flash bytes)
    and still equals predict(int8) on p - 128 and TFLM; a [-1, 1] calibration keeps the table."""
    model = spread_weights(small_model(), seed=6)
    cal = np.random.default_rng(1).uniform(0, 1, (64, 6, 6, 2)).astype(np.float32)
    data = convert(model, cal)
    compiled = compile_tflite(data, classname="NoLut")
    assert compiled.input_offset_int() == -128 and "input_lut" not in compiled.header
    table_build = compile_tflite(converted["windowed"][0])
    assert table_build.input_offset_int() is None and "input_lut[256]" in table_build.header
    assert table_build.summary()["weights_bytes"] - sum(op.weights_bytes() for op in table_build.graph.ops) == 256
    assert compiled.summary()["weights_bytes"] == sum(op.weights_bytes() for op in compiled.graph.ops)
    path = tmp_path / "nolut.h"
    path.write_text(compiled.header)
    pixels = np.random.default_rng(4).integers(0, 256, (12, 6, 6, 2)).astype(np.uint8)
    pixels[0] = 0
    pixels[1] = 255
    raw_u8, _ = run_header_int8(str(path), "NoLut", pixels, entry="uint8")
    shifted = (pixels.astype(np.int16) - 128).astype(np.int8)
    raw_i8, _ = run_header_int8(str(path), "NoLut", shifted)
    assert np.array_equal(raw_u8, raw_i8) and len({tuple(r) for r in raw_u8}) > 6
    assert np.array_equal(raw_i8, tflm_reference({"m": (data, shifted)})["m"])


def test_uint8_model_and_float_edges(tmp_path):
    """A uint8-in/uint8-out .tflite (QUANTIZE at both ends) and a float-in/float-out one
    (QUANTIZE / DEQUANTIZE): the edges fold into the loads and the output arrays."""
    model = spread_weights(small_model(), seed=4)
    cal = calibration(model)
    u8 = convert(model, cal, io_type="uint8")
    fl = convert(model, cal, io_type="float")
    assert op_names(u8)[0] == "QUANTIZE" and op_names(u8)[-1] == "QUANTIZE"
    assert op_names(fl)[0] == "QUANTIZE" and op_names(fl)[-1] == "DEQUANTIZE"
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (12, 6, 6, 2)).astype(np.uint8)
    compiled, raw, _ = compiled_outputs(u8, pixels, tmp_path, "U8", entry="uint8", reference="tflite-ref")
    assert compiled.graph.output.dtype == "uint8"
    assert np.array_equal(raw, tflite_reference(u8, pixels))
    floats = rng.uniform(-1, 1, (12, 6, 6, 2)).astype(np.float32)
    compiled, _, out = compiled_outputs(fl, floats, tmp_path, "F32", entry="float", reference="tflite-ref")
    assert np.array_equal(out, tflite_reference(fl, floats))
    # inputs on half steps, (k + 1/2) x scale in float32: the references divide in float32 and a
    # double quotient rounds the other way on a good part of them (published ST HAR model: 37 LSB)
    s = np.float32(compiled.graph.input.quant.scale)
    ties = ((rng.integers(-128, 127, (12, 6, 6, 2)) + 0.5) * s).astype(np.float32)
    q32 = ties / s
    assert np.count_nonzero(np.abs(q32 - np.trunc(q32)) == 0.5) > 0.9 * ties.size
    assert np.count_nonzero(q32.astype(np.float64) != ties.astype(np.float64) / np.float64(s)) > 0.1 * ties.size
    _, _, out = compiled_outputs(fl, ties, tmp_path, "F32", entry="float", reference="tflite-ref")
    assert np.array_equal(out, tflite_reference(fl, ties))
    _, _, out = compiled_outputs(fl, ties, tmp_path, "F32m", entry="float")
    assert np.array_equal(out.reshape(len(ties), -1), tflm_reference({"f": (fl, ties)})["f"].reshape(len(ties), -1))


def test_integer_typed_input_quantises_as_its_float_twin(tmp_path):
    """A model whose Input is of an integer dtype (``keras.Input(shape, dtype="uint8")`` and a
    Rescaling: raw pixels, as the float path takes it) quantises, functional and Sequential: the
    converter kept the Input's cast in float (DEQUANTIZE, CAST) and the model was refused as not
    fully int8. Raw pixels through ``predict(const uint8_t*)`` give TFLite's outputs bit for bit,
    and the model's own outputs within a few output steps. Calibration that the Input could not
    hold (pixel / 255 floats) is refused, naming the range."""
    import keras
    from keras import layers as L

    from micronets.compiler.int8 import compile_keras_int8, quantize_keras

    rng = np.random.default_rng(3)
    cal = rng.integers(0, 256, (48, 10, 10, 1)).astype(np.float32)
    pixels = rng.integers(0, 256, (12, 10, 10, 1)).astype(np.uint8)
    body = [L.Rescaling(1 / 255.0), L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dense(5)]
    i = keras.Input((10, 10, 1), dtype="uint8")
    x = i
    for layer in body:
        x = layer(x)
    functional = keras.Model(i, x)
    sequential = keras.Sequential([keras.Input((10, 10, 1), dtype="uint8")] + [layer.__class__.from_config(layer.get_config())
                                                                              for layer in body])
    spread_weights(functional, seed=2)
    sequential.set_weights(functional.get_weights())
    for name, model in (("Func", functional), ("Seq", sequential)):
        compiled = compile_keras_int8(model, cal, classname=name)
        header = tmp_path / f"{name}.h"
        header.write_text(compiled.header)
        raw, out = run_header_int8(header, name, pixels, entry="uint8")
        data = quantize_keras(model, cal)
        assert op_names(data)[0] != "DEQUANTIZE" and "CAST" not in op_names(data)
        # calibrated over 0..255: a pixel p quantises to exactly p - 128
        assert np.array_equal(raw, tflite_reference(data, (pixels.astype(np.int16) - 128).astype(np.int8)))
        keras_out = np.asarray(model(pixels))
        step = float(np.ptp(keras_out)) / 255
        assert np.abs(out - keras_out).max() <= 6 * step, (name, np.abs(out - keras_out).max() / step)
    with pytest.raises(ValueError, match=r"takes uint8 values: calibration must hold whole numbers in \[0, 255\]"):
        compile_keras_int8(functional, cal / 255.0)


# ------------------------------------------------------------------------------ the header
def test_double_literals_are_floating_and_round_trip():
    """The header's doubles (output and input scales, dequantisation tables) are floating literals
    that read back exactly: a scale of 5.5e15 (MobileFaceNet's embedding under spread weights)
    printed as an integer was a long long, refused by -std=c++98 -pedantic."""
    from micronets.compiler.activations import c_double

    for v in (5499090368462848.0, 1.0, 0.00390625, 3e-20, 1e300, float(np.float32(0.1))):
        text = c_double(v)
        assert ("." in text or "e" in text) and float(text) == v, text
    with pytest.raises(ValueError):
        c_double(float("inf"))


def test_header_contract(converted, tmp_path):
    data, xs, _ = converted["pico"]
    compiled = compile_tflite(data, classname="PicoQ")
    text = compiled.header
    assert "static const int8_t" in text and "float arena" not in text and "<math.h>" not in text
    assert "namespace micronets_PicoQ" in text and "predict(const int8_t* input)" in text
    assert "predict(const uint8_t* input)" in text and "predict(const float* input)" in text
    for op in compiled.graph.ops:
        assert f"] {op.name}: " in text
    assert "MACs" in text and "s=" in text and "@ arena bytes [" in text
    assert compile_tflite(data, classname="PicoQ").header == text  # deterministic
    path = tmp_path / "picoq.h"
    path.write_text(text)
    assert host.sizeof_net(str(path), "PicoQ") == compiled.summary()["object_bytes"]
    s = compiled.summary()
    assert s["arena_bytes"] == compiled.plan.arena_size > 0
    assert s["weights_bytes"] < 1.6 * s["params"] + 512
    assert all("output_scale" in layer for layer in s["layers"])


def test_per_channel_parameters_stored_per_layer_in_fewer_bytes(converted):
    """Each conv / depthwise layer stores its folded biases and shifts in the smallest of three
    lossless layouts (int16 biases; bias and shift packed in one int32; int32 biases + int8
    shifts), chosen from its values; the bit-exactness tests above run these headers. PhiNet uses
    the first two; the flash bytes are what the layouts say."""
    from micronets.compiler.ops.int8_conv import Int8Windowed

    compiled = compile_tflite(converted["phinet"][0])
    layers = []
    for op in compiled.graph.ops:
        layers += [part for part in (op, getattr(op, "conv", None), getattr(op, "dw", None)) if isinstance(part, Int8Windowed)]
    layouts = {}
    for op in layers:
        f, channels = op.folded_bias(), op.output.hwc[2]
        layout = op.param_layout
        layouts[layout] = layouts.get(layout, 0) + 1
        tw = op.typed_weights()
        per_channel = sum(a.nbytes for k, a in tw.items() if k != "w") / channels
        assert per_channel == {"f16": 7, "packed": 8, "wide": 9}[layout], (op.name, layout)
        if layout == "f16":
            assert tw["f"].dtype == np.int16 and np.array_equal(tw["f"], f)
        elif layout == "packed":  # what the kernel's mn_lo24 / mn_hi8 views read back, exactly
            q = tw["q"]
            assert np.array_equal(((q.astype(np.int64) & 0xFFFFFF) ^ 0x800000) - 0x800000, f)
            assert np.array_equal(q >> 24, op.shift) and "mn_lo24(" in compiled.header
            assert np.abs(f).max() >= 1 << 15  # int16 would not do
    assert layouts.get("f16") and layouts.get("packed"), layouts
    s = compiled.summary()
    tables = sum(op.table.nbytes for op in compiled.graph.ops if hasattr(op, "table"))  # LOGISTIC's 256-byte tables
    assert s["weights_bytes"] - tables < 1.40 * s["params"]  # 1.44 with int32 biases and int8 shifts everywhere
    # fully connected layers: the input offset folded into the bias (bias + in_off * sum w, exact),
    # stored as a convolution's (the windowed model's two, run above: one int16, one packed)
    dense = [op for op in compile_tflite(converted["windowed"][0]).graph.ops if op.kind == "Dense"]
    kinds = set()
    for op in dense:
        tw, f = op.typed_weights(), op.bias.astype(np.int64) + op.in_off * op.w.astype(np.int64).sum(axis=1)
        if "q" in tw:
            kinds.add("packed")
            assert np.array_equal(((tw["q"].astype(np.int64) & 0xFFFFFF) ^ 0x800000) - 0x800000, f)
            assert np.array_equal(tw["q"] >> 24, op.shift) and np.abs(f).max() >= 1 << 15
        else:
            kinds.add(str(tw["f"].dtype))
            assert np.array_equal(tw["f"], f) and np.array_equal(tw["s"], op.shift)
            assert tw["f"].dtype == (np.int16 if np.abs(f).max() < 1 << 15 else np.int32), op.name
    assert any(op.in_off != 0 for op in dense) and "int16" in kinds, kinds


def test_identical_constant_arrays_stored_once(tmp_path):
    """Two LOGISTIC layers whose inputs share a quantisation (a map and its max-pooled copy) have
    the same 256-byte table: the header stores it once and names the second a reference to it;
    the flash figure counts it once; the outputs stay TFLM's."""
    from micronets.compiler.ops.int8_logistic import Int8Logistic

    i = keras.Input((8, 8, 4))
    x = L.Conv2D(8, 1)(i)
    a = L.GlobalAveragePooling2D()(L.Activation("sigmoid")(x))
    b = L.GlobalAveragePooling2D()(L.Activation("sigmoid")(L.MaxPooling2D(2)(x)))
    model = spread_weights(keras.Model(i, L.Dense(5)(L.Concatenate()([a, b])), name="twin_tables"), seed=31)
    data = convert(model, calibration(model, seed=11))
    xs = int8_inputs(model.input_shape[1:], n=8, seed=12)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Twin")
    tables = [op for op in compiled.graph.ops if isinstance(op, Int8Logistic)]
    assert len(tables) == 2 and np.array_equal(tables[0].table, tables[1].table)
    first, second = (op.wname("t") for op in tables)
    assert compiled.array_aliases() == {second: first}
    assert f"static const int8_t (&{second})[256] = {first};" in compiled.header
    assert f"{first}[256] MICRONETS_WEIGHTS_ATTR" in compiled.header
    assert f"{second}[256] MICRONETS_WEIGHTS_ATTR" not in compiled.header
    s = compiled.summary()
    assert s["weights_bytes"] == sum(op.weights_bytes() for op in compiled.graph.ops) - 256 + compiled.input_table_bytes()
    assert np.array_equal(raw, tflm_reference({"twin": (data, xs)})["twin"]) and len(np.unique(raw)) > 8


def test_two_int8_models_in_one_translation_unit(converted, tmp_path):
    a = compile_tflite(converted["pico"][0], classname="First")
    b = compile_tflite(converted["branch"][0], classname="Second")
    (tmp_path / "a.h").write_text(a.header)
    (tmp_path / "b.h").write_text(b.header)
    src = tmp_path / "main.cpp"
    src.write_text('#include "a.h"\n#include "b.h"\n#include "a.h"\nint main() { static First f; static Second s; '
                   'static int8_t x[First::numInputs]; static uint8_t y[Second::numInputs]; '
                   'return (int)f.predict(x) + (int)s.predict(y) < 0; }\n')
    from micronets.host import STRICT_FLAGS, compiler

    proc = subprocess.run([compiler(), *STRICT_FLAGS, "-O1", str(src), "-o", str(tmp_path / "two")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert subprocess.run([str(tmp_path / "two")]).returncode == 0


def test_int8_arena_is_planned_to_the_byte_in_place_and_through_rings(converted):
    """PhiNet (the real architecture, with squeeze-excite): planned to the byte, ops writing over
    their input, expansion convs fused with their depthwise conv through a ring of rows (also in
    place), and an arena about a quarter of the float32 header's (25.4% on this model: the float
    kernels have since shed the one-pixel scratch of their in-place depthwise, the int8 ones not yet)."""
    from micronets.compiler import compile_model

    compiled = compile_tflite(converted["phinet"][0])
    plan = compiled.plan
    assert plan.result.alignment == 1
    assert plan.arena_size >= plan.lower_bound
    fused = [op for op in compiled.graph.ops if op.kind == "Conv2D+DepthwiseConv2D"]
    assert fused and any(plan.overlaps_input(op) for op in fused)
    assert sum(plan.overlaps_input(op) for op in compiled.graph.ops) > 10
    assert plan.arena_size <= 0.26 * compile_model(converted["phinet"][2]).plan.arena_size
    assert "ring of 3 rows" in compiled.header


def concat_model():
    """An Inception block (a 1x1, a 1x1 -> 3x3 and a pooled 1x1 branch, concatenated) and a
    DenseNet step (a map concatenated with a 3x3 conv of itself), each read by a 1x1 conv."""
    i = keras.Input((6, 7, 5))
    a = L.Conv2D(8, 1, activation="relu")(i)
    b = L.Conv2D(12, 3, padding="same", activation="relu")(L.Conv2D(6, 1, activation="relu")(i))
    c = L.Conv2D(4, 1, activation="relu")(L.MaxPooling2D(3, strides=1, padding="same")(i))
    y = L.Conv2D(9, 1, activation="relu")(L.Concatenate()([a, b, c]))
    y = L.Concatenate()([y, L.Conv2D(6, 3, padding="same", activation="relu")(y)])
    return keras.Model(i, L.Conv2D(5, 1)(y), name="concats")


def test_concatenations_read_inputs_inside_their_output(tmp_path, monkeypatch):
    """A concatenation copies row by row, each row's inputs in turn and first byte first, so the
    planner may put one of its inputs inside its output (Int8Concat.inplace_gap: where every
    row is read before it is overwritten): here both concatenations do, and the arena is smaller
    than with inputs and output apart; outputs equal TFLM's and BUILTIN_REF's."""
    from micronets.compiler.ops.int8_concat import Int8Concat

    model = spread_weights(concat_model(), seed=33)
    data = convert(model, calibration(model, seed=33))
    xs = int8_inputs(model.input_shape[1:], n=16, seed=33)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Concats")
    concats = [op for op in compiled.graph.ops if isinstance(op, Int8Concat)]
    assert len(concats) == 2 and all(compiled.plan.overlaps_input(op) for op in concats)
    assert np.array_equal(raw, tflm_reference({"concats": (data, xs)})["concats"]) and len(np.unique(raw)) > 32
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "ConcatsRef", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs).reshape(raw_ref.shape))
    monkeypatch.setattr(Int8Concat, "inplace_gap", lambda self, i: None)
    assert compiled.plan.arena_size < compile_tflite(data).plan.arena_size

def test_class_token_concatenated_as_a_constant_bit_identical(tmp_path):
    """A class token concatenated before the tokens (DeiT, CaiT: concatenate([tile(cls), x])) is a
    constant input of TFLite's CONCATENATION, copied in from flash: 0 LSB against TFLM and
    BUILTIN_REF (the import crashed on it with a KeyError)."""
    from keras import ops

    class ClassToken(L.Layer):
        def build(self, shape):
            self.cls = self.add_weight(shape=(1, 1, shape[-1]), initializer="random_normal", name="cls")

        def call(self, x):
            token = ops.tile(self.cls, (ops.shape(x)[0], 1, 1))
            return ops.concatenate([token, x, token * 0.5], axis=1)

    i = keras.Input((6, 8))
    model = spread_weights(keras.Model(i, L.Conv1D(4, 3, padding="same")(ClassToken()(L.Dense(8)(i)))))
    model.layers[2].cls.assign(np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 1, 8))
    data = convert(model, calibration(model))
    xs = int8_inputs(model.input_shape[1:], n=12, seed=5)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Token")
    concat = [op for op in compiled.graph.ops if op.kind == "Concatenate"]
    assert len(concat) == 1 and len(concat[0].constants) == 2 and len(concat[0].inputs) == 1
    assert np.array_equal(raw, tflm_reference({"token": (data, xs)})["token"]) and len(np.unique(raw)) > 16
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "TokenRef", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs).reshape(raw_ref.shape))


# ------------------------------------------------------------------------------ ways in
def test_export_int8_from_keras_and_net(tmp_path, converted):
    model = converted["branch"][2]
    cal = calibration(model)
    path = tmp_path / "branch.h"
    compiled = micronets.export(model, str(path), classname="Branch", quantize="int8", calibration=cal)
    assert path.read_text() == compiled.header and "int8" in compiled.header
    xs = converted["branch"][1]
    raw, _ = run_header_int8(str(path), "Branch", xs)
    assert np.array_equal(raw, tflm_reference({"branch": (compiled.tflite, xs)})["branch"])
    net = micronets.PicoMobileNet(num_classes=3, input_shape=(24, 24, 1))
    net.build()
    out = tmp_path / "pico.h"
    net.export(str(out), quantize="int8", calibration=np.random.default_rng(0).uniform(0, 1, (20, 24, 24, 1)))
    assert "class PicoMobileNet" in out.read_text() and "int8_t rawOutputs" in out.read_text()


def test_export_int8_from_a_subclassed_model(tmp_path):
    """A subclassed keras.Model (built by a call) crashed the int8 path ('object has no attribute
    input_shape'); it is quantised as the float path sees it, one call of it on an Input, and the
    header is bit-identical to TFLM on the converter's .tflite, also for a model of two inputs
    (``call(self, inputs)`` of a list)."""
    import keras
    from keras import layers

    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv, self.pool, self.dense = layers.Conv2D(6, 3, activation="relu"), layers.GlobalAveragePooling2D(), layers.Dense(4)

        def call(self, x):
            return self.dense(self.pool(self.conv(x)))

    class Pair(Net):
        def call(self, inputs):
            return self.dense(self.pool(self.conv(inputs[0])) + inputs[1])

    model = Net()
    model(np.zeros((1, 10, 10, 2), np.float32))
    spread_weights(model, seed=2)
    cal = np.random.default_rng(0).uniform(0, 1, (64, 10, 10, 2)).astype(np.float32)
    compiled = micronets.export(model, str(tmp_path / "sub.h"), classname="Sub", quantize="int8", calibration=cal)
    xs = int8_inputs((10, 10, 2))
    raw, _ = run_header_int8(str(tmp_path / "sub.h"), "Sub", xs)
    assert np.array_equal(raw, tflm_reference({"sub": (compiled.tflite, xs)})["sub"]) and len(np.unique(raw)) > 8
    assert not model._inbound_nodes  # the export's call of the model was removed
    pair = Pair()
    pair([np.zeros((1, 10, 10, 2), np.float32), np.zeros((1, 6), np.float32)])
    vectors = np.random.default_rng(1).normal(size=(64, 6)).astype(np.float32)
    compiled = micronets.export(pair, str(tmp_path / "pair.h"), classname="Pair", quantize="int8", calibration=[cal, vectors])
    xs = (int8_inputs((10, 10, 2)), int8_inputs((6,), seed=6))
    raw, _ = run_header_int8(str(tmp_path / "pair.h"), "Pair", list(xs))
    assert np.array_equal(raw, tflm_reference({"pair": (compiled.tflite, xs)})["pair"]) and len(np.unique(raw)) > 8


def _three_input_model():
    """Two images through one shared conv tower (Siamese style) and a vector of features; the
    model's inputs in another order than their names sort."""
    import keras
    from keras import layers as L

    second, first, meta = keras.Input((12, 12, 1), name="b_image"), keras.Input((12, 12, 1), name="a_image"), keras.Input((5,), name="meta")
    tower = keras.Sequential([keras.Input((12, 12, 1)), L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
                              L.Dense(8)])
    diff = L.Subtract()([tower(second), tower(first)])
    out = L.Dense(3, activation="softmax")(L.Concatenate()([diff, L.Dense(4, activation="relu")(meta)]))
    return keras.Model([second, first, meta], out)


def test_several_inputs(tmp_path):
    """A model of three inputs quantises with one calibration array per input. The header's
    predict(input, input1, input2) of int8 arrays is bit-identical to TFLM on the converter's
    .tflite, and to TFLite's reference kernels (reference="tflite-ref"); each input keeps its own
    quantisation, from its own calibration (the images' [0, 1] and [0, 0.5], the features' wider
    range, so a mix-up of the calibration order shows). The float entry quantises each input as TFLite's
    QUANTIZE does (the int8 entry on inputs quantised so, bit for bit) and is within 16 output
    steps of Keras, where the two images swapped are over 64 off (so the inputs' order is kept
    from Keras to the .tflite to the header). A .tflite of float inputs and outputs (a QUANTIZE
    per input) gives TFLite's outputs bit for bit."""
    import tensorflow as tf

    model = _three_input_model()
    spread_weights(model, seed=3)
    rng = np.random.default_rng(0)

    def draw(n):
        return [rng.uniform(0, 1, (n, 12, 12, 1)).astype(np.float32), rng.uniform(0, 0.5, (n, 12, 12, 1)).astype(np.float32),
                rng.normal(0, 3, (n, 5)).astype(np.float32)]

    cal = draw(64)
    compiled = micronets.export(model, str(tmp_path / "three.h"), classname="Three", quantize="int8", calibration=cal)
    text = (tmp_path / "three.h").read_text()
    assert "predict(const int8_t* input, const int8_t* input1, const int8_t* input2)" in text
    assert "predict(const float* input, const float* input1, const float* input2)" in text and "uint8_t* input" not in text
    summary = compiled.summary()
    scales, zeros = summary["input_scales"], summary["input_zero_points"]
    assert summary["input_shapes"] == [[12, 12, 1], [12, 12, 1], [5]]
    assert abs(scales[0] * 255 - 1) < 0.02 and abs(scales[1] * 510 - 1) < 0.02 and zeros[:2] == [-128, -128]
    assert scales[2] > 0.05

    xs = (int8_inputs((12, 12, 1), n=16, seed=1), int8_inputs((12, 12, 1), n=16, seed=2), int8_inputs((5,), n=16, seed=3))
    raw, _ = run_header_int8(str(tmp_path / "three.h"), "Three", list(xs))
    assert np.array_equal(raw, tflm_reference({"three": (compiled.tflite, xs)})["three"])
    assert len(np.unique(raw)) > 8 and len({tuple(r) for r in raw}) > 8
    ref_build = compile_tflite(compiled.tflite, classname="ThreeRef", reference="tflite-ref")
    (tmp_path / "ref.h").write_text(ref_build.header)
    assert np.array_equal(run_header_int8(str(tmp_path / "ref.h"), "ThreeRef", list(xs))[0], tflite_reference(compiled.tflite, xs))

    floats = draw(16)
    raw_f, out_f = run_header_int8(str(tmp_path / "three.h"), "Three", floats, entry="float")
    by_hand = []
    for x, scale, zero in zip(floats, scales, zeros):  # TFLite's QUANTIZE: halves away from zero, saturated
        q = x.astype(np.float64) / np.float64(scale)
        by_hand.append(np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5) + zero, -128, 127).astype(np.int8))
    assert np.array_equal(raw_f, run_header_int8(str(tmp_path / "three.h"), "Three", by_hand)[0])
    keras_out = model.predict(floats, verbose=0)
    step = summary["output_scales"][0]
    _, swapped = run_header_int8(str(tmp_path / "three.h"), "Three", [floats[1], floats[0], floats[2]], entry="float")
    # int8 error of these weights: 9.1 output steps at most; the images swapped: 224
    assert np.abs(out_f - keras_out).max() <= 16 * step
    assert np.abs(swapped - keras_out).max() > 64 * step

    specs = [tf.TensorSpec([1] + [int(d) for d in t.shape[1:]], tf.float32) for t in model.inputs]
    infer = tf.function(lambda *x: model(list(x), training=False), input_signature=specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([a[k][None] for a in cal] for k in range(len(cal[0])))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    float_edges = converter.convert()
    assert op_names(float_edges).count("QUANTIZE") == 3 and op_names(float_edges)[-1] == "DEQUANTIZE"
    _, _, out = compiled_outputs(float_edges, floats, tmp_path, "ThreeF32", entry="float", reference="tflite-ref")
    assert np.array_equal(out, tflite_reference(float_edges, tuple(floats)))


def _nothing_written(folder):
    return not [f for f in os.listdir(folder) if f.endswith(".h") or f.startswith(".micronets")]


@pytest.mark.parametrize("bad, message", [
    (None, "needs calibration"),
    (np.zeros((MIN_CALIBRATION_SAMPLES - 1, 6, 6, 2), np.float32), "at least"),
    (np.zeros((32, 6, 6, 3), np.float32), "shape"),
    (np.zeros((6, 6, 2), np.float32), "one input"),
    ("images", "array of numbers"),
])
def test_calibration_errors(bad, message, tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match=message):
        micronets.export(model, str(tmp_path / "m.h"), quantize="int8", calibration=bad)
    assert _nothing_written(tmp_path)


def test_calibration_giving_nan_is_refused_naming_the_keras_model(tmp_path):
    """A model that computes NaN on its calibration (a BatchNormalization of negative moving
    variance): TFLite's converter leaves the graph after it in float, which was refused as "output
    'Identity' is float32 and not made by a DEQUANTIZE", naming neither the model nor the NaN."""
    i = keras.Input((6, 6, 2))
    norm = L.BatchNormalization()
    model = keras.Model(i, L.Conv2D(3, 1)(norm(L.Conv2D(4, 3)(i))), name="nan_model")
    gamma, beta, mean, variance = norm.get_weights()
    norm.set_weights([gamma, beta, mean, -np.abs(variance) - 0.1])
    with pytest.raises(ValueError, match=r"model 'nan_model' computes NaN in output 0 on calibration sample 0: TFLite's "
                                         r"converter picks no int8 range"):
        micronets.export(model, str(tmp_path / "m.h"), quantize="int8", calibration=calibration(model))
    assert _nothing_written(tmp_path)


def test_other_quantize_values_and_stray_calibration(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="int4"):
        micronets.export(model, str(tmp_path / "m.h"), quantize="int4")
    with pytest.raises(ValueError, match="only used with quantize"):
        micronets.export(model, str(tmp_path / "m.h"), calibration=calibration(model))
    assert _nothing_written(tmp_path)


def test_float_tflite_is_refused_naming_the_op(tmp_path):
    import tensorflow as tf

    model = small_model()
    data = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with pytest.raises(UnsupportedModelError, match=r"CONV_2D.*float|float.*CONV_2D"):
        compile_tflite(data)


def test_hybrid_tflite_is_refused(tmp_path):
    import tensorflow as tf

    model = small_model()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    with pytest.raises(UnsupportedModelError, match="float"):
        compile_tflite(conv.convert())


def test_infinite_quantisation_scale_is_refused_naming_the_tensor(tmp_path):
    """TFLite's converter writes scale inf on a tensor whose calibrated range left float32's
    (keras.io's Zero-DCE calibrated on [-1, 1] where it takes [0, 1]: its curve steps overflow).
    Refused naming that tensor (was "quantisation scale must be a positive finite number", no
    tensor named)."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    model = spread_weights(small_model(), seed=4)
    data = convert(model, calibration(model))
    r = _Reader(data, "model")
    out = int(r.sg.outputs[0])
    broken = requantise_tensors(data, {out: (float("inf"), 0)})
    with pytest.raises(UnsupportedModelError, match=f"tensor '{re.escape(r.tname(out))}' has quantisation scale inf: "
                                                    f"its calibrated range left float32's"):
        compile_tflite(broken)


def test_unnamed_tensors_are_named_by_index(tmp_path):
    """A .tflite may leave tensors unnamed (TFLM's keyword_scrambled and seanet test models): the
    refusals and the header named them 'None'; now '#index'. The header of such a file compiles
    and is bit-identical to TFLM as before."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import repack

    model = spread_weights(small_model(), seed=4)
    data = convert(model, calibration(model))
    flat = _Reader(data, "model").model
    for t in flat.subgraphs[0].tensors:
        t.name = None
    unnamed = repack(flat, len(data))
    r = _Reader(unnamed, "model")
    assert [r.tname(k) for k in range(3)] == ["#0", "#1", "#2"]
    compiled = compile_tflite(unnamed, classname="Unnamed")
    assert "None" not in compiled.header
    (tmp_path / "u.h").write_text(compiled.header)
    xs = int8_inputs(model.input_shape[1:], n=6)
    raw, _ = run_header_int8(str(tmp_path / "u.h"), "Unnamed", xs)
    assert np.array_equal(raw, tflm_reference({"u": (unnamed, xs)})["u"])


def test_unsupported_op_is_named(tmp_path):
    i = keras.Input((4, 4, 2))
    x = L.Conv2D(3, 1)(i)
    x = L.Activation("log_softmax")(x)
    model = spread_weights(keras.Model(i, x))
    data = convert(model, calibration(model))
    with pytest.raises(UnsupportedModelError, match=r"\(LOG_SOFTMAX, writing '[^']+'\) is not supported by micronets' "
                                                    r"int8 path \(`micronets info --layers` lists the \d+ it supports\)$"):
        compile_tflite(data)
    from micronets.cli import supported_text
    from micronets.compiler.tflite import SUPPORTED

    listing = supported_text().split("int8 (")[1]
    assert all(name in listing for name in SUPPORTED) and "LOG_SOFTMAX" not in listing
    # an op of several outputs, each named by the converter's ';'-joined TF names: the message
    # names the first, shortened, so the CLI's one line (400 characters) still says why
    i = keras.Input((4, 4, 24))
    values = L.Lambda(lambda t: keras.ops.top_k(t, 3)[0], name="stacked_shift_blocks_stage_one_block_zero")(
        L.Conv2D(24, 1)(i))
    model = spread_weights(keras.Model(i, L.Conv2D(8, 1)(values)))
    data = convert(model, calibration(model))
    path = tmp_path / "topk.tflite"
    path.write_bytes(data)
    from click.testing import CliRunner

    from micronets.cli import main

    result = CliRunner().invoke(main, ["gen", str(path), "-o", str(tmp_path / "topk.h")])
    assert result.exit_code != 0 and "(TOPK_V2, writing '" in result.output
    assert "is not supported by micronets' int8 path" in result.output, result.output


def test_fused_activation_on_an_op_that_cannot_apply_it_is_refused():
    """A CONCATENATION carrying a fused RELU (TFLite's converter does not emit one; an edited or
    third-party file can) compiled with the RELU dropped; TFLite's reference refuses it too."""
    from int8_reference import repack
    from micronets.compiler.tflite import _Reader

    i = keras.Input((8, 8, 3))
    model = spread_weights(keras.Model(i, L.Concatenate()([L.Conv2D(4, 1)(i), L.Conv2D(4, 1)(i)])), seed=1)
    data = convert(model, calibration(model))
    r = _Reader(data, "model")
    for op in r.model.subgraphs[0].operators:
        if r.op_name(op) == "CONCATENATION":
            op.builtinOptions.fusedActivationFunction = 1  # RELU
    with pytest.raises(UnsupportedModelError, match=r"\(CONCATENATION\) has a fused activation \(1\); micronets fuses "
                                                    r"one into ADD, .*CONV_2D"):
        compile_tflite(repack(r.model, len(data)))


def test_upsampling_tiles_bit_identical_to_tflite(tmp_path):
    """UpSampling2D / UpSampling1D become RESHAPE, TILE, RESHAPE (per repeated axis). Neither TFLM
    nor TFLite's BUILTIN_REF has an int8 TILE, so the reference is TFLite's default kernel: a copy,
    which the model checks alone (TFLite's default convolutions are a few LSB off the reference
    ones, so none sits beside it): repeats along rows, columns, both, a tile of a tile (the first
    in the arena until fused), a sequence, and keras.ops.tile's whole copies of non-unit axes
    (where repeating each element instead would differ)."""
    i = keras.Input((5, 7, 3))
    maps = [L.UpSampling2D((2, 3))(i), L.UpSampling2D(2)(L.UpSampling2D((1, 2))(i)), L.UpSampling2D((3, 1))(i),
            L.UpSampling1D(3)(L.Reshape((35, 3))(i)), L.Lambda(lambda t: keras.ops.tile(t, (1, 2, 3, 1)))(i)]
    model = keras.Model(i, L.Concatenate()([L.Flatten()(m) for m in maps]), name="tiles")
    data = convert(model, calibration(model))
    assert op_names(data).count("TILE") == 8
    xs = int8_inputs(model.input_shape[1:], n=6)
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Tiles")
    assert np.array_equal(raw, tflite_reference(data, xs, builtin_ref=False))
    assert len(np.unique(raw)) > 200
    # each UpSampling2D's two tiles (and the stacked one's three) run as one gather: the maps
    # between them are never stored
    tiles = [op.describe() for op in compile_tflite(data).graph.ops if op.kind == "Tile"]
    assert sorted(tiles) == sorted(["5x1x7x3 x 1,2,1,1 then 1,1,3,1 -> 10x7x3x3", "5x1x7x3 x 1,3,1,1 -> 5x3x7x3",
                                    "5x7x1x3 x 1,1,2,1 then 1,2,1,1 then 1,1,2,1 -> 10x14x2x3", "35x1x3 x 1,3,1 -> 35x3x3",
                                    "5x7x3 x 2,3,1 -> 10x21x3"]), tiles


def test_gathers_are_recovered_from_the_elements_they_read():
    """fit_gather (how two tiles become one gather) finds a gather of at most six axes for the
    index walk of any such gather (random sizes, steps including 0 and repeats), reading the same
    elements in the same order, and refuses walks no gather makes."""
    from micronets.compiler.ops.int8_transpose import fit_gather, gather_indices

    rng = np.random.default_rng(3)
    for _ in range(300):
        k = int(rng.integers(1, 7))
        dims = [int(d) for d in rng.integers(1, 5, k)]
        strides = [int(s) for s in rng.integers(0, 40, k)]
        idx = gather_indices(dims, strides)
        fit = fit_gather(idx)
        assert fit is not None and len(fit[0]) == 6, (dims, strides)
        assert np.array_equal(gather_indices(*fit), idx), (dims, strides, fit)
    assert fit_gather(np.array([0, 1, 3])) is None and fit_gather(np.array([0, 2, 1, 3, 5, 4])) is None
    assert fit_gather(np.array([1, 2])) is None  # not from element 0


#: (input scale, zero point, output scale, zero point) where TFLM's and BUILTIN_REF's hard-swish
#: differ: the first from fuzz seed 61005 (inputs 103, 106, 109: 1 LSB), the others found by search
HARD_SWISH_SCALES = [(0.09458168, -60, 0.07088056, -123), (0.0026464425, 105, 0.002469139, 106),
                     (0.0110848835, -112, 0.006593024, -119), (0.24184044, -113, 0.1871974, -50),
                     (0.009445577, 77, 0.008693444, 54), (0.1, 0, 0.05, -128)]


def test_hard_swish_tables_match_each_reference_on_every_input(tmp_path):
    """HARD_SWISH on all 256 inputs at scales where TFLM (which forms the output multiplier in
    double precision) and BUILTIN_REF (single precision) disagree: each header's table is its
    reference's, and a header built for TFLM runs TFLM's."""
    from micronets.compiler.ops.int8_hard_swish import hard_swish_table

    from int8_reference import requantise_op

    i = keras.Input((16, 16, 1))
    data = convert(keras.Model(i, L.Activation("hard_swish")(i)), calibration(keras.Model(i, i)))
    assert op_names(data) == ["HARD_SWISH"]
    xs = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    models = {f"c{k}": requantise_op(data, 0, (float(np.float32(si)), zi), (float(np.float32(so)), zo))
              for k, (si, zi, so, zo) in enumerate(HARD_SWISH_SCALES)}
    tflm = tflm_reference({k: (m, xs) for k, m in models.items()})
    differ = 0
    for k, (si, zi, so, zo) in enumerate(HARD_SWISH_SCALES):
        args = (float(np.float32(si)), zi, float(np.float32(so)), zo)
        ref = tflite_reference(models[f"c{k}"], xs).reshape(-1)
        assert np.array_equal(hard_swish_table(*args, reference="tflm"), tflm[f"c{k}"].reshape(-1)), args
        assert np.array_equal(hard_swish_table(*args, reference="tflite-ref"), ref), args
        differ += not np.array_equal(ref, tflm[f"c{k}"].reshape(-1))
    assert differ == len(HARD_SWISH_SCALES) - 1  # the last pair: both agree
    _, raw, _ = compiled_outputs(models["c0"], xs, tmp_path, "HardSwish")
    assert np.array_equal(raw, tflm["c0"])


def test_rsqrt_abs_and_float_island_tables_match_both_references_on_every_input():
    """RSQRT (integer Newton-Raphson, as both references run it), ABS (rescaled, and as it is where
    the two scales are equal) and the float NEG, ELU and SQUARE between a DEQUANTIZE and a
    QUANTIZE that the converter leaves (as both run them in float) are tables: at 20 random scale
    and zero-point pairs each, every input gives TFLM's and BUILTIN_REF's output (RSQRT: the
    inputs at or above the zero point; below it both references stop with an error; ELU: TFLite's
    default kernels, BUILTIN_REF has none)."""
    from functools import partial

    from micronets.compiler.ops.int8_abs import abs_table
    from micronets.compiler.ops.int8_float_island import unary_table
    from micronets.compiler.ops.int8_rsqrt import rsqrt_table
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    rng = np.random.default_rng(41)
    i = keras.Input((256,))
    cases = {}
    for op, fn, lo, hi in (("RSQRT", keras.ops.rsqrt, 0.01, 4.0), ("NEG", keras.ops.negative, -1.0, 3.0),
                           ("ELU", L.ELU(), -3.0, 2.0), ("ABS", keras.ops.abs, -2.0, 3.0),
                           ("SQUARE", keras.ops.square, -2.0, 3.0)):
        data = convert(keras.Model(i, fn(i)), rng.uniform(lo, hi, (64, 256)).astype(np.float32))
        assert op in op_names(data)
        r = _Reader(data, "model")
        io = (int(r.sg.inputs[0]), int(r.sg.outputs[0]))
        for k in range(20):
            si, so = (float(np.float32(10 ** rng.uniform(-3, 0))) for _ in range(2))
            zi, zo = (int(z) for z in rng.integers(-128, 128, 2))
            if op == "RSQRT":
                zi = int(rng.integers(-128, 0))
            if op == "ABS" and k < 3:  # the same scale: no rescaling
                so = si
            xs = np.arange(-128, 128).clip(zi if op == "RSQRT" else -128).astype(np.int8).reshape(1, 256)
            cases[f"{op}{k}"] = (requantise_tensors(data, {io[0]: (si, zi), io[1]: (so, zo)}), xs, op, (si, zi, so, zo))
    tflm = tflm_reference({k: (m, xs) for k, (m, xs, _, _) in cases.items()})
    levels = {}
    tables = {"RSQRT": (rsqrt_table, "Rsqrt"), "NEG": (partial(unary_table, "NEG"), "FloatIsland"),
              "ELU": (partial(unary_table, "ELU"), "FloatIsland"), "ABS": (abs_table, "Abs"),
              "SQUARE": (partial(unary_table, "SQUARE"), "FloatIsland")}
    for k, (m, xs, op, args) in cases.items():
        table = tables[op][0](*args)[xs.reshape(-1).astype(int) + 128]
        assert np.array_equal(table, tflm[k].reshape(-1)), (op, args)
        assert np.array_equal(table, tflite_reference(m, xs, builtin_ref=op != "ELU").reshape(-1)), (op, args)
        assert [o.kind for o in compile_tflite(m).graph.ops] == [tables[op][1]]
        if op != "RSQRT":  # (its tables are few-valued by nature at most scales)
            levels.setdefault(op, []).append(len(np.unique(table)))
    for op, counts in levels.items():  # tables, not a few levels (random scales saturate some)
        assert max(counts) > 100 and sorted(counts)[len(counts) // 2] > (20 if op == "ELU" else 5), (op, counts)

def test_float_islands_match_the_references_on_every_input():
    """Ops the converter leaves in float between a DEQUANTIZE and a QUANTIZE, one op or several,
    become one table of the references' float steps: ELU with alpha 0.5 (ELU, MUL and a SELECT by
    an int8 GREATER of the input), SIGN, FLOOR, ROUND, COS, SIN, POW by a constant and a NEG with a
    MAXIMUM. At 8 random scale and zero-point pairs each, every input gives the output of every
    reference that has the float kernels (BUILTIN_REF has no ELU nor ROUND, TFLM no SELECT, SIGN,
    ROUND nor POW; TFLite's default kernels all of them). POW of negative values (NaN) is refused."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    rng = np.random.default_rng(93)
    i = keras.Input((256,))
    runs = {"REF": lambda m, xs: tflite_reference(m, xs), "DEF": lambda m, xs: tflite_reference(m, xs, builtin_ref=False)}
    cases = (("elu_half", L.ELU(alpha=0.5), -3.0, 2.0, ("DEF",), ["ELU", "MUL", "SELECT"]),
             ("sign", keras.ops.sign, -2.0, 2.0, ("REF", "DEF"), ["SIGN"]),
             ("floor", keras.ops.floor, -6.0, 6.0, ("REF", "DEF", "TFLM"), ["FLOOR"]),
             ("round", keras.ops.round, -6.0, 6.0, ("DEF",), ["ROUND"]),
             ("cos", keras.ops.cos, -3.0, 3.0, ("REF", "DEF", "TFLM"), ["COS"]),
             ("sin", keras.ops.sin, -3.0, 3.0, ("REF", "DEF", "TFLM"), ["SIN"]),
             ("pow", lambda x: keras.ops.power(x, 1.5), 0.0, 3.0, ("REF", "DEF"), ["POW"]),
             ("maxneg", lambda x: keras.ops.maximum(x, -x), -2.0, 2.0, ("REF", "DEF", "TFLM"), ["NEG", "MAXIMUM"]))
    tflm_cases, levels = {}, {}
    xs = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    for name, fn, lo, hi, references, ops in cases:
        data = convert(keras.Model(i, fn(i)), rng.uniform(lo, hi, (64, 256)).astype(np.float32))
        r = _Reader(data, "model")
        io = (int(r.sg.inputs[0]), int(r.sg.outputs[0]))
        for k in range(8):
            steps = name in ("floor", "round")  # integers out: a range of several, steps below 1
            si = float(np.float32(10 ** rng.uniform(-1.5, -0.5) if steps else 10 ** rng.uniform(-2.5, -1)))
            so = float(np.float32(10 ** rng.uniform(-1.3, -0.5) if steps else 10 ** rng.uniform(-2.5, -1)))
            zi, zo = (int(z) for z in rng.integers(-128, 128, 2))
            zi = -128 if name == "pow" else zi  # non-negative bases
            if steps and k == 0:  # quarter steps: every other input a half, where ROUND goes to even
                si, zi, so = 0.25, 3, 0.5
            m = requantise_tensors(data, {io[0]: (si, zi), io[1]: (so, zo)})
            (op,) = compile_tflite(m).graph.ops
            assert op.kind == "FloatIsland" and [s[0] for s in op.steps] == ops, (name, op.steps)
            for ref in references:
                if ref == "TFLM":
                    tflm_cases[f"{name}{k}"] = (m, xs, op.table)
                else:
                    assert np.array_equal(runs[ref](m, xs).reshape(-1), op.table), (name, ref, si, zi, so, zo)
            levels.setdefault(name, []).append(len(np.unique(op.table)))
        if name == "pow":
            with pytest.raises(UnsupportedModelError, match=r"\(DEQUANTIZE\) starts float ops \(POW\).*machines"):
                compile_tflite(requantise_tensors(data, {io[0]: (0.01, 0), io[1]: (0.05, 0)}))
    tflm = tflm_reference({k: v[:2] for k, v in tflm_cases.items()})
    for k, (_, _, table) in tflm_cases.items():
        assert np.array_equal(tflm[k].reshape(-1), table), k
    for name, counts in levels.items():  # tables, not a few levels (SIGN has three values)
        assert max(counts) >= {"sign": 3, "floor": 6, "round": 6}.get(name, 20), (name, counts)


def test_tanh_and_leaky_relu_tables_match_both_references_on_every_input(tmp_path):
    """TANH and LEAKY_RELU are tables: at random scale and zero-point pairs (LEAKY_RELU at three
    slopes, one above 1), every input gives TFLM's and BUILTIN_REF's output. Their TANH tables
    differ (TFLM: gemmlowp's fixed-point tanh; BUILTIN_REF: single-precision tanhf) where the
    input scale is large (TFLM saturates inside its input radius); one such scale is among the
    cases, and a header built for each reference runs its own."""
    from micronets.compiler.ops.int8_leaky_relu import leaky_relu_table
    from micronets.compiler.ops.int8_tanh import tanh_table, tanh_table_float
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    rng = np.random.default_rng(43)
    i = keras.Input((256,))
    xs = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    cases = {}
    for op, layer, alpha in (("TANH", L.Activation("tanh"), None), ("LEAKY_RELU", L.LeakyReLU(0.1), 0.1),
                             ("LEAKY_RELU", L.LeakyReLU(0.3), 0.3), ("LEAKY_RELU", L.LeakyReLU(1.7), 1.7)):
        data = convert(keras.Model(i, layer(i)), rng.uniform(-3, 3, (64, 256)).astype(np.float32))
        assert op_names(data) == [op]
        r = _Reader(data, "model")
        io = (int(r.sg.inputs[0]), int(r.sg.outputs[0]))
        for k in range(8 if op == "TANH" else 4):
            # input scales spanning tanh's curve; output scales of the same order (many levels)
            si = float(np.float32(10 ** rng.uniform(-2.5, -1.0)))
            so = float(np.float32(si * 10 ** rng.uniform(-0.7, 0.3)))
            zi, zo = (int(z) for z in rng.integers(-128, 128, 2))
            if op == "TANH":  # the output is fixed at 1/128, 0; the last case at a large input scale
                so, zo = 1 / 128, 0
                si, zi = (8.010986328125, -4) if k == 7 else (si, zi)
            cases[f"{op}{alpha}_{k}"] = (requantise_tensors(data, {io[0]: (si, zi), io[1]: (so, zo)}), op, (si, zi, so, zo), alpha)
    tflm = tflm_reference({k: (m, xs) for k, (m, _, _, _) in cases.items()})
    differ = 0
    for k, (m, op, (si, zi, so, zo), alpha) in cases.items():
        ref = tflite_reference(m, xs).reshape(-1)
        if op == "TANH":
            mine, theirs = tanh_table(si, zi), tanh_table_float(si, zi)
            differ += not np.array_equal(mine, theirs)
        else:
            mine = theirs = leaky_relu_table(si, zi, so, zo, alpha)
        assert np.array_equal(mine, tflm[k].reshape(-1)), (k, np.abs(mine.astype(int) - tflm[k].reshape(-1)).max())
        assert np.array_equal(theirs, ref), (k, np.abs(theirs.astype(int) - ref).max())
        assert len(np.unique(ref)) > 20 or k.endswith("_7")  # a table over its range, not a few levels
    assert differ == 1  # the large scale's
    m = cases["TANHNone_7"][0]
    for reference, want in (("tflm", tflm["TANHNone_7"]), ("tflite-ref", tflite_reference(m, xs))):
        _, raw, _ = compiled_outputs(m, xs, tmp_path, f"T{reference[-3:].title()}", reference=reference)
        assert np.array_equal(raw, want), reference


@pytest.mark.parametrize("approximate", [False, True], ids=["erfc", "tanh"])
def test_gelu_bit_identical_to_tflite_on_every_input(approximate, tmp_path):
    """GELU (exact and tanh-approximate) as TFLite builds its table: on all 256 int8 inputs, at
    three input ranges, the header gives TFLite's outputs (BUILTIN_REF and its default kernels),
    in both reference modes. TFLM has no GELU kernel, so TFLite is the reference here. The other
    variant's table differs from TFLite's somewhere (the flag is read, not assumed)."""
    from micronets.compiler.ops.int8_gelu import Int8Gelu, gelu_table

    i = keras.Input((16, 16, 1))
    model = keras.Model(i, L.Activation(lambda t: keras.activations.gelu(t, approximate=approximate))(i))
    xs = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    other_differs = False
    for k, (lo, hi) in enumerate(((-1.0, 1.0), (-6.0, 2.0), (-0.3, 9.0))):
        cal = np.random.default_rng(k).uniform(lo, hi, (64, 16, 16, 1)).astype(np.float32)
        data = convert(model, cal)
        assert op_names(data) == ["GELU"]
        ref = tflite_reference(data, xs)
        assert np.array_equal(ref, tflite_reference(data, xs, builtin_ref=False))
        assert len(np.unique(ref)) > 80  # a table over its range, not a handful of levels
        for reference in ("tflm", "tflite-ref"):
            compiled = compile_tflite(data, classname="G", reference=reference)
            (op,) = [op for op in compiled.graph.ops if isinstance(op, Int8Gelu)]
            assert op.approximate == approximate
            _, raw, _ = compiled_outputs(data, xs, tmp_path, f"G{k}", reference=reference)
            assert np.array_equal(raw, ref), (lo, hi, reference)
        other = gelu_table(op.inputs[0].quant.scale, op.inputs[0].quant.zero_point, op.output.quant.scale,
                           op.output.quant.zero_point, not approximate)
        other_differs |= not np.array_equal(other, ref.reshape(-1))
    assert other_differs


def test_exp_and_log_tables_match_tflite_on_every_input(tmp_path):
    """EXP and LOG as TFLite builds their tables (LUTPopulate of expf and logf): at 20 random scale
    and zero-point pairs each, every input gives TFLite's BUILTIN_REF output. LOG's input zero
    point is -128 (the converter's range always holds 0, so its lowest input is log 0 = -inf,
    which both x86 and ARM cast to the minimum); where an input range reaches below 0 (NaN,
    cast differently by each machine) the op is refused. TFLM has no int8 kernel for either. Then
    softplus, mish, celu and log-sigmoid (EXP, ADD, LOG, TANH, MUL, MINIMUM, SUB) in one model: 0
    LSB against BUILTIN_REF."""
    from micronets.compiler.ops.int8_exp import exp_table
    from micronets.compiler.ops.int8_log import log_table
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    rng = np.random.default_rng(43)
    i = keras.Input((256,))
    levels = {}
    for op, fn, lo, hi, table_of in (("EXP", keras.ops.exp, -3.0, 2.0, exp_table),
                                     ("LOG", keras.ops.log, 0.05, 4.0, log_table)):
        data = convert(keras.Model(i, fn(i)), rng.uniform(lo, hi, (64, 256)).astype(np.float32))
        assert op_names(data) == [op]
        r = _Reader(data, "model")
        io = (int(r.sg.inputs[0]), int(r.sg.outputs[0]))
        xs = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
        for k in range(20):
            # (EXP's inputs up to about 8: beyond, exp overflows int32 before the clamp)
            si = float(np.float32(10 ** rng.uniform(-3, -1.5 if op == "EXP" else -0.5)))
            so = float(np.float32(10 ** rng.uniform(-3, -0.5)))
            zi, zo = (int(z) for z in rng.integers(-128, 128, 2))
            zi = -128 if op == "LOG" else zi
            m = requantise_tensors(data, {io[0]: (si, zi), io[1]: (so, zo)})
            table = table_of(si, zi, so, zo)
            assert np.array_equal(table, tflite_reference(m, xs).reshape(-1)), (op, si, zi, so, zo)
            _, raw, _ = compiled_outputs(m, xs, tmp_path, f"T{op}{k}", reference="tflite-ref") if k < 2 else (0, None, 0)
            assert raw is None or np.array_equal(raw.reshape(-1), table)
            levels.setdefault(op, []).append(len(np.unique(table)))
        if op == "LOG":  # inputs below 0: NaN in the table
            with pytest.raises(UnsupportedModelError, match=r"\(LOG\).*differs between machines"):
                compile_tflite(requantise_tensors(data, {io[0]: (0.01, 0), io[1]: (0.05, 0)}))
    for op, counts in levels.items():
        assert max(counts) > 100, (op, counts)
    inp = keras.Input((12,))
    h = inp
    for a in ("softplus", "mish", "celu", "log_sigmoid"):
        h = L.Activation(a)(L.Dense(12)(h))
    model = spread_weights(keras.Model(inp, L.Dense(5)(h)), seed=44)
    data = convert(model, calibration(model, seed=44))
    assert {"EXP", "LOG"} <= set(op_names(data))
    xs = int8_inputs(model.input_shape[1:], n=12, seed=44)
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Acts", reference="tflite-ref")
    ref = tflite_reference(data, xs)
    assert np.array_equal(raw, ref), np.abs(raw.astype(int) - ref).max()
    assert len(np.unique(raw)) > 16


# ------------------------------------------------------------------------------ select by a comparison
def _comparisons_model():
    """(256,) -> where(x CMP c, x, 0) for >, >=, <, <= and == (twice) against constants,
    concatenated: TFLite's int8 GREATER, GREATER_EQUAL, LESS, LESS_EQUAL, EQUAL, each read by a
    SELECT_V2 (the converter leaves NOT_EQUAL in float: the second EQUAL is recoded to one)."""
    i = keras.Input((256,))
    cmps = (lambda a: a > 0.3, lambda a: a >= -0.2, lambda a: a < 0.5, lambda a: a <= -0.4,
            lambda a: keras.ops.equal(a, 0.25), lambda a: keras.ops.equal(a, -0.5))
    return keras.Model(i, L.Concatenate()([keras.ops.where(c(i), i, keras.ops.zeros_like(i)) for c in cmps]))


def _recode_last(data: bytes, old: str, new: str) -> bytes:
    """The model with its last ``old`` op (a builtin name) made a ``new`` one, repacked."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import repack

    r = _Reader(data, "model")
    last = [op for op in r.sg.operators if r.op_name(op) == old][-1]
    code = r.schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(r.schema.BuiltinOperator, new)
    code.version = 1
    r.model.operatorCodes.append(code)
    last.opcodeIndex = len(r.model.operatorCodes) - 1
    return repack(r.model, len(data))


def test_comparisons_select_bit_identical_at_any_scale(tmp_path):
    """Every int8 comparison selecting by a threshold, with the input's and each threshold's scale
    and zero point drawn at random (24 draws): the condition folded into a range of raw values
    gives BUILTIN_REF's outputs over all 256 inputs (two draws through g++, against TFLM too); a
    select between operands quantised unlike its output, and a comparison of a scale of 1 or
    more (TFLite's kernels abort), are refused naming the op."""
    from micronets.compiler.ops.int8_concat import Int8Concat
    from micronets.compiler.ops.int8_select import Int8Select
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    model = _comparisons_model()
    data = _recode_last(convert(model, np.random.default_rng(0).uniform(-1, 1, (64, 256)).astype(np.float32)),
                        "EQUAL", "NOT_EQUAL")
    names = op_names(data)
    assert sorted(n for n in names if n not in ("SELECT_V2", "CONCATENATION")) == [
        "EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "NOT_EQUAL"], names
    r = _Reader(data, "model")
    thresholds = {int(op.inputs[1]) for op in r.sg.operators if r.op_name(op) != "SELECT_V2" and len(op.inputs) == 2
                  and r.constant(int(op.inputs[1])) is not None}
    assert len(thresholds) == 6
    shared = [t for t in range(len(r.sg.tensors)) if r.ttype(t) == "int8" and t not in thresholds]
    xs = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    rng = np.random.default_rng(8)
    kinds, runs = set(), {}
    for k in range(24):
        s, z = float(np.float32(10 ** rng.uniform(-2.5, -1.5))), int(rng.integers(-100, 100))
        quants = {t: (s, z) for t in shared}
        quants.update((t, (float(np.float32(10 ** rng.uniform(-3, -0.5))), int(rng.integers(-128, 128))))
                      for t in thresholds)
        m = requantise_tensors(data, quants)
        compiled = compile_tflite(m, classname=f"Cmp{k}", reference="tflite-ref")
        selects = [op for op in compiled.graph.ops if isinstance(op, Int8Select)]
        assert len(selects) == 6 and all(op.range is not None for op in selects)
        # the folded conditions, applied to the raw inputs, are what BUILTIN_REF selects
        folded = {}
        for op in selects:
            lo, hi, negate = op.range
            y = int(op.operands[2].reshape(-1)[0])
            folded[op.output.name] = np.where(((xs[0] >= lo) & (xs[0] <= hi)) != negate, xs[0], y)
            kinds.add((op.comparison, "all" if (lo, hi, negate) == (-128, 127, False) else "none" if lo > hi else "some"))
        concat = next(op for op in compiled.graph.ops if isinstance(op, Int8Concat))
        ref = tflite_reference(m, xs)
        assert np.array_equal(np.concatenate([folded[t.name] for t in concat.inputs]).reshape(1, -1), ref), k
        if k < 2:
            _, raw, _ = compiled_outputs(m, xs, tmp_path, f"Cmp{k}", reference="tflite-ref")
            assert np.array_equal(raw, ref), k
            runs[f"cmp{k}"] = (m, xs)
            _, raw_tflm, _ = compiled_outputs(m, xs, tmp_path, f"CmpT{k}")
            runs[f"cmp{k}"] += (raw_tflm,)
    tflm = tflm_reference({name: (m, x) for name, (m, x, _) in runs.items()})
    for name, (_, _, raw) in runs.items():
        assert np.array_equal(raw, tflm[name]), name
    # every comparison held for some raw values and not others in some draw; NOT_EQUAL as a negated range
    assert {c for c, how in kinds if how == "some"} == {"GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL",
                                                         "NOT_EQUAL"}, kinds
    out = int(r.sg.outputs[0])
    select_out = next(int(op.outputs[0]) for op in r.sg.operators if r.op_name(op) == "SELECT_V2")
    with pytest.raises(UnsupportedModelError, match=r"\(SELECT_V2\).*quantised unlike its output"):
        compile_tflite(requantise_tensors(data, {select_out: (0.5, 0)}))
    assert out != select_out
    with pytest.raises(UnsupportedModelError, match=r"\(SELECT_V2\).*scale 2 is 1 or more"):
        compile_tflite(requantise_tensors(data, {t: (2.0, 0) for t in thresholds}))


def test_threshold_activations_bit_identical(tmp_path):
    """Keras layers TFLite lowers to a comparison and a select: ReLU(threshold) and hard_shrink
    (GREATER, SELECT_V2) at 0 LSB against TFLM and BUILTIN_REF; selu, soft_shrink, sparse_plus
    and keras.ops.where of two computed operands (also SELECT, which TFLM lacks, and LESS,
    LESS_EQUAL) at 0 LSB against BUILTIN_REF."""
    i = keras.Input((6, 6, 3))
    x = L.ReLU(threshold=0.4)(L.Conv2D(8, 3, padding="same")(i))
    x = L.Activation("hard_shrink")(L.Conv2D(8, 1)(x))
    v2 = spread_weights(keras.Model(i, L.Conv2D(4, 1)(x)), seed=50)
    i = keras.Input((6, 6, 3))
    x = L.Activation("selu")(L.Conv2D(8, 3, padding="same")(i))
    x = L.Activation("soft_shrink")(L.Conv2D(8, 1)(x))
    x = L.Activation("sparse_plus")(L.Conv2D(8, 1)(x))
    x = keras.ops.where(x[..., :4] > x[..., 4:], x[..., :4], x[..., 4:] * 0.5)
    v1 = spread_weights(keras.Model(i, L.Conv2D(4, 1)(x)), seed=51)
    xs = int8_inputs((6, 6, 3), n=12, seed=52)
    runs = {}
    for name, model in (("v2", v2), ("v1", v1)):
        data = convert(model, calibration(model, seed=53))
        names = set(op_names(data))
        assert ({"GREATER", "SELECT_V2"} <= names) and (name == "v2") == ("SELECT" not in names), names
        compiled, raw, _ = compiled_outputs(data, xs, tmp_path, f"Sel{name}", reference="tflite-ref")
        ref = tflite_reference(data, xs)
        assert np.array_equal(raw, ref), (name, np.abs(raw.astype(int) - ref).max())
        assert len(np.unique(raw)) > 16
        if name == "v2":
            _, runs[name], _ = compiled_outputs(data, xs, tmp_path, "SelTflm")
            tflm = tflm_reference({name: (data, xs)})[name]
            assert np.array_equal(runs[name], tflm), np.abs(runs[name].astype(int) - tflm).max()
        else:
            assert {"LESS", "LESS_EQUAL", "SELECT"} <= names
            assert "int8_select_cmp<" in compiled.header and "int8_select_range<" in compiled.header
    # a constant condition (an attention's causal mask) is refused, saying why
    i = keras.Input((6, 8))
    model = spread_weights(keras.Model(i, L.MultiHeadAttention(2, 4)(i, i, use_causal_mask=True)), seed=54)
    with pytest.raises(UnsupportedModelError, match=r"\(SELECT_V2\) selects by the constant .*causal mask.*only a comparison"):
        compile_tflite(convert(model, calibration(model, seed=55)))


def test_a_layer_the_converter_keeps_in_float_is_named(tmp_path):
    """TFLite's converter leaves a cumulative sum in float (DEQUANTIZE, CUMSUM, QUANTIZE: not
    elementwise, so no table): export(quantize='int8') refuses the model naming that layer, and
    writes nothing."""
    i = keras.Input((4, 4, 2))
    x = L.Lambda(lambda t: keras.ops.cumsum(t, axis=-1), name="the_cumsum")(L.Conv2D(6, 1)(i))
    model = spread_weights(keras.Model(i, L.Conv2D(3, 1)(x)))
    with pytest.raises(UnsupportedModelError, match=r"\(DEQUANTIZE\).*the_cumsum.*kept in float"):
        micronets.export(model, str(tmp_path / "m.h"), quantize="int8", calibration=calibration(model))
    assert os.listdir(tmp_path) == []


def test_unit_normalization_bit_identical_with_tflm(tmp_path):
    """UnitNormalization as the converter lowers it (SQUARE left in float: one table; SUM over the
    channels; RSQRT, MINIMUM, MUL) runs at 0 LSB against TFLM; BUILTIN_REF's SUM is unsound, so
    reference='tflite-ref' refuses it naming the SUM."""
    i = keras.Input((4, 4, 2))
    x = L.UnitNormalization(name="the_norm")(L.Conv2D(6, 1)(i))
    model = spread_weights(keras.Model(i, L.Conv2D(3, 1)(x)))
    data = convert(model, calibration(model))
    assert {"SQUARE", "SUM", "RSQRT"} <= set(op_names(data))
    xs = int8_inputs(model.input_shape[1:], n=12, seed=6)
    _, raw, _ = compiled_outputs(data, xs, tmp_path, "Unit")
    tflm = tflm_reference({"unit": (data, xs)})["unit"]
    assert np.array_equal(raw, tflm), np.abs(raw.astype(int) - tflm).max()
    assert len(np.unique(raw)) > 16
    with pytest.raises(UnsupportedModelError, match=r"\(SUM\).*BUILTIN_REF"):
        compile_tflite(data, reference="tflite-ref")


# ------------------------------------------------------------------------------ division, square root, c - x
def _two_input_int8(fn, lo_b, hi_b, seed):
    """TFLite's full-integer conversion of (a, b) -> fn(a, b) over two (256,) inputs, a in
    [-2, 2], b in [lo_b, hi_b] (the references run it; micronets compiles single-input models)."""
    import tensorflow as tf

    a_in, b_in = keras.Input((256,), name="a"), keras.Input((256,), name="b")
    model = keras.Model([a_in, b_in], fn(a_in, b_in))
    spec = [tf.TensorSpec([1, 256], tf.float32)] * 2

    @tf.function(input_signature=spec)
    def infer(a, b):
        return model([a, b], training=False)

    rng = np.random.default_rng(seed)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([infer.get_concrete_function()], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.uniform(-2, 2, (1, 256)).astype(np.float32),
                                            rng.uniform(lo_b, hi_b, (1, 256)).astype(np.float32)] for _ in range(32))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def test_div_matches_both_references_on_every_operand_pair(tmp_path):
    """TFLite's int8 DIV (TFLM's reference Div: GetReciprocal's Newton-Raphson, the dividend's
    sign bits, two multipliers) as integer arithmetic (int8_div.div_value) at 10 random scale
    and zero-point triples: every dividend against every divisor gives TFLM's output (its output
    multiplier formed in double), and BUILTIN_REF's (in single precision) wherever it runs (it
    stops at a raw divisor byte of 0); a divisor of value 0 is undefined in both and left out. Scales where the final rounding shift would pass 31 bits
    (undefined C++: on x86 both references put quotients that round to 0 near the clamp) are
    refused. Then the C++ kernel's mn_div_one, from a compiled header, equals div_value on every
    dividend and 80 divisors (signs, 0, the extremes) at output shifts from 7 to 23."""
    from micronets.compiler.graph import Quant
    from micronets.compiler.ops.int8_div import check_defined, div_multiplier, div_value, operand_values
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    data = _two_input_int8(lambda a, b: a / b, 0.5, 3.0, seed=80)
    r = _Reader(data, "model")
    assert op_names(data) == ["DIV"]
    div = r.sg.operators[0]
    names = [r.tname(int(i)) for i in r.sg.inputs]
    first = names.index(r.tname(int(div.inputs[0])))  # the converter may order the inputs by name
    rng = np.random.default_rng(81)
    cases, expected, refused, differ = {}, {}, 0, 0
    while len(cases) < 10:
        sa, sb = (float(np.float32(10 ** rng.uniform(-2.5, -0.5))) for _ in range(2))
        so = float(np.float32(sa / (sb * 10 ** rng.uniform(1.7, 3.5))))  # output multipliers 2^6 .. 2^12
        za, zb, zo = (int(z) for z in rng.integers(-128, 128, 3))
        m = requantise_tensors(data, {int(div.inputs[0]): (sa, za), int(div.inputs[1]): (sb, zb),
                                      int(div.outputs[0]): (so, zo)})
        want = {}
        try:
            for reference in ("tflm", "tflite-ref"):
                mult, shift = div_multiplier(sa, sb, so, reference)
                check_defined("d", operand_values(Quant(sa, za)), operand_values(Quant(sb, zb)), shift)
                want[reference] = np.array([[div_value(x - za, v - zb, mult, shift, zo, -128, 127)
                                             for x in range(-128, 128)] for v in range(-128, 128) if v != zb], np.int8)
        except UnsupportedModelError:
            refused += 1
            continue
        divisors = [v for v in range(-128, 128) if v != zb]
        a = np.tile(np.arange(-128, 128, dtype=np.int8), (len(divisors), 1))
        b = np.repeat(np.array(divisors, np.int8)[:, None], 256, axis=1)
        k = len(cases)
        cases[f"D{k}"] = (m, (a, b) if first == 0 else (b, a))
        expected[f"D{k}"] = want["tflm"]
        runs = np.array(divisors) != 0
        ref = tflite_reference(m, (a[runs], b[runs]) if first == 0 else (b[runs], a[runs]))
        assert np.array_equal(ref, want["tflite-ref"][runs]), (k, np.abs(ref.astype(int) - want["tflite-ref"][runs]).max())
        differ += int(np.sum(want["tflm"] != want["tflite-ref"]))
    assert 0 < refused < 10, refused
    tflm = tflm_reference(cases)
    for name, want in expected.items():
        assert np.array_equal(tflm[name], want), (name, np.abs(tflm[name].astype(int) - want).max())
        assert len(np.unique(want)) > 100
    assert differ > 0  # the two multipliers part at some near-ties
    # where the shift would pass 31 bits, the model is refused naming the op
    i = keras.Input((4, 4, 2))
    model = keras.Model(i, keras.ops.divide(i[..., :1], keras.ops.abs(i[..., 1:]) + 0.05))
    with pytest.raises(UnsupportedModelError, match=r"\(DIV\).*final rounding shift reaches"):
        compile_tflite(convert(model, calibration(model, seed=83)))
    # the C++ kernel against div_value
    model = spread_weights(keras.Model(i, keras.ops.divide(i[..., :1], keras.ops.abs(i[..., 1:]) + 1.0)), seed=82)
    compiled = compile_tflite(convert(model, calibration(model, seed=83)), classname="Dv")
    assert "Divide" in [o.kind for o in compiled.graph.ops]
    header = tmp_path / "dv.h"
    header.write_text(compiled.header)
    divisors = sorted({-255, -254, -128, -2, -1, 0, 1, 2, 3, 127, 128, 255, *rng.integers(-255, 256, 68).tolist()})
    params = [(int(rng.integers(1 << 30, 1 << 31)), s) for s in (7, 8, 12, 23)]
    source = (f'#include "{header}"\n#include <stdio.h>\n'
              f"static const int b[] = {{{', '.join(map(str, divisors))}}};\n"
              f"static const long p[][2] = {{{', '.join(f'{{{m}, {s}}}' for m, s in params)}}};\n"
              "int main() { for (unsigned k = 0; k < sizeof(p) / sizeof(p[0]); ++k)"
              " for (unsigned j = 0; j < sizeof(b) / sizeof(b[0]); ++j) for (int a = -255; a <= 255; ++a)"
              " putchar((int)(unsigned char)(signed char)micronets_Dv::mn_div_one(a, b[j], (int32_t)p[k][0],"
              " (int)p[k][1], -7, -128, 127)); return 0; }\n")
    got = np.frombuffer(strict_program_output(tmp_path, "dv", source), np.int8)
    want = np.array([div_value(a, v, m, s, -7, -128, 127) for m, s in params for v in divisors
                     for a in range(-255, 256)], np.int8)
    assert got.shape == want.shape and np.array_equal(got, want), np.flatnonzero(got != want)[:5]


def test_sqrt_constant_minus_and_constant_div_tables_match_the_references_on_every_input():
    """SQRT (TFLite's float steps, truncated), c - x (SUB of a scalar constant: the rescaled input
    subtracted, by both references, at rounding ties too) and c / x, x / c (DIV with a
    scalar constant; the converter makes x / c a MUL, recoded here to a DIV) are tables: at 12
    random scale and zero-point pairs each, every input gives BUILTIN_REF's output and, where TFLM
    has the op, TFLM's (SQRT: the inputs at or above the zero point, below it TFLite stops with an
    error; c / x: not at a divisor of value 0, undefined in both, nor for BUILTIN_REF at a raw
    divisor byte of 0, where it stops; scale draws where DIV's final shift would pass 31 bits are
    refused and drawn again)."""
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    rng = np.random.default_rng(84)
    i = keras.Input((256,))
    kinds = {"SQRT": "Sqrt", "SUB": "ConstantMinus", "DIV": "DivideConstant", "MUL": "DivideConstant"}
    cases, tables, levels, refused = {}, {}, {}, {}
    for op, fn, lo, hi in (("SQRT", keras.ops.sqrt, 0.0, 4.0), ("SUB", lambda x: 1.5 - x, -2.0, 3.0),
                           ("DIV", lambda x: 2.0 / x, 0.25, 3.0), ("MUL", lambda x: x * 0.75, -2.0, 3.0)):
        data = convert(keras.Model(i, fn(i)), rng.uniform(lo, hi, (64, 256)).astype(np.float32))
        assert op_names(data) == [op], op_names(data)
        if op == "MUL":
            data = _recode_last(data, "MUL", "DIV")
        r = _Reader(data, "model")
        io = (int(r.sg.inputs[0]), int(r.sg.outputs[0]))
        k = 0
        while k < 12:
            si, so = (float(np.float32(10 ** rng.uniform(-2.5, 0))) for _ in range(2))
            zi, zo = (int(z) for z in rng.integers(-128, 128, 2))
            xs = np.arange(-128, 128)
            xs = xs[xs >= zi] if op == "SQRT" else xs[xs != zi] if op == "DIV" else xs
            quants = {io[0]: (si, zi), io[1]: (so, zo)}
            if op == "SUB" and k == 0:
                # the input's multiplier (2^20 + 1) 2^10 puts odd inputs on rounding ties, where
                # negating the multiplier instead of the term would round the other way; at these
                # scales one such input lands on an output step
                c = int(r.sg.operators[0].inputs[0])
                c_raw = int(np.asarray(r.constant(c)).reshape(-1)[0])
                quants = {io[0]: ((2 ** 20 + 1) * 2.0 ** -26, -63), io[1]: (0.09375, -46), c: (2.0 ** -5, c_raw - 26)}
            m = requantise_tensors(data, quants)
            try:
                for reference in ("tflite-ref",) if op == "SQRT" else ("tflite-ref", "tflm"):
                    ops = compile_tflite(m, reference=reference).graph.ops
                    assert [o.kind for o in ops] == [kinds[op]]
                    tables[(op, k, reference)] = ops[0].table
            except UnsupportedModelError as exc:  # scales where the references' DIV is undefined
                assert op in ("DIV", "MUL") and "final rounding shift" in str(exc)
                refused[op] = refused.get(op, 0) + 1
                continue
            ref_xs = xs[xs != 0] if op == "DIV" else xs
            got = tflite_reference(m, np.resize(ref_xs, 256).astype(np.int8).reshape(1, 256)).reshape(-1)
            want = tables[(op, k, "tflite-ref")][ref_xs + 128]
            assert np.array_equal(got[:len(ref_xs)], want), (op, k, si, zi, so, zo)
            levels.setdefault(op, []).append(len(np.unique(want)))
            if op != "SQRT":
                cases[f"{op}{k}"] = (m, np.resize(xs, 256).astype(np.int8).reshape(1, 256))
                tables[f"{op}{k}"] = tables[(op, k, "tflm")][xs + 128]
            k += 1
    assert sum(refused.values()) < 24, refused
    tflm = tflm_reference(cases)
    for name in cases:
        assert np.array_equal(tflm[name].reshape(-1)[:len(tables[name])], tables[name]), name
    for op, counts in levels.items():  # tables, not a few levels (SQRT: half the inputs on average)
        assert max(counts) > (60 if op == "SQRT" else 100), (op, counts)


def test_sub_subtracts_the_rescaled_operand_in_both_references_at_rounding_ties(tmp_path):
    """SUB of two activations at scales that put the second operand's rescale on rounding ties
    (its multiplier (2^20 + 1) 2^10): TFLM and BUILTIN_REF both subtract the rescaled second operand
    (TFLite's source once added it with its multiplier negated, which rounds those ties the other
    way: 85 of the 65,536 pairs here), for same-shape and broadcast operands; the compiled kernel
    (x - |x|, the same scales) equals BUILTIN_REF on every input, and so does x - c with the
    constant on a tie, built for either reference."""
    from micronets.compiler.ops.int8_add import add_multipliers
    from micronets.compiler.quant import mbqm
    from micronets.compiler.tflite import _Reader

    from int8_reference import requantise_tensors

    tie = (2 ** 20 + 1) * 2.0 ** -26
    (am, ash), (bm, bsh), (om, osh) = add_multipliers(2.0 ** -5, tie, 0.09375)

    def sub(va, vb, negated):  # on every value pair, tabulated: raw a, raw b -> output
        sa = np.array([mbqm((v - 5) * (1 << 20), am, ash) for v in range(-128, 128)])
        sb = np.array([mbqm((v + 63) * (1 << 20), -bm, bsh) if negated else -mbqm((v + 63) * (1 << 20), bm, bsh)
                       for v in range(-128, 128)])
        table = np.array([[max(-128, min(127, mbqm(int(x + y), om, osh) - 46)) for y in sb] for x in sa], np.int8)
        return table[va.astype(int) + 128, vb.astype(int) + 128]

    rows = np.tile(np.arange(-128, 128, dtype=np.int8)[:, None], (1, 256))  # every pair: a row's value
    cols = rows.T.copy()  # against every column's
    for broadcast in (False, True):
        data = _two_input_int8((lambda x, y: x - y[:, :1]) if broadcast else (lambda x, y: x - y), -2.0, 3.0, seed=90)
        r = _Reader(data, "model")
        op = [o for o in r.sg.operators if r.op_name(o) == "SUB"][0]
        m = requantise_tensors(data, {int(op.inputs[0]): (2.0 ** -5, 5), int(op.inputs[1]): (tie, -63),
                                      int(op.outputs[0]): (0.09375, -46)})
        a, b = (cols, rows) if broadcast else (rows, cols)  # broadcast: b's first column, a row's value
        feeds = tuple(a if r.tname(int(i)).endswith("_a:0") else b for i in r.sg.inputs)
        bb = b[:, :1].repeat(256, axis=1) if broadcast else b
        want, negated = sub(a, bb, False), sub(a, bb, True)
        assert np.array_equal(tflite_reference(m, feeds), want)
        assert np.array_equal(tflm_reference({"s": (m, feeds)})["s"], want)
        assert np.sum(want != negated) > 50
    i = keras.Input((256,))
    data = convert(keras.Model(i, i - keras.ops.abs(i)), np.random.default_rng(91).uniform(-2, 3, (64, 256)).astype(np.float32))
    r = _Reader(data, "model")
    op = [o for o in r.sg.operators if r.op_name(o) == "SUB"][0]
    m = requantise_tensors(data, {int(op.inputs[0]): (2.0 ** -5, 5), int(op.inputs[1]): (tie, -63),
                                  int(op.outputs[0]): (0.09375, -46)})
    xs = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    compiled, raw, _ = compiled_outputs(m, xs, tmp_path, "SubTie", reference="tflite-ref")
    assert "Subtract" in [o.kind for o in compiled.graph.ops]
    assert np.array_equal(raw, tflite_reference(m, xs))
    # x - c with the constant on a tie (its value 1 step above its zero point, its scale the tie's)
    data = convert(keras.Model(i, i - 1.5), np.random.default_rng(92).uniform(-2, 3, (64, 256)).astype(np.float32))
    r = _Reader(data, "model")
    op = r.sg.operators[0]
    c_raw = int(np.asarray(r.constant(int(op.inputs[1]))).reshape(-1)[0])
    m = requantise_tensors(data, {int(op.inputs[0]): (2.0 ** -5, 5), int(op.inputs[1]): (tie, c_raw - 1),
                                  int(op.outputs[0]): (0.09375, -46)})
    assert mbqm(1 << 20, -bm, bsh) != -mbqm(1 << 20, bm, bsh)  # negating the multiplier would round it otherwise
    for reference in ("tflite-ref", "tflm"):
        compiled, raw, _ = compiled_outputs(m, xs, tmp_path, f"SubConstTie{reference[-3:]}", reference=reference)
        assert [o.kind for o in compiled.graph.ops] == ["SubtractConstant"]
        ref = tflite_reference(m, xs) if reference == "tflite-ref" else tflm_reference({"c": (m, xs)})["c"]
        assert np.array_equal(raw, ref), reference


def test_division_square_root_and_constant_minus_bit_identical_in_models(tmp_path):
    """softsign (DIV of two activations), a normalisation x / (sum |x| + c) (DIV broadcast over
    channels), 1 / (x^2 + 1) (DIV of a constant), 1 - x and ReLU(negative_slope, threshold,
    max_value) (SUB of a constant minus an activation) in one model: 0 LSB against TFLM (BUILTIN_REF
    stops at softsign's raw divisor bytes of 0, and its SUM disagrees with TFLM). squareplus and a
    standard deviation (SQRT, which TFLM lacks) with 1 - x, the leaky ReLU and 1 / (x^2 + 1): 0
    LSB against BUILTIN_REF. Both headers compile strictly for Cortex-M4, and the first runs there
    under QEMU with the host's outputs, bit for bit."""
    def block(x, acts):
        for act in acts:
            x = act(L.Conv2D(6, 1)(x))
        return L.Conv2D(4, 1)(x)

    softsign, recip = L.Activation("softsign"), (lambda x: 1.0 / (keras.ops.square(x) + 1.0))
    norm = (lambda x: x / (keras.ops.sum(keras.ops.abs(x), axis=-1, keepdims=True) + 0.5))
    one_minus, leaky = (lambda x: 1.0 - x), L.ReLU(negative_slope=0.1, threshold=0.3, max_value=1.5)
    squareplus, std = L.Activation("squareplus"), (lambda x: keras.ops.std(x, axis=-1, keepdims=True) + x)
    xs = int8_inputs((6, 6, 3), n=12, seed=85)
    headers = []
    for k, (acts, reference, ops) in enumerate((
            ((softsign, norm, recip, one_minus, leaky), "tflm", {"Divide", "DivideConstant", "ConstantMinus"}),
            ((one_minus, leaky, recip, squareplus, std), "tflite-ref", {"Sqrt", "DivideConstant", "ConstantMinus"}))):
        i = keras.Input((6, 6, 3))
        model = spread_weights(keras.Model(i, block(L.Conv2D(6, 3, padding="same")(i), acts)), seed=86 + k)
        data = convert(model, calibration(model, seed=88 + k))
        compiled, raw, _ = compiled_outputs(data, xs, tmp_path, f"Dq{k}", reference=reference)
        assert ops <= {o.kind for o in compiled.graph.ops}
        ref = tflm_reference({"m": (data, xs)})["m"] if reference == "tflm" else tflite_reference(data, xs)
        assert np.array_equal(raw, ref), (reference, np.abs(raw.astype(int) - ref).max())
        assert len(np.unique(raw)) > 16
        headers.append((tmp_path / f"Dq{k}.h", f"Dq{k}", model))
    # on Cortex-M4: both headers strictly in one translation unit, the DIV one run under QEMU
    import shutil

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    src = tmp_path / "both.cpp"
    src.write_text("".join(f'#include "{h}"\n{c} net_{c};\nint run_{c}(const int8_t* x) {{ return net_{c}.predict(x); }}\n'
                           for h, c, _ in headers))
    proc = subprocess.run([shutil.which(qemu.CXX), *qemu.CPU_FLAGS, "-std=c++98", "-pedantic", "-Wall", "-Wextra",
                           "-Werror", "-O2", "-c", str(src), "-o", str(tmp_path / "both.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, classname, model = headers[0]
    x = np.random.default_rng(89).uniform(-1, 1, (3,) + tuple(model.input_shape[1:])).astype(np.float32)
    result = qemu.run_firmware(qemu.build_firmware(header, classname, x, tmp_path / "fw", entry="float"), timeout=120)
    _, on_host = run_header_int8(str(header), classname, x, entry="float")
    assert np.array_equal(result.outputs, on_host)


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(UnsupportedModelError):
        compile_tflite(str(bad))
    with pytest.raises(FileNotFoundError):
        compile_tflite(str(tmp_path / "missing.tflite"))


def test_quantised_tensor_states_are_checked():
    from micronets.compiler.graph import Quant, Tensor

    with pytest.raises(ValueError, match="needs its quantisation"):
        Tensor("a", (2,), dtype="int8")
    with pytest.raises(ValueError, match="cannot carry"):
        Tensor("a", (2,), quant=Quant(0.1, 0))
    with pytest.raises(ValueError, match="positive"):
        Quant(0.0, 0)
    t = Tensor("a", (2, 3), dtype="int8", quant=Quant(0.5, 3))
    assert t.nbytes == 6 and Tensor("b", (2, 3)).nbytes == 24
    with pytest.raises(ValueError, match="type and quantisation"):
        Tensor("v", (6,), base=t)


# ------------------------------------------------------------------------------ CLI
def _cli(*args):
    from click.testing import CliRunner

    from micronets.cli import main

    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart already
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_gen_and_info_on_a_tflite(converted, tmp_path):
    path = tmp_path / "pico.tflite"
    path.write_bytes(converted["pico"][0])
    out = tmp_path / "pico.h"
    result = _cli("gen", path, "-o", out, "--name", "Pico8")
    assert result.exit_code == 0, result.output
    assert "class Pico8" in out.read_text() and "int8" in result.output
    data, xs, _ = converted["pico"]
    raw, _ = run_header_int8(str(out), "Pico8", xs[:4])
    assert np.array_equal(raw, compiled_outputs(data, xs[:4], tmp_path, "Again")[1])
    result = _cli("info", path, "--json")
    assert result.exit_code == 0
    import json

    info = json.loads(result.output)
    assert info["quantize"] == "int8" and info["arena_bytes"] > 0 and info["weights_bytes"] > 0
    assert all("output_scale" in layer for layer in info["layers"])
    text = _cli("info", path).output
    assert "int8 scales" in text and "s=" in text


def test_cli_gen_arch_int8_with_calibration(tmp_path):
    cal = tmp_path / "cal.npy"
    np.save(cal, np.random.default_rng(0).uniform(0, 1, (20, 20, 20, 1)).astype(np.float32))
    out = tmp_path / "m.h"
    result = _cli("gen", "--arch", "pico", "--input", "20x20x1", "--classes", "3", "--int8", "--calibration", cal, "-o", out)
    assert result.exit_code == 0, result.output
    assert "int8_t rawOutputs" in out.read_text()


def test_cli_int8_errors(tmp_path):
    import tensorflow as tf

    out = tmp_path / "m.h"
    result = _cli("gen", "--arch", "pico", "--input", "20x20x1", "--int8", "-o", out)
    assert result.exit_code != 0 and "calibration" in (result.stderr or result.output)
    few = tmp_path / "few.npy"
    np.save(few, np.zeros((3, 20, 20, 1), np.float32))
    result = _cli("gen", "--arch", "pico", "--input", "20x20x1", "--int8", "--calibration", few, "-o", out)
    assert result.exit_code != 0 and "at least" in (result.stderr or result.output)
    flt = tmp_path / "float.tflite"
    flt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(small_model()).convert())
    result = _cli("gen", flt, "-o", out)
    assert result.exit_code != 0 and "CONV_2D" in (result.stderr or result.output)
    assert not out.exists() and _nothing_written(tmp_path)


def test_layer_by_layer_is_the_users_choice(tmp_path):
    """Streams trade instructions for arena; `export(stream=False)` and `--layer-by-layer` (gen,
    info, gen --sketch) give the layer-by-layer header instead: no Stream op, the unstreamed plan's
    arena, and the same outputs bit for bit. Float32 models and non-bool values are refused."""
    import json

    from test_int8_stream import kws_like

    model = spread_weights(kws_like(), seed=30)
    cal = np.random.default_rng(0).uniform(-1, 1, (MIN_CALIBRATION_SAMPLES,) + model.input_shape[1:]).astype(np.float32)
    streamed = micronets.export(model, tmp_path / "s.h", classname="S", quantize="int8", calibration=cal)
    whole = micronets.export(model, tmp_path / "w.h", classname="W", quantize="int8", calibration=cal, stream=False)
    kinds = lambda c: [layer["op"] for layer in c.summary()["layers"]]  # noqa: E731
    assert "Stream" in kinds(streamed) and "Stream" not in kinds(whole)
    assert whole.plan.arena_size > streamed.plan.arena_size
    xs = np.random.default_rng(1).integers(-128, 128, (3,) + model.input_shape[1:]).astype(np.int8)
    assert np.array_equal(run_header_int8(str(tmp_path / "s.h"), "S", xs)[0],
                          run_header_int8(str(tmp_path / "w.h"), "W", xs)[0])

    path = tmp_path / "k.tflite"
    path.write_bytes(streamed.tflite)
    for command in ("info", "gen"):
        args = [command, path, "--json"] if command == "info" else [command, path, "-o", tmp_path / "g.h"]
        default, flat = _cli(*args), _cli(*args, "--layer-by-layer")
        assert default.exit_code == 0 and flat.exit_code == 0, flat.output
        if command == "info":
            assert json.loads(flat.output)["arena_bytes"] == whole.plan.arena_size
            assert json.loads(default.output)["arena_bytes"] == streamed.plan.arena_size
    assert _cli("gen", path, "--layer-by-layer", "--sketch", tmp_path / "Sk").exit_code == 0
    assert ": Stream (8 stages" in (tmp_path / "s.h").read_text()
    assert "Stream" not in (tmp_path / "g.h").read_text() + (tmp_path / "Sk" / "model.h").read_text()

    result = _cli("gen", "--arch", "pico", "--layer-by-layer", "-o", tmp_path / "f.h")
    assert result.exit_code != 0 and "--layer-by-layer is for int8" in (result.stderr or result.output)
    assert not (tmp_path / "f.h").exists()
    with pytest.raises(ValueError, match="stream= is only used with quantize='int8'"):
        micronets.export(model, tmp_path / "f.h", stream=False)
    with pytest.raises(TypeError, match="True or False"):
        micronets.export(model, tmp_path / "f.h", quantize="int8", calibration=cal, stream="no")
    assert not (tmp_path / "f.h").exists()


def test_max_pooling_reads_a_folded_pad_border(tmp_path):
    """A ZeroPadding2D read only by a VALID MaxPooling2D (ResNet's and DenseNet's stem) folds into
    the pooling, which then reads the zero point outside the map (Int8Pool.border): no padded copy
    in the arena, and TFLite's result, where the border's real 0 beats the negative values of a
    linear convolution's output (one window wholly in the border)."""
    i = keras.Input((9, 9, 3))
    x = L.Conv2D(6, 3, padding="same")(i)  # linear: about half its outputs are below the zero point
    x = L.ZeroPadding2D(((1, 2), (2, 1)))(x)
    x = L.MaxPooling2D(3, strides=2)(x)  # 12x12 padded -> 5x5
    x = L.Conv2D(5, 1)(x)
    x = L.MaxPooling2D(2, strides=1)(L.ZeroPadding2D(((1, 0), (3, 0)))(x))  # the first column's windows: border only
    x = L.Flatten()(x)
    model = spread_weights(keras.Model(i, L.Dense(8)(x), name="padpool"), seed=31)
    data = convert(model, calibration(model, seed=31))
    xs = int8_inputs(model.input_shape[1:], n=12, seed=31)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "PadPool")
    ops = [s for op in compiled.graph.ops for s in (getattr(op, "stages", ()) or (op,))]  # (a row stream's stages)
    assert "ZeroPadding2D" not in [op.kind for op in ops], [op.kind for op in ops]
    pools = [op for op in ops if op.kind == "MaxPooling2D"]
    assert len(pools) == 2 and all(p.border == p.inputs[0].quant.zero_point for p in pools)
    assert [p.pads for p in pools] == [(1, 2, 2, 1), (1, 0, 3, 0)]
    tflm = tflm_reference({"padpool": (data, xs)})["padpool"]
    assert np.array_equal(raw, tflm), f"max LSB difference vs TFLM: {np.abs(raw.astype(int) - tflm).max()}"
    assert len({tuple(r) for r in raw}) > len(xs) // 2
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "PadPoolRef", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs))


# ------------------------------------------------------------------------------ Cortex-M4
def test_int8_header_on_emulated_cortex_m4(converted, tmp_path):
    """PhiNet's int8 header through the QEMU Cortex-M4 harness (its float entry point: inputs
    quantised as they are read), where the DSP path (SMLAD) runs: the same outputs, bit for bit,
    as the portable path on this machine."""
    import shutil

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    data, _, model = converted["phinet"]
    compiled = compile_tflite(data, classname="Phi")
    header = tmp_path / "phi.h"
    header.write_text(compiled.header)
    x = np.random.default_rng(4).uniform(-1, 1, (3,) + tuple(model.input_shape[1:])).astype(np.float32)
    elf = qemu.build_firmware(header, "Phi", x, tmp_path / "fw", entry="float")
    disassembly = subprocess.run([shutil.which(qemu.CXX).replace("g++", "objdump"), "-d", str(elf)],
                                 capture_output=True, text=True).stdout
    assert "smlad" in disassembly and "sxtb16" in disassembly
    result = qemu.run_firmware(elf, timeout=120)
    _, on_host = run_header_int8(str(header), "Phi", x, entry="float")
    assert np.array_equal(result.outputs, on_host)
    assert len(np.unique(on_host)) > 3
    assert result.object_bytes == compiled.summary()["object_bytes"]
    assert result.instructions and result.instructions > compiled.summary()["macs"]


@pytest.mark.parametrize("opt", ["-O0", "-Os", "-O3", "-Og -fno-omit-frame-pointer"])
def test_int8_header_compiles_for_cortex_m4_at_other_optimisation_levels(converted, opt, tmp_path):
    """The int8 headers of Pico, PhiNet and MLPerf's DS-CNN compile for Cortex-M4 (DSP kernels,
    inline assembly) under -std=c++98 -pedantic -Wall -Wextra -Werror at the levels users build
    with besides -O2 (the QEMU tests): -O0 (debug), -Os (Arduino, PlatformIO), -O3, and -Og with a
    frame pointer (one register fewer for the assembly). At -O3 GCC refused PhiNet's header
    ("iteration 1 invokes undefined behavior") in int8_mean's loop storing four channels, code
    that is right (its -O3 firmware gave the host's outputs); with a frame pointer, Pico's 6 -> 12
    thin 1x1 asked for more registers than were left ("impossible constraints")."""
    import shutil

    from micronets.embedded import qemu

    cxx = shutil.which(qemu.CXX)
    if not cxx:
        pytest.skip("arm-none-eabi-g++ not installed")
    source = ""  # the three in one translation unit, as two models share a sketch
    for name in ("pico", "phinet", "mlperf_kws"):
        header = tmp_path / f"{name}.h"
        header.write_text(compile_tflite(converted[name][0], classname=f"Net_{name}").header)
        source += f'#include "{header}"\nNet_{name} net_{name};\nint run_{name}(const int8_t* x) {{ return net_{name}.predict(x); }}\n'
    src = tmp_path / "all.cpp"
    src.write_text(source)
    proc = subprocess.run([cxx, *qemu.CPU_FLAGS, *qemu.CXX_FLAGS, "-std=c++98", "-pedantic", *qemu.WARN_FLAGS, *opt.split(),
                           "-c", str(src), "-o", str(tmp_path / "all.o")], capture_output=True, text=True)
    assert proc.returncode == 0, f"{opt}: {proc.stderr[-3000:]}"


# ------------------------------------------------------------------------------ real data
def test_int8_accuracy_within_one_point_of_float_on_digits(tmp_path):
    """Pico trained briefly on scikit-learn's digits (real images), three times (seeds 0-2),
    quantised with 200 training images: the int8 headers' mean test accuracy is within 1 point of
    the float models', and no one of them is 2 points below its float model. (One training's gap
    moves with the machine's floating point: on one machine seed 0 gave 94.0% float and 92.9% int8,
    seeds 1 and 2 an int8 model as good as or better than the float one.)"""
    from micronets import data

    (xtr, ytr), (xte, yte) = data.load_digits(input_shape=(32, 32, 1))
    accs = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        net = micronets.PicoMobileNet(num_classes=10, input_shape=(32, 32, 1))
        net.build()
        model = net.model
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
        model.fit(xtr, ytr, epochs=15, batch_size=32, verbose=0)
        float_acc = float((np.argmax(model(xte, training=False), 1) == yte).mean())
        path = tmp_path / f"digits{seed}.h"
        micronets.export(model, str(path), classname=f"Digits{seed}", quantize="int8", calibration=xtr[:200])
        raw, _ = run_header_int8(str(path), f"Digits{seed}", xte, entry="float")
        int8_acc = float((np.argmax(raw, 1) == yte).mean())
        assert float_acc > 0.85, float_acc  # it learned something: the comparison means something
        assert int8_acc >= float_acc - 0.02, (seed, float_acc, int8_acc)
        accs.append((float_acc, int8_acc))
    floats, int8s = zip(*accs)
    assert np.mean(int8s) >= np.mean(floats) - 0.01, accs


def test_conv_autoencoder_reconstructs_digits_through_both_headers(tmp_path):
    """A convolutional autoencoder as users write one (strided convs down; Conv2DTranspose and
    UpSampling2D up), trained on scikit-learn's digits: the float header's reconstruction error on
    the test split is Keras', the int8 header's within 5% of it, and both far below predicting
    the mean image."""
    from micronets import data

    (xtr, _), (xte, _) = data.load_digits(input_shape=(8, 8, 1))
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(L.Conv2D(16, 3, padding="same", activation="relu")(i))
    x = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(L.Conv2D(8, 3, strides=2, padding="same",
                                                                                      activation="relu")(x))
    x = L.UpSampling2D()(x)
    model = keras.Model(i, L.Conv2D(1, 3, padding="same", activation="sigmoid")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(xtr, xtr, epochs=30, batch_size=32, verbose=0)
    target = xte.reshape(len(xte), -1)
    keras_mse = float(np.mean((model.predict(xte, verbose=0).reshape(len(xte), -1) - target) ** 2))
    path = tmp_path / "ae.h"
    micronets.export(model, str(path), classname="AE")
    exe = host.build(str(path), "AE", out_dir=str(tmp_path))
    float_mse = float(np.mean((host.run(exe, xte, target.shape[1]).reshape(target.shape) - target) ** 2))
    path8 = tmp_path / "ae8.h"
    micronets.export(model, str(path8), classname="AE8", quantize="int8", calibration=xtr[:200])
    _, deq = run_header_int8(str(path8), "AE8", xte, entry="float")
    int8_mse = float(np.mean((np.asarray(deq).reshape(target.shape) - target) ** 2))
    baseline = float(np.mean((xtr.reshape(len(xtr), -1).mean(0) - target) ** 2))
    assert keras_mse < 0.3 * baseline, (keras_mse, baseline)  # it learned to reconstruct
    assert abs(float_mse - keras_mse) <= 1e-4 * keras_mse, (float_mse, keras_mse)
    assert int8_mse <= 1.05 * keras_mse, (int8_mse, keras_mse)


@pytest.mark.xdist_group("layout_ops")  # one worker converts the module fixture (12 s), not both
def test_int8_headers_compile_strictly_for_cortex_m4(converted, layout_ops, tmp_path):
    """Every test model's header, DSP path included, compiles for Cortex-M4 with -Werror at -O2
    (where GCC's loop analysis warns more than on the host)."""
    import shutil

    from micronets.embedded import qemu

    cxx = shutil.which(qemu.CXX)
    if not cxx:
        pytest.skip("arm-none-eabi-g++ not installed")
    models = {name: v[0] for name, v in converted.items()}
    models.update((name, v[0]) for name, v in layout_ops.items())
    source = ""  # all of them in one translation unit (many models in one sketch: no clashes either)
    for name, data in models.items():
        header = tmp_path / f"{name}.h"
        header.write_text(compile_tflite(data, classname=f"M_{name}").header)
        source += f'#include "{header}"\nM_{name} net_{name};\nint run_{name}(const int8_t* x) {{ return net_{name}.predict(x); }}\n'
    src = tmp_path / "all.cpp"
    src.write_text(source)
    proc = subprocess.run([cxx, *qemu.CPU_FLAGS, "-std=c++98", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-c",
                           str(src), "-o", str(tmp_path / "all.o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


# ------------------------------------------------------------------------------ DSP kernels
def _dsp_models():
    """One small model per DSP kernel (and the elementwise ones): depthwise convs (16 channels: the
    SXTB16/SMLABB tap path, stride 1 and 2, borders; 10 channels, 5x5: a two-channel tail), 1x1
    convs alone (tiles of 4, 2 and 1 pixels, SMLAD; odd channel counts; tails of 1 and 2 inputs;
    in place; thin layers of 3 and 7 inputs a channel at a time; 516 inputs: unpacked in chunks,
    an odd pixel as they go),
    a 1x1 expansion fused with a depthwise conv (the ring), 3x3 convs over 3 uint8, 8, 12 and 6
    int8 channels (im2col: the pointwise tiles over each window, of 4, 2 and 1 pixels in a row of
    7; in place; a row-dilated one)
    and fully connected layers (SMLAD, four outputs per input word)."""
    i = keras.Input((12, 12, 16))
    dw = keras.Model(i, L.DepthwiseConv2D(3, strides=2, padding="same")(L.DepthwiseConv2D(3, padding="same", activation="relu6")(i)),
                     name="dsp_depthwise")
    i = keras.Input((11, 9, 10))
    x = L.Conv2D(10, 1)(i)  # a first layer reads the caller's input (uint8 here): the depthwise reads int8
    tail = keras.Model(i, L.DepthwiseConv2D(5, padding="same", activation="relu6")(x), name="dsp_depthwise_tail")
    i = keras.Input((9, 7, 20))
    x = L.Conv2D(39, 1)(L.Conv2D(21, 1)(i))  # 21 int8 channels in (a one-input tail), 39 out (odd)
    # 63 pixels: 15 tiles of 4, one of 2, one single; 39 inputs: a three-input tail (the asm loops'
    # one more step)
    x = L.Conv2D(20, 1, activation="relu6")(x)
    # thin layers (int8_pw_thin, a channel at a time over the 63 pixels): 3 inputs to 7 outputs
    # (one word a pixel, pixels two at a time and one), 7 to 5 (two words); then 5 to 10 and 10 to
    # 7 in tiles (tail words of one and two inputs, an odd channel)
    x = L.Conv2D(7, 1)(L.Conv2D(10, 1)(L.Conv2D(5, 1)(L.Conv2D(7, 1)(L.Conv2D(3, 1)(x)))))
    # 516 inputs: too wide for a tile's stack buffer, tiles of 2 pixels unpack them a chunk at a
    # time (int8_pw_tile_wide); a row's odd 7th pixel alone, each input word unpacked as it goes
    pw = keras.Model(i, L.Conv2D(12, 1)(L.Conv2D(516, 1)(x)), name="dsp_pointwise")
    i = keras.Input((14, 14, 6))
    x = L.Conv2D(24, 1, activation="relu6")(i)
    fused = keras.Model(i, L.Conv2D(8, 1)(L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)), name="dsp_fused")
    i = keras.Input((10, 7, 3))  # rows of 7: im2col tiles of 4, 2 and 1 pixels
    # the first layer's windows are taken from the caller's uint8 RGB pixels (ld8), 9 a kernel row
    # inside the map, 3 a tap on its border; a dilated conv's window rows 2 input rows apart
    x = L.Conv2D(12, 3, padding="same", activation="relu6")(L.Conv2D(8, 3, padding="same")(i))
    x = L.Conv2D(12, 3, padding="same")(L.Conv2D(6, 3, dilation_rate=(2, 1), padding="same")(x))
    conv = keras.Model(i, L.Conv2D(5, 1)(x), name="dsp_conv")  # in place (im2col)
    i = keras.Input((32,))
    x = L.Dense(67, activation="relu")(L.Dense(48)(i))  # 48 int8 inputs (unpacked once); then 67 (a 3-input tail)
    x = L.Dense(19)(x)  # 19 outputs of the unpacked row: four at a time and three
    dense = keras.Model(i, L.Dense(13)(x), name="dsp_dense")  # 13 outputs (too few to unpack for): four at a time and one
    # squeeze-excite and residual adds: MEAN (15 channels: 8 per SXTAB16 pair, 4, 3 alone), the
    # table LOGISTIC, MUL by a per-channel vector (channel by channel), ADD (one operand at the
    # larger scale, one rescaled by SMMLAR; plain and with a fused ReLU; one broadcasting its pooled
    # channels), ADD and MUL by constants
    i = keras.Input((9, 8, 6))
    x = L.Conv2D(15, 1)(i)
    s = L.Conv2D(15, 1, activation="sigmoid")(L.Conv2D(4, 1, activation="relu")(L.GlobalAveragePooling2D(keepdims=True)(x)))
    x = L.Add()([L.Multiply()([x, s]), L.Conv2D(15, 1)(i)])
    x = L.Concatenate()([L.ReLU()(L.Add()([x, L.Conv2D(15, 1)(x)])), L.Conv2D(4, 1)(i)])
    x = L.Add()([x, L.GlobalAveragePooling2D(keepdims=True)(L.Conv2D(19, 1)(x))])
    x = (0.4 + x) * np.linspace(-1.5, 2.0, 19).astype(np.float32)
    elementwise = keras.Model(i, L.Conv2D(5, 1)(x), name="dsp_elementwise")
    return [dw, tail, pw, fused, conv, dense, elementwise, one_channel_model()]


def test_batch_matmul_walks_on_emulated_cortex_m4(tmp_path):
    """BATCH_MATMUL's four walks (int8_batch_matmul.h.j2), each with the tails of its blocks: Q K^T
    (both operands along k: 13 x 13 outputs, odd, of K = 6, a 4-step and 2 left), softmax(.) V (V
    along its rows: 6 columns, a block of 4 and 2 left, K = 13), A^T S^T (the roles swapped: 5
    columns, K = 13) and A^T V (neither: the plain loop); A^T S^T's output requantised to a
    multiplier above one (MultiplyByQuantizedMultiplier's left shift: mn_rq8's RQ 3).
    The host gives BUILTIN_REF's and TFLM's outputs; the DSP and portable M4 builds the host's; and
    predict(const float*) of the dequantised inputs the same (the Dense layers over the input's
    rows, pointwise tiles of the caller's floats), on the host and the M4."""
    import shutil

    import keras.ops as K

    from micronets.compiler.tflite import _Reader
    from micronets.embedded import qemu

    from int8_reference import requantise_tensors

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((13, 8))
    q, k, v, a = L.Dense(6)(i), L.Dense(6)(i), L.Dense(6)(i), L.Dense(5)(i)
    s = L.Lambda(lambda t: K.matmul(t[0], K.swapaxes(t[1], -1, -2)))([q, k])
    att = L.Lambda(lambda t: K.matmul(K.softmax(t[0]), t[1]))([s, v])
    sw = L.Lambda(lambda t: K.matmul(K.swapaxes(t[0], -1, -2), K.swapaxes(t[1], -1, -2)))([a, s])
    plain = L.Lambda(lambda t: K.matmul(K.swapaxes(t[0], -1, -2), t[1]))([a, v])
    model = spread_weights(keras.Model(i, L.Concatenate()([L.Flatten()(t) for t in (att, sw, plain)])), seed=7)
    data = convert(model, np.random.default_rng(0).normal(0, 1, (64, 13, 8)).astype(np.float32))
    first = compile_tflite(data, classname="Bmm")
    products = [op for op in first.graph.ops if op.kind == "BatchMatMul"]
    assert [(op.m, op.n, op.k, op.walk) for op in products] == [(13, 13, 6, 1), (13, 6, 13, 2), (5, 13, 13, 3),
                                                                (5, 6, 13, 0)]
    # A^T S^T's output at a third of its product's scale: a multiplier of 3
    r = _Reader(data, "model")
    k_sw = [j for j, o in enumerate(r.sg.operators) if r.op_name(o) == "BATCH_MATMUL"][2]
    ins = [float(r.quant(int(t))[0][0]) for t in r.sg.operators[k_sw].inputs]
    data = requantise_tensors(data, {int(r.sg.operators[k_sw].outputs[0]): (ins[0] * ins[1] / 3.0, 3)})
    compiled = compile_tflite(data, classname="Bmm")
    products = [op for op in compiled.graph.ops if op.kind == "BatchMatMul"]
    assert [op.rq_mode for op in products] == [2, 2, 3, 2] and products[2].shift > 0
    header = tmp_path / "Bmm.h"
    header.write_text(compiled.header)
    xs = int8_inputs((13, 8), n=6)
    raw, on_host = run_header_int8(str(header), "Bmm", xs)
    assert len(np.unique(raw)) > 32 and len({tuple(x) for x in raw}) == len(xs)
    assert np.array_equal(raw, tflite_reference(data, xs))
    assert np.array_equal(raw, tflm_reference({"Bmm": (data, xs)})["Bmm"])
    for label, flags in (("dsp", []), ("portable", ["-DMICRONETS_NO_DSP"])):
        elf = qemu.build_firmware(header, "Bmm", xs, tmp_path / label, entry="int8", extra_flags=flags)
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host), label
    # the Dense layers over the input's 13 rows read the caller's floats: quantised a tile of rows
    # at a time into stack for the pointwise kernels (int8_pointwise's first-layer form)
    dense = [op for op in compiled.graph.ops if op.kind == "Dense"]
    assert len(dense) == 4 and all(op.tiled and op.inputs[0] is compiled.graph.input for op in dense)
    iq = compiled.graph.input.quant
    floats = ((xs.astype(np.float32) - iq.zero_point) * np.float32(iq.scale)).astype(np.float32)
    assert np.array_equal(quantize_float(floats, iq), xs)
    raw_f, on_host_f = run_header_int8(str(header), "Bmm", floats, entry="float")
    assert np.array_equal(raw_f, raw)
    elf = qemu.build_firmware(header, "Bmm", floats, tmp_path / "float", entry="float")
    assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host_f)


def test_wide_pointwise_tiles_unpack_in_chunks_on_emulated_cortex_m4(tmp_path):
    """1x1 convs of more than 256 inputs (PhiNet-20M's projections: 259 to 299 -> 31) run tiles of
    two pixels whose inputs are unpacked a chunk at a time, the partial sums of a group of channel
    pairs waiting on the stack between chunks (int8_pw_tile_wide), not single pixels each weight
    word served once (1.85 M4 instructions a MAC there against 1.20 at 256 inputs). The layers:
    299 -> 31 (a 3-input tail, an odd channel), 262 -> 140 (a 2-input tail, five groups of pairs,
    the doubled sums), 22 pixels: the host gives TFLM's and BUILTIN_REF's outputs, the DSP and
    portable M4 builds the host's, and so do the builds of tiles of 4 pixels (-DMN_PW_WIDE_NP=4:
    nine groups, a last tile of 2) and of single pixels (-DMN_PW_WIDE_NP=1, as before), which runs
    more than a third more instructions (the wide layers 1.85 a MAC against 1.24)."""
    import shutil

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((2, 11, 1))
    x = L.Conv2D(31, 1)(L.Conv2D(299, 1, activation="relu")(i))
    x = L.Conv2D(140, 1)(L.Conv2D(262, 1, activation="relu")(x))
    model = spread_weights(keras.Model(i, x), seed=31)
    data = convert(model, calibration(model, seed=31))
    compiled = compile_tflite(data, classname="Wide", stream=False)
    wide = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.inputs[0].hwc[2] > 256]
    assert [(op.inputs[0].hwc[2], op.output.hwc[2]) for op in wide] == [(299, 31), (262, 140)]
    assert all(op.pointwise for op in wide)
    header = tmp_path / "Wide.h"
    header.write_text(compiled.header)
    xs = int8_inputs((2, 11, 1), n=6)
    raw, _ = run_header_int8(str(header), "Wide", xs)
    assert np.array_equal(raw, tflm_reference({"Wide": (data, xs)})["Wide"]) and len(np.unique(raw)) > 16
    assert np.array_equal(raw, tflite_reference(data, xs))
    pixels = np.random.default_rng(3).integers(0, 256, (2, 2, 11, 1)).astype(np.uint8)
    _, on_host = run_header_int8(str(header), "Wide", pixels, entry="uint8")
    runs = {}
    for label, flags in (("dsp", []), ("portable", ["-DMICRONETS_NO_DSP"]), ("four", ["-DMN_PW_WIDE_NP=4"]),
                          ("single", ["-DMN_PW_WIDE_NP=1"])):
        elf = qemu.build_firmware(header, "Wide", pixels, tmp_path / label, entry="uint8", extra_flags=flags)
        runs[label] = qemu.run_firmware(elf, timeout=120)
        assert np.array_equal(runs[label].outputs, on_host), label
    assert runs["dsp"].instructions < 0.8 * runs["single"].instructions, (runs["dsp"].instructions, runs["single"].instructions)


def test_wide_pointwise_tiles_compile_for_cortex_m4_at_every_optimisation_level(tmp_path):
    """The wide tiles' asm loops (13 registers with 4 pixels) compile for Cortex-M4 under -Werror at
    every level users build with, 2- and 4-pixel tiles: with the sums of the first chunk (the
    bias, equal for every pixel) going into their in-out operands, and the pointers kept live for
    a tail's half step beside them, GCC had answered 'impossible constraints' (4 pixels at -O2 and
    at -Og with a frame pointer). 290 -> 40: a 2-input tail after the last chunk's loop."""
    import shutil

    from micronets.embedded import qemu

    cxx = shutil.which(qemu.CXX)
    if not cxx:
        pytest.skip("arm-none-eabi-g++ not installed")
    i = keras.Input((3, 5, 8))
    x = L.Conv2D(31, 1)(L.Conv2D(299, 1, activation="relu")(i))
    model = spread_weights(keras.Model(i, L.Conv2D(40, 1)(L.Conv2D(290, 1, activation="relu")(x))), seed=2)
    header = tmp_path / "wide.h"
    header.write_text(compile_tflite(convert(model, calibration(model, seed=2)), classname="Net").header)
    src = tmp_path / "wide.cpp"
    src.write_text(f'#include "{header}"\nNet net;\nint run(const int8_t* x) {{ return net.predict(x); }}\n')
    for np_ in (2, 4):
        for opt in ("-O2", "-O0", "-Os", "-O3", "-Og -fno-omit-frame-pointer"):
            proc = subprocess.run([cxx, *qemu.CPU_FLAGS, *qemu.CXX_FLAGS, "-std=c++98", "-pedantic", *qemu.WARN_FLAGS,
                                   *opt.split(), f"-DMN_PW_WIDE_NP={np_}", "-c", str(src), "-o", str(tmp_path / "wide.o")],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"{np_} pixels {opt}: {proc.stderr[-3000:]}"


def test_in_place_im2col_conv_plans_no_scratch():
    """An im2col conv in place stores each pixel straight to its output (its tiles read only the
    patch, a copy of their windows): the plan gives it no one-pixel scratch, which it never used."""
    model = spread_weights(_dsp_models()[4], seed=5)
    compiled = compile_tflite(convert(model, calibration(model, seed=5)))
    plan = compiled.plan
    in_place = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.im2col and plan.overlaps_input(op)]
    assert in_place and not [op for op in in_place if op in plan.scratch]
    assert all(plan.op(op).scratch_bytes() == 0 for op in in_place)


def test_in_place_pointwise_stores_straight_where_no_unread_input_is_hit():
    """An in-place 1x1 conv stores the pixels whose stores land before every input byte not yet
    read straight to its output (Int8Conv2D.direct_pixels), not through its scratch a few pixels at
    a time: an expansion all but its last pixels, a projection all but its first. The rule's
    promise, checked for every tile it allows over many shapes and gaps: a tile [s, e) of at most
    4 pixels in [d0, d1) stores COUT e <= gap + CIN s, and a channel-at-a-time run in [d0, dt)
    ending at e (its inputs unpacked before its stores) COUT e <= gap + CIN e."""
    model = spread_weights(_dsp_models()[2], seed=3)
    compiled = compile_tflite(convert(model, calibration(model, seed=3)))
    plan = compiled.plan
    in_place = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.pointwise and plan.overlaps_input(op)]
    kinds = set()
    for op in in_place:
        hw = op.output.hwc[0] * op.output.hwc[1]
        d0, dt, d1 = op.direct_pixels(plan.offset(op.inputs[0]) - plan.offset(op.output))
        assert d1 - d0 >= hw * 3 // 4
        kinds.add(op.output.hwc[2] > op.inputs[0].hwc[2])
        assert "int8_pointwise_split<" in compiled.header
    assert kinds == {True, False}  # an expansion and a projection

    from micronets.compiler.ops.int8_conv import direct_pixels

    rng = np.random.default_rng(0)
    for _ in range(300):
        hw, cin, cout = int(rng.integers(1, 40)), int(rng.integers(1, 70)), int(rng.integers(1, 70))
        gap = int(rng.integers(-10, hw * max(cin, cout) + 10))
        align, thin = int(rng.choice([1, 2, 4])), bool(rng.integers(0, 2))
        d0, dt, d1 = direct_pixels(hw, cin, cout, gap, align=align, thin=thin)
        assert 0 <= d0 <= dt <= d1 <= hw and (d0 % align == 0 or d0 == hw) and (d1 % align == 0 or d1 == hw)
        for s_ in range(d0, d1):
            for e in range(s_ + 1, min(s_ + 4, d1) + 1):
                assert cout * e <= gap + cin * s_, (hw, cin, cout, gap, s_, e)
        for e in range(d0 + 1, dt + 1):  # a thin run ending at e, its inputs unpacked before its stores
            assert cout * e <= gap + cin * e, (hw, cin, cout, gap, e)
        assert (d1 - dt < max(1, 1024 // (8 * ((cin + 3) // 4))) if thin else dt == d0) and (cout >= cin or d1 in (0, hw))


def one_channel_model():
    """Two convolutions of a one-input-channel input (word rows): 24 channels of 10x4 /2 (too
    many rows to unpack on the stack: two pixels at a time) and 4 of 3x3 (unpacked once a call),
    borders on every side."""
    i = keras.Input((21, 13, 1))
    a = L.Conv2D(24, (10, 4), strides=2, padding="same", activation="relu")(i)
    b = L.Conv2D(4, 3, strides=2, padding="same")(i)
    return keras.Model(i, L.Conv2D(7, 1)(L.Concatenate()([a, b])), name="dsp_conv_one_channel")


def test_one_input_channel_filter_stored_once_as_word_rows():
    """A one-input-channel conv stores its filter once, each kernel row as a word of four int8
    taps (zero past KW): the array both the DSP kernels and the portable ones read, not a copy
    of the filter in 16-bit pairs next to the plain one (which took 3 bytes a tap for KW 4)."""
    model = spread_weights(one_channel_model(), seed=27)
    compiled = compile_tflite(convert(model, calibration(model, seed=7)))
    convs = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.word_rows]
    assert len(convs) == 2
    for op in convs:
        w = op.typed_weights()
        cout = op.output.hwc[2]
        assert w["w"].dtype == np.int8 and w["w"].size == cout * op.kh * 4 and op.row_stride == 4
        rows = w["w"].reshape(cout, op.kh, 4)
        assert np.array_equal(rows[:, :, :op.kw], op.filt.reshape(cout, op.kh, op.kw)) and not rows[:, :, op.kw:].any()
        assert [k for k, a in w.items() if a.size >= op.filt.size] == ["w"]  # per-channel arrays besides
        assert op.weights_bytes() <= op.weights_bytes_bound()
    assert {op.kh * op.output.hwc[2] <= 32 for op in convs} == {True, False}  # both DSP forms


def test_large_depthwise_windows_on_emulated_cortex_m4(tmp_path):
    """Depthwise windows taller and wider than 5 (7x7, 9x3, 6x1; stride 1: the pair-row kernel, whose
    job held 5 window rows) on QEMU's Cortex-M4: the strict DSP build gives the host's outputs, and
    the host TFLM's, bit for bit."""
    i = keras.Input((14, 11, 8))
    # a wide 1x1 first, layer by layer: an arena with room for the pair rows' workspaces; the ADD
    # keeps the 7x7 from fusing with a conv before it
    x = L.Add()([L.Conv2D(8, 1)(L.Conv2D(48, 1)(i)), L.Conv2D(8, 1)(i)])
    x = L.DepthwiseConv2D(7, padding="same", activation="relu")(x)
    x = L.DepthwiseConv2D((9, 3), padding="same")(x)
    x = L.DepthwiseConv2D((6, 1))(x)
    model = spread_weights(keras.Model(i, L.Conv2D(6, 1)(x)), seed=12)
    data = convert(model, calibration(model, seed=12))
    compiled = compile_tflite(data, classname="BigDw", stream=False)
    dws = [op for op in compiled.graph.ops if op.kind == "DepthwiseConv2D"]
    assert sorted((op.kh, op.kw) for op in dws) == [(6, 1), (7, 7), (9, 3)]
    assert all(compiled.plan.op(op).workspace_option for op in dws)  # each through the pair rows
    _tflm_here_and_host_on_m4(compiled, data, "BigDw", tmp_path, levels=8)


def _tflm_here_and_host_on_m4(compiled, data, classname, tmp_path, levels):
    """The header's host build gives TFLM's raw outputs (more than ``levels`` distinct values) on
    random int8 inputs, and its DSP build on QEMU's Cortex-M4 the host's on random uint8 pixels."""
    import shutil

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    shape = tuple(compiled.graph.input.shape)
    header = tmp_path / f"{classname}.h"
    header.write_text(compiled.header)
    xs = int8_inputs(shape, n=6)
    raw, _ = run_header_int8(str(header), classname, xs)
    assert np.array_equal(raw, tflm_reference({classname: (data, xs)})[classname]) and len(np.unique(raw)) > levels
    pixels = np.random.default_rng(3).integers(0, 256, (2,) + shape).astype(np.uint8)
    elf = qemu.build_firmware(header, classname, pixels, tmp_path / "fw", entry="uint8")
    _, on_host = run_header_int8(str(header), classname, pixels, entry="uint8")
    assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, on_host)


def test_in_place_global_average_of_twenty_channels_on_emulated_cortex_m4(tmp_path):
    """A global average of 20 channels (DSP blocks of 8, 8 and 4) run in place at the arena's end:
    arm-none-eabi-g++ -O2 -Werror refused the header ('iteration 3 invokes undefined behavior' in
    the channels-left loop, which the blocks had emptied); now it builds, and the M4 gives the
    host's outputs, which are TFLM's."""
    i = keras.Input((13, 5, 3))
    x = L.Conv2D(20, 3, padding="same", activation="relu")(i)
    model = spread_weights(keras.Model(i, L.Dense(4)(L.GlobalAveragePooling2D()(x))), seed=1)
    data = convert(model, calibration(model, seed=1))
    compiled = compile_tflite(data, classname="Gap20", stream=False)
    mean = next(op for op in compiled.graph.ops if op.kind == "GlobalAveragePooling2D")
    assert compiled.plan.overlaps_input(mean) and compiled.plan.offset(mean.output) + 20 <= compiled.plan.arena_size
    _tflm_here_and_host_on_m4(compiled, data, "Gap20", tmp_path, levels=4)


def test_depthwise_of_one_channel_runs_as_a_conv_and_opens_a_stream(tmp_path):
    """A DEPTHWISE_CONV_2D of a one-channel input (multiplier 8; how TFLM's person_detect starts) is
    lowered as a conv of one input channel into 8: the same integers as both references, and as a
    conv it opens the row stream over the caller's input, so its 24x24x8 output is never stored."""
    i = keras.Input((48, 48, 1))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=8, activation="relu")(i)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Conv2D(16, 1, activation="relu")(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(16, 1, activation="relu")(x)
    model = spread_weights(keras.Model(i, L.Dense(5)(L.GlobalAveragePooling2D()(x))), seed=8)
    data = convert(model, calibration(model, seed=8))
    assert op_names(data)[0] == "DEPTHWISE_CONV_2D"
    compiled = compile_tflite(data, classname="Dw1")
    first = compiled.graph.ops[0]
    assert first.kind == "Stream" and first.stages[0].kind == "Conv2D" and first.stages[0].output.hwc == (24, 24, 8)
    assert compiled.plan.arena_size < 24 * 24 * 8
    xs = int8_inputs((48, 48, 1), n=8)
    path = tmp_path / "dw1.h"
    path.write_text(compiled.header)
    raw, _ = run_header_int8(str(path), "Dw1", xs)
    assert np.array_equal(raw, tflm_reference({"dw1": (data, xs)})["dw1"]) and len(np.unique(raw)) > 8
    _, raw_ref, _ = compiled_outputs(data, xs, tmp_path, "Dw1Ref", reference="tflite-ref")
    assert np.array_equal(raw_ref, tflite_reference(data, xs))


@pytest.mark.parametrize("index", range(8))
def test_dsp_kernels_taken_and_bit_exact_on_emulated_cortex_m4(index, tmp_path):
    """Each DSP kernel on QEMU's Cortex-M4: the default build (DSP: SXTB16, SMLAD, SMLABB/SMLATT,
    SMMLAR, SSAT) runs fewer instructions than the same header built with MICRONETS_NO_DSP (so
    the DSP code is what ran), and both give the host's outputs bit for bit, which are TFLM's
    (raw uint8 pixels: what their int8 values give)."""
    import shutil

    from micronets.embedded import qemu

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    model = spread_weights(_dsp_models()[index], seed=20 + index)
    data = convert(model, calibration(model, seed=index))
    name = model.name
    xs = int8_inputs(model.input_shape[1:], n=6, seed=index)
    compiled, raw, _ = compiled_outputs(data, xs, tmp_path, "Dsp")
    assert np.array_equal(raw, tflm_reference({name: (data, xs)})[name])
    assert len(np.unique(raw)) > 16
    header = tmp_path / "Dsp.h"
    x = np.random.default_rng(index).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    _, on_host = run_header_int8(str(header), "Dsp", x, entry="uint8")
    # raw pixels give what their int8 values (the input table's) give: the first layer's loads
    # through ld8 take every byte it should
    _, via_int8 = run_header_int8(str(header), "Dsp", compiled.input_table()[x], entry="int8")
    assert np.array_equal(on_host, via_int8)
    objdump = shutil.which(qemu.CXX).replace("g++", "objdump")
    runs = {}
    for label, flags in (("dsp", []), ("portable", ["-DMICRONETS_NO_DSP"])):
        elf = qemu.build_firmware(header, "Dsp", x, tmp_path / label, entry="uint8", extra_flags=flags)
        code = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True).stdout
        runs[label] = (qemu.run_firmware(elf, timeout=120), code)
    (dsp, dsp_code), (portable, portable_code) = runs["dsp"], runs["portable"]
    assert np.array_equal(dsp.outputs, on_host) and np.array_equal(portable.outputs, on_host)
    assert len(np.unique(on_host)) > 4
    expected = ["sxtb16", "smmlar", "ssat"] + (["smlabb", "smlatt"] if "depthwise" in name else ["smlad"])
    expected += ["sxtab16"] if "elementwise" in name else []
    for mnemonic in expected:
        assert f"\t{mnemonic}" in dsp_code, mnemonic
    for mnemonic in ("sxtb16", "smmlar", "smlad"):
        assert f"\t{mnemonic}" not in portable_code, mnemonic
    assert dsp.instructions < 0.9 * portable.instructions, (dsp.instructions, portable.instructions)


def test_rgb_first_layer_takes_raw_pixels_a_word_at_a_time(tmp_path):
    """Calibrated on [0, 1] images, a raw pixel's int8 value is p - 128: the first layer's im2col
    windows take four pixels a word, each byte's top bit flipped (MN_U8_FLIP), on the host and on
    QEMU's Cortex-M4 (unaligned word loads and stores). Raw pixels give what their int8 values
    give (TFLM's outputs), on windows inside the map (9 bytes a kernel row: two words and a byte)
    and on its border (3 bytes a tap)."""
    import shutil

    from micronets.embedded import qemu

    i = keras.Input((9, 11, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu")(i)
    model = spread_weights(keras.Model(i, L.Conv2D(4, 3, strides=2)(x)), seed=9)
    data = convert(model, np.random.default_rng(9).uniform(0, 1, (64, 9, 11, 3)).astype(np.float32))
    compiled = compile_tflite(data, classname="Rgb")
    assert compiled.input_offset_int() == -128
    assert "enum { MN_U8_FLIP = 1 };" in compiled.header
    header = tmp_path / "Rgb.h"
    header.write_text(compiled.header)
    pixels = np.random.default_rng(9).integers(0, 256, (6, 9, 11, 3)).astype(np.uint8)
    raw_u8, out_u8 = run_header_int8(str(header), "Rgb", pixels, entry="uint8")
    q = (pixels.astype(np.int16) - 128).astype(np.int8)
    raw_i8, _ = run_header_int8(str(header), "Rgb", q)
    assert np.array_equal(raw_u8, raw_i8) and np.array_equal(raw_i8, tflm_reference({"rgb": (data, q)})["rgb"])
    assert len(np.unique(raw_i8)) > 16
    if shutil.which(qemu.CXX) and shutil.which(qemu.QEMU):
        elf = qemu.build_firmware(header, "Rgb", pixels[:2], tmp_path / "m4", entry="uint8")
        assert np.array_equal(qemu.run_firmware(elf, timeout=120).outputs, out_u8[:2])


def _thin_wide_models():
    """1x1 convs of 9 to 16 inputs (int8_pw_thin's K = 3 and 4: tails of none, one, two and three
    inputs), each input read twice so the first conv's output cannot overlap it (a channel at a
    time over runs of the 17 x 19 pixels: four a turn, then two, then one); and 1x1 expansions of
    10, 13 and 16 inputs fused with a depthwise conv (rows of 19 pixels into the ring)."""
    i = keras.Input((17, 19, 3))
    x = L.Conv2D(9, 1)(i)
    for cout in (13, 10, 15, 11, 16, 12, 14):
        x = L.Add()([L.Conv2D(cout, 1)(x), L.Conv2D(cout, 1, activation="relu6")(x)])
    standalone = keras.Model(i, L.Conv2D(8, 1)(x), name="thin_wide")
    i = keras.Input((37, 19, 3))
    x = i
    for cin in (10, 13, 16):  # each expansion's depthwise halves the rows: fusing them saves arena
        x = L.Conv2D(cin, 1)(x)
        x = L.DepthwiseConv2D(3, strides=(2, 1), padding="same", activation="relu6")(L.Conv2D(48, 1, activation="relu6")(x))
    fused = keras.Model(i, L.Conv2D(8, 1)(x), name="thin_wide_fused")
    return standalone, fused


@pytest.mark.parametrize("index", range(2))
def test_thin_1x1_of_9_to_16_inputs_bit_exact_and_cheaper_on_emulated_cortex_m4(index, tmp_path):
    """1x1 convs of 9 to 16 inputs, alone and fused with a depthwise conv, run a channel at a time
    (int8_pw_thin, K = 3 or 4 input words a pixel, some weights from the stack): the header gives
    TFLM's and BUILTIN_REF's outputs on the host, its Cortex-M4 build (QEMU) the host's, and it
    runs fewer instructions than the same header with the thin form held to 8 inputs
    (-DMN_PW_THIN_MAX=8: the 4-pixel tiles), which gives the same outputs."""
    import shutil

    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    model = spread_weights(_thin_wide_models()[index], seed=40 + index)
    data = convert(model, calibration(model, seed=index))
    # the fused model layer by layer (as a stream it runs the same rows through int8_stream's
    # kernels): the expansions are fused, their rows going straight into the ring
    compiled = compile_tflite(data, classname="Thin", stream=index == 0)
    if index == 1:
        assert compiled.header.count("int8_conv_depthwise<") == 3
    header = tmp_path / "Thin.h"
    _exact_on_host(compiled, data, model.name, int8_inputs(model.input_shape[1:], n=4, seed=index), header)
    x = np.random.default_rng(index).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    runs = _m4_runs(header, "Thin", x, tmp_path, {"thin": [], "tiles": ["-DMN_PW_THIN_MAX=8"]})
    nm = shutil.which(qemu.CXX).replace("g++", "nm")
    symbols = subprocess.run([nm, "-C", str(tmp_path / "thin" / "firmware.elf")], capture_output=True, text=True).stdout
    import re

    # (int8_pw_thin<NP, CIN, ...>, or a fused expansion's rows in pairs: int8_pw_thin2<NP, NA, CIN, ...>)
    thin_cin = {int(a or b) for a, b in re.findall(r"int8_pw_thin<\d+, (\d+), |int8_pw_thin2<\d+, \d+, (\d+), ", symbols)}
    assert thin_cin >= ({9, 10, 11, 12, 13, 14, 15, 16} if index == 0 else {10, 13, 16}), sorted(thin_cin)
    # (with the 4-pixel tiles' two-pixel LDRD loads: 2,996,845 vs 3,074,253 on the fused model)
    assert runs["thin"].instructions < 0.985 * runs["tiles"].instructions, (runs["thin"].instructions, runs["tiles"].instructions)


def test_thin_1x1_of_11_and_12_inputs_two_pixels_a_step_on_emulated_cortex_m4(tmp_path):
    """1x1 convs of 11 and 12 inputs (int8_pw_thin's K = 3 without a packed tail, as PhiNets'
    expansions) over runs of 42 and 29 pixels (the assembly's four-pixel loop, then two, then one):
    two pixels a step (MN_PW_THIN_PX2, the weights from the stack and the shift loaded once for
    both) give TFLM's and BUILTIN_REF's outputs on the host, the host's on QEMU's Cortex-M4 as the
    build a pixel a step (MN_PW_THIN_PX2=0) does, in fewer instructions than it."""
    import re
    import shutil

    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    i = keras.Input((17, 19, 3))
    x = L.Conv2D(11, 1)(i)
    x = L.Add()([L.Conv2D(12, 1)(x), L.Conv2D(12, 1, activation="relu6")(x)])  # 11 inputs, read twice
    x = L.Add()([L.Conv2D(20, 1)(x), L.Conv2D(20, 1, activation="relu6")(x)])  # 12 inputs
    model = spread_weights(keras.Model(i, L.Conv2D(8, 1)(x), name="thin_px2"), seed=47)
    data = convert(model, calibration(model, seed=7))
    compiled = compile_tflite(data, classname="Thin", stream=False)
    header = tmp_path / "Thin.h"
    _exact_on_host(compiled, data, model.name, int8_inputs(model.input_shape[1:], n=4, seed=7), header)
    x = np.random.default_rng(7).integers(0, 256, (2,) + tuple(model.input_shape[1:])).astype(np.uint8)
    runs = _m4_runs(header, "Thin", x, tmp_path, {"px2": [], "px1": ["-DMN_PW_THIN_PX2=0"]})
    nm = shutil.which(qemu.CXX).replace("g++", "nm")
    symbols = subprocess.run([nm, "-C", str(tmp_path / "px2" / "firmware.elf")], capture_output=True, text=True).stdout
    assert {"11", "12"} <= set(re.findall(r"int8_pw_thin<\d+, (\d+), ", symbols)), symbols
    # (two samples of 2 x 323 x 12 outputs of 11 inputs and 2 x 323 x 20 of 12: 41k; half an instruction less each)
    assert runs["px2"].instructions < runs["px1"].instructions - 2 * 4000, (runs["px2"].instructions, runs["px1"].instructions)


def test_short_requantisation_equals_tflites(tmp_path):
    """mn_rq (the short requantisation a layer uses once requant_mode proves its accumulators in
    range), mn_mbqm_rq<2> (the same unclamped) and mn_rq8's forms for shifts >= 0 (RQ 3) and as
    written (RQ 0), against quant.mbqm, TFLite's MultiplyByQuantizedMultiplier, on edge and random
    accumulators, multipliers and shifts, on the host (portable path)."""
    from micronets.compiler.ops.int8_base import requant_mode
    from micronets.compiler.quant import mbqm

    rng = np.random.default_rng(0)
    cases = []
    for shift in list(range(-31, 0)):
        for m in (0, 1, 1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))):
            for acc in (0, 1, -1, (1 << 30) - 1, -(1 << 30) + 1, *rng.integers(-(1 << 30) + 1, 1 << 30, 6).tolist(),
                        *rng.integers(-5000, 5000, 6).tolist()):
                cases.append((int(acc), m, shift, int(rng.integers(-128, 128))))
    # mn_rq8<3>: a shift >= 0 (accumulators that wrap when shifted too, as TFLite's do)
    left = []
    for shift in range(0, 9):
        for m in (0, 1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))):
            for acc in (0, 1, -1, 255, -255, 65025, -65025, (1 << 31) - 1, -(1 << 31),
                        *rng.integers(-(1 << 31), 1 << 31, 4).tolist(), *rng.integers(-70000, 70000, 4).tolist()):
                z = int(rng.integers(-128, 128))
                if abs(mbqm(int(acc), m, shift) + z) < 1 << 31:  # (beyond, TFLite's int32 += overflows)
                    left.append((int(acc), m, shift, z))
    # a header with the fixed-point helpers: any int8 model's
    model = spread_weights(_dsp_models()[2], seed=3)
    header = tmp_path / "rq.h"
    header.write_text(compile_tflite(convert(model, calibration(model)), classname="Rq").header)
    body = ",\n".join(f"{{{a}, {m}, {s}, {z}}}" for a, m, s, z in cases)
    body3 = ",\n".join(f"{{{a}, {m}, {s}, {z}}}" for a, m, s, z in left)
    source = (f'#include "{header}"\n#include <stdio.h>\nstatic const long c[][4] = {{\n{body}\n}};\n'
              f"static const long c3[][4] = {{\n{body3}\n}};\n"
              "int main() { for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); ++i) printf(\"%d %d %ld\\n\","
              " (int)micronets_Rq::mn_rq<1>((int32_t)c[i][0], (int32_t)c[i][1], (int)c[i][2], (int32_t)c[i][3], -128, 127),"
              " (int)micronets_Rq::mn_rq<2>((int32_t)c[i][0], (int32_t)c[i][1], (int)c[i][2], (int32_t)c[i][3], -128, 127),"
              " (long)micronets_Rq::mn_mbqm_rq<2>((int32_t)c[i][0], (int32_t)c[i][1], (int)c[i][2]));"
              " for (unsigned i = 0; i < sizeof(c3) / sizeof(c3[0]); ++i) printf(\"%d %d\\n\","
              " (int)micronets_Rq::mn_rq8<3>((int32_t)c3[i][0], (int32_t)c3[i][1], (int)c3[i][2], (int32_t)c3[i][3]),"
              " (int)micronets_Rq::mn_rq8<0>((int32_t)c3[i][0], (int32_t)c3[i][1], (int)c3[i][2], (int32_t)c3[i][3]));"
              " return 0; }\n")
    got = [tuple(map(int, line.split())) for line in strict_program_output(tmp_path, "rq", source).splitlines()]
    for (acc, m, shift, z), (r1, r2, *unclamped) in zip(cases + left, got):
        want = max(-128, min(127, mbqm(acc, m, shift) + z))
        assert r1 == want and r2 == want, (acc, m, shift, z, r1, r2, want)
        assert unclamped in ([], [mbqm(acc, m, shift)]), (acc, m, shift, unclamped)  # mn_mbqm_rq<2>
    assert len(got) == len(cases) + len(left)
    # and the mode is chosen only where it is valid
    assert requant_mode(None, [10], [-3], -128, 127) == 2
    assert requant_mode(None, [10], [-3], -128, 100) == 1
    assert requant_mode(None, [10], [0], -128, 127) == 0  # shift 0: no rounding division
    assert requant_mode([1 << 30], [0], [-3], -128, 127) == 0  # accumulator may reach 2^30
    assert requant_mode(None, [(1 << 30) // 255 + 1], [-3], -128, 127) == 0  # 255 * sum |w| reaches 2^30
    assert requant_mode(None, [(1 << 30) // 255], [-3], -128, 127) == 2


def test_softmax_short_forms_equal_tflites(tmp_path):
    """The two integer identities the int8 softmax kernel rests on (int8_softmax.h.j2):
    mn_softmax_q19(e) = RoundingDivideByPOT(e, 12) for an exp e >= 0, and mn_softmax_out(scale,
    e, exponent) = RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(scale, e), exponent) - 128
    for scale > 0, e >= 0, exponent 1..31, against quant.rdbpot / srdhm (TFLite's), on the edges:
    remainders of exactly one half (which round up), INT32_MAX (exp(0)), and random values."""
    from micronets.compiler.quant import rdbpot, srdhm

    rng = np.random.default_rng(0)
    top = (1 << 31) - 1
    q19 = [0, 1, 2047, 2048, 2049, 4095, 4096, 6144, top, top - 2048, top - 2047,
           *((rng.integers(0, 1 << 19, 40) << 12) + 2048).tolist(), *rng.integers(0, top, 40).tolist()]
    outs = []
    for exponent in range(1, 32):
        for scale in (1 << 30, (1 << 30) + 1, top, *rng.integers(1, top, 3).tolist()):
            halfway = [2 * ((q << exponent) + (1 << (exponent - 1))) for q in (0, 1, 3)]  # scale 2^30: p = e / 2
            for e in (0, 1, top, *[h for h in halfway if h <= top], *rng.integers(0, top, 4).tolist()):
                outs.append((int(scale), int(e), exponent))
    i = keras.Input((6,))
    model = spread_weights(keras.Model(i, L.Softmax()(L.Dense(5)(i))), seed=3)
    header = tmp_path / "sm.h"
    header.write_text(compile_tflite(convert(model, calibration(model)), classname="Sm").header)
    source = (f'#include "{header}"\n#include <stdio.h>\n'
              f"static const long q[] = {{{', '.join(map(str, q19))}}};\n"
              f"static const long o[][3] = {{{', '.join(f'{{{a}, {b}, {c}}}' for a, b, c in outs)}}};\n"
              "int main() {\n"
              "  for (unsigned i = 0; i < sizeof(q) / sizeof(q[0]); ++i)\n"
              "    printf(\"%lu\\n\", (unsigned long)micronets_Sm::mn_softmax_q19((int32_t)q[i]));\n"
              "  for (unsigned i = 0; i < sizeof(o) / sizeof(o[0]); ++i)\n"
              "    printf(\"%ld\\n\", (long)micronets_Sm::mn_softmax_out((int32_t)o[i][0], (int32_t)o[i][1], (int)o[i][2],"
              " ((uint32_t)1) << (o[i][2] - 1)));\n"
              "  return 0;\n}\n")
    got = [int(v) for v in strict_program_output(tmp_path, "sm", source).split()]
    assert len(got) == len(q19) + len(outs)
    want = [rdbpot(e, 12) for e in q19] + [rdbpot(srdhm(s, e), x) - 128 for s, e, x in outs]
    bad = [(k, g, w) for k, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, bad[:5]
    assert sum(1 for e in q19 if e % 4096 == 2048) > 40  # the halves are there


def test_elementwise_short_forms_equal_tflites():
    """The integer identities the DSP elementwise kernels rest on (templates/kernels/int8_add.h.j2),
    with the Cortex-M instructions modelled bit for bit (SMMLAR, SMMULR: the high word of a 64-bit
    sum, rounded; SSAT), against quant.py's TFLite formulas: ADD's operand rescale (mn_add_twice)
    for every operand value q + off in [-255, 255], every shift and edge multipliers; the output
    requantisation with the zero point folded in (mn_rq2, RQ 3 / 4) on edge and random
    accumulators wherever the op's bound admits it; and the LOGISTIC table's Python port on the
    saturation edges."""
    from micronets.compiler.ops.int8_add import folded_mode, folded_zero, rescaled_max
    from micronets.compiler.ops.int8_logistic import logistic_table
    from micronets.compiler.quant import mbqm

    def smmlar(a, b, c):
        return ((c << 32) + a * b + (1 << 31)) >> 32

    def twice(v, m, e):  # mn_add_twice on DSP cores
        if e < 0:
            return v << 20
        x = v << 21
        if e == 0:
            return 2 * smmlar(x, m, 0)
        return 2 * (smmlar(x, m, (1 << (e - 1)) + (x >> 31)) >> e)

    rng = np.random.default_rng(5)
    for e in range(0, 32):
        for m in (1 << 30, (1 << 30) + 1, (1 << 31) - 1, *rng.integers(1 << 30, 1 << 31, 3).tolist()):
            for v in range(-255, 256):
                want = mbqm(v * (1 << 20), int(m), -e)
                assert twice(v, int(m), e) == 2 * want, (v, m, e)
                assert abs(want) <= rescaled_max(int(m), -e) <= (1 << 28)
    assert all(twice(v, 1 << 30, -1) == 2 * mbqm(v << 20, 1 << 30, 0) for v in range(-255, 256))

    def rq2(acc2, m, shift, zs, lo, hi):  # RQ 3 / 4 on DSP cores
        t = smmlar(acc2, m, zs + (acc2 >> 31))
        assert -(1 << 31) <= t < (1 << 31)
        return max(lo, min(hi, t >> -shift))

    for acc_max in (255 * 255, 2 * rescaled_max(1 << 30, 0), 255 * 196):
        for shift in range(-31, 0):
            for m in (1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))):
                mode = folded_mode(2, acc_max, m, shift)
                if mode != 4:
                    assert mode == 2 and ((acc_max * m) >> 31) + 2 + (255 << (-shift - 1)) >= 1 << 31
                    continue
                for z in (-128, -1, 0, 127, int(rng.integers(-128, 128))):
                    zs = folded_zero(mode, z, shift)
                    for acc in (0, 1, -1, acc_max, -acc_max, *rng.integers(-acc_max, acc_max + 1, 12).tolist()):
                        want = max(-128, min(127, mbqm(int(acc), m, shift) + z))
                        assert rq2(2 * int(acc), m, shift, zs, -128, 127) == want, (acc, m, shift, z)
                        lo, hi = max(-128, z - 3), min(127, z + 40)
                        assert rq2(2 * int(acc), m, shift, zs, lo, hi) == max(lo, min(hi, mbqm(int(acc), m, shift) + z))
    # the logistic table saturates at the radius and is monotone, 0.5 at the zero point
    t = logistic_table(0.1, 3).astype(int)
    assert t[0] == -128 + 0 * t[0] or t[0] < -100
    assert np.all(np.diff(t) >= 0) and t[3 + 128] == 0 and t[-1] > 100


def test_expansion_1x1_of_31_inputs_tile_overhead_on_emulated_cortex_m4(tmp_path):
    """1x1 expansions of 31, 24 and 22 inputs to 96 or 98 channels on an 8x8 map (PhiNets' short
    expansions: the 4-pixel tiles' asm loop mn_pw_loop4 runs 8, 6 and 5 steps a channel pair, an
    even K after a 3-input tail, an even K, an odd K before a 2-input half step), where a pair's
    setup and requantisation weigh as much as its loop: every pixel's sums started from the biases
    in the first half step (an even K branching into the loop after it, no register moves), the
    loop's end in the tile's frame (no stack slot pushed and popped a pair) and the weight pointer
    the asm's: at most 1.385, 1.497 and 1.499 Cortex-M4 instructions a MAC (1.370, 1.480 and 1.480
    measured; 1.400, 1.514 and 1.517 before), per layer as benchmarks/int8_profile.py counts them,
    each layer's output the host's. The header gives TFLM's and BUILTIN_REF's outputs on the host,
    and its Cortex-M4 builds at -O1, -Os, -O3, -Og with a frame pointer and with the loops in C++
    (MN_PW_NO_ASM) the host's."""
    import shutil
    import sys

    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import int8_profile

    i = keras.Input((8, 8, 8))
    x = i
    for cin, cout in ((31, 96), (24, 98), (22, 96)):
        x = L.Conv2D(16, 1)(L.Conv2D(cout, 1, activation="relu6")(L.Conv2D(cin, 1)(x)))
    model = spread_weights(keras.Model(i, x, name="pw_overhead"), seed=5)
    data = convert(model, calibration(model, seed=5))
    compiled = compile_tflite(data, classname="Pw", stream=False)
    for cin, cout in ((31, 96), (24, 98), (22, 96)):
        assert f"int8_pointwise_split<64, {cin}, {cout}, " in compiled.header
    header = tmp_path / "Pw.h"
    _exact_on_host(compiled, data, model.name, int8_inputs((8, 8, 8), n=4, seed=5), header)
    pixels = np.random.default_rng(5).integers(0, 256, (2, 8, 8, 8)).astype(np.uint8)
    _m4_runs(header, "Pw", pixels, tmp_path, {"o1": ["-O1"], "os": ["-Os"], "o3": ["-O3"],
                                              "og": ["-Og", "-fno-omit-frame-pointer"], "cxx": ["-DMN_PW_NO_ASM"]})
    (tmp_path / f"{model.name}.tflite").write_bytes(data)
    (tmp_path / "prof").mkdir()
    r = int8_profile.profile(model.name, str(tmp_path), str(tmp_path / "prof"), stream=False)
    assert not any(row["flags"] for row in r["rows"])
    per = [row["instr"] / row["macs"] for row in r["rows"] if row["macs"] and row["label"].endswith("ReLU6")]
    assert len(per) == 3 and all(p < bound for p, bound in zip(per, (1.385, 1.497, 1.499))), per


def _wide_workspace_model():
    """1x1 convs of more than 128 inputs on a 9x9 map (81 pixels: 20 tiles of 4, one pixel left):
    242 -> 31 in place (a 2-input tail, an odd channel, the pixel left through the scratch), 163 ->
    90 apart (a 3-input tail, the doubled sums), 299 -> 21 in place (a 3-input tail, more inputs
    than the stack's tiles of 2 take at once)."""
    i = keras.Input((9, 9, 12))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(242, 1, activation="relu6")(i))
    x = L.Conv2D(31, 1)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(163, 1, activation="relu6")(x))
    x = L.Conv2D(90, 1)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(299, 1, activation="relu6")(x))
    x = L.Conv2D(21, 1)(x)
    return spread_weights(keras.Model(i, L.Conv2D(8, 1)(L.GlobalAveragePooling2D(keepdims=True)(x)), name="wide_ws"), seed=7)


def test_wide_pointwise_tiles_of_four_in_the_arena_workspace_on_emulated_cortex_m4(tmp_path):
    """1x1 convs of more than 128 inputs (PhiNet-20M's and PhiNet-10M's projections) run tiles of 4
    pixels whose unpacked inputs go in an arena workspace the planner gives where the arena does
    not grow (int8_pointwise_ws), not tiles of 2 whose inputs the stack holds: at most 1.15
    Cortex-M4 instructions a MAC for each of the three layers (1.111, 1.085 and 1.126; 1.216,
    1.183 and 1.273 with tiles of 2), per layer as benchmarks/int8_profile.py counts them, each
    layer's output the host's. The host gives TFLM's and BUILTIN_REF's outputs, the DSP build on
    QEMU's Cortex-M4 the host's, and so do the build without the workspace (-DMN_PW_NO_WS: the
    tiles of 2 on the stack), the one with the loops in C (-DMN_PW_NO_ASM) and the portable one,
    on the same arena."""
    import shutil
    import sys

    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    model = _wide_workspace_model()
    data = convert(model, calibration(model, seed=7))
    compiled = compile_tflite(data, classname="Wide", stream=False)
    plan = compiled.plan
    wide = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.pointwise and op.inputs[0].hwc[2] > 128]
    assert [(op.inputs[0].hwc[2], op.output.hwc[2]) for op in wide] == [(242, 31), (163, 90), (299, 21)]
    assert all(plan.op(op).workspace_option == 8 * ((op.inputs[0].hwc[2] + 3) // 4 * 4) + 3 for op in wide)
    assert [plan.overlaps_input(op) for op in wide] == [True, False, True]
    assert compiled.header.count("int8_pointwise_ws<") == 3
    header = tmp_path / "Wide.h"
    _exact_on_host(compiled, data, model.name, int8_inputs((9, 9, 12), n=4, seed=7), header)
    x = np.random.default_rng(7).integers(0, 256, (2, 9, 9, 12)).astype(np.uint8)
    _m4_runs(header, "Wide", x, tmp_path, {"ws": [], "stack": ["-DMN_PW_NO_WS"], "c_loops": ["-DMN_PW_NO_ASM"],
                                           "portable": ["-DMICRONETS_NO_DSP"]})
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
    import int8_profile

    (tmp_path / "wide_ws.tflite").write_bytes(data)
    (tmp_path / "prof").mkdir()
    r = int8_profile.profile("wide_ws", str(tmp_path), str(tmp_path / "prof"), stream=False)
    assert not any(row["flags"] for row in r["rows"])
    per = {row["idx"]: row["instr"] / row["macs"] for row in r["rows"] if row["macs"]}
    ws = [k for k, op in enumerate(compiled.graph.ops) if op in wide]
    assert all(per[k] < 1.15 for k in ws), [per[k] for k in ws]


def _shared_workspace_model():
    """Projections of more than 128 inputs to 24 channels on a 5x5 map (25 pixels: 6 tiles of 4,
    one pixel left), the first (180 inputs) the arena's peak, the others in its workspace, each
    input count's tail and loop entry its own: 148 (no tail, 37 steps), 129 (one input, 32
    steps), 134 (two, 33) and 143 (three: one more step, 36)."""
    i = keras.Input((5, 5, 16))
    x = i
    for cin in (180, 148, 129, 134, 143):
        x = L.Conv2D(24, 1)(L.DepthwiseConv2D(3, padding="same", activation="relu6")(L.Conv2D(cin, 1, activation="relu6")(x)))
    return spread_weights(keras.Model(i, L.Conv2D(8, 1)(L.GlobalAveragePooling2D(keepdims=True)(x)), name="shared_ws"), seed=11)


def test_wide_pointwise_workspace_layers_of_one_output_count_share_one_tile_on_emulated_cortex_m4(tmp_path):
    """The workspace's 4-pixel tiles take the input count at run time (int8_pw_tile_ws<COUT, RQ,
    D>): four projections of 148, 129, 134 and 143 inputs to 24 channels (every tail and loop
    entry) run through one instance in the Cortex-M4 firmware (PhiNet-20M's 12 projections
    and PhiNet-10M's 7 each had their own), the host giving TFLM's and BUILTIN_REF's outputs and
    the DSP build on QEMU's Cortex-M4 the host's, with the asm loop and with the loops in C
    (-DMN_PW_NO_ASM)."""
    import re
    import shutil

    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    model = _shared_workspace_model()
    data = convert(model, calibration(model, seed=11))
    compiled = compile_tflite(data, classname="Shared", stream=False)
    wide = [op for op in compiled.graph.ops if op.kind == "Conv2D" and op.pointwise and op.inputs[0].hwc[2] > 128]
    assert [op.inputs[0].hwc[2] for op in wide] == [180, 148, 129, 134, 143]
    assert [bool(compiled.plan.op(op).workspace_option) for op in wide] == [False, True, True, True, True]
    assert compiled.header.count("int8_pointwise_ws<") == 4
    header = tmp_path / "Shared.h"
    _exact_on_host(compiled, data, model.name, int8_inputs((5, 5, 16), n=4, seed=11), header)
    x = np.random.default_rng(11).integers(0, 256, (2, 5, 5, 16)).astype(np.uint8)
    _m4_runs(header, "Shared", x, tmp_path, {"ws": [], "c_loops": ["-DMN_PW_NO_ASM"]})
    nm = shutil.which(qemu.CXX).replace("g++", "nm")
    for label in ("ws", "c_loops"):
        symbols = subprocess.run([nm, "-C", str(tmp_path / label / "firmware.elf")], capture_output=True, text=True).stdout
        assert len(re.findall(r"int8_pw_tile_ws<", symbols)) == 1, (label, re.findall(r".*int8_pw_tile_ws<.*", symbols))


def _shared_conv_mul_workspace_model():
    """_shared_workspace_model's blocks with a squeeze-excite gate before each projection (its
    MUL fused into it: Int8ConvMul), a sigmoid's on ReLU6 maps (the products' non-negative form)
    but for the 134-channel block's, a hard sigmoid's on a map of no activation (the general form)."""
    i = keras.Input((5, 5, 16))
    x = i
    for cin in (180, 148, 129, 134, 143):
        act, gate = (None, "hard_sigmoid") if cin == 134 else ("relu6", "sigmoid")
        x = L.DepthwiseConv2D(3, padding="same", activation=act)(L.Conv2D(cin, 1, activation="relu6")(x))
        s = L.GlobalAveragePooling2D(keepdims=True)(x)
        s = L.Conv2D(cin, 1, activation=gate)(L.Conv2D(cin // 8, 1, activation="relu")(s))
        x = L.Conv2D(24, 1)(L.Multiply()([x, s]))
    return spread_weights(keras.Model(i, L.Conv2D(8, 1)(L.GlobalAveragePooling2D(keepdims=True)(x)), name="shared_cm"), seed=13)


def test_squeeze_excite_projections_in_the_workspace_share_the_plain_layers_tile_on_emulated_cortex_m4(tmp_path):
    """A squeeze-excite MUL fused into its projection (Int8ConvMul) whose 4-pixel tiles' products
    go in the arena workspace runs the plain workspace layers' tile over them (int8_pw_tile_ws,
    the input count a run-time value): four such projections of 148, 129, 134 and 143 inputs (every
    tail and loop entry) to 24 channels take one instance per parameter layout in the Cortex-M4
    firmware (two: the general form's biases are laid out apart), none of int8_pw_tile_dsp's
    4-pixel ones (PhiNet-20M's 12 projections and PhiNet-10M's 7 had one each), with the asm loop, with the loops in C (-DMN_PW_NO_ASM) and at -Og with a frame pointer;
    the host gives TFLM's and BUILTIN_REF's outputs, and every M4 build the host's."""
    import re
    import shutil

    from micronets.compiler.ops.int8_conv_mul import Int8ConvMul
    from micronets.embedded import qemu
    from test_int8_depthwise import _exact_on_host, _m4_runs

    if not (shutil.which(qemu.CXX) and shutil.which(qemu.QEMU)):
        pytest.skip("arm-none-eabi-g++ / qemu-system-arm not installed")
    model = _shared_conv_mul_workspace_model()
    data = convert(model, calibration(model, seed=13))
    compiled = compile_tflite(data, classname="SharedCm", stream=False)
    fused = [op for op in compiled.graph.ops if isinstance(op, Int8ConvMul)]
    assert [(op.inputs[0].hwc[2], op.output.hwc[2]) for op in fused] == [(c, 24) for c in (180, 148, 129, 134, 143)]
    assert [op.m_pos for op in fused] == [True, True, True, False, True]
    assert [bool(compiled.plan.op(op).workspace_option) for op in fused] == [False, True, True, True, True]
    assert len(re.findall(r"int8_conv_mul<\d+, \d+, 24, [^>]*, true>", compiled.header)) == 4
    header = tmp_path / "SharedCm.h"
    assert len(np.unique(_exact_on_host(compiled, data, model.name, int8_inputs((5, 5, 16), n=4, seed=13), header))) > 8
    x = np.random.default_rng(13).integers(0, 256, (2, 5, 5, 16)).astype(np.uint8)
    builds = {"ws": [], "c_loops": ["-DMN_PW_NO_ASM"], "og": ["-Og", "-fno-omit-frame-pointer"]}
    _m4_runs(header, "SharedCm", x, tmp_path, builds)
    # an instance per parameter layout (the tile's BF, SF): the non-negative forms' three share one
    layouts = [op.c_param_types() for op in fused[1:]]
    assert len(set(layouts)) == 2 and layouts.count(layouts[0]) == 3, layouts
    nm = shutil.which(qemu.CXX).replace("g++", "nm")
    for label in builds:
        symbols = subprocess.run([nm, "-C", str(tmp_path / label / "firmware.elf")], capture_output=True, text=True).stdout
        tiles = re.findall(r"int8_pw_tile_ws<24, [^(]*", symbols)
        assert len(tiles) == 2 and len(set(tiles)) == 2, (label, tiles)
        assert not re.findall(r"int8_pw_tile_dsp<\d+, 24, 4,", symbols), (label, re.findall(r".*int8_pw_tile_dsp<.*", symbols))


def test_wide_pointwise_workspace_tiles_compile_for_cortex_m4_at_every_optimisation_level(tmp_path):
    """The workspace's 4-pixel tiles (int8_pw_tile_ws: the 13-register asm loop over inputs
    unpacked in the arena, its entry picked at run time by the input count) compile for Cortex-M4
    under -Werror at every level users build with, for layers of one output count and every tail
    too, squeeze-excite projections' (Int8ConvMul, over their products) as well, and so does the
    build without the workspace (-DMN_PW_NO_WS) at -O2, -O0 and -Og."""
    import re
    import shutil

    from micronets.embedded import qemu

    cxx = shutil.which(qemu.CXX)
    if not cxx:
        pytest.skip("arm-none-eabi-g++ not installed")
    # the three models in one translation unit (as two models share a sketch): 7 compiles, not 30
    source = ""
    for name, model, seed, call, n in (("Wide", _wide_workspace_model(), 7, r"int8_pointwise_ws<\d", 3),
                                       ("Shared", _shared_workspace_model(), 11, r"int8_pointwise_ws<\d", 4),
                                       ("SharedCm", _shared_conv_mul_workspace_model(), 13, r"int8_conv_mul<[^>]*, true>\(", 4)):
        compiled = compile_tflite(convert(model, calibration(model, seed=seed)), classname=name, stream=False)
        assert len(re.findall(call, compiled.header)) == n, name
        header = tmp_path / f"{name}.h"
        header.write_text(compiled.header)
        source += f'#include "{header}"\n{name} net{name};\nint run{name}(const int8_t* x) {{ return net{name}.predict(x); }}\n'
    src = tmp_path / "all.cpp"
    src.write_text(source)
    # -O2 with the workspace: the QEMU tests of these three models; without it, the levels where
    # registers run shortest and -O2
    for flags, opts in (([], ("-O0", "-Os", "-O3", "-Og -fno-omit-frame-pointer")),
                        (["-DMN_PW_NO_WS"], ("-O2", "-O0", "-Og -fno-omit-frame-pointer"))):
        for opt in opts:
            proc = subprocess.run([cxx, *qemu.CPU_FLAGS, *qemu.CXX_FLAGS, "-std=c++98", "-pedantic", *qemu.WARN_FLAGS,
                                   *opt.split(), *flags, "-c", str(src), "-o", str(tmp_path / "all.o")],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, f"{flags} {opt}: {proc.stderr[-3000:]}"
