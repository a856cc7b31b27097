"""SimpleRNN, GRU and LSTM over a sequence (T, F): one step per position, the state kept in the
op's workspace, the last state out (or every step's, ``return_sequences``). Float headers only:
the int8 path refuses these layers, naming them, before TFLite's converter runs (TensorFlow 2.21's
crashed the process on a quantised LSTM).

Keras' cells, with its weights transposed so each gate unit's products run along a row:
- SimpleRNN: h = act(x W + h U + b);
- GRU (gates z, r, candidate): z = ract(x Wz + h Uz + bz), r likewise; reset_after (Keras' default)
  n = act(x Wn + bn + r * (h Un + bn')), else n = act(x Wn + (r * h) Un + bn); h = z h + (1 - z) n;
- LSTM (gates i, f, c, o): c = f c + i act(gc), h = o act(c).
``go_backwards`` reads the positions last to first (its sequence comes out in that order, as in
Keras). Bidirectional is two of these ops (the backward one's sequence flipped back) and a
merge. MACs: T (F + U) G U for G gates. Masks, initial states and stateful layers are refused
(returned states too: several outputs).
"""

from __future__ import annotations

import collections

import numpy as np

from micronets.compiler.graph import FLOAT_BYTES
from micronets.compiler.ops.base import Op, UnsupportedModelError, converter, keras_activation

GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


class Recurrent(Op):
    template = "kernels/recurrent.h.j2"

    def __init__(self, name, x, out, cell: str, kernel, recurrent, bias, act, ract, go_backwards: bool,
                 reset_after: bool = True, flip: bool = False):
        super().__init__(name, [x], out)
        if cell not in GATES or len(x.shape) != 2:
            raise ValueError(f"recurrent op '{name}': cell {cell!r} over {x.shape}")
        self.kind = cell
        self.gates = GATES[cell]
        self.steps, self.features = x.shape
        self.units = int(recurrent.shape[0])
        self.kernel = np.asarray(kernel, np.float64)        # (F, G U)
        self.recurrent = np.asarray(recurrent, np.float64)  # (U, G U)
        #: input-side bias (G U), and GRU reset_after's recurrent-side bias (G U)
        self.bias = None if bias is None else np.asarray(bias, np.float64).reshape(-1, self.gates * self.units)
        self.cell_act = act
        self.ract = ract
        self.go_backwards = bool(go_backwards)
        self.reset_after = bool(reset_after) and cell == "GRU"
        self.sequences = len(out.shape) == 2
        #: the sequence out last step first (Bidirectional's backward half, back in time order)
        self.flip = bool(flip) and self.sequences

    def macs(self):
        return int(self.steps * (self.features + self.units) * self.gates * self.units)

    def weights(self):
        w = collections.OrderedDict(w=self.kernel.T.reshape(-1), r=self.recurrent.T.reshape(-1))  # [G U][F], [G U][U]
        if self.bias is not None:
            w["b"] = self.bias.reshape(-1)
        return w

    def workspace_bytes(self):
        """The state h (and the LSTM's c), and each step's gate sums (the GRU's recurrent ones apart)."""
        u, g = self.units, self.gates
        return (u * (2 if self.kind == "LSTM" else 1) + g * u * (2 if self.kind == "GRU" else 1)) * FLOAT_BYTES

    def activations(self):
        return [self.cell_act, self.ract]

    def describe(self):
        text = f"{self.units} units over {self.steps} steps"
        if self.go_backwards:
            text += ", backwards"
        if self.sequences:
            text += ", every step out" + (" (flipped)" if self.flip else "")
        if self.kind == "GRU" and not self.reset_after:
            text += ", reset before"
        return text


def recurrent(ctx, layer, x, name, flip=False):
    """The op of a Keras SimpleRNN / GRU / LSTM ``layer`` reading ``x``; ``flip``: its sequence out
    last step first (Bidirectional's backward half, back in time order)."""
    cell = type(layer).__name__
    if cell not in GATES:
        raise UnsupportedModelError(f"layer '{name}' wraps a {cell}; SimpleRNN, GRU and LSTM are supported")
    if layer.stateful:  # (return_state: several outputs, refused before converters run)
        raise UnsupportedModelError(f"layer '{name}' ({cell}) uses stateful=True; not supported")
    if len(x.shape) != 2:
        raise UnsupportedModelError(f"layer '{name}' ({cell}) reads a sequence (steps, features); got {x.shape}")
    c = layer.cell
    weights = c.get_weights()
    kernel, recurrent_kernel = weights[0], weights[1]
    bias = weights[2] if c.use_bias else None
    units = recurrent_kernel.shape[0]
    act = keras_activation(c.activation, layer)
    ract = keras_activation(c.recurrent_activation, layer) if cell != "SimpleRNN" else act
    if isinstance(act, str) or isinstance(ract, str):
        raise UnsupportedModelError(f"layer '{name}' ({cell}) uses a softmax inside its cell; not supported")
    reset_after = bool(getattr(c, "reset_after", True))
    shape = (x.shape[0], units) if layer.return_sequences else (units,)
    out = ctx.new_tensor(name, shape)
    return ctx.add(Recurrent(name, x, out, cell, kernel, recurrent_kernel, bias, act, ract, layer.go_backwards,
                             reset_after, flip)).output


def _plain_call(layer, ctx):
    if ctx.call_kwargs.get("mask") is not None or ctx.call_kwargs.get("initial_state") is not None:
        raise UnsupportedModelError(f"layer '{layer.name}' ({type(layer).__name__}) is called with a mask or an initial "
                                    f"state; not supported")


@converter("SimpleRNN", "GRU", "LSTM")
def convert_recurrent(layer, inputs, ctx):
    _plain_call(layer, ctx)
    return recurrent(ctx, layer, ctx.dense_input(inputs[0]), layer.name)


@converter("Bidirectional")
def convert_bidirectional(layer, inputs, ctx):
    """Keras' Bidirectional: its forward and backward layers (the backward one reads the sequence
    last to first), the backward sequence flipped back into time order, merged as ``merge_mode``
    says (concat, sum, ave or mul)."""
    from micronets.compiler.ops.elementwise import binary
    from micronets.compiler.ops.rearrange import concatenate

    _plain_call(layer, ctx)
    x = ctx.dense_input(inputs[0])
    mode = layer.merge_mode
    if mode not in ("concat", "sum", "ave", "mul"):
        raise UnsupportedModelError(f"layer '{layer.name}' (Bidirectional) uses merge_mode={mode!r}; "
                                    f"supported: concat, sum, ave, mul")
    f_units, b_units = (int(getattr(r, "units", 0)) for r in (layer.forward_layer, layer.backward_layer))
    if f_units != b_units:
        raise UnsupportedModelError(
            f"layer '{layer.name}' (Bidirectional) has a forward layer of {f_units} units and a backward layer of "
            f"{b_units}: Keras declares its output as if both had {f_units} and computes another, so the model's "
            f"shapes do not hold; give the backward layer {f_units} units")
    forward = recurrent(ctx, layer.forward_layer, x, f"{layer.name}_forward")
    backward = recurrent(ctx, layer.backward_layer, x, f"{layer.name}_backward",
                         flip=bool(layer.backward_layer.return_sequences))
    if mode == "concat":
        return concatenate(ctx, [forward, backward], -1, layer.name)
    if mode == "ave":
        return binary(ctx, binary(ctx, forward, backward, "add", f"{layer.name}_sum"), 2.0, "divide", layer.name)
    return binary(ctx, forward, backward, "add" if mode == "sum" else "multiply", layer.name)
