"""trace: a Keras model -> a Graph of typed ops with static shapes, in execution order.

Walks the Keras graph (layers and the bare Keras operations a functional graph records, such as
``x + 3.0`` inside MobileNetV3's hard-sigmoid) in topological order and converts each node with the
converter its op module registered. The rewrites that make the C++ small happen here, each only
when its precondition is proven:

- BatchNormalization folds into the conv/dense that produced its input when it normalises that
  op's output channels and is the tensor's only reader (no view, no other reader, not an output);
- activations fuse into the producing op under the same condition;
- ZeroPadding becomes padding of the consuming conv/pool (a padded copy only where a consumer
  cannot absorb it);
- Reshape/Flatten become views (same bytes, their own shape), Dropout and friends vanish.
Ops are never edited: a fusion replaces the producing op by an evolved copy.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import inspect
import pkgutil
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from micronets.compiler import activations
from micronets.compiler.graph import Graph, Tensor, input_name
from micronets.compiler.ops.base import (CONVERTERS, LATER_OUTPUTS_TRACED, MULTI_OUTPUT, READS_MASK, REWRITES,
                                         TAKES_CONSTANTS, TAKES_PARTS, IntoParts, TraceThrough, UnsupportedModelError,
                                         brief)


def _load_op_modules():
    """Import every module of micronets.compiler.ops so their converters register themselves."""
    import micronets.compiler.ops as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def supported_layers() -> List[str]:
    """Keras layer class names the compiler converts (bare Keras operations are listed by
    :func:`supported_operations`)."""
    _load_op_modules()
    return sorted({k for k in CONVERTERS if not k.startswith("op:")} | {"InputLayer"})


def supported_operations() -> List[str]:
    """Bare Keras operations (``keras.ops.*`` recorded in functional graphs) the compiler converts
    (or, for those whose value does not depend on their input's values, computes at compile time)."""
    _load_op_modules()
    return sorted({k[3:] for k in CONVERTERS if k.startswith("op:")} | {k[3:] for k in VALUE_FREE})


#: keras.ops whose result depends on their first argument's shape only, not its values
#: (``ops.ones_like(x)``): computed at compile time, a constant like any other
VALUE_FREE = frozenset({"op:OnesLike", "op:ZerosLike", "op:FullLike"})


@dataclasses.dataclass(frozen=True, eq=False)
class Padded:
    """A ZeroPadding1D/2D result: ``src`` seen with zeros around it, never materialised unless a
    consumer cannot absorb padding. ``pads`` are (top, bottom, left, right) on ``src.hwc``.
    ``fill`` -inf: ``ops.pad(x, ..., constant_values=-inf)``, which only a max pooling reads (as
    its padding, the cells left out of its windows: keras-hub's ResNetV2 and CSPNet stems)."""

    src: Tensor
    pads: Tuple[int, int, int, int]
    shape: Tuple[int, ...]
    name: str
    fill: float = 0.0

    @property
    def hwc(self):
        h, w, c = self.src.hwc
        t, b, l, r = self.pads
        return (h + t + b, w + l + r, c)

    @property
    def size(self):
        h, w, c = self.hwc
        return h * w * c


class Tracer:
    """Context handed to converters: creates tensors and ops, applies fusions."""

    def __init__(self):
        self.ops: List = []
        self.position: Dict[Tensor, int] = {}  # tensor -> index in ops of the op writing it
        #: value -> its Keras readers (all of them, converted or not); a node that passes its input
        #: through (an identity, or a step fused into its input's producer) hands its own readers on
        self.readers: Dict[object, int] = {}
        self.pinned: set = set()  # values that must stay whole: model outputs, viewed or padded tensors
        self.call_args: Tuple = ()  # the current node's call arguments, Keras tensors replaced by values
        self.call_kwargs: Dict = {}
        self.output_shape: Tuple = ()  # its output's shape as Keras computed it (no batch axis but in parts mode)
        #: ids of Keras layers compiled through their call() (a later output of theirs is needed)
        self.traced_layers: frozenset = frozenset()
        #: tensors of Keras' whole shape, first axis included: values whose batch axis holds several
        #: parts of the one sample (windows, a q/k/v stack), read by TAKES_PARTS converters only
        self.parts: set = set()
        #: Keras axes before a converter's tensors' first axis: 1 (the batch axis), 0 while a
        #: TAKES_PARTS converter is handed tensors of the whole shape
        self.lead: int = 1

    def axis(self, axis: int, rank: int) -> Optional[int]:
        """Keras' ``axis`` (negative from the end) of a tensor of ``rank`` axes as handed to the
        converter, as an axis of that tensor; None for the batch axis of a sample, or out of range."""
        a = axis + rank + self.lead if axis < 0 else axis
        return a - self.lead if self.lead <= a < rank + self.lead else None

    def is_parts(self, x) -> bool:
        """Whether value ``x`` holds parts of the sample in its batch axis (its shape is Keras' whole)."""
        return isinstance(x, Tensor) and x in self.parts

    def keras_shape(self, x) -> Tuple[int, ...]:
        """The shape Keras gives value ``x`` in a batch of one sample."""
        return tuple(x.shape) if x in self.parts else (1,) + tuple(x.shape)

    # ---- tensors and ops
    def new_tensor(self, name: str, shape: Tuple[int, ...]) -> Tensor:
        return Tensor(name=name, shape=tuple(int(d) for d in shape))

    def add(self, op):
        self.position[op.output] = len(self.ops)
        self.ops.append(op)
        return op

    def producer(self, t) -> Optional[object]:
        i = self.position.get(t) if isinstance(t, Tensor) else None
        return None if i is None else self.ops[i]

    def replace(self, old, new):
        """Put ``new`` (an evolved copy of ``old``, same output tensor) where ``old`` was."""
        if new.output is not old.output:
            raise ValueError("a replacing op must write the same tensor")
        self.ops[self.position[old.output]] = new
        return new

    def can_fuse(self, t) -> bool:
        """True when ``t``'s producer may absorb the current reader (BN, activation): ``t`` is that
        op's own output (not a view or padding), the current node is its only reader (none before
        it, none after it), and nothing else must see ``t`` unchanged (a model output)."""
        return (isinstance(t, Tensor) and t.base is None and self.producer(t) is not None
                and self.readers.get(t, 0) == 1 and t not in self.pinned)

    # ---- rewrites requested by converters
    def activation(self, op, act, layer):
        """The layer's own ``activation=``: fuse into the op just created (or add a row op)."""
        if isinstance(act, str):  # softmax / log_softmax: an op over the last axis
            from micronets.compiler.ops.softmax import row_activation

            return row_activation(self, op.output, act, f"{layer.name}_{act}")
        if act.is_linear:
            return op.output
        self.replace(op, op.evolve(act=act))
        return op.output

    def apply_activation(self, x, act, layer, name=None):
        """An activation layer reading ``x``: fused when possible, else its own elementwise op."""
        from micronets.compiler.ops.activation import Activation

        name = name or layer.name
        if isinstance(act, str):
            from micronets.compiler.ops.softmax import row_activation

            return row_activation(self, x, act, name, axis=getattr(layer, "axis", -1))
        if act.is_linear:
            return x
        op = self.producer(x)
        if self.can_fuse(x) and op.fuses_activation and op.act.is_linear:
            self.replace(op, op.evolve(act=act))
            return x
        x = self.dense_input(x, layer)
        out = self.new_tensor(name, x.shape)
        return self.add(Activation(name, x, out, act)).output

    def view(self, x, shape, layer) -> Tensor:
        """Same bytes, new shape (Reshape/Flatten): a view; the producer keeps its own shape."""
        x = self.dense_input(x, layer)
        shape = tuple(int(d) for d in shape)
        if shape == x.shape:
            return x
        self.pinned.add(x.storage)
        return Tensor(name=layer.name, shape=shape, base=x.storage)

    def pad(self, x, pads, layer, fill: float = 0.0) -> Padded:
        """``x`` seen with ``pads`` cells of ``fill`` around it (0, or -inf for a max pooling)."""
        if isinstance(x, Padded) and x.fill == fill:
            src, have = x.src, x.pads
        else:  # (zeros around the zeros a ZeroPadding wrote out; or the padding of a max pooling's view)
            src, have = self.dense_input(x, layer), (0, 0, 0, 0)
        total = tuple(a + b for a, b in zip(have, pads))
        self.pinned.add(src)  # whoever reads the padded view reads src: nothing may fuse into it
        h, w, c = src.hwc
        hwc = (h + total[0] + total[1], w + total[2] + total[3], c)
        shape = (hwc[1], c) if len(src.shape) == 2 else hwc
        return Padded(src=src, pads=total, shape=shape, name=layer.name, fill=fill)

    def unpad(self, x, fill: float = 0.0):
        """(real tensor, pads) behind a possibly padded view of ``fill`` (zeros by default); a view
        padded otherwise is refused (-inf: only a max pooling reads it, asking for that fill)."""
        if isinstance(x, Padded):
            if x.fill != fill:
                raise UnsupportedModelError(
                    f"'{x.name}' pads with {x.fill}, which is supported as the padding of a max pooling reading it "
                    f"(MaxPooling1D/2D, padding='valid', each pad smaller than its window) only")
            return x.src, x.pads
        return x, (0, 0, 0, 0)

    @staticmethod
    def padding_fill(x) -> float:
        """What a padded view's border holds (0 for a value that is not one)."""
        return x.fill if isinstance(x, Padded) else 0.0

    @staticmethod
    def is_value(x) -> bool:
        """Whether a converter's operand is a model value (a tensor, or a padded view of one), not
        a constant."""
        return isinstance(x, (Tensor, Padded))

    def dense_input(self, x, layer=None) -> Tensor:
        """Input of an op that cannot absorb padding: a padded view is materialised (a copy)."""
        if isinstance(x, Padded):
            from micronets.compiler.ops.rearrange import materialise_padding

            self.unpad(x)  # (zeros only)
            return materialise_padding(self, x)
        return x


def _operation_key(operation) -> str:
    """Registry key: a layer's class name, or 'op:' + class name for a bare Keras operation."""
    import keras

    cls = type(operation).__name__
    return cls if isinstance(operation, keras.layers.Layer) else f"op:{cls}"


def keras_nodes(model):
    """The nodes (one per layer or operation call) of a functional model in topological order:
    depth-first from each output in ``model.outputs`` order, a node's inputs in order."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(model.outputs)]
    while stack:
        kt, expanded = stack.pop()
        history = kt._keras_history
        layer = history.operation
        key = (id(layer), history.node_index)
        node = layer._inbound_nodes[history.node_index]
        if expanded:
            if key not in seen:
                seen.add(key)
                order.append(node)
            continue
        if key in seen:
            continue
        stack.append((kt, True))
        for t in reversed(list(node.input_tensors)):
            stack.append((t, False))
    return order


def _keras_graph(model):
    """(topologically ordered [(operation, node, output keras tensor)], reader counts)."""
    if not getattr(model, "inputs", None) or not getattr(model, "outputs", None):
        raise UnsupportedModelError(
            f"model '{model.name}' has no defined input; build it with an Input shape (keras.Input or Sequential([keras.Input(...), ...]))"
        )
    order = [(node.operation, node, node.output_tensors[0]) for node in keras_nodes(model)]
    readers = {}
    for layer, node, _ in order:
        for t in node.input_tensors:
            readers[id(t)] = readers.get(id(t), 0) + 1
    return order, readers


def _substitute(value, values):
    """Call arguments with Keras tensors replaced by graph values (nested lists/tuples/dicts)."""
    if hasattr(value, "_keras_history"):
        return values[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, values) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    return value


def _describe(operation, key) -> str:
    cls = type(operation).__name__
    return f"layer '{operation.name}' of class {cls}" if not key.startswith("op:") else \
        f"operation '{operation.name}' (keras.ops {cls})"


class _Uncomputed:
    """A Keras value micronets does not compute (an output after the first of a layer whose
    converter computes its first only: attention scores asked for and never used), and every value
    computed from it: refused, saying ``reason``, only where a model output depends on it."""

    __slots__ = ("reason", "layer")

    def __init__(self, reason: str, layer=None):
        self.reason = reason
        self.layer = layer  # the Keras layer whose output it is (to be compiled through its call())


def _trace_nodes(model, order, readers, values, ctx, out_ids, layer_values):
    """Convert ``order`` (``_keras_graph(model)``) into ops on ``ctx``, mapping each Keras tensor to
    its value in ``values``; returns the graph inputs ``order``'s InputLayers make (model input
    position -> tensor; none for a nested model: its inputs are bound to what its call passes). A layer that
    is itself a model (a Sequential or functional sub-model, as keras.applications nests some
    stems) is inlined: its layers become ops reading the values its call received. So is a layer
    of a class the compiler does not know, through what its ``call()`` does (``_expanded``)."""
    import keras

    graph_inputs, calls = {}, {}
    positions = {id(kt): k for k, kt in enumerate(model.inputs)}
    for layer, node, output_kt in order:
        key = _operation_key(layer)
        uncomputed = next((values[id(k)] for k in node.input_tensors if isinstance(values.get(id(k)), _Uncomputed)), None)
        if uncomputed is not None:  # not computed either (an error only if an output depends on it)
            for k in node.input_tensors:
                if isinstance(values.get(id(k)), Tensor):
                    ctx.readers[values[id(k)]] -= 1  # (this call reads it no more)
            for kt in node.output_tensors:
                values[id(kt)] = uncomputed
            continue
        t = None if key == "InputLayer" else _folded(layer, node, key, values, ctx, model)
        if t is None and key != "InputLayer" and key not in TAKES_CONSTANTS and \
                any(isinstance(values.get(id(k)), np.ndarray) for k in node.input_tensors):
            raise UnsupportedModelError(
                f"{_describe(layer, key)} in model '{model.name}' reads a constant (the output of a layer that does "
                f"not depend on the model's input) together with a value computed from the input; a constant is "
                f"supported there as an operand of elementwise arithmetic (Add, Multiply, x + c, ...) and of "
                f"Concatenate only")
        if t is not None:  # a constant, computed by Keras
            pass
        elif key == "InputLayer":
            if id(output_kt) in values:  # a nested model's input: bound to what its call received
                continue
            k = positions[id(output_kt)]
            t = graph_inputs[k] = _input_tensor(output_kt, k)
        elif isinstance(layer, keras.Model) and key not in CONVERTERS and getattr(layer, "outputs", None):
            if len(node.input_tensors) != len(layer.inputs):  # (a call passing more than its inputs: a mask)
                raise UnsupportedModelError(f"layer '{layer.name}' is a nested model ({type(layer).__name__}) of "
                                            f"{len(layer.inputs)} inputs called with {len(node.input_tensors)} tensors")
            t = _inline(layer, node, values, ctx)
        elif isinstance(layer, keras.layers.Layer) and key not in CONVERTERS:  # a user's class, or subclassed Model
            t = _traced_call(layer, node, key, model, values, ctx)
        elif id(layer) in ctx.traced_layers:  # a converted layer whose later output an output needs
            t = _traced_call(layer, node, key, model, values, ctx, why="an output after its first is read")
        else:
            fn = CONVERTERS.get(key)
            if fn is None and key in VALUE_FREE:  # (not folded: its fill value is computed from the input)
                raise _unsupported(layer, key, model, " with a fill value computed from the model's input; only a "
                                                      "constant fill is supported")
            if fn is None:
                raise _unsupported(layer, key, model)
            if getattr(layer, "quantization_mode", None):  # Keras computes it from rounded weights (and inputs)
                raise _unsupported(layer, key, model, f" as Keras quantized it (quantization_mode="
                                                      f"'{layer.quantization_mode}'): export the float model; "
                                                      f"micronets quantises it itself (quantize='int8')")
            if key not in READS_MASK and _mask_passed(layer, node):
                raise _unsupported(layer, key, model, " when called with a mask (its call()'s mask argument): "
                                                      "micronets would compute it as if unmasked")
            ins = [values[id(k)] for k in node.input_tensors]
            parts = _parts_call(node, output_kt, ins, ctx)
            try:
                try:
                    t = _convert(fn, layer, node, key, model, values, ctx, output_kt, parts)
                except IntoParts:  # (a reshape of a sample into parts, in a graph of any batch size)
                    t = _convert(fn, layer, node, key, model, values, ctx, output_kt, True)
            except UnsupportedModelError:
                raise
            except TraceThrough as why:  # a form of the call its kernel does not take: compile its call()
                t = _traced_call(layer, node, key, model, values, ctx, why=str(why))
            except (ValueError, TypeError, IndexError, KeyError) as exc:
                raise UnsupportedModelError(f"{_describe(layer, key)} cannot be compiled: {exc}") from exc
            if any(t is v for v in ins):  # passed its input through: its readers read that value
                ctx.readers[t] -= 1
        name = call_name(layer.name, calls)
        # one value per output (a multi-output converter, nested model or user layer), or the first
        # output's alone (a converter whose later outputs nothing reads: checked above)
        results = t if isinstance(t, tuple) else (t,)
        if len(results) != len(node.output_tensors) and key not in CONVERTERS:
            raise UnsupportedModelError(
                f"{_describe(layer, key)} in model '{model.name}' returns {len(results)} tensor(s) at inference "
                f"(training=False, as predict() runs it) where the model's graph took {len(node.output_tensors)} from "
                f"it: build the model with the layer called as at inference (training=False)")
        assert len(results) in (1, len(node.output_tensors)), f"{key}: {len(results)} values, {len(node.output_tensors)} outputs"
        if key in CONVERTERS and key not in MULTI_OUTPUT and len(results) == 1:
            for kt in node.output_tensors[1:]:  # (return_state, return_attention_scores, ...)
                values[id(kt)] = _Uncomputed(
                    f"{_describe(layer, key)} in model '{model.name}' has {len(node.output_tensors)} outputs and the "
                    f"model's output depends on one after the first (return_state, return_attention_scores, ...); "
                    f"micronets computes its first output only", layer if key in LATER_OUTPUTS_TRACED else None)
        for k, (kt, t) in enumerate(zip(node.output_tensors, results)):
            if isinstance(t, _Uncomputed):  # (a nested model's or user layer's output)
                values[id(kt)] = t
                continue
            if isinstance(t, np.ndarray):  # read by elementwise arithmetic only, as weights
                if id(kt) in out_ids:
                    raise UnsupportedModelError(f"model '{model.name}' outputs a constant: layer '{layer.name}' does "
                                                f"not depend on the model's input")
                values[id(kt)] = t
                continue
            declared = tuple(kt.shape[1:])
            if not ctx.is_parts(t) and None not in declared and int(np.prod(t.shape)) != int(np.prod(declared)):  # a converter that lost or invented values
                if id(layer) in ctx.traced_layers:  # its own call() as Keras runs it: Keras' graph declared otherwise
                    raise UnsupportedModelError(
                        f"{_describe(layer, key)} in model '{model.name}': its call() computes output {k} as "
                        f"{t.shape} where Keras' graph declares {declared} (Keras' shape inference disagrees with "
                        f"its own call(), as MultiHeadAttention's does for the scores of a query shorter than its "
                        f"keys); the layers after it were built on the declared shape: refused")
                raise UnsupportedModelError(
                    f"{_describe(layer, key)} in model '{model.name}' compiles to {t.shape} ({int(np.prod(t.shape))} "
                    f"values) where Keras declares {declared}: a micronets bug, please report it; refused rather than "
                    f"compiled wrong")
            ctx.readers[t] = ctx.readers.get(t, 0) + readers.get(id(kt), 0)
            if id(kt) in out_ids:
                ctx.pinned.add(t)
            values[id(kt)] = t
            if layer_values is not None and not ctx.is_parts(t):  # (a value of one sample only)
                layer_values.append((output_name(name, k), t))
    return graph_inputs


def _convert(fn, layer, node, key, model, values, ctx, output_kt, parts: bool):
    """The converter's value of the call at ``node``; with ``parts``, in parts mode: its inputs
    handed over in Keras' whole shapes (``_whole``), what it returns kept as ``_from_whole`` says."""
    if parts and key not in TAKES_PARTS:
        raise _unsupported(layer, key, model, " on a value whose batch axis holds several parts of the one sample "
                                              "(window partitions, a q/k/v stack moved in front); such values are "
                                              "supported through reshapes, transposes, slices, Dense, matmul, "
                                              "einsum, elementwise arithmetic, activations, softmax and "
                                              "LayerNormalization")
    ctx.output_shape = tuple(output_kt.shape[0 if parts else 1:])
    whole = _whole(node, values, ctx, layer) if parts else {}
    bound = collections.ChainMap(whole, values)
    ctx.call_args = _substitute(tuple(node.arguments.args), bound)
    ctx.call_kwargs = _substitute(dict(node.arguments.kwargs), bound)
    ctx.lead = 0 if parts else 1
    try:
        t = fn(layer, [bound[id(k)] for k in node.input_tensors], ctx)
    finally:
        ctx.lead = 1
    return _from_whole(t, node, layer, key, model, ctx, {id(w): values[i] for i, w in whole.items()}) if parts else t


