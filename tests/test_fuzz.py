"""Random-architecture fuzz test: random graphs of the supported layers, compiled and run in C++.

Every model is drawn from one seed (``build_model(seed)``): random stacks and graphs of the layer
kinds the compiler supports (issue #10, section 2), on random input shapes (odd, non-square,
vector ``(D,)`` and sequence ``(L, C)`` inputs), with branches that fan out and join and sometimes
several outputs. Its weights are randomised with ``netutil.liven`` so every output varies with
the input, and a model whose Keras float32 result is itself imprecise (more than 0.3 x the
tolerance from Keras in float64) or huge is re-drawn at generation time, so that a mismatch always
means the C++ is wrong; the tolerance is never loosened.

Speed: g++ dominates, so each shard exports all of its headers first (distinct class names, each
header's internals in its own namespace) and compiles them into ONE driver program, which takes
the model's index on its command line and the inputs on stdin. Shards are separate tests, so
``pytest -n 2`` builds two at once. A header that breaks the shared build is found by compiling
each one alone, reported, and left out.

A failure names each failing model's seed and prints its layers; reproduce it with
``python tests/test_fuzz.py SEED`` (also prints the verify table), or more models with
``MICRONETS_FUZZ_MODELS=500 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import netutil  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: models in CI (override with MICRONETS_FUZZ_MODELS), split over SHARDS tests
N_MODELS = int(os.environ.get("MICRONETS_FUZZ_MODELS", "40"))
SHARDS = int(os.environ.get("MICRONETS_FUZZ_SHARDS", "4"))
BASE_SEED = int(os.environ.get("MICRONETS_FUZZ_SEED", "1000"))
TOL = 1e-5
N_INPUTS = 6
LIVEN_BATCH = 32

#: models drawn with the transformers' layers too, LayerNormalization and MultiHeadAttention
#: (test_fuzz_transformer_layers: their own seeds, so the draws of the seeds above stay as they were)
N_LN_MODELS = int(os.environ.get("MICRONETS_FUZZ_LN_MODELS", "12"))
LN_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ_LN_SEED", "5000"))
#: models drawn with keras.ops reductions, softmax over any axis, Dot, matmul and power too
#: (test_fuzz_keras_ops: their own seeds and their own random stream, as the transformers')
N_OPS_MODELS = int(os.environ.get("MICRONETS_FUZZ_OPS_MODELS", "12"))
OPS_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ_OPS_SEED", "7000"))
#: models with windows moved into the batch axis and back (test_fuzz_windows: their own seeds and
#: random stream)
N_WINDOWS_MODELS = int(os.environ.get("MICRONETS_FUZZ_WINDOWS_MODELS", "12"))
WINDOWS_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ_WINDOWS_SEED", "13000"))
#: models of two or three inputs (test_fuzz_several_inputs: their own seeds and random stream)
N_SEVERAL_MODELS = int(os.environ.get("MICRONETS_FUZZ_SEVERAL_MODELS", "10"))
SEVERAL_BASE_SEED = int(os.environ.get("MICRONETS_FUZZ_SEVERAL_SEED", "11000"))
#: random recurrent stacks in CI, all outputs of one model (MICRONETS_FUZZ_RNN_SEED / _STACKS)
RNN_SEED = int(os.environ.get("MICRONETS_FUZZ_RNN_SEED", "9000"))
N_RNN_STACKS = int(os.environ.get("MICRONETS_FUZZ_RNN_STACKS", "10"))

#: seeds that once failed (mismatch, crash or refusal): they always run, in their own test.
#: See the end of this file for each bug reduced to a minimal model.
REGRESSION_SEEDS = [1050, 1079, 1119, 1150, 1182, 1232, 2016, 9111, 9256, 9299, 9909]

ACTIVATIONS = ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "hard_sigmoid", "hard_silu",
               "hard_swish", "sigmoid", "tanh", "softplus", "softsign", "exponential", "softmax", "log_softmax",
               "linear"]


# ----------------------------------------------------------------------------------- generator
class _Gen:
    """Draws one random functional model from ``rng``; with ``ln_rng`` some layers are
    LayerNormalization or MultiHeadAttention, drawn (with their weights) from it; with ``ops_rng``
    some are keras.ops reductions, a softmax over any axis, Dot, matmul or power, drawn from it;
    with ``windows_rng`` some are window blocks (``windows``), drawn from it."""

    def __init__(self, rng, ln_rng=None, ops_rng=None, several=False, windows_rng=None):
        import keras

        self.k = keras
        self.L = keras.layers
        self.rng = rng
        self.ln_rng = ln_rng
        self.ops_rng = ops_rng
        self.windows_rng = windows_rng
        self.several = several
        self.count = 0
        self.taps = []  # intermediate tensors that may become extra outputs

    # -- helpers
    def name(self, kind):
        self.count += 1
        return f"{kind.lower()}_{self.count}"

    def chance(self, p):
        return bool(self.rng.random() < p)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def ri(self, lo, hi):  # inclusive
        return int(self.rng.integers(lo, hi + 1))

    @staticmethod
    def shape(x):
        return tuple(int(d) for d in x.shape[1:])

    def apply(self, layer, x):
        """``layer(x)``, or None when Keras refuses it or the result has an empty dimension."""
        try:
            y = layer(x)
        except Exception:  # noqa: BLE001 (an invalid draw: kernel larger than the map etc.)
            return None
        if any(d is None or int(d) <= 0 for d in y.shape[1:]):
            return None
        return y

    def act_arg(self, p=0.6):
        """A random ``activation=`` argument (exponential only where values are small: never here)."""
        if not self.chance(p):
            return None
        return self.pick([a for a in ACTIVATIONS if a not in ("exponential", "softmax", "log_softmax")]
                         + ["softmax"] * (1 if self.chance(0.3) else 0))

    # -- elementwise layers (any rank)
    def activation_layer(self, x):
        L, n = self.L, None
        r = self.rng.random()
        if r < 0.12:
            kw = {}
            if self.chance(0.5):
                kw["max_value"] = float(self.pick([1.0, 2.5, 6.0]))
            if self.chance(0.4):
                kw["negative_slope"] = float(self.pick([0.1, 0.3]))
            if self.chance(0.4):
                kw["threshold"] = float(self.pick([0.5, 1.0]))
            return L.ReLU(name=self.name("relu"), **kw)(x)
        if r < 0.18:
            return L.LeakyReLU(negative_slope=float(self.pick([0.05, 0.2, 0.3])), name=self.name("leaky"))(x)
        if r < 0.23:
            return L.ELU(alpha=float(self.pick([0.5, 1.0, 1.5])), name=self.name("elu"))(x)
        if r < 0.32:
            rank = len(self.shape(x))
            shared = None
            if rank >= 2 and self.chance(0.5):
                shared = list(range(1, rank))  # one slope per channel
            return L.PReLU(shared_axes=shared, name=self.name("prelu"))(x)
        if r < 0.38 and self.shape(x)[-1] > 1:  # (a softmax over one value is constant)
            return L.Softmax(name=self.name("softmax"))(x)
        if r < 0.44:
            # exponential on small values: squash first
            y = L.Activation(self.pick(["tanh", "sigmoid", "softsign"]), name=self.name("act"))(x)
            return L.Activation("exponential", name=self.name("act"))(y)
        n = self.pick([a for a in ACTIVATIONS if a != "exponential"
                       and (self.shape(x)[-1] > 1 or a not in ("softmax", "log_softmax"))])
        return L.Activation(n, name=self.name("act"))(x)

    def noise_layer(self, x):
        L = self.L
        rank = len(self.shape(x))
        options = [lambda: L.Dropout(0.3, name=self.name("dropout")),
                   lambda: L.GaussianNoise(0.5, name=self.name("gnoise")),
                   lambda: L.GaussianDropout(0.3, name=self.name("gdropout")),
                   lambda: L.AlphaDropout(0.3, name=self.name("adropout")),
                   lambda: L.ActivityRegularization(0.01, name=self.name("actreg")),
                   lambda: L.Identity(name=self.name("identity"))]
        if rank == 2:
            options.append(lambda: L.SpatialDropout1D(0.3, name=self.name("sdropout")))
        if rank == 3:
            options.append(lambda: L.SpatialDropout2D(0.3, name=self.name("sdropout")))
        return self.pick(options)()(x)

    def scale_layer(self, x):
        L = self.L
        c = self.shape(x)[-1]
        if self.chance(0.5):
            return L.Rescaling(float(self.pick([0.5, 2.0, 1 / 3.0])), offset=float(self.pick([0.0, -0.5, 0.25])),
                               name=self.name("rescale"))(x)
        mean = self.rng.normal(0.3, 0.5, c).astype(np.float32)
        var = self.rng.uniform(0.3, 3.0, c).astype(np.float32)
        return L.Normalization(mean=mean, variance=var, name=self.name("norm"))(x)

    def batchnorm(self, x):
        rank = len(self.shape(x))
        axis = -1
        if rank >= 2 and self.chance(0.3):
            axis = self.ri(1, rank - 1)  # a non-channel axis
        return self.L.BatchNormalization(axis=axis, name=self.name("bn"))(x)

    def dense(self, x, units=None, activation="random"):
        units = units or self.ri(2, 8)
        act = self.act_arg() if activation == "random" else activation
        return self.L.Dense(units, activation=act, use_bias=self.chance(0.85), name=self.name("dense"))(x)

    def layer_norm(self, x):
        """LayerNormalization over the last axis (the one the compiler takes), with or without
        its centre and scale, random gamma (either sign) and beta; sometimes GroupNormalization
        (any number of groups dividing the channels) or UnitNormalization instead."""
        r = self.ln_rng
        c = self.shape(x)[-1]
        kind = r.random()
        if kind < 0.15 and "unit" in self.NORMS:
            return self.L.UnitNormalization(name=self.name("unitnorm"))(x)
        center, scale = bool(r.random() < 0.8), bool(r.random() < 0.8)
        if kind < 0.4 and "group" in self.NORMS:
            groups = int(r.choice([g for g in range(1, c + 1) if c % g == 0]))
            layer = self.L.GroupNormalization(groups=groups, epsilon=float(r.choice([1e-3, 1e-5])), center=center,
                                              scale=scale, name=self.name("groupnorm"))
        else:
            layer = self.L.LayerNormalization(axis=-1, epsilon=float(r.choice([1e-3, 1e-6])), center=center, scale=scale,
                                              name=self.name("layernorm"))
        y = layer(x)
        weights = ([r.uniform(0.5, 1.5, c) * r.choice([-1.0, 1.0], c)] if scale else []) + \
            ([r.normal(0.0, 0.5, c)] if center else [])
        layer.set_weights([w.astype(np.float32) for w in weights])
        return y

    def attention(self, x):
        """MultiHeadAttention of a sequence or map with itself (a causal mask on some sequences),
        or cross-attention to a projection of it over the same positions: 1 to 3 heads, key and
        value widths 1 to 8, with or without biases and output_shape; weights N(0, 0.5) so the
        softmaxes are neither uniform nor one-hot."""
        r = self.ln_rng
        kw = {}
        if r.random() < 0.3:
            kw["value_dim"] = int(r.integers(1, 9))
        if r.random() < 0.3:
            kw["output_shape"] = int(r.integers(1, 9))
        heads, key_dim, use_bias = int(r.integers(1, 4)), int(r.integers(1, 9)), bool(r.random() < 0.8)
        if use_bias and heads > 1 and self.shape(x)[0] == heads:
            # width-1 heads whose count is the first axis' length: Keras' TensorFlow backend adds
            # their biases along that axis (the compiler refuses them: test_layers checks it)
            key_dim = max(key_dim, 2)
            kw["value_dim"] = max(kw.get("value_dim", key_dim), 2)
        layer = self.L.MultiHeadAttention(num_heads=heads, key_dim=key_dim, use_bias=use_bias, name=self.name("attention"),
                                          **kw)
        if r.random() < 0.25:
            other = self.L.Dense(int(r.integers(1, 9)), name=self.name("kv"))(x)
            y = layer(x, other)
        else:
            y = layer(x, x, use_causal_mask=bool(self.CAUSAL and len(self.shape(x)) == 2 and r.random() < 0.4))
        layer.set_weights([r.normal(0.0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
        return y

    def recurrent(self, x):
        """SimpleRNN, GRU or LSTM over a sequence (every step out or the last; backwards; with or
        without biases; GRU's reset before or after), sometimes inside a Bidirectional with any
        merge; weights N(0, 0.5)."""
        r = self.ln_rng
        cell = str(r.choice(["SimpleRNN", "GRU", "LSTM"]))
        kw = dict(units=int(r.integers(1, 9)), return_sequences=bool(r.random() < 0.6),
                  go_backwards=bool(r.random() < 0.25), use_bias=bool(r.random() < 0.85))
        if cell == "GRU":
            kw["reset_after"] = bool(r.random() < 0.6)
        bidirectional = r.random() < 0.3
        if bidirectional:
            kw["go_backwards"] = False  # (Keras refuses a Bidirectional of a backwards layer)
        layer = getattr(self.L, cell)(name=self.name(cell.lower()), **kw)
        if bidirectional:
            layer = self.L.Bidirectional(layer, merge_mode=str(r.choice(["concat", "sum", "ave", "mul"])),
                                         name=self.name("bidirectional"))
        y = layer(x)
        layer.set_weights([r.normal(0.0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
        return y

    # -- convolutions
    def conv(self, x, filters=None, keep_size=False):
        """Conv1D/2D, DepthwiseConv1D/2D or SeparableConv1D/2D on a sequence or a map."""
        L = self.L
        shape = self.shape(x)
        d = len(shape) - 1  # 1 or 2 spatial dims
        cin = shape[-1]
        kind = self.pick(["conv", "conv", "depthwise", "separable"])
        k = self.ri(1, 3) if not keep_size else self.pick([1, 3])
        kernel = k if d == 1 else ((k, self.ri(1, 3)) if self.chance(0.3) and not keep_size else k)
        strides, dilation = 1, 1
        if not keep_size:
            if self.chance(0.3):
                strides = 2 if d == 1 else self.pick([2, (2, 1), (1, 2)])
            elif self.chance(0.25):
                dilation = 2
        pads = ["same", "valid"] + (["causal"] if d == 1 and kind == "conv" else [])
        padding = "same" if keep_size else self.pick(pads)
        act = self.act_arg()
        bias = self.chance(0.8)
        if kind == "conv":
            wanted = filters
            filters = filters or self.ri(1, 8)
            groups = 1
            if cin > 1 and self.chance(0.3):
                divisible = [g for g in range(2, cin + 1) if cin % g == 0 and filters % g == 0]
                if divisible:
                    groups = self.pick(divisible)
                elif wanted is None:
                    groups, filters = cin, cin * self.ri(1, 2)
            cls = L.Conv1D if d == 1 else L.Conv2D
            layer = cls(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation, groups=groups,
                        activation=act, use_bias=bias, name=self.name("conv"))
        elif kind == "depthwise":
            mult = 1 if filters is not None else self.pick([1, 1, 2, 3])
            cls = L.DepthwiseConv1D if d == 1 else L.DepthwiseConv2D
            layer = cls(kernel, strides=strides, padding=padding, depth_multiplier=mult, dilation_rate=dilation,
                        activation=act, use_bias=bias, name=self.name("dwconv"))
            y = self.apply(layer, x)
            if y is not None and filters is not None and self.shape(y)[-1] != filters:
                return self.conv_1x1(y, filters)
            return y
        else:
            filters = filters or self.ri(1, 8)
            cls = L.SeparableConv1D if d == 1 else L.SeparableConv2D
            layer = cls(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                        depth_multiplier=self.pick([1, 1, 2]), activation=act, use_bias=bias,
                        name=self.name("sepconv"))
        y = self.apply(layer, x)
        if y is not None and filters is not None and self.shape(y)[-1] != filters:
            return self.conv_1x1(y, filters)
        return y

    def conv_1x1(self, x, filters):
        d = len(self.shape(x)) - 1
        cls = self.L.Conv1D if d == 1 else self.L.Conv2D
        return cls(filters, 1, activation=self.act_arg(0.3), name=self.name("conv"))(x)

    def pool(self, x):
        L = self.L
        d = len(self.shape(x)) - 1
        kind = self.pick(["max", "avg"])
        size = self.ri(2, 3)
        strides = None if self.chance(0.6) else self.ri(1, 3)
        padding = self.pick(["same", "valid"])
        if d == 1:
            cls = L.MaxPooling1D if kind == "max" else L.AveragePooling1D
        else:
            cls = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
            if self.chance(0.3):
                size = (size, self.ri(1, 3))
        return self.apply(cls(size, strides=strides, padding=padding, name=self.name(kind + "pool")), x)

    def global_pool(self, x, keepdims=None):
        L = self.L
        d = len(self.shape(x)) - 1
        kind = self.pick(["avg", "max"])
        keep = self.chance(0.4) if keepdims is None else keepdims
        if d == 1:
            cls = L.GlobalAveragePooling1D if kind == "avg" else L.GlobalMaxPooling1D
        else:
            cls = L.GlobalAveragePooling2D if kind == "avg" else L.GlobalMaxPooling2D
        return cls(keepdims=keep, name=self.name("g" + kind + "pool"))(x)

    def pad_then(self, x):
        """ZeroPadding followed by a conv, a pooling or any other layer."""
        L = self.L
        d = len(self.shape(x)) - 1
        if d == 1:
            pad = (self.ri(0, 2), self.ri(0, 2))
            y = L.ZeroPadding1D(pad, name=self.name("zpad"))(x)
        else:
            pad = ((self.ri(0, 2), self.ri(0, 2)), (self.ri(0, 2), self.ri(0, 2)))
            if self.chance(0.4):
                p = self.ri(1, 2)
                pad = ((p, p), (p, p))
            y = L.ZeroPadding2D(pad, name=self.name("zpad"))(x)
        r = self.rng.random()
        if r < 0.4:
            out = self.conv(y)
        elif r < 0.7:
            out = self.pool(y)
        elif r < 0.8:
            out = self.global_pool(y)
        else:
            out = self.step(y, allow_reshape=False)
        return out if out is not None else y

    def crop(self, x):
        L = self.L
        shape = self.shape(x)
        if len(shape) == 2:
            return self.apply(L.Cropping1D((self.ri(0, 2), self.ri(0, 2)), name=self.name("crop")), x)
        return self.apply(L.Cropping2D(((self.ri(0, 2), self.ri(0, 2)), (self.ri(0, 2), self.ri(0, 2))),
                                       name=self.name("crop")), x)

    def upsample(self, x):
        L = self.L
        shape = self.shape(x)
        if self.chance(0.3):
            return self.conv_transpose(x)
        if len(shape) == 2:
            if shape[0] > 20:
                return None
            return L.UpSampling1D(self.ri(2, 3), name=self.name("upsample"))(x)
        if self.chance(0.4):
            return self.resize(x)
        if shape[0] * shape[1] > 100:
            return None
        return L.UpSampling2D(self.pick([2, (2, 1), (1, 2), (2, 3)]), name=self.name("upsample"))(x)

    def conv_transpose(self, x):
        """Conv1DTranspose / Conv2DTranspose: kernel 1 to 4, strides 1 to 3 (per axis on maps),
        'same' or 'valid', sometimes an output_padding (one TensorFlow can run: below the stride,
        and with 'same' one whose output a stride-S convolution maps back to the input's size)."""
        shape = self.shape(x)
        d = len(shape) - 1
        strides = (1, self.ri(1, 3)) if d == 1 else self.pick([(1, 1), (2, 2), (3, 3), (2, 1), (1, 2), (2, 3)])
        kernel = (1, self.ri(1, 4)) if d == 1 else (self.ri(1, 4), self.ri(1, 4))
        padding = self.pick(["same", "valid"])
        sizes = (1, shape[0]) if d == 1 else shape[:2]

        def runs(n, k, s, extra):
            if padding == "valid":
                return extra < s
            out = (n - 1) * s + k - 2 * (k // 2) + extra
            return out >= 1 and -(-out // s) == n

        extra = None
        if self.chance(0.3):
            options = [[e for e in range(s) if runs(n, k, s, e)] for n, k, s in zip(sizes, kernel, strides)]
            if all(options):
                extra = tuple(self.pick(o) for o in options)
        grown = [(n - 1) * s + k for n, k, s in zip(sizes, kernel, strides)]
        if grown[0] * grown[1] > 300:
            return None
        cls = self.L.Conv1DTranspose if d == 1 else self.L.Conv2DTranspose
        one = (lambda v: v[1]) if d == 1 else (lambda v: v)
        return self.apply(cls(self.ri(1, 8), one(kernel), strides=one(strides), padding=padding,
                              output_padding=None if extra is None else one(extra), activation=self.act_arg(),
                              use_bias=self.chance(0.8), name=self.name("tconv")), x)

    #: Resizing may pad to the aspect ratio (the int8 generator's may not: TFLite concatenates the
    #: zeros along the rows, which the int8 path refuses)
    RESIZE_PADS = True

    def resize(self, x):
        """Keras' Resizing to any size up to twice the map's, bilinear or nearest, sometimes
        cropping or padding to the target's aspect ratio first."""
        h, w, _ = self.shape(x)
        th, tw = self.ri(1, 2 * h), self.ri(1, 2 * w)
        if th * tw > 150:
            return None
        r, options = self.rng.random(), {}
        if r < 0.2:
            options["crop_to_aspect_ratio"] = True
        elif r < 0.35 and self.RESIZE_PADS:
            options["pad_to_aspect_ratio"] = True
        return self.L.Resizing(th, tw, interpolation=self.pick(["bilinear", "nearest"]), name=self.name("resize"),
                               **options)(x)

    def permute(self, x):
        rank = len(self.shape(x))
        if rank == 2:
            dims = (2, 1)
        else:
            dims = self.pick([(2, 1, 3), (3, 1, 2), (1, 3, 2), (3, 2, 1), (2, 3, 1)])
        return self.L.Permute(dims, name=self.name("permute"))(x)

    def reshape(self, x):
        """Flatten, or Reshape to another rank with the same elements in order."""
        L = self.L
        shape = self.shape(x)
        n = int(np.prod(shape))
        if len(shape) > 1 and self.chance(0.35):
            return L.Flatten(name=self.name("flatten"))(x)
        if len(shape) == 3:
            h, w, c = shape
            target = self.pick([(h, w * c), (h * w, c), (n,), (w, h, c)])
        elif len(shape) == 2:
            length, c = shape
            divs = [a for a in range(2, length + 1) if length % a == 0]
            options = [(n,), (length, c, 1), (length, 1, c)]
            if divs:
                a = self.pick(divs)
                options.append((length // a, a, c))
            target = self.pick(options)
        else:
            divs = [a for a in range(2, n) if n % a == 0]
            if not divs:
                target = (n, 1)
            else:
                a = self.pick(divs)
                target = self.pick([(n // a, a), (a, n // a, 1)])
        return L.Reshape(target, name=self.name("reshape"))(x)

    def constant_op(self, x):
        """Arithmetic with a constant as Keras graphs contain it (x + 3.0, x * (1/6))."""
        ops = self.k.ops
        if self.chance(0.5):
            return ops.add(x, float(self.pick([3.0, -0.5])))
        return ops.multiply(x, float(self.pick([1 / 6.0, 2.0])))

    #: what keras_op draws, and the reductions among them
    KERAS_OPS = ("reduce", "softmax", "dot", "matmul", "power", "abs", "square", "tile", "repeat", "where", "moveaxis",
                 "einsum", "einsum_ops")
    REDUCTIONS = ("mean", "sum", "max", "min")

    def keras_op(self, x):
        """One of the keras.ops and layers of a functional model written by hand, drawn from
        ``ops_rng`` (``KERAS_OPS``): mean/sum/max/min over some of a sample's axes (keepdims or
        not), a softmax over any axis, Dot (contracting either axis of a sequence, or two vectors;
        cosine similarity or not), matmul of a sequence by a projection's transpose, a power,
        abs, square, tile or repeat of one sample axis (x2), where(x > c, x, c' or a projection),
        moveaxis of a sample axis, EinsumDense to heads ('...c,cde->...de'), an einsum of the value
        and a projection of it (each shared axis kept or summed, the result's axes in any order,
        the operands either way round)."""
        q, ops, L = self.ops_rng, self.k.ops, self.L
        shape = self.shape(x)
        rank = len(shape)
        kinds = [k for k in self.KERAS_OPS if rank > 1 or k not in ("reduce", "softmax", "matmul", "moveaxis")]
        kinds = [k for k in kinds if rank < 3 or k != "einsum"]
        kind = str(q.choice([k for k in kinds if rank < 3 or k not in ("dot", "matmul")]))
        if kind == "reduce":
            axes = sorted(int(a) for a in q.choice(np.arange(1, rank + 1), size=int(q.integers(1, rank + 1)), replace=False))
            keep = bool(q.random() < 0.5) or len(axes) == rank
            fn = getattr(ops, str(q.choice(self.REDUCTIONS)))
            return fn(x, axis=axes if len(axes) > 1 else axes[0], keepdims=keep)
        if kind in ("abs", "square"):
            return getattr(ops, kind)(x)
        if kind in ("tile", "repeat"):
            axis = int(q.integers(1, rank + 1))
            if shape[axis - 1] > 8:
                return ops.abs(x)
            if kind == "repeat":
                return ops.repeat(x, 2, axis=axis)
            return ops.tile(x, [2 if a == axis else 1 for a in range(rank + 1)])
        if kind == "where":
            other = float(q.choice([0.0, -0.25])) if q.random() < 0.5 else L.Dense(shape[-1], name=self.name("dense"))(x)
            return ops.where(ops.greater(x, float(q.choice([0.0, 0.3]))), x, other)
        if kind == "moveaxis":
            src, dst = (int(a) for a in q.choice(np.arange(1, rank + 1), size=2, replace=False))
            return ops.moveaxis(x, src, dst)
        if kind == "einsum":
            heads, width = int(q.integers(2, 4)), int(q.integers(2, 5))
            return L.EinsumDense("...c,cde->...de", output_shape=(heads, width), bias_axes="de",
                                 name=self.name("einsum"))(x)
        if kind == "einsum_ops":
            y = L.Dense(int(q.integers(2, 5)), name=self.name("dense"))(x)
            own = "cdefgh"[:rank]  # x's axes; the projection y shares all but the last
            kept = [a for a in own[:-1] if q.random() < 0.6][:1]  # shared axes kept (one at most: the result's
            # rank stays at 3, which every layer drawn next takes), the others summed
            result = "".join(str(a) for a in q.permutation(kept + [own[-1], "u"]))
            operands = [("b" + own, x), ("b" + own[:-1] + "u", y)]
            if q.random() < 0.5:
                operands.reverse()
            return ops.einsum(f"{operands[0][0]},{operands[1][0]}->b{result}", operands[0][1], operands[1][1])
        if kind == "softmax":
            return L.Softmax(axis=int(q.integers(1, rank + 1)), name=self.name("softmax"))(x)
        if kind == "power":
            return ops.power(ops.abs(x) + 0.5, float(q.choice([1.5, 2.0, 3.0])))
        if kind == "matmul":
            other = L.Dense(int(q.integers(2, 6)), name=self.name("dense"))(x)
            if shape[-1] != self.shape(other)[-1]:  # named too: Keras' own "dense_N" may clash with ours
                x = L.Dense(self.shape(other)[-1], name=self.name("dense"))(x)
            return ops.matmul(x, ops.transpose(other, (0, 2, 1)))
        if rank == 1:
            return L.Dot(axes=1, normalize=bool(q.random() < 0.5), name=self.name("dot"))(
                [x, L.Dense(shape[0], name=self.name("dense"))(x)])
        axis = int(q.integers(1, 3))  # contract the steps (1) or the features (2) of both
        units = shape[1] if axis == 2 else int(q.integers(2, 6))
        return L.Dot(axes=axis, normalize=bool(q.random() < 0.5), name=self.name("dot"))(
            [x, L.Dense(units, name=self.name("dense"))(x)])

    def windows(self, x):
        """A map (H, W, C) or sequence (L, C) cut into windows moved into the batch axis (reshape,
        transpose, reshape, as Swin partitions; windows of random sizes dividing the axes), one to
        three steps on the windows drawn from ``windows_rng`` (Dense, an activation,
        LayerNormalization, softmax, arithmetic with a constant per window position, attention
        within each window by matmul, a Dense to q/k/v transposed in front of the batch axis then
        indexed or unstacked), and the windows put back. None where no axis has a divisor."""
        q, ops, L = self.windows_rng, self.k.ops, self.L
        shape = self.shape(x)
        sizes = [[d for d in range(1, n + 1) if n % d == 0 and d < n] or [n] for n in shape[:-1]]
        cut = [int(q.choice(options)) for options in sizes]
        if all(c == n for c, n in zip(cut, shape[:-1])):
            return None
        c = shape[-1]
        if len(shape) == 3:
            (h, w), (a, b) = shape[:2], cut
            win = ops.reshape(ops.transpose(ops.reshape(x, (-1, h // a, a, w // b, b, c)), (0, 1, 3, 2, 4, 5)),
                              (-1, a * b, c))
        else:
            win = ops.reshape(x, (-1, cut[0], c))
        n = int(np.prod(cut))
        for _ in range(int(q.integers(1, 4))):
            kind = str(q.choice(["dense", "activation", "norm", "softmax", "constant", "attention", "qkv"]))
            if kind == "dense":
                win = L.Dense(c, activation=self.pick([None, "relu", "tanh"]), name=self.name("dense"))(win)
            elif kind == "activation":
                win = L.Activation(str(q.choice(["gelu", "sigmoid", "relu6"])), name=self.name("act"))(win)
            elif kind == "norm":
                win = L.LayerNormalization(name=self.name("norm"))(win)
            elif kind == "softmax":
                win = ops.softmax(win, axis=-1)
            elif kind == "constant":
                table = q.normal(0, 1, (n, c)).astype(np.float32)
                win = win * table if q.random() < 0.5 else win + table
            elif kind == "attention":
                keys = L.Dense(c, name=self.name("dense"))(win)
                win = ops.matmul(ops.softmax(ops.matmul(win, ops.transpose(keys, (0, 2, 1))), axis=-1), win)
            else:
                qkv = ops.transpose(ops.reshape(L.Dense(3 * c, name=self.name("dense"))(win), (-1, n, 3, c)),
                                    (2, 0, 1, 3))
                first, second, third = ops.unstack(qkv, 3, axis=0) if q.random() < 0.5 else (qkv[0], qkv[1], qkv[2])
                win = first * second + third
        if len(shape) == 3:
            back = ops.reshape(win, (-1, h // a, w // b, a, b, c))
            return ops.reshape(ops.transpose(back, (0, 1, 3, 2, 4, 5)), (-1, h, w, c))
        return ops.reshape(win, (-1,) + shape)

    #: the normalisations layer_norm draws (one subclass takes LayerNormalization alone)
    NORMS = ("unit", "group", "layer")
    #: whether attention may draw causal masks
    CAUSAL = True

    # -- one random layer
    def step(self, x, allow_reshape=True):
        shape = self.shape(x)
        rank = len(shape)
        if self.ln_rng is not None:
            u = self.ln_rng.random()
            if u < 0.4 and shape[-1] > 1:
                return self.layer_norm(x)
            if u < 0.65 and rank > 1 and int(np.prod(shape[:-1])) <= 144:
                return self.attention(x)
            if u < 0.95 and rank == 2 and shape[0] <= 32:
                return self.recurrent(x)
        if self.ops_rng is not None and self.ops_rng.random() < 0.35:
            return self.keras_op(x)
        if self.windows_rng is not None and rank in (2, 3) and self.windows_rng.random() < 0.5:
            y = self.windows(x)
            if y is not None:
                return y
        spatial = int(np.prod(shape[:-1])) if rank > 1 else 1
        r = self.rng.random()
        if rank == 1:
            table = [(0.40, lambda: self.dense(x)), (0.52, lambda: self.activation_layer(x)),
                     (0.62, lambda: self.batchnorm(x)), (0.70, lambda: self.scale_layer(x)),
                     (0.76, lambda: self.noise_layer(x)), (0.80, lambda: self.constant_op(x)),
                     (1.0, lambda: self.reshape(x) if allow_reshape and shape[0] > 3 else self.dense(x))]
        else:
            table = [(0.26, lambda: self.conv(x)), (0.36, lambda: self.pool(x) if spatial > 1 else None),
                     (0.43, lambda: self.activation_layer(x)), (0.49, lambda: self.batchnorm(x)),
                     (0.54, lambda: self.dense(x, activation=self.act_arg(0.4))),
                     (0.61, lambda: self.pad_then(x)), (0.66, lambda: self.crop(x)),
                     (0.71, lambda: self.upsample(x)), (0.76, lambda: self.permute(x)),
                     (0.80, lambda: self.scale_layer(x)), (0.83, lambda: self.noise_layer(x)),
                     (0.85, lambda: self.constant_op(x)),
                     (0.93, lambda: self.reshape(x) if allow_reshape else None),
                     (1.0, lambda: self.global_pool(x) if allow_reshape else None)]
        for bound, make in table:
            if r < bound:
                return make()
        return None

    def branch_join(self, x):
        """Fan out into two or three branches and join them: Concatenate (channel axis) or an
        elementwise merge, or a broadcasting merge with a globally pooled / one-channel branch."""
        L = self.L
        shape = self.shape(x)
        rank = len(shape)
        c = shape[-1]
        merges = [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum]
        if rank > 1 and self.chance(0.3):
            # broadcasting: (H, W, C) with (1, 1, C), (H, W, 1) or (C,)
            how = self.rng.random()
            if how < 0.5:
                g = self.global_pool(x, keepdims=self.chance(0.7))
                if self.chance(0.6):
                    g = self.dense(g, units=c, activation=self.pick(["sigmoid", "relu", None, "hard_sigmoid"]))
            elif rank == 2 or min(shape[:-1]) > 1:
                # (H, W, 1): not on a 1xW or Hx1 map, whose one non-unit axis Keras' TensorFlow
                # ops.add would take for a bias along the channels when W == C (a Keras bug)
                g = self.conv_1x1(x, 1)
            else:
                g = self.global_pool(x, keepdims=True)
            merge = self.pick(merges)
            return merge(name=self.name("merge"))([x, g] if self.chance(0.5) or merge is L.Subtract else [g, x])
        n = 2 if self.chance(0.75) else 3
        branches = []
        for _ in range(n):
            y = x
            for _ in range(self.ri(0, 2)):
                r = self.rng.random()
                if rank > 1 and r < 0.5:
                    z = self.conv(y, keep_size=True)
                elif rank > 1 and r < 0.6:
                    d = rank - 1
                    k = self.pick([3, 5])
                    pad = L.ZeroPadding1D(k // 2, name=self.name("zpad")) if d == 1 else \
                        L.ZeroPadding2D(k // 2, name=self.name("zpad"))
                    z = self.apply((L.Conv1D if d == 1 else L.Conv2D)(
                        self.ri(1, 6), k, padding="valid", name=self.name("conv")), pad(y))
                elif rank == 1 and r < 0.5:
                    z = self.dense(y)
                elif r < 0.8:
                    z = self.activation_layer(y)
                else:
                    z = self.batchnorm(y)
                y = z if z is not None and self.shape(z)[:-1] == shape[:-1] else y
            branches.append(y)
        if self.chance(0.4):
            return L.Concatenate(name=self.name("concat"))(branches)
        fixed = []
        for y in branches:
            if self.shape(y)[-1] != c:
                y = self.conv_1x1(y, c) if rank > 1 else self.dense(y, units=c)
            fixed.append(y)
        merge = self.pick(merges)
        if merge is L.Subtract:
            fixed = fixed[:2]
        return merge(name=self.name("merge"))(fixed)

    def head(self, x):
        """Reduce to a vector and classify (or not), sometimes with softmax."""
        shape = self.shape(x)
        if len(shape) > 1 and self.chance(0.7):
            x = self.global_pool(x, keepdims=False) if self.chance(0.5) else self.L.Flatten(name=self.name("flatten"))(x)
        if self.chance(0.8):
            act = self.pick(["softmax", "softmax", None, "log_softmax", "sigmoid"])
            x = self.L.Dense(self.ri(2, 6), activation=act, name=self.name("head"))(x)
        return x

    def input_shape(self):
        r = self.rng.random()
        if r < 0.55:
            return (self.ri(3, 13), self.ri(3, 13), self.pick([1, 1, 2, 3, 4]))
        if r < 0.8:
            return (self.ri(4, 24), self.ri(1, 5))
        return (self.ri(3, 40),)

    def trunk(self, x, lo, hi):
        """``x`` through lo..hi random steps (models stay small)."""
        for _ in range(self.ri(lo, hi)):
            y = self.branch_join(x) if self.chance(0.25) else self.step(x)
            if y is None or int(np.prod(self.shape(y))) > 4096:
                continue
            x = y
            if self.chance(0.25):
                self.taps.append(x)
        return x

    def to_vector(self, x):
        if len(self.shape(x)) == 1:
            return x
        return self.global_pool(x, keepdims=False) if self.chance(0.5) else self.L.Flatten(name=self.name("flatten"))(x)

    def several_inputs_model(self):
        """Two or three inputs (sometimes of one shape, then sometimes through one shared sub-model,
        as a Siamese network), each through its own layers, joined as vectors (concatenated, or
        projected to one width and merged), or joined early where two keep one shape; sometimes an
        input no output depends on."""
        k, L = self.k, self.L
        shapes = [self.input_shape()]
        for _ in range(self.ri(1, 2)):
            shapes.append(shapes[0] if self.chance(0.4) else self.input_shape())
        inputs = [k.Input(shape, name=f"input_{i}") for i, shape in enumerate(shapes)]
        xs = []
        shared = None
        for i, inp in enumerate(inputs):
            if i and shapes[i] == shapes[0] and self.chance(0.6):
                if shared is None:  # the first input's layers, as one sub-model, for both
                    inner, outer_taps = k.Input(shapes[0]), list(self.taps)
                    shared = k.Model(inner, self.trunk(inner, 1, 3), name=self.name("shared"))
                    self.taps = outer_taps  # (the sub-model's own tensors are not the outer model's)
                    xs[0] = shared(inputs[0])
                xs.append(shared(inp))
            else:
                xs.append(self.trunk(inp, 0, 3))
        merges = [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum]
        if len(xs) >= 2 and self.shape(xs[0]) == self.shape(xs[1]) and self.chance(0.5):
            merge = self.pick(merges)
            xs = [self.trunk(merge(name=self.name("merge"))(xs[:2]), 0, 2)] + xs[2:]
        vectors = [self.to_vector(x) for x in xs]
        if len(vectors) == 1:
            joined = vectors[0]
        elif self.chance(0.5):
            joined = L.Concatenate(name=self.name("concat"))(vectors)
        else:
            units = self.ri(2, 8)
            same = [v if self.shape(v) == (units,) else self.dense(v, units=units) for v in vectors]
            merge = self.pick(merges)
            joined = merge(name=self.name("merge"))(same[:2] if merge is L.Subtract else same)
        if self.chance(0.5):
            joined = self.dense(joined)
        outputs = [self.head(joined)]
        if self.taps and self.chance(0.3):
            extra = self.pick(self.taps)
            if all(extra is not o for o in outputs):
                outputs.append(extra)
        if self.chance(0.15):
            inputs.append(k.Input(self.input_shape(), name=f"input_{len(inputs)}"))  # unread
        order = list(range(len(inputs)))
        self.rng.shuffle(order)  # the model's order of inputs is not the order of their layers
        return k.Model([inputs[i] for i in order], outputs if len(outputs) > 1 else outputs[0], name="fuzz")

    def model(self):
        if self.several:
            return self.several_inputs_model()
        shape = self.input_shape()
        inp = self.k.Input(shape, name="input")
        x = inp
        for _ in range(self.ri(2, 7)):
            y = self.branch_join(x) if self.chance(0.25) else self.step(x)
            if y is None:
                continue
            if int(np.prod(self.shape(y))) > 4096:  # keep models small
                continue
            x = y
            if self.chance(0.25):
                self.taps.append(x)
        outputs = [self.head(x)]
        if self.taps and self.chance(0.35):
            extra = self.pick(self.taps)
            if self.chance(0.5):
                extra = self.head(extra)
            if all(extra is not o for o in outputs):
                outputs.append(extra)
        return self.k.Model(inp, outputs if len(outputs) > 1 else outputs[0], name="fuzz")


def build_model(seed, attempt=0, transformer=False, keras_ops=False, several=False, windows=False):
    """The random model for ``seed`` (``attempt`` > 0: the redraws when a model is rejected);
    ``transformer``: with LayerNormalization and MultiHeadAttention layers too; ``keras_ops``:
    with keras.ops reductions, Dot, matmul, power and softmax over any axis too; ``several``: of
    two or three inputs (drawn from a stream of its own); ``windows``: with window blocks too."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng([seed, attempt, 3] if several else [seed, attempt])
    gen = _Gen(rng, np.random.default_rng([seed, attempt, 1]) if transformer else None,
               np.random.default_rng([seed, attempt, 2]) if keras_ops else None, several=several,
               windows_rng=np.random.default_rng([seed, attempt, 4]) if windows else None)
    return gen.model()


def describe(model):
    """One line per layer: name, class, its key settings, output shape; and which feed which."""
    lines = []
    keys = ("filters", "kernel_size", "strides", "padding", "dilation_rate", "groups", "depth_multiplier",
            "units", "activation", "pool_size", "keepdims", "axis", "size", "cropping", "dims", "target_shape",
            "max_value", "negative_slope", "threshold", "alpha", "shared_axes", "scale", "offset", "use_bias")
    for layer in model.layers:
        cfg = layer.get_config()
        settings = ", ".join(f"{k}={cfg[k]}" for k in keys if k in cfg and cfg[k] is not None)
        ins = []
        for node in layer._inbound_nodes:
            ins.extend(t._keras_history.operation.name for t in node.input_tensors)
        try:
            out = layer.output.shape
        except Exception:  # noqa: BLE001
            out = "?"
        lines.append(f"  {layer.name:<14} {type(layer).__name__:<22} {str(out):<18} <- {', '.join(ins) or '-'}"
                     f"  {settings}")
    lines.append(f"  outputs: {[t._keras_history.operation.name for t in model.outputs]}")
    return "\n".join(lines)


def _softmax_outputs(model):
    """For each output: whether it is a softmax (its argmax must match Keras')."""
    flags = []
    for t in model.outputs:
        layer = t._keras_history.operation
        act = getattr(layer, "activation", None)
        name = getattr(act, "__name__", "")
        flags.append(name == "softmax" or type(layer).__name__ == "Softmax")
    return flags


class Case:
    """One generated model, livened, with its inputs and Keras' reference outputs."""

    def __init__(self, seed, model, x, ref, sizes, attempt, gap):
        self.seed, self.model, self.x, self.ref, self.sizes = seed, model, x, ref, sizes
        self.attempt, self.gap = attempt, gap
        self.classname = f"Fuzz{seed}"
        self.softmax = _softmax_outputs(model)
        self.header = None

    def summary(self):
        if isinstance(self.seed, str):
            return f"minimal model {self.seed}:\n{describe(self.model)}"
        return f"seed {self.seed} (attempt {self.attempt}):\n{describe(self.model)}"


def _well_conditioned(ref, sizes, softmax):
    """Outputs moderate, finite and varying with the input; softmax outputs with a clear winner."""
    if not np.all(np.isfinite(ref)) or np.abs(ref).max() > 1e3:
        return False
    start = 0
    for size, is_softmax in zip(sizes, softmax):
        y = ref[:, start:start + size].astype(np.float64)
        start += size
        if float(np.std(y, axis=0).max()) < 1e-3 * max(1.0, float(np.abs(y).max())):
            return False  # does not depend on the input: would test nothing
        if is_softmax and size > 1:
            top2 = np.sort(y, axis=1)[:, -2:]
            if float((top2[:, 1] - top2[:, 0]).min()) < 1e-3:
                return False
    return True


def keras_reference(model, x):
    """The model's outputs one input at a time (netutil.keras_predict): Keras 3.15's TensorFlow ``ops.add`` takes an operand
    whose only non-unit dimension is the batch for a bias when the batch size equals the other
    operand's dimension 1 or its last (``Add([x (6, 9, 1), GlobalAveragePooling2D(keepdims=True)(x)])``
    on a batch of 6 adds the means of six different inputs along the rows); with batches of one
    it cannot."""
    return netutil.flat_outputs(netutil.keras_predict(model, x, batch_size=1))


#: layers that only view their input (a draw of nothing else computes nothing: seeds 9943, 9971, 9981)
VIEW_LAYERS = {"InputLayer", "Reshape", "Flatten", "Dropout"}


def _draw_inputs(model, n, seed):
    """``n`` random inputs for ``model``: an array, or a list of one array per input."""
    xs = [netutil.random_inputs(tuple(int(d) for d in t.shape[1:]), n, seed=seed + 7 * k)
          for k, t in enumerate(model.inputs)]
    return xs if len(xs) > 1 else xs[0]


def make_case(seed, attempts=6, transformer=False, keras_ops=False, several=False, windows=False):
    """The first draw for ``seed`` that is well conditioned (see the module doc); None if none is."""
    for attempt in range(attempts):
        model = build_model(seed, attempt, transformer, keras_ops, several, windows)
        if all(type(layer).__name__ in VIEW_LAYERS for layer in model.layers):
            continue  # computes nothing (refused as such: a bad input, not a compiler gap)
        x = _draw_inputs(model, N_INPUTS, seed % 100000)
        liven_x = _draw_inputs(model, LIVEN_BATCH, seed % 100000 + 1)
        try:
            # inner: the several-input draws' shared tower is a nested model, which liven's walk
            # does not enter (its biases stayed zeros, its BatchNormalizations the identity)
            gap = netutil.liven_conditioned(model, [x], seed=seed, tries=2, limit=0.3 * TOL, relative=True,
                                            liven_x=liven_x, inner=True)
        except Exception:  # noqa: BLE001 (float64 twin not buildable etc.): draw again
            continue
        if gap > 0.3 * TOL:
            continue
        ref = keras_reference(model, x)
        sizes = [int(np.prod([int(d) for d in t.shape[1:]])) for t in model.outputs]
        if not _well_conditioned(ref, sizes, _softmax_outputs(model)):
            continue
        return Case(seed, model, x, ref, sizes, attempt, gap)
    return None


# ----------------------------------------------------------------------------------- one driver
_DRIVER_HEAD = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
"""

_DRIVER_MODEL = r"""
static int run_%(cls)s(void)
{
    static %(cls)s net;
    static float input[%(record)s];
    while (fread(input, sizeof(float), %(record)s, stdin) == (size_t)(%(record)s)) {
        const unsigned long cls = (unsigned long)net.predict(%(args)s);
        if (cls != (unsigned long)net.output || net.proba != net.outputs[cls])
            return 3;
        fwrite(net.outputs, sizeof(float), %(cls)s::numOutputs, stdout);%(extra)s
    }
    return 0;
}
"""


def _driver_source(cases):
    from micronets import host

    parts = [_DRIVER_HEAD]
    for case in cases:
        parts.append(f'#include "{case.header}"\n')
    for case in cases:
        extra = "".join(f"\n        fwrite(net.outputs{k}, sizeof(float), {case.classname}::numOutputs{k}, stdout);"
                        for k in range(1, len(case.sizes)))
        record, args = host.predict_arguments(case.header, case.classname, "input")  # every input of a sample
        parts.append(_DRIVER_MODEL % {"cls": case.classname, "extra": extra, "record": record, "args": args})
    parts.append("\nint main(int argc, char** argv)\n{\n    const int k = argc > 1 ? atoi(argv[1]) : -1;\n")
    for i, case in enumerate(cases):
        parts.append(f"    if (k == {i})\n        return run_{case.classname}();\n")
    parts.append("    return 2;\n}\n")
    return "".join(parts)


def _compile(src_text, path, exe):
    from micronets import host

    with open(path, "w") as fh:
        fh.write(src_text)
    cmd = [host.compiler(), *host.STRICT_FLAGS, "-O2", path, "-o", exe, "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr


def build_driver(cases, workdir, failures):
    """One program for all ``cases``; a header that does not compile is reported and left out."""
    src, exe = os.path.join(workdir, "fuzz_driver.cpp"), os.path.join(workdir, "fuzz_driver")
    ok, err = _compile(_driver_source(cases), src, exe)
    if ok:
        return cases, exe
    good = []
    for case in cases:  # find the culprit(s)
        one = os.path.join(workdir, f"one_{case.classname}")
        ok1, err1 = _compile(_driver_source([case]), one + ".cpp", one)
        if ok1:
            good.append(case)
        else:
            errors = [line for line in err1.splitlines() if "error" in line]
            failures.append((case, "the header does not compile (strict g++):\n" + "\n".join(errors[:6])))
    if not good:
        return good, None
    ok, err = _compile(_driver_source(good), src, exe)
    assert ok, f"the fuzz driver does not compile although each header does alone:\n{err[-3000:]}"
    return good, exe


def compare(case, out):
    """None when ``out`` matches Keras, else why not."""
    start = 0
    for i, (size, is_softmax) in enumerate(zip(case.sizes, case.softmax)):
        o = out[:, start:start + size].astype(np.float64)
        r = case.ref[:, start:start + size].astype(np.float64)
        start += size
        if not np.all(np.isfinite(o)):
            return f"output {i}: non-finite values in the C++ output"
        diff = float(np.abs(o - r).max())
        scale = max(1.0, float(np.abs(r).max()))
        if diff > TOL * scale:
            worst = np.unravel_index(int(np.argmax(np.abs(o - r))), o.shape)
            return (f"output {i} ({size} values) differs from Keras by {diff:.3g} (allowed {TOL * scale:.3g}); "
                    f"worst at input {worst[0]}, element {worst[1]}: C++ {o[worst]:.6g}, Keras {r[worst]:.6g}")
        if is_softmax and size > 1 and not np.array_equal(o.argmax(1), r.argmax(1)):
            return f"output {i}: argmax {o.argmax(1).tolist()} vs Keras {r.argmax(1).tolist()}"
    return None


def run_seeds(seeds, workdir, transformer=False, keras_ops=False, several=False, windows=False):
    """Generate, export, build (one driver), run and compare every seed's model.

    Returns (cases, failures, refusals): the cases run, and (case, message) lists."""
    cases = [case for case in (make_case(seed, transformer=transformer, keras_ops=keras_ops, several=several,
                                         windows=windows) for seed in seeds) if case is not None]
    return run_cases(cases, workdir)


def run_cases(cases, workdir):
    """Export every case's model, build them all into one driver, run and compare each."""
    import micronets
    from micronets.compiler.ops.base import UnsupportedModelError

    exported, failures, refusals = [], [], []
    for case in cases:
        case.header = os.path.join(workdir, f"{case.classname}.h")
        try:
            compiled = micronets.export(case.model, case.header, classname=case.classname)
        except UnsupportedModelError as exc:
            refusals.append((case, f"refused: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001 (a crash of the compiler is a bug to report)
            failures.append((case, f"export crashed: {type(exc).__name__}: {exc}"))
            continue
        sizes = [int(s) for s in (getattr(compiled, "output_sizes", None) or [compiled.graph.output.size])]
        if sizes != case.sizes:
            failures.append((case, f"the header's outputs have sizes {sizes}; Keras' {case.sizes}"))
            continue
        exported.append(case)
    built, exe = build_driver(exported, workdir, failures) if exported else ([], None)
    from micronets import host

    for i, case in enumerate(built):
        x = host.samples(case.x)  # each sample's inputs back to back
        data = np.ascontiguousarray(x, np.float32).tobytes()
        proc = subprocess.run([exe, str(i)], input=data, capture_output=True, timeout=120)
        if proc.returncode != 0:
            failures.append((case, f"the driver exited with {proc.returncode} (crash or bad argmax bookkeeping)"))
            continue
        out = np.frombuffer(proc.stdout, np.float32)
        if out.size != len(x) * sum(case.sizes):
            failures.append((case, f"the driver wrote {out.size} floats, expected {len(x) * sum(case.sizes)}"))
            continue
        why = compare(case, out.reshape(len(x), -1))
        if why:
            failures.append((case, why))
    return cases, failures, refusals


def _report(failures, refusals):
    text = []
    for case, why in failures:
        text.append(f"MISMATCH {case.summary()}\n  -> {why}")
    for case, why in refusals:
        text.append(f"REFUSED (every layer is a supported kind) {case.summary()}\n  -> {why}")
    return "\n\n".join(text)


def shard_seeds(shard):
    return [BASE_SEED + i for i in range(N_MODELS) if i % SHARDS == shard]


@pytest.mark.parametrize("shard", range(SHARDS))
def test_fuzz(shard, tmp_path):
    seeds = shard_seeds(shard)
    cases, failures, refusals = run_seeds(seeds, str(tmp_path))
    # the generator must not silently reject most of its draws
    assert len(cases) + len(failures) + len(refusals) >= 0.8 * len(seeds), "too few usable random models"
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of {len(seeds)} random models "
                    f"(reproduce: python tests/test_fuzz.py SEED):\n\n{_report(failures, refusals)}", pytrace=False)


def test_fuzz_transformer_layers(tmp_path):
    """Random models with LayerNormalization, MultiHeadAttention and recurrent layers among the
    others (their own seeds: reproduce with ``python tests/test_fuzz.py --transformer SEED``)."""
    seeds = [LN_BASE_SEED + i for i in range(N_LN_MODELS)]
    cases, failures, refusals = run_seeds(seeds, str(tmp_path), transformer=True)
    assert len(cases) + len(failures) + len(refusals) >= 0.8 * len(seeds), "too few usable random models"
    for kind in ("LayerNormalization", "MultiHeadAttention"):
        drawn = sum(any(type(layer).__name__ == kind for layer in c.model.layers) for c in cases)
        assert drawn >= 0.25 * len(cases), f"only {drawn} of {len(cases)} models have a {kind}"
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of {len(seeds)} random models "
                    f"(reproduce: python tests/test_fuzz.py --transformer SEED):\n\n{_report(failures, refusals)}",
                    pytrace=False)


def test_fuzz_keras_ops(tmp_path):
    """Random models with keras.ops reductions, softmax over any axis, Dot, matmul, power, tile,
    repeat, where, moveaxis, EinsumDense and einsum among the others (their own seeds: reproduce
    with ``python tests/test_fuzz.py --ops SEED``; 120 seeds passed when tile..EinsumDense joined,
    200 when einsum did)."""
    seeds = [OPS_BASE_SEED + i for i in range(N_OPS_MODELS)]
    cases, failures, refusals = run_seeds(seeds, str(tmp_path), keras_ops=True)
    assert len(cases) + len(failures) + len(refusals) >= 0.8 * len(seeds), "too few usable random models"
    kinds = {type(op).__name__ for c in cases for op in c.model.operations}  # layers and keras.ops
    for kind in ("Dot", "Softmax"):
        assert kind in kinds, f"no {kind} among {sorted(kinds)}"
    assert kinds & {"Mean", "Sum", "Max", "Min"} and kinds & {"Matmul", "Power"}, sorted(kinds)
    assert "Einsum" in kinds, sorted(kinds)
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of {len(seeds)} random models "
                    f"(reproduce: python tests/test_fuzz.py --ops SEED):\n\n{_report(failures, refusals)}",
                    pytrace=False)


def test_fuzz_several_inputs(tmp_path):
    """Random models of two or three inputs (shared sub-models, early and late joins, an unread
    input, inputs listed in another order than their layers'): ``predict(input, input1, ...)``
    against Keras (their own seeds: reproduce with ``python tests/test_fuzz.py --several SEED``)."""
    seeds = [SEVERAL_BASE_SEED + i for i in range(N_SEVERAL_MODELS)]
    cases, failures, refusals = run_seeds(seeds, str(tmp_path), several=True)
    assert len(cases) + len(failures) + len(refusals) >= 0.8 * len(seeds), "too few usable random models"
    assert all(len(c.model.inputs) >= 2 for c in cases)
    assert any(isinstance(layer, type(c.model)) for c in cases for layer in c.model.layers), "no shared sub-model drawn"
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of {len(seeds)} random models "
                    f"(reproduce: python tests/test_fuzz.py --several SEED):\n\n{_report(failures, refusals)}",
                    pytrace=False)


def test_fuzz_windows(tmp_path):
    """Random models with window blocks among the other layers: windows of random sizes moved into
    the batch axis of a functional graph and back, random steps on them between (``_Gen.windows``;
    their own seeds: reproduce with ``python tests/test_fuzz.py --windows SEED``; 30 seeds passed, 17 of
    them drawing windows)."""
    seeds = [WINDOWS_BASE_SEED + i for i in range(N_WINDOWS_MODELS)]
    cases, failures, refusals = run_seeds(seeds, str(tmp_path), windows=True)
    assert len(cases) + len(failures) + len(refusals) >= 0.8 * len(seeds), "too few usable random models"
    kinds = {type(op).__name__ for c in cases for op in c.model.operations}
    assert {"Transpose", "Reshape"} <= kinds, sorted(kinds)
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of {len(seeds)} random models "
                    f"(reproduce: python tests/test_fuzz.py --windows SEED):\n\n{_report(failures, refusals)}",
                    pytrace=False)


@pytest.mark.skipif(not REGRESSION_SEEDS, reason="no regression seeds")
def test_fuzz_regressions(tmp_path):
    cases, failures, refusals = run_seeds(REGRESSION_SEEDS, str(tmp_path))
    assert len(cases) == len(REGRESSION_SEEDS), "the generator no longer draws the same models for these seeds"
    if failures or refusals:
        pytest.fail(f"{len(failures)} failing and {len(refusals)} refused of the {len(REGRESSION_SEEDS)} regression "
                    f"seeds:\n\n{_report(failures, refusals)}", pytrace=False)


# ------------------------------------------------------------------------ minimal reproducers
# Each bug the fuzzer found, reduced to a model of 1-3 layers (the seeds above are the original
# finds). Observed on the tree of this test's writing; each is a regression test.
def _fanout_activation_dense():
    """One Dense feeds a second Dense and a ReLU: the ReLU was folded into the first Dense, so the
    second Dense read the activated values (first diverging op: the second Dense, 0.7 relative)."""
    import keras
    from keras import layers as L

    i = keras.Input((8,), name="input")
    d = L.Dense(3, name="dense_a")(i)
    return keras.Model(i, L.Add(name="add")([L.Dense(3, name="dense_b")(d), L.ReLU(name="relu")(d)]))


def _fanout_batchnorm_dense():
    """One Dense feeds a BatchNormalization and an activation: the BatchNormalization was folded
    into the Dense, so the activation read normalised values (first diverging op: the silu)."""
    import keras
    from keras import layers as L

    i = keras.Input((8,), name="input")
    d = L.Dense(5, name="dense")(i)
    return keras.Model(i, L.Add(name="add")([L.Activation("silu", name="silu")(d),
                                             L.BatchNormalization(name="bn")(d)]))


def _fanout_activation_merge():
    """A Subtract feeds a DepthwiseConv1D and a tanh: the tanh was folded into the Subtract (first
    diverging op: the depthwise conv). The same happens with Add, Conv2D, Dense producers."""
    import keras
    from keras import layers as L

    i = keras.Input((6, 3), name="input")
    d = L.Subtract(name="sub")([i, L.Conv1D(3, 1, name="conv")(i)])
    return keras.Model(i, L.Add(name="add")([L.DepthwiseConv1D(1, name="dw")(d), L.Activation("tanh", name="tanh")(d)]))


def _batchnorm_axis1_then_channels():
    """BatchNormalization(axis=1) then BatchNormalization(axis=-1): refused with a numpy error,
    "operands could not be broadcast together with shapes (40,) (2,)"."""
    import keras
    from keras import layers as L

    i = keras.Input((5, 4, 2), name="input")
    b = L.BatchNormalization(axis=1, name="bn_rows")(i)
    return keras.Model(i, L.BatchNormalization(axis=-1, name="bn_channels")(b))


def _depthwise1d_short_sequence():
    """DepthwiseConv1D(3, padding='same') on a (2, 4) sequence: the strict build fails,
    -Werror=array-bounds ("array subscript [9, 17] is outside array bounds of 'unsigned char [8]'")
    in the depthwise kernel's dw_tap; the same on (2, 19), (3, 5) (not on (1, 5))."""
    import keras
    from keras import layers as L

    i = keras.Input((2, 4), name="input")
    return keras.Model(i, L.DepthwiseConv1D(3, padding="same", name="dw")(i))


def _global_pool_of_the_input():
    """GlobalAveragePooling1D reading the model's (8, 5) input: the strict build failed,
    -Werror=array-bounds ("array subscript 44 is outside array bounds of 'float [40]'"): the
    kernel's two-pixel loop tested x + C < end, forming a pointer past the array's end (seeds 9041,
    9066, 9111)."""
    import keras
    from keras import layers as L

    i = keras.Input((8, 5), name="input")
    return keras.Model(i, L.Dense(3, name="dense")(L.GlobalAveragePooling1D(name="gap")(i)))


def _depthwise_in_place_right_edge():
    """A 3x3 'same' DepthwiseConv2D run in place on a 5x9x7 map (its input is dead after it, its
    output planned 10 pixels below it): pixels 5-7 of rows 1-4 were off by up to 18, the outputs by 2.9. The kernel's
    4-pixel groups ran past the right edge group, storing pixels 4-7 before the edge group read
    the input columns those stores had overwritten (seeds 9256, 9263: a SeparableConv1D too)."""
    import keras
    from keras import layers as L

    i = keras.Input((5, 9, 7), name="input")
    a = L.Conv2D(7, 1, name="conv_a")(i)
    # (the planner gives this depthwise a 4-pixel in-place scratch: the grouped path)
    d = L.SeparableConv2D(3, 3, padding="same", name="sep")(L.Conv2D(7, 1, activation="tanh", name="conv_b")(a))
    x = L.Subtract(name="sub")([a, L.Conv2D(7, 1, name="conv_c")(d)])
    return keras.Model(i, L.Dense(3, name="dense")(L.GlobalAveragePooling2D(name="gap")(x)))


def _padding_holding_whole_windows():
    """ZeroPadding2D((2, 2), (2, 0)) absorbed into a 1x2 DepthwiseConv2D without bias: its first
    output rows and columns are windows wholly in the padding, which the kernel never started, and
    the strict build failed ("'a[0]' is used uninitialized", seed 9299). Such a layer now gets a
    zero bias, which the kernels start those windows from."""
    import keras
    from keras import layers as L

    i = keras.Input((13, 2, 1), name="input")
    x = L.ZeroPadding2D(((2, 2), (2, 0)), name="pad")(L.Conv2D(1, 1, name="conv")(i))
    return keras.Model(i, L.DepthwiseConv2D((1, 2), padding="same", use_bias=False, name="dw")(x))


def _padding_wider_than_the_kernel():
    """ZeroPadding1D((2, 0)) folded into a DepthwiseConv1D(1) with a bias, in place after a Dense:
    its first two outputs are windows wholly in the padding (no column of the map), which the
    one-pixel path still gave one tap, read past the window's weights (seed 9909: off by up to 113).
    A window row of no columns now adds nothing: those outputs are the bias."""
    import keras
    from keras import layers as L

    i = keras.Input((13, 25), name="input")
    x = L.ZeroPadding1D((2, 0), name="pad")(L.Dense(25, name="dense")(i))
    x = L.DepthwiseConv1D(1, name="dw")(x)
    return keras.Model(i, L.Dense(3, name="head")(L.Flatten(name="flat")(x)))


MINIMAL = {f.__name__.lstrip("_"): f for f in (_fanout_activation_dense, _fanout_batchnorm_dense,
                                               _fanout_activation_merge, _batchnorm_axis1_then_channels,
                                               _depthwise1d_short_sequence, _global_pool_of_the_input,
                                               _depthwise_in_place_right_edge, _padding_holding_whole_windows,
                                               _padding_wider_than_the_kernel)}


def case_from_model(name, model, seed=0):
    """A Case for a hand-written model: livened on LIVEN_BATCH inputs, N_INPUTS test inputs."""
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = netutil.random_inputs(shape, N_INPUTS, seed=seed + 1)
    netutil.liven(model, netutil.random_inputs(shape, LIVEN_BATCH, seed=seed + 2), seed=seed)
    sizes = [int(np.prod([int(d) for d in t.shape[1:]])) for t in model.outputs]
    case = Case(name, model, x, keras_reference(model, x), sizes, 0, None)
    case.classname = "".join(part.title() for part in name.split("_"))
    return case


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_fuzz_minimal(name, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    case = case_from_model(name, MINIMAL[name]())
    _, failures, refusals = run_cases([case], str(tmp_path))
    if failures or refusals:
        pytest.fail(f"{MINIMAL[name].__doc__}\n\n{_report(failures, refusals)}", pytrace=False)


def _main(argv):
    """``python tests/test_fuzz.py [--transformer|--ops|--several|--windows] SEED [SEED ...]``:
    build, compare and verify the given seeds (``--transformer``, ``--ops``, ``--several``,
    ``--windows``: as test_fuzz_transformer_layers, test_fuzz_keras_ops, test_fuzz_several_inputs
    and test_fuzz_windows draw them)."""
    import micronets

    transformer, keras_ops, several = "--transformer" in argv, "--ops" in argv, "--several" in argv
    windows = "--windows" in argv
    for seed in (int(a) for a in argv if not a.startswith("--")):
        case = make_case(seed, transformer=transformer, keras_ops=keras_ops, several=several, windows=windows)
        if case is None:
            print(f"seed {seed}: no usable model")
            continue
        with tempfile.TemporaryDirectory() as work:
            _, failures, refusals = run_seeds([seed], work, transformer=transformer, keras_ops=keras_ops,
                                              several=several, windows=windows)
        print(_report(failures, refusals) or f"OK {case.summary()}")
        if failures:
            try:
                print(micronets.verify(case.model, case.x, classname=case.classname).table())
            except Exception as exc:  # noqa: BLE001
                print(f"verify failed: {exc}")


def recurrent_stacks(seed, n):
    """A model whose outputs are ``n`` random stacks of one to three recurrent layers (the
    generator's draws: cells, directions, biases, Bidirectional merges) over one random sequence,
    each read through a Flatten when it keeps every step."""
    import keras

    gen = _Gen(np.random.default_rng(seed), ln_rng=np.random.default_rng(seed + 1))
    rng = gen.ln_rng
    inp = keras.Input((int(rng.integers(1, 17)), int(rng.integers(1, 6))))
    outs = []
    for _ in range(n):
        x = inp
        for _ in range(int(rng.integers(1, 4))):
            if len(x.shape) != 3:
                break
            x = gen.recurrent(x)
        outs.append(keras.layers.Flatten()(x) if len(x.shape) == 3 else x)
    return keras.Model(inp, outs, name=f"rnn{seed}")


def test_fuzz_recurrent_stacks(tmp_path):
    """Random SimpleRNN / GRU / LSTM / Bidirectional stacks against Keras (one header, one build);
    reproduce with MICRONETS_FUZZ_RNN_SEED=SEED."""
    import micronets
    from micronets import host

    model = recurrent_stacks(RNN_SEED, N_RNN_STACKS)
    x = np.random.default_rng(RNN_SEED).normal(0.0, 1.0, (6,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    ref = [np.asarray(r).reshape(len(x), -1) for r in netutil.keras_predict(model, x)]
    compiled = micronets.export(model, str(tmp_path / "Rnn.h"), classname="Rnn")
    exe = host.build(str(tmp_path / "Rnn.h"), "Rnn", out_dir=str(tmp_path), flags=host.RELAXED_INLINE)
    out, at = host.run(exe, x, sum(compiled.output_sizes)), 0
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"SimpleRNN", "GRU", "LSTM"} & kinds, kinds
    for k, r in enumerate(ref):
        got = out[:, at:at + r.shape[1]]
        at += r.shape[1]
        assert np.all(np.isfinite(r)), f"stack {k}: Keras itself overflows (seed {RNN_SEED})"
        diff = float(np.abs(got - r).max()) / max(1.0, float(np.abs(r).max()))
        assert diff <= 1e-5, f"stack {k} of seed {RNN_SEED}: {diff:.3g} from Keras ({model.outputs[k].name})"
    assert max(float(np.ptp(r, axis=0).max()) for r in ref) > 1e-3, "outputs do not vary with the input"


if __name__ == "__main__":
    _main(sys.argv[1:])
