"""One small model per layer kind, activation, merge and input form, compiled with real g++ (strict
C++98) and compared with Keras; the regressions of the first survey (silent miscompiles); class
names that must compile or be refused; and the error paths of export."""

from __future__ import annotations

import os
import random
import re
import string
import subprocess

import numpy as np
import pytest

import micronets
from micronets import host
from micronets.compiler import UnsupportedModelError, check_classname, compile_model
from micronets.compiler.ops.base import brief
from netutil import keras_predict, liven, random_images

keras = pytest.importorskip("keras")
layers = keras.layers
TOL = 1e-5


def inputs_for(shape, n=8, seed=1):
    if len(shape) == 3:
        return random_images(shape, n, seed)
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n,) + tuple(shape)).astype(np.float32)


def cpp_outputs(model, x, tmp_path, name="Net", **export_options):
    """Export ``model``, build it strictly (-std=c++98 -pedantic -Wall -Wextra -Werror -O2), run the
    float entry on ``x``; returns (list of outputs shaped like Keras', compiled model). The kernels'
    forced inlining is relaxed (host.RELAXED_INLINE: the same arithmetic, a third less compile
    time); test_fuzz builds random layers as users do."""
    path = str(tmp_path / f"{name}.h")
    compiled = micronets.export(model, path, classname=name, **export_options)
    exe = host.build(path, name, out_dir=str(tmp_path), flags=host.RELAXED_INLINE)
    flat = host.run(exe, x, sum(compiled.output_sizes))
    outs, at = [], 0
    for t in compiled.graph.outputs:
        outs.append(flat[:, at:at + t.size].reshape((len(flat),) + t.shape))
        at += t.size
    return outs, compiled


def assert_matches_keras(model, tmp_path, x=None, name="Net", live=True, **export_options):
    """C++ == Keras within TOL relative to the output scale, on every output; outputs must vary
    across inputs (a port that ignored its input could not pass)."""
    shape = tuple(model.inputs[0].shape[1:])
    x = inputs_for(shape) if x is None else x
    if live:
        liven(model, x)
    ref = keras_predict(model, x)
    ref = ref if isinstance(ref, list) else [ref]
    got, compiled = cpp_outputs(model, x, tmp_path, name, **export_options)
    assert len(got) == len(ref)
    for r, g in zip(ref, got):
        r = np.asarray(r).reshape(g.shape)
        assert np.ptp(r.reshape(len(x), -1), axis=0).max() > 1e-3, "Keras output does not vary with the input"
        scale = max(1.0, float(np.abs(r).max()))
        diff = float(np.abs(g - r).max())
        assert diff <= TOL * scale, f"C++ differs from Keras by {diff:.3g} (scale {scale:.3g})"
    return compiled


def randomise(model, spread=1.5, seed=0):
    """Zero-centred random weights (kernels N(0, spread / sqrt(fan-in)), small random biases), so
    pre-activations take both signs over several units: every branch of an activation runs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights or type(layer).__name__ in ("BatchNormalization", "Normalization", "PReLU"):
            continue
        new = [rng.normal(0.0, 0.3, w.shape) if w.ndim == 1 else
               rng.normal(0.0, spread / np.sqrt(np.prod(w.shape[:-1])), w.shape) for w in weights]
        layer.set_weights([v.astype(np.float32) for v in new])
    return model


def seq(shape, *stack, name="m"):
    inp = keras.Input(shape)
    x = inp
    for layer in stack:
        x = layer(x)
    return keras.Model(inp, x, name=name)


# ------------------------------------------------------------------ section 1: silent miscompiles
def test_conv_flatten_dense(tmp_path):
    """The newcomer's first model: the conv keeps its 8x8x4 output; Flatten is a view."""
    model = seq((8, 8, 2), layers.Conv2D(4, 3, padding="same"), layers.Flatten(), layers.Dense(3, activation="softmax"))
    compiled = assert_matches_keras(model, tmp_path)
    conv = compiled.graph.ops[0]
    assert conv.output.shape == (8, 8, 4)


def test_conv_pool_flatten_dense_mnist_style(tmp_path):
    model = seq((28, 28, 1), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(), layers.Dropout(0.5),
                layers.Dense(10, activation="softmax"))
    assert_matches_keras(model, tmp_path)


def test_zero_padding_then_max_pool_counts_the_zeros(tmp_path):
    """ZeroPadding2D(2) + MaxPooling2D(2) on 4x4: some windows lie entirely in the padding."""
    model = seq((4, 4, 3), layers.Conv2D(3, 1), layers.ZeroPadding2D(2), layers.MaxPooling2D(2), layers.Flatten())
    x = inputs_for((4, 4, 3)) - 0.5
    assert_matches_keras(model, tmp_path, x=x)


def test_minus_inf_padding_is_the_max_pools_own(tmp_path):
    """``ops.pad(x, ..., constant_values=-inf)`` then a 'valid' MaxPooling (keras-hub's ResNetV2 and
    CSPNet stems: the padding never wins a window, where zeros would over negative values): the
    pool's padding, left out of its windows; of a map and of a sequence. -inf read otherwise is
    refused by name."""
    ops = keras.ops
    inp = keras.Input((9, 11, 4))
    x = layers.Conv2D(5, 3, name="mix")(inp)  # no activation: negative values where zeros would win
    seq_ = layers.Reshape((63, 5))(x)
    stem = layers.MaxPooling2D(3, strides=2, name="stem_pool")(
        ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=float("-inf")))
    steps = layers.MaxPooling1D(4, strides=3, name="step_pool")(
        ops.pad(seq_, ((0, 0), (2, 3), (0, 0)), constant_values=float("-inf")))
    model = randomise(keras.Model(inp, [layers.Flatten()(stem), layers.Flatten()(steps)], name="inf_padded"))
    x_in = inputs_for((9, 11, 4)) - 0.5
    compiled = assert_matches_keras(model, tmp_path, x=x_in, name="InfPadded")
    pools = [op for op in compiled.graph.ops if op.kind == "MaxPool2D"]
    assert [(op.pads, op.zero_pads) for op in pools] == [((1, 1, 1, 1), False), ((0, 0, 2, 3), False)]
    assert "ZeroPadding" not in [op.kind for op in compiled.graph.ops]
    minus_inf = lambda t, w: ops.pad(t, w, constant_values=float("-inf"))  # noqa: E731
    around = ((0, 0), (1, 1), (1, 1), (0, 0))
    reason = r"'pad(_\d+)?' pads with -inf, which is supported as the padding of a max pooling reading it"
    for out, message in ((layers.Conv2D(2, 3)(minus_inf(x, around)), reason),
                         (layers.AveragePooling2D(3)(minus_inf(x, around)), reason),
                         (layers.MaxPooling2D(3, padding="same")(minus_inf(x, around)), reason),
                         (layers.Flatten()(minus_inf(x, around)), reason),
                         (layers.MaxPooling2D(2)(minus_inf(x, ((0, 0), (2, 0), (0, 0), (0, 0)))),
                          r"reads \(2, 0, 0, 0\) cells of -inf around its input with a 2x2 window")):
        with pytest.raises(UnsupportedModelError, match=message):
            compile_model(keras.Model(inp, out))


def test_batchnorm_after_flatten_is_per_element(tmp_path):
    model = seq((4, 4, 2), layers.Conv2D(3, 3, padding="same"), layers.Flatten(), layers.BatchNormalization(),
                layers.Dense(4))
    compiled = assert_matches_keras(model, tmp_path)
    assert compiled.graph.ops[0].output.shape == (4, 4, 3)  # nothing folded into the conv


def test_batchnorm_over_another_axis_is_not_folded_as_channels(tmp_path):
    model = seq((5, 4, 3), layers.Conv2D(3, 3, padding="same"), layers.BatchNormalization(axis=1), layers.Flatten())
    assert_matches_keras(model, tmp_path)


def test_one_tensor_feeds_a_flatten_and_a_pool(tmp_path):
    inp = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same")(inp)
    a = layers.Dense(4)(layers.Flatten()(x))
    b = layers.Dense(4)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, layers.Add()([a, b]))
    assert_matches_keras(model, tmp_path)


def test_keras_ops_pooling_as_the_layers(tmp_path):
    """keras.ops.max_pool and average_pool (keras-hub MobileNetV5's multi-scale fusion pools so;
    were refused) of a map and a sequence, 'valid' and 'same', pool sizes and strides as an int or
    a tuple, C++ == Keras; a 3-D pooling is refused naming the shape."""
    ops = keras.ops
    inp = keras.Input((7, 9, 3))
    x = layers.Conv2D(4, 3, padding="same")(inp)
    seq_in = layers.Reshape((63, 4))(x)
    outs = [ops.max_pool(x, 2), ops.average_pool(x, (3, 2), strides=(2, 1), padding="same"),
            ops.max_pool(x, 3, strides=2, padding="same"), ops.average_pool(seq_in, 4, strides=3),
            ops.max_pool(seq_in, 2, padding="same")]
    compiled = assert_matches_keras(keras.Model(inp, [layers.Flatten()(o) for o in outs], name="pools"), tmp_path)
    assert [op.kind for op in compiled.graph.ops][1:] == ["MaxPool2D", "AveragePooling2D"] * 2 + ["MaxPool2D"]
    cube = keras.Input((4, 4, 4, 2))
    with pytest.raises(UnsupportedModelError, match=r"pools a sample of shape \(4, 4, 4, 2\); a map"):
        compile_model(keras.Model(cube, layers.Flatten()(ops.max_pool(cube, 2))))


def test_strict_build_has_no_false_uninitialized_warning(tmp_path):
    model = seq((4, 2, 1), layers.Conv2D(1, 2, strides=2), layers.ZeroPadding2D(), layers.ZeroPadding2D(),
                layers.DepthwiseConv2D(1))
    assert_matches_keras(model, tmp_path, x=inputs_for((4, 2, 1)) + 0.5)


# ------------------------------------------------------------------ activations
ACTIVATIONS = ["relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish", "hard_sigmoid", "hard_silu",
               "hard_swish", "sigmoid", "tanh", "softplus", "softsign", "exponential", "mish", "linear", "hard_tanh",
               "log_sigmoid", "tanh_shrink", "soft_shrink", "hard_shrink", "sparse_plus", "sparse_sigmoid", "squareplus"]


def test_every_supported_activation_is_tested():
    """test_every_activation runs each elementwise activation the compiler supports (Keras 3.15
    has these and softmax, log_softmax, glu, sparsemax and threshold: not elementwise, or taking
    arguments no activation string gives)."""
    from micronets.compiler import activations

    assert set(ACTIVATIONS) == set(activations.supported()) - set(activations.ROW_ACTIVATIONS)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "standalone"])
def test_every_activation(fused, tmp_path):
    """Each activation fused into a conv (activation=) and as its own layer after a Dense that
    cannot absorb it; one model per mode carrying all of them on parallel branches, with
    pre-activations of both signs."""
    inp = keras.Input((5, 6, 2))
    outs = []
    for name in ACTIVATIONS:
        if fused:
            y = layers.Conv2D(2, 3, activation=name, name=f"conv_{name}")(inp)
        else:
            y = layers.Conv2D(2, 3, activation="tanh", name=f"conv_{name}")(inp)
            d = layers.Dense(2, name=f"dense_{name}")(y)
            y = layers.Activation(name, name=f"act_{name}")(d)
            outs.append(layers.Flatten()(d))  # a second reader: the activation cannot fuse
        outs.append(layers.Flatten()(y))
    model = randomise(keras.Model(inp, layers.Concatenate()(outs)), spread=2.0)
    compiled = assert_matches_keras(model, tmp_path, x=inputs_for((5, 6, 2)) * 2 - 1, live=False)
    kinds = [op.kind for op in compiled.graph.ops]
    assert ("Activation" in kinds) == (not fused)


def test_activation_functions_are_keras_own_matched_by_identity(tmp_path):
    """``activation=`` given as a function: keras.activations', keras.ops' (with their own
    defaults: keras.ops.gelu is the tanh approximation, keras.activations.gelu the exact one) and
    tf.nn's, all on one model against Keras. A function of the user's is refused even when it is
    named like a Keras activation (it was compiled as Keras' swish, 0.21 off), and nothing is
    written."""
    import tensorflow as tf
    from keras import activations as ka
    from keras import ops

    functions = [ops.gelu, ka.gelu, tf.nn.gelu, ops.relu, ops.relu6, ops.sigmoid, ops.tanh, ops.elu, ops.selu,
                 ops.softplus, ops.softsign, ops.silu, ops.leaky_relu, ops.hard_sigmoid, ops.hard_silu, ops.celu,
                 ops.log_sigmoid, ops.exp, ka.swish, ka.hard_swish, ka.mish, tf.nn.relu, tf.nn.leaky_relu,
                 tf.nn.swish, tf.nn.elu, tf.nn.sigmoid, tf.nn.tanh, ops.softmax, tf.nn.softmax]
    inp = keras.Input((6,))
    outs = [layers.Dense(3, activation=fn, name=f"d{k}")(inp) for k, fn in enumerate(functions)]
    model = randomise(keras.Model(inp, outs), spread=3.0)  # one output each: each its own scale
    assert_matches_keras(model, tmp_path, x=inputs_for((6,)) * 2 - 1, live=False)

    def swish(x):  # not Keras' swish (x * sigmoid(x))
        return x * ops.sigmoid(2.0 * x)

    # a function of the user's (keras-hub's ConvNormAct wraps gelu so): the layer's call() is
    # compiled instead, the function through the keras.ops it calls; one using TensorFlow is refused
    i2 = keras.Input((5, 5, 2))
    mine = [layers.Dense(3, activation=swish, name="mine")(inp), layers.Dense(4, activation=lambda x: ops.relu(x) * 2)(inp)]
    conv = layers.Conv2D(3, 3)(i2)
    act = layers.Activation(lambda x: ops.minimum(ops.abs(ops.gelu(x, approximate=False)), 1.5) - 0.25)(conv)
    model = randomise(keras.Model([inp, i2], mine + [layers.Flatten()(act)]), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, x=[inputs_for((6,)) * 2 - 1, inputs_for((5, 5, 2)) * 2 - 1], live=False)
    kinds = [op.kind for op in compiled.graph.ops]
    assert "Dense" in kinds and "Conv2D" in kinds, kinds
    target = tmp_path / "mine.h"
    with pytest.raises(UnsupportedModelError, match=r"layer 'tf_fn' of class Dense .*TensorFlow \(tf\.\*\).*traced "
                                                    r"through its call\(\) because its activation .*<lambda> is a function "
                                                    r"of its own"):
        micronets.export(keras.Model(inp, layers.Dense(3, activation=lambda x: tf.math.cumsum(x, axis=-1),
                                                       name="tf_fn")(inp)), str(target))
    with pytest.raises(UnsupportedModelError, match=r"layer 'conv_fn' \(Conv2D\) uses activation .*not one of Keras' "
                                                    r"own .*apply your own function in an Activation layer after it"):
        micronets.export(keras.Model(i2, layers.Conv2D(3, 3, activation=swish, name="conv_fn")(i2)), str(target))
    assert not target.exists()


def test_softmax_and_log_softmax_layers(tmp_path):
    inp = keras.Input((3, 4, 2))
    y = layers.Conv2D(5, 1)(inp)
    a = layers.Softmax()(y)  # per pixel, over channels
    b = layers.Activation("log_softmax")(layers.Dense(6)(layers.Flatten()(y)))
    model = randomise(keras.Model(inp, [a, b]), spread=3.0)
    assert_matches_keras(model, tmp_path, live=False)


def test_softmax_over_any_axis(tmp_path):
    """Softmax and log-softmax over an axis other than the last (a sequence's steps, a map's rows:
    attention pooling written by hand), strided rows in place; two long axes at once are refused."""
    inp = keras.Input((6, 4))
    seqs = layers.Dense(5)(inp)
    a = layers.Softmax(axis=1)(seqs)
    b = keras.ops.log_softmax(seqs, axis=-2)
    m = layers.Conv2D(3, 1)(layers.Reshape((2, 3, 4))(inp))
    c = layers.Softmax(axis=2)(m)
    model = keras.Model(inp, [a, b, layers.Flatten()(c)])
    compiled = assert_matches_keras(randomise(model, spread=3.0), tmp_path, live=False)
    labels = [op.label() for op in compiled.graph.ops]
    assert "Softmax over axis 1" in labels and "LogSoftmax over axis 1" in labels and "Softmax over axis 2" in labels
    with pytest.raises(UnsupportedModelError, match=r"only over one axis"):
        compile_model(keras.Model(inp, layers.Softmax(axis=(1, 2))(seqs)))


def test_reductions_over_axes_match_keras(tmp_path):
    """keras.ops mean, sum, max and min over the axes a sample has, with and without keepdims: the
    mean over a map's pixels runs as global pooling, the others walk kept and reduced runs of axes
    (a leading reduced run, a trailing kept one, up to three alternations; a single value, every axis
    of size 1, as test_fuzz's seed 41001 of the keras.ops family drew it). A reduction over the batch axis
    or over every axis (axis=None) is refused, naming the operation."""
    ops = keras.ops
    inp = keras.Input((5, 4, 6))
    y = layers.Conv2D(6, 3, padding="same")(inp)
    parts = [ops.mean(y, axis=[1, 2]), ops.sum(y, axis=1, keepdims=True), ops.max(y, axis=-1),
             ops.min(y, axis=(1, 3)), ops.mean(y, axis=2), ops.sum(ops.reshape(y, (-1, 5, 2, 2, 6)), axis=(1, 3)),
             ops.mean(ops.reshape(y, (-1, 5, 2, 2, 3, 2)), axis=(2, 4)),
             ops.min(ops.mean(y, axis=(1, 2, 3), keepdims=True), axis=(1, 2))]  # (one value: was an IndexError)
    model = keras.Model(inp, layers.Concatenate()([layers.Flatten()(p) for p in parts]))
    compiled = assert_matches_keras(model, tmp_path)
    labels = [op.label() for op in compiled.graph.ops]
    for label in ("ReduceSum over axes 1", "ReduceMax over axes 3", "ReduceMin over axes 1,3", "ReduceMean over axes 2",
                  "ReduceSum over axes 1,3", "ReduceMean over axes 2,4"):
        assert label in labels, labels
    assert sum(op.kind == "GlobalAveragePooling2D" for op in compiled.graph.ops) == 1
    for bad, why in ((ops.sum(y), r"'sum\w*' \(keras.ops sum\) reduces over every axis"),
                     (ops.mean(y, axis=0), r"over the batch axis")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Model(inp, bad))


def test_dot_and_matmul_of_activations_match_keras(tmp_path):
    """Keras' Dot (vectors and matrices, every contracted-axis combination: A and B stored as
    they come or transposed, cosine similarity with normalize=True) and keras.ops.matmul of two
    matrices, and of a stack of matrices by one shared matrix (multi-query attention: keras-hub
    MobileNetV5; was refused); expand_dims and squeeze are views. A matmul of a model value by a constant (keras.io's
    decision forest multiplies by softmax of a weight) is a Dense without bias (it was refused); by
    a constant on the left it is refused."""
    ops = keras.ops
    inp = keras.Input((6, 4))
    a, b = layers.Dense(5)(inp), layers.Dense(5)(inp)
    c = layers.Dense(3)(inp)
    va, vb = layers.GlobalAveragePooling1D()(a), layers.GlobalMaxPooling1D()(b)
    parts = [layers.Dot(axes=(2, 2))([a, b]),  # 6x5 x (6x5)T: B transposed
             layers.Dot(axes=1)([a, c]),  # (6x5)T x 6x3: A transposed
             layers.Dot(axes=(2, 1))([a, vb]),  # 6x5 x 5
             layers.Dot(axes=1, normalize=True)([va, vb]),  # cosine of two vectors
             layers.Dot(axes=2, normalize=True)([a, b]),
             ops.matmul(a, ops.transpose(b, (0, 2, 1))),
             ops.squeeze(ops.expand_dims(c, axis=-1), axis=3)]
    model = keras.Model(inp, layers.Concatenate()([layers.Flatten()(p) for p in parts]))
    compiled = assert_matches_keras(model, tmp_path)
    labels = [op.label() for op in compiled.graph.ops]
    assert "Dot 6x5 x 5x6 (stored NxK)" in labels and "Dot 5x6 (stored KxM) x 6x3" in labels, labels
    assert "Dot 1x5 x 5x1, L2-normalised (cosine)" in labels and "MatMul 6x5 x 5x6" in labels, labels
    heads = ops.transpose(layers.Reshape((6, 2, 4))(layers.Dense(8)(inp)), (0, 2, 1, 3))  # (2 heads, 6, 4)
    shared = ops.expand_dims(ops.transpose(layers.Dense(4)(inp), (0, 2, 1)), 1)  # (1, 4, 6): one key for both
    mqa = assert_matches_keras(keras.Model(inp, layers.Flatten()(ops.matmul(heads, shared)), name="mqa"), tmp_path)
    assert "MatMul 12x4 x 4x6" in [op.label() for op in mqa.graph.ops]
    w = np.random.default_rng(5).standard_normal((5, 2)).astype(np.float32)
    by_w = assert_matches_keras(keras.Model(inp, [ops.matmul(a, w), ops.matmul(va, w)], name="by_w"), tmp_path)
    assert sorted(op.kind for op in by_w.graph.ops if "matmul" in op.name) == ["Conv2D", "Dense"]
    with pytest.raises(UnsupportedModelError, match=r"multiplies a constant by a model value \(W @ x\); only x @ W"):
        compile_model(keras.Model(inp, ops.matmul(np.ones((2, 6), np.float32), a)))
    with pytest.raises(UnsupportedModelError, match=r"before the batch axis"):
        compile_model(keras.Model(inp, ops.expand_dims(a, 0)))