def _parts_call(node, output_kt, values_in, ctx) -> bool:
    """Whether ``node`` is a call on parts of a sample: it reads a value of parts (in
    ``ctx.parts``), or, called on samples, it returns a first axis longer than one that is not
    the batch axis: in a call traced on a batch of one, any such axis (a window partition's
    reshape, a transpose moving q/k/v in front); in a graph of any batch size, one where the batch
    axis (Keras' None) has moved to another place (the transpose). (A window partition's reshape
    in such a graph, its batch axis still first, says so itself: ``IntoParts``.)"""
    if any(ctx.is_parts(v) for v in values_in):
        return True
    shape = tuple(output_kt.shape)
    first = {tuple(kt.shape)[:1] for kt, v in zip(node.input_tensors, values_in) if ctx.is_value(v)}
    if not shape or len(first) != 1:
        return False
    in_front = isinstance(shape[0], int) and shape[0] > 1
    return in_front and (first == {(1,)} or (first == {(None,)} and shape.count(None) == 1))


def _whole(node, values, ctx, layer) -> Dict[int, Tensor]:
    """id(Keras tensor) -> the call's value of one sample seen in Keras' whole shape (a view with a
    first axis of one), for each input that is not already a value of parts."""
    whole = {}
    for kt in node.input_tensors:
        v = values[id(kt)]
        if ctx.is_value(v) and not ctx.is_parts(v) and id(kt) not in whole:
            x = ctx.dense_input(v, layer)
            whole[id(kt)] = ctx.view(x, (1,) + x.shape, layer)
    return whole


