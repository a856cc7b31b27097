"""Elementwise activations: fused into the producing op when it is their only reader (see
``Tracer.apply_activation``), else a standalone elementwise op, in place. Converters for the Keras
activation layers and for the activation operations a functional graph records (``keras.ops.relu6``,
``keras.activations.relu(x, max_value=...)``)."""

from __future__ import annotations

from micronets.compiler import activations
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, keras_activation


class Activation(Op):
    kind = "Activation"
    template = "kernels/activation.h.j2"

    def __init__(self, name, x, out, act):
        super().__init__(name, [x], out)
        self.act = act

    def label(self):
        return f"Activation {self.act.label}"

    def inplace_gap(self, input_index):
        return 0  # element i is read before it is written


@converter("ReLU", "op:ReLU", parts=True)
def convert_relu(layer, inputs, ctx):
    """keras.layers.ReLU and keras.activations.relu(x, ...) with its parameters."""
    act = activations.make("relu", max_value=layer.max_value, negative_slope=layer.negative_slope,
                           threshold=layer.threshold)
    return ctx.apply_activation(inputs[0], act, layer)


@converter("LeakyReLU", "op:LeakyRelu", parts=True)
def convert_leaky_relu(layer, inputs, ctx):
    slope = getattr(layer, "negative_slope", None)
    if slope is None:
        slope = ctx.call_kwargs.get("negative_slope", ctx.call_args[1] if len(ctx.call_args) > 1 else 0.2)
    return ctx.apply_activation(inputs[0], activations.make("leaky_relu", negative_slope=float(slope)), layer)


@converter("ELU", "op:Elu", "op:Celu", parts=True)
def convert_elu(layer, inputs, ctx):
    name = "celu" if type(layer).__name__ == "Celu" else "elu"
    return ctx.apply_activation(inputs[0], activations.make(name, alpha=float(getattr(layer, "alpha", 1.0))), layer)


@converter("op:Gelu", parts=True)
def convert_gelu(layer, inputs, ctx):
    return ctx.apply_activation(inputs[0], activations.make("gelu", approximate=getattr(layer, "approximate", True)), layer)


_PLAIN_OPS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "HardSigmoid": "hard_sigmoid",
              "HardSilu": "hard_silu", "Silu": "silu", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
              "Selu": "selu", "Exp": "exponential", "HardTanh": "hard_tanh", "Mish": "mish",
              "Square": "square", "Absolute": "abs", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Reciprocal": "reciprocal",
              "Log": "log", "Log1p": "log1p", "Expm1": "expm1", "Sin": "sin", "Cos": "cos", "Sign": "sign",
              "Floor": "floor", "Ceil": "ceil", "Erf": "erf"}


@converter(*(f"op:{k}" for k in _PLAIN_OPS), parts=True)
def convert_activation_op(layer, inputs, ctx):
    return ctx.apply_activation(inputs[0], activations.make(_PLAIN_OPS[type(layer).__name__]), layer)


@converter("op:Round", parts=True)
def convert_round(layer, inputs, ctx):
    """keras.ops.round: to the nearest integer, halves to even, as TensorFlow rounds (other
    ``decimals`` refused)."""
    if int(getattr(layer, "decimals", 0) or 0) != 0:
        raise UnsupportedModelError(f"operation '{layer.name}' rounds to {layer.decimals} decimals; only to integers "
                                    f"(decimals=0) is supported")
    return ctx.apply_activation(inputs[0], activations.make("round"), layer)


@converter("op:Clip", parts=True)
def convert_clip(layer, inputs, ctx):
    try:
        lo, hi = float(layer.x_min), float(layer.x_max)
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"operation '{layer.name}' clips to bounds that are not numbers") from None
    if not lo <= hi:
        raise UnsupportedModelError(f"operation '{layer.name}' clips to [{lo}, {hi}]: an empty range")
    return ctx.apply_activation(inputs[0], activations.make("clip", x_min=lo, x_max=hi), layer)


@converter("op:Power", parts=True)
def convert_power(layer, inputs, ctx):
    """x ** p (keras.ops.power) for a constant exponent p: x * x for 2, powf otherwise."""
    args = list(ctx.call_args) + [ctx.call_kwargs[k] for k in ("x2",) if k in ctx.call_kwargs]
    if len(args) != 2 or len(inputs) != 1 or args[0] is not inputs[0]:
        raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops power) raises to a power that is a tensor; "
                                    f"only a tensor to a constant power is supported")
    try:
        p = float(args[1])
    except (TypeError, ValueError):
        raise UnsupportedModelError(f"operation '{layer.name}' (keras.ops power) has an exponent that is not a number") from None
    act = activations.make("square") if p == 2.0 else activations.make("power", exponent=p)
    return ctx.apply_activation(inputs[0], act, layer)


@converter("Activation", parts=True)
def convert_activation(layer, inputs, ctx):
    act = keras_activation(layer.activation, layer, traceable=True)
    return ctx.apply_activation(inputs[0], act, layer)