def test_einsum_and_stacked_matmul_of_model_values(tmp_path):
    """keras.ops.einsum of two model values (was refused: keras.io's "ViT on small datasets"
    overrides MultiHeadAttention's attention with it): MHA's own equations (scores per head,
    keys before queries, and the weighted sum), an outer product and a dot product per sample;
    keras.ops.matmul of stacks of matrices (one per head, as CaiT writes attention); a model value
    by a constant (keras-hub ViTDet's relative positions; was refused). Equations with '...', a
    diagonal, an index summed in one operand only, or a constant indexed by the batch axis are
    refused naming the reason."""
    ops = keras.ops
    inp = keras.Input((6, 8))
    q, k, v = (layers.Reshape((6, 2, 4))(layers.Dense(8)(inp)) for _ in range(3))  # (positions, heads, dim)
    scores = ops.softmax(ops.einsum("aecd,abcd->acbe", k, q), axis=-1)  # (heads, queries, keys)
    mixed = ops.einsum("acbe,aecd->abcd", scores, v)
    qh, kh = ops.transpose(q, (0, 2, 1, 3)), ops.transpose(k, (0, 2, 1, 3))
    stacked = ops.matmul(qh, ops.transpose(kh, (0, 1, 3, 2)))
    flat = layers.Flatten()(inp)
    outer = ops.einsum("bi,bj->bij", layers.Dense(3)(flat), layers.Dense(2)(flat))
    dot = ops.einsum("bi,bi->b", layers.Dense(3)(flat), layers.Dense(3)(flat))
    table = np.random.default_rng(3).normal(0, 1, (5, 2, 4)).astype(np.float32)  # (relative positions, heads, dim)
    relative = ops.einsum("bqhd,khd->bhqk", q, table)
    model = keras.Model(inp, [layers.Flatten()(mixed), layers.Flatten()(stacked), layers.Flatten()(outer), dot,
                              layers.Flatten()(relative)])
    compiled = assert_matches_keras(model, tmp_path)
    labels = [op.label() for op in compiled.graph.ops]
    for label in ("Einsum 2 x (6x4 x 4x6)", "Einsum 2 x (6x6 x 6x4)", "MatMul 2 x (6x4 x 4x6)", "Einsum 3x1 x 1x2",
                  "Einsum 1x3 x 3x1", "Einsum 2 x (6x4 x 4x5)"):
        assert label in labels, labels
    a, b = layers.Dense(4)(inp), layers.Dense(4)(inp)
    for equation, operands, why in (("...i,...i->...", (a, b), "written out in full"),
                                    ("bii,bij->bij", (ops.reshape(a, (-1, 4, 6))[:, :, :4], b[:, :4]), "diagonal"),
                                    ("bij,bjk->bk", (a, ops.transpose(b, (0, 2, 1))), "one operand"),
                                    ("bij,bjk->bik", (a, np.ones((1, 4, 3), np.float32)), "no index of a constant")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Model(inp, ops.einsum(equation, *operands)))