def _from_whole(t, node, layer, key, model, ctx, one_sample: Dict[int, object]):
    """The values a TAKES_PARTS converter returned (tensors of Keras' whole shape) as the tracer
    keeps them: of one sample where their first axis is one (a view without it), else parts of
    it (in ``ctx.parts``); one of the call's own inputs handed back is that input's value.
    Each must have the shape Keras declares, exactly."""
    results = t if isinstance(t, tuple) else (t,)
    kept = []
    for kt, r in zip(node.output_tensors, results):
        if id(r) in one_sample:  # (an input passed through)
            kept.append(one_sample[id(r)])
            continue
        declared = tuple(kt.shape)
        if not isinstance(r, Tensor) or len(r.shape) != len(declared) or \
                any(d is not None and d != n for d, n in zip(declared, r.shape)):
            raise UnsupportedModelError(
                f"{_describe(layer, key)} in model '{model.name}' compiles to {getattr(r, 'shape', r)} where Keras "
                f"declares {declared} (a value of parts of one sample): a micronets bug, please report it; refused "
                f"rather than compiled wrong")
        if r.shape[0] == 1:
            r = ctx.view(r, r.shape[1:] or (1,), layer)
        else:
            ctx.parts.add(r)
        kept.append(r)
    return tuple(kept) if isinstance(t, tuple) else kept[0]


