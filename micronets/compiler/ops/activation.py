"""Standalone activation (when it cannot be fused into the op producing its input), elementwise
and in place. Also the converters of the Keras activation layers, which usually just fuse."""

from __future__ import annotations

from micronets.compiler.ops.base import ACTIVATION_LABELS, Op, UnsupportedModelError, converter, keras_activation_name


class Activation(Op):
    kind = "Activation"
    template = "kernels/activation.h.j2"

    def __init__(self, name, x, out, act):
        super().__init__(name, [x], out)
        self.act = act

    def label(self):
        return f"Activation {ACTIVATION_LABELS.get(self.act, self.act)}"

    def inplace_gap(self, input_index):
        return 0  # element i is read before it is written


@converter("ReLU")
def convert_relu(layer, inputs, ctx):
    max_value = None if layer.max_value is None else float(layer.max_value)
    if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0 or max_value not in (None, 6.0):
        raise UnsupportedModelError(
            f"layer '{layer.name}' (ReLU) uses max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
            f"threshold={layer.threshold}; supported: plain ReLU and ReLU(6)"
        )
    return ctx.apply_activation(inputs[0], "relu6" if max_value == 6.0 else "relu", layer)


@converter("Activation")
def convert_activation(layer, inputs, ctx):
    return ctx.apply_activation(inputs[0], keras_activation_name(layer.activation, layer), layer)