def test_cait_class_attention_matches_keras(tmp_path):
    """keras.io's CaiT (examples/vision/cait/) class attention, as published: the class token's
    query against every token's key per head, written with keras.ops reshape, transpose and
    matmul of stacks of matrices (one per head). Refused before stacked matmul; the layer
    returns (output, attention), and only the output is read."""
    ops = keras.ops

    class ClassAttention(layers.Layer):
        def __init__(self, projection_dim, num_heads, dropout_rate, **kwargs):
            super().__init__(**kwargs)
            self.num_heads = num_heads
            head_dim = projection_dim // num_heads
            self.scale = head_dim**-0.5
            self.q = layers.Dense(projection_dim)
            self.k = layers.Dense(projection_dim)
            self.v = layers.Dense(projection_dim)
            self.attn_drop = layers.Dropout(dropout_rate)
            self.proj = layers.Dense(projection_dim)
            self.proj_drop = layers.Dropout(dropout_rate)

        def call(self, x, training=False):
            batch_size, num_patches, num_channels = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
            q = ops.expand_dims(self.q(x[:, 0]), axis=1)
            q = ops.reshape(q, (batch_size, 1, self.num_heads, num_channels // self.num_heads))
            q = ops.transpose(q, axes=[0, 2, 1, 3])
            scale = ops.cast(self.scale, dtype=q.dtype)
            q = q * scale
            k = self.k(x)
            k = ops.reshape(k, (batch_size, num_patches, self.num_heads, num_channels // self.num_heads))
            k = ops.transpose(k, axes=[0, 2, 1, 3])
            v = self.v(x)
            v = ops.reshape(v, (batch_size, num_patches, self.num_heads, num_channels // self.num_heads))
            v = ops.transpose(v, axes=[0, 2, 1, 3])
            attn = ops.matmul(q, ops.transpose(k, axes=[0, 1, 3, 2]))
            attn = ops.nn.softmax(attn, axis=-1)
            attn = self.attn_drop(attn, training=training)
            x_cls = ops.matmul(attn, v)
            x_cls = ops.transpose(x_cls, axes=[0, 2, 1, 3])
            x_cls = ops.reshape(x_cls, (batch_size, 1, num_channels))
            x_cls = self.proj(x_cls)
            x_cls = self.proj_drop(x_cls, training=training)
            return x_cls, attn

    inp = keras.Input((7, 8))
    x_cls, _ = ClassAttention(8, 2, 0.0)(inp)
    compiled = assert_matches_keras(keras.Model(inp, layers.Flatten()(x_cls)), tmp_path, name="ClassAttention")
    assert [op.label() for op in compiled.graph.ops if op.kind == "MatMul"] == ["MatMul 2 x (1x4 x 4x7)",
                                                                               "MatMul 2 x (1x7 x 7x4)"]


def test_softmax_with_a_mask(tmp_path):
    """Keras' Softmax layer called with a mask ignored it (silently wrong); so did every other
    layer given one (a GlobalAveragePooling1D with a mask: 1.01 off). Softmax now computes it as
    Keras does (-1e9 where masked, then 0), for a constant mask and one computed from the input;
    keras.io's "ViT on small datasets" attention (Locality Self-Attention: a MultiHeadAttention
    subclass with a learned temperature, its own einsum attention and a mask hiding each token
    from itself; tests/public_models.py) matches Keras; any other layer called with a mask is
    refused saying so."""
    import public_models

    ops = keras.ops
    inp = keras.Input((6, 4))
    h = layers.Dense(4)(inp)
    constant = ops.convert_to_tensor(np.array([[[1], [1], [1], [0], [1], [0]]], bool))
    model = keras.Model(inp, [layers.Flatten()(layers.Softmax(axis=1)(h, mask=constant)),
                              layers.Flatten()(layers.Softmax()(h, mask=ops.greater(h, 0.2)))])
    assert_matches_keras(model, tmp_path, name="Masked")
    with pytest.raises(UnsupportedModelError, match=r"GlobalAveragePooling1D in model '\w+' is not supported when "
                                                    r"called with a mask .* as if unmasked"):
        compile_model(keras.Model(inp, layers.GlobalAveragePooling1D()(h, mask=constant[:, :, 0])))

    n = 9
    tokens = keras.Input((n, 8))
    x = layers.LayerNormalization(epsilon=1e-6)(tokens)
    diag_attn_mask = ops.cast([1 - ops.eye(n)], dtype="int8")
    x = public_models.multi_head_attention_lsa(num_heads=2, key_dim=8, dropout=0.1)(x, x, attention_mask=diag_attn_mask)
    model = keras.Model(tokens, layers.Dense(3)(layers.GlobalAveragePooling1D()(layers.Add()([x, tokens]))))
    compiled = assert_matches_keras(model, tmp_path, name="Lsa")
    assert sum(op.kind == "Einsum" for op in compiled.graph.ops) == 2


def test_layer_normalization_per_pixel_and_per_vector(tmp_path):
    """LayerNormalization over the last axis: per pixel over channels (ConvNeXt), without its
    scale or its centre, in place with GELU fused, and over a vector; gamma and beta random (not
    Keras' ones and zeros), inputs off-centre so the mean matters. Other axes and rms_scaling
    are refused with the reason."""
    inp = keras.Input((4, 5, 6))
    y = layers.Conv2D(12, 3, padding="same")(inp)
    a = layers.LayerNormalization(epsilon=1e-6)(y)
    b = layers.LayerNormalization(center=False)(layers.DepthwiseConv2D(3, padding="same")(y))
    c = layers.Activation("gelu")(layers.LayerNormalization(scale=False, epsilon=0.1)(y))
    v = layers.LayerNormalization()(layers.Dense(9)(layers.GlobalAveragePooling2D()(layers.Add()([a, b, c]))))
    model = keras.Model(inp, [layers.Flatten()(c), v])
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, layers.LayerNormalization):
            layer.set_weights([rng.uniform(-2, 2, w.shape).astype(np.float32) for w in layer.get_weights()])
    compiled = assert_matches_keras(model, tmp_path, x=inputs_for((4, 5, 6)) * 3 + 1)
    norms = [op for op in compiled.graph.ops if op.kind == "LayerNorm"]
    assert len(norms) == 4 and sum(op.act.name == "gelu" for op in norms) == 1
    for bad, why in ((layers.LayerNormalization(axis=1), "only the last axis"),
                     (layers.LayerNormalization(axis=[1, 2, 3]), "only the last axis"),
                     (layers.LayerNormalization(rms_scaling=True), "rms_scaling=True")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(seq((3, 4, 2), layers.Conv2D(3, 1), bad))


def test_layer_normalization_of_equal_values_is_exactly_beta(tmp_path):
    """A row of equal values normalises to exactly beta, at an epsilon (1e-6) whose 1 / sqrt(eps)
    = 1000 amplifies any rounding of the row's mean: 7.3, 2.9 and 5.55 summed six times in single
    precision give means one ulp off (Keras' own form, x inv + (b - mean inv), also rounds
    b - mean inv); a varied row stays within float32 of float64."""
    inp = keras.Input((4, 6))
    norm = layers.LayerNormalization(epsilon=1e-6)
    model = keras.Model(inp, layers.Flatten()(norm(inp)))
    rng = np.random.default_rng(5)
    gamma, beta = (rng.uniform(-2, 2, 6).astype(np.float32) for _ in range(2))
    norm.set_weights([gamma, beta])
    x = np.array([[[7.3] * 6, [2.9] * 6, [5.55] * 6, [0.5, -1.0, 2.0, 0.25, 3.0, -0.75]]], np.float32)
    path = str(tmp_path / "ln.h")
    micronets.export(model, path, classname="Ln")
    out = host.run_header(path, "Ln", x).reshape(4, 6)
    for row in range(3):
        assert np.array_equal(out[row], beta), (row, out[row] - beta)
    v = x[0, 3].astype(np.float64)
    want = (v - v.mean()) / np.sqrt(v.var() + 1e-6) * gamma + beta
    np.testing.assert_allclose(out[3], want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("layer", [
    lambda: layers.ReLU(max_value=4.0, negative_slope=0.1, threshold=0.5),
    lambda: layers.ReLU(max_value=3.0, threshold=0.3),
    lambda: layers.ReLU(negative_slope=0.2),
    lambda: layers.LeakyReLU(negative_slope=0.3),
    lambda: layers.ELU(alpha=0.7),
    lambda: layers.PReLU(alpha_initializer=keras.initializers.RandomUniform(-0.5, 0.8, seed=3)),
    lambda: layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.RandomUniform(-0.5, 0.8, seed=4)),
], ids=["relu_all", "relu_threshold_max", "relu_slope", "leaky", "elu", "prelu", "prelu_shared"])
def test_parametric_activation_layers(layer, tmp_path):
    model = randomise(seq((5, 5, 3), layers.Conv2D(4, 3, padding="same"), layer(), layers.Flatten()), spread=4.0)
    assert_matches_keras(model, tmp_path, live=False)


# ------------------------------------------------------------------ inputs and outputs
def test_mlp_on_a_vector_input(tmp_path):
    model = seq((20,), layers.Dense(16, activation="relu"), layers.BatchNormalization(), layers.Dense(20))
    assert_matches_keras(model, tmp_path)


def test_sequence_model_with_1d_layers(tmp_path):
    model = seq((40, 3), layers.Conv1D(8, 5, activation="relu"), layers.MaxPooling1D(2),
                layers.Conv1D(8, 3, padding="causal", dilation_rate=2), layers.DepthwiseConv1D(3, depth_multiplier=2),
                layers.SeparableConv1D(6, 3, padding="same"), layers.AveragePooling1D(2, padding="same"),
                layers.ZeroPadding1D((1, 2)), layers.Cropping1D((0, 1)), layers.UpSampling1D(2),
                layers.Dense(5), layers.GlobalMaxPooling1D())
    assert_matches_keras(model, tmp_path)


def test_global_average_pooling_1d_keepdims(tmp_path):
    model = seq((12, 4), layers.Conv1D(6, 3), layers.GlobalAveragePooling1D(keepdims=True), layers.Flatten(),
                layers.Dense(3, activation="softmax"))
    assert_matches_keras(model, tmp_path)


def test_global_pools_over_every_channel_and_pixel_tail(tmp_path):
    """Global mean and max, 8 channels at a time over blocks of 16 pixels: 9 .. 15 channels (each
    tail of 1 to 7 channels past 8) on 35 pixels (two blocks and 3), then 4x4 (one block exactly),
    1x1 and a 17-step sequence (a block and one pixel)."""
    inp = keras.Input((7, 5, 3))
    maps = [layers.Conv2D(c, 1, name=f"c{c}")(inp) for c in range(9, 16)]
    maps.append(layers.Conv2D(12, 1)(layers.Cropping2D(((0, 3), (0, 1)))(inp)))  # 4x4
    maps.append(layers.Conv2D(11, 1)(layers.Cropping2D(((0, 6), (0, 4)))(inp)))  # 1x1
    outs = [pool()(x) for x in maps for pool in (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)]
    y = layers.Conv1D(9, 1)(layers.Cropping1D((0, 18))(layers.Reshape((35, 3))(inp)))  # 17 steps
    outs += [layers.GlobalAveragePooling1D()(y), layers.GlobalMaxPooling1D()(y)]
    model = keras.Model(inp, layers.Concatenate()(outs))
    assert_matches_keras(randomise(model, spread=3.0), tmp_path, x=inputs_for((7, 5, 3)) * 2 - 1, live=False)


def test_global_pools_channels_first_pool_each_first_axis_row(tmp_path):
    """data_format="channels_first" (the Keras timeseries transformer example's head): Keras reads
    the first axis as the channels, so each time step (or map row) is pooled over its values: a
    sequence's mean and max, with keepdims, and a map's (7 x (5 x 6) values each)."""
    inp = keras.Input((7, 5, 3))
    y = layers.Conv2D(6, 1)(inp)
    s = layers.Conv1D(9, 1)(layers.Reshape((35, 3))(inp))
    outs = [layers.GlobalAveragePooling2D(data_format="channels_first")(y),
            layers.GlobalMaxPooling2D(data_format="channels_first", keepdims=True)(y),
            layers.GlobalAveragePooling1D(data_format="channels_first")(s),
            layers.GlobalMaxPooling1D(data_format="channels_first", keepdims=True)(s)]
    model = keras.Model(inp, layers.Concatenate()([layers.Flatten()(o) for o in outs]))
    assert model.output_shape == (None, 7 + 7 + 35 + 35)
    compiled = assert_matches_keras(randomise(model, spread=3.0), tmp_path, x=inputs_for((7, 5, 3)) * 2 - 1, live=False)
    assert sum("per first-axis row" in op.label() for op in compiled.graph.ops) == 4


def _attention_model(rank=3, causal=False, use_bias=True, output_shape=None, cross=False, room=True, width=8,
                     key_dim=4, window=None, gate=False):
    """Dense/Conv -> MultiHeadAttention (3 heads, key_dim 4, value_dim 5) -> residual ->
    LayerNormalization, as a transformer block starts; ``cross``: query, value and key from
    three different projections (7 and 6 features) over 4 of the 6 positions, so a mix-up of
    the three or of the two position counts cannot pass;
    ``room``: a wider layer first (48 features), so the arena has room for the stored keys and
    values while the attention runs. ``window``: Keras' sliding_window; ``gate``: its use_gate."""
    inp = keras.Input((6, 10) if rank == 3 else (3, 4, 5))
    x = layers.Dense(48)(inp) if room else inp
    x = layers.Dense(width)(x) if rank == 3 else layers.Conv2D(width, 1)(x)
    kw = {"output_shape": output_shape} if output_shape else {}
    mha = layers.MultiHeadAttention(num_heads=3, key_dim=key_dim, value_dim=5, use_bias=use_bias, dropout=0.1,
                                    sliding_window=window, use_gate=gate, **kw)
    if cross:
        kv = layers.Cropping1D((1, 1))(x)
        y = mha(x, layers.Dense(7)(kv), layers.Dense(6)(kv), use_causal_mask=causal)
    else:
        y = mha(x, x, use_causal_mask=causal)
    if output_shape is None:
        y = layers.Add()([x, y])
        if width > 2:  # (normalising 2 features divides by their difference: it would test rounding)
            y = layers.LayerNormalization()(y)
    model = keras.Model(inp, layers.Flatten()(y))
    rng = np.random.default_rng(3)  # N(0, 0.6): the softmaxes neither uniform nor one-hot
    mha.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in mha.get_weights()])
    for layer in model.layers:  # the projections too: Keras' initialisers follow the tests run before on the worker
        if type(layer).__name__ in ("Dense", "Conv2D"):
            kernel, bias = layer.get_weights()
            fan_in = int(np.prod(kernel.shape[:-1]))
            layer.set_weights([rng.normal(0, 1 / np.sqrt(fan_in), kernel.shape).astype(np.float32),
                               rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return model


@pytest.mark.parametrize("options, form", [
    (dict(), "stored"), (dict(causal=True), "stored"), (dict(use_bias=False), "stored"), (dict(output_shape=9), "stored"),
    (dict(cross=True), "stored"), (dict(rank=4), "stored"), (dict(room=False), "folded"),
    (dict(room=False, causal=True, use_bias=False), "folded"), (dict(width=2, key_dim=12, causal=True), "folded"),
    (dict(window=2), "stored"), (dict(window=3, causal=True, gate=True), "stored"), (dict(cross=True, causal=True), "stored"),
    (dict(room=False, gate=True, use_bias=False, window=2), "folded")],
    ids=["self", "causal", "no_bias", "output_shape", "cross", "map", "no_room", "no_room_causal_no_bias", "narrow",
         "window", "causal_window_gate", "cross_causal", "no_room_gate_window"])
def test_multi_head_attention(options, form, tmp_path):
    """MultiHeadAttention as Keras computes it at inference (dropout off): self-attention over a
    sequence, with the causal mask, without biases, projected to another width, cross-attention
    (query, key and value from different tensors of different widths; 6 query positions, 4 key
    positions), and over a map's 12
    positions (Keras' default attention_axes: every axis but the features). Both forms of the
    kernel: keys and values stored in the workspace where the arena has room for them and that
    takes fewer MACs; else folded into each query (no room; or 2 input features against heads of
    12, where folding is the cheaper form and the only one offered). Keras 3.15's sliding_window
    (alone, and with the causal mask: keys less than w back) and use_gate (a sigmoid gate on each
    head's output, from the query input), and a causal mask over 6 queries and 4 keys."""
    model = _attention_model(**options)
    x = np.random.default_rng(1).normal(0, 1, (8,) + tuple(model.input_shape[1:])).astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=x, live=False)
    (op,) = [op for op in compiled.graph.ops if op.kind == "MultiHeadAttention"]
    lq = 12 if options.get("rank") == 4 else 6
    lk = 4 if options.get("cross") else lq
    dk = options.get("key_dim", 4)
    window = options.get("window")
    band = (None if window is None else window - 1, 0 if options.get("causal") else None if window is None else window - 1)
    assert (op.heads, op.key_dim, op.value_dim, op.lq, op.lk, op.before, op.after, op.gated) == (
        3, dk, 5, lq, lk, *band, bool(options.get("gate")))
    ran = compiled.plan.op(op)
    assert ran.form == form and f"mha_{form}<" in compiled.header
    assert op.workspace_options == (("folded",) if options.get("width") == 2 else ("stored", "folded"))
    dki, dvi = op.dims[1:3]
    gate = 5 if options.get("gate") else 0
    assert ran.workspace_bytes() == 4 * (lk * (dk + 5) + dk + lk + 5 + gate if form == "stored" else
                                         dk + dki + lk + dvi + 5 + gate)
    assert compiled.plan.arena_size == compiled.plan.lower_bound


def test_multi_head_attention_with_masks_its_kernel_does_not_take(tmp_path):
    """A mask computed from the input (a padding mask of token ids, keras.io's text transformers;
    a comparison of a projection), a constant mask that is not a band, one that hides every key
    from a query, a sliding window over fewer keys than queries, and causal with a value mask were
    refused: the attention kernel takes bands only. Such a MultiHeadAttention is now compiled
    through its own call(), as Keras runs it: without dropout through keras.ops.dot_product_attention
    (masked logits -0.7 x 3.39e38, a row all masked uniform), with dropout through einsum and the
    Softmax layer's mask (a row all masked: zeros). Each matches Keras."""
    ops = keras.ops
    inp = keras.Input((6, 8))
    holey = np.ones((1, 6, 6), bool)
    holey[0, 2, 4] = False
    blind = np.ones((1, 6, 6), bool)
    blind[0, 3, :] = False
    masks = (dict(attention_mask=holey), dict(attention_mask=blind),
             dict(attention_mask=ops.greater(layers.Dense(6)(inp), -0.5), use_causal_mask=True))
    for dropout in (0.0, 0.1):
        outs = [layers.MultiHeadAttention(2, 4, dropout=dropout)(inp, inp, **mask) for mask in masks]
        outs.append(layers.MultiHeadAttention(2, 4, sliding_window=2, dropout=dropout)(inp, layers.Cropping1D((0, 3))(inp)))
        model = keras.Model(inp, [layers.Flatten()(o) for o in outs], name=f"masked_{int(dropout * 10)}")
        compiled = assert_matches_keras(model, tmp_path, name="Masked")
        assert not any(op.kind == "MultiHeadAttention" for op in compiled.graph.ops)
        assert sum(op.kind == "Einsum" for op in compiled.graph.ops) == 8
    ids = keras.Input((6,), dtype="int32")
    tokens = layers.Embedding(20, 8)(ids)
    valid = ops.not_equal(ids, 0)
    padded = layers.MultiHeadAttention(num_heads=2, key_dim=4)(
        tokens, tokens, attention_mask=ops.logical_and(valid[:, :, None], valid[:, None, :]))
    model = keras.Model(ids, layers.Dense(3)(layers.GlobalAveragePooling1D()(padded)))
    x = np.random.default_rng(0).integers(1, 20, (8, 6))
    x[:, 4:] = 0
    x[3, 2:] = 0
    (got,), _ = cpp_outputs(model, x.astype(np.float32), tmp_path, name="Padded")
    ref = np.asarray(model(x))
    assert np.ptp(ref, axis=0).max() > 1e-2 and np.abs(got - ref).max() <= TOL * max(1.0, np.abs(ref).max())
    # MultiHeadAttention casts its mask to bool: x != 0, held as 1.0 / 0.0 (a float mask's values are not 0 and 1)
    relu = layers.Dense(5, activation="relu")(inp)  # zeros and positive values
    cast = keras.Model(inp, layers.Flatten()(ops.cast(ops.cast(relu, "bool"), "float32") * 2.0 + relu))
    compiled = assert_matches_keras(cast, tmp_path, name="Cast")
    assert any(op.kind == "NotEqual" for op in compiled.graph.ops)


def test_dot_product_attention_matches_keras(tmp_path):
    """keras.ops.dot_product_attention written directly: a constant mask (one key hidden below the
    diagonal) with is_causal, is_causal alone, and a mask computed from the input with a scale of
    its own. is_causal is the operation's attribute, not a call argument: reading it from the call
    compiled all three as unmasked (2.56 off)."""
    ops = keras.ops
    inp = keras.Input((6, 8))
    q, k, v = (layers.Reshape((6, 2, 4))(layers.Dense(8)(inp)) for _ in range(3))
    holey = np.ones((1, 1, 6, 6), bool)
    holey[0, 0, 4, 2] = False
    computed = ops.greater(layers.Reshape((1, 6, 6))(layers.Dense(36)(layers.Flatten()(inp))), 0.0)
    outs = [ops.dot_product_attention(q, k, v, mask=holey, is_causal=True), ops.dot_product_attention(q, k, v, is_causal=True),
            ops.dot_product_attention(q, k, v, scale=0.3, mask=computed, is_causal=True)]
    assert_matches_keras(keras.Model(inp, [layers.Flatten()(o) for o in outs]), tmp_path, name="Dpa")


def test_multi_head_attention_refusals_say_why():
    inp = keras.Input((6, 8))
    cases = ((lambda: layers.MultiHeadAttention(2, 4, output_shape=(2, 4))(inp, inp), "one last axis"),
             (lambda: layers.MultiHeadAttention(2, 4)(inp, layers.Dense(8)(layers.Reshape((3, 4, 8))(
                 layers.Dense(16)(inp)))), "one rank"))
    for make, why in cases:
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Model(inp, layers.Flatten()(make())))
    m4 = keras.Input((3, 4, 5))
    with pytest.raises(UnsupportedModelError, match="every axis but the last"):
        compile_model(keras.Model(m4, layers.Flatten()(layers.MultiHeadAttention(2, 4, attention_axes=(2,))(m4, m4))))


def test_attention_scores_asked_for(tmp_path):
    """MultiHeadAttention asked for its scores (return_attention_scores) was refused whenever any
    layer read them. Scores no output depends on (keras.io's PatchConvNet returns them beside its
    logits, for plotting) are not computed: the attention runs as its kernel. Scores an output
    depends on are computed by compiling the layer's call() (its einsum form). Where Keras' own
    graph declares the scores' shape wrongly (a query shorter than the keys: (heads, queries,
    queries)), that is refused saying so."""
    class Pool(layers.Layer):  # as PatchConvNet's attention pooling: the output and the scores
        def build(self, input_shape):
            self.mha = layers.MultiHeadAttention(num_heads=1, key_dim=8)

        def call(self, x):
            o, scores = self.mha(query=x[:, 0:1], key=x, value=x, return_attention_scores=True)
            return o, keras.ops.squeeze(scores, axis=(1, 2))[..., 1:]

    inp = keras.Input((6, 8))
    out, _ = Pool()(inp)
    compiled = assert_matches_keras(keras.Model(inp, layers.Flatten()(out)), tmp_path, name="Unread")
    assert [op.kind for op in compiled.graph.ops].count("MultiHeadAttention") == 1

    o, scores = layers.MultiHeadAttention(2, 4)(inp, inp, return_attention_scores=True)
    model = keras.Model(inp, [layers.Flatten()(o), layers.Reshape((72,))(scores)])
    compiled = assert_matches_keras(model, tmp_path, name="Read")
    kinds = [op.kind for op in compiled.graph.ops]
    assert "MultiHeadAttention" not in kinds and "Softmax" in kinds, kinds

    o, scores = layers.MultiHeadAttention(1, 8)(inp[:, 0:1], inp, inp, return_attention_scores=True)
    assert tuple(scores.shape) == (None, 1, 1, 1)  # Keras' declared shape; its call() gives (1, 1, 6)
    with pytest.raises(UnsupportedModelError, match="Keras' shape inference disagrees with its own call"):
        compile_model(keras.Model(inp, [layers.Flatten()(o), layers.Flatten()(scores)]))


def test_attention_with_learned_queries(tmp_path):
    """A constant query: keras_hub PaliGemma's attention pooling (a learned probe tiled to the batch
    in call()) and a Perceiver-style latent array (a layer returning its weights, cross-attending
    to the input); copied from flash into the arena and attended as any query; C++ == Keras.
    Constant keys or values are refused."""
    from keras import ops

    class Probe(layers.Layer):
        def build(self, shape):
            self.probe = self.add_weight(shape=(1, 1, shape[-1]), initializer="glorot_uniform")
            self.mha = layers.MultiHeadAttention(num_heads=2, key_dim=8)

        def call(self, x):
            return self.mha(ops.tile(self.probe, [ops.shape(x)[0], 1, 1]), x)[:, 0]

    class Latents(layers.Layer):
        def build(self, shape):
            self.latents = self.add_weight(shape=(3, shape[-1]), initializer="random_normal")

        def call(self, x):
            return ops.broadcast_to(ops.convert_to_tensor(self.latents), (ops.shape(x)[0], 3, self.latents.shape[-1]))

    inp = keras.Input((10, 6))
    h = layers.Dense(6)(inp)
    cross = layers.MultiHeadAttention(2, 4, name="cross")(Latents(name="latents")(h), h)
    model = keras.Model(inp, layers.Concatenate()([Probe(name="pool")(h), layers.Flatten()(cross)]))
    compiled = assert_matches_keras(model, tmp_path, name="Latent")
    assert sum(op.kind == "Constant" for op in compiled.graph.ops if hasattr(op, "kind")) == 2
    with pytest.raises(UnsupportedModelError, match=r"attends over constant keys or values"):
        compile_model(keras.Model(inp, layers.Flatten()(layers.MultiHeadAttention(2, 4)(h, Latents(name="l2")(h)))))


def test_hand_built_causal_mask_as_miniature_gpt_builds_it(tmp_path):
    """keras.io's miniature GPT builds its causal mask in its TransformerBlock's call() from
    keras.ops (arange, a comparison, a cast) and passes it as attention_mask: a constant, read as
    the causal band; C++ == Keras. An all-true constant mask is no mask."""
    from keras import ops

    def causal_attention_mask(n_dest, n_src, dtype):  # as published, for a batch axis of 1 (Keras broadcasts it)
        i = ops.arange(n_dest)[:, None]
        j = ops.arange(n_src)
        m = i >= j - n_src + n_dest
        return ops.reshape(ops.cast(m, dtype), [1, n_dest, n_src])

    class TransformerBlock(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.att = layers.MultiHeadAttention(2, 4)
            self.ffn = keras.Sequential([layers.Dense(16, activation="relu"), layers.Dense(8)])
            self.ln1, self.ln2 = layers.LayerNormalization(epsilon=1e-6), layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            n = ops.shape(inputs)[1]
            out1 = self.ln1(inputs + self.att(inputs, inputs, attention_mask=causal_attention_mask(n, n, "bool")))
            return self.ln2(out1 + self.ffn(out1))

    inp = keras.Input((6, 8))
    y = TransformerBlock()(layers.Dense(8)(inp))
    y = layers.MultiHeadAttention(2, 4, name="open")(y, y, attention_mask=np.ones((6, 6), np.float32))
    compiled = assert_matches_keras(keras.Model(inp, layers.Flatten()(y)), tmp_path, name="Gpt")
    bands = [(op.before, op.after) for op in compiled.graph.ops if op.kind == "MultiHeadAttention"]
    assert bands == [(None, 0), (None, None)]


def test_attention_whose_keras_bias_lands_on_positions_is_refused():
    """Keras' TensorFlow backend adds a (heads, 1) projection bias beside a first axis as long as
    the heads along that axis (keras.ops.add takes it for a channels-first bias_add): such a layer's
    Keras outputs are not its definition (transformer fuzz seed 64002: 0.67 off), so the compiler
    refuses it rather than match one of the two. If Keras fixes its add, the first assertion
    fails and the refusal can go."""
    per_head = keras.ops.add(keras.ops.zeros((1, 3, 2, 3, 1)), keras.Variable(np.array([[1.0], [2.0], [3.0]], np.float32)))
    assert not np.allclose(np.asarray(per_head)[0, 0, 0, :, 0], [1.0, 2.0, 3.0])  # the quirk is there
    inp = keras.Input((3, 5))
    with pytest.raises(UnsupportedModelError, match=r"adds the query bias along that axis"):
        compile_model(keras.Model(inp, layers.MultiHeadAttention(3, 1)(inp, inp)))
    for ok in (layers.MultiHeadAttention(3, 2), layers.MultiHeadAttention(2, 1), layers.MultiHeadAttention(3, 1, use_bias=False)):
        compile_model(keras.Model(inp, ok(inp, inp)))


def test_recurrent_layers(tmp_path):
    """LSTM, GRU (reset after, Keras' default, and before) and SimpleRNN against Keras, each a model
    output: the last state, every step's (read by another layer), backwards, without biases, with
    other activations, after a Conv1D as in activity recognition; Bidirectional merged by concat,
    ave and mul (sequences and last states, a backward layer of the user's own)."""
    inp = keras.Input((12, 3))
    seq_ = layers.Conv1D(6, 3, activation="relu")(inp)
    outs = [layers.LSTM(8)(inp), layers.GRU(7)(inp), layers.GRU(5, reset_after=False)(seq_), layers.SimpleRNN(6)(inp),
            layers.GRU(4, go_backwards=True)(layers.LSTM(5, return_sequences=True, go_backwards=True)(seq_)),
            layers.GRU(4, activation="softsign", recurrent_activation="hard_sigmoid", use_bias=False,
                       return_sequences=True)(layers.SimpleRNN(5, activation="relu", use_bias=False,
                                                               return_sequences=True)(inp))]
    outs.append(layers.Bidirectional(layers.GRU(3, return_sequences=True))(seq_))
    outs.append(layers.Bidirectional(layers.LSTM(3), merge_mode="ave")(inp))
    outs.append(layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode="mul",
                                     backward_layer=layers.SimpleRNN(3, return_sequences=True, go_backwards=True,
                                                                     activation="relu"))(inp))
    model = randomise(keras.Model(inp, outs, name="recurrent"), spread=1.0)  # biases too (Keras starts GRU's at 0)
    compiled = assert_matches_keras(model, tmp_path)
    ops = {op.name: op for op in compiled.graph.ops}
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("LSTM") == 4 and kinds.count("GRU") == 6 and kinds.count("SimpleRNN") == 4
    assert sum(op.go_backwards for op in ops.values() if op.kind in ("LSTM", "GRU", "SimpleRNN")) == 5
    assert sum(op.flip for op in ops.values() if op.kind in ("LSTM", "GRU", "SimpleRNN")) == 2
    assert any(op.kind == "GRU" and not op.reset_after for op in ops.values())
    lstm = next(op for op in compiled.graph.ops if op.kind == "LSTM")
    assert lstm.macs() == 12 * (3 + 8) * 4 * 8


def test_luong_and_bahdanau_attention_over_an_lstm(tmp_path):
    """Keras' Attention (dot scores with and without the learnt scale, concat scores; a key apart
    from the value; causal; fewer queries than keys) and AdditiveAttention (with and without its
    per-feature scale) over an LSTM's steps, each a model output, against Keras."""
    inp = keras.Input((9, 4))
    x = layers.LSTM(6, return_sequences=True)(inp)
    k, v = layers.Dense(6)(x), layers.Dense(5)(x)
    outs = [layers.Attention()([x, x]), layers.Attention(use_scale=True)([x, v, k]),
            layers.Attention(score_mode="concat", use_scale=True)([x, x]),
            layers.Attention()([x, x], use_causal_mask=True), layers.AdditiveAttention()([x, v, k]),
            layers.AdditiveAttention(use_scale=False)([x, x], use_causal_mask=True),
            layers.Attention()([layers.Dense(6)(layers.Cropping1D((0, 5))(x)), x])]
    model = randomise(keras.Model(inp, [layers.Flatten()(o) for o in outs], name="attention"), spread=1.2)
    for layer in model.layers:  # the scalars too (Keras starts them at 1)
        if type(layer).__name__ == "Attention" and layer.get_weights():
            layer.set_weights([np.float32(w + 0.7) for w in layer.get_weights()])
    compiled = assert_matches_keras(model, tmp_path, x=inputs_for((9, 4)) * 3 - 1.5, live=False)
    labels = [op.label() for op in compiled.graph.ops if op.kind in ("Attention", "AdditiveAttention")]
    assert len(labels) == 7 and sum("causal" in t for t in labels) == 2 and sum("concat" in t for t in labels) == 1
    with pytest.raises(UnsupportedModelError, match="mask"):
        q = keras.Input((5, 3))
        compile_model(keras.Model(q, layers.Attention()([q, q], mask=[None, keras.ops.ones((1, 5), "bool")])))


def test_lstm_autoencoder_with_repeat_vector(tmp_path):
    """The Keras LSTM autoencoder: an encoder LSTM's last state repeated over the steps
    (RepeatVector), a decoder LSTM over them, a TimeDistributed Dense per step."""
    inp = keras.Input((12, 3))
    x = layers.RepeatVector(12)(layers.LSTM(8)(inp))
    x = layers.LSTM(8, return_sequences=True)(x)
    model = keras.Model(inp, layers.TimeDistributed(layers.Dense(3))(x))
    compiled = assert_matches_keras(model, tmp_path, x=inputs_for((12, 3)) * 2 - 1)
    assert [op.label() for op in compiled.graph.ops][1] == "RepeatVector x12"


def test_gelu_keeps_its_precision_far_below_zero(tmp_path):
    """GELU at -3 to -7 is tiny (down to 1e-11); TensorFlow's formula 0.5 x erfc(-x / sqrt 2) keeps
    each value to float precision, where 0.5 x (1 + erf(x / sqrt 2)) cancels (1 + erf(-4 / sqrt 2)
    is 6e-5, of which float32's erf keeps 3 digits; at -6 it is 0). A layer that scales such
    values up differed from Keras by 2% (the random-model fuzzer found it: seed 7048 of
    test_fuzz_keras_ops). Compared with the exact value (float64 erfc of the float32 input): Keras'
    own predict() is 0.2% off at -4.9 (XLA's erfc), within the usual tolerance at the output scale."""
    import math

    inp = keras.Input((1,))
    model = keras.Model(inp, layers.Activation("gelu")(layers.Dense(16)(inp)))
    w, b = np.linspace(-1.0, 1.0, 16, dtype=np.float32).reshape(1, 16), np.full(16, -5.0, np.float32)
    model.layers[1].set_weights([w, b])
    x = np.linspace(-2.0, 2.0, 9, dtype=np.float32).reshape(-1, 1)
    got, _ = cpp_outputs(model, x, tmp_path)
    z = (x * w + b).astype(np.float32).astype(np.float64)  # -7 .. -3
    exact = 0.5 * z * np.vectorize(math.erfc)(-z / math.sqrt(2.0))
    assert exact.max() < -1e-12 and exact.min() < -4e-3
    rel = np.abs(got[0] - exact) / np.abs(exact)
    assert rel.max() < 1e-5, rel.max()
    ref = keras_predict(model, x)
    assert np.abs(got[0] - ref).max() <= TOL * max(1.0, float(np.abs(ref).max()))


def test_elementwise_keras_ops_match_keras(tmp_path):
    """keras.ops of one tensor written in a functional model (square, abs, clip, sqrt, rsqrt,
    reciprocal, log, log1p, expm1, sin, cos, power by a constant) run as activations, fused where the producer allows; the ones
    of their domain are fed positive values as a user would write them."""
    inp = keras.Input((6, 6, 3))
    x = layers.Conv2D(8, 3, padding="same")(inp)
    ops = keras.ops
    clipped = ops.clip(x, -0.5, 0.7)
    parts = [ops.square(x), ops.abs(x), clipped, ops.sqrt(ops.abs(x) + 0.1), ops.log(ops.square(x) + 1.0),
             ops.log1p(ops.abs(x)), ops.expm1(clipped), ops.rsqrt(ops.square(x) + 1.0), ops.reciprocal(ops.abs(x) + 1.0),
             ops.square(layers.Conv2D(4, 1)(inp)),  # its conv's only reader: fused
             ops.power(ops.abs(x) + 0.1, 1.5), ops.power(x, 3), x ** 2,
             ops.sin(x * 40.0), ops.cos(x * 40.0)]  # a sinusoidal embedding's (keras.io's DDIM): periods apart
    model = keras.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling2D()(layers.Concatenate()(parts))))
    compiled = assert_matches_keras(model, tmp_path)
    labels = " ".join(op.label() for op in compiled.graph.ops)
    for name in ("square", "abs", "clip(x_max=0.7, x_min=-0.5)", "sqrt", "rsqrt", "reciprocal", "log", "log1p", "expm1",
                 "power(exponent=1.5)", "power(exponent=3)", "sin", "cos"):
        assert name in labels, name
    assert "Conv2D 1x1 + square" in labels, labels
    with pytest.raises(UnsupportedModelError, match="empty range"):
        compile_model(keras.Model(inp, ops.clip(inp, 1.0, -1.0)))
    with pytest.raises(UnsupportedModelError, match="raises to a power that is a tensor"):
        compile_model(keras.Model(inp, ops.power(2.0, inp)))


def test_recurrent_refusals_say_why(tmp_path):
    for layer, message in ((layers.LSTM(4, return_state=True),
                            "has 3 outputs and the model's output depends on one after the first"),
                           (layers.GRU(4, stateful=True), "stateful=True")):
        inp = keras.Input((5, 2), batch_size=1)
        out = layer(inp)
        model = keras.Model(inp, [out[0], layers.Dense(2)(out[2])] if isinstance(out, (list, tuple)) else out)
        with pytest.raises(UnsupportedModelError, match=message):
            compile_model(model)
    # a backward layer of other units: Keras declares (7, 8) and computes (7, 7); was "a micronets bug"
    inp = keras.Input((7, 3))
    both = layers.Bidirectional(layers.LSTM(4, return_sequences=True), name="both",
                                backward_layer=layers.GRU(3, return_sequences=True, go_backwards=True))
    with pytest.raises(UnsupportedModelError, match=r"layer 'both' \(Bidirectional\) has a forward layer of 4 units and "
                                                    r"a backward layer of 3: Keras declares its output as if both had 4"):
        compile_model(keras.Model(inp, both(inp)))
    # int8: refused before TFLite's converter runs (TensorFlow 2.21's crashed the process on an LSTM)
    model = seq((5, 2), layers.LSTM(4), layers.Dense(2))
    with pytest.raises(UnsupportedModelError, match=r"'lstm\w*' \(LSTM\): the int8 path has no recurrent kernels"):
        micronets.export(model, str(tmp_path / "no.h"), quantize="int8", calibration=np.zeros((16, 5, 2), np.float32))
    assert not (tmp_path / "no.h").exists()
    # ... and on any recurrent layer: keras.io's ConvLSTM2D and a keras.layers.RNN of a user's cell
    # (temporal latent bottleneck) crashed it too (a helper's survey)

    class Cell(layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units, self.state_size, self.output_size = units, units, units
            self.dense = layers.Dense(units)

        def call(self, inputs, states):
            h = keras.ops.tanh(self.dense(keras.ops.concatenate([inputs, states[0]], axis=-1)))
            return h, [h]

    for shape, layer, kind in (((3, 6, 6, 1), layers.ConvLSTM2D(2, 3), "ConvLSTM2D"), ((5, 2), layers.RNN(Cell(3)), "RNN")):
        model = seq(shape, layer, layers.Flatten(), layers.Dense(2))
        with pytest.raises(UnsupportedModelError, match=rf"'\w+' \({kind}\): the int8 path has no recurrent kernels"):
            micronets.export(model, str(tmp_path / "no.h"), quantize="int8", calibration=np.zeros((16,) + shape, np.float32))

    class Encoder(layers.Layer):  # a user's layer class around an LSTM: found among its sublayers
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.rnn = layers.LSTM(4)

        def call(self, x):
            return self.rnn(x)

    model = seq((5, 2), Encoder(name="encoder"), layers.Dense(2))
    with pytest.raises(UnsupportedModelError, match=r"'lstm\w*' \(LSTM\) inside layer 'encoder' \(Encoder\): the int8"):
        micronets.export(model, str(tmp_path / "no.h"), quantize="int8", calibration=np.zeros((16, 5, 2), np.float32))
    assert not (tmp_path / "no.h").exists()


def test_several_outputs_each_get_an_array(tmp_path):
    inp = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inp)
    cls = layers.Dense(3, activation="softmax", name="cls")(layers.GlobalAveragePooling2D()(x))
    box = layers.Dense(4, name="box")(layers.Flatten()(x))
    model = keras.Model(inp, [cls, box, x])
    compiled = assert_matches_keras(model, tmp_path)
    text = compiled.header
    assert "float outputs[numOutputs];" in text and "float outputs1[numOutputs1];" in text
    assert "float outputs2[numOutputs2];" in text and "numOutputs2 = 144" in text


def test_output_that_is_the_input_reshaped_is_copied(tmp_path):
    inp = keras.Input((2, 3))
    model = keras.Model(inp, [layers.Dense(2)(inp), layers.Flatten()(inp)])
    assert_matches_keras(model, tmp_path)


# ------------------------------------------------------------------ preprocessing and inactive layers
def test_rescaling_folds_into_the_first_conv_and_raw_pixels_pass_through(tmp_path):
    model = seq((10, 10, 3), layers.Rescaling(1.0 / 127.5, offset=-1.0), layers.Conv2D(4, 3),
                layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax"))
    pixels = (random_images((10, 10, 3)) * 255).round().astype(np.uint8)
    x = pixels.astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=x)
    assert "ScaleShift" not in [op.kind for op in compiled.graph.ops]  # 'valid' conv: exact fold
    exe = host.build(str(tmp_path / "Net.h"), "Net", out_dir=str(tmp_path))
    raw = host.run(exe, pixels, 3, entry="uint8")
    assert np.abs(raw - keras_predict(model, x)).max() <= TOL


def test_integer_inputs_pass_raw_values_to_the_uint8_entry(tmp_path):
    """A model whose Input is of an integer dtype (``keras.Input((6,), dtype="uint8")``: raw sensor
    counts, token ids) gets its values unscaled, as Keras does: predict(const uint8_t*) scaled them
    by 1/255, as for pixels of a model trained on [0, 1] (Keras 155.0, the header 0.608)."""
    for dtype in ("uint8", "int32"):
        inp = keras.Input((6,), dtype=dtype)
        model = randomise(keras.Model(inp, layers.Dense(3)(inp), name=f"counts_{dtype}"))
        values = np.random.default_rng(3).integers(0, 256, (5, 6)).astype(np.uint8)
        micronets.export(model, str(tmp_path / f"{dtype}.h"))
        exe = host.build(str(tmp_path / f"{dtype}.h"), "Net", out_dir=str(tmp_path))
        raw = host.run(exe, values, 3, entry="uint8")
        assert np.abs(raw - np.asarray(model(values.astype(dtype), training=False))).max() <= TOL * 255, dtype


class _TokenAndPositionEmbedding(keras.layers.Layer):
    """keras.io's text classification with a transformer: token and position embeddings added
    (the positions an Embedding of ``ops.arange``, a constant the model computes)."""

    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        positions = self.pos_emb(keras.ops.arange(start=0, stop=keras.ops.shape(x)[-1], step=1))
        return self.token_emb(x) + positions


class _TransformerBlock(keras.layers.Layer):
    """The same example's encoder block, as published (attention, dropout, residual LayerNorms)."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1, self.dropout2 = layers.Dropout(rate), layers.Dropout(rate)

    def call(self, inputs):
        out1 = self.layernorm1(inputs + self.dropout1(self.att(inputs, inputs)))
        return self.layernorm2(out1 + self.dropout2(self.ffn(out1)))


def _embedding_tables_spread(model, seed=0):
    """Embedding tables at unit spread (Keras initialises them within +-0.05: the layers after would
    see nearly constant inputs)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.path.endswith("embeddings"):
            w.assign(rng.normal(0.0, 1.0, w.shape).astype(np.float32))
    return model


def test_embedding_of_token_ids_as_keras_io_text_models(tmp_path):
    """Embedding (token ids into rows of a learned table), refused before, in keras.io's text
    classifiers at small sizes: from scratch (Embedding, Dropout, strided Conv1D, global max
    pooling; integer Input), a bag of embeddings (global average), and with a transformer
    (token + position embeddings, the published encoder block; float Input holding the ids).
    The ids come as the input's values: predict(const float*) and, for ids below 256,
    predict(const uint8_t*) unscaled (it divided the transformer's ids by 255, as pixels)."""
    rng = np.random.default_rng(0)
    i = keras.Input((40,), dtype="int32")
    x = layers.Dropout(0.5)(layers.Embedding(300, 16)(i))
    x = layers.Conv1D(16, 7, strides=3, activation="relu")(x)
    x = layers.Conv1D(16, 7, strides=3, activation="relu")(x)
    x = layers.Dense(3, activation="softmax")(layers.Dense(16, activation="relu")(layers.GlobalMaxPooling1D()(x)))
    scratch = keras.Model(i, x, name="from_scratch")
    i = keras.Input((12,), dtype="int32")
    bag = keras.Model(i, layers.Dense(4)(layers.GlobalAveragePooling1D()(layers.Embedding(200, 8)(i))), name="bag")
    i = keras.Input((20,))
    x = _TransformerBlock(16, 2, 16)(_TokenAndPositionEmbedding(20, 500, 16)(i))
    x = layers.Dense(2, activation="softmax")(layers.Dense(20, activation="relu")(layers.GlobalAveragePooling1D()(x)))
    transformer = keras.Model(i, x, name="transformer")
    for k, (model, vocab) in enumerate(((scratch, 300), (bag, 200), (transformer, 500))):
        _embedding_tables_spread(model, seed=k)
        ids = rng.integers(0, vocab, (8,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
        name = f"Text{k}"
        compiled = assert_matches_keras(model, tmp_path, x=ids, name=name)
        assert "Embedding" in [op.kind for op in compiled.graph.ops]
        low = rng.integers(0, min(vocab, 256), ids.shape).astype(np.uint8)
        exe = host.build(str(tmp_path / f"{name}.h"), name, out_dir=str(tmp_path), flags=host.RELAXED_INLINE)
        raw = host.run(exe, low, compiled.output_sizes[0], entry="uint8")
        ref = keras_predict(model, low.astype(np.float32))
        assert np.abs(raw - ref).max() <= TOL * max(1.0, float(np.abs(ref).max())), model.name


def test_embedding_of_one_id_a_sample_as_collaborative_filtering(tmp_path):
    """keras.io's collaborative filtering looks up a user and a movie, one id each per sample
    (``Embedding(...)(ids[:, 0])``): Keras' output is (D,) per sample. It was held as (1, D), so a
    softmax over axis 1 after it saw one value (every output 1.0) and a sum over axis 1 was
    refused. Its dot product (as ``ops.sum`` over axis 1: the published ``tensordot`` sums across
    the batch) plus biases, and an axis-1 softmax of the concatenated vectors, against Keras; and
    an Input of one number a sample, ``Input(shape=())``."""
    ops = keras.ops
    i = keras.Input((2,), dtype="int32")
    users, movies = i[:, 0], i[:, 1]
    u, m = layers.Embedding(30, 8)(users), layers.Embedding(40, 8)(movies)
    rating = ops.sum(u * m, axis=1, keepdims=True) + layers.Embedding(30, 1)(users) + layers.Embedding(40, 1)(movies)
    model = keras.Model(i, [ops.sigmoid(rating), layers.Softmax(axis=1)(layers.Concatenate(axis=1)([u, m]))])
    _embedding_tables_spread(model, seed=3)
    rng = np.random.default_rng(4)
    ids = np.stack([rng.integers(0, 30, 8), rng.integers(0, 40, 8)], axis=1).astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=ids, name="Recommender", live=False)
    assert [op.output.shape for op in compiled.graph.ops if op.kind == "Embedding"][:2] == [(8,), (8,)]
    # one number a sample as the Input itself (keras.io's structured-data examples feed each feature
    # so): refused before ("model input must have a fixed shape; got (None,)")
    i = keras.Input(shape=(), dtype="int32")
    scalar = _embedding_tables_spread(keras.Model(i, layers.Dense(3, activation="softmax")(layers.Embedding(20, 4)(i))))
    assert_matches_keras(scalar, tmp_path, x=np.arange(8, dtype=np.float32) * 2, name="Scalar", live=False)


def test_embedding_ids_truncate_as_keras_casts_and_never_read_outside_the_table(tmp_path):
    """Ids are truncated toward zero as Keras casts them (2.9 is row 2, -0.5 row 0); an id outside
    the table (-1, 5, NaN, 1e9), where TensorFlow raises, gives a row of zeros. mask_zero=True is
    refused: the layers after it would skip the masked steps; so is int8 (TFLite's converter
    keeps the lookup in float), naming the layer and writing nothing."""
    i = keras.Input((1,))
    model = keras.Model(i, layers.Flatten()(layers.Embedding(5, 3, name="ids")(i)))
    table = np.arange(1, 16, dtype=np.float32).reshape(5, 3)
    model.layers[1].set_weights([table])
    ids = np.array([[0], [4], [2.9], [-0.5], [-1], [5], [np.nan], [1e9]], np.float32)
    got, _ = cpp_outputs(model, ids, tmp_path)
    want = np.concatenate([table[[0, 4, 2, 0]], np.zeros((4, 3), np.float32)])
    assert np.array_equal(got[0], want), got[0]
    assert np.array_equal(got[0][:4], np.asarray(model(ids[:4])))  # where Keras answers at all
    masked = keras.Model(i, layers.GlobalAveragePooling1D()(layers.Embedding(5, 3, mask_zero=True)(i)))
    with pytest.raises(UnsupportedModelError, match="mask_zero=True"):
        micronets.export(masked, str(tmp_path / "masked.h"))
    calibration = np.arange(32, dtype=np.float32).reshape(32, 1) % 5
    with pytest.raises(UnsupportedModelError, match=r"layer 'ids' \(Embedding\): the int8 path has no lookups"):
        micronets.export(model, str(tmp_path / "int8.h"), quantize="int8", calibration=calibration)
    assert not (tmp_path / "int8.h").exists() and not (tmp_path / "masked.h").exists()


def test_lambda_layers_run_their_function_through_keras_ops(tmp_path):
    """Lambda layers, refused as a Keras class before, are traced as their function is: keras.io's
    DDIM sinusoidal embedding as published (a Lambda of keras.ops: exp and log of constants, sin
    and cos of the noise variance, a concatenation), and a Lambda with ``arguments``. Refused,
    naming the layer: a function that leaves keras.ops (``tf.nn.depth_to_space``), and a Lambda
    given a mask (the layers after it would read it)."""
    import math

    import tensorflow as tf

    ops = keras.ops

    def sinusoidal_embedding(x):  # keras.io examples/generative/ddim.py, embedding_dims 32
        embedding_min_frequency, embedding_max_frequency, embedding_dims = 1.0, 1000.0, 32
        frequencies = ops.exp(ops.linspace(ops.log(embedding_min_frequency), ops.log(embedding_max_frequency),
                                           embedding_dims // 2))
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, "float32")
        return ops.concatenate([ops.sin(angular_speeds * x), ops.cos(angular_speeds * x)], axis=3)

    i = keras.Input((1, 1, 1))
    e = layers.Lambda(sinusoidal_embedding, output_shape=(1, 1, 32))(i)
    x = layers.Lambda(lambda t, k: t * k + ops.tanh(t), arguments={"k": 0.5})(layers.Dense(8)(layers.Flatten()(e)))
    model = keras.Model(i, layers.Dense(3)(x))
    variances = np.random.default_rng(0).uniform(0.0, 1.0, (8, 1, 1, 1)).astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=variances, live=False)
    assert [op.kind for op in compiled.graph.ops].count("Dense") == 2
    i = keras.Input((4, 4, 8))
    shuffle = keras.Model(i, layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2), name="shuffle")(i))
    with pytest.raises(UnsupportedModelError, match=r"layer 'shuffle' of class Lambda .*hands a Keras tensor to TensorFlow"):
        micronets.export(shuffle, str(tmp_path / "shuffle.h"))
    masked = keras.Model(i, layers.Lambda(lambda t: t * 2.0, mask=lambda t, m: None, name="masked")(i))
    with pytest.raises(UnsupportedModelError, match=r"layer 'masked' .*its mask= gives a Keras mask"):
        micronets.export(masked, str(tmp_path / "masked.h"))


class _ReflectionPadding2D(keras.layers.Layer):
    """keras.io's CycleGAN (Keras 3 version), as published."""

    def __init__(self, padding=(1, 1), **kwargs):
        self.padding = tuple(padding)
        super().__init__(**kwargs)

    def call(self, input_tensor, mask=None):
        padding_width, padding_height = self.padding
        padding_tensor = [[0, 0], [padding_height, padding_height], [padding_width, padding_width], [0, 0]]
        return keras.ops.pad(input_tensor, padding_tensor, mode="REFLECT")


def test_mirror_padding_as_cyclegan_pads(tmp_path):
    """keras.ops.pad in modes 'reflect' (CycleGAN's ReflectionPadding2D before each 'valid' conv,
    as published) and 'symmetric', refused before: unequal margins of a map (one side none) and
    the steps of a sequence, against Keras. A mirror wider than the map is refused naming the
    operation (Keras' TensorFlow backend has no other modes to refuse)."""
    ops = keras.ops
    i = keras.Input((6, 7, 3))
    x = _ReflectionPadding2D(padding=(3, 3))(i)
    x = layers.Conv2D(4, 7, activation="relu")(x)
    x = layers.Lambda(lambda t: ops.pad(t, [[0, 0], [1, 2], [3, 0], [0, 0]], mode="reflect"))(x)
    x = layers.Lambda(lambda t: ops.pad(t, [[0, 0], [2, 0], [1, 1], [0, 0]], mode="symmetric"))(x)
    model = keras.Model(i, layers.Conv2D(2, 3, strides=2)(x))
    compiled = assert_matches_keras(model, tmp_path, name="Mirror")
    assert {"ReflectPadding", "SymmetricPadding"} <= {op.kind for op in compiled.graph.ops}
    i = keras.Input((9, 2))
    x = layers.Lambda(lambda t: ops.pad(t, [[0, 0], [3, 1], [0, 0]], mode="reflect"))(i)
    x = layers.Lambda(lambda t: ops.pad(t, [[0, 0], [0, 4], [0, 0]], mode="symmetric"))(x)
    assert_matches_keras(keras.Model(i, layers.Conv1D(3, 3)(x)), tmp_path, name="MirrorSeq")
    i = keras.Input((3, 3, 2))
    wide = keras.Model(i, layers.Lambda(lambda t: ops.pad(t, [[0, 0], [3, 3], [0, 0], [0, 0]], mode="symmetric"))(i))
    with pytest.raises(UnsupportedModelError, match=r"mirrors \(3, 3, 0, 0\) around a 3x3 map: at most 2 rows"):
        micronets.export(keras.Model(i, layers.Lambda(lambda t: ops.pad(t, [[0, 0], [3, 3], [0, 0], [0, 0]], mode="reflect"))(i)),
                         str(tmp_path / "wide.h"))
    micronets.export(wide, str(tmp_path / "wide_symmetric.h"))  # 3 a side: as far as symmetric goes


def test_normalization_before_a_padded_conv_stays_an_affine_op(tmp_path):
    norm = layers.Normalization(mean=[0.2, 0.5], variance=[0.04, 0.25])
    model = seq((6, 6, 2), norm, layers.Conv2D(3, 3, padding="same"), layers.Flatten())
    compiled = assert_matches_keras(model, tmp_path)
    assert compiled.graph.ops[0].kind == "ScaleShift"  # folding the shift would change the padded border


INACTIVE = [lambda: layers.RandomFlip(), lambda: layers.RandomRotation(0.2), lambda: layers.RandomZoom(0.2),
            lambda: layers.RandomTranslation(0.1, 0.1), lambda: layers.RandomContrast(0.3),
            lambda: layers.RandomBrightness(0.2, value_range=(0, 1)), lambda: layers.GaussianNoise(0.3),
            lambda: layers.GaussianDropout(0.3), lambda: layers.AlphaDropout(0.3), lambda: layers.Dropout(0.5),
            lambda: layers.SpatialDropout2D(0.5), lambda: layers.ActivityRegularization(0.1),
            lambda: layers.Identity(),
            # Keras 3's newer augmentation layers: training-time only as well
            lambda: layers.RandomColorDegeneration(0.5), lambda: layers.RandomColorJitter(brightness_factor=0.2, contrast_factor=0.2, saturation_factor=0.2, hue_factor=0.2),
            lambda: layers.RandomErasing(), lambda: layers.RandomGaussianBlur(), lambda: layers.RandomGrayscale(),
            lambda: layers.RandomHue(0.3), lambda: layers.RandomInvert(), lambda: layers.RandomPerspective(),
            lambda: layers.RandomPosterization(factor=4), lambda: layers.RandomSaturation(0.5),
            lambda: layers.RandomSharpness(0.5), lambda: layers.RandomShear(0.3), lambda: layers.RandomElasticTransform(),
            lambda: layers.Solarization(addition_factor=0.2, threshold_factor=0.5), lambda: layers.MixUp(), lambda: layers.CutMix(),
            lambda: layers.AugMix(), lambda: layers.RandAugment()]


def test_inference_inactive_layers_are_identity_in_keras_and_vanish(tmp_path):
    from micronets.compiler.ops.reshape import INFERENCE_IDENTITY

    x = inputs_for((6, 6, 3))
    stack = [make() for make in INACTIVE]
    for layer in stack:  # the precondition, checked against Keras itself
        assert np.array_equal(np.asarray(layer(x, training=False)), x), type(layer).__name__
        assert np.array_equal(np.asarray(layer(x * 255, training=False)), x * 255), type(layer).__name__
    assert {type(layer).__name__ for layer in stack} == set(INFERENCE_IDENTITY) - {"SpatialDropout1D", "SpatialDropout3D"}
    model = seq((6, 6, 3), *stack, layers.Conv2D(3, 3), layers.Flatten())
    compiled = assert_matches_keras(model, tmp_path, x=x)
    assert [op.kind for op in compiled.graph.ops] == ["Conv2D"]


def test_inference_changing_augmentation_is_refused_not_dropped(tmp_path):
    """Keras' RandomCrop returns its input uncropped at inference while declaring the cropped
    shape; AutoContrast stretches every image at inference too: neither may vanish. RandomCrop to
    its input's own size (Keras' CCT example) is the identity at inference, in Keras too."""
    for layer in (layers.RandomCrop(4, 4), layers.RandomCrop(6, 5), layers.AutoContrast()):
        with pytest.raises(UnsupportedModelError, match=type(layer).__name__):
            compile_model(seq((6, 6, 3), layer, layers.Flatten(), layers.Dense(2)))
    x = inputs_for((6, 5, 3))
    crop = layers.RandomCrop(6, 5)
    assert np.array_equal(np.asarray(crop(x, training=False)), x)
    compiled = assert_matches_keras(seq((6, 5, 3), crop, layers.Conv2D(3, 3), layers.Flatten()), tmp_path, x=x)
    assert [op.kind for op in compiled.graph.ops] == ["Conv2D"]


# ------------------------------------------------------------------ merges and constants
def test_merges_with_broadcasting(tmp_path):
    inp = keras.Input((5, 4, 3))
    a = layers.Conv2D(3, 1, name="a")(inp)
    b = layers.Conv2D(3, 3, padding="same", name="b")(inp)
    g = layers.GlobalAveragePooling2D(keepdims=True)(b)
    outs = [layers.Add()([a, b, a]), layers.Subtract()([a, g]), layers.Multiply()([g, b]), layers.Average()([a, b]),
            layers.Maximum()([a, g, b]), layers.Minimum()([a, b])]
    model = keras.Model(inp, layers.Concatenate(axis=-1)(outs))
    assert_matches_keras(model, tmp_path)


def test_arithmetic_with_constants_as_in_mobilenet_v3(tmp_path):
    """x + 3.0, x * (1 / 6), 6 - x, x / 2.5: bare keras.ops with constants in a functional graph."""
    inp = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 3, padding="same")(inp)
    hard_sigmoid = layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)
    y = layers.Multiply()([x, hard_sigmoid])
    model = keras.Model(inp, layers.Flatten()((6.0 - y) / 2.5))
    compiled = assert_matches_keras(randomise(model, spread=4.0), tmp_path, live=False)
    assert "Add" in [op.kind for op in compiled.graph.ops]