def _input_tensor(kt, k: int) -> Tensor:
    """The graph's tensor for model input ``k`` (Keras tensor ``kt``)."""
    shape = tuple(kt.shape[1:])
    if any(d is None for d in shape):
        raise UnsupportedModelError(f"model input must have a fixed shape; got {tuple(kt.shape)}")
    # one number a sample (Input(shape=()): keras.io's structured-data examples feed each
    # feature so, an Embedding looks its id up): held as a vector of one, as x[:, 0] is
    return Tensor(name=input_name(k), shape=shape or (1,))


def _traced_call(layer, node, key, model, values, ctx, why=None):
    """The value of ``layer``'s call at ``node`` compiled through its ``call()`` (``_expanded``): a
    user's layer class, or (``why``: the converter's reason) a Keras layer in a form its converter
    does not take."""
    try:
        parts = {id(kt): values[id(kt)].shape for kt in node.input_tensors if ctx.is_parts(values.get(id(kt)))}
        with _expanded(layer, node, model, keras_class=why is not None, parts=parts) as (sub, fixed):
            if sub is None:  # constants only: the layer reads none of its inputs at run time
                for kt in node.input_tensors:
                    ctx.readers[values[id(kt)]] -= 1
                computed = ()
            else:
                computed = _inline(sub, node, values, ctx)
                computed = computed if isinstance(computed, tuple) else (computed,)
            if not fixed:
                return computed if len(computed) > 1 else computed[0]
            count, computed = len(computed) + len(fixed), iter(computed)  # (fixed: output position -> value)
            results = tuple(fixed[k] if k in fixed else next(computed) for k in range(count))
            return results if len(results) > 1 else results[0]
    except UnsupportedModelError as exc:
        if str(exc).startswith(_describe(layer, key)):
            if why and why not in str(exc):  # (the call was traced for this reason: say it)
                raise UnsupportedModelError(f"{exc}; it was traced through its call() because {why}") from exc
            raise
        raise UnsupportedModelError(f"{_describe(layer, key)} in model '{model.name}', traced through its call()"
                                    + (f" ({why})" if why else "") + f": {exc}") from exc


