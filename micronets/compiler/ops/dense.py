"""Dense (fully connected): out = act(W x + b) over the last axis. MACs: in * out per row.

On a vector it is this op; on a sequence or map (Keras applies Dense to the last axis of every
position) it is the pointwise convolution with the same weights.
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, keras_activation, merged_kernel


class Dense(Op):
    kind = "Dense"
    template = "kernels/dense.h.j2"
    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)  # (in, out)
        self.bias = None if bias is None else np.asarray(bias, np.float64)

    def folded(self, scale, shift):
        bias = (self.bias if self.bias is not None else 0.0) * scale + shift
        return self.evolve(kernel=self.kernel * scale, bias=np.asarray(bias, np.float64))

    def macs(self):
        return int(self.kernel.shape[0] * self.kernel.shape[1])

    def weights(self):
        w = collections.OrderedDict(w=self.kernel.T.reshape(-1))  # [OUT][IN]
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def describe(self):
        return f"{self.kernel.shape[0]} -> {self.kernel.shape[1]}"


@converter("Dense")
def convert_dense(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    weights = layer.get_weights()
    kernel = merged_kernel(layer)
    bias = weights[1] if layer.use_bias else None
    if x.shape[-1] != kernel.shape[0]:
        raise UnsupportedModelError(f"layer '{layer.name}' (Dense) expects {kernel.shape[0]} values on the last axis; got {x.shape}")
    act = keras_activation(layer.activation, layer)
    return ctx.activation(dense(ctx, layer.name, x, kernel, bias), act, layer)


def dense(ctx, name, x, kernel, bias):
    """The op computing ``x @ kernel (+ bias)`` over ``x``'s last axis, position by position."""
    from micronets.compiler.ops.conv2d import Conv2D

    if len(x.shape) == 1:
        return ctx.add(Dense(name, x, ctx.new_tensor(name, (kernel.shape[1],)), kernel, bias))
    out = ctx.new_tensor(name, x.shape[:-1] + (kernel.shape[1],))
    return ctx.add(Conv2D(name, x, out, kernel[None, None], bias, (1, 1), (0, 0, 0, 0)))


#: layers that act on the last axis alone, position by position: TimeDistributed of one of them
#: is that layer applied to the whole tensor
PER_POSITION = ("Dense", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "LayerNormalization", "UnitNormalization",
                "BatchNormalization")


@converter("TimeDistributed")
def convert_time_distributed(layer, inputs, ctx):
    """Keras' TimeDistributed (the wrapped layer on every step of a sequence): for a layer that
    acts on the last axis alone (Dense, activations, the normalisations of the last axis), that
    layer on the whole sequence; others are refused naming the wrapped layer."""
    from micronets.compiler.ops.base import CONVERTERS
    from micronets.compiler.ops.reshape import INFERENCE_IDENTITY

    inner = layer.layer
    kind = type(inner).__name__
    if kind in INFERENCE_IDENTITY:
        return inputs[0]
    axis = getattr(inner, "axis", -1)
    if kind not in PER_POSITION or axis not in (-1, [-1], (-1,)):
        raise UnsupportedModelError(f"layer '{layer.name}' (TimeDistributed) wraps '{inner.name}' ({kind}); supported inside "
                                    f"it: layers of the last axis alone ({', '.join(PER_POSITION)}) and inference no-ops")
    return CONVERTERS[kind](inner, inputs, ctx)