def se_model(wide=24, c=13, cout=5, second_reader=False, residual=False):
    """A conv, then a squeeze-excite block on its 6x6xc map ending in a 1x1 projection to cout.
    ``wide``: channels of a first 12x12 conv (the arena's peak when wide, so the SE block has
    room to spare); ``second_reader``: the scaled map is an output too; ``residual``: the
    unscaled map is read again after the projection."""
    inp = keras.Input((12, 12, 4))
    x = layers.Conv2D(wide, 1, activation="relu", name="wide")(inp)
    x = layers.Conv2D(c, 3, strides=2, padding="same", activation="relu", name="dw")(x)
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    s = layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = layers.Conv2D(c, 1, activation="sigmoid", name="se_expand")(s)
    m = layers.Multiply(name="se_scale")([x, s])
    y = layers.Conv2D(cout, 1, name="project")(m)
    y = layers.Conv2D(3, 3, name="after")(y)  # (the projection's output in the arena, over its input)
    if residual:
        y = layers.Concatenate(name="join")([y, layers.Cropping2D(1)(x)])
    outs = [layers.Flatten(name="flat")(y)] + ([layers.Flatten(name="flat_m")(m)] if second_reader else [])
    return keras.Model(inp, outs)


def _unfused_arena(model):
    from micronets.compiler.plan import plan_memory
    from micronets.compiler.trace import trace

    return plan_memory(trace(model, without=("fuse_scaled_pointwise",))).arena_size