def _folded(layer, node, key, values, ctx, model):
    """The value of a call that does not depend on the model's input, computed once by Keras itself
    (a tuple of arrays for several outputs), or None for any other call. Such a call reads
    constants only (a Dense or softmax over a learned position table, a cast of a mask), or is a
    VALUE_FREE operation (``ops.ones_like(x)``: x's shape alone matters; its readers count one
    reader less). Keras runs it on a batch of one, at inference (training=False where call()
    takes it), as predict() would; a result that is not one sample of Keras' declared shape, its
    batch axis the model's (the call mixed samples of the batch), is refused."""
    import keras

    kts = list(node.input_tensors)
    first = node.arguments.args[0] if node.arguments.args else None  # (x of ones_like(x, ...))
    constant = [isinstance(values.get(id(kt)), np.ndarray) for kt in kts]
    if not kts or not all(c or (key in VALUE_FREE and kt is first) for kt, c in zip(kts, constant)):
        return None
    batched = {id(kt): (values[id(kt)] if c else np.zeros(values[id(kt)].shape, np.float32))[None]
               for kt, c in zip(kts, constant)}
    args = _substitute(tuple(node.arguments.args), batched)
    kwargs = _substitute(dict(node.arguments.kwargs), batched)
    if isinstance(layer, keras.layers.Layer) and "training" in inspect.signature(layer.call).parameters:
        kwargs["training"] = False
    try:
        with _no_random_draws(), _losses_ignored():  # (a loss the call adds is for training: not kept)
            out = layer(*args, **kwargs)
    except _RandomDraw as exc:
        raise UnsupportedModelError(f"{_describe(layer, key)} in model '{model.name}' {exc.refusal()}") from None
    except Exception as exc:
        raise UnsupportedModelError(f"{_describe(layer, key)} in model '{model.name}' reads constants only, and Keras "
                                    f"could not compute it on them: {type(exc).__name__}: {brief(exc)}") from exc
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    batch = model.inputs[0].shape[0] if getattr(model, "inputs", None) else None  # None, or as the Input fixed it
    results = []
    for kt, o in zip(node.output_tensors, outs):
        v = np.asarray(keras.ops.convert_to_numpy(o))
        declared = tuple(kt.shape)
        if v.ndim != len(declared) or v.shape[:1] != (1,) or declared[0] != batch or \
                any(d is not None and d != n for d, n in zip(declared[1:], v.shape[1:])):
            raise UnsupportedModelError(
                f"{_describe(layer, key)} in model '{model.name}' computes {v.shape} from constants for one sample "
                f"where Keras declares {declared} for a batch of {batch or 'any size'}: it mixes the batch's samples")
        results.append(v[0])
    for kt, c in zip(kts, constant):
        if not c:
            ctx.readers[values[id(kt)]] -= 1
    return tuple(results) if len(results) > 1 else results[0]


def output_name(name: str, k: int) -> str:
    """The name of output ``k`` of the layer call named ``name`` (``call_name``): the name itself
    for the first, 'name:k' for the others of a multi-output operation (keras.ops.split)."""
    return name if k == 0 else f"{name}:{k}"


def call_name(name: str, calls: Dict[str, int]) -> str:
    """A name for the next call of the layer named ``name``: the name itself, then 'name#1',
    'name#2', ... for a layer called more than once (a shared layer or sub-model). ``calls``
    counts the calls named so far (updated)."""
    k = calls.get(name, 0)
    calls[name] = k + 1
    return name if k == 0 else f"{name}#{k}"


def _mask_passed(layer, node) -> bool:
    """Whether the call at ``node`` passes a layer's ``call()`` a mask, by name or position."""
    import keras

    if not isinstance(layer, keras.layers.Layer):
        return False
    kwargs = dict(node.arguments.kwargs)
    if "mask" in kwargs:
        return kwargs["mask"] is not None
    try:
        bound = inspect.signature(layer.call).bind_partial(*node.arguments.args, **kwargs).arguments
    except TypeError:
        return False
    return bound.get("mask") is not None


def _unsupported(layer, key, model, reason=""):
    """The refusal of ``layer``: its specific ``reason`` where there is one, else (a class or
    keras.ops function micronets has no converter for) where to find what it does have."""
    if reason:
        return UnsupportedModelError(f"{_describe(layer, key)} in model '{model.name}' is not supported{reason}")
    what = "keras.ops function" if key.startswith("op:") else "Keras layer class"
    return UnsupportedModelError(
        f"{_describe(layer, key)} in model '{model.name}' is not supported: micronets has no converter for this "
        f"{what} (it converts {len(supported_layers())} layer classes and {len(supported_operations())} keras.ops "
        f"functions: `micronets info --layers` lists them)")


@contextlib.contextmanager
def _expanded(layer, node, model, keras_class: bool = False, parts: Optional[Dict[int, Tuple]] = None):
    """What a layer of a class the compiler does not know (a user's own ``keras.layers.Layer``
    subclass) computes, as a functional model: its ``call()`` run once on symbolic inputs of the
    call's shapes, batch 1 (so ``ops.shape`` gives numbers a reshape can use), with
    ``training=False`` where it takes one (DeiT's stochastic depth defaults to True). Sublayers and
    ``keras.ops`` in ``call()`` become nodes the tracer converts one by one; weights used directly
    in ``call()`` become constants, and so do outputs it returns concrete (``_constant``); a None
    among its outputs is none. A ``call()`` that leaves keras.ops (``tf.nn.*``, numpy on
    tensors) is refused with what failed. Keras' own layer classes are not traced (one the compiler
    does not convert stays refused: Masking's call() alone would drop the mask an LSTM after it
    reads) unless its converter asked for it (``keras_class``: a form of the call its kernel does not
    take), nor is a class that computes a mask; but a Lambda is, its function being the user's
    (unless it is given a mask). ``parts``: id(Keras tensor) -> whole shape of an input whose
    batch axis holds parts of the sample (Swin's windows handed to its window attention): the
    symbolic input has that shape.

    The user's objects end as they began: the nodes this call adds to the sublayers are removed
    when the block exits. The keras.ops it creates are named after the layer ('block/add',
    'block/add_1', ...), not by Keras' process-wide counter, so one model gives one header however
    many models the process built before."""
    import keras

    key = _operation_key(layer)
    cls = type(layer)
    if isinstance(layer, keras.layers.Lambda):  # Keras' class, the user's function: traced as a call() is
        if layer.mask is not None:
            raise _unsupported(layer, key, model, " (its mask= gives a Keras mask, which the layers after it would read)")
    elif cls.__module__.split(".")[0] == "keras" and not keras_class:  # Keras' own: its semantics (masks,
        raise _unsupported(layer, key, model)                             # state) are not ours to guess
    elif cls.compute_mask is not keras.layers.Layer.compute_mask:
        raise _unsupported(layer, key, model, " (it computes a Keras mask, which the layers after it would read)")
    kts = list(node.input_tensors)
    parts = parts or {}
    fresh = {id(t): keras.Input(batch_shape=parts.get(id(t), (1,) + tuple(t.shape[1:])), dtype=_as_computed(t.dtype))
             for t in kts}
    with _new_nodes_removed(layer):
        try:
            kwargs = _substitute(dict(node.arguments.kwargs), fresh)
            params = inspect.signature(layer.call).parameters
            if "training" not in params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                # as Layer.__call__ does: a training= the caller passes to a call() that takes none
                # is dropped (keras-hub's ConvNormAct hands one to its RmsNorm2d)
                kwargs.pop("training", None)
            if "training" in params:
                kwargs["training"] = False  # inference, as predict() runs it, whatever call()'s default or the node's
            with _variables_as_operands(), _no_random_draws(), _losses_ignored(), _none_outputs_dropped():
                out = layer.call(*_substitute(tuple(node.arguments.args), fresh), **kwargs)
            # a tensor, or any structure of them (keras-hub's DINOV2Encoder returns (x, {"stage1": x, ...})):
            # its leaves in Keras' order, the order of the node's outputs, but a None (DeiT's block
            # returns (y, None) where no attention scores are asked for: no output of its node either)
            leaves = [out] if hasattr(out, "_keras_history") else [o for o in keras.tree.flatten(out) if o is not None]
            computed = [o for o in leaves if hasattr(o, "_keras_history")]
            # the other leaves are concrete values that read no input (DeiTEncoder's empty tensors
            # for the hidden states it was not asked for)
            fixed = {k: _constant(o, node.output_tensors[k] if k < len(node.output_tensors) else None, layer, key,
                                  model, k) for k, o in enumerate(leaves) if not hasattr(o, "_keras_history")}
            if not leaves:
                raise TypeError(f"call() returned {type(out).__name__} holding no tensor")
            sub = None if not computed else keras.Model(
                [fresh[id(t)] for t in kts], out if len(leaves) == 1 and leaves[0] is out else computed, name=layer.name)
        except _RandomDraw as exc:
            raise _unsupported(layer, key, model, f" (its call() {exc.refusal()}; export the model up to the values "
                                                  f"it samples from, such as a VAE encoder's mean)") from None
        except Exception as exc:  # anything call() raises on symbolic tensors: the user's code, not ours
            if "cannot be used as input to a TensorFlow function" in str(exc):
                reason = (" (its call() hands a Keras tensor to TensorFlow (tf.*), which cannot be traced: micronets "
                          "follows keras.ops only; write the layer with keras.ops, e.g. keras.ops.relu6 for "
                          "tf.nn.relu6)")
            else:
                reason = f" (its call() could not be traced through keras.ops: {type(exc).__name__}: {brief(exc)})"
            raise _unsupported(layer, key, model, reason) from exc
        calls: Dict[str, int] = {}
        for op in getattr(sub, "operations", ()):  # created by this call (a Layer may be the user's: kept as named)
            if not isinstance(op, keras.layers.Layer):
                op.name = f"{layer.name}/{call_name(_snake(type(op).__name__), calls).replace('#', '_')}"
        yield sub, fixed


