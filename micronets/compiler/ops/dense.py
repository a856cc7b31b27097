"""Dense (fully connected) on a vector: out = act(W x + b). MACs: in * out."""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, keras_activation_name


class Dense(Op):
    kind = "Dense"
    template = "kernels/dense.h.j2"
    fuses_activation = True

    def __init__(self, name, x, out, kernel, bias):
        super().__init__(name, [x], out)
        self.kernel = np.asarray(kernel, np.float64)  # (in, out)
        self.bias = None if bias is None else np.asarray(bias, np.float64)

    def fold_scale_shift(self, scale, shift):
        self.kernel = self.kernel * scale
        self.bias = (self.bias if self.bias is not None else 0.0) * scale + shift

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
    x = ctx.dense_input(inputs[0], layer)
    kernel = layer.get_weights()[0]
    if x.size != kernel.shape[0] or (len(x.shape) == 3 and x.shape[:2] != (1, 1)):
        raise UnsupportedModelError(
            f"layer '{layer.name}' (Dense) gets input of shape {x.shape}; it must be a vector (Flatten it first)"
        )
    bias = layer.get_weights()[1] if layer.use_bias else None
    out = ctx.new_tensor(layer.name, (kernel.shape[1],))
    op = ctx.add(Dense(layer.name, x, out, kernel, bias))
    return ctx.activation(op, keras_activation_name(layer.activation, layer), layer)