@pytest.mark.parametrize("c, cout", [(13, 5), (16, 16)], ids=["tails", "square"])
def test_squeeze_excite_scale_folds_into_the_projection(c, cout, tmp_path):
    """The Multiply of a squeeze-excite block and the projection reading it run as one op: the
    projection's weights are scaled into a workspace (13 channels: 8 + 4 + 1 at a time; 5 rows:
    2 + 2 + 1) and the map itself is never scaled. The workspace costs no arena."""
    model = se_model(c=c, cout=cout)
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert "Multiply" not in kinds and kinds.count("Multiply+Conv2D") == 1
    op = next(op for op in compiled.graph.ops if op.kind == "Multiply+Conv2D")
    assert compiled.plan.overlaps(op.inputs[0], op.output)  # the projection writes over the map (s: its scratch)
    run = compiled.header.split("static void run")[-1]
    assert f"sp_fold<{c}, {cout}>(se_scale_project_w, " in run and "elementwise<" not in compiled.header
    assert compiled.summary()["arena_bytes"] <= _unfused_arena(model)


def test_squeeze_excite_fold_without_room_scales_the_map_in_place(tmp_path):
    """Where the scaled weights would grow the arena (the SE block is the peak), the fused op
    scales the map in place and projects it with the weights as they are; the arena stays at
    most what the two ops apart need."""
    model = se_model(wide=4, c=24, cout=12)
    compiled = assert_matches_keras(model, tmp_path)
    op = next(op for op in compiled.graph.ops if op.kind == "Multiply+Conv2D")
    assert compiled.plan.overlaps(op.inputs[0], op.output)
    assert "sp_fold<" not in compiled.header.split("static void run")[-1]
    assert "elementwise<1, 36, 24, 0, 24, 1, 0, 0, 1, 2, 1, act_linear>" in compiled.header
    assert compiled.summary()["arena_bytes"] <= _unfused_arena(model)


@pytest.mark.parametrize("second_reader, residual", [(True, False), (False, True)], ids=["scaled-read-twice", "map-read-later"])
def test_squeeze_excite_scale_stays_apart_when_read_elsewhere(second_reader, residual, tmp_path):
    """No fusion when the scaled map has another reader (it must exist), or when the unscaled map
    is read after the Multiply (the fallback could not scale it in place)."""
    model = se_model(second_reader=second_reader, residual=residual)
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert "Multiply" in kinds and "Multiply+Conv2D" not in kinds


def test_concatenate_on_rows_and_channels(tmp_path):
    inp = keras.Input((4, 4, 2))
    a = layers.Conv2D(3, 1)(inp)
    b = layers.Conv2D(2, 1)(inp)
    c = layers.Conv2D(3, 1)(inp)
    model = keras.Model(inp, [layers.Concatenate()([a, b, c]), layers.Concatenate(axis=1)([a, c])])
    assert_matches_keras(model, tmp_path)


# ------------------------------------------------------------------ convolutions and data movement
def test_dilated_grouped_and_multiplier_convolutions(tmp_path):
    model = seq((11, 9, 4), layers.Conv2D(6, 3, dilation_rate=2, padding="same"), layers.Conv2D(6, 3, groups=3),
                layers.DepthwiseConv2D(5, depth_multiplier=2, padding="same"),
                layers.DepthwiseConv2D(3, dilation_rate=2), layers.SeparableConv2D(4, 3, depth_multiplier=2),
                layers.Flatten())
    assert_matches_keras(model, tmp_path)


def test_crop_upsample_permute(tmp_path):
    model = seq((7, 6, 3), layers.Conv2D(4, 1), layers.Cropping2D(((1, 2), (0, 1))), layers.UpSampling2D((2, 3)),
                layers.Permute((2, 1, 3)), layers.Conv2D(2, 3), layers.Flatten())
    assert_matches_keras(model, tmp_path)


def test_tile_and_repeat_of_model_values(tmp_path):
    """keras.ops.tile and repeat of a model's values (a pooled context spread back over the map, as
    ParseNet and PSPNet-style heads do, its axes added with ``[:, None, None, :]``; rows repeated;
    repeats shorter than the rank aligned as numpy aligns them), C++ == Keras. Tiling the batch axis, per-element counts and axis=None
    (which flattens the batch too) are refused by name."""
    from keras import ops

    x = keras.Input((3, 4, 2))
    h = layers.Conv2D(3, 1)(x)
    g = layers.GlobalAveragePooling2D(keepdims=True)(h)
    flat = layers.GlobalAveragePooling2D()(h)
    y = layers.Concatenate()([h, ops.tile(g, [1, 3, 4, 1]), ops.repeat(h[:, :, :2, :], 2, axis=2),
                              ops.tile(h, (1, 2, 1))[:, :, :4, :], ops.repeat(h[:, :1], 3, axis=1),
                              ops.tile(flat[:, None, None, :], [1, 3, 4, 1]),  # None: numpy's new axis
                              ops.tile(h[:, :, None, 1, :], [1, 1, 4, 1]), h[..., None, 0:1][:, :, :, 0]])
    compiled = assert_matches_keras(keras.Model(x, layers.Flatten()(y)), tmp_path, name="Tiles")
    assert {op.label() for op in compiled.graph.ops} >= {"Tile x1,2,1", "Tile x3,4,1", "Repeat x2 on axis 2"}
    s = keras.Input((5,))
    v = ops.tile(ops.expand_dims(layers.Dense(3)(s), 1), (2, 1)) + ops.repeat(ops.expand_dims(s, -1), 3, axis=-1)[:, :2]
    assert_matches_keras(keras.Model(s, layers.Flatten()(v)), tmp_path, name="Rows")
    for out, why in ((ops.tile(h, (2, 1, 1, 1)), r"'tile\w*' tiles the batch axis 2 times"),
                     (ops.repeat(h, [1, 2, 1], axis=1), r"'repeat\w*' .* repeats with axis=1 and repeats=\[1, 2, 1\]"),
                     (ops.repeat(h, 2), r"'repeat\w*' .* repeats with axis=None")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Model(x, out))


def test_options_keras_computes_with_are_not_dropped(tmp_path):
    """Layer options an earlier converter ignored, compiling a different function: Flatten with
    data_format='channels_first' (Keras moves a sample's first axis last, then flattens), LoRA on
    Dense and Conv2D (Keras adds alpha / rank x A B to the kernel; get_weights()[0] is the base
    kernel alone), a no-op and a real keras.ops.moveaxis (keras_hub's RotaryEmbedding starts with
    one); C++ == Keras. A layer Keras quantized (quantize('float8'), 'int8') is refused: Keras
    computes it from rounded weights."""
    from keras import ops

    rng = np.random.default_rng(0)
    inp = keras.Input((4, 5, 3))
    c = layers.Conv2D(4, 3, padding="same", lora_rank=2, lora_alpha=6.0)(inp)
    y = layers.Concatenate()([layers.Flatten(data_format="channels_first")(c),
                              layers.Flatten(data_format="channels_first")(layers.Reshape((20, 3))(inp)),
                              layers.Dense(5, lora_rank=2)(layers.Flatten()(c))])
    moved = ops.moveaxis(ops.moveaxis(layers.Dense(4)(inp), (-1, 1), (-1, 1)), 3, 1)
    model = keras.Model(inp, layers.Concatenate()([y, layers.Flatten()(moved)]))
    for layer in model.layers:  # LoRA's B starts at zero (a no-op): as after fine-tuning, it is not
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    x = rng.normal(0, 1, (8, 4, 5, 3)).astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=x, live=False)
    assert sum(op.label().startswith("Permute") for op in compiled.graph.ops) == 3
    for mode in ("float8", "int8"):
        dense = layers.Dense(3)
        quantized = keras.Sequential([keras.Input((6,)), dense])
        dense.quantize(mode)
        with pytest.raises(UnsupportedModelError, match=rf"as Keras quantized it \(quantization_mode='{mode}'\): export "
                                                        r"the float model"):
            compile_model(quantized)


def test_einsum_dense_over_trailing_axes(tmp_path):
    """EinsumDense as transformers use it (keras_hub, MultiHeadAttention subclasses): a projection
    to heads ('abc,cde->abde', bias over both new axes), back from them ('abcd,cde->abe', fused
    ReLU), with an ellipsis, and on vectors; C++ == Keras. A transposing equation and one
    contracting a middle axis are refused, naming the equation."""
    E = layers.EinsumDense
    x = keras.Input((5, 4))
    h = layers.Dense(4)(x)
    heads = E("abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de")(h)
    back = E("abcd,cde->abe", output_shape=(None, 4), bias_axes="e", activation="relu")(heads)
    ell = E("...b,bc->...c", output_shape=3, bias_axes="c")(back)
    vec = E("ab,bc->ac", output_shape=3)(layers.Flatten()(h))
    model = keras.Model(x, layers.Concatenate()([layers.Flatten()(heads), layers.Flatten()(ell), vec]))
    rng = np.random.default_rng(0)  # biases too (Keras starts them at zero)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    assert_matches_keras(model, tmp_path, x=rng.normal(0, 1, (8, 5, 4)).astype(np.float32), name="Einsum", live=False)
    for eq, shape in (("abc,cd->adb", (3, None)), ("abc,bd->acd", (4, 3))):
        with pytest.raises(UnsupportedModelError, match=rf"\(EinsumDense, '{eq}'\): only equations that contract"):
            compile_model(keras.Model(x, layers.Flatten()(E(eq, output_shape=shape)(h))))


def test_comparisons_logic_and_where(tmp_path):
    """keras.ops comparisons and logic on model values (Keras' booleans: 1.0 / 0.0, as a cast to
    float reads them) and ops.where(condition, x1, x2) with broadcasting and constant operands: a
    custom leaky activation, a gate, a pick against a broadcast row; C++ == Keras, values exactly
    equal where the result is a comparison. A one-argument where (indices) is refused."""
    from keras import ops

    x = keras.Input((5, 4))
    h, g = layers.Dense(4)(x), layers.Dense(4)(x)
    leaky = ops.where(h > 0, h, 0.2 * h)
    gate = ops.cast(ops.logical_and(h > -0.5, g <= 0.3), "float32") * g
    pick = ops.where(ops.greater_equal(g, h[:, :1]), 1.5, g)
    top, low = ops.maximum(g, h), ops.minimum(g, h)  # ties: >= and > (== and <=, ...) differ there
    logic = (ops.cast(ops.logical_or(ops.equal(h, top), ops.logical_not(g < 0)), "float32") +
             2.0 * ops.cast(ops.not_equal(g, top), "float32") + 4.0 * ops.cast(ops.less(h, 0.1), "float32") +
             8.0 * ops.cast(ops.greater_equal(g, top), "float32") + 16.0 * ops.cast(ops.less_equal(h, low), "float32"))
    model = keras.Model(x, [layers.Flatten()(layers.Concatenate()([leaky, gate, pick])), layers.Flatten()(logic)])
    compiled = assert_matches_keras(model, tmp_path, name="Logic")
    assert {"Where", "GreaterEqual", "LogicalAnd", "LogicalOr", "NotEqual", "Less", "Equal"} <= {
        op.kind for op in compiled.graph.ops}
    with pytest.raises(UnsupportedModelError, match=r"keras.ops.where\) with 1 operand\(s\) \(the indices form\)"):
        compile_model(keras.Model(x, layers.Flatten()(ops.where(h > 0, None, None))))


def test_ops_arguments_as_numpy_arrays_and_their_refusals(tmp_path):
    """Axes and repeat counts given as numpy arrays (as code computing them passes them) compile
    as their lists do; C++ == Keras. Refused with the cause: a cast to float16 / bfloat16 (Keras
    rounds there, a float32 header would not: it compiled as no-op, 1% off after a Dense), a
    softmax with axis=None (over the batch too), a full_like whose fill is a model value."""
    from keras import ops

    x = keras.Input((4, 5, 3))
    c = layers.Conv2D(3, 1)(x)
    y = layers.Concatenate()([layers.Flatten()(ops.tile(c, np.array([1, 2, 1]))),
                              ops.mean(c, axis=np.array([1, 2]))])
    assert_matches_keras(keras.Model(x, y), tmp_path, name="NumpyArgs")
    for out, why in ((ops.cast(c, "float16"), r"'cast\w*' rounds a model value to float16"),
                     (ops.convert_to_tensor(c, dtype="bfloat16"), r"rounds a model value to bfloat16"),
                     (ops.softmax(c, axis=None), r"softmax with axis=None runs over every axis, the batch axis too"),
                     (c + ops.full_like(c, c[:, :1, :1, :1]), r"'full_like\w*' .* with a fill value computed from the "
                                                             r"model's input")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Model(x, layers.Flatten()(out)))


def test_sign_floor_ceil_round_erf(tmp_path):
    """keras.ops sign, floor, ceil, round (halves to even, as TensorFlow: exact halves are in the
    input) and erf, fused as activations; C++ == Keras. Rounding to decimals is refused."""
    from keras import ops

    x = keras.Input((6, 4))
    h = layers.Dense(4)(x) * 3.0
    halves = ops.floor(h) + 0.5
    y = layers.Concatenate()([ops.sign(h), ops.floor(h), ops.ceil(h), ops.round(h), ops.round(halves), ops.erf(h / 3.0),
                              ops.sign(ops.floor(h / 4.0))])  # (zeros among them: sign(0) is 0)
    assert_matches_keras(keras.Model(x, layers.Flatten()(y)), tmp_path, name="Rounding")
    with pytest.raises(UnsupportedModelError, match=r"rounds to 2 decimals; only to integers"):
        compile_model(keras.Model(x, layers.Flatten()(ops.round(h, 2))))


def test_channel_shuffle_and_split(tmp_path):
    """ShuffleNetV2's split (slicing) and shuffle (Reshape -> Permute -> Reshape)."""
    inp = keras.Input((6, 6, 8))
    x = layers.Conv2D(8, 1)(inp)
    left, right = x[..., :4], x[..., 4:]
    right = layers.Conv2D(4, 3, padding="same")(right)
    y = layers.Concatenate()([left, right])
    y = layers.Reshape((6, 6, 2, 4))(y)
    y = layers.Permute((1, 2, 4, 3))(y)
    y = layers.Reshape((6, 6, 8))(y)
    model = keras.Model(inp, layers.Flatten()(y))
    assert_matches_keras(model, tmp_path)


def test_depth_to_space_and_space_to_depth(tmp_path):
    """keras.ops.depth_to_space (EDSR's upsampling: was refused, "no converter") and
    space_to_depth, blocks of 2 and 3, channels last and first, each one copy, as Keras (TensorFlow's
    order: output pixel (h b + i, w b + j) channel c is input pixel (h, w) channel (i b + j) C + c)."""
    ops = keras.ops
    outs = []
    inp = keras.Input((4, 5, 18))
    for b in (2, 3):
        up = ops.depth_to_space(layers.Conv2D(3 * b * b, 1)(inp), b)
        outs += [up, ops.space_to_depth(layers.Conv2D(2, 1)(up), b)]
    first = ops.transpose(inp, (0, 3, 1, 2))  # (18, 4, 5)
    up = ops.depth_to_space(first, 3, data_format="channels_first")  # (2, 12, 15)
    outs += [up, ops.space_to_depth(up * 2.0, 3, data_format="channels_first")]
    model = keras.Model(inp, [layers.Flatten()(t) for t in outs])
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.label() for op in compiled.graph.ops if "To" in op.label()]
    assert sum("DepthToSpace" in k for k in kinds) == 3 and sum("SpaceToDepth" in k for k in kinds) == 3, kinds


def test_roll_along_sample_axes(tmp_path):
    """keras.ops.roll (Swin's shifted windows; was refused, "no converter"): one axis, two axes,
    negative shifts, shifts past the axis' length, an axis named twice (numpy adds its shifts),
    as Keras; a roll without an axis moves values between samples and is refused."""
    ops = keras.ops
    inp = keras.Input((5, 6, 3))
    x = layers.Conv2D(3, 1)(inp)
    outs = [ops.roll(x, 2, axis=1), ops.roll(x, (-1, 4), axis=(1, 2)), ops.roll(x, 7, axis=-1),
            ops.roll(x, (1, 2), axis=(2, 2))]
    compiled = assert_matches_keras(keras.Model(inp, [layers.Flatten()(o) for o in outs]), tmp_path)
    assert sum(op.kind == "Roll" for op in compiled.graph.ops) == 4, [op.kind for op in compiled.graph.ops]
    with pytest.raises(UnsupportedModelError, match="rolls without an axis: numpy then rolls the whole batch"):
        compile_model(keras.Model(inp, layers.Flatten()(ops.roll(x, 3))))


def test_moving_the_batch_axis_in_front_runs_as_keras(tmp_path):
    """Swin's attention (keras.io) moves its stacked q, k, v axis in front of the batch axis and
    indexes it (was refused); in a functional graph too, C++ == Keras. Where the batch axis then
    holds other values than the sample's (a model of batch size 4 fixed), it is refused saying why."""
    inp = keras.Input((4, 3, 8))
    qkv = keras.ops.transpose(layers.Reshape((4, 3, 8))(layers.Dense(8)(inp)), (2, 0, 1, 3))
    model = keras.Model(inp, layers.Flatten()(qkv[0] * qkv[2] - qkv[1]))
    compiled = assert_matches_keras(model, tmp_path)
    assert [op.kind for op in compiled.graph.ops].count("Permute") == 1
    fixed = keras.Input((4, 3, 8), batch_size=4)
    qkv = keras.ops.transpose(layers.Reshape((4, 3, 8))(layers.Dense(8)(fixed)), (2, 0, 1, 3))
    with pytest.raises(UnsupportedModelError, match=r"moves the batch axis \(axes \(2, 0, 1, 3\)\); a compiled model "
                                                    r"runs one sample at a time"):
        compile_model(keras.Model(fixed, layers.Flatten()(qkv[0])))