@contextlib.contextmanager
def _new_nodes_removed(layer):
    """The nodes a symbolic call of ``layer`` adds to its sublayers are removed when the block exits."""
    sublayers = list(layer._flatten_layers(include_self=False, recursive=True))
    before = [(len(s._inbound_nodes), len(s._outbound_nodes)) for s in sublayers]
    try:
        yield
    finally:
        for s, (n_in, n_out) in zip(sublayers, before):
            del s._inbound_nodes[n_in:]
            del s._outbound_nodes[n_out:]


@contextlib.contextmanager
def _at_call_shapes(sub, node, values, ctx):
    """Nested functional model ``sub`` as called at ``node``: itself, or where it was declared for
    any size (``Input((None, 4))``: keras.io's MAE encoder, the learnable resizer) its graph built
    again on inputs of the sizes the call passes, so that each converter reads the shapes Keras
    computes for them (an attention's output, a reshape's target), not None."""
    import keras

    if all(None not in tuple(t.shape[1:]) for t in sub.inputs) and not any(ctx.is_parts(values[id(kt)])
                                                                          for kt in node.input_tensors):
        yield sub
        return
    fresh = [keras.Input(batch_shape=ctx.keras_shape(values[id(kt)]), dtype=_as_computed(kt.dtype))
             for kt in node.input_tensors]
    with _new_nodes_removed(sub):  # (the call's input conversions, op:ConvertToTensor, compile to nothing)
        yield keras.Model(fresh, sub.call(fresh[0] if len(fresh) == 1 else fresh, training=False), name=sub.name)


HALF_FLOATS = ("float16", "bfloat16")


def _as_computed(dtype) -> str:
    """The dtype a micronets header computes a Keras tensor of ``dtype`` in: 16-bit floats in float32."""
    return "float32" if str(dtype) in HALF_FLOATS else dtype


def _computing(layer) -> bool:
    """A layer that computes (not an InputLayer; not a model, whose layers are counted)."""
    import keras

    return not isinstance(layer, (keras.layers.InputLayer, keras.Model))


def half_precision_layers(model) -> Dict[str, str]:
    """The layers, nested ones included, that Keras computes in a 16-bit float (a mixed_float16,
    mixed_bfloat16, float16 or bfloat16 dtype policy): layer name -> policy name, in model order."""
    return {layer.name: layer.dtype_policy.name for layer in model._flatten_layers(include_self=True, recursive=True)
            if str(layer.compute_dtype) in HALF_FLOATS and _computing(layer)}


