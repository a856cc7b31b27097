"""Test helpers: give Keras models weights whose outputs actually depend on the input.

Keras' default initialisation makes the deep, narrow micronets output ~1/num_classes for every
input, so a C++ port that ignored the input entirely would still "agree". ``liven`` draws random
weights and rescales each layer (in graph order, on a real batch) so that its pre-activation
outputs have unit spread, gives every BatchNormalization non-trivial statistics, and scales the
classifier so the softmax is far from uniform. ``assert_lively`` checks that it worked.
"""

from __future__ import annotations

import numpy as np

BIAS_MEAN = 1.0
KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense", "SeparableConv2D")


def _layer_output(model, layer, x):
    import keras

    probe = keras.Model(model.inputs, layer.output)
    return np.asarray(probe(x, training=False))


def liven(model, x, seed=0, logit_std=3.0):
    """Randomise ``model``'s weights in place so its outputs vary strongly with the input ``x``.

    Layer by layer (LSUV-style), each output channel is rescaled to unit spread on ``x`` and, where
    the layer has a bias, recentred to a small random mean: well-conditioned, like a trained net.
    """
    rng = np.random.default_rng(seed)
    kernel_layers = [l for l in model.layers if type(l).__name__ in KERNEL_LAYERS]
    last = kernel_layers[-1] if kernel_layers else None
    for layer in model.layers:
        kind = type(layer).__name__
        weights = layer.get_weights()
        if kind in KERNEL_LAYERS:
            new = [rng.normal(0.0, 1.0, w.shape).astype(np.float32) for w in weights]
            k = 1 if kind == "SeparableConv2D" else 0  # index of the kernel whose last axis is the output
            has_bias = len(new) > k + 1
            if has_bias:
                new[-1] = np.zeros_like(new[-1])
            layer.set_weights(new)
            y = _layer_output(model, layer, x)
            axes = tuple(range(y.ndim - 1))
            std = np.std(y, axis=axes)
            # a nearly constant channel would get a huge gain and amplify rounding noise: clamp
            std = np.maximum(std, 0.5 * float(np.mean(std)) + 1e-6)
            mean = np.mean(y, axis=axes)
            target = logit_std if layer is last else 1.0
            gain = target / std
            if kind == "DepthwiseConv2D":
                new[0] = new[0] * gain[None, None, :, None]
            else:
                new[k] = new[k] * gain
            if has_bias:
                new[-1] = -mean * gain + rng.normal(BIAS_MEAN * target, 0.3 * target, mean.shape)
            layer.set_weights([w.astype(np.float32) for w in new])
        elif kind == "BatchNormalization":
            y_in = _layer_input(model, layer, x)
            axes = tuple(range(y_in.ndim - 1))
            mean = y_in.mean(axis=axes)
            var = y_in.var(axis=axes)
            values = {}
            for w in layer.weights:
                n = w.path.split("/")[-1]
                shape = tuple(w.shape)
                if n == "gamma":
                    values[n] = rng.uniform(0.5, 1.5, shape)
                elif n == "beta":
                    values[n] = rng.normal(0.0, 0.3, shape)
                elif n == "moving_mean":
                    values[n] = mean + rng.normal(0.0, 0.2, shape) * np.sqrt(var + 1e-3)
                elif n == "moving_variance":
                    values[n] = (var + 1e-3) * rng.uniform(0.5, 2.0, shape)
            layer.set_weights([values[w.path.split("/")[-1]].astype(np.float32) for w in layer.weights])
    return model


def _layer_input(model, layer, x):
    import keras

    probe = keras.Model(model.inputs, layer.input)
    return np.asarray(probe(x, training=False))


def assert_lively(probs, num_classes):
    """The check cannot pass vacuously: predictions differ across inputs and are confident."""
    probs = np.asarray(probs)
    assert len(set(np.argmax(probs, axis=1).tolist())) >= 2, f"every input gets the same class: {probs.argmax(1)}"
    assert float(np.mean(np.max(probs, axis=1))) > 2.0 / num_classes, f"near-uniform outputs: {probs.max(1)}"


def random_images(shape, n=8, seed=1):
    """Images with real structure (blobs and gradients of varying brightness), values in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.empty((n, h, w, c), np.float32)
    for i in range(n):
        for ch in range(c):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 0.5)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            grad = rng.uniform(-1, 1) * yy + rng.uniform(-1, 1) * xx
            img = rng.uniform(0.2, 1.0) * blob + 0.3 * grad + 0.15 * rng.random((h, w))
            out[i, :, :, ch] = img
    out -= out.min(axis=(1, 2, 3), keepdims=True)
    out /= out.max(axis=(1, 2, 3), keepdims=True)
    return out


def to_uint8(x):
    """Quantise [0, 1] images to raw 8-bit pixels; returns (pixels, the exact float input they mean)."""
    pixels = np.clip(np.round(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)
    return pixels, (pixels.astype(np.float32) / np.float32(255.0))