class _WindowAttention(layers.Layer):
    """Window attention as Swin, GCViT and keras-hub's ViTDet write it, in one layer: the map cut
    into windows moved into the batch axis (reshape, transpose, reshape), LayerNormalization and a
    Dense to q, k, v per window, the q/k/v axis moved in front (transpose) and unstacked (q, k) or
    indexed (v), GCViT's global query (a Dense of the map's mean) repeated once per window along the
    batch axis, scores by matmul plus a relative-position term by einsum with a learned table (a
    constant), Swin's shifted-window mask added per window (the windows moved back out of the batch
    axis and in again), softmax, the weighted sum, a Dense, the windows put back (reshape,
    transpose, reshape) and a residual. ``out``: what the layer returns ("map", "windows" or
    "conv": a Conv2D of the windows)."""

    def __init__(self, window=2, heads=2, out="map", **kwargs):
        super().__init__(**kwargs)
        self.window, self.heads, self.out = window, heads, out

    def build(self, shape):
        _, h, w, c = shape
        s, n = self.window, self.window ** 2
        count = (h // s) * (w // s)
        self.norm, self.qkv, self.proj = layers.LayerNormalization(), layers.Dense(3 * c), layers.Dense(c)
        self.glob, self.conv = layers.Dense(c // self.heads), layers.Conv2D(c, 1)
        self.table = self.add_weight(shape=(n, self.heads, c // self.heads), initializer="random_normal")
        rng = np.random.default_rng(5)
        mask = np.where(rng.uniform(size=(count, 1, n, n)) < 0.3, -100.0, 0.0).astype(np.float32)
        self.mask = self.add_weight(shape=mask.shape, trainable=False, initializer=keras.initializers.Constant(mask))

    def call(self, x):
        ops = keras.ops
        _, h, w, c = x.shape
        s, heads = self.window, self.heads
        n, d, count = s * s, c // heads, (h // s) * (w // s)
        win = ops.reshape(ops.transpose(ops.reshape(x, (-1, h // s, s, w // s, s, c)), (0, 1, 3, 2, 4, 5)), (-1, n, c))
        if self.out == "windows":
            return win
        if self.out == "conv":
            return self.conv(ops.reshape(win, (-1, s, s, c)))
        qkv = ops.transpose(ops.reshape(self.qkv(self.norm(win)), (-1, n, 3, heads, d)), (2, 0, 3, 1, 4))
        q, k, _ = ops.unstack(qkv, 3, axis=0)  # (windows, heads, n, d)
        v = qkv[2]
        glob = ops.reshape(self.glob(ops.mean(x, axis=(1, 2))), (-1, 1, 1, d))
        q = q + ops.repeat(glob, count, axis=0)
        attn = q @ ops.transpose(k, (0, 1, 3, 2)) * d ** -0.5 + ops.einsum("bhqd,khd->bhqk", q, self.table)
        attn = ops.reshape(ops.reshape(attn, (-1, count, heads, n, n)) + self.mask, (-1, heads, n, n))
        y = ops.reshape(ops.transpose(ops.softmax(attn, axis=-1) @ v, (0, 2, 1, 3)), (-1, n, c))
        y = ops.reshape(self.proj(y), (-1, h // s, w // s, s, s, c))
        return x + ops.reshape(ops.transpose(y, (0, 1, 3, 2, 4, 5)), (-1, h, w, c))


def test_window_attention_runs_as_keras(tmp_path):
    """Windows moved into the batch axis inside a layer's call() (Swin, GCViT, ViTDet: refused
    before), each step of ``_WindowAttention`` on values whose batch axis holds the windows: C++ ==
    Keras, the learned table (an einsum operand) and the mask included. Those values are
    compiled in Keras' whole shape: a layer whose kernel takes a sample only (a Conv2D of the
    windows) is refused naming it and the cause, and so is a model output of windows."""
    inp = keras.Input((4, 6, 8))
    x = layers.Conv2D(8, 1)(inp)
    model = keras.Model(inp, layers.Flatten()(_WindowAttention()(x)))
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("Unstack") == 2 and "Slice" in kinds and "Einsum" in kinds and "Repeat" in kinds, kinds  # (v unread)
    with pytest.raises(UnsupportedModelError, match=r"layer 'conv2d_\d+' of class Conv2D in model '_+window_attention_\d+' "
                                                    r"is not supported on a value whose batch axis holds several parts "
                                                    r"of the one sample \(window partitions"):
        compile_model(keras.Model(inp, layers.Flatten()(_WindowAttention(out="conv")(x))))
    with pytest.raises(UnsupportedModelError, match=r"output 0 has Keras shape \(6, 32\) for one sample: its batch axis "
                                                    r"holds 6 parts"):
        compile_model(keras.Model(inp, layers.Flatten()(_WindowAttention(out="windows")(x))))


def test_more_than_65535_outputs_use_a_wide_argmax(tmp_path):
    model = seq((1,), layers.Dense(70000))
    w = np.zeros((1, 70000), np.float32)
    w[0, 69999] = 1.0
    model.layers[1].set_weights([w, np.zeros(70000, np.float32)])
    path = tmp_path / "Wide.h"
    micronets.export(model, str(path), classname="Wide")
    src = tmp_path / "wide.cpp"
    src.write_text('#include <stdio.h>\n#include "Wide.h"\nstatic Wide n;\n'
                   'int main() { float x[1] = {2.0f}; unsigned long c = n.predict(x); printf("%lu\\n", c); return 0; }\n')
    subprocess.run(["g++", *host.STRICT_FLAGS, "-O1", str(src), "-o", str(tmp_path / "wide")], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "wide")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "69999"


def test_nested_models_are_inlined_and_verified_per_call(tmp_path):
    """A Sequential stem inside a functional model (as keras.applications' ConvNeXt has), a
    functional block called twice (shared weights, a layer inside named like one outside) and a
    Sequential inside a Sequential: inlined into one graph, C++ == Keras, and verify compares each
    call of the shared block with that call's own Keras value."""
    from micronets.verification import verify

    stem = keras.Sequential([keras.Input((12, 10, 3)), layers.Conv2D(6, 3, strides=2, padding="same"),
                             layers.BatchNormalization(), layers.ReLU()], name="stem")
    bi = keras.Input((6, 5, 6))
    b = layers.Add()([layers.Conv2D(6, 3, padding="same", name="conv")(bi), bi])
    block = keras.Model(bi, layers.ReLU()(b), name="block")
    inp = keras.Input((12, 10, 3))
    y = block(layers.Conv2D(6, 1, name="conv")(stem(inp)))
    z = block(y)
    model = keras.Model(inp, [layers.Dense(3)(layers.Flatten()(z)), layers.GlobalMaxPooling2D()(y)], name="nested")
    compiled = assert_matches_keras(model, tmp_path)
    assert not any(op.kind in ("Model", "Sequential", "Functional") for op in compiled.graph.ops)
    report = verify(model, inputs_for((12, 10, 3)), workdir=str(tmp_path))
    assert report.ok, report.table()
    assert report.ok, report.table()  # before per-call names, the first call was compared with the second's value
    assert "block" in {c.keras_layer for c in report.layers}
    inner = keras.Sequential([layers.Dense(6, activation="relu"), layers.Dense(5)], name="inner")
    assert_matches_keras(keras.Sequential([keras.Input((12,)), inner, layers.Softmax()], name="seq_of_seq"), tmp_path,
                         name="Seq")
    # an identity sub-model: its input's readers are the call's readers, counted once (counted one
    # short, the ReLU after it overwrote h in place before tanh read it)
    ii = keras.Input((8,))
    ident = keras.Model(ii, ii, name="ident")
    inp = keras.Input((8,))
    h = layers.Dense(8)(inp)
    out = layers.Add()([layers.ReLU()(ident(h)), layers.Activation("tanh")(h)])
    assert_matches_keras(keras.Model(inp, layers.Dense(3)(out), name="identity_nested"), tmp_path, name="Ident")



def test_nested_models_declared_for_any_size_take_the_calls_sizes(tmp_path):
    """A nested model declared for any length (keras.io's MAE encoder: Input((None, d))) read
    Keras' None sizes inside: its attention was refused ("output (6, 4) where Keras gives (None,
    4)"), and a converter that reads the output size would stop on None. Its graph is now built
    again at the sizes of each call (two calls, two lengths), its layers keep their nodes, and the
    header does not depend on what the process built before (Keras numbers the call's conversions)."""
    seq = keras.Input((None, 4))
    h = layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(seq, seq)
    h = layers.Conv1DTranspose(5, 3, strides=2, name="up")(layers.LayerNormalization(name="norm")(h))
    encoder = keras.Model(seq, layers.Dense(4, name="proj")(h), name="encoder")
    nodes = [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in encoder.layers]
    inp = keras.Input((6, 4))
    short = encoder(layers.Cropping1D((1, 2), name="crop")(inp))
    model = keras.Model(inp, [layers.Flatten()(encoder(inp)), layers.GlobalAveragePooling1D()(short)], name="any_size")
    assert_matches_keras(randomise(model), tmp_path)
    assert [(len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in encoder.layers] == nodes
    header = compile_model(model).header
    keras.Model(seq, keras.ops.convert_to_tensor(seq))  # advances Keras' op counter
    assert compile_model(model).header == header


def test_a_user_layers_added_losses_are_left_out(tmp_path):
    """The Keras guide's ActivityRegularizationLayer ("Making new layers and models via
    subclassing") calls ``self.add_loss(rate * mean(x))`` in call() and returns x: a training-time
    loss. It was refused (Keras refuses add_loss outside its own call, and the tracer calls call()
    itself); the header computes what inference computes, and Layer.add_loss is Keras' own again."""
    from keras import ops

    class ActivityRegularizationLayer(layers.Layer):
        def __init__(self, rate=1e-2, **kw):
            super().__init__(**kw)
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.mean(inputs))
            return inputs

    own = keras.layers.Layer.add_loss
    inp = keras.Input((6,))
    h = ActivityRegularizationLayer(name="regularized")(layers.Dense(4, activation="relu")(inp))
    assert_matches_keras(randomise(keras.Model(inp, layers.Dense(3)(h), name="with_loss")), tmp_path)
    assert keras.layers.Layer.add_loss is own


def test_random_draws_at_inference_are_refused(tmp_path):
    """keras.io's VAE samples its latent code in a user layer, at inference too
    (``z_mean + exp(z_log_var / 2) * keras.random.normal(...)``). Traced, the one draw made for a
    batch of one was baked in as a constant: every inference of the header repeated it. Refused,
    naming the draw; the encoder up to what it samples from compiles, and keras.random is itself again."""

    class Sampling(layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch, dim = keras.ops.shape(z_mean)[0], keras.ops.shape(z_mean)[1]
            epsilon = keras.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + keras.ops.exp(0.5 * z_log_var) * epsilon

    normal = keras.random.normal
    inp = keras.Input((6, 6, 1))
    h = layers.Dense(8, activation="relu")(layers.Flatten()(layers.Conv2D(4, 3, strides=2, padding="same")(inp)))
    z_mean, z_log_var = layers.Dense(2, name="z_mean")(h), layers.Dense(2, name="z_log_var")(h)
    target = tmp_path / "vae.h"
    with pytest.raises(UnsupportedModelError, match=r"layer 'sampling' of class Sampling in model 'encoder' is not "
                                                    r"supported \(its call\(\) draws random numbers at inference with "
                                                    r"keras.random.normal: Keras draws anew on every call"):
        micronets.export(keras.Model(inp, [z_mean, z_log_var, Sampling(name="sampling")([z_mean, z_log_var])],
                                     name="encoder"), str(target))
    assert not target.exists() and keras.random.normal is normal
    assert_matches_keras(randomise(keras.Model(inp, [z_mean, z_log_var], name="encoder_mean")), tmp_path)


def test_user_layers_are_traced_at_inference(tmp_path):
    """A user layer whose call() defaults to training=True (DeiT's stochastic depth, as published)
    is traced with training=False, as predict() runs it: compiled in its training branch it baked
    one random keep/drop draw and a 1/keep scale into the header. Also when an outer user layer
    calls it without a training argument (Keras then records the default, True, on the node)."""
    from keras import ops

    class StochasticDepth(layers.Layer):
        def __init__(self, rate, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate

        def call(self, x, training=True):
            if training:
                keep = 1 - self.rate
                return x / keep * ops.floor(keep + keras.random.uniform((ops.shape(x)[0], 1, 1), 0, 1))
            return x

    class Residual(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense, self.drop = layers.Dense(8), StochasticDepth(0.5)

        def call(self, x):
            return x + self.drop(self.dense(x))

    inp = keras.Input((4, 8))
    y = layers.Add()([inp, StochasticDepth(0.5)(layers.Dense(8)(inp))])
    model = keras.Model(inp, layers.Flatten()(Residual()(y)), name="stochastic_depth")
    compiled = assert_matches_keras(model, tmp_path)
    assert not any(op.kind in ("Floor", "Divide") for op in compiled.graph.ops)


def test_training_passed_to_a_user_layer_that_takes_none_is_dropped(tmp_path):
    """An outer user layer hands ``training=`` to a sublayer whose call() takes no such argument
    (keras-hub MobileNetV5's ConvNormAct to its RmsNorm2d): Keras' Layer.__call__ drops it, so
    the trace does too (it was refused: "call() got an unexpected keyword argument 'training'")."""
    from keras import ops

    class Scale(layers.Layer):
        def build(self, shape):
            self.g = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):  # no training argument
            return x * self.g / ops.sqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-3)

    class ConvNorm(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv, self.norm = layers.Conv2D(6, 3, padding="same"), Scale()

        def call(self, x, training=None):
            return ops.relu(self.norm(self.conv(x), training=training))

    inp = keras.Input((6, 6, 3))
    model = keras.Model(inp, layers.Dense(4)(layers.Flatten()(ConvNorm()(ConvNorm()(inp)))), name="training_dropped")
    liven(model, random_images((6, 6, 3), 16), inner=True)
    assert_matches_keras(model, tmp_path, live=False)


def test_user_layer_returning_a_nested_structure(tmp_path):
    """A user layer whose call() returns a nested structure of tensors (keras-hub's DINOV2Encoder:
    ``(x, {"stage1": ..., ...})``) compiles, each leaf the node's output in Keras' order (dict keys
    sorted); it was refused as "returned tuple, not one tensor"."""
    from keras import ops

    class Encoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a, self.b = layers.Dense(8), layers.Dense(3)

        def call(self, x):
            y = self.a(x)
            return y, {"stage2": self.b(y), "stage1": ops.relu(y) - 0.5}

    inp = keras.Input((4, 6))
    y, feats = Encoder()(inp)
    model = keras.Model(inp, [layers.LayerNormalization()(y), layers.Flatten()(feats["stage2"]),
                              layers.Dense(2)(feats["stage1"])], name="nested_outputs")
    assert_matches_keras(model, tmp_path)


def test_user_layer_with_none_and_constant_outputs_as_keras_hubs_deit(tmp_path):
    """keras-hub's DeiT: a block returns ``(y, None)`` (no attention scores unless asked), and the
    encoder calling it returns ``(y, ops.empty((0, seq, dim)), ...)`` for the hidden states it
    was not asked for. The None is no output (Keras' own node refused it: the whole backbone was
    refused); a concrete leaf of one sample is a constant an Add reads; one that is no sample (no
    batch axis) is an output nothing may depend on, refused by name where one does."""
    from keras import ops

    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(8)

        def call(self, x, return_attention_scores=False):
            return self.dense(x), None

    class Encoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.blocks = [Block(), Block()]

        def call(self, x):
            for block in self.blocks:
                x, _ = block(x)
            return x, ops.empty((0, 4, 8)), ops.full((1, 4, 8), 0.5)

    inp = keras.Input((4, 6))
    y, unasked, half = Encoder(name="encoder")(inp)
    model = keras.Model(inp, layers.Flatten()(layers.Add()([y, half])), name="deit_like")
    compiled = assert_matches_keras(model, tmp_path)
    assert [op.kind for op in compiled.graph.ops] == ["Conv2D", "Conv2D", "Add"]  # (Dense over steps: 1x1)
    with pytest.raises(UnsupportedModelError, match=r"layer 'encoder' of class Encoder in model 'deit_like_2' returns "
                                                    r"a constant of shape \(0, 4, 8\) as output 1 \(it reads none of "
                                                    r"its inputs\) where Keras declares \(0, 4, 8\): not one sample"):
        compile_model(keras.Model(inp, layers.Flatten()(layers.Add()([y, ops.sum(unasked, axis=0)])),
                                  name="deit_like_2"))

    class Positions(layers.Layer):
        def call(self, x):
            return ops.arange(4)

    with pytest.raises(UnsupportedModelError, match=r"layer 'positions' of class Positions in model 'positions' "
                                                    r"returns a constant of shape \(4,\) as output 0"):
        compile_model(keras.Model(inp, layers.Add()([inp, layers.Embedding(4, 6)(Positions(name="positions")(inp))]),
                                  name="positions"))


def test_user_layer_classes_are_traced_through_their_call(tmp_path):
    """A user's own keras.layers.Layer subclasses, compiled through what their call() does: a
    residual block of sublayers (BatchNorm given ``training``) used twice, a weight of the layer's
    own used in ``call()``, a two-input layer given one tensor twice, and a layer that returns its
    input (its readers counted once: one short, the ReLU after it would overwrite h in place before
    the other branch read it). C++ == Keras, and verify names the user's layer. A call() that
    leaves keras.ops, or uses one the compiler does not convert, is refused naming the class and
    what failed, and nothing is written."""
    from keras import ops

    from micronets.verification import verify

    class Block(layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.conv1 = layers.Conv2D(filters, 3, padding="same")
            self.bn = layers.BatchNormalization()
            self.conv2 = layers.Conv2D(filters, 3, padding="same")

        def call(self, x, training=None):
            return ops.relu(x + self.conv2(ops.relu(self.bn(self.conv1(x), training=training))))

    class Scale(layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="gamma")

        def call(self, x):
            return x * self.gamma + 0.5

    class Blend(layers.Layer):
        def call(self, a, b):
            return ops.maximum(a, b) - 0.25 * b

    class PassThrough(layers.Layer):
        def call(self, x):
            return x

    inp = keras.Input((8, 7, 3))
    h = layers.Conv2D(6, 3, padding="same")(inp)
    y = Block(6, name="block")(Block(6, name="block0")(h))
    y = Blend(name="blend")(Scale(name="scale")(y), layers.Conv2D(6, 1)(y))
    y = Blend(name="self_blend")(y, y)
    model = keras.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling2D()(y)), name="user_layers")
    compiled = assert_matches_keras(model, tmp_path)
    assert not any(type(op).__name__ in ("Block", "Scale", "Blend") for op in compiled.graph.ops)
    # the user's objects end as they began, and one model gives one header however many keras.ops
    # the process made in between (they are named after the layer, not by Keras' counters)
    sub = [s for name in ("block", "scale") for s in model.get_layer(name)._flatten_layers(include_self=False)]
    nodes = [(len(s._inbound_nodes), len(s._outbound_nodes)) for s in sub]
    texts = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        micronets.export(model, str(tmp_path / run / "m.h"))
        texts.append((tmp_path / run / "m.h").read_text())
        ops.maximum(ops.relu(keras.Input((2,))), 0.25)  # Keras' name counters move on
    assert texts[0] == texts[1]
    assert "block/add" in texts[0] and "self_blend/maximum" in texts[0]
    assert [(len(s._inbound_nodes), len(s._outbound_nodes)) for s in sub] == nodes
    report = verify(model, inputs_for((8, 7, 3)), workdir=str(tmp_path))
    assert report.ok, report.table()
    assert {"block", "block0", "blend", "self_blend"} <= {c.keras_layer for c in report.layers}
    inp = keras.Input((8,))
    h = layers.Dense(8)(inp)
    out = layers.Add()([layers.ReLU()(PassThrough(name="pass")(h)), layers.Activation("tanh")(h)])
    assert_matches_keras(keras.Model(inp, layers.Dense(3)(out), name="pass_through"), tmp_path, name="Pass")

    class TfOnly(layers.Layer):  # tf.nn on a symbolic tensor: not keras.ops
        def call(self, x):
            import tensorflow as tf

            return tf.nn.depth_to_space(x, 2)

    inp = keras.Input((4, 4, 8))
    model = keras.Model(inp, TfOnly(name="d2s")(layers.Conv2D(8, 1)(inp)))
    target = tmp_path / "refused.h"
    with pytest.raises(UnsupportedModelError, match=r"layer 'd2s' of class TfOnly .*not supported \(its call\(\) "
                                                    r"hands a Keras tensor to TensorFlow \(tf\.\*\).*keras\.ops") as refused:
        micronets.export(model, str(target))
    assert not target.exists()
    assert "Supported layers" not in str(refused.value)  # the cause is specific: no list of everything

    class WrongSublayer(layers.Layer):  # Keras wraps what a sublayer raises in call(): quoted, the cause comes bare
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.pool = layers.MaxPooling1D(name="pool")

        def call(self, x):
            return self.pool(x)

    with pytest.raises(ValueError, match="Exception encountered when calling") as wrapped:
        WrongSublayer()(inp)
    text = brief(wrapped.value)
    assert text == ("Input 0 with name 'None' of layer 'pool' is incompatible with the layer: expected ndim=3, "
                    "found ndim=4. Full shape received: (None, 4, 4, 8)"), text
    assert len(text) <= 240 and "\x1b" not in text
    assert brief(ValueError("a b  c\n d"), 7) == "a b c d" and brief(ValueError("one two three four"), 12) == "one two ..."

    class Tangent(layers.Layer):  # keras.ops, but one the compiler does not convert: named with the layer
        def call(self, x):
            return ops.tan(x) * 2.0

    model = keras.Model(inp, Tangent(name="wave")(layers.Conv2D(8, 1)(inp)))
    with pytest.raises(UnsupportedModelError, match=r"layer 'wave' of class Tangent in model .*, traced through its "
                                                    r"call\(\): operation 'wave/tan' \(keras.ops Tan\).*not supported"):
        micronets.export(model, str(target))
    assert not target.exists()

    # not traced: a mask for the layers after it (an LSTM skips masked steps), and Keras' own classes
    class MaskZeros(layers.Layer):
        def call(self, x):
            return x

        def compute_mask(self, x, mask=None):
            return ops.any(ops.not_equal(x, 0.0), axis=-1)

    for layer, why in ((MaskZeros(name="mask_zeros"), r"class MaskZeros .*not supported \(it computes a Keras mask"),
                       (layers.Masking(0.0, name="masking"), r"class Masking in model '\w+' is not supported: micronets has no converter for this Keras "
                                                             r"layer class \(it converts \d+ layer classes")):
        with pytest.raises(UnsupportedModelError, match=why):
            compile_model(keras.Sequential([keras.Input((6, 3)), layer, layers.LSTM(4)]))


def test_user_layer_returning_a_constant(tmp_path):
    """A user layer whose call() reads nothing of its input at run time (a learned table broadcast
    to its input's shape, as Keras' CCT example writes its position embedding) is a constant: it
    enters elementwise arithmetic as weights (a merge layer and a keras.ops product here), C++ ==
    Keras; so is one computed inside a call() with the batch axis of 1 (an Embedding of arange(n)
    added to the input, ViT's patch encoder). A layer or keras.ops call reading constants only
    (a Dense, a softmax over the table) is computed by Keras at compile time, and so are
    ``ones_like`` / ``zeros_like`` / ``full_like`` of a model value (a layer read by nothing else is
    then not computed at run time). Refused, and nothing written:
    a constant read by a non-elementwise op with a model value, one computed across the batch's
    samples, and a constant as the model's output."""
    from keras import ops

    class Table(layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=tuple(shape[1:]), initializer="random_normal", name="table")

        def call(self, x):
            return ops.broadcast_to(ops.convert_to_tensor(self.table), ops.shape(x))

    class Positions(layers.Layer):  # ViT's PatchEncoder: + an Embedding of arange(n), batch axis 1
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embed = layers.Embedding(5, 4, embeddings_initializer="random_normal")

        def call(self, x):
            return x + self.embed(ops.expand_dims(ops.arange(5), 0))

    inp = keras.Input((5, 4))
    h = layers.Dense(4)(inp)
    table = Table(name="table")(h)
    folded = ops.softmax(layers.Dense(4, name="over_table")(table), axis=1) * ops.full_like(h, 3.0)
    shape_only = layers.Dense(2, name="shape_only")(h)  # read by zeros_like alone: not computed at run time
    shapes = ops.concatenate([ops.ones_like(h), ops.zeros_like(shape_only)], axis=-1) * 0.5
    y = layers.Concatenate()([layers.Add()([h, table]), h * table, Positions()(h), h + folded, shapes])
    compiled = assert_matches_keras(keras.Model(inp, layers.Flatten()(y), name="constants"), tmp_path)
    names = [op.name for op in compiled.graph.ops]  # computed at compile time: no op of theirs runs
    fixed = keras.Input((5, 4), batch_size=8)  # an Input of a fixed batch: its constants are one sample all the same
    g = layers.Dense(4)(fixed)
    assert_matches_keras(keras.Model(fixed, layers.Flatten()(g * ops.full_like(g, 2.0) + ops.ones_like(g))), tmp_path,
                         name="Fixed")
    assert not [n for n in names if n.startswith(("table", "over_table", "softmax", "full_like", "ones_like",
                                                  "zeros_like", "shape_only"))], names
    class Noisy(layers.Layer):  # on constants: Keras would draw anew each call, a header once
        def call(self, t):
            self.add_loss(ops.sum(t))  # (a training loss: ignored, as in a traced call())
            return t + keras.random.normal(ops.shape(t))

    target = tmp_path / "refused.h"
    for model, why in ((keras.Model(inp, h + Noisy(name="noisy")(Table(name="t5")(h))),
                        r"layer 'noisy' .* draws random numbers at inference with keras.random.normal: Keras draws"),
                       (keras.Model(inp, ops.matmul(h, ops.transpose(Table(name="t2")(h), (0, 2, 1)))),
                        r"operation 'matmul\w*' .* reads a constant .* together with a value computed from the input"),
                       (keras.Model(inp, h + ops.sum(Table(name="t4")(h), axis=0)),
                        r"operation 'sum\w*' .* computes \(5, 4\) from constants for one sample where Keras declares "
                        r"\(5, 4\) for a batch of any size: it mixes the batch's samples"),
                       (keras.Model(inp, h + ops.sum(Table(name="t6")(h), axis=0, keepdims=True)),
                        r"computes \(1, 5, 4\) from constants for one sample where Keras declares \(1, 5, 4\) for a "
                        r"batch of any size"),
                       (keras.Model(inp, layers.Dense(2, name="reader")(Table(name="t3")(h))),
                        r"outputs a constant: layer 'reader' does not depend")):
        with pytest.raises(UnsupportedModelError, match=why):
            micronets.export(model, str(target))
        assert not target.exists()


# ------------------------------------------------------------------ refusals name the cause
def test_unsupported_operation_names_itself():
    inp = keras.Input((4, 4, 2))
    model = keras.Model(inp, keras.ops.tan(layers.Conv2D(2, 1)(inp)))
    with pytest.raises(UnsupportedModelError, match=r"operation 'tan.*keras.ops Tan.*not supported"):
        compile_model(model)


def test_resizing_and_center_crop_sample_as_keras(tmp_path):
    """Keras' Resizing and CenterCrop inside the model, each branch a model output compared value
    by value: bilinear and nearest down and up at ratios whose float32 scale is inexact (a nearest
    index off by one would differ by a whole pixel), crops and pads to the aspect ratio read in
    place (and at the target size a plain crop, or padding a consumer absorbs), CenterCrop both
    ways, and a resize of a map computed in the arena; keras.ops.image.resize (keras-hub
    MobileNetV5's multi-scale fusion; was refused) as the layer."""
    inp = keras.Input((13, 17, 3))
    branches = [
        layers.Resizing(5, 7),
        layers.Resizing(20, 30),
        layers.Resizing(9, 6, interpolation="nearest"),
        layers.Resizing(19, 40, interpolation="nearest"),
        layers.Resizing(6, 5, crop_to_aspect_ratio=True),
        layers.Resizing(7, 4, pad_to_aspect_ratio=True, interpolation="nearest"),
        layers.Resizing(13, 13, crop_to_aspect_ratio=True),
        layers.Resizing(17, 17, pad_to_aspect_ratio=True),
        layers.CenterCrop(8, 11),
        layers.CenterCrop(16, 10),
    ]
    outs = [b(inp) for b in branches]
    outs.append(layers.Resizing(8, 8)(layers.Conv2D(4, 3, activation="relu")(inp)))
    outs.append(keras.ops.image.resize(inp, (9, 5), interpolation="nearest", crop_to_aspect_ratio=True))
    model = keras.Model(inp, outs, name="resizes")
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("Resize") == 9  # CenterCrop(16, 10) resizes its aspect-ratio crop
    described = [op.describe() for op in compiled.graph.ops if op.kind == "Resize"]
    assert "bilinear 13x17 -> crop 13x10 at 0,3 -> 6x5" in described  # read in place, no copy
    assert "nearest 13x17 -> pad 8,0 to 29x17 -> 7x4" in described
    assert kinds.count("Cropping") == 2 and kinds.count("ZeroPadding") == 1


def test_a_tutorial_front_end_resizes_raw_camera_pixels(tmp_path):
    """TensorFlow's data-augmentation tutorial puts a Sequential of Resizing and Rescaling(1/255)
    and random augmentation in front of the network: a raw QQVGA frame goes in, the uint8 entry
    passes pixels through unscaled, and both entries match Keras."""
    front = keras.Sequential([layers.Resizing(24, 32), layers.Rescaling(1.0 / 255)], name="resize_and_rescale")
    augment = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)], name="augment")
    model = seq((120, 160, 3), front, augment, layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(), layers.Flatten(), layers.Dense(4, activation="softmax"))
    pixels = (random_images((120, 160, 3), n=6) * 255).round().astype(np.uint8)
    x = pixels.astype(np.float32)
    compiled = assert_matches_keras(model, tmp_path, x=x)
    assert compiled.input_scale == 1.0
    exe = host.build(str(tmp_path / "Net.h"), "Net", out_dir=str(tmp_path), flags=host.RELAXED_INLINE)
    raw = host.run(exe, pixels, 4, entry="uint8")
    assert np.abs(raw - keras_predict(model, x)).max() <= TOL


@pytest.mark.parametrize("layer, message", [
    (layers.Resizing(4, 4, interpolation="bicubic"), r"interpolation 'bicubic'; supported: bilinear, nearest"),
    (layers.Resizing(4, 4, antialias=True), r"antialias=True"),
    (layers.Resizing(4, 8, pad_to_aspect_ratio=True, fill_value=1.0), r"fill_value=1.0; only 0"),
], ids=["bicubic", "antialias", "fill"])
def test_resizing_refusals_say_why(layer, message):
    with pytest.raises(UnsupportedModelError, match=message):
        compile_model(seq((8, 8, 3), layer, layers.Flatten()))


def test_bilinear_upsampling_resizes_as_keras_and_bicubic_is_refused(tmp_path):
    """UpSampling2D(interpolation="bilinear") is keras.ops.image.resize to the scaled size (a
    U-Net's decoder); bicubic is refused naming it, never run as nearest."""
    inp = keras.Input((4, 5, 2))
    y = layers.Conv2D(3, 3, padding="same")(inp)
    up = layers.UpSampling2D((2, 3), interpolation="bilinear")(y)
    model = keras.Model(inp, layers.Flatten()(layers.Conv2D(2, 3)(up)))
    compiled = assert_matches_keras(model, tmp_path)
    assert any(op.kind == "Resize" for op in compiled.graph.ops)
    with pytest.raises(UnsupportedModelError, match=r"interpolation 'bicubic'"):
        compile_model(seq((4, 4, 2), layers.UpSampling2D(2, interpolation="bicubic")))


def test_transposed_convolutions(tmp_path):
    """Conv2DTranspose and Conv1DTranspose, each branch a model output compared value by value:
    'same' and 'valid', strides from 1 to 3 and per axis, kernels smaller than the stride (outputs
    no tap reaches: the bias alone), output_padding under both paddings ('same' then drops a
    row and column first), no bias, a fused activation and a BatchNorm folded in, of the input
    and of a map computed in the arena."""
    inp = keras.Input((5, 7, 3))
    branches = [
        layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2DTranspose(3, (4, 3), strides=(2, 1), output_padding=(1, 0)),
        layers.Conv2DTranspose(5, 3, strides=2, padding="same", output_padding=1, use_bias=False),
        layers.Conv2DTranspose(2, 1, strides=3),
        layers.Conv2DTranspose(3, 4, strides=2, padding="same", output_padding=1),
        layers.Conv2DTranspose(2, (2, 5), strides=(3, 2), padding="same"),
    ]
    outs = [b(inp) for b in branches]
    x = layers.Conv2D(4, 3, activation="relu")(inp)
    outs.append(layers.BatchNormalization()(layers.Conv2DTranspose(3, 3, strides=2, use_bias=False)(x)))
    model = keras.Model(inp, outs, name="upconvs")
    compiled = assert_matches_keras(model, tmp_path)
    ops = [op for op in compiled.graph.ops if op.kind == "Conv2DTranspose"]
    assert len(ops) == 7 and not any(op.kind == "BatchNormalization" for op in compiled.graph.ops)
    assert [op.describe() for op in ops[:6]] == ["3x3 x2", "4x3 x(2, 1)", "3x3 x2", "1x1 x3", "4x4 x2 crop 1,1",
                                                 "2x5 x(3, 2) crop 0,1"]
    assert ops[3].macs() == 5 * 7 * 3 * 2  # 1x1 taps land once each: 15x21 outputs, a third of rows and columns reached

    seq_in = keras.Input((9, 4))
    y = layers.Conv1DTranspose(5, 3, strides=2, padding="same", activation="tanh")(seq_in)
    y = layers.Conv1DTranspose(2, 4, strides=3, output_padding=2)(y)
    assert_matches_keras(keras.Model(seq_in, y, name="upconv1d"), tmp_path, name="Seq")


def test_group_and_unit_normalization(tmp_path):
    """GroupNormalization with 4 groups of 2 channels (a map in the arena, an activation fused
    after), one group (the whole map, no beta), a group per channel (instance norm, no gamma) and
    on a sequence; UnitNormalization of each pixel's channels and of a vector."""
    inp = keras.Input((6, 5, 8))
    gn = layers.GroupNormalization(groups=4)(layers.Conv2D(8, 3, padding="same")(inp))
    outs = [layers.Activation("relu")(gn), layers.GroupNormalization(groups=1, center=False)(inp),
            layers.GroupNormalization(groups=8, scale=False)(inp), layers.UnitNormalization()(layers.Conv2D(6, 1)(inp)),
            layers.GroupNormalization(groups=2)(layers.Reshape((30, 8))(inp)),
            layers.UnitNormalization()(layers.Dense(5)(layers.Flatten()(inp)))]
    model = keras.Model(inp, outs, name="norms")
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if type(layer).__name__ == "GroupNormalization":  # gamma and beta other than Keras' 1 and 0
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if k == 0 and layer.scale
                               else rng.normal(0.0, 0.3, w.shape).astype(np.float32) for k, w in enumerate(layer.get_weights())])
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.label() for op in compiled.graph.ops if op.kind in ("GroupNorm", "UnitNorm")]
    assert "GroupNorm 4 groups of 2 channels x 30 positions + ReLU" in kinds and len(kinds) == 6, kinds


def test_time_distributed_layers_of_the_last_axis(tmp_path):
    seq_in = keras.Input((7, 4))
    y = layers.TimeDistributed(layers.Dense(6, activation="tanh"))(seq_in)
    y = layers.TimeDistributed(layers.Dropout(0.3))(layers.TimeDistributed(layers.LayerNormalization())(y))
    y = layers.TimeDistributed(layers.Dense(3))(layers.LSTM(5, return_sequences=True)(y))
    assert_matches_keras(keras.Model(seq_in, layers.TimeDistributed(layers.Softmax())(y), name="td"), tmp_path)
    model = seq((4, 6, 6, 1), layers.TimeDistributed(layers.Conv2D(2, 3, name="per_frame"), name="frames"), layers.Flatten())
    with pytest.raises(UnsupportedModelError, match=r"'frames' \(TimeDistributed\) wraps 'per_frame' \(Conv2D\)"):
        compile_model(model)


def test_transposed_convolution_refusals_say_why():
    with pytest.raises(UnsupportedModelError, match=r"tc.*dilation_rate=\(2, 2\); only 1"):
        compile_model(seq((6, 6, 2), layers.Conv2DTranspose(2, 3, dilation_rate=2, name="tc"), layers.Flatten()))


# ------------------------------------------------------------------ class names
TRICKY_NAMES = ["softmax", "conv2d", "dense", "global_pool", "output", "outputs", "proba", "arena", "predict", "run",
                "numInputs", "std", "exp", "NAN", "INFINITY", "M_PI", "INT8_MAX", "MICRONETS_INLINE",
                "MICRONETS_WEIGHTS_ATTR", "ld", "input_lut", "act_relu", "names", "finish", "rearrange", "Foo", "FOO",
                "micronets_x", "size_t", "memcpy", "expf", "erff", "classNames", "outputs1", "numOutputs3", "main"]


def test_every_accepted_class_name_compiles_and_refusals_say_why(tmp_path):
    """All accepted names (the issue's list plus 40 random identifiers) compile together in one
    translation unit and each model still computes; refused ones get a reason."""
    rng = random.Random(7)
    randoms = ["".join(rng.choice(string.ascii_letters + "_") for _ in range(rng.randint(1, 3)))
               + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(0, 4)))
               for _ in range(40)]
    model = seq((3, 3, 1), layers.Conv2D(2, 1), layers.Flatten(), layers.Dense(3, activation="softmax"))
    x = inputs_for((3, 3, 1), n=2)
    liven(model, x)
    ref = keras_predict(model, x[:1])[0]
    accepted = []
    for name in dict.fromkeys(TRICKY_NAMES + randoms):
        try:
            check_classname(name)
        except ValueError as exc:
            assert repr(name) in str(exc) and len(str(exc)) > len(repr(name)) + 20
            continue
        micronets.export(model, str(tmp_path / f"h_{len(accepted)}.h"), classname=name)
        accepted.append(name)
    assert not {"output", "outputs", "exp", "NAN", "M_PI", "INT8_MAX", "MICRONETS_INLINE", "std", "main", "outputs1",
                "micronets_x", "predict", "size_t"} & set(accepted)
    assert {"Foo", "FOO", "conv2d", "dense", "softmax", "run", "ld", "names", "act_relu"} <= set(accepted)
    values = ", ".join(f"{v:.9e}f" for v in x[0].reshape(-1))
    body = "".join(f'#include "h_{k}.h"\n' for k in range(len(accepted)))
    body += f"#include <stdio.h>\nstatic const float in[9] = {{{values}}};\nint main()\n{{\n"
    body += "".join(f'    {{ static {n} m; m.predict(in); printf("%.7g\\n", m.outputs[0]); }}\n' for n in accepted)
    body += "    return 0;\n}\n"
    (tmp_path / "all.cpp").write_text(body)
    subprocess.run(["g++", *host.STRICT_FLAGS, "-O0", "all.cpp", "-o", "all"], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "all")], capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == len(accepted)
    assert np.allclose([float(v) for v in out], ref[0], atol=1e-6)


def test_a_class_named_like_a_template_parameter_runs_through_the_host_driver(tmp_path):
    """A network class called T: micronets.host's driver (verify, the tests, the benchmarks) had
    a `template <typename T>` whose parameter hid the class, so the driver did not compile."""
    model = seq((3, 3, 1), layers.Conv2D(2, 1), layers.Flatten(), layers.Dense(3))
    x = inputs_for((3, 3, 1), n=2)
    liven(model, x)
    micronets.export(model, str(tmp_path / "T.h"), classname="T")
    assert np.allclose(host.run_header(str(tmp_path / "T.h"), "T", x), keras_predict(model, x), atol=1e-5)


# ------------------------------------------------------------------ export's error paths
def _files(folder):
    return sorted(os.listdir(folder))


def test_export_errors_are_clear_and_write_nothing(tmp_path):
    model = seq((4, 4, 1), layers.Conv2D(2, 3), layers.Flatten())
    with pytest.raises(TypeError, match="keras.Model"):
        micronets.export("model.keras", str(tmp_path / "a.h"))
    with pytest.raises(ValueError, match="input_scale must be a number"):
        micronets.export(model, str(tmp_path / "a.h"), input_scale="abc")
    with pytest.raises(OSError, match="output file name is required"):
        micronets.export(model, "")
    with pytest.raises(OSError, match="names a folder"):
        micronets.export(model, str(tmp_path) + os.sep)
    assert _files(tmp_path) == []


def test_export_through_a_symlink_keeps_the_link(tmp_path):
    model = seq((4, 4, 1), layers.Conv2D(2, 3), layers.Flatten())
    real = tmp_path / "real.h"
    real.write_text("old")
    link = tmp_path / "link.h"
    link.symlink_to(real)
    micronets.export(model, str(link))
    assert link.is_symlink() and "micronets" in real.read_text()
    assert oct(real.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("pool", [
    lambda: layers.MaxPooling2D(2),
    lambda: layers.MaxPooling2D(3, strides=2, padding="same"),
    lambda: layers.AveragePooling2D((3, 2), strides=(1, 2)),
    lambda: layers.AveragePooling2D(2, padding="same"),
], ids=["max2", "max3s2same", "avg3x2", "avg2same"])
@pytest.mark.parametrize("kernel", [1, 3], ids=["pointwise", "3x3"])
def test_conv_then_pool_runs_fused_through_a_ring(pool, kernel, tmp_path):
    """The conv's output never exists whole: the fused kernel pools from a ring of rows."""
    model = seq((11, 9, 2), layers.Conv2D(5, kernel, activation="relu"), pool(), layers.Flatten())
    compiled = assert_matches_keras(randomise(model, spread=3.0), tmp_path, live=False)
    (op,) = compiled.graph.ops
    assert op.kind.startswith("Conv2D+") and "ring of" in op.label()
    assert compiled.summary()["arena_bytes"] < op.conv.output.nbytes


def test_pooling_walks_backwards_over_its_input_when_that_packs_tighter(tmp_path):
    """A pool followed by a conv that widens the channels: the planner puts the pool's output over
    the far end of its input (a reverse walk), so the conv can then overlap the pool's output."""
    model = randomise(seq((1, 64, 3), layers.Conv2D(16, (1, 5), activation="relu"), layers.MaxPooling2D((1, 2)),
                          layers.Conv2D(32, (1, 5), activation="relu"), layers.GlobalAveragePooling2D(),
                          layers.Dense(4)), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, live=False)
    pool = next(op for op in compiled.graph.ops if op.kind == "MaxPool2D")
    from micronets.compiler.plan import Placed

    assert Placed(pool, compiled.plan, ("outputs",)).reverse
    s = compiled.summary()
    assert s["arena_bytes"] == s["inplace_bound"]


def test_convs_write_their_channels_of_a_concatenation_without_a_copy(tmp_path):
    """SqueezeNet's fire module: both expand convs write straight into their channel slices of
    the concatenation (output pixels 24 floats apart); no copy op remains and the arena shrinks."""
    from micronets.compiler.trace import trace
    from micronets.compiler.plan import plan_memory

    inp = keras.Input((12, 12, 8))
    s = layers.Conv2D(4, 1, activation="relu", name="squeeze")(inp)
    a = layers.Conv2D(16, 1, activation="relu", name="expand1x1")(s)
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="expand3x3")(s)
    x = layers.Concatenate(name="fire")([a, b])
    x = layers.Conv2D(6, 3, strides=2, name="next")(x)
    model = randomise(keras.Model(inp, layers.Flatten()(x)), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, live=False)
    ops = {op.name: op for op in compiled.graph.ops}
    assert "fire" not in ops
    assert [ops[n].output.channel_offset for n in ("expand1x1", "expand3x3")] == [0, 16]
    assert "conv2d<12, 12, 4, 12, 12, 8, 24," in compiled.header  # the 3x3 conv's pixels are 24 floats apart
    copying = plan_memory(trace(model, without=("concatenate_in_place",)))
    assert compiled.summary()["arena_bytes"] < copying.arena_size


def test_an_input_never_lies_inside_a_concatenation_that_slices_were_written_into(tmp_path, monkeypatch):
    """A conv writes its channels of the concatenation before the concatenation copies its other
    input: that input must not lie inside the concatenation's bytes, whatever gap the op offers
    (here any: Rearrange.inplace_gap 0 where one input is left), or the conv would overwrite it first."""
    from micronets.compiler.ops.rearrange import Rearrange

    monkeypatch.setattr(Rearrange, "inplace_gap", lambda self, i: 0 if len(self.inputs) == 1 else None)
    inp = keras.Input((6, 6, 4))
    a = layers.Conv2D(8, 1, activation="relu", name="a")(inp)
    b = layers.MaxPooling2D(3, strides=1, padding="same", name="b")(layers.Conv2D(5, 1, name="b0")(inp))
    x = layers.Concatenate(name="cat")([a, b])
    model = randomise(keras.Model(inp, layers.Flatten()(layers.Conv2D(3, 1, name="next")(x))), spread=3.0)
    compiled = assert_matches_keras(model, tmp_path, live=False)
    ops = {op.name: op for op in compiled.graph.ops}
    assert ops["a"].output.channel_offset == 0 and [t.name for t in ops["cat"].inputs] == ["b"]
    assert not compiled.plan.overlaps_input(ops["cat"])

def test_header_exp_is_within_one_ulp_of_libm_everywhere(tmp_path):
    """The header's own expf (no newlib expf on the device: -336 B flash, -104 B RAM for Pico on
    the Cortex-M4) against the host's libm, which rounds expf correctly: every 61st float of all
    2^32, and every float near the overflow and underflow edges, with and without fused
    multiply-adds (the Cortex-M4 build contracts them). It takes floor(x log2(e) + 1/2) without
    libm's floorf (a call of ~20 instructions on a Cortex-M4, which has no rounding instruction)."""
    model = seq((4,), layers.Dense(3, activation="softmax"))
    micronets.export(model, str(tmp_path / "e.h"), classname="E")
    assert "floorf(" not in (tmp_path / "e.h").read_text()
    (tmp_path / "e.cpp").write_text(r'''
#include <stdio.h>
#include "e.h"
static long long ordered(float f) { int32_t i; memcpy(&i, &f, 4); return i < 0 ? (long long)INT32_MIN - i : i; }
static long long worst = 0;
static void check(float x) {
    const float a = micronets_E::mn_expf(x), g = expf(x);
    if (a != a || g != g) { if ((a != a) != (g != g)) worst = 1000000; return; }
    long long d = ordered(a) - ordered(g);
    d = d < 0 ? -d : d;
    if (d > worst) worst = d;
}
int main() {
    for (unsigned long long u = 0; u < 0x100000000ull; u += 61) {
        uint32_t b = (uint32_t)u; float x; memcpy(&x, &b, 4); check(x);
    }
    for (float x = 88.0f; x < 89.0f; x = nextafterf(x, 100.0f)) check(x);
    for (float x = -104.5f; x < -86.0f; x = nextafterf(x, 0.0f)) check(x);
    check(0.0f); check(-0.0f); check(HUGE_VALF); check(-HUGE_VALF);
    printf("%lld\n", worst);
    return 0;
}
''')
    for extra in ([], ["-mfma", "-ffp-contract=fast"]):
        subprocess.run(["g++", "-O2", *extra, "e.cpp", "-o", "e"], check=True, cwd=tmp_path)
        out = subprocess.run([str(tmp_path / "e")], capture_output=True, text=True, check=True).stdout
        assert int(out) <= 1, f"mn_expf is {out.strip()} ulp from expf ({extra or 'no FMA'})"


def test_extract_patches_as_keras_and_3d_patches_refused(tmp_path):
    """keras.ops.image.extract_patches (ViT's patch layer), each variant a model output compared
    value by value: patches side by side (strides = size), overlapping and spaced-out windows,
    non-square sizes and strides, 'same' padding whose border windows are partly zeros, dilation,
    of the input and of a map computed in the arena. 3-D patches are refused by name."""
    inp = keras.Input((9, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inp)
    patches = keras.ops.image.extract_patches
    outs = [patches(inp, 4), patches(inp, 3, strides=2), patches(inp, (2, 3), strides=(3, 4)),
            patches(inp, 3, strides=2, padding="same"), patches(inp, (4, 3), strides=(3, 1), padding="same"),
            patches(inp, 2, strides=1, dilation_rate=2), patches(x, 3, strides=1, dilation_rate=2, padding="same"),
            patches(x, 2)]
    model = keras.Model(inp, [layers.Flatten()(o) for o in outs], name="patches")
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("ExtractPatches") == len(outs)
    assert [op.zero for op in compiled.graph.ops if op.kind == "ExtractPatches"] == [False] * 3 + [True] * 2 + [False, True, False]
    video = keras.Input((4, 4, 4, 2))
    with pytest.raises(UnsupportedModelError, match=r"extract_patches.*3-D"):
        compile_model(keras.Model(video, layers.Flatten()(patches(video, (2, 2, 2)))))


def test_split_parts_as_keras_and_multi_output_refusals_name_the_cause(tmp_path):
    """keras.ops.split (gMLP's spatial gating unit: u, v = split(x, 2, axis=-1)): equal parts of
    the channels, parts at indices of the rows (negative axis too), every part read by later
    layers or given as a model output, C++ == Keras per output; micronets.verify matches each part
    with its Keras value. Splitting the batch axis is refused; so is an unsupported multi-output
    keras.ops (FFT2: named as unsupported, not as 'multi-output'), and a Keras layer's multi-output
    form (LSTM return_state)."""
    from keras import ops

    inp = keras.Input((6, 5, 4))
    x = layers.Conv2D(4, 3, padding="same")(inp)
    u, v = ops.split(x, 2, axis=-1)
    top, middle, bottom = ops.split(x, [1, 4], axis=-3)
    left, right = ops.split(inp, [2], axis=2)
    gated = layers.Conv2D(2, 1)(u) * v
    model = keras.Model(inp, [layers.Flatten()(t) for t in (gated, top, middle, bottom, left, right)], name="splits")
    compiled = assert_matches_keras(model, tmp_path)
    assert [op.describe() for op in compiled.graph.ops if op.kind == "Split"] == [
        "axis -1, 0:2", "axis -1, 2:4", "axis -3, 0:1", "axis -3, 1:4", "axis -3, 4:6", "axis 2, 0:2", "axis 2, 2:5"]
    report = micronets.verify(model)
    parts = [c for c in report.layers if c.kind == "Split"]
    assert report.ok and len(parts) == 7 and all(c.max_abs is not None for c in parts)
    assert any(c.keras_layer.endswith(":1") for c in parts), [c.keras_layer for c in parts]  # v, not u again
    with pytest.raises(UnsupportedModelError, match=r"operation 'split.*splits axis 0 .*only the sample's axes"):
        compile_model(keras.Model(inp, ops.split(inp, 2, axis=0)[0]))
    vec = keras.Input((4, 4))
    with pytest.raises(UnsupportedModelError, match=r"operation 'fft2' \(keras.ops FFT2\) .* is not supported"):
        compile_model(keras.Model(vec, ops.fft2((vec, vec))[0]))


def test_subclassed_models_and_unread_outputs(tmp_path):
    """What keras.io's examples are made of, each C++ == Keras: a subclassed keras.Model (AODNet,
    Zero-DCE) exported itself once built, and called inside a functional model (traced through
    call(), training=False); a nested functional model of three outputs of which two are read (the
    FCN example's backbone); a user layer returning (output, weights) whose second nothing reads
    (involution); MultiHeadAttention(return_attention_scores=True) and LSTM(return_state=True)
    with only their first output read; a backbone declared for any input size. A subclassed model
    returning two outputs in training and one at inference is exported at inference; called in a
    graph in its training form, it is refused saying so. An unbuilt one is refused saying to build
    it."""

    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv, self.pool, self.dense = layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(), layers.Dense(3)
            self.drop = layers.Dropout(0.5)

        def call(self, images, training=True):  # two outputs in training, as DeiT's distilled student
            y = self.dense(self.drop(self.pool(self.conv(images)), training=training))
            return (y, y) if training else y

    class WithWeights(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.kernel = layers.Conv2D(4, 1)

        def call(self, x):
            k = self.kernel(x)
            return x * k, k

    net = Net()
    x = inputs_for((8, 8, 3))
    net(x)
    net.conv.set_weights([w * 4 for w in net.conv.get_weights()])
    (got,), _ = cpp_outputs(net, x, tmp_path)
    ref = np.asarray(net(x, training=False))
    assert np.ptp(ref, axis=0).max() > 1e-3 and np.abs(got - ref).max() <= TOL * max(1.0, np.abs(ref).max())
    assert not net._inbound_nodes  # the export's call of the model was removed

    inp = keras.Input((8, 8, 3))
    trunk_in = keras.Input((None, None, 3))  # a backbone of any size (Zero-DCE, the learnable resizer)
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(trunk_in)
    b = layers.MaxPooling2D()(a)
    c = layers.Conv2D(4, 3, padding="same")(b)
    trunk = keras.Model(trunk_in, [a, b, c], name="trunk")
    fa, fb, fc = trunk(inp)
    y, _ = WithWeights()(layers.Add()([layers.UpSampling2D()(fc), fa]))
    seq = layers.Reshape((16, 16))(y)
    att, _ = layers.MultiHeadAttention(2, 4)(seq, seq, return_attention_scores=True)
    last, _, _ = layers.LSTM(5, return_state=True)(att)
    inner = Net()
    model = keras.Model(inp, [layers.Flatten()(inner(y, training=False)), last, layers.Flatten()(fb)], name="unread")
    liven(model, x)  # does not see into the subclassed Net: its head is scaled here to unit spread on x
    spread = np.ptp(keras_predict(model, x)[0], axis=0).max()
    inner.dense.set_weights([w / spread for w in inner.dense.get_weights()])
    assert_matches_keras(model, tmp_path, x=x, name="Unread", live=False)
    with pytest.raises(UnsupportedModelError, match=r"returns 1 tensor\(s\) at inference \(training=False, as predict"
                                                    r"\(\) runs it\) where the model's graph took 2"):
        compile_model(keras.Model(inp, Net()(inp)[0]))
    with pytest.raises(UnsupportedModelError, match=r"'net_\d+' \(Net, a subclassed keras.Model\) has no input "
                                                    r"of known shape: call it once"):
        compile_model(Net())


def test_structured_data_model_of_one_input_per_feature(tmp_path):
    """keras.io's structured-data examples feed each feature as its own Input: categorical ones
    as integer ids of shape () looked up by Embeddings, numeric ones normalised and concatenated.
    The header takes one pointer per feature (ids as floats), in the model's order, and matches
    Keras; per-layer verify draws ids for the inputs only Embeddings read."""
    from micronets.verification import verify

    color, shape = keras.Input((), dtype="int32", name="color"), keras.Input((), dtype="int32", name="shape")
    age, weight = keras.Input((1,), name="age"), keras.Input((1,), name="weight")
    numeric = layers.Normalization(mean=40.0, variance=100.0)(layers.Concatenate()([age, weight]))
    x = layers.Concatenate()([layers.Embedding(5, 3)(color), layers.Embedding(7, 4)(shape), numeric])
    model = keras.Model([color, weight, shape, age], layers.Dense(3, activation="softmax")(layers.Dense(8, activation="relu")(x)))
    rng = np.random.default_rng(4)
    n = 12
    xs = [rng.integers(0, 5, n), rng.normal(60, 15, (n, 1)), rng.integers(0, 7, n), rng.normal(40, 10, (n, 1))]
    ref = np.asarray(model([np.asarray(v, "int32" if v.ndim == 1 else "float32") for v in xs]))
    (got,), compiled = cpp_outputs(model, [np.asarray(v, np.float32).reshape(n, -1) for v in xs], tmp_path, name="Tabular")
    assert len(set(ref.argmax(1).tolist())) >= 2 and np.abs(got - ref).max() <= TOL
    assert "predict(const float* input, const float* input1, const float* input2, const float* input3)" in compiled.header
    report = verify(model)
    assert report.ok, report.table()


def test_subclassed_models_of_several_inputs(tmp_path):
    """A subclassed keras.Model whose call() takes a list of inputs, or a dict: exported with one
    predict() argument per input, a list's in its order, a dict's in Keras' (sorted keys), named in
    the header's comment. Both inputs have one shape and go through different layers, so a swap
    would not match. verify compares what Keras computes of them (the model's output; the ops
    inside its call() have no Keras output of their own, and the table says so). A call() taking
    its inputs as separate arguments is refused saying how to write it."""
    from micronets.verification import verify

    class Pair(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.left, self.right = layers.Dense(4, activation="tanh"), layers.Dense(4, activation="tanh")
            self.out = layers.Dense(3)

        def call(self, inputs):
            a, b = inputs
            return self.out(keras.ops.concatenate([self.left(a), self.right(b) * 2.0], axis=-1))

    class Named(Pair):
        def call(self, inputs):  # keys not in sorted order
            return self.out(keras.ops.concatenate([self.left(inputs["zeta"]), self.right(inputs["alpha"])], axis=-1))

    class Apart(Pair):
        def call(self, a, b):
            return self.out(self.left(a) + self.right(b))

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    for model, x, header_order in ((Pair(), [a, b], [a, b]), (Named(), {"zeta": a, "alpha": b}, [b, a])):
        ref = np.asarray(model(x))
        (got,), compiled = cpp_outputs(model, header_order, tmp_path, name=type(model).__name__)
        assert np.ptp(ref, axis=0).min() > 1e-2 and np.abs(got - ref).max() <= TOL * max(1.0, np.abs(ref).max())
        (swapped,), _ = cpp_outputs(model, header_order[::-1], tmp_path, name=type(model).__name__)
        assert np.abs(swapped - ref).max() > 1e-2
        assert not model._inbound_nodes  # the export's call of the model was removed
        report = verify(model, header_order)
        assert report.ok and report.layers[-1].max_abs is not None, report.table()
        assert "have no Keras output of their own" in report.table()
    names = [line.split("'")[1] for line in compiled.header.splitlines() if re.match(r"// Input\d", line)]
    assert names == ["alpha", "zeta"]
    model = Apart()
    model(a, b)
    with pytest.raises(UnsupportedModelError, match=r"takes its inputs as 2 arguments of call\(\) \(a, b\); .*Write "
                                                    r"call\(self, inputs\) taking one tensor, a list or a dict"):
        compile_model(model)


def test_concatenated_constants_and_converters_that_lose_values_are_refused(tmp_path, monkeypatch):
    """A class token concatenated before the patches (DeiT, CaiT, PatchConvNet: ops.concatenate of
    a tiled weight and a model value) is copied in from flash, in order: it was dropped, and the
    CLS row read afterwards was the first patch's. So are user layers' constants into Keras'
    Concatenate, in between model values; and a weight added on the left of the operator (DeiT's
    ``self.positional_embedding + patches``: a Keras variable's own operator refused symbolic
    tensors). Every converter's output must hold as many
    values as Keras declares: one that loses some is refused naming it, not compiled wrong."""
    from keras import ops
    from micronets.compiler.ops import base, rearrange

    class ClassToken(layers.Layer):
        def build(self, shape):
            self.cls = self.add_weight(shape=(1, 1, shape[-1]), initializer="random_normal", name="cls")
            self.pos = self.add_weight(shape=(1, shape[1] + 1, shape[-1]), initializer="random_normal", name="pos")

        def call(self, x):  # DeiT writes the weight first: a Keras variable's own + refused symbolic tensors
            return self.pos + ops.concatenate([ops.tile(self.cls, (ops.shape(x)[0], 1, 1)), x], axis=1)

    class Table(layers.Layer):
        def build(self, shape):
            self.table = self.add_weight(shape=(2, shape[-1]), initializer="random_normal", name="table")

        def call(self, x):
            return ops.broadcast_to(ops.convert_to_tensor(self.table), (ops.shape(x)[0], 2, ops.shape(x)[-1]))

    inp = keras.Input((6, 4))
    h = layers.Dense(4)(inp)
    tokens = ClassToken(name="token")(h)
    tabled = layers.Concatenate(axis=1)([Table(name="table")(h), h, Table(name="table2")(h)])
    mixed = layers.Conv1D(4, 3, padding="same")(tokens)  # row 0: the token and the first patch
    model = keras.Model(inp, [mixed[:, 0], layers.GlobalAveragePooling1D()(tokens), layers.Flatten()(tabled)],
                        name="class_token")
    compiled = assert_matches_keras(model, tmp_path)
    concats = [op for op in compiled.graph.ops if op.kind == "Concatenate"]
    assert [len(op.constants) for op in concats] == [1, 2] and all(op.weights() for op in concats)

    def dropping(layer, inputs, ctx):  # the old converter: model values only
        return rearrange.concatenate(ctx, inputs, int(layer.axis), layer.name)

    monkeypatch.setitem(base.CONVERTERS, "op:Concatenate", dropping)
    target = tmp_path / "lost.h"
    with pytest.raises(UnsupportedModelError, match=r"operation 'token/concatenate' \(keras.ops Concatenate\) in "
                                                    r"model 'token' compiles to \(6, 4\) \(24 values\) where Keras "
                                                    r"declares \(7, 4\): a micronets bug"):
        micronets.export(model, str(target))
    assert not target.exists()


def test_padded_inputs_of_a_concatenation_are_materialised_once(tmp_path):
    """A ZeroPadding2D absorbed by its consumer has to be written out before a concatenation copies
    it: once per padded input. Reading the operands in two passes (constants, then values) wrote each
    padded input twice, the first copies dead but planned and run."""
    inp = keras.Input((4, 4, 2))
    padded = layers.ZeroPadding2D(1)(inp)
    conv = layers.Conv2D(2, 3)(layers.ZeroPadding2D(1)(inp))
    model = randomise(keras.Model(inp, layers.Concatenate()([padded, layers.ZeroPadding2D(1)(conv)]), name="padcat"))
    compiled = assert_matches_keras(model, tmp_path)
    assert [op.kind for op in compiled.graph.ops] == ["Conv2D", "ZeroPadding", "ZeroPadding", "Concatenate"]


def test_crop_and_pad_images_as_keras_in_shiftvits_shift(tmp_path):
    """keras.ops.image.crop_images and pad_images (and keras.ops.pad with zeros), as keras.io's
    ShiftViT moves a quarter of the channels one pixel each way (crop one side, pad the other;
    margins given or left to the target size): a crop is a window, a pad is ZeroPadding2D's view,
    absorbed by a convolution that reads it and written out for anything else. Channels-first
    images, and pads other than zeros around rows and columns, are refused by name."""
    from keras import ops

    class Shift(layers.Layer):
        def call(self, x):
            h, w = x.shape[1], x.shape[2]
            moved = []
            for part, (top, left, dh, dw) in zip(ops.split(x, 4, axis=-1), [(0, 0, 0, 1), (0, 1, 0, 1), (0, 0, 1, 0), (1, 0, 1, 0)]):
                kept = ops.image.crop_images(part, top_cropping=top, left_cropping=left, target_height=h - dh, target_width=w - dw)
                moved.append(ops.image.pad_images(kept, top_padding=top, left_padding=left, target_height=h, target_width=w))
            return ops.concatenate(moved, axis=-1)

    class Around(layers.Layer):
        def call(self, x):
            return ops.image.pad_images(x, bottom_padding=2, right_padding=1, target_height=x.shape[1] + 3,
                                        target_width=x.shape[2] + 1)

    class Window(layers.Layer):
        def call(self, x):
            return ops.image.crop_images(x, bottom_cropping=1, right_cropping=2, target_height=x.shape[1] - 2,
                                         target_width=x.shape[2] - 2)

    inp = keras.Input((6, 7, 8))
    shifted = Shift(name="shift")(layers.Conv2D(8, 1, name="mix")(inp))
    absorbed = layers.Conv2D(3, 3, name="conv")(Around(name="around")(shifted))
    model = randomise(keras.Model(inp, [layers.Flatten()(shifted), layers.Flatten()(Window(name="window")(absorbed)),
                                        layers.Flatten()(Around(name="around2")(inp))], name="shiftvit_shift"))
    compiled = assert_matches_keras(model, tmp_path)
    kinds = [op.kind for op in compiled.graph.ops]
    assert kinds.count("Cropping") == 5 and kinds.count("ZeroPadding") == 5, kinds  # 'around' read by the conv

    # keras.ops.pad with zeros: the same view, of a map or a sequence; other values and axes refused by
    # name (mirrored modes: test_mirror_padding_as_cyclegan_pads)
    inp = keras.Input((5, 4, 3))
    x = layers.Conv2D(3, 1, name="mix")(inp)
    seq_ = layers.Reshape((20, 3))(x)
    outs = [layers.Conv2D(2, 3, name="reads_pad")(ops.pad(x, ((0, 0), (1, 2), (0, 1), (0, 0)))),
            ops.pad(x, ((0, 0), (2, 0), (1, 1), (0, 0)), constant_values=0.0), ops.pad(seq_, ((0, 0), (3, 1), (0, 0)))]
    compiled = assert_matches_keras(randomise(keras.Model(inp, [layers.Flatten()(o) for o in outs], name="padded")),
                                    tmp_path, name="Padded")
    assert [op.kind for op in compiled.graph.ops].count("ZeroPadding") == 2  # the conv reads its pad
    for kwargs, message in (({"constant_values": 1.0}, r"pads with 1.0; only with zeros"),
                            ({}, r"pads \[\(0, 0\), \(0, 0\), \(0, 0\), \(1, 1\)\] around a \(5, 4, 3\) sample")):
        widths = ((0, 0), (0, 0), (0, 0), (1, 1)) if not kwargs else ((0, 0), (1, 1), (1, 1), (0, 0))
        with pytest.raises(UnsupportedModelError, match=message):
            compile_model(keras.Model(inp, ops.pad(x, widths, **kwargs)))

    class First(layers.Layer):
        def call(self, x):
            return ops.image.crop_images(x, top_cropping=1, left_cropping=1, target_height=2, target_width=2,
                                         data_format="channels_first")

    inp = keras.Input((4, 4, 4))
    with pytest.raises(UnsupportedModelError, match=r"operation 'first/crop_images' uses data_format=channels_first; "
                                                    r"only channels_last is supported"):
        compile_model(keras.Model(inp, First(name="first")(inp)))


def test_one_element_per_sample_indexed_out_as_keras(tmp_path):
    """``x[:, i]`` of a vector or ``x[:, r, c, k]`` of a map leaves one value a sample, which
    keras.io's variable selection network expands back (``expand_dims(x[:, i], -1)``) and
    broadcasting reads as a scalar: it was refused ("takes a single element"); it is held as a
    vector of one."""
    from keras import ops

    inp = keras.Input((3, 4, 2))
    m = layers.Conv2D(2, 1, name="mix")(inp)
    h = layers.Dense(5, name="h")(layers.Flatten()(m))
    outs = [layers.Dense(3, name="per_feature")(ops.expand_dims(h[:, 2], -1)), h * ops.expand_dims(h[:, -1], -1),
            ops.expand_dims(m[:, 1, 2, 0], -1) + h]
    assert_matches_keras(randomise(keras.Model(inp, outs, name="picked")), tmp_path)


def test_swapaxes_and_float_casts_as_keras(tmp_path):
    """keras.ops.swapaxes (keras.io's vocal track separation swaps frequency and time) is a
    transpose of two axes, counted as Keras counts them; keras.ops.cast to a float dtype (keras.io's
    video transformer casts its float32 positions to float32) is the value itself. A cast to an
    integer is refused by name."""
    from keras import ops

    inp = keras.Input((4, 5, 3))
    x = layers.Conv2D(6, 1, name="mix")(inp)
    outs = [ops.swapaxes(x, 1, 2), ops.swapaxes(x, -1, -3), ops.cast(x, "float32") * 2.0]
    model = randomise(keras.Model(inp, [layers.Flatten()(o) for o in outs], name="swapped"))
    compiled = assert_matches_keras(model, tmp_path)
    assert [op.kind for op in compiled.graph.ops].count("Permute") == 2
    with pytest.raises(UnsupportedModelError, match=r"operation 'cast(_\d+)?' converts a model value to int32; only to a "
                                                    r"float dtype is supported"):
        compile_model(keras.Model(inp, ops.cast(x, "int32")))


def test_stack_as_keras_and_window_partitions_refused_saying_why(tmp_path):
    """keras.ops.stack, as keras.applications' caffe-style preprocess_input (ResNet50, VGG) swaps
    RGB to BGR inside the model, and along a middle axis, C++ == Keras. A model whose output holds
    windows in the batch axis (Swin's window partition, not reversed) is refused saying so."""
    from keras import ops

    inp = keras.Input((6, 5, 3))
    bgr = keras.applications.resnet50.preprocess_input(inp)
    x = layers.Conv2D(2, 3, padding="same")(inp)
    pair = ops.stack([x, layers.Conv2D(2, 1)(inp)], axis=2)  # (6, 5, 2, 2)
    model = keras.Model(inp, [layers.Conv2D(4, 3)(bgr), layers.Flatten()(pair)], name="stacks")
    compiled = assert_matches_keras(model, tmp_path, x=inputs_for((6, 5, 3)) * 255)  # pixels, as the mean expects
    assert [op.describe() for op in compiled.graph.ops if op.kind == "Stack"] == ["axis -1", "axis 2"]
    windows = ops.reshape(ops.reshape(x, (-1, 3, 2, 5, 2)), (-1, 3, 5, 2))
    with pytest.raises(UnsupportedModelError, match=r"output 0 has Keras shape \(2, 30\) for one sample: its batch "
                                                    r"axis holds 2 parts of the sample \(window partitions not reversed"):
        compile_model(keras.Model(inp, layers.Flatten()(windows)))
