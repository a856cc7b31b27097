"""trace: a Keras model -> a Graph of typed ops with static shapes, in execution order.

Walks the Keras graph from the model's output back to its input, then converts layers in
topological order with the converters registered by the op modules. The rewrites that make the
C++ small happen here, as the converters ask for them:

- BatchNormalization folds into the conv/dense that produced its input (when it is the only reader);
- activations fuse into the producing op's kernel;
- ZeroPadding2D becomes padding of the consuming conv/pool (never a padded copy);
- Reshape/Flatten/Dropout become aliases (no op at all).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Dict, List, Tuple

from micronets.compiler.graph import Graph, Tensor
from micronets.compiler.ops.base import CONVERTERS, REWRITES, UnsupportedModelError


def _load_op_modules():
    """Import every module of micronets.compiler.ops so their converters register themselves."""
    import micronets.compiler.ops as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def supported_layers() -> List[str]:
    _load_op_modules()
    return sorted(set(CONVERTERS) | {"InputLayer"})


class Tracer:
    """Context handed to converters: creates tensors and ops, applies fusions."""

    def __init__(self):
        self.ops: List = []
        self.names: Dict[str, int] = {}

    # ---- tensors and ops
    def new_tensor(self, name: str, shape: Tuple[int, ...]) -> Tensor:
        return Tensor(name=name, shape=tuple(int(d) for d in shape))

    def add(self, op):
        op.index = len(self.ops)
        self.ops.append(op)
        return op

    def can_fuse(self, t: Tensor) -> bool:
        """True when ``t``'s producer may absorb a following elementwise step (BN, activation):
        the step is ``t``'s only reader and ``t`` is not itself a model output. (The trace loop has
        already taken the current reader off ``t.uses``.)"""
        op = t.producer
        return (op is not None and t.pad_of is None and t.uses == 0 and not t.is_model_output
                and op.fuses_activation and op.act == "linear")

    # ---- rewrites requested by converters
    def activation(self, op, name: str, layer):
        """The layer's own ``activation=``: fuse into the op just created (or add a softmax)."""
        from micronets.compiler.ops.softmax import softmax

        if name == "linear":
            return op.output
        if name == "softmax":
            return softmax(self, op.output, f"{layer.name}_softmax")
        op.act = name
        return op.output

    def apply_activation(self, x: Tensor, name: str, layer) -> Tensor:
        """An activation layer reading ``x``: fused when possible, else its own elementwise op."""
        from micronets.compiler.ops.activation import Activation
        from micronets.compiler.ops.softmax import softmax

        if name == "linear":
            return self.alias(x, x.shape, layer)
        if name == "softmax":
            return softmax(self, x, layer.name)
        if self.can_fuse(x):
            x.producer.act = name
            return x
        x = self.dense_input(x, layer)
        out = self.new_tensor(layer.name, x.shape)
        return self.add(Activation(layer.name, x, out, name)).output

    def alias(self, x: Tensor, shape, layer) -> Tensor:
        """Same bytes, new shape (Reshape/Flatten/Dropout). Returns the tensor object itself, so
        the uses of the alias add up on the original."""
        if x.pad_of is not None and tuple(shape) != x.shape:
            raise UnsupportedModelError(f"layer '{layer.name}' reshapes the output of a ZeroPadding2D; not supported")
        if tuple(shape) != x.shape:
            if x.producer is None and x.kind == "input":
                raise UnsupportedModelError(f"layer '{layer.name}' reshapes the model input; not supported")
            x.shape = tuple(int(d) for d in shape)
        return x

    def pad(self, x: Tensor, pads, layer) -> Tensor:
        src, have = self.unpad(x)
        total = tuple(a + b for a, b in zip(have, pads))
        h, w, c = src.hwc
        t = Tensor(name=layer.name, shape=(h + total[0] + total[1], w + total[2] + total[3], c), kind="virtual")
        t.pad_of = (src, total)
        src.uses += 1  # held for whoever reads the padded view: nothing may fuse into src
        return t

    def unpad(self, x: Tensor):
        """(real tensor, pads) behind a possibly padded view."""
        if x.pad_of is None:
            return x, (0, 0, 0, 0)
        return x.pad_of

    def dense_input(self, x: Tensor, layer) -> Tensor:
        """Input of an op that cannot absorb padding."""
        if x.pad_of is not None:
            who = f"layer '{layer.name}' ({type(layer).__name__})" if layer is not None else "this op"
            raise UnsupportedModelError(
                f"ZeroPadding2D '{x.name}' feeds {who}, which cannot absorb padding; put it in front of a convolution or pooling"
            )
        return x