@contextlib.contextmanager
def keras_in_float32(model):
    """Keras computes ``model`` in float32 inside the block, as a micronets header does: a layer of a
    mixed policy (mixed_float16, mixed_bfloat16: 16-bit arithmetic over float32 weights) has its
    policy set to float32 until the block exits. Yields the layers left as they were (name ->
    policy): those holding 16-bit weights (a float16 or bfloat16 policy), which Keras cannot run in
    float32. The header's float32 arithmetic is what verification and TFLite's converter then see."""
    switched, kept = [], {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if str(layer.compute_dtype) not in HALF_FLOATS:
            continue
        if str(layer.variable_dtype) == "float32" and all(str(v.dtype) == "float32" for v in layer.weights):
            switched.append((layer, layer.dtype_policy))
        elif _computing(layer):
            kept[layer.name] = layer.dtype_policy.name
    try:
        for layer, _ in switched:
            layer.dtype_policy = "float32"
        yield kept
    finally:
        for layer, policy in switched:
            layer.dtype_policy = policy


@contextlib.contextmanager
def _losses_ignored():
    """While a user's call() is traced: ``self.add_loss(...)`` (the Keras guide's activity
    regularization layer) does nothing. A loss is for training; called outside Keras' own call
    (the tracer calls call() itself), Keras refused it and the layer with it."""
    import keras

    with _replaced(keras.layers.Layer, {"add_loss": lambda self, loss: None}):
        yield


class _RandomDraw(Exception):
    """A user's call() drew random numbers while traced (the argument names the function)."""

    def refusal(self) -> str:
        """Why the draw cannot compile. (Keras re-raises the exception from a layer's call with its
        own text around the function's name.)"""
        draw = re.search(r"keras\.random\.\w+", str(self))
        return (f"draws random numbers at inference with {draw.group(0) if draw else 'keras.random'}: Keras draws "
                f"anew on every call, a header would repeat one draw")


@contextlib.contextmanager
def _no_random_draws():
    """While a user's call() is traced: keras.random's draws of values raise _RandomDraw. A VAE's
    sampling layer (``z_mean + exp(z_log_var / 2) * keras.random.normal(...)``) draws on every call,
    at inference too; traced, its one draw for a batch of one became a constant the header
    repeated. A draw inside a sublayer's shape inference (Keras' symbolic scope: a stochastic depth
    called at its training default) is symbolic, computes no value, and goes ahead: the sublayer is
    traced at inference in its turn."""
    import keras
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope

    names = ("beta", "binomial", "categorical", "dropout", "gamma", "normal", "randint", "shuffle",
             "truncated_normal", "uniform")

    def refused(name, own):
        def draw(*args, **kwargs):
            if in_symbolic_scope():
                return own(*args, **kwargs)
            raise _RandomDraw(f"keras.random.{name}")
        return draw

    with _replaced(keras.random, {name: refused(name, getattr(keras.random, name)) for name in names}):
        yield


@contextlib.contextmanager
def _none_outputs_dropped():
    """While a user's call() is traced: a sublayer or keras.ops call it makes may return None
    among its tensors (keras-hub's DeiT block returns ``(y, None)``: no attention scores unless
    asked), as Keras allows inside a call(); the node recording it holds the tensors alone (Keras'
    own refused the None, and the layer with it). ``_expanded`` leaves the None out alike."""
    import keras
    from keras.src.layers import layer as layer_module
    from keras.src.ops import node as node_module
    from keras.src.ops import operation as operation_module

    class TensorsNode(node_module.Node):
        def __init__(self, operation, call_args=None, call_kwargs=None, outputs=None):
            tensors = None if outputs is None else [o for o in keras.tree.flatten(outputs) if o is not None]
            super().__init__(operation, call_args, call_kwargs, tensors)

    with _replaced(layer_module, {"Node": TensorsNode}), _replaced(operation_module, {"Node": TensorsNode}):
        yield


@contextlib.contextmanager
def _variables_as_operands():
    """While a user's call() is traced: a Keras variable on the left of an arithmetic operator with
    a symbolic tensor (DeiT's ``self.positional_embedding + projected_patches``) goes through
    keras.ops, as it does when the operand is a real tensor. Keras' variables run the backend's own
    function there, which TensorFlow refuses a symbolic tensor; ``x + self.w`` always worked."""
    import keras
    from keras.src.backend.common.variables import Variable

    functions = {"__add__": keras.ops.add, "__sub__": keras.ops.subtract, "__mul__": keras.ops.multiply,
                 "__truediv__": keras.ops.divide, "__matmul__": keras.ops.matmul}

    def through_ops(function, own):
        def operator(self, other):
            return function(self.value, other) if keras.backend.is_keras_tensor(other) else own(self, other)
        return operator

    with _replaced(Variable, {name: through_ops(f, Variable.__dict__[name]) for name, f in functions.items()}):
        yield


@contextlib.contextmanager
def _replaced(owner, replacements: Dict[str, object]):
    """``owner``'s attributes (a class's or a module's, by name) replaced inside the block, as they
    were again on exit; tracing runs a user's call() with Keras patched this way."""
    absent = object()
    saved = {name: vars(owner).get(name, absent) for name in replacements}
    for name, value in replacements.items():
        setattr(owner, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is absent:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


def _constant(out, kt, layer, key, model, k: int):
    """The value of output ``k`` of a ``call()`` that returned it concrete (it reads none of its
    inputs: a learned position embedding broadcast to the sequence's shape), for one sample of
    Keras' declared ``kt``; or, where it is not one sample (it lacks the batch axis: keras-hub's
    ``ops.arange(n)`` of positions, its RoPE tables), an ``_Uncomputed`` naming it, refused if an
    output depends on it."""
    import keras

    try:
        value = np.asarray(keras.ops.convert_to_numpy(out))
    except Exception:
        raise TypeError(f"call() returned {type(out).__name__}, not a tensor") from None
    declared = None if kt is None else tuple(kt.shape)
    if declared is not None and value.shape[:1] == (1,) and len(value.shape) == len(declared) and \
            all(d is None or d == n for d, n in zip(declared[1:], value.shape[1:])):
        return value[0]
    return _Uncomputed(f"{_describe(layer, key)} in model '{model.name}' returns a constant of shape {value.shape} as "
                       f"output {k} (it reads none of its inputs) where Keras declares {declared}: not one sample "
                       f"of a batch (no batch axis); micronets compiles values of one sample, with their batch "
                       f"axis, only")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _inline(sub, node, values, ctx):
    """The value of sub-model ``sub`` called at ``node``: its own graph traced with its inputs bound
    to the call's inputs, in order. Only the sub-model's output is named after a Keras layer (the
    call's), so verify never matches an inner layer with an outer one of the same name."""
    with _at_call_shapes(sub, node, values, ctx) as sub:
        order, readers = _keras_graph(sub)
        inner = {}
        for kt, own in zip(node.input_tensors, sub.inputs):
            x = values[id(kt)]
            # the call counted as one reader of x per argument; inside, each layer reading the
            # sub-model's input does (once for an input passed as two arguments: one Input inside)
            ctx.readers[x] = ctx.readers.get(x, 0) - 1 + (0 if id(own) in inner else readers.get(id(own), 0))
            inner[id(own)] = x
        _trace_nodes(sub, order, readers, inner, ctx, set(), None)
        outs = tuple(inner[id(o)] for o in sub.outputs)  # the caller adds the call's readers to each
    return outs if len(outs) > 1 else outs[0]  # (x itself for an identity)


def trace(model, fuse: bool = True, without: Tuple[str, ...] = ()) -> Graph:
    """Convert a Keras model into a Graph; unsupported layers raise UnsupportedModelError.
    ``fuse=False`` skips the fusing rewrites (one op per layer, for comparison); ``without``
    names rewrites to skip."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model, got {type(model).__name__}")
    _load_op_modules()
    with keras_in_float32(model), _functional_view(model) as model:  # the header computes in float32
        return _trace_model(model, fuse, without)


def _trace_model(model, fuse, without, traced_layers: frozenset = frozenset()) -> Graph:
    """The graph of ``model``. Where an output depends on a layer's later output that its converter
    does not compute (MultiHeadAttention's scores: ``_Uncomputed``), traced again with that layer
    compiled through its call() (``traced_layers``), which computes them all."""
    order, readers = _keras_graph(model)
    ctx = Tracer()
    ctx.traced_layers = traced_layers
    values: Dict[int, object] = {}
    out_ids = {id(t) for t in model.outputs}
    layer_values: List[Tuple[str, object]] = []
    traced = _trace_nodes(model, order, readers, values, ctx, out_ids, layer_values)
    if not traced:
        raise UnsupportedModelError("model has no InputLayer")
    # an input no output depends on (Keras allows one) is still an argument of predict(), unread
    graph_inputs = tuple(traced[k] if k in traced else _input_tensor(kt, k) for k, kt in enumerate(model.inputs))
    for t in model.outputs:
        missing = values[id(t)]
        if isinstance(missing, _Uncomputed):
            if missing.layer is not None and id(missing.layer) not in traced_layers:
                try:
                    return _trace_model(model, fuse, without, traced_layers | {id(missing.layer)})
                except UnsupportedModelError as exc:
                    raise UnsupportedModelError(f"{missing.reason}; compiled through its call() instead: {exc}") from exc
            raise UnsupportedModelError(missing.reason)
    outputs = _outputs(ctx, [values[id(t)] for t in model.outputs], graph_inputs, model)
    kept = frozenset(t.storage for t in outputs)
    ops = list(ctx.ops)
    for fn in REWRITES if fuse else ():
        if fn.__name__ not in without:
            ops = fn(ops, kept)
    ops = _live(ops, kept)
    used = set()
    for i, op in enumerate(ops):
        op.index = i
        op.ident = _ident(op.name, used)
    written = set(graph_inputs) | {op.output.storage for op in ops}
    keras_tensors = tuple((name, v) for name, v in layer_values if isinstance(v, Tensor) and v.storage in written)
    return Graph(ops=tuple(ops), inputs=graph_inputs, outputs=tuple(outputs), keras_tensors=keras_tensors,
                 input_names=tuple(str(kt.name) for kt in model.inputs))


def _live(ops, kept):
    """``ops`` without those whose result nothing reads: a value only ``ops.ones_like`` looked at
    (its shape, computed at compile time) is not computed at run time. Walked from the outputs back,
    by storage, so ops writing parts of one storage (a concatenation in place) live together."""
    live, out = set(kept), []
    for op in reversed(ops):
        if op.output.storage in live:
            out.append(op)
            live.update(t.storage for t in op.inputs)
    return out[::-1]


@contextlib.contextmanager
def _functional_view(model):
    """``model`` as a functional graph. A subclassed keras.Model has none: it becomes Inputs of
    the shapes it was built with (one, a list of them or a dict of them, as its call() took them;
    a dict's named by its keys) and one call of the model, which the tracer then traces through
    ``call()`` as it does a user's layer. The node this adds to the user's model is removed on
    exit."""
    import keras

    if getattr(model, "inputs", None) or type(model).__module__.split(".")[0] == "keras":
        yield model  # functional, or Keras' own class (an unbuilt Sequential: _keras_graph says what to do)
        return
    shapes = list((getattr(model, "_build_shapes_dict", None) or {}).values())

    def known(shape):  # a batch shape of known sample dimensions
        return isinstance(shape, (tuple, list)) and len(shape) >= 2 and \
            all(isinstance(d, (int, np.integer)) for d in shape[1:])

    built = shapes[0] if len(shapes) == 1 else None
    if isinstance(built, dict) and built and all(known(s) for s in built.values()):
        structure = {key: keras.Input(shape=tuple(s[1:]), name=str(key)) for key, s in built.items()}
    elif isinstance(built, (tuple, list)) and built and all(known(s) for s in built):
        structure = [keras.Input(shape=tuple(s[1:]), name="input" if k == 0 else f"input{k}") for k, s in enumerate(built)]
    elif known(built):
        structure = keras.Input(shape=tuple(built[1:]), name="input")
    else:
        raise UnsupportedModelError(
            f"model '{model.name}' ({type(model).__name__}, a subclassed keras.Model) has no input of known "
            f"shape: call it once on a batch (model(x)) or build it (model.build((None, H, W, C))) before exporting"
            + (f"; it was built with {shapes}" if shapes else ""))
    params = inspect.signature(model.call).parameters.values()
    required = [p.name for p in params if p.default is p.empty and p.name not in ("training", "mask")
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) > 1:
        raise UnsupportedModelError(
            f"model '{model.name}' ({type(model).__name__}, a subclassed keras.Model) takes its inputs as "
            f"{len(required)} arguments of call() ({', '.join(required)}); Keras records the shape of the first "
            f"only. Write call(self, inputs) taking one tensor, a list or a dict of them")
    nodes = len(model._inbound_nodes)
    try:
        inp = structure
        try:  # at inference, as the trace runs call(): a call() defaulting to training may return more
            out = model(inp, training=False) if "training" in inspect.signature(model.call).parameters else model(inp)
        except Exception as exc:
            raise UnsupportedModelError(f"model '{model.name}' ({type(model).__name__}, a subclassed keras.Model) "
                                        f"cannot be called on a symbolic input: {type(exc).__name__}: "
                                        f"{brief(exc)}") from exc
        yield keras.Model(inp, out, name=model.name)
    finally:
        del model._inbound_nodes[nodes:]


def _outputs(ctx: Tracer, values, graph_inputs: Tuple[Tensor, ...], model) -> List[Tensor]:
    """The model outputs as tensors that own distinct bytes outside the inputs: a padded output is
    materialised, an output that is an input (or repeats another output) is copied."""
    from micronets.compiler.ops.rearrange import copy_tensor

    outs, seen = [], set()
    for k, v in enumerate(values):
        if ctx.is_parts(v):
            raise UnsupportedModelError(f"model '{model.name}' output {k} has Keras shape {v.shape} for one sample: "
                                        f"its batch axis holds {v.shape[0]} parts of the sample (window partitions "
                                        f"not reversed); a compiled model's outputs are one sample's")
        v = ctx.dense_input(v)
        if any(v.storage is x for x in graph_inputs):
            if len(values) == 1 and not ctx.ops:
                raise UnsupportedModelError(f"model '{model.name}' computes nothing: its output is its input")
            v = copy_tensor(ctx, v, f"output_{k}")
        elif v.storage in seen:
            v = copy_tensor(ctx, v, f"output_{k}")
        seen.add(v.storage)
        outs.append(v)
    return outs


def _ident(name: str, used: set) -> str:
    """A unique C identifier stem derived from a Keras layer name."""
    stem = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not stem or stem[0].isdigit():
        stem = f"l_{stem}"
    ident, k = stem, 2
    while ident in used:
        ident = f"{stem}_{k}"
        k += 1
    used.add(ident)
    return ident


__all__ = ["trace", "supported_layers", "supported_operations", "Tracer", "Padded", "activations"]
