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


@converter("Dense", parts=True)
def convert_dense(layer, inputs, ctx):
    x = ctx.dense_input(inputs[0])
    weights = layer.get_weights()
    kernel = merged_kernel(layer)
    bias = weights[1] if layer.use_bias else None
    if x.shape[-1] != kernel.shape[0]:
        raise UnsupportedModelError(f"layer '{layer.name}' (Dense) expects {kernel.shape[0]} values on the last axis; got {x.shape}")
    act = keras_activation(layer.activation, layer, traceable=True)
    return ctx.activation(dense(ctx, layer.name, x, kernel, bias), act, layer)


@converter("EinsumDense", parts=True)
def convert_einsum_dense(layer, inputs, ctx):
    """EinsumDense whose equation is a Dense over trailing axes: the input's last axes C contracted
    with the kernel's first, the kernel's other axes N the output's last, every other axis kept in
    order (``abc,cd->abd``, ``abc,cde->abde``: a projection to heads; ``abcd,cde->abe``: back from
    them; ``...b,bc->...c``). That is a Dense of the input seen as (positions, prod C) with the
    kernel as (prod C, prod N), its result seen in the output's shape. A bias over the N axes only
    (Keras adds it by numpy broadcasting). Other equations (a transposing or batch-reducing one)
    are refused."""
    x = ctx.dense_input(inputs[0])
    name = f"layer '{layer.name}' (EinsumDense, '{layer.equation}')"
    lhs, out_spec = layer.equation.replace(" ", "").split("->")
    in_spec, k_spec = lhs.split(",")
    if in_spec.startswith("...") != out_spec.startswith("...") or "..." in k_spec:
        raise UnsupportedModelError(f"{name}: only an ellipsis in front of both the input and the output is supported")
    in_spec, out_spec = in_spec.replace("...", ""), out_spec.replace("...", "")
    c = len(in_spec) - next((i for i in range(len(in_spec)) if in_spec[i:] == k_spec[:len(in_spec) - i]), len(in_spec))
    kept, contracted, new = in_spec[:len(in_spec) - c], in_spec[len(in_spec) - c:], k_spec[c:]
    if not c or out_spec != kept + new or len(set(in_spec + new)) != len(in_spec + new):
        raise UnsupportedModelError(f"{name}: only equations that contract the input's last axes with the kernel's "
                                    f"first, keep the other input axes in order and end with the kernel's other axes "
                                    f"(a Dense over trailing axes) are supported")
    kernel = merged_kernel(layer)
    k_in, k_out = int(np.prod(kernel.shape[:c])), int(np.prod(kernel.shape[c:]))
    lead = tuple(x.shape[:len(x.shape) - c])
    if tuple(x.shape[len(x.shape) - c:]) != tuple(kernel.shape[:c]):
        raise UnsupportedModelError(f"{name}: input {x.shape} does not end with the kernel's {kernel.shape[:c]}")
    bias = None
    if getattr(layer, "bias", None) is not None:
        b = np.asarray(layer.get_weights()[1], np.float64)
        if b.ndim > len(new):
            raise UnsupportedModelError(f"{name}: a bias over kept axes ('{layer.bias_axes}'), added per position; only "
                                        f"one over the kernel's output axes is supported")
        bias = np.broadcast_to(b, tuple(kernel.shape[c:])).reshape(-1)
    flat = ctx.view(x, lead + (k_in,) if lead else (k_in,), layer)
    y = dense(ctx, layer.name, flat, kernel.reshape(k_in, k_out), bias)
    y = ctx.activation(y, keras_activation(layer.activation, layer), layer)
    return ctx.view(y, lead + tuple(kernel.shape[c:]), layer)  # (Keras may declare kept axes as None)


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