def _keras_graph(model):
    """(topologically ordered [(layer, input keras tensors, output keras tensor)], reader counts)."""
    if not getattr(model, "inputs", None) or not getattr(model, "outputs", None):
        raise UnsupportedModelError(
            f"model '{model.name}' has no defined input; build it with an Input shape (keras.Input or Sequential([keras.Input(...), ...]))"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(f"model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} outputs; exactly one of each is supported")

    order, seen = [], set()
    stack = [(model.outputs[0], False)]
    while stack:
        kt, expanded = stack.pop()
        history = kt._keras_history
        layer = history.operation
        key = (id(layer), history.node_index)
        if expanded:
            if key not in seen:
                seen.add(key)
                node = layer._inbound_nodes[history.node_index]
                order.append((layer, list(node.input_tensors), kt))
            continue
        if key in seen:
            continue
        stack.append((kt, True))
        node = layer._inbound_nodes[history.node_index]
        for t in reversed(list(node.input_tensors)):
            stack.append((t, False))
    readers = {}
    for layer, ins, _ in order:
        for t in ins:
            readers[id(t)] = readers.get(id(t), 0) + 1
    return order, readers


def trace(model, fuse: bool = True) -> Graph:
    """Convert a Keras model into a Graph; unsupported layers raise UnsupportedModelError.
    ``fuse=False`` skips the fusing rewrites (one op per layer, for comparison)."""
    _load_op_modules()
    order, readers = _keras_graph(model)
    ctx = Tracer()
    tensors: Dict[int, Tensor] = {}
    graph_input = None
    out_kt = model.outputs[0]

    for layer, inputs_kt, output_kt in order:
        cls = type(layer).__name__
        if cls == "InputLayer":
            shape = tuple(int(d) for d in output_kt.shape[1:])
            if len(shape) != 3 or any(d is None for d in shape):
                raise UnsupportedModelError(f"model input must be an image (H, W, C) of fixed size; got {output_kt.shape}")
            graph_input = Tensor(name="input", shape=shape, kind="input")
            t = graph_input
        else:
            if hasattr(layer, "layers") and cls not in CONVERTERS:
                raise UnsupportedModelError(
                    f"layer '{layer.name}' is a nested model ({cls}); flatten it into one functional model first"
                )
            fn = CONVERTERS.get(cls)
            if fn is None:
                raise UnsupportedModelError(
                    f"layer '{layer.name}' of class {cls} is not supported. Supported layers: {', '.join(supported_layers())}"
                )
            ins = [tensors[id(k)] for k in inputs_kt]
            for tin in ins:
                tin.uses -= 1  # this layer is reading it now
            t = fn(layer, ins, ctx)
        t.uses += readers.get(id(output_kt), 0)
        if output_kt is out_kt:
            t.is_model_output = True
        tensors[id(output_kt)] = t

    if graph_input is None:
        raise UnsupportedModelError("model has no InputLayer")
    out = tensors[id(out_kt)]
    if out.pad_of is not None:
        raise UnsupportedModelError("the model's output is a ZeroPadding2D view; not supported")
    if out.kind == "input":
        raise UnsupportedModelError("the model computes nothing: its output is its input")
    out.kind = "output"
    ops = ctx.ops
    for fn in REWRITES if fuse else ():
        ops = fn(ops)
    for i, op in enumerate(ops):
        op.index = i
    _name_ops(ops)
    return Graph(ops=ops, input=graph_input, output=out)


def _name_ops(ops):
    """Give each op a unique C identifier stem derived from its Keras layer name."""
    used = set()
    for op in ops:
        stem = re.sub(r"\W", "_", op.name)
        if not stem or stem[0].isdigit():
            stem = f"l_{stem}"
        ident, k = stem, 2
        while ident in used:
            ident = f"{stem}_{k}"
            k += 1
        used.add(ident)
        op.ident = ident
